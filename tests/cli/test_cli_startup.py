"""Start-up and ``show`` of many files (issue 13): what was made faster still behaves the same.

- ``show`` on a terminal (a real pseudo-terminal, the console script in a subprocess) lists the
  first files and says how many more there are; ``--files`` lists them all; into a pipe every
  file is listed, in the same columns rich draws for a ``Table(box=None)``;
- the CLI's plain coercion (cli/coercion.py) gives, for every parameter of the command tree and a
  set of awkward values, what typer's own pydantic adapter gives: the same value or the same error;
- ``mlvault ls`` imports neither pydantic nor rich's progress bar, and of the command modules
  only its own; help and unknown words still see every command.
"""

from __future__ import annotations

import contextlib
import fcntl
import io
import os
import pty
import struct
import subprocess
import sys
import termios
import threading
from pathlib import Path

import pytest
import typer.main
from rich.console import Console
from rich.table import Table
from rich.text import Text
from typer._click.exceptions import BadParameter
from typer._coercion import build_runtime_param

import vault
from mlvault_cli import output
from mlvault_cli.coercion import PlainRuntimeParam
from mlvault_cli.commands.core import SHOWN_ON_TERMINAL
from mlvault_cli.main import LAZY_COMMANDS, app, command_word
from vault.crypto.kdf import KdfParams

MLVAULT = str(Path(sys.executable).parent / "mlvault")
PASSPHRASE = "startup passphrase"
FILES = SHOWN_ON_TERMINAL + 7


@pytest.fixture(scope="module")
def many(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """A vault holding team/many@v1 of FILES files; the environment to run the CLI on it."""
    tmp = tmp_path_factory.mktemp("many")
    src = tmp / "src"
    src.mkdir()
    for i in range(FILES):
        (src / f"f{i:03d}.txt").write_text(f"file {i}\n")
    with vault.init_vault(str(tmp / "vault"), passphrase=PASSPHRASE, kdf=KdfParams(1, 8, 1)) as v:
        v.push(src, "team/many")
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLVAULT_")}
    env.update(
        MLVAULT_VAULT=str(tmp / "vault"), MLVAULT_PASSPHRASE=PASSPHRASE, MLVAULT_CONFIG_DIR=str(tmp / "cfg")
    )
    return env


def on_terminal(args: list[str], env: dict[str, str]) -> tuple[int, str]:
    """Run the console script with stdout on a pseudo-terminal of 200 columns."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 50, 200, 0, 0))
    received = bytearray()

    def drain() -> None:
        with contextlib.suppress(OSError):
            while chunk := os.read(master, 65536):
                received.extend(chunk)

    reader = threading.Thread(target=drain)
    reader.start()
    proc = subprocess.run([MLVAULT, *args], env=env, stdout=slave, stderr=subprocess.PIPE, check=False)
    os.close(slave)
    reader.join()
    os.close(master)
    assert proc.stderr == b"", proc.stderr
    return proc.returncode, received.decode().replace("\r\n", "\n")


def listed(text: str) -> list[str]:
    return [word for line in text.splitlines() for word in line.split() if word.endswith(".txt")]


def test_show_on_a_terminal_lists_the_first_files_then_says_how_many_more(many: dict[str, str]) -> None:
    code, text = on_terminal(["show", "team/many@v1"], many)
    assert code == 0
    assert listed(text) == [f"f{i:03d}.txt" for i in range(SHOWN_ON_TERMINAL)]
    assert f"… and 7 more files ({FILES} in all); --files lists them all" in text

    code, text = on_terminal(["show", "--files", "team/many@v1"], many)
    assert code == 0
    assert listed(text) == [f"f{i:03d}.txt" for i in range(FILES)]
    assert "more files" not in text


def test_show_into_a_pipe_lists_every_file_in_rich_columns(many: dict[str, str]) -> None:
    proc = subprocess.run([MLVAULT, "show", "team/many@v1"], env=many, capture_output=True, text=True)
    assert proc.returncode == 0 and proc.stderr == ""
    assert listed(proc.stdout) == [f"f{i:03d}.txt" for i in range(FILES)]
    assert "more files" not in proc.stdout
    table_lines = proc.stdout.splitlines()[-FILES - 1 :]
    rows = [line.split() for line in table_lines]
    reference = io.StringIO()
    table = Table(*rows[0], box=None)
    for row in rows[1:]:
        table.add_row(row[0], " ".join(row[1:3]), *row[3:])
    Console(file=reference, width=output.PIPE_WIDTH, soft_wrap=True, highlight=False).print(table)
    assert "\n".join(table_lines) + "\n" == reference.getvalue()


def test_print_table_matches_rich_and_never_reads_markup(capsys: pytest.CaptureFixture[str]) -> None:
    headers = ("path", "size")
    rows = [("a[bold]b[/bold] :smile: 漢字.txt", "1 B"), ("", "10.0 KiB"), ("x " * 10, "-")]
    output.print_table(headers, rows)
    reference = io.StringIO()
    table = Table(*headers, box=None)
    for row in rows:
        table.add_row(*(Text(cell) for cell in row))
    Console(file=reference, width=output.PIPE_WIDTH, soft_wrap=True, highlight=False).print(table)
    assert capsys.readouterr().out == reference.getvalue()
    assert "a[bold]b[/bold] :smile:" in reference.getvalue()


def _outcome(runtime: object, value: object, param: object, ctx: object) -> object:
    try:
        return ("value", runtime._coerce_value(value, param=param, ctx=ctx))  # type: ignore[attr-defined]
    except BadParameter as exc:
        return ("error", exc.format_message())


def test_plain_coercion_gives_what_typers_adapters_give() -> None:
    group = typer.main.get_command(app)
    ctx = group.make_context("mlvault", ["ls"])
    params = []

    def walk(command: object) -> None:
        params.extend(command.get_params(ctx))  # type: ignore[attr-defined]
        for sub in getattr(command, "commands", {}).values():
            walk(sub)

    walk(group)
    values = ["3", "-1", "0", "007", "1.5", "-2.25", "1e3", " 4", "abc", "", "x/y", "a\0b", "inf", "٣"]
    compared = 0
    for param in params:
        descriptor = param.type_descriptor
        if descriptor.file_annotation is not None or descriptor.parameter_info.parser is not None:
            continue
        plain = PlainRuntimeParam(
            parameter_info=descriptor.parameter_info, annotation=descriptor.annotation, descriptor=descriptor
        )
        typers = build_runtime_param(descriptor)
        samples: list[object] = [tuple(values)] if param.multiple else values
        for value in samples:
            assert _outcome(plain, value, param, ctx) == _outcome(typers, value, param, ctx), (
                param.name,
                descriptor.annotation,
                value,
            )
            compared += 1
    assert compared > 500


def test_ls_imports_neither_pydantic_nor_the_progress_bar_nor_other_commands(many: dict[str, str]) -> None:
    probe = (
        "import sys\n"
        "from mlvault_cli.main import main\n"
        "sys.argv = ['mlvault', 'ls']\n"
        "try:\n    main()\nexcept SystemExit as exc:\n    assert exc.code == 0, exc.code\n"
        "heavy = ('pydantic', 'rich.progress', 'boto3', 'botocore', 'prometheus_client',\n"
        "         'sqlalchemy.dialects.postgresql')\n"
        "print(sorted(m for m in heavy if m in sys.modules))\n"
        "print(sorted(m for m in sys.modules if m.startswith('mlvault_cli.commands.')))\n"
    )
    proc = subprocess.run([sys.executable, "-c", probe], env=many, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[-2:] == ["[]", "['mlvault_cli.commands.core']"]


@pytest.mark.parametrize(
    ("argv", "word"),
    [
        (["ls"], "ls"),
        (["--vault", "ls", "show", "x"], "show"),
        (["-V", "v", "--kms", "--catalog=sqlite://", "log", "a"], "log"),
        (["--allow-insecure-http", "--passphrase-file", "f", "pull", "a", "b"], "pull"),
        (["--help"], None),
        (["--vault"], None),
        (["--bogus", "ls"], None),
        (["-Vv", "ls"], None),
        ([], None),
    ],
)
def test_command_word_skips_the_global_options(argv: list[str], word: str | None) -> None:
    assert command_word(argv) == word


def test_each_lazy_command_is_registered_by_the_module_named_for_it() -> None:
    registered = {
        (info.name or info.callback.__name__.replace("_", "-")): info.callback.__module__
        for info in app.registered_commands
        if info.callback is not None
    }
    for word, module in LAZY_COMMANDS.items():
        assert registered[word] == f"mlvault_cli.commands.{module}", word


def test_help_and_unknown_words_see_every_command(many: dict[str, str]) -> None:
    shown = subprocess.run([MLVAULT, "--help"], env=many, capture_output=True, text=True)
    assert shown.returncode == 0
    for word in ("backup", "trust", "keys", "audit", "ls", "verify", "attest"):
        assert f" {word} " in shown.stdout, word
    typo = subprocess.run([MLVAULT, "--vault", "x", "lss"], env=many, capture_output=True, text=True)
    assert typo.returncode == 2
    assert "No such command 'lss'. Did you mean 'ls'?" in typo.stderr
    grouped = subprocess.run(
        [MLVAULT, "backup", "schedule", "--help"], env=many, capture_output=True, text=True
    )
    assert grouped.returncode == 0 and "add" in grouped.stdout
