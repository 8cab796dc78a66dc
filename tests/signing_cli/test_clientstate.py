"""``vault.clientstate``: the one locked, atomic, size-capped store behind every client-side pin."""

from __future__ import annotations

import json
import multiprocessing
from pathlib import Path

import pytest

from vault.clientstate import ClientState, config_dir
from vault.clientstate.jsonfile import MAX_STATE_FILE_BYTES
from vault.errors import ConfigurationError, UsageError

VAULT = "a" * 32


def test_config_dir_comes_from_the_environment_else_the_platform(tmp_path: Path) -> None:
    assert config_dir({"MLVAULT_CONFIG_DIR": str(tmp_path)}) == tmp_path
    assert config_dir({}).name == "mlvault"


def test_a_catalog_is_pinned_on_first_use_and_a_different_one_refused(tmp_path: Path) -> None:
    state = ClientState(tmp_path)
    state.pin_catalog(VAULT, "postgresql://db/team")
    state.pin_catalog(VAULT, "postgresql://db/team")
    with pytest.raises(
        ConfigurationError, match=r"now names catalog .*this client pinned 'postgresql://db/team'"
    ):
        state.pin_catalog(VAULT, "postgresql://evil/team")
    # the historical flat format, so pins written by earlier versions keep working
    assert json.loads((tmp_path / "catalog-pins.json").read_text()) == {VAULT: "postgresql://db/team"}
    assert (tmp_path / "catalog-pins.json").stat().st_mode & 0o777 == 0o600


def test_existing_catalog_pins_survive(tmp_path: Path) -> None:
    (tmp_path / "catalog-pins.json").write_text(json.dumps({VAULT: "postgresql://old/pin"}))
    with pytest.raises(ConfigurationError, match="pinned 'postgresql://old/pin'"):
        ClientState(tmp_path).pin_catalog(VAULT, "postgresql://new/pin")


def test_the_last_slot_is_remembered_per_vault(tmp_path: Path) -> None:
    state = ClientState(tmp_path)
    assert state.last_slot(VAULT) is None
    state.remember_slot(VAULT, "b" * 32)
    state.remember_slot("c" * 32, "d" * 32)
    assert ClientState(tmp_path).last_slot(VAULT) == "b" * 32
    with pytest.raises(UsageError):
        state.remember_slot(VAULT, "../config")


@pytest.mark.parametrize("content", ["[1, 2]", "{not json", '{"x": 3}'])
def test_a_malformed_state_file_is_a_configuration_error(tmp_path: Path, content: str) -> None:
    (tmp_path / "catalog-pins.json").write_text(content)
    with pytest.raises(ConfigurationError, match="catalog pin file"):
        ClientState(tmp_path).pin_catalog(VAULT, "sqlite:///x")


def test_an_oversized_state_file_is_refused_without_reading_it_all(tmp_path: Path) -> None:
    (tmp_path / "unlock-slots.json").write_bytes(b" " * (MAX_STATE_FILE_BYTES + 1))
    with pytest.raises(ConfigurationError, match="over"):
        ClientState(tmp_path).last_slot(VAULT)


def _pin_many(root: str, start: int) -> None:
    state = ClientState(Path(root))
    for i in range(start, start + 20):
        state.pin_catalog(f"{i:032x}", f"postgresql://db/{i}")


def test_concurrent_clients_do_not_lose_each_others_pins(tmp_path: Path) -> None:
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_pin_many, args=(str(tmp_path), n * 100)) for n in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    pins = json.loads((tmp_path / "catalog-pins.json").read_text())
    assert len(pins) == 80
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]
