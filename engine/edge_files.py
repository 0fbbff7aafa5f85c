"""The daemon's file-event edge: which paths to watch, and what changed, as journal rows.

The tick decides which paths live file events read (bumping tick_state.file_generation
when the set changes); this edge hands them to the watcher (engine/file_watch.py), stats
what may have changed and journals only the differences as `file_observed` rows, so the
tick never reads the file system and a replay needs none.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable

from engine import journal
from engine.clock import Clock
from engine.config import Config
from engine.file_watch import FileMonitor
from engine.users import current_user


class FileEdge:
    def __init__(
        self, conn: sqlite3.Connection, clock: Clock, config: Config, log: Callable[[str], None]
    ) -> None:
        self.conn = conn
        self.clock = clock
        self.log = log
        self.monitor = FileMonitor(
            poll_prefixes=config.file_poll_paths,
            poll_interval=config.file_poll_interval,
            scan_interval=config.file_scan_interval,
        )
        self.generation: int | None = None

    def fileno(self) -> int:
        return self.monitor.fileno()

    def next_due(self, now: float) -> float | None:
        return self.monitor.next_due()

    def close(self) -> None:
        self.monitor.close()

    def start(self, pending: journal.PendingRows) -> None:
        """Nothing to do: the first sync gives the watcher its targets."""

    def sync(self, pending: journal.PendingRows) -> bool:
        """Give the watcher the paths live file events read, when the tick changed them.
        True when it did (their first stat is then due)."""
        generation = int(self.conn.execute("SELECT file_generation FROM tick_state").fetchone()[0])
        if generation == self.generation:
            return False
        self.generation = generation
        targets = [
            row[0]
            for row in self.conn.execute(
                "SELECT DISTINCT p.path FROM file_event_paths AS p JOIN file_events AS f "
                "ON f.event_id = p.event_id WHERE f.removed IS NULL"
            )
        ]
        self.monitor.set_targets(targets, self.clock.now())
        return True

    def collect(self, pending: journal.PendingRows) -> None:
        """Stat what may have changed; what did becomes one `file_observed` row."""
        now = self.clock.now()
        stats = self.monitor.collect(now)
        for error in self.monitor.errors():
            self.log(f"file watcher: {error}; polling every file event path until it restarts")
        if not stats:
            return
        known: dict[str, tuple[bool, int, float, int]] = {}
        paths = sorted(stats)
        for start in range(0, len(paths), 500):
            chunk = paths[start : start + 500]
            rows = self.conn.execute(
                "SELECT path, present, size, mtime, inode FROM file_paths "
                f"WHERE path IN ({','.join('?' * len(chunk))})",
                chunk,
            )
            known.update((row[0], (bool(row[1]), row[2], row[3], row[4])) for row in rows)
        changes = []
        for path in paths:
            stat = stats[path]
            seen = (True, stat.size, stat.mtime, stat.inode) if stat.exists else (False, 0, 0.0, 0)
            if known.get(path) != seen:
                names = ("exists", "size", "mtime", "inode")
                changes.append({"path": path, **dict(zip(names, seen, strict=True))})
        if changes:
            pending.add(
                time=now,
                kind=journal.FILE_OBSERVED,
                user=current_user(),
                payload={"observations": changes},
            )
