"""The capability gate: who is calling, and may they do this — asked before any work is done.

**The caller.** A command run with ``--identity`` acts as the principal of the access policy whose
identity is that one: its X25519 fingerprint and its signing-key fingerprint both match the
identity's public half, which is read without the identity's passphrase (so a file pairing one's
own X25519 key with someone else's signing key matches nobody). A command run without an identity
acts as the vault **owner** (whoever opens the owner key with a passphrase or KMS), who is admin on
everything, so no policy is read for it. A vault with **no access policy** yet is in single-user
mode: every caller may do everything. Under a policy, an identity that is no live principal (never
added, removed, or past its expiry date) may do nothing, and the error says which of these it is.

**The question.** :meth:`Gate.require` asks for one capability on one or more artifact paths and
raises :class:`~vault.errors.PermissionDeniedError` (exit 15) naming the principal, the capability,
the path and the deciding rule, in the words of ``mlvault access explain``
(:func:`vault.access.policy.explain`). :meth:`Gate.require_admin` asks for ``admin`` on ``*``:
principals, grants, keys, rekey, check, backups, audit and the trust policy. :meth:`Gate.visible`
keeps the names the caller may ``list``, computed here in Python so that a catalog can then filter
with ``IN`` (never SQL ``LIKE``).

**No cache.** Every question reads the newest policy row afresh through the ``policy`` callable
(:class:`PolicyReader`), so a grant or a revoke counts from the next command on; only the
verification of a document byte-identical to the one verified last is skipped.

**What the gate is.** It gives a clear early answer; it is not what makes access control hold.
Read is enforced by keys (a caller without a key slot cannot decrypt), writes by signatures that
readers check, and the policy by the admin signature clients pin. A Python caller who builds the
vault's parts by hand can skip the gate, but not the keys.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from vault.access.patterns import STAR, Capability, as_capability, visible
from vault.access.policy import ACTIONS, AccessPolicy, document_signer, explain, verify_access_policy
from vault.access.principals import Principal
from vault.clientstate.identities import PublicIdentity
from vault.errors import IntegrityError, PermissionDeniedError

if TYPE_CHECKING:
    from vault.access.service import AccessControl
    from vault.catalog.access import AccessPolicyRow


class PolicyStore(Protocol):
    """Where the signed policy documents are (the catalog)."""

    def latest_access_policy(self) -> AccessPolicyRow | None:
        """The newest stored document, or None."""
        ...


PolicySource = Callable[[], AccessPolicy | None]
CallerSource = Callable[[], PublicIdentity]
Clock = Callable[[], dt.datetime]

OWNER = "owner"
SINGLE_USER = "single-user"
PRINCIPAL = "principal"


@dataclass(frozen=True)
class Caller:
    """Who a command acts as: the owner, anyone (no policy yet), or a live principal."""

    kind: str  # OWNER, SINGLE_USER or PRINCIPAL
    policy: AccessPolicy | None = None
    principal: Principal | None = None

    @property
    def unrestricted(self) -> bool:
        """The owner, or anyone while the vault has no access policy."""
        return self.kind != PRINCIPAL

    @property
    def name(self) -> str:
        """The principal's name, or the kind of unrestricted caller."""
        return self.principal.name if self.principal else self.kind


class Gate:
    """Answers capability questions for one open vault; reads the policy on every question."""

    def __init__(self, policy: PolicySource, caller: CallerSource | None, clock: Clock) -> None:
        self._policy = policy
        self._caller = caller
        self._clock = clock

    def caller(self) -> Caller:
        """The caller under the current policy; ``PermissionDeniedError`` if it is no live principal."""
        if self._caller is None:
            return Caller(OWNER)
        policy = self._policy()
        if policy is None:
            return Caller(SINGLE_USER)
        return Caller(PRINCIPAL, policy, _principal_of(policy, self._caller(), self._clock().date()))

    def require(self, capability: str | Capability, *paths: str, action: str | None = None) -> Caller:
        """``PermissionDeniedError`` unless the caller holds ``capability`` on every path."""
        cap = as_capability(capability)
        caller = self.caller()
        if caller.unrestricted:
            return caller
        assert caller.policy is not None and caller.principal is not None
        word = action if action in ACTIONS else cap.value
        today = self._clock().date()
        for path in paths:
            answer = explain(caller.policy, caller.principal.name, word, path, today)
            if not answer.allowed:
                raise PermissionDeniedError(
                    f"permission denied: principal {caller.name} may not {word} {answer.path} "
                    f"(needs {cap.value}): {answer.reason}"
                )
        return caller

    def require_admin(self, action: str) -> Caller:
        """``PermissionDeniedError`` unless the caller holds ``admin`` on ``*`` (no deny on ``*``)."""
        caller = self.caller()
        if caller.unrestricted:
            return caller
        assert caller.policy is not None and caller.principal is not None
        who = caller.principal
        if who.id in caller.policy.admins():
            return caller
        on_star = [r for r in caller.policy.rules_of(who.id) if r.pattern == STAR]
        if any(r.deny for r in on_star):
            reason = f"denied by deny * to {who.name}: a deny wins over every grant, admin included"
        elif on_star:
            caps = ",".join(sorted(c.value for r in on_star for c in r.capabilities))
            reason = f"grant * ({caps}) to {who.name} lacks admin"
        else:
            reason = f"default deny: no rule of {who.name} grants admin on '*'"
        raise PermissionDeniedError(
            f"permission denied: principal {who.name} may not {action} (needs admin on '*'): {reason}"
        )

    def require_listing(self, action: str) -> Caller:
        """``PermissionDeniedError`` unless the caller may ``list`` somewhere (``ls``: a principal
        with no such grant is refused rather than shown an empty list)."""
        caller = self.caller()
        if caller.unrestricted:
            return caller
        assert caller.principal is not None and caller.policy is not None
        grants = [r for r in caller.policy.rules_of(caller.principal.id) if not r.deny]
        if not any(r.allows(Capability.LIST) for r in grants):
            raise PermissionDeniedError(
                f"permission denied: principal {caller.name} may not {action} (needs list): no rule of "
                f"{caller.name} grants list on any path"
            )
        return caller

    def require_explain(self, principal: str) -> Caller:
        """Any live principal may ask ``access explain`` about itself; about others only an admin."""
        caller = self.caller()
        if not caller.unrestricted and caller.name != principal:
            self.require_admin(f"explain {principal}'s access")
        return caller

    def require_member(self) -> Caller:
        """``PermissionDeniedError`` unless the caller is unrestricted or a live, unexpired principal."""
        return self.caller()

    def visible(self, names: Iterable[str], caller: Caller | None = None) -> set[str] | None:
        """The names the caller may ``list``; None when the caller may list everything."""
        caller = caller or self.caller()
        if caller.unrestricted:
            return None
        assert caller.policy is not None and caller.principal is not None
        return visible(caller.policy.rules, caller.principal.id, names, Capability.LIST)


def _principal_of(policy: AccessPolicy, identity: PublicIdentity, today: dt.date) -> Principal:
    """The live principal ``identity`` belongs to, or ``PermissionDeniedError`` saying why none."""
    fingerprint = identity.fingerprint
    signing = identity.signing_fingerprint
    # both halves must match: an identity file's public part is read without its passphrase, so
    # one's own X25519 key beside someone else's signing key must not make one that someone
    mine = [p for p in policy.principals if p.fingerprint == fingerprint and p.signing_fingerprint == signing]
    live = [p for p in mine if p.live]
    if live:
        who = live[0]
        if who.expired(today):
            raise PermissionDeniedError(
                f"permission denied: principal {who.name} (identity {identity.name}) expired on "
                f"{who.expires}; an admin can add it again with a later --expires"
            )
        return who
    if mine:
        gone = max(mine, key=lambda p: p.removed_at or dt.datetime.min.replace(tzinfo=dt.UTC))
        raise PermissionDeniedError(
            f"permission denied: identity {identity.name} ({fingerprint[:16]}) was principal {gone.name}, "
            f"removed at {gone.removed_at:%Y-%m-%d %H:%M} UTC; it may do nothing in this vault"
        )
    raise PermissionDeniedError(
        f"permission denied: identity {identity.name} ({fingerprint[:16]}) is not a principal of this "
        f"vault's access policy (serial {policy.serial}), so it may do nothing here; an admin can add it "
        "with `mlvault principal add`"
    )


class PolicyReader:
    """The newest access policy, read from the catalog on every call and verified with the pins.

    Verifying parses every principal's keys and checks a signature; a command asks twice (the CLI
    before unlocking, the facade method again), so the policy verified last is reused while the
    newest stored document is *byte for byte* the one verified: the row itself is read every
    time, so a new serial counts at once, and pins only ever accept more.
    """

    def __init__(
        self, store: PolicyStore, vault_id: str, control: Callable[[], AccessControl | None]
    ) -> None:
        self._store = store
        self._vault_id = vault_id
        self._control = control
        self._last: tuple[bytes, AccessPolicy] | None = None

    def __call__(self) -> AccessPolicy | None:
        """The verified newest policy, or None when the vault has none."""
        row = self._store.latest_access_policy()
        if row is not None and self._last is not None and self._last[0] == row.document:
            return self._last[1]
        control = self._control()
        if control is None:
            policy = unpinned_policy(row.document if row else None, self._vault_id)
        else:
            policy = control.current().policy
        if row is not None and policy is not None and policy.serial == row.serial:
            self._last = (row.document, policy)
        return policy


def unpinned_policy(document: bytes | None, vault_id: str) -> AccessPolicy | None:
    """A stored policy checked against the key that signed it, for a vault opened without client
    state (no pins to check it against: the Python API's ``vault.open`` without ``client_state``)."""
    if document is None:
        return None
    signer = document_signer(document)
    policy = verify_access_policy(document, [signer] if signer else [])
    if policy.vault_id != vault_id:
        raise IntegrityError(
            f"the access policy in this catalog was written for vault {policy.vault_id or '(none)'}, "
            f"not {vault_id}: it was copied from another vault"
        )
    return policy
