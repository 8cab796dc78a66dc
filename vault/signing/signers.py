"""Signers: where the private key lives.

A ``Signer`` turns bytes (the DSSE PAE of a payload) into a DER-encoded ECDSA P-256/SHA-256
signature and names its public key. The bundle code never sees private key material, so the same
bundle writer serves a key file on a laptop (``LocalSigner``) and a key that never leaves AWS KMS
(``KmsSigner``).

``KmsSigner`` takes a ready KMS client (``boto3.client("kms")`` or anything with the same
``get_public_key``/``sign`` methods): no client is created here and boto3 is not imported, so
mlvault does not need AWS libraries unless KMS is used. It signs with ``MessageType="DIGEST"``
over SHA-256 of the message, so payloads of any size fit KMS's request limit, and it checks each
signature against the public key before returning it, so a wrong key id or a misbehaving endpoint
fails at signing time rather than at someone else's deploy.
"""

from __future__ import annotations

import abc
import hashlib
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, utils

from vault.errors import AuthenticationError, ConfigurationError, NotFoundError, SignatureInvalidError
from vault.signing import keys


class Signer(abc.ABC):
    """Something that signs with an ECDSA P-256 key."""

    @property
    @abc.abstractmethod
    def public_key(self) -> ec.EllipticCurvePublicKey:
        """The public half of the signing key."""

    @abc.abstractmethod
    def sign(self, data: bytes) -> bytes:
        """Return the DER ECDSA signature of SHA-256(``data``)."""

    def public_key_pem(self) -> bytes:
        """PEM ``SubjectPublicKeyInfo`` of the signing key."""
        return keys.public_key_pem(self.public_key)

    def key_hint(self) -> str:
        """Return the ``model-signing`` key hint written into bundles."""
        return keys.key_hint(self.public_key)

    def fingerprint(self) -> str:
        """SHA-256 fingerprint of the DER public key (what trust policies list)."""
        return keys.fingerprint(self.public_key)


class LocalSigner(Signer):
    """Signs with a private key held in this process."""

    def __init__(self, private_key: ec.EllipticCurvePrivateKey) -> None:
        """Wrap a P-256 private key."""
        keys.require_p256(private_key.public_key(), "signing key")
        self._private_key = private_key

    @property
    def public_key(self) -> ec.EllipticCurvePublicKey:
        """The public half of the signing key."""
        return self._private_key.public_key()

    def sign(self, data: bytes) -> bytes:
        """Return the DER ECDSA signature of SHA-256(``data``)."""
        return self._private_key.sign(data, ec.ECDSA(hashes.SHA256()))


class KmsSigner(Signer):
    """Signs with an AWS KMS asymmetric key (KeySpec ECC_NIST_P256, KeyUsage SIGN_VERIFY)."""

    def __init__(self, kms_client: Any, key_id: str) -> None:
        """Fetch and check the key's public half; ``kms_client`` is a boto3 KMS client."""
        self._client = kms_client
        self._key_id = key_id
        response = self._call("get_public_key", KeyId=key_id)
        if response.get("KeyUsage") != "SIGN_VERIFY" or "ECDSA_SHA_256" not in response.get(
            "SigningAlgorithms", []
        ):
            raise ConfigurationError(
                f"KMS key {key_id} cannot sign with ECDSA_SHA_256; create it with "
                "KeySpec=ECC_NIST_P256 and KeyUsage=SIGN_VERIFY"
            )
        try:
            public = serialization.load_der_public_key(response["PublicKey"])
        except ValueError as exc:
            raise ConfigurationError(f"KMS returned an unreadable public key for {key_id}") from exc
        self._public_key = keys.require_p256(public, f"KMS key {key_id}")

    @property
    def public_key(self) -> ec.EllipticCurvePublicKey:
        """The public half of the KMS key."""
        return self._public_key

    def sign(self, data: bytes) -> bytes:
        """Sign SHA-256(``data``) in KMS and check the result against the public key."""
        digest = hashlib.sha256(data).digest()
        response = self._call(
            "sign",
            KeyId=self._key_id,
            Message=digest,
            MessageType="DIGEST",
            SigningAlgorithm="ECDSA_SHA_256",
        )
        signature = bytes(response["Signature"])
        try:
            self._public_key.verify(signature, digest, ec.ECDSA(utils.Prehashed(hashes.SHA256())))
        except InvalidSignature as exc:
            raise SignatureInvalidError(
                f"KMS key {self._key_id} returned a signature that does not verify under its public key"
            ) from exc
        return signature

    def _call(self, operation: str, **params: Any) -> dict[str, Any]:
        try:
            result: dict[str, Any] = getattr(self._client, operation)(**params)
        except Exception as exc:  # botocore is optional: classify by the AWS error code
            code = _aws_error_code(exc)
            if code is None:
                raise _sdk_failure(exc, f"KMS {operation} with key {self._key_id}") from exc
            if code == "NotFoundException":
                raise NotFoundError(f"KMS key not found: {self._key_id}") from exc
            if code in ("AccessDeniedException", "KMSInvalidStateException", "DisabledException"):
                raise AuthenticationError(f"KMS refused {operation} with key {self._key_id}: {code}") from exc
            raise ConfigurationError(f"KMS {operation} failed for key {self._key_id}: {code}") from exc
        return result


def _aws_error_code(exc: Exception) -> str | None:
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        code = response.get("Error", {}).get("Code")
        return str(code) if code else None
    return None


def _sdk_failure(exc: Exception, what: str) -> Exception:
    """A botocore failure without an answer (no credentials, no region, unreachable) as an mlvault error.

    Anything else is returned unchanged. botocore is imported only when the failure came from it.
    """
    if type(exc).__module__.split(".")[0] != "botocore":
        return exc
    from vault import aws

    if not aws.is_aws_error(exc):
        return exc
    return aws.translate(exc, what, service="AWS KMS", unconfigured=ConfigurationError)  # type: ignore[arg-type]
