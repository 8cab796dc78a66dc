"""The signed-document envelope shared by the trust policy, the access policy and provenance records.

A document is the JSON object ``{"mediaType": …, "payload": b64, <key field>: PEM, "signature":
b64 DER}``; the signature is ECDSA P-256 / SHA-256 over ``PAE(payload type, payload)``, so each
kind's payload type separates its signatures from every other kind's. Each kind names its media
type, payload type, key field, size cap and whether keys are sorted when writing (the byte format
of each kind is fixed by its known-answer vectors). Parsing is strict: exactly these fields, the
size checked before parsing, a loadable PEM key, strict base64.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from vault.errors import MalformedSignatureError, SignatureInvalidError, UsageError
from vault.signing import keys
from vault.signing.oms import pae, strict_json
from vault.signing.signers import Signer


@dataclass(frozen=True)
class Envelope:
    """One kind of signed document; ``what`` names it in messages ("trust policy")."""

    media_type: str
    payload_type: str
    key_field: str
    max_bytes: int
    what: str
    sort_keys: bool = False

    def seal(self, payload: bytes, signer: Signer) -> bytes:
        """The signed document for ``payload``."""
        document = {
            "mediaType": self.media_type,
            "payload": base64.b64encode(payload).decode("ascii"),
            self.key_field: signer.public_key_pem().decode("ascii"),
            "signature": base64.b64encode(signer.sign(pae(self.payload_type, payload))).decode("ascii"),
        }
        return json.dumps(document, separators=(",", ":"), sort_keys=self.sort_keys).encode("utf-8")

    def open(self, document: bytes) -> tuple[ec.EllipticCurvePublicKey, bytes, bytes]:
        """(key, payload, signature) of a document; the signature is not checked yet."""
        if len(document) > self.max_bytes:
            raise MalformedSignatureError(f"the {self.what} is over the {self.max_bytes}-byte limit")
        return self.open_parsed(strict_json(document, f"signed {self.what}"))

    def open_parsed(self, raw: object) -> tuple[ec.EllipticCurvePublicKey, bytes, bytes]:
        """:meth:`open` for a document already parsed (and size-checked) by the caller."""
        fields = {"mediaType", "payload", self.key_field, "signature"}
        doc = exact_object(raw, f"signed {self.what}", fields)
        if doc["mediaType"] != self.media_type:
            raise MalformedSignatureError(f"unsupported signed {self.what} media type {doc['mediaType']!r}")
        pem = doc[self.key_field]
        if not isinstance(pem, str):
            raise MalformedSignatureError(f"signed {self.what} {self.key_field} must be a PEM string")
        try:
            key = keys.load_public_key_pem(pem.encode("ascii"), f"{self.what} key")
        except (UsageError, UnicodeEncodeError) as exc:
            raise MalformedSignatureError(f"the signed {self.what} holds an unusable key") from exc
        return key, self._b64(doc["payload"]), self._b64(doc["signature"])

    def check(self, key: ec.EllipticCurvePublicKey, payload: bytes, signature: bytes) -> None:
        """``SignatureInvalidError`` unless ``signature`` by ``key`` covers ``payload``."""
        try:
            key.verify(signature, pae(self.payload_type, payload), ec.ECDSA(hashes.SHA256()))
        except InvalidSignature as exc:
            raise SignatureInvalidError(
                f"the {self.what} signature does not verify: the {self.what} was modified"
            ) from exc

    def _b64(self, value: object) -> bytes:
        if not isinstance(value, str):
            raise MalformedSignatureError(f"signed {self.what} fields must be base64 strings")
        try:
            return base64.b64decode(value.encode("ascii"), validate=True)
        except (UnicodeEncodeError, ValueError) as exc:
            raise MalformedSignatureError(f"the signed {self.what} holds invalid base64") from exc


def exact_object(value: object, what: str, fields: set[str] | frozenset[str]) -> dict[str, Any]:
    """``value`` if it is a JSON object with exactly ``fields``, else ``MalformedSignatureError``."""
    if not isinstance(value, dict) or set(value) != fields:
        raise MalformedSignatureError(f"{what} must be an object with exactly the fields {sorted(fields)}")
    return value
