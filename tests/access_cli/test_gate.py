"""vault.access.gate on pure policies: who the caller is, require / require_admin / visible, and that
every question reads the policy afresh."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from vault.access.gate import Gate, PolicyReader, unpinned_policy
from vault.access.patterns import Capability, parse_capabilities
from vault.access.policy import AccessPolicy, explain, sign_access_policy
from vault.access.principals import new_principal
from vault.access.service import AccessState
from vault.catalog.access import AccessPolicyRow
from vault.clientstate.identities import Identities, PublicIdentity
from vault.crypto.kdf import KdfParams
from vault.errors import IntegrityError, PermissionDeniedError
from vault.signing import keys
from vault.signing.signers import LocalSigner

CHEAP_KDF = KdfParams(1, 8, 1)
VAULT_ID = "ab" * 16
NOW = dt.datetime(2026, 6, 1, 12, 0, tzinfo=dt.UTC)


def clock() -> dt.datetime:
    return NOW


@pytest.fixture
def people(tmp_path: Path) -> dict[str, PublicIdentity]:
    store = Identities(tmp_path / "identities")
    return {
        name: store.create(name, None, CHEAP_KDF) for name in ("root", "alice", "ci", "bob", "old", "eve")
    }


@pytest.fixture
def policy(people: dict[str, PublicIdentity]) -> AccessPolicy:
    p = AccessPolicy(VAULT_ID)
    for name in ("root", "alice", "ci", "bob", "old"):
        expires = dt.date(2026, 1, 1) if name == "old" else None
        p = p.with_principal(new_principal(name, people[name], kind="user", expires=expires, at=NOW))
    p = p.granted("root", "*", {Capability.ADMIN})
    p = p.granted("alice", "team/*", parse_capabilities("list,read,push,tag"))
    p = p.granted("ci", "team/vision/+", parse_capabilities("push,list"))
    p = p.granted("bob", "*", {Capability.ADMIN})
    p = p.denied("bob", "team/secret/*")
    return p.granted("old", "*", {Capability.ADMIN})


def gate_for(policy: AccessPolicy | None, who: PublicIdentity | None) -> Gate:
    return Gate(lambda: policy, (lambda: who) if who is not None else None, clock)


def denied(gate: Gate, capability: str, path: str) -> str:
    with pytest.raises(PermissionDeniedError) as caught:
        gate.require(capability, path)
    return str(caught.value)


def test_the_owner_is_admin_on_everything_and_no_policy_is_read(people: dict[str, PublicIdentity]) -> None:
    def unreadable() -> AccessPolicy:
        raise IntegrityError("the policy must not be read for the owner")

    gate = Gate(unreadable, None, clock)
    assert gate.require("push", "team/secret/x").kind == "owner"
    assert gate.require_admin("rekey").unrestricted
    assert gate.visible(["a/b", "c/d"]) is None


def test_no_policy_is_single_user_mode(people: dict[str, PublicIdentity]) -> None:
    gate = gate_for(None, people["eve"])
    assert gate.require("read", "team/x").kind == "single-user"
    assert gate.require_admin("keys").kind == "single-user"


def test_a_principal_gets_what_the_most_specific_rule_gives(
    policy: AccessPolicy, people: dict[str, PublicIdentity]
) -> None:
    alice = gate_for(policy, people["alice"])
    assert alice.require("push", "team/vision/resnet").name == "alice"
    message = denied(alice, "read", "research/model")
    assert message == (
        "permission denied: principal alice may not read research/model (needs read): "
        "default deny: no rule of alice matches research/model"
    )
    assert explain(policy, "alice", "read", "research/model", NOW.date()).reason in message

    ci = gate_for(policy, people["ci"])
    ci.require("push", "team/vision/resnet")
    assert "grant team/vision/+ (list,push) to ci" in denied(ci, "read", "team/vision/resnet")
    assert "default deny" in denied(ci, "push", "team/vision/resnet/v2")  # '+' is one segment


def test_a_deny_wins_over_admin(policy: AccessPolicy, people: dict[str, PublicIdentity]) -> None:
    bob = gate_for(policy, people["bob"])
    bob.require("read", "team/vision/resnet")
    bob.require_admin("keys")  # the deny is not on '*'
    message = denied(bob, "read", "team/secret/key")
    assert "deny team/secret/* to bob" in message and "admin included" in message
    assert bob.visible(["team/secret/key", "team/a"]) == {"team/a"}


def test_admin_on_star_is_needed_for_admin_commands(
    policy: AccessPolicy, people: dict[str, PublicIdentity]
) -> None:
    gate_for(policy, people["root"]).require_admin("rekey")
    with pytest.raises(PermissionDeniedError, match=r"alice may not rekey \(needs admin on '\*'\): default"):
        gate_for(policy, people["alice"]).require_admin("rekey")
    denied_star = policy.denied("root", "*").granted("bob", "*", {Capability.ADMIN})
    with pytest.raises(PermissionDeniedError, match="denied by deny \\* to root"):
        gate_for(denied_star, people["root"]).require_admin("rekey")
    listed = policy.granted("alice", "*", {Capability.LIST})
    with pytest.raises(PermissionDeniedError, match=r"grant \* \(list\) to alice lacks admin"):
        gate_for(listed, people["alice"]).require_admin("keys")


def test_strangers_removed_and_expired_principals_may_do_nothing(
    policy: AccessPolicy, people: dict[str, PublicIdentity]
) -> None:
    with pytest.raises(PermissionDeniedError, match=r"identity eve .* is not a principal"):
        gate_for(policy, people["eve"]).require("list", "team/x")
    removed = policy.without_principal("alice", NOW)
    with pytest.raises(PermissionDeniedError, match="was principal alice, removed at 2026-06-01"):
        gate_for(removed, people["alice"]).require("list", "team/x")
    with pytest.raises(PermissionDeniedError, match=r"principal old .* expired on 2026-01-01"):
        gate_for(policy, people["old"]).require_admin("keys")


def test_the_caller_is_found_by_both_fingerprints_and_mixed_halves_match_nobody(
    policy: AccessPolicy, people: dict[str, PublicIdentity]
) -> None:
    alice = people["alice"]
    renamed = PublicIdentity("alice-laptop", alice.x25519_public, alice.ecdsa_public_der)
    assert gate_for(policy, renamed).require("read", "team/a").name == "alice"  # the name is only a label
    # the public half is read without a passphrase: eve pairing her own X25519 key with alice's
    # signing key (or alice's X25519 key with her own signing key) is not alice
    for mixed in (
        PublicIdentity("alice", b"\x01" * 32, alice.ecdsa_public_der),
        PublicIdentity("alice", alice.x25519_public, people["eve"].ecdsa_public_der),
    ):
        with pytest.raises(PermissionDeniedError, match="is not a principal"):
            gate_for(policy, mixed).require("list", "team/a")


def test_every_question_reads_the_policy_afresh(
    policy: AccessPolicy, people: dict[str, PublicIdentity]
) -> None:
    current = [policy]
    reads = []

    def source() -> AccessPolicy:
        reads.append(1)
        return current[0]

    gate = Gate(source, lambda: people["alice"], clock)
    gate.require("read", "team/a")
    current[0] = policy.revoked("alice", "team/*", {Capability.READ})
    with pytest.raises(PermissionDeniedError, match="lacks read"):
        gate.require("read", "team/a")
    assert len(reads) == 2


def test_visible_keeps_what_the_caller_may_list(
    policy: AccessPolicy, people: dict[str, PublicIdentity]
) -> None:
    names = ["team/vision/resnet", "team/vision/resnet/big", "team/nlp/bert", "research/x", "bad name"]
    assert gate_for(policy, people["ci"]).visible(names) == {"team/vision/resnet"}
    assert gate_for(policy, people["alice"]).visible(names) == {
        "team/vision/resnet",
        "team/vision/resnet/big",
        "team/nlp/bert",
    }


def test_an_unpinned_policy_must_verify_and_name_this_vault(policy: AccessPolicy) -> None:
    document = sign_access_policy(policy, LocalSigner(keys.generate_private_key()))
    read = unpinned_policy(document, VAULT_ID)
    assert read is not None and read.serial == policy.serial and set(read.rules) == set(policy.rules)
    assert unpinned_policy(None, VAULT_ID) is None
    with pytest.raises(IntegrityError, match="copied from another vault"):
        unpinned_policy(document, "cd" * 16)


class Rows:
    """A catalog fake: the newest stored policy row, and how often it was read."""

    def __init__(self) -> None:
        self.row: AccessPolicyRow | None = None
        self.reads = 0

    def latest_access_policy(self) -> AccessPolicyRow | None:
        self.reads += 1
        return self.row

    def store(self, policy: AccessPolicy, admin: LocalSigner) -> None:
        self.row = AccessPolicyRow(policy.serial, sign_access_policy(policy, admin), "test", NOW)


class Control:
    """What PolicyReader needs of AccessControl: current(), counted."""

    def __init__(self, rows: Rows) -> None:
        self.rows = rows
        self.verified = 0

    def current(self) -> AccessState:
        self.verified += 1
        assert self.rows.row is not None
        return AccessState(unpinned_policy(self.rows.row.document, VAULT_ID))


def test_the_policy_row_is_read_every_time_and_verified_when_it_changes(policy: AccessPolicy) -> None:
    rows, admin = Rows(), LocalSigner(keys.generate_private_key())
    control = Control(rows)
    reader = PolicyReader(rows, VAULT_ID, lambda: control)  # type: ignore[arg-type, return-value]
    rows.store(policy, admin)
    first = reader()
    assert first is not None and first.serial == policy.serial
    assert reader() is first and reader() is first
    assert (rows.reads, control.verified) == (3, 1)
    newer = policy.revoked("alice", "team/*", {Capability.READ})
    rows.store(newer, admin)
    second = reader()
    assert second is not None and second.serial == newer.serial
    assert (rows.reads, control.verified) == (4, 2)
    assert PolicyReader(Rows(), VAULT_ID, lambda: None)() is None
