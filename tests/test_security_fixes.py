"""Regression tests for the findings of the second security review."""

from __future__ import annotations

import json
import os
import stat
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import zstandard
from typer.testing import CliRunner

import vault
from cli.main import app
from vault.bootstrap import shareable_catalog_url
from vault.clientstate import ClientState
from vault.crypto.kdf import KdfParams
from vault.crypto.keyring import Keyring
from vault.errors import ConfigurationError, DecryptionError, HostileManifestError, IntegrityError
from vault.formats import chunk as chunk_format
from vault.formats import manifest as manifest_format

PASSPHRASE = "correct horse battery staple"  # the same as tests/conftest.py's
CHEAP_KDF = KdfParams(time_cost=1, memory_kib=8, parallelism=1)


def test_single_file_manifest_path_cannot_have_directories() -> None:
    entry = manifest_format.FileEntry("escape/authorized_keys", 0, 0o644, bytes(32), ())
    doc = manifest_format.Manifest(
        vault_id="00" * 16,
        version_id="11" * 16,
        artifact="team/m",
        kind="model",
        root="file",
        created_at="2026-01-01T00:00:00+00:00",
        created_by="x",
        files=(entry,),
    )
    with pytest.raises(HostileManifestError):
        manifest_format.decode(manifest_format.encode(doc))


def test_zstd_frame_declaring_a_huge_size_is_refused_before_allocation() -> None:
    keyring = Keyring.generate()
    bomb = zstandard.ZstdCompressor().compress(b"\0" * (64 << 20))  # declares 64 MiB in ~2 KB
    chunk_id = keyring.chunk_id(b"whatever")
    record = chunk_format.encode(keyring, chunk_id, bomb, chunk_format.FLAG_ZSTD)
    start = time.perf_counter()
    with pytest.raises(DecryptionError):
        chunk_format.decode(record, keyring, chunk_id, zstandard.ZstdDecompressor())
    assert time.perf_counter() - start < 0.5


def test_pull_never_restores_setuid_setgid_or_sticky_bits(local_vault: vault.Vault, tmp_path: Path) -> None:
    src = tmp_path / "tool"
    src.write_bytes(b"#!/bin/sh\n")
    os.chmod(src, 0o6755)
    local_vault.push(src, "team/tool")
    local_vault.pull("team/tool", tmp_path / "out")
    mode = stat.S_IMODE((tmp_path / "out").stat().st_mode)
    assert mode == 0o755


def test_a_slot_planted_as_a_symlink_to_dev_zero_is_skipped(local_vault: vault.Vault, tmp_path: Path) -> None:
    root = Path(local_vault.backend.url.removeprefix("file://"))
    os.symlink("/dev/zero", root / "keys" / "owner" / ("0" * 32))
    reopened = vault.open_vault(str(root), passphrase=PASSPHRASE)
    try:
        reopened.unlock()  # the real slot still opens; the planted one is not read
        assert reopened.keys.unlocked
    finally:
        reopened.close()


def test_a_pack_replaced_by_a_symlink_is_an_integrity_error(local_vault: vault.Vault, tmp_path: Path) -> None:
    src = tmp_path / "m.bin"
    src.write_bytes(os.urandom(100_000))
    local_vault.push(src, "team/m")
    root = Path(local_vault.backend.url.removeprefix("file://"))
    (pack,) = [p for p in (root / "packs").rglob("*") if p.is_file()]
    pack.unlink()
    os.symlink("/dev/zero", pack)
    with pytest.raises(IntegrityError):
        local_vault.pull("team/m", tmp_path / "out.bin")
    assert not (tmp_path / "out.bin").exists()


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("postgresql+psycopg://ci:hunter2@db/mlvault", "postgresql+psycopg://ci@db/mlvault"),
        (
            "postgresql+psycopg://ci@db/mlvault?password=hunter2&sslmode=require",
            "postgresql+psycopg://ci@db/mlvault?sslmode=require",
        ),
        ("sqlite:////tmp/x.sqlite", "sqlite:////tmp/x.sqlite"),
    ],
)
def test_catalog_urls_lose_their_passwords_before_storage(url: str, expected: str) -> None:
    assert shareable_catalog_url(url) == expected
    assert "hunter2" not in shareable_catalog_url(url)


def _init_with_catalog(tmp_path: Path, catalog: str, state: ClientState) -> Path:
    root = tmp_path / "v"
    vault.init_vault(
        str(root), passphrase=PASSPHRASE, kdf=CHEAP_KDF, catalog_url=catalog, client_state=state
    ).close()
    return root


def test_storage_cannot_redirect_a_client_to_another_catalog(tmp_path: Path) -> None:
    state = ClientState(tmp_path / "client")
    root = _init_with_catalog(tmp_path, f"sqlite:///{tmp_path / 'team.sqlite'}", state)
    assert json.loads((state.root / "catalog-pins.json").read_text())  # init pinned the catalog
    config = json.loads((root / "config").read_text())
    config["catalog"] = f"sqlite:///{tmp_path / 'attacker.sqlite'}"
    os.chmod(root / "config", 0o644)
    (root / "config").unlink()
    (root / "config").write_text(json.dumps(config))
    with pytest.raises(ConfigurationError, match="pinned"):
        vault.open_vault(str(root), passphrase=PASSPHRASE, client_state=state)
    assert not (tmp_path / "attacker.sqlite").exists()


def test_an_empty_catalog_is_not_adopted_for_a_vault_with_versions(
    make_vault: Callable[..., vault.Vault], tmp_path: Path
) -> None:
    v = make_vault()
    src = tmp_path / "m.bin"
    src.write_bytes(b"payload")
    v.push(src, "team/m")
    root = v.backend.url.removeprefix("file://")
    v.close()
    with pytest.raises(ConfigurationError, match="empty"):
        vault.open_vault(root, passphrase=PASSPHRASE, catalog_url=f"sqlite:///{tmp_path / 'fresh.sqlite'}")


def test_pull_says_when_no_trust_rule_covered_the_artifact(tmp_path: Path) -> None:
    runner = CliRunner()
    env = {"MLVAULT_PASSPHRASE": PASSPHRASE, "MLVAULT_VAULT": str(tmp_path / "v")}
    init = ["init", str(tmp_path / "v"), "--kdf-time", "1", "--kdf-memory-mib", "1", "--kdf-parallelism", "1"]
    assert runner.invoke(app, init, env=env).exit_code == 0
    (tmp_path / "m.bin").write_bytes(b"weights")
    assert runner.invoke(app, ["push", "-q", str(tmp_path / "m.bin"), "team/m"], env=env).exit_code == 0
    result = runner.invoke(app, ["pull", "team/m", str(tmp_path / "out.bin")], env=env)
    assert result.exit_code == 0, result.output
    assert "signatures: not checked" in result.stderr


def test_a_trust_policy_copied_from_another_vault_is_refused(
    make_vault: Callable[..., vault.Vault], tmp_path: Path
) -> None:
    from vault.catalog.signatures import SignatureCatalog
    from vault.signatures import PinStore, SignatureService
    from vault.signing import LocalSigner
    from vault.signing.keys import generate_private_key, public_key_pem

    admin = LocalSigner(generate_private_key())
    release = public_key_pem(generate_private_key().public_key())
    vault_a, vault_b = make_vault(), make_vault()
    pins = PinStore(tmp_path / "pins.json")
    service_b = SignatureService(vault_b, pins)
    service_b.trust_add("team/*", release, admin)  # B's own policy, serial 1; pins the admin key
    service_a = SignatureService(vault_a, PinStore(tmp_path / "pins-a.json"))
    for _ in range(3):  # A's policy reaches a higher serial under the same admin key
        service_a.trust_add("*", release, admin)
    copied = SignatureCatalog(vault_a.catalog.engine).latest_policy_row()
    assert copied is not None and copied.serial > 1
    SignatureCatalog(vault_b.catalog.engine).store_policy(copied.serial, copied.document, "attacker")
    with pytest.raises(IntegrityError, match="another vault"):
        service_b.trust_show()


def test_final_rename_never_replaces_a_destination_that_appeared(tmp_path: Path) -> None:
    from vault.errors import DestinationExistsError
    from vault.repository.materialize import rename_noreplace

    src_dir, dst_dir = tmp_path / "staged", tmp_path / "dest"
    src_dir.mkdir()
    (src_dir / "f").write_text("new")
    dst_dir.mkdir()  # an empty directory: plain rename(2) would silently replace it
    with pytest.raises(DestinationExistsError):
        rename_noreplace(src_dir, dst_dir)
    assert (src_dir / "f").exists() and not any(dst_dir.iterdir())
    src_file, dst_file = tmp_path / "a", tmp_path / "b"
    src_file.write_text("new")
    dst_file.write_text("theirs")
    with pytest.raises(DestinationExistsError):
        rename_noreplace(src_file, dst_file)
    assert dst_file.read_text() == "theirs"
    rename_noreplace(src_file, tmp_path / "c")
    assert (tmp_path / "c").read_text() == "new" and not src_file.exists()
