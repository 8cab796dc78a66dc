"""Temporary files and directories that name their owner, so a crash's leftovers can be swept.

A push spools packs to ``tmp/pack-<owner>-*`` in a local vault and a pull stages into
``.<name>.mlvault-<owner>-*`` beside its destination. ``<owner>`` is the creating process's
pid and its start time (clock ticks since boot, from ``/proc``), so a later command can
tell "still being written by a live process" from "left behind by a process that died"
even after the pid has been reused. Only names of exactly this shape, owned by the current
user, are ever removed; anything else in those directories is left alone.

Where ``/proc`` is missing, the start time is 0 and liveness falls back to ``kill(pid, 0)``.
"""

from __future__ import annotations

import os
import re
import shutil
import stat
from functools import cache
from pathlib import Path

_OWNER_RE = r"(?P<pid>[0-9]{1,10})-(?P<start>[0-9]{1,20})"


def _start_ticks(pid: int) -> int | None:
    """Start time of ``pid`` in clock ticks since boot; None if it is gone; 0 if unknowable."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_bytes()
    except FileNotFoundError:
        if Path("/proc/self/stat").exists():
            return None
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return None
        except PermissionError:
            return 0
        return 0
    except OSError:
        return 0
    # The command name (field 2) may hold spaces and parentheses: split after the last ')'.
    fields = raw[raw.rfind(b")") + 2 :].split()
    try:
        return int(fields[19])
    except (IndexError, ValueError):
        return 0


@cache
def owner_tag() -> str:
    """``<pid>-<start ticks>`` of this process."""
    pid = os.getpid()
    return f"{pid}-{_start_ticks(pid) or 0}"


def is_gone(pid: int, start: int) -> bool:
    """Whether the process that wrote a tag ``pid-start`` no longer runs."""
    now = _start_ticks(pid)
    if now is None:
        return True
    return start != 0 and now != 0 and now != start


def sweep(directory: Path, prefix: str) -> list[Path]:
    """Remove entries ``<prefix><owner>-…`` in ``directory`` whose owner is gone; return them.

    Never follows symlinks, never touches entries of another user, never raises: a sweep
    is housekeeping and must not fail the command that runs it.
    """
    pattern = re.compile(re.escape(prefix) + _OWNER_RE + r"-[A-Za-z0-9_]{1,64}$")
    removed: list[Path] = []
    try:
        names = os.listdir(directory)
    except OSError:
        return removed
    for name in names:
        match = pattern.match(name)
        if match is None or match["pid"] == str(os.getpid()):
            continue
        path = directory / name
        try:
            st = path.lstat()
            if st.st_uid != os.getuid() or not is_gone(int(match["pid"]), int(match["start"])):
                continue
            if stat.S_ISDIR(st.st_mode):
                shutil.rmtree(path)
            elif stat.S_ISREG(st.st_mode):
                path.unlink()
            else:
                continue
        except OSError:
            continue
        removed.append(path)
    return removed
