"""Catalog reads cost a constant number of queries, however many versions and artifacts exist."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from sqlalchemy import event

from vault.catalog import Catalog, FileRow, NewVersion, open_catalog


@pytest.fixture
def catalog(any_catalog_url: str) -> Iterator[Catalog]:
    opened = open_catalog(any_catalog_url)
    yield opened
    opened.close()


def _fill(catalog: Catalog, artifacts: int, versions: int) -> None:
    ring = catalog.add_keyring("team", uuid.uuid4().hex)
    for a in range(artifacts):
        for v in range(versions):
            digest = hashlib.sha256(f"{a}/{v}".encode()).hexdigest()
            catalog.commit_version(
                NewVersion(
                    id=uuid.uuid4().hex,
                    artifact=f"team/a{a}",
                    namespace="team",
                    kind="model",
                    digest=digest,
                    size=v,
                    root="file",
                    ring_id=ring,
                    created_by="test",
                    files=[FileRow("f.bin", v, 0o644, digest)],
                    tags=[f"t{v}"] if v % 2 else [],
                )
            )


def _queries(catalog: Catalog, read: Callable[[], Any]) -> int:
    count = 0

    def counted(*_args: Any) -> None:
        nonlocal count
        count += 1

    event.listen(catalog.engine, "before_cursor_execute", counted)
    try:
        read()
    finally:
        event.remove(catalog.engine, "before_cursor_execute", counted)
    return count


@pytest.mark.parametrize(
    "read",
    [
        lambda c: c.list_artifacts(),
        lambda c: c.list_artifacts("team/"),
        lambda c: c.list_versions("team/a0"),
        lambda c: c.all_versions(),
        lambda c: c.resolve("team/a0"),
    ],
)
def test_reads_cost_the_same_for_few_and_many_versions(
    catalog: Catalog, any_catalog_url: str, read: Callable[[Catalog], Any]
) -> None:
    _fill(catalog, artifacts=2, versions=2)
    few = _queries(catalog, lambda: read(catalog))
    _fill(catalog, artifacts=12, versions=10)  # adds team/a0..a11 versions; a0 now has 12
    many = _queries(catalog, lambda: read(catalog))
    assert few == many
    assert many <= 4


def test_summaries_are_right(catalog: Catalog) -> None:
    _fill(catalog, artifacts=3, versions=4)
    listed = catalog.list_artifacts()
    assert [a.name for a in listed] == ["team/a0", "team/a1", "team/a2"]
    assert all(a.latest == 4 and a.size == 3 and a.tags == {"t1": 2, "t3": 4} for a in listed)
    versions = catalog.list_versions("team/a1")
    assert [v.number for v in versions] == [4, 3, 2, 1]
    assert [v.tags for v in versions] == [("t3",), (), ("t1",), ()]
    assert catalog.resolve("team/a2", tag="t3").number == 4
    assert len(catalog.all_versions()) == 12
