"""The lsb.calendars reader: sections in, definitions and `file:line:col` diagnostics out."""

from __future__ import annotations

import json

import pytest

from engine.calendars import local_zone_name
from engine.syscalendars import CalendarsFile, SystemCalendar, parse_calendars_file

SOURCE = "/etc/tock/lsb.calendars"


def parse(text: str) -> CalendarsFile:
    return parse_calendars_file(text, SOURCE)


def diagnostics(result: CalendarsFile) -> list[str]:
    return [str(diagnostic) for diagnostic in result.diagnostics]


def names(result: CalendarsFile) -> list[str]:
    return [calendar.name for calendar in result.calendars]


def one(text: str) -> SystemCalendar:
    result = parse(text)
    assert diagnostics(result) == []
    (calendar,) = result.calendars
    return calendar


GOOD = """\
# Calendars of the plant.
Begin Calendar
NAME        = Holiday   # comments may follow a value
TIME_EVENTS = *:Dec:25:00:00%1D *:Jan:1:00:00%1D
DESCRIPTION = "Closed # really"
TIMEZONE    = Europe/Berlin
End Calendar

  # an indented comment between sections
Begin Calendar
NAME = day_shift
TIME_EVENTS = *:*:Mon-Fri:6:0%8H
End Calendar
"""


def test_good_sections_load_with_their_fields() -> None:
    result = parse(GOOD)
    assert diagnostics(result) == []
    holiday, shift = result.calendars
    assert holiday == SystemCalendar(
        name="Holiday",
        expression="*:Dec:25:00:00%1D *:Jan:1:00:00%1D",
        compiled=holiday.compiled,
        description="Closed # really",  # a '#' inside quotes is not a comment
        timezone="Europe/Berlin",
        line=2,
    )
    assert [expr["text"] for expr in json.loads(holiday.compiled)] == [
        "*:Dec:25:00:00%1D",
        "*:Jan:1:00:00%1D",
    ]
    assert (shift.name, shift.expression, shift.description, shift.line) == (
        "day_shift",
        "*:*:Mon-Fri:6:0%8H",
        "",
        10,
    )
    assert shift.timezone == local_zone_name()  # TIMEZONE is optional


def test_keys_and_markers_ignore_case_and_spacing() -> None:
    calendar = one(
        "   begin   CALENDAR\n"
        "name=b\n"
        "\ttime_events =*:*:*:8:0   *:*:*:9:0%1H   \n"
        "Description = 'single quotes'\n"
        "END calendar\n"
    )
    assert (calendar.name, calendar.expression, calendar.description) == (
        "b",
        "*:*:*:8:0 *:*:*:9:0%1H",  # normalised: one space between expressions
        "single quotes",
    )


def test_an_empty_file_or_only_comments_is_nothing() -> None:
    for text in ("", "\n\n", "# nothing here\n   # nor here\n"):
        result = parse(text)
        assert (result.calendars, result.diagnostics) == ([], [])


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "Begin Calendar\nTIME_EVENTS = *:*:*:8:0\nEnd Calendar\n",
            f"{SOURCE}:1:1: the section has no NAME",
        ),
        (
            "\n# x\nBegin Calendar\nNAME = a\nEnd Calendar\n",
            f"{SOURCE}:3:1: the section has no TIME_EVENTS",
        ),
        (
            "Begin Calendar\nNAME = a\nCOLOR = red\nTIME_EVENTS = *:*:*:8:0\nEnd Calendar\n",
            f"{SOURCE}:3:1: expected one of NAME, TIME_EVENTS, DESCRIPTION, TIMEZONE = value",
        ),
        (
            "Begin Calendar\nNAME = a\n  just words\nTIME_EVENTS = *:*:*:8:0\nEnd Calendar\n",
            f"{SOURCE}:3:3: expected one of NAME, TIME_EVENTS, DESCRIPTION, TIMEZONE = value",
        ),
        (
            "Begin Calendar\nNAME = 1st\nTIME_EVENTS = *:*:*:8:0\nEnd Calendar\n",
            f"{SOURCE}:2:8: calendar name '1st' is not valid",
        ),
        (
            "Begin Calendar\nNAME = a\nTIME_EVENTS = *:*:*:8:0\nTIMEZONE = Mars/Base\n"
            "End Calendar\n",
            f"{SOURCE}:4:12: TIMEZONE Mars/Base: unknown time zone 'Mars/Base'",
        ),
        (
            "Begin Calendar\nNAME = a\nTIME_EVENTS =\nEnd Calendar\n",
            f"{SOURCE}:3:14: the time expression list is empty",
        ),
    ],
)
def test_a_bad_section_is_reported_where_it_is_wrong_and_skipped(text: str, expected: str) -> None:
    result = parse(text)
    assert result.calendars == []
    (diagnostic,) = diagnostics(result)
    assert diagnostic.startswith(expected)


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("TIME_EVENTS = *:13:*:8:0", "3:17: month 13 is out of range (1-12 or Jan-Dec)"),
        ("TIME_EVENTS =   *:*:*:8:0 *:*:Mon[6]:8:0", "3:31: day 'Mon[6]'"),
        ('TIME_EVENTS = "*:*:~0:8:0"', "3:20: day '~0'"),
        ("\tTIME_EVENTS = *:*:*:25:0", "3:22: hour 25 is out of range (0-23)"),
        ("TIME_EVENTS=*:*:*:8:0%5X", "3:23: duration '%5X': unit must be D, H or M"),
        ("TIME_EVENTS = *:*:*:8", "3:15: a time expression has 5 fields"),
    ],
)
def test_a_bad_expression_points_into_the_file(line: str, expected: str) -> None:
    text = f"Begin Calendar\nNAME = bad\n{line}\nEnd Calendar\n"
    result = parse(text)
    assert result.calendars == []
    (diagnostic,) = diagnostics(result)
    assert diagnostic.startswith(f"{SOURCE}:{expected}")


def test_a_duplicate_name_keeps_the_first_and_reports_the_second() -> None:
    result = parse(
        "Begin Calendar\nNAME = a\nTIME_EVENTS = *:*:*:8:0\nEnd Calendar\n"
        "Begin Calendar\n  NAME = a\nTIME_EVENTS = *:*:*:9:0\nEnd Calendar\n"
    )
    assert [(c.name, c.expression) for c in result.calendars] == [("a", "*:*:*:8:0")]
    assert diagnostics(result) == [f"{SOURCE}:6:10: calendar 'a' is defined twice"]


def test_an_unclosed_section_is_reported_at_its_start_and_not_loaded() -> None:
    result = parse(
        "Begin Calendar\nNAME = a\nTIME_EVENTS = *:*:*:8:0\nEnd Calendar\n"
        "Begin Calendar\nNAME = b\nTIME_EVENTS = *:*:*:9:0\n"
    )
    assert names(result) == ["a"]
    assert diagnostics(result) == [f"{SOURCE}:5:1: section not closed with 'End Calendar'"]


def test_markers_out_of_place_are_reported() -> None:
    result = parse(
        "End Calendar\n"
        "Begin Calendar\nNAME = lost\n"
        "  Begin Calendar\nNAME = b\nTIME_EVENTS = *:*:*:9:0\nEnd Calendar\n"
    )
    assert names(result) == ["b"]  # a new Begin starts afresh
    assert diagnostics(result) == [
        f"{SOURCE}:1:1: 'End Calendar' without 'Begin Calendar'",
        f"{SOURCE}:4:3: 'Begin Calendar' before 'End Calendar'",
    ]


def test_text_outside_a_section_is_reported_and_the_sections_still_load() -> None:
    result = parse(
        "NAME = early\n"
        "Begin Calendar\nNAME = a\nTIME_EVENTS = *:*:*:8:0\nEnd Calendar\n"
        "    stray words  # and a comment\n"
    )
    assert names(result) == ["a"]
    assert diagnostics(result) == [
        f"{SOURCE}:1:1: text outside a 'Begin Calendar' section",
        f"{SOURCE}:6:5: text outside a 'Begin Calendar' section",
    ]


def test_bad_sections_are_skipped_and_the_good_ones_load() -> None:
    text = (
        "Begin Calendar\nNAME = first\nTIME_EVENTS = *:*:*:8:0\nEnd Calendar\n"  # 1-4
        "Begin Calendar\nNAME = broken\nTIME_EVENTS = *:*:*:8:0%0\nEnd Calendar\n"  # 5-8
        "Begin Calendar\nNAME = odd\nCOLOUR = red\nTIME_EVENTS = *:*:*:8:0\nEnd Calendar\n"  # 9-13
        "Begin Calendar\nTIME_EVENTS = *:*:*:8:0\nEnd Calendar\n"  # 14-16
        "Begin Calendar\nNAME = last\nTIME_EVENTS = *:*:*:18:0\nEnd Calendar\n"  # 17-20
    )
    result = parse(text)
    assert [(c.name, c.line) for c in result.calendars] == [("first", 1), ("last", 17)]
    assert [(d.line, d.col) for d in result.diagnostics] == [(7, 25), (11, 1), (14, 1)]
    assert "duration '%0' must be at least 1" in result.diagnostics[0].message
    assert all(d.source == SOURCE for d in result.diagnostics)


def test_a_key_given_twice_skips_the_section() -> None:
    text = "Begin Calendar\nNAME=a\nNAME=b\nTIME_EVENTS=*:*:*:8:0\nEnd Calendar\n"
    result = parse_calendars_file(text, "cal")
    assert result.calendars == []
    assert [str(d) for d in result.diagnostics] == ["cal:3:1: NAME given twice in one section"]


def test_a_calendar_that_never_fires_loads_with_a_warning() -> None:
    text = "Begin Calendar\nNAME=never\nTIME_EVENTS=*:Feb:30:8:0\nEnd Calendar\n"
    result = parse_calendars_file(text, "cal")
    assert [c.name for c in result.calendars] == ["never"]
    assert result.diagnostics == []
    assert [str(w) for w in result.warnings] == [
        "cal:3:13: '*:Feb:30:8:0' can never fire (Feb has no day 30)"
    ]
