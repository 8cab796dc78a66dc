"""Regenerate ``vectors.json``, the known-answer vectors of every byte format.

Run once after a deliberate format change (``.venv/bin/python tests/formats/make_vectors.py``)
and review the diff: a vector that changes without a format version bump means old vaults
can no longer be read. The inputs are fixed here and written into the file, so the tests
recompute every output from the file alone.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import zstandard
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from vault.crypto import aead, recipient
from vault.crypto.kdf import KdfParams, stretch
from vault.crypto.keyring import Keyring
from vault.formats import chunk, keyslot, manifest, pack, sealed
from vault.formats import config as config_format
from vault.formats import keyring as keyring_format
from vault.formats.keyslot_kinds import KmsParams, RecipientParams

HERE = Path(__file__).parent


def _seq(start: int, n: int) -> bytes:
    return bytes(range(start, start + n))


INPUTS: dict[str, Any] = {
    "vault_id": _seq(0x00, 16).hex(),
    "ring_id": _seq(0xA0, 16).hex(),
    "id_key": _seq(0x10, 32).hex(),
    "deks": [_seq(0x30, 32).hex(), _seq(0x50, 32).hex()],  # two epochs: the current one is 1
    "chunk_plaintext": "mlvault chunk known-answer test: the quick brown fox jumps over the lazy dog\n",
    "chunk_nonce": _seq(0xC0, 12).hex(),
    "zstd_plaintext": {"unit": "mlvault zstd chunk ", "repeat": 64},
    "zstd_nonce": _seq(0xC8, 12).hex(),
    "pack_id": _seq(0xD0, 16).hex(),
    "trailer_nonce": _seq(0xE0, 12).hex(),
    "version_id": _seq(0x70, 16).hex(),
    "manifest_nonce": _seq(0xE8, 12).hex(),
    "keyring_object_id": _seq(0x80, 16).hex(),
    "keyring_nonce": _seq(0xF0, 12).hex(),
    "kek": _seq(0x90, 32).hex(),
    "owner_key": _seq(0x60, 32).hex(),
    "owner_slot_id": _seq(0xB0, 16).hex(),
    "owner_slot_nonce": _seq(0xF4, 12).hex(),
    "passphrase": "correct horse battery staple",
    "kdf": [1, 8, 1],
    "salt": _seq(0x40, 16).hex(),
    "passphrase_slot_id": _seq(0xB8, 16).hex(),
    "passphrase_slot_nonce": _seq(0x20, 12).hex(),
    "owner_slot_v2_nonce": _seq(0x2C, 12).hex(),
    "passphrase_slot_v2_nonce": _seq(0x38, 12).hex(),
    # X25519 private keys of RFC 7748 section 6.1 (Bob: the identity, Alice: the ephemeral).
    "x25519_identity": "5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb",
    "x25519_ephemeral": "77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a",
    "x25519_slot_id": _seq(0x1A, 16).hex(),
    "x25519_slot_nonce": _seq(0x44, 12).hex(),
    "kms_key_id": "arn:aws:kms:eu-west-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab",
    "kms_blob": _seq(0x00, 184).hex(),  # stands in for a KMS CiphertextBlob: opaque to the format
    "kms_data_key": _seq(0xD8, 32).hex(),
    "kms_slot_id": _seq(0x2A, 16).hex(),
    "kms_slot_nonce": _seq(0x54, 12).hex(),
}


def zstd_plaintext(inputs: dict[str, Any]) -> bytes:
    """The compressible chunk's plaintext."""
    return str(inputs["zstd_plaintext"]["unit"] * inputs["zstd_plaintext"]["repeat"]).encode()


def keyring_from(inputs: dict[str, Any]) -> Keyring:
    """The fixed two-epoch keyring of the vectors."""
    return Keyring(
        bytes.fromhex(inputs["ring_id"]),
        bytes.fromhex(inputs["id_key"]),
        tuple(bytes.fromhex(d) for d in inputs["deks"]),
    )


def manifest_from(inputs: dict[str, Any], chunk_id: bytes, chunk_size: int) -> manifest.Manifest:
    """The fixed manifest: two files (deliberately not in path order), two directories."""
    data = inputs["chunk_plaintext"].encode()
    assert len(data) == chunk_size
    files = (
        manifest.FileEntry("sub/b.txt", 0, 0o600, hashlib.sha256(b"").digest(), ()),
        manifest.FileEntry(
            "a.bin", chunk_size, 0o644, hashlib.sha256(data).digest(), ((chunk_id, chunk_size),)
        ),
    )
    return manifest.Manifest(
        vault_id=inputs["vault_id"],
        version_id=inputs["version_id"],
        artifact="team/model",
        kind="model",
        root="dir",
        created_at="2024-05-01T12:00:00+00:00",
        created_by="alice",
        files=files,
        dirs=(manifest.DirEntry("sub", 0o755), manifest.DirEntry("empty", 0o700)),
        metadata={"framework": "torch", "note": "naïve ✓"},
        parents=("data/set@v1",),
    )


def build(inputs: dict[str, Any]) -> dict[str, Any]:
    """Every output, computed from ``inputs`` by the encoders under test."""
    h = bytes.fromhex
    ring = keyring_from(inputs)
    ring_id, epoch, dek = ring.ring_id, ring.epoch, ring.dek(ring.epoch)
    out: dict[str, Any] = {}

    plain = inputs["chunk_plaintext"].encode()
    chunk_id = ring.chunk_id(plain)
    record = chunk._encode_from_parts(ring, chunk_id, plain, 0, nonce=h(inputs["chunk_nonce"]))
    out["chunk"] = {"chunk_id": chunk_id.hex(), "record": record.hex()}

    zplain = zstd_plaintext(inputs)
    zid = ring.chunk_id(zplain)
    zstored, znonce = h(inputs["zstd_stored"]), h(inputs["zstd_nonce"])
    zrecord = chunk._encode_from_parts(ring, zid, zstored, chunk.FLAG_ZSTD, nonce=znonce)
    out["chunk_zstd"] = {"chunk_id": zid.hex(), "record": zrecord.hex()}

    pack_id = h(inputs["pack_id"])
    header = pack.encode_header(pack_id)
    entries = [
        pack.TrailerEntry(chunk_id, pack.HEADER_SIZE, len(record)),
        pack.TrailerEntry(zid, pack.HEADER_SIZE + len(record), len(zrecord)),
    ]
    trailer_plain = pack.encode_entries(entries)
    trailer = sealed._seal_from_parts(
        sealed.TRAILER, dek, ring_id, epoch, pack_id, trailer_plain, nonce=h(inputs["trailer_nonce"])
    )
    footer = pack.encode_footer(len(trailer))
    whole = header + record + zrecord + trailer + footer
    out["pack"] = {
        "header": header.hex(),
        "trailer_plaintext": trailer_plain.hex(),
        "trailer": trailer.hex(),
        "footer": footer.hex(),
        "size": len(whole),
        "sha256": hashlib.sha256(whole).hexdigest(),
    }

    doc = manifest_from(inputs, chunk_id, len(plain))
    plaintext = manifest.encode(doc)
    out["manifest"] = {
        "plaintext": plaintext.decode(),
        "digest": doc.digest,
        "sealed": sealed._seal_from_parts(
            sealed.MANIFEST,
            dek,
            ring_id,
            epoch,
            h(inputs["version_id"]),
            plaintext,
            nonce=h(inputs["manifest_nonce"]),
        ).hex(),
    }

    secret = keyring_format.encode(ring)
    out["keyring"] = {"secret": secret.hex()}

    vault_id, owner_key = h(inputs["vault_id"]), h(inputs["owner_key"])
    owner_slot_id = h(inputs["owner_slot_id"])
    owner_kek = aead.derive_key(owner_key, owner_slot_id, keyslot.OWNER_INFO)
    kdf = KdfParams(*inputs["kdf"])
    salt = h(inputs["salt"])
    pass_kek = stretch(inputs["passphrase"].encode(), salt, kdf)
    # Slot format version 1 (no checksum) stays readable; version 2 appends a checksum.
    for section, version in (("", 1), ("_v2", 2)):
        out[f"owner_slot{section}"] = {
            "kek": owner_kek.hex(),
            "slot": keyslot._encode_from_parts(
                keyslot.KIND_OWNER,
                vault_id,
                ring_id,
                owner_slot_id,
                owner_kek,
                secret,
                nonce=h(inputs[f"owner_slot{section}_nonce"]),
                version=version,
            ).hex(),
        }
        out[f"passphrase_slot{section}"] = {
            "kek": pass_kek.hex(),
            "slot": keyslot._encode_from_parts(
                keyslot.KIND_PASSPHRASE,
                vault_id,
                b"\0" * 16,
                h(inputs["passphrase_slot_id"]),
                pass_kek,
                owner_key,
                kdf=kdf,
                salt=salt,
                nonce=h(inputs[f"passphrase_slot{section}_nonce"]),
                version=version,
            ).hex(),
        }

    out.update(_kind_slots(inputs, secret))
    out["config"] = config_format.encode(config_format.VaultConfig(inputs["vault_id"])).decode()
    return out


def _kind_slots(inputs: dict[str, Any], keyring_secret: bytes) -> dict[str, Any]:
    """The x25519 slot (a keyring wrapped to a recipient) and the aws-kms slot (the owner key)."""
    h = bytes.fromhex
    vault_id, ring_id = h(inputs["vault_id"]), h(inputs["ring_id"])
    identity = X25519PrivateKey.from_private_bytes(h(inputs["x25519_identity"]))
    ephemeral = X25519PrivateKey.from_private_bytes(h(inputs["x25519_ephemeral"]))
    recipient_pub = recipient.public_bytes(identity)
    ephemeral_pub, x_kek = recipient._wrap_from_parts(recipient_pub, ephemeral)
    params = RecipientParams(ephemeral_pub, recipient.fingerprint(recipient_pub))
    x_slot_id = h(inputs["x25519_slot_id"])
    x_slot = keyslot._encode_from_parts(
        keyslot.KIND_X25519,
        vault_id,
        ring_id,
        x_slot_id,
        x_kek,
        keyring_secret,
        recipient=params,
        nonce=h(inputs["x25519_slot_nonce"]),
    )
    kms_slot_id, kms_kek = h(inputs["kms_slot_id"]), h(inputs["kms_data_key"])
    kms_slot = keyslot._encode_from_parts(
        keyslot.KIND_AWS_KMS,
        vault_id,
        b"\0" * 16,
        kms_slot_id,
        kms_kek,
        h(inputs["owner_key"]),
        kms=KmsParams(inputs["kms_key_id"], h(inputs["kms_blob"])),
        nonce=h(inputs["kms_slot_nonce"]),
    )
    return {
        "x25519_slot_v2": {
            "recipient_pub": recipient_pub.hex(),
            "ephemeral_pub": ephemeral_pub.hex(),
            "shared_secret": ephemeral.exchange(identity.public_key()).hex(),
            "kek": x_kek.hex(),
            "slot": x_slot.hex(),
        },
        "aws_kms_slot_v2": {
            "encryption_context": keyslot.kms_encryption_context_for(vault_id, b"\0" * 16, kms_slot_id),
            "kek": kms_kek.hex(),
            "slot": kms_slot.hex(),
        },
    }


def main() -> None:
    """Write vectors.json next to this script."""
    inputs = dict(INPUTS)
    # The compressed bytes are an input, made once: zstd's output may change between releases,
    # and the vector pins our record format, not zstd's encoder.
    previous = HERE / "vectors.json"
    if previous.exists():
        inputs["zstd_stored"] = json.loads(previous.read_text())["inputs"]["zstd_stored"]
    else:
        stored, flags = chunk.compress(zstd_plaintext(inputs), zstandard.ZstdCompressor(level=3))
        assert flags == chunk.FLAG_ZSTD
        inputs["zstd_stored"] = stored.hex()
    vectors = {"inputs": inputs, **build(inputs)}
    (HERE / "vectors.json").write_text(json.dumps(vectors, indent=1, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    main()
