"""The tick's working context: the clock value, and the writes every state change makes.

All state changes inside a tick go through TickContext.transition(), which updates the job,
writes its history row and records it as changed, so its dependents get re-evaluated
before the tick commits.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

PENDING_STATES = ("PEND", "PSUSP")
FINISHED_STATES = ("DONE", "EXIT")


@dataclass(slots=True)
class TickContext:
    conn: sqlite3.Connection
    now: float
    journal_id: int = 0
    max_running: int = 1
    orphan_grace: float | None = None
    admins: frozenset[str] = frozenset()
    changed: set[int] = field(default_factory=set)  # jobs whose state changed
    to_evaluate: set[int] = field(default_factory=set)  # jobs whose own rule may have changed
    evaluations: int = 0
    transitions: int = 0
    actions: int = 0

    def history(
        self,
        job_id: int,
        event: str,
        *,
        from_state: str | None = None,
        to_state: str | None = None,
        user: str | None = None,
        reason: str | None = None,
        run_id: int | None = None,
        work_index: int | None = None,
    ) -> None:
        """Record what happened to a job, or to its work item `work_index`, and fire the
        callbacks waiting for it."""
        self.conn.execute(
            "INSERT INTO history (time, job_id, run_id, journal_id, event, from_state, to_state, "
            "user, reason, work_index) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                self.now,
                job_id,
                run_id,
                self.journal_id,
                event,
                from_state,
                to_state,
                user,
                reason,
                work_index,
            ),
        )
        from engine.callback_fire import fire_for

        if work_index is None:
            fire_for(self, job_id, event, to_state)
        else:
            fire_for(self, job_id, event, to_state, work=str(work_index), work_id=work_index)

    def transition(
        self,
        job_id: int,
        from_state: str,
        to_state: str,
        event: str,
        *,
        user: str | None = None,
        reason: str | None = None,
        run_id: int | None = None,
        **columns: Any,
    ) -> None:
        """Move a job to a new state, with its history row, and mark it changed."""
        if to_state in FINISHED_STATES:
            columns.setdefault("end_time", self.now)
            columns.setdefault("ready", 0)
        if to_state not in PENDING_STATES:
            columns.setdefault("invalid_since", None)
        sets = ["state = ?"] + [f"{name} = ?" for name in columns]
        self.conn.execute(
            f"UPDATE jobs SET {', '.join(sets)} WHERE id = ?",
            (to_state, *columns.values(), job_id),
        )
        self.history(
            job_id,
            event,
            from_state=from_state,
            to_state=to_state,
            user=user,
            reason=reason,
            run_id=run_id,
        )
        self.changed.add(job_id)
        self.transitions += 1
        if to_state in FINISHED_STATES:
            from engine.file_events import release_file_events
            from engine.timeevents import release_anonymous

            release_anonymous(self.conn, job_id, self.now, f"job <{job_id}> has finished")
            release_file_events(self, job_id)
        if from_state == "RUN" or to_state in FINISHED_STATES:
            from engine.user_events import release_user_events

            release_user_events(self, job_id, from_state, to_state)

    def action(self, kind: str, job_id: int, run_id: int, payload: dict[str, Any]) -> None:
        """Put a side effect in the outbox; it runs after this tick commits."""
        self.conn.execute(
            "INSERT INTO actions (created, journal_id, kind, job_id, run_id, payload) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            (self.now, self.journal_id, kind, job_id, run_id, json.dumps(payload)),
        )
        self.actions += 1


# What the tick calls for one kind of journal row: (context, row, decoded payload).
Handler = Callable[[TickContext, sqlite3.Row, dict[str, Any]], None]
