"""A symbolic link planted in a local vault is refused as what it is, never followed.

The local backend opens objects with ``O_NOFOLLOW``: a pack replaced by a link to
``/dev/zero`` must be refused by that check, naming the object, not later by the AEAD
that happens to reject the zeros; a key slot planted as such a link is skipped and the
real slot still opens.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from corehelpers import PASSPHRASE

import vault
from vault.errors import DecryptionError, IntegrityError
from vault.layout import pack_key


def test_a_slot_planted_as_a_symlink_to_dev_zero_is_skipped(local_vault: vault.Vault, tmp_path: Path) -> None:
    root = Path(local_vault.backend.url.removeprefix("file://"))
    os.symlink("/dev/zero", root / "keys" / "owner" / ("0" * 32))
    reopened = vault.open_vault(str(root), passphrase=PASSPHRASE)
    try:
        reopened.unlock()  # the real slot still opens; the planted one is not read
        assert reopened.keys.unlocked
    finally:
        reopened.close()


def test_a_pack_replaced_by_a_symlink_is_refused_as_a_symlink(
    local_vault: vault.Vault, tmp_path: Path
) -> None:
    src = tmp_path / "m.bin"
    src.write_bytes(os.urandom(100_000))
    local_vault.push(src, "team/m")
    root = Path(local_vault.backend.url.removeprefix("file://"))
    (pack_row,) = local_vault.catalog.all_packs()
    pack = root / pack_key(pack_row.id)
    pack.unlink()
    os.symlink("/dev/zero", pack)

    with pytest.raises(IntegrityError) as info:
        local_vault.pull("team/m", tmp_path / "out.bin")
    # The refusal is the link check's, naming the object; not the AEAD rejecting /dev/zero's bytes.
    assert not isinstance(info.value, DecryptionError)
    assert pack_key(pack_row.id) in str(info.value)
    assert "symbolic link" in str(info.value)
    assert not (tmp_path / "out.bin").exists()
