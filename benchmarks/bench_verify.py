"""Benchmark: mlvault's offline verify against model-signing's key verifier, on the same files.

    python benchmarks/bench_verify.py [--size-gib 4] [--files 4] [--repeat 2] [--workdir DIR]

Generates ``--files`` random files totalling ``--size-gib`` GiB in a temporary directory (AES-CTR
keystream: fast and incompressible), signs the directory once with mlvault, then runs each
verifier in its own subprocess, alternating, ``--repeat`` times. For every run it reports wall time
(process start to exit, imports included, as a deploy host would see it), the time spent inside
the verify call, and the child's peak RSS from ``wait4``. The files stay in the page cache for
both verifiers, so the comparison is hashing and overhead, not disk. Everything is removed at
the end. Targets: mlvault at most 1.1x model-signing's time, peak RSS at most 100 MB.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
CHUNK = 8 * 1024 * 1024


def _generate(model: Path, total_bytes: int, files: int) -> None:
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

    model.mkdir(parents=True)
    per_file = total_bytes // files
    zeros = bytes(CHUNK)
    for i in range(files):
        encryptor = Cipher(algorithms.AES(os.urandom(32)), modes.CTR(os.urandom(16))).encryptor()
        with open(model / f"shard-{i:05d}.bin", "wb") as fh:
            remaining = per_file
            while remaining:
                n = min(CHUNK, remaining)
                fh.write(encryptor.update(zeros[:n]))
                remaining -= n


def _sign(model: Path, keydir: Path, bundle: Path) -> None:
    sys.path.insert(0, str(REPO_ROOT))
    from cryptography.hazmat.primitives import serialization

    from vault.signing import LocalSigner, generate_private_key, hash_directory, sign_files

    key = generate_private_key()
    (keydir / "signer.pub").write_bytes(
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    bundle.write_bytes(sign_files(hash_directory(model), LocalSigner(key), {"bench": True}, model_name="m"))


def _worker(kind: str, model: str, bundle: str, public_key: str) -> None:
    """Run one verification in this (child) process and print the in-call time."""
    if kind == "mlvault":
        sys.path.insert(0, str(REPO_ROOT))
        from vault.signing import verify_directory

        started = time.perf_counter()
        verify_directory(model, bundle, [public_key])
    else:
        import model_signing

        started = time.perf_counter()
        model_signing.verifying.Config().use_elliptic_key_verifier(  # type: ignore[no-untyped-call]
            public_key=public_key
        ).verify(model, bundle)
    elapsed = time.perf_counter() - started
    # VmHWM is this process image's own peak RSS; ru_maxrss from wait4 would also count the
    # parent's memory that the child inherited between fork and exec.
    status = Path("/proc/self/status").read_text()
    peak_kib = next(int(line.split()[1]) for line in status.splitlines() if line.startswith("VmHWM:"))
    print(f"{elapsed:.6f} {peak_kib * 1024}")


def _run(kind: str, model: Path, bundle: Path, public_key: Path) -> tuple[float, float, int]:
    """Return (wall seconds, in-call seconds, peak RSS bytes) of one verifier subprocess."""
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, __file__, "--worker", kind, str(model), str(bundle), str(public_key)],
        stdout=subprocess.PIPE,
        check=False,
    )
    wall = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"{kind} verification failed (exit {done.returncode})")
    inner, peak = done.stdout.decode().split()[-2:]
    return wall, float(inner), int(peak)


def main() -> None:
    """Parse options, build the fixture, run both verifiers and print the comparison."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--size-gib", type=float, default=4.0, help="total size of the model (GiB)")
    parser.add_argument("--files", type=int, default=4, help="number of files")
    parser.add_argument("--repeat", type=int, default=2, help="runs of each verifier")
    parser.add_argument("--workdir", type=Path, default=None, help="parent of the temporary directory")
    parser.add_argument(
        "--worker", nargs=4, metavar=("KIND", "MODEL", "BUNDLE", "KEY"), help=argparse.SUPPRESS
    )
    args = parser.parse_args()
    if args.worker:
        _worker(*args.worker)
        return

    total = int(args.size_gib * 1024**3)
    tmp = Path(tempfile.mkdtemp(prefix="mlvault-bench-", dir=args.workdir))
    try:
        model, bundle, public_key = tmp / "model", tmp / "model.sig", tmp / "signer.pub"
        t0 = time.perf_counter()
        _generate(model, total, args.files)
        print(f"generated {args.files} files, {total / 1024**3:.2f} GiB in {time.perf_counter() - t0:.1f} s")
        t0 = time.perf_counter()
        _sign(model, tmp, bundle)
        print(f"signed with mlvault in {time.perf_counter() - t0:.1f} s")

        results: dict[str, list[tuple[float, float, int]]] = {"model_signing": [], "mlvault": []}
        for i in range(args.repeat):
            for kind in ("model_signing", "mlvault") if i % 2 == 0 else ("mlvault", "model_signing"):
                wall, inner, rss = _run(kind, model, bundle, public_key)
                results[kind].append((wall, inner, rss))
                line = f"run {i + 1} {kind:13s} wall {wall:7.2f} s  verify {inner:7.2f} s"
                print(f"  {line}  peak {rss / 1e6:6.1f} MB")

        print(f"\n{'verifier':13s} {'wall (median)':>14s} {'verify (median)':>16s} {'peak RSS (max)':>15s}")
        summary = {}
        for kind, runs in results.items():
            wall = statistics.median(r[0] for r in runs)
            inner = statistics.median(r[1] for r in runs)
            rss = max(r[2] for r in runs)
            summary[kind] = (wall, inner, rss)
            print(f"{kind:13s} {wall:12.2f} s {inner:14.2f} s {rss / 1e6:12.1f} MB")
        ratio_wall = summary["mlvault"][0] / summary["model_signing"][0]
        ratio_inner = summary["mlvault"][1] / summary["model_signing"][1]
        ratios = f"wall {ratio_wall:.3f}x, verify {ratio_inner:.3f}x"
        print(f"\nratio mlvault / model-signing: {ratios} (target <= 1.1x)")
        print(f"mlvault peak RSS {summary['mlvault'][2] / 1e6:.1f} MB (target <= 100 MB)")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
