"""``rekey NS``: a new data-key epoch, every slot of the keyring rewritten, no data touched.

A removed recipient who kept its old slot (planted back in storage here, as someone with storage
access could) still reads what was written before the rekey, the documented promise, and nothing
written after it (exit 4).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from keyhelpers import CHEAP_KDF, PASSPHRASE, new_identity, open_as
from typer.testing import CliRunner, Result

import vault
from mlvault_cli.main import app
from vault import layout
from vault.errors import AuthenticationError, UsageError
from vault.formats import chunk as chunk_format
from vault.formats import sealed
from vault.keys import slots


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("MLVAULT_") and not name.startswith(("MLVAULT_TEST_", "MLVAULT_CONFIG_DIR")):
            monkeypatch.delenv(name)


def run(*args: str, owner: bool = True) -> Result:
    env = {"MLVAULT_PASSPHRASE": PASSPHRASE} if owner else {}
    return CliRunner().invoke(app, list(args), env=env, catch_exceptions=False)


def source(tmp_path: Path, name: str, data: bytes) -> Path:
    path = tmp_path / name
    path.mkdir()
    (path / "weights.bin").write_bytes(data)
    return path


def chunk_epochs(v: vault.Vault, ring: str) -> set[int]:
    """The epoch in the header of every chunk record the index points at."""
    epochs = set()
    for pack in v.catalog.all_packs():
        if pack.ring_id != ring:
            continue
        for entry in v.catalog.pack_chunks(pack.id):
            head = v.backend.get_range(layout.pack_key(pack.id), entry.offset, chunk_format.HEADER_SIZE)
            epochs.add(chunk_format.parse_unauthenticated_header(head).epoch)
    return epochs


def manifest_epoch(v: vault.Vault, ref: str) -> int:
    blob = v.backend.get(layout.manifest_key(v.resolve(ref).id))
    return sealed.parse_unauthenticated_header(sealed.MANIFEST, blob).epoch


def test_rekey_adds_an_epoch_and_new_pushes_use_it(tmp_path: Path) -> None:
    path = tmp_path / "v"
    with vault.init_vault(str(path), passphrase=PASSPHRASE, kdf=CHEAP_KDF) as v:
        v.push(source(tmp_path, "a", os.urandom(300_000)), "team/model")
        ring = v.catalog.keyring_for("team")
        assert ring is not None
        before = {s.slot_id for s in v.key_slots() if s.ring == ring}
    result = run("rekey", "team", "-V", str(path))
    assert result.exit_code == 0, result.stderr
    assert "key epoch 1" in result.stdout
    with vault.open_vault(str(path), passphrase=PASSPHRASE) as v:
        after = [s for s in v.key_slots() if s.ring == ring]
        assert [s.kind for s in after] == ["owner"] and not before & {s.slot_id for s in after}
        assert v.keys.keyring(ring).epoch == 1
        assert chunk_epochs(v, ring) == {0}  # no data touched
        v.push(source(tmp_path, "b", os.urandom(300_000)), "team/model")
        assert chunk_epochs(v, ring) == {0, 1}
        assert manifest_epoch(v, "team/model@v1") == 0 and manifest_epoch(v, "team/model@v2") == 1
        v.pull("team/model@v1", tmp_path / "o1")
        v.pull("team/model@v2", tmp_path / "o2")
        events = [(e.action, e.kind) for e in v.catalog.key_events() if e.ring == ring]
        assert events[-3:] == [("add", "owner"), ("remove", "owner"), ("rekey", "owner")]


def test_removed_recipient_reads_what_came_before_but_nothing_after(tmp_path: Path) -> None:
    path = tmp_path / "v"
    alice = new_identity("alice")
    with vault.init_vault(str(path), passphrase=PASSPHRASE, kdf=CHEAP_KDF) as v:
        v.push(source(tmp_path, "a", b"v1 " * 50_000), "team/model")
        slot_id = v.add_recipient(alice, "team")
        v.add_recipient(new_identity("bob"), "team", label="bob")
        ring = v.catalog.keyring_for("team")
        assert ring is not None
        kept = v.backend.get(layout.slot_key(ring, slot_id))  # what alice could keep
        v.remove_slot(slot_id)
    result = run("rekey", "team", "-V", str(path), "--json")
    assert result.exit_code == 0, result.stderr
    with vault.open_vault(str(path), passphrase=PASSPHRASE) as v:
        v.push(source(tmp_path, "b", b"v2 " * 50_000), "team/model")
        recipients = [s for s in v.key_slots() if s.ring == ring and s.kind == "x25519"]
        assert [s.label for s in recipients] == ["bob"]  # carried over under a new id
        v.backend.put(layout.slot_key(ring, slot_id), kept)
    with open_as(path, "bob") as v:  # the carried-over recipient reads both
        v.pull("team/model@v2", tmp_path / "bob2")
    with open_as(path, "alice") as v:
        v.pull("team/model@v1", tmp_path / "alice1")
        assert (tmp_path / "alice1" / "weights.bin").read_bytes() == b"v1 " * 50_000
    pulled = run(
        "pull", "team/model@v2", str(tmp_path / "alice2"), "-V", str(path), "--identity", "alice", owner=False
    )
    assert pulled.exit_code == 4, pulled.stderr
    assert "rekeyed" in pulled.stderr and not (tmp_path / "alice2").exists()


def test_a_recipient_without_a_recorded_public_key_is_named_and_kept_unless_dropped(tmp_path: Path) -> None:
    path = tmp_path / "v"
    with vault.init_vault(str(path), passphrase=PASSPHRASE, kdf=CHEAP_KDF) as v:
        v.push(source(tmp_path, "a", b"x" * 1000), "team/model")
        ring = v.catalog.keyring_for("team")
        assert ring is not None
        keyring = v.keys.keyring(ring)
        public = new_identity("carol").x25519_public
        orphan = slots.write_x25519_slot(v.backend, v.vault_id, ring, public, slots.keyring_secret(keyring))
        with pytest.raises(UsageError, match=orphan):
            v.rekey("team")
        assert v.backend.exists(layout.slot_key(ring, orphan))
    refused = run("rekey", "team", "-V", str(path))
    assert refused.exit_code == 2 and "--drop-unrewrappable" in refused.stderr
    dropped = run("rekey", "team", "-V", str(path), "--drop-unrewrappable")
    assert dropped.exit_code == 0 and orphan in dropped.stdout
    with vault.open_vault(str(path), passphrase=PASSPHRASE) as v:
        assert not v.backend.exists(layout.slot_key(ring, orphan))
        assert [s.kind for s in v.key_slots() if s.ring == ring] == ["owner"]


def test_an_interrupted_rekey_continues_from_the_newest_keyring(tmp_path: Path) -> None:
    """Killed after the new owner slot was written: two owner slots; the next rekey builds on the newer."""
    from vault.keys import rekey as rekey_module
    from vault.keystore import write_owner_slot

    path = tmp_path / "v"
    with vault.init_vault(str(path), passphrase=PASSPHRASE, kdf=CHEAP_KDF) as v:
        v.push(source(tmp_path, "a", b"x" * 1000), "team/model")
        ring = v.catalog.keyring_for("team")
        assert ring is not None
        newer = rekey_module.with_new_epoch(v.keys.keyring(ring))
        write_owner_slot(v.backend, v.vault_id, v.keys.owner_key(), newer)  # ... and killed here
        result = v.rekey("team")
        assert result.rekey.epoch == 2
        assert rekey_module.current_keyring(v.keys, v.backend, ring).deks[:2] == newer.deks


def test_rekey_needs_the_owner_and_a_namespace_with_a_keyring(tmp_path: Path) -> None:
    path = tmp_path / "v"
    with vault.init_vault(str(path), passphrase=PASSPHRASE, kdf=CHEAP_KDF) as v:
        v.push(source(tmp_path, "a", b"x"), "team/model")
        v.add_recipient(new_identity("dave"), "team")
    missing = run("rekey", "nothing", "-V", str(path))
    assert missing.exit_code == 3 and "no keyring" in missing.stderr
    assert run("rekey", "team/model", "-V", str(path)).exit_code == 2
    with open_as(path, "dave") as v, pytest.raises(AuthenticationError):
        v.rekey("team")


def test_rekey_rotates_the_owner_key_after_an_owner_slot_was_removed(tmp_path: Path) -> None:
    path = tmp_path / "v"
    with vault.init_vault(str(path), passphrase=PASSPHRASE, kdf=CHEAP_KDF) as v:
        v.push(source(tmp_path, "a", b"x"), "team/model")
        extra = v.add_passphrase_slot(b"another passphrase", CHEAP_KDF)
        assert v.rekey("team").rekey.owner_rotation is None
        v.remove_slot(extra)
        old_key = v.keys.owner_key()
    result = run("rekey", "team", "-V", str(path), "--json")
    assert result.exit_code == 0, result.stderr
    rotation = json.loads(result.stdout)["rekey"]["owner_rotation"]
    assert rotation["keyrings"] == 1 and len(rotation["written"]) == 1
    with vault.open_vault(str(path), passphrase=PASSPHRASE) as v:
        assert v.keys.owner_key() != old_key
        v.pull("team/model", tmp_path / "out")


def test_a_push_right_after_a_rekey_in_the_same_process_uses_the_new_epoch(tmp_path: Path) -> None:
    path = tmp_path / "v"
    with vault.init_vault(str(path), passphrase=PASSPHRASE, kdf=CHEAP_KDF) as v:
        v.push(source(tmp_path, "a", os.urandom(300_000)), "team/model")  # caches epoch 0
        v.rekey("team")
        v.push(source(tmp_path, "b", os.urandom(300_000)), "team/model")
        assert manifest_epoch(v, "team/model@v2") == 1
        ring = v.catalog.keyring_for("team")
        assert ring is not None and chunk_epochs(v, ring) == {0, 1}
