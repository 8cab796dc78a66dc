"""Prometheus textfile metrics of backup runs, for node_exporter's textfile collector.

:func:`write_metrics` turns :class:`RunRecord` values (the run history the catalog keeps, or just
the runs of this invocation) into five gauges, each labelled ``schedule``:

======================================================  =============================================
``mlvault_backup_last_success_timestamp_seconds``       end of the newest successful run (0: never)
``mlvault_backup_last_run_timestamp_seconds``           end of the newest run
``mlvault_backup_last_run_duration_seconds``            its duration
``mlvault_backup_last_run_bytes_copied``                bytes it copied to the target
``mlvault_backup_last_run_success``                     1 when it succeeded, else 0
======================================================  =============================================

"Newest" means the latest ``finished_at``. A schedule that never succeeded reports a last-success
time of 0, so ``time() - mlvault_backup_last_success_timestamp_seconds > 86400`` alerts on it too
(an absent series would not). Every write builds a fresh ``CollectorRegistry`` (no process-wide
state) and goes through prometheus-client's ``write_to_textfile``, which writes a temporary file
next to the target and renames it over, so the collector never reads half a file. Callers pass
every schedule they want in the file: the file is replaced, not merged.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from prometheus_client import CollectorRegistry, Gauge, write_to_textfile

from vault.errors import UsageError

LAST_SUCCESS = "mlvault_backup_last_success_timestamp_seconds"
LAST_RUN = "mlvault_backup_last_run_timestamp_seconds"
LAST_DURATION = "mlvault_backup_last_run_duration_seconds"
LAST_BYTES = "mlvault_backup_last_run_bytes_copied"
LAST_OK = "mlvault_backup_last_run_success"


@dataclass(frozen=True)
class RunRecord:
    """One finished run of one schedule."""

    schedule: str
    started_at: datetime
    finished_at: datetime
    success: bool
    bytes_copied: int = 0

    def __post_init__(self) -> None:
        for value in (self.started_at, self.finished_at):
            if value.tzinfo is None or value.utcoffset() is None:
                raise ValueError(f"run times must be timezone-aware, got {value!r}")
        if self.finished_at < self.started_at:
            raise ValueError(f"run of {self.schedule} finished before it started")
        if self.bytes_copied < 0:
            raise ValueError(f"run of {self.schedule} copied a negative number of bytes")

    @property
    def duration_seconds(self) -> float:
        """Wall time of the run."""
        return (self.finished_at - self.started_at).total_seconds()


def build_registry(records: Iterable[RunRecord]) -> CollectorRegistry:
    """A fresh registry holding the five gauges for every schedule in ``records``."""
    registry = CollectorRegistry(auto_describe=True)
    labels = ["schedule"]
    last_success = Gauge(
        LAST_SUCCESS,
        "End of the newest successful backup run (Unix time; 0: never)",
        labels,
        registry=registry,
    )
    last_run = Gauge(LAST_RUN, "End of the newest backup run (Unix time)", labels, registry=registry)
    duration = Gauge(LAST_DURATION, "Duration of the newest backup run", labels, registry=registry)
    copied = Gauge(
        LAST_BYTES, "Bytes copied to the target by the newest backup run", labels, registry=registry
    )
    success = Gauge(LAST_OK, "1 when the newest backup run succeeded, else 0", labels, registry=registry)

    newest: dict[str, RunRecord] = {}
    newest_ok: dict[str, RunRecord] = {}
    for record in records:
        if record.schedule not in newest or record.finished_at >= newest[record.schedule].finished_at:
            newest[record.schedule] = record
        ok = newest_ok.get(record.schedule)
        if record.success and (ok is None or record.finished_at >= ok.finished_at):
            newest_ok[record.schedule] = record

    for name in sorted(newest):
        record = newest[name]
        ok = newest_ok.get(name)
        last_success.labels(schedule=name).set(ok.finished_at.timestamp() if ok else 0)
        last_run.labels(schedule=name).set(record.finished_at.timestamp())
        duration.labels(schedule=name).set(record.duration_seconds)
        copied.labels(schedule=name).set(record.bytes_copied)
        success.labels(schedule=name).set(1 if record.success else 0)
    return registry


def write_metrics(path: Path, records: Iterable[RunRecord]) -> None:
    """Atomically replace the textfile at ``path`` with the metrics of ``records``."""
    if not path.parent.is_dir():
        raise UsageError(f"--metrics-file: directory {path.parent} does not exist")
    try:
        write_to_textfile(str(path), build_registry(records))
    except OSError as exc:
        raise UsageError(f"--metrics-file: cannot write {path}: {exc.strerror or exc}") from exc
