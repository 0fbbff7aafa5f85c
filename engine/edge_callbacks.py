"""The daemon's callback edge: loading the callback path, handing the outbox's pending runs
to the isolated pool (engine/callback_runner.py), and their results and actions, as
journal rows. At least once: after a restart the pending runs are handed out again, and
the tick records one result per key.
"""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Callable
from typing import Any

from engine import journal
from engine.callback_runner import CallbackPool
from engine.clock import Clock
from engine.config import Config
from engine.cpu_budget import CpuBudget
from engine.paths import Layout
from engine.store import write
from engine.users import current_user

CHECK = 2.0  # seconds between looks at the callbacks.conf files


class CallbackEdge:
    def __init__(
        self,
        conn: sqlite3.Connection,
        clock: Clock,
        config: Config,
        layout: Layout,
        log: Callable[[str], None],
    ) -> None:
        self.conn = conn
        self.clock = clock
        self.config = config
        self.layout = layout
        self.log = log
        budget = CpuBudget(config.callback_cpu_burst, config.callback_cpu_share)
        self.pool = CallbackPool(cpu_budget=budget)
        self.sent: set[str] = set()  # keys in the pool, until their result is written
        self.seen = 0  # the highest callback_runs.id handed to the pool
        self.confs: dict[str, float | None] = {}  # callbacks.conf -> mtime loaded
        self.check_at = 0.0  # monotonic time of the next look at them

    def fileno(self) -> int:
        return self.pool.fileno()

    def next_due(self, now: float) -> float | None:
        due = [t for t in (self.pool.next_due(),) if t is not None]
        if any(stamp is not None for stamp in self.confs.values()):
            due.append(now + CHECK)  # a callbacks.conf exists: watch it change
        return min(due) if due else None

    def close(self) -> None:
        self.pool.close()

    def start(self, pending: journal.PendingRows) -> None:
        self.load()

    # -- loading ----------------------------------------------------------------------------

    def load(self) -> None:
        """Read every callbacks.conf of the callback path; journal the set when it changed.
        Bad lines and refused files are logged and skipped; the good lines load."""
        from engine.calendar_store import allocate
        from engine.callback_dirs import callback_path, load_callback_dir
        from engine.callback_store import CallbackDef, find_universal, live_universal
        from engine.callbacks_conf import format_trigger, to_json

        try:
            directories = callback_path(
                self.config.universal_callback_path, os.environ, self.layout.db.parent
            )
        except ValueError as exc:
            self.log(f"error: {exc}; universal callbacks left as they were")
            return
        stamps: dict[str, float | None] = {}
        for directory in directories:
            conf = directory / "callbacks.conf"
            try:
                stamps[str(conf)] = conf.stat().st_mtime
            except OSError:
                stamps[str(conf)] = None
        if stamps == self.confs:
            return
        self.confs = stamps
        with write(self.conn):
            defs = []
            for directory in directories:
                result = load_callback_dir(directory)
                for diagnostic in result.diagnostics:
                    self.log(f"error: {diagnostic} (skipped)")
                for entry in result.entries:
                    path = str(directory / entry.filename)
                    text = format_trigger(entry.trigger)
                    known = find_universal(self.conn, path, text)
                    defs.append(
                        CallbackDef(
                            known if known is not None else allocate(self.conn, "callback"),
                            "universal",
                            path,
                            entry.language,
                            text,
                            to_json(entry.trigger),
                            f"{directory / 'callbacks.conf'}:{entry.line}",
                        ).payload()
                    )
            live = {int(row["id"]) for row in live_universal(self.conn)}
            if {item["id"] for item in defs} == live:
                return
            journal.append(
                self.conn,
                time=self.clock.now(),
                kind=journal.CALLBACKS_LOADED,
                user=current_user(),
                payload={"callbacks": defs},
            )
        self.log(f"{len(defs)} universal callback(s) from {len(directories)} director(ies)")

    # -- running ----------------------------------------------------------------------------

    def sync(self, pending: journal.PendingRows) -> bool:
        """Hand the pending runs of the outbox to the pool."""
        from engine.callback_fire import pending_runs
        from engine.callback_interface import CallbackRequest

        now = self.clock.now()
        for run in pending_runs(self.conn, after=self.seen):
            self.seen = max(self.seen, int(run["id"]))
            if run["key"] in self.sent:
                continue
            self.sent.add(run["key"])
            job = self.conn.execute("SELECT * FROM jobs WHERE id = ?", (run["job_id"],)).fetchone()
            scope = self.conn.execute(
                "SELECT scope FROM callbacks WHERE id = ?", (run["callback_id"],)
            ).fetchone()[0]
            if scope == "job" and job["user"] not in (current_user(), "root"):
                # A callback runs as the daemon's user: another user's own callback file
                # would run with rights its owner does not have.
                why = f"[refused: a --callback of {job['user']} does not run under a daemon of "
                self._result(pending, run["key"], "error", None, 0.0, f"{why}{current_user()}]")
                continue
            info = {
                "id": job["id"],
                "name": job["name"],
                # As the job was when the callback fired (the transition's state), not
                # as it is now: the run may start later, or after a restart.
                "status": run["transition"].partition(":")[2] or job["state"],
                "user": job["user"],
                "command": job["command"],
                "exit_code": job["exit_code"],
                "cwd": job["cwd"],
            }
            request = CallbackRequest(
                key=run["key"],
                path=run["path"],
                language=run["language"],
                job_id=run["job_id"],
                work_id=run["work_id"],
                trigger=run["trigger"],
                transition=run["transition"],
                jobinfo=[info],
                user=job["user"],
                spool_dir=str(self.layout.db.parent / "mail"),
            )
            self.pool.submit(request, now)
        return False

    def collect(self, pending: journal.PendingRows) -> None:
        """Results, and the actions callbacks asked for: an action is a request of the
        job's owner like any other (unblock is a resume, kill a kill). The callbacks.conf
        files are looked at now and then too."""
        if time.monotonic() >= self.check_at:
            self.check_at = time.monotonic() + CHECK
            self.load()
        now = self.clock.now()
        for result in self.pool.collect(now):
            self.sent.discard(result.key)
            owner = self.conn.execute(
                "SELECT j.user FROM callback_runs AS r JOIN jobs AS j ON j.id = r.job_id "
                "WHERE r.key = ?",
                (result.key,),
            ).fetchone()
            user = owner[0] if owner is not None else current_user()
            for action in result.actions:
                verb = action.action.removesuffix("-work")
                payload = {"action": verb, "work": action.work_id, "via": f"callback {result.key}"}
                pending.add(
                    time=now, kind=journal.CONTROL, user=user, payload=payload, job_id=action.job_id
                )
            tail = result.output_tail
            if result.error:
                tail = f"{tail}\n[{result.error}]" if tail else f"[{result.error}]"
            duration = round(result.duration, 6)
            self._result(pending, result.key, result.status, result.exit_code, duration, tail)

    def _result(
        self,
        pending: journal.PendingRows,
        key: str,
        status: str,
        exit_code: int | None,
        duration: float,
        tail: str,
    ) -> None:
        payload: dict[str, Any] = {
            "key": key,
            "status": status,
            "exit_code": exit_code,
            "duration": duration,
            "output_tail": tail[-4096:],
        }
        pending.add(
            time=self.clock.now(),
            kind=journal.CALLBACK_FINISHED,
            user=current_user(),
            payload=payload,
        )
