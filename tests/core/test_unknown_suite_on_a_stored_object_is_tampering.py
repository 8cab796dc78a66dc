"""An unknown cipher suite or format version on an object a vault stores is tampering (exit 5).

The vault config pins the format version (see :mod:`vault.formats`), so a manifest whose suite
byte was overwritten was altered, not written by a newer mlvault. Pull must refuse it as an
IntegrityError and ``check --read-data`` must report the version, rather than send the user to
upgrade with a configuration error ("cipher suite 103 is not supported", exit 8).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from corehelpers import CHEAP_KDF, PASSPHRASE
from typer.testing import CliRunner

import vault
from mlvault_cli.main import app
from vault import layout
from vault.errors import IntegrityError
from vault.formats import ALTERED

SEALED_VERSION_AT, SEALED_SUITE_AT = 4, 5
REF = "team/m"


def overwrite_byte(path: Path, offset: int, value: int) -> None:
    data = bytearray(path.read_bytes())
    data[offset] = value
    path.write_bytes(bytes(data))


@pytest.fixture
def pushed(local_vault: vault.Vault, tmp_path: Path) -> vault.Vault:
    src = tmp_path / "m.bin"
    src.write_bytes(os.urandom(50_000))
    local_vault.push(src, REF)
    return local_vault


@pytest.mark.parametrize(
    ("offset", "value", "field"),
    [(SEALED_SUITE_AT, 103, "cipher suite 103"), (SEALED_VERSION_AT, 2, "format version 2")],
    ids=["suite", "version"],
)
def test_an_overwritten_manifest_suite_or_version_fails_pull_and_check_as_tampering(
    pushed: vault.Vault, tmp_path: Path, offset: int, value: int, field: str
) -> None:
    version = pushed.resolve(REF)
    overwrite_byte(Path(pushed.backend.root) / layout.manifest_key(version.id), offset, value)  # type: ignore[attr-defined]

    with pytest.raises(IntegrityError) as info:
        pushed.pull(REF, tmp_path / "out")
    assert info.value.exit_code == 5
    message = str(info.value)
    assert f"{REF}@v1" in message and field in message and message.endswith(ALTERED)
    assert not (tmp_path / "out").exists()

    report = pushed.check(read_data=True)
    assert not report.ok
    assert f"{REF}@v1: (all files)" in report.damaged_files
    assert any(field in problem for problem in report.problems), report.problems


def test_the_cli_exits_5_with_one_line_for_an_overwritten_manifest_suite(tmp_path: Path) -> None:
    runner = CliRunner()
    root = tmp_path / "v"
    env = {"MLVAULT_PASSPHRASE": PASSPHRASE, "MLVAULT_VAULT": str(root)}
    kdf = [
        "--kdf-time",
        str(CHEAP_KDF.time_cost),
        "--kdf-memory-mib",
        "1",
        "--kdf-parallelism",
        str(CHEAP_KDF.parallelism),
    ]
    assert runner.invoke(app, ["init", str(root), *kdf], env=env).exit_code == 0
    (tmp_path / "m.bin").write_bytes(b"weights")
    assert runner.invoke(app, ["push", "-q", str(tmp_path / "m.bin"), REF], env=env).exit_code == 0
    (manifest,) = [p for p in (root / layout.MANIFESTS_PREFIX).rglob("*") if p.is_file()]
    overwrite_byte(manifest, SEALED_SUITE_AT, 103)

    result = runner.invoke(app, ["pull", REF, str(tmp_path / "out.bin")], env=env)
    assert result.exit_code == 5, result.output
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "cipher suite 103" in errors[0], result.stderr
    assert "unexpected" not in result.stderr and "not supported" not in result.stderr

    result = runner.invoke(app, ["check", "--read-data"], env=env)
    assert result.exit_code == 5, result.output
    assert "cipher suite 103" in result.output
