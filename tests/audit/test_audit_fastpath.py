"""The fast paths of verification: canonical bytes of common rows, and rows read back as tuples.

The fast canonical path must give exactly the general path's bytes, and must never accept a row
the general path refuses (it hands such rows over, so the error names the same field).
"""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from auditfakes import T0, VAULT_ID, VERIFIER, build_chain
from sqlalchemy import text

from vault.audit import chain
from vault.audit.chain import AuditRow, canonical, verify
from vault.catalog import open_catalog
from vault.catalog.audit import PendingRow
from vault.errors import UsageError

FLAT_ROW = AuditRow(7, T0, "user1@host", "pull", "team/m1@v3", "ok", {"files": 3, "bytes": 1234, "ok": True})
FLAT_CANONICAL = (
    b'{"action":"pull","at":"2026-03-01T09:00:00.000000Z","details":{"bytes":1234,"files":3,"ok":true},'
    b'"outcome":"ok","principal":"user1@host","seq":7,"target":"team/m1@v3","v":1}'
)


def test_fast_path_known_answer() -> None:
    assert chain._fast(FLAT_ROW) == FLAT_CANONICAL
    assert canonical(FLAT_ROW) == FLAT_CANONICAL == chain._general(FLAT_ROW)


_VALUES: list[object] = [
    None,
    True,
    False,
    0,
    -1,
    2**53 - 1,
    -(2**53 - 1),
    2**53,
    -(2**53),
    1.5,
    float("nan"),
    "",
    'é\u2028"\\\n',
    "\ud800",
    "\U0001f600",
    ["a", 1],
    {"k": "v"},
    (1, 2),
    b"bytes",
]
_TEXTS: list[object] = ["alice", "", "ü/ß", "\udfff", 5, None]
_TIMES = [
    T0,
    datetime(2026, 3, 1, 10, tzinfo=timezone(timedelta(hours=1))),
    datetime(2026, 3, 1, 9, tzinfo=ZoneInfo("UTC")),
    datetime(2026, 7, 1, 9, tzinfo=ZoneInfo("Europe/London")),
    datetime(1, 1, 1, tzinfo=UTC),
    datetime(2026, 3, 1, 9),
]


def _outcome(function: object, row: AuditRow) -> tuple[str, object]:
    try:
        return "ok", function(row)  # type: ignore[operator]
    except UsageError as exc:
        return "error", str(exc)


def test_fast_and_general_paths_agree_on_every_row() -> None:
    """Random rows over every kind of value: the same bytes, or the same error."""
    rnd = random.Random(10)
    kinds = {"fast": 0, "general": 0, "error": 0}
    for _ in range(4000):
        details: object = {
            rnd.choice(["a", "b", "ü", "\ud800", 3]): rnd.choice(_VALUES) for _ in range(rnd.randrange(4))
        }
        if rnd.random() < 0.05:
            details = rnd.choice([["list"], "text", None])
        row = AuditRow(
            rnd.choice([1, 2, 10**6, 0, -3, True]),
            rnd.choice(_TIMES),
            *(rnd.choice(_TEXTS) if rnd.random() < 0.2 else "x" for _ in range(4)),  # type: ignore[arg-type]
            details,  # type: ignore[arg-type]
        )
        general = _outcome(chain._general, row)
        assert _outcome(canonical, row) == general
        fast = chain._fast(row)
        if fast is not None:
            assert general == ("ok", fast)
        if fast is not None:
            kinds["fast"] += 1
        else:
            kinds["general" if general[0] == "ok" else "error"] += 1
    assert min(kinds.values()) > 100, kinds  # each path is exercised


def test_fast_path_leaves_oversized_rows_to_the_general_path() -> None:
    row = AuditRow(1, T0, "p", "pull", "t", "ok", {"blob": "x" * chain.MAX_ROW_BYTES})
    assert chain._fast(row) is None
    with pytest.raises(UsageError, match="over 65536 bytes"):
        canonical(row)


def test_long_chain_of_fast_rows_verifies_and_names_an_edit() -> None:
    rows = build_chain(
        [
            AuditRow(i, T0 + timedelta(seconds=i), f"u{i % 7}", "pull", f"t/{i}", "ok", {"n": i})
            for i in range(1, 2001)
        ]
    )
    assert verify(rows, [], vault_id=VAULT_ID, verifier=VERIFIER).ok
    edited = list(rows)
    old = edited[1500]
    edited[1500] = type(old)(
        AuditRow(old.row.seq, old.row.at, old.row.principal, old.row.action, old.row.target, "failed", {}),
        old.prev_hash,
        old.hash,
    )
    report = verify(edited, [], vault_id=VAULT_ID, verifier=VERIFIER)
    assert not report.ok and report.first_bad_seq == old.row.seq


@pytest.mark.parametrize(
    ("column", "value"),
    [
        ("hash", "upper"),  # the same bytes in upper case: not what the appender wrote
        ("prev_hash", "upper"),
        ("hash", " pad"),  # bytes.fromhex skips spaces; a 64-character value with one is refused
        ("details", "[1]"),
        ("details", "{bad json"),
    ],
)
def test_rows_read_back_that_the_appender_cannot_have_written_are_named(
    tmp_path: Path, column: str, value: str
) -> None:
    catalog = open_catalog(f"sqlite:///{tmp_path / 'c.sqlite'}")

    def link(prev: chain.StoredRow | None, row: AuditRow) -> chain.StoredRow:
        return chain.append(prev, row, VAULT_ID)

    pending = [PendingRow(T0 + timedelta(seconds=i), "p", "pull", f"t{i}", "ok", {"n": i}) for i in range(5)]
    written = catalog.append_audit(link, pending)
    assert list(catalog.audit_stored_rows(batch=2)) == written  # batches join up in order
    with catalog.engine.begin() as conn:
        if value == "upper":
            conn.execute(text(f"UPDATE audit_log SET {column} = upper({column}) WHERE seq = 3"))
        elif value == " pad":
            conn.execute(text(f"UPDATE audit_log SET {column} = ' ' || substr({column}, 2) WHERE seq = 3"))
        else:
            conn.execute(text(f"UPDATE audit_log SET {column} = :v WHERE seq = 3"), {"v": value})
    report = verify(catalog.audit_stored_rows(), [], vault_id=VAULT_ID, verifier=VERIFIER)
    assert not report.ok and report.first_bad_seq == 3, report
    catalog.close()
