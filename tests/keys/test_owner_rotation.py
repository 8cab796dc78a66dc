"""``rekey`` rotates the owner key when a slot that could open it was removed (issue 9).

Someone who kept a removed passphrase and its slot object (restored here into storage, as anyone
with storage access could) opens the OLD owner key, which opens no current keyring slot: exit 4
for data pushed after the rekey. The rotation is killed after every write and delete (a step
callback raising, no mocks) and re-run: it completes and nothing is lost. KMS and recovery slots
are carried over; a passphrase this process cannot rewrap is refused unless dropped. Real local
vaults, cheap KDF, moto's KMS.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
from keyhelpers import CHEAP_KDF, PASSPHRASE, load_identity, new_identity
from typer.testing import CliRunner, Result

import vault
from mlvault_cli.main import app
from vault import layout
from vault.clientstate import ClientState
from vault.errors import AuthenticationError, IntegrityError, UsageError
from vault.formats import keyslot
from vault.keycache import owner_commitment
from vault.keys import slots
from vault.keys.kms import AwsKms, KmsOptions
from vault.keys.rekey import rekey_namespace
from vault.storage import open_backend

OLD = "the passphrase that gets removed"
OTHER = "a passphrase nobody gives the rekey"


class Killed(Exception):
    """What the step callback raises: the process dies here."""


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("MLVAULT_") and not name.startswith(("MLVAULT_TEST_", "MLVAULT_CONFIG_DIR")):
            monkeypatch.delenv(name)


def run(*args: str, passphrase: str = PASSPHRASE, config_dir: Path | None = None) -> Result:
    env = {"MLVAULT_PASSPHRASE": passphrase}
    if config_dir is not None:
        env["MLVAULT_CONFIG_DIR"] = str(config_dir)
    return CliRunner().invoke(app, list(args), env=env, catch_exceptions=False)


def source(tmp_path: Path, name: str, data: bytes) -> Path:
    path = tmp_path / name
    path.mkdir()
    (path / "weights.bin").write_bytes(data)
    return path


def owner(path: Path, state: ClientState | None = None, **options: Any) -> vault.Vault:
    return vault.open_vault(str(path), passphrase=PASSPHRASE, client_state=state, **options)


def owner_slots(v: vault.Vault) -> dict[str, str]:
    """slot id → kind of every usable slot on the owner ring."""
    return {s.slot_id: s.kind for s in v.key_slots() if s.opens == "owner" and s.kind != "damaged"}


def removed_passphrase_vault(tmp_path: Path, name: str = "v") -> tuple[Path, bytes]:
    """A vault with a version in team and research and a removed passphrase; returns the path and
    the removed slot's bytes (what its holder kept)."""
    path = tmp_path / name
    with vault.init_vault(str(path), passphrase=PASSPHRASE, kdf=CHEAP_KDF) as v:
        v.push(source(tmp_path, f"{name}-a", b"team v1 " * 20_000), "team/model")
        v.push(source(tmp_path, f"{name}-r", b"research v1 " * 1000), "research/model")
        removed = v.add_passphrase_slot(OLD.encode(), CHEAP_KDF)
        kept = v.backend.get(layout.slot_key(layout.OWNER_RING, removed))
        v.remove_slot(removed)
    return path, kept


def test_rotation_only_after_an_owner_opening_slot_was_removed(tmp_path: Path) -> None:
    path = tmp_path / "v"
    with vault.init_vault(str(path), passphrase=PASSPHRASE, kdf=CHEAP_KDF) as v:
        v.push(source(tmp_path, "a", b"x" * 1000), "team/model")
        first = v.keys.owner_key()
        extra = v.add_passphrase_slot(OTHER.encode(), CHEAP_KDF)
        recipient = v.add_recipient(new_identity("alice"), "team")
        v.remove_slot(recipient)  # a keyring slot: a new epoch, not a new owner key
        report = v.rekey("team")
        assert report.rekey.owner_rotation is None and v.keys.owner_key() == first
        v.remove_slot(extra)
        report = v.rekey("team")
        rotation = report.rekey.owner_rotation
        assert rotation is not None and rotation.keyrings == 1 and extra not in rotation.deleted
        assert not report.rekey.owner_key_exposed and v.keys.owner_key() != first
        assert report.rekey.epoch == 2
        again = v.rekey("team")
        assert again.rekey.owner_rotation is None
    with owner(path) as v:
        assert v.keys.owner_key() not in (first,)
        v.pull("team/model@v1", tmp_path / "out")


def test_a_kept_removed_passphrase_opens_nothing_written_after_the_rekey(tmp_path: Path) -> None:
    path, kept = removed_passphrase_vault(tmp_path)
    with owner(path) as v:
        old_key = v.keys.owner_key()
        team = v.catalog.keyring_for("team")
        assert team is not None
        old_team_slots = {p.name: p.read_bytes() for p in (path / "keys" / team).iterdir()}
    result = run("rekey", "team", "-V", str(path))
    assert result.exit_code == 0, result.stderr
    assert "owner key rotated" in result.stdout
    assert "research still use key epochs the old owner key could open" in result.stderr
    pushed = run("push", str(source(tmp_path, "b", b"team v2 " * 20_000)), "team/model", "-V", str(path))
    assert pushed.exit_code == 0, pushed.stderr

    removed_id = keyslot.decode(kept).slot_id
    open_backend(str(path)).put(layout.slot_key(layout.OWNER_RING, removed_id), kept)
    fresh = tmp_path / "attacker-client"  # no pins
    with vault.open_vault(str(path), passphrase=OLD, client_state=ClientState(fresh)) as v:
        assert v.keys.owner_key() == old_key  # the OLD owner key ...
        with pytest.raises(AuthenticationError):
            v.keys.keyring(team)  # ... opens no current keyring slot
    refused = run(
        "pull", "team/model@v2", str(tmp_path / "o2"), "-V", str(path), passphrase=OLD, config_dir=fresh
    )
    assert refused.exit_code == 4, refused.stderr
    assert not (tmp_path / "o2").exists()

    # Had they also kept team's old owner slot, they read what came before, and still not v2.
    for name, blob in old_team_slots.items():
        (path / "keys" / team / name).write_bytes(blob)
    before = run(
        "pull", "team/model@v1", str(tmp_path / "o1"), "-V", str(path), passphrase=OLD, config_dir=fresh
    )
    assert before.exit_code == 0, before.stderr
    after = run(
        "pull", "team/model@v2", str(tmp_path / "o3"), "-V", str(path), passphrase=OLD, config_dir=fresh
    )
    assert after.exit_code == 4 and "rekeyed" in after.stderr


def test_killed_after_every_step_then_rerun_completes(tmp_path: Path) -> None:
    backup, alice = new_identity("backup"), new_identity("alice")
    steps: list[str] = []
    for n in range(200):
        path, kept = removed_passphrase_vault(tmp_path, f"v{n}")
        with owner(path) as v:
            v.add_recovery(backup)
            v.add_recipient(alice, "team", label="alice")
        state = ClientState(tmp_path / f"client{n}")
        with owner(path, state) as v:
            old_key = v.keys.owner_key()
            steps.clear()

            def step(name: str, kill_at: int = n + 1) -> None:
                steps.append(name)
                if len(steps) == kill_at:
                    raise Killed(name)

            try:
                rekey_namespace(v.keys, v.backend, v.catalog, "team", step=step)
            except Killed:
                pass
            else:
                assert n == len(steps)  # killed once after every step: done
                break
        with owner(path, state) as v:  # the re-run, a new process with the same client state
            report = v.rekey("team")
            assert not report.rekey.owner_key_exposed, steps[n]
            new_key = v.keys.owner_key()
            assert new_key != old_key
            assert sorted(owner_slots(v).values()) == ["passphrase", "x25519"], steps[n]
            team = v.catalog.keyring_for("team")
            assert team is not None
            assert sorted(s.kind for s in v.key_slots() if s.ring == team) == ["owner", "x25519"], steps[n]
            v.push(source(tmp_path, f"v{n}-b", b"team v2 " * 1000), "team/model")
            v.pull("team/model@v1", tmp_path / f"v{n}-o1")
            v.pull("research/model", tmp_path / f"v{n}-or")
        assert (tmp_path / f"v{n}-o1" / "weights.bin").read_bytes() == b"team v1 " * 20_000
        assert state.pinned_owner_key(vault.open_vault(str(path)).config.vault_id) == owner_commitment(
            bytes.fromhex(vault.open_vault(str(path)).config.vault_id), new_key
        )
        with vault.open_vault(str(path), identity=lambda: load_identity("backup")) as v:
            assert v.keys.owner_key() == new_key  # the recovery slot was carried over
        with vault.open_vault(str(path), identity=lambda: load_identity("alice")) as v:
            v.pull("team/model@v2", tmp_path / f"v{n}-alice")
        open_backend(str(path)).put(layout.slot_key(layout.OWNER_RING, keyslot.decode(kept).slot_id), kept)
        with vault.open_vault(str(path), passphrase=OLD) as v, pytest.raises(AuthenticationError):
            v.keys.keyring(team)
    else:
        pytest.fail("the rotation never finished")
    assert len(steps) > 20 and "re-pinned" in steps, steps


def test_kms_slot_is_carried_over(tmp_path: Path, kms_admin: Any, moto_endpoint: str) -> None:
    kms = AwsKms(KmsOptions(region="us-east-1", endpoint_url=moto_endpoint))
    key_arn = kms_admin.create_key(KeySpec="SYMMETRIC_DEFAULT")["KeyMetadata"]["Arn"]
    path, _ = removed_passphrase_vault(tmp_path)
    with owner(path, kms=kms) as v:
        first = v.add_kms_slot(key_arn, label="ci")
        v.add_kms_slot(key_arn, label="ci again")  # one KMS key: one slot after the rotation
        old_key = v.keys.owner_key()
        rotation = v.rekey("team").rekey.owner_rotation
        assert rotation is not None and first in rotation.deleted
        new = [s for s in v.key_slots() if s.kind == "aws-kms"]
        assert [s.kms_key_id for s in new] == [key_arn] and new[0].label in ("ci", "ci again")
    with vault.open_vault(str(path), kms=kms) as v:  # KMS only
        assert v.keys.owner_key() not in (old_key,)
        assert v.keys.opened_by is not None and v.keys.opened_by.source == "kms"
        v.pull("team/model", tmp_path / "out")


def test_opened_by_kms_a_passphrase_cannot_be_rewrapped_unless_dropped(
    tmp_path: Path, kms_admin: Any, moto_endpoint: str
) -> None:
    kms = AwsKms(KmsOptions(region="us-east-1", endpoint_url=moto_endpoint))
    key_arn = kms_admin.create_key(KeySpec="SYMMETRIC_DEFAULT")["KeyMetadata"]["Arn"]
    path, _ = removed_passphrase_vault(tmp_path)
    with owner(path, kms=kms) as v:
        v.add_kms_slot(key_arn)
        (passphrase_slot,) = [s for s, kind in owner_slots(v).items() if kind == "passphrase"]
    with vault.open_vault(str(path), kms=kms) as v:
        before = owner_slots(v)
        with pytest.raises(UsageError, match=passphrase_slot):
            v.rekey("team")
        assert owner_slots(v) == before  # nothing written before the refusal
        rotation = v.rekey("team", drop_unrewrappable=True).rekey.owner_rotation
        assert rotation is not None and rotation.dropped == (passphrase_slot,)
        assert sorted(owner_slots(v).values()) == ["aws-kms"]
    with vault.open_vault(str(path), kms=kms) as v:
        v.pull("team/model", tmp_path / "out")


def test_another_passphrase_is_refused_without_the_flag(tmp_path: Path) -> None:
    path, _ = removed_passphrase_vault(tmp_path)
    with owner(path) as v:
        other = v.add_passphrase_slot(OTHER.encode(), CHEAP_KDF)
        old_key = v.keys.owner_key()
    refused = run("rekey", "team", "-V", str(path))
    assert refused.exit_code == 2, refused.stderr
    assert other in refused.stderr and "--drop-unrewrappable" in refused.stderr
    with owner(path) as v:
        assert v.keys.owner_key() == old_key and other in owner_slots(v)
    dropped = run("rekey", "team", "-V", str(path), "--drop-unrewrappable")
    assert dropped.exit_code == 0, dropped.stderr
    assert f"dropped owner key slot {other}" in dropped.stdout
    with vault.open_vault(str(path), passphrase=OTHER) as v, pytest.raises(AuthenticationError):
        v.keys.owner_key()


def test_other_clients_accept_the_rotation_by_passphrase_never_by_identity(tmp_path: Path) -> None:
    path, _ = removed_passphrase_vault(tmp_path)
    backup = new_identity("backup")
    with owner(path) as v:
        v.add_recovery(backup)
        vault_id = v.vault_id
    laptop = ClientState(tmp_path / "laptop")
    backup_host = ClientState(tmp_path / "backup-host")
    with owner(path, laptop) as v:
        v.pull("team/model", tmp_path / "laptop-1")  # pins the owner key and team's keyring
    with vault.open_vault(str(path), identity=lambda: load_identity("backup"), client_state=backup_host) as v:
        v.unlock(owner=True)
    with owner(path) as v:
        v.rekey("team")
        new_key = v.keys.owner_key()

    with owner(path, laptop) as v:  # the passphrase opens a new owner key under which team authenticates
        assert v.keys.owner_key() == new_key
        v.pull("team/model", tmp_path / "laptop-2")
    assert laptop.pinned_owner_key(vault_id.hex()) == owner_commitment(vault_id, new_key)

    def as_backup() -> vault.Vault:
        return vault.open_vault(str(path), identity=lambda: load_identity("backup"), client_state=backup_host)

    with as_backup() as v, pytest.raises(IntegrityError) as info:
        v.unlock(owner=True)  # an x25519 slot anyone could have written: refused, with the way out
    assert info.value.exit_code == 5 and "was rotated by `rekey`" in str(info.value)
    with owner(path, backup_host) as v:
        v.unlock(owner=True)  # once with the passphrase: re-pinned
    with as_backup() as v:
        assert v.keys.owner_key() == new_key

    # A planted x25519 owner slot for the backup identity is still refused.
    planted = slots.write_x25519_slot(
        open_backend(str(path)), vault_id, layout.OWNER_RING, backup.x25519_public, os.urandom(32)
    )
    for item in slots.scan_ring(open_backend(str(path)), vault_id, layout.OWNER_RING):
        if item.kind == "x25519" and item.slot_id != planted:
            (path / "keys" / layout.OWNER_RING / item.slot_id).unlink()
    with as_backup() as v, pytest.raises(IntegrityError, match=planted):
        v.unlock(owner=True)


def test_a_passphrase_client_refuses_an_owner_key_its_keyrings_do_not_authenticate_under(
    tmp_path: Path,
) -> None:
    path, _ = removed_passphrase_vault(tmp_path)
    laptop = ClientState(tmp_path / "laptop")
    with owner(path, laptop) as v:
        v.pull("team/model", tmp_path / "first")
        vault_id = v.vault_id.hex()
        research = v.catalog.keyring_for("research")
    assert research is not None
    laptop.pin_keyring(vault_id, research, "00" * 32)  # a research keyring no owner slot holds
    with owner(path) as v:
        v.rekey("team")
    with owner(path, laptop) as v, pytest.raises(IntegrityError):
        v.unlock(owner=True)


def test_init_pins_and_a_push_after_rekey_in_the_same_process_uses_the_new_epoch(tmp_path: Path) -> None:
    state = ClientState(tmp_path / "client")
    path = tmp_path / "v"
    with vault.init_vault(str(path), passphrase=PASSPHRASE, kdf=CHEAP_KDF, client_state=state) as v:
        assert state.pinned_owner_key(v.config.vault_id) == owner_commitment(v.vault_id, v.keys.owner_key())
        v.push(source(tmp_path, "a", b"a" * 1000), "team/model")
        extra = v.add_passphrase_slot(OLD.encode(), CHEAP_KDF)
        v.remove_slot(extra)
        v.rekey("team")  # rotates the owner key too
        v.push(source(tmp_path, "b", b"b" * 1000), "team/model")
        ring = v.catalog.keyring_for("team")
        assert ring is not None and v.keys.keyring(ring).epoch == 1
        version = v.resolve("team/model@v2")
        blob = v.backend.get(layout.manifest_key(version.id))
    from vault.formats import sealed

    assert sealed.parse_unauthenticated_header(sealed.MANIFEST, blob).epoch == 1
    pins = json.loads((state.root / "key-pins.json").read_text())
    with owner(path, state) as v:  # the rotating client re-pinned: it opens without a refusal
        assert pins["vaults"][v.config.vault_id]["owner"] == owner_commitment(v.vault_id, v.keys.owner_key())
        v.pull("team/model@v2", tmp_path / "out")
