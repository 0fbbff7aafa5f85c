"""`tock event start|end|reject`: posting a user event by hand, as a site daemon would."""

from __future__ import annotations

from typing import Any

import click

from engine.user_events import TYPES


def _api(ctx: click.Context) -> Any:
    from engine.cli import _api as root_api

    return root_api(ctx)


@click.group()
def event() -> None:
    """Post to a user event: what jobs waiting on event(NAME) see."""


@event.command()
@click.option(
    "--type",
    "event_type",
    type=click.Choice(TYPES),
    default="latched",
    show_default=True,
    help="latched: until END; pulse: one job; pulseAll: every job waiting now; "
    "exclusive: one job, then nothing until its run ends.",
)
@click.option("--attr", "attribute", metavar="TEXT", help="Passed as LSB_EVENT_ATTRIB.")
@click.argument("name")
@click.pass_context
def start(ctx: click.Context, event_type: str, attribute: str | None, name: str) -> None:
    """START the event NAME."""
    _api(ctx).event_post(name, "start", type=event_type, attribute=attribute)
    click.echo(f"Event <{name}> is started ({event_type}).")


@event.command()
@click.argument("name")
@click.pass_context
def end(ctx: click.Context, name: str) -> None:
    """END the event NAME: a latched event goes inactive, unused pulses are dropped."""
    _api(ctx).event_post(name, "end")
    click.echo(f"Event <{name}> is ended.")


@event.command()
@click.option("--attr", "attribute", metavar="REASON", help="Why, shown in tock events.")
@click.argument("name")
@click.pass_context
def reject(ctx: click.Context, attribute: str | None, name: str) -> None:
    """REJECT the event NAME: jobs waiting on it pend with a rejected reason."""
    _api(ctx).event_post(name, "reject", attribute=attribute)
    click.echo(f"Event <{name}> is rejected.")
