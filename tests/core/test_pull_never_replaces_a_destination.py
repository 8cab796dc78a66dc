"""Pull's final rename never replaces a destination that appeared while it was writing."""

from __future__ import annotations

from pathlib import Path

import pytest

from vault.errors import DestinationExistsError
from vault.repository.materialize import rename_noreplace


def test_final_rename_never_replaces_a_destination_that_appeared(tmp_path: Path) -> None:
    src_dir, dst_dir = tmp_path / "staged", tmp_path / "dest"
    src_dir.mkdir()
    (src_dir / "f").write_text("new")
    dst_dir.mkdir()  # an empty directory: plain rename(2) would silently replace it
    with pytest.raises(DestinationExistsError):
        rename_noreplace(src_dir, dst_dir)
    assert (src_dir / "f").exists() and not any(dst_dir.iterdir())
    src_file, dst_file = tmp_path / "a", tmp_path / "b"
    src_file.write_text("new")
    dst_file.write_text("theirs")
    with pytest.raises(DestinationExistsError):
        rename_noreplace(src_file, dst_file)
    assert dst_file.read_text() == "theirs"
    rename_noreplace(src_file, tmp_path / "c")
    assert (tmp_path / "c").read_text() == "new" and not src_file.exists()
