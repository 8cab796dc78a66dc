"""The audit hash chain: canonical encoding, known answers, and every kind of tampering."""

from __future__ import annotations

import dataclasses
import hashlib
from datetime import UTC, datetime, timedelta, timezone

import pytest
from auditfakes import (
    OTHER_VAULT_ID,
    T0,
    VAULT_ID,
    VERIFIER,
    HmacCheckpointVerifier,
    build_chain,
    make_row,
    sign_at,
)

from vault.audit.chain import (
    AuditRow,
    StoredRow,
    VerifyReport,
    append,
    canonical,
    genesis_hash,
    row_hash,
    verify,
)
from vault.audit.checkpoint import SignedCheckpoint
from vault.errors import UsageError

KAT_ROW = AuditRow(
    1,
    datetime(2026, 3, 1, 10, 30, tzinfo=timezone(timedelta(hours=1))),
    "p-ålice",
    "pull",
    "team/vision/resnet@v3",
    "ok",
    {"bytes": 12345, "z": [True, None, "é"], "a": {"y": 1, "x": -2}},
)
KAT_CANONICAL = (
    '{"action":"pull","at":"2026-03-01T09:30:00.000000Z","details":{"a":{"x":-2,"y":1},"bytes":12345,'
    '"z":[true,null,"é"]},"outcome":"ok","principal":"p-ålice","seq":1,"target":"team/vision/resnet@v3","v":1}'
).encode()
KAT_GENESIS = "3bc12acb68fac4e1a43a2e550d2f7bfe5ff85cea20eccb9299b2776a20eba7df"
KAT_ROW_HASH = "74758781ece8e3419bbb9d824ab7b816adc7ae8637a5cd2e71117496ae96085c"


def test_known_answers() -> None:
    assert canonical(KAT_ROW) == KAT_CANONICAL
    genesis = hashlib.sha256(b"mlvault/audit/genesis/v1\x00" + VAULT_ID).digest()
    assert genesis_hash(VAULT_ID) == genesis and genesis.hex() == KAT_GENESIS
    assert row_hash(genesis, KAT_ROW) == hashlib.sha256(genesis + KAT_CANONICAL).digest()
    assert row_hash(genesis, KAT_ROW).hex() == KAT_ROW_HASH
    assert append(None, KAT_ROW, VAULT_ID) == StoredRow(KAT_ROW, genesis, bytes.fromhex(KAT_ROW_HASH))


def test_canonical_encoding_has_one_answer_per_row() -> None:
    utc = dataclasses.replace(KAT_ROW, at=datetime(2026, 3, 1, 9, 30, tzinfo=UTC))
    reordered = dataclasses.replace(
        KAT_ROW, details={"z": (True, None, "é"), "a": {"x": -2, "y": 1}, "bytes": 12345}
    )
    assert canonical(utc) == canonical(reordered) == KAT_CANONICAL
    assert genesis_hash(VAULT_ID) != genesis_hash(OTHER_VAULT_ID)


@pytest.mark.parametrize(
    ("changes", "why"),
    [
        ({"at": datetime(2026, 3, 1, 9, 30)}, "no time zone"),
        ({"details": {"ratio": 0.5}}, "float"),
        ({"details": {"n": 2**53}}, "2\\*\\*53"),
        ({"details": {"s": "\ud800"}}, "not valid Unicode"),
        ({"details": {1: "x"}}, "must be a string"),
        ({"details": {"b": b"raw"}}, "bytes"),
        ({"details": {"big": "x" * 70_000}}, "over 65536 bytes"),
        ({"principal": None}, "principal must be a string"),
        ({"seq": 0}, "positive integer"),
        ({"seq": True}, "positive integer"),
        ({"details": ["not", "an", "object"]}, "JSON object"),
    ],
)
def test_rows_without_a_canonical_encoding_are_refused(changes: dict[str, object], why: str) -> None:
    with pytest.raises(UsageError, match=why):
        canonical(dataclasses.replace(KAT_ROW, **changes))  # type: ignore[arg-type]


def test_nesting_is_capped() -> None:
    deep: dict[str, object] = {}
    for _ in range(20):
        deep = {"d": deep}
    with pytest.raises(UsageError, match="nested deeper"):
        canonical(dataclasses.replace(KAT_ROW, details=deep))


def test_append_refuses_a_gap_or_a_repeat() -> None:
    first = append(None, make_row(1), VAULT_ID)
    with pytest.raises(UsageError):
        append(first, make_row(3), VAULT_ID)
    with pytest.raises(UsageError):
        append(None, make_row(2), VAULT_ID)


# A 20-row chain with signed checkpoints at 5, 10, 15 and 20; each tamper kind below.
CHAIN = build_chain([make_row(s) for s in range(1, 21)])
CHECKPOINTS = sign_at(CHAIN, [5, 10, 15, 20])


def check(rows: list[StoredRow], checkpoints: list[SignedCheckpoint] = CHECKPOINTS) -> VerifyReport:
    return verify(iter(rows), iter(checkpoints), vault_id=VAULT_ID, verifier=VERIFIER)


def edited(seq: int, **changes: object) -> list[StoredRow]:
    rows = list(CHAIN)
    old = rows[seq - 1]
    row = dataclasses.replace(old.row, **changes)  # type: ignore[arg-type]
    rows[seq - 1] = StoredRow(row, old.prev_hash, old.hash)
    return rows


def renumbered(rows: list[AuditRow]) -> list[AuditRow]:
    return [dataclasses.replace(r, seq=i) for i, r in enumerate(rows, 1)]


def swapped_contents(a: int, b: int) -> list[StoredRow]:
    rows = list(CHAIN)
    rows[a - 1] = dataclasses.replace(CHAIN[b - 1], row=dataclasses.replace(CHAIN[b - 1].row, seq=a))
    rows[b - 1] = dataclasses.replace(CHAIN[a - 1], row=dataclasses.replace(CHAIN[a - 1].row, seq=b))
    return rows


def inserted_and_renumbered(seq: int) -> list[StoredRow]:
    planted = append(CHAIN[seq - 2], make_row(seq, target="team/x/planted"), VAULT_ID)
    pushed = [
        dataclasses.replace(s, row=dataclasses.replace(s.row, seq=s.row.seq + 1)) for s in CHAIN[seq - 1 :]
    ]
    return [*CHAIN[: seq - 1], planted, *pushed]


def replaced_and_relinked(seq: int) -> list[StoredRow]:
    """Row ``seq`` swapped for a forged one that links to its predecessor; later rows untouched."""
    forged = append(CHAIN[seq - 2], make_row(seq, principal="p-eve"), VAULT_ID)
    return [*CHAIN[: seq - 1], forged, *CHAIN[seq:]]


def test_an_intact_chain_verifies() -> None:
    report = check(CHAIN)
    assert report == VerifyReport(True, None, "chain intact: 20 rows, 4 checkpoints", 20, 4)


def test_an_empty_log_without_checkpoints_verifies() -> None:
    assert check([], []).ok


@pytest.mark.parametrize(
    ("name", "rows", "first_bad", "words"),
    [
        ("edited contents", edited(7, outcome="denied"), 7, "row 7 was altered"),
        ("edited time", edited(7, at=T0), 7, "row 7 was altered"),
        ("edited details", edited(7, details={"bytes": 1}), 7, "row 7 was altered"),
        (
            "edited link field",
            [*CHAIN[:6], dataclasses.replace(CHAIN[6], prev_hash=bytes(32)), *CHAIN[7:]],
            7,
            "previous-hash field",
        ),
        ("deleted", CHAIN[:6] + CHAIN[7:], 7, "expected row 7 next but found row 8"),
        ("deleted first", CHAIN[1:], 1, "expected row 1 next"),
        ("reordered", [*CHAIN[:6], CHAIN[7], CHAIN[6], *CHAIN[8:]], 7, "expected row 7 next but found row 8"),
        ("contents swapped, numbers kept", swapped_contents(7, 8), 7, "row 7 was altered"),
        (
            "inserted with a repeated number",
            [*CHAIN[:7], append(CHAIN[5], make_row(7, target="team/x/planted"), VAULT_ID), *CHAIN[7:]],
            7,
            "row 7 appears twice",
        ),
        # A planted row that links correctly is named at the first row it pushed down.
        ("inserted and renumbered", inserted_and_renumbered(7), 8, "row 8 was altered"),
        ("replaced and relinked", replaced_and_relinked(7), 7, "row 8 was chained to a different row 7"),
        ("truncated", CHAIN[:17], 18, "ends at row 17 but a signed checkpoint names row 20"),
        ("emptied", [], 1, "the log is empty"),
        (
            "rewritten from row 12",
            build_chain([r.row for r in CHAIN[:11]] + [make_row(s, outcome="ok?") for s in range(12, 21)]),
            11,
            "rows 11 to 15 do not match the signed checkpoint at row 15",
        ),
        (
            "deleted, renumbered and rehashed",
            build_chain(renumbered([r.row for r in CHAIN[:12]] + [r.row for r in CHAIN[13:]])),
            11,
            "rows 11 to 15 do not match",
        ),
        ("another vault's chain", build_chain([r.row for r in CHAIN], OTHER_VAULT_ID), 1, "genesis"),
        ("malformed row", edited(9, details={"ratio": 0.5}), 9, "row 9 is malformed"),
    ],
)
def test_each_tamper_kind_is_detected(name: str, rows: list[StoredRow], first_bad: int, words: str) -> None:
    report = check(rows)
    assert not report.ok, name
    assert report.first_bad_seq == first_bad, report.reason
    assert words in report.reason


def test_without_checkpoints_a_consistent_rewrite_or_truncation_goes_unseen() -> None:
    # Why checkpoints live in storage: the chain alone only proves it is self-consistent.
    assert check(CHAIN[:17], []).ok
    assert check(build_chain([make_row(s, outcome="forged") for s in range(1, 21)]), []).ok


def test_rows_after_the_last_checkpoint_are_reported_as_uncovered() -> None:
    longer = build_chain([make_row(s) for s in range(1, 24)])
    report = check(longer)
    assert report.ok and report.reason.endswith("rows after 20 are covered by no checkpoint")
    assert check(longer[:21]).ok  # deleting rows 22-23 is not visible: the documented limit


def test_untrusted_checkpoints_fail_verification() -> None:
    forged = dataclasses.replace(CHECKPOINTS[1], signature=bytes(32))
    report = check(CHAIN, [CHECKPOINTS[0], forged])
    assert not report.ok and "checkpoint at row 10 is not trusted" in report.reason
    stranger = HmacCheckpointVerifier({"mallory": b"m" * 32}).sign(
        SignedCheckpoint(VAULT_ID, CHECKPOINTS[0].checkpoint, T0, "mallory")
    )
    assert "may not sign" in check(CHAIN, [stranger]).reason
    elsewhere = sign_at(build_chain([r.row for r in CHAIN], OTHER_VAULT_ID), [5], OTHER_VAULT_ID)
    assert "another vault" in check(CHAIN, elsewhere).reason


def test_two_checkpoints_for_one_row_must_agree() -> None:
    other = sign_at(build_chain([make_row(s, action="tag") for s in range(1, 11)]), [10])
    report = check(CHAIN, [*CHECKPOINTS, *other])
    assert not report.ok and report.first_bad_seq == 6
