"""The daemon's site-event-daemon edge: SUB/UNSUB for the user events jobs wait on, and
what the site daemons post, as journal rows (engine/event_daemons.py runs them)."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable

from engine import journal
from engine.clock import Clock
from engine.config import Config
from engine.event_daemons import EventDaemons
from engine.users import current_user


class SiteDaemonEdge:
    def __init__(
        self, conn: sqlite3.Connection, clock: Clock, config: Config, log: Callable[[str], None]
    ) -> None:
        self.conn = conn
        self.clock = clock
        self.log = log
        self.daemons = EventDaemons(config.event_daemons)
        self.generation: int | None = None

    def fileno(self) -> int:
        return self.daemons.fileno()

    def next_due(self, now: float) -> float | None:
        return self.daemons.next_due()

    def close(self) -> None:
        self.daemons.close()

    def start(self, pending: journal.PendingRows) -> None:
        self.daemons.start(self.clock.now())

    def sync(self, pending: journal.PendingRows) -> bool:
        """SUB and UNSUB: the site daemons hear of every user event some job waits on."""
        generation = int(self.conn.execute("SELECT user_generation FROM tick_state").fetchone()[0])
        if generation != self.generation:
            self.generation = generation
            rows = self.conn.execute("SELECT name FROM user_events WHERE subscribed = 1")
            self.daemons.subscribe([row[0] for row in rows])
        return False

    def collect(self, pending: journal.PendingRows) -> None:
        """Posts become `event_post` rows, exits `event_daemon` rows; trouble goes to the log."""
        now = self.clock.now()
        posts, reports = self.daemons.collect(now)
        user = current_user()
        for report in reports:
            self.log(f"event daemon {report.daemon}: {report.kind}: {report.detail}")
        for daemon, post in posts:
            payload = {
                "name": post.name,
                "action": post.action,
                "type": post.type,
                "attribute": post.attribute,
                "source": "daemon",
                "daemon": daemon,
            }
            pending.add(time=now, kind=journal.EVENT_POST, user=user, payload=payload)
        for report in reports:
            if report.kind == "exited":
                payload = {"daemon": report.daemon, "state": "exited", "detail": report.detail}
                pending.add(time=now, kind=journal.EVENT_DAEMON, user=user, payload=payload)
