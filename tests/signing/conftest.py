"""Shared fixtures for the signing tests: real keys, real files in tmp_path, a moto KMS."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from vault.signing import LocalSigner, hash_directory, sign_files
from vault.signing.keys import public_key_pem


@pytest.fixture(scope="session")
def private_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


@pytest.fixture(scope="session")
def other_private_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


@pytest.fixture
def signer(private_key: ec.EllipticCurvePrivateKey) -> LocalSigner:
    return LocalSigner(private_key)


def write_key_pair(directory: Path, key: ec.EllipticCurvePrivateKey, stem: str) -> tuple[Path, Path]:
    """Write ``stem.pem`` (PKCS#8, unencrypted) and ``stem.pub`` (SPKI PEM); return both paths."""
    private = directory / f"{stem}.pem"
    public = directory / f"{stem}.pub"
    private.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    public.write_bytes(public_key_pem(key.public_key()))
    return private, public


@pytest.fixture
def key_files(tmp_path: Path, private_key: ec.EllipticCurvePrivateKey) -> tuple[Path, Path]:
    keydir = tmp_path / "keys"
    keydir.mkdir()
    return write_key_pair(keydir, private_key, "signer")


@pytest.fixture
def other_key_files(tmp_path: Path, other_private_key: ec.EllipticCurvePrivateKey) -> tuple[Path, Path]:
    keydir = tmp_path / "other-keys"
    keydir.mkdir()
    return write_key_pair(keydir, other_private_key, "other")


@pytest.fixture
def model_dir(tmp_path: Path) -> Path:
    """Build a small model whose names sort differently by components than as strings."""
    root = tmp_path / "model"
    (root / "a").mkdir(parents=True)
    (root / "a" / "b").write_bytes(b"nested under a\n")
    (root / "a.b").write_bytes(b"a dot b\n")
    (root / "a-b").write_bytes(b"a dash b\n")
    (root / "weights").mkdir()
    (root / "weights" / "model.safetensors").write_bytes(bytes(range(256)) * 4096)  # 1 MiB
    (root / "weights" / "empty.bin").write_bytes(b"")
    (root / ".hidden").write_bytes(b"dotfiles are signed\n")
    (root / "tokenizer ünïcode.json").write_bytes(b'{"vocab": {}}\n')
    (root / "empty-dir").mkdir()
    (root / ".git").mkdir()
    (root / ".git" / "HEAD").write_bytes(b"ref: refs/heads/main\n")
    (root / ".gitignore").write_bytes(b"*.tmp\n")
    return root


@pytest.fixture
def signed_model(tmp_path: Path, model_dir: Path, signer: LocalSigner) -> tuple[Path, Path]:
    """Return the model directory and an mlvault bundle for it, written outside the directory."""
    bundle_path = tmp_path / "model.sig"
    extra: dict[str, str | int] = {
        "vault_id": "v-123",
        "artifact": "team/vision/resnet",
        "version": 3,
        "signer": "alice",
    }
    bundle_path.write_bytes(sign_files(hash_directory(model_dir), signer, extra, model_name="model"))
    return model_dir, bundle_path


@pytest.fixture
def kms_client(moto_kms_digest: Callable[[Any], None]) -> Iterator[Any]:
    """Yield a moto KMS client whose Sign honours MessageType=DIGEST, as real KMS does.

    moto 5.2 ignores MessageType and hashes a DIGEST message again (getmoto/moto PR #10202 fixes
    it). If the installed moto still does, its response handler is taken over for DIGEST requests
    only; the fix is a correction of the third-party double, never of mlvault code.
    """
    boto3 = pytest.importorskip("boto3")
    moto = pytest.importorskip("moto")
    with moto.mock_aws():
        client = boto3.client("kms", region_name="us-east-1")
        moto_kms_digest(client)
        yield client
