"""The access policy of one vault as this client accepts it, its edits, and read grants as key slots.

**Accepting a policy.** The newest signed document in the catalog counts only if an admin key this
client pinned signed it, or an admin principal of the document before it did and that one counts
(:mod:`vault.access.delegation`), it names this vault, and its serial is not below the highest this client
accepted (``access-pins.json``, the :class:`~vault.clientstate.pins.TrustPins` format in a sibling
file, so the access serial and the trust serial roll forward independently). The admin key is
pinned on first use; if nothing is pinned for access yet but a trust-policy admin is, that key is
the one expected, so a vault has one root admin key. Catalog rows are never read to decide.

**Changing it.** Every change (principal add, rm, rename; grant, deny, revoke) signs serial + 1
with ``admin`` (a signing key or an identity's signing key), which must be a pinned admin key or
the signing key of a live, unexpired principal holding ``admin`` on ``*`` (a delegated admin); two
admins at once get a ``ConflictError`` from the catalog and retry. Each change appends one audit row
(``grant``, ``deny``, ``revoke`` or ``principal``). With provenance ``records``
(:mod:`vault.access.records`), the first policy lists the versions and tags that exist, and a change
that takes ``push`` or ``tag`` away from a principal keeps that principal's records valid.

**Read by keys.** Keyrings are per top-level namespace, so only a rule on exactly ``NS/*`` can be
enforced by keys: when a principal holds ``read`` (or ``admin``) on ``NS/*`` and no deny on
``NS/*`` or ``*``, its identity gets an x25519 slot on keyring ``NS`` (:meth:`KeyringAdmin.add_recipient`);
when it stops holding it (revoke, deny, principal rm), its slots on that keyring are removed and
the namespace is rekeyed, and the versions it could already read are reported (copies it took, or
keys it kept, cannot be taken back; ``rekey --reencrypt`` is the remedy for the latter). Any other
pattern is enforced by policy only. ``push`` alone adds no slot: pushing needs the keyring, which
also decrypts (write implies read), so a push-only grant cannot be used until read is granted too.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from vault.access.delegation import accept_chain, delegated_admin_keys, document_digest
from vault.access.enforcement import GrantView, enforcement, holds_keyring_read, keyring_namespace
from vault.access.patterns import STAR, Capability, Rule
from vault.access.policy import (
    AccessPolicy,
    Explanation,
    explain,
    sign_access_policy,
)
from vault.access.principals import Principal, new_principal
from vault.catalog.access import AccessIndex, GrantIndexRow, PrincipalIndexRow
from vault.clientstate.pins import TrustPins
from vault.errors import IntegrityError, MlvaultError, PermissionDeniedError

if TYPE_CHECKING:
    from vault.access.records import ProvenanceRecords
    from vault.catalog import ArtifactRow, VersionRow
    from vault.clientstate import ClientState
    from vault.clientstate.identities import PublicIdentity
    from vault.keys.admin import SlotInfo
    from vault.repository.reencrypt import RekeyReport
    from vault.signing.signers import Signer

ACCESS_PINS_FILE = "access-pins.json"
Clock = Callable[[], dt.datetime]
AuditSink = Callable[[str, str, Mapping[str, Any]], object]  # (action, target, details)


def access_pins(state: ClientState) -> TrustPins:
    """This client's pinned access-policy admin keys and highest accepted serial."""
    return TrustPins(state.root / ACCESS_PINS_FILE)


class KeyringAdmin(Protocol):
    """What read grants need from the vault: its key slots and the versions in a namespace."""

    def key_slots(self) -> list[SlotInfo]:
        """Every key slot with its catalog record."""
        ...

    def add_recipient(self, public: PublicIdentity, namespace: str, *, label: str | None = None) -> str:
        """Wrap ``namespace``'s keyring to ``public``; returns the slot id."""
        ...

    def remove_slot(self, slot_id: str) -> SlotInfo:
        """Delete one key slot."""
        ...

    def rekey(self, namespace: str) -> RekeyReport:
        """A new data-key epoch for ``namespace``."""
        ...

    def list_artifacts(self, prefix: str = "") -> list[ArtifactRow]:
        """Artifacts under ``prefix``."""
        ...

    def log(self, artifact: str) -> list[VersionRow]:
        """Versions of ``artifact``, newest first."""
        ...


@dataclass(frozen=True)
class KeyChange:
    """A slot added for a read grant, or slots removed (and the namespace rekeyed) for a revoke."""

    namespace: str
    principal: str
    added_slot: str | None = None
    removed_slots: tuple[str, ...] = ()
    epoch: int | None = None  # the newest epoch after the rekey
    readable_before: tuple[str, ...] = ()  # versions the principal could read before (ns/name@vN)


@dataclass(frozen=True)
class AccessState:
    """The verified policy (None: the vault has none), who signed it, and what this call changed."""

    policy: AccessPolicy | None
    signer: str | None = None
    pinned_now: str | None = None
    key_changes: tuple[KeyChange, ...] = ()


class AccessControl:
    """Read, verify and change one vault's access policy, with this client's pins."""

    def __init__(
        self,
        store: AccessIndex,
        pins: TrustPins,
        root_pins: TrustPins,
        keyrings: KeyringAdmin,
        *,
        vault_id: str,
        actor: str,
        clock: Clock,
        records: ProvenanceRecords | None = None,
        audit: AuditSink | None = None,
    ) -> None:
        self._store = store
        self._pins = pins
        self._root_pins = root_pins
        self._keyrings = keyrings
        self._vault_id = vault_id
        self._actor = actor
        self._clock = clock
        self._records = records
        self._audit = audit

    # -- reading --------------------------------------------------------------------------------

    def current(self) -> AccessState:
        """The newest stored policy, verified under the pinned admin key (pinned now on first use)."""
        vault_id = self._vault_id
        row = self._store.latest_access_policy()
        pinned = self._pinned()
        seen = self._pins.policy_serial(vault_id)
        if row is None:
            if seen:
                raise IntegrityError(
                    f"the access policy of vault {vault_id} is missing from the catalog, but this client has "
                    f"accepted serial {seen}: the catalog was rolled back or tampered with; restore it"
                )
            return AccessState(None)
        if row.serial < seen:
            raise IntegrityError(
                f"the access policy (serial {row.serial}) is older than serial {seen}, which this client "
                "has already accepted: the catalog was rolled back or tampered with"
            )
        digest, seen_digest = document_digest(row.document), self._pins.policy_digest(vault_id)
        accepted = accept_chain(
            row,
            self._store.access_policy,
            roots=pinned,
            seen=(seen, seen_digest),
            vault_id=vault_id,
            today=self._clock().date(),
        )
        pinned_now = self._pin(accepted.root) if accepted.root else None
        if (row.serial, digest) != (seen, seen_digest):
            self._pins.record_serial(vault_id, row.serial, digest=digest)
        return AccessState(accepted.policy, accepted.signer, pinned_now)

    def pinned_admins(self) -> tuple[str, ...]:
        """The admin keys this client pinned for the vault (access pins, else the trust admin)."""
        return self._pinned()

    def principals(self, *, include_removed: bool = False) -> list[Principal]:
        """The principals of the policy, by name (removed ones only when asked)."""
        policy = self.current().policy
        if policy is None:
            return []
        chosen = policy.principals if include_removed else tuple(policy.live())
        return sorted(chosen, key=lambda p: (p.name, p.removed_at is not None))

    def grants(self, principal: str | None = None) -> list[GrantView]:
        """Every rule (or one principal's), with what enforces it."""
        policy = self.current().policy
        if policy is None:
            return []
        only = policy.named(principal).id if principal else None
        every = self._keyrings.key_slots()
        slots = {(s.namespace, s.recipient) for s in every if s.kind == "x25519"}
        own = {s.namespace for s in every if s.namespace and "/" in s.namespace}  # vault.keys.subtrees
        views = []
        for rule in sorted(policy.rules, key=lambda r: (r.principal_id, r.pattern, r.deny)):
            who = policy.by_id(rule.principal_id)
            if who is None or (only and rule.principal_id != only):
                continue
            by, note = enforcement(policy, who, rule, slots, own)
            caps = tuple(sorted(c.value for c in rule.capabilities))
            views.append(GrantView(who.name, who.id, rule.pattern, caps, rule.deny, by, note))
        return sorted(views, key=lambda v: (v.principal, v.pattern, v.deny))

    def explain(self, name: str, action: str, path: str) -> Explanation:
        """May principal ``name`` do ``action`` on ``path``, and which rule decides."""
        return explain(self.current().policy, name, action, path, self._clock().date())

    # -- changing -------------------------------------------------------------------------------

    def add_principal(
        self,
        name: str,
        identity: PublicIdentity,
        admin: Signer,
        *,
        kind: str = "user",
        expires: dt.date | None = None,
    ) -> AccessState:
        """Add a principal with a fresh id (no grants)."""
        new = new_principal(name, identity, kind=kind, expires=expires, at=self._clock())
        return self._change(
            admin, lambda p: p.with_principal(new), audit=("principal", name, {"change": "add"})
        )

    def remove_principal(self, name: str, admin: Signer) -> AccessState:
        """Remove a principal: its rules go, its keyring slots go and those namespaces are rekeyed."""
        return self._change(
            admin,
            lambda p: p.without_principal(name, self._clock()),
            touched=(name, None),
            audit=("principal", name, {"change": "remove"}),
        )

    def rename_principal(self, name: str, new_name: str, admin: Signer) -> AccessState:
        """Rename a principal; it keeps its id and grants."""
        return self._change(
            admin,
            lambda p: p.renamed(name, new_name),
            audit=("principal", name, {"change": "rename", "to": new_name}),
        )

    def grant(
        self, name: str, pattern: str, capabilities: frozenset[Capability], admin: Signer
    ) -> AccessState:
        """Grant capabilities on a pattern (a union with what the pattern already grants)."""
        caps = sorted(c.value for c in capabilities)
        return self._change(
            admin,
            lambda p: p.granted(name, pattern, capabilities),
            touched=(name, pattern),
            audit=("grant", pattern, {"principal": name, "capabilities": caps}),
        )

    def deny(self, name: str, pattern: str, admin: Signer) -> AccessState:
        """An explicit deny on a pattern."""
        return self._change(
            admin,
            lambda p: p.denied(name, pattern),
            touched=(name, pattern),
            audit=("deny", pattern, {"principal": name}),
        )

    def revoke(
        self,
        name: str,
        pattern: str,
        capabilities: frozenset[Capability],
        admin: Signer,
        *,
        deny: bool = False,
    ) -> AccessState:
        """Remove capabilities from the grant on ``pattern`` (or, with ``deny``, the deny on it)."""

        def edit(policy: AccessPolicy) -> AccessPolicy:
            return policy.undenied(name, pattern) if deny else policy.revoked(name, pattern, capabilities)

        caps = [] if deny else sorted(c.value for c in capabilities)
        details = {"principal": name, "capabilities": caps, "deny": deny}
        return self._change(admin, edit, touched=(name, pattern), audit=("revoke", pattern, details))

    def _change(
        self,
        admin: Signer,
        edit: Callable[[AccessPolicy], AccessPolicy],
        *,
        touched: tuple[str, str | None] | None = None,
        audit: tuple[str, str, dict[str, Any]] | None = None,
    ) -> AccessState:
        state = self.current()
        admin_fp = admin.fingerprint()
        pinned = self._pinned()
        root = not pinned or admin_fp in pinned
        if not root and (
            state.policy is None or admin_fp not in delegated_admin_keys(state.policy, self._clock().date())
        ):
            serial = state.policy.serial if state.policy else 0
            raise PermissionDeniedError(
                f"admin key {admin_fp[:16]} is not a pinned admin key of vault {self._vault_id} "
                f"({', '.join(p[:16] for p in pinned)}) nor the signing key of a live user principal holding "
                f"admin on '*' at access policy serial {serial} (service principals never sign policies); "
                "sign access changes with --admin-key of such a key (or --identity of an admin principal)"
            )
        before = state.policy or AccessPolicy(self._vault_id)
        after = edit(before)
        if self._records is not None:
            after = self._records.with_provenance(state.policy, before, after, pinned or (admin_fp,))
        document = sign_access_policy(after, admin)
        self._store.store_access_policy(
            after.serial,
            document,
            principals=[_index_row(p) for p in after.principals],
            grants=[_grant_row(r) for r in after.rules],
            created_by=self._actor,
            at=self._clock(),
        )
        pinned_now = (self._pin(admin_fp) if root else None) or state.pinned_now
        self._pins.record_serial(self._vault_id, after.serial, digest=document_digest(document))
        changes: tuple[KeyChange, ...] = ()
        if touched is not None:
            changes = self._reconcile(before, after, *touched)
        if self._audit is not None and audit is not None:
            action, target, details = audit
            self._audit(action, target, {**details, "serial": after.serial})
        return AccessState(after, admin_fp, pinned_now, changes)

    def _pinned(self) -> tuple[str, ...]:
        return self._pins.admins(self._vault_id) or self._root_pins.admins(self._vault_id)

    def _pin(self, fingerprint: str) -> str | None:
        if self._pins.admins(self._vault_id):
            return None
        first_use = not self._root_pins.admins(self._vault_id)
        self._pins.pin(self._vault_id, fingerprint)
        return fingerprint if first_use else None

    # -- read grants as key slots ---------------------------------------------------------------

    def _reconcile(
        self, before: AccessPolicy, after: AccessPolicy, name: str, pattern: str | None
    ) -> tuple[KeyChange, ...]:
        who = before.named(name)
        now = after.by_id(who.id)
        assert now is not None
        every = self._keyrings.key_slots()
        slots = [
            s
            for s in every
            if s.kind == "x25519" and s.opens == "keyring" and s.recipient == who.fingerprint and s.namespace
        ]
        if pattern is None or pattern == STAR:
            namespaces = {s.namespace for s in slots if s.namespace}
        else:  # a deeper namespace counts when it has a keyring of its own (vault.keys.subtrees)
            namespace = keyring_namespace(
                pattern, {s.namespace for s in every if s.namespace and "/" in s.namespace}
            )
            namespaces = {namespace} if namespace else set()
            if pattern.endswith("/*"):  # and slots held below it (a deny on team/* reaches team/secret)
                namespaces |= {ns for s in slots if (ns := s.namespace) and f"{ns}/".startswith(pattern[:-1])}
        changes = []
        for ns in sorted(namespaces):
            held = [s.slot_id for s in slots if s.namespace == ns]
            wanted = holds_keyring_read(after, now, ns)
            if wanted and not held:
                slot = self._keyrings.add_recipient(now.identity, ns, label=f"principal {now.name}")
                changes.append(KeyChange(ns, now.name, added_slot=slot))
            elif held and not wanted:
                changes.append(self._withdraw(who, ns, held))
        return tuple(changes)

    def _withdraw(self, who: Principal, namespace: str, slot_ids: list[str]) -> KeyChange:
        readable = tuple(
            f"{v.artifact}@v{v.number}"
            for a in self._keyrings.list_artifacts(f"{namespace}/")
            for v in reversed(self._keyrings.log(a.name))
        )
        for slot_id in slot_ids:
            self._keyrings.remove_slot(slot_id)
        try:
            report = self._keyrings.rekey(namespace)
        except MlvaultError as exc:
            raise type(exc)(
                f"{who.name}'s key slot on namespace {namespace} was removed and the policy changed, but the "
                f"rekey failed ({exc}); run `mlvault rekey {namespace}`"
            ) from exc
        return KeyChange(
            namespace,
            who.name,
            removed_slots=tuple(slot_ids),
            epoch=report.rekey.epoch,
            readable_before=readable,
        )


def _index_row(p: Principal) -> PrincipalIndexRow:
    expires = p.expires.isoformat() if p.expires else None
    return PrincipalIndexRow(
        p.id, p.name, p.kind, p.fingerprint, p.signing_fingerprint, expires, p.removed_at
    )


def _grant_row(r: Rule) -> GrantIndexRow:
    return GrantIndexRow(r.principal_id, r.pattern, ",".join(sorted(c.value for c in r.capabilities)), r.deny)
