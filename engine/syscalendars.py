"""System calendars: the `lsb.calendars` file format, read by the daemon at start.

    Begin Calendar
    NAME        = Holiday
    TIME_EVENTS = *:Dec:25:00:00%1D *:Jan:1:00:00%1D
    DESCRIPTION = "Days the plant is closed"
    TIMEZONE    = Europe/Berlin        # Tock's addition; default the machine's zone
    End Calendar

NAME and TIME_EVENTS are required. A section with an error is reported (`file:line:col`)
and skipped; the others load. Pure: text in, definitions and diagnostics out.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from engine.conditions import CALENDAR_NAME
from engine.errors import Diagnostic

_KEY = re.compile(r"\s*([A-Za-z_]+)\s*=\s*")
KEYS = ("NAME", "TIME_EVENTS", "DESCRIPTION", "TIMEZONE")


@dataclass(frozen=True, slots=True)
class SystemCalendar:
    name: str
    expression: str
    compiled: str
    description: str
    timezone: str
    line: int


@dataclass(slots=True)
class CalendarsFile:
    calendars: list[SystemCalendar] = field(default_factory=list)
    diagnostics: list[Diagnostic] = field(default_factory=list)
    warnings: list[Diagnostic] = field(default_factory=list)  # e.g. a calendar that never fires


def _unquote(value: str) -> str:
    value = value.strip()
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
        return value[1:-1]
    return value


def _strip_comment(line: str) -> str:
    quote = None
    for index, char in enumerate(line):
        if char in "\"'":
            quote = None if quote == char else (quote or char)
        elif char == "#" and quote is None:
            return line[:index]
    return line


Section = dict[str, tuple[str, int, int]]  # KEY -> (value, line, column of the value)


class _Reader:
    def __init__(self, source: str) -> None:
        self.source = source
        self.result = CalendarsFile()

    def error(self, line: int, col: int, message: str) -> None:
        self.result.diagnostics.append(Diagnostic(self.source, line, col, message))

    def finish(self, section: Section, start: int) -> None:
        """Validate one complete section and add it, or report what is wrong with it."""
        from engine.calendar_store import compile_spec
        from engine.calendars import check_timezone, local_zone_name
        from engine.timeexpr import parse_time_exprs

        for key in ("NAME", "TIME_EVENTS"):
            if key not in section:
                self.error(start, 1, f"the section has no {key}")
                return
        name, line, col = section["NAME"]
        if not CALENDAR_NAME.fullmatch(name):
            self.error(line, col, f"calendar name '{name}' is not valid")
            return
        if any(existing.name == name for existing in self.result.calendars):
            self.error(line, col, f"calendar '{name}' is defined twice")
            return
        text, line, col = section["TIME_EVENTS"]
        parsed = parse_time_exprs(text, self.source, line=line, col_offset=col - 1)
        if parsed.spec is None:
            self.result.diagnostics.extend(parsed.diagnostics)
            return
        self.result.warnings.extend(Diagnostic(self.source, line, col, w) for w in parsed.warnings)
        zone = local_zone_name()
        if "TIMEZONE" in section:
            zone, line, col = section["TIMEZONE"]
            problem = check_timezone(zone)
            if problem is not None:
                self.error(line, col, f"TIMEZONE {zone}: {problem}")
                return
        description = section["DESCRIPTION"][0] if "DESCRIPTION" in section else ""
        self.result.calendars.append(
            SystemCalendar(
                name, parsed.spec.text, compile_spec(parsed.spec), description, zone, start
            )
        )


def parse_calendars_file(text: str, source: str) -> CalendarsFile:
    reader = _Reader(source)
    section: Section | None = None
    start, bad = 0, False
    for number, raw in enumerate(text.splitlines(), start=1):
        line = _strip_comment(raw)
        words = [word.lower() for word in line.split()]
        if not words:
            continue
        lead = len(line) - len(line.lstrip()) + 1
        if words == ["begin", "calendar"]:
            if section is not None:
                reader.error(number, lead, "'Begin Calendar' before 'End Calendar'")
            section, start, bad = {}, number, False
            continue
        if words == ["end", "calendar"]:
            if section is None:
                reader.error(number, lead, "'End Calendar' without 'Begin Calendar'")
            elif not bad:
                reader.finish(section, start)
            section = None
            continue
        if section is None:
            reader.error(number, lead, "text outside a 'Begin Calendar' section")
            continue
        match = _KEY.match(line)
        key = match.group(1).upper() if match is not None else ""
        if match is None or key not in KEYS:
            reader.error(number, lead, f"expected one of {', '.join(KEYS)} = value")
            bad = True
            continue
        if key in section:
            reader.error(number, lead, f"{key} given twice in one section")
            bad = True
            continue
        value = line[match.end() :].rstrip()
        col = match.end() + 1 + (value[:1] in ('"', "'"))
        section[key] = (_unquote(value), number, col)
    if section is not None:
        reader.error(start, 1, "section not closed with 'End Calendar'")
    return reader.result
