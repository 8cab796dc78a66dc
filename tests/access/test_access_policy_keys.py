"""Read grants as key slots: a read grant on NS/* wraps keyring NS to the principal's identity;
revoke, deny and principal rm remove the slot, rekey, and report what was readable already."""

from __future__ import annotations

from pathlib import Path

import pytest

import vault
from vault.access.patterns import Capability, parse_capabilities
from vault.access.service import AccessControl
from vault.clientstate import ClientState
from vault.crypto.kdf import KdfParams
from vault.errors import AuthenticationError, PermissionDeniedError
from vault.repository.pull import pull_version
from vault.signing import keys
from vault.signing.signers import LocalSigner

CHEAP_KDF = KdfParams(time_cost=1, memory_kib=8, parallelism=1)
PASSPHRASE = "correct horse battery staple"
READ = frozenset({Capability.READ})


@pytest.fixture
def vault_path(tmp_path: Path) -> Path:
    path = tmp_path / "v"
    src = tmp_path / "src"
    src.mkdir()
    (src / "f").write_bytes(b"model bytes")
    with vault.init_vault(str(path), passphrase=PASSPHRASE, kdf=CHEAP_KDF) as v:
        v.push(src, "team/model")
        v.push(src, "team/model")
        v.push(src, "research/model")
    return path


@pytest.fixture
def owner(vault_path: Path) -> vault.Vault:
    v = vault.open_vault(str(vault_path), passphrase=PASSPHRASE)
    yield v  # type: ignore[misc]
    v.close()


@pytest.fixture
def admin() -> LocalSigner:
    return LocalSigner(keys.generate_private_key())


@pytest.fixture
def ac(owner: vault.Vault, admin: LocalSigner) -> AccessControl:
    control = owner.access(ClientState.default())
    for name in ("alice", "bob"):
        public = ClientState.default().identities().create(name, None, CHEAP_KDF)
        control.add_principal(name, public, admin)
    return control


def slots_of(v: vault.Vault, name: str) -> list[str | None]:
    fp = ClientState.default().identities().public(name).fingerprint
    return sorted(s.namespace for s in v.key_slots() if s.kind == "x25519" and s.recipient == fp)


def open_as(path: Path, name: str) -> vault.Vault:
    return vault.open_vault(str(path), identity=lambda: ClientState.default().identities().load(name, None))


def pull_by_keys_alone(v: vault.Vault, ref: str, dest: Path) -> None:
    """A pull that skips the capability gate (which refuses first, exit 15): only keys stop it."""
    pull_version(v.resolve(ref), dest, v.repository)


def test_read_grant_adds_a_slot_and_revoke_removes_it_and_rekeys(
    ac: AccessControl, owner: vault.Vault, admin: LocalSigner, vault_path: Path, tmp_path: Path
) -> None:
    state = ac.grant("alice", "team/*", READ, admin)
    (change,) = state.key_changes
    assert change.namespace == "team" and change.added_slot is not None
    assert slots_of(owner, "alice") == ["team"]
    with open_as(vault_path, "alice") as as_alice:
        as_alice.pull("team/model@v1", tmp_path / "out1")
        with pytest.raises(PermissionDeniedError):
            as_alice.pull("research/model@v1", tmp_path / "out2")
        with pytest.raises(AuthenticationError):
            pull_by_keys_alone(as_alice, "research/model@v1", tmp_path / "out2")
    (view,) = ac.grants("alice")
    assert view.enforced_by == "keys" and "slot on keyring team" in view.note

    state = ac.grant("alice", "team/*", READ, admin)  # again: a union, no second slot
    assert state.key_changes == () and slots_of(owner, "alice") == ["team"]

    state = ac.revoke("alice", "team/*", READ, admin)
    (change,) = state.key_changes
    assert change.removed_slots and change.epoch == 1
    assert change.readable_before == ("team/model@v1", "team/model@v2")
    assert slots_of(owner, "alice") == []
    with open_as(vault_path, "alice") as as_alice:
        with pytest.raises(PermissionDeniedError):
            as_alice.pull("team/model@v1", tmp_path / "out3")
        with pytest.raises(AuthenticationError):
            pull_by_keys_alone(as_alice, "team/model@v1", tmp_path / "out3")


def test_push_only_and_finer_globs_add_no_slot(
    ac: AccessControl, owner: vault.Vault, admin: LocalSigner
) -> None:
    assert ac.grant("alice", "team/*", parse_capabilities("push"), admin).key_changes == ()
    assert ac.grant("bob", "team/vision/+", READ, admin).key_changes == ()
    assert slots_of(owner, "alice") == [] and slots_of(owner, "bob") == []
    views = {v.principal: v for v in ac.grants()}
    assert views["alice"].enforced_by == "policy" and "write implies read" in views["alice"].note
    assert views["bob"].enforced_by == "policy" and "only policy enforces read" in views["bob"].note


def test_admin_on_a_namespace_is_a_keyring_read(
    ac: AccessControl, owner: vault.Vault, admin: LocalSigner
) -> None:
    ac.grant("alice", "research/*", frozenset({Capability.ADMIN}), admin)
    assert slots_of(owner, "alice") == ["research"]


def test_deny_and_principal_rm_remove_slots(
    ac: AccessControl, owner: vault.Vault, admin: LocalSigner
) -> None:
    ac.grant("alice", "team/*", READ, admin)
    ac.grant("alice", "research/*", READ, admin)
    ac.grant("bob", "team/*", READ, admin)
    assert slots_of(owner, "alice") == ["research", "team"]
    (change,) = ac.deny("bob", "team/*", admin).key_changes
    assert change.principal == "bob" and change.removed_slots
    assert slots_of(owner, "bob") == []
    state = ac.remove_principal("alice", admin)
    assert sorted(c.namespace for c in state.key_changes) == ["research", "team"]
    assert slots_of(owner, "alice") == []


def test_a_deny_on_a_finer_glob_keeps_the_slot(
    ac: AccessControl, owner: vault.Vault, admin: LocalSigner
) -> None:
    ac.grant("alice", "team/*", READ, admin)
    assert ac.deny("alice", "team/secret/*", admin).key_changes == ()
    assert slots_of(owner, "alice") == ["team"]
    views = {(v.pattern, v.deny): v for v in ac.grants("alice")}
    assert views[("team/secret/*", True)].enforced_by == "policy"
