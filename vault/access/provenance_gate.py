"""What the Vault facade asks of provenance records: seal a push, record a tag move, check a read.

All of it applies only while the vault has an access policy: with none (a single-user vault) no
record is written and none is required. The policy and the pinned admin keys are read afresh on
every call, like the capability gate (:mod:`vault.access.gate`).

**Who signs.** With ``--identity``, that identity's signing key, as the live principal it belongs to
(or as root admin, if it is a pinned admin key and no principal). Without one, the caller acts as
the vault owner and signs with the owner identity's key (:mod:`vault.keys.owner_identity`, sealed
under the owner key, pinned as the root admin key). If neither is a principal of the policy or a
pinned admin key, the write is refused with exit 8, saying what to pass.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable
from typing import TYPE_CHECKING, Protocol

from vault.access.provenance import ATTEST
from vault.access.records import ProvenanceRecords, RecordSigner, record_signer
from vault.errors import ConfigurationError, PermissionDeniedError
from vault.refs import parse_ref

if TYPE_CHECKING:
    from vault.access.policy import AccessPolicy
    from vault.access.service import AccessControl
    from vault.catalog import Catalog
    from vault.catalog.provenance import RecordIndexRow
    from vault.catalog.rows import NewVersion, VersionRow
    from vault.keycache import KeyCache
    from vault.signing.signers import Signer
    from vault.storage import Backend

PolicySource = Callable[[], "AccessPolicy | None"]
AdminsSource = Callable[[], Collection[str]]
SignersSource = Callable[[], Iterable["Signer"]]
Seal = Callable[["NewVersion", int], "list[RecordIndexRow]"]


class VersionResolver(Protocol):
    """The catalog's lookup of a version by reference (no provenance check: attest fixes those)."""

    def resolve(
        self,
        artifact: str,
        *,
        number: int | None = None,
        tag: str | None = None,
        digest_prefix: str | None = None,
    ) -> VersionRow:
        """One version by number, tag, digest prefix, or the latest."""
        ...


class VaultProvenance:
    """Provenance records for one open vault, under its current access policy."""

    def __init__(
        self,
        records: ProvenanceRecords,
        versions: VersionResolver,
        policy: PolicySource,
        admins: AdminsSource,
        signers: SignersSource,
    ) -> None:
        self.records = records
        self._versions = versions
        self._policy = policy
        self._admins = admins
        self._signers = signers

    def sealer(self) -> Seal | None:
        """What a push calls once its version number is allocated (None: no policy, no record).

        The signer is found now, before any data is stored, so a push that could not be sealed
        fails first (exit 8).
        """
        policy = self._policy()
        if policy is None:
            return None
        who = self._signer(policy, "push")

        def seal(new: NewVersion, number: int) -> list[RecordIndexRow]:
            rows = [self.records.write_version(who, policy, new, number, index=False)]
            for tag in new.tags:
                rows.append(self.records.write_tag(who, policy, new.artifact, tag, new.id, index=False))
            return rows

        return seal

    def record_tag(self, version: VersionRow, tag: str) -> None:
        """Sign and store the move of ``tag`` to ``version`` (before the catalog row moves)."""
        policy = self._policy()
        if policy is not None:
            self.records.write_tag(self._signer(policy, "tag"), policy, version.artifact, tag, version.id)

    def check(self, version: VersionRow, tag: str | None = None) -> None:
        """``ProvenanceRefusedError`` (exit 13) unless records vouch for ``version`` (and ``tag``)."""
        policy = self._policy()
        if policy is None:
            return
        admins = self._admins()
        if tag is not None:
            self.records.check_tag(version.artifact, tag, version, policy, admins)
        self.records.check_version(version, policy, admins)

    def attest(self, ref: str, signer: Signer | None = None) -> tuple[VersionRow, str]:
        """An admin's record for the version ``ref`` names, whatever its other records say (signed by
        ``signer``, else the caller's key); returns the version and the record's digest."""
        policy = self._policy()
        if policy is None:
            raise ConfigurationError("the vault has no access policy: versions need no provenance record")
        parsed = parse_ref(ref)
        version = self._versions.resolve(
            parsed.artifact, number=parsed.number, tag=parsed.tag, digest_prefix=parsed.digest_prefix
        )
        who = self._signer(policy, "attest", [signer] if signer is not None else None)
        if who.principal_id is not None:
            p = policy.by_id(who.principal_id)
            name = p.name if p else who.principal_id
            if not _holds_admin(policy, who.principal_id, version.artifact):
                raise PermissionDeniedError(
                    f"permission denied: principal {name} may not attest {version.artifact} (needs admin)"
                )
        row = self.records.write_version(who, policy, version, version.number, kind=ATTEST)
        return version, row.digest

    def _signer(self, policy: AccessPolicy, what: str, given: list[Signer] | None = None) -> RecordSigner:
        admins = self._admins()
        found = record_signer(policy, self._signers() if given is None else given, admins)
        if found is None:
            raise ConfigurationError(
                f"under the vault's access policy every {what} is signed, and no key of yours is a "
                "principal's or a pinned admin key: pass --identity NAME of a principal holding it "
                "(or act as the vault owner, whose key is pinned as root admin)"
            )
        return found


def _holds_admin(policy: AccessPolicy, principal_id: str, artifact: str) -> bool:
    from vault.access.patterns import Capability, decide

    return decide(policy.rules, principal_id, artifact, Capability.ADMIN).allowed


def vault_signers(keys: KeyCache, backend: Backend) -> list[Signer]:
    """The caller's signing keys: the ``--identity`` one if given, else the owner identity's."""
    from vault.signing.signers import LocalSigner

    if keys.sources.identity is not None:
        identity = keys.identity()
        return [] if identity is None else [LocalSigner(identity.ecdsa_private)]
    from vault.keys.owner_identity import owner_signer

    return [owner_signer(keys, backend)]


def provenance_for(
    backend: Backend,
    catalog: Catalog,
    keys: KeyCache,
    vault_id: str,
    policy: PolicySource,
    access: Callable[[], AccessControl | None],
) -> VaultProvenance:
    """The provenance records of an open vault, under the policy ``policy`` reads (fresh each time);
    ``access`` is the client's view of the access policy (None: no client state)."""
    from vault.access.policy import document_signer

    def admins() -> Collection[str]:
        control = access()
        if control is not None:
            return control.pinned_admins()
        row = catalog.latest_access_policy()  # no client state: the policy's own signer
        signer = document_signer(row.document) if row else None
        return (signer,) if signer else ()

    records = ProvenanceRecords(backend, catalog, vault_id=vault_id, clock=keys.clock)
    return VaultProvenance(records, catalog, policy, admins, lambda: vault_signers(keys, backend))
