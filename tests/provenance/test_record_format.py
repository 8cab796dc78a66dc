"""Provenance records: known-answer vector, strict parsing, tampering, size caps, layout keys."""

from __future__ import annotations

import base64
import datetime as dt
import json
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from vault import layout
from vault.access.provenance import (
    MAX_RECORD_BYTES,
    PAYLOAD_TYPE,
    PUSH,
    TAG,
    Record,
    parse_record,
    record_digest,
    sign_record,
    verify_record,
)
from vault.errors import IntegrityError, MalformedSignatureError, SignatureInvalidError, UsageError
from vault.signing import keys
from vault.signing.oms import canonical_json, pae
from vault.signing.signers import LocalSigner

VECTOR = Path(__file__).parent / "vectors" / "push_record.json"
VECTOR_KEY = ec.derive_private_key(0x6D6C7661756C74, ec.SECP256R1())
AT = dt.datetime(2027, 1, 2, 3, 4, 5, tzinfo=dt.UTC)


def push_record(signer: LocalSigner, **changes: Any) -> Record:
    fields: dict[str, Any] = {
        "kind": PUSH,
        "vault_id": "ab" * 16,
        "artifact": "team/resnet",
        "version_id": "cd" * 16,
        "principal_id": "ef" * 16,
        "signer": signer.fingerprint(),
        "policy_serial": 3,
        "at": AT,
        "number": 7,
        "digest": "12" * 32,
    }
    fields.update(changes)
    return Record(**fields)


def tag_record(signer: LocalSigner, **changes: Any) -> Record:
    fields: dict[str, Any] = {
        "kind": TAG,
        "vault_id": "ab" * 16,
        "artifact": "team/resnet",
        "version_id": "cd" * 16,
        "principal_id": None,
        "signer": signer.fingerprint(),
        "policy_serial": 3,
        "at": AT,
        "tag": "prod",
        "previous": "01" * 16,
        "seq": 2,
    }
    fields.update(changes)
    return Record(**fields)


def test_known_answer_vector() -> None:
    signer = LocalSigner(VECTOR_KEY)
    document = VECTOR.read_bytes()
    checked = verify_record(document)
    assert checked.record == push_record(signer)
    assert checked.digest == "c260127e1f60140acfaf4069166744622e598f3ab1f36a4cbf40c932c7d82eb1"
    assert keys.fingerprint(checked.signer_key) == signer.fingerprint()
    # the payload is canonical JSON of exactly these fields, signed over DSSE PAE of its own type
    payload = base64.b64decode(json.loads(document)["payload"])
    assert payload == push_record(signer).to_json()
    assert payload.startswith(b'{"artifact":"team/resnet","at":"2027-01-02T03:04:05.000000+00:00"')
    assert PAYLOAD_TYPE == "application/vnd.mlvault.provenance.v1+json"


def test_round_trip_of_each_kind() -> None:
    signer = LocalSigner(keys.generate_private_key())
    for record in (
        push_record(signer),
        push_record(signer, kind="attest", principal_id=None),
        tag_record(signer),
    ):
        document = sign_record(record, signer)
        assert verify_record(document).record == record
        assert verify_record(document).digest == record_digest(document)
    first = tag_record(signer, previous=None, seq=1)
    assert verify_record(sign_record(first, signer)).record.previous is None


def test_signing_for_another_key_is_refused() -> None:
    signer = LocalSigner(keys.generate_private_key())
    other = LocalSigner(keys.generate_private_key())
    with pytest.raises(UsageError, match="fingerprint of the key"):
        sign_record(push_record(other), signer)


def _mutate(document: bytes, change: Any) -> bytes:
    doc = json.loads(document)
    change(doc)
    return json.dumps(doc, separators=(",", ":")).encode()


def _with_payload(document: bytes, edit: Any) -> bytes:
    def change(doc: dict[str, Any]) -> None:
        payload = json.loads(base64.b64decode(doc["payload"]))
        edit(payload)
        doc["payload"] = base64.b64encode(canonical_json(payload)).decode()

    return _mutate(document, change)


@pytest.mark.parametrize(
    ("edit", "error"),
    [
        (lambda p: p.update(number=8), SignatureInvalidError),  # a claim changed
        (lambda p: p.update(version_id="00" * 16), SignatureInvalidError),
        (lambda p: p.update(digest="34" * 32), SignatureInvalidError),
        (lambda p: p.update(principal=None), SignatureInvalidError),
        (lambda p: p.update(extra=1), MalformedSignatureError),  # an unknown field
        (lambda p: p.pop("policy_serial"), MalformedSignatureError),  # a missing field
        (lambda p: p.update(number=True), MalformedSignatureError),  # wrong types
        (lambda p: p.update(number="7"), MalformedSignatureError),
        (lambda p: p.update(number=0), MalformedSignatureError),
        (lambda p: p.update(digest="AB" * 32), MalformedSignatureError),
        (lambda p: p.update(artifact="../etc"), MalformedSignatureError),
        (lambda p: p.update(at="2027-01-02T03:04:05"), MalformedSignatureError),  # naive time
        (lambda p: p.update(kind="tag"), MalformedSignatureError),  # a push read as a tag
        (lambda p: p.update(kind="delete"), MalformedSignatureError),
        (lambda p: p.update(type="mlvault/access-policy"), MalformedSignatureError),
        (lambda p: p.update(version=2), MalformedSignatureError),
    ],
)
def test_tampered_payloads_are_refused(edit: Any, error: type[Exception]) -> None:
    with pytest.raises(error):
        verify_record(_with_payload(VECTOR.read_bytes(), edit))


def test_flipped_truncated_and_spliced_documents_are_refused() -> None:
    document = VECTOR.read_bytes()
    doc = json.loads(document)
    sig = bytearray(base64.b64decode(doc["signature"]))
    sig[-1] ^= 1
    with pytest.raises((SignatureInvalidError, MalformedSignatureError)):
        verify_record(_mutate(document, lambda d: d.update(signature=base64.b64encode(bytes(sig)).decode())))
    with pytest.raises(MalformedSignatureError):
        verify_record(document[:-5])  # truncated JSON
    with pytest.raises(MalformedSignatureError):
        verify_record(_mutate(document, lambda d: d.update(mediaType="application/json")))
    with pytest.raises(MalformedSignatureError):
        verify_record(_mutate(document, lambda d: d.pop("signerKey")))
    # a payload that is not canonical (same claims, reordered keys) is refused even if signed
    signer = LocalSigner(VECTOR_KEY)
    loose = json.dumps(json.loads(push_record(signer).to_json()), sort_keys=False, indent=1).encode()
    forged = _mutate(
        document,
        lambda d: d.update(
            payload=base64.b64encode(loose).decode(),
            signature=base64.b64encode(signer.sign(pae(PAYLOAD_TYPE, loose))).decode(),
        ),
    )
    with pytest.raises(MalformedSignatureError, match="canonical"):
        verify_record(forged)
    # another key spliced in: the named signer no longer matches the key carried
    other = LocalSigner(keys.generate_private_key())
    spliced = _mutate(document, lambda d: d.update(signerKey=other.public_key_pem().decode()))
    with pytest.raises(MalformedSignatureError, match="names a signer other"):
        verify_record(spliced)
    # the same claims signed by another key verify only as that key's record (who it is: checked later)
    resigned = verify_record(sign_record(push_record(other), other))
    assert resigned.record.signer == other.fingerprint() != signer.fingerprint()


def test_a_signature_over_another_payload_type_does_not_count() -> None:
    signer = LocalSigner(VECTOR_KEY)
    payload = push_record(signer).to_json()
    as_policy = signer.sign(pae("application/vnd.mlvault.access-policy.v1+json", payload))
    forged = _mutate(VECTOR.read_bytes(), lambda d: d.update(signature=base64.b64encode(as_policy).decode()))
    with pytest.raises(SignatureInvalidError):
        verify_record(forged)


def test_huge_inputs_are_refused_before_parsing() -> None:
    with pytest.raises(MalformedSignatureError, match="limit"):
        verify_record(b"{" + b" " * MAX_RECORD_BYTES + b"}")
    with pytest.raises(MalformedSignatureError):
        parse_record(b"[" * 100_000 + b"]" * 100_000)
    signer = LocalSigner(VECTOR_KEY)
    with pytest.raises((UsageError, MalformedSignatureError)):
        sign_record(push_record(signer, artifact="team/" + "a" * 20_000), signer)


def test_layout_keys_round_trip_and_are_strict() -> None:
    key = layout.version_record_key("cd" * 16, "12" * 32)
    assert key == f"records/v/{'cd' * 16}/{'12' * 32}"
    assert layout.parse_version_record_key(key) == ("cd" * 16, "12" * 32)
    tag = layout.tag_record_key("ab" * 16, 3)
    assert tag == f"records/t/{'ab' * 16}/{3:020d}"
    assert layout.parse_tag_record_key(tag) == ("ab" * 16, 3)
    assert layout.parse_version_record_key(key + "x") is None
    assert layout.parse_tag_record_key(f"records/t/{'ab' * 16}/3") is None
    assert layout.parse_tag_record_key(f"records/t/{'ab' * 16}/{0:020d}") is None
    with pytest.raises(IntegrityError):
        layout.version_record_key("CD" * 16, "12" * 32)
    with pytest.raises(IntegrityError):
        layout.version_record_key("cd" * 16, "12")
    with pytest.raises(ValueError):
        layout.tag_record_key("ab" * 16, 0)
