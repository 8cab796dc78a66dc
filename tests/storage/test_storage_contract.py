"""The storage contract: what every backend must do, run against each one."""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from vault.errors import IntegrityError, NotFoundError, UsageError
from vault.storage.base import Backend, ObjectExistsError, validate_key


def test_put_get_round_trip(backend: Backend) -> None:
    backend.put("packs/ab/abcdef", b"hello")
    assert backend.get("packs/ab/abcdef") == b"hello"
    assert backend.size("packs/ab/abcdef") == 5
    assert backend.exists("packs/ab/abcdef")


def test_put_is_write_once(backend: Backend) -> None:
    backend.put("manifests/v1", b"first")
    with pytest.raises(ObjectExistsError):
        backend.put("manifests/v1", b"second")
    assert backend.get("manifests/v1") == b"first"


def test_put_file_consumes_the_file_and_is_write_once(backend: Backend, tmp_path: Path) -> None:
    spool = backend.spool_dir() or tmp_path
    src = spool / "spool-1"
    payload = os.urandom(3 * 1024 * 1024 + 7)
    src.write_bytes(payload)
    backend.put_file("packs/00/p1", src)
    assert not src.exists()
    assert backend.get("packs/00/p1") == payload
    again = spool / "spool-2"
    again.write_bytes(b"other")
    with pytest.raises(ObjectExistsError):
        backend.put_file("packs/00/p1", again)
    assert not again.exists()
    assert backend.get("packs/00/p1") == payload


def test_put_file_from_another_directory(backend: Backend, tmp_path: Path) -> None:
    src = tmp_path / "elsewhere.bin"
    src.write_bytes(b"x" * 1000)
    backend.put_file("packs/01/p2", src)
    assert backend.get("packs/01/p2") == b"x" * 1000


def test_get_range(backend: Backend) -> None:
    backend.put("packs/ab/r", bytes(range(256)))
    assert backend.get_range("packs/ab/r", 10, 5) == bytes(range(10, 15))
    assert backend.get_range("packs/ab/r", 250, 100) == bytes(range(250, 256))


def test_missing_object(backend: Backend) -> None:
    assert not backend.exists("manifests/nope")
    with pytest.raises(NotFoundError):
        backend.get("manifests/nope")
    with pytest.raises(NotFoundError):
        backend.get_range("manifests/nope", 0, 1)
    with pytest.raises(NotFoundError):
        backend.size("manifests/nope")


def test_delete_and_list(backend: Backend) -> None:
    for key in ("packs/aa/1", "packs/bb/2", "manifests/3", "config"):
        backend.put(key, key.encode())
    assert sorted(backend.list("packs/")) == ["packs/aa/1", "packs/bb/2"]
    assert sorted(backend.list()) == ["config", "manifests/3", "packs/aa/1", "packs/bb/2"]
    backend.delete("packs/aa/1")
    backend.delete("packs/aa/1")  # deleting a missing key is fine
    assert sorted(backend.list("packs/")) == ["packs/bb/2"]
    assert not backend.exists("packs/aa/1")


def test_empty_object(backend: Backend) -> None:
    backend.put("keys/ring/slot", b"")
    assert backend.get("keys/ring/slot") == b""
    assert backend.size("keys/ring/slot") == 0


@pytest.mark.parametrize(
    "key", ["", "/abs", "../escape", "packs/../../x", "a//b", "UPPER", "sp ace", "packs/./x", "x" * 200, "é"]
)
def test_hostile_keys_are_refused_before_io(backend: Backend, key: str) -> None:
    with pytest.raises(UsageError):
        backend.put(key, b"x")
    with pytest.raises(UsageError):
        backend.get(key)


def test_validate_key_accepts_layout_keys() -> None:
    for key in (
        "config",
        "packs/0a/" + "f" * 64,
        "manifests/" + "1" * 32,
        "keys/ring/slot-1",
        "snapshots/s1",
    ):
        assert validate_key(key) == key


def test_get_range_past_the_end(backend: Backend) -> None:
    backend.put("packs/ab/short", b"abc")
    assert backend.get_range("packs/ab/short", 3, 10) == b""
    assert backend.get_range("packs/ab/short", 100, 1) == b""
    assert backend.get_range("packs/ab/short", 1, 0) == b""


def test_list_nested_prefix(backend: Backend) -> None:
    for key in ("packs/aa/1", "packs/ab/2", "packs/b/3"):
        backend.put(key, b"x")
    assert sorted(backend.list("packs/a")) == ["packs/aa/1", "packs/ab/2"]
    assert list(backend.list("nothing/")) == []


def test_concurrent_writers_and_readers(backend: Backend, tmp_path: Path) -> None:
    payloads = {f"packs/{i:02x}/p": os.urandom(64 * 1024 + i) for i in range(16)}

    def write(item: tuple[str, bytes]) -> None:
        key, data = item
        src = (backend.spool_dir() or tmp_path) / f"spool-{key.replace('/', '-')}"
        src.write_bytes(data)
        backend.put_file(key, src)

    def read(key: str) -> bytes:
        size = backend.size(key)
        return b"".join(backend.get_range(key, off, 4096) for off in range(0, size, 4096))

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(write, payloads.items()))
        assert list(pool.map(read, payloads)) == list(payloads.values())


def test_get_refuses_an_object_over_max_size_before_reading_it(backend: Backend) -> None:
    backend.put("manifests/big", b"x" * 1000)
    assert backend.get("manifests/big", max_size=1000) == b"x" * 1000
    with pytest.raises(IntegrityError, match="1000 bytes"):
        backend.get("manifests/big", max_size=999)


def test_upload_concurrency_is_a_property_of_the_backend(backend: Backend) -> None:
    # Callers size their upload pools from this, never from the URL scheme.
    expected = {"S3Backend": 4, "LocalBackend": 2, "MemoryBackend": 2}
    assert backend.upload_concurrency == expected[type(backend).__name__]


def test_get_range_refuses_negative_ranges_and_never_reads_past_the_end(backend: Backend) -> None:
    backend.put("packs/00/r", b"0123456789")
    for offset, length in ((-1, 4), (0, -5), (-100, -100)):
        with pytest.raises(UsageError, match="invalid byte range"):
            backend.get_range("packs/00/r", offset, length)
    assert backend.get_range("packs/00/r", 6, 1 << 62) == b"6789"
    assert backend.get_range("packs/00/r", 1 << 40, 10) == b""
