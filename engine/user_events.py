"""User events in the store and the tick: `event(name)`, posted by hand or by site daemons.

One name is one event for everybody; its owner is the user who first subscribed or posted
it. A job naming it subscribes it (the daemon sends `SUB name` to the site event daemons)
until no pending or running job depends on it (`UNSUB`). Posts arrive as `event_post`
journal rows and change the state by the event's type:

- latched: active from START to END;
- pulse: each START (while some job waits) releases one job, the oldest that can start;
- pulseAll: each START is owed to every job waiting at that moment until it starts
  (`job_user_events.used` below `user_events.fired`), never to a job that comes later;
- exclusive: a START releases one job, and STARTs are ignored until that job's run ends;
- REJECT: the event counts as rejected (a condition over it is `reject`) until a START or
  an END.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from typing import Any

from engine.eventd_protocol import ACTIONS as ACTIONS
from engine.eventd_protocol import TYPES as PROTOCOL_TYPES
from engine.logic import EventFacts
from engine.transitions import TickContext
from engine.users import recorded_public_events

TYPES = tuple(PROTOCOL_TYPES.values())  # as `--type` and the site daemons name them
LIVE_STATES = ("PEND", "PSUSP", "RUN")
WAITING = "('PEND', 'PSUSP')"


UNSEEN = 2**62  # journal_id of an event the API created before its journal row exists


def find_user_event(
    conn: sqlite3.Connection, name: str, *, as_of: int | None = None
) -> sqlite3.Row | None:
    """The event of that name; with `as_of`, only if a journal row up to that one created
    it (the tick must not see what the API created for a row it has not reached)."""
    row: sqlite3.Row | None = conn.execute(
        "SELECT e.id, e.owner, u.* FROM events AS e JOIN user_events AS u ON u.event_id = e.id "
        "WHERE u.name = ? AND u.journal_id <= ?",
        (name, UNSEEN if as_of is None else as_of),
    ).fetchone()
    return row


def define_user_event(conn: sqlite3.Connection, name: str) -> dict[str, Any]:
    """The API's half: the event's id, allocated here when the name is new."""
    from engine.calendar_store import allocate

    row = find_user_event(conn, name)
    event_id = int(row["id"]) if row is not None else allocate(conn, "event")
    return {"id": event_id, "name": name}


def accept_user_event(
    conn: sqlite3.Connection,
    definition: dict[str, Any],
    owner: str,
    time: float,
    journal_id: int = UNSEEN,
) -> None:
    """The identity rows; a no-op when they exist, except that the journal row creating
    them is the earliest that names them. Whoever comes first owns the name."""
    event_id, name = int(definition["id"]), str(definition["name"])
    conn.execute(
        "INSERT OR IGNORE INTO events (id, kind, canonical, owner, status, last_update) "
        "VALUES (?, 'user', ?, ?, 'inactive', ?)",
        (event_id, name, owner, time),
    )
    conn.execute(
        "INSERT INTO user_events (event_id, name, created, journal_id) VALUES (?, ?, ?, ?) "
        "ON CONFLICT (event_id) DO UPDATE SET journal_id = min(journal_id, excluded.journal_id)",
        (event_id, name, time, journal_id),
    )
    conn.execute("UPDATE counters SET value = max(value, ?) WHERE name = 'event'", (event_id,))


def user_event_ids(nodes: Iterable[dict[str, Any]]) -> set[int]:
    return {int(node["event"]) for node in nodes if node.get("user")}


def may_post(
    user: str, owner: str, name: str, admins: Iterable[str], public: Iterable[str]
) -> bool:
    return user in (owner, "root") or user in set(admins) or name in set(public)


# --- subscriptions -------------------------------------------------------------------


def _set_subscribed(ctx: TickContext, event_id: int, subscribed: bool) -> None:
    changed = ctx.conn.execute(
        "UPDATE user_events SET subscribed = ? WHERE event_id = ? AND subscribed != ?",
        (int(subscribed), event_id, int(subscribed)),
    ).rowcount
    if changed:
        ctx.conn.execute("UPDATE tick_state SET user_generation = user_generation + 1")


def attach_user_events(ctx: TickContext, job_id: int, defs: Iterable[dict[str, Any]]) -> None:
    """A job starts waiting: it subscribes the events, from their current firing count."""
    for definition in defs:
        event_id = int(definition["id"])
        ctx.conn.execute(
            "INSERT OR IGNORE INTO job_user_events (job_id, event_id, used) "
            "SELECT ?, event_id, fired FROM user_events WHERE event_id = ?",
            (job_id, event_id),
        )
        _set_subscribed(ctx, event_id, True)


def detach_user_events(ctx: TickContext, job_id: int, keep: set[int]) -> None:
    rows = ctx.conn.execute(
        "SELECT event_id FROM job_user_events WHERE job_id = ?", (job_id,)
    ).fetchall()
    for (event_id,) in rows:
        if event_id not in keep:
            ctx.conn.execute(
                "DELETE FROM job_user_events WHERE job_id = ? AND event_id = ?",
                (job_id, event_id),
            )
            _unsubscribe_if_unused(ctx, event_id)


def release_user_events(ctx: TickContext, job_id: int, from_state: str, to_state: str) -> None:
    """A run ended (an exclusive event is free again); a job finished (events nobody
    waits on any more are unsubscribed)."""
    if from_state == "RUN":
        held = ctx.conn.execute(
            "SELECT event_id FROM user_events WHERE holder = ?", (job_id,)
        ).fetchall()
        for (event_id,) in held:
            ctx.conn.execute("UPDATE user_events SET holder = NULL WHERE event_id = ?", (event_id,))
            refresh_status(ctx, event_id)
    if to_state in ("DONE", "EXIT"):
        rows = ctx.conn.execute(
            "SELECT event_id FROM job_user_events WHERE job_id = ?", (job_id,)
        ).fetchall()
        for (event_id,) in rows:
            _unsubscribe_if_unused(ctx, event_id)


def _unsubscribe_if_unused(ctx: TickContext, event_id: int) -> None:
    live = ctx.conn.execute(
        "SELECT 1 FROM job_user_events AS l JOIN jobs AS j ON j.id = l.job_id "
        f"WHERE l.event_id = ? AND j.state IN {LIVE_STATES} LIMIT 1",
        (event_id,),
    ).fetchone()
    if live is None:
        _set_subscribed(ctx, event_id, False)
    refresh_status(ctx, event_id)


# --- posts ---------------------------------------------------------------------------


def _waiting(ctx: TickContext, event_id: int) -> list[int]:
    rows = ctx.conn.execute(
        "SELECT l.job_id FROM job_user_events AS l JOIN jobs AS j ON j.id = l.job_id "
        f"WHERE l.event_id = ? AND j.state IN {WAITING} ORDER BY l.job_id",
        (event_id,),
    )
    return [row[0] for row in rows]


def _repeating(ctx: TickContext, event_id: int) -> bool:
    row = ctx.conn.execute(
        "SELECT 1 FROM job_user_events AS l JOIN jobs AS j ON j.id = l.job_id "
        "WHERE l.event_id = ? AND j.state = 'RUN' AND j.repetitive = 1 LIMIT 1",
        (event_id,),
    ).fetchone()
    return row is not None


def apply_post(ctx: TickContext, row: sqlite3.Row, payload: dict[str, Any]) -> None:
    """One START, END or REJECT. A manual post is checked against the owner again here
    (the API checked it before writing); a site daemon's is trusted."""
    conn = ctx.conn
    name = str(payload["name"])
    source = str(payload.get("source", "user"))
    if payload.get("id") is not None:
        accept_user_event(conn, payload, row["user"], ctx.now, row["id"])
    event = find_user_event(conn, name, as_of=row["id"])
    if event is None:
        return  # a site daemon posted a name nobody ever used
    if source == "user":
        public = recorded_public_events(conn)
        if not may_post(row["user"], event["owner"], name, ctx.admins, public):
            return
    label = f"daemon {payload.get('daemon')}" if source == "daemon" else f"user {row['user']}"
    action = str(payload["action"])
    attribute = payload.get("attribute")
    event_id = int(event["id"])
    sets: dict[str, Any] = {"source": label, "stale": 0}
    if action == "start":
        kind = str(payload.get("type") or "latched")
        if kind == "exclusive" and event["type"] == "exclusive" and event["holder"] is not None:
            return  # ignored, attribute and all, until the released job's run ends
        sets |= {"type": kind, "rejected": 0, "level": int(kind == "latched")}
        waiting = _waiting(ctx, event_id)
        if kind == "pulse":
            sets["pulses"] = event["pulses"] + 1 if waiting else 0
        elif kind == "pulseAll":
            sets["pulses"] = 0
            again = waiting or _repeating(ctx, event_id)  # a repetitive job will wait again
            sets["fired"] = event["fired"] + (1 if again else 0)
        elif kind == "exclusive":
            sets["pulses"] = 1 if event["holder"] is None and waiting else 0
        else:
            sets["pulses"] = 0
    elif action == "end":
        sets |= {"level": 0, "pulses": 0, "rejected": 0}
        attribute = event_attribute(conn, event_id) if attribute is None else attribute
    else:
        sets |= {"level": 0, "pulses": 0, "rejected": 1}
    conn.execute(
        f"UPDATE user_events SET {', '.join(f'{key} = ?' for key in sets)} WHERE event_id = ?",
        (*sets.values(), event_id),
    )
    conn.execute(
        "UPDATE events SET attribute = ?, last_update = ? WHERE id = ?",
        (attribute, ctx.now, event_id),
    )
    refresh_status(ctx, event_id, force=True)
    ctx.to_evaluate.update(_waiting(ctx, event_id))


def event_attribute(conn: sqlite3.Connection, event_id: int) -> str | None:
    row = conn.execute("SELECT attribute FROM events WHERE id = ?", (event_id,)).fetchone()
    return None if row is None else row[0]


def mark_stale(ctx: TickContext, daemon: str) -> None:
    """A site daemon exited: its events keep their last status, marked stale."""
    ctx.conn.execute("UPDATE user_events SET stale = 1 WHERE source = ?", (f"daemon {daemon}",))


def refresh_status(ctx: TickContext, event_id: int, *, force: bool = False) -> None:
    event = ctx.conn.execute("SELECT * FROM user_events WHERE event_id = ?", (event_id,)).fetchone()
    if event is None:
        return
    if event["rejected"]:
        status = "reject"
    elif event["type"] == "pulseAll":
        owed = ctx.conn.execute(
            "SELECT 1 FROM job_user_events AS l JOIN jobs AS j ON j.id = l.job_id "
            f"WHERE l.event_id = ? AND l.used < ? AND j.state IN {WAITING} LIMIT 1",
            (event_id, event["fired"]),
        ).fetchone()
        status = "active" if owed is not None else "inactive"
    elif event["type"] in ("pulse", "exclusive"):
        status = "active" if event["pulses"] > 0 else "inactive"
    else:
        status = "active" if event["level"] else "inactive"
    ctx.conn.execute(
        "UPDATE events SET status = ?, last_update = ? WHERE id = ? AND (status != ? OR ?)",
        (status, ctx.now, event_id, status, int(force)),
    )


# --- evaluation and dispatch -----------------------------------------------------------


def user_facts(conn: sqlite3.Connection, job_id: int) -> dict[int, EventFacts]:
    """How each user event the job waits on looks to that job, by event id."""
    rows = conn.execute(
        "SELECT l.event_id, l.used, u.* FROM job_user_events AS l "
        "JOIN user_events AS u ON u.event_id = l.event_id WHERE l.job_id = ?",
        (job_id,),
    ).fetchall()
    facts: dict[int, EventFacts] = {}
    for row in rows:
        label = f"event({row['name']})"
        if row["rejected"]:
            facts[row["event_id"]] = EventFacts(False, rejected=True, label=label)
        elif row["type"] == "pulseAll":
            facts[row["event_id"]] = EventFacts(row["used"] < row["fired"], fresh=True, label=label)
        elif row["type"] == "pulse":
            facts[row["event_id"]] = EventFacts(row["pulses"] > 0, fresh=True, label=label)
        elif row["type"] == "exclusive":
            holds = row["pulses"] > 0 and row["holder"] is None
            facts[row["event_id"]] = EventFacts(holds, fresh=True, label=label)
        else:
            facts[row["event_id"]] = EventFacts(bool(row["level"]), label=label)
    return facts


def use_user_events(ctx: TickContext, job_id: int) -> str | None:
    """A job is dispatched: it takes one release of every pulse and exclusive event of its
    condition that has one, and every pulseAll firing it was owed. Returns the attribute
    for LSB_EVENT_ATTRIB: that of the leftmost event in the condition that holds."""
    facts = user_facts(ctx.conn, job_id)
    if not facts:
        return None
    order = ctx.conn.execute(
        "SELECT n.event_id FROM rules AS r JOIN rule_nodes AS n ON n.rule_id = r.id "
        "WHERE r.job_id = ? AND n.event_id IS NOT NULL ORDER BY n.position",
        (job_id,),
    ).fetchall()
    attribute = None
    for (event_id,) in order:
        fact = facts.get(event_id)
        if fact is not None and fact.holds and attribute is None:
            attribute = event_attribute(ctx.conn, event_id)
    for event_id, fact in facts.items():
        if not fact.holds:
            continue
        event = ctx.conn.execute(
            "SELECT type, pulses, fired FROM user_events WHERE event_id = ?", (event_id,)
        ).fetchone()
        if event["type"] == "pulse":
            ctx.conn.execute(
                "UPDATE user_events SET pulses = pulses - 1 WHERE event_id = ?", (event_id,)
            )
        elif event["type"] == "exclusive":
            ctx.conn.execute(
                "UPDATE user_events SET pulses = 0, holder = ? WHERE event_id = ?",
                (job_id, event_id),
            )
        elif event["type"] == "pulseAll":
            ctx.conn.execute(
                "UPDATE job_user_events SET used = ? WHERE job_id = ? AND event_id = ?",
                (event["fired"], job_id, event_id),
            )
        else:
            continue
        refresh_status(ctx, event_id)
        ctx.to_evaluate.update(_waiting(ctx, event_id))
    return attribute


def has_user_events(conn: sqlite3.Connection, job_id: int) -> bool:
    row = conn.execute("SELECT 1 FROM job_user_events WHERE job_id = ? LIMIT 1", (job_id,))
    return row.fetchone() is not None
