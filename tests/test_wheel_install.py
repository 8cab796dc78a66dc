"""A non-editable wheel, installed in a fresh virtualenv, can create, fill and read a vault.

This is what users get from ``pip install mlvault``: it proves the Alembic migrations and
every module ship inside the wheel and that nothing imports from the source tree.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import venv
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_wheel_install_init_push_pull(tmp_path: Path) -> None:
    dist = tmp_path / "dist"
    # Build from a copy of the sources: a stale build/ in a developer's checkout would leak
    # modules that no longer exist into the wheel.
    source = tmp_path / "src"
    shutil.copytree(
        ROOT,
        source,
        ignore=shutil.ignore_patterns(
            ".git", ".venv", "build", "dist", "*.egg-info", "__pycache__", ".*_cache"
        ),
    )
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(dist),
            str(source),
        ],
        check=True,
        cwd=tmp_path,
    )
    (wheel,) = dist.glob("mlvault-*.whl")
    env_dir = tmp_path / "env"
    venv.create(env_dir, with_pip=True)
    py = env_dir / "bin" / "python"
    subprocess.run([py, "-m", "pip", "install", "-q", str(wheel)], check=True, cwd=tmp_path)

    work = tmp_path / "work"
    work.mkdir()
    where = subprocess.run(
        [
            py,
            "-c",
            "import sysconfig, vault, mlvault_cli, mlvault_migrations; print(sysconfig.get_path('purelib')); "
            "print(vault.__file__); print(mlvault_cli.__file__); print(mlvault_migrations.__file__)",
        ],
        check=True,
        cwd=work,
        capture_output=True,
        text=True,
    ).stdout.split()
    assert all(str(env_dir) in p for p in where), where
    site = Path(where[0])
    # Generic top-level names would collide with other distributions' packages.
    assert not (site / "cli").exists() and not (site / "migrations").exists(), sorted(os.listdir(site))

    (work / "model").mkdir()
    payload = os.urandom(300_000)
    (work / "model" / "w.bin").write_bytes(payload)
    env = {**os.environ, "MLVAULT_PASSPHRASE": "pw", "MLVAULT_VAULT": str(work / "v")}
    env.pop("MLVAULT_CATALOG", None)
    mlvault = str(env_dir / "bin" / "mlvault")
    for args in (
        ["init", str(work / "v"), "--kdf-time", "1", "--kdf-memory-mib", "1", "--kdf-parallelism", "1"],
        ["push", "model", "team/m", "--tag", "t"],
        ["pull", "team/m@t", "out"],
        ["check", "--read-data"],
    ):
        result = subprocess.run([mlvault, *args], cwd=work, env=env, capture_output=True, text=True)
        assert result.returncode == 0, (args, result.stderr)
    assert (work / "out" / "w.bin").read_bytes() == payload
