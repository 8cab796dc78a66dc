"""Known-answer vectors for every byte format.

Three checks per format: the encoders reproduce the golden bytes in ``vectors.json`` from
its fixed inputs; the golden bytes decode to the expected plaintext; and, for the AEAD
formats, the golden ciphertext is recomputed here straight from pyca/cryptography, argon2
and blake3 with the layout written out by hand, so a vector is a statement about the
format and not merely "whatever the code produced once".
"""

from __future__ import annotations

import hashlib
import json
import struct
from typing import Any

import blake3
import pytest
import zstandard
from argon2.low_level import Type, hash_secret_raw
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from make_vectors import build, zstd_plaintext

from vault.crypto.kdf import KdfParams, stretch
from vault.crypto.keyring import Keyring
from vault.formats import chunk, keyslot, manifest, pack, sealed
from vault.formats import config as config_format
from vault.formats import keyring as keyring_format
from vault.layout import pack_key
from vault.repository.packs import read_trailer
from vault.storage.memory import MemoryBackend

SECTIONS = ["chunk", "chunk_zstd", "pack", "manifest", "keyring", "owner_slot", "passphrase_slot", "config"]


def h(text: str) -> bytes:
    return bytes.fromhex(text)


def hkdf(ikm: bytes, salt: bytes, info: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=salt, info=info).derive(ikm)


def u32(value: int) -> bytes:
    return value.to_bytes(4, "big")


@pytest.mark.parametrize("section", SECTIONS)
def test_encoders_reproduce_the_golden_vectors(vectors: dict[str, Any], section: str) -> None:
    assert build(vectors["inputs"])[section] == vectors[section]


# -- independent recomputation --------------------------------------------------------------


def test_chunk_id_is_keyed_blake3(inputs: dict[str, Any], vectors: dict[str, Any]) -> None:
    plain = inputs["chunk_plaintext"].encode()
    assert blake3.blake3(plain, key=h(inputs["id_key"])).hexdigest() == vectors["chunk"]["chunk_id"]


@pytest.mark.parametrize("section", ["chunk", "chunk_zstd"])
def test_chunk_record_from_primitives(inputs: dict[str, Any], vectors: dict[str, Any], section: str) -> None:
    if section == "chunk":
        stored, flags, nonce = inputs["chunk_plaintext"].encode(), 0, h(inputs["chunk_nonce"])
    else:
        stored, flags, nonce = h(inputs["zstd_stored"]), 1, h(inputs["zstd_nonce"])
    chunk_id = h(vectors[section]["chunk_id"])
    epoch = 1
    header = (
        b"MLVC"
        + bytes([1, 1, flags])
        + h(inputs["ring_id"])
        + u32(epoch)
        + chunk_id
        + nonce
        + u32(len(stored) + 16)
    )
    assert len(header) == 75
    key = hkdf(h(inputs["deks"][epoch]), chunk_id, b"mlvault/chunk/v1")
    expected = header + AESGCM(key).encrypt(nonce, stored, header)
    assert expected.hex() == vectors[section]["record"]


def _sealed_from_primitives(
    magic: bytes,
    info: bytes,
    ikm: bytes,
    ring_id: bytes,
    epoch: int,
    object_id: bytes,
    nonce: bytes,
    plaintext: bytes,
) -> bytes:
    header = magic + bytes([1, 1, 0, 0]) + ring_id + u32(epoch) + object_id + nonce + u32(len(plaintext) + 16)
    assert len(header) == 60
    return header + AESGCM(hkdf(ikm, object_id, info)).encrypt(nonce, plaintext, header)


def test_pack_trailer_from_primitives(inputs: dict[str, Any], vectors: dict[str, Any]) -> None:
    record_len = len(h(vectors["chunk"]["record"]))
    zrecord_len = len(h(vectors["chunk_zstd"]["record"]))
    plaintext = (
        u32(2)
        + h(vectors["chunk"]["chunk_id"])
        + (24).to_bytes(8, "big")
        + u32(record_len)
        + h(vectors["chunk_zstd"]["chunk_id"])
        + (24 + record_len).to_bytes(8, "big")
        + u32(zrecord_len)
    )
    assert plaintext.hex() == vectors["pack"]["trailer_plaintext"]
    trailer = _sealed_from_primitives(
        b"MLVT",
        b"mlvault/pack-trailer/v1",
        h(inputs["deks"][1]),
        h(inputs["ring_id"]),
        1,
        h(inputs["pack_id"]),
        h(inputs["trailer_nonce"]),
        plaintext,
    )
    assert trailer.hex() == vectors["pack"]["trailer"]
    assert vectors["pack"]["header"] == (b"MLVP" + bytes([1, 0, 0, 0]) + h(inputs["pack_id"])).hex()
    assert vectors["pack"]["footer"] == (u32(len(trailer)) + b"MLVE").hex()


def test_sealed_manifest_from_primitives(inputs: dict[str, Any], vectors: dict[str, Any]) -> None:
    blob = _sealed_from_primitives(
        b"MLVM",
        b"mlvault/manifest/v1",
        h(inputs["deks"][1]),
        h(inputs["ring_id"]),
        1,
        h(inputs["version_id"]),
        h(inputs["manifest_nonce"]),
        vectors["manifest"]["plaintext"].encode(),
    )
    assert blob.hex() == vectors["manifest"]["sealed"]


def test_keyring_secret_from_primitives(inputs: dict[str, Any], vectors: dict[str, Any]) -> None:
    secret = b"MLVR" + b"\x01" + h(inputs["id_key"]) + struct.pack(">H", 2) + b"".join(map(h, inputs["deks"]))
    assert secret.hex() == vectors["keyring"]["secret"]


def _slot_from_primitives(
    kind: int,
    vault_id: bytes,
    ring_id: bytes,
    slot_id: bytes,
    params: bytes,
    nonce: bytes,
    kek: bytes,
    secret: bytes,
) -> bytes:
    aad = (
        b"MLVS"
        + bytes([1, kind])
        + vault_id
        + ring_id
        + slot_id
        + struct.pack(">H", len(params))
        + params
        + nonce
        + u32(len(secret) + 16)
    )
    return aad + AESGCM(hkdf(kek, slot_id, b"mlvault/keyslot/v1")).encrypt(nonce, secret, aad)


def test_owner_slot_from_primitives(inputs: dict[str, Any], vectors: dict[str, Any]) -> None:
    slot_id = h(inputs["owner_slot_id"])
    kek = hkdf(h(inputs["owner_key"]), slot_id, b"mlvault/slot/owner/v1")
    assert kek.hex() == vectors["owner_slot"]["kek"]
    blob = _slot_from_primitives(
        2,
        h(inputs["vault_id"]),
        h(inputs["ring_id"]),
        slot_id,
        b"",
        h(inputs["owner_slot_nonce"]),
        kek,
        h(vectors["keyring"]["secret"]),
    )
    assert blob.hex() == vectors["owner_slot"]["slot"]


def test_passphrase_slot_from_primitives(inputs: dict[str, Any], vectors: dict[str, Any]) -> None:
    t, m, p = inputs["kdf"]
    salt = h(inputs["salt"])
    kek = hash_secret_raw(
        inputs["passphrase"].encode(),
        salt,
        time_cost=t,
        memory_cost=m,
        parallelism=p,
        hash_len=32,
        type=Type.ID,
        version=19,
    )
    assert kek.hex() == vectors["passphrase_slot"]["kek"]
    params = salt + u32(t) + u32(m) + bytes([p])
    blob = _slot_from_primitives(
        1,
        h(inputs["vault_id"]),
        bytes(16),
        h(inputs["passphrase_slot_id"]),
        params,
        h(inputs["passphrase_slot_nonce"]),
        kek,
        h(inputs["owner_key"]),
    )
    assert blob.hex() == vectors["passphrase_slot"]["slot"]


def test_content_digest_from_hashlib(inputs: dict[str, Any], vectors: dict[str, Any]) -> None:
    # OMS root digest: SHA-256 over the raw per-file digests in path order ("a.bin" < "sub/b.txt").
    a_bin = hashlib.sha256(inputs["chunk_plaintext"].encode()).digest()
    sub_b = hashlib.sha256(b"").digest()
    assert hashlib.sha256(a_bin + sub_b).hexdigest() == vectors["manifest"]["digest"]


def test_manifest_plaintext_is_canonical_json(vectors: dict[str, Any]) -> None:
    text = vectors["manifest"]["plaintext"]
    doc = json.loads(text)
    assert json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False) == text
    assert doc["format"] == 1
    assert doc["digest"] == vectors["manifest"]["digest"]
    # Entries keep the writer's order: directories first, then files.
    assert [e["path"] for e in doc["entries"]] == ["sub", "empty", "sub/b.txt", "a.bin"]


# -- the golden bytes decode --------------------------------------------------------------


def test_golden_chunk_records_decode(inputs: dict[str, Any], vectors: dict[str, Any], ring: Keyring) -> None:
    plain = chunk.decode(
        h(vectors["chunk"]["record"]), ring, h(vectors["chunk"]["chunk_id"]), zstandard.ZstdDecompressor()
    )
    assert plain == inputs["chunk_plaintext"].encode()
    zplain = chunk.decode(
        h(vectors["chunk_zstd"]["record"]),
        ring,
        h(vectors["chunk_zstd"]["chunk_id"]),
        zstandard.ZstdDecompressor(),
    )
    assert zplain == zstd_plaintext(inputs)
    header = chunk.parse_unauthenticated_header(h(vectors["chunk_zstd"]["record"]))
    assert (header.flags, header.epoch, header.ring_id) == (chunk.FLAG_ZSTD, 1, ring.ring_id)


def test_golden_pack_reads_back(inputs: dict[str, Any], vectors: dict[str, Any], ring: Keyring) -> None:
    p = vectors["pack"]
    whole = (
        h(p["header"])
        + h(vectors["chunk"]["record"])
        + h(vectors["chunk_zstd"]["record"])
        + h(p["trailer"])
        + h(p["footer"])
    )
    assert (len(whole), hashlib.sha256(whole).hexdigest()) == (p["size"], p["sha256"])
    backend = MemoryBackend()
    backend.put(pack_key(inputs["pack_id"]), whole)
    entries = read_trailer(backend, inputs["pack_id"], ring)
    assert entries == pack.decode_entries(h(p["trailer_plaintext"]))
    plains = [
        chunk.decode(whole[e.offset : e.offset + e.length], ring, e.chunk_id, zstandard.ZstdDecompressor())
        for e in entries
    ]
    assert plains == [inputs["chunk_plaintext"].encode(), zstd_plaintext(inputs)]
    assert pack.decode_footer(h(p["footer"]), p["size"]) == len(h(p["trailer"]))


def test_golden_sealed_manifest_opens(inputs: dict[str, Any], vectors: dict[str, Any], ring: Keyring) -> None:
    blob = h(vectors["manifest"]["sealed"])
    header = sealed.parse_unauthenticated_header(sealed.MANIFEST, blob)
    plaintext = sealed.open_object(
        sealed.MANIFEST, blob, ring.dek(header.epoch), ring.ring_id, h(inputs["version_id"])
    )
    assert plaintext.decode() == vectors["manifest"]["plaintext"]
    doc = manifest.decode(plaintext)
    assert doc.digest == vectors["manifest"]["digest"]
    assert (doc.version_id, doc.artifact, doc.root) == (inputs["version_id"], "team/model", "dir")
    assert [f.path for f in doc.files] == ["sub/b.txt", "a.bin"]
    assert doc.files[1].chunks == ((h(vectors["chunk"]["chunk_id"]), len(inputs["chunk_plaintext"])),)
    assert doc.metadata == {"framework": "torch", "note": "naïve ✓"}
    assert doc.parents == ("data/set@v1",)
    assert manifest.encode(doc).decode() == vectors["manifest"]["plaintext"]


def test_golden_owner_slot_opens(inputs: dict[str, Any], vectors: dict[str, Any], ring: Keyring) -> None:
    slot = keyslot.decode(h(vectors["owner_slot"]["slot"]))
    assert (slot.kind, slot.vault_id, slot.ring_id, slot.slot_id, slot.kdf, slot.salt) == (
        keyslot.KIND_OWNER,
        h(inputs["vault_id"]),
        ring.ring_id,
        h(inputs["owner_slot_id"]),
        None,
        None,
    )
    secret = keyslot.unwrap(slot, h(vectors["owner_slot"]["kek"]))
    assert secret.hex() == vectors["keyring"]["secret"]
    assert keyring_format.decode(secret, ring.ring_id) == ring


def test_golden_passphrase_slot_opens(inputs: dict[str, Any], vectors: dict[str, Any]) -> None:
    slot = keyslot.decode(h(vectors["passphrase_slot"]["slot"]))
    assert slot.kind == keyslot.KIND_PASSPHRASE
    assert slot.kdf == KdfParams(*inputs["kdf"])
    assert slot.salt == h(inputs["salt"])
    assert slot.slot_id == h(inputs["passphrase_slot_id"])
    assert slot.salt is not None and slot.kdf is not None
    kek = stretch(inputs["passphrase"].encode(), slot.salt, slot.kdf)
    assert kek.hex() == vectors["passphrase_slot"]["kek"]
    assert keyslot.unwrap(slot, kek) == h(inputs["owner_key"])


def test_golden_config_decodes(inputs: dict[str, Any], vectors: dict[str, Any]) -> None:
    config = config_format.decode(vectors["config"].encode())
    assert config == config_format.VaultConfig(inputs["vault_id"])
    doc = json.loads(vectors["config"])
    assert doc["mlvault"] == 1
    assert (config.chunker.min_size, config.chunker.avg_size, config.chunker.max_size) == (
        doc["chunker"]["min"],
        doc["chunker"]["avg"],
        doc["chunker"]["max"],
    )
    assert (config.pack_size, config.compression, config.catalog) == (16 * 1024 * 1024, "zstd", None)
