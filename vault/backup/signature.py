"""Snapshot signatures: who may write a backup snapshot, and the signature block that says who did.

A sealed snapshot is sealed to the recovery recipients' *public* keys, so sealing alone proves
nothing about who wrote it. The envelope (:mod:`vault.backup.snapshot`) therefore ends with a
**signature block** (big-endian)::

    kind u8 = 0 (unsigned) | 1 (ECDSA P-256, SHA-256)
    kind 1: key length u16 (1..MAX_KEY_DER) | DER SubjectPublicKeyInfo | signature length u8
            (1..MAX_SIGNATURE) | DER signature

The signature is over :func:`signed_message`: the domain string ``mlvault/backup-snapshot/v1``
and a NUL, the vault id (16), the snapshot id (16), SHA-256 of every envelope byte before the
block (header, stanzas, sealed body) and SHA-256 of the object list as stored. So one signature
binds both parts of a snapshot to each other and to its name; a block moved to another snapshot,
or a list swapped for another, does not verify. Checking it needs no private key, so ``forget`` and
``verify`` do it on every snapshot before they trust its object list.

**Who is accepted** (:class:`Acceptance`): the pinned admin keys of the vault, and the signing keys
of the *service* principals of the vault's admin-signed access policy — a removed one only for
snapshots created before its removal, an expiring one only for snapshots created by the end of
its expiry date (UTC), both judged by the creation time the signature covers. Nothing the target
or the catalog holds can add a key: the policy counts only once verified under a pinned admin key
(by :mod:`vault.access.service` on the vault side, by :mod:`vault.backup.anchor` against
``--admin-key-fingerprint`` or this client's pins on the restore side). An **unsigned** snapshot
is accepted only while the policy lists no service principal at all; once one is listed, unsigned
snapshots are refused, so stripping the signature is no downgrade.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import struct
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from vault.errors import ConfigurationError, IntegrityError, UsageError
from vault.formats import ALTERED
from vault.signing import keys
from vault.signing.signers import Signer

DOMAIN = b"mlvault/backup-snapshot/v1\x00"
KIND_UNSIGNED = 0
KIND_ECDSA_P256 = 1
MAX_KEY_DER = 256  # a P-256 SubjectPublicKeyInfo is 91 bytes
MAX_SIGNATURE = 80  # a DER ECDSA P-256 signature is at most 72 bytes
_KEY_LEN = struct.Struct(">H")
SERVICE = "service"


def signed_message(vault_id: bytes, snapshot_id: bytes, sealed_part: bytes, object_list: bytes) -> bytes:
    """What a snapshot's signature covers (see the module docstring)."""
    if len(vault_id) != 16 or len(snapshot_id) != 16:
        raise ValueError("vault id and snapshot id are 16 bytes")
    return (
        DOMAIN
        + vault_id
        + snapshot_id
        + hashlib.sha256(sealed_part).digest()
        + hashlib.sha256(object_list).digest()
    )


@dataclass(frozen=True)
class SnapshotSignature:
    """A parsed signature block (kind 1); not verified yet."""

    key_der: bytes
    signature: bytes

    @property
    def fingerprint(self) -> str:
        """The signing key's fingerprint (SHA-256 of its DER SubjectPublicKeyInfo), as policies list it."""
        return hashlib.sha256(self.key_der).hexdigest()

    def verify(self, message: bytes) -> None:
        """IntegrityError (exit 5) unless the signature over ``message`` verifies under its key."""
        try:
            key = keys.require_p256(serialization.load_der_public_key(self.key_der), "snapshot signer")
            key.verify(self.signature, message, ec.ECDSA(hashes.SHA256()))
        except (ValueError, UnsupportedAlgorithm, UsageError, InvalidSignature):
            raise IntegrityError(f"the snapshot's signature does not verify{ALTERED}") from None


def signature_block(message: bytes, signer: Signer | None) -> bytes:
    """The block to append: unsigned without ``signer``, else its signature over ``message``."""
    if signer is None:
        return bytes([KIND_UNSIGNED])
    der = signer.public_key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return block_from_parts(der, signer.sign(message))


def block_from_parts(key_der: bytes, signature: bytes) -> bytes:
    """A kind-1 block from its parts (the seam for known-answer vectors)."""
    if not 0 < len(key_der) <= MAX_KEY_DER or not 0 < len(signature) <= MAX_SIGNATURE:
        raise ValueError("signing key or signature of an impossible length")
    key = bytes([KIND_ECDSA_P256]) + _KEY_LEN.pack(len(key_der)) + key_der
    return key + bytes([len(signature)]) + signature


def parse_block(block: bytes) -> SnapshotSignature | None:
    """The signature in ``block`` (all of the envelope after the body), None when unsigned."""
    if not block:
        raise IntegrityError("snapshot truncated (no signature block)")
    kind = block[0]
    if kind == KIND_UNSIGNED and len(block) == 1:
        return None
    if kind != KIND_ECDSA_P256:
        raise IntegrityError(f"snapshot signature kind {kind} is not one this mlvault writes{ALTERED}")
    if len(block) < 1 + _KEY_LEN.size:
        raise IntegrityError("snapshot signature truncated")
    (key_len,) = _KEY_LEN.unpack_from(block, 1)
    offset = 1 + _KEY_LEN.size
    if not 0 < key_len <= MAX_KEY_DER or len(block) < offset + key_len + 1:
        raise IntegrityError(f"snapshot signature truncated or malformed{ALTERED}")
    key_der = block[offset : offset + key_len]
    sig_len = block[offset + key_len]
    signature = block[offset + key_len + 1 :]
    if not 0 < sig_len <= MAX_SIGNATURE or len(signature) != sig_len:
        raise IntegrityError(f"snapshot signature truncated or extended{ALTERED}")
    return SnapshotSignature(key_der, signature)


class PolicyPrincipal(Protocol):
    """What acceptance reads of a principal (a :class:`vault.access.principals.Principal` is one)."""

    @property
    def name(self) -> str: ...  # noqa: D102
    @property
    def kind(self) -> str: ...  # noqa: D102
    @property
    def signing_fingerprint(self) -> str: ...  # noqa: D102
    @property
    def removed_at(self) -> dt.datetime | None: ...  # noqa: D102
    @property
    def expires(self) -> dt.date | None: ...  # noqa: D102


@dataclass(frozen=True)
class Acceptance:
    """Which signers a vault's snapshots may carry (see the module docstring)."""

    admins: frozenset[str]
    # (signing fingerprint, name, removed at, expires)
    services: tuple[tuple[str, str, dt.datetime | None, dt.date | None], ...] = ()

    @classmethod
    def of(cls, admins: Iterable[str], principals: Iterable[PolicyPrincipal] = ()) -> Acceptance:
        """From the pinned admin fingerprints and the principals of a *verified* access policy."""
        found = [
            (p.signing_fingerprint, p.name, p.removed_at, p.expires) for p in principals if p.kind == SERVICE
        ]
        services = tuple(sorted(found, key=lambda s: (s[0], s[1])))
        return cls(frozenset(admins), services)

    @property
    def requires_signature(self) -> bool:
        """Whether the policy lists a service principal (then every snapshot must be signed)."""
        return bool(self.services)

    def signer_name(self, fingerprint: str, created_at: dt.datetime | None = None) -> str | None:
        """Who ``fingerprint`` is, if it may sign a snapshot created at ``created_at``; else None."""
        for fp, name, removed, expires in self.services:
            if fp != fingerprint:
                continue
            if removed is not None and (created_at is None or created_at >= removed):
                continue
            if expires is not None and (created_at is None or created_at.astimezone(dt.UTC).date() > expires):
                continue
            return f"service principal {name}"
        return "the admin key" if fingerprint in self.admins else None

    def check(
        self, signature: SnapshotSignature | None, message: bytes, created_at: dt.datetime, snapshot_id: str
    ) -> str:
        """Who signed the snapshot, or IntegrityError (exit 5) when it is not acceptable."""
        if signature is None:
            if self.requires_signature:
                raise IntegrityError(
                    f"snapshot {snapshot_id} is not signed, but the vault's access policy lists backup "
                    f"service principals ({', '.join(s[1] for s in self.services)}): refused"
                )
            return "unsigned"
        signature.verify(message)
        who = self.signer_name(signature.fingerprint, created_at)
        if who is None:
            raise IntegrityError(
                f"snapshot {snapshot_id} is signed by key {signature.fingerprint[:16]}, which is neither a "
                "service principal of the vault's access policy nor its pinned admin key: refused"
            )
        return who

    def check_job(self, signer: Signer | None, now: dt.datetime) -> str | None:
        """Before a run: the job's signer description, None to write unsigned snapshots, or
        ConfigurationError (exit 8) when the job cannot write snapshots the vault would accept."""
        if signer is None:
            if self.requires_signature:
                names = ", ".join(s[1] for s in self.services if s[2] is None) or "none live"
                raise ConfigurationError(
                    f"this vault's access policy lists backup service principals ({names}): run the backup "
                    "with the job's identity (--identity NAME or MLVAULT_IDENTITY; for cron an unencrypted "
                    "one, `mlvault identity new NAME --no-passphrase`)"
                )
            return None
        who = self.signer_name(signer.fingerprint(), now)
        if who is None:
            raise ConfigurationError(
                f"the identity's signing key {signer.fingerprint()[:16]} is not a service principal of this "
                "vault's access policy, so its snapshots would be refused: add it with `mlvault principal "
                "add NAME FILE.pub --kind service --admin-key ADMIN`, or run without --identity when the "
                "policy lists no service principal"
            )
        return who
