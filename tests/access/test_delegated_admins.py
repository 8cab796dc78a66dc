"""Delegated admins: a principal holding admin on '*' signs later access-policy serials, and clients
pinned only to the root admin key accept them by walking back to a root-signed document or to the
document they accepted last (SQLite and PostgreSQL)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

import vault
from vault.access.delegation import accept_chain, document_digest
from vault.access.patterns import Capability, parse_capabilities
from vault.access.policy import sign_access_policy
from vault.access.service import AccessControl, access_pins
from vault.catalog.access import AccessPolicyRow
from vault.clientstate import ClientState
from vault.crypto.kdf import KdfParams
from vault.errors import (
    IntegrityError,
    MalformedSignatureError,
    PermissionDeniedError,
    UntrustedSignerError,
    UsageError,
)
from vault.signing import keys
from vault.signing.signers import LocalSigner

CHEAP_KDF = KdfParams(time_cost=1, memory_kib=8, parallelism=1)
PASSPHRASE = "correct horse battery staple"
ADMIN = frozenset({Capability.ADMIN})
PUSH = parse_capabilities("push")
TODAY = dt.datetime(2026, 11, 1, tzinfo=dt.UTC)


@pytest.fixture
def v(make_vault: Callable[..., vault.Vault], catalog_url: str | None) -> vault.Vault:
    return make_vault(catalog_url=catalog_url)


@pytest.fixture
def root() -> LocalSigner:
    return LocalSigner(keys.generate_private_key())


def person(name: str) -> tuple[vault.clientstate.identities.PublicIdentity, LocalSigner]:
    ids = ClientState.default().identities()
    public = ids.create(name, None, CHEAP_KDF)
    return public, LocalSigner(ids.load(name, None).ecdsa_private)


def control(v: vault.Vault, state: ClientState, clock: dt.datetime = TODAY) -> AccessControl:
    return v.access(state, clock=lambda: clock)


def pinned_to(tmp_path: Path, name: str, v: vault.Vault, root: LocalSigner) -> ClientState:
    """Another client that pinned only the root admin key."""
    state = ClientState(tmp_path / name)
    access_pins(state).pin(v.config.vault_id, root.fingerprint())
    return state


def delegated(
    v: vault.Vault, root: LocalSigner, *, expires: dt.date | None = None
) -> tuple[AccessControl, LocalSigner, LocalSigner]:
    """Root adds alice (admin on '*') and bob (no admin): serials 1–3, all root-signed."""
    ac = control(v, ClientState.default())
    alice, alice_key = person("alice")
    bob, bob_key = person("bob")
    ac.add_principal("alice", alice, root, expires=expires)
    ac.grant("alice", "*", ADMIN, root)
    ac.add_principal("bob", bob, root)
    return ac, alice_key, bob_key


def sql(v: vault.Vault, statement: str, **params: object) -> None:
    engine = create_engine(v.catalog.engine.url)
    try:
        with engine.begin() as conn:
            conn.execute(text(statement), params)
    finally:
        engine.dispose()


def test_a_delegated_admin_grants_and_another_client_accepts(
    v: vault.Vault, root: LocalSigner, tmp_path: Path
) -> None:
    ac, alice_key, _ = delegated(v, root)
    state = ac.grant("bob", "team/vision/+", PUSH, alice_key)
    assert state.policy is not None and state.policy.serial == 4 and state.signer == alice_key.fingerprint()
    assert state.pinned_now is None and access_pins(ClientState.default()).admins(v.config.vault_id) == (
        root.fingerprint(),
    )  # a delegated admin is never pinned as a root key
    other = control(v, pinned_to(tmp_path, "other", v, root))
    seen = other.current()
    assert seen.policy is not None and seen.policy.serial == 4 and seen.signer == alice_key.fingerprint()
    assert other.explain("bob", "push", "team/vision/resnet").allowed


def test_a_chain_of_delegated_changes_reaches_a_fresh_client(
    v: vault.Vault, root: LocalSigner, tmp_path: Path
) -> None:
    ac, alice_key, bob_key = delegated(v, root)
    ac.grant("bob", "*", ADMIN, alice_key)  # 4: alice (admin at 3) makes bob admin
    ac.grant("bob", "team/vision/+", PUSH, bob_key)  # 5: bob (admin at 4)
    ac.revoke("alice", "*", ADMIN, bob_key)  # 6: bob takes alice's admin away
    fresh = pinned_to(tmp_path, "fresh", v, root)
    seen = control(v, fresh).current()
    assert seen.policy is not None and seen.policy.serial == 6 and seen.signer == bob_key.fingerprint()
    assert seen.policy.admins() == {seen.policy.named("bob").id}
    row = v.catalog.latest_access_policy()
    assert row is not None
    assert access_pins(fresh).policy_serial(v.config.vault_id) == 6
    assert access_pins(fresh).policy_digest(v.config.vault_id) == document_digest(row.document)


def test_a_revoked_admin_can_no_longer_sign(v: vault.Vault, root: LocalSigner, tmp_path: Path) -> None:
    ac, alice_key, _ = delegated(v, root)
    ac.grant("bob", "*", ADMIN, root)  # 4 (the last admin on '*' is never removed)
    state = ac.revoke("alice", "*", ADMIN, root)  # 5
    with pytest.raises(PermissionDeniedError, match="not a pinned admin key"):
        ac.grant("bob", "team/+", PUSH, alice_key)
    assert state.policy is not None  # alice signs anyway and writes the catalog herself
    forged = state.policy.granted("alice", "*", ADMIN)
    v.catalog.store_access_policy(
        forged.serial,
        sign_access_policy(forged, alice_key),
        principals=[],
        grants=[],
        created_by="x",
        at=TODAY,
    )
    for client in (ClientState.default(), pinned_to(tmp_path, "other", v, root)):
        with pytest.raises(
            UntrustedSignerError,
            match=r"serial 6 is signed by key .*alice did not hold admin on '\*' at serial 5",
        ):
            control(v, client).current()


def test_an_expired_admin_can_no_longer_sign(v: vault.Vault, root: LocalSigner, tmp_path: Path) -> None:
    ac, alice_key, _ = delegated(v, root, expires=dt.date(2026, 12, 31))
    ac.grant("bob", "team/+", PUSH, alice_key)  # 4, before alice expires
    later = control(v, ClientState.default(), dt.datetime(2027, 1, 2, tzinfo=dt.UTC))
    with pytest.raises(PermissionDeniedError, match="not a pinned admin key"):
        later.grant("bob", "team/x/+", PUSH, alice_key)
    with pytest.raises(UntrustedSignerError, match="alice expired on 2026-12-31"):  # a fresh client, later
        control(v, pinned_to(tmp_path, "late", v, root), dt.datetime(2027, 1, 2, tzinfo=dt.UTC)).current()


def test_a_serial_forged_by_a_non_admin_principal_is_refused(
    v: vault.Vault, root: LocalSigner, tmp_path: Path
) -> None:
    ac, _, bob_key = delegated(v, root)
    current = ac.current().policy
    assert current is not None
    forged = current.granted("bob", "*", ADMIN)
    sql(
        v,
        "INSERT INTO access_policies (serial, document, created_by, created_at) VALUES (:s, :d, 'bob', :t)",
        s=forged.serial,
        d=sign_access_policy(forged, bob_key),
        t=TODAY,
    )
    for client in (ClientState.default(), pinned_to(tmp_path, "other", v, root)):
        with pytest.raises(
            UntrustedSignerError, match=f"serial 4 is signed by key {bob_key.fingerprint()[:16]}"
        ):
            control(v, client).current()


def test_a_service_principal_holding_admin_never_signs_a_policy(
    v: vault.Vault, root: LocalSigner, tmp_path: Path
) -> None:
    """A backup job holds admin on '*' for its commands, but its key file has no passphrase: whoever
    copies it must not be able to sign a policy that others accept."""
    ac, _, _ = delegated(v, root)
    job, job_key = person("backup-job")
    ac.add_principal("backup-job", job, root, kind="service")
    state = ac.grant("backup-job", "*", ADMIN, root)  # 5
    with pytest.raises(PermissionDeniedError, match="service principals never sign policies"):
        ac.grant("backup-job", "team/+", PUSH, job_key)
    assert state.policy is not None  # the job's key signs anyway and writes the catalog itself
    forged = state.policy.granted("bob", "*", ADMIN)
    v.catalog.store_access_policy(
        forged.serial, sign_access_policy(forged, job_key), principals=[], grants=[], created_by="x", at=TODAY
    )
    for client in (ClientState.default(), pinned_to(tmp_path, "other", v, root)):
        with pytest.raises(UntrustedSignerError, match="backup-job is a service principal"):
            control(v, client).current()


def test_a_gap_in_serials_is_refused(v: vault.Vault, root: LocalSigner, tmp_path: Path) -> None:
    ac, alice_key, _ = delegated(v, root)
    ac.grant("bob", "team/+", PUSH, alice_key)  # 4
    sql(v, "DELETE FROM access_policies WHERE serial = 3")
    with pytest.raises(IntegrityError, match="serial 3 is missing"):
        control(v, pinned_to(tmp_path, "fresh", v, root)).current()


def test_the_walk_stops_at_the_document_accepted_last(
    v: vault.Vault, root: LocalSigner, tmp_path: Path
) -> None:
    ac, alice_key, _ = delegated(v, root)
    ac.grant("bob", "team/a/+", PUSH, alice_key)  # 4
    ac.grant("bob", "team/b/+", PUSH, alice_key)  # 5
    client = pinned_to(tmp_path, "client", v, root)
    assert control(v, client).current().signer == alice_key.fingerprint()  # accepted 5 (walked to 3)
    ac.grant("bob", "team/c/+", PUSH, alice_key)  # 6
    newest = v.catalog.latest_access_policy()
    assert newest is not None
    read: list[int] = []

    def fetch(serial: int) -> AccessPolicyRow | None:
        read.append(serial)
        return v.catalog.access_policy(serial)

    pins = access_pins(client)
    vid = v.config.vault_id
    seen = (pins.policy_serial(vid), pins.policy_digest(vid))
    got = accept_chain(
        newest, fetch, roots=(root.fingerprint(),), seen=seen, vault_id=vid, today=TODAY.date()
    )
    assert (read, got.verified, got.root) == ([5], 2, None)
    fresh = accept_chain(
        newest, fetch, roots=(root.fingerprint(),), seen=(0, None), vault_id=vid, today=TODAY.date()
    )
    assert (read[1:], fresh.verified, fresh.root) == ([5, 4, 3], 4, root.fingerprint())
    # documents before the accepted one are never read again: spoil them, the client still accepts 6
    sql(v, "UPDATE access_policies SET document = :d WHERE serial < 5", d=b"spoiled")
    assert control(v, client).current().policy.serial == 6  # type: ignore[union-attr]
    with pytest.raises(MalformedSignatureError, match="signed access policy"):  # a fresh client reads them
        control(v, pinned_to(tmp_path, "fresh", v, root)).current()


def test_a_different_document_at_the_accepted_serial_is_refused(
    v: vault.Vault, root: LocalSigner, tmp_path: Path
) -> None:
    ac, alice_key, _ = delegated(v, root)
    state = ac.grant("bob", "team/a/+", PUSH, alice_key)  # 4, accepted by this client
    ac.grant("bob", "team/b/+", PUSH, alice_key)  # 5
    assert state.policy is not None
    other = sign_access_policy(state.policy.granted("bob", "team/z/+", PUSH), alice_key)  # 5-shaped
    rewritten = sign_access_policy(state.policy.revoked("bob", "team/a/+", PUSH), alice_key)
    assert other != rewritten
    client = ClientState(tmp_path / "c4")
    access_pins(client).pin(v.config.vault_id, root.fingerprint())
    assert control(v, client).current().policy is not None  # accepted 5
    sql(v, "UPDATE access_policies SET document = :d WHERE serial = 4", d=rewritten)
    ac.current()  # the signer's own client stopped at 5's digest, not reading 4
    sql(v, "UPDATE access_policies SET document = :d WHERE serial = 5", d=other)
    with pytest.raises(IntegrityError, match=r"serial 5 .* is not the document this client accepted"):
        control(v, client).current()


def test_rollback_is_still_refused(v: vault.Vault, root: LocalSigner) -> None:
    ac, alice_key, _ = delegated(v, root)
    ac.grant("bob", "team/+", PUSH, alice_key)  # 4
    sql(v, "DELETE FROM access_policies WHERE serial = 4")
    with pytest.raises(IntegrityError, match="older than serial 4"):
        ac.current()


def test_a_delegated_admin_cannot_remove_the_last_admin(v: vault.Vault, root: LocalSigner) -> None:
    ac, alice_key, _ = delegated(v, root)
    with pytest.raises(UsageError, match="no longer hold admin"):
        ac.revoke("alice", "*", ADMIN, alice_key)
    with pytest.raises(UsageError, match="no longer hold admin"):
        ac.remove_principal("alice", alice_key)
    ac.grant("bob", "*", ADMIN, alice_key)
    state = ac.remove_principal("alice", alice_key)  # bob is still admin
    assert state.policy is not None and [p.name for p in state.policy.live()] == ["bob"]


def test_the_cli_signs_with_the_acting_identity(tmp_path: Path, catalog_url: str | None) -> None:
    from typer.testing import CliRunner

    from mlvault_cli.main import app

    path = tmp_path / "v"
    vault.init_vault(str(path), passphrase=PASSPHRASE, kdf=CHEAP_KDF, catalog_url=catalog_url).close()
    env = {"MLVAULT_VAULT": str(path), **({"MLVAULT_CATALOG": catalog_url} if catalog_url else {})}

    def run(*args: str, owner: bool = False) -> tuple[int, str]:
        extra = {"MLVAULT_PASSPHRASE": PASSPHRASE} if owner else {"MLVAULT_PASSPHRASE": None}
        result = CliRunner().invoke(app, list(args), env={**env, **extra})  # type: ignore[dict-item]
        return result.exit_code, result.stdout + result.stderr

    ids = ClientState.default().identities()
    pubs = {}
    for name in ("alice", "bob"):
        pubs[name] = tmp_path / f"{name}.pub"
        pubs[name].write_bytes(ids.create(name, None, CHEAP_KDF).encode())
    alice_fp = ids.public_of("alice").signing_fingerprint
    assert run("principal", "add", "alice", "--identity", str(pubs["alice"]), owner=True)[0] == 0
    assert run("grant", "alice", "*", "admin", owner=True)[0] == 0
    assert run("principal", "add", "bob", "--identity", str(pubs["bob"]), owner=True)[0] == 0
    code, said = run("--identity", "alice", "grant", "bob", "team/vision/+", "push")
    assert code == 0 and f"serial 4, signed by {alice_fp}" in said, said
    code, said = run("--identity", "bob", "grant", "bob", "team/+", "push")
    assert code == 15 and "may not grant" in said, said


@pytest.mark.parametrize("catalog_url", ["sqlite"], indirect=True)  # PostgreSQL's bytea refuses text
def test_a_document_stored_as_text_is_a_malformed_policy_not_a_crash(
    v: vault.Vault, root: LocalSigner
) -> None:
    """SQLite keeps whatever type it is given: a catalog writer can put TEXT where bytes belong."""
    ac, _, _ = delegated(v, root)
    sql(v, "UPDATE access_policies SET document = 'x' || hex(document) WHERE serial = 3")
    with pytest.raises(MalformedSignatureError, match="not binary data"):
        ac.current()  # the newest row
    with pytest.raises(MalformedSignatureError, match=r"serial 3\) is not binary data"):
        v.catalog.access_policy(3)  # the walk's read of one serial
    sql(v, "UPDATE access_policies SET document = 'é' WHERE serial = 2")
    with pytest.raises(MalformedSignatureError):
        v.catalog.access_policy(2)
