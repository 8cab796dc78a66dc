"""The catalog a client uses is its own choice, not storage's.

Storage holds only a shareable catalog URL (passwords stripped); a client pins the catalog
it first used for a vault and refuses a config edited to point elsewhere, and never adopts
an empty catalog for a vault that already has versions.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

import pytest
from corehelpers import CHEAP_KDF, PASSPHRASE

import vault
from vault.bootstrap import shareable_catalog_url
from vault.clientstate import ClientState
from vault.errors import ConfigurationError


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("postgresql+psycopg://ci:hunter2@db/mlvault", "postgresql+psycopg://ci@db/mlvault"),
        (
            "postgresql+psycopg://ci@db/mlvault?password=hunter2&sslmode=require",
            "postgresql+psycopg://ci@db/mlvault?sslmode=require",
        ),
        ("sqlite:////tmp/x.sqlite", "sqlite:////tmp/x.sqlite"),
    ],
)
def test_catalog_urls_lose_their_passwords_before_storage(url: str, expected: str) -> None:
    assert shareable_catalog_url(url) == expected
    assert "hunter2" not in shareable_catalog_url(url)


def _init_with_catalog(tmp_path: Path, catalog: str, state: ClientState) -> Path:
    root = tmp_path / "v"
    vault.init_vault(
        str(root), passphrase=PASSPHRASE, kdf=CHEAP_KDF, catalog_url=catalog, client_state=state
    ).close()
    return root


def test_storage_cannot_redirect_a_client_to_another_catalog(tmp_path: Path) -> None:
    state = ClientState(tmp_path / "client")
    root = _init_with_catalog(tmp_path, f"sqlite:///{tmp_path / 'team.sqlite'}", state)
    assert json.loads((state.root / "catalog-pins.json").read_text())  # init pinned the catalog
    config = json.loads((root / "config").read_text())
    config["catalog"] = f"sqlite:///{tmp_path / 'attacker.sqlite'}"
    os.chmod(root / "config", 0o644)
    (root / "config").unlink()
    (root / "config").write_text(json.dumps(config))
    with pytest.raises(ConfigurationError, match="pinned"):
        vault.open_vault(str(root), passphrase=PASSPHRASE, client_state=state)
    assert not (tmp_path / "attacker.sqlite").exists()


def test_an_empty_catalog_is_not_adopted_for_a_vault_with_versions(
    make_vault: Callable[..., vault.Vault], tmp_path: Path
) -> None:
    v = make_vault()
    src = tmp_path / "m.bin"
    src.write_bytes(b"payload")
    v.push(src, "team/m")
    root = v.backend.url.removeprefix("file://")
    v.close()
    with pytest.raises(ConfigurationError, match="empty"):
        vault.open_vault(root, passphrase=PASSPHRASE, catalog_url=f"sqlite:///{tmp_path / 'fresh.sqlite'}")
