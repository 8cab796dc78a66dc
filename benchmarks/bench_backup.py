"""Benchmark: ``backup run`` to a local and an S3 (moto) target, incremental runs, restore.

One command builds a vault of ``--size-mib`` (default 2048) of random data across ``--versions``
(default 20) versions of one artifact, each version adding one new file, then:

1. a first backup to a local target and to an S3 target (a moto server in this process, plain HTTP
   on 127.0.0.1), timed, with the bytes each copied;
2. one more version of ``--new-mib`` (default 100) random bytes is pushed, and a second backup
   runs to both targets: the bytes it copies are compared with the size of the vault objects the
   push added plus the new snapshot (target: within 5 %), and its time with ``cp -r`` of those
   same new object files into an empty directory;
3. a restore from each target into a new local vault (every manifest authenticated), timed.

Everything runs in this process through the library (``BackupRunner``, ``restore_vault``), the
same code the CLI calls; the figures exclude the CLI's start-up. moto keeps objects in this process,
so S3 figures say more about this machine than about S3.

    .venv/bin/python benchmarks/bench_backup.py --size-mib 256
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

MiB = 1 << 20
BUCKET = "mlvault-bench-backup"
FAKE_ENV = {
    "AWS_ACCESS_KEY_ID": "AKIAMLVAULTBENCH",
    "AWS_SECRET_ACCESS_KEY": "mlvault-bench-secret",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_EC2_METADATA_DISABLED": "true",
}


def random_file(path: Path, size: int) -> None:
    with path.open("wb") as handle:
        left = size
        while left:
            block = min(left, 8 * MiB)
            handle.write(os.urandom(block))
            left -= block


def human(n: float) -> str:
    return f"{n / MiB:,.1f} MiB"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--size-mib", type=int, default=2048, help="vault size before the new version")
    parser.add_argument("--versions", type=int, default=20)
    parser.add_argument("--new-mib", type=int, default=100, help="size of the version pushed between runs")
    parser.add_argument("--workdir", type=Path, default=None, help="where to build (default: a temp dir)")
    args = parser.parse_args()
    os.environ.update(FAKE_ENV)
    root = Path(tempfile.mkdtemp(prefix="bench-backup-", dir=args.workdir))
    os.environ["MLVAULT_CONFIG_DIR"] = str(root / "client")
    try:
        run(root, args.size_mib, args.versions, args.new_mib)
    finally:
        shutil.rmtree(root, ignore_errors=True)


def run(root: Path, size_mib: int, versions: int, new_mib: int) -> None:
    import logging

    from moto.server import ThreadedMotoServer

    import vault
    from vault.backup.definition import Target, parse_definition
    from vault.backup.restore import restore_vault
    from vault.clientstate.identities import Identities
    from vault.crypto.kdf import KdfParams
    from vault.storage import StorageOptions, open_backend

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    import boto3

    boto3.session.Session().client("s3", endpoint_url=endpoint).create_bucket(Bucket=BUCKET)

    vault_dir = root / "vault"
    v = vault.init_vault(str(vault_dir), passphrase="bench", kdf=KdfParams(1, 8 * 1024, 1))
    ids = Identities(root / "identities")
    ids.create("recovery", None, KdfParams(1, 8 * 1024, 1))
    v.add_recovery(ids.public("recovery"))
    per_version = size_mib * MiB // versions
    data = root / "data"
    data.mkdir()
    started = time.perf_counter()
    for n in range(versions):
        random_file(data / f"part-{n:02d}.bin", per_version)
        v.push(data, "bench/model")
    print(
        f"built a vault of {human(per_version * versions)} in {versions} versions "
        f"({time.perf_counter() - started:.1f} s)",
        file=sys.stderr,
    )

    targets = {
        "local": Target(str(root / "target-local")),
        "s3": Target(f"s3://{BUCKET}/backup", endpoint_url=endpoint),
    }
    t0 = datetime.now(UTC)
    for name, target in targets.items():
        definition = parse_definition(name=name, cron="0 * * * *", tz="UTC", target=target, keep={"last": 5})
        v.backup_schedules(clock=lambda: t0).add(definition)
    runner = v.backup_runner(clock=lambda: datetime.now(UTC))
    rows: list[tuple[str, str, str, str]] = []

    def backup(name: str) -> tuple[float, int, str]:
        started = time.perf_counter()
        (result,) = runner.run_named(name).runs
        took = time.perf_counter() - started
        assert result.outcome == "success" and result.snapshot_id, result.message
        return took, result.bytes_copied, result.snapshot_id

    for name in targets:
        took, copied, _ = backup(name)
        rows.append(
            (f"first backup → {name}", f"{took:.2f} s", human(copied), f"{copied / MiB / took:,.0f} MiB/s")
        )

    before = {key: v.backend.size(key) for key in v.backend.list()}
    random_file(data / "part-new.bin", new_mib * MiB)
    v.push(data, "bench/model")
    added = {key: v.backend.size(key) for key in v.backend.list() if key not in before}
    new_bytes = sum(added.values())

    for name, target in targets.items():
        took, copied, sid = backup(name)
        store = open_backend(target.url, StorageOptions(endpoint_url=target.endpoint_url))
        snap = sum(store.size(k) for k in (f"snapshots/{sid}", f"snapshots/{sid}.objects"))
        store.close()
        expected = new_bytes + snap
        ok = "ok" if copied <= expected * 1.05 else "OVER"
        rows.append(
            (
                f"second backup → {name}",
                f"{took:.2f} s",
                human(copied),
                f"{copied / expected:.3f}× new objects + snapshot ({human(expected)}) {ok}",
            )
        )

    cp_dest = root / "cp-dest"
    cp_dest.mkdir()
    started = time.perf_counter()
    subprocess.run(["cp", "-r", *[str(vault_dir / k) for k in sorted(added)], str(cp_dest)], check=True)
    took = time.perf_counter() - started
    rows.append(("cp -r of the same new objects", f"{took:.2f} s", human(new_bytes), f"{len(added)} files"))

    identity = ids.load("recovery", lambda: b"")
    for name, target in targets.items():
        source = open_backend(target.url, StorageOptions(endpoint_url=target.endpoint_url))
        started = time.perf_counter()
        report = restore_vault(source, identity, to_url=str(root / f"restored-{name}"))
        took = time.perf_counter() - started
        source.close()
        rows.append(
            (
                f"restore ← {name}",
                f"{took:.2f} s",
                human(report.bytes_copied),
                f"{report.versions_checked} manifests",
            )
        )
    v.close()
    server.stop()

    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    print(f"vault {human(per_version * versions)} in {versions} versions; new version {new_mib} MiB")
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())


if __name__ == "__main__":
    main()
