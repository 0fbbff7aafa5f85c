"""`tock`: the command line, a thin layer over engine.api.

Errors are one line on stderr starting `tock: `; a refused request exits 1, a usage error
exits 2. Every listing takes --json. Heavy modules (textX, the daemon) load only in the
commands that need them, so `tock jobs` starts quickly.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Sequence
from typing import Any, NoReturn

import click

from engine.errors import TockError


def _fail(message: str, code: int = 1) -> NoReturn:
    click.echo(f"tock: {message}", err=True)
    sys.exit(code)


class TockGroup(click.Group):
    """Usage errors as one line; refusals as one line; never a traceback for bad input."""

    def main(self, *args: Any, **kwargs: Any) -> Any:
        kwargs["standalone_mode"] = False
        try:
            return super().main(*args, **kwargs)
        except click.exceptions.NoArgsIsHelpError as exc:
            click.echo(exc.ctx.get_help() if exc.ctx else "")
            sys.exit(0)
        except click.UsageError as exc:
            where = exc.ctx.command_path if exc.ctx else "tock"
            message = exc.format_message().replace("\n", " ")
            _fail(f"{message} (see '{where} --help')", 2)
        except click.ClickException as exc:
            _fail(exc.format_message(), exc.exit_code)
        except click.exceptions.Abort:
            _fail("aborted", 1)
        except TockError as exc:
            _fail(str(exc))
        except BrokenPipeError:
            sys.exit(1)
        except OSError as exc:  # a path the system refused: say which, in one line
            where = f"{exc.filename}: " if exc.filename else ""
            _fail(f"{where}{exc.strerror or exc}")


def _api(ctx: click.Context) -> Any:
    from engine.api import Tock

    obj = ctx.find_root().obj
    if obj.get("api") is None:
        obj["api"] = Tock(obj["db"])
    return obj["api"]


def _warn(warnings: Sequence[str]) -> None:
    for warning in warnings:
        click.echo(f"tock: warning: {warning}", err=True)


def _echo_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2))


def _job_ids(ctx: click.Context, words: Sequence[str]) -> list[int]:
    """Job ids as typed; a name means your newest job of that name."""
    api = _api(ctx)
    ids = []
    for word in words:
        if word.isascii() and word.isdigit():
            ids.append(int(word))
            continue
        matches = api.jobs(name=word, include_finished=True)
        if not matches:
            raise TockError(f"Job <{word}>: No matching job found")
        ids.append(matches[-1].id)
    return ids


@click.group(cls=TockGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--db",
    metavar="PATH",
    help="The database (default: $TOCK_DB, else $XDG_STATE_HOME/tock/tock.db).",
)
@click.version_option(package_name="tock", prog_name="tock")
@click.pass_context
def cli(ctx: click.Context, db: str | None) -> None:
    """Tock: an event-driven job scheduler on an embedded SQLite state machine."""
    ctx.obj = {"db": db, "api": None}


@cli.command()
@click.option(
    "-J",
    "name",
    metavar="NAME",
    help="Job name (default: the command's end); NAME[1-100] (also [1-9,20], [0-99:2], "
    "%N after ']' to run at most N at once) makes one work item per index.",
)
@click.option("-w", "condition", metavar="COND", help="Dependency condition, e.g. 'done(a)'.")
@click.option("-ti", "terminate_orphan", is_flag=True, help="Terminate the job once orphaned.")
@click.option("-H", "hold", is_flag=True, help="Submit held (PSUSP) until `tock resume`.")
@click.option(
    "-o",
    "stdout",
    metavar="FILE",
    help="Append standard output here (%J = job id, %I = work index).",
)
@click.option("-e", "stderr", metavar="FILE", help="Append standard error here (default: -o).")
@click.option("--cwd", metavar="DIR", help="Working directory (default: the current one).")
@click.option(
    "--catchup",
    type=click.Choice(["none", "once", "all"]),
    default="none",
    help="Repetitive jobs: missed time events get no run, one late run, or one run each.",
)
@click.option(
    "--callback",
    "callbacks",
    metavar="TRIGGER=PATH",
    multiple=True,
    help="Run PATH when TRIGGER happens, e.g. 'failed-job-self=/abs/notify.py' (repeatable).",
)
@click.option(
    "--timeout",
    type=click.FloatRange(min=0, min_open=True),
    metavar="SECONDS",
    help="Raise `timeout` (timeout-job-self, timeout-work-self-*) for a run still going then.",
)
@click.option("--json", "as_json", is_flag=True, help='Print {"id": ID}.')
@click.argument("command", nargs=-1, required=True)
@click.pass_context
def submit(
    ctx: click.Context,
    name: str | None,
    condition: str | None,
    terminate_orphan: bool,
    hold: bool,
    stdout: str | None,
    stderr: str | None,
    cwd: str | None,
    catchup: str,
    callbacks: tuple[str, ...],
    timeout: float | None,
    as_json: bool,
    command: tuple[str, ...],
) -> None:
    """Submit a job: tock submit [OPTIONS] -- CMD [ARG...]."""
    pairs = []
    for item in callbacks:
        trigger, sep, path = item.partition("=")
        if not sep or not trigger.strip() or not path.strip():
            raise click.UsageError(f"--callback {item}: write TRIGGER=PATH", ctx)
        pairs.append((trigger.strip(), path.strip()))
    api = _api(ctx)
    job_id = api.submit(
        list(command),
        name=name,
        condition=condition,
        hold=hold,
        terminate_orphan=terminate_orphan,
        stdout=stdout,
        stderr=stderr,
        cwd=cwd,
        catchup=catchup,
        callbacks=pairs,
        timeout=timeout,
    )
    _warn(api.warnings)
    if as_json:
        _echo_json({"id": job_id})
    else:
        click.echo(f"Job <{job_id}> is submitted.")


@cli.command()
@click.option("-a", "show_all", is_flag=True, help="Include finished jobs.")
@click.option("-l", "long", is_flag=True, help="Long format, one block per job.")
@click.option("-J", "name", metavar="NAME", help="Only jobs with this name (NAME* for a prefix).")
@click.option("-u", "user", metavar="USER", help="Jobs of this user, or 'all' (default: yours).")
@click.option("--json", "as_json", is_flag=True, help="A JSON list of job objects.")
@click.argument("job_ids", nargs=-1)
@click.pass_context
def jobs(
    ctx: click.Context,
    show_all: bool,
    long: bool,
    name: str | None,
    user: str | None,
    as_json: bool,
    job_ids: tuple[str, ...],
) -> None:
    """List jobs: by default your unfinished ones."""
    from engine.render import job_long, jobs_table

    api = _api(ctx)
    ids = _job_ids(ctx, job_ids)
    found = api.jobs(
        ids,
        user=None if user == "all" else user,
        all_users=user == "all",
        name=name,
        include_finished=show_all,
    )
    if as_json:
        _echo_json([job.to_json() for job in found])
        return
    if not found:
        click.echo("No job found" if show_all or ids else "No unfinished job found")
        return
    if long:
        click.echo("\n\n".join(job_long(job) for job in found))
    else:
        click.echo(jobs_table(found))


def _for_each_job(
    ctx: click.Context, words: Sequence[str], act: Callable[[int], None], message: str
) -> None:
    failures = 0
    for word in words:
        try:
            (job_id,) = _job_ids(ctx, [word])
            act(job_id)
            click.echo(message.format(job_id))
        except TockError as exc:
            click.echo(f"tock: {exc}", err=True)
            failures += 1
    if failures:
        sys.exit(1)


def _for_each_target(
    ctx: click.Context,
    words: Sequence[str],
    action: str,
    act: Callable[[int], None],
    message: str,
) -> None:
    """As _for_each_job, where a word may also name one work item, `12[3]`."""
    from engine.work_cli import target

    api = _api(ctx)
    failures = 0
    for word in words:
        try:
            job_id, index = target(ctx, word)
            if index is None:
                act(job_id)
                click.echo(message.format(f"Job <{job_id}>"))
            else:
                api.control(job_id, action, index)
                click.echo(message.format(f"Job <{job_id}[{index}]>"))
        except TockError as exc:
            click.echo(f"tock: {exc}", err=True)
            failures += 1
    if failures:
        sys.exit(1)


@cli.command()
@click.argument("job_ids", nargs=-1, required=True)
@click.pass_context
def kill(ctx: click.Context, job_ids: tuple[str, ...]) -> None:
    """Kill jobs or work items (JOB[INDEX]): pending ones end at once, running ones get
    SIGTERM, then SIGKILL."""
    _for_each_target(ctx, job_ids, "kill", _api(ctx).kill, "{} is being terminated.")


@cli.command(name="del")
@click.option(
    "-n",
    "runs",
    type=click.IntRange(min=1),
    metavar="N",
    help="Repetitive jobs: after N more runs.",
)
@click.argument("job_ids", nargs=-1, required=True)
@click.pass_context
def delete(ctx: click.Context, runs: int | None, job_ids: tuple[str, ...]) -> None:
    """Delete jobs: kill them if unfinished and drop them from listings."""
    api = _api(ctx)
    if runs is None:
        _for_each_job(ctx, job_ids, api.delete, "Job <{}> is being deleted.")
        return
    message = f"Job <{{}}> will be deleted after {runs} more run{'s' if runs > 1 else ''}."
    _for_each_job(ctx, job_ids, lambda job_id: api.delete(job_id, runs), message)


@cli.command()
@click.argument("job_ids", nargs=-1, required=True)
@click.pass_context
def resume(ctx: click.Context, job_ids: tuple[str, ...]) -> None:
    """Release held (PSUSP) jobs or work items (JOB[INDEX])."""
    _for_each_target(ctx, job_ids, "unblock", _api(ctx).resume, "{} is being resumed.")


@cli.command()
@click.option("-w", "condition", metavar="COND", help="The new dependency condition.")
@click.option("-wn", "remove", is_flag=True, help="Remove the dependency condition.")
@click.argument("job_id")
@click.pass_context
def modify(ctx: click.Context, condition: str | None, remove: bool, job_id: str) -> None:
    """Change a pending job's dependency condition."""
    if (condition is None) == (not remove):
        raise click.UsageError("give exactly one of -w COND and -wn", ctx)
    (resolved,) = _job_ids(ctx, [job_id])
    api = _api(ctx)
    api.modify(resolved, None if remove else condition)
    _warn(api.warnings)
    click.echo(f"Parameters of job <{resolved}> are being changed.")


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Nested {expr, value, children} objects.")
@click.argument("job_id")
@click.pass_context
def why(ctx: click.Context, as_json: bool, job_id: str) -> None:
    """Show a job's condition tree with the value of every node."""
    from engine.render import why_tree

    api = _api(ctx)
    (resolved,) = _job_ids(ctx, [job_id])
    job = api.job(resolved)
    tree = api.why(resolved)
    if as_json:
        _echo_json(None if tree is None else tree.to_json())
    else:
        click.echo(why_tree(job, tree))


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="A JSON list of history entries.")
@click.argument("job_id")
@click.pass_context
def hist(ctx: click.Context, as_json: bool, job_id: str) -> None:
    """Show every state change of a job, with time and reason."""
    from engine.render import history_lines

    api = _api(ctx)
    (resolved,) = _job_ids(ctx, [job_id])
    entries = api.history(resolved)
    if as_json:
        _echo_json([entry.to_json() for entry in entries])
    else:
        click.echo(history_lines(api.job(resolved), entries))


@cli.command()
@click.option("-a", "show_all", is_flag=True, help="Include the time events of calendars.")
@click.option("-l", "long", is_flag=True, help="Long format: paths, firings, next check.")
@click.option("-u", "user", metavar="USER", help="Only events of this owner (default: all).")
@click.option("--json", "as_json", is_flag=True, help="A JSON list of event objects.")
@click.pass_context
def events(ctx: click.Context, show_all: bool, long: bool, user: str | None, as_json: bool) -> None:
    """List external events: EVENT OWNER STATUS SOURCE ATTRIBUTE LAST_UPDATE."""
    from engine.render import events_long, events_table

    found = _api(ctx).events(user=user, include_calendars=show_all)
    if as_json:
        _echo_json([event.to_json(long) for event in found])
        return
    if not found:
        click.echo("No event found")
        return
    click.echo(events_long(found) if long else events_table(found))


@cli.command()
@click.option(
    "--exit-when-idle",
    is_flag=True,
    help="Return once nothing runs and nothing can start without new input.",
)
@click.pass_context
def daemon(ctx: click.Context, exit_when_idle: bool) -> None:
    """Run the scheduler in the foreground; SIGTERM or SIGINT stop it cleanly."""
    from engine.daemon import Daemon

    code = Daemon(ctx.find_root().obj["db"]).run(exit_when_idle=exit_when_idle)
    sys.exit(code)


from engine.calendar_cli import cal  # noqa: E402  (a command group of its own module)

cli.add_command(cal)

from engine.event_cli import event  # noqa: E402  (a command group of its own module)

cli.add_command(event)

from engine.callback_cli import callbacks  # noqa: E402  (a command group of its own module)

cli.add_command(callbacks)

from engine.work_cli import COMMANDS, work  # noqa: E402  (commands of their own module)

cli.add_command(work)
for _command in COMMANDS:
    cli.add_command(_command)


def main() -> None:
    cli.main(prog_name="tock")


if __name__ == "__main__":
    main()
