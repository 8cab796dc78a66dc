"""The OMS bundle format: exact shape on write, strict parsing and size caps on read."""

from __future__ import annotations

import base64
import hashlib
import json
import time
from pathlib import Path
from typing import Any

import pytest

from vault.errors import MalformedSignatureError, UsageError
from vault.signing import FileDigest, LocalSigner, parse_bundle, read_bundle_file, sign_files
from vault.signing.oms import MAX_BUNDLE_BYTES, pae


@pytest.fixture
def bundle_doc(signer: LocalSigner) -> dict[str, Any]:
    files = [
        FileDigest("b/x.bin", hashlib.sha256(b"x").digest()),
        FileDigest("a", hashlib.sha256(b"a").digest()),
    ]
    doc: dict[str, Any] = json.loads(
        sign_files(files, signer, {"artifact": "ns/m", "version": 2}, model_name="m")
    )
    return doc


def _payload(doc: dict[str, Any]) -> dict[str, Any]:
    payload: dict[str, Any] = json.loads(base64.b64decode(doc["dsseEnvelope"]["payload"]))
    return payload


def test_pae_matches_the_dsse_specification_example() -> None:
    assert pae("http://example.com/HelloWorld", b"hello world") == (
        b"DSSEv1 29 http://example.com/HelloWorld 11 hello world"
    )


def test_bundle_has_exactly_the_oms_shape(bundle_doc: dict[str, Any], signer: LocalSigner) -> None:
    assert list(bundle_doc) == ["mediaType", "verificationMaterial", "dsseEnvelope"]
    assert bundle_doc["mediaType"] == "application/vnd.dev.sigstore.bundle.v0.3+json"
    assert bundle_doc["verificationMaterial"] == {"publicKey": {"hint": signer.key_hint()}, "tlogEntries": []}
    envelope = bundle_doc["dsseEnvelope"]
    assert set(envelope) == {"payload", "payloadType", "signatures"}
    assert envelope["payloadType"] == "application/vnd.in-toto+json"
    assert len(envelope["signatures"]) == 1


def test_statement_lists_files_in_order_with_root_digest_and_extras(bundle_doc: dict[str, Any]) -> None:
    statement = _payload(bundle_doc)
    assert statement["_type"] == "https://in-toto.io/Statement/v1"
    assert statement["predicateType"] == "https://model_signing/signature/v1.0"
    predicate = statement["predicate"]
    assert predicate["serialization"] == {
        "method": "files",
        "hash_type": "sha256",
        "allow_symlinks": False,
        "ignore_paths": [".git", ".gitattributes", ".github", ".gitignore"],
    }
    assert [r["name"] for r in predicate["resources"]] == ["a", "b/x.bin"]
    assert predicate["resources"][0] == {
        "name": "a",
        "algorithm": "sha256",
        "digest": hashlib.sha256(b"a").hexdigest(),
    }
    root = hashlib.sha256(hashlib.sha256(b"a").digest() + hashlib.sha256(b"x").digest()).hexdigest()
    assert statement["subject"] == [{"name": "m", "digest": {"sha256": root}}]
    assert predicate["mlvault"] == {"artifact": "ns/m", "version": 2}


def test_parse_returns_the_exact_signed_bytes(bundle_doc: dict[str, Any], signer: LocalSigner) -> None:
    bundle = parse_bundle(json.dumps(bundle_doc).encode())
    assert bundle.payload == base64.b64decode(bundle_doc["dsseEnvelope"]["payload"])
    assert bundle.key_hint == signer.key_hint()


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda d: d.update(mediaType="application/vnd.dev.sigstore.bundle.v0.2+json"), "media type"),
        (lambda d: d["dsseEnvelope"].update(payloadType="application/json"), "payload type"),
        (lambda d: d.update(messageSignature={}), "unknown fields"),
        (lambda d: d.pop("verificationMaterial"), "missing fields"),
        (lambda d: d["verificationMaterial"].update(tlogEntries=[{"logIndex": "1"}]), "transparency log"),
        (lambda d: d["verificationMaterial"]["publicKey"].update(rawBytes="AAAA"), "unknown fields"),
        (lambda d: d["dsseEnvelope"]["signatures"].append(d["dsseEnvelope"]["signatures"][0]), "exactly one"),
        (lambda d: d["dsseEnvelope"].update(signatures=[]), "exactly one"),
        (lambda d: d["dsseEnvelope"].update(payload="not base64!"), "standard base64"),
        (
            lambda d: d["dsseEnvelope"].update(payload=d["dsseEnvelope"]["payload"].rstrip("=")),
            "standard base64",
        ),
        (lambda d: d["dsseEnvelope"]["signatures"][0].update(sig="-_-_"), "standard base64"),
        (lambda d: d["dsseEnvelope"]["signatures"][0].update(sig=""), "impossible length"),
        (lambda d: d.update(dsseEnvelope=[]), "JSON object"),
    ],
)
def test_malformed_bundles_are_refused(bundle_doc: dict[str, Any], mutate: Any, message: str) -> None:
    mutate(bundle_doc)
    with pytest.raises(MalformedSignatureError, match=message):
        parse_bundle(json.dumps(bundle_doc).encode())


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\xff\xfe",
        b"[1, 2]",
        b'{"mediaType": 1, "mediaType": 2}',
        b'{"x": NaN}',
        b"[" * 100_000 + b"]" * 100_000,
    ],
)
def test_non_json_and_hostile_json_is_malformed(data: bytes) -> None:
    with pytest.raises(MalformedSignatureError):
        parse_bundle(data)


def test_duplicate_keys_are_refused(bundle_doc: dict[str, Any]) -> None:
    text = json.dumps(bundle_doc)
    doubled = text.replace('"mediaType"', '"mediaType": "x", "mediaType"', 1)
    with pytest.raises(MalformedSignatureError, match="duplicate key"):
        parse_bundle(doubled.encode())


def test_oversize_bundle_bytes_are_refused_before_parsing() -> None:
    with pytest.raises(MalformedSignatureError, match="over the"):
        parse_bundle(b" " * (MAX_BUNDLE_BYTES + 1))


def test_one_gigabyte_bundle_file_is_refused_quickly_without_reading_it(tmp_path: Path) -> None:
    huge = tmp_path / "huge.sig"
    with open(huge, "wb") as fh:
        fh.truncate(1024**3)  # sparse: reading it would take seconds and 1 GiB of memory
    started = time.perf_counter()
    with pytest.raises(MalformedSignatureError, match="1073741824 bytes, over the"):
        read_bundle_file(huge)
    assert time.perf_counter() - started < 0.5


def test_bundle_path_must_be_a_regular_file(tmp_path: Path) -> None:
    with pytest.raises(MalformedSignatureError, match="not a regular file"):
        read_bundle_file(tmp_path)


def test_sign_files_refuses_bad_input(signer: LocalSigner) -> None:
    digest = b"\x00" * 32
    with pytest.raises(UsageError, match="empty file list"):
        sign_files([], signer, {}, model_name="m")
    with pytest.raises(UsageError, match="listed twice"):
        sign_files([FileDigest("a", digest), FileDigest("a", digest)], signer, {}, model_name="m")
    with pytest.raises(UsageError, match="string, integer"):
        sign_files([FileDigest("a", digest)], signer, {"k": 1.5}, model_name="m")  # type: ignore[dict-item]
    with pytest.raises(UsageError, match="invalid file name"):
        FileDigest("../a", digest)
    with pytest.raises(UsageError, match="32 bytes"):
        FileDigest("a", b"short")
