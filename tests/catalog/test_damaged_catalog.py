"""A damaged catalog database, or one whose driver is missing, is a clear error, never "unexpected".

Corruption (a truncated SQLite file, a file of garbage, a FIFO in its place) is a
CatalogDamagedError (exit 5) pointing at a backup and ``catalog rebuild``, both when the
catalog is opened and when it breaks under an open vault. A PostgreSQL URL without its
driver installed is a ConfigurationError (exit 8) naming the extra to install.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Callable, Iterator
from pathlib import Path
from types import FrameType

import pytest

import vault
from vault import layout
from vault.catalog import open_catalog
from vault.catalog.engine import is_damage
from vault.errors import CatalogDamagedError, ConfigurationError, IntegrityError

MakeVault = Callable[..., vault.Vault]
PASSPHRASE = "correct horse battery staple"


@pytest.fixture(autouse=True)
def _never_hang() -> Iterator[None]:
    def hung(signum: int, frame: FrameType | None) -> None:
        raise AssertionError("opening the catalog blocked")

    previous = signal.signal(signal.SIGALRM, hung)
    signal.alarm(20)
    yield
    signal.alarm(0)
    signal.signal(signal.SIGALRM, previous)


def _assert_damaged(err: CatalogDamagedError, path: Path) -> None:
    assert isinstance(err, IntegrityError) and err.exit_code == 5
    message = str(err)
    assert f"the catalog sqlite:///{path} is damaged" in message
    assert "restore it from a backup or run `mlvault catalog rebuild`" in message


def _pushed_vault_dir(make_vault: MakeVault, tmp_path: Path) -> Path:
    v = make_vault()
    src = tmp_path / "src.bin"
    src.write_bytes(os.urandom(100_000))
    v.push(src, "team/m")
    root = Path(v.backend.url.removeprefix("file://"))
    v.close()
    return root


def test_a_file_of_garbage(tmp_path: Path) -> None:
    path = tmp_path / "catalog.sqlite"
    path.write_bytes(os.urandom(8192))
    with pytest.raises(CatalogDamagedError, match="file is not a database") as info:
        open_catalog(f"sqlite:///{path}")
    _assert_damaged(info.value, path)


def test_a_truncated_catalog_on_open(make_vault: MakeVault, tmp_path: Path) -> None:
    root = _pushed_vault_dir(make_vault, tmp_path)
    catalog = root / layout.CATALOG_FILE
    os.truncate(catalog, 4096)
    with pytest.raises(CatalogDamagedError, match="malformed") as info:
        vault.open_vault(str(root), passphrase=PASSPHRASE)
    _assert_damaged(info.value, catalog)


def test_a_catalog_damaged_under_an_open_vault(make_vault: MakeVault, tmp_path: Path) -> None:
    root = _pushed_vault_dir(make_vault, tmp_path)
    catalog_path = root / layout.CATALOG_FILE
    catalog = open_catalog(f"sqlite:///{catalog_path}")
    assert [a.name for a in catalog.list_artifacts()] == ["team/m"]
    size = catalog_path.stat().st_size
    with catalog_path.open("r+b") as handle:  # keep the header page, wreck every other page
        handle.seek(4096)
        handle.write(b"\xa5" * (size - 4096))
    try:
        for query in (catalog.list_artifacts, catalog.all_versions, catalog.all_packs):
            with pytest.raises(CatalogDamagedError) as info:
                query()
            _assert_damaged(info.value, catalog_path)
    finally:
        catalog.close()


def test_a_fifo_in_place_of_the_catalog(tmp_path: Path) -> None:
    path = tmp_path / "catalog.sqlite"
    os.mkfifo(path)
    with pytest.raises(CatalogDamagedError, match="is a FIFO") as info:
        open_catalog(f"sqlite:///{path}")
    _assert_damaged(info.value, path)


def test_a_directory_in_place_of_the_catalog(tmp_path: Path) -> None:
    path = tmp_path / "catalog.sqlite"
    path.mkdir()
    with pytest.raises(CatalogDamagedError, match="is a directory"):
        open_catalog(f"sqlite:///{path}")


def test_postgres_without_its_driver_names_the_extra() -> None:
    pytest.importorskip("sqlalchemy.dialects.postgresql.pg8000")
    try:
        import pg8000  # noqa: F401
    except ImportError:
        pass
    else:
        pytest.skip("pg8000 is installed: this test needs a PostgreSQL driver that is not")
    with pytest.raises(ConfigurationError) as info:
        open_catalog("postgresql+pg8000://mlvault@127.0.0.1:1/catalog")
    assert info.value.exit_code == 8
    assert "the PostgreSQL driver is not installed: pip install 'mlvault[postgres]'" in str(info.value)


def test_an_unknown_driver_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError, match="unsupported catalog driver 'postgresql\\+nosuch'"):
        open_catalog("postgresql+nosuch://mlvault@127.0.0.1:1/catalog")


class _DriverError(Exception):
    def __init__(self, *, sqlite_errorcode: int | None = None, sqlstate: str | None = None) -> None:
        super().__init__("driver error")
        if sqlite_errorcode is not None:
            self.sqlite_errorcode = sqlite_errorcode
        if sqlstate is not None:
            self.sqlstate = sqlstate


def test_which_driver_errors_mean_damage() -> None:
    # SQLITE_CORRUPT (11, and extended codes such as SQLITE_CORRUPT_INDEX), SQLITE_NOTADB (26);
    # PostgreSQL data_corrupted / index_corrupted. Busy, locked and constraint errors are not damage.
    assert is_damage(_DriverError(sqlite_errorcode=11))
    assert is_damage(_DriverError(sqlite_errorcode=11 | (3 << 8)))
    assert is_damage(_DriverError(sqlite_errorcode=26))
    assert is_damage(_DriverError(sqlstate="XX001"))
    assert is_damage(_DriverError(sqlstate="XX002"))
    assert not is_damage(_DriverError(sqlite_errorcode=5))
    assert not is_damage(_DriverError(sqlite_errorcode=19))
    assert not is_damage(_DriverError(sqlstate="23505"))
    assert not is_damage(None)
