"""``backup verify``: key-free checks, authenticity with the recovery identity, --read-data and samples.

Damage is done to a real local target by hand: a truncated pack, a flipped byte that keeps the size,
a missing manifest, an object list swapped for another one.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner

import vault
from mlvault_cli.main import app
from vault import layout
from vault.backup import snapshot
from vault.backup.definition import Target, parse_definition
from vault.backup.run import target_opener
from vault.backup.verify import VerifyReport, parse_fraction, sample, verify_schedule
from vault.clientstate.identities import Identities, Identity
from vault.errors import IntegrityError, UsageError
from vault.storage.local import LocalBackend

T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)


def fixed(when: datetime) -> Callable[[], datetime]:
    return lambda: when


@pytest.fixture
def ids(tmp_path: Path, cheap_kdf: object) -> Identities:
    identities = Identities(tmp_path / "identities")
    identities.create("recovery", None, cheap_kdf)  # type: ignore[arg-type]
    return identities


@pytest.fixture
def backed(make_vault: Callable[..., vault.Vault], tmp_path: Path, ids: Identities) -> vault.Vault:
    v = make_vault()
    v.add_recovery(ids.public("recovery"))
    data = tmp_path / "model"
    data.mkdir()
    for n in range(3):
        (data / f"part-{n}.bin").write_bytes(os.urandom(120_000))
        v.push(data, "team/model")
    definition = parse_definition(
        name="nightly", cron="0 * * * *", tz="UTC", target=Target(str(tmp_path / "target")), keep={"last": 5}
    )
    v.backup_schedules(clock=lambda: T0).add(definition)
    for when in (T0, T0 + timedelta(hours=1)):
        (run,) = v.backup_runner(clock=fixed(when)).run_named("nightly").runs
        assert run.outcome == "success", run.message
    return v


def verify(
    v: vault.Vault,
    *,
    identity: Identity | None = None,
    fraction: float | None = None,
    snapshot_id: str | None = None,
) -> VerifyReport:
    return verify_schedule(
        v.catalog,
        v.config.vault_id,
        "nightly",
        open_target=target_opener(),
        snapshot_id=snapshot_id,
        identity=identity,
        keys=None if fraction is None else v.keys,
        read_fraction=fraction,
    )


def packs_on(target: Path) -> list[str]:
    return sorted(k for k in LocalBackend(target).list() if layout.parse_pack_key(k))


def test_a_sound_target_passes_and_says_what_was_not_checked(backed: vault.Vault, ids: Identities) -> None:
    plain = verify(backed)
    assert plain.ok and len(plain.snapshots) == 2 and plain.objects_checked > 5
    assert any("recovery identity" in item for item in plain.not_checked)
    full = verify(backed, identity=ids.load("recovery", lambda: b""), fraction=1.0)
    assert full.ok, full.problems
    assert full.packs_read == full.packs_total > 0 and full.chunks_checked >= 3 and full.manifests_read == 3
    assert not any("recovery identity" in item or "the data itself" in item for item in full.not_checked)


def test_size_and_presence_damage_is_found_without_a_key(backed: vault.Vault, tmp_path: Path) -> None:
    target = tmp_path / "target"
    pack = packs_on(target)[0]
    manifest = next(k for k in LocalBackend(target).list() if k.startswith(layout.MANIFESTS_PREFIX))
    with (target / pack).open("r+b") as handle:
        handle.truncate(100)
    (target / manifest).unlink()
    report = verify(backed)
    assert f"object {pack} is 100 bytes" in " ".join(report.problems)
    assert f"object {manifest} (needed by snapshot" in " ".join(report.problems)
    with pytest.raises(IntegrityError, match=pack):  # exit 5, naming the object
        report.raise_for_damage()


def test_a_flipped_byte_is_found_only_by_reading_the_data(backed: vault.Vault, tmp_path: Path) -> None:
    target = tmp_path / "target"
    pack = packs_on(target)[0]
    path = target / pack
    data = bytearray(path.read_bytes())
    data[200] ^= 1  # inside the first chunk record; the size stays
    path.chmod(0o644)
    path.write_bytes(bytes(data))
    assert verify(backed).ok
    report = verify(backed, fraction=1.0)
    assert report.problems == [f"pack {layout.parse_pack_key(pack)}: 1 of 1 chunks are damaged"]


def test_a_swapped_object_list_is_caught_by_the_sealed_pin(
    backed: vault.Vault, tmp_path: Path, ids: Identities
) -> None:
    target = LocalBackend(tmp_path / "target")
    first = snapshot.snapshot_ids(target)[0]
    listing = snapshot.read_object_list(target, first)
    forged = replace(listing, objects={k: v for k, v in listing.objects.items() if "packs/" not in k})
    key = tmp_path / "target" / layout.snapshot_objects_key(first)
    key.chmod(0o644)
    key.write_bytes(forged.encode())
    assert verify(backed, snapshot_id=first).ok  # without the identity nobody can tell
    report = verify(backed, identity=ids.load("recovery", lambda: b""), snapshot_id=first)
    assert len(report.problems) == 1
    assert report.problems[0].startswith(
        f"snapshot {first}: its object list is not the one the sealed snapshot pins"
    )


def test_the_subset_is_deterministic_and_never_empty() -> None:
    packs = [f"{n:032x}" for n in range(200)]
    five = sample(packs, 0.05, "seed")
    assert len(five) == 10 and five == sample(list(reversed(packs)), 0.05, "seed")
    assert five != sample(packs, 0.05, "another seed")
    assert len(sample(packs[:3], 0.01, "seed")) == 1 and sample([], 0.5, "seed") == []
    assert parse_fraction("5%") == 0.05 and parse_fraction("100%") == 1.0
    for bad in ("5", "0%", "101%", "x%", "-1%"):
        with pytest.raises(UsageError):
            parse_fraction(bad)


def test_cli_verify_exit_codes(backed: vault.Vault, tmp_path: Path) -> None:
    env = {"MLVAULT_PASSPHRASE": "pw", "MLVAULT_VAULT": str(tmp_path / "vault-0")}
    runner = CliRunner()
    good = runner.invoke(app, ["backup", "verify", "nightly", "--read-data-subset", "50%"], env=env)
    assert good.exit_code == 0, good.stderr
    assert "checked 2 snapshots (signed by: unsigned)" in good.stdout
    assert "not checked: the sealed parts themselves" in good.stdout
    pack = packs_on(tmp_path / "target")[0]
    (tmp_path / "target" / pack).unlink()
    bad = runner.invoke(app, ["backup", "verify", "nightly"], env=env)
    assert bad.exit_code == 5 and pack in bad.stderr
    both = runner.invoke(
        app, ["backup", "verify", "nightly", "--read-data", "--read-data-subset", "5%"], env=env
    )
    assert both.exit_code == 2
