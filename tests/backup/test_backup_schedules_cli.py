"""``mlvault backup schedule …``, ``backup status`` and ``backup cron-line`` through Typer's CliRunner,
on a vault made by ``mlvault init``. No command here needs a key: they run without a passphrase."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

import vault
from mlvault_cli.main import app
from vault.backup.definition import Target, parse_definition

FAST_KDF = ["--kdf-time", "1", "--kdf-memory-mib", "1", "--kdf-parallelism", "1"]
Run = Callable[..., Result]


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in list(os.environ):
        if name.startswith("MLVAULT_") and name != "MLVAULT_CONFIG_DIR":  # the test's own config dir
            monkeypatch.delenv(name)
    work = tmp_path / "cwd"
    work.mkdir()
    monkeypatch.chdir(work)


@pytest.fixture
def vault_dir(tmp_path: Path) -> Path:
    path = tmp_path / "vault"
    result = CliRunner().invoke(app, ["init", str(path), *FAST_KDF], env={"MLVAULT_PASSPHRASE": "pw"})
    assert result.exit_code == 0, result.output
    return path


@pytest.fixture
def run(vault_dir: Path) -> Run:
    """The CLI with MLVAULT_VAULT set and no passphrase anywhere."""

    def invoke(*args: str) -> Result:
        return CliRunner().invoke(
            app, list(args), env={"MLVAULT_VAULT": str(vault_dir)}, catch_exceptions=False
        )

    return invoke


def one_error(result: Result, code: int, fragment: str) -> None:
    assert result.exit_code == code, (result.exit_code, result.stdout, result.stderr)
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and fragment in lines[0], result.stderr


def test_add_ls_show_disable_enable_rm(run: Run) -> None:
    added = run(
        "backup", "schedule", "add", "nightly", "--cron", "30 2 * * *", "--tz", "Europe/Berlin",
        "--to", "s3://backups/mlv", "--target-region", "eu-central-1", "--include", "team/*",
        "--keep-last", "7", "--keep-daily", "14", "--keep-weekly", "8", "--keep-monthly", "12",
        "--keep-within", "30d", "--object-lock", "governance", "--retain-days", "90",
        "--catch-up", "skip", "--max-runtime", "6h",
    )  # fmt: skip
    assert added.exit_code == 0, added.stderr
    assert "added backup schedule nightly: '30 2 * * *' in Europe/Berlin to s3://backups/mlv" in added.stdout
    assert "(02:30 Europe/Berlin)" in added.stdout
    local = run(
        "backup", "schedule", "add", "hourly", "--cron", "@hourly", "--to", "relative/dir", "--keep-last", "3"
    )
    assert local.exit_code == 0, local.stderr
    assert f"to {Path.cwd() / 'relative' / 'dir'}" in local.stdout  # a relative path is made absolute

    listed = json.loads(run("backup", "schedule", "ls", "--json").stdout)
    assert [s["name"] for s in listed] == ["hourly", "nightly"]
    nightly = listed[1]
    assert nightly["tz"] == "Europe/Berlin" and nightly["include"] == ["team/*"]
    assert nightly["target"] == {
        "url": "s3://backups/mlv",
        "endpoint_url": None,
        "profile": None,
        "region": "eu-central-1",
    }
    assert nightly["retention"]["keep_within_seconds"] == 30 * 86400
    assert nightly["object_lock"] == {"mode": "governance", "retain_days": 90}
    assert (nightly["catch_up"], nightly["max_runtime_seconds"], nightly["enabled"]) == ("skip", 21600, True)
    table = run("backup", "schedule", "ls")
    assert table.exit_code == 0 and "nightly" in table.stdout and "s3://backups/mlv" in table.stdout

    shown = run("backup", "schedule", "show", "nightly")
    assert shown.exit_code == 0
    for fragment in (
        "governance, 90 days",
        "include      team/*",
        "region eu-central-1",
        "max runtime  6h",
        "status       ok",
    ):
        assert fragment in shown.stdout
    assert json.loads(run("backup", "schedule", "show", "nightly", "--json").stdout)["runs"] == []

    assert run("backup", "schedule", "disable", "nightly").stdout == "disabled backup schedule nightly\n"
    assert json.loads(run("backup", "schedule", "ls", "--json").stdout)[1]["enabled"] is False
    assert (
        "enabled backup schedule nightly; next run" in run("backup", "schedule", "enable", "nightly").stdout
    )

    removed = run("backup", "schedule", "rm", "nightly")
    assert removed.exit_code == 0
    assert "its backups at s3://backups/mlv were not deleted" in removed.stdout
    one_error(run("backup", "schedule", "rm", "nightly"), 3, "no backup schedule named 'nightly'")
    assert [s["name"] for s in json.loads(run("backup", "schedule", "ls", "--json").stdout)] == ["hourly"]


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["--cron", "61 2 * * *", "--keep-last", "1"], "bad minute field"),
        (
            ["--cron", "30 2 * * *", "--tz", "Mars/Olympus", "--keep-last", "1"],
            "unknown time zone 'Mars/Olympus'",
        ),
        (["--cron", "30 2 * * *"], "empty retention policy"),
        (["--cron", "30 2 * * *", "--keep-last", "1", "--keep-within", "30 days"], "invalid --keep-within"),
        (["--cron", "30 2 * * *", "--keep-last", "1", "--max-runtime", "6H"], "invalid --max-runtime"),
        (["--cron", "30 2 * * *", "--keep-last", "1", "--include", "a//b"], "empty segment"),
        (
            ["--cron", "30 2 * * *", "--keep-last", "1", "--object-lock", "governance", "--retain-days", "1"],
            "needs an s3://",
        ),
        (
            ["--cron", "30 2 * * *", "--keep-last", "1", "--target-profile", "p"],
            "apply to s3:// targets only",
        ),
    ],
)
def test_add_refuses_with_exit_2(run: Run, args: list[str], fragment: str) -> None:
    one_error(run("backup", "schedule", "add", "x", "--to", "/srv/b", *args), 2, fragment)
    assert json.loads(run("backup", "schedule", "ls", "--json").stdout) == []


def test_a_lock_not_longer_than_the_cadence_is_refused(run: Run) -> None:
    result = run(
        "backup", "schedule", "add", "weekly", "--cron", "0 3 * * 0", "--to", "s3://backups/mlv",
        "--keep-last", "4", "--object-lock", "compliance", "--retain-days", "7",
    )  # fmt: skip
    one_error(result, 2, "--retain-days 7 is too short")


def test_a_duplicate_name_is_a_conflict(run: Run) -> None:
    args = ("backup", "schedule", "add", "n", "--cron", "@daily", "--to", "/srv/b", "--keep-last", "1")
    assert run(*args).exit_code == 0
    one_error(run(*args), 9, "already exists")


def test_status_exits_17_when_overdue_or_failed(run: Run, vault_dir: Path) -> None:
    assert run("backup", "status").exit_code == 0  # no schedules: nothing needs attention
    # Saved three days ago (through the library, with its clock moved back), and never run since.
    past = datetime.now(UTC) - timedelta(days=3)
    definition = parse_definition(
        name="nightly", cron="30 2 * * *", tz="UTC", target=Target("/srv/b"), keep={"last": 7}
    )
    with vault.open_vault(str(vault_dir)) as v:
        v.backup_schedules(clock=lambda: past).add(definition)
    status = run("backup", "status")
    one_error(status, 17, "nightly: overdue since")
    assert "OVERDUE since" in status.stdout
    as_json = run("backup", "status", "--json")
    assert as_json.exit_code == 17
    report = json.loads(as_json.stdout)
    assert report["ok"] is False and report["schedules"][0]["overdue"] is True

    with vault.open_vault(str(vault_dir)) as v:  # a backup ran and succeeded a minute ago
        now = datetime.now(UTC)
        run_id = v.catalog.start_backup_run("nightly", None, now - timedelta(minutes=2))
        v.catalog.finish_backup_run(run_id, now - timedelta(minutes=1), success=True, bytes_copied=10)
    ok = run("backup", "status", "--json")
    assert ok.exit_code == 0, ok.stderr
    assert json.loads(ok.stdout)["schedules"][0]["last_run"]["outcome"] == "success"

    with vault.open_vault(str(vault_dir)) as v:  # then one failed
        now = datetime.now(UTC)
        run_id = v.catalog.start_backup_run("nightly", None, now)
        v.catalog.finish_backup_run(run_id, now, success=False, error="target unreachable")
    failed = run("backup", "status")
    one_error(failed, 17, "nightly: its last run failed")
    assert "FAILED" in failed.stdout
    assert run("backup", "schedule", "disable", "nightly").exit_code == 0
    assert run("backup", "status").exit_code == 0  # a disabled schedule is shown, never counted


def test_cron_line(run: Run, vault_dir: Path) -> None:
    result = run("backup", "cron-line", "--metrics-file", "/var/lib/node_exporter/mlvault.prom")
    assert result.exit_code == 0, result.stderr
    lines = result.stdout.splitlines()
    (cron,) = [line for line in lines if line.startswith("*/5 * * * * ")]
    assert cron.endswith(
        f"--vault {vault_dir} backup run --due --metrics-file /var/lib/node_exporter/mlvault.prom"
    )
    assert Path(cron.split()[5]).is_absolute() and cron.split()[5].endswith("mlvault")
    (exec_start,) = [line for line in lines if line.startswith("ExecStart=")]
    assert exec_start.endswith(
        f"--vault {vault_dir} backup run --due --metrics-file /var/lib/node_exporter/mlvault.prom"
    )
    for fragment in (
        "Type=oneshot",
        "[Timer]",
        "OnCalendar=*:0/5",
        "Persistent=true",
        "WantedBy=timers.target",
    ):
        assert fragment in lines
    assert "pw" not in result.stdout  # never a secret


def test_cron_line_runs_as_the_job_identity(run: Run, vault_dir: Path, cheap_kdf: object) -> None:
    from vault.clientstate import ClientState

    identities = ClientState.default().identities()
    identities.create("backup-job", None, cheap_kdf)  # type: ignore[arg-type]
    identities.create("alice", b"secret", cheap_kdf)  # type: ignore[arg-type]
    result = run("backup", "cron-line", "--identity", "backup-job")
    assert result.exit_code == 0, result.stderr
    (cron,) = [line for line in result.stdout.splitlines() if line.startswith("*/5 * * * * ")]
    path = identities.find("backup-job").absolute()
    assert cron.endswith(f"--vault {vault_dir} --identity {path} backup run --due")
    refused = run("backup", "cron-line", "--identity", "alice")
    assert refused.exit_code == 2 and "cannot type a passphrase" in refused.stderr


def test_cron_line_needs_a_vault() -> None:
    result = CliRunner().invoke(app, ["backup", "cron-line"], env={})
    assert result.exit_code == 2
