"""When a calendar fires: the instances of a CalendarSpec in an IANA zone, as UTC epoch seconds.

Pure computation, no database. Expressions are matched against local wall time, one
month and one day at a time, and each wall time is converted here, never by adding
timedeltas to aware datetimes, so that the DST policy is explicit and the same for
LSF expressions and cron(...):

* a wall time inside a spring-forward gap moves to the first valid minute after it;
* a wall time repeated at fall-back fires once, at its first pass, unless the
  expression is an interval one (hour field '*'), which fires in both passes;
* a duration in days ends at the same wall time n days later; minutes and hours are
  elapsed time.

Instances of all expressions are merged in time order; equal starts are one instance
(the longest end) and a new instance ends the previous one (LSF's overlap rule).
"""

from __future__ import annotations

import heapq
import os
from collections.abc import Iterable, Iterator
from datetime import date, datetime, timedelta
from functools import cache
from itertools import chain, groupby
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from engine.timeexpr import FIRST_YEAR, LAST_YEAR, CalendarSpec, TimeExpr, matching_days

Instance = tuple[int, int]  # (start, end), integer UTC epoch seconds

DAY = 86400
PREVIOUS_SEARCH_DAYS = 400
CRON_QUIET_YEARS = 20  # a cron expression with no match for this long is over
_EPOCH_ORDINAL = date(1970, 1, 1).toordinal()
# Local dates are computed from instants clamped to this span, which holds every
# LSF year with a day to spare on each side and keeps datetime in its range.
_FIRST_DATE, _LSF_LAST_DATE, _LAST_DATE = (
    date(FIRST_YEAR, 1, 1),
    date(LAST_YEAR, 12, 31),
    date(9990, 1, 1),
)
_EARLIEST = (_FIRST_DATE.toordinal() - _EPOCH_ORDINAL - 2) * DAY
_LATEST = (_LAST_DATE.toordinal() - _EPOCH_ORDINAL) * DAY


# --- wall time to UTC ------------------------------------------------------------


def _wall_seconds(wall: datetime) -> int:
    """Seconds from the epoch as if the wall time were UTC: exact integer arithmetic."""
    days = wall.toordinal() - _EPOCH_ORDINAL
    return days * DAY + wall.hour * 3600 + wall.minute * 60 + wall.second


def _offset(zone: ZoneInfo, wall: datetime, fold: int) -> int:
    offset = wall.replace(tzinfo=zone, fold=fold).utcoffset()
    assert offset is not None  # a ZoneInfo always has an offset
    return int(offset.total_seconds())


def _offset_at(zone: ZoneInfo, instant: int) -> int:
    offset = datetime.fromtimestamp(instant, zone).utcoffset()
    assert offset is not None
    return int(offset.total_seconds())


def _gap_exit(zone: ZoneInfo, before: int, after: int) -> int:
    """The first whole local minute after the zone's transition in (before, after].

    `before` is still on the old offset and `after` already on the new one; the
    transition is found by bisection because zoneinfo does not expose it.
    """
    old = _offset_at(zone, before)
    while after - before > 1:
        middle = (before + after) // 2
        if _offset_at(zone, middle) == old:
            before = middle
        else:
            after = middle
    spare = (after + _offset_at(zone, after)) % 60
    return after + (60 - spare if spare else 0)


def wall_instants(zone: ZoneInfo, wall: datetime, both_passes: bool) -> list[int]:
    """The instants at which a naive local wall time fires, under the DST policy.

    PEP 495: fold=0 reads a wall time with the offset in force before a transition,
    fold=1 with the one after. In a gap the wall time does not exist and the earlier
    offset is the smaller one; at a fall-back it exists twice and it is the larger one.
    """
    first, second = _offset(zone, wall, 0), _offset(zone, wall, 1)
    naive = _wall_seconds(wall)
    if first == second:
        return [naive - first]
    if first > second:
        return [naive - first, naive - second] if both_passes else [naive - first]
    return [_gap_exit(zone, naive - second, naive - first)]


# --- one expression's events -----------------------------------------------------

Event = tuple[int, int]  # (start, the end its own duration gives)


def _own_end(expr: TimeExpr, zone: ZoneInfo, wall: datetime, start: int) -> int:
    if expr.duration_days:
        later = wall + timedelta(days=expr.duration_days)
        return wall_instants(zone, later, both_passes=False)[0]
    return start + 60 * expr.duration_minutes


def _events(expr: TimeExpr, zone: ZoneInfo, walls: Iterable[datetime]) -> list[Event]:
    """The events of wall times of one local date, sorted: a repeated hour interleaves."""
    events = [
        (start, _own_end(expr, zone, wall, start))
        for wall in walls
        for start in wall_instants(zone, wall, expr.interval)
    ]
    events.sort()
    return events


def _local_date(zone: ZoneInfo, instant: float) -> date:
    clamped = min(max(int(instant), _EARLIEST), _LATEST)
    return datetime.fromtimestamp(clamped, zone).date()


def _lsf_dates(expr: TimeExpr, first: date, last: date, reverse: bool) -> Iterator[date]:
    """Matching local dates in [first, last], skipping whole years and months at once."""
    years = expr.years if expr.years is not None else range(FIRST_YEAR, LAST_YEAR + 1)
    months = expr.months if expr.months is not None else range(1, 13)
    for year in sorted((y for y in years if first.year <= y <= last.year), reverse=reverse):
        for month in sorted(months, reverse=reverse):
            if not (first.year, first.month) <= (year, month) <= (last.year, last.month):
                continue
            for day in sorted(matching_days(expr.days, year, month), reverse=reverse):
                candidate = date(year, month, day)
                if first <= candidate <= last:
                    yield candidate


def _midnight(day: date) -> datetime:
    return datetime(day.year, day.month, day.day)


def _cron_dates(cron: str, first: date, last: date, reverse: bool) -> Iterator[date]:
    """Matching local dates in [first, last], one croniter step per date.

    croniter judges the date fields (the day-of-month/day-of-week union, L, #, W) on
    naive wall time; asking it for each minute of a busy day would be 25 us a minute.
    """
    from croniter import CroniterBadDateError, croniter

    finder = croniter(cron, _midnight(first), max_years_between_matches=CRON_QUIET_YEARS)
    day = last if reverse else first
    while True:
        try:
            if reverse:
                found = finder.get_prev(datetime, start_time=_midnight(day) + timedelta(days=1))
            else:
                found = finder.get_next(datetime, start_time=_midnight(day) - timedelta(minutes=1))
        except (CroniterBadDateError, OverflowError, ValueError):
            return
        day = found.date()
        if not first <= day <= last:
            return
        yield day
        day += timedelta(days=-1 if reverse else 1)


@cache
def _cron_clock(cron: str) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """The hours and minutes a cron body names; on a matching date it fires at each pair."""
    from croniter import croniter

    minutes, hours = croniter.expand(cron)[0][:2]

    def values(field: list[int | str], size: int) -> tuple[int, ...]:
        return tuple(range(size)) if "*" in field else tuple(sorted(int(v) for v in field))

    return values(hours, 24), values(minutes, 60)


def _dates(expr: TimeExpr, first: date, last: date, reverse: bool) -> Iterator[date]:
    first = max(first, _FIRST_DATE)
    if expr.cron is not None:
        return _cron_dates(expr.cron, first, last, reverse)
    return _lsf_dates(expr, first, min(last, _LSF_LAST_DATE), reverse)


def _walls(expr: TimeExpr, day: date) -> list[datetime]:
    if expr.cron is not None:
        hours, minutes = _cron_clock(expr.cron)
    else:
        hours = tuple(sorted(expr.hours)) if expr.hours is not None else tuple(range(24))
        minutes = tuple(sorted(expr.minutes))
    return [datetime(day.year, day.month, day.day, h, m) for h in hours for m in minutes]


def _forward(expr: TimeExpr, zone: ZoneInfo, after: float) -> Iterator[Event]:
    """The expression's events with start > after, ascending.

    The day's margin covers a fall-back across midnight, where the second pass of a
    date's wall times comes after the next date has begun.
    """
    first = _local_date(zone, after) - timedelta(days=1)
    for day in _dates(expr, first, _LAST_DATE, reverse=False):
        for event in _events(expr, zone, _walls(expr, day)):
            if event[0] > after:
                yield event


def _backward(expr: TimeExpr, zone: ZoneInfo, at: float, floor: float) -> Iterator[Event]:
    """The expression's events with floor <= start <= at, descending."""
    last = _local_date(zone, at) + timedelta(days=1)
    first = _local_date(zone, floor) - timedelta(days=1)
    for day in _dates(expr, first, last, reverse=True):
        for event in reversed(_events(expr, zone, _walls(expr, day))):
            if event[0] < floor:
                return
            if event[0] <= at:
                yield event


# --- a calendar's instances ------------------------------------------------------


def _merged(streams: Iterable[Iterator[Event]], reverse: bool = False) -> Iterator[Event]:
    """All expressions' events in time order, equal starts as one with the longest end."""
    ordered = heapq.merge(*streams, reverse=reverse)
    for start, same in groupby(ordered, key=lambda event: event[0]):
        yield start, max(end for _, end in same)


def _overlap(events: Iterator[Event]) -> Iterator[Instance]:
    """A new instance ends the previous one; needs one event of look-ahead."""
    previous = next(events, None)
    for event in events:
        assert previous is not None
        yield previous[0], min(previous[1], event[0])
        previous = event
    if previous is not None:
        yield previous


def _reach(spec: CalendarSpec) -> int:
    """How long before `at` an instance may start and still be active at `at`."""
    longest = max(e.duration_days * DAY + e.duration_minutes * 60 for e in spec.exprs)
    return longest + DAY  # a day's slack for wall-clock days stretched by DST


def _latest(spec: CalendarSpec, zone: ZoneInfo, at: float, floor: float) -> Event | None:
    streams = [_backward(expr, zone, at, floor) for expr in spec.exprs]
    return next(_merged(streams, reverse=True), None)


def _following(spec: CalendarSpec, zone: ZoneInfo, after: float) -> Iterator[Event]:
    return _merged(_forward(expr, zone, after) for expr in spec.exprs)


def _instances(spec: CalendarSpec, zone: ZoneInfo, after: float) -> Iterator[Instance]:
    if not spec.exprs:
        return
    # At most one instance is active at a time, so only the latest start <= after can
    # still be running; everything else starts later.
    current = _latest(spec, zone, after, after - _reach(spec))
    following = _following(spec, zone, current[0] if current else after)
    events = chain([current] if current else [], following)
    for instance in _overlap(events):
        if instance[1] > after:
            yield instance


def iter_instances(spec: CalendarSpec, tz: str, after: float) -> Iterator[Instance]:
    """Instances (start, end) whose end > after, ascending by start, lazily.

    The first one may have started before `after` and still be active. The iterator
    ends when nothing can fire any more: after 2099 for LSF expressions, after
    CRON_QUIET_YEARS without a match for cron. An unknown zone raises
    ZoneInfoNotFoundError here, not at the first next(); check_timezone guards input.
    """
    return _instances(spec, ZoneInfo(tz), after)


def instances_between(spec: CalendarSpec, tz: str, start: float, end: float) -> list[Instance]:
    """Every instance with start <= s < end; its end may reach past `end`."""
    found: list[Instance] = []
    for instance in iter_instances(spec, tz, start):
        if instance[0] >= end:
            break
        if instance[0] >= start:
            found.append(instance)
    return found


def active_instance(spec: CalendarSpec, tz: str, at: float) -> Instance | None:
    """The instance covering `at` (start <= at < end), if any."""
    first = next(iter_instances(spec, tz, at), None)
    return first if first is not None and first[0] <= at else None


def previous_instance(spec: CalendarSpec, tz: str, at: float) -> Instance | None:
    """The latest instance with start <= at, looking back at most PREVIOUS_SEARCH_DAYS."""
    if not spec.exprs:
        return None
    zone = ZoneInfo(tz)
    latest = _latest(spec, zone, at, at - PREVIOUS_SEARCH_DAYS * DAY)
    if latest is None:
        return None
    following = next(_following(spec, zone, latest[0]), None)
    return latest[0], latest[1] if following is None else min(latest[1], following[0])


def never_fires(spec: CalendarSpec, tz: str, now: float) -> bool:
    """True when no instance is active at `now` or starts later."""
    return next(iter_instances(spec, tz, now), None) is None


# --- zones -----------------------------------------------------------------------


def check_timezone(name: str) -> str | None:
    """None for a usable IANA zone name, else a one-line reason.

    'localtime' loads too, but it means a different zone on each machine.
    """
    problem = f"unknown time zone '{name}' (use an IANA name such as Europe/Berlin)"
    if not name or name.strip() != name or name == "localtime":
        return problem
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        return problem
    return None


def zone_from(tz_env: str | None, etc_timezone: str | None, localtime_target: str | None) -> str:
    """The zone named by $TZ, /etc/timezone or the /etc/localtime link, first usable wins."""
    candidates = []
    if tz_env:
        candidates.append(_zone_key(tz_env.removeprefix(":")))
    if etc_timezone:
        candidates.append(etc_timezone.strip())
    if localtime_target:
        candidates.append(_zone_key(localtime_target))
    for candidate in candidates:
        if candidate and check_timezone(candidate) is None:
            return candidate
    return "UTC"


def _zone_key(value: str) -> str:
    """`/usr/share/zoneinfo/posix/Europe/Berlin` -> `Europe/Berlin`; a name stays a name."""
    if "zoneinfo/" in value:
        value = value.rsplit("zoneinfo/", 1)[1]
        for prefix in ("posix/", "right/"):
            value = value.removeprefix(prefix)
    return value


def _read(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8").splitlines()[0]
    except (OSError, UnicodeDecodeError, IndexError):
        return None


def _link(path: Path) -> str | None:
    try:
        return os.readlink(path)
    except OSError:
        return None


def local_zone_name() -> str:
    """This machine's IANA zone name, "UTC" when none can be found."""
    return zone_from(
        os.environ.get("TZ"), _read(Path("/etc/timezone")), _link(Path("/etc/localtime"))
    )
