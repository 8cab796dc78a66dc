"""aws-kms key slots: capped key id and blob, and an EncryptionContext bound to vault, keyring and slot.

The format stays pure (no KMS here): it must store the KeyId to pin and the encrypted data
key exactly, refuse every length outside its cap before slicing anything, and give the key
layer an EncryptionContext that changes whenever the slot is moved to another vault, keyring
or slot id, so KMS itself refuses a copied blob. Damage tests shared with the x25519 kind
are in ``test_formats_keyslot_kinds.py``.
"""

from __future__ import annotations

import struct
import tracemalloc
from typing import Any

import pytest
from format_tampering import put, refused
from test_formats_keyslot import h, rechecksummed

from vault.errors import DecryptionError, IntegrityError
from vault.formats import keyslot
from vault.formats.keyslot_kinds import MAX_KMS_BLOB, MAX_KMS_KEY_ID, MAX_KMS_PARAMS, KmsParams

PARAMS_AT = 56
IDS = (b"v" * 16, b"r" * 16, b"s" * 16)


@pytest.fixture
def golden(vectors: dict[str, Any]) -> bytes:
    return h(vectors["aws_kms_slot_v2"]["slot"])


def with_params(golden: bytes, params: bytes) -> bytes:
    """The golden slot with its params replaced (length field included) and a fresh checksum."""
    old_len = struct.unpack(">H", golden[54:56])[0]
    tail = golden[PARAMS_AT + old_len :]
    return rechecksummed(golden[:54] + struct.pack(">H", len(params)) + params + tail)


def kms_params(
    key_id: bytes, blob: bytes, *, id_len: int | None = None, blob_len: int | None = None
) -> bytes:
    id_len = len(key_id) if id_len is None else id_len
    blob_len = len(blob) if blob_len is None else blob_len
    return struct.pack(">H", id_len) + key_id + struct.pack(">H", blob_len) + blob


# -- encryption context ----------------------------------------------------------------------------


def test_encryption_context_names_vault_keyring_and_slot(golden: bytes, vectors: dict[str, Any]) -> None:
    slot = keyslot.decode(golden)
    assert keyslot.kms_encryption_context(slot) == vectors["aws_kms_slot_v2"]["encryption_context"]
    assert keyslot.kms_encryption_context_for(*IDS) == {
        "mlvault:vault": (b"v" * 16).hex(),
        "mlvault:keyring": (b"r" * 16).hex(),
        "mlvault:slot": (b"s" * 16).hex(),
    }


@pytest.mark.parametrize(
    ("offset", "field"), [(6, "mlvault:vault"), (22, "mlvault:keyring"), (38, "mlvault:slot")]
)
def test_slot_copied_elsewhere_asks_kms_with_another_context_and_fails_the_aead(
    golden: bytes, vectors: dict[str, Any], offset: int, field: str
) -> None:
    # Copied into another vault, keyring or slot id: KMS would be asked with a context that does
    # not match the one the blob was made under, and even the right data key fails the AEAD.
    original = keyslot.kms_encryption_context(keyslot.decode(golden))
    moved = keyslot.decode(rechecksummed(put(golden, offset, b"\x42" * 16)))
    context = keyslot.kms_encryption_context(moved)
    assert context != original
    assert {k for k in context if context[k] != original[k]} == {field}
    assert context[field] == (b"\x42" * 16).hex()
    refused(keyslot.unwrap, moved, h(vectors["aws_kms_slot_v2"]["kek"]), expect=DecryptionError)


# -- the pinned key id and the blob are authenticated -----------------------------------------------


@pytest.mark.parametrize(
    "key_id",
    ["alias/attacker", "arn:aws:kms:eu-west-1:444455556666:key/1234abcd-12ab-34cd-56ef-1234567890ab"],
)
def test_key_id_rewritten_is_refused(golden: bytes, vectors: dict[str, Any], key_id: str) -> None:
    blob = keyslot.kms_blob(keyslot.decode(golden))
    slot = keyslot.decode(with_params(golden, kms_params(key_id.encode(), blob)))
    assert keyslot.kms_key_id(slot) == key_id
    refused(keyslot.unwrap, slot, h(vectors["aws_kms_slot_v2"]["kek"]), expect=DecryptionError)


def test_fields_reordered_are_refused(golden: bytes, vectors: dict[str, Any]) -> None:
    slot = keyslot.decode(golden)
    key_id, blob = keyslot.kms_key_id(slot).encode(), keyslot.kms_blob(slot)
    # Blob first, key id second: the blob is not a printable key id, so decode refuses it.
    refused(keyslot.decode, with_params(golden, kms_params(blob, key_id)), expect=IntegrityError)
    # Printable both ways: it parses, then the AEAD refuses it.
    swapped = keyslot.decode(with_params(golden, kms_params(b"blob-as-id", key_id)))
    assert keyslot.kms_blob(swapped) == key_id
    refused(keyslot.unwrap, swapped, h(vectors["aws_kms_slot_v2"]["kek"]), expect=DecryptionError)


# -- caps, checked before anything is sliced --------------------------------------------------------


@pytest.mark.parametrize(
    ("id_len", "blob_len"),
    [
        (0, 4),
        (MAX_KMS_KEY_ID + 1, 4),
        (65535, 4),
        (4, 0),
        (4, MAX_KMS_BLOB + 1),
        (4, 65535),
        (5, 4),  # one more than present
        (3, 4),  # one less: the blob length is read from the wrong place
        (4, 3),
        (4, 5),
    ],
)
def test_inner_lengths_must_be_in_range_and_add_up(golden: bytes, id_len: int, blob_len: int) -> None:
    params = kms_params(b"abcd", b"blob", id_len=id_len, blob_len=blob_len)
    err = refused(keyslot.decode, with_params(golden, params), expect=IntegrityError)
    assert "aws-kms key slot parameters malformed" in str(err)


@pytest.mark.parametrize("params_len", [MAX_KMS_PARAMS + 1, 65535])
def test_params_length_over_the_cap_is_refused_even_when_the_bytes_are_there(
    golden: bytes, params_len: int
) -> None:
    params = kms_params(b"k" * MAX_KMS_KEY_ID, bytes(params_len - MAX_KMS_KEY_ID - 4))
    err = refused(keyslot.decode, with_params(golden, params), expect=IntegrityError)
    assert "too long" in str(err)


def test_hostile_lengths_allocate_nothing_beyond_the_input(golden: bytes) -> None:
    # The declared lengths claim far more than is present; decode must refuse without
    # allocating anything near those sizes (each hostile slot is under 1 KiB).
    hostile = [
        rechecksummed(put(golden, 54, b"\xff\xff")),
        with_params(golden, kms_params(b"a", b"b", id_len=65535)),
        with_params(golden, kms_params(b"a", b"b", blob_len=65535)),
        rechecksummed(put(golden, len(keyslot.decode(golden).aad) - 4, b"\xff\xff\xff\xff")),
    ]
    tracemalloc.start()
    try:
        for data in hostile:
            refused(keyslot.decode, data, expect=IntegrityError)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 64 * 1024


@pytest.mark.parametrize(
    "key_id",
    [b"\xff\xfe", b"alias/\xc3", b"alias/x\nkey", b"alias/\x1b[31mred", b"alias/\x7f", b"alias/\xe2\x80\x8b"],
    ids=["not utf-8", "cut utf-8", "newline", "escape", "delete", "zero-width space"],
)
def test_key_id_must_be_printable_utf8(golden: bytes, key_id: bytes) -> None:
    err = refused(keyslot.decode, with_params(golden, kms_params(key_id, b"blob")), expect=IntegrityError)
    assert "malformed" in str(err)
    text = key_id.decode(errors="replace")
    if "\ufffd" not in text:
        with pytest.raises(ValueError, match="printable"):
            KmsParams(text, b"blob").encode()


def test_the_caps_themselves_are_accepted_and_fit_max_slot_size() -> None:
    kek = b"k" * 32
    key_id, blob = "a" * MAX_KMS_KEY_ID, b"b" * MAX_KMS_BLOB
    data = keyslot.encode_kms(*IDS, key_id, blob, kek, b"s" * keyslot.MAX_SECRET)
    slot = keyslot.decode(data)
    assert (keyslot.kms_key_id(slot), keyslot.kms_blob(slot)) == (key_id, blob)
    assert len(data) == keyslot.MAX_SLOT_SIZE
    # What a KMS slot wrapping a 32-byte owner key can reach, for the keystore's fetch cap.
    assert len(keyslot.encode_kms(*IDS, key_id, blob, kek, b"o" * 32)) == 8332


@pytest.mark.parametrize(
    ("key_id", "blob", "kek"),
    [
        ("", b"blob", b"k" * 32),
        ("a" * (MAX_KMS_KEY_ID + 1), b"blob", b"k" * 32),
        ("é" * (MAX_KMS_KEY_ID // 2 + 1), b"blob", b"k" * 32),  # the cap counts UTF-8 bytes
        ("alias/a\tb", b"blob", b"k" * 32),
        ("alias/a", b"", b"k" * 32),
        ("alias/a", b"b" * (MAX_KMS_BLOB + 1), b"k" * 32),
        ("alias/a", b"blob", b"k" * 16),
    ],
    ids=["empty id", "long id", "long utf-8 id", "tab", "empty blob", "long blob", "short data key"],
)
def test_encode_refuses_what_decode_would(key_id: str, blob: bytes, kek: bytes) -> None:
    with pytest.raises(ValueError):
        keyslot.encode_kms(*IDS, key_id, blob, kek, b"secret")
