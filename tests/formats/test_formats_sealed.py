"""Tamper tests for sealed objects (pack trailers, manifests).

Layout (offsets): magic 0-3, version 4, suite 5, reserved 6-7, ring id 8-23, epoch 24-27,
object id 28-43, nonce 44-55, ciphertext length 56-59, ciphertext 60-, tag the last 16.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import pytest
from format_tampering import flip, put, put_u32, refused, single_bit_flips

from vault.crypto.keyring import Keyring
from vault.errors import ConfigurationError, DecryptionError, IntegrityError
from vault.formats import ALTERED, sealed


@dataclass(frozen=True)
class Golden:
    """One known-answer sealed object and what opens it."""

    kind: sealed.Kind
    blob: bytes
    ikm: bytes
    ring_id: bytes
    object_id: bytes
    plaintext: bytes

    def open(
        self,
        blob: bytes | None = None,
        *,
        ikm: bytes | None = None,
        ring_id: bytes | None = None,
        object_id: bytes | None = None,
    ) -> bytes:
        return sealed.open_object(
            self.kind,
            self.blob if blob is None else blob,
            self.ikm if ikm is None else ikm,
            self.ring_id if ring_id is None else ring_id,
            self.object_id if object_id is None else object_id,
        )


def golden_objects(vectors: dict[str, Any], ring: Keyring) -> dict[str, Golden]:
    i, h = vectors["inputs"], bytes.fromhex
    return {
        "trailer": Golden(
            sealed.TRAILER,
            h(vectors["pack"]["trailer"]),
            ring.dek(1),
            ring.ring_id,
            h(i["pack_id"]),
            h(vectors["pack"]["trailer_plaintext"]),
        ),
        "manifest": Golden(
            sealed.MANIFEST,
            h(vectors["manifest"]["sealed"]),
            ring.dek(1),
            ring.ring_id,
            h(i["version_id"]),
            vectors["manifest"]["plaintext"].encode(),
        ),
    }


@pytest.fixture(params=["trailer", "manifest"])
def golden(request: pytest.FixtureRequest, vectors: dict[str, Any], ring: Keyring) -> Golden:
    return golden_objects(vectors, ring)[request.param]


def test_golden_opens(golden: Golden) -> None:
    assert golden.open() == golden.plaintext
    assert sealed.parse_unauthenticated_header(golden.kind, golden.blob).ct_len == len(golden.plaintext) + 16


def test_every_single_bit_flip_is_refused(golden: Golden) -> None:
    for _offset, _bit, tampered in single_bit_flips(golden.blob):
        refused(golden.open, tampered, expect=IntegrityError)


@pytest.mark.parametrize(
    ("start", "size", "expect"),
    [
        (0, 4, IntegrityError),
        (8, 16, IntegrityError),
        (24, 4, DecryptionError),
        (28, 16, IntegrityError),
        (44, 12, DecryptionError),
        (56, 4, IntegrityError),
    ],
    ids=["magic", "ring id", "epoch", "object id", "nonce", "ct length"],
)
def test_flip_in_each_header_field_gives_its_error(
    golden: Golden, start: int, size: int, expect: type[Exception]
) -> None:
    for offset in sorted({start, start + size - 1}):
        refused(golden.open, flip(golden.blob, offset, 0), expect=expect)


def test_flip_in_ciphertext_and_tag_is_an_opaque_decryption_error(golden: Golden) -> None:
    for offset in (sealed.HEADER_SIZE, (sealed.HEADER_SIZE + len(golden.blob)) // 2, len(golden.blob) - 1):
        err = refused(golden.open, flip(golden.blob, offset, 3), expect=DecryptionError)
        assert str(err) == str(DecryptionError())


def test_truncation_at_every_length_is_refused(golden: Golden) -> None:
    for length in range(len(golden.blob)):
        refused(golden.open, golden.blob[:length], expect=IntegrityError)


def test_extension_is_refused(golden: Golden) -> None:
    for extra in (b"\0", golden.blob[-1:], golden.blob):
        err = refused(golden.open, golden.blob + extra, expect=IntegrityError)
        assert "extended" in str(err)


def test_splice_header_of_one_object_with_body_of_another(golden: Golden, ring: Keyring) -> None:
    other_id = bytes(range(0x31, 0x41))
    other = sealed._seal_from_parts(
        golden.kind, golden.ikm, golden.ring_id, 1, other_id, golden.plaintext, nonce=b"\5" * 12
    )
    assert len(other) == len(golden.blob)
    h = sealed.HEADER_SIZE
    refused(golden.open, golden.blob[:h] + other[h:], expect=DecryptionError)
    refused(golden.open, other[:h] + golden.blob[h:], object_id=other_id, expect=DecryptionError)


def test_object_under_another_name_is_refused(golden: Golden) -> None:
    other_id = bytes(range(0x31, 0x41))
    err = refused(golden.open, object_id=other_id, expect=IntegrityError)
    assert "not the one requested" in str(err)
    # Patching the header to claim the new name breaks HKDF salt and AAD.
    refused(golden.open, put(golden.blob, 28, other_id), object_id=other_id, expect=DecryptionError)


def test_wrong_keyring_is_refused(golden: Golden, stranger_ring: Keyring) -> None:
    refused(golden.open, ring_id=stranger_ring.ring_id, expect=IntegrityError)
    refused(
        golden.open,
        put(golden.blob, 8, stranger_ring.ring_id),
        ring_id=stranger_ring.ring_id,
        expect=DecryptionError,
    )
    refused(golden.open, ikm=stranger_ring.dek(0), expect=DecryptionError)


def test_wrong_epoch_is_refused(vectors: dict[str, Any], ring: Keyring) -> None:
    g = golden_objects(vectors, ring)["manifest"]
    older = put_u32(g.blob, 24, 0)
    epoch = sealed.parse_unauthenticated_header(g.kind, older).epoch
    assert epoch == 0
    refused(g.open, older, ikm=ring.dek(epoch), expect=DecryptionError)  # how callers pick the key
    refused(g.open, older, expect=DecryptionError)
    refused(
        ring.dek,
        sealed.parse_unauthenticated_header(g.kind, put_u32(g.blob, 24, 7)).epoch,
        expect=IntegrityError,
    )


def test_kinds_cannot_be_confused(vectors: dict[str, Any], ring: Keyring) -> None:
    objects = golden_objects(vectors, ring)
    for name, g in objects.items():
        for other_name, other in objects.items():
            if other_name == name:
                continue
            err = refused(
                sealed.open_object, other.kind, g.blob, g.ikm, g.ring_id, g.object_id, expect=IntegrityError
            )
            assert "magic" in str(err)
            # Relabelled with the other kind's magic: HKDF label and AAD differ.
            refused(
                sealed.open_object,
                other.kind,
                put(g.blob, 0, other.kind.magic),
                g.ikm,
                g.ring_id,
                g.object_id,
                expect=DecryptionError,
            )


@pytest.mark.parametrize("version", [0, 2, 255])
def test_unknown_version_on_a_stored_object_is_tampering(golden: Golden, version: int) -> None:
    err = refused(golden.open, put(golden.blob, 4, bytes([version])), expect=IntegrityError)
    assert "version" in str(err) and str(err).endswith(ALTERED)


@pytest.mark.parametrize(("offset", "value"), [(5, 0), (5, 2), (5, 255), (6, 1), (7, 1)])
def test_unknown_suite_or_reserved_on_a_stored_object_is_tampering(
    golden: Golden, offset: int, value: int
) -> None:
    err = refused(golden.open, put(golden.blob, offset, bytes([value])), expect=IntegrityError)
    assert "suite" in str(err) and str(err).endswith(ALTERED)


@pytest.mark.parametrize("magic", [b"MLVC", b"\0\0\0\0", b"mlvt"])
def test_bad_magic_is_an_integrity_error(golden: Golden, magic: bytes) -> None:
    refused(golden.open, put(golden.blob, 0, magic), expect=IntegrityError)


@pytest.mark.parametrize(
    "kind",
    [sealed.TRAILER, sealed.MANIFEST, sealed.SNAPSHOT],
    ids=["trailer", "manifest", "snapshot"],
)
def test_length_field_is_capped_per_kind_from_the_header_alone(kind: sealed.Kind) -> None:
    header = sealed.HEADER.pack(kind.magic, 1, 1, 0, b"r" * 16, 0, b"o" * 16, b"n" * 12, 0)
    start = time.perf_counter()
    for ct_len in (0, 15, kind.max_plaintext + 17, 2**32 - 1):
        refused(sealed.parse_unauthenticated_header, kind, put_u32(header, 56, ct_len), expect=IntegrityError)
    assert time.perf_counter() - start < 0.5
    largest = kind.max_plaintext + 16
    assert sealed.parse_unauthenticated_header(kind, put_u32(header, 56, largest)).ct_len == largest


def test_seal_refuses_plaintext_over_the_cap(ring: Keyring) -> None:
    err = refused(
        sealed.seal,
        sealed.TRAILER,
        ring.dek(0),
        ring.ring_id,
        0,
        b"o" * 16,
        bytes(sealed.TRAILER.max_plaintext + 1),
        expect=ConfigurationError,
    )
    assert "too large" in str(err)
