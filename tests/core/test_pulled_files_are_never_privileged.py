"""A pulled file never becomes a privileged program: setuid, setgid and sticky bits are dropped."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import vault


def test_pull_never_restores_setuid_setgid_or_sticky_bits(local_vault: vault.Vault, tmp_path: Path) -> None:
    src = tmp_path / "tool"
    src.write_bytes(b"#!/bin/sh\n")
    os.chmod(src, 0o6755)
    local_vault.push(src, "team/tool")
    local_vault.pull("team/tool", tmp_path / "out")
    mode = stat.S_IMODE((tmp_path / "out").stat().st_mode)
    assert mode == 0o755
