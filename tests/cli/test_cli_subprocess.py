"""The installed ``mlvault`` console script, run as a user runs it.

In-process tests cannot see what the entry point itself prints; here stderr is exactly what
a terminal would show. Every failure must be one ``error: ...`` line with its documented exit
code and never a traceback, and that includes click's own parse errors. The invocations are
independent, so they run concurrently to keep interpreter start-up off the critical path.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import vault
from vault.crypto.kdf import KdfParams

MLVAULT = str(Path(sys.executable).parent / "mlvault")
PASSPHRASE = "subprocess passphrase"


@pytest.fixture
def setup(tmp_path: Path) -> dict[str, Path]:
    """A vault with team/model v1, a tampered copy of it, and a cwd with a broken mlvault.toml."""
    good = tmp_path / "vault"
    src = tmp_path / "src"
    src.mkdir()
    (src / "weights.bin").write_bytes(os.urandom(200_000))
    (src / "config.json").write_text("{}")
    with vault.init_vault(str(good), passphrase=PASSPHRASE, kdf=KdfParams(1, 8, 1)) as v:
        v.push(src, "team/model")
    bad = tmp_path / "tampered"
    subprocess.run(["cp", "-a", str(good), str(bad)], check=True)
    (pack,) = [p for p in (bad / "packs").rglob("*") if p.is_file()]
    data = bytearray(pack.read_bytes())
    data[1000] ^= 0x80
    pack.write_bytes(bytes(data))
    existing = tmp_path / "existing"
    existing.mkdir()
    broken = tmp_path / "broken-toml"
    broken.mkdir()
    (broken / "mlvault.toml").write_text("vault = [unclosed\n")
    return {"good": good, "bad": bad, "existing": existing, "broken": broken, "tmp": tmp_path, "src": src}


def _spawn(args: list[str], cwd: Path, passphrase: str | None = PASSPHRASE) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLVAULT_")}
    if passphrase is not None:
        env["MLVAULT_PASSPHRASE"] = passphrase
    return subprocess.Popen(
        [MLVAULT, *args],
        cwd=cwd,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_console_script_errors_are_one_line_with_documented_codes(setup: dict[str, Path]) -> None:
    good, bad, tmp = str(setup["good"]), str(setup["bad"]), setup["tmp"]
    cases = {
        "missing argument": (["pull"], 2, "Missing argument"),
        "unknown option": (["--vault", good, "pull", "--jsn", "team/model", str(tmp / "o1")], 2, "--jsn"),
        "malformed ref": (["--vault", good, "pull", "team", str(tmp / "o2")], 2, "invalid artifact name"),
        "unknown ref": (["--vault", good, "pull", "team/nope", str(tmp / "o3")], 3, "team/nope"),
        "wrong passphrase": (["--vault", good, "pull", "team/model", str(tmp / "o4")], 4, "wrong passphrase"),
        "tampered pack": (["--vault", bad, "pull", "team/model", str(tmp / "o5")], 5, "weights.bin"),
        "destination exists": (
            ["--vault", good, "pull", "team/model", str(setup["existing"])],
            6,
            "already exists",
        ),
        "catalog unreachable": (
            ["--vault", good, "--catalog", "postgresql+psycopg://postgres@127.0.0.1:1/x", "ls"],
            7,
            "catalog",
        ),
        "broken mlvault.toml": (["ls"], 8, "mlvault.toml"),
    }
    procs = {
        name: _spawn(
            args,
            setup["broken"] if name == "broken mlvault.toml" else tmp,
            passphrase="nope" if name == "wrong passphrase" else PASSPHRASE,
        )
        for name, (args, _, _) in cases.items()
    }
    for name, proc in procs.items():
        out, err = proc.communicate(timeout=120)
        _, code, fragment = cases[name]
        assert proc.returncode == code, (name, out, err)
        assert "Traceback" not in err and "Traceback" not in out, name
        lines = err.splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: "), (name, err)
        assert fragment in lines[0], (name, lines[0])
        assert out == "", (name, out)
    for i in range(1, 6):
        assert not (tmp / f"o{i}").exists()
    assert list(setup["existing"].iterdir()) == []


def test_console_script_success_and_help(setup: dict[str, Path]) -> None:
    tmp = setup["tmp"]
    (tmp / "mlvault.toml").write_text(f'vault = "{setup["good"]}"\n')  # found in the cwd
    pull = _spawn(["pull", "--json", "team/model", str(tmp / "out")], tmp)
    bare = _spawn([], tmp)
    helped = _spawn(["push", "--help"], tmp)

    out, err = pull.communicate(timeout=120)
    assert pull.returncode == 0, err
    assert err == ""
    result = json.loads(out)
    assert (result["artifact"], result["number"], result["files"]) == ("team/model", 1, 2)
    assert (tmp / "out" / "weights.bin").read_bytes() == (setup["src"] / "weights.bin").read_bytes()

    out, err = bare.communicate(timeout=120)
    assert bare.returncode == 2 and "Usage" in out and "Traceback" not in err
    out, err = helped.communicate(timeout=120)
    assert helped.returncode == 0 and "--tag" in out and err == ""
