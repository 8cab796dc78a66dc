"""``mlvault scan`` and ``mlvault inspect`` through the CLI: exit codes, one-line errors, JSON read back."""

from __future__ import annotations

import json
import struct
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
import scancorpus as corpus
from typer.testing import CliRunner, Result

from mlvault_cli.main import app


def run(*args: str) -> Result:
    return CliRunner().invoke(app, list(args), catch_exceptions=False)


def test_scan_json_of_a_clean_directory_exits_0(tmp_path: Path) -> None:
    result = run("scan", str(corpus.write(tmp_path / "m", corpus.clean())), "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["scanner"] == "picklescan" and report["strict"] is True and report["verdict"] == "clean"
    by_path = {f["path"]: f for f in report["files"]}
    assert by_path["model.safetensors"]["verdict"] == "not-applicable"
    assert {i["name"] for i in by_path["state_dict.pkl"]["imports"]} == {
        "OrderedDict",
        "_rebuild_tensor_v2",
        "FloatStorage",
    }


def test_scan_of_a_malicious_directory_prints_everything_then_exits_18(tmp_path: Path) -> None:
    files = corpus.malicious() | {"config.json": b"{}"}
    result = run("scan", str(corpus.write(tmp_path / "m", files)), "--json")
    assert result.exit_code == 18
    report = json.loads(result.stdout)
    verdicts = {f["path"]: f["verdict"] for f in report["files"]}
    assert verdicts.pop("config.json") == "not-applicable"
    assert set(verdicts.values()) == {"dangerous"} and len(verdicts) == len(corpus.malicious())
    assert result.stderr.startswith("error: 14 dangerous file(s): ") and result.stderr.count("\n") == 1


def test_scan_table_names_the_import_and_lenient_mode_only_warns(tmp_path: Path) -> None:
    path = tmp_path / "model.safetensors"
    path.write_bytes(corpus.malicious()["import_module.pkl"])
    strict = run("scan", str(path))
    assert strict.exit_code == 18 and "importlib.import_module" in strict.stdout and "pickle" in strict.stdout
    lenient = run("scan", str(path), "--lenient")
    assert lenient.exit_code == 0 and "suspicious" in lenient.stdout


def test_scan_of_a_missing_path_is_exit_3(tmp_path: Path) -> None:
    result = run("scan", str(tmp_path / "nope"))
    assert result.exit_code == 3 and "no such file or directory" in result.stderr


def test_inspect_json_reads_back(tmp_path: Path) -> None:
    result = run("inspect", str(corpus.write(tmp_path / "m", corpus.clean())), "--json")
    assert result.exit_code == 0, result.output
    info = {i["path"]: i for i in json.loads(result.stdout)}
    assert info["model.safetensors"]["safetensors"]["parameter_count"] == 9
    assert info["model.gguf"]["gguf"]["architecture"] == "llama"
    human = run("inspect", str(tmp_path / "m" / "model.safetensors"))
    assert "conv.weight  F32  [2, 3]" in human.stdout and "parameter_count: 9" in human.stdout


@pytest.mark.parametrize(
    ("data", "words"),
    [
        (struct.pack("<Q", 1 << 60) + b"{}", "exceeds the cap"),
        (corpus.raw_safetensors(b"{oops"), "not valid JSON"),
        (
            corpus.raw_safetensors(
                b'{"a": {"dtype": "U8", "shape": [4], "data_offsets": [0, 4]},'
                b' "b": {"dtype": "U8", "shape": [2], "data_offsets": [3, 5]}}',
                b"\x00" * 6,
            ),
            "overlap",
        ),
    ],
)
def test_inspect_of_a_hostile_header_is_exit_2_with_one_line(tmp_path: Path, data: bytes, words: str) -> None:
    path = tmp_path / "evil.safetensors"
    path.write_bytes(data)
    result = run("inspect", str(path))
    assert result.exit_code == 2
    assert result.stderr.startswith("error: evil.safetensors: ") and words in result.stderr
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.output


def test_scan_does_not_import_the_catalog_or_s3_stacks(tmp_path: Path) -> None:
    corpus.write(tmp_path / "m", corpus.clean())
    code = (
        "import sys\nfrom mlvault_cli.main import main\nsys.argv = ['mlvault', 'scan', sys.argv[1]]\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
        "print(sorted(m for m in ('sqlalchemy', 'boto3') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code, str(tmp_path / "m")], capture_output=True, text=True)
    assert out.stdout.strip().splitlines()[-1] == "[]", out.stdout + out.stderr


# -- scanning a vault version -------------------------------------------------------------------

PASSPHRASE = "scan cli passphrase"
FAST_KDF = ["--kdf-time", "1", "--kdf-memory-mib", "1", "--kdf-parallelism", "1"]


@pytest.fixture
def vrun(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, catalog_url: str | None):  # type: ignore[no-untyped-def]
    for name in ("MLVAULT_VAULT", "MLVAULT_CATALOG", "MLVAULT_IDENTITY"):
        monkeypatch.delenv(name, raising=False)
    path = tmp_path / "vault"
    init = ["init", str(path), *FAST_KDF] + (["--catalog", catalog_url] if catalog_url else [])
    result = CliRunner().invoke(app, init, env={"MLVAULT_PASSPHRASE": PASSPHRASE})
    assert result.exit_code == 0, result.output

    def invoke(*args: str) -> Result:
        env = {"MLVAULT_PASSPHRASE": PASSPHRASE, "MLVAULT_VAULT": str(path)}
        return CliRunner().invoke(app, list(args), env=env, catch_exceptions=False)

    return invoke


def test_scan_of_a_vault_reference_pulls_verifies_and_scans(vrun, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    clean_dir = corpus.write(tmp_path / "clean", corpus.clean())
    assert vrun("push", str(clean_dir), "team/m", "--quiet").exit_code == 0
    broken = tmp_path / "broken.pkl"
    broken.write_bytes(
        corpus.malicious()["popen.pkl"][:12]
    )  # cut inside its first global: unscannable, not dangerous
    assert vrun("push", str(broken), "team/m", "--quiet").exit_code == 0  # only dangerous blocks a push

    first = vrun("scan", "team/m@v1", "--json")
    assert first.exit_code == 0, first.output
    assert {f["path"] for f in json.loads(first.stdout)["files"]} == set(corpus.clean())

    second = vrun("scan", "team/m@v2", "--json")
    assert second.exit_code == 0, second.output
    files = json.loads(second.stdout)["files"]
    assert [(f["path"], f["format"], f["verdict"]) for f in files] == [
        ("broken.pkl", "pickle", "unscannable")
    ]

    missing = vrun("scan", "team/m@v9")
    assert missing.exit_code == 3 and missing.stderr.startswith("error: ")
    assert not list(Path(tempfile.gettempdir()).glob("mlvault-scan-*"))
