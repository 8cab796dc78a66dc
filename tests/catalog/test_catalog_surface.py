"""The Catalog's flat interface is the union of its aggregates' methods, none shadowing another."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest

from vault.catalog import Catalog, open_catalog
from vault.catalog.engine import Aggregate, create_catalog_engine, parse_url


def test_aggregate_method_names_are_distinct() -> None:
    parts = [part for part in Catalog.__mro__[1:] if issubclass(part, Aggregate) and part is not Aggregate]
    assert len(parts) == 9
    own = {part: {name for name in vars(part) if not name.startswith("__")} for part in parts}
    for first, second in itertools.combinations(parts, 2):
        assert not own[first] & own[second], (first.__name__, second.__name__)


def test_aggregates_are_not_attributes(tmp_path: Path) -> None:
    catalog = open_catalog(f"sqlite:///{tmp_path / 'catalog.sqlite'}")
    try:
        for name in ("info", "keyrings", "chunks", "versions"):
            assert not hasattr(catalog, name)
        assert catalog.display_url == f"sqlite:///{tmp_path / 'catalog.sqlite'}"
    finally:
        catalog.close()


def test_display_url_hides_the_password() -> None:
    pytest.importorskip("psycopg")
    engine = create_catalog_engine(parse_url("postgresql+psycopg://alice:s3cret@db.example:5432/vault"))
    try:  # no connection is made: the URL is only rendered
        assert Catalog(engine).display_url == "postgresql+psycopg://alice:***@db.example:5432/vault"
    finally:
        engine.dispose()
