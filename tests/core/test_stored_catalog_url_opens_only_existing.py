"""A catalog URL that came from storage may only open an existing catalog of this vault.

Storage is writable by an attacker; the ``catalog`` field of its config must never make a
client create a database file, run migrations on someone else's database, or pin a URL
that did not open. What works for teams stays: a second client finds the team's existing
PostgreSQL catalog from the stored URL and pins it.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from corehelpers import CHEAP_KDF, PASSPHRASE, write_random
from sqlalchemy import create_engine, inspect

import vault
from vault.clientstate import ClientState
from vault.errors import ConfigurationError


def _restore_config(root: Path, catalog: str) -> None:
    path = root / "config"
    config = json.loads(path.read_text())
    config["catalog"] = catalog
    os.chmod(path, 0o600)
    path.write_text(json.dumps(config))


def test_a_stored_sqlite_url_creates_nothing_and_pins_nothing(tmp_path: Path) -> None:
    root = tmp_path / "v"
    vault.init_vault(str(root), passphrase=PASSPHRASE, kdf=CHEAP_KDF).close()
    _restore_config(root, f"sqlite:///{tmp_path / 'planted.sqlite'}")
    state = ClientState(tmp_path / "client")
    with pytest.raises(ConfigurationError, match="never followed"):
        vault.open_vault(str(root), passphrase=PASSPHRASE, client_state=state)
    assert not (tmp_path / "planted.sqlite").exists()
    assert state.pinned_catalog(json.loads((root / "config").read_text())["vault_id"]) is None


@pytest.mark.postgres
def test_a_stored_url_of_another_database_is_neither_migrated_nor_pinned(
    tmp_path: Path, postgres_url: str
) -> None:
    root = tmp_path / "v"
    vault.init_vault(str(root), passphrase=PASSPHRASE, kdf=CHEAP_KDF).close()
    _restore_config(root, postgres_url)  # an empty database the vault never used
    state = ClientState(tmp_path / "client")
    with pytest.raises(ConfigurationError, match="nothing was created or migrated"):
        vault.open_vault(str(root), passphrase=PASSPHRASE, client_state=state)
    engine = create_engine(postgres_url)
    try:
        assert inspect(engine).get_table_names() == []
    finally:
        engine.dispose()
    assert not (tmp_path / "client" / "catalog-pins.json").exists()


@pytest.mark.postgres
def test_a_second_client_finds_and_pins_the_team_catalog(tmp_path: Path, postgres_url: str) -> None:
    root = tmp_path / "v"
    first = ClientState(tmp_path / "first")
    with vault.init_vault(
        str(root), passphrase=PASSPHRASE, kdf=CHEAP_KDF, catalog_url=postgres_url, client_state=first
    ) as v:
        v.push(write_random(tmp_path / "m.bin", 10_000, seed=4), "team/m")
    second = ClientState(tmp_path / "second")
    with vault.open_vault(str(root), passphrase=PASSPHRASE, client_state=second) as v:
        assert [row.name for row in v.list_artifacts()] == ["team/m"]
        assert second.pinned_catalog(v.config.vault_id) == v.config.catalog
