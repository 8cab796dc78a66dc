"""Audit checkpoints in storage: written once under ``audit/<seq>``, signed when a key is at hand.

A checkpoint (:mod:`vault.audit.checkpoint`) pins the chain at one row. It goes to storage, not
the catalog, so whoever can rewrite the catalog cannot make the table agree with it. Objects are
write-once: a second checkpoint for the same row (another process pinned it first) is left as it
is, and ``audit verify`` holds the chain to every checkpoint it finds.

**Signing.** When the command runs with an identity (``--identity``), the checkpoint is signed
with the identity's ECDSA P-256 key over :meth:`SignedCheckpoint.signed_bytes`, DER signature,
and its ``signer`` field is ``p256:`` + base64 of the key's SubjectPublicKeyInfo (129 bytes), so
the checkpoint carries what checks it. Otherwise it is written unsigned, ``signer`` =
``unsigned`` and an empty signature. :class:`CheckpointKeyVerifier` accepts both and refuses a
signature that does not verify under the key it names (exit 5 through ``audit verify``).

Why unsigned checkpoints still count: the attacker the checkpoints stop is a catalog writer
(a shared PostgreSQL) who cannot write storage. A storage writer can add checkpoints but not
remove or change the ones written (write-once; Object Lock on S3), and a planted checkpoint can
only make ``audit verify`` fail, never make a rewritten table pass: the chain must agree with
*every* checkpoint.

**Who may sign** (:class:`TrustedCheckpointSigners`, what ``audit verify`` uses): a signed
checkpoint counts only if its key is one this client pinned as the vault's root admin (the
trust- or access-policy admin pins: the owner identity's signing key on clients that opened the
owner key) or the signing key of a principal of the verified access policy that was live —
added, not yet removed, not expired — at the time the checkpoint says it was written. Any other
signer, even with a valid signature, is refused naming the key (exit 5): it is not a key the
vault knows, so the checkpoint was planted or the key was never granted anything.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
from collections.abc import Collection, Iterable
from datetime import datetime

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from vault import layout
from vault.audit.attribution import PolicyPrincipal, Principals
from vault.audit.checkpoint import (
    MAX_CHECKPOINT_BYTES,
    Checkpoint,
    SignedCheckpoint,
    decode_checkpoint,
    encode_checkpoint,
)
from vault.errors import IntegrityError, SignatureInvalidError, UntrustedSignerError
from vault.signing import keys
from vault.storage import Backend, ObjectExistsError

UNSIGNED = "unsigned"
P256_PREFIX = "p256:"


class CheckpointSigner:
    """Signs checkpoints with an ECDSA P-256 private key (an identity's signing key)."""

    def __init__(self, private_key: ec.EllipticCurvePrivateKey) -> None:
        self._key = private_key
        spki = private_key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        self.signer = P256_PREFIX + base64.b64encode(spki).decode("ascii")

    def sign(self, checkpoint: SignedCheckpoint) -> SignedCheckpoint:
        """``checkpoint`` with this key as signer and its signature."""
        named = dataclasses.replace(checkpoint, signer=self.signer, signature=b"")
        signature = self._key.sign(named.signed_bytes(), ec.ECDSA(hashes.SHA256()))
        return dataclasses.replace(named, signature=signature)


def make_checkpoint(
    vault_id: bytes, checkpoint: Checkpoint, at: datetime, signer: CheckpointSigner | None
) -> SignedCheckpoint:
    """A checkpoint ready to store: signed by ``signer``, or unsigned without one."""
    unsigned = SignedCheckpoint(vault_id, checkpoint, at, UNSIGNED)
    return unsigned if signer is None else signer.sign(unsigned)


class CheckpointKeyVerifier:
    """Accepts unsigned checkpoints and ones whose signature verifies under the key they name."""

    def verify_checkpoint(self, checkpoint: SignedCheckpoint) -> None:
        """Return if acceptable; SignatureInvalidError otherwise."""
        if checkpoint.signer == UNSIGNED:
            if checkpoint.signature:
                raise SignatureInvalidError("an unsigned checkpoint carries a signature")
            return
        if not checkpoint.signer.startswith(P256_PREFIX):
            raise SignatureInvalidError(f"unknown checkpoint signer kind {checkpoint.signer[:16]!r}")
        try:
            der = base64.b64decode(checkpoint.signer.removeprefix(P256_PREFIX), validate=True)
            public = keys.require_p256(serialization.load_der_public_key(der), "checkpoint signer")
            public.verify(checkpoint.signature, checkpoint.signed_bytes(), ec.ECDSA(hashes.SHA256()))
        except (binascii.Error, ValueError, InvalidSignature) as exc:
            raise SignatureInvalidError("the checkpoint signature does not verify") from exc


class TrustedCheckpointSigners(CheckpointKeyVerifier):
    """Valid signatures by a pinned root admin key or by a principal live when the checkpoint was
    written (see the module docstring); unsigned checkpoints as :class:`CheckpointKeyVerifier`."""

    def __init__(self, root_fingerprints: Collection[str], principals: Iterable[PolicyPrincipal]) -> None:
        self._roots = frozenset(root_fingerprints)
        self._principals = Principals(principals)

    def verify_checkpoint(self, checkpoint: SignedCheckpoint) -> None:
        """Return if acceptable; SignatureInvalidError or UntrustedSignerError naming the key otherwise."""
        super().verify_checkpoint(checkpoint)
        if checkpoint.signer == UNSIGNED:
            return
        fingerprint = signer_fingerprint(checkpoint)
        if fingerprint in self._roots:
            return
        live, ever = self._principals.live_signer(fingerprint, checkpoint.at)
        if live is not None:
            return
        when = f"{checkpoint.at:%Y-%m-%d %H:%M} UTC"
        if ever is not None:
            raise UntrustedSignerError(
                f"it is signed by key {fingerprint[:16]} of principal {ever}, which was not a live principal "
                f"at {when}, when the checkpoint says it was written"
            )
        raise UntrustedSignerError(
            f"it is signed by unknown key {fingerprint[:16]}: neither a pinned root admin key nor the "
            "signing key of a principal of the access policy"
        )


def signer_fingerprint(checkpoint: SignedCheckpoint) -> str:
    """``unsigned`` or the SHA-256 fingerprint (hex) of the key that signed it."""
    if checkpoint.signer == UNSIGNED:
        return UNSIGNED
    der = base64.b64decode(checkpoint.signer.removeprefix(P256_PREFIX))
    return keys.fingerprint(keys.require_p256(serialization.load_der_public_key(der), "checkpoint signer"))


def store_checkpoint(backend: Backend, checkpoint: SignedCheckpoint) -> bool:
    """Write ``checkpoint`` to ``audit/<seq>``; False if that object already exists."""
    try:
        backend.put(layout.audit_checkpoint_key(checkpoint.checkpoint.seq), encode_checkpoint(checkpoint))
    except ObjectExistsError:
        return False
    return True


def stored_checkpoint_seqs(backend: Backend) -> list[int]:
    """The rows pinned by checkpoints in storage, ascending (foreign keys under ``audit/`` skipped)."""
    seqs = (layout.parse_audit_checkpoint_key(key) for key in backend.list(layout.AUDIT_PREFIX))
    return sorted(seq for seq in seqs if seq is not None)


def load_checkpoints(backend: Backend) -> list[SignedCheckpoint]:
    """Every checkpoint in storage, decoded; IntegrityError naming the first that is not valid."""
    loaded = []
    for seq in stored_checkpoint_seqs(backend):
        key = layout.audit_checkpoint_key(seq)
        try:
            checkpoint = decode_checkpoint(backend.get(key, max_size=MAX_CHECKPOINT_BYTES))
        except IntegrityError as exc:
            raise IntegrityError(f"audit checkpoint {key} is damaged: {exc}") from exc
        if checkpoint.checkpoint.seq != seq:
            raise IntegrityError(f"audit checkpoint {key} names row {checkpoint.checkpoint.seq}")
        loaded.append(checkpoint)
    return loaded
