"""``backup run`` in-process: incremental copies, snapshots, leases, interruption and resume, refusals.

Time is injected (a moved clock), targets are real local directories; a fault-injecting target
wrapper stands in for a crash in the middle of a copy.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

import vault
from vault import layout
from vault.backup import snapshot
from vault.backup.definition import Target, parse_definition
from vault.backup.lease import LeaseOwner
from vault.backup.run import BackupRunner, target_opener
from vault.clientstate.identities import Identities
from vault.errors import BackupFailedError, ConfigurationError, UsageError
from vault.storage import Backend
from vault.storage.local import LocalBackend

T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)


class Clock:
    def __init__(self, now: datetime = T0) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


class CrashingTarget(LocalBackend):
    """A local target that fails after ``budget`` successful puts (a crash mid-copy)."""

    def __init__(self, path: Path, budget: int) -> None:
        super().__init__(path, create=True)
        self.budget = budget

    def put(self, key: str, data: bytes) -> None:
        if self.budget <= 0:
            raise RuntimeError("simulated crash")
        self.budget -= 1
        super().put(key, data)


def recovery(tmp_path: Path, cheap_kdf: object) -> tuple[Identities, str]:
    ids = Identities(tmp_path / "identities")
    ids.create("recovery", None, cheap_kdf)  # type: ignore[arg-type]
    return ids, "recovery"


@pytest.fixture
def backed(make_vault: Callable[..., vault.Vault], tmp_path: Path, cheap_kdf: object) -> vault.Vault:
    v = make_vault()
    ids, name = recovery(tmp_path, cheap_kdf)
    v.add_recovery(ids.public(name))
    data = tmp_path / "model"
    data.mkdir()
    (data / "weights.bin").write_bytes(os.urandom(300_000))
    (data / "config.json").write_text('{"layers": 3}')
    v.push(data, "team/model", tags=["prod"], metadata={"acc": "0.9"})
    (data / "weights.bin").write_bytes(os.urandom(200_000))
    v.push(data, "team/model", parents=["team/model@v1"])
    add_schedule(v, "nightly", tmp_path / "target")
    return v


def add_schedule(v: vault.Vault, name: str, target: Path, cron: str = "0 * * * *") -> None:
    definition = parse_definition(
        name=name, cron=cron, tz="UTC", target=Target(str(target)), keep={"last": 3}
    )
    v.backup_schedules(clock=lambda: T0).add(definition)


def vault_objects(v: vault.Vault) -> dict[str, int]:
    return {key: v.backend.size(key) for key in v.backend.list()}


def test_first_run_copies_everything_second_only_the_snapshot(backed: vault.Vault, tmp_path: Path) -> None:
    clock = Clock()
    runner = backed.backup_runner(clock=clock)
    objects = vault_objects(backed)
    first = runner.run_named("nightly")
    (run,) = first.runs
    assert run.outcome == "success", run.message
    assert run.objects_copied == len(objects) + 2  # + object list + sealed snapshot
    target = LocalBackend(tmp_path / "target")
    for key in objects:
        assert target.get(key) == backed.backend.get(key)  # verbatim
    first_bytes = run.bytes_copied

    clock.now += timedelta(hours=1)
    (again,) = runner.run_named("nightly").runs
    assert again.outcome == "success" and again.objects_copied == 2
    snapshot_bytes = again.bytes_copied
    assert snapshot_bytes < 20_000 < sum(objects.values()) < first_bytes
    print(f"\nfirst run {first_bytes} bytes, second run {snapshot_bytes} bytes (snapshot only)")

    listed = runner.snapshots("nightly")
    assert [s.snapshot_id for s in listed] == [run.snapshot_id, again.snapshot_id]
    assert listed[0].objects == objects and listed[0].versions == 2
    assert listed[0].bytes_added == sum(objects.values()) and listed[1].bytes_added == 0
    history = backed.catalog.backup_run_history("nightly")
    assert [(h.outcome, h.objects_copied) for h in history] == [("success", 2), ("success", len(objects) + 2)]
    assert snapshot.read_marker(target) == backed.config.vault_id


def test_no_recovery_recipient_is_refused(make_vault: Callable[..., vault.Vault], tmp_path: Path) -> None:
    v = make_vault()
    add_schedule(v, "nightly", tmp_path / "target")
    with pytest.raises(UsageError, match="mlvault keys add-recovery"):
        v.backup_runner(clock=Clock()).run_named("nightly")
    assert not (tmp_path / "target").exists() or not any((tmp_path / "target").iterdir())


def test_a_target_of_another_vault_is_refused(
    backed: vault.Vault, make_vault: Callable[..., vault.Vault], tmp_path: Path
) -> None:
    assert backed.backup_runner(clock=Clock()).run_named("nightly").runs[0].outcome == "success"
    other = make_vault()
    other.add_recovery(Identities(tmp_path / "identities").public("recovery"))
    add_schedule(other, "stolen", tmp_path / "target")
    report = other.backup_runner(clock=Clock()).run_named("stolen")
    assert report.runs[0].outcome == "failed" and "belongs to vault" in report.runs[0].message
    with pytest.raises(ConfigurationError):  # exit 8
        report.raise_for_failures()
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    add_schedule(backed, "foreign", foreign)
    failed = backed.backup_runner(clock=Clock()).run_named("foreign").runs[0]
    assert failed.outcome == "failed" and "not an mlvault backup target" in failed.message


def test_an_interrupted_run_leaves_complete_objects_and_the_next_copies_the_rest(
    backed: vault.Vault, tmp_path: Path
) -> None:
    objects = vault_objects(backed)
    crashing: list[CrashingTarget] = []

    def open_crashing(target: Target) -> Backend:
        crashing.append(CrashingTarget(Path(target.url), budget=4))
        return crashing[-1]

    clock = Clock()
    broken = BackupRunner(
        backed.backend, backed.catalog, backed.config.vault_id, clock=clock, open_target=open_crashing
    )
    report = broken.run_named("nightly")
    assert report.runs[0].outcome == "failed" and "simulated crash" in report.runs[0].message
    with pytest.raises(BackupFailedError):
        report.raise_for_failures()
    target = LocalBackend(tmp_path / "target")
    partial = {k for k in target.list() if not layout.is_backup_key(k)}
    assert 0 < len(partial) < len(objects)
    assert all(target.get(k) == backed.backend.get(k) for k in partial)  # only complete objects
    assert snapshot.snapshot_ids(target) == []

    clock.now += timedelta(minutes=5)
    (resumed,) = backed.backup_runner(clock=clock).run_named("nightly").runs
    assert resumed.outcome == "success"
    assert resumed.objects_copied == len(objects) - len(partial) + 2
    assert len(snapshot.snapshot_ids(target)) == 1


def test_run_due_runs_due_schedules_once_and_skips_a_live_lease(backed: vault.Vault, tmp_path: Path) -> None:
    add_schedule(backed, "other", tmp_path / "target2")
    clock = Clock(T0 + timedelta(minutes=30))
    runner = backed.backup_runner(clock=clock)
    assert runner.run_due().runs == ()  # the first slot is 13:00
    clock.now = T0 + timedelta(hours=1, minutes=2)
    store = backed.catalog.backup_lease_store()
    intruder = LeaseOwner("elsewhere", 4242)
    assert store.try_acquire("other", intruder, clock.now, timedelta(minutes=10))
    report = runner.run_due()
    outcomes = {r.schedule: (r.outcome, r.message) for r in report.runs}
    assert outcomes["nightly"][0] == "success"
    assert outcomes["other"][0] == "skipped" and "elsewhere pid 4242" in outcomes["other"][1]
    report.raise_for_failures()  # a skip is not a failure
    assert [r.schedule for r in runner.run_due().runs] == ["other"]  # nightly's slot is done
    store.release("other", intruder)


def test_a_run_marked_running_whose_lease_expired_is_run_again_by_due(backed: vault.Vault) -> None:
    clock = Clock(T0 + timedelta(hours=1, minutes=1))
    dead = LeaseOwner("crashed-host", 1)
    store = backed.catalog.backup_lease_store()
    assert store.try_acquire("nightly", dead, clock.now, timedelta(seconds=30))
    backed.catalog.start_backup_run("nightly", T0 + timedelta(hours=1), clock.now)
    runner = backed.backup_runner(clock=clock)
    assert runner.run_due().runs == ()  # its lease is live: it is running, not due
    clock.now += timedelta(minutes=1)
    (run,) = runner.run_due().runs
    assert run.outcome == "success"
    history = backed.catalog.backup_run_history("nightly")
    assert [h.outcome for h in history] == ["success", "failed"]
    assert "interrupted" in (history[1].error or "")
    assert runner.run_due().runs == ()


def test_heartbeats_during_a_long_copy_and_stops_when_the_lease_is_taken(backed: vault.Vault) -> None:
    clock = Clock()
    beats: list[datetime] = []
    store = backed.catalog.backup_lease_store()

    class TickingTarget(LocalBackend):
        def put(self, key: str, data: bytes) -> None:
            clock.now += timedelta(minutes=2)  # each object "takes" two minutes
            super().put(key, data)
            lease = store.current("nightly")
            if lease is not None:
                beats.append(lease.heartbeat_at)

    def open_ticking(target: Target) -> Backend:
        return TickingTarget(Path(target.url), create=True)

    runner = BackupRunner(
        backed.backend, backed.catalog, backed.config.vault_id, clock=clock, open_target=open_ticking,
        lease_ttl=timedelta(minutes=5),
    )  # fmt: skip
    (run,) = runner.run_named("nightly").runs
    assert run.outcome == "success"
    assert len(set(beats)) > 2  # the heartbeat moved while copying


def test_metrics_and_an_unreachable_ping_never_fail_the_backup(backed: vault.Vault, tmp_path: Path) -> None:
    metrics = tmp_path / "backup.prom"
    report = backed.backup_runner(clock=Clock()).run_named(
        "nightly", metrics_file=metrics, ping_url="http://127.0.0.1:9/ping"
    )
    assert report.runs[0].outcome == "success"
    assert report.warnings  # the ping could not be delivered
    text = metrics.read_text()
    assert 'mlvault_backup_last_run_success{schedule="nightly"} 1.0' in text
    assert "mlvault_backup_last_run_bytes_copied" in text


def test_target_opener_uses_the_schedule_options(tmp_path: Path) -> None:
    backend = target_opener()(Target(str(tmp_path / "t")))
    assert isinstance(backend, LocalBackend)
