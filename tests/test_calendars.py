"""Calendar instances: day matching against dateutil.rrule, DST policy, the overlap rule."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from zoneinfo import ZoneInfo

import pytest
from croniter import croniter
from dateutil.rrule import FR, MO, MONTHLY, SU, WEEKLY, YEARLY, rrule, rruleset
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.calendars import (
    active_instance,
    check_timezone,
    instances_between,
    iter_instances,
    local_zone_name,
    never_fires,
    previous_instance,
    wall_instants,
    zone_from,
)
from engine.timeexpr import CalendarSpec, parse_time_exprs

NEW_YORK, BERLIN = "America/New_York", "Europe/Berlin"
MINUTE, HOUR, DAY = 60, 3600, 86400


def spec(text: str) -> CalendarSpec:
    result = parse_time_exprs(text)
    assert result.ok, [str(d) for d in result.diagnostics]
    assert result.spec is not None
    return result.spec


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> int:
    return int(datetime(year, month, day, hour, minute, tzinfo=UTC).timestamp())


def local(
    tz: str, year: int, month: int, day: int, hour: int = 0, minute: int = 0, fold: int = 0
) -> int:
    """zoneinfo's own reading of a wall time: the independent side of the DST tests."""
    wall = datetime(year, month, day, hour, minute, tzinfo=ZoneInfo(tz), fold=fold)
    return int(wall.timestamp())


def take(text: str, tz: str, after: float, count: int) -> list[tuple[int, int]]:
    found = iter_instances(spec(text), tz, after)
    return [next(found) for _ in range(count)]


def between(text: str, tz: str, start: float, end: float) -> list[tuple[int, int]]:
    return instances_between(spec(text), tz, start, end)


# --- acceptance 1: the next instances --------------------------------------------


def test_half_past_eight_daily_for_thirty_minutes() -> None:
    assert take("*:*:*:8:30%30", "UTC", utc(2026, 11, 21), 3) == [
        (utc(2026, 11, 21, 8, 30), utc(2026, 11, 21, 9, 0)),
        (utc(2026, 11, 22, 8, 30), utc(2026, 11, 22, 9, 0)),
        (utc(2026, 11, 23, 8, 30), utc(2026, 11, 23, 9, 0)),
    ]


def test_an_instance_still_active_comes_first() -> None:
    after = utc(2026, 11, 21, 8, 45)
    assert take("*:*:*:8:30%30", "UTC", after, 2) == [
        (utc(2026, 11, 21, 8, 30), utc(2026, 11, 21, 9, 0)),
        (utc(2026, 11, 22, 8, 30), utc(2026, 11, 22, 9, 0)),
    ]
    # An instance that ended exactly at `after` is over.
    assert take("*:*:*:8:30%30", "UTC", utc(2026, 11, 21, 9), 1)[0][0] == utc(2026, 11, 22, 8, 30)


# --- acceptance 2: day matching against dateutil.rrule ---------------------------

FROM, UNTIL = datetime(2026, 1, 1), datetime(2028, 1, 1)


def _rule(freq: int, **kwargs: object) -> rrule:
    return rrule(freq, dtstart=FROM, until=UNTIL - timedelta(seconds=1), bysecond=0, **kwargs)


def reference(
    walls: rrule | rruleset, tz: str, minutes: int = 0, days: int = 0
) -> list[tuple[int, int]]:
    zone = ZoneInfo(tz)
    out = []
    for wall in walls:
        start = int(wall.replace(tzinfo=zone).timestamp())
        if days:
            end = int((wall + timedelta(days=days)).replace(tzinfo=zone).timestamp())
        else:
            end = start + minutes * MINUTE
        out.append((start, end))
    return out


def _union(*rules: rrule) -> rruleset:
    walls = rruleset()
    for rule in rules:
        walls.rrule(rule)
    return walls


CASES: list[tuple[str, rrule | rruleset, int, int]] = [
    ("*:*:~1:12:0%30", _rule(MONTHLY, bymonthday=-1, byhour=12, byminute=0), 30, 0),
    ("*:*:~3:7:15", _rule(MONTHLY, bymonthday=-3, byhour=7, byminute=15), 1, 0),
    ("*:*:Fri[~1]:18:15%1H", _rule(MONTHLY, byweekday=FR(-1), byhour=18, byminute=15), 60, 0),
    ("*:*:Mon[2]:9:0%45", _rule(MONTHLY, byweekday=MO(+2), byhour=9, byminute=0), 45, 0),
    ("*:*:Fri[5]:8:0%10", _rule(MONTHLY, byweekday=FR(+5), byhour=8, byminute=0), 10, 0),
    (
        "*:Jan,Apr,Jul,Oct:1,15:6:30%2H",
        _rule(MONTHLY, bymonth=(1, 4, 7, 10), bymonthday=(1, 15), byhour=6, byminute=30),
        120,
        0,
    ),
    ("*:Dec:25:0:0%1D", _rule(YEARLY, bymonth=12, bymonthday=25, byhour=0, byminute=0), 0, 1),
    (
        # The US DST days: the local day is 23 and 25 hours long there.
        "*:Mar:Sun[2]:0:0%1D *:Nov:Sun[1]:0:0%1D",
        _union(
            _rule(YEARLY, bymonth=3, byweekday=SU(+2), byhour=0, byminute=0),
            _rule(YEARLY, bymonth=11, byweekday=SU(+1), byhour=0, byminute=0),
        ),
        0,
        1,
    ),
    (
        "*:*:1,15,Mon:7:0%5",
        _union(
            _rule(MONTHLY, bymonthday=(1, 15), byhour=7, byminute=0),
            _rule(WEEKLY, byweekday=MO, byhour=7, byminute=0),
        ),
        5,
        0,
    ),
    (
        "2026,2027:Feb-Mar,Sep:Sat,Sun:10-11:0,30%20",
        _rule(
            WEEKLY,
            bymonth=(2, 3, 9),
            byweekday=(5, 6),
            byhour=(10, 11),
            byminute=(0, 30),
        ),
        20,
        0,
    ),
]


@pytest.mark.parametrize("tz", ["UTC", NEW_YORK])
@pytest.mark.parametrize(("text", "walls", "minutes", "days"), CASES, ids=[c[0] for c in CASES])
def test_two_years_agree_with_dateutil_rrule(
    text: str, walls: rrule | rruleset, minutes: int, days: int, tz: str
) -> None:
    start, end = local(tz, 2026, 1, 1), local(tz, 2028, 1, 1)
    expected = reference(walls, tz, minutes, days)
    assert len(expected) >= 2
    assert between(text, tz, start, end) == expected


def test_a_day_long_event_spans_the_local_day_on_dst_days() -> None:
    text = "*:Mar:Sun[2]:0:0%1D *:Nov:Sun[1]:0:0%1D"
    march, november = between(text, NEW_YORK, utc(2026, 1, 1), utc(2027, 1, 1))
    assert march[1] - march[0] == 23 * HOUR
    assert november[1] - november[0] == 25 * HOUR


# --- acceptance 3: DST -----------------------------------------------------------

# (zone, spring day, the hour that is skipped, fall day, the hour that repeats)
ZONES = [
    (NEW_YORK, (2026, 3, 8), 2, (2026, 11, 1), 1),
    (BERLIN, (2026, 3, 29), 2, (2026, 10, 25), 2),
]


def _day(tz: str, ymd: tuple[int, int, int]) -> tuple[int, int]:
    """The local day as [start, end) instants."""
    first = datetime(*ymd)
    following = first + timedelta(days=1)
    return local(tz, *ymd), local(tz, following.year, following.month, following.day)


def _gap_end(tz: str, ymd: tuple[int, int, int], hour: int) -> int:
    """The first valid minute after the gap: the wall time one hour later, which exists."""
    return local(tz, *ymd, hour + 1, 0)


@pytest.mark.parametrize(("tz", "spring", "gap", "fall", "repeated"), ZONES)
@pytest.mark.parametrize("form", ["lsf", "cron"])
def test_a_fixed_time_in_the_spring_gap_moves_to_the_first_valid_minute(
    tz: str,
    spring: tuple[int, int, int],
    gap: int,
    fall: tuple[int, int, int],
    repeated: int,
    form: str,
) -> None:
    text = f"*:*:*:{gap}:30%20" if form == "lsf" else f"cron(30 {gap} * * *)%20"
    moved = _gap_end(tz, spring, gap)
    assert between(text, tz, *_day(tz, spring)) == [(moved, moved + 20 * MINUTE)]
    # The days around it are untouched.
    around = [datetime(*spring) + timedelta(days=d) for d in (-1, 1)]
    before, after = (local(tz, d.year, d.month, d.day, gap, 30) for d in around)
    assert take(text, tz, before - 1, 3) == [
        (before, before + 20 * MINUTE),
        (moved, moved + 20 * MINUTE),
        (after, after + 20 * MINUTE),
    ]


@pytest.mark.parametrize(("tz", "spring", "gap", "fall", "repeated"), ZONES)
@pytest.mark.parametrize("form", ["lsf", "cron"])
def test_gap_times_moving_to_one_minute_make_one_instance(
    tz: str,
    spring: tuple[int, int, int],
    gap: int,
    fall: tuple[int, int, int],
    repeated: int,
    form: str,
) -> None:
    text = (
        f"*:*:*:{gap}:0,15,45%5 *:*:*:{gap + 1}:0%30"
        if form == "lsf"
        else f"cron(0,15,45 {gap} * * *)%5 cron(0 {gap + 1} * * *)%30"
    )
    moved = _gap_end(tz, spring, gap)
    assert between(text, tz, *_day(tz, spring)) == [(moved, moved + 30 * MINUTE)]


@pytest.mark.parametrize(("tz", "spring", "gap", "fall", "repeated"), ZONES)
@pytest.mark.parametrize("form", ["lsf", "cron"])
def test_an_interval_expression_in_the_spring_gap_moves_too(
    tz: str,
    spring: tuple[int, int, int],
    gap: int,
    fall: tuple[int, int, int],
    repeated: int,
    form: str,
) -> None:
    text = "*:*:*:*:30%10" if form == "lsf" else "cron(30 * * * *)%10"
    starts = [s for s, _ in between(text, tz, *_day(tz, spring))]
    assert len(starts) == 24  # 02:30 became 03:00, which this expression does not name
    assert local(tz, *spring, gap - 1, 30) in starts
    assert _gap_end(tz, spring, gap) in starts
    assert local(tz, *spring, gap + 1, 30) in starts


@pytest.mark.parametrize(("tz", "spring", "gap", "fall", "repeated"), ZONES)
@pytest.mark.parametrize("form", ["lsf", "cron"])
def test_a_fixed_time_in_the_repeated_hour_fires_once_at_the_first_pass(
    tz: str,
    spring: tuple[int, int, int],
    gap: int,
    fall: tuple[int, int, int],
    repeated: int,
    form: str,
) -> None:
    text = f"*:*:*:{repeated}:30%20" if form == "lsf" else f"cron(30 {repeated} * * *)%20"
    first = local(tz, *fall, repeated, 30, fold=0)
    assert local(tz, *fall, repeated, 30, fold=1) == first + HOUR  # really repeated
    assert between(text, tz, *_day(tz, fall)) == [(first, first + 20 * MINUTE)]


@pytest.mark.parametrize(("tz", "spring", "gap", "fall", "repeated"), ZONES)
@pytest.mark.parametrize("form", ["lsf", "cron"])
def test_an_interval_expression_fires_in_both_passes_of_the_repeated_hour(
    tz: str,
    spring: tuple[int, int, int],
    gap: int,
    fall: tuple[int, int, int],
    repeated: int,
    form: str,
) -> None:
    text = "*:*:*:*:30%10" if form == "lsf" else "cron(30 * * * *)%10"
    found = between(text, tz, *_day(tz, fall))
    assert len(found) == 25
    first = local(tz, *fall, repeated, 30, fold=0)
    second = local(tz, *fall, repeated, 30, fold=1)
    assert (first, first + 10 * MINUTE) in found
    assert (second, second + 10 * MINUTE) in found
    assert [s for s, _ in found] == sorted({s for s, _ in found})


@pytest.mark.parametrize(("tz", "spring", "gap", "fall", "repeated"), ZONES)
@pytest.mark.parametrize("form", ["lsf", "cron"])
def test_a_day_long_event_covers_the_local_dst_days(
    tz: str,
    spring: tuple[int, int, int],
    gap: int,
    fall: tuple[int, int, int],
    repeated: int,
    form: str,
) -> None:
    for ymd, hours in ((spring, 23), (fall, 25)):
        _, month, day = ymd
        text = f"*:{month}:{day}:0:0%1D" if form == "lsf" else f"cron(0 0 {day} {month} *)%1D"
        start, end = _day(tz, ymd)
        assert end - start == hours * HOUR
        assert between(text, tz, start, end) == [(start, end)]


CRONS = [
    "0 9 * * 1-5",
    "30 18 L * *",
    "0 7 * * 5#3",
    "0 6 15W * *",
    "0 12 1,15 * mon",
    "15 */12 * * *",
]


@pytest.mark.parametrize("tz", ["UTC", NEW_YORK])
@pytest.mark.parametrize("body", CRONS)
def test_cron_days_agree_with_croniter_itself_away_from_dst_changes(body: str, tz: str) -> None:
    zone = ZoneInfo(tz)
    start, end = local(tz, 2026, 1, 1), local(tz, 2027, 1, 1)
    walls = croniter(body, datetime(2026, 1, 1, tzinfo=zone) - timedelta(seconds=1))
    expected = []
    while (found := int(walls.get_next(float))) < end:
        expected.append(found)
    dst_days = {(3, 8), (11, 1)}
    ours = [s for s, _ in between(f"cron({body})", tz, start, end)]

    def usual(instant: int) -> bool:
        moment = datetime.fromtimestamp(instant, zone)
        return (moment.month, moment.day) not in dst_days

    assert [s for s in ours if usual(s)] == [s for s in expected if usual(s)]
    assert len(expected) >= 12


def test_croniter_wall_times_are_not_shifted_by_the_zone() -> None:
    # Berlin 02:30 on the fall day is 00:30Z (CEST) at the first pass.
    assert take("cron(30 2 25 10 *)", BERLIN, utc(2026, 10, 1), 1) == [
        (utc(2026, 10, 25, 0, 30), utc(2026, 10, 25, 0, 31))
    ]


def test_a_half_hour_dst_shift_moves_to_the_end_of_its_gap() -> None:
    # Lord Howe Island moves 02:00 -> 02:30 on 2026-10-04.
    tz = "Australia/Lord_Howe"
    zone = ZoneInfo(tz)
    assert wall_instants(zone, datetime(2026, 10, 4, 2, 10), False) == [
        local(tz, 2026, 10, 4, 2, 30)
    ]
    # It repeats 01:30-02:00 on 2026-04-05.
    first, second = wall_instants(zone, datetime(2026, 4, 5, 1, 45), True)
    assert second - first == 30 * MINUTE


# --- acceptance 4: the overlap rule and field semantics --------------------------


def test_a_new_event_ends_the_previous_one() -> None:
    assert between("*:*:*:8:0%2H *:*:*:9:0%30", "UTC", utc(2026, 1, 1), utc(2026, 1, 2)) == [
        (utc(2026, 1, 1, 8), utc(2026, 1, 1, 9)),
        (utc(2026, 1, 1, 9), utc(2026, 1, 1, 9, 30)),
    ]


def test_the_overlap_rule_applies_within_one_expression_too() -> None:
    assert between("*:*:*:8,9:0%90", "UTC", utc(2026, 1, 1), utc(2026, 1, 2)) == [
        (utc(2026, 1, 1, 8), utc(2026, 1, 1, 9)),
        (utc(2026, 1, 1, 9), utc(2026, 1, 1, 10, 30)),
    ]


def test_equal_starts_are_one_instance_with_the_longest_end() -> None:
    assert between("*:*:*:8:0%30 *:*:*:8:0%2H", "UTC", utc(2026, 1, 1), utc(2026, 1, 2)) == [
        (utc(2026, 1, 1, 8), utc(2026, 1, 1, 10)),
    ]


def test_the_end_looks_past_the_window_at_the_next_start() -> None:
    found = between("*:*:*:8:0%2H *:*:*:9:0", "UTC", utc(2026, 1, 1), utc(2026, 1, 1, 8, 30))
    assert found == [(utc(2026, 1, 1, 8), utc(2026, 1, 1, 9))]


def test_day_numbers_and_weekdays_combine_as_a_union() -> None:
    starts = [s for s, _ in between("*:*:1,15,Mon:7:0", "UTC", utc(2026, 2, 1), utc(2026, 3, 1))]
    assert starts == [utc(2026, 2, day, 7) for day in (1, 2, 9, 15, 16, 23)]


def test_a_star_minute_is_minute_zero_and_an_explicit_range_is_every_minute() -> None:
    window = utc(2026, 1, 1), utc(2026, 1, 2)
    assert between("*:*:*:9-11:*", "UTC", *window) == [
        (utc(2026, 1, 1, h), utc(2026, 1, 1, h, 1)) for h in (9, 10, 11)
    ]
    every = between("*:*:*:9:0-59", "UTC", *window)
    assert [s for s, _ in every] == [utc(2026, 1, 1, 9, m) for m in range(60)]


def test_a_fifth_weekday_skips_months_without_one() -> None:
    starts = [s for s, _ in between("*:*:Fri[5]:8:0", "UTC", utc(2026, 1, 1), utc(2027, 1, 1))]
    assert starts == [utc(2026, m, d, 8) for m, d in ((1, 30), (5, 29), (7, 31), (10, 30))]


def test_years_bound_the_instances() -> None:
    assert [s for s, _ in take("1997:*:Mon-Fri:9-17:*", "UTC", utc(1997, 1, 1), 2)] == [
        utc(1997, 1, 1, 9),
        utc(1997, 1, 1, 10),
    ]
    assert list(iter_instances(spec("1997:*:Mon-Fri:9-17:*"), "UTC", utc(1998, 1, 1))) == []
    last = list(iter_instances(spec("*:Dec:31:23:59%1D"), "UTC", utc(2097, 6, 1)))
    assert [s for s, _ in last] == [utc(y, 12, 31, 23, 59) for y in (2097, 2098, 2099)]
    # The 2096 instance lasts into 2097-01-01, so from New Year's Day it comes first.
    assert take("*:Dec:31:23:59%1D", "UTC", utc(2097, 1, 1), 1) == [
        (utc(2096, 12, 31, 23, 59), utc(2097, 1, 1, 23, 59))
    ]


def test_active_and_previous_instances() -> None:
    daily = spec("*:*:*:8:0%2H")
    eight = (utc(2026, 1, 5, 8), utc(2026, 1, 5, 10))
    assert active_instance(daily, "UTC", utc(2026, 1, 5, 9)) == eight
    assert active_instance(daily, "UTC", utc(2026, 1, 5, 8)) == eight
    assert active_instance(daily, "UTC", utc(2026, 1, 5, 10)) is None
    assert previous_instance(daily, "UTC", utc(2026, 1, 5, 12)) == eight
    assert previous_instance(daily, "UTC", utc(2026, 1, 5, 8)) == eight
    assert previous_instance(daily, "UTC", utc(2026, 1, 5, 7)) == (
        utc(2026, 1, 4, 8),
        utc(2026, 1, 4, 10),
    )
    # The previous instance's end is cut by the next start, even one after `at`.
    cut = spec("*:*:*:8:0%2H *:*:*:9:0")
    assert previous_instance(cut, "UTC", utc(2026, 1, 5, 8, 30)) == (
        utc(2026, 1, 5, 8),
        utc(2026, 1, 5, 9),
    )
    new_year = (utc(2026, 1, 1), utc(2026, 1, 1, 0, 1))
    assert previous_instance(spec("*:Jan:1:0:0"), "UTC", utc(2026, 6, 1)) == new_year
    assert previous_instance(spec("2024:Jan:1:0:0"), "UTC", utc(2026, 6, 1)) is None  # > 400 days


def test_a_long_instance_active_at_after_is_found() -> None:
    assert take("*:Jan:1:0:0%300D", "UTC", utc(2026, 9, 1), 1) == [
        (utc(2026, 1, 1), utc(2026, 10, 28))
    ]


# --- acceptance 5: never firing --------------------------------------------------


def test_never_fires() -> None:
    now = utc(2026, 1, 1)
    assert never_fires(spec("*:Feb:30:0:0"), "UTC", now)
    assert not never_fires(spec("*:Feb:29:0:0"), "UTC", now)
    assert never_fires(spec("1997:*:*:8:0"), "UTC", now)
    assert never_fires(spec("cron(0 0 30 2 *)"), NEW_YORK, now)
    assert not never_fires(spec("cron(0 0 29 2 *)"), NEW_YORK, now)
    # An instance still active at `now` is not over yet.
    assert not never_fires(spec("2026:Jan:1:0:0%1D"), "UTC", utc(2026, 1, 1, 12))


@pytest.mark.parametrize("text", ["*:Feb:30:0:0", "*:Apr,Jun:31:*:0-59", "cron(0 0 31 4,6 *)"])
def test_iterating_a_never_firing_calendar_ends_quickly(text: str) -> None:
    never = spec(text)
    began = time.perf_counter()
    assert list(iter_instances(never, NEW_YORK, utc(2026, 1, 1))) == []
    assert time.perf_counter() - began < 0.2  # about 1 ms; minute stepping would take minutes


# --- zones -----------------------------------------------------------------------


def test_check_timezone() -> None:
    for good in ("UTC", "Europe/Berlin", "America/New_York", "Etc/GMT+5"):
        assert check_timezone(good) is None
    for bad in ("", "Mars/Olympus", "America", "/etc/passwd", "../x", "Berlin ", "localtime"):
        problem = check_timezone(bad)
        assert problem is not None and f"'{bad}'" in problem and "\n" not in problem


def test_an_unknown_zone_raises_when_iteration_is_asked_for() -> None:
    with pytest.raises(KeyError):
        iter_instances(spec("*:*:*:8:0"), "Mars/Olympus", 0)


def test_the_local_zone_comes_from_tz_etc_timezone_or_the_localtime_link() -> None:
    link = "/usr/share/zoneinfo/Europe/Berlin"
    assert zone_from(":America/New_York", "Asia/Tokyo", link) == NEW_YORK
    assert zone_from("/usr/share/zoneinfo/Asia/Tokyo", None, link) == "Asia/Tokyo"
    assert zone_from("EST5EDT,M3.2.0,M11.1.0", "Asia/Tokyo\n", link) == "Asia/Tokyo"
    assert zone_from(None, None, "../usr/share/zoneinfo/posix/Europe/Berlin") == BERLIN
    assert zone_from(None, "nonsense", "/etc/elsewhere") == "UTC"
    assert zone_from(None, None, None) == "UTC"


def test_local_zone_name_honours_tz(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TZ", "Europe/Berlin")
    assert local_zone_name() == BERLIN
    monkeypatch.delenv("TZ")
    assert check_timezone(local_zone_name()) is None


# --- properties ------------------------------------------------------------------

_FIELDS = st.tuples(
    st.sampled_from(["*", "Mar", "Oct,Nov", "1-3"]),
    st.sampled_from(["*", "~1", "Sun", "Sun[~1]", "1,15", "25-31"]),
    st.sampled_from(["*", "0", "1,2", "2-3", "23"]),
    st.sampled_from(["*", "0", "30", "0,45"]),
    st.sampled_from(["", "%10", "%2H", "%1D"]),
)


@settings(max_examples=25, deadline=None)
@given(
    st.lists(_FIELDS, min_size=1, max_size=2),
    st.sampled_from(["UTC", NEW_YORK, BERLIN, "Australia/Lord_Howe"]),
    st.integers(utc(2026, 1, 1), utc(2027, 1, 1)),
)
def test_instances_are_ordered_disjoint_and_found_the_same_way_by_every_entry(
    fields: list[tuple[str, str, str, str, str]], tz: str, after: int
) -> None:
    calendar = spec(" ".join(f"*:{mo}:{d}:{h}:{mi}{dur}" for mo, d, h, mi, dur in fields))
    found = list(zip(range(40), iter_instances(calendar, tz, after), strict=False))
    instances = [instance for _, instance in found]
    assert all(start < end for start, end in instances)
    assert all(a[1] <= b[0] for a, b in pairwise(instances))
    if instances:
        assert instances[0][1] > after
        last_start = instances[-1][0]
        assert [i for i in instances if i[0] >= after and i[0] < last_start] == (
            instances_between(calendar, tz, after, last_start)
        )
        first = instances[0]
        expected_active = first if first[0] <= after else None
        assert active_instance(calendar, tz, after) == expected_active
