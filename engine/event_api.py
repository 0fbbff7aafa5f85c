"""Posting to user events by hand, behind `tock event start|end|reject` (engine.api.Tock
delegates here). The owner check is made here against the recorded admins and public
names, and again by the tick."""

from __future__ import annotations

from typing import TYPE_CHECKING

from engine import journal
from engine.errors import TockError
from engine.inputs import utf8
from engine.store import write
from engine.users import recorded_admins, recorded_public_events

if TYPE_CHECKING:
    from engine.api import Tock


def post(api: Tock, name: str, action: str, type: str | None, attribute: str | None) -> None:
    from engine.user_events import (
        ACTIONS,
        TYPES,
        accept_user_event,
        define_user_event,
        find_user_event,
        may_post,
    )

    if action not in ACTIONS:
        raise TockError(f"{action}: post start, end or reject")
    utf8("the event name", name)
    if not name or any(ch.isspace() for ch in name):
        raise TockError(f"event name '{name}': give one word, without white space")
    if type is not None and type not in TYPES:
        raise TockError(f"--type {type}: choose latched, pulse, pulseAll or exclusive")
    if attribute is not None:
        utf8("the attribute", attribute)
        if "\n" in attribute or "\0" in attribute:
            raise TockError("an attribute is one line of text")
    with api._guarded():
        conn = api.conn
        with write(conn):
            event = find_user_event(conn, name)
            payload: dict[str, object] = {
                "name": name,
                "action": action,
                "type": type if action == "start" else None,
                "attribute": attribute,
                "source": "user",
            }
            now = api.clock.now()
            if event is None:
                definition = define_user_event(conn, name)
                accept_user_event(conn, definition, api.user, now)
                payload["id"] = definition["id"]
            else:
                admins, public = recorded_admins(conn), recorded_public_events(conn)
                if not may_post(api.user, event["owner"], name, admins, public):
                    raise TockError(
                        f"Event <{name}>: it belongs to {event['owner']}; only its owner, "
                        "root or an administrator may post to it, unless it is listed in "
                        "public_events"
                    )
            journal.append(conn, time=now, kind=journal.EVENT_POST, user=api.user, payload=payload)
    api._wake()
