"""Helpers shared by the core end-to-end tests: data generation, tree snapshots, pack surgery.

``spawn``-ed worker processes import this module by name (``tests/core`` is on their
inherited ``sys.path``). ``PASSPHRASE`` and ``CHEAP_KDF`` come from ``tests/conftest.py``,
loaded by path: every test directory has a module called ``conftest``, so ``from conftest
import ...`` would pick whichever pytest happened to load last.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import random
import stat
import sys
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

from vault.catalog import PackChunk
from vault.formats import pack as pack_format


def _root_conftest() -> ModuleType:
    name = "mlvault_tests_root_conftest"
    if name not in sys.modules:
        path = Path(__file__).resolve().parents[1] / "conftest.py"
        spec = importlib.util.spec_from_file_location(name, path)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


PASSPHRASE: str = _root_conftest().PASSPHRASE
CHEAP_KDF = _root_conftest().CHEAP_KDF


def write_random(path: Path, size: int, seed: int) -> Path:
    """Write ``size`` seeded pseudo-random bytes to ``path`` (parents created) and return it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    with path.open("wb") as out:
        left = size
        while left:
            block = min(left, 8 << 20)
            out.write(rng.randbytes(block))
            left -= block
    return path


def sha256_file(path: Path) -> str:
    """Hex SHA-256 of a file, read in blocks."""
    h = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(1 << 20):
            h.update(block)
    return h.hexdigest()


def snapshot(root: Path) -> dict[str, tuple[str, int, str]]:
    """Everything under ``root`` (not following symlinks): rel path → (kind, mode, content sha256)."""
    result: dict[str, tuple[str, int, str]] = {}
    if root.is_file():
        return {".": ("file", stat.S_IMODE(root.stat().st_mode), sha256_file(root))}
    for dirpath, dirnames, filenames in os.walk(root):
        here = Path(dirpath)
        for name in dirnames:
            st = (here / name).lstat()
            kind = "link" if stat.S_ISLNK(st.st_mode) else "dir"
            result[(here / name).relative_to(root).as_posix()] = (kind, stat.S_IMODE(st.st_mode), "")
        for name in filenames:
            full = here / name
            st = full.lstat()
            if stat.S_ISLNK(st.st_mode):
                result[full.relative_to(root).as_posix()] = ("link", 0, os.readlink(full))
            else:
                result[full.relative_to(root).as_posix()] = (
                    "file",
                    stat.S_IMODE(st.st_mode),
                    sha256_file(full),
                )
    return result


def listing(directory: Path) -> set[str]:
    """Names directly inside ``directory`` (hidden ones included)."""
    return {p.name for p in directory.iterdir()}


def pack_files(vault_dir: Path) -> list[Path]:
    """Every pack object of a local vault, sorted."""
    return sorted(p for p in (vault_dir / "packs").rglob("*") if p.is_file())


def flip_byte(path: Path, offset: int) -> None:
    """XOR one byte of ``path`` with 0xFF in place, as an attacker with disk access would."""
    with path.open("r+b") as handle:
        handle.seek(offset)
        value = handle.read(1)
        assert len(value) == 1, f"offset {offset} is past the end of {path}"
        handle.seek(offset)
        handle.write(bytes([value[0] ^ 0xFF]))


@dataclass(frozen=True)
class PackLayout:
    """Byte regions of one stored pack, read from its footer and the catalog's index."""

    size: int
    records: list[PackChunk]  # sorted by offset
    trailer_start: int
    footer_start: int


def pack_layout(path: Path, indexed: list[PackChunk]) -> PackLayout:
    """Where the header, records, trailer and footer of the pack at ``path`` are."""
    data = path.read_bytes()
    trailer_len = pack_format.decode_footer(data[-pack_format.FOOTER_SIZE :], len(data))
    footer_start = len(data) - pack_format.FOOTER_SIZE
    return PackLayout(
        len(data), sorted(indexed, key=lambda r: r.offset), footer_start - trailer_len, footer_start
    )


def push_worker(
    url: str,
    passphrase: str,
    catalog_url: str | None,
    source: str,
    artifact: str,
    barrier: object,
    results: object,
) -> None:
    """Child-process body: open the vault, wait for the others, push, report (number, source).

    ``barrier`` and ``results`` are a ``multiprocessing`` Barrier and Queue of the spawn context.
    """
    import vault

    try:
        with vault.open_vault(url, passphrase=passphrase, catalog_url=catalog_url) as v:
            v.unlock()
            barrier.wait(timeout=60)  # type: ignore[attr-defined]
            result = v.push(source, artifact)
            results.put(("ok", result.number, source, result.version_id))  # type: ignore[attr-defined]
    except BaseException as exc:
        results.put(("error", repr(exc), source, ""))  # type: ignore[attr-defined]
        raise
