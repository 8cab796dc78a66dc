"""Audit checkpoints: (sequence, chain hash) signed by the actor and stored write-once in storage.

A checkpoint pins the audit chain at one row. Because it lives in storage, not in the catalog,
whoever can rewrite the catalog's audit table cannot make the table agree with it: truncating the
table or rewriting it wholesale is caught by :func:`vault.audit.chain.verify`.

Stored object layout (big-endian)::

    magic "MLVA" | version u8 = 1 | reserved 3 B = 0 | vault id 16 B | seq u64 | at i64
    | chain hash 32 B | signer length u16 | signer | signature length u16 | signature

``seq`` is the sequence number of the row the checkpoint pins (1 ≤ seq < 2**63); ``at`` is the
time it was written, in microseconds since 1970-01-01T00:00:00Z; ``chain hash`` is the stored hash
of that row (:func:`vault.audit.chain.row_hash`). ``signer`` is the signing principal's id in UTF-8
(1..256 bytes); ``signature`` (0..1024 bytes) is over every byte before the signature length field
(:meth:`SignedCheckpoint.signed_bytes`), so it binds the magic, version, vault, row, time and
signer. What a valid signature is, and who may sign checkpoints, is the business of a
:class:`CheckpointVerifier`; this module only encodes and decodes. A decoder refuses a bad magic,
another version, non-zero reserved bytes, a length over its cap or past the end, invalid UTF-8 and
trailing bytes, each as :class:`~vault.errors.IntegrityError` (a stored object was altered).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Protocol

from vault.errors import IntegrityError, UsageError

MAGIC = b"MLVA"
VERSION = 1
HASH_SIZE = 32
VAULT_ID_SIZE = 16
MAX_SIGNER_BYTES = 256
MAX_SIGNATURE_BYTES = 1024
MAX_SEQ = (1 << 63) - 1
_HEAD = struct.Struct(">4sB3s16sQq32sH")  # through the signer length
_SIG_LEN = struct.Struct(">H")
MAX_CHECKPOINT_BYTES = _HEAD.size + MAX_SIGNER_BYTES + _SIG_LEN.size + MAX_SIGNATURE_BYTES
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class Checkpoint:
    """The audit chain's hash after row ``seq``."""

    seq: int
    hash: bytes


@dataclass(frozen=True)
class SignedCheckpoint:
    """A checkpoint as stored: bound to a vault, timed, and signed by a principal."""

    vault_id: bytes
    checkpoint: Checkpoint
    at: datetime
    signer: str
    signature: bytes = b""

    def signed_bytes(self) -> bytes:
        """The bytes the signature covers: the encoding up to and including the signer."""
        return _head(self)


class CheckpointVerifier(Protocol):
    """Checks a checkpoint's signature and that its signer may sign checkpoints for the vault."""

    def verify_checkpoint(self, checkpoint: SignedCheckpoint) -> None:
        """Return if the signature is valid and trusted; raise a VerificationError otherwise."""


def micros(at: datetime) -> int:
    """Microseconds since the Unix epoch of an aware datetime (UsageError if naive)."""
    if at.tzinfo is None or at.utcoffset() is None:
        raise UsageError(f"time {at.isoformat()} has no time zone")
    return (at - _EPOCH) // timedelta(microseconds=1)


def _head(cp: SignedCheckpoint) -> bytes:
    try:
        signer = cp.signer.encode("utf-8", "strict")
    except UnicodeEncodeError:
        signer = b""
    if not 1 <= len(signer) <= MAX_SIGNER_BYTES:
        raise UsageError(f"checkpoint signer must be 1 to {MAX_SIGNER_BYTES} bytes of UTF-8")
    if len(cp.vault_id) != VAULT_ID_SIZE or len(cp.checkpoint.hash) != HASH_SIZE:
        raise UsageError(f"checkpoint needs a {VAULT_ID_SIZE}-byte vault id and a {HASH_SIZE}-byte hash")
    if not 1 <= cp.checkpoint.seq <= MAX_SEQ:
        raise UsageError(f"checkpoint sequence {cp.checkpoint.seq} out of range")
    fields = (cp.vault_id, cp.checkpoint.seq, micros(cp.at), cp.checkpoint.hash, len(signer))
    return _HEAD.pack(MAGIC, VERSION, bytes(3), *fields) + signer


def encode_checkpoint(cp: SignedCheckpoint) -> bytes:
    """The stored bytes of a checkpoint (UsageError if a field is out of range)."""
    if len(cp.signature) > MAX_SIGNATURE_BYTES:
        raise UsageError(f"checkpoint signature longer than {MAX_SIGNATURE_BYTES} bytes")
    return _head(cp) + _SIG_LEN.pack(len(cp.signature)) + cp.signature


def decode_checkpoint(data: bytes) -> SignedCheckpoint:
    """Parse stored checkpoint bytes; IntegrityError if they are not exactly one valid checkpoint."""
    if len(data) > MAX_CHECKPOINT_BYTES:
        raise IntegrityError("audit checkpoint too large")
    if len(data) < _HEAD.size:
        raise IntegrityError("audit checkpoint truncated")
    magic, version, reserved, vault_id, seq, at_us, chain_hash, signer_len = _HEAD.unpack_from(data)
    if magic != MAGIC:
        raise IntegrityError("not an audit checkpoint (bad magic)")
    if version != VERSION:
        raise IntegrityError(f"audit checkpoint version {version} is not one mlvault writes")
    if reserved != bytes(3):
        raise IntegrityError("audit checkpoint has non-zero reserved bytes")
    if not 1 <= seq <= MAX_SEQ or not 1 <= signer_len <= MAX_SIGNER_BYTES:
        raise IntegrityError("audit checkpoint has a field out of range")
    offset = _HEAD.size + signer_len
    if len(data) < offset + _SIG_LEN.size:
        raise IntegrityError("audit checkpoint truncated")
    (sig_len,) = _SIG_LEN.unpack_from(data, offset)
    if sig_len > MAX_SIGNATURE_BYTES:
        raise IntegrityError("audit checkpoint signature length over its cap")
    end = offset + _SIG_LEN.size + sig_len
    if len(data) != end:
        raise IntegrityError(
            "audit checkpoint truncated" if len(data) < end else "audit checkpoint has trailing bytes"
        )
    try:
        signer = data[_HEAD.size : offset].decode("utf-8", "strict")
        at = _EPOCH + timedelta(microseconds=at_us)
    except (UnicodeDecodeError, OverflowError) as exc:
        raise IntegrityError("audit checkpoint has a malformed signer or time") from exc
    return SignedCheckpoint(vault_id, Checkpoint(seq, chain_hash), at, signer, data[end - sig_len : end])
