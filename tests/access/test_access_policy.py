"""The signed access policy: principals and rules round-trip through the catalog (SQLite and
PostgreSQL), and a catalog writer cannot grant, roll back or re-sign anything clients honour."""

from __future__ import annotations

import base64
import datetime as dt
import json
import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

import vault
from vault.access.patterns import Capability, parse_capabilities
from vault.access.policy import AccessPolicy, policy_from_json, sign_access_policy
from vault.access.service import AccessControl, access_pins
from vault.clientstate import ClientState
from vault.clientstate.identities import PublicIdentity
from vault.crypto.kdf import KdfParams
from vault.errors import (
    ConflictError,
    IntegrityError,
    MalformedSignatureError,
    NotFoundError,
    PermissionDeniedError,
    SignatureInvalidError,
    UntrustedSignerError,
    UsageError,
)
from vault.signing import keys
from vault.signing.signers import LocalSigner

CHEAP_KDF = KdfParams(time_cost=1, memory_kib=8, parallelism=1)
READ = frozenset({Capability.READ})


def identity(name: str) -> PublicIdentity:
    return ClientState.default().identities().create(name, None, CHEAP_KDF)


def signer() -> LocalSigner:
    return LocalSigner(keys.generate_private_key())


@pytest.fixture
def v(make_vault: Callable[..., vault.Vault], catalog_url: str | None) -> vault.Vault:
    return make_vault(catalog_url=catalog_url)


@pytest.fixture
def admin() -> LocalSigner:
    return signer()


def control(v: vault.Vault, state: ClientState | None = None) -> AccessControl:
    return v.access(state or ClientState.default())


def other_client(tmp_path: Path, name: str) -> ClientState:
    return ClientState(tmp_path / name)


def test_round_trip_principals_and_rules(v: vault.Vault, admin: LocalSigner, tmp_path: Path) -> None:
    ac = control(v)
    state = ac.add_principal("alice", identity("alice"), admin, kind="service", expires=dt.date(2027, 6, 30))
    assert state.policy is not None and state.policy.serial == 1
    assert state.pinned_now == admin.fingerprint()  # first use pins the admin key
    ac.add_principal("bob", identity("bob"), admin)
    ac.grant("alice", "team/vision/+", parse_capabilities("push,tag"), admin)
    ac.grant("alice", "team/vision/+", parse_capabilities("list"), admin)  # same pattern: a union
    ac.deny("bob", "team/secret/*", admin)

    fresh = control(v, other_client(tmp_path, "fresh"))  # another client: trusts on first use
    seen = fresh.current()
    assert seen.policy is not None and seen.policy.serial == 5 and seen.signer == admin.fingerprint()
    alice = seen.policy.named("alice")
    assert (alice.kind, alice.expires, len(alice.id)) == ("service", dt.date(2027, 6, 30), 32)
    assert [(g.principal, g.pattern, g.capabilities, g.deny) for g in fresh.grants()] == [
        ("alice", "team/vision/+", ("list", "push", "tag"), False),
        ("bob", "team/secret/*", (), True),
    ]
    assert fresh.explain("alice", "push", "team/vision/resnet").allowed
    told = fresh.explain("bob", "pull", "team/secret/x@v1")
    assert not told.allowed and told.rule == "deny team/secret/* to bob"
    assert fresh.explain("bob", "pull", "team/other/x").reason.startswith("default deny")
    # the index rows mirror the newest document
    assert {(g.pattern, g.deny) for g in v.catalog.access_grant_index()} == {
        ("team/vision/+", False),
        ("team/secret/*", True),
    }


def test_a_grant_row_inserted_by_sql_is_ignored(
    make_vault: Callable[..., vault.Vault], admin: LocalSigner
) -> None:
    v = make_vault()
    ac = control(v)
    alice = ac.add_principal("alice", identity("alice"), admin).policy
    assert alice is not None
    pid = alice.named("alice").id
    db = v.catalog.engine.url.database
    assert db is not None
    with sqlite3.connect(db) as conn:  # a catalog writer grants itself admin on everything
        conn.execute(
            "INSERT INTO access_grants (principal_id, pattern, capabilities, deny) "
            "VALUES (?, '*', 'admin', 0)",
            (pid,),
        )
    assert not ac.explain("alice", "pull", "team/vision/resnet").allowed
    assert ac.grants() == []


def test_a_document_signed_by_another_key_is_refused(v: vault.Vault, admin: LocalSigner) -> None:
    ac = control(v)
    policy = ac.add_principal("alice", identity("alice"), admin).policy
    assert policy is not None
    mallory = signer()
    with pytest.raises(PermissionDeniedError, match="not a pinned admin key"):
        ac.grant("alice", "team/*", READ, mallory)
    forged = policy.granted("alice", "*", {Capability.ADMIN})
    v.catalog.store_access_policy(
        forged.serial,
        sign_access_policy(forged, mallory),
        principals=[],
        grants=[],
        created_by="x",
        at=_now(),
    )
    with pytest.raises(UntrustedSignerError, match="not by a pinned admin key"):
        ac.current()


def test_an_edited_document_is_refused(make_vault: Callable[..., vault.Vault], admin: LocalSigner) -> None:
    v = make_vault()
    ac = control(v)
    ac.add_principal("alice", identity("alice"), admin)
    row = v.catalog.latest_access_policy()
    assert row is not None
    doc = json.loads(row.document)
    payload = json.loads(base64.b64decode(doc["payload"]))
    payload["rules"] = [
        {
            "principal": payload["principals"][0]["id"],
            "pattern": "*",
            "capabilities": ["admin"],
            "deny": False,
        }
    ]
    payload["serial"] = 2
    doc["payload"] = base64.b64encode(json.dumps(payload).encode()).decode()
    v.catalog.store_access_policy(
        2, json.dumps(doc).encode(), principals=[], grants=[], created_by="x", at=_now()
    )
    with pytest.raises(SignatureInvalidError):
        ac.current()


def test_rollback_and_removal_are_refused(v: vault.Vault, admin: LocalSigner) -> None:
    ac = control(v)
    ac.add_principal("alice", identity("alice"), admin)
    ac.grant("alice", "team/vision/+", READ, admin)
    assert ac.current().policy is not None  # this client has accepted serial 2
    engine = create_engine(v.catalog.engine.url)
    try:
        with engine.begin() as conn:
            conn.execute(text("DELETE FROM access_policies WHERE serial = 2"))
        with pytest.raises(IntegrityError, match="older than serial 2"):
            ac.current()
        with engine.begin() as conn:
            conn.execute(text("DELETE FROM access_policies"))
        with pytest.raises(IntegrityError, match="missing"):
            ac.current()
    finally:
        engine.dispose()


def test_two_admins_at_once_conflict(v: vault.Vault, admin: LocalSigner) -> None:
    ac = control(v)
    policy = ac.add_principal("alice", identity("alice"), admin).policy
    assert policy is not None
    stale = sign_access_policy(policy, admin)
    with pytest.raises(ConflictError):
        v.catalog.store_access_policy(1, stale, principals=[], grants=[], created_by="x", at=_now())


def test_removed_then_re_added_name_inherits_nothing_and_rename_keeps_grants(
    v: vault.Vault, admin: LocalSigner
) -> None:
    ac = control(v)
    ac.add_principal("alice", identity("alice"), admin)
    ac.grant("alice", "team/vision/+", parse_capabilities("push,tag"), admin)
    ac.rename_principal("alice", "alice2", admin)
    assert ac.explain("alice2", "push", "team/vision/x").allowed  # same id, same grants
    ac.remove_principal("alice2", admin)
    with pytest.raises(NotFoundError):
        ac.explain("alice2", "push", "team/vision/x")
    ac.add_principal("alice2", identity("alice-new"), admin)
    assert not ac.explain("alice2", "push", "team/vision/x").allowed
    everyone = ac.principals(include_removed=True)
    assert [p.name for p in everyone] == ["alice2", "alice2"] and everyone[0].id != everyone[1].id
    assert ac.grants() == []


def test_names_and_identities_are_unique_among_live_principals(v: vault.Vault, admin: LocalSigner) -> None:
    ac = control(v)
    alice = identity("alice")
    ac.add_principal("alice", alice, admin)
    with pytest.raises(ConflictError, match="already exists"):
        ac.add_principal("alice", identity("other"), admin)
    with pytest.raises(ConflictError, match="already belongs"):
        ac.add_principal("alice-ci", alice, admin)
    with pytest.raises(UsageError):
        ac.add_principal("bad name", identity("x"), admin)
    with pytest.raises(UsageError):
        ac.grant("alice", "team/*/x", READ, admin)


def test_the_last_admin_on_star_is_kept(v: vault.Vault, admin: LocalSigner) -> None:
    ac = control(v)
    ac.add_principal("root", identity("root"), admin)
    ac.add_principal("alice", identity("alice"), admin)
    ac.grant("root", "*", frozenset({Capability.ADMIN}), admin)
    with pytest.raises(UsageError, match="admin on '\\*'"):
        ac.remove_principal("root", admin)
    with pytest.raises(UsageError, match="admin on '\\*'"):
        ac.revoke("root", "*", frozenset({Capability.ADMIN}), admin)
    with pytest.raises(UsageError, match="admin on '\\*'"):
        ac.deny("root", "*", admin)
    ac.grant("alice", "*", frozenset({Capability.ADMIN}), admin)
    ac.remove_principal("root", admin)  # alice is still admin
    assert [p.name for p in ac.principals()] == ["alice"]


def test_revoke_removes_capabilities_and_denies(v: vault.Vault, admin: LocalSigner) -> None:
    ac = control(v)
    ac.add_principal("alice", identity("alice"), admin)
    ac.grant("alice", "team/+", parse_capabilities("read,push,tag"), admin)
    ac.revoke("alice", "team/+", parse_capabilities("push"), admin)
    assert [g.capabilities for g in ac.grants()] == [("read", "tag")]
    with pytest.raises(NotFoundError):
        ac.revoke("alice", "team/*", READ, admin)  # only the exact pattern
    ac.revoke("alice", "team/+", parse_capabilities("read,tag"), admin)
    assert ac.grants() == []
    ac.deny("alice", "team/+", admin)
    ac.revoke("alice", "team/+", frozenset(), admin, deny=True)
    assert ac.grants() == []


def test_an_expired_principal_is_denied(v: vault.Vault, admin: LocalSigner) -> None:
    ac = v.access(ClientState.default(), clock=lambda: dt.datetime(2028, 1, 1, tzinfo=dt.UTC))
    ac.add_principal("ci", identity("ci"), admin, kind="service", expires=dt.date(2027, 6, 30))
    ac.grant("ci", "team/*", READ, admin)
    told = ac.explain("ci", "pull", "team/x")
    assert not told.allowed and "expired on 2027-06-30" in told.reason


def test_explicit_pin_of_the_trust_admin_covers_the_access_policy(v: vault.Vault, admin: LocalSigner) -> None:
    state = ClientState.default()
    state.trust_pins.pin(v.config.vault_id, signer().fingerprint())  # the root admin is someone else
    with pytest.raises(PermissionDeniedError):
        v.access(state).add_principal("alice", identity("alice"), admin)
    assert access_pins(state).admins(v.config.vault_id) == ()


def test_malformed_documents_are_refused() -> None:
    with pytest.raises(MalformedSignatureError):
        policy_from_json(b'{"type": "mlvault/access-policy"}')
    good = AccessPolicy("ab" * 16, 1)
    assert policy_from_json(_payload(good)) == good


def _payload(policy: AccessPolicy) -> bytes:
    from vault.access.policy import policy_to_json

    return policy_to_json(policy)


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)
