"""A team vault: storage on S3, catalog on PostgreSQL, several workers pushing at once.

``init --catalog postgresql+psycopg://...`` records the catalog in the vault's config, so
the workers below pass only the vault URL and the endpoint (as CI jobs would, through the
environment) and find the shared catalog on their own. Two installed ``mlvault`` processes
push different content to the same artifact at the same time: both succeed, get versions
1 and 2, and both versions pull back intact. Skips without ``MLVAULT_TEST_POSTGRES_URL``.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from e2ehelpers import FAST_KDF, MiB, file_sha256, ok_json, tree_digest, write_random, write_small_files
from typer.testing import Result

pytestmark = pytest.mark.postgres


def test_two_workers_push_the_same_artifact_concurrently(
    postgres_url: str,
    mlvault: Callable[..., Result],
    spawn: Callable[..., subprocess.Popen[str]],
    bucket: str,
    moto_endpoint: str,
    data_home: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    url = f"s3://{bucket}/team-vault"
    init = mlvault("--catalog", postgres_url, "--endpoint-url", moto_endpoint, "init", url, *FAST_KDF)
    assert init.exit_code == 0, init.stderr
    assert "catalog: postgresql+psycopg://" in init.stdout

    monkeypatch.setenv("MLVAULT_VAULT", url)
    monkeypatch.setenv("MLVAULT_ENDPOINT_URL", moto_endpoint)
    sources = {
        "a": write_random(tmp_path / "model-a.bin", 12 * MiB),
        "b": write_small_files(tmp_path / "model-b", 40, seed=7),
    }
    workers = {name: spawn("push", "--json", "--quiet", src, "team/shared") for name, src in sources.items()}
    numbers = {}
    for name, proc in workers.items():
        stdout, stderr = proc.communicate(timeout=90)
        assert proc.returncode == 0, stderr
        numbers[name] = json.loads(stdout)["number"]
    assert sorted(numbers.values()) == [1, 2]

    log = ok_json(mlvault("log", "--json", "team/shared"))
    assert [row["number"] for row in log] == [2, 1]
    assert len({row["digest"] for row in log}) == 2
    out = tmp_path / "out"
    out.mkdir()
    for name, src in sources.items():
        dest = out / name
        pulled = mlvault("pull", f"team/shared@v{numbers[name]}", dest)
        assert pulled.exit_code == 0, pulled.stderr
        if src.is_dir():
            assert tree_digest(dest) == tree_digest(src)
        else:
            assert file_sha256(dest) == file_sha256(src)
    check = mlvault("check", "--read-data")
    assert check.exit_code == 0, check.stdout + check.stderr
    assert "2 versions" in check.stdout
    # Nobody fell back to a private SQLite catalog in the user's data directory.
    private = data_home / "mlvault" / "catalogs"
    assert not private.exists() or not any(private.iterdir())
