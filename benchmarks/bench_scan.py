"""Scan cost per GiB: a PyTorch-style zip checkpoint, safetensors, and a raw pickle of one big bytes
object (the worst case: picklescan holds the whole stream's opcodes), each scanned in a fresh
process so peak RSS is the scan's own.

    python benchmarks/bench_scan.py --size-mib 1024 --workdir /tmp [--push]

With ``--push``, the PyTorch zip is also pushed into a fresh local vault (SQLite) in a fresh process
per run: push time (which includes its scan), peak RSS, and the scan the push makes first timed on
its own — the totals of two pushes differ by far more disk noise than the scan costs.
"""

from __future__ import annotations

import argparse
import json
import os
import struct
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "scan"))
import scancorpus as corpus

MIB = 1 << 20


def make_torch_zip(path: Path, size: int) -> None:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as zf:
        zf.writestr("archive/data.pkl", corpus.state_dict_pickle(["w"]))
        with zf.open("archive/data/0", "w", force_zip64=True) as entry:
            block = os.urandom(MIB)
            for _ in range(size // MIB):
                entry.write(block)


def make_safetensors(path: Path, size: int) -> None:
    n = size // 4
    header = json.dumps({"w": {"dtype": "F32", "shape": [n], "data_offsets": [0, n * 4]}}).encode()
    with path.open("wb") as f:
        f.write(struct.pack("<Q", len(header)) + header)
        block = os.urandom(MIB)
        for _ in range(size // MIB):
            f.write(block)


def make_raw_pickle(path: Path, size: int) -> None:
    # What pickle.dump(bytes, protocol=4) writes (BINBYTES8), streamed: building it in memory here
    # would show in the child's peak RSS (Linux carries a forked child's high-water mark over exec).
    block = os.urandom(MIB)
    with path.open("wb") as f:
        f.write(b"\x80\x04\x8e" + struct.pack("<Q", size // MIB * MIB))
        for _ in range(size // MIB):
            f.write(block)
        f.write(b".")


CHILD = """
import resource, sys, time
from pathlib import Path
from vault.scan.scanner import scan_path
t = time.perf_counter()
report = scan_path(Path(sys.argv[1]))
elapsed = time.perf_counter() - t
print(elapsed, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, report.verdict.value)
"""


PUSH_CHILD = """
import resource, sys, time
from pathlib import Path
import vault
from vault.crypto.kdf import KdfParams
from vault.scan.gate import scan_before_push
src, dest = Path(sys.argv[1]), sys.argv[2]
v = vault.init_vault(dest, passphrase=b"bench", kdf=KdfParams(1, 8, 1))
t = time.perf_counter()
scan_before_push(src)  # the same call push makes first, timed on its own
scanned = time.perf_counter() - t
t = time.perf_counter()
v.push(src, "team/model")  # scans, then chunks, encrypts and stores
elapsed = time.perf_counter() - t
v.close()
print(elapsed, scanned, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
"""


def measure_push(path: Path, workdir: str) -> tuple[float, float, float]:
    """(push seconds, scan seconds, peak RSS MiB) in a fresh process."""
    os.sync()  # the previous run's writeback must not land inside this one
    with tempfile.TemporaryDirectory(dir=workdir) as tmp:
        args = [sys.executable, "-c", PUSH_CHILD, str(path), str(Path(tmp) / "v")]
        out = subprocess.run(args, capture_output=True, text=True, check=True)
    elapsed, scanned, rss = out.stdout.split()
    return float(elapsed), float(scanned), float(rss)


def measure(path: Path) -> tuple[float, float, str]:
    out = subprocess.run([sys.executable, "-c", CHILD, str(path)], capture_output=True, text=True, check=True)
    elapsed, rss, verdict = out.stdout.split()
    return float(elapsed), float(rss), verdict


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--size-mib", type=int, default=1024)
    parser.add_argument("--workdir", default=tempfile.gettempdir())
    parser.add_argument(
        "--push", action="store_true", help="also push the PyTorch zip with and without the gate"
    )
    parser.add_argument("--repeat", type=int, default=3, help="push runs (medians printed)")
    args = parser.parse_args()
    size = args.size_mib * MIB
    with tempfile.TemporaryDirectory(dir=args.workdir) as tmp:
        for name, make in [
            ("pytorch zip", make_torch_zip),
            ("safetensors", make_safetensors),
            ("raw pickle", make_raw_pickle),
        ]:
            path = Path(tmp) / name.replace(" ", "_")
            make(path, size)
            subprocess.run(["cat", str(path)], stdout=subprocess.DEVNULL, check=True)  # warm page cache
            elapsed, rss, verdict = measure(path)
            gib = path.stat().st_size / (1 << 30)
            print(
                f"{name:12s} {gib:.2f} GiB  scan {elapsed:.3f} s ({elapsed / gib:.3f} s/GiB)  "
                f"peak RSS {rss:.0f} MiB  verdict {verdict}",
                flush=True,
            )
            if args.push and name == "pytorch zip":
                runs = sorted(measure_push(path, args.workdir) for _ in range(args.repeat))
                push_s = runs[len(runs) // 2][0]
                scan_s = sorted(r[1] for r in runs)[len(runs) // 2]
                print(
                    f"push {gib:.2f} GiB pytorch zip: {push_s:.2f} s including its scan, peak RSS "
                    f"{max(r[2] for r in runs):.0f} MiB; the scan alone {scan_s:.3f} s = "
                    f"{100 * scan_s / push_s:.1f} % of the push (medians of {args.repeat})",
                    flush=True,
                )
            path.unlink()


if __name__ == "__main__":
    main()
