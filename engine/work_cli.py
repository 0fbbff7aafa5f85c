"""`tock work`, `tock block|unblock|retry|complete|fail`: a job's work items and requests
on a job's course. A target is a job (id or name) or one work item, `JOB[INDEX]` as in
LSF's `bkill "12[3]"`."""

from __future__ import annotations

import re
from typing import Any

import click

from engine.errors import TockError

_ITEM = re.compile(r"^(?P<job>.+)\[(?P<index>\d+)\]$")
STATES = ("PEND", "PSUSP", "RUN", "DONE", "EXIT")


def _api(ctx: click.Context) -> Any:
    from engine.cli import _api as root_api

    return root_api(ctx)


def target(ctx: click.Context, word: str) -> tuple[int, int | None]:
    """(job id, work index or None) of `12`, `name`, `12[3]` or `name[3]`."""
    from engine.cli import _job_ids

    match = _ITEM.match(word)
    if match is None:
        (job_id,) = _job_ids(ctx, [word])
        return job_id, None
    (job_id,) = _job_ids(ctx, [match["job"]])
    return job_id, int(match["index"])


_MESSAGES = {
    "block": "{} is being blocked.",
    "unblock": "{} is being unblocked.",
    "retry": "{} is being retried.",
    "complete": "{} is being completed.",
    "fail": "{} is being failed.",
}


def _request(ctx: click.Context, action: str, words: tuple[str, ...]) -> None:
    from engine.cli import _for_each_target

    api = _api(ctx)
    _for_each_target(
        ctx, words, action, lambda job_id: api.control(job_id, action), _MESSAGES[action]
    )


def _command(action: str, doc: str) -> click.Command:
    @click.command(name=action, help=doc)
    @click.argument("targets", nargs=-1, required=True, metavar="JOB|JOB[INDEX]...")
    @click.pass_context
    def run(ctx: click.Context, targets: tuple[str, ...]) -> None:
        _request(ctx, action, targets)

    return run


COMMANDS = [
    _command("block", "Hold pending jobs or work items (PEND -> PSUSP)."),
    _command("unblock", "Release held jobs or work items (PSUSP -> PEND)."),
    _command(
        "retry",
        "Run a finished job again, or its failed work items (all of them if none failed).",
    ),
    _command("complete", "End pending jobs or work items as DONE without running them."),
    _command("fail", "End jobs or work items as EXIT: pending ones now, running ones killed."),
]


@click.command()
@click.option("-s", "--state", "states", multiple=True, type=click.Choice(STATES))
@click.option("--json", "as_json", is_flag=True, help="A JSON list of work items.")
@click.argument("job")
@click.pass_context
def work(ctx: click.Context, states: tuple[str, ...], as_json: bool, job: str) -> None:
    """List a job's work items: index, state, runs, exit code and times."""
    import json

    from engine.cli import _job_ids
    from engine.render import table
    from engine.timefmt import short

    api = _api(ctx)
    (job_id,) = _job_ids(ctx, [job])
    found = api.work(job_id, states)
    if as_json:
        click.echo(json.dumps([item.to_json() for item in found], indent=2))
        return
    if not api.job(job_id).work:
        raise TockError(f"Job <{job_id}>: it has no work items")
    rows = [
        [
            str(item.index),
            item.state,
            str(item.runs),
            "-" if item.exit_code is None else str(item.exit_code),
            short(item.start_time),
            short(item.end_time),
            item.reason or "",
        ]
        for item in found
    ]
    click.echo(table(["INDEX", "STAT", "RUNS", "EXIT", "START", "END", "REASON"], rows))
