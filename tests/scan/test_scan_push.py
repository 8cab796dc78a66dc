"""Push scans before storing: every dangerous file of the corpus is refused (exit 18), nothing stored."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import scancorpus as corpus

import vault
from vault.errors import UnsafeContentError


@pytest.mark.parametrize("name", sorted(corpus.malicious()))
def test_every_malicious_file_is_refused_by_push_and_nothing_is_stored(
    make_vault: Callable[..., vault.Vault], tmp_path: Path, name: str
) -> None:
    v = make_vault()
    path = tmp_path / name
    path.write_bytes(corpus.malicious()[name])
    with pytest.raises(UnsafeContentError) as caught:
        v.push(path, "team/m")
    assert caught.value.exit_code == 18 and name in str(caught.value)
    assert v.list_artifacts("") == []
    assert not list(v.backend.list("packs/"))
