"""A local vault directory is writable by whoever can reach it: the backend trusts no file kind.

Every test plants what an attacker (or a careless user) could: a FIFO, a directory or a
symbolic link where an object, a directory of objects or the spool should be. Reads and
writes must refuse with an IntegrityError naming the object, never hang on a FIFO, never
follow a link, and never blame something else. Opening a directory and reading from it
creates nothing.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Callable, Iterator
from pathlib import Path
from types import FrameType

import pytest

from vault import layout
from vault.errors import IntegrityError, NotFoundError, UsageError
from vault.storage.base import ObjectExistsError
from vault.storage.local import LocalBackend

KEY = "packs/ab/" + "ab" * 16


@pytest.fixture
def root(tmp_path: Path) -> Path:
    path = tmp_path / "v"
    LocalBackend(path, create=True)
    return path


@pytest.fixture
def store(root: Path) -> LocalBackend:
    return LocalBackend(root)


@pytest.fixture(autouse=True)
def _never_hang() -> Iterator[None]:
    """Turn a hang (a FIFO opened for reading blocks until a writer comes) into a failure."""

    def hung(signum: int, frame: FrameType | None) -> None:
        raise AssertionError("the backend blocked on a planted file")

    previous = signal.signal(signal.SIGALRM, hung)
    signal.alarm(10)
    yield
    signal.alarm(0)
    signal.signal(signal.SIGALRM, previous)


def plant(root: Path, key: str, kind: str) -> Path:
    path = root / key
    path.parent.mkdir(parents=True, exist_ok=True)
    if kind == "fifo":
        os.mkfifo(path)
    elif kind == "directory":
        path.mkdir()
    elif kind == "symlink":
        decoy = root.parent / "decoy"
        decoy.write_bytes(b"attacker bytes")
        path.symlink_to(decoy)
    elif kind == "dangling symlink":
        path.symlink_to(root.parent / "nowhere")
    return path


KINDS = ["fifo", "directory", "symlink", "dangling symlink"]

READS: dict[str, Callable[[LocalBackend, str], object]] = {
    "get": lambda store, key: store.get(key),
    "get with max_size": lambda store, key: store.get(key, max_size=100),
    "get_range": lambda store, key: store.get_range(key, 0, 10),
    "size": lambda store, key: store.size(key),
    "exists": lambda store, key: store.exists(key),
}


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("read", list(READS))
def test_reading_a_planted_non_file_is_an_integrity_error(
    root: Path, store: LocalBackend, kind: str, read: str
) -> None:
    plant(root, KEY, kind)
    with pytest.raises(IntegrityError, match=f"object {KEY} .*not a regular file"):
        READS[read](store, KEY)


@pytest.mark.parametrize("key", [layout.CONFIG, "manifests/" + "cd" * 16, "keys/owner/" + "00" * 16])
def test_a_fifo_as_config_manifest_or_slot_does_not_hang(root: Path, store: LocalBackend, key: str) -> None:
    plant(root, key, "fifo")
    with pytest.raises(IntegrityError, match=key):
        store.get(key, max_size=1 << 20)


@pytest.mark.parametrize("kind", ["symlink", "file"])
def test_a_planted_directory_of_objects_is_not_followed(root: Path, store: LocalBackend, kind: str) -> None:
    elsewhere = root.parent / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / KEY.rsplit("/", 1)[1]).write_bytes(b"attacker bytes")
    (root / "packs").mkdir()
    if kind == "symlink":
        (root / "packs" / "ab").symlink_to(elsewhere)
    else:
        (root / "packs" / "ab").write_bytes(b"not a directory")
    for read in READS.values():
        with pytest.raises(IntegrityError, match=f"object {KEY} .*packs/ab is not a directory"):
            read(store, KEY)
    with pytest.raises(IntegrityError, match="packs/ab is not a directory"):
        store.put(KEY, b"data")
    assert (elsewhere / KEY.rsplit("/", 1)[1]).read_bytes() == b"attacker bytes"


@pytest.mark.parametrize("kind", KINDS)
def test_writing_over_a_planted_non_file_is_an_integrity_error_not_a_conflict(
    root: Path, store: LocalBackend, kind: str
) -> None:
    plant(root, KEY, kind)
    with pytest.raises(IntegrityError, match=f"object {KEY} .*not a regular file"):
        store.put(KEY, b"data")
    spooled = store.spool_dir() / "pack-1"
    spooled.write_bytes(b"data")
    with pytest.raises(IntegrityError, match=f"object {KEY} .*not a regular file"):
        store.put_file(KEY, spooled)
    assert not spooled.exists()


def test_an_existing_regular_object_is_still_a_conflict(store: LocalBackend) -> None:
    store.put(KEY, b"first")
    with pytest.raises(ObjectExistsError):
        store.put(KEY, b"second")


@pytest.mark.parametrize("kind", ["fifo", "symlink", "directory"])
def test_put_file_refuses_a_source_that_is_not_a_regular_file(
    store: LocalBackend, tmp_path: Path, kind: str
) -> None:
    for spool in (store.spool_dir(), tmp_path):  # the same-volume link path and the copy path
        source = spool / f"src-{kind}"
        if kind == "fifo":
            os.mkfifo(source)
        elif kind == "directory":
            source.mkdir()
        else:
            (tmp_path / "target").write_bytes(b"x")
            source.symlink_to(tmp_path / "target")
        with pytest.raises(IntegrityError, match="not a regular file"):
            store.put_file(KEY, source)
        assert not store.exists(KEY)


def test_a_symlinked_spool_directory_is_refused(tmp_path: Path) -> None:
    root = tmp_path / "v"
    root.mkdir()
    (tmp_path / "elsewhere").mkdir()
    (root / layout.SPOOL_DIR).symlink_to(tmp_path / "elsewhere")
    store = LocalBackend(root)
    with pytest.raises(IntegrityError, match="spool"):
        store.put(KEY, b"data")
    assert list((tmp_path / "elsewhere").iterdir()) == []


def test_opening_and_reading_create_nothing(tmp_path: Path) -> None:
    root = tmp_path / "not-a-vault"
    root.mkdir()
    (root / "notes.txt").write_bytes(b"mine")
    store = LocalBackend(root)
    with pytest.raises(NotFoundError):
        store.get(layout.CONFIG)
    with pytest.raises(NotFoundError):
        store.size(KEY)
    assert not store.exists(KEY)
    assert list(store.list()) == ["notes.txt"]
    store.close()
    assert sorted(p.name for p in root.iterdir()) == ["notes.txt"]


def test_the_spool_directory_is_created_on_the_first_write(tmp_path: Path) -> None:
    root = tmp_path / "v"
    store = LocalBackend(root, create=True)
    assert list(root.iterdir()) == []
    store.put(KEY, b"data")
    assert (root / layout.SPOOL_DIR).is_dir()
    assert store.get(KEY) == b"data"


def test_creating_a_vault_on_a_regular_file_is_a_usage_error(tmp_path: Path) -> None:
    (tmp_path / "file").write_bytes(b"x")
    with pytest.raises(UsageError, match="not a directory"):
        LocalBackend(tmp_path / "file", create=True)


def test_a_hostile_range_never_allocates_more_than_the_object(store: LocalBackend) -> None:
    store.put(KEY, b"0123456789")
    assert store.get_range(KEY, 4, 1 << 62) == b"456789"
    assert store.get_range(KEY, (1 << 63) - 1, 10) == b""
