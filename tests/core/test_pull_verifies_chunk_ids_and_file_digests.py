"""Pull checks what it decrypted against what it asked for, chunk by chunk and file by file.

These attackers hold the vault's key (built here from the test's own keyring) and can write
storage and the catalog, so every AEAD check passes. Two checks stand behind the AEAD:

* after decrypting a record, its keyed chunk id is recomputed and compared with the id the
  manifest asked for (:func:`vault.formats.chunk.decode`); a record sealed for id X that holds
  other content is refused there, before its bytes reach a file, and ``check --read-data``
  traces it to the file that needs it;
* when a file is complete, its size and SHA-256 are compared with the manifest's
  (:func:`vault.repository.materialize.write_file`); authentic chunks under a manifest that
  states another SHA-256 never land at the destination.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import replace
from pathlib import Path

import pytest
from sqlalchemy import text

import vault
from vault import layout
from vault.errors import DecryptionError, IntegrityError
from vault.formats import chunk as chunk_format
from vault.formats import manifest as manifest_format
from vault.formats import sealed

REF = "team/m"


def push_random(v: vault.Vault, tmp_path: Path, *, as_directory: bool) -> None:
    if as_directory:
        src = tmp_path / "model"
        (src / "weights").mkdir(parents=True)
        (src / "config.json").write_bytes(b'{"layers": 2}')
        (src / "weights" / "w.bin").write_bytes(os.urandom(200_000))
    else:
        src = tmp_path / "m.bin"
        src.write_bytes(os.urandom(200_000))
    v.push(src, REF)


def storage_path(v: vault.Vault, key: str) -> Path:
    return Path(v.backend.root) / key  # type: ignore[attr-defined]


def write_at(path: Path, offset: int, data: bytes) -> None:
    with path.open("r+b") as handle:
        handle.seek(offset)
        handle.write(data)


# -- the chunk id recomputed after decryption ---------------------------------------------------


@pytest.mark.parametrize("claims", ["the id the index expects", "another chunk's id"])
def test_a_record_sealed_with_the_right_key_over_other_content_is_refused_before_writing(
    local_vault: vault.Vault, tmp_path: Path, claims: str
) -> None:
    push_random(local_vault, tmp_path, as_directory=False)
    version = local_vault.resolve(REF)
    keyring = local_vault.keys.keyring(version.ring_id)
    (entry,) = local_vault.load_manifest(version).files
    chunk_id, size = entry.chunks[0]
    where = local_vault.catalog.lookup_chunks(version.ring_id, [chunk_id])[chunk_id]
    pack = storage_path(local_vault, layout.pack_key(where.pack_id))
    original = pack.read_bytes()[where.offset : where.offset + where.length]
    assert chunk_format.parse_unauthenticated_header(original).flags == 0  # random data is stored as is

    other = os.urandom(size)
    sealed_for = chunk_id if claims == "the id the index expects" else keyring.chunk_id(other)
    forged = chunk_format.encode(keyring, sealed_for, other, 0)
    assert len(forged) == where.length  # same slot in the pack, the index still fits
    write_at(pack, where.offset, forged)

    with pytest.raises(IntegrityError) as info:
        local_vault.pull(REF, tmp_path / "out.bin")
    message = str(info.value)
    assert entry.path in message
    # Refused at the chunk, not by the whole-file SHA-256 that would come after it.
    assert "SHA-256" not in message
    if claims == "the id the index expects":
        assert isinstance(info.value, DecryptionError)
    assert not (tmp_path / "out.bin").exists()
    assert not [p for p in tmp_path.iterdir() if ".mlvault-" in p.name], "staging left behind"

    report = local_vault.check(read_data=True)
    assert not report.ok
    assert f"{REF}@v1:{entry.path}" in report.damaged_files


# -- the whole-file size and SHA-256 at the end of pull ------------------------------------------


def reseal_with_file_digest(v: vault.Vault, path: str, sha256: bytes) -> None:
    """Store a manifest that names other SHA-256 for ``path``, sealed with the vault's keyring,
    and point the catalog's version row at its digest (an attacker with key and catalog)."""
    version = v.resolve(REF)
    keyring = v.keys.keyring(version.ring_id)
    manifest = v.load_manifest(version)
    files = tuple(replace(f, sha256=sha256) if f.path == path else f for f in manifest.files)
    crafted = replace(manifest, files=files)
    blob = sealed.seal(
        sealed.MANIFEST,
        keyring.dek(keyring.epoch),
        keyring.ring_id,
        keyring.epoch,
        bytes.fromhex(version.id),
        manifest_format.encode(crafted),
    )
    storage_path(v, layout.manifest_key(version.id)).write_bytes(blob)
    with v.catalog.engine.begin() as conn:
        updated = conn.execute(
            text("UPDATE versions SET digest = :d WHERE id = :i"), {"d": crafted.digest, "i": version.id}
        )
        assert updated.rowcount == 1
    assert v.load_manifest(v.resolve(REF)).files == files  # authentic, and agrees with the catalog


@pytest.mark.parametrize("as_directory", [False, True], ids=["single file", "directory"])
def test_authentic_chunks_under_a_manifest_with_another_sha256_never_land(
    local_vault: vault.Vault, tmp_path: Path, as_directory: bool
) -> None:
    push_random(local_vault, tmp_path, as_directory=as_directory)
    target = "weights/w.bin" if as_directory else "m.bin"
    reseal_with_file_digest(local_vault, target, hashlib.sha256(b"what the signer meant").digest())
    out = tmp_path / "out"

    with pytest.raises(IntegrityError, match="does not match its SHA-256") as info:
        local_vault.pull(REF, out)
    assert target in str(info.value)
    assert not out.exists()
    assert not [p for p in tmp_path.iterdir() if ".mlvault-" in p.name], "staging left behind"


def test_a_manifest_with_the_true_sha256_still_pulls(local_vault: vault.Vault, tmp_path: Path) -> None:
    # The resealing above changes nothing else: with the right digest the same path pulls.
    push_random(local_vault, tmp_path, as_directory=False)
    (entry,) = local_vault.load_manifest(local_vault.resolve(REF)).files
    reseal_with_file_digest(local_vault, entry.path, entry.sha256)
    local_vault.pull(REF, tmp_path / "out.bin")
    assert (tmp_path / "out.bin").read_bytes() == (tmp_path / "m.bin").read_bytes()
