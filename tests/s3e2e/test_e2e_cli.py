"""The ``mlvault`` CLI against a real S3 endpoint (moto over HTTP), the way a user drives it.

One vault on ``s3://bucket/prefix`` with no ``--catalog``: the SQLite catalog goes to the
user's data directory, keyed by the vault id, and ``init`` says where. A 100 MiB file and a
directory of 1,000 small files go in and come back byte-identical; ``check --read-data``
decrypts and verifies every chunk; the bucket holds nothing that names the content.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from e2ehelpers import (
    FAST_KDF,
    MiB,
    file_sha256,
    object_keys,
    ok_json,
    tree_digest,
    write_random,
    write_small_files,
)
from typer.testing import Result

if TYPE_CHECKING:
    from mypy_boto3_s3.client import S3Client


@pytest.mark.slow
def test_large_file_and_many_small_files_round_trip_through_s3(
    mlvault: Callable[..., Result],
    bucket: str,
    moto_endpoint: str,
    s3_admin: S3Client,
    data_home: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    url = f"s3://{bucket}/ml/vault"
    init = mlvault("--endpoint-url", moto_endpoint, "init", url, *FAST_KDF)
    assert init.exit_code == 0, init.stderr
    match = re.search(rf"initialized vault ([0-9a-f]{{32}}) at {re.escape(url)}", init.stdout)
    assert match, init.stdout
    catalog_file = data_home / "mlvault" / "catalogs" / f"{match[1]}.sqlite"
    assert f"catalog: sqlite:///{catalog_file}" in init.stdout
    assert catalog_file.is_file()

    monkeypatch.setenv("MLVAULT_VAULT", url)
    monkeypatch.setenv("MLVAULT_ENDPOINT_URL", moto_endpoint)
    model = write_random(tmp_path / "model.safetensors", 100 * MiB)
    shards = write_small_files(tmp_path / "shards", 1000)

    pushed = ok_json(mlvault("push", "--json", "--tag", "candidate", model, "team/llm"))
    assert (pushed["number"], pushed["files"], pushed["size"]) == (1, 1, 100 * MiB)
    assert pushed["new_chunks"] > 50 and pushed["reused_chunks"] == 0 and pushed["packs"] >= 6
    pushed_dir = ok_json(mlvault("push", "--json", "--kind", "dataset", shards, "team/shards"))
    assert (pushed_dir["number"], pushed_dir["files"]) == (1, 1000)
    again = ok_json(mlvault("push", "--json", model, "team/llm"))  # same bytes: nothing new is stored
    assert (again["number"], again["new_chunks"], again["packs"], again["stored_bytes"]) == (2, 0, 0, 0)
    assert again["digest"] == pushed["digest"]

    listed = {row["name"]: row for row in ok_json(mlvault("ls", "--json"))}
    assert set(listed) == {"team/llm", "team/shards"}
    assert (listed["team/llm"]["latest"], listed["team/shards"]["kind"]) == (2, "dataset")

    out = tmp_path / "out"
    out.mkdir()
    pulled = mlvault("pull", "team/llm@candidate", out / "model.safetensors")
    assert pulled.exit_code == 0, pulled.stderr
    assert "team/llm@v1" in pulled.stdout and "verified" in pulled.stdout
    assert file_sha256(out / "model.safetensors") == file_sha256(model)
    pulled_dir = mlvault("pull", "team/shards@v1", out / "shards")
    assert pulled_dir.exit_code == 0, pulled_dir.stderr
    assert tree_digest(out / "shards") == tree_digest(shards)
    assert len(tree_digest(out / "shards")) == 1000

    check = mlvault("check", "--read-data")
    assert check.exit_code == 0, check.stdout + check.stderr
    assert check.stdout.startswith("ok: ") and "3 versions" in check.stdout, check.stdout
    assert "problem" not in check.stdout

    keys = object_keys(s3_admin, bucket)
    assert keys and all(key.startswith("ml/vault/") for key in keys)
    top = {key.split("/")[2] for key in keys}
    # audit: write-once checkpoints; owner-identity: the owner identity sealed under the owner key
    assert top == {"config", "keys", "packs", "manifests", "audit", "owner-identity"}
    assert not any(name in key for key in keys for name in ("team", "llm", "shards", "model", "sample"))
