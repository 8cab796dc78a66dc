"""Global options work before and after the subcommand, and passphrase files are read bounded."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from mlvault_cli.main import app
from mlvault_cli.secrets import MAX_SECRET_BYTES

PASSPHRASE = "global options passphrase"
FAST_KDF = ["--kdf-time", "1", "--kdf-memory-mib", "1", "--kdf-parallelism", "1"]
GLOBAL_FLAGS = (
    "--vault",
    "--catalog",
    "--passphrase-file",
    "--endpoint-url",
    "--profile",
    "--region",
    "--allow-insecure-http",
)


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in list(os.environ):
        if name.startswith("MLVAULT_") and not name.startswith("MLVAULT_TEST_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("MLVAULT_CONFIG_DIR", str(tmp_path / "config"))
    (tmp_path / "cwd").mkdir()
    monkeypatch.chdir(tmp_path / "cwd")


def run(*args: str, env: dict[str, str] | None = None) -> Result:
    return CliRunner().invoke(app, list(args), env=env, catch_exceptions=False)


def ok(result: Result) -> Result:
    assert result.exit_code == 0, (result.exit_code, result.stdout, result.stderr)
    return result


@pytest.fixture
def pushed(tmp_path: Path) -> tuple[Path, Path]:
    """A vault with ``team/m@v1``, and a passphrase file for it; no MLVAULT_VAULT anywhere."""
    secret = tmp_path / "secret"
    secret.write_text(PASSPHRASE + "\n")
    vault_dir = tmp_path / "v"
    ok(run("--passphrase-file", str(secret), "init", str(vault_dir), *FAST_KDF))
    (tmp_path / "m.bin").write_bytes(b"weights")
    ok(
        run(
            "push",
            "-q",
            str(tmp_path / "m.bin"),
            "team/m",
            "--vault",
            str(vault_dir),
            "--passphrase-file",
            str(secret),
        )
    )
    return vault_dir, secret


@pytest.mark.parametrize(
    "command",
    [["ls"], ["log", "team/m"], ["show", "team/m"], ["check"], ["trust", "show"], ["verify", "team/m"]],
)
def test_vault_option_before_and_after_the_command(pushed: tuple[Path, Path], command: list[str]) -> None:
    vault_dir, _ = pushed
    before = run("--vault", str(vault_dir), *command)
    after = run(*command, "--vault", str(vault_dir))
    short = run(*command, "-V", str(vault_dir))
    assert before.exit_code == after.exit_code == short.exit_code, (before.stderr, after.stderr)
    assert before.stdout == after.stdout == short.stdout
    assert "No such option" not in after.stderr


def test_passphrase_file_after_the_command(pushed: tuple[Path, Path], tmp_path: Path) -> None:
    vault_dir, secret = pushed
    out = tmp_path / "out.bin"
    ok(run("pull", "team/m", str(out), "--vault", str(vault_dir), "--passphrase-file", str(secret)))
    assert out.read_bytes() == b"weights"


def test_an_option_after_the_command_wins_over_the_environment_and_one_before(
    pushed: tuple[Path, Path], tmp_path: Path
) -> None:
    vault_dir, _ = pushed
    env = {"MLVAULT_VAULT": str(tmp_path / "nowhere")}
    assert run("ls", env=env).exit_code == 3
    assert "team/m" in ok(run("ls", "--vault", str(vault_dir), env=env)).stdout
    assert "team/m" in ok(run("--vault", str(tmp_path / "nowhere"), "ls", "--vault", str(vault_dir))).stdout
    # an option typed before the command is not hidden by the environment after it
    assert "team/m" in ok(run("--vault", str(vault_dir), "ls", env=env)).stdout


def test_s3_options_after_the_command(pushed: tuple[Path, Path]) -> None:
    vault_dir, _ = pushed
    result = ok(run("ls", "--vault", str(vault_dir), "--region", "eu-west-1", "--allow-insecure-http"))
    assert "--allow-insecure-http" in result.stderr  # the warning: the flag was seen after the command


def test_signing_command_takes_global_options_after_it(pushed: tuple[Path, Path]) -> None:
    vault_dir, secret = pushed
    ok(run("key", "new", "signer", "--unencrypted"))
    signed = ok(
        run("sign", "team/m", "--key", "signer", "--vault", str(vault_dir), "--passphrase-file", str(secret))
    )
    assert "signed team/m@v1" in signed.stdout
    assert ok(run("--vault", str(vault_dir), "signature", "export", "team/m", "-o", "-")).stdout


@pytest.mark.parametrize(
    "command", [["ls"], ["push"], ["pull"], ["init"], ["sign"], ["verify"], ["trust", "add"], ["key", "new"]]
)
def test_help_of_each_command_lists_the_global_options(command: list[str]) -> None:
    helped = ok(run(*command, "--help"))
    for flag in GLOBAL_FLAGS:
        assert flag in helped.stdout, (command, flag)


# -- passphrase files (issue 8 item 10) ---------------------------------------------------------------


def test_a_device_as_passphrase_file_is_refused_without_reading_it(tmp_path: Path) -> None:
    result = run("--passphrase-file", "/dev/zero", "init", str(tmp_path / "v"), *FAST_KDF)
    assert result.exit_code == 2
    assert "error: passphrase file /dev/zero is a device" in result.stderr
    assert not (tmp_path / "v" / "config").exists()


def test_an_oversized_passphrase_file_is_refused(tmp_path: Path) -> None:
    big = tmp_path / "big"
    big.write_bytes(b"x" * (MAX_SECRET_BYTES + 1))
    result = run("init", str(tmp_path / "v"), *FAST_KDF, "--passphrase-file", str(big))
    assert result.exit_code == 2 and "larger than 64 KiB" in result.stderr


def test_a_directory_as_passphrase_file_is_refused(tmp_path: Path) -> None:
    result = run("init", str(tmp_path / "v"), *FAST_KDF, "--passphrase-file", str(tmp_path))
    assert result.exit_code == 2 and "not a regular file, pipe or terminal" in result.stderr


def test_an_endless_pipe_is_read_only_up_to_the_cap(tmp_path: Path) -> None:
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    stop = threading.Event()

    def feed() -> None:
        try:
            with open(fifo, "wb") as fh:
                while not stop.is_set():
                    fh.write(b"y" * 65536)
        except BrokenPipeError:
            pass

    writer = threading.Thread(target=feed, daemon=True)
    writer.start()
    try:
        result = run("init", str(tmp_path / "v"), *FAST_KDF, "--passphrase-file", str(fifo))
    finally:
        stop.set()
    writer.join(10)
    assert result.exit_code == 2 and "larger than 64 KiB" in result.stderr


def test_a_pipe_holding_the_passphrase_works(tmp_path: Path) -> None:
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    writer = threading.Thread(target=lambda: fifo.write_text(PASSPHRASE + "\n"), daemon=True)
    writer.start()
    ok(run("init", str(tmp_path / "v"), *FAST_KDF, "--passphrase-file", str(fifo)))
    writer.join(10)
    ok(run("ls", "--vault", str(tmp_path / "v"), env={"MLVAULT_PASSPHRASE": PASSPHRASE}))


def test_key_passphrase_files_are_read_the_same_way(tmp_path: Path) -> None:
    result = run("key", "new", "k", "--key-passphrase-file", "/dev/zero")
    assert result.exit_code == 2 and "key passphrase file /dev/zero is a device" in result.stderr
