"""The real ``mlvault`` Typer app, driven in-process with Typer's CliRunner.

Every command is exercised the way a user runs it (environment variables, ``mlvault.toml``,
``--json``), and every error class is checked for its documented exit code and a single
``error: ...`` line on stderr.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from typer.testing import CliRunner, Result

from mlvault_cli.main import app
from vault import errors

PASSPHRASE = "cli test passphrase"
FAST_KDF = ["--kdf-time", "1", "--kdf-memory-mib", "1", "--kdf-parallelism", "1"]

Run = Callable[..., Result]

DOCUMENTED_EXIT_CODES = {
    errors.UsageError: 2,
    errors.NotFoundError: 3,
    errors.AuthenticationError: 4,
    errors.IntegrityError: 5,
    errors.DestinationExistsError: 6,
    errors.StorageUnavailableError: 7,
    errors.ConfigurationError: 8,
}


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No MLVAULT_* from the developer's shell, and a cwd without an mlvault.toml."""
    for name in list(os.environ):
        if name.startswith("MLVAULT_"):
            monkeypatch.delenv(name)
    work = tmp_path / "cwd"
    work.mkdir()
    monkeypatch.chdir(work)


@pytest.fixture
def run() -> Run:
    """``run(*args, env=None, passphrase=PASSPHRASE)`` → the CliRunner result."""

    def invoke(
        *args: str, env: dict[str, str | None] | None = None, passphrase: str | None = PASSPHRASE
    ) -> Result:
        full_env: dict[str, str | None] = {"MLVAULT_PASSPHRASE": passphrase}
        full_env.update(env or {})
        return CliRunner().invoke(app, list(args), env=full_env, catch_exceptions=False)

    return invoke


@pytest.fixture
def vault_dir(run: Run, tmp_path: Path) -> Path:
    """A vault made by ``mlvault init`` with a cheap KDF."""
    path = tmp_path / "vault"
    result = run("init", str(path), *FAST_KDF)
    assert result.exit_code == 0, result.output
    return path


@pytest.fixture
def vrun(run: Run, vault_dir: Path) -> Run:
    """Like ``run`` with MLVAULT_VAULT pointing at ``vault_dir``."""

    def invoke(
        *args: str, env: dict[str, str | None] | None = None, passphrase: str | None = PASSPHRASE
    ) -> Result:
        return run(*args, env={"MLVAULT_VAULT": str(vault_dir), **(env or {})}, passphrase=passphrase)

    return invoke


@pytest.fixture
def model_dir(tmp_path: Path) -> Path:
    src = tmp_path / "resnet"
    (src / "weights").mkdir(parents=True)
    (src / "weights" / "model.safetensors").write_bytes(os.urandom(300_000))
    (src / "config.json").write_text('{"depth": 50}\n')
    (src / "empty").mkdir()
    os.chmod(src / "config.json", 0o640)
    return src


def assert_one_error_line(result: Result, code: int, *fragments: str) -> str:
    """The command failed with ``code`` and exactly one ``error:`` line, no traceback."""
    assert result.exit_code == code, (result.exit_code, result.stdout, result.stderr)
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: "), lines
    assert "Traceback" not in result.stderr and "Traceback" not in result.stdout
    for fragment in fragments:
        assert fragment in lines[0]
    return lines[0]


def test_documented_exit_codes() -> None:
    for cls, code in DOCUMENTED_EXIT_CODES.items():
        assert cls.exit_code == code, cls.__name__
    assert errors.CatalogTooNewError.exit_code == 8
    assert errors.DecryptionError.exit_code == 5
    assert errors.HostileManifestError.exit_code == 2


def test_init_push_pull_tag_round_trip(
    run: Run, vrun: Run, vault_dir: Path, model_dir: Path, tmp_path: Path
) -> None:
    assert (vault_dir / "config").is_file()

    pushed = vrun(
        "push",
        str(model_dir),
        "team/resnet",
        "--tag",
        "staging",
        "--meta",
        "framework=torch",
        "--kind",
        "model",
    )
    assert pushed.exit_code == 0, pushed.output
    assert pushed.stdout.startswith("team/resnet@v1 [staging] sha256:")
    assert pushed.stderr == ""

    pulled = vrun("pull", "team/resnet@staging", str(tmp_path / "out"))
    assert pulled.exit_code == 0, pulled.output
    assert "verified" in pulled.stdout
    assert (tmp_path / "out" / "weights" / "model.safetensors").read_bytes() == (
        model_dir / "weights" / "model.safetensors"
    ).read_bytes()
    assert (tmp_path / "out" / "empty").is_dir()
    assert (tmp_path / "out" / "config.json").stat().st_mode & 0o777 == 0o640

    assert vrun("push", str(model_dir / "config.json"), "team/resnet").exit_code == 0
    tagged = vrun("tag", "team/resnet@v2", "staging")
    assert tagged.exit_code == 0 and "v2" in tagged.stdout and "moved" in tagged.stdout
    into = tmp_path / "into"
    into.mkdir()
    assert vrun("pull", "team/resnet@staging", str(into)).exit_code == 0
    assert (into / "config.json").read_text() == '{"depth": 50}\n'

    listed = vrun("ls")
    assert listed.exit_code == 0 and "team/resnet" in listed.stdout and "staging→v2" in listed.stdout
    logged = vrun("log", "team/resnet")
    assert logged.exit_code == 0 and "v1" in logged.stdout and "v2" in logged.stdout
    shown = vrun("show", "team/resnet@v1")
    assert shown.exit_code == 0
    assert "meta     framework=torch" in shown.stdout and "weights/model.safetensors" in shown.stdout
    checked = vrun("check", "--read-data")
    assert checked.exit_code == 0 and checked.stdout.strip().splitlines()[-1].startswith("ok:")


def test_init_warns_about_weak_kdf_and_refuses_existing_vault(run: Run, vault_dir: Path) -> None:
    again = run("init", str(vault_dir), *FAST_KDF)
    assert_one_error_line(again, 9, "already exists")
    fresh = run("init", str(vault_dir.parent / "second"), *FAST_KDF)
    assert fresh.exit_code == 0
    assert "weaker than RFC 9106" in fresh.stderr


def test_json_outputs(vrun: Run, model_dir: Path, tmp_path: Path) -> None:
    push = vrun(
        "push", "--json", str(model_dir), "team/resnet", "-t", "prod", "-m", "lr=0.1", "-m", "epochs=3"
    )
    assert push.exit_code == 0, push.output
    pushed = json.loads(push.stdout)
    assert set(pushed) == {
        "artifact",
        "number",
        "version_id",
        "digest",
        "size",
        "files",
        "new_chunks",
        "reused_chunks",
        "stored_bytes",
        "packs",
        "tags",
    }
    assert (pushed["artifact"], pushed["number"], pushed["files"], pushed["tags"]) == (
        "team/resnet",
        1,
        2,
        ["prod"],
    )
    assert pushed["size"] == 300_000 + len('{"depth": 50}\n')
    assert len(pushed["digest"]) == 64 and pushed["stored_bytes"] > 0

    pull = vrun("pull", "--json", "team/resnet@prod", str(tmp_path / "out"))
    assert pull.exit_code == 0, pull.output
    pulled = json.loads(pull.stdout)
    assert set(pulled) == {"artifact", "number", "digest", "destination", "files", "size", "sha256"}
    assert pulled["destination"] == str(tmp_path / "out")
    assert pulled["digest"] == pushed["digest"]
    for path, digest in pulled["sha256"].items():
        assert hashlib.sha256((model_dir / path).read_bytes()).hexdigest() == digest

    again = json.loads(vrun("push", "--json", str(model_dir), "team/resnet").stdout)
    assert (again["number"], again["packs"], again["stored_bytes"], again["new_chunks"]) == (2, 0, 0, 0)

    listed = json.loads(vrun("ls", "--json").stdout)
    assert listed == [
        {"name": "team/resnet", "kind": "model", "latest": 2, "size": pushed["size"], "tags": {"prod": 1}}
    ]
    assert json.loads(vrun("ls", "--json", "other/").stdout) == []

    log = json.loads(vrun("log", "--json", "team/resnet").stdout)
    assert [row["number"] for row in log] == [2, 1]
    assert log[1]["tags"] == ["prod"] and log[1]["id"] == pushed["version_id"]
    assert {"digest", "size", "file_count", "created_by", "created_at", "kind"} <= set(log[0])
    assert dt.datetime.fromisoformat(log[0]["created_at"]).year >= 2024

    show = json.loads(vrun("show", "--json", "team/resnet@prod").stdout)
    assert set(show) == {"version", "files", "metadata", "parents"}
    assert show["metadata"] == {"lr": "0.1", "epochs": "3"}
    assert show["version"]["number"] == 1
    assert {f["path"] for f in show["files"]} == {"config.json", "weights/model.safetensors"}
    config = next(f for f in show["files"] if f["path"] == "config.json")
    assert config["mode"] == "0o640" and config["size"] == len('{"depth": 50}\n')

    check = json.loads(vrun("check", "--json").stdout)
    assert check["problems"] == [] and check["versions_checked"] == 2


def test_lineage_and_kind(vrun: Run, model_dir: Path, tmp_path: Path) -> None:
    data = tmp_path / "data.parquet"
    data.write_bytes(b"PAR1" + os.urandom(1000))
    assert vrun("push", str(data), "datasets/mini", "--kind", "dataset").exit_code == 0
    assert vrun("push", str(model_dir), "team/resnet", "--from", "datasets/mini@v1").exit_code == 0
    show = json.loads(vrun("show", "--json", "team/resnet").stdout)
    assert show["parents"] == ["datasets/mini@v1"]
    assert json.loads(vrun("ls", "--json", "datasets/").stdout)[0]["kind"] == "dataset"
    bad_kind = vrun("push", str(data), "datasets/mini", "--kind", "weights")
    assert_one_error_line(bad_kind, 2, "kind")


def test_mlvault_toml_in_cwd_is_honoured(run: Run, vault_dir: Path, model_dir: Path, tmp_path: Path) -> None:
    Path("mlvault.toml").write_text(f'vault = "{vault_dir}"\n')
    assert run("push", str(model_dir), "team/from-toml").exit_code == 0
    listed = run("ls", "--json")
    assert [row["name"] for row in json.loads(listed.stdout)] == ["team/from-toml"]

    # A flag or MLVAULT_VAULT wins over the file.
    other = tmp_path / "other-vault"
    assert run("init", str(other), *FAST_KDF).exit_code == 0
    assert json.loads(run("--vault", str(other), "ls", "--json").stdout) == []
    assert json.loads(run("ls", "--json", env={"MLVAULT_VAULT": str(other)}).stdout) == []

    Path("mlvault.toml").write_text('vault = "unterminated\n')
    assert_one_error_line(run("ls"), 8, "mlvault.toml")


def test_passphrase_file(run: Run, vault_dir: Path, model_dir: Path, tmp_path: Path) -> None:
    secret = tmp_path / "passphrase.txt"
    secret.write_text(PASSPHRASE + "\n")
    result = run(
        "--vault",
        str(vault_dir),
        "--passphrase-file",
        str(secret),
        "push",
        str(model_dir),
        "team/pf",
        passphrase=None,
    )
    assert result.exit_code == 0, result.output
    missing = run(
        "--vault",
        str(vault_dir),
        "--passphrase-file",
        str(tmp_path / "nope"),
        "pull",
        "team/pf",
        str(tmp_path / "out"),
        passphrase=None,
    )
    assert_one_error_line(missing, 2, "passphrase file")
    assert not (tmp_path / "out").exists()


# -- exit codes, one line each ------------------------------------------------------------------


def test_usage_errors_exit_2(run: Run, vrun: Run, model_dir: Path, tmp_path: Path) -> None:
    assert_one_error_line(vrun("pull", "team", str(tmp_path / "out")), 2, "invalid artifact name")
    assert_one_error_line(vrun("pull", "team/x@sha256:12", str(tmp_path / "out")), 2, "at least 12")
    assert_one_error_line(vrun("push", str(model_dir), "Bad Name"), 2, "invalid artifact name")
    assert_one_error_line(vrun("push", str(tmp_path / "missing"), "team/x"), 2, "does not exist")
    assert_one_error_line(vrun("push", str(model_dir), "team/x", "--meta", "novalue"), 2, "key=value")
    assert_one_error_line(run("ls"), 2, "no vault given", "mlvault.toml")
    assert not (tmp_path / "out").exists()


def test_not_found_exits_3(run: Run, vrun: Run, model_dir: Path, tmp_path: Path) -> None:
    assert vrun("push", str(model_dir), "team/resnet").exit_code == 0
    for ref in ("team/nope", "team/resnet@v7", "team/resnet@prod", "team/resnet@sha256:0123456789ab"):
        assert_one_error_line(vrun("pull", ref, str(tmp_path / "out")), 3)
    assert_one_error_line(vrun("log", "team/nope"), 3, "team/nope")
    assert_one_error_line(run("--vault", str(tmp_path / "nowhere"), "ls"), 3, "mlvault init")
    assert not (tmp_path / "out").exists()


def test_wrong_or_missing_passphrase_exits_4(vrun: Run, model_dir: Path, tmp_path: Path) -> None:
    assert vrun("push", str(model_dir), "team/resnet").exit_code == 0
    assert_one_error_line(
        vrun("pull", "team/resnet", str(tmp_path / "out"), passphrase="wrong"), 4, "wrong passphrase"
    )
    assert_one_error_line(vrun("push", str(model_dir), "team/resnet", passphrase="wrong"), 4)
    assert_one_error_line(
        vrun("pull", "team/resnet", str(tmp_path / "out"), passphrase=None), 4, "MLVAULT_PASSPHRASE"
    )
    assert not (tmp_path / "out").exists()
    assert [row["number"] for row in json.loads(vrun("log", "--json", "team/resnet").stdout)] == [1]


def test_tampered_pack_exits_5_and_check_reports_it(
    vrun: Run, vault_dir: Path, model_dir: Path, tmp_path: Path
) -> None:
    pushed = json.loads(vrun("push", "--json", str(model_dir), "team/resnet").stdout)
    assert pushed["packs"] == 1
    (pack,) = [p for p in (vault_dir / "packs").rglob("*") if p.is_file()]
    data = bytearray(pack.read_bytes())
    data[len(data) // 2] ^= 0x01  # inside the one big weights chunk
    pack.write_bytes(bytes(data))

    line = assert_one_error_line(vrun("pull", "team/resnet", str(tmp_path / "out")), 5)
    assert "weights/model.safetensors" in line
    assert not (tmp_path / "out").exists()
    assert {p.name for p in tmp_path.iterdir()} == {"cwd", "vault", "resnet"}  # no staging dir left

    checked = vrun("check", "--read-data")
    assert checked.exit_code == 5
    assert "damaged: team/resnet@v1:weights/model.safetensors" in checked.stdout
    assert checked.stdout.strip().splitlines()[-1].startswith("DAMAGED")
    assert vrun("check").exit_code == 0  # structure alone is fine: same size, present


def test_destination_exists_exits_6(vrun: Run, model_dir: Path, tmp_path: Path) -> None:
    assert vrun("push", str(model_dir), "team/resnet").exit_code == 0
    existing = tmp_path / "existing"
    existing.mkdir()
    (existing / "keep.txt").write_text("mine")
    assert_one_error_line(vrun("pull", "team/resnet", str(existing)), 6, "already exists")
    assert [p.name for p in existing.iterdir()] == ["keep.txt"]
    assert (existing / "keep.txt").read_text() == "mine"


def test_unreachable_catalog_exits_7(vrun: Run, tmp_path: Path) -> None:
    result = vrun("--catalog", "postgresql+psycopg://postgres@127.0.0.1:1/nothing", "ls")
    assert_one_error_line(result, 7, "cannot reach the catalog")


def test_newer_catalog_exits_8(vrun: Run, vault_dir: Path, model_dir: Path) -> None:
    assert vrun("push", str(model_dir), "team/resnet").exit_code == 0
    engine = create_engine(f"sqlite:///{vault_dir / 'catalog.sqlite'}")
    with engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = 'ffffffffffff'"))
    engine.dispose()
    assert_one_error_line(vrun("ls"), 8, "newer than this mlvault", "upgrade mlvault")


def test_unsupported_vault_format_exits_8(vrun: Run, vault_dir: Path) -> None:
    config = json.loads((vault_dir / "config").read_text())
    config["mlvault"] = 99
    (vault_dir / "config").chmod(0o644)
    (vault_dir / "config").write_text(json.dumps(config))
    assert_one_error_line(vrun("ls"), 8, "upgrade mlvault")
