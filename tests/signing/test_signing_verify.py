"""Offline verification and tampering: every kind of change fails with its own error class."""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from vault.errors import ContentMismatchError, MalformedSignatureError, SignatureInvalidError, UsageError
from vault.signing import (
    FileDigest,
    LocalSigner,
    compare_files,
    hash_directory,
    parse_bundle,
    sign_files,
    verify_bundle,
    verify_directory,
)
from vault.signing.oms import DSSE_PAYLOAD_TYPE, Bundle, encode_bundle, pae


def _doc(path: Path) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(path.read_bytes())
    return doc


def _payload_bytes(path: Path) -> bytes:
    return base64.b64decode(_doc(path)["dsseEnvelope"]["payload"])


def _rewrite_payload(path: Path, payload: bytes) -> None:
    doc = _doc(path)
    doc["dsseEnvelope"]["payload"] = base64.b64encode(payload).decode()
    path.write_text(json.dumps(doc))


def _sign_raw_statement(signer: LocalSigner, statement: dict[str, Any]) -> bytes:
    """Sign a bundle over an arbitrary statement (to reach the post-signature checks)."""
    payload = json.dumps(statement).encode()
    signature = signer.sign(pae(DSSE_PAYLOAD_TYPE, payload))
    return encode_bundle(Bundle(payload, DSSE_PAYLOAD_TYPE, signature, signer.key_hint()))


def test_untouched_model_verifies_and_returns_the_signed_facts(
    signed_model: tuple[Path, Path], key_files: tuple[Path, Path], signer: LocalSigner
) -> None:
    model, bundle = signed_model
    statement = verify_directory(model, bundle, [key_files[1]])
    assert statement.signer_fingerprint == signer.fingerprint()
    assert statement.model_name == "model"
    assert statement.extra == {
        "vault_id": "v-123",
        "artifact": "team/vision/resnet",
        "version": 3,
        "signer": "alice",
    }
    assert {f.path: f.sha256 for f in statement.files} == {f.path: f.sha256 for f in hash_directory(model)}


def test_one_changed_byte_names_the_file(
    signed_model: tuple[Path, Path], key_files: tuple[Path, Path]
) -> None:
    model, bundle = signed_model
    weights = model / "weights" / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[len(data) // 2] ^= 0x01
    weights.write_bytes(bytes(data))
    with pytest.raises(
        ContentMismatchError, match=r"'weights/model.safetensors' differs from what was signed"
    ):
        verify_directory(model, bundle, [key_files[1]])


def test_renamed_file_is_missing_and_extra(
    signed_model: tuple[Path, Path], key_files: tuple[Path, Path]
) -> None:
    model, bundle = signed_model
    (model / "a.b").rename(model / "a.c")
    with pytest.raises(ContentMismatchError, match=r"'a.b' is signed but missing \(and 1 more problem"):
        verify_directory(model, bundle, [key_files[1]])


def test_added_file_is_refused_unless_extra_files_are_allowed(
    signed_model: tuple[Path, Path], key_files: tuple[Path, Path]
) -> None:
    model, bundle = signed_model
    (model / "weights" / "backdoor.pkl").write_bytes(b"cos\nsystem\n")
    with pytest.raises(ContentMismatchError, match=r"'weights/backdoor.pkl' is not covered by the signature"):
        verify_directory(model, bundle, [key_files[1]])
    statement = verify_directory(model, bundle, [key_files[1]], allow_extra_files=True)
    assert "weights/backdoor.pkl" not in {f.path for f in statement.files}


def test_removed_file_is_refused(signed_model: tuple[Path, Path], key_files: tuple[Path, Path]) -> None:
    model, bundle = signed_model
    (model / ".hidden").unlink()
    with pytest.raises(ContentMismatchError, match=r"'.hidden' is signed but missing"):
        verify_directory(model, bundle, [key_files[1]])


def test_git_metadata_and_bundle_inside_the_directory_are_not_content(
    model_dir: Path, signer: LocalSigner, key_files: tuple[Path, Path]
) -> None:
    bundle = model_dir / "model.sig"
    bundle.write_bytes(sign_files(hash_directory(model_dir), signer, {}, model_name="model"))
    (model_dir / ".git" / "ORIG_HEAD").write_bytes(b"changed by git\n")
    statement = verify_directory(model_dir, bundle, [key_files[1]])
    assert not any(f.path.startswith(".git") for f in statement.files)


def test_directory_signature_does_not_cover_a_single_file(
    signed_model: tuple[Path, Path], key_files: tuple[Path, Path]
) -> None:
    model, bundle = signed_model
    with pytest.raises(ContentMismatchError, match="covers a directory"):
        verify_directory(model / "a.b", bundle, [key_files[1]])


def test_edited_payload_fails_the_signature(
    signed_model: tuple[Path, Path], key_files: tuple[Path, Path]
) -> None:
    model, bundle = signed_model
    payload = _payload_bytes(bundle)
    _rewrite_payload(bundle, payload.replace(b'"alice"', b'"mallory"'))
    with pytest.raises(SignatureInvalidError, match="does not verify"):
        verify_directory(model, bundle, [key_files[1]])


def test_reencoded_payload_with_same_meaning_fails_the_signature(
    signed_model: tuple[Path, Path], key_files: tuple[Path, Path]
) -> None:
    """The signature is over the exact payload bytes; a re-serialization is a different payload."""
    model, bundle = signed_model
    original = _payload_bytes(bundle)
    reencoded = json.dumps(json.loads(original), indent=2).encode()
    assert json.loads(reencoded) == json.loads(original) and reencoded != original
    _rewrite_payload(bundle, reencoded)
    with pytest.raises(SignatureInvalidError):
        verify_directory(model, bundle, [key_files[1]])


def test_signature_swapped_from_another_bundle_fails(
    tmp_path: Path, signed_model: tuple[Path, Path], key_files: tuple[Path, Path], signer: LocalSigner
) -> None:
    model, bundle = signed_model
    donor = sign_files([FileDigest("x", b"\x00" * 32)], signer, {}, model_name="other")
    doc = _doc(bundle)
    doc["dsseEnvelope"]["signatures"] = json.loads(donor)["dsseEnvelope"]["signatures"]
    bundle.write_text(json.dumps(doc))
    with pytest.raises(SignatureInvalidError):
        verify_directory(model, bundle, [key_files[1]])


def test_verifying_with_another_key_fails(
    signed_model: tuple[Path, Path], other_key_files: tuple[Path, Path]
) -> None:
    model, bundle = signed_model
    with pytest.raises(SignatureInvalidError, match="different key"):
        verify_directory(model, bundle, [other_key_files[1]])


def test_another_key_without_a_hint_to_guide_us_still_fails(
    signed_model: tuple[Path, Path], other_private_key: ec.EllipticCurvePrivateKey
) -> None:
    _, bundle_path = signed_model
    bundle = parse_bundle(bundle_path.read_bytes())
    unhinted = parse_bundle(
        encode_bundle(Bundle(bundle.payload, bundle.payload_type, bundle.signature, None))
    )
    with pytest.raises(SignatureInvalidError, match="does not verify"):
        verify_bundle(unhinted, [other_private_key.public_key()])


def test_one_of_several_keys_is_enough(
    signed_model: tuple[Path, Path], key_files: tuple[Path, Path], other_key_files: tuple[Path, Path]
) -> None:
    model, bundle = signed_model
    statement = verify_directory(model, bundle, [other_key_files[1], key_files[1]])
    assert statement.signer_fingerprint != ""


def test_wrong_predicate_type_is_malformed_even_when_signed(signer: LocalSigner) -> None:
    data = _sign_raw_statement(
        signer,
        {
            "_type": "https://in-toto.io/Statement/v1",
            "subject": [],
            "predicateType": "https://slsa.dev/provenance/v1",
        },
    )
    with pytest.raises(MalformedSignatureError, match="predicate type"):
        verify_bundle(parse_bundle(data), [signer.public_key])


def test_legacy_v01_predicate_is_refused(signer: LocalSigner) -> None:
    data = _sign_raw_statement(
        signer,
        {
            "_type": "https://in-toto.io/Statement/v1",
            "subject": [{"name": "f", "digest": {"sha256": "00" * 32}}],
            "predicateType": "https://model_signing/Digests/v0.1",
            "predicate": {},
        },
    )
    with pytest.raises(MalformedSignatureError, match="predicate type"):
        verify_bundle(parse_bundle(data), [signer.public_key])


def _valid_statement(**predicate_overrides: Any) -> dict[str, Any]:
    predicate: dict[str, Any] = {
        "serialization": {"method": "files", "hash_type": "sha256", "allow_symlinks": False},
        "resources": [{"name": "f", "algorithm": "sha256", "digest": "11" * 32}],
    }
    predicate.update(predicate_overrides)
    root = hashlib.sha256(b"".join(bytes.fromhex(r["digest"]) for r in predicate["resources"])).hexdigest()
    return {
        "_type": "https://in-toto.io/Statement/v1",
        "subject": [{"name": "m", "digest": {"sha256": root}}],
        "predicateType": "https://model_signing/signature/v1.0",
        "predicate": predicate,
    }


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (
            {"serialization": {"method": "shards", "hash_type": "sha256", "allow_symlinks": False}},
            "'files' only",
        ),
        ({"serialization": {"method": "files", "hash_type": "blake3", "allow_symlinks": False}}, "hash type"),
        (
            {"resources": [{"name": "../etc/passwd", "algorithm": "sha256", "digest": "11" * 32}]},
            "clean relative",
        ),
        ({"resources": [{"name": "/abs", "algorithm": "sha256", "digest": "11" * 32}]}, "clean relative"),
        ({"resources": [{"name": "f", "algorithm": "sha256", "digest": "AB" * 32}]}, "lowercase hex"),
        (
            {"resources": [{"name": "f", "algorithm": "sha256", "digest": "11" * 32}] * 2},
            "listed twice",
        ),
        ({"mlvault": {"nested": {"a": 1}}}, "must be a string, integer"),
    ],
)
def test_signed_but_invalid_statements_are_malformed(
    signer: LocalSigner, overrides: dict[str, Any], message: str
) -> None:
    data = _sign_raw_statement(signer, _valid_statement(**overrides))
    with pytest.raises(MalformedSignatureError, match=message):
        verify_bundle(parse_bundle(data), [signer.public_key])


def test_inconsistent_subject_digest_is_malformed(signer: LocalSigner) -> None:
    statement = _valid_statement()
    statement["subject"][0]["digest"]["sha256"] = "22" * 32
    with pytest.raises(MalformedSignatureError, match="subject digest does not match"):
        verify_bundle(parse_bundle(_sign_raw_statement(signer, statement)), [signer.public_key])


def test_unknown_predicate_keys_are_ignored_as_oms_v1_requires(signer: LocalSigner) -> None:
    statement = _valid_statement(model_card={"license": "apache-2.0"})
    verified = verify_bundle(parse_bundle(_sign_raw_statement(signer, statement)), [signer.public_key])
    assert [f.path for f in verified.files] == ["f"]


def test_compare_files_reports_each_kind_of_mismatch(signer: LocalSigner) -> None:
    files = [FileDigest("a", b"\x01" * 32), FileDigest("b", b"\x02" * 32)]
    statement = verify_bundle(
        parse_bundle(sign_files(files, signer, {}, model_name="m")), [signer.public_key]
    )

    compare_files(statement, {"a": b"\x01" * 32, "b": b"\x02" * 32})
    with pytest.raises(ContentMismatchError, match=r"'b' differs .*signed sha256 0202"):
        compare_files(statement, {"a": b"\x01" * 32, "b": b"\x03" * 32})
    with pytest.raises(ContentMismatchError, match=r"'b' is signed but missing"):
        compare_files(statement, {"a": b"\x01" * 32})
    with pytest.raises(ContentMismatchError, match=r"'c' is not covered"):
        compare_files(statement, {"a": b"\x01" * 32, "b": b"\x02" * 32, "c": b"\x03" * 32})
    compare_files(statement, {"a": b"\x01" * 32, "b": b"\x02" * 32, "c": b"\x03" * 32}, allow_extra=True)


def test_verify_needs_at_least_one_key(signed_model: tuple[Path, Path]) -> None:
    _, bundle = signed_model
    with pytest.raises(UsageError, match="no public key"):
        verify_bundle(parse_bundle(bundle.read_bytes()), [])
