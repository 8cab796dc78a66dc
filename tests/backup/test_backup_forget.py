"""``backup forget``: retention on a local target, sweeping what no kept snapshot needs, refusals.

Time is injected; the target is a real directory. The CLI test drives ``--dry-run`` and a real run.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner

import vault
from mlvault_cli.main import app
from vault import layout
from vault.backup import snapshot
from vault.backup.definition import Target, parse_definition
from vault.backup.forget import ForgetReport, forget_schedule
from vault.backup.lease import LeaseOwner
from vault.backup.run import target_opener
from vault.clientstate.identities import Identities
from vault.errors import ConfigurationError, ConflictError, IntegrityError
from vault.storage.local import LocalBackend

T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
ME = LeaseOwner("forget-test", 1)
STRAY = "packs/ab/ab" + "0" * 30  # what an interrupted run leaves: an object no snapshot names


def add(v: vault.Vault, name: str, target: Path, **keep: int) -> None:
    definition = parse_definition(
        name=name, cron="0 * * * *", tz="UTC", target=Target(str(target)), keep=keep
    )
    v.backup_schedules(clock=lambda: T0).add(definition)


@pytest.fixture
def backed(make_vault: Callable[..., vault.Vault], tmp_path: Path, cheap_kdf: object) -> vault.Vault:
    v = make_vault()
    ids = Identities(tmp_path / "identities")
    ids.create("recovery", None, cheap_kdf)  # type: ignore[arg-type]
    v.add_recovery(ids.public("recovery"))
    data = tmp_path / "model"
    data.mkdir()
    (data / "weights.bin").write_bytes(os.urandom(100_000))
    v.push(data, "team/model")
    add(v, "nightly", tmp_path / "target", last=2)
    return v


def run_at(v: vault.Vault, when: datetime) -> str:
    (run,) = v.backup_runner(clock=lambda: when).run_named("nightly").runs
    assert run.outcome == "success", run.message
    assert run.snapshot_id is not None
    return run.snapshot_id


def forget(v: vault.Vault, now: datetime, *, dry_run: bool = False, name: str = "nightly") -> ForgetReport:
    return forget_schedule(
        v.catalog,
        v.backend,
        v.config.vault_id,
        name,
        open_target=target_opener(),
        owner=ME,
        clock=lambda: now,
        dry_run=dry_run,
    )


def test_forget_keeps_the_policy_and_sweeps_unreferenced_objects(backed: vault.Vault, tmp_path: Path) -> None:
    ids = [run_at(backed, T0 + timedelta(hours=h)) for h in range(4)]
    target = LocalBackend(tmp_path / "target")
    target.put(STRAY, b"left by an interrupted run")
    before = set(target.list())

    dry = forget(backed, T0 + timedelta(hours=5), dry_run=True)
    assert set(target.list()) == before  # nothing deleted
    assert [(d.snapshot.id, d.reasons) for d in dry.decisions] == [
        (ids[3], ("last snapshot", "newest")),
        (ids[2], ("last snapshot",)),
        (ids[1], ()),
        (ids[0], ()),
    ]
    assert dry.snapshots_removed == [ids[0], ids[1]] and dry.objects_deleted == 1

    done = forget(backed, T0 + timedelta(hours=5))
    assert done.snapshots_removed == [ids[0], ids[1]]
    assert done.objects_deleted == 1 and done.bytes_deleted == len(b"left by an interrupted run")
    assert snapshot.snapshot_ids(target) == ids[2:]
    assert not target.exists(STRAY) and not target.exists(layout.snapshot_objects_key(ids[0]))
    for key in backed.backend.list():  # every vault object is still backed up, and the vault untouched
        assert target.get(key) == backed.backend.get(key)
    assert target.exists(layout.BACKUP_TARGET)


def test_the_newest_snapshot_survives_a_policy_that_would_drop_it(
    backed: vault.Vault, tmp_path: Path
) -> None:
    first = run_at(backed, T0)
    second = run_at(backed, T0 + timedelta(hours=1))
    # keep-within 1h of the newest, evaluated at a time when the newest is in the future of "now":
    # the future one is kept ("future"), and the newest past one too ("newest").
    report = forget(backed, T0 + timedelta(minutes=30))
    reasons = {d.snapshot.id: d.reasons for d in report.decisions}
    assert reasons[second] == ("future",) and "newest" in reasons[first]
    assert snapshot.snapshot_ids(LocalBackend(tmp_path / "target")) == [first, second]


def test_an_unreadable_object_list_stops_forget_before_any_delete(
    backed: vault.Vault, tmp_path: Path
) -> None:
    ids = [run_at(backed, T0 + timedelta(hours=h)) for h in range(3)]
    target_dir = tmp_path / "target"
    (target_dir / layout.snapshot_objects_key(ids[1])).write_bytes(b"garbage")
    before = sorted(LocalBackend(target_dir).list())
    with pytest.raises(IntegrityError, match=f"snapshot {ids[1]}.*nothing was deleted"):
        forget(backed, T0 + timedelta(hours=4))
    assert sorted(LocalBackend(target_dir).list()) == before


def test_forget_refuses_another_vaults_target_and_a_running_schedule(
    backed: vault.Vault, make_vault: Callable[..., vault.Vault], tmp_path: Path
) -> None:
    run_at(backed, T0)
    other = make_vault()
    add(other, "stolen", tmp_path / "target", last=1)
    with pytest.raises(ConfigurationError, match="belongs to vault"):  # exit 8
        forget(other, T0, name="stolen")
    leases = backed.catalog.backup_lease_store()
    assert leases.try_acquire("nightly", LeaseOwner("runner", 2), T0, timedelta(minutes=10))
    with pytest.raises(ConflictError, match="is running"):  # exit 9
        forget(backed, T0 + timedelta(minutes=1))
    assert forget(backed, T0 + timedelta(minutes=1), dry_run=True) is not None  # a dry run needs no lease


def test_cli_forget_dry_run_then_forget(backed: vault.Vault, tmp_path: Path) -> None:
    for hour in range(3):
        run_at(backed, datetime.now(UTC) - timedelta(hours=3 - hour))
    vault_dir = str(Path(backed.backend.url.removeprefix("file://")))
    env = {"MLVAULT_PASSPHRASE": "pw", "MLVAULT_VAULT": vault_dir}
    runner = CliRunner()
    dry = runner.invoke(app, ["backup", "forget", "nightly", "--dry-run"], env=env, catch_exceptions=False)
    assert dry.exit_code == 0, dry.stderr
    assert "keep: last snapshot, newest" in dry.stdout and "remove" in dry.stdout
    assert "would remove 1 snapshots" in dry.stdout
    real = runner.invoke(app, ["backup", "forget", "nightly"], env=env, catch_exceptions=False)
    assert real.exit_code == 0, real.stderr
    assert "removed 1 snapshots" in real.stdout
    assert len(snapshot.snapshot_ids(LocalBackend(tmp_path / "target"))) == 2
    missing = runner.invoke(app, ["backup", "forget", "nope"], env=env, catch_exceptions=False)
    assert missing.exit_code == 3
