"""The vault's owner identity: made by ``init``, pinned as root admin of the trust and access policies,
loaded by whoever opens the owner key (passphrase or recovery identity), pinned from storage by
another client instead of trusting the catalog's policy on first use, made on first need for vaults
older than it (never by a read-only unlock), and carried over by an owner-key rotation — also when
the rotation is killed after any step and re-run. Real local vaults, cheap KDF, no mocks."""

from __future__ import annotations

from pathlib import Path

import pytest

import vault
from vault import layout
from vault.access.service import access_pins
from vault.clientstate import ClientState
from vault.crypto.kdf import KdfParams
from vault.errors import IntegrityError, NotFoundError, UntrustedSignerError
from vault.keys import owner_identity
from vault.keys.rekey import rekey_namespace
from vault.signing.keys import generate_private_key
from vault.signing.policy import TrustPolicy, sign_policy
from vault.signing.signers import LocalSigner
from vault.storage import open_backend

CHEAP_KDF = KdfParams(time_cost=1, memory_kib=8, parallelism=1)
PASSPHRASE = "correct horse battery staple"
REMOVED = "a passphrase that gets removed"


class Killed(Exception):
    """Raised by the step callback: the process dies here."""


def make(tmp_path: Path, name: str = "v", state: ClientState | None = None) -> Path:
    path = tmp_path / name
    src = tmp_path / f"{name}-src"
    src.mkdir()
    (src / "w.bin").write_bytes(b"weights " * 1000)
    with vault.init_vault(str(path), passphrase=PASSPHRASE, kdf=CHEAP_KDF, client_state=state) as v:
        v.push(src, "team/model")
    return path


def owner(path: Path, state: ClientState | None = None) -> vault.Vault:
    return vault.open_vault(str(path), passphrase=PASSPHRASE, client_state=state)


def fingerprint(v: vault.Vault) -> str:
    return owner_identity.owner_identity(v.keys, v.backend, create_missing=False).public.signing_fingerprint


def identity_objects(path: Path) -> list[str]:
    return sorted(open_backend(str(path)).list(layout.OWNER_IDENTITY_PREFIX))


def test_init_makes_it_and_pins_it_as_root_admin_of_both_policies(tmp_path: Path) -> None:
    state = ClientState(tmp_path / "client")
    path = make(tmp_path, state=state)
    with owner(path, state) as v:
        fp = fingerprint(v)
        vid = v.config.vault_id
    assert state.trust_pins.admins(vid) == (fp,)
    assert access_pins(state).admins(vid) == (fp,)
    assert len(identity_objects(path)) == 1


def test_another_client_pins_it_from_storage_not_from_the_catalog(tmp_path: Path) -> None:
    path = make(tmp_path)
    with owner(path) as v:  # a catalog writer stores a trust policy signed by its own key
        rogue = LocalSigner(generate_private_key())
        v.signature_store.store_policy(
            1, sign_policy(TrustPolicy((), 1, v.config.vault_id), rogue), "mallory"
        )
        fp = fingerprint(v)
    fresh = ClientState(tmp_path / "fresh")
    with owner(path, fresh) as v:
        v.keys.owner_key()  # opening the owner key pins the sealed owner identity
        assert fresh.trust_pins.admins(v.config.vault_id) == (fp,)
        assert access_pins(fresh).admins(v.config.vault_id) == (fp,)
        from vault import attestation

        with pytest.raises(UntrustedSignerError, match="unpinned key"):
            attestation.for_vault(v, fresh.trust_pins).trust_show()
    tofu = ClientState(tmp_path / "tofu")  # a client that never opens the owner key still trusts on first use
    with vault.open_vault(str(path), client_state=tofu) as v:
        from vault import attestation

        view = attestation.for_vault(v, tofu.trust_pins).trust_show()
        assert view is not None and view.admin_fingerprint == rogue.fingerprint()


def test_the_recovery_identity_opens_it_too(tmp_path: Path) -> None:
    path = make(tmp_path)
    public = ClientState.default().identities().create("backup", None, CHEAP_KDF)
    with owner(path) as v:
        v.add_recovery(public)
        fp = fingerprint(v)
    with vault.open_vault(
        str(path), identity=lambda: ClientState.default().identities().load("backup", None)
    ) as v:
        assert fingerprint(v) == fp
        assert owner_identity.owner_signer(v.keys, v.backend).fingerprint() == fp


def test_an_older_vault_gets_one_on_first_need_never_on_a_read_only_unlock(tmp_path: Path) -> None:
    path = make(tmp_path)
    backend = open_backend(str(path))
    for key in identity_objects(path):
        backend.delete(key)  # as made before owner identities
    state = ClientState(tmp_path / "client")
    with owner(path, state) as v:
        v.keys.owner_key()
        v.pull("team/model", tmp_path / "out")
        assert identity_objects(path) == []
        assert state.trust_pins.admins(v.config.vault_id) == ()  # nothing to pin yet
        with pytest.raises(NotFoundError, match="no owner identity"):
            owner_identity.owner_identity(v.keys, v.backend, create_missing=False)
        made = owner_identity.owner_identity(v.keys, v.backend)
    assert len(identity_objects(path)) == 1
    with owner(path) as v:
        assert fingerprint(v) == made.public.signing_fingerprint


def test_a_damaged_object_is_reported_and_does_not_block_unlock(tmp_path: Path) -> None:
    path = make(tmp_path)
    backend = open_backend(str(path))
    (key,) = identity_objects(path)
    data = bytearray(backend.get(key))
    data[-1] ^= 1
    backend.delete(key)
    backend.put(key, bytes(data))
    with owner(path, ClientState(tmp_path / "client")) as v:
        v.pull("team/model", tmp_path / "out")  # unlock pins nothing but goes on
        with pytest.raises(IntegrityError, match="does not open under the owner key"):
            owner_identity.owner_identity(v.keys, v.backend)


def removed_passphrase(path: Path) -> None:
    with owner(path) as v:
        v.remove_slot(v.add_passphrase_slot(REMOVED.encode(), CHEAP_KDF))


def test_rotation_reseals_the_same_identity_under_the_new_owner_key(tmp_path: Path) -> None:
    state = ClientState(tmp_path / "client")
    path = make(tmp_path, state=state)
    removed_passphrase(path)
    with owner(path, state) as v:
        fp, old_key = fingerprint(v), v.keys.owner_key()
        old_object = identity_objects(path)
        report = v.rekey("team")
        assert report.rekey.owner_rotation is not None
    with owner(path, state) as v:
        assert v.keys.owner_key() != old_key
        assert fingerprint(v) == fp
        assert identity_objects(path) == [owner_identity.storage_key(v.vault_id, v.keys.owner_key())]
    assert identity_objects(path) != old_object


def test_rotation_killed_after_every_step_keeps_the_identity(tmp_path: Path) -> None:
    for n in range(100):
        state = ClientState(tmp_path / f"client{n}")
        path = make(tmp_path, f"v{n}", state)
        removed_passphrase(path)
        steps: list[str] = []
        with owner(path, state) as v:
            fp = fingerprint(v)

            def step(name: str, kill_at: int = n + 1, steps: list[str] = steps) -> None:
                steps.append(name)
                if len(steps) == kill_at:
                    raise Killed(name)

            try:
                rekey_namespace(v.keys, v.backend, v.catalog, "team", step=step)
            except Killed:
                pass
            else:
                break
        with owner(path, state) as v:  # the re-run
            v.rekey("team")
            assert fingerprint(v) == fp, steps[n]
            assert identity_objects(path) == [owner_identity.storage_key(v.vault_id, v.keys.owner_key())]
    else:
        pytest.fail("the rotation never finished")
    assert "owner identity resealed" in steps and "owner identity swept" in steps, steps
