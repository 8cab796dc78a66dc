"""``backup restore`` with the owner's passphrase only: the vault kept its recovery identity sealed
under the owner key (``keys add-recovery --generate``), the backup target holds that object and the
owner ring verbatim, so the destroyed vault comes back without any identity file."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from test_restore import FAST_KDF, check_restored, clean_environment, cli, ok  # noqa: F401
from typer.testing import CliRunner

from mlvault_cli.main import app


def make_source(tmp_path: Path) -> tuple[Path, dict[str, Path]]:
    vault_dir = tmp_path / "vault"
    ok(cli("init", str(vault_dir), *FAST_KDF))
    ok(cli("keys", "add-recovery", "--generate", vault_dir=vault_dir))
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


def back_up(vault_dir: Path, target: Path) -> None:
    schedule = ("backup", "schedule", "add", "nightly", "--cron", "@daily", "--to", str(target))
    ok(cli(*schedule, "--keep-last", "3", vault_dir=vault_dir))
    ok(cli("backup", "run", "nightly", vault_dir=vault_dir))


def test_destroy_then_restore_with_the_passphrase_only(tmp_path: Path) -> None:
    vault_dir, sources = make_source(tmp_path)
    target = tmp_path / "target"
    back_up(vault_dir, target)
    shutil.rmtree(vault_dir)

    restored = tmp_path / "restored"
    args = ["backup", "restore", "--from", str(target), "--to", str(restored)]
    wrong = CliRunner().invoke(app, args, env={"MLVAULT_PASSPHRASE": "not it"}, catch_exceptions=False)
    assert wrong.exit_code == 4, (wrong.stdout, wrong.stderr)
    assert not restored.exists() or not any(restored.iterdir())
    result = ok(cli(*args))
    assert "restored vault" in result.stdout and "2 manifests authenticated" in result.stdout
    check_restored(restored, sources, tmp_path)


def test_a_target_without_a_kept_recovery_identity_asks_for_the_key(tmp_path: Path) -> None:
    vault_dir = tmp_path / "vault"
    ok(cli("init", str(vault_dir), *FAST_KDF))
    ok(cli("identity", "new", "recovery", "--no-passphrase"))
    pub = Path(os.environ["MLVAULT_CONFIG_DIR"]) / "identities" / "recovery.pub"
    ok(cli("keys", "add-recovery", str(pub), vault_dir=vault_dir))
    target = tmp_path / "target"
    back_up(vault_dir, target)
    result = cli("backup", "restore", "--from", str(target), "--to", str(tmp_path / "restored"))
    assert result.exit_code == 3, (result.stdout, result.stderr)
    line = result.stderr.strip()
    assert "\n" not in line and "--recovery-key" in line, line
