"""Benchmark: ``mlvault audit verify`` over a long audit log, and append throughput.

    python benchmarks/bench_audit.py [--rows 100000] [--every 1000] [--catalog URL] [--writers 8]

Makes a local vault (SQLite catalog inside it, or ``--catalog`` e.g. a PostgreSQL URL), fills its
audit log with ``--rows`` rows (batches of 1,000 per transaction, through the real appender), pins
a checkpoint every ``--every`` rows in storage, then times ``mlvault audit verify`` as a user runs
it (a subprocess, imports included) and the verify call alone. With ``--writers`` N it also times N
processes appending one row per transaction at once (the serialized append path). Removes
everything at the end unless ``--keep``.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
PASSPHRASE = "bench audit"


def _fill(vault_path: str, catalog: str | None, rows: int, every: int) -> None:
    sys.path.insert(0, str(REPO_ROOT))
    import vault
    from vault.audit import chain
    from vault.audit.service import AuditService
    from vault.catalog.audit import PendingRow

    v = vault.open_vault(vault_path, passphrase=PASSPHRASE, catalog_url=catalog)
    start = datetime(2026, 1, 1, tzinfo=UTC)

    def link(prev: chain.StoredRow | None, row: chain.AuditRow) -> chain.StoredRow:
        return chain.append(prev, row, v.vault_id)

    done = 0
    while done < rows:
        n = min(1000, rows - done)
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


def _writer(vault_path: str, catalog: str | None, count: int) -> None:
    sys.path.insert(0, str(REPO_ROOT))
    import vault

    v = vault.open_vault(vault_path, passphrase=PASSPHRASE, catalog_url=catalog)
    for i in range(count):
        v.audit.record("pull", f"team/w@v{i + 1}", details={"bytes": i})
    v.close()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--every", type=int, default=1000)
    parser.add_argument("--catalog", default=None)
    parser.add_argument("--writers", type=int, default=8)
    parser.add_argument("--per-writer", type=int, default=200)
    parser.add_argument("--keep", action="store_true")
    args = parser.parse_args()

    sys.path.insert(0, str(REPO_ROOT))
    import vault
    from vault.crypto.kdf import KdfParams

    work = Path(tempfile.mkdtemp(prefix="bench-audit-"))
    path = str(work / "vault")
    try:
        vault.init_vault(
            path, passphrase=PASSPHRASE, kdf=KdfParams(1, 8, 1), catalog_url=args.catalog
        ).close()
        t0 = time.perf_counter()
        _fill(path, args.catalog, args.rows, args.every)
        fill = time.perf_counter() - t0
        print(f"filled {args.rows:,} rows and {args.rows // args.every} checkpoints in {fill:.1f} s")

        v = vault.open_vault(path, passphrase=PASSPHRASE, catalog_url=args.catalog)
        t0 = time.perf_counter()
        report, _ = v.audit.check()
        call = time.perf_counter() - t0
        v.close()
        assert report.ok, report.reason
        print(f"verify call: {call:.2f} s ({report.rows:,} rows, {report.checkpoints} checkpoints)")

        env = {**os.environ, "MLVAULT_VAULT": path, "MLVAULT_PASSPHRASE": PASSPHRASE}
        if args.catalog:
            env["MLVAULT_CATALOG"] = args.catalog
        runner = (
            "import sys; from mlvault_cli.main import main; sys.argv = ['mlvault', 'audit', 'verify']; main()"
        )
        command = [sys.executable, "-c", runner]
        t0 = time.perf_counter()
        done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
        wall = time.perf_counter() - t0
        print(f"mlvault audit verify: {wall:.2f} s wall, exit {done.returncode}: {done.stdout.strip()}")

        if args.writers:
            ctx = multiprocessing.get_context("spawn")
            procs = [
                ctx.Process(target=_writer, args=(path, args.catalog, args.per_writer))
                for _ in range(args.writers)
            ]
            t0 = time.perf_counter()
            for p in procs:
                p.start()
            for p in procs:
                p.join()
            took = time.perf_counter() - t0
            total = args.writers * args.per_writer
            print(
                f"{args.writers} writers x {args.per_writer} rows: {total / took:,.0f} rows/s "
                f"({took:.1f} s incl. process start)"
            )
            v = vault.open_vault(path, passphrase=PASSPHRASE, catalog_url=args.catalog)
            report, _ = v.audit.check()
            v.close()
            print(f"after the writers: {report.reason}")
    finally:
        if args.keep:
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
