"""Benchmark: how long the read-only commands take from a cold process (issue 13, start-up).

    .venv/bin/python benchmarks/bench_startup.py [--runs 5] [--files 20000] [--workdir DIR]

Each figure is a fresh ``mlvault`` process (the console script next to this interpreter), so it
is what a user waits for: interpreter start, imports, argument parsing, opening the vault, the
command's own work and printing. Printed for each case: the median wall time and the median CPU
time (user + system of the child; on a loaded machine wall time moves with the load, CPU time far
less) over ``--runs`` runs, after one warm-up run that lets Python write its bytecode caches.

Cases:

- ``ls``, ``log team/small``, ``show team/small@v1`` on a vault with one 3-file version;
- ``show team/big@v1`` of a ``--files``-file version (tiny distinct files in 100 directories):
  on a terminal (a pseudo-terminal of 200 columns, as an interactive user sees it), into a pipe,
  and ``--json`` into a pipe;
- the import time of the CLI module (``python -X importtime -c "import mlvault_cli.main"``, the
  cumulative figure of that module) — what every command pays before it parses its arguments.

The vaults are built once (cheap KDF, SQLite catalog) in a temporary directory, or in
``--workdir`` and reused by later runs with the same ``--files`` (building the big version is a
20,000-file push).
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import os
import pty
import resource
import shutil
import statistics
import struct
import subprocess
import sys
import tempfile
import termios
import threading
import time
from collections.abc import Callable
from pathlib import Path

PASSPHRASE = "bench startup"
SMALL, BIG = "team/small", "team/big"
TERMINAL_COLUMNS, TERMINAL_ROWS = 200, 50


def cli() -> list[str]:
    """The installed console script, as a user runs it."""
    script = Path(sys.executable).with_name("mlvault")
    if not script.exists():
        sys.exit(f"error: {script} not found; install the project (make install)")
    return [sys.executable, str(script)]


def child_env(work: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.pop("PYTHONDONTWRITEBYTECODE", None)  # a user's install has its bytecode cached
    env["MLVAULT_CONFIG_DIR"] = str(work / "config")
    env["MLVAULT_PASSPHRASE"] = PASSPHRASE
    env["MLVAULT_VAULT"] = str(work / "vault")
    for name in ("MLVAULT_CATALOG", "MLVAULT_IDENTITY", "MLVAULT_ENDPOINT_URL"):
        env.pop(name, None)
    return env


def build(work: Path, files: int) -> None:
    """The vault: team/small (3 files) and team/big (``files`` files), pushed through the library."""
    marker = work / f"ready-{files}"
    if marker.exists():
        return
    shutil.rmtree(work / "vault", ignore_errors=True)
    shutil.rmtree(work / "config", ignore_errors=True)
    os.environ["MLVAULT_CONFIG_DIR"] = str(work / "config")
    import vault
    from vault.clientstate import ClientState
    from vault.crypto.kdf import KdfParams

    small, big = work / "src-small", work / "src-big"
    for src in (small, big):
        shutil.rmtree(src, ignore_errors=True)
    small.mkdir(parents=True)
    for i in range(3):
        (small / f"file{i}.txt").write_text(f"small file {i}\n")
    for i in range(files):
        directory = big / f"part{i % 100:02d}"
        directory.mkdir(parents=True, exist_ok=True)
        (directory / f"sample{i:06d}.txt").write_text(f"sample {i}\n")
    print(f"building the vault in {work} ({files:,} files in {BIG}) ...", file=sys.stderr)
    started = time.perf_counter()
    state = ClientState(work / "config")
    with vault.init_vault(
        str(work / "vault"), passphrase=PASSPHRASE, kdf=KdfParams(1, 8, 1), client_state=state
    ) as v:
        v.push(small, SMALL, tags=["prod"])
        v.push(big, BIG)
    print(f"built in {time.perf_counter() - started:.1f} s", file=sys.stderr)
    marker.write_text("")


def run_pipe(cmd: list[str], env: dict[str, str]) -> tuple[float, float]:
    """(wall s, child CPU s) of one run with stdout into a pipe (read to the end)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    proc = subprocess.run(cmd, env=env, capture_output=True, check=False)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        sys.exit(f"error: {' '.join(cmd[2:])} exited {proc.returncode}: {proc.stderr.decode().strip()}")
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def run_tty(cmd: list[str], env: dict[str, str]) -> tuple[float, float]:
    """(wall s, child CPU s) of one run with stdout on a pseudo-terminal (drained as a terminal would)."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", TERMINAL_ROWS, TERMINAL_COLUMNS, 0, 0))
    received = bytearray()

    def drain() -> None:
        with contextlib.suppress(OSError):  # EIO once the child closed its end
            while chunk := os.read(master, 65536):
                received.extend(chunk)

    reader = threading.Thread(target=drain)
    reader.start()
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    proc = subprocess.run(cmd, env=env, stdout=slave, stderr=subprocess.PIPE, check=False)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    os.close(slave)
    reader.join()
    os.close(master)
    if proc.returncode != 0:
        sys.exit(f"error: {' '.join(cmd[2:])} exited {proc.returncode}: {proc.stderr.decode().strip()}")
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def import_time(env: dict[str, str]) -> float:
    """Cumulative import time of mlvault_cli.main in seconds, from -X importtime."""
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", "import mlvault_cli.main"],
        env=env,
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        text=True,
        check=True,
    )
    for line in proc.stderr.splitlines():
        fields = [f.strip() for f in line.split("|")]
        if len(fields) == 3 and fields[2] == "mlvault_cli.main":
            return int(fields[1]) / 1e6
    sys.exit("error: mlvault_cli.main missing from -X importtime output")


def measure(label: str, runs: int, once: Callable[[], tuple[float, float]]) -> None:
    once()  # warm-up: bytecode caches, page cache
    samples = [once() for _ in range(runs)]
    wall = statistics.median(s[0] for s in samples)
    cpu = statistics.median(s[1] for s in samples)
    print(f"{label:<34} {wall:7.3f} s  {cpu:7.3f} s", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--files", type=int, default=20_000)
    parser.add_argument("--workdir", type=Path, help="Build (or reuse) the vault here.")
    args = parser.parse_args()

    with contextlib.ExitStack() as stack:
        work = args.workdir or Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-startup-")))
        work.mkdir(parents=True, exist_ok=True)
        build(work.resolve(), args.files)
        env = child_env(work.resolve())
        base = cli()
        load = os.getloadavg()
        loads = " ".join(f"{x:.2f}" for x in load)
        print(f"median of {args.runs} runs; load average {loads}; {os.cpu_count()} CPUs")
        print(f"{'case':<34} {'wall':>9}  {'CPU':>9}")
        cases: list[tuple[str, list[str], bool]] = [
            ("ls", ["ls"], False),
            ("log", ["log", SMALL], False),
            ("show (3 files)", ["show", f"{SMALL}@v1"], False),
            (f"show ({args.files:,} files), terminal", ["show", f"{BIG}@v1"], True),
            (f"show ({args.files:,} files), pipe", ["show", f"{BIG}@v1"], False),
            (f"show --json ({args.files:,} files)", ["show", "--json", f"{BIG}@v1"], False),
        ]
        for label, argv, tty in cases:
            runner = run_tty if tty else run_pipe
            measure(label, args.runs, lambda argv=argv, runner=runner: runner([*base, *argv], env))
        imports = [import_time(env) for _ in range(args.runs + 1)][1:]
        label = "import mlvault_cli.main"
        print(f"{label:<34} {statistics.median(imports):7.3f} s  (-X importtime, cumulative)")


if __name__ == "__main__":
    main()
