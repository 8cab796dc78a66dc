"""What a restore trusts a snapshot's policies and signer by, with no catalog to ask, and the re-pin after.

A sealed snapshot proves only that someone holding the recovery *public* key wrote it, and the
target's marker is writable by whoever can write the target, so neither can say which signer is
genuine. The anchor is the vault's **admin key**, which an attacker cannot use: ``--admin-key-
fingerprint FP`` when given, else the admin keys this client pinned for the vault id (access pins,
else trust pins). Against it:

- the newest access policy in the snapshot's rows must be signed by an anchor key, name this vault,
  and not be older than the serial this client accepted (a snapshot with no access policy while the
  client accepted one is a rollback); likewise the newest trust policy. The vault keeps its id, so
  this client's pins apply to the restored vault, whose first open would refuse the older policy
  anyway: an older snapshot is restored on a client that has not pinned the vault;
- the snapshot's signer must then be one the verified access policy accepts
  (:class:`vault.backup.signature.Acceptance`: its service principals, or the admin key).

With **no anchor** (a fresh machine, no flag), a snapshot that carries a signed policy or a
signature is refused (exit 13) naming the admin key it claims, so the user checks that fingerprint
and restores again with ``--admin-key-fingerprint``: restore never trusts on first use. A snapshot
of a vault that never had a policy is unsigned and restores without an anchor (nothing to pin).

After the restore, :func:`repin` pins the anchor admin for the access and trust policies and
records their serials, so the restored vault's clients on this machine never trust on first use
whatever the new catalog holds.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from vault.access.policy import AccessPolicy, document_signer, verify_access_policy
from vault.access.service import access_pins
from vault.attestation.trust import document_admin_fingerprint
from vault.backup.signature import Acceptance, SnapshotSignature
from vault.clientstate.pins import check_fingerprint
from vault.errors import IntegrityError, UntrustedSignerError
from vault.formats import ALTERED
from vault.signing.policy import verify_policy

# A rolled-back policy is refused as the client would refuse it on the restored vault's first open.
OLDER = (
    "; this client would refuse to open the restored vault: restore a newer snapshot, or restore an older "
    "one on a client that has not pinned this vault (with --admin-key-fingerprint)"
)

if TYPE_CHECKING:
    from vault.clientstate import ClientState


@dataclass(frozen=True)
class SnapshotTrust:
    """The signers a snapshot may carry, and the policies to pin after the restore."""

    acceptance: Acceptance
    anchors: tuple[str, ...]
    access_admin: str | None = None
    access_serial: int = 0
    trust_admin: str | None = None
    trust_serial: int = 0


def newest_document(rows: dict[str, Any], table: str) -> tuple[int, bytes] | None:
    """The (serial, document) of the highest serial in an exported policy table, None when empty."""
    entry = rows.get(table)
    if entry is None:
        return None
    try:
        columns = entry["columns"]
        serial_at, document_at = columns.index("serial"), columns.index("document")
        found = [(row[serial_at], row[document_at]) for row in entry["rows"]]
        if not found:
            return None
        if not all(type(s) is int and isinstance(d, str) for s, d in found):
            raise ValueError("types")
        serial, document = max(found, key=lambda item: int(item[0]))
        return serial, bytes.fromhex(document)
    except (KeyError, TypeError, ValueError, AttributeError):
        raise IntegrityError(f"the snapshot's {table} rows are malformed{ALTERED}") from None


def snapshot_trust(
    rows: dict[str, Any],
    vault_id: str,
    signature: SnapshotSignature | None,
    *,
    admin_fingerprints: tuple[str, ...] = (),
    state: ClientState | None = None,
) -> SnapshotTrust:
    """Verify the snapshot's policies against the anchor (see the module docstring)."""
    access_doc = newest_document(rows, "access_policies")
    trust_doc = newest_document(rows, "trust_policies")
    pins = None if state is None else access_pins(state)
    trust_pins = None if state is None else state.trust_pins
    anchors = tuple(check_fingerprint(fp) for fp in admin_fingerprints)
    if not anchors and pins is not None and trust_pins is not None:
        anchors = pins.admins(vault_id) or trust_pins.admins(vault_id)
    if not anchors:
        claimed = [
            fp
            for fp in (
                document_signer(access_doc[1]) if access_doc else None,
                document_admin_fingerprint(trust_doc[1]) if trust_doc else None,
                signature.fingerprint if signature else None,
            )
            if fp
        ]
        if claimed:
            raise UntrustedSignerError(
                f"this client has no pinned admin key for vault {vault_id}, and the snapshot's policy or "
                f"signature names key {claimed[0]}: check that this is your admin key's fingerprint and "
                f"restore again with --admin-key-fingerprint {claimed[0]}"
            )
        return SnapshotTrust(Acceptance(frozenset()), ())
    policy: AccessPolicy | None = None
    seen = 0 if pins is None else pins.policy_serial(vault_id)
    if access_doc is not None:
        policy = verify_access_policy(access_doc[1], anchors)
        if policy.vault_id != vault_id or policy.serial != access_doc[0] or policy.serial < seen:
            raise IntegrityError(
                f"the snapshot's access policy (serial {policy.serial}, vault {policy.vault_id}) is not the "
                f"current one of vault {vault_id} (this client accepted serial {seen}){OLDER}"
            )
    elif seen:
        raise IntegrityError(
            f"the snapshot has no access policy, but this client accepted serial {seen}{OLDER}"
        )
    trust_seen = 0 if trust_pins is None else trust_pins.policy_serial(vault_id)
    trust_serial = 0
    if trust_doc is not None:
        trust = verify_policy(trust_doc[1], anchors)
        trust_serial = trust.serial
        if trust.serial < trust_seen or (trust.vault_id and trust.vault_id != vault_id):
            raise IntegrityError(
                f"the snapshot's trust policy (serial {trust.serial}) is older than serial {trust_seen}, "
                f"which this client accepted, or another vault's{OLDER}"
            )
    elif trust_seen:
        raise IntegrityError(
            f"the snapshot has no trust policy, but this client accepted serial {trust_seen}{OLDER}"
        )
    return SnapshotTrust(
        Acceptance.of(anchors, policy.principals if policy is not None else ()),
        anchors,
        document_signer(access_doc[1]) if access_doc else None,
        policy.serial if policy is not None else 0,
        document_admin_fingerprint(trust_doc[1]) if trust_doc else None,
        trust_serial,
    )


def repin(state: ClientState, vault_id: str, trust: SnapshotTrust) -> None:
    """Pin the restored vault's admin keys and policy serials on this client."""
    pins = access_pins(state)
    if trust.access_admin is not None:
        pins.pin(vault_id, trust.access_admin)
        pins.record_serial(vault_id, trust.access_serial)
    if trust.trust_admin is not None:
        state.trust_pins.pin(vault_id, trust.trust_admin)
        state.trust_pins.record_serial(vault_id, trust.trust_serial)
    elif trust.access_admin is None and trust.anchors and not pins.admins(vault_id):
        state.trust_pins.pin(vault_id, trust.anchors[0])  # the root admin, for the first policy to come


def vault_acceptance(state: ClientState, vault_id: str, policy: AccessPolicy | None) -> Acceptance:
    """The signers an open vault accepts: this client's pinned admin keys (access, else trust) and the
    service principals of ``policy``, which the caller verified under them
    (:meth:`vault.access.service.AccessControl.current`)."""
    admins = access_pins(state).admins(vault_id) or state.trust_pins.admins(vault_id)
    return Acceptance.of(admins, policy.principals if policy is not None else ())
