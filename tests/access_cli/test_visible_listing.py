"""Listings filtered inside the query: the catalog takes the artifact ids the caller may list and
asks with ``IN`` in chunks, so a page or a count never includes the rest (SQLite and PostgreSQL)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from pathlib import Path

from sqlalchemy import insert

import vault
from vault.access.patterns import Capability, Rule, visible
from vault.catalog.schema import artifacts
from vault.catalog.versions import IN_CHUNK

NOW = dt.datetime(2026, 6, 1, tzinfo=dt.UTC)


def test_only_ids_filters_inside_the_query_in_chunks(
    make_vault: Callable[..., vault.Vault], catalog_url: str | None, tmp_path: Path
) -> None:
    v = make_vault(catalog_url)
    src = tmp_path / "f"
    src.write_bytes(b"weights")
    v.push(src, "team/a/model", tags=["prod"])
    count = 3 * IN_CHUNK + 7  # four IN lists
    rows = [
        {"name": f"team/b/m{i:05d}", "namespace": "team", "kind": "model", "created_at": NOW}
        for i in range(count)
    ]
    with v.catalog.engine.begin() as conn:
        conn.execute(insert(artifacts), rows)
        conn.execute(
            insert(artifacts), [{"name": "other/x", "namespace": "other", "kind": "model", "created_at": NOW}]
        )

    ids = v.catalog.artifact_ids("team/")
    assert len(ids) == count + 1 and "other/x" not in ids
    rules = [
        Rule("p", "team/a/*", frozenset({Capability.LIST})),
        Rule("p", "team/b/+", frozenset({Capability.LIST})),
    ]
    rules.append(Rule("p", "team/b/m00001", deny=True))
    shown = visible(rules, "p", ids)
    assert len(shown) == count
    listed = v.catalog.list_artifacts("team/", only_ids=[ids[name] for name in shown])
    assert [r.name for r in listed] == sorted(shown)
    (model,) = [r for r in listed if r.name == "team/a/model"]
    assert model.latest == 1 and model.tags == {"prod": 1}

    # a prefix still applies, and ids outside it stay out
    some = [ids["team/a/model"], ids["team/b/m00002"]]
    assert [r.name for r in v.catalog.list_artifacts("team/b/", only_ids=some)] == ["team/b/m00002"]
    assert v.catalog.list_artifacts("team/", only_ids=[]) == []
    v.close()
