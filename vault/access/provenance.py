"""Provenance records: who pushed a version, who moved a tag, signed by that principal's identity.

**Why records.** The access policy decides who may push or tag, but anyone who can write the catalog
can insert a version row or point a tag elsewhere with plain SQL. So every push and every tag move
under an access policy also writes a small signed document to storage, and every reader checks it
(:mod:`vault.access.records`) before it trusts a version or a tag: a row without a valid record from
a principal holding the capability is refused (exit 13).

Three kinds, one canonical JSON payload each (sorted keys, no whitespace, UTF-8)::

    {"type": "mlvault/provenance", "version": 1, "kind": "push", "vault": "<vault id>",
     "artifact": "team/resnet", "version_id": "<32 hex>", "number": 3, "digest": "<manifest sha256>",
     "principal": "<principal id>" | null, "signer": "<signing key fingerprint>",
     "policy_serial": 7, "at": "2027-01-02T03:04:05.000000+00:00"}

``attest`` has the same fields (an admin re-attesting a version); ``tag`` replaces ``number`` and
``digest`` by ``tag``, ``previous`` (the version id the tag named before, or null) and ``seq`` (1 for
the first record of that tag, previous seq + 1 after; storage write-once makes it a counter two
movers cannot both take). ``principal`` is null when the vault's pinned root admin key signed as the
vault owner (it is no principal of the policy, and it signs the policy itself).

The signed document is ``{"mediaType": SIGNED_MEDIA_TYPE, "payload": b64, "signerKey": PEM,
"signature": b64 DER}``, the signature being ECDSA P-256 over DSSE ``PAE(PAYLOAD_TYPE, payload)``:
its own payload type, so neither an access policy nor a trust policy nor a bundle signature can be
replayed as a record, nor a record as them. ``signer`` must be the fingerprint of ``signerKey``.
Documents are capped (:data:`MAX_RECORD_BYTES`) before they are parsed; the parse is strict (exact
fields, exact types, canonical encodings), and anything off is ``MalformedSignatureError`` (11),
a signature that does not verify ``SignatureInvalidError`` (12).

A record's **digest** (SHA-256 of the signed document) is what an access policy lists to keep a
record valid after its signer lost the capability (:mod:`vault.access.records`).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ec

from vault.errors import MalformedSignatureError, UsageError
from vault.refs import check_artifact_name, check_tag
from vault.signing import keys
from vault.signing.envelope import Envelope, exact_object
from vault.signing.oms import canonical_json, strict_json
from vault.signing.signers import Signer

RECORD_TYPE = "mlvault/provenance"
RECORD_VERSION = 1
PAYLOAD_TYPE = "application/vnd.mlvault.provenance.v1+json"
SIGNED_MEDIA_TYPE = "application/vnd.mlvault.signed-provenance.v1+json"
MAX_RECORD_BYTES = 16 * 1024
MAX_SEQ = (1 << 53) - 1
PUSH, ATTEST, TAG = "push", "attest", "tag"
KINDS = (PUSH, ATTEST, TAG)

_COMMON = {
    "type",
    "version",
    "kind",
    "vault",
    "artifact",
    "version_id",
    "principal",
    "signer",
    "policy_serial",
    "at",
}
_FIELDS = {
    PUSH: _COMMON | {"number", "digest"},
    ATTEST: _COMMON | {"number", "digest"},
    TAG: _COMMON | {"tag", "previous", "seq"},
}
ENVELOPE = Envelope(
    SIGNED_MEDIA_TYPE, PAYLOAD_TYPE, "signerKey", MAX_RECORD_BYTES, "provenance record", sort_keys=True
)
_ID = re.compile(r"[0-9a-f]{32}")
_SHA256 = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True)
class Record:
    """One provenance record's claims (verified or about to be signed)."""

    kind: str
    vault_id: str
    artifact: str
    version_id: str
    principal_id: str | None
    signer: str
    policy_serial: int
    at: dt.datetime
    number: int | None = None  # push, attest
    digest: str | None = None  # push, attest: the manifest's SHA-256
    tag: str | None = None  # tag
    previous: str | None = None  # tag: the version id it named before
    seq: int | None = None  # tag

    def to_json(self) -> bytes:
        """The canonical payload (the bytes that are signed)."""
        doc: dict[str, Any] = {
            "type": RECORD_TYPE,
            "version": RECORD_VERSION,
            "kind": self.kind,
            "vault": self.vault_id,
            "artifact": self.artifact,
            "version_id": self.version_id,
            "principal": self.principal_id,
            "signer": self.signer,
            "policy_serial": self.policy_serial,
            "at": self.at.astimezone(dt.UTC).isoformat(timespec="microseconds"),
        }
        if self.kind == TAG:
            doc.update(tag=self.tag, previous=self.previous, seq=self.seq)
        else:
            doc.update(number=self.number, digest=self.digest)
        return canonical_json(doc)


@dataclass(frozen=True)
class SignedRecord:
    """A record whose signature verified under the key it names (who that key is, is checked later)."""

    record: Record
    signer_key: ec.EllipticCurvePublicKey
    digest: str  # SHA-256 of the signed document, hex


def record_digest(document: bytes) -> str:
    """The SHA-256 (hex) of a signed document: how a policy names a record it keeps valid."""
    return hashlib.sha256(document).hexdigest()


def sign_record(record: Record, signer: Signer) -> bytes:
    """Sign ``record`` with ``signer`` (whose fingerprint it must name); returns the document."""
    if record.signer != signer.fingerprint():
        raise UsageError("a provenance record must name the fingerprint of the key that signs it")
    payload = record.to_json()
    if parse_record(payload) != record:  # validate before signing: never sign what readers refuse
        raise UsageError("refusing to sign a provenance record that would not parse back to itself")
    signed = ENVELOPE.seal(payload, signer)
    if len(signed) > MAX_RECORD_BYTES:
        raise UsageError("the provenance record is over its size limit")
    return signed


def verify_record(document: bytes) -> SignedRecord:
    """Parse a signed record and check its signature under the key it carries.

    Only the cryptography is checked here; whether that key belonged to a principal allowed to
    push or tag is :mod:`vault.access.records`' question.
    """
    key, payload, signature = ENVELOPE.open(document)
    record = parse_record(payload)
    if record.signer != keys.fingerprint(key):
        raise MalformedSignatureError("the provenance record names a signer other than the key it carries")
    ENVELOPE.check(key, payload, signature)
    return SignedRecord(record, key, record_digest(document))


def parse_record(payload: bytes) -> Record:
    """Parse and check a record payload; ``MalformedSignatureError`` on anything off."""
    doc = strict_json(payload, "provenance record")
    if not isinstance(doc, dict):
        raise MalformedSignatureError("a provenance record must be a JSON object")
    kind = doc.get("kind")
    if kind not in KINDS:
        raise MalformedSignatureError(f"unknown provenance record kind {kind!r}")
    exact_object(doc, f"{kind} provenance record", _FIELDS[kind])
    if doc["type"] != RECORD_TYPE or doc["version"] != RECORD_VERSION or type(doc["version"]) is not int:
        raise MalformedSignatureError(f"not a version {RECORD_VERSION} mlvault provenance record")
    try:
        record = Record(
            kind=kind,
            vault_id=_match(doc["vault"], _ID, "vault"),
            artifact=_artifact(doc["artifact"]),
            version_id=_match(doc["version_id"], _ID, "version_id"),
            principal_id=None if doc["principal"] is None else _match(doc["principal"], _ID, "principal"),
            signer=_match(doc["signer"], _SHA256, "signer"),
            policy_serial=_int(doc["policy_serial"], "policy_serial", least=0),
            at=_time(doc["at"]),
        )
        if kind == TAG:
            previous = doc["previous"]
            extra: dict[str, Any] = {
                "tag": _tag(doc["tag"]),
                "previous": None if previous is None else _match(previous, _ID, "previous"),
                "seq": _int(doc["seq"], "seq", least=1),
            }
        else:
            extra = {
                "number": _int(doc["number"], "number", least=1),
                "digest": _match(doc["digest"], _SHA256, "digest"),
            }
    except (UsageError, ValueError) as exc:
        raise MalformedSignatureError(f"a {kind} provenance record holds a malformed value: {exc}") from exc
    parsed = Record(**{**record.__dict__, **extra})
    if parsed.to_json() != payload:
        raise MalformedSignatureError("a provenance record payload is not in canonical form")
    return parsed


def _match(value: object, pattern: re.Pattern[str], what: str) -> str:
    if not isinstance(value, str) or not pattern.fullmatch(value):
        raise ValueError(f"{what} is not lower-case hex of the right length")
    return value


def _int(value: object, what: str, *, least: int) -> int:
    if type(value) is not int or not least <= value <= MAX_SEQ:
        raise ValueError(f"{what} is not an integer in range")
    return value


def _artifact(value: object) -> str:
    if not isinstance(value, str):
        raise ValueError("artifact is not a string")
    return check_artifact_name(value)


def _tag(value: object) -> str:
    if not isinstance(value, str):
        raise ValueError("tag is not a string")
    return check_tag(value)


def _time(value: object) -> dt.datetime:
    if not isinstance(value, str):
        raise ValueError("at is not a string")
    at = dt.datetime.fromisoformat(value)
    if at.tzinfo is None:
        raise ValueError("at has no time zone")
    return at.astimezone(dt.UTC)
