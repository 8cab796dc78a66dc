"""The OpenSSF Model Signing (OMS) v1.0 byte format: Sigstore bundle, DSSE envelope, statement.

A signature file is a Sigstore bundle v0.3 JSON document, exactly the shape ``model-signing``'s
key signer writes::

    {"mediaType": "application/vnd.dev.sigstore.bundle.v0.3+json",
     "verificationMaterial": {"publicKey": {"hint": "<sha256 of the PEM public key>"}, "tlogEntries": []},
     "dsseEnvelope": {"payload": "<standard base64>", "payloadType": "application/vnd.in-toto+json",
                      "signatures": [{"sig": "<standard base64 DER ECDSA>", "keyid": ""}]}}

The signature is over the DSSE pre-authentication encoding (PAE) of the payload *bytes*, so a
verifier must check it before interpreting the payload and must never re-serialize it. The payload
is an in-toto Statement v1 whose predicate (``https://model_signing/signature/v1.0``) lists every
file as a resource ``{name, algorithm: "sha256", digest: hex}`` under a ``files`` serialization;
the single subject's digest is SHA-256 over the raw per-file digests in the listed order.
mlvault's own fields (vault id, artifact, version, signer) live in the predicate under
``"mlvault"``; OMS v1.0 verifiers ignore predicate keys they do not know.

Parsing is strict, because this is the input an attacker controls: size capped before anything
else, duplicate JSON keys and non-finite numbers refused, unknown top-level keys refused, strict
standard base64, exactly one DSSE signature. Every failure is a ``MalformedSignatureError``.
``parse_bundle`` checks the envelope only; ``parse_statement`` interprets the payload and is
called by the verifier after the signature has been checked.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import hashlib
import json
import types
from collections.abc import Collection, Mapping, Sequence
from typing import Any

from vault.errors import MalformedSignatureError, UsageError
from vault.signing.hashing import (
    GIT_IGNORE_PATHS,
    SINGLE_FILE_NAME,
    FileDigest,
    name_problem,
    sorted_digests,
)
from vault.signing.signers import Signer

BUNDLE_MEDIA_TYPE = "application/vnd.dev.sigstore.bundle.v0.3+json"
DSSE_PAYLOAD_TYPE = "application/vnd.in-toto+json"
STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
PREDICATE_TYPE = "https://model_signing/signature/v1.0"
MLVAULT_PREDICATE_KEY = "mlvault"

MAX_BUNDLE_BYTES = 16 * 1024 * 1024
"""Largest bundle we read: room for ~100,000 files; anything bigger is refused unread."""

MAX_SIGNATURE_BYTES = 1024
MAX_EXTRA_ENTRIES = 64
MAX_EXTRA_VALUE_CHARS = 4096

ExtraValue = str | int | bool | None
_HEX_DIGITS = frozenset("0123456789abcdef")


@dataclasses.dataclass(frozen=True)
class Bundle:
    """A parsed, not yet verified, bundle: the exact signed payload bytes and one signature."""

    payload: bytes
    payload_type: str
    signature: bytes
    key_hint: str | None
    keyid: str = ""


@dataclasses.dataclass(frozen=True)
class Statement:
    """What a signature says: the model name, its files and digests, and mlvault's extras."""

    model_name: str
    root_digest: bytes
    files: tuple[FileDigest, ...]
    ignore_paths: tuple[str, ...]
    allow_symlinks: bool
    extra: Mapping[str, ExtraValue]


def pae(payload_type: str, payload: bytes) -> bytes:
    """DSSE v1 pre-authentication encoding (lengths in bytes, ASCII decimal)."""
    type_bytes = payload_type.encode("utf-8")
    return b"DSSEv1 %d %b %d %b" % (len(type_bytes), type_bytes, len(payload), payload)


def canonical_json(value: Any) -> bytes:
    """Deterministic compact JSON: sorted keys, no whitespace, UTF-8."""
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode("utf-8")


def root_digest(files: Sequence[FileDigest]) -> bytes:
    """OMS subject digest: SHA-256 over the raw file digests in the listed order."""
    hasher = hashlib.sha256()
    for f in files:
        hasher.update(f.sha256)
    return hasher.digest()


def build_statement(
    files: Sequence[FileDigest],
    extra: Mapping[str, ExtraValue],
    *,
    model_name: str,
    ignore_paths: Collection[str] = GIT_IGNORE_PATHS,
) -> bytes:
    """Build the canonical in-toto statement payload for ``files``."""
    try:
        ordered = sorted_digests(files)
    except UsageError as exc:
        raise UsageError(f"cannot sign: {exc}") from exc
    if not ordered:
        raise UsageError("cannot sign an empty file list")
    _check_extra(extra, UsageError)
    serialization: dict[str, Any] = {"method": "files", "hash_type": "sha256", "allow_symlinks": False}
    ignored = sorted(set(ignore_paths))
    for path in ignored:
        if name_problem(path):
            raise UsageError(f"invalid ignore path {path!r}")
    if ignored:
        serialization["ignore_paths"] = ignored
    predicate: dict[str, Any] = {
        "serialization": serialization,
        "resources": [{"name": f.path, "algorithm": "sha256", "digest": f.sha256.hex()} for f in ordered],
    }
    if extra:
        predicate[MLVAULT_PREDICATE_KEY] = dict(extra)
    statement = {
        "_type": STATEMENT_TYPE,
        "subject": [{"name": model_name, "digest": {"sha256": root_digest(ordered).hex()}}],
        "predicateType": PREDICATE_TYPE,
        "predicate": predicate,
    }
    return canonical_json(statement)


def sign_files(
    files: Sequence[FileDigest],
    signer: Signer,
    extra: Mapping[str, ExtraValue],
    *,
    model_name: str,
    ignore_paths: Collection[str] = GIT_IGNORE_PATHS,
) -> bytes:
    """Sign ``files`` and return the OMS bundle JSON bytes."""
    payload = build_statement(files, extra, model_name=model_name, ignore_paths=ignore_paths)
    signature = signer.sign(pae(DSSE_PAYLOAD_TYPE, payload))
    return encode_bundle(Bundle(payload, DSSE_PAYLOAD_TYPE, signature, signer.key_hint()))


def encode_bundle(bundle: Bundle) -> bytes:
    """Serialize a bundle to Sigstore bundle v0.3 JSON."""
    public_key: dict[str, str] = {} if bundle.key_hint is None else {"hint": bundle.key_hint}
    document = {
        "mediaType": BUNDLE_MEDIA_TYPE,
        "verificationMaterial": {"publicKey": public_key, "tlogEntries": []},
        "dsseEnvelope": {
            "payload": base64.b64encode(bundle.payload).decode("ascii"),
            "payloadType": bundle.payload_type,
            "signatures": [
                {"sig": base64.b64encode(bundle.signature).decode("ascii"), "keyid": bundle.keyid}
            ],
        },
    }
    return json.dumps(document, separators=(",", ":")).encode("utf-8")


def strict_json(data: bytes, what: str) -> Any:
    """Parse JSON refusing duplicate keys, NaN/Infinity, bad UTF-8 and absurd nesting."""

    def no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        result: dict[str, Any] = {}
        for key, value in pairs:
            if key in result:
                raise ValueError(f"duplicate key {key!r}")
            result[key] = value
        return result

    def no_constants(name: str) -> Any:
        raise ValueError(f"non-finite number {name}")

    try:
        return json.loads(data.decode("utf-8"), object_pairs_hook=no_duplicates, parse_constant=no_constants)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise MalformedSignatureError(f"{what} is not valid JSON: {exc}") from exc


def parse_bundle(data: bytes) -> Bundle:
    """Parse and structurally check a bundle; does not verify the signature."""
    if len(data) > MAX_BUNDLE_BYTES:
        raise MalformedSignatureError(
            f"signature bundle is {len(data)} bytes, over the {MAX_BUNDLE_BYTES}-byte limit"
        )
    doc = _object(strict_json(data, "signature bundle"), "signature bundle")
    _exact_keys(doc, {"mediaType", "verificationMaterial", "dsseEnvelope"}, "signature bundle")
    if doc["mediaType"] != BUNDLE_MEDIA_TYPE:
        raise MalformedSignatureError(
            f"unsupported bundle media type {doc['mediaType']!r}; expected {BUNDLE_MEDIA_TYPE}"
        )
    material = _object(doc["verificationMaterial"], "verificationMaterial")
    _exact_keys(material, {"publicKey", "tlogEntries"}, "verificationMaterial")
    if material["tlogEntries"] != []:
        raise MalformedSignatureError("transparency log entries are not supported in key-signed bundles")
    public_key = _object(material["publicKey"], "verificationMaterial.publicKey")
    _allowed_keys(public_key, {"hint"}, "verificationMaterial.publicKey")
    hint = public_key.get("hint")
    if hint is not None and (not isinstance(hint, str) or len(hint) > 256):
        raise MalformedSignatureError("verificationMaterial.publicKey.hint must be a short string")

    envelope = _object(doc["dsseEnvelope"], "dsseEnvelope")
    _exact_keys(envelope, {"payload", "payloadType", "signatures"}, "dsseEnvelope")
    if envelope["payloadType"] != DSSE_PAYLOAD_TYPE:
        raise MalformedSignatureError(
            f"unsupported DSSE payload type {envelope['payloadType']!r}; expected {DSSE_PAYLOAD_TYPE}"
        )
    signatures = envelope["signatures"]
    if not isinstance(signatures, list) or len(signatures) != 1:
        raise MalformedSignatureError("the DSSE envelope must hold exactly one signature")
    entry = _object(signatures[0], "DSSE signature")
    _allowed_keys(entry, {"sig", "keyid"}, "DSSE signature")
    keyid = entry.get("keyid", "")
    if not isinstance(keyid, str) or len(keyid) > 256:
        raise MalformedSignatureError("DSSE signature keyid must be a short string")
    signature = _b64(entry.get("sig"), "DSSE signature")
    if not 0 < len(signature) <= MAX_SIGNATURE_BYTES:
        raise MalformedSignatureError("DSSE signature has an impossible length")
    payload = _b64(envelope["payload"], "DSSE payload")
    return Bundle(payload, envelope["payloadType"], signature, hint or None, keyid)


def parse_statement(payload: bytes) -> Statement:
    """Interpret a (verified) payload as an OMS v1.0 ``files`` statement."""
    doc = _object(strict_json(payload, "signed statement"), "signed statement")
    if doc.get("_type") != STATEMENT_TYPE:
        raise MalformedSignatureError(f"statement type {doc.get('_type')!r} is not {STATEMENT_TYPE}")
    if doc.get("predicateType") != PREDICATE_TYPE:
        raise MalformedSignatureError(
            f"unsupported predicate type {doc.get('predicateType')!r}; expected {PREDICATE_TYPE}"
        )
    subjects = doc.get("subject")
    if not isinstance(subjects, list) or len(subjects) != 1:
        raise MalformedSignatureError("the statement must have exactly one subject")
    subject = _object(subjects[0], "subject")
    model_name = subject.get("name")
    digest_map = _object(subject.get("digest"), "subject digest")
    if not isinstance(model_name, str):
        raise MalformedSignatureError("subject name must be a string")
    expected_root = _hex32(digest_map.get("sha256"), "subject sha256 digest")

    predicate = _object(doc.get("predicate"), "predicate")
    serialization = _object(predicate.get("serialization"), "predicate serialization")
    if serialization.get("method") != "files":
        raise MalformedSignatureError(
            f"unsupported serialization method {serialization.get('method')!r}; mlvault verifies 'files' only"
        )
    if serialization.get("hash_type") != "sha256":
        raise MalformedSignatureError(
            f"unsupported hash type {serialization.get('hash_type')!r}; expected sha256"
        )
    allow_symlinks = serialization.get("allow_symlinks")
    if not isinstance(allow_symlinks, bool):
        raise MalformedSignatureError("serialization.allow_symlinks must be true or false")
    ignore_paths = serialization.get("ignore_paths", [])
    if not isinstance(ignore_paths, list) or not all(
        isinstance(p, str) and not name_problem(p) for p in ignore_paths
    ):
        raise MalformedSignatureError("serialization.ignore_paths must be a list of relative paths")

    resources = predicate.get("resources")
    if not isinstance(resources, list) or not resources:
        raise MalformedSignatureError("predicate.resources must be a non-empty list")
    files = []
    for resource in resources:
        item = _object(resource, "resource")
        name = item.get("name")
        if not isinstance(name, str) or (name != SINGLE_FILE_NAME and name_problem(name)):
            raise MalformedSignatureError(f"resource name {name!r} is not a clean relative path")
        if item.get("algorithm") != "sha256":
            raise MalformedSignatureError(f"resource {name!r} uses {item.get('algorithm')!r}, not sha256")
        files.append(FileDigest(name, _hex32(item.get("digest"), f"digest of {name!r}")))
    try:
        sorted_digests(files)
    except UsageError as exc:
        raise MalformedSignatureError(f"signed file list is invalid: {exc}") from exc
    if root_digest(files) != expected_root:
        raise MalformedSignatureError(
            "statement is inconsistent: the subject digest does not match the files"
        )

    extra = predicate.get(MLVAULT_PREDICATE_KEY, {})
    _check_extra(extra, MalformedSignatureError)
    return Statement(
        model_name,
        expected_root,
        tuple(files),
        tuple(ignore_paths),
        allow_symlinks,
        types.MappingProxyType(dict(extra)),
    )


def _check_extra(extra: object, error: type[Exception]) -> None:
    if not isinstance(extra, Mapping) or len(extra) > MAX_EXTRA_ENTRIES:
        raise error(f"mlvault predicate fields must be a mapping of at most {MAX_EXTRA_ENTRIES} entries")
    for key, value in extra.items():
        if not isinstance(key, str) or len(key) > 128:
            raise error(f"mlvault predicate field name {key!r} is not a short string")
        if not (value is None or isinstance(value, (str, int, bool))):
            raise error(f"mlvault predicate field {key!r} must be a string, integer, boolean or null")
        if isinstance(value, str) and len(value) > MAX_EXTRA_VALUE_CHARS:
            raise error(f"mlvault predicate field {key!r} is too long")


def _object(value: object, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise MalformedSignatureError(f"{what} must be a JSON object")
    return value


def _exact_keys(obj: dict[str, Any], keys: set[str], what: str) -> None:
    if set(obj) != keys:
        missing, unknown = sorted(keys - set(obj)), sorted(set(obj) - keys)
        raise MalformedSignatureError(f"{what} has missing fields {missing} or unknown fields {unknown}")


def _allowed_keys(obj: dict[str, Any], keys: set[str], what: str) -> None:
    unknown = sorted(set(obj) - keys)
    if unknown:
        raise MalformedSignatureError(f"{what} has unknown fields {unknown}")


def _b64(value: object, what: str) -> bytes:
    if not isinstance(value, str):
        raise MalformedSignatureError(f"{what} must be a base64 string")
    try:
        return base64.b64decode(value.encode("ascii"), validate=True)
    except (UnicodeEncodeError, binascii.Error) as exc:
        raise MalformedSignatureError(f"{what} is not standard base64") from exc


def _hex32(value: object, what: str) -> bytes:
    if not isinstance(value, str) or len(value) != 64 or not set(value) <= _HEX_DIGITS:
        raise MalformedSignatureError(f"{what} must be 64 lowercase hex characters")
    return bytes.fromhex(value)
