"""``backup run`` then ``backup restore`` through the CLI: the vault is destroyed completely (storage
and catalog), restored from a local and from an S3 (moto over HTTP) target, and every version pulls
byte-identical with its tags, metadata, lineage and signatures. A tampered snapshot is exit 5."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

import vault
from mlvault_cli.main import app
from vault import layout
from vault.backup import snapshot
from vault.storage.local import LocalBackend

FAST_KDF = ["--kdf-time", "1", "--kdf-memory-mib", "1", "--kdf-parallelism", "1"]
Run = Callable[..., Result]


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in list(os.environ):
        if name.startswith("MLVAULT_") and name != "MLVAULT_CONFIG_DIR":
            monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAMLVAULTADMIN")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "admin-secret")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.chdir(tmp_path)


def cli(*args: str, vault_dir: Path | None = None) -> Result:
    env = {"MLVAULT_PASSPHRASE": "pw"}
    if vault_dir is not None:
        env["MLVAULT_VAULT"] = str(vault_dir)
    return CliRunner().invoke(app, list(args), env=env, catch_exceptions=False)


def ok(result: Result) -> Result:
    assert result.exit_code == 0, (result.exit_code, result.stdout, result.stderr)
    return result


def make_source(tmp_path: Path) -> tuple[Path, dict[str, Path]]:
    """A vault with two versions (tag, metadata, lineage, a signature) and a recovery identity."""
    vault_dir = tmp_path / "vault"
    ok(cli("init", str(vault_dir), *FAST_KDF))
    ok(cli("identity", "new", "recovery", "--no-passphrase"))
    pub = Path(os.environ["MLVAULT_CONFIG_DIR"]) / "identities" / "recovery.pub"
    ok(cli("keys", "add-recovery", str(pub), vault_dir=vault_dir))
    ok(cli("key", "new", "signer", "--unencrypted"))
    sources = {}
    for n in (1, 2):
        data = tmp_path / f"model-v{n}"
        (data / "sub").mkdir(parents=True)
        (data / "weights.bin").write_bytes(os.urandom(150_000 * n))
        (data / "sub" / "notes.txt").write_text(f"version {n}\n")
        extra = ["--tag", "prod", "--meta", "acc=0.9"] if n == 1 else ["--from", "team/model@v1"]
        ok(cli("push", str(data), "team/model", *extra, "-q", vault_dir=vault_dir))
        sources[f"team/model@v{n}"] = data
    ok(cli("sign", "team/model@v2", "--key", "signer", vault_dir=vault_dir))
    return vault_dir, sources


def check_restored(
    restored: Path, sources: dict[str, Path], tmp_path: Path, catalog: str | None = None
) -> None:
    extra = [] if catalog is None else ["--catalog", catalog]
    for ref, data in sources.items():
        dest = tmp_path / f"pulled-{ref.replace('/', '_').replace('@', '_')}"
        ok(cli("pull", ref, str(dest), *extra, vault_dir=restored))
        for path in data.rglob("*"):
            if path.is_file():
                assert (dest / path.relative_to(data)).read_bytes() == path.read_bytes()
    ok(cli("show", "team/model@prod", *extra, vault_dir=restored))
    opened = vault.open_vault(str(restored), passphrase="pw", catalog_url=catalog)
    try:
        v1, v2 = opened.show("team/model@v1"), opened.show("team/model@v2")
        assert "prod" in v1.version.tags and v1.metadata == {"acc": "0.9"}
        assert v2.parents == ["team/model@v1"]  # lineage
        version = v2.version
        assert len(opened.signature_store.signatures_for(version.id)) == 1
        assert opened.check(read_data=True).ok
    finally:
        opened.close()


def test_destroy_then_restore_from_a_local_target(tmp_path: Path) -> None:
    vault_dir, sources = make_source(tmp_path)
    target = tmp_path / "target"
    ok(
        cli(
            "backup",
            "schedule",
            "add",
            "nightly",
            "--cron",
            "@daily",
            "--to",
            str(target),
            "--keep-last",
            "3",
            vault_dir=vault_dir,
        )
    )
    first = ok(cli("backup", "run", "nightly", vault_dir=vault_dir)).stdout
    second = ok(cli("backup", "run", "nightly", vault_dir=vault_dir)).stdout
    assert "nightly: success" in first and "; 2 objects" in second
    listed = json.loads(ok(cli("backup", "ls", "nightly", "--json", vault_dir=vault_dir)).stdout)
    assert len(listed) == 2 and listed[0]["versions"] == 2 and listed[1]["bytes_added"] == 0
    shutil.rmtree(vault_dir)  # storage and the embedded catalog

    restored = tmp_path / "restored"
    result = ok(
        cli("backup", "restore", "--from", str(target), "--to", str(restored), "--recovery-key", "recovery")
    )
    assert "2 manifests authenticated" in result.stdout
    config = json.loads((restored / layout.CONFIG).read_bytes())
    assert config["catalog"] is None
    check_restored(restored, sources, tmp_path)
    again = cli(
        "backup", "restore", "--from", str(target), "--to", str(restored), "--recovery-key", "recovery"
    )
    assert again.exit_code == 9  # a vault already exists there


def test_destroy_then_restore_from_an_s3_target(
    tmp_path: Path, moto_endpoint: str, make_bucket: Callable[[], str]
) -> None:
    vault_dir, sources = make_source(tmp_path)
    bucket = make_bucket()
    to = f"s3://{bucket}/backups/mlv"
    ok(
        cli(
            "backup",
            "schedule",
            "add",
            "s3",
            "--cron",
            "@daily",
            "--to",
            to,
            "--target-endpoint-url",
            moto_endpoint,
            "--keep-last",
            "3",
            vault_dir=vault_dir,
        )
    )
    ok(cli("backup", "run", "s3", vault_dir=vault_dir))
    shutil.rmtree(vault_dir)

    restored = tmp_path / "restored-from-s3"
    catalog = f"sqlite:///{tmp_path / 'new-catalog.sqlite'}"
    ok(
        cli(
            "backup",
            "restore",
            "--from",
            to,
            "--endpoint-url",
            moto_endpoint,
            "--to",
            str(restored),
            "--target-catalog",
            catalog,
            "--recovery-key",
            "recovery",
        )
    )
    assert json.loads((restored / layout.CONFIG).read_bytes())["catalog"] == catalog
    check_restored(restored, sources, tmp_path, catalog)


def test_a_tampered_snapshot_is_refused(tmp_path: Path) -> None:
    vault_dir, _ = make_source(tmp_path)
    target = tmp_path / "target"
    ok(
        cli(
            "backup",
            "schedule",
            "add",
            "nightly",
            "--cron",
            "@daily",
            "--to",
            str(target),
            "--keep-last",
            "3",
            vault_dir=vault_dir,
        )
    )
    ok(cli("backup", "run", "nightly", vault_dir=vault_dir))
    (sid,) = snapshot.snapshot_ids(LocalBackend(target))
    path = target / layout.snapshot_key(sid)
    data = bytearray(path.read_bytes())
    data[-40] ^= 0x01
    path.chmod(0o644)
    path.write_bytes(bytes(data))
    result = cli(
        "backup", "restore", "--from", str(target), "--to", str(tmp_path / "r"), "--recovery-key", "recovery"
    )
    assert result.exit_code == 5, result.stderr
    assert not (tmp_path / "r" / layout.CONFIG).exists()


def test_run_refuses_without_recovery_and_another_vaults_target(tmp_path: Path) -> None:
    vault_dir = tmp_path / "plain"
    ok(cli("init", str(vault_dir), *FAST_KDF))
    ok(
        cli(
            "backup",
            "schedule",
            "add",
            "n",
            "--cron",
            "@daily",
            "--to",
            str(tmp_path / "t"),
            "--keep-last",
            "1",
            vault_dir=vault_dir,
        )
    )
    refused = cli("backup", "run", "n", vault_dir=vault_dir)
    assert refused.exit_code == 2 and "mlvault keys add-recovery" in refused.stderr
    source, _ = make_source(tmp_path)
    ok(
        cli(
            "backup",
            "schedule",
            "add",
            "n",
            "--cron",
            "@daily",
            "--to",
            str(tmp_path / "t"),
            "--keep-last",
            "1",
            vault_dir=source,
        )
    )
    ok(cli("backup", "run", "n", vault_dir=source))
    pub = Path(os.environ["MLVAULT_CONFIG_DIR"]) / "identities" / "recovery.pub"
    ok(cli("keys", "add-recovery", str(pub), vault_dir=vault_dir))
    other = cli("backup", "run", "--due", vault_dir=vault_dir)
    assert other.exit_code == 0  # nothing due yet
    assert cli("backup", "run", "n", vault_dir=vault_dir).exit_code == 8
