"""Key pins: a key slot planted in storage cannot swap in an owner key or keyring of its own.

Anyone who can write to storage knows a user's X25519 public key, so they can write an x25519
slot (or an aws-kms slot under a KMS key the user may decrypt with) that opens for that user and
wraps a key of their choosing. A client that has opened the vault before pinned commitments to
the owner key and each keyring (``key-pins.json``), so such a slot is refused (exit 5, naming it)
and skipped: the genuine slot behind it still opens. Real local vaults, cheap KDF, moto's KMS.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
from keyhelpers import CHEAP_KDF, PASSPHRASE, load_identity, new_identity
from typer.testing import CliRunner

import vault
from mlvault_cli.main import app
from vault import layout
from vault.clientstate import ClientState
from vault.clientstate.identities import PublicIdentity
from vault.crypto.keyring import Keyring
from vault.errors import IntegrityError
from vault.formats import keyslot
from vault.keycache import KeyCache, Unlock, keyring_commitment, owner_commitment
from vault.keys import slots
from vault.keys.kms import AwsKms, KmsOptions, write_kms_slot
from vault.keys.rekey import retired
from vault.storage import open_backend

# Slot ids are random, so a planted slot with this id is listed (and so tried) before any genuine one.
FIRST = bytes(15) + b"\x01"
PLANTED = FIRST.hex()
REFUSED = "that is not the one this client pinned for this vault (a planted key slot?)"


@pytest.fixture
def vault_path(tmp_path: Path) -> Path:
    """A vault with one version in ``team``."""
    path = tmp_path / "v"
    src = tmp_path / "src"
    src.mkdir()
    (src / "weights.bin").write_bytes(b"team weights " * 1000)
    with vault.init_vault(str(path), passphrase=PASSPHRASE, kdf=CHEAP_KDF) as v:
        v.push(src, "team/model")
    return path


@pytest.fixture
def alice(vault_path: Path) -> PublicIdentity:
    """An identity with a genuine x25519 slot on ``team``."""
    public = new_identity("alice")
    with admin(vault_path) as v:
        v.add_recipient(public, "team")
    return public


def admin(path: Path) -> vault.Vault:
    return vault.open_vault(str(path), passphrase=PASSPHRASE)


def as_identity(path: Path, name: str, state: ClientState, **options: Any) -> vault.Vault:
    return vault.open_vault(str(path), identity=lambda: load_identity(name), client_state=state, **options)


def genuine_keys(path: Path) -> tuple[bytes, str, bytes, Keyring]:
    """vault id, team's ring id, owner key and team's keyring, opened by the passphrase."""
    with admin(path) as v:
        ring = v.catalog.keyring_for("team")
        assert ring is not None
        return v.vault_id, ring, v.keys.owner_key(), v.keys.keyring(ring)


def plant(path: Path, vault_id: bytes, ring: str, recipient: PublicIdentity, secret: bytes) -> str:
    """What a storage writer can do: an x25519 slot for ``recipient``, listed first, wrapping ``secret``."""
    blob = keyslot.encode_x25519(vault_id, slots.ring_bytes(ring), FIRST, recipient.x25519_public, secret)
    open_backend(str(path)).put(layout.slot_key(ring, FIRST), blob)
    return PLANTED


def delete_recipient_slots(path: Path, ring: str) -> None:
    """Delete every x25519 slot of ``ring`` but the planted one."""
    for slot in (path / "keys" / ring).iterdir():
        if slot.name != PLANTED and keyslot.decode(slot.read_bytes()).kind == keyslot.KIND_X25519:
            slot.unlink()


def pins_of(state: ClientState) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads((state.root / "key-pins.json").read_text())
    return doc


def test_first_use_pins_commitments(vault_path: Path, alice: PublicIdentity, tmp_path: Path) -> None:
    vault_id, ring, owner_key, keyring = genuine_keys(vault_path)
    state = ClientState(tmp_path / "alice-client")
    with as_identity(vault_path, "alice", state) as v:
        v.pull("team/model", tmp_path / "out")
    assert pins_of(state) == {
        "format": 1,
        "vaults": {vault_id.hex(): {"rings": {ring: keyring_commitment(vault_id, keyring)}}},
    }
    backup = new_identity("backup")
    with admin(vault_path) as v:
        v.add_recovery(backup)
    with as_identity(vault_path, "backup", state) as v:
        v.unlock(owner=True)
    entry = pins_of(state)["vaults"][vault_id.hex()]
    assert entry["owner"] == owner_commitment(vault_id, owner_key)
    # Domain-separated hashes of the secrets, never the secrets themselves.
    assert owner_key.hex() not in json.dumps(entry) and keyring.id_key.hex() not in json.dumps(entry)
    assert owner_commitment(vault_id, owner_key) != owner_commitment(bytes(16), owner_key)


def test_planted_keyring_slot_is_refused_and_the_genuine_one_opens(
    vault_path: Path, alice: PublicIdentity, tmp_path: Path
) -> None:
    vault_id, ring, _, genuine = genuine_keys(vault_path)
    state = ClientState(tmp_path / "alice-client")
    with as_identity(vault_path, "alice", state) as v:
        v.pull("team/model", tmp_path / "first")
    attacker = Keyring.generate(bytes.fromhex(ring))  # same ring id, secrets the attacker knows
    plant(vault_path, vault_id, ring, alice, slots.keyring_secret(attacker))

    with as_identity(vault_path, "alice", state) as v:
        assert v.keys.keyring(ring) == genuine  # the planted slot, listed first, was skipped
        src = tmp_path / "new"
        src.mkdir()
        (src / "f").write_bytes(b"pushed after the plant")
        v.push(src, "team/after")  # new pushes go under the genuine keyring
    with admin(vault_path) as v:
        v.pull("team/after", tmp_path / "after")
    assert (tmp_path / "after" / "f").read_bytes() == b"pushed after the plant"

    delete_recipient_slots(vault_path, ring)  # the attacker also deletes alice's genuine slot
    with as_identity(vault_path, "alice", state) as v, pytest.raises(IntegrityError) as info:
        v.pull("team/model", tmp_path / "refused")
    assert info.value.exit_code == 5
    assert str(info.value) == f"key slot {PLANTED} holds a keyring for namespace team {REFUSED}"
    assert not (tmp_path / "refused").exists()


def test_planted_owner_slot_is_refused(vault_path: Path, tmp_path: Path) -> None:
    vault_id, _, owner_key, _ = genuine_keys(vault_path)
    backup = new_identity("backup")
    with admin(vault_path) as v:
        recovery = v.add_recovery(backup)
    state = ClientState(tmp_path / "backup-client")
    with as_identity(vault_path, "backup", state) as v:
        v.unlock(owner=True)
    plant(vault_path, vault_id, layout.OWNER_RING, backup, os.urandom(32))

    with as_identity(vault_path, "backup", state) as v:
        assert v.keys.owner_key() == owner_key
        v.pull("team/model", tmp_path / "out")
    (vault_path / "keys" / layout.OWNER_RING / recovery).unlink()
    with as_identity(vault_path, "backup", state) as v, pytest.raises(IntegrityError) as info:
        v.unlock(owner=True)
    assert info.value.exit_code == 5
    assert str(info.value) == f"key slot {PLANTED} holds an owner key {REFUSED}"


def test_first_use_with_the_passphrase_pins_the_owner_slots_keyring(
    vault_path: Path, alice: PublicIdentity, tmp_path: Path
) -> None:
    vault_id, ring, _, genuine = genuine_keys(vault_path)
    plant(vault_path, vault_id, ring, alice, slots.keyring_secret(Keyring.generate(bytes.fromhex(ring))))
    state = ClientState(tmp_path / "alice-client")
    # Planted before this client's first use: with the owner key at hand, the owner slot decides.
    with as_identity(vault_path, "alice", state, passphrase=PASSPHRASE) as v:
        assert v.keys.keyring(ring) == genuine
    assert pins_of(state)["vaults"][vault_id.hex()]["rings"] == {ring: keyring_commitment(vault_id, genuine)}
    with as_identity(vault_path, "alice", state) as v:
        v.pull("team/model", tmp_path / "out")
        assert v.keys.keyring(ring) == genuine
        assert not v.keys.unlocked  # alice's own slot opened it, after the planted one was refused


def test_pins_survive_a_new_key_cache(vault_path: Path, alice: PublicIdentity, tmp_path: Path) -> None:
    vault_id, ring, _, genuine = genuine_keys(vault_path)
    root = tmp_path / "alice-client"
    backend = open_backend(str(vault_path))

    def cache() -> KeyCache:
        unlock = Unlock(identity=lambda: load_identity("alice"))
        return KeyCache(backend, vault_id, unlock, key_pins=ClientState(root))

    assert cache().keyring(ring) == genuine
    plant(vault_path, vault_id, ring, alice, slots.keyring_secret(Keyring.generate(bytes.fromhex(ring))))
    assert cache().keyring(ring) == genuine
    unpinned = KeyCache(backend, vault_id, Unlock(identity=lambda: load_identity("alice")))
    assert unpinned.keyring(ring) != genuine  # what a client without pins would have used


def test_a_rekey_keeps_the_pin(vault_path: Path, alice: PublicIdentity, tmp_path: Path) -> None:
    vault_id, ring, _, genuine = genuine_keys(vault_path)
    state = ClientState(tmp_path / "alice-client")
    with as_identity(vault_path, "alice", state) as v:
        v.keys.keyring(ring)
    with admin(vault_path) as v:
        v.rekey("team")  # every slot of the keyring rewritten with one more epoch
    with as_identity(vault_path, "alice", state) as v:
        rotated = v.keys.keyring(ring)
        assert (rotated.epoch, rotated.id_key, rotated.deks[0]) == (1, genuine.id_key, genuine.deks[0])
        v.pull("team/model", tmp_path / "out")
    # --reencrypt retires the old DEKs, epoch 0's too: the commitment does not depend on them.
    assert keyring_commitment(vault_id, retired(rotated)) == keyring_commitment(vault_id, genuine)


def test_planted_kms_slot_is_refused(
    vault_path: Path, kms_admin: Any, moto_endpoint: str, tmp_path: Path
) -> None:
    vault_id, _, owner_key, _ = genuine_keys(vault_path)
    kms = AwsKms(KmsOptions(region="us-east-1", endpoint_url=moto_endpoint))
    state = ClientState(tmp_path / "client")
    with vault.open_vault(str(vault_path), passphrase=PASSPHRASE, client_state=state) as v:
        v.unlock()  # first use: the passphrase pins the owner key
    # A KMS key the attacker controls, whose policy lets the victim decrypt.
    key_arn = kms_admin.create_key(KeySpec="SYMMETRIC_DEFAULT")["KeyMetadata"]["Arn"]
    planted, _ = write_kms_slot(open_backend(str(vault_path)), vault_id, os.urandom(32), kms, key_arn)

    with (
        vault.open_vault(str(vault_path), kms=kms, client_state=state) as v,
        pytest.raises(IntegrityError) as info,
    ):
        v.unlock()  # KMS is tried automatically: no other source given
    assert info.value.exit_code == 5
    assert str(info.value) == f"key slot {planted} holds an owner key {REFUSED}"
    with vault.open_vault(
        str(vault_path), passphrase=PASSPHRASE, kms=kms, use_kms=True, client_state=state
    ) as v:
        assert v.keys.owner_key() == owner_key  # KMS refused, the passphrase still opens


def test_cli_refusal_is_one_line_exit_5(
    vault_path: Path, alice: PublicIdentity, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in list(os.environ):
        if name.startswith("MLVAULT_") and not name.startswith(("MLVAULT_TEST_", "MLVAULT_CONFIG_DIR")):
            monkeypatch.delenv(name)
    vault_id, ring, _, _ = genuine_keys(vault_path)

    def pull(dest: str) -> Any:
        args = ["--identity", "alice", "pull", "team/model", str(tmp_path / dest), "-V", str(vault_path)]
        return CliRunner().invoke(app, args, catch_exceptions=False)

    assert pull("first").exit_code == 0  # pins in the default client config dir
    plant(vault_path, vault_id, ring, alice, slots.keyring_secret(Keyring.generate(bytes.fromhex(ring))))
    delete_recipient_slots(vault_path, ring)
    result = pull("second")
    assert result.exit_code == 5, result.stderr
    assert result.stderr.strip() == f"error: key slot {PLANTED} holds a keyring for namespace team {REFUSED}"
    assert not (tmp_path / "second").exists()
