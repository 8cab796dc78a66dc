"""Benchmark: mlvault push/pull against plain boto3 transfers on the same S3 endpoint.

Starts a moto S3 server on 127.0.0.1 (in this process), creates a bucket, writes a random
file (``--size-mib``, default 1024) and times, each side in its own subprocess so that
peak RSS is that side's alone:

- ``boto3``: ``upload_file`` / ``download_file`` with ``TransferConfig(max_concurrency=8)``;
- ``mlvault``: ``vault.init("s3://bucket/vault", ...)``, ``push(path, "bench/file")``,
  ``pull("bench/file", dest)`` (chunking, compression attempt, encryption, packs,
  verification on the way back).

Both results are checked byte-for-byte (SHA-256) against the source. moto keeps objects
in this process (spilling large ones to temporary files), so absolute throughput says
more about the local machine than about S3; the ratio is the useful number. Peak RSS
is each child's ``VmHWM`` (see :func:`peak_rss_kib`).

    .venv/bin/python benchmarks/bench_s3.py --size-mib 256
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

FAKE_ENV = {
    "AWS_ACCESS_KEY_ID": "AKIAMLVAULTBENCH",
    "AWS_SECRET_ACCESS_KEY": "mlvault-bench-secret",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_EC2_METADATA_DISABLED": "true",
}
MiB = 1 << 20
BUCKET = "mlvault-bench"


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(8 * MiB):
            digest.update(block)
    return digest.hexdigest()


def make_random_file(path: Path, size_mib: int) -> None:
    with path.open("wb") as handle:
        for _ in range(size_mib):
            handle.write(os.urandom(MiB))


def peak_rss_kib() -> int:
    """This process's peak RSS since exec.

    ``ru_maxrss`` would be wrong here: Linux carries the high-water mark across fork+exec,
    so a child of this moto-hosting parent would report the parent's size. ``VmHWM``
    belongs to the process's own address space.
    """
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux, bytes on macOS


# -- the two sides (run in a child process) ------------------------------------------------


def run_boto3(endpoint_url: str, path: Path, workdir: Path, concurrency: int) -> tuple[float, float, Path]:
    import boto3
    from boto3.s3.transfer import TransferConfig
    from botocore.config import Config

    client = boto3.session.Session().client(
        "s3", endpoint_url=endpoint_url, config=Config(max_pool_connections=concurrency + 2)
    )
    transfer = TransferConfig(max_concurrency=concurrency, multipart_chunksize=16 * MiB)
    started = time.perf_counter()
    client.upload_file(str(path), BUCKET, "plain/file", Config=transfer)
    push_s = time.perf_counter() - started
    dest = workdir / "boto3-download.bin"
    started = time.perf_counter()
    client.download_file(BUCKET, "plain/file", str(dest), Config=transfer)
    pull_s = time.perf_counter() - started
    client.close()
    return push_s, pull_s, dest


def run_mlvault(url: str, path: Path, *, endpoint_url: str, workdir: Path) -> tuple[float, float, Path]:
    """Push and pull ``path`` through mlvault's Python API; return (push_s, pull_s, pulled file).

    Uses the vault core API as of this writing (``vault.init`` = ``init_vault``).
    TODO(vault API): keep in step with vault/service.py if init/push/pull signatures change.
    """
    import vault
    from vault.crypto.kdf import KdfParams

    options = vault.StorageOptions(endpoint_url=endpoint_url)
    v = vault.init(
        url,
        passphrase="bench-passphrase",
        kdf=KdfParams(time_cost=1, memory_kib=8 * 1024, parallelism=1),  # the KDF is not what we measure
        storage_options=options,
        catalog_url=f"sqlite:///{workdir / 'catalog.sqlite'}",
    )
    try:
        started = time.perf_counter()
        v.push(path, "bench/file")
        push_s = time.perf_counter() - started
        dest = workdir / "mlvault-pull"
        started = time.perf_counter()
        v.pull("bench/file", dest)
        pull_s = time.perf_counter() - started
    finally:
        v.close()
    pulled = dest / path.name if (dest / path.name).is_file() else dest
    return push_s, pull_s, pulled


def child_main(args: argparse.Namespace) -> None:
    path, workdir = Path(args.path), Path(args.workdir)
    if args.side == "boto3":
        push_s, pull_s, result = run_boto3(args.endpoint, path, workdir, args.concurrency)
    else:
        push_s, pull_s, result = run_mlvault(
            f"s3://{BUCKET}/vault", path, endpoint_url=args.endpoint, workdir=workdir
        )
    peak_kib = peak_rss_kib()
    print(
        json.dumps(
            {"push_s": push_s, "pull_s": pull_s, "peak_rss_kib": peak_kib, "sha256": sha256_file(result)}
        )
    )


# -- the parent: server, data, report ----------------------------------------------------------


def run_side(side: str, endpoint: str, path: Path, concurrency: int) -> dict[str, object]:
    with tempfile.TemporaryDirectory(prefix=f"bench-{side}-") as workdir:
        command = [sys.executable, __file__, "--child", side, "--endpoint", endpoint]
        command += ["--path", str(path), "--workdir", workdir, "--concurrency", str(concurrency)]
        proc = subprocess.run(
            command, env={**os.environ, **FAKE_ENV}, capture_output=True, text=True, check=False
        )
    if proc.returncode != 0:
        return {"error": (proc.stderr.strip().splitlines() or ["failed"])[-1]}
    result: dict[str, object] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size-mib", type=int, default=1024)
    parser.add_argument("--concurrency", type=int, default=8, help="boto3 TransferConfig max_concurrency")
    parser.add_argument("--skip-mlvault", action="store_true")
    parser.add_argument("--child", choices=["boto3", "mlvault"], help=argparse.SUPPRESS)
    parser.add_argument("--endpoint", help=argparse.SUPPRESS)
    parser.add_argument("--path", help=argparse.SUPPRESS)
    parser.add_argument("--workdir", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        args.side = args.child
        child_main(args)
        return

    import logging

    import boto3
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    try:
        boto3.session.Session(
            aws_access_key_id=FAKE_ENV["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=FAKE_ENV["AWS_SECRET_ACCESS_KEY"],
            region_name="us-east-1",
        ).client("s3", endpoint_url=endpoint).create_bucket(Bucket=BUCKET)
        with tempfile.TemporaryDirectory(prefix="bench-data-") as data_dir:
            path = Path(data_dir) / "random.bin"
            print(f"generating {args.size_mib} MiB of random data ...", flush=True)
            make_random_file(path, args.size_mib)
            expected = sha256_file(path)
            sides = ["boto3"] + ([] if args.skip_mlvault else ["mlvault"])
            results = {side: run_side(side, endpoint, path, args.concurrency) for side in sides}
    finally:
        server.stop()
    report(results, args.size_mib, expected)


def report(results: dict[str, dict[str, object]], size_mib: int, expected: str) -> None:
    print(f"\n{'side':<9}{'push s':>9}{'MiB/s':>9}{'pull s':>9}{'MiB/s':>9}{'peak RSS MiB':>14}  check")
    for side, r in results.items():
        if "error" in r:
            print(f"{side:<9}  failed: {r['error']}")
            continue
        push_s, pull_s = float(r["push_s"]), float(r["pull_s"])  # type: ignore[arg-type]
        rss = int(r["peak_rss_kib"]) / 1024  # type: ignore[call-overload]
        ok = "ok" if r["sha256"] == expected else "MISMATCH"
        push_rate, pull_rate = size_mib / push_s, size_mib / pull_s
        print(f"{side:<9}{push_s:>9.2f}{push_rate:>9.1f}{pull_s:>9.2f}{pull_rate:>9.1f}{rss:>14.0f}  {ok}")
    base, ours = results.get("boto3", {}), results.get("mlvault", {})
    if "push_s" in base and "push_s" in ours:
        print(
            f"\nmlvault / boto3 time: push x{float(ours['push_s']) / float(base['push_s']):.2f}, "  # type: ignore[arg-type]
            f"pull x{float(ours['pull_s']) / float(base['pull_s']):.2f}"  # type: ignore[arg-type]
        )


if __name__ == "__main__":
    main()
