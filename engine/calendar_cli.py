"""`tock cal ...`: calendars on the command line, in the habits of LSF's bcal* commands."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from zoneinfo import ZoneInfo

import click

from engine.calendar_api import CalendarHistoryEntry, CalendarInfo, Instance
from engine.timefmt import short


def _api(ctx: click.Context):  # type: ignore[no-untyped-def]
    from engine.cli import _api as api

    return api(ctx)


def _echo_json(data: object) -> None:
    from engine.cli import _echo_json as echo

    echo(data)


def _warn(warnings: Sequence[str]) -> None:
    for warning in warnings:
        click.echo(f"tock: warning: {warning}", err=True)


@click.group()
def cal() -> None:
    """Calendars: named sets of time events that repetitive jobs wait on."""


@cal.command()
@click.option("-t", "expression", required=True, metavar="EXPR", help="Time expressions.")
@click.option("-d", "description", default="", metavar="DESC", help="A description.")
@click.option("--tz", "timezone", metavar="ZONE", help="IANA time zone (default: the machine's).")
@click.argument("name")
@click.pass_context
def add(
    ctx: click.Context, expression: str, description: str, timezone: str | None, name: str
) -> None:
    """Create a calendar: tock cal add daily -t '*:*:*:8:0%30'."""
    _warn(_api(ctx).calendar_add(name, expression, description, timezone))
    click.echo(f"Calendar <{name}> is created.")


@cal.command()
@click.option("-t", "expression", metavar="EXPR", help="New time expressions.")
@click.option("-d", "description", metavar="DESC", help="New description.")
@click.option("--tz", "timezone", metavar="ZONE", help="New IANA time zone.")
@click.argument("name")
@click.pass_context
def mod(
    ctx: click.Context,
    expression: str | None,
    description: str | None,
    timezone: str | None,
    name: str,
) -> None:
    """Change a calendar (yours, or any as an administrator); jobs follow at once."""
    _warn(_api(ctx).calendar_modify(name, expression, description, timezone))
    click.echo(f"Calendar <{name}> is modified.")


@cal.command(name="del")
@click.argument("name")
@click.pass_context
def delete(ctx: click.Context, name: str) -> None:
    """Delete a calendar; jobs waiting on it stay pending ("calendar deleted")."""
    _api(ctx).calendar_delete(name)
    click.echo(f"Calendar <{name}> is deleted.")


def _window(start: float | None, end: float | None) -> str:
    if start is None or end is None:
        return "-"
    return f"<{short(start)}> to <{short(end)}>"


def calendars_table(infos: Sequence[CalendarInfo]) -> str:
    from engine.render import table

    rows = [
        [
            info.name,
            info.owner,
            info.status,
            "-" if info.minutes_left is None else str(info.minutes_left),
            "-" if info.next_start is None else short(info.next_start),
        ]
        for info in infos
    ]
    return table(["CALENDAR_NAME", "OWNER", "STATUS", "DURATION", "NEXT_EVENT_TIME"], rows)


def calendar_long(info: CalendarInfo) -> str:
    left = "" if info.minutes_left is None else f", {info.minutes_left} minutes left"
    return "\n".join(
        [
            f"CALENDAR: {info.name}",
            f" -- {info.description}" if info.description else " --",
            f"OWNER: {info.owner}  STATUS: {info.status}{left}  TIMEZONE: {info.timezone}",
            f"CREATION_TIME: {short(info.created)}",
            f"LAST_MODIFY_TIME: {short(info.modified)}",
            f"TIME_EXPR_LIST: {info.expression}",
            f"LAST_EVENT_TIME: {_window(info.last_start, info.last_end)}",
            f"NEXT_EVENT_TIME: {_window(info.next_start, info.next_end)}",
        ]
    )


@cal.command(name="list")
@click.option("-l", "long", is_flag=True, help="Long format, one block per calendar.")
@click.option("-u", "user", metavar="USER", help="Calendars of this user, or 'all'.")
@click.option("--json", "as_json", is_flag=True, help="A JSON list of calendar objects.")
@click.argument("names", nargs=-1)
@click.pass_context
def list_(
    ctx: click.Context, long: bool, user: str | None, as_json: bool, names: tuple[str, ...]
) -> None:
    """List calendars: yours and the system's (default), a user's, or all."""
    infos = _api(ctx).calendars(names, user)
    if as_json:
        _echo_json([info.to_json() for info in infos])
    elif long:
        click.echo("\n\n".join(calendar_long(info) for info in infos))
    elif infos:
        click.echo(calendars_table(infos))
    else:
        click.echo("No calendar found")


def history_line(entry: CalendarHistoryEntry) -> str:
    who = "user" if entry.action == "created" else "user or administrator"
    line = (
        f"{short(entry.time)}: Calendar <{entry.calendar}> {entry.action} by {who} <{entry.user}>"
    )
    if entry.action in ("created", "modified"):
        line += (
            f"; Time expression <{entry.expression}>, description <{entry.description}>, "
            f"time zone <{entry.timezone}>"
        )
    if entry.reason:
        line += f"; {entry.reason}"
    return line + "."


@cal.command()
@click.option("--json", "as_json", is_flag=True, help="A JSON list of history entries.")
@click.argument("name", required=False)
@click.pass_context
def hist(ctx: click.Context, as_json: bool, name: str | None) -> None:
    """Who created, modified and deleted your calendars (or NAME, NAME@USER)."""
    entries = _api(ctx).calendar_history(name)
    if as_json:
        _echo_json([entry.to_json() for entry in entries])
    else:
        click.echo("\n".join(history_line(entry) for entry in entries) or "No history")


def _clock(ts: float, zone: str) -> str:
    return datetime.fromtimestamp(ts, ZoneInfo(zone)).strftime("%a %Y-%m-%d %H:%M %Z")


def instances_table(instances: Sequence[Instance]) -> str:
    from engine.render import table

    rows = [
        [_clock(i.start, i.zone), _clock(i.end, i.zone), f"{int(i.end - i.start) // 60}"]
        for i in instances
    ]
    return table(["START", "END", "MINUTES"], rows)


@cal.command()
@click.option("--next", "count", type=int, default=5, metavar="N", help="How many (default 5).")
@click.option("--from", "start", metavar="ISO", help="Start here instead of now.")
@click.option("--tz", "timezone", metavar="ZONE", help="Zone for an expression, or to show in.")
@click.option("--json", "as_json", is_flag=True, help='A JSON list of {"start", "end"}.')
@click.argument("target")
@click.pass_context
def show(
    ctx: click.Context,
    count: int,
    start: str | None,
    timezone: str | None,
    as_json: bool,
    target: str,
) -> None:
    """The next time events of a calendar (NAME, NAME@USER) or of an expression."""
    instances = _api(ctx).calendar_show(target, count, start, timezone)
    if as_json:
        _echo_json([instance.to_json() for instance in instances])
    elif instances:
        click.echo(instances_table(instances))
    else:
        click.echo("No time event to come")
