"""Benchmark: ``backup run`` to a local and an S3 (moto) target, incremental runs, restore.

One command builds a vault of ``--size-mib`` (default 2048) of random data across ``--versions``
(default 20) versions of one artifact, each version adding one new file, then:

1. a first backup to a local target and to an S3 target (a moto server in this process, plain HTTP
   on 127.0.0.1), timed, with the bytes each copied;
2. one more version of ``--new-mib`` (default 100) random bytes is pushed, and a second backup
   runs to both targets: the bytes it copies are compared with the size of the vault objects the
   push added plus the new snapshot (target: within 5 %), and its time with ``cp -r`` of those
   same new object files into an empty directory;
3. a restore from each target into a new local vault (every manifest authenticated), timed;
4. when ``restic`` is on PATH, the same plaintext files (the 20 version files, then the new one)
   go into a local restic repository (``--compression off``, no cache): ``restic backup`` of both
   rounds and ``restic restore`` of the whole last snapshot (the same data volume as the mlvault
   restore), each timed as a subprocess. restic derives its key with scrypt on every command
   and has no option to make that cheap; ``restic cat config`` is timed alone to show that cost.

``--repeat N`` does all of it N times, each in a fresh directory, and prints the median of every
figure (and each run's figure) — the machine this runs on is usually shared.

Everything runs in this process through the library (``BackupRunner``, ``restore_vault``), the
same code the CLI calls; the figures exclude the CLI's start-up. moto keeps objects in this process,
so S3 figures say more about this machine than about S3.

    .venv/bin/python benchmarks/bench_backup.py --workdir /work --repeat 3      # 2 GiB, 20 versions
    .venv/bin/python benchmarks/bench_backup.py --size-mib 256                  # a quick run
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
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


# One figure: what, seconds, bytes, a note (the note of the first run is the one printed).
Row = tuple[str, float, int, str]


def restic_rows(root: Path, data: Path, new_file: Path) -> list[Row]:
    """restic backup of ``data`` without ``new_file``, then with it; restore of the last snapshot."""
    env = {**os.environ, "RESTIC_PASSWORD": "bench", "RESTIC_PROGRESS_FPS": "0.1"}
    repo = root / "restic-repo"
    base = ["restic", "--repo", str(repo), "--no-cache", "--quiet"]

    def timed(command: list[str]) -> float:
        started = time.perf_counter()
        subprocess.run(command, env=env, check=True, stdout=subprocess.DEVNULL)
        return time.perf_counter() - started

    held = root / "held-back"
    held.mkdir()
    new_file.rename(held / new_file.name)
    timed(["restic", "--repo", str(repo), "--quiet", "init"])
    open_cost = timed([*base, "cat", "config"])
    first_bytes = sum(p.stat().st_size for p in data.iterdir())
    first = timed([*base, "backup", "--compression", "off", "--host", "bench", str(data)])
    (held / new_file.name).rename(new_file)
    second = timed([*base, "backup", "--compression", "off", "--host", "bench", str(data)])
    total = sum(p.stat().st_size for p in data.iterdir())
    restore = timed([*base, "restore", "latest", "--target", str(root / "restic-restored")])
    restored = sum(p.stat().st_size for p in (root / "restic-restored").rglob("*") if p.is_file())
    assert restored == total, (restored, total)
    return [
        ("restic cat config (open: scrypt KDF)", open_cost, 0, "paid by every restic command below"),
        ("restic backup, first", first, first_bytes, "--compression off, same files"),
        ("restic backup, second", second, new_file.stat().st_size, "the new file only changed"),
        ("restic restore", restore, restored, "whole last snapshot, plaintext"),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--size-mib", type=int, default=2048, help="vault size before the new version")
    parser.add_argument("--versions", type=int, default=20)
    parser.add_argument("--new-mib", type=int, default=100, help="size of the version pushed between runs")
    parser.add_argument("--workdir", type=Path, default=None, help="where to build (default: a temp dir)")
    parser.add_argument("--repeat", type=int, default=1, help="runs; the median of each figure is printed")
    parser.add_argument("--no-restic", action="store_true", help="skip the restic comparison")
    args = parser.parse_args()
    os.environ.update(FAKE_ENV)
    use_restic = not args.no_restic and shutil.which("restic") is not None
    if not use_restic and not args.no_restic:
        print("restic not found (apt-get install restic): no restic figures", file=sys.stderr)
    runs: list[list[Row]] = []
    for n in range(args.repeat):
        root = Path(tempfile.mkdtemp(prefix="bench-backup-", dir=args.workdir))
        os.environ["MLVAULT_CONFIG_DIR"] = str(root / "client")
        try:
            runs.append(run(root, args.size_mib, args.versions, args.new_mib, restic=use_restic))
        finally:
            shutil.rmtree(root, ignore_errors=True)
        print(
            f"run {n + 1}/{args.repeat}: " + "; ".join(f"{r[0]} {r[1]:.2f} s" for r in runs[-1]),
            file=sys.stderr,
        )
    report(runs, args.size_mib * MiB // args.versions * args.versions, args.versions, args.new_mib)


def report(runs: list[list[Row]], size: int, versions: int, new_mib: int) -> None:
    """The median of each figure over the runs, with every run's seconds."""
    lines = []
    for i, (label, _, copied, note) in enumerate(runs[0]):
        seconds = [r[i][1] for r in runs]
        each = " / ".join(f"{t:.2f}" for t in seconds)
        median = statistics.median(seconds)
        volume = f"{human(copied)}, {copied / MiB / median:,.0f} MiB/s" if copied else ""
        lines.append((label, f"{median:.2f} s", volume, note, each))
    widths = [max(len(line[i]) for line in lines) for i in range(5)]
    print(
        f"vault {human(size)} in {versions} versions; new version {new_mib} MiB; "
        f"median of {len(runs)} run(s) on {os.cpu_count()} cores; peak RSS of this process "
        f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:,.0f} MiB"
    )
    for line in lines:
        cells = [*line[:4], f"runs: {line[4]}" if len(runs) > 1 else ""]
        print(
            "  ".join(cell.ljust(width) for cell, width in zip(cells, [*widths[:4], 0], strict=True)).rstrip()
        )


def run(root: Path, size_mib: int, versions: int, new_mib: int, *, restic: bool) -> list[Row]:
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
    rows: list[Row] = []

    def backup(name: str) -> tuple[float, int, str]:
        started = time.perf_counter()
        (result,) = runner.run_named(name).runs
        took = time.perf_counter() - started
        assert result.outcome == "success" and result.snapshot_id, result.message
        return took, result.bytes_copied, result.snapshot_id

    for name in targets:
        took, copied, _ = backup(name)
        rows.append((f"first backup → {name}", took, copied, ""))

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
        note = f"{copied / expected:.3f}× new objects + snapshot ({human(expected)}) {ok}"
        rows.append((f"second backup → {name}", took, copied, note))

    cp_dest = root / "cp-dest"
    cp_dest.mkdir()
    started = time.perf_counter()
    subprocess.run(["cp", "-r", *[str(vault_dir / k) for k in sorted(added)], str(cp_dest)], check=True)
    took = time.perf_counter() - started
    rows.append(("cp -r of the same new objects", took, new_bytes, f"{len(added)} files, no fsync"))

    identity = ids.load("recovery", lambda: b"")
    for name, target in targets.items():
        source = open_backend(target.url, StorageOptions(endpoint_url=target.endpoint_url))
        started = time.perf_counter()
        report = restore_vault(source, identity, to_url=str(root / f"restored-{name}"))
        took = time.perf_counter() - started
        source.close()
        shutil.rmtree(root / f"restored-{name}")
        rows.append((f"restore ← {name}", took, report.bytes_copied, f"{report.versions_checked} manifests"))
    v.close()
    # moto's state outlives its server in this process: empty it for the next run.
    import urllib.request

    urllib.request.urlopen(urllib.request.Request(f"{endpoint}/moto-api/reset", method="POST")).close()
    server.stop()
    if restic:
        rows.extend(restic_rows(root, data, data / "part-new.bin"))
    return rows


if __name__ == "__main__":
    main()
