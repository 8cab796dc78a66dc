"""vault.backup.metrics: the textfile is written, replaced whole, and parses back to the values."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from vault.backup.metrics import (
    LAST_BYTES,
    LAST_DURATION,
    LAST_OK,
    LAST_RUN,
    LAST_SUCCESS,
    RunRecord,
    write_metrics,
)
from vault.errors import UsageError

T0 = datetime(2026, 6, 1, 0, 30, tzinfo=UTC)


def run(schedule: str, start: datetime, minutes: float, ok: bool, copied: int = 0) -> RunRecord:
    return RunRecord(schedule, start, start + timedelta(minutes=minutes), ok, copied)


def read_back(path: Path) -> dict[tuple[str, str], float]:
    values = {}
    for family in text_string_to_metric_families(path.read_text()):
        for sample in family.samples:
            values[(sample.name, sample.labels["schedule"])] = sample.value
    return values


def test_write_and_parse_back(tmp_path: Path) -> None:
    path = tmp_path / "mlvault.prom"
    records = [
        run("nightly", T0 - timedelta(days=1), 10, True, 5_000),
        run("nightly", T0, 12.5, False, 1_234),  # newest: failed
        run("hourly", T0 + timedelta(hours=1), 1, True, 42),
        run("hourly", T0, 2, True, 7),
        run('odd "name"\\', T0, 1, False),  # never succeeded
    ]
    write_metrics(path, records)
    values = read_back(path)
    assert values == {
        (LAST_SUCCESS, "nightly"): (T0 - timedelta(days=1) + timedelta(minutes=10)).timestamp(),
        (LAST_RUN, "nightly"): (T0 + timedelta(minutes=12.5)).timestamp(),
        (LAST_DURATION, "nightly"): 750.0,
        (LAST_BYTES, "nightly"): 1234.0,
        (LAST_OK, "nightly"): 0.0,
        (LAST_SUCCESS, "hourly"): (T0 + timedelta(hours=1, minutes=1)).timestamp(),
        (LAST_RUN, "hourly"): (T0 + timedelta(hours=1, minutes=1)).timestamp(),
        (LAST_DURATION, "hourly"): 60.0,
        (LAST_BYTES, "hourly"): 42.0,
        (LAST_OK, "hourly"): 1.0,
        (LAST_SUCCESS, 'odd "name"\\'): 0.0,
        (LAST_RUN, 'odd "name"\\'): (T0 + timedelta(minutes=1)).timestamp(),
        (LAST_DURATION, 'odd "name"\\'): 60.0,
        (LAST_BYTES, 'odd "name"\\'): 0.0,
        (LAST_OK, 'odd "name"\\'): 0.0,
    }
    families = {f.name: f.type for f in text_string_to_metric_families(path.read_text())}
    assert set(families.values()) == {"gauge"}


def test_the_file_is_replaced_whole_and_no_temporary_file_remains(tmp_path: Path) -> None:
    path = tmp_path / "mlvault.prom"
    write_metrics(path, [run("a", T0, 1, True), run("b", T0, 1, True)])
    write_metrics(path, [run("b", T0 + timedelta(days=1), 2, True, 9)])
    assert {schedule for _, schedule in read_back(path)} == {"b"}
    assert read_back(path)[(LAST_BYTES, "b")] == 9.0
    assert [p.name for p in tmp_path.iterdir()] == ["mlvault.prom"]


def test_no_records_writes_an_empty_but_valid_file(tmp_path: Path) -> None:
    path = tmp_path / "mlvault.prom"
    write_metrics(path, [])
    assert read_back(path) == {}


def test_a_missing_or_unwritable_directory_is_a_usage_error(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="does not exist"):
        write_metrics(tmp_path / "nope" / "mlvault.prom", [])
    (tmp_path / "dir.prom").mkdir()
    with pytest.raises(UsageError, match="cannot write"):
        write_metrics(tmp_path / "dir.prom", [run("a", T0, 1, True)])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dir.prom"]


def test_run_record_validation() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        RunRecord("a", datetime(2026, 1, 1), datetime(2026, 1, 1), True)
    with pytest.raises(ValueError, match="finished before"):
        run("a", T0, -1, True)
    with pytest.raises(ValueError, match="negative"):
        run("a", T0, 1, True, -1)
