"""What a push reads: a regular file or a directory tree, walked and checked before any byte is stored.

Everything a later pull would refuse is refused here, before the first chunk is cut: names
that are not UTF-8 or that the manifest decoder refuses (backslashes, NUL, drive prefixes,
over-long paths), symbolic links to directories, special files.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path

from vault.errors import HostileManifestError, UsageError
from vault.formats.manifest import MAX_PATH, DirEntry, check_path


@dataclass(frozen=True)
class SourceFile:
    """A regular file to push: where it is and what it will be called."""

    path: Path
    name: str
    size: int
    mode: int


@dataclass(frozen=True)
class Source:
    """What a push reads: one file, or a directory tree."""

    root: str  # "file" or "dir"
    files: tuple[SourceFile, ...]
    dirs: tuple[DirEntry, ...]


def _name(entry: str, full: Path) -> str:
    """``entry`` if a pull could write it back; the manifest decoder's rule, applied before storing."""
    try:
        entry.encode("utf-8")
    except UnicodeEncodeError:
        raise UsageError(f"{full!s} has a name that is not valid UTF-8; rename it before pushing") from None
    try:
        return check_path(entry)
    except HostileManifestError:
        raise UsageError(
            f"{str(full)!r} has a name mlvault cannot store (a backslash, NUL, drive prefix such as "
            f"'c:', or a path over {MAX_PATH} characters); rename it before pushing"
        ) from None


def scan_source(path: Path) -> Source:
    """Walk ``path``. Symlinks to files are followed; symlinked directories are refused."""
    try:
        st = path.stat()
    except FileNotFoundError:
        raise UsageError(f"{path} does not exist") from None
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror}") from exc
    if stat.S_ISREG(st.st_mode):
        name = _name(path.name, path)
        return Source("file", (SourceFile(path, name, st.st_size, stat.S_IMODE(st.st_mode)),), ())
    if not stat.S_ISDIR(st.st_mode):
        raise UsageError(f"{path} is neither a regular file nor a directory")
    files: list[SourceFile] = []
    dirs: list[DirEntry] = []
    for dirpath, dirnames, filenames in os.walk(path):
        here = Path(dirpath)
        rel = here.relative_to(path).as_posix()
        for name in sorted(dirnames):
            full = here / name
            if full.is_symlink():
                raise UsageError(f"{full} is a symbolic link to a directory; mlvault does not follow those")
            entry = _name(name if rel == "." else f"{rel}/{name}", full)
            dirs.append(DirEntry(entry, stat.S_IMODE(full.stat().st_mode)))
        dirnames.sort()
        for name in sorted(filenames):
            full = here / name
            try:
                fst = full.stat()
            except OSError as exc:
                raise UsageError(f"cannot read {full}: {exc.strerror}") from exc
            if not stat.S_ISREG(fst.st_mode):
                raise UsageError(
                    f"{full} is not a regular file (sockets, devices and fifos cannot be pushed)"
                )
            entry = _name(name if rel == "." else f"{rel}/{name}", full)
            files.append(SourceFile(full, entry, fst.st_size, stat.S_IMODE(fst.st_mode)))
    files.sort(key=lambda f: f.name)
    return Source("dir", tuple(files), tuple(dirs))
