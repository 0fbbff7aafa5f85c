"""One tick: consume journal rows in order, decide, and commit state and actions together.

A tick is one `BEGIN IMMEDIATE` transaction. For each new journal row it sets `now` to the
row's time (never earlier than the last `now`), applies the row and settles the
consequences; then it advances the cursor and commits. The outbox rows written here are
carried out only after the commit, by the dispatcher. Because each row is settled before
the next is applied, how rows are grouped into ticks does not change the outcome: a replay
of the journal rebuilds the same state.

A row whose application raises (a bug, never a user's input) is rolled back to a
savepoint, recorded in tick_errors and skipped, so one bad row cannot stop the daemon.
"""

from __future__ import annotations

import json
import sqlite3
import traceback
from dataclasses import dataclass

from engine.apply import apply_row
from engine.evaluation import settle
from engine.store import write
from engine.transitions import TickContext

DEFAULT_BATCH = 500


@dataclass(frozen=True, slots=True)
class TickResult:
    consumed: int
    transitions: int
    actions: int
    evaluations: int
    errors: int

    @property
    def idle(self) -> bool:
        return self.consumed == 0


def run_tick(conn: sqlite3.Connection, *, batch: int = DEFAULT_BATCH) -> TickResult:
    errors = 0
    with write(conn):
        state = conn.execute("SELECT * FROM tick_state").fetchone()
        ctx = TickContext(
            conn,
            now=state["now"],
            max_running=state["max_running"],
            orphan_grace=state["orphan_grace"],
            admins=frozenset(json.loads(state["admins"])),
        )
        rows = conn.execute(
            "SELECT * FROM journal WHERE id > ? ORDER BY id LIMIT ?",
            (state["journal_cursor"], batch),
        ).fetchall()
        for row in rows:
            ctx.now = max(ctx.now, row["time"])
            ctx.journal_id = row["id"]
            conn.execute("SAVEPOINT journal_row")
            try:
                apply_row(ctx, row)
                settle(ctx)
            except Exception:
                conn.execute("ROLLBACK TO journal_row")
                ctx.changed.clear()
                ctx.to_evaluate.clear()
                conn.execute(
                    "INSERT INTO tick_errors (time, journal_id, message) VALUES (?, ?, ?)",
                    (ctx.now, row["id"], traceback.format_exc(limit=8)),
                )
                errors += 1
            conn.execute("RELEASE journal_row")
        if rows:
            conn.execute(
                "UPDATE tick_state SET journal_cursor = ?, now = ?, ticks = ticks + 1",
                (rows[-1]["id"], ctx.now),
            )
    return TickResult(len(rows), ctx.transitions, ctx.actions, ctx.evaluations, errors)


def run_until_caught_up(conn: sqlite3.Connection, *, batch: int = DEFAULT_BATCH) -> TickResult:
    """Tick until the journal is consumed; the sum of the work done."""
    totals = [0, 0, 0, 0, 0]
    while True:
        result = run_tick(conn, batch=batch)
        for index, value in enumerate(
            (result.consumed, result.transitions, result.actions, result.evaluations, result.errors)
        ):
            totals[index] += value
        if result.consumed < batch:
            return TickResult(*totals)
