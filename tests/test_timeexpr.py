"""LSF time expressions: values, precise diagnostics, warnings, and a text round trip."""

from __future__ import annotations

from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.timeexpr import (
    DAY_NAMES,
    MONTH_NAMES,
    CalendarSpec,
    DaySpec,
    TimeExpr,
    matching_days,
    parse_time_exprs,
)


def parse(text: str) -> CalendarSpec:
    result = parse_time_exprs(text)
    assert result.ok, [str(d) for d in result.diagnostics]
    assert result.spec is not None
    return result.spec


def one(text: str) -> TimeExpr:
    (expr,) = parse(text).exprs
    return expr


def errors(text: str, line: int = 1, col_offset: int = 0) -> list[str]:
    result = parse_time_exprs(text, line=line, col_offset=col_offset)
    assert not result.ok
    assert result.spec is None
    return [str(d) for d in result.diagnostics]


# --- valid expressions -----------------------------------------------------------


def test_noon_daily_for_thirty_minutes() -> None:
    assert one("*:*:*:12:0%30") == TimeExpr(
        text="*:*:*:12:0%30",
        years=None,
        months=None,
        days=None,
        hours=frozenset({12}),
        minutes=frozenset({0}),
        duration_minutes=30,
        duration_days=0,
    )


def test_working_hours_with_ranges_and_a_star_minute() -> None:
    expr = one("1997:*:Mon-Fri:9-17:*")
    assert expr.years == frozenset({1997})
    assert expr.days == tuple(DaySpec("weekday", day) for day in range(5))
    assert expr.hours == frozenset(range(9, 18))
    assert expr.minutes == frozenset({0})  # '*' is minute 0 of each hour
    assert expr.duration_minutes == 1 and expr.duration_days == 0  # the default
    assert not expr.interval


def test_nth_weekdays_in_listed_months_for_an_hour() -> None:
    expr = one("*:Mar,Jun,Sep,Dec:Mon[1],Tue[2],Wed[3],Thu[4],Fri[5]:23:30%1H")
    assert expr.months == frozenset({3, 6, 9, 12})
    assert expr.days == tuple(DaySpec("nth_weekday", day, day + 1) for day in range(5))
    assert expr.duration_minutes == 60


def test_a_list_of_expressions() -> None:
    spec = parse("*:*:*:12:0%30 *:Mar:Mon,Tue:22:30")
    assert [e.text for e in spec.exprs] == ["*:*:*:12:0%30", "*:Mar:Mon,Tue:22:30"]
    assert spec.text == "*:*:*:12:0%30 *:Mar:Mon,Tue:22:30"
    assert parse("  *:*:*:12:0%30\n\t*:Mar:Mon,Tue:22:30  ").text == spec.text


def test_day_durations_and_leading_zeros() -> None:
    expr = one("*:Dec:25:00:00%1D")
    assert (expr.hours, expr.minutes) == (frozenset({0}), frozenset({0}))
    assert (expr.duration_minutes, expr.duration_days) == (0, 1)
    assert one("*:*:*:8:0%30m").duration_minutes == 30
    assert one("*:*:*:8:0%2h").duration_minutes == 120
    assert one("*:*:*:8:0%3d").duration_days == 3


def test_names_are_case_insensitive_and_months_take_ranges() -> None:
    expr = one("*:jan-MAR,oct:mon,FRI:8:0")
    assert expr.months == frozenset({1, 2, 3, 10})
    assert expr.days == (DaySpec("weekday", 0), DaySpec("weekday", 4))


def test_every_kind_of_day_item() -> None:
    expr = one("*:*:1-3,~1,~2,Sun,Mon[2],Fri[~1]:8:0")
    assert set(expr.days or ()) == {
        DaySpec("day", 1),
        DaySpec("day", 2),
        DaySpec("day", 3),
        DaySpec("from_end", 1),
        DaySpec("from_end", 2),
        DaySpec("weekday", 6),
        DaySpec("nth_weekday", 0, 2),
        DaySpec("nth_last_weekday", 4, 1),
    }


def test_hour_star_makes_an_interval_expression() -> None:
    assert one("*:*:*:*:30").interval
    assert one("*:*:*:*:30").hours is None
    assert not one("*:*:*:0-23:30").interval
    assert one("*:*:*:8:0-59").minutes == frozenset(range(60))


def test_cron_expressions() -> None:
    expr = one("cron(*/15 9-17 * * 1-5)%10")
    assert expr.cron == "*/15 9-17 * * 1-5"
    assert expr.duration_minutes == 10
    assert not expr.interval
    assert (expr.years, expr.months, expr.days, expr.hours) == (None, None, None, None)
    assert expr.minutes == frozenset({0})
    assert one("cron(30 * * * *)").interval
    assert one("cron(0 */2 * * *)").interval
    assert one("CRON(0  9 * * *)").cron == "0 9 * * *"
    assert one("cron(0 9 * * *)").duration_minutes == 1


def test_matching_days_counts_from_the_month_end_and_by_week() -> None:
    # February 2026 starts on a Sunday and has 28 days.
    assert matching_days((DaySpec("from_end", 1),), 2026, 2) == [28]
    assert matching_days((DaySpec("from_end", 1),), 2028, 2) == [29]
    assert matching_days((DaySpec("nth_weekday", 0, 1),), 2026, 2) == [2]
    assert matching_days((DaySpec("nth_weekday", 0, 5),), 2026, 2) == []
    assert matching_days((DaySpec("nth_last_weekday", 6, 1),), 2026, 2) == [22]
    assert matching_days((DaySpec("nth_last_weekday", 6, 4),), 2026, 2) == [1]
    assert matching_days((DaySpec("day", 30),), 2026, 2) == []
    both = (DaySpec("day", 1), DaySpec("day", 15), DaySpec("weekday", 0))
    assert matching_days(both, 2026, 2) == [1, 2, 9, 15, 16, 23]


# --- errors ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "col", "words"),
    [
        ("*:13:*:8:0", 3, ["month", "13", "out of range"]),
        ("*:*:Mon[6]:8:0", 5, ["day", "'Mon[6]'", "week number"]),
        ("*:*:Mon[~0]:8:0", 5, ["day", "'Mon[~0]'", "week number"]),
        ("*:*:~0:8:0", 5, ["day", "'~0'", "~n"]),
        ("*:*:~32:8:0", 5, ["day", "'~32'", "~n"]),
        ("*:*:*:12:0%5X", 12, ["duration", "'%5X'", "unit"]),
        ("*:*:*:12:0%0", 12, ["duration", "'%0'", "at least 1"]),
        ("*:*:*:12:0%H", 12, ["duration", "'%H'"]),
        ("*:*:*:12:0%", 12, ["duration", "empty"]),
        ("*:*:*:12:0%367D", 12, ["duration", "'%367D'", "366"]),
        ("*:*:*:8", 1, ["5 fields", "found 4"]),
        ("*:*:*:8:0:0", 1, ["5 fields", "found 6"]),
        ("*:*:*:24:0", 7, ["hour", "24", "out of range"]),
        ("*:*:*:8:60", 9, ["minute", "60", "out of range"]),
        ("1800:*:*:8:0", 1, ["year", "1800", "out of range"]),
        ("2100:*:*:8:0", 1, ["year", "2100"]),
        ("97:*:*:8:0", 1, ["year", "97"]),
        ("*:*:*:17-9:0", 7, ["hour", "'17-9'", "start is after its end"]),
        ("*:*:*:8-25:0", 9, ["hour", "25", "out of range"]),
        ("*:Dec-Jan:*:8:0", 3, ["month", "'Dec-Jan'", "start is after its end"]),
        ("*:Foo:*:8:0", 3, ["month", "'Foo'"]),
        ("*:*:Xyz:8:0", 5, ["day", "'Xyz'"]),
        ("*:*:Xyz[2]:8:0", 5, ["day", "'Xyz[2]'"]),
        ("*:*:32:8:0", 5, ["day", "32", "out of range"]),
        ("*:*:0:8:0", 5, ["day", "0", "out of range"]),
        ("*:*:Fri-Mon:8:0", 5, ["day", "'Fri-Mon'", "start is after its end"]),
        ("*:*:~5-~1:8:0", 5, ["day", "'~5-~1'", "range"]),
        ("*:*:Mon[1]-Fri[1]:8:0", 5, ["day", "'Mon[1]-Fri[1]'", "range"]),
        ("*:*:1-Fri:8:0", 5, ["day", "'1-Fri'", "range"]),
        ("*:*:1,,2:8:0", 7, ["day", "empty item"]),
        ("*:*:1-2-3:8:0", 5, ["day", "'1-2-3'", "range"]),
        ("*:*:*:-5:0", 7, ["hour", "'-5'"]),
        ("*:*,1:*:8:0", 3, ["month", "'*'", "alone"]),
        ("*::*:8:0", 3, ["month", "empty"]),
        ("*:*:*:8:0)", 9, ["minute", "'0)'"]),
        ("*:*:*:eight:0", 7, ["hour", "'eight'"]),
        ("cron(* * * *)", 6, ["cron", "'* * * *'", "5 fields", "found 4"]),
        ("cron(0 0 * * * *)", 6, ["cron", "5 fields", "found 6"]),
        ("cron(61 * * * *)", 6, ["cron", "'61 * * * *'", "out of range"]),
        ("cron(a b c d e)", 6, ["cron", "'a b c d e'"]),
        ("cron(0 9 * * *", 1, ["cron", "closing ')'"]),
        ("cron(0 9 * * *)x", 16, ["'x'"]),
        ("cron(0 9 * * *)%5X", 17, ["duration", "'%5X'"]),
    ],
)
def test_each_error_names_its_column_field_and_token(text: str, col: int, words: list[str]) -> None:
    (diagnostic,) = errors(text)
    assert diagnostic.startswith(f"-t:1:{col}: "), diagnostic
    for word in words:
        assert word in diagnostic, (word, diagnostic)


def test_empty_text_is_an_error() -> None:
    assert errors("") == ["-t:1:1: the time expression list is empty"]
    assert errors("  \n ") == ["-t:1:1: the time expression list is empty"]


def test_a_space_inside_an_expression_is_refused() -> None:
    found = errors("*: *:*:8:0")
    assert [d.split(": ", 1)[0] for d in found] == ["-t:1:1", "-t:1:4"]
    assert all("spaces separate time expressions" in d for d in found)


def test_every_error_is_reported_with_its_own_column() -> None:
    assert errors("*:*:*:8:0%5Y *:13:*:24:99%0") == [
        "-t:1:11: duration '%5Y': unit must be D, H or M",
        "-t:1:16: month 13 is out of range (1-12 or Jan-Dec)",
        "-t:1:21: hour 24 is out of range (0-23)",
        "-t:1:24: minute 99 is out of range (0-59)",
        "-t:1:27: duration '%0' must be at least 1",
    ]
    assert errors("*:13:*:24:99 *:*:*:8:0%5X") == [
        "-t:1:3: month 13 is out of range (1-12 or Jan-Dec)",
        "-t:1:8: hour 24 is out of range (0-23)",
        "-t:1:11: minute 99 is out of range (0-59)",
        "-t:1:24: duration '%5X': unit must be D, H or M",
    ]


def test_line_and_column_offset_place_the_text_in_a_larger_one() -> None:
    # As in `-w "done(a) && calendar(*:13:*:8:0)"`: the body starts at column 22.
    (diagnostic,) = errors("*:13:*:8:0", line=3, col_offset=21)
    assert diagnostic.startswith("-t:3:24: month 13")
    # Only the first line is shifted; later lines start at the caller's column 1.
    (diagnostic,) = errors("*:*:*:8:0\n  *:x:*:8:0", col_offset=21)
    assert diagnostic.startswith("-t:2:5: month 'x'")
    result = parse_time_exprs("*:*:*:25:0", "lsb.calendars")
    assert str(result.diagnostics[0]).startswith("lsb.calendars:1:7: hour 25")


# --- warnings --------------------------------------------------------------------


def test_an_expression_that_can_never_fire_is_a_warning() -> None:
    result = parse_time_exprs("*:Feb:30:8:0")
    assert result.ok
    assert result.warnings == ["'*:Feb:30:8:0' can never fire (Feb has no day 30)"]
    assert parse_time_exprs("*:Apr:31:8:0").warnings == [
        "'*:Apr:31:8:0' can never fire (Apr has no day 31)"
    ]
    assert parse_time_exprs("2027:Feb:29:0:0").warnings == [
        "'2027:Feb:29:0:0' can never fire (Feb has no day 29 in 2027)"
    ]
    assert parse_time_exprs("2026:Feb:Mon[5]:0:0").warnings
    assert parse_time_exprs("cron(0 0 30 2 *)").warnings


@pytest.mark.parametrize(
    "text",
    ["*:Feb:29:8:0", "2028:Feb:29:0:0", "*:Feb,Apr:30:8:0", "*:Feb:Mon[5]:0:0", "cron(0 0 29 2 *)"],
)
def test_possible_expressions_have_no_warning(text: str) -> None:
    result = parse_time_exprs(text)
    assert result.ok
    assert result.warnings == []


# --- properties ------------------------------------------------------------------


def _cased(name: str) -> st.SearchStrategy[str]:
    return st.sampled_from([name, name.lower(), name.upper()])


Piece = tuple[str, frozenset[int]]


@st.composite
def _numeric(draw: st.DrawFn, low: int, high: int, names: tuple[str, ...] = ()) -> Piece:
    first = draw(st.integers(low, high))
    last = draw(st.integers(first, high))
    ranged = draw(st.booleans())

    def show(value: int) -> str:
        named: bool = draw(st.booleans())
        return draw(_cased(names[value - low])) if names and named else str(value)

    if ranged:
        return f"{show(first)}-{show(last)}", frozenset(range(first, last + 1))
    return show(first), frozenset({first})


def _field(item: st.SearchStrategy[Piece]) -> st.SearchStrategy[tuple[str, frozenset[int] | None]]:
    listed = st.lists(item, min_size=1, max_size=3).map(
        lambda items: (",".join(t for t, _ in items), frozenset().union(*(v for _, v in items)))
    )
    star: st.SearchStrategy[tuple[str, frozenset[int] | None]] = st.just(("*", None))
    return st.one_of(star, listed)


@st.composite
def _weekday_names(draw: st.DrawFn) -> Piece:
    first = draw(st.integers(0, 6))
    last = draw(st.integers(first, 6))
    start, end = draw(_cased(DAY_NAMES[first])), draw(_cased(DAY_NAMES[last]))
    if draw(st.booleans()):
        return f"{start}-{end}", frozenset(range(first, last + 1))
    return start, frozenset({first})


@st.composite
def _day_item(draw: st.DrawFn) -> tuple[str, frozenset[DaySpec]]:
    kind = draw(st.sampled_from(["day", "days", "from_end", "weekday", "weekdays", "nth", "last"]))
    if kind in ("day", "days"):
        text, values = draw(_numeric(1, 31))
        return text, frozenset(DaySpec("day", v) for v in values)
    if kind == "from_end":
        n = draw(st.integers(1, 31))
        return f"~{n}", frozenset({DaySpec("from_end", n)})
    if kind in ("weekday", "weekdays"):
        text, values = draw(_weekday_names())
        return text, frozenset(DaySpec("weekday", v) for v in values)
    weekday, n = draw(st.integers(0, 6)), draw(st.integers(1, 5))
    name = draw(_cased(DAY_NAMES[weekday]))
    if kind == "nth":
        return f"{name}[{n}]", frozenset({DaySpec("nth_weekday", weekday, n)})
    return f"{name}[~{n}]", frozenset({DaySpec("nth_last_weekday", weekday, n)})


@st.composite
def _lsf(draw: st.DrawFn) -> tuple[str, TimeExpr]:
    year_text, years = draw(_field(_numeric(1900, 2099)))
    month_text, months = draw(_field(_numeric(1, 12, MONTH_NAMES)))
    if draw(st.booleans()):
        day_text, days = "*", None
    else:
        items = draw(st.lists(_day_item(), min_size=1, max_size=3))
        day_text = ",".join(t for t, _ in items)
        days = frozenset().union(*(v for _, v in items))
    hour_text, hours = draw(_field(_numeric(0, 23)))
    minute_text, minutes = draw(_field(_numeric(0, 59)))
    unit = draw(st.sampled_from(["", "", "m", "M", "h", "H", "d", "D"]))
    in_days = unit.upper() == "D"
    count = draw(st.integers(1, 366 if in_days else 300))
    duration = draw(st.sampled_from(["", f"%{count}{unit}"]))
    text = f"{year_text}:{month_text}:{day_text}:{hour_text}:{minute_text}{duration}"
    in_minutes = 0 if in_days else count * (60 if unit.upper() == "H" else 1)
    expected = TimeExpr(
        text=text,
        years=years,
        months=months,
        days=None if days is None else tuple(days),
        hours=hours,
        minutes=minutes if minutes is not None else frozenset({0}),
        duration_minutes=in_minutes if duration else 1,
        duration_days=count if duration and in_days else 0,
        interval=hour_text == "*",
    )
    return text, expected


_CRONS = ["0 9 * * 1-5", "*/15 9-17 * * 1-5", "30 * * * *", "0 0 L * *", "5 4 1,15 * sun"]


@st.composite
def _cron(draw: st.DrawFn) -> tuple[str, TimeExpr]:
    body = draw(st.sampled_from(_CRONS))
    count = draw(st.integers(1, 120))
    duration = draw(st.sampled_from(["", f"%{count}"]))
    text = f"cron({body}){duration}"
    expected = TimeExpr(
        text=text,
        years=None,
        months=None,
        days=None,
        hours=None,
        minutes=frozenset({0}),
        duration_minutes=count if duration else 1,
        duration_days=0,
        cron=body,
        interval="*" in body.split()[1],
    )
    return text, expected


def _same(parsed: TimeExpr, expected: TimeExpr) -> None:
    """Day items compare as a set: the parser orders and deduplicates them."""
    if expected.days is not None:
        assert parsed.days is not None
        assert len(set(parsed.days)) == len(parsed.days)
        assert set(parsed.days) == set(expected.days)
        expected = replace(expected, days=parsed.days)
    assert parsed == expected


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.one_of(_lsf(), _lsf(), _cron()), min_size=1, max_size=3),
    st.sampled_from([" ", "  ", "\t", "\n", " \n "]),
)
def test_generated_expressions_parse_to_their_values_and_round_trip(
    exprs: list[tuple[str, TimeExpr]], separator: str
) -> None:
    result = parse_time_exprs(separator.join(text for text, _ in exprs))
    assert result.ok, [str(d) for d in result.diagnostics]
    assert result.spec is not None
    assert len(result.spec.exprs) == len(exprs)
    for parsed, (_, expected) in zip(result.spec.exprs, exprs, strict=True):
        _same(parsed, expected)
    again = parse_time_exprs(result.spec.text)
    assert again.spec == result.spec
    assert again.warnings == result.warnings


_ALPHABET = "0123456789*:,-~%[]() \t\nDHMdhmJanFebMonFriSun#LW/?cron"


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.text(alphabet=_ALPHABET, max_size=40), st.text(max_size=30)))
def test_any_text_gives_a_spec_or_diagnostics_and_never_raises(text: str) -> None:
    result = parse_time_exprs(text)
    assert result.ok == (not result.diagnostics)
    if result.ok:
        assert result.spec is not None
        assert parse_time_exprs(result.spec.text).spec == result.spec
    else:
        assert result.spec is None
        for diagnostic in result.diagnostics:
            assert diagnostic.line >= 1 and diagnostic.col >= 1
