"""KMS signing through moto: a bundle signed in KMS verifies with mlvault and with model-signing."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from vault.errors import ConfigurationError, NotFoundError, SignatureInvalidError
from vault.signing import KmsSigner, hash_directory, sign_files, verify_directory
from vault.signing.keys import fingerprint


def _kms_key(client: Any) -> str:
    meta = client.create_key(KeySpec="ECC_NIST_P256", KeyUsage="SIGN_VERIFY")["KeyMetadata"]
    key_id: str = meta["KeyId"]
    return key_id


def test_kms_signed_bundle_verifies_with_mlvault(tmp_path: Path, model_dir: Path, kms_client: Any) -> None:
    signer = KmsSigner(kms_client, _kms_key(kms_client))
    public = tmp_path / "kms.pub"
    public.write_bytes(signer.public_key_pem())
    bundle = tmp_path / "model.sig"
    bundle.write_bytes(sign_files(hash_directory(model_dir), signer, {"signer": "ci"}, model_name="model"))

    statement = verify_directory(model_dir, bundle, [public])

    assert statement.signer_fingerprint == fingerprint(signer.public_key) == signer.fingerprint()
    assert statement.extra == {"signer": "ci"}


def test_kms_signed_bundle_verifies_with_model_signing(
    tmp_path: Path, model_dir: Path, kms_client: Any
) -> None:
    model_signing = pytest.importorskip("model_signing")
    signer = KmsSigner(kms_client, _kms_key(kms_client))
    public = tmp_path / "kms.pub"
    public.write_bytes(signer.public_key_pem())
    bundle = tmp_path / "model.sig"
    bundle.write_bytes(sign_files(hash_directory(model_dir), signer, {}, model_name="model"))

    model_signing.verifying.Config().use_elliptic_key_verifier(public_key=public).verify(model_dir, bundle)

    (model_dir / "a.b").write_bytes(b"tampered\n")
    with pytest.raises(ValueError, match=r"a\.b"):
        model_signing.verifying.Config().use_elliptic_key_verifier(public_key=public).verify(
            model_dir, bundle
        )


def test_kms_signature_is_ecdsa_sha256_over_the_message(kms_client: Any) -> None:
    signer = KmsSigner(kms_client, _kms_key(kms_client))
    message = b"DSSEv1 3 abc 3 xyz" * 1000  # larger than KMS's 4 KiB RAW limit: DIGEST mode
    signature = signer.sign(message)
    signer.public_key.verify(signature, message, ec.ECDSA(hashes.SHA256()))


def test_kms_endpoint_that_signs_the_wrong_bytes_is_caught_at_signing() -> None:
    """Stock moto hashes a DIGEST message again; the signer's self-check must refuse that result."""
    boto3 = pytest.importorskip("boto3")
    moto = pytest.importorskip("moto")
    with moto.mock_aws():
        client = boto3.client("kms", region_name="us-east-1")
        signer = KmsSigner(client, _kms_key(client))
        try:
            signature = signer.sign(b"payload")
        except SignatureInvalidError as exc:
            assert "does not verify under its public key" in str(exc)
        else:  # a moto that implements DIGEST correctly: then the signature must be right
            signer.public_key.verify(signature, b"payload", ec.ECDSA(hashes.SHA256()))


def test_kms_key_that_cannot_sign_is_refused(kms_client: Any) -> None:
    key_id = kms_client.create_key(KeySpec="SYMMETRIC_DEFAULT", KeyUsage="ENCRYPT_DECRYPT")["KeyMetadata"][
        "KeyId"
    ]
    with pytest.raises(ConfigurationError, match="cannot sign with ECDSA_SHA_256"):
        KmsSigner(kms_client, key_id)


def test_unknown_kms_key_is_not_found(kms_client: Any) -> None:
    with pytest.raises(NotFoundError, match="KMS key not found"):
        KmsSigner(kms_client, "00000000-0000-0000-0000-000000000000")
