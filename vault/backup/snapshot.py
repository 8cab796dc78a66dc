"""Snapshot objects on a backup target: the sealed catalog rows and the plaintext object list.

A snapshot has two parts, both write-once:

``snapshots/<id>`` — the **envelope** (big-endian)::

    magic "MLVB" | version u8 = 2 | vault id 16 | snapshot id 16 | stanza count u8 (1..16)
    | stanza × count: kind u8 = 1 (x25519) | ephemeral public key 32 | recipient fingerprint 32
                      | nonce 12 | wrapped file key 48 (32 + GCM tag)
    | body length u32 | body | signature block (:mod:`vault.backup.signature`)

The body is a sealed object of kind :data:`vault.formats.sealed.SNAPSHOT` (``MLVN``) whose ring id
field is the vault id, epoch 0 and object id the snapshot id, sealed under a fresh random 32-byte
**file key**; its plaintext is the zstd-compressed JSON payload (the catalog rows). Each stanza wraps
the file key to one recovery recipient the way age does: a fresh ephemeral X25519 key, the KEK of
:func:`vault.crypto.recipient.wrap_to_recipient`, then a stanza key HKDF-SHA256(KEK, salt =
snapshot id, info ``mlvault/snapshot/wrap/v1``) and AES-256-GCM over the file key with the envelope
header and the stanza's kind, ephemeral key and fingerprint as AAD. So a stanza cannot be moved to
another snapshot, and the body's own header binds vault and snapshot id again. Every length is fixed
or capped and checked against the bytes present before anything is allocated; an unknown version or
kind is tampering (exit 5); version 1 (no signature block) was written only by pre-release builds.
A backup job needs only the recipients' public keys to write one, and its identity's signing key to
sign it: the block signs the part before it together with the object list's SHA-256
(:func:`vault.backup.signature.signed_message`), and :func:`check_signature` verifies it without a key.

``snapshots/<id>.objects`` — the **object list**: zstd-compressed JSON naming the vault, the
snapshot, its time and counts, and every object (key, size) it needs. It is plaintext so ``backup
ls``, ``forget`` and ``verify`` need no private key; the sealed payload carries its SHA-256, so
``restore`` refuses a list that does not belong to the snapshot.
"""

from __future__ import annotations

import hashlib
import hmac
import io
import json
import math
import os
import struct
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import zstandard

from vault import layout
from vault.backup import signature as snapshot_signature
from vault.backup.signature import Acceptance, SnapshotSignature
from vault.crypto import aead, recipient
from vault.errors import (
    AuthenticationError,
    ConfigurationError,
    DecryptionError,
    IntegrityError,
    NotFoundError,
)
from vault.formats import ALTERED, sealed
from vault.storage import Backend, ObjectExistsError

if TYPE_CHECKING:
    from vault.clientstate.identities import Identity
    from vault.signing.signers import Signer

MAGIC = b"MLVB"
VERSION = 2
KIND_X25519 = 1
MAX_STANZAS = 16
FILE_KEY_SIZE = 32
WRAP_INFO = b"mlvault/snapshot/wrap/v1"
HEADER = struct.Struct(">4sB16s16sB")
STANZA = struct.Struct(">B32s32s12s48s")
BODY_LEN = struct.Struct(">I")
MAX_BODY = sealed.SNAPSHOT.max_plaintext + sealed.HEADER_SIZE + aead.TAG_SIZE
MAX_ENVELOPE = MAX_BODY + 4096  # header, 16 stanzas and the signature block fit in 4 KiB
MAX_PAYLOAD = 4 * 1024 * 1024 * 1024  # decompressed catalog rows
MAX_OBJECT_LIST = 256 * 1024 * 1024  # compressed, as stored
MAX_OBJECT_LIST_JSON = 2 * 1024 * 1024 * 1024
PAYLOAD_FORMAT = "mlvault-snapshot"
OBJECTS_FORMAT = "mlvault-snapshot-objects"


def new_snapshot_id(now: datetime) -> str:
    """48 bits of milliseconds since the epoch, then 80 random bits: ids sort by time."""
    millis = int(now.timestamp() * 1000) & ((1 << 48) - 1)
    return f"{millis:012x}{os.urandom(10).hex()}"


def seal_snapshot(
    vault_id: bytes,
    snapshot_id: bytes,
    recipients: list[bytes],
    payload: bytes,
    object_list: bytes,
    signer: Signer | None,
) -> bytes:
    """The envelope of ``payload`` (already compressed) for the raw X25519 ``recipients``, signed
    together with ``object_list`` (as stored) by ``signer`` (None: an unsigned block)."""
    if not 1 <= len(recipients) <= MAX_STANZAS:
        raise ValueError(f"a snapshot is sealed to 1..{MAX_STANZAS} recipients")
    file_key = os.urandom(FILE_KEY_SIZE)
    wraps = [(recipient.wrap_to_recipient(public), public, aead.new_nonce()) for public in recipients]
    body = sealed.seal(sealed.SNAPSHOT, file_key, vault_id, 0, snapshot_id, payload)
    unsigned = _seal_from_parts(vault_id, snapshot_id, file_key, wraps, body)
    message = snapshot_signature.signed_message(vault_id, snapshot_id, unsigned, object_list)
    return unsigned + snapshot_signature.signature_block(message, signer)


Wrap = tuple[tuple[bytes, bytes], bytes, bytes]  # ((ephemeral public, KEK), recipient public, nonce)


def _seal_from_parts(
    vault_id: bytes, snapshot_id: bytes, file_key: bytes, wraps: list[Wrap], body: bytes
) -> bytes:
    """The part of :func:`seal_snapshot` before the signature block, from its random parts (KEKs,
    nonces, sealed body): the seam for vectors."""
    if len(vault_id) != 16 or len(snapshot_id) != 16 or len(file_key) != FILE_KEY_SIZE:
        raise ValueError("vault id and snapshot id are 16 bytes, the file key 32")
    header = HEADER.pack(MAGIC, VERSION, vault_id, snapshot_id, len(wraps))
    out = [header]
    for (eph_pub, kek), public, nonce in wraps:
        fingerprint = recipient.fingerprint(public)
        prefix = bytes([KIND_X25519]) + eph_pub + fingerprint
        wrapped = aead.seal(_stanza_key(kek, snapshot_id), nonce, file_key, header + prefix)
        out.append(STANZA.pack(KIND_X25519, eph_pub, fingerprint, nonce, wrapped))
    out += [BODY_LEN.pack(len(body)), body]
    return b"".join(out)


@dataclass(frozen=True)
class Envelope:
    """A parsed, not yet authenticated envelope."""

    vault_id: bytes
    snapshot_id: bytes
    header: bytes
    stanzas: tuple[tuple[bytes, bytes, bytes, bytes], ...]  # ephemeral, fingerprint, nonce, wrapped
    body: bytes
    signed_part: bytes  # every byte before the signature block
    signature: SnapshotSignature | None  # None: unsigned


def parse_envelope(data: bytes) -> Envelope:
    """Parse and bound-check an envelope; nothing in it is authenticated yet."""
    if len(data) < HEADER.size:
        raise IntegrityError("snapshot truncated")
    magic, version, vault_id, snapshot_id, count = HEADER.unpack_from(data)
    if magic != MAGIC:
        raise IntegrityError("not an mlvault snapshot (bad magic)")
    if version != VERSION:
        raise IntegrityError(f"snapshot format version {version} is not one this mlvault writes{ALTERED}")
    if not 1 <= count <= MAX_STANZAS:
        raise IntegrityError(f"snapshot has {count} recipient stanzas, not 1..{MAX_STANZAS}{ALTERED}")
    offset = HEADER.size
    if len(data) < offset + count * STANZA.size + BODY_LEN.size:
        raise IntegrityError("snapshot truncated")
    stanzas = []
    for _ in range(count):
        kind, eph, fingerprint, nonce, wrapped = STANZA.unpack_from(data, offset)
        if kind != KIND_X25519:
            raise IntegrityError(f"snapshot stanza kind {kind} is not one this mlvault writes{ALTERED}")
        stanzas.append((eph, fingerprint, nonce, wrapped))
        offset += STANZA.size
    (body_len,) = BODY_LEN.unpack_from(data, offset)
    offset += BODY_LEN.size
    end = offset + body_len
    if not sealed.HEADER_SIZE < body_len <= MAX_BODY or len(data) <= end:
        raise IntegrityError("snapshot truncated or extended")
    signature = snapshot_signature.parse_block(data[end:])
    return Envelope(
        vault_id, snapshot_id, data[: HEADER.size], tuple(stanzas), data[offset:end], data[:end], signature
    )


def check_signature(
    envelope: Envelope, object_list: bytes, acceptance: Acceptance, created_at: datetime
) -> str:
    """Who signed the snapshot (``unsigned`` when allowed); IntegrityError (exit 5) when the signature
    does not verify over the envelope and ``object_list`` (as stored), or its signer is not accepted."""
    message = snapshot_signature.signed_message(
        envelope.vault_id, envelope.snapshot_id, envelope.signed_part, object_list
    )
    return acceptance.check(envelope.signature, message, created_at, envelope.snapshot_id.hex())


def open_snapshot(data: bytes, identity: Identity, vault_id: bytes, snapshot_id: bytes) -> bytes:
    """The compressed payload of a snapshot that must be (``vault_id``, ``snapshot_id``).

    AuthenticationError (exit 4) when no stanza names ``identity``; IntegrityError (exit 5) when
    the snapshot is another one, or a stanza or the body does not authenticate.
    """
    envelope = parse_envelope(data)
    if envelope.vault_id != vault_id or envelope.snapshot_id != snapshot_id:
        raise IntegrityError(f"snapshot {snapshot_id.hex()} is not the one stored under its name{ALTERED}")
    ours = bytes.fromhex(identity.public.fingerprint)
    mine = [s for s in envelope.stanzas if hmac.compare_digest(s[1], ours)]
    if not mine:
        raise AuthenticationError(
            f"snapshot {snapshot_id.hex()} is not sealed to identity {identity.name}: "
            "use the identity whose public key was given to `mlvault keys add-recovery`"
        )
    for eph, fingerprint, nonce, wrapped in mine:
        prefix = bytes([KIND_X25519]) + eph + fingerprint
        try:
            kek = recipient.recipient_kek(identity.x25519_private, eph)
            file_key = aead.open_sealed(
                _stanza_key(kek, snapshot_id), nonce, wrapped, envelope.header + prefix
            )
        except DecryptionError:
            continue
        return sealed.open_object(sealed.SNAPSHOT, envelope.body, file_key, vault_id, snapshot_id)
    raise DecryptionError()


def _stanza_key(kek: bytes, snapshot_id: bytes) -> bytes:
    return aead.derive_key(kek, snapshot_id, WRAP_INFO)


# -- JSON documents, zstd-compressed --------------------------------------------------------------


def compress_json(document: dict[str, Any]) -> bytes:
    """Canonical JSON (sorted keys, no whitespace), zstd-compressed."""
    text = json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return zstandard.ZstdCompressor(level=6).compress(text.encode())


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):  # 1e999: json.loads would give inf, which int() cannot take
        raise ValueError(f"number out of range: {text[:20]}")
    return value


def _no_constant(name: str) -> float:
    raise ValueError(f"{name} is not JSON")


def decompress_json(data: bytes, cap: int, what: str) -> dict[str, Any]:
    """The JSON object in a zstd frame, refusing more than ``cap`` bytes of it."""
    try:
        with zstandard.ZstdDecompressor().stream_reader(io.BytesIO(data)) as reader:
            text = reader.read(cap + 1)
        if len(text) > cap:
            raise IntegrityError(f"{what} decompresses to more than {cap} bytes")
        document = json.loads(text, parse_float=_finite, parse_constant=_no_constant)
    except (zstandard.ZstdError, ValueError, RecursionError) as exc:  # RecursionError: [[[[…
        raise IntegrityError(f"{what} is not compressed JSON{ALTERED}") from exc
    if not isinstance(document, dict):
        raise IntegrityError(f"{what} is not a JSON object{ALTERED}")
    return document


@dataclass(frozen=True)
class ObjectList:
    """What a snapshot needs on the target, and what its run added; readable without a key."""

    vault_id: str
    snapshot_id: str
    created_at: datetime
    schedule: str
    versions: int
    objects_added: int
    bytes_added: int
    objects: dict[str, int]  # key → size

    @property
    def total_bytes(self) -> int:
        """The size of every object the snapshot needs."""
        return sum(self.objects.values())

    def summary(self) -> dict[str, Any]:
        """What ``backup ls --json`` shows of the snapshot."""
        return {
            "id": self.snapshot_id,
            "time": self.created_at.isoformat(),
            "schedule": self.schedule,
            "versions": self.versions,
            "objects": len(self.objects),
            "bytes": self.total_bytes,
            "objects_added": self.objects_added,
            "bytes_added": self.bytes_added,
        }

    def encode(self) -> bytes:
        """The stored form."""
        return compress_json(
            {
                "format": OBJECTS_FORMAT,
                "version": 1,
                "vault_id": self.vault_id,
                "snapshot_id": self.snapshot_id,
                "created_at": self.created_at.astimezone(UTC).isoformat(),
                "schedule": self.schedule,
                "versions": self.versions,
                "objects_added": self.objects_added,
                "bytes_added": self.bytes_added,
                "objects": sorted([key, size] for key, size in self.objects.items()),
            }
        )

    @classmethod
    def decode(cls, data: bytes, snapshot_id: str) -> ObjectList:
        """Parse and check the object list stored for ``snapshot_id``."""
        what = f"the object list of snapshot {snapshot_id}"
        doc = decompress_json(data, MAX_OBJECT_LIST_JSON, what)
        try:
            if doc["format"] != OBJECTS_FORMAT or doc["version"] != 1 or doc["snapshot_id"] != snapshot_id:
                raise ValueError("format, version or snapshot id")
            created = datetime.fromisoformat(doc["created_at"])
            if created.tzinfo is None:
                raise ValueError("a naive time")
            objects: dict[str, int] = {}
            for key, size in doc["objects"]:
                if not isinstance(key, str) or not _count(size) or key in objects:
                    raise ValueError(f"object entry {key!r}")
                objects[key] = size
            counts = [doc[name] for name in ("versions", "objects_added", "bytes_added")]
            if not all(_count(c) for c in counts) or not isinstance(doc["schedule"], str):
                raise ValueError("counts")
            versions, added, added_bytes = counts
            return cls(
                str(doc["vault_id"]),
                snapshot_id,
                created,
                doc["schedule"],
                versions,
                added,
                added_bytes,
                objects,
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise IntegrityError(f"{what} is malformed ({exc}){ALTERED}") from None


def _count(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 1 << 63


def sha256_hex(data: bytes) -> str:
    """SHA-256 of ``data``, hex."""
    return hashlib.sha256(data).hexdigest()


# -- the target marker and the list of snapshots -----------------------------------------------

TARGET_FORMAT = "mlvault-backup-target"
MAX_MARKER = 4096


def encode_marker(vault_id: str) -> bytes:
    """The ``backup/target`` object naming the vault a target belongs to."""
    return json.dumps({"format": TARGET_FORMAT, "version": 1, "vault_id": vault_id}, sort_keys=True).encode()


def read_marker(target: Backend) -> str | None:
    """The vault id a target's marker names; None when it has no marker."""
    try:
        raw = target.get(layout.BACKUP_TARGET, max_size=MAX_MARKER)
    except NotFoundError:
        return None
    try:
        doc = json.loads(raw)
        vault_id = doc["vault_id"]
        if doc["format"] != TARGET_FORMAT or doc["version"] != 1 or not layout.is_id(vault_id):
            raise ValueError
    except (ValueError, KeyError, TypeError):
        raise IntegrityError(f"the backup target marker at {target.url} is malformed{ALTERED}") from None
    return str(vault_id)


def claim_target(target: Backend, vault_id: str) -> None:
    """Make ``target`` this vault's (marker written first), or refuse another vault's or a foreign one."""
    owner = read_marker(target)
    if owner is None:
        if next(iter(target.list()), None) is not None:
            raise ConfigurationError(
                f"the backup target {target.url} holds objects but is not an mlvault backup target; "
                "choose an empty location"
            )
        try:
            target.put(layout.BACKUP_TARGET, encode_marker(vault_id))
            return
        except ObjectExistsError:
            owner = read_marker(target)  # a concurrent first run wrote it
    if owner != vault_id:
        raise ConfigurationError(
            f"the backup target {target.url} belongs to vault {owner}, not to this vault ({vault_id}); "
            "give each vault its own target"
        )


def snapshot_ids(target: Backend) -> list[str]:
    """Ids of the sealed snapshots on ``target``, oldest first (ids sort by time)."""
    found = (layout.parse_snapshot_key(key) for key in target.list(layout.SNAPSHOTS_PREFIX))
    return sorted(snapshot_id for snapshot_id in found if snapshot_id is not None)


def read_object_list(target: Backend, snapshot_id: str) -> ObjectList:
    """The object list of one snapshot; NotFoundError when it is missing."""
    raw = target.get(layout.snapshot_objects_key(snapshot_id), max_size=MAX_OBJECT_LIST)
    return ObjectList.decode(raw, snapshot_id)


def read_signed_listing(
    target: Backend, vault_id: str, snapshot_id: str, acceptance: Acceptance
) -> tuple[ObjectList, str]:
    """A snapshot's object list and who signed it, after its signature was checked (no key needed);
    IntegrityError (exit 5) when either part is damaged, names another snapshot or is not signed by
    a signer ``acceptance`` allows."""
    raw = target.get(layout.snapshot_objects_key(snapshot_id), max_size=MAX_OBJECT_LIST)
    listing = ObjectList.decode(raw, snapshot_id)
    if listing.vault_id != vault_id:
        raise IntegrityError(
            f"the object list of snapshot {snapshot_id} names vault {listing.vault_id}{ALTERED}"
        )
    envelope = parse_envelope(target.get(layout.snapshot_key(snapshot_id), max_size=MAX_ENVELOPE))
    if envelope.vault_id.hex() != vault_id or envelope.snapshot_id.hex() != snapshot_id:
        raise IntegrityError(
            f"the sealed part of snapshot {snapshot_id} names another vault or snapshot{ALTERED}"
        )
    return listing, check_signature(envelope, raw, acceptance, listing.created_at)
