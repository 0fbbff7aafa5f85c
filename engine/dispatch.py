"""The dispatcher: carries out the actions a tick committed to the outbox.

It runs after the tick's commit, never inside it. A `start` goes to the launcher, which
forks the run's wrapper; a `signal` goes to the run's wrapper, which passes it on to the
job. Actions are marked done in one transaction per batch; what went wrong comes back as
journal rows (`dispatch_failed`), so the tick decides what it means.
"""

from __future__ import annotations

import contextlib
import json
import os
import pwd
import signal
import sqlite3
from collections.abc import Callable
from pathlib import Path

from engine import journal
from engine.clock import Clock
from engine.liveness import requeue_unclaimed
from engine.runner import Launcher, LauncherGone, send_signal
from engine.store import write
from engine.users import current_user


class Dispatcher:
    def __init__(
        self,
        conn: sqlite3.Connection,
        clock: Clock,
        output_dir: Path,
        restart_launcher: Callable[[], Launcher],
        log: Callable[[str], None],
    ) -> None:
        """`restart_launcher` makes a new launcher (replacing any current one); it is
        called once here and again whenever the launcher is found dead."""
        self.conn = conn
        self.clock = clock
        self.output_dir = output_dir
        self.restart_launcher = restart_launcher
        self.launcher = restart_launcher()
        self.log = log
        self._prepared: set[str] = set()

    def run_pending(self) -> int:
        """Carry out pending actions, oldest first; how many stay pending for a retry.

        An action that fails for a passing reason (no file descriptor left) stays pending
        and the daemon tries it again shortly; one that cannot be done is settled.
        """
        actions = self.conn.execute(
            "SELECT * FROM actions WHERE status = 'pending' ORDER BY id"
        ).fetchall()
        if not actions:
            return 0
        restarted = False
        outcomes: list[tuple[str, str]] = []
        for action in actions:
            if action["kind"] == "start":
                outcome, fresh = self._start(action)
                restarted = restarted or fresh
            else:
                outcome = self._signal(action, int(json.loads(action["payload"])["signal"]))
            outcomes.append(outcome)
        with write(self.conn):
            now = self.clock.now()
            self.conn.executemany(
                "UPDATE actions SET status = ?, result = ?, dispatched_at = ? WHERE id = ?",
                [(s, r, now, a["id"]) for (s, r), a in zip(outcomes, actions, strict=True)],
            )  # status 'pending' (deferred) keeps the action queued, with why in `result`
            for (status, result), action in zip(outcomes, actions, strict=True):
                if status == "failed":
                    journal.append(
                        self.conn,
                        time=now,
                        kind=journal.DISPATCH_FAILED,
                        user=current_user(),
                        job_id=action["job_id"],
                        run_id=action["run_id"],
                        payload={"error": result},
                    )
        if restarted and requeue_unclaimed(self.conn):
            # Starts written to the launcher that died may never have been forked.
            return self.run_pending()
        return sum(status == "pending" for status, _ in outcomes)

    def _prepare_output(self, user: str) -> None:
        """Each user's default output directory, owned by that user: a daemon running as
        root runs jobs as their owners, and they must be able to create their files."""
        if user in self._prepared:
            return
        directory = self.output_dir / user
        directory.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0 and user != "root":
            with contextlib.suppress(KeyError, OSError):
                entry = pwd.getpwnam(user)
                os.chown(directory, entry.pw_uid, entry.pw_gid)
        self._prepared.add(user)

    def _start(self, action: sqlite3.Row) -> tuple[tuple[str, str], bool]:
        """((status, result), whether the launcher had to be restarted)."""
        owner = self.conn.execute(
            "SELECT user FROM jobs WHERE id = ?", (action["job_id"],)
        ).fetchone()[0]
        try:
            self._prepare_output(owner)
        except OSError as exc:
            self.log(f"cannot prepare the output directory of {owner}: {exc}")
        try:
            self.launcher.start(action["run_id"])
            return ("done", "launched"), False
        except LauncherGone as exc:
            self.log(f"{exc}; starting a new launcher")
        self.launcher = self.restart_launcher()
        try:
            self.launcher.start(action["run_id"])
            return ("done", "launched"), True
        except LauncherGone as exc:
            return ("failed", f"the launcher cannot start ({exc})"), True

    def _signal(self, action: sqlite3.Row, number: int) -> tuple[str, str]:
        run = self.conn.execute(
            "SELECT pid, pid_start FROM job_runs WHERE id = ?", (action["run_id"],)
        ).fetchone()
        if run is None or run["pid"] is None:
            return "done", "no process to signal"
        try:
            sent = send_signal(run["pid"], run["pid_start"], number)
        except OSError as exc:
            return "pending", f"deferred: {exc.strerror}"
        if sent:
            return "done", f"sent {signal.Signals(number).name} to wrapper {run['pid']}"
        return "done", "the wrapper had already ended"
