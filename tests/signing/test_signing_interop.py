"""Interoperability with PyPI ``model-signing`` (1.1.x) in both directions, directory and file."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest

from vault.errors import ContentMismatchError
from vault.signing import LocalSigner, hash_directory, sign_files, verify_directory
from vault.signing.keys import key_hint

model_signing: Any = pytest.importorskip("model_signing")


def _payload(bundle: Path) -> dict[str, Any]:
    doc = json.loads(bundle.read_bytes())
    payload: dict[str, Any] = json.loads(base64.b64decode(doc["dsseEnvelope"]["payload"]))
    return payload


def _their_sign(model: Path, private_key: Path, signature: Path) -> None:
    model_signing.signing.Config().use_elliptic_key_signer(private_key=private_key).sign(model, signature)


def _their_verify(model: Path, public_key: Path, signature: Path) -> None:
    model_signing.verifying.Config().use_elliptic_key_verifier(public_key=public_key).verify(model, signature)


def test_our_directory_bundle_verifies_with_model_signing(
    signed_model: tuple[Path, Path], key_files: tuple[Path, Path]
) -> None:
    model, bundle = signed_model
    _their_verify(model, key_files[1], bundle)
    # and it carries our predicate extension, which model-signing tolerated
    assert _payload(bundle)["predicate"]["mlvault"]["artifact"] == "team/vision/resnet"


def test_model_signing_rejects_our_bundle_after_tampering(
    signed_model: tuple[Path, Path], key_files: tuple[Path, Path]
) -> None:
    model, bundle = signed_model
    (model / "weights" / "empty.bin").write_bytes(b"x")
    with pytest.raises(ValueError, match=r"weights/empty\.bin"):
        _their_verify(model, key_files[1], bundle)


def test_our_single_file_bundle_verifies_with_model_signing(
    tmp_path: Path, model_dir: Path, signer: LocalSigner, key_files: tuple[Path, Path]
) -> None:
    target = model_dir / "weights" / "model.safetensors"
    bundle = tmp_path / "file.sig"
    bundle.write_bytes(sign_files(hash_directory(target), signer, {"version": 1}, model_name=target.name))
    _their_verify(target, key_files[1], bundle)


def test_model_signing_directory_bundle_verifies_with_mlvault(
    tmp_path: Path, model_dir: Path, key_files: tuple[Path, Path], signer: LocalSigner
) -> None:
    bundle = tmp_path / "theirs.sig"
    _their_sign(model_dir, key_files[0], bundle)

    statement = verify_directory(model_dir, bundle, [key_files[1]])

    assert statement.signer_fingerprint == signer.fingerprint()
    assert [f.path for f in statement.files] == [f.path for f in hash_directory(model_dir)]
    assert statement.extra == {}
    assert json.loads(bundle.read_bytes())["verificationMaterial"]["publicKey"]["hint"] == key_hint(
        signer.public_key
    )


def test_model_signing_single_file_bundle_verifies_with_mlvault(
    tmp_path: Path, model_dir: Path, key_files: tuple[Path, Path]
) -> None:
    target = model_dir / "a.b"
    bundle = tmp_path / "theirs-file.sig"
    _their_sign(target, key_files[0], bundle)

    statement = verify_directory(target, bundle, [key_files[1]])

    assert [f.path for f in statement.files] == ["."]
    target.write_bytes(b"changed\n")
    with pytest.raises(ContentMismatchError, match=r"'\.' differs"):
        verify_directory(target, bundle, [key_files[1]])


def test_model_signing_bundle_stored_inside_the_model_directory(
    model_dir: Path, key_files: tuple[Path, Path]
) -> None:
    """The model-signing CLI ignores the signature file when it lies inside the model; so do we."""
    bundle = model_dir / "model.sig"
    model_signing.signing.Config().use_elliptic_key_signer(private_key=key_files[0]).set_hashing_config(
        model_signing.hashing.Config().set_ignored_paths(paths=["model.sig"])
    ).sign(model_dir, bundle)

    statement = verify_directory(model_dir, bundle, [key_files[1]])
    assert "model.sig" not in [f.path for f in statement.files]
    assert "model.sig" in statement.ignore_paths


def test_tampering_with_model_signing_bundle_is_detected_by_mlvault(
    tmp_path: Path, model_dir: Path, key_files: tuple[Path, Path]
) -> None:
    bundle = tmp_path / "theirs.sig"
    _their_sign(model_dir, key_files[0], bundle)
    (model_dir / "a" / "b").unlink()
    with pytest.raises(ContentMismatchError, match="'a/b' is signed but missing"):
        verify_directory(model_dir, bundle, [key_files[1]])


def test_file_order_matches_model_signing(model_dir: Path) -> None:
    theirs = [rd.identifier for rd in model_signing.hashing.Config().hash(model_dir).resource_descriptors()]
    ours = [f.path for f in hash_directory(model_dir)]
    assert ours == theirs
    assert ours.index("a/b") < ours.index("a-b") < ours.index("a.b")  # component order, not string order
    assert ".gitignore" not in ours and ".hidden" in ours
