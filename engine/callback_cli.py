"""`tock callbacks check|list`: validate callback directories, list what is attached."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import click


def _api(ctx: click.Context) -> Any:
    from engine.cli import _api as root_api

    return root_api(ctx)


@click.group()
def callbacks() -> None:
    """Universal callbacks: callbacks.conf files and the callbacks they define."""


@callbacks.command()
@click.argument("directories", nargs=-1, type=click.Path(file_okay=False))
@click.pass_context
def check(ctx: click.Context, directories: tuple[str, ...]) -> None:
    """Validate DIR/callbacks.conf (default: every directory of the callback path); exit 1
    on any error."""
    from engine.callback_dirs import callback_path, load_callback_dir
    from engine.errors import TockError

    if directories:
        paths = [Path(d).absolute() for d in directories]
    else:
        api = _api(ctx)
        try:
            paths = callback_path(
                api.config.universal_callback_path, os.environ, api.db_path.parent
            )
        except ValueError as exc:
            raise TockError(str(exc)) from None
    errors = 0
    for directory in paths:
        if not (directory / "callbacks.conf").exists():
            click.echo(f"{directory}: no callbacks.conf", err=True)
            errors += bool(directories)  # asked for by name: its absence is an error
            continue
        result = load_callback_dir(directory)
        for diagnostic in result.diagnostics:
            click.echo(f"tock: {diagnostic}", err=True)
        errors += len(result.diagnostics)
        for entry in result.entries:
            click.echo(f"{directory / entry.filename} ({entry.language}) = {entry.text}")
    if errors:
        sys.exit(1)


@callbacks.command(name="list")
@click.option("-a", "show_all", is_flag=True, help="Include retired and per-job callbacks.")
@click.option("--json", "as_json", is_flag=True, help="A JSON list of callback objects.")
@click.pass_context
def list_callbacks(ctx: click.Context, show_all: bool, as_json: bool) -> None:
    """The universal callbacks new jobs get (with -a, every definition)."""
    import json

    from engine.render import table
    from engine.timefmt import iso

    api = _api(ctx)
    where = "" if show_all else "WHERE scope = 'universal' AND retired IS NULL"
    rows = api.conn.execute(
        "SELECT c.*, (SELECT count(*) FROM callback_runs AS r WHERE r.callback_id = c.id) "
        f"AS runs FROM callbacks AS c {where} ORDER BY id"
    ).fetchall()
    found = [
        {
            "id": row["id"],
            "scope": row["scope"],
            "path": row["path"],
            "language": row["language"],
            "trigger": row["trigger"],
            "source": row["source"],
            "retired": iso(row["retired"]),
            "runs": row["runs"],
        }
        for row in rows
    ]
    if as_json:
        click.echo(json.dumps(found, indent=2))
        return
    if not found:
        click.echo("No callback found")
        return
    click.echo(
        table(
            ["ID", "SCOPE", "TRIGGER", "PATH", "RUNS", "RETIRED"],
            [
                [
                    str(c["id"]),
                    c["scope"],
                    c["trigger"],
                    c["path"],
                    str(c["runs"]),
                    (c["retired"] or "-")[:19].replace("T", " "),
                ]
                for c in found
            ],
        )
    )
