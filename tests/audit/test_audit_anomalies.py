"""Anomaly detection on synthetic histories: a normal month is quiet, planted misuse is flagged."""

from __future__ import annotations

import dataclasses
import hashlib
import random
from datetime import UTC, date, datetime, timedelta, timezone

import pytest

from vault.access.principals import Principal
from vault.audit.anomalies import Anomaly, Kind, Thresholds, find_anomalies
from vault.audit.chain import AuditRow, VerifyReport
from vault.clientstate.identities import PublicIdentity
from vault.errors import UsageError

NOW = datetime(2026, 4, 1, tzinfo=UTC)
WINDOW = timedelta(days=30)
MIB = 1024 * 1024


def identity(who: str) -> PublicIdentity:
    """A stand-in public identity per acting name (its X25519 key is derived from the name)."""
    return PublicIdentity(who, hashlib.sha256(who.encode()).digest(), b"der:" + who.encode())


def event(at: datetime, who: str, action: str, target: str, outcome: str = "ok", nbytes: int = 0) -> AuditRow:
    """A row as an identity's command writes it: named ``who``, carrying that identity's fingerprint."""
    details: dict[str, object] = {"identity": identity(who).fingerprint}
    if nbytes:
        details["bytes"] = nbytes
    return AuditRow(0, at, who, action, target, outcome, details)


def principal(
    who: str, *, added: datetime | None = None, expires: date | None = None, removed: datetime | None = None
) -> Principal:
    return Principal(
        who[2] * 8 + "0" * 24,
        who.removeprefix("p-"),
        "user",
        identity(who),
        added or NOW - timedelta(days=90),
        expires,
        removed,
    )


def normal_history(seed: int = 7) -> list[AuditRow]:
    """Thirty days of ordinary work, the last of them the day being judged."""
    rng = random.Random(seed)
    rows = []
    for days_ago in range(30, 0, -1):
        day = NOW - timedelta(days=days_ago)
        for _ in range(rng.randint(2, 4)):  # alice pulls vision models in office hours
            at = day + timedelta(hours=rng.randint(9, 17), minutes=rng.randint(0, 59))
            model = rng.choice(["resnet", "vit", "yolo"])
            rows.append(
                event(at, "p-alice", "pull", f"team/vision/{model}@v{rng.randint(1, 9)}", nbytes=100 * MIB)
            )
        rows.append(event(day + timedelta(hours=rng.randint(10, 16)), "p-alice", "push", "team/vision/vit"))
        # the CI job pushes and verifies every night at two
        rows.append(
            event(day + timedelta(hours=2, minutes=rng.randint(0, 30)), "p-ci", "push", "team/vision/resnet")
        )
        rows.append(event(day + timedelta(hours=2, minutes=45), "p-ci", "verify", "team/vision/resnet@v1"))
        if days_ago % 2:  # bob works every other day, and mistypes his passphrase now and then
            at = day + timedelta(hours=rng.randint(10, 16))
            rows.append(event(at, "p-bob", "pull", "team/nlp/bert", nbytes=400 * MIB))
            if days_ago % 3 == 0:
                rows.append(event(at - timedelta(minutes=1), "p-bob", "unlock", "keyring/team", "failed"))
    return rows


def planted() -> list[AuditRow]:
    """Misuse on the day being judged."""
    night = NOW - timedelta(hours=21)  # 03:00 UTC on the last day
    rows = []
    for i in range(60):  # an exfiltration burst: many versions, many artifacts, a namespace never read before
        namespace = "team/secret" if i % 3 == 0 else "team/vision"
        at = night + timedelta(seconds=40 * i)
        rows.append(event(at, "p-alice", "pull", f"{namespace}/model{i % 40}@v1", nbytes=500 * MIB))
    rows.append(
        event(NOW - timedelta(minutes=30), "p-bob", "pull", "team/nlp/bert", nbytes=400 * MIB)
    )  # 23:30
    for i in range(6):  # someone guessing a passphrase
        rows.append(event(night + timedelta(minutes=2 * i), "p-dave", "unlock", "keyring/team", "failed"))
    rows.append(event(NOW - timedelta(days=3), "p-eve", "pull", "team/nlp/bert", nbytes=MIB))
    return rows


# dave's last day was 2026-03-21 (expired from 2026-03-22 00:00 UTC); eve was removed 2026-03-27.
PRINCIPALS = [
    principal("p-alice"),
    principal("p-bob"),
    principal("p-ci"),
    principal("p-dave", expires=date(2026, 3, 21)),
    principal("p-eve", removed=NOW - timedelta(days=5)),
]
CHAIN_OK = VerifyReport(True, None, "chain intact: 200 rows, 1 checkpoints", 200, 1)


def test_a_normal_month_raises_nothing() -> None:
    history = normal_history()
    assert find_anomalies(history, NOW, WINDOW, principals=PRINCIPALS, chain=CHAIN_OK) == []
    for seed in range(10):  # not a lucky seed
        assert find_anomalies(normal_history(seed), NOW, WINDOW) == []


def test_planted_misuse_is_flagged_with_one_line_each() -> None:
    report = VerifyReport(False, 57, "row 57 was altered: its contents do not give its stored hash")
    found = find_anomalies(normal_history() + planted(), NOW, WINDOW, principals=PRINCIPALS, chain=report)
    assert [(a.principal, a.kind) for a in found] == [
        (None, Kind.AUDIT_CHAIN),
        ("p-alice", Kind.VOLUME),
        ("p-alice", Kind.VOLUME),
        ("p-alice", Kind.VOLUME),
        ("p-alice", Kind.NEW_NAMESPACE),
        ("p-alice", Kind.UNUSUAL_HOURS),
        ("p-bob", Kind.UNUSUAL_HOURS),
        ("p-dave", Kind.FAILURE_BURST),
        ("p-dave", Kind.EXPIRED_PRINCIPAL),
        ("p-eve", Kind.REMOVED_PRINCIPAL),
    ]
    assert all("\n" not in a.explanation for a in found)
    assert [a.explanation for a in found] == [
        "audit chain check failed (first bad row 57): row 57 was"
        " altered: its contents do not give its stored hash",
        "pulled 29.6 GiB in the last 1 day, over 5× its median of 300.0 MiB per active day (29 days)",
        "versions pulled 63 in the last 1 day, over 5× its median of 3 per active day (29 days)",
        "distinct artifacts pulled 55 in the last 1 day, over 5× its median of 2 per active day (29 days)",
        "first access to namespace team/secret (at 2026-03-31 03:00 UTC)",
        "60 events at 03 h UTC, outside its usual hours (09-17 h UTC, ±1 h)",
        "1 event at 23 h UTC, outside its usual hours (10-16 h UTC, ±1 h)",
        "6 failed unlocks within 10 min from 2026-03-31 03:00 UTC"
        " (flagged at 5 within 1 h; median 0 per active day)",
        "6 actions by principal dave (dddddddd) after it expired at 2026-03-22 00:00 UTC,"
        " first unlock keyring/team at 2026-03-31 03:00 UTC",
        "1 action by principal eve (eeeeeeee) after it was removed at 2026-03-27 00:00 UTC,"
        " first pull team/nlp/bert at 2026-03-29 00:00 UTC",
    ]


def test_k_is_the_volume_threshold() -> None:
    history = normal_history() + planted()
    assert not any(a.kind == Kind.VOLUME for a in find_anomalies(history, NOW, WINDOW, k=1000))
    assert any(a.kind == Kind.VOLUME for a in find_anomalies(history, NOW, WINDOW, k=5))


def test_a_rare_puller_is_not_flagged_for_one_small_pull() -> None:
    # p-ci never pulls: median 0 bytes and 0 versions, floored to 1 MiB and 1 version.
    small = event(NOW - timedelta(hours=22), "p-ci", "pull", "team/vision/resnet@v1", nbytes=2 * MIB)
    assert find_anomalies([*normal_history(), small], NOW, WINDOW) == []
    big = dataclasses.replace(small, details={"bytes": 50 * MIB})
    assert [a.kind for a in find_anomalies([*normal_history(), big], NOW, WINDOW)] == [Kind.VOLUME]


def test_a_principal_that_always_fails_needs_k_times_its_usual_failures() -> None:
    flaky = []
    for days_ago in range(30, 0, -1):
        base = NOW - timedelta(days=days_ago) + timedelta(hours=12)
        flaky += [
            event(base + timedelta(minutes=i), "p-job", "verify", "team/x/m", "failed") for i in range(8)
        ]
    assert find_anomalies(flaky, NOW, WINDOW) == []
    many = [
        event(NOW - timedelta(hours=12, minutes=-i), "p-job", "verify", "team/x/m", "failed")
        for i in range(40)
    ]
    found = find_anomalies(flaky + many, NOW, WINDOW)
    assert [a.kind for a in found] == [Kind.FAILURE_BURST]
    assert (
        "48 failed verifications" in found[0].explanation
        and "median 8 per active day" in found[0].explanation
    )


def test_a_burst_is_counted_inside_one_window() -> None:
    spread = [
        event(NOW - timedelta(hours=20 - 2 * i), "p-x", "unlock", "keyring/t", "failed") for i in range(6)
    ]
    assert find_anomalies(spread, NOW, WINDOW) == []
    tight = Thresholds(burst_window=timedelta(hours=12))
    assert [a.kind for a in find_anomalies(spread, NOW, WINDOW, thresholds=tight)] == [Kind.FAILURE_BURST]


def test_only_the_window_counts_and_zones_do_not_matter() -> None:
    old = event(NOW - timedelta(days=40), "p-eve", "pull", "team/nlp/bert")
    future = event(NOW + timedelta(hours=1), "p-eve", "pull", "team/nlp/bert")
    assert find_anomalies([*normal_history(), old, future], NOW, WINDOW, principals=PRINCIPALS) == []
    shifted = [dataclasses.replace(r, at=r.at.astimezone(timezone(timedelta(hours=5)))) for r in planted()]
    history = normal_history() + shifted
    assert find_anomalies(history, NOW, WINDOW, principals=PRINCIPALS) == find_anomalies(
        normal_history() + planted(), NOW, WINDOW, principals=PRINCIPALS
    )


def test_no_baseline_means_no_baseline_flags() -> None:
    newcomer = [
        event(NOW - timedelta(hours=20), "p-new", "pull", f"lab/m{i}", nbytes=900 * MIB) for i in range(30)
    ]
    assert find_anomalies(newcomer, NOW, WINDOW) == []


@pytest.mark.parametrize(
    ("now", "window", "k"),
    [
        (datetime(2026, 4, 1), WINDOW, 5.0),
        (NOW, timedelta(hours=12), 5.0),
        (NOW, WINDOW, 0.0),
    ],
)
def test_bad_arguments_are_refused(now: datetime, window: timedelta, k: float) -> None:
    with pytest.raises(UsageError):
        find_anomalies([], now, window, k)


def test_anomaly_is_a_value() -> None:
    assert Anomaly("p", Kind.VOLUME, "x") == Anomaly("p", Kind.VOLUME, "x")


def _standing_flags(rows: list[AuditRow], principals: list[Principal]) -> list[tuple[str | None, Kind]]:
    found = find_anomalies([*normal_history(), *rows], NOW, WINDOW, principals=[*PRINCIPALS[:3], *principals])
    return [
        (a.principal, a.kind) for a in found if a.kind in (Kind.EXPIRED_PRINCIPAL, Kind.REMOVED_PRINCIPAL)
    ]


def test_an_expired_principal_may_act_through_its_last_day() -> None:
    last_day = [principal("p-dave", expires=date(2026, 3, 30))]
    on_it = event(datetime(2026, 3, 30, 23, 59, tzinfo=UTC), "p-dave", "pull", "team/nlp/bert")
    after = event(datetime(2026, 3, 31, 0, 0, tzinfo=UTC), "p-dave", "pull", "team/nlp/bert")
    assert _standing_flags([on_it], last_day) == []
    assert _standing_flags([on_it, after], last_day) == [("p-dave", Kind.EXPIRED_PRINCIPAL)]


def test_a_removed_then_re_added_identity_is_judged_by_the_principal_live_at_the_time() -> None:
    removed_at, re_added = NOW - timedelta(days=6), NOW - timedelta(days=2)
    both = [
        principal("p-eve", removed=removed_at),
        dataclasses.replace(principal("p-eve", added=re_added), id="f" * 32),
    ]
    between = event(NOW - timedelta(days=4), "p-eve", "pull", "team/nlp/bert")
    since = event(NOW - timedelta(days=1), "p-eve", "pull", "team/nlp/bert")
    assert _standing_flags([since], both) == []
    found = find_anomalies([between, since], NOW, WINDOW, principals=both)
    assert [a.explanation for a in found if a.kind == Kind.REMOVED_PRINCIPAL] == [
        "1 action by principal eve (eeeeeeee) after it was removed at 2026-03-26 00:00 UTC,"
        " first pull team/nlp/bert at 2026-03-28 00:00 UTC"
    ]


def test_rows_are_matched_by_identity_fingerprint_not_by_name() -> None:
    gone = [principal("p-eve", removed=NOW - timedelta(days=5))]
    by_name_only = dataclasses.replace(
        event(NOW - timedelta(days=1), "p-eve", "pull", "team/nlp/bert"), details={}
    )
    other_key = dataclasses.replace(
        event(NOW - timedelta(days=1), "p-eve", "pull", "team/nlp/bert"),
        details={"identity": identity("p-eve-new-laptop").fingerprint},
    )
    assert _standing_flags([by_name_only, other_key], gone) == []
    before_added = event(NOW - timedelta(days=1), "p-frank", "pull", "team/nlp/bert")
    assert _standing_flags([before_added], [principal("p-frank", added=NOW - timedelta(hours=1))]) == []
