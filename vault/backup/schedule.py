"""When a backup schedule fires: cron expressions in an IANA time zone, computed by cronsim.

A :class:`CronSchedule` is an expression plus a zone, validated once by :meth:`CronSchedule.parse`
(an invalid expression, one that never fires, or an unknown zone is a :class:`UsageError` naming
the reason, so ``schedule add`` refuses it before anything is saved). Every instant going in or
out is an aware UTC datetime; the zone only decides which instants the expression names. Nothing
here reads a clock: ``backup run --due`` passes ``now``.

Daylight saving (Debian cron behaviour, implemented by cronsim for 5-field expressions whose
minute and hour fields are fixed values, e.g. ``30 2 * * *``):

- spring forward: a time that does not exist that day (02:30 in Europe/Berlin on the last Sunday
  of March) fires once, at the first minute that exists after it (03:00 local);
- fall back: a time that happens twice (02:30 on the last Sunday of October) fires once, at its
  first occurrence (02:30 summer time);
- expressions with ``*`` or a step in the minute or hour field (``*/15 * * * *``) fire on real
  time, so they keep firing through both changes without a gap or a repeat.

Six fields are accepted: cronsim reads a leading **seconds** field (``0 30 2 * * *``). cronsim
applies none of the Debian daylight-saving adjustments to 6-field expressions (Debian cron has no
seconds), so a 6-field job at a non-existent local time is skipped that day and one at a
repeated time fires twice. The 5-field form is the recommended one. The nicknames ``@hourly``,
``@daily`` (``@midnight``), ``@weekly``, ``@monthly`` and ``@yearly`` (``@annually``) are expanded
to their 5-field forms; ``@reboot`` is refused.

Catch-up (:meth:`CronSchedule.due_runs`), with ``last_scheduled`` the slot the previous run was
started for (a new or re-enabled schedule starts at the time it was saved, so it never catches
up on its past):

- ``once`` (the default; anacron and systemd ``Persistent=true``): any number of slots missed
  since ``last_scheduled`` coalesce into exactly one run, for the newest slot at or before now.
- ``skip`` (plain cron: missed means missed): the newest slot runs only if it is at most
  ``grace`` old (default 15 minutes, so a trigger every 5 minutes always catches its slot);
  an older missed slot runs nothing, and the schedule waits for its next slot.

Either way at most one run is due per call, and the caller records the slot it ran (or, when
nothing ran, :meth:`CronSchedule.latest_at_or_before` ``now``) as the new ``last_scheduled``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Literal, get_args
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from cronsim import CronSim, CronSimError

from vault.errors import UsageError

CatchUp = Literal["skip", "once"]
CATCH_UP_POLICIES: tuple[str, ...] = get_args(CatchUp)
DEFAULT_GRACE = timedelta(minutes=15)

_NICKNAMES = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
# Parse-time probe: an expression must fire at least once within cronsim's 50-year horizon.
_PROBE_FROM = datetime(2000, 1, 1, tzinfo=UTC)


def parse_catch_up(value: str) -> CatchUp:
    """``skip`` or ``once``; anything else is a :class:`UsageError`."""
    if value == "skip":
        return "skip"
    if value == "once":
        return "once"
    raise UsageError(f"--catch-up must be one of {', '.join(CATCH_UP_POLICIES)}, not {value!r}")


@dataclass(frozen=True)
class CronSchedule:
    """A validated cron expression and IANA zone; build it with :meth:`parse`."""

    expression: str
    timezone: str
    _zone: ZoneInfo = field(repr=False, compare=False)
    _cron_expression: str = field(repr=False, compare=False)

    @classmethod
    def parse(cls, expr: str, tz: str = "UTC") -> CronSchedule:
        """Validate ``expr`` (5 or 6 fields, or a nickname) in zone ``tz``."""
        zone = _zone(tz)
        expression = " ".join(expr.split())
        if expression.lower() == "@reboot":
            raise UsageError("invalid cron expression '@reboot': mlvault schedules run at times, not at boot")
        cron_expression = _NICKNAMES.get(expression.lower(), expression)
        if len(cron_expression.split()) not in (5, 6):
            raise UsageError(
                f"invalid cron expression {expr!r}: expected 5 fields (minute hour day-of-month month "
                f"day-of-week) or 6 (with seconds first), got {len(cron_expression.split())}"
            )
        try:
            CronSim(cron_expression, _PROBE_FROM.astimezone(zone))
        except CronSimError as exc:
            raise UsageError(f"invalid cron expression {expr!r}: {str(exc).lower()} field") from exc
        schedule = cls(expression, tz, zone, cron_expression)
        if schedule._next(_PROBE_FROM) is None:
            raise UsageError(f"invalid cron expression {expr!r}: it never fires")
        return schedule

    @property
    def is_six_field(self) -> bool:
        """True when the expression has a seconds field (no Debian daylight-saving handling)."""
        return len(self._cron_expression.split()) == 6

    def next_after(self, t_utc: datetime) -> datetime:
        """The first slot strictly after ``t_utc``, in UTC."""
        slot = self._next(t_utc)
        if slot is None:
            raise UsageError(f"cron expression {self.expression!r} has no run in the 50 years after {t_utc}")
        return slot

    def latest_at_or_before(self, t_utc: datetime) -> datetime | None:
        """The newest slot at or before ``t_utc``, in UTC (None when there is none in 50 years)."""
        _require_aware(t_utc)
        probe = t_utc
        while True:
            start = (probe + timedelta(seconds=1)).replace(microsecond=0).astimezone(self._zone)
            try:
                candidate = next(CronSim(self._cron_expression, start, reverse=True)).astimezone(UTC)
            except StopIteration:
                return None
            if candidate <= t_utc:
                break
            probe -= timedelta(hours=1)  # pragma: no cover - a wall-clock answer past t: look earlier
        # Reverse iteration works on the wall clock, so after a fall-back it can land a day
        # early; walking forward from a slot before the answer settles it.
        while (following := self._next(candidate)) is not None and following <= t_utc:
            candidate = following
        return candidate

    def due_runs(
        self,
        last_scheduled_utc: datetime,
        now_utc: datetime,
        catch_up: CatchUp = "once",
        grace: timedelta = DEFAULT_GRACE,
    ) -> list[datetime]:
        """The slots to run now (zero or one), given the slot the previous run was for."""
        _require_aware(last_scheduled_utc)
        _require_aware(now_utc)
        if catch_up not in CATCH_UP_POLICIES:
            raise UsageError(f"catch-up must be one of {', '.join(CATCH_UP_POLICIES)}, not {catch_up!r}")
        if grace < timedelta(0):
            raise UsageError("the catch-up grace period must not be negative")
        first = self._next(last_scheduled_utc)
        if first is None or first > now_utc:
            return []
        latest = self.latest_at_or_before(now_utc)
        if latest is None or latest < first:  # pragma: no cover - cronsim agrees with itself
            latest = first
        if catch_up == "skip" and now_utc - latest > grace:
            return []
        return [latest]

    def _next(self, t_utc: datetime) -> datetime | None:
        _require_aware(t_utc)
        iterator = CronSim(self._cron_expression, t_utc.astimezone(self._zone))
        try:
            while True:
                slot = next(iterator).astimezone(UTC)
                # Debian handling makes cronsim iterate the wall clock: during a repeated hour
                # it can name the first occurrence of a time that has already passed.
                if slot > t_utc:
                    return slot
        except StopIteration:
            return None


def _zone(name: str) -> ZoneInfo:
    # "localtime" names whatever zone the host happens to have: exactly what a stored zone avoids.
    if not name or name != name.strip() or name == "localtime":
        raise UsageError(f"unknown time zone {name!r}: expected an IANA name such as Europe/Berlin")
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise UsageError(f"unknown time zone {name!r}: expected an IANA name such as Europe/Berlin") from exc


def _require_aware(value: datetime) -> None:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"schedule times must be timezone-aware, got {value!r}")
