"""Local-vault benchmark: mlvault push/pull against restic backup/restore on the same data.

One command (``make bench`` or ``python benchmarks/bench_local.py``):

1. generates a 1 GiB incompressible file and a model-like directory (a few
   safetensors-style files: a JSON header, then random tensor bytes);
2. times ``mlvault push`` and ``mlvault pull`` of each (the real CLI, in a subprocess,
   warm page cache), reporting wall time, throughput, the child's peak RSS and stored bytes;
3. pushes a second version of the 1 GiB file with a 100-byte insert at the start and ten
   1 MiB edits and reports the new bytes stored;
4. when ``restic`` is on PATH, does the same with ``restic backup --compression off`` and
   ``restic restore`` and prints the ratios;
5. with ``--big-gib N`` (default 4; 0 to skip) pushes and pulls an N GiB file for peak RSS.

Each child's peak RSS comes from ``os.wait4`` on that child alone.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BIN = Path(sys.executable).parent
MLVAULT = str(BIN / "mlvault")
MIB = 1 << 20


# A child's peak RSS from wait4 includes the RSS its parent had when it forked (Linux
# carries the old address space's high-water mark across exec). The data generator here
# is large, so every command is started by a small wrapper process and measured there.
_WRAPPER = """
import os, subprocess, sys
proc = subprocess.Popen(sys.argv[2:])
_, status, usage = os.wait4(proc.pid, 0)
with open(sys.argv[1], "w") as report:
    report.write(f"{os.waitstatus_to_exitcode(status)} {usage.ru_maxrss}")
"""


def run_rss(cmd: list[str], env: dict[str, str], cwd: Path) -> tuple[float, int, str]:
    """Run ``cmd``; return (seconds, the child's own peak RSS in bytes, stdout)."""
    with tempfile.NamedTemporaryFile("r") as report:
        start = time.perf_counter()
        proc = subprocess.run(
            [sys.executable, "-c", _WRAPPER, report.name, *cmd],
            env=env,
            cwd=cwd,
            capture_output=True,
            text=True,
        )
        elapsed = time.perf_counter() - start
        code, rss_kib = (int(x) for x in (report.read().split() or ["1", "0"]))
    if proc.returncode != 0 or code != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({code}): {proc.stderr[-2000:]}")
    return elapsed, rss_kib * 1024, proc.stdout


def write_random(path: Path, size: int, seed: int) -> None:
    rng = random.Random(seed)
    with path.open("wb") as handle:
        left = size
        while left:
            n = min(left, 64 * MIB)
            handle.write(rng.randbytes(n))
            left -= n


def make_model_dir(root: Path, seed: int) -> int:
    """A few safetensors-like files; returns total bytes."""
    rng = random.Random(seed)
    root.mkdir()
    total = 0
    for i, mib in enumerate((200, 120, 60, 20)):
        body = rng.randbytes(mib * MIB)
        header = json.dumps(
            {
                f"layer{j}.weight": {"dtype": "F16", "shape": [1024, 512], "data_offsets": [0, 1]}
                for j in range(64)
            }
        ).encode()
        with (root / f"model-{i:05d}-of-00004.safetensors").open("wb") as handle:
            handle.write(len(header).to_bytes(8, "little") + header + body)
        total += 8 + len(header) + len(body)
    (root / "config.json").write_text('{"architectures": ["Bench"], "hidden_size": 1024}\n')
    return total


def edit_copy(src: Path, dst: Path, seed: int) -> None:
    """dst = 100 random bytes + src, with ten 1 MiB regions overwritten."""
    rng = random.Random(seed)
    size = src.stat().st_size
    with src.open("rb") as fin, dst.open("wb") as fout:
        fout.write(rng.randbytes(100))
        shutil.copyfileobj(fin, fout, 8 * MIB)
    with dst.open("r+b") as handle:
        for k in range(10):
            handle.seek(int((k + 0.5) * size / 10))
            handle.write(rng.randbytes(MIB))


def dir_bytes(path: Path, skip: tuple[str, ...] = ()) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file() and not p.name.startswith(skip))


def fmt_rate(size: int, seconds: float) -> str:
    return f"{size / MIB / seconds:8.1f} MiB/s"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size-mib", type=int, default=1024, help="size of the incompressible file")
    parser.add_argument("--big-gib", type=int, default=4, help="file size for the RSS run (0 = skip)")
    parser.add_argument("--workdir", type=Path, default=None, help="where to put data (default: a temp dir)")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="mlvault-bench-", dir=args.workdir))
    env = {**os.environ, "MLVAULT_PASSPHRASE": "bench", "RESTIC_PASSWORD": "bench"}
    env.pop("MLVAULT_VAULT", None)
    results: dict[str, float] = {}
    try:
        data = work / "big.bin"
        write_random(data, args.size_mib * MIB, 1)
        model_dir = work / "model"
        model_size = make_model_dir(model_dir, 2)
        edited = work / "big-v2.bin"
        edit_copy(data, edited, 3)
        size = data.stat().st_size
        # Warm the page cache for every input.
        for p in (data, edited, *model_dir.iterdir()):
            with p.open("rb") as handle:
                while handle.read(16 * MIB):
                    pass

        vault_dir = work / "vault"
        run_rss([MLVAULT, "init", str(vault_dir), "--kdf-memory-mib", "64"], env, work)
        base = [MLVAULT, "--vault", str(vault_dir)]
        print(
            f"data: {size / MIB:.0f} MiB incompressible file, {model_size / MIB:.0f} MiB model directory; "
            f"{os.cpu_count()} cores"
        )
        print("\nmlvault (local vault)")
        t, rss, out = run_rss([*base, "push", "-q", "--json", str(data), "bench/big"], env, work)
        stored = json.loads(out)["stored_bytes"]
        results["ml_push"] = t
        print(
            f"  push 1 GiB file     {t:7.2f} s {fmt_rate(size, t)}  peak RSS {rss / MIB:6.1f} MiB  "
            f"stored {stored / MIB:.1f} MiB"
        )
        t, rss, _ = run_rss([*base, "pull", "-q", "bench/big", str(work / "out-big.bin")], env, work)
        results["ml_pull"] = t
        print(f"  pull 1 GiB file     {t:7.2f} s {fmt_rate(size, t)}  peak RSS {rss / MIB:6.1f} MiB")
        t, rss, out = run_rss([*base, "push", "-q", "--json", str(model_dir), "bench/model"], env, work)
        results["ml_push_model"] = t
        print(
            f"  push model dir      {t:7.2f} s {fmt_rate(model_size, t)}  peak RSS {rss / MIB:6.1f} MiB  "
            f"stored {json.loads(out)['stored_bytes'] / MIB:.1f} MiB"
        )
        t, rss, _ = run_rss([*base, "pull", "-q", "bench/model", str(work / "out-model")], env, work)
        results["ml_pull_model"] = t
        print(f"  pull model dir      {t:7.2f} s {fmt_rate(model_size, t)}  peak RSS {rss / MIB:6.1f} MiB")
        before = dir_bytes(vault_dir, ("catalog.sqlite",))
        t, rss, out = run_rss([*base, "push", "-q", "--json", str(edited), "bench/big"], env, work)
        ml_new = dir_bytes(vault_dir, ("catalog.sqlite",)) - before
        results["ml_new"] = ml_new
        print(
            f"  push edited v2      {t:7.2f} s  new bytes in storage {ml_new / MIB:.2f} MiB "
            f"(packs {json.loads(out)['stored_bytes'] / MIB:.2f} MiB)"
        )
        shutil.rmtree(work / "out-model")
        (work / "out-big.bin").unlink()

        if shutil.which("restic"):
            repo = work / "restic"
            run_rss(["restic", "init", "--repo", str(repo)], env, work)
            r = ["restic", "--repo", str(repo), "--no-cache", "--quiet"]
            print("\nrestic (same data, --compression off)")
            t, rss, _ = run_rss([*r, "backup", "--compression", "off", str(data)], env, work)
            results["r_push"] = t
            print(f"  backup 1 GiB file   {t:7.2f} s {fmt_rate(size, t)}  peak RSS {rss / MIB:6.1f} MiB")
            t, rss, _ = run_rss([*r, "restore", "latest", "--target", str(work / "r-out")], env, work)
            results["r_pull"] = t
            print(f"  restore 1 GiB file  {t:7.2f} s {fmt_rate(size, t)}  peak RSS {rss / MIB:6.1f} MiB")
            shutil.rmtree(work / "r-out")
            t, rss, _ = run_rss([*r, "backup", "--compression", "off", str(model_dir)], env, work)
            results["r_push_model"] = t
            print(
                f"  backup model dir    {t:7.2f} s {fmt_rate(model_size, t)}  peak RSS {rss / MIB:6.1f} MiB"
            )
            t, rss, _ = run_rss(
                [*r, "restore", "latest", "--path", str(model_dir), "--target", str(work / "r-out")],
                env,
                work,
            )
            results["r_pull_model"] = t
            print(
                f"  restore model dir   {t:7.2f} s {fmt_rate(model_size, t)}  peak RSS {rss / MIB:6.1f} MiB"
            )
            shutil.rmtree(work / "r-out")
            # restic's second version: same file name, new content (parent snapshot dedups).
            v2_dir = work / "r-v2"
            v2_dir.mkdir()
            os.link(edited, v2_dir / "big.bin")
            before = dir_bytes(repo)
            t, _, _ = run_rss([*r, "backup", "--compression", "off", str(edited)], env, work)
            r_new = dir_bytes(repo) - before
            results["r_new"] = r_new
            print(f"  backup edited v2    {t:7.2f} s  new bytes in repository {r_new / MIB:.2f} MiB")
            print("\nratios (mlvault / restic; targets: push ≤ 0.4, pull ≤ 0.6, new bytes ≤ 1.0)")
            print(f"  push 1 GiB   {results['ml_push'] / results['r_push']:.2f}")
            print(f"  pull 1 GiB   {results['ml_pull'] / results['r_pull']:.2f}")
            print(f"  push model   {results['ml_push_model'] / results['r_push_model']:.2f}")
            print(f"  pull model   {results['ml_pull_model'] / results['r_pull_model']:.2f}")
            print(f"  v2 new bytes {results['ml_new'] / results['r_new']:.2f}")
        else:
            print("\nrestic not found (apt-get install restic) — no side-by-side figures")

        if args.big_gib:
            big = work / "huge.bin"
            data.unlink()
            edited.unlink()
            write_random(big, args.big_gib * 1024 * MIB, 4)
            t, rss, _ = run_rss([*base, "push", "-q", str(big), "bench/huge"], env, work)
            print(
                f"\n{args.big_gib} GiB file: push {t:.2f} s, peak RSS {rss / MIB:.1f} MiB (target ≤ 150 MiB)"
            )
            t, rss, _ = run_rss([*base, "pull", "-q", "bench/huge", str(work / "huge-out.bin")], env, work)
            print(f"{args.big_gib} GiB file: pull {t:.2f} s, peak RSS {rss / MIB:.1f} MiB")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
