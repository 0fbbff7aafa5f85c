"""Parsing LSF time expressions (`-t`, `calendar(...)`) with textX into CalendarSpec values.

The grammar (grammar/calendar.tx) only cuts the text into expressions, fields and
durations; the values are checked here, so each error names its field, its token and
its column. Errors come back as values: an ExprResult carries its diagnostics, and an
expression that parses but can never fire (Feb 30) is a warning, not an error.
"""

from __future__ import annotations

import calendar
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from functools import cache
from typing import Any

from engine.errors import Diagnostic

FIELD_NAMES = ("year", "month", "day", "hour", "minute")
MONTH_NAMES = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
DAY_NAMES = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
FIRST_YEAR, LAST_YEAR = 1900, 2099
# A cap keeps every end computable; a calendar active for more than a year is a mistake.
MAX_DURATION_DAYS = 366
CRON_FIELDS = 5

DAY_KINDS = ("day", "from_end", "weekday", "nth_weekday", "nth_last_weekday")

_DAYS_ALLOWED = "1-31, ~1-~31, Mon-Sun, Mon[1-5] or Mon[~1-~5]"
_NUMBER = re.compile(r"[0-9]+")
_NTH = re.compile(r"([A-Za-z]+)\[(~?)([0-9]*)\]")
_DURATION = re.compile(r"([0-9]*)(.*)", re.DOTALL)
# The never-fires probe for cron starts at a fixed date so that parsing stays pure;
# any ten years from 2001 contain leap days, so `0 0 29 2 *` is not flagged.
_CRON_PROBE_START = datetime(2001, 1, 1)
_CRON_PROBE_YEARS = 10
# The same 28 years repeat every weekday pattern of the Gregorian calendar (1901-2099).
_SAMPLE_YEARS = range(2001, 2029)


@dataclass(frozen=True, slots=True)
class DaySpec:
    """One item of the day field; `value` is a day number, the n of ~n, or a weekday 0=Mon."""

    kind: str
    value: int
    n: int = 0


@dataclass(frozen=True, slots=True)
class TimeExpr:
    """One time expression; None in a field means '*'."""

    text: str
    years: frozenset[int] | None
    months: frozenset[int] | None
    days: tuple[DaySpec, ...] | None
    hours: frozenset[int] | None
    minutes: frozenset[int]
    duration_minutes: int
    duration_days: int
    cron: str | None = None
    interval: bool = False


@dataclass(frozen=True, slots=True)
class CalendarSpec:
    exprs: tuple[TimeExpr, ...]

    @property
    def text(self) -> str:
        """Single spaces, so the text parses back to an equal spec."""
        return " ".join(expr.text for expr in self.exprs)


@dataclass(frozen=True, slots=True)
class ExprResult:
    spec: CalendarSpec | None
    diagnostics: list[Diagnostic] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.spec is not None and not self.diagnostics


def matching_days(days: tuple[DaySpec, ...] | None, year: int, month: int) -> list[int]:
    """The days of one month that a day field selects, ascending.

    Lives here rather than in engine.calendars because the parser needs it to warn
    about expressions that can never fire.
    """
    length = calendar.monthrange(year, month)[1]
    if days is None:
        return list(range(1, length + 1))
    first_weekday = calendar.weekday(year, month, 1)
    chosen: set[int] = set()
    for spec in days:
        first = 1 + (spec.value - first_weekday) % 7  # first such weekday of the month
        if spec.kind == "day":
            chosen.add(spec.value)
        elif spec.kind == "from_end":
            chosen.add(length + 1 - spec.value)
        elif spec.kind == "weekday":
            chosen.update(range(first, length + 1, 7))
        elif spec.kind == "nth_weekday":
            chosen.add(first + 7 * (spec.n - 1))
        elif spec.kind == "nth_last_weekday":
            last = first + 7 * ((length - first) // 7)
            chosen.add(last - 7 * (spec.n - 1))
    return sorted(day for day in chosen if 1 <= day <= length)


@cache
def _metamodel() -> Any:
    from textx import metamodel_from_file

    from engine.resources import grammar_file

    return metamodel_from_file(str(grammar_file("calendar.tx")))


@dataclass(frozen=True, slots=True)
class _Token:
    """A piece of the input and where it starts (0-based offset into the text)."""

    text: str
    offset: int

    def part(self, start: int, text: str) -> _Token:
        return _Token(text, self.offset + start)


def _pieces(token: _Token, separator: str) -> list[_Token]:
    pieces: list[_Token] = []
    start = 0
    for text in token.text.split(separator):
        pieces.append(token.part(start, text))
        start += len(text) + len(separator)
    return pieces


def _to_int(digits: str) -> int:
    """Huge digit strings become a value out of every range instead of a ValueError."""
    return int(digits) if len(digits.lstrip("0")) <= 9 else 10**10


def _join_or(words: Sequence[str]) -> str:
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " or " + words[-1]


@dataclass(frozen=True, slots=True)
class _Field:
    """How to read one numeric field: its range and its names (counted from `low`)."""

    name: str
    low: int
    high: int
    allowed: str
    what: str
    names: tuple[str, ...] = ()
    width: int = 0  # exact number of digits, for years


_YEAR = _Field("year", FIRST_YEAR, LAST_YEAR, "1900-2099", "a year", width=4)
_MONTH = _Field("month", 1, 12, "1-12 or Jan-Dec", "a month", MONTH_NAMES)
_HOUR = _Field("hour", 0, 23, "0-23", "an hour")
_MINUTE = _Field("minute", 0, 59, "0-59", "a minute")


class _Reader:
    """Turns textX objects into TimeExpr values, collecting diagnostics and warnings."""

    def __init__(self, text: str, source: str, line: int, col_offset: int) -> None:
        self.text = text
        self.source = source
        self.line = line
        self.col_offset = col_offset
        self.diagnostics: list[Diagnostic] = []
        self.warnings: list[str] = []

    def refuse(self, token: _Token, message: str) -> None:
        self.diagnostics.append(self.diagnostic(token.offset, message))

    def diagnostic(self, offset: int, message: str) -> Diagnostic:
        before = self.text[:offset]
        line = before.count("\n")
        col = offset - (before.rfind("\n") + 1) + 1
        if line == 0:
            col += self.col_offset
        return Diagnostic(self.source, self.line + line, col, message)

    # --- expressions -------------------------------------------------------------

    def expression(self, obj: Any, several: bool) -> TimeExpr | None:
        start, end = obj._tx_position, obj._tx_position_end
        whole = _Token(self.text[start:end], start)
        if type(obj).__name__ == "Cron":
            return self.cron(obj, whole)
        return self.lsf(obj, whole, several)

    def lsf(self, obj: Any, whole: _Token, several: bool) -> TimeExpr | None:
        duration = self.duration(obj.duration)
        errors = len(self.diagnostics)  # the fields are checked whatever the duration
        fields = [_Token(obj.first or "", whole.offset)]
        fields += [_Token(f.text or "", f._tx_position + 1) for f in obj.rest]
        if len(fields) != len(FIELD_NAMES):
            hint = " (spaces separate time expressions; none go inside one)" if several else ""
            self.refuse(
                whole,
                "a time expression has 5 fields year:month:day:hour:minute, "
                f"found {len(fields)}{hint}",
            )
            return None
        for name, token in zip(FIELD_NAMES, fields, strict=True):
            if not token.text:
                self.refuse(token, f"{name} is empty")
        if len(self.diagnostics) > errors:
            return None
        year, month, day, hour, minute = fields
        years, months = self.numbers(_YEAR, year), self.numbers(_MONTH, month)
        days, hours = self.days(day), self.numbers(_HOUR, hour)
        minutes = self.numbers(_MINUTE, minute)
        expr = TimeExpr(
            text=whole.text,
            years=years,
            months=months,
            days=days,
            hours=hours,
            # '*' is minute 0 of each matching hour: one event an hour, as LSF shows it.
            minutes=frozenset({0}) if minutes is None else minutes,
            duration_minutes=duration[0],
            duration_days=duration[1],
            interval=hour.text == "*",
        )
        if len(self.diagnostics) > errors:
            return None
        reason = _never_reason(expr)
        if reason:
            self.warnings.append(f"'{expr.text}' can never fire ({reason})")
        return expr

    def cron(self, obj: Any, whole: _Token) -> TimeExpr | None:
        from croniter import CroniterBadDateError, croniter

        errors = len(self.diagnostics)
        body = _Token(obj.body or "", whole.offset + len("cron("))
        if not obj.closed:
            self.refuse(whole, "cron(...) has no closing ')'")
            return None
        junk = obj.junk or ""
        if junk:
            where = _Token(junk, obj._tx_position_end - len(junk))
            self.refuse(where, f"unexpected '{junk}' after cron(...)")
        duration = self.duration(obj.duration)
        fields = body.text.split()
        if len(fields) != CRON_FIELDS:
            self.refuse(
                body,
                f"cron '{body.text.strip()}' must have 5 fields "
                f"(minute hour day-of-month month day-of-week), found {len(fields)}",
            )
            return None
        cron = " ".join(fields)
        problem = _cron_problem(cron)
        if problem:
            self.refuse(body, f"cron '{cron}' is invalid: {problem}")
        if len(self.diagnostics) > errors:
            return None
        try:
            probe = croniter(cron, _CRON_PROBE_START, max_years_between_matches=_CRON_PROBE_YEARS)
            probe.get_next(datetime)
        except CroniterBadDateError:
            self.warnings.append(
                f"'{whole.text}' can never fire (cron finds no match in {_CRON_PROBE_YEARS} years)"
            )
        return TimeExpr(
            text=whole.text,
            years=None,
            months=None,
            days=None,
            hours=None,
            minutes=frozenset({0}),
            duration_minutes=duration[0],
            duration_days=duration[1],
            cron=cron,
            interval="*" in fields[1],
        )

    def duration(self, obj: Any) -> tuple[int, int]:
        """(minutes, days); a missing duration is one minute, as in LSF."""
        if obj is None:
            return 1, 0
        token = _Token(obj.text or "", obj._tx_position + 1)
        shown = f"'%{token.text}'"
        match = _DURATION.fullmatch(token.text)
        assert match is not None  # the pattern matches every string
        digits, unit = match.group(1), match.group(2).upper()
        if not token.text:
            self.refuse(token, "duration is empty after '%'")
        elif unit not in ("", "D", "H", "M"):
            self.refuse(token, f"duration {shown}: unit must be D, H or M")
        elif not digits:
            self.refuse(token, f"duration {shown}: needs a number before the unit")
        else:
            count = _to_int(digits)
            days = {"D": count, "H": count / 24}.get(unit, count / 1440)
            if count < 1:
                self.refuse(token, f"duration {shown} must be at least 1")
            elif days > MAX_DURATION_DAYS:
                self.refuse(token, f"duration {shown} is longer than {MAX_DURATION_DAYS} days")
            elif unit == "D":
                return 0, count
            else:
                return count * (60 if unit == "H" else 1), 0
        return 1, 0

    # --- numeric fields ----------------------------------------------------------

    def numbers(self, spec: _Field, token: _Token) -> frozenset[int] | None:
        if token.text == "*":
            return None
        values: set[int] = set()
        for item in _pieces(token, ","):
            values.update(self.number_item(spec, item, token))
        return frozenset(values)

    def number_item(self, spec: _Field, item: _Token, whole: _Token) -> range:
        bounds = self.bounds(spec.name, item, whole)
        if bounds is None:
            return range(0)
        if len(bounds) == 1:
            value = self.value(spec, bounds[0])
            return range(0) if value is None else range(value, value + 1)
        first, last = self.value(spec, bounds[0]), self.value(spec, bounds[1])
        if first is None or last is None:
            return range(0)
        if first > last:
            self.refuse(item, f"{spec.name} '{item.text}': the range start is after its end")
        return range(first, last + 1)

    def bounds(self, name: str, item: _Token, whole: _Token) -> list[_Token] | None:
        """An item's one value or the two ends of its range; None after an error."""
        if not item.text:
            self.refuse(item, f"{name} '{whole.text}' has an empty item")
            return None
        if item.text == "*":
            self.refuse(item, f"{name} '{whole.text}': '*' must stand alone in its field")
            return None
        parts = _pieces(item, "-")
        if len(parts) > 2 or not all(part.text for part in parts):
            self.refuse(item, f"{name} '{item.text}': a range is two values joined by one '-'")
            return None
        return parts

    def value(self, spec: _Field, token: _Token) -> int | None:
        text = token.text
        if _NUMBER.fullmatch(text):
            value = _to_int(text)
            if spec.low <= value <= spec.high and (not spec.width or len(text) == spec.width):
                return value
            self.refuse(token, f"{spec.name} {text} is out of range ({spec.allowed})")
            return None
        names = [name.lower() for name in spec.names]
        if text.lower() in names:
            return spec.low + names.index(text.lower())
        self.refuse(token, f"{spec.name} '{text}' is not {spec.what} ({spec.allowed})")
        return None

    # --- the day field -----------------------------------------------------------

    def days(self, token: _Token) -> tuple[DaySpec, ...] | None:
        if token.text == "*":
            return None
        chosen: set[DaySpec] = set()
        for item in _pieces(token, ","):
            chosen.update(self.day_item(item, token))
        return tuple(sorted(chosen, key=lambda d: (DAY_KINDS.index(d.kind), d.value, d.n)))

    def day_item(self, item: _Token, whole: _Token) -> Iterable[DaySpec]:
        bounds = self.bounds("day", item, whole)
        if bounds is None:
            return ()
        if len(bounds) == 1:
            single = self.day(bounds[0])
            return () if single is None else (single,)
        if any(not (_NUMBER.fullmatch(b.text) or b.text.isalpha()) for b in bounds):
            self.refuse(item, f"day '{item.text}': ~n and Mon[n] items cannot form a range")
            return ()
        first, last = self.day(bounds[0]), self.day(bounds[1])
        if first is None or last is None:
            return ()
        if first.kind != last.kind:
            self.refuse(item, f"day '{item.text}': a range joins two day numbers or two day names")
            return ()
        if first.value > last.value:
            week = " (weeks run Mon to Sun)" if first.kind == "weekday" else ""
            self.refuse(item, f"day '{item.text}': the range start is after its end{week}")
            return ()
        return (DaySpec(first.kind, value) for value in range(first.value, last.value + 1))

    def day(self, token: _Token) -> DaySpec | None:
        text = token.text
        if _NUMBER.fullmatch(text):
            value = _to_int(text)
            if 1 <= value <= 31:
                return DaySpec("day", value)
            self.refuse(token, f"day {text} is out of range ({_DAYS_ALLOWED})")
            return None
        if text.startswith("~"):
            count = text[1:]
            if _NUMBER.fullmatch(count) and 1 <= _to_int(count) <= 31:
                return DaySpec("from_end", _to_int(count))
            self.refuse(token, f"day '{text}': ~n needs n from 1 to 31")
            return None
        nth = _NTH.fullmatch(text)
        name = nth.group(1) if nth else text
        weekday = _weekday(name)
        if weekday is None:
            self.refuse(token, f"day '{text}' is not a day ({_DAYS_ALLOWED})")
            return None
        if nth is None:
            return DaySpec("weekday", weekday)
        count = nth.group(3)
        if not (_NUMBER.fullmatch(count) and 1 <= _to_int(count) <= 5):
            self.refuse(token, f"day '{text}': the week number must be 1 to 5")
            return None
        kind = "nth_last_weekday" if nth.group(2) else "nth_weekday"
        return DaySpec(kind, weekday, _to_int(count))


def _weekday(name: str) -> int | None:
    lowered = [day.lower() for day in DAY_NAMES]
    return lowered.index(name.lower()) if name.lower() in lowered else None


def _cron_problem(cron: str) -> str | None:
    """croniter's own verdict on a 5-field body, as one line; None when it accepts it."""
    from croniter import croniter

    try:
        croniter(cron, _CRON_PROBE_START)
    # croniter raises assorted exception types on malformed fields; any of them is a
    # refusal of the user's text, and its message is what the user needs to see.
    except Exception as exc:
        lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
        return lines[-1] if lines else type(exc).__name__
    return None


def _never_reason(expr: TimeExpr) -> str | None:
    """Why an expression cannot fire on any date, judged from its fields alone."""
    if expr.days is None:
        return None
    years = sorted(expr.years) if expr.years is not None else _SAMPLE_YEARS
    months = sorted(expr.months) if expr.months is not None else range(1, 13)
    if any(matching_days(expr.days, year, month) for year in years for month in months):
        return None
    names = [MONTH_NAMES[month - 1] for month in months]
    if all(day.kind == "day" for day in expr.days):
        numbers = [str(day.value) for day in expr.days]
        verb = "has" if len(names) == 1 else "have"
        reason = f"{', '.join(names)} {verb} no day {_join_or(numbers)}"
        if expr.years is not None:
            reason += f" in {years[0]}" if len(years) == 1 else " in the selected years"
        return reason
    return "no date in the selected years and months matches the day field"


def parse_time_exprs(
    text: str, source: str = "-t", *, line: int = 1, col_offset: int = 0
) -> ExprResult:
    """Parse a time expression list; diagnostics name `source:line:col`.

    `line` and `col_offset` place the text inside a larger one (an anonymous calendar
    in a `-w` condition), so columns point into what the user typed.
    """
    from textx import TextXSyntaxError

    reader = _Reader(text, source, line, col_offset)
    if not text.strip():
        reader.refuse(_Token(text, 0), "the time expression list is empty")
        return ExprResult(None, reader.diagnostics)
    try:
        model = _metamodel().model_from_str(text.rstrip())
    except TextXSyntaxError as exc:  # the permissive grammar leaves no known way here
        at_line, at_col = exc.line or 1, exc.col or 1
        column = at_col + (col_offset if at_line == 1 else 0)
        message = f"syntax error: {exc.message}"
        return ExprResult(None, [Diagnostic(source, line + at_line - 1, column, message)])
    several = len(model.exprs) > 1
    exprs = [reader.expression(obj, several) for obj in model.exprs]
    if reader.diagnostics:
        in_order = sorted(reader.diagnostics, key=lambda d: (d.line, d.col))
        return ExprResult(None, in_order, reader.warnings)
    spec = CalendarSpec(tuple(expr for expr in exprs if expr is not None))
    return ExprResult(spec, [], reader.warnings)
