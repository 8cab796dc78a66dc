"""Benchmark: ``mlvault audit verify`` over a long audit log, and append throughput.

    python benchmarks/bench_audit.py [--rows 100000] [--every 1000] [--catalog URL [--database NAME]]
                                     [--writers 8] [--per-writer 200] [--repeat 3]

Makes a local vault (SQLite catalog inside it, or ``--catalog`` e.g. a PostgreSQL URL), fills its
audit log with ``--rows`` rows (batches of 1,000 per transaction, through the real appender), pins
a checkpoint every ``--every`` rows in storage, then times the verify call alone and ``mlvault
audit verify`` as a user runs it (a subprocess, imports included), each ``--repeat`` times (the
median is printed with every run). With ``--writers`` N, N processes then append ``--per-writer``
rows each through the vault's audit service (``Vault.audit.record``, one row per transaction, the
serialized append path) at once: each opens the vault first and waits at a start signal, so the
rate counts appends only (from the signal to the last writer's last row); after each of the
``--repeat`` rounds the whole chain is verified again. With ``--database NAME`` (PostgreSQL only)
a database of that name is created on ``--catalog``'s server and dropped at the end, so nothing
else on the server is touched. Removes everything at the end unless ``--keep``.

    python benchmarks/bench_audit.py --rows 1000000 \
        --catalog postgresql+psycopg://postgres@127.0.0.1:5432/postgres --database mlvault_bench --fill bulk
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
PASSPHRASE = "bench audit"


def _fill(vault_path: str, catalog: str | None, rows: int, every: int, *, bulk: bool) -> None:
    """``rows`` rows through the real appender (1,000 per transaction), or with ``bulk`` linked by the
    real chain code but inserted 10,000 per transaction with executemany (the appender commits 1,000
    per transaction here, each after reading the head under the append lock).
    Either way ``audit verify`` then checks every row, so a bulk fill that differs fails the run."""
    sys.path.insert(0, str(REPO_ROOT))
    import vault
    from vault.audit import chain
    from vault.audit.service import AuditService
    from vault.catalog.audit import PendingRow, _audit_row, _columns
    from vault.catalog.schema import audit_log

    v = vault.open_vault(vault_path, passphrase=PASSPHRASE, catalog_url=catalog)
    start = datetime(2026, 1, 1, tzinfo=UTC)

    def link(prev: chain.StoredRow | None, row: chain.AuditRow) -> chain.StoredRow:
        return chain.append(prev, row, v.vault_id)

    done = 0
    previous = v.catalog.audit_head()
    while done < rows:
        n = min(10_000 if bulk else 1000, rows - done)
        batch = [
            PendingRow(
                start + timedelta(seconds=done + i),
                f"user{(done + i) % 7}@host",
                "pull",
                f"team/m{(done + i) % 50}@v{(done + i) % 9 + 1}",
                "ok",
                {"bytes": 1000 + i, "files": 3},
            )
            for i in range(n)
        ]
        if bulk:
            values = []
            for pending in batch:
                previous = link(
                    previous, _audit_row(1 if previous is None else previous.row.seq + 1, pending)
                )
                values.append(_columns(previous))
            with v.catalog._engine.begin() as conn:
                conn.execute(audit_log.insert(), values)
        else:
            v.catalog.append_audit(link, batch)
        done += n
    audit = AuditService(
        v.catalog,
        v.backend,
        v.vault_id,
        principal="bench",
        identity=lambda: None,
        clock=v.keys.clock,
        every=every,
    )
    audit.checkpoint()
    v.close()


def _writer(vault_path: str, catalog: str | None, count: int, ready: Any, go: Any, done: Any) -> None:
    sys.path.insert(0, str(REPO_ROOT))
    import vault

    v = vault.open_vault(vault_path, passphrase=PASSPHRASE, catalog_url=catalog)
    v.audit.record("pull", "team/w@v0", details={"warm": True})  # connect, import: not timed
    ready.release()
    go.wait()
    for i in range(count):
        v.audit.record("pull", f"team/w@v{i + 1}", details={"bytes": i})
    done.put(time.monotonic())
    v.close()


def _writers(path: str, catalog: str | None, writers: int, per_writer: int) -> float:
    """Seconds from the start signal to the last of ``writers`` × ``per_writer`` appends."""
    ctx = multiprocessing.get_context("spawn")
    ready, go, done = ctx.Semaphore(0), ctx.Event(), ctx.Queue()
    procs = [
        ctx.Process(target=_writer, args=(path, catalog, per_writer, ready, go, done)) for _ in range(writers)
    ]
    for p in procs:
        p.start()
    for _ in procs:
        ready.acquire()
    start = time.monotonic()
    go.set()
    ends = [done.get() for _ in procs]
    for p in procs:
        p.join()
        if p.exitcode:
            raise SystemExit(f"a writer failed (exit {p.exitcode})")
    return max(ends) - start


def _database(catalog: str, name: str, *, create: bool) -> str:
    """Create (or drop) database ``name`` on ``catalog``'s PostgreSQL server; returns its URL."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    url = make_url(catalog)
    if not url.drivername.startswith("postgresql"):
        raise SystemExit("--database needs a PostgreSQL --catalog")
    engine = create_engine(url.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
        if create:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    engine.dispose()
    return url.set(database=name).render_as_string(hide_password=False)


def _median(values: list[float]) -> str:
    each = " / ".join(f"{v:.2f}" for v in values)
    return f"{statistics.median(values):.2f} s" + (f" (runs: {each})" if len(values) > 1 else "")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=100_000, help="audit rows to fill")
    parser.add_argument("--every", type=int, default=1000, help="a checkpoint every N rows")
    parser.add_argument(
        "--fill", choices=("appender", "bulk"), default="appender", help="how to fill (see _fill)"
    )
    parser.add_argument("--catalog", default=None, help="catalog URL (default: SQLite inside the vault)")
    parser.add_argument("--database", default=None, help="PostgreSQL: create this database, drop it after")
    parser.add_argument("--writers", type=int, default=8)
    parser.add_argument("--per-writer", type=int, default=200)
    parser.add_argument("--repeat", type=int, default=3, help="timed runs of each figure (median)")
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--keep", action="store_true")
    args = parser.parse_args()

    sys.path.insert(0, str(REPO_ROOT))
    import vault
    from vault.crypto.kdf import KdfParams

    catalog = args.catalog
    if args.database:
        catalog = _database(args.catalog, args.database, create=True)
    work = Path(tempfile.mkdtemp(prefix="bench-audit-", dir=args.workdir))
    path = str(work / "vault")
    where = "SQLite" if catalog is None else catalog.split("://")[0]
    print(f"catalog: {where}; {os.cpu_count()} cores; median of {args.repeat} run(s)")
    try:
        vault.init_vault(path, passphrase=PASSPHRASE, kdf=KdfParams(1, 8, 1), catalog_url=catalog).close()
        t0 = time.perf_counter()
        _fill(path, catalog, args.rows, args.every, bulk=args.fill == "bulk")
        fill = time.perf_counter() - t0
        print(
            f"filled {args.rows:,} rows ({args.fill}, {args.rows / fill:,.0f} rows/s) and "
            f"{args.rows // args.every:,} checkpoints in {fill:.1f} s"
        )

        calls, cpu = [], []
        for _ in range(args.repeat):
            v = vault.open_vault(path, passphrase=PASSPHRASE, catalog_url=catalog)
            t0, c0 = time.perf_counter(), time.process_time()
            report, _ = v.audit.check()
            calls.append(time.perf_counter() - t0)
            cpu.append(time.process_time() - c0)
            v.close()
            assert report.ok, report.reason
        print(f"verify call ({report.rows:,} rows, {report.checkpoints:,} checkpoints): {_median(calls)}")
        print(f"  CPU time of this process in it (the database's not counted): {_median(cpu)}")

        env = {**os.environ, "MLVAULT_VAULT": path, "MLVAULT_PASSPHRASE": PASSPHRASE}
        if catalog:
            env["MLVAULT_CATALOG"] = catalog
        runner = (
            "import sys; from mlvault_cli.main import main; sys.argv = ['mlvault', 'audit', 'verify']; main()"
        )
        walls = []
        for _ in range(args.repeat):
            t0 = time.perf_counter()
            done = subprocess.run(
                [sys.executable, "-c", runner], env=env, capture_output=True, text=True, check=False
            )
            walls.append(time.perf_counter() - t0)
            if done.returncode:
                raise SystemExit(f"mlvault audit verify: exit {done.returncode}: {done.stderr.strip()}")
        print(f"mlvault audit verify (subprocess, wall): {_median(walls)}: {done.stdout.strip()}")

        if args.writers:
            total = args.writers * args.per_writer
            rates = []
            for _ in range(args.repeat):
                took = _writers(path, catalog, args.writers, args.per_writer)
                rates.append(total / took)
                v = vault.open_vault(path, passphrase=PASSPHRASE, catalog_url=catalog)
                report, _ = v.audit.check()
                v.close()
                if not report.ok:
                    raise SystemExit(f"the chain no longer verifies after the writers: {report.reason}")
            each = " / ".join(f"{r:,.0f}" for r in rates)
            print(
                f"{args.writers} writers x {args.per_writer} rows, one row per transaction: "
                f"{statistics.median(rates):,.0f} rows/s (runs: {each}); the chain still verifies "
                f"({report.rows:,} rows)"
            )
    finally:
        if args.keep:
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
            if args.database:
                _database(args.catalog, args.database, create=False)


if __name__ == "__main__":
    main()
