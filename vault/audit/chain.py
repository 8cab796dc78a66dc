"""The audit hash chain: one canonical encoding per row, each row's hash covering the one before.

**Canonical row** (``canonical(row)``): the UTF-8 bytes of the JSON object

    {"action": str, "at": "YYYY-MM-DDTHH:MM:SS.ffffffZ", "details": {...}, "outcome": str,
     "principal": str, "seq": int, "target": str, "v": 1}

with keys sorted by code point at every level, no whitespace (separators ``,`` and ``:``),
non-ASCII characters written as themselves (not ``\\u`` escapes), and the time converted to UTC
with exactly six fractional digits and a ``Z``. ``v`` is the encoding version. ``details`` may
hold only JSON objects with string keys, arrays, strings, booleans, null and integers within
±(2**53 - 1) (what every JSON reader agrees on); floats, NaN, lone surrogates, nesting deeper
than 16 and rows over 64 KiB are refused, so the encoding has one answer for every row.

**Chain**::

    genesis  = SHA-256("mlvault/audit/genesis/v1" ‖ 0x00 ‖ vault id (16 bytes))
    hash(n)  = SHA-256(hash(n-1) ‖ canonical(row n))        hash(0) = genesis, n = 1, 2, ...

The genesis binds the chain to one vault, and ``seq`` is inside each hashed row, so rows cannot be
moved between vaults or between positions. Each stored row keeps its previous hash and its hash.

**Verification** (:func:`verify`) walks the rows in sequence order and names the first bad row:
a missing or repeated sequence number (deleted, inserted or reordered rows), a row whose previous
hash is not its predecessor's hash (a row before it was replaced), a row whose contents do not
give its hash (edited), and a signed checkpoint the chain does not reach (truncated) or does not
agree with (rewritten, recomputing every hash). Without checkpoints a chain proves only that it is
internally consistent: deleting its last rows, or rewriting it from some row on, is visible only
against a checkpoint; rows after the last checkpoint are covered by none.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from json.encoder import c_make_encoder, encode_basestring  # type: ignore[attr-defined]
from typing import Any

from vault.audit.checkpoint import HASH_SIZE, VAULT_ID_SIZE, Checkpoint, CheckpointVerifier, SignedCheckpoint
from vault.errors import MlvaultError, UsageError

ENCODING_VERSION = 1
GENESIS_LABEL = b"mlvault/audit/genesis/v1\x00"
MAX_ROW_BYTES = 64 * 1024
MAX_DEPTH = 16
MAX_SAFE_INT = (1 << 53) - 1


@dataclass(frozen=True)
class AuditRow:
    """One operation: who did what to which target, when, and how it ended."""

    seq: int
    at: datetime
    principal: str
    action: str
    target: str
    outcome: str
    details: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class StoredRow:
    """A row as the catalog keeps it, with its link to the previous row and its own hash."""

    row: AuditRow
    prev_hash: bytes
    hash: bytes


@dataclass(frozen=True)
class VerifyReport:
    """The outcome of :func:`verify`; ``first_bad_seq`` names the earliest row found bad."""

    ok: bool
    first_bad_seq: int | None
    reason: str
    rows: int = 0
    checkpoints: int = 0


def utc_text(at: datetime) -> str:
    """The canonical time text: UTC, microseconds, ``Z`` (UsageError for a naive datetime)."""
    if at.tzinfo is None or at.utcoffset() is None:
        raise UsageError(f"audit time {at.isoformat()} has no time zone")
    return at.astimezone(UTC).replace(tzinfo=None).isoformat(timespec="microseconds") + "Z"


def _text(value: object, what: str) -> str:
    if not isinstance(value, str):
        raise UsageError(f"audit {what} must be a string")
    try:
        value.encode("utf-8", "strict")
    except UnicodeEncodeError:
        raise UsageError(f"audit {what} is not valid Unicode") from None
    return value


def _json_value(value: object, depth: int) -> object:
    if depth > MAX_DEPTH:
        raise UsageError(f"audit details nested deeper than {MAX_DEPTH}")
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int):
        if abs(value) > MAX_SAFE_INT:
            raise UsageError("audit details hold an integer beyond ±(2**53 - 1)")
        return value
    if isinstance(value, str):
        return _text(value, "detail")
    if isinstance(value, list | tuple):
        return [_json_value(item, depth + 1) for item in value]
    if isinstance(value, Mapping):
        return {_text(k, "detail key"): _json_value(v, depth + 1) for k, v in value.items()}
    raise UsageError(f"audit details cannot hold {type(value).__name__} values")


_ENCODE = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode
_ZERO = timedelta(0)
# The fast path's pieces: the canonical object with its keys already in code-point order, the time
# as utc_text writes it (for a zero UTC offset the wall time is UTC), strings as json writes them.
_ROW = '{"action":%s,"at":"%s","details":%s,"outcome":%s,"principal":%s,"seq":%d,"target":%s,"v":1}'
_TIME = "%04d-%02d-%02dT%02d:%02d:%02d.%06dZ"
_string = encode_basestring
# One C encoder built once (JSONEncoder.encode builds one per call); json's own without the C part.
_C_ENCODER = (
    None
    if c_make_encoder is None
    else c_make_encoder(None, None, encode_basestring, None, ":", ",", True, False, False)
)


def _flat_object(details: object) -> str:
    return _ENCODE(details) if _C_ENCODER is None else "".join(_C_ENCODER(details, 0))


def _flat(details: object) -> bool:
    """True if ``details`` is a plain dict of string keys to strings, booleans, null or safe integers:
    such a dict needs no conversion, only the final UTF-8 encoding checks its strings."""
    if type(details) is not dict:
        return False
    for key, value in details.items():
        if type(key) is not str:
            return False
        kind = type(value)
        if kind is str or value is None or kind is bool:
            continue
        if kind is int and -MAX_SAFE_INT <= value <= MAX_SAFE_INT:
            continue
        return False
    return True


def _fast(row: AuditRow) -> bytes | None:
    """The canonical bytes of a row built only of exact ``str``/``int`` fields, an aware UTC-offset
    time and flat details; None when the row needs the general path (which also names any error)."""
    seq, at = row.seq, row.at
    if type(seq) is not int or seq < 1 or not isinstance(at, datetime) or at.utcoffset() != _ZERO:
        return None
    fields = (row.principal, row.action, row.target, row.outcome)
    if not all(type(value) is str for value in fields) or not _flat(row.details):
        return None
    at_text = _TIME % (at.year, at.month, at.day, at.hour, at.minute, at.second, at.microsecond)
    try:
        encoded = (
            _ROW
            % (
                _string(row.action),
                at_text,
                _flat_object(row.details),
                _string(row.outcome),
                _string(row.principal),
                seq,
                _string(row.target),
            )
        ).encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate somewhere: the general path names the field
        return None
    return encoded if len(encoded) <= MAX_ROW_BYTES else None


def canonical(row: AuditRow) -> bytes:
    """The canonical bytes of a row (see the module docstring); UsageError if it has none.

    Rows of the common shape take one fast path (:func:`_fast`) that checks the same rules and
    gives the same bytes; any other row, and every row with an error, takes the general path.
    """
    fast = _fast(row)
    return fast if fast is not None else _general(row)


def _general(row: AuditRow) -> bytes:
    """:func:`canonical` for any row: converts and checks every value, naming the first error."""
    if isinstance(row.seq, bool) or not isinstance(row.seq, int) or row.seq < 1:
        raise UsageError(f"audit sequence {row.seq!r} must be a positive integer")
    if not isinstance(row.details, Mapping):
        raise UsageError("audit details must be a JSON object")
    document = {
        "v": ENCODING_VERSION,
        "seq": row.seq,
        "at": utc_text(row.at),
        "principal": _text(row.principal, "principal"),
        "action": _text(row.action, "action"),
        "target": _text(row.target, "target"),
        "outcome": _text(row.outcome, "outcome"),
        "details": _json_value(row.details, 1),
    }
    encoded = _ENCODE(document).encode("utf-8")
    if len(encoded) > MAX_ROW_BYTES:
        raise UsageError(f"audit row {row.seq} is over {MAX_ROW_BYTES} bytes")
    return encoded


def genesis_hash(vault_id: bytes) -> bytes:
    """The hash before row 1 of the vault's chain."""
    if len(vault_id) != VAULT_ID_SIZE:
        raise UsageError(f"vault id must be {VAULT_ID_SIZE} bytes")
    return hashlib.sha256(GENESIS_LABEL + vault_id).digest()


def row_hash(prev_hash: bytes, row: AuditRow) -> bytes:
    """SHA-256(prev_hash ‖ canonical(row))."""
    if len(prev_hash) != HASH_SIZE:
        raise UsageError(f"previous hash must be {HASH_SIZE} bytes")
    return hashlib.sha256(prev_hash + canonical(row)).digest()


def append(previous: StoredRow | None, row: AuditRow, vault_id: bytes) -> StoredRow:
    """Link ``row`` after ``previous`` (None: the first row); its seq must be the next one."""
    expected = 1 if previous is None else previous.row.seq + 1
    if row.seq != expected:
        raise UsageError(f"audit row {row.seq} cannot follow row {expected - 1}")
    prev_hash = genesis_hash(vault_id) if previous is None else previous.hash
    return StoredRow(row, prev_hash, row_hash(prev_hash, row))


def _bad(seq: int | None, reason: str, rows: int, checkpoints: int) -> VerifyReport:
    return VerifyReport(False, seq, reason, rows, checkpoints)


def _trusted(
    signed: Iterable[SignedCheckpoint], vault_id: bytes, verifier: CheckpointVerifier
) -> dict[int, set[bytes]] | str:
    """Checkpoint hashes by seq, or the reason one of them cannot be trusted."""
    pinned: dict[int, set[bytes]] = {}
    for cp in signed:
        seq = cp.checkpoint.seq
        if cp.vault_id != vault_id:
            return f"checkpoint at row {seq} belongs to another vault"
        try:
            verifier.verify_checkpoint(cp)
        except MlvaultError as exc:
            return f"checkpoint at row {seq} is not trusted: {exc}"
        pinned.setdefault(seq, set()).add(cp.checkpoint.hash)
    return pinned


def _unlinked(stored: StoredRow, computed: bytes, n: int, count: int) -> VerifyReport:
    """Explain a row whose stored previous hash is not its predecessor's hash."""
    seq = stored.row.seq
    if computed == stored.hash:  # the row is right for its real predecessor: only the link was edited
        return _bad(seq, f"row {seq} has an altered previous-hash field", n, count)
    if len(stored.prev_hash) == HASH_SIZE and row_hash(stored.prev_hash, stored.row) == stored.hash:
        # The row is intact but was chained to something else: what precedes it was replaced.
        if seq == 1:
            return _bad(1, "row 1 does not start from this vault's genesis hash", n, count)
        why = f"row {seq} was chained to a different row {seq - 1}: row {seq - 1} was replaced or inserted"
        return _bad(seq - 1, why, n, count)
    return _bad(seq, f"row {seq} was altered: its contents do not give its stored hash", n, count)


def verify(
    rows: Iterable[StoredRow],
    checkpoints: Iterable[SignedCheckpoint],
    *,
    vault_id: bytes,
    verifier: CheckpointVerifier,
) -> VerifyReport:
    """Walk ``rows`` (in the order the catalog returns them, by seq) against ``checkpoints``.

    Streams the rows; memory grows only with the number of checkpoints.
    """
    pinned = _trusted(checkpoints, vault_id, verifier)
    if isinstance(pinned, str):
        return _bad(None, pinned, 0, 0)
    count = sum(len(hashes) for hashes in pinned.values())
    prev = genesis_hash(vault_id)
    expected, last_good_checkpoint = 1, 0
    for stored in rows:
        row, seq, n = stored.row, stored.row.seq, expected - 1
        if seq != expected:
            if isinstance(seq, int) and seq < expected:
                again = "twice" if seq == n else f"again after row {n}"
                why = f"row {seq} appears {again}: rows were inserted or reordered"
                return _bad(seq, why, n, count)
            why = f"expected row {expected} next but found row {seq}: rows were deleted or reordered"
            return _bad(expected, why, n, count)
        try:
            computed = row_hash(prev, row)
        except UsageError as exc:
            return _bad(seq, f"row {seq} is malformed: {exc}", n, count)
        if stored.prev_hash != prev:
            return _unlinked(stored, computed, n, count)
        if computed != stored.hash:
            return _bad(seq, f"row {seq} was altered: its contents do not give its stored hash", n, count)
        prev = stored.hash
        for pinned_hash in pinned.get(seq, ()):
            if pinned_hash != prev:
                first = last_good_checkpoint + 1
                why = f"rows {first} to {seq} do not match the signed checkpoint at row {seq}: rewritten"
                return _bad(first, why, seq, count)
        if seq in pinned:
            last_good_checkpoint = seq
        expected += 1
    last = expected - 1
    beyond = [seq for seq in pinned if seq > last]
    if beyond:
        ends = f"ends at row {last}" if last else "is empty"
        why = f"the log {ends} but a signed checkpoint names row {max(beyond)}: rows were deleted"
        return _bad(last + 1, why, last, count)
    tail = (
        f"; rows after {last_good_checkpoint} are covered by no checkpoint"
        if last > last_good_checkpoint
        else ""
    )
    return VerifyReport(True, None, f"chain intact: {last} rows, {count} checkpoints{tail}", last, count)


def checkpoint_after(stored: StoredRow) -> Checkpoint:
    """The checkpoint that pins the chain at ``stored`` (to be signed and written to storage)."""
    return Checkpoint(stored.row.seq, stored.hash)
