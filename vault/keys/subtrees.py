"""Namespaces with a keyring of their own (``mlvault namespace create team/secret --own-keyring``).

Keyrings belong to top-level namespaces, so a read grant on ``team/secret/*`` would be enforced by
policy only. A deeper namespace may get its own keyring when it is created; then everything pushed
under it is sealed with that keyring, and only slots on that keyring (the owner's, and the x25519
slots of readers) open it — the ``team`` keyring opens nothing there.

**The authoritative record is in storage, signed by the owner.** The catalog's ``keyrings`` table
is an index a catalog writer can edit: deleting the ``team/secret`` row must not make the next push
to ``team/secret/x`` fall back to the ``team`` keyring (a silent downgrade: everyone who reads
``team`` could read it), and inserting a row must not point a namespace at a keyring of the writer's
choosing (``keys add-recipient --namespace team/secret`` would then wrap *that* keyring). So
creating the namespace writes a write-once record at a name derived from the vault id and the
namespace (``namespaces/<id>``, :func:`vault.layout.namespace_keyring_key`), signed by the vault's
owner identity (:mod:`vault.keys.owner_identity`)::

    magic "MLVK" | version u8 = 1 | vault id 16 | ring id 16 | namespace len u16 (2..255) | namespace
    | signer len u16 (≤ 128) | signer SubjectPublicKeyInfo DER (P-256) | sig len u16 (≤ 80)
    | ECDSA P-256 / SHA-256 over "mlvault/namespace-keyring/v1\\0" ‖ every byte before sig len

Every push to an artifact looks for a record for each of its namespaces deeper than the top level,
longest first (``team/secret/x/model`` → ``team/secret/x``, ``team/secret``: one GET each; a
top-level artifact ``team/model`` needs none), and the first found decides the keyring:

- a record is accepted only if it parses strictly, names this vault and this namespace, and its
  signer is the owner identity — loaded with the owner key, or a root admin key this client pinned
  (:func:`vault.keys.owner_identity.pin_root_admin`); anything else is refused (exit 5);
- the catalog row is then only checked: missing → re-indexed from the record (a catalog writer
  dropped it, or a ``namespace create`` was killed); naming another keyring → refused (exit 5);
- a catalog row with no record in storage → refused (exit 5): someone deleted the record (or wrote
  the row); the push does not fall back to the broader keyring.

What remains: someone who can delete storage objects *and* edit the catalog can remove both the
record and the row, and a push from a client that never saw them would use the ``team`` keyring.
The record names reveal, to a storage reader who guesses a namespace, that it has its own keyring
(the catalog, where names are plain text, tells anyone who reads it anyway).
"""

from __future__ import annotations

import hashlib
import struct
from dataclasses import dataclass
from typing import TYPE_CHECKING

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from vault import keystore, layout
from vault.errors import AuthenticationError, ConflictError, IntegrityError, NotFoundError, UsageError
from vault.formats import ALTERED
from vault.keys import owner_identity
from vault.refs import check_artifact_name
from vault.storage.base import ObjectExistsError

if TYPE_CHECKING:
    from vault.catalog import Catalog
    from vault.crypto.keyring import Keyring
    from vault.keycache import KeyCache
    from vault.signing.signers import Signer
    from vault.storage import Backend

MAGIC = b"MLVK"
VERSION = 1
LABEL = b"mlvault/namespace-keyring/v1\x00"
NAME_LABEL = b"mlvault/namespace-keyring/name/v1\x00"
_HEAD = struct.Struct(">4sB16s16sH")
_LEN = struct.Struct(">H")
MAX_NAMESPACE = 255
MAX_SPKI = 128
MAX_SIGNATURE = 80
MAX_SIZE = _HEAD.size + MAX_NAMESPACE + 2 + MAX_SPKI + 2 + MAX_SIGNATURE
MAX_DEPTH = 7  # artifact names have at most 8 segments


@dataclass(frozen=True)
class SubtreeRecord:
    """A namespace's own keyring, as its signed record states it."""

    namespace: str
    ring_id: str
    signer: str  # fingerprint of the signing key


def check_namespace(namespace: str) -> str:
    """Return ``namespace`` if it can have a keyring of its own (2 to 7 segments), else UsageError."""
    if "/" not in namespace:
        raise UsageError(
            f"{namespace!r} is a top-level namespace: it has its own keyring already; give a deeper one, "
            "e.g. team/secret"
        )
    check_artifact_name(namespace)
    if namespace.count("/") + 1 > MAX_DEPTH or len(namespace.encode()) > MAX_NAMESPACE:
        raise UsageError(f"namespace {namespace!r} is too deep or too long to hold artifacts")
    return namespace


def ancestors(artifact: str) -> list[str]:
    """The namespaces of ``artifact`` deeper than the top level, longest first."""
    parts = artifact.split("/")
    return ["/".join(parts[:n]) for n in range(len(parts) - 1, 1, -1)]


def record_key(vault_id: bytes, namespace: str) -> str:
    """Storage key of ``namespace``'s record."""
    digest = hashlib.sha256(NAME_LABEL + vault_id + namespace.encode("utf-8")).hexdigest()
    return layout.namespace_keyring_key(digest[:32])


def encode(vault_id: bytes, namespace: str, ring_id: bytes, signer: Signer) -> bytes:
    """The signed record giving ``namespace`` keyring ``ring_id``."""
    name = check_namespace(namespace).encode("utf-8")
    spki = signer.public_key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    body = _HEAD.pack(MAGIC, VERSION, vault_id, ring_id, len(name)) + name + _LEN.pack(len(spki)) + spki
    signature = signer.sign(LABEL + body)
    return body + _LEN.pack(len(signature)) + signature


def decode(data: bytes, vault_id: bytes, namespace: str) -> SubtreeRecord:
    """A record read from :func:`record_key`, its signature checked against the key it names."""
    what = f"the keyring record of namespace {namespace}"
    if len(data) > MAX_SIZE or len(data) < _HEAD.size:
        raise IntegrityError(f"{what} has an impossible size" + ALTERED)
    magic, version, vid, ring, name_len = _HEAD.unpack_from(data)
    if magic != MAGIC or version != VERSION:
        raise IntegrityError(f"{what} has an unknown magic or version" + ALTERED)
    pos = _HEAD.size
    name, pos = _field(data, pos - 2, name_len, MAX_NAMESPACE, what)
    spki, pos = _field(data, pos, None, MAX_SPKI, what)
    body_end = pos
    signature, pos = _field(data, pos, None, MAX_SIGNATURE, what)
    if pos != len(data):
        raise IntegrityError(f"{what} has trailing data" + ALTERED)
    if vid != vault_id or name != namespace.encode("utf-8"):
        raise IntegrityError(f"{what} was written for another vault or namespace" + ALTERED)
    try:
        key = serialization.load_der_public_key(spki)
        if not isinstance(key, ec.EllipticCurvePublicKey) or not isinstance(key.curve, ec.SECP256R1):
            raise IntegrityError(f"{what} names a key that is not ECDSA P-256" + ALTERED)
        key.verify(signature, LABEL + data[:body_end], ec.ECDSA(hashes.SHA256()))
    except (ValueError, UnsupportedAlgorithm, InvalidSignature) as exc:
        raise IntegrityError(f"{what} is not validly signed" + ALTERED) from exc
    return SubtreeRecord(namespace, ring.hex(), hashlib.sha256(spki).hexdigest())


def _field(data: bytes, pos: int, expected: int | None, cap: int, what: str) -> tuple[bytes, int]:
    """A u16-length-prefixed field at ``pos``; the length must be ≤ ``cap`` and present."""
    if pos + 2 > len(data):
        raise IntegrityError(f"{what} is truncated" + ALTERED)
    (length,) = _LEN.unpack_from(data, pos)
    if (expected is not None and length != expected) or not 0 < length <= cap:
        raise IntegrityError(f"{what} has an impossible length" + ALTERED)
    end = pos + 2 + length
    if end > len(data):
        raise IntegrityError(f"{what} is truncated" + ALTERED)
    return data[pos + 2 : end], end


def find(backend: Backend, vault_id: bytes, namespace: str) -> SubtreeRecord | None:
    """``namespace``'s record if storage holds one (signature checked, signer not yet trusted)."""
    try:
        data = backend.get(record_key(vault_id, namespace), max_size=MAX_SIZE)
    except NotFoundError:
        return None
    return decode(data, vault_id, namespace)


def require_owner_signed(keys: KeyCache, backend: Backend, record: SubtreeRecord) -> None:
    """IntegrityError unless the record's signer is the owner identity (pinned, or loaded now)."""
    if record.signer in keys.admin_fingerprints():
        return
    try:
        owner = owner_identity.owner_identity(keys, backend, create_missing=False)
    except (AuthenticationError, NotFoundError) as exc:
        raise IntegrityError(
            f"the keyring record of namespace {record.namespace} is signed by key {record.signer[:16]}, "
            f"which this client has not pinned as the vault's owner identity ({exc}); open the vault once "
            "with its owner key (passphrase) on this client to pin it"
        ) from exc
    if owner.public.signing_fingerprint != record.signer:
        raise IntegrityError(
            f"the keyring record of namespace {record.namespace} is signed by key {record.signer[:16]}, "
            "not by the vault's owner identity: refused (a planted record?)"
        )


def subtree_ring(keys: KeyCache, backend: Backend, catalog: Catalog, namespace: str) -> str | None:
    """The ring id of ``namespace``'s own keyring, None if it has none (checks in the module docstring)."""
    record = find(backend, keys.vault_id, namespace)
    indexed = catalog.keyring_for(namespace)
    if record is None:
        if indexed is not None:
            raise IntegrityError(
                f"the catalog says namespace {namespace} has a keyring of its own, but its signed record "
                "is missing from storage: refused rather than falling back to a broader keyring (restore "
                "the namespaces/ objects from a backup)"
            )
        return None
    require_owner_signed(keys, backend, record)
    if indexed is None:  # the index lost it (a catalog writer, or a killed create): the record decides
        listed = record.ring_id in catalog.all_keyrings().values()  # e.g. renamed: cannot re-index
        indexed = record.ring_id if listed else catalog.add_keyring(namespace, record.ring_id)
    if indexed != record.ring_id:
        raise IntegrityError(
            f"the catalog names keyring {indexed} for namespace {namespace}, but its signed record names "
            f"{record.ring_id}: refused"
        )
    return record.ring_id


def keyring_for_artifact(keys: KeyCache, backend: Backend, catalog: Catalog, artifact: str) -> Keyring:
    """The keyring a push to ``artifact`` seals with: its deepest namespace's own, else the top level's."""
    for namespace in ancestors(artifact):
        ring = subtree_ring(keys, backend, catalog, namespace)
        if ring is not None:
            return keys.keyring(ring)
    return keys.keyring_for_namespace(catalog, artifact.split("/", 1)[0])


def ring_of_namespace(keys: KeyCache, backend: Backend, catalog: Catalog, namespace: str) -> str | None:
    """The ring id of ``namespace`` (top-level: the catalog's; deeper: its record's), None if it has none."""
    if "/" not in namespace:
        return catalog.keyring_for(namespace)
    check_namespace(namespace)
    ring = subtree_ring(keys, backend, catalog, namespace)
    if ring is None:  # bad input, not a missing object: nothing can be done with it before the create
        raise UsageError(
            f"namespace {namespace} has no keyring of its own (give it one with `mlvault namespace create "
            f"{namespace} --own-keyring` before anything is pushed there)"
        )
    return ring


def keyring_for_namespace(keys: KeyCache, backend: Backend, catalog: Catalog, namespace: str) -> Keyring:
    """The keyring of ``namespace``: a top-level one is created on first use, a deeper one never."""
    if "/" not in namespace:
        return keys.keyring_for_namespace(catalog, namespace)
    ring = ring_of_namespace(keys, backend, catalog, namespace)
    assert ring is not None  # ring_of_namespace raises for a deeper namespace without one
    return keys.keyring(ring)


def create_subtree(keys: KeyCache, backend: Backend, catalog: Catalog, namespace: str) -> str:
    """Give ``namespace`` a keyring of its own (owner key and owner identity needed); its ring id."""
    check_namespace(namespace)
    if find(backend, keys.vault_id, namespace) is not None or catalog.keyring_for(namespace) is not None:
        subtree_ring(keys, backend, catalog, namespace)  # refuses a damaged pair; re-indexes a lost row
        raise ConflictError(f"namespace {namespace} already has a keyring of its own")
    held = [a.name for a in catalog.list_artifacts(namespace + "/")]
    if held:
        raise ConflictError(
            f"namespace {namespace} already holds {len(held)} artifact(s) ({', '.join(held[:3])}) sealed "
            "with a broader keyring; a keyring of its own must be created before the first push there"
        )
    owner_key = keys.owner_key()
    signer = owner_identity.owner_signer(keys, backend)
    keyring, slot_key = keystore.create_keyring(backend, keys.vault_id, owner_key)
    ring = keyring.ring_id.hex()
    try:
        record = encode(keys.vault_id, namespace, keyring.ring_id, signer)
        backend.put(record_key(keys.vault_id, namespace), record)
    except ObjectExistsError:
        backend.delete(slot_key)
        raise ConflictError(f"namespace {namespace} got a keyring of its own meanwhile") from None
    keys.replace_keyring(keyring)  # pinned now, before any x25519 slot can be planted on it
    if catalog.add_keyring(namespace, ring) != ring:
        raise IntegrityError(f"the catalog already names another keyring for namespace {namespace}")
    catalog.record_slot(slot_key.rsplit("/", 1)[-1], ring, "owner", None, keys.actor, keys.clock())
    return ring
