"""What a signature covers: file listing, ordering, ignores, symlinks, streaming hashes."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from vault.errors import NotFoundError, UsageError
from vault.signing import hash_directory
from vault.signing.hashing import hash_file, hash_files, list_files


def test_directory_listing_is_relative_posix_in_component_order(model_dir: Path) -> None:
    assert list_files(model_dir) == [
        ".hidden",
        "a/b",
        "a-b",
        "a.b",
        "tokenizer ünïcode.json",
        "weights/empty.bin",
        "weights/model.safetensors",
    ]


def test_digests_are_sha256_of_the_whole_file(model_dir: Path) -> None:
    by_path = {f.path: f for f in hash_directory(model_dir, max_workers=3)}
    weights = (model_dir / "weights" / "model.safetensors").read_bytes()
    assert by_path["weights/model.safetensors"].sha256 == hashlib.sha256(weights).digest()
    assert by_path["weights/model.safetensors"].size == len(weights)
    assert by_path["weights/empty.bin"].sha256 == hashlib.sha256(b"").digest()


def test_single_file_is_named_dot(model_dir: Path) -> None:
    [entry] = hash_directory(model_dir / "a.b")
    assert entry.path == "."
    assert entry.sha256 == hashlib.sha256(b"a dot b\n").digest()


def test_only_top_level_git_paths_are_ignored_by_default(model_dir: Path) -> None:
    (model_dir / "weights" / ".gitignore").write_bytes(b"nested, so signed\n")
    names = list_files(model_dir)
    assert "weights/.gitignore" in names
    assert not any(n.startswith(".git") for n in names)


def test_ignored_directory_hides_everything_below_it(model_dir: Path) -> None:
    names = list_files(model_dir, ["weights", "a.b"])
    assert "a.b" not in names and not any(n.startswith("weights/") for n in names)
    assert ".gitignore" in names  # an explicit list replaces the defaults


def test_streaming_with_a_tiny_block_gives_the_same_digest(tmp_path: Path) -> None:
    target = tmp_path / "f"
    data = os.urandom(100_003)
    target.write_bytes(data)
    assert hash_file(target, block_size=4096) == (hashlib.sha256(data).digest(), len(data))
    with pytest.raises(UsageError, match="block size"):
        hash_file(target, block_size=64 * 1024 * 1024)


def test_symlinks_are_refused_unless_allowed(model_dir: Path) -> None:
    (model_dir / "link").symlink_to(model_dir / "a.b")
    (model_dir / "dirlink").symlink_to(model_dir / "weights")
    with pytest.raises(UsageError, match="symlink"):
        list_files(model_dir)
    names = list_files(model_dir, allow_symlinks=True)
    assert "link" in names and not any(n.startswith("dirlink") for n in names)


def test_fifo_is_refused_without_being_opened(model_dir: Path) -> None:
    os.mkfifo(model_dir / "pipe")
    with pytest.raises(UsageError, match="not a regular file"):
        hash_directory(model_dir)


def test_file_vanishing_during_hashing_is_not_found(model_dir: Path) -> None:
    names = [*list_files(model_dir), "weights/gone.bin"]
    with pytest.raises(NotFoundError, match=r"'weights/gone\.bin' disappeared"):
        hash_files(model_dir, names, max_workers=2)


def test_missing_model_path_is_not_found(tmp_path: Path) -> None:
    with pytest.raises(NotFoundError):
        hash_directory(tmp_path / "nope")
