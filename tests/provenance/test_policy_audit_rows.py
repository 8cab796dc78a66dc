"""Every access-policy change appends one audit row naming the change and the new serial; the first
policy lists the versions and tags that exist; a revoke keeps the revoked pusher's records."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import vault
from vault.access.patterns import Capability
from vault.clientstate import ClientState
from vault.crypto.kdf import KdfParams
from vault.signing import keys
from vault.signing.signers import LocalSigner

CHEAP_KDF = KdfParams(time_cost=1, memory_kib=8, parallelism=1)


def test_policy_changes_are_audited(make_vault: Callable[..., vault.Vault], catalog_url: str | None) -> None:
    v = make_vault(catalog_url=catalog_url)
    state = ClientState.default()
    admin = LocalSigner(keys.generate_private_key())
    ac = v.access(state)
    alice = state.identities().create("alice", None, CHEAP_KDF)
    ac.add_principal("alice", alice, admin)
    ac.grant("alice", "team/*", frozenset({Capability.PUSH, Capability.LIST}), admin)
    ac.deny("alice", "team/secret/*", admin)
    ac.revoke("alice", "team/*", frozenset({Capability.PUSH}), admin)
    ac.revoke("alice", "team/secret/*", frozenset(), admin, deny=True)
    ac.rename_principal("alice", "alicia", admin)
    ac.remove_principal("alicia", admin)
    rows = [
        s.row
        for s in v.catalog.audit_stored_rows()
        if s.row.action in {"grant", "deny", "revoke", "principal"}
    ]
    assert [(r.action, r.target, r.details.get("serial")) for r in rows] == [
        ("principal", "alice", 1),
        ("grant", "team/*", 2),
        ("deny", "team/secret/*", 3),
        ("revoke", "team/*", 4),
        ("revoke", "team/secret/*", 5),
        ("principal", "alice", 6),
        ("principal", "alicia", 7),
    ]
    assert rows[1].details["capabilities"] == ["list", "push"] and rows[1].details["principal"] == "alice"
    assert rows[4].details["deny"] is True
    assert [r.details.get("change") for r in rows if r.action == "principal"] == ["add", "rename", "remove"]


def test_the_first_policy_lists_existing_versions_and_tags(
    make_vault: Callable[..., vault.Vault], tmp_path: Path
) -> None:
    v = make_vault()
    src = tmp_path / "src"
    src.mkdir()
    (src / "f").write_bytes(b"bytes")
    pushed = v.push(src, "team/model", tags=["prod"])
    state = ClientState.default()
    admin = LocalSigner(keys.generate_private_key())
    policy = (
        v.access(state)
        .add_principal("alice", state.identities().create("alice", None, CHEAP_KDF), admin)
        .policy
    )
    assert policy is not None
    assert policy.legacy_versions == frozenset({(pushed.version_id, pushed.digest)})
    assert policy.legacy_tags == frozenset({("team/model", "prod", pushed.version_id)})
    # later policies carry the lists on
    later = v.access(state).grant("alice", "team/*", frozenset({Capability.READ}), admin).policy
    assert later is not None and later.legacy_versions == policy.legacy_versions
