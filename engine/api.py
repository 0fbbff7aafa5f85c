"""The Python API: what the CLI does, callable from scripts and tests (docs/api.md).

Every request is validated here, then recorded as one journal row in one transaction, and
the daemon is woken. Only a submission is also accepted on the spot (the job row exists
when `submit` returns, so its id can be printed and named by the next submission); every
decision about it is still the tick's.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from engine import journal, wake
from engine.clock import SYSTEM_CLOCK, Clock
from engine.config import Config, load_config
from engine.errors import TockError
from engine.inputs import DEFAULT_NAME_LENGTH, check_name, command_line, utf8
from engine.paths import Layout, layout_for, output_paths
from engine.queries import (
    EventInfo,
    HistoryEntry,
    JobInfo,
    WhyNode,
    events,
    get_job,
    history,
    list_jobs,
    why,
)
from engine.store import open_db, translated_errors, write
from engine.submission import JobSpec, accept_external_events, accept_submit
from engine.users import current_user, may_change, recorded_admins
from engine.workspec import WorkSpec, parse_work_name

CATCHUP = ("none", "once", "all")
if TYPE_CHECKING:
    from engine.calendar_api import CalendarHistoryEntry, CalendarInfo, Instance
    from engine.work_api import WorkInfo

MAX_JOB_ID = 2**63 - 1  # SQLite's largest integer; larger numbers name no job


class Tock:
    """A handle on one Tock database, acting as one user."""

    def __init__(
        self,
        db: str | os.PathLike[str] | None = None,
        *,
        clock: Clock = SYSTEM_CLOCK,
        user: str | None = None,
        config: Config | None = None,
    ) -> None:
        self.layout: Layout = layout_for(db)
        self.clock = clock
        self.user = user or current_user()
        self._config = config
        self._conn: sqlite3.Connection | None = None
        # What the last submit or modify accepted but wants the user to know (a file
        # event that cannot be watched): the CLI prints these.
        self.warnings: list[str] = []

    # -- plumbing ---------------------------------------------------------------------

    @property
    def db_path(self) -> Path:
        return self.layout.db

    @property
    def config(self) -> Config:
        if self._config is None:
            self._config = load_config(self.layout.db)
        return self._config

    @property
    def conn(self) -> sqlite3.Connection:
        if self._conn is None:
            self._conn = open_db(self.layout.db, busy_timeout_ms=self.config.busy_timeout_ms)
        return self._conn

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def __enter__(self) -> Tock:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _guarded(self) -> contextlib.AbstractContextManager[None]:
        """SQLite trouble (locked, corrupt) as a one-line TockError naming the file."""
        return translated_errors(self.layout.db)

    def _wake(self) -> None:
        wake.poke(self.layout.wake_fifo)

    def _owned_job(self, conn: sqlite3.Connection, job_id: int) -> sqlite3.Row:
        row: sqlite3.Row | None = None
        if 0 < job_id <= MAX_JOB_ID:
            row = conn.execute("SELECT * FROM jobs WHERE id = ?", (job_id,)).fetchone()
        if row is None or row["deleted"]:
            raise TockError(f"Job <{job_id}>: No matching job found")
        if not may_change(self.user, row["user"], recorded_admins(conn)):
            raise TockError(
                f"Job <{job_id}>: user {self.user} may not change a job of user {row['user']}"
            )
        return row

    # -- requests -----------------------------------------------------------------------

    def submit(
        self,
        command: str | Sequence[str],
        *,
        name: str | None = None,
        condition: str | None = None,
        hold: bool = False,
        terminate_orphan: bool = False,
        stdout: str | None = None,
        stderr: str | None = None,
        cwd: str | os.PathLike[str] | None = None,
        env: Mapping[str, str] | None = None,
        catchup: str = "none",
        callbacks: Sequence[tuple[str, str]] = (),
        timeout: float | None = None,
    ) -> int:
        """Submit a job; its id. Nothing is created when the request is refused.

        `catchup` says what a repetitive job does about time events it missed (the daemon
        was down, or it could not start inside the window): none, one late run, or one
        run per missed event.
        """
        self.warnings = []
        if timeout is not None and not 0 < timeout < 1e9:
            raise TockError(f"--timeout {timeout:g}: give seconds, more than 0")
        if catchup not in CATCHUP:
            raise TockError(f"--catchup {catchup}: choose none, once or all")
        line = utf8("the command", command_line(command))
        work: WorkSpec | None = None
        if name is not None:
            utf8("the job name", name)
            parsed_name = parse_work_name(name)
            if parsed_name.spec is None:
                raise TockError(parsed_name.diagnostics[0])
            if parsed_name.spec.is_array:
                work = parsed_name.spec
                name = work.name or None
        job_name = check_name(name) if name is not None else line[-DEFAULT_NAME_LENGTH:]
        if terminate_orphan and condition is None:
            raise TockError("-ti needs a dependency condition (-w)")
        workdir = Path(cwd if cwd is not None else os.getcwd()).absolute()
        utf8("the working directory", str(workdir))
        for what, path in (("-o", stdout), ("-e", stderr)):
            if path is not None:
                utf8(f"the {what} file name", path)
        tree = None
        if condition is not None:
            utf8("the condition", condition)
            from engine.condparse import parse_condition

            parsed = parse_condition(condition)
            if not parsed.ok:
                raise TockError(str(parsed.diagnostics[0]))
            tree = parsed.tree
        environment = dict(os.environ if env is None else env)
        with self._guarded():
            conn = self.conn
            with write(conn):
                job_id = int(
                    conn.execute(
                        "UPDATE counters SET value = value + 1 WHERE name = 'job' RETURNING value"
                    ).fetchone()[0]
                )
                nodes: list[dict[str, Any]] = []
                repetitive, anonymous, file_events, user_events = False, [], [], []
                if tree is not None:
                    from engine.resolver import Resolver
                    from engine.rules import compile_condition, is_repetitive

                    resolver = Resolver(conn, self.user, job_id)
                    nodes = compile_condition(tree, resolver)
                    repetitive, anonymous = is_repetitive(conn, nodes), resolver.anonymous
                    file_events, user_events = resolver.file_events, resolver.user_events
                    self.warnings = resolver.warnings
                from engine.callback_store import attachments_for

                attached, callback_defs = attachments_for(
                    conn, job_id, self.user, environment, callbacks
                )
                if catchup != "none" and not any(node.get("calendar") for node in nodes):
                    raise TockError("--catchup needs a calendar in the condition (-w)")
                if work is not None and repetitive:
                    raise TockError(
                        f"-J {work.name}{work.text}: a repetitive job (a calendar, or a "
                        "repetitive job, in its condition) cannot have work items"
                    )
                directory = (self.config.output_dir or self.layout.default_output_dir) / self.user
                items = work is not None
                out, err = output_paths(directory, job_id, workdir, stdout, stderr, items)
                spec = JobSpec(
                    id=job_id,
                    name=job_name,
                    user=self.user,
                    command=line,
                    cwd=str(workdir),
                    stdout=out,
                    stderr=err,
                    env=environment,
                    condition=None if tree is None else condition.strip(),  # type: ignore[union-attr]
                    nodes=nodes,
                    hold=hold,
                    terminate_orphan=terminate_orphan,
                    repetitive=repetitive,
                    catchup=catchup,
                    calendars=anonymous,
                    file_events=file_events,
                    user_events=user_events,
                    callbacks=attached,
                    callback_defs=callback_defs,
                    work_spec=None if work is None else work.text,
                    timeout=timeout,
                )
                now = self.clock.now()
                row_id = journal.append(
                    conn,
                    time=now,
                    kind=journal.SUBMIT,
                    user=self.user,
                    job_id=job_id,
                    payload=spec.payload(),
                )
                accept_submit(conn, row_id, now, spec)
        self._wake()
        return job_id

    def _request(
        self,
        kind: str,
        job_id: int,
        check: str,
        payload: dict[str, object] | Callable[[sqlite3.Connection, sqlite3.Row], dict[str, object]],
    ) -> None:
        """Validate a request against the job and append it, in one write transaction.

        `payload` may be a function of (connection, job row), computed inside the
        transaction, for requests whose validity depends on the state (modify's cycle check).
        """
        with self._guarded():
            conn = self.conn
            with write(conn):
                job = self._owned_job(conn, job_id)
                state = job["state"]
                if check in ("unfinished", "killable", "repetitive") and state in (
                    "DONE",
                    "EXIT",
                ):
                    raise TockError(f"Job <{job_id}>: Job has already finished")
                if check == "killable" and job["repetitive"] and state != "RUN":
                    raise TockError(
                        f"Job <{job_id}>: a repetitive job is killed only while it runs "
                        "(tock del removes it)"
                    )
                if check == "repetitive" and not job["repetitive"]:
                    raise TockError(f"Job <{job_id}>: -n applies to repetitive jobs only")
                if check == "held" and state != "PSUSP" and not job["work_total"]:
                    raise TockError(f"Job <{job_id}>: Job is not held (it is {state})")
                if check == "pending" and state not in ("PEND", "PSUSP"):
                    raise TockError(
                        f"Job <{job_id}>: only a pending job's condition can change (it is {state})"
                    )
                journal.append(
                    conn,
                    time=self.clock.now(),
                    kind=kind,
                    user=self.user,
                    job_id=job_id,
                    payload=payload(conn, job) if callable(payload) else payload,
                )
        self._wake()

    def kill(self, job_id: int) -> None:
        """Kill a job: a pending job ends at once (EXIT), a running one is signalled.
        A repetitive job only loses its current run and waits for its next time event."""
        self._request(journal.KILL, job_id, "killable", {})

    def delete(self, job_id: int, after_runs: int | None = None) -> None:
        """Kill the job if it has not finished, and remove it from listings and name lookups.
        With `after_runs`, a repetitive job is removed after that many more runs."""
        if after_runs is None:
            self._request(journal.DELETE, job_id, "any", {})
            return
        if after_runs < 1:
            raise TockError(f"-n {after_runs}: give a number of runs of at least 1")
        self._request(journal.DELETE, job_id, "repetitive", {"after_runs": after_runs})

    def resume(self, job_id: int) -> None:
        """Release a held (PSUSP) job."""
        self._request(journal.RESUME, job_id, "held", {})

    def control(
        self, job_id: int, action: str, work: int | None = None, via: str | None = None
    ) -> None:
        """block, unblock, retry, complete, fail or kill a job or item (engine/control.py)."""
        from engine.work_api import control

        control(self, job_id, action, work, via)

    def work(self, job_id: int, states: tuple[str, ...] = ()) -> list[WorkInfo]:
        """The job's work items, by index; `states` keeps those in these states."""
        from engine.work_api import items

        return items(self, job_id, states)

    def modify(self, job_id: int, condition: str | None) -> None:
        """Replace a pending job's condition; None removes it."""
        self.warnings = []
        if condition is None:
            self._request(journal.MODIFY, job_id, "pending", {"condition": None, "nodes": []})
            return
        from engine.condparse import parse_condition
        from engine.resolver import Resolver
        from engine.rules import (
            compile_condition,
            find_cycle,
            is_repetitive,
            pending_modifications,
            referenced_jobs,
        )

        utf8("the condition", condition)
        parsed = parse_condition(condition)
        if not parsed.ok:
            raise TockError(str(parsed.diagnostics[0]))
        tree = parsed.tree
        assert tree is not None

        def compiled(conn: sqlite3.Connection, job: sqlite3.Row) -> dict[str, object]:
            resolver = Resolver(conn, job["user"], job_id)
            nodes = compile_condition(tree, resolver)
            # Modifications accepted but not yet applied count too: two requests that each
            # look harmless alone must not together close a loop.
            refs = referenced_jobs(nodes)
            cycle = find_cycle(conn, job_id, refs, pending_modifications(conn))
            if cycle is not None:
                loop = " -> ".join(f"<{j}>" for j in [job_id, *reversed(cycle)])
                raise TockError(f"Job <{job_id}>: the condition would make a cycle: {loop}")
            repetitive = is_repetitive(conn, nodes)
            if repetitive and job["work_total"]:
                raise TockError(
                    f"Job <{job_id}>: it has work items, and a repetitive job cannot have them"
                )
            accept_external_events(
                conn, resolver.file_events, resolver.user_events, job["user"], self.clock.now()
            )
            self.warnings = resolver.warnings
            return {
                "condition": condition.strip(),
                "nodes": nodes,
                "repetitive": repetitive,
                "calendars": resolver.anonymous,
                "file_events": resolver.file_events,
                "user_events": resolver.user_events,
            }

        self._request(journal.MODIFY, job_id, "pending", compiled)

    # -- user events ------------------------------------------------------------------------

    def event_post(
        self,
        name: str,
        action: str,
        *,
        type: str | None = None,
        attribute: str | None = None,
    ) -> None:
        """START, END or REJECT a user event by hand. A new name becomes the poster's; an
        existing one needs its owner, root, an admin, or a name listed in public_events."""
        from engine.event_api import post

        post(self, name, action, type, attribute)

    # -- calendars (engine/calendar_api.py) -----------------------------------------------

    def calendar_add(
        self, name: str, expression: str, description: str = "", timezone: str | None = None
    ) -> list[str]:
        """Create a calendar; the warnings about its expression (one that never fires)."""
        from engine import calendar_api

        return calendar_api.add(self, name, expression, description, timezone)

    def calendar_modify(
        self,
        name: str,
        expression: str | None = None,
        description: str | None = None,
        timezone: str | None = None,
    ) -> list[str]:
        from engine import calendar_api

        return calendar_api.modify(self, name, expression, description, timezone)

    def calendar_delete(self, name: str) -> None:
        from engine import calendar_api

        calendar_api.delete(self, name)

    def calendars(self, names: Sequence[str] = (), user: str | None = None) -> list[CalendarInfo]:
        from engine import calendar_api

        return calendar_api.listing(self, tuple(names), user)

    def calendar_history(self, name: str | None = None) -> list[CalendarHistoryEntry]:
        from engine import calendar_api

        return calendar_api.history(self, name)

    def calendar_show(
        self,
        target: str,
        count: int = 5,
        start: str | None = None,
        timezone: str | None = None,
    ) -> list[Instance]:
        from engine import calendar_api

        return calendar_api.show(self, target, count, start, timezone)

    # -- queries ------------------------------------------------------------------------

    def jobs(
        self,
        ids: Sequence[int] = (),
        *,
        user: str | None = None,
        all_users: bool = False,
        name: str | None = None,
        include_finished: bool = False,
    ) -> list[JobInfo]:
        owner = None if all_users or ids else (user or self.user)
        ids = [job_id for job_id in ids if 0 < job_id <= MAX_JOB_ID]
        with self._guarded():
            return list_jobs(
                self.conn, ids=ids, user=owner, name=name, include_finished=include_finished
            )

    def job(self, job_id: int) -> JobInfo:
        with self._guarded():
            info = get_job(self.conn, job_id) if 0 < job_id <= MAX_JOB_ID else None
        if info is None:
            raise TockError(f"Job <{job_id}>: No matching job found")
        return info

    def why(self, job_id: int) -> WhyNode | None:
        self.job(job_id)
        with self._guarded():
            return why(self.conn, job_id)

    def events(
        self, *, user: str | None = None, include_calendars: bool = False
    ) -> list[EventInfo]:
        """External events some job waits on; `user` None means every owner's."""
        with self._guarded():
            return events(self.conn, owner=user, include_calendars=include_calendars)

    def history(self, job_id: int) -> list[HistoryEntry]:
        self.job(job_id)
        with self._guarded():
            return history(self.conn, job_id)

    def wait(
        self, job_ids: Iterable[int], *, timeout: float = 60.0, poll: float = 0.02
    ) -> list[JobInfo]:
        """Block until the jobs have finished (DONE or EXIT); raise TockError on timeout."""
        wanted = list(job_ids)
        known = {info.id for info in self.jobs(wanted)}
        for job_id in wanted:
            if job_id not in known:
                raise TockError(f"Job <{job_id}>: No matching job found")
        deadline = time.monotonic() + timeout
        while True:
            infos = self.jobs(wanted)
            if len(infos) == len(wanted) and all(i.state in ("DONE", "EXIT") for i in infos):
                return infos
            if time.monotonic() > deadline:
                unfinished = [
                    f"<{i.id}> {i.state}" for i in infos if i.state not in ("DONE", "EXIT")
                ]
                raise TockError(f"timed out waiting for jobs: {', '.join(unfinished)}")
            time.sleep(poll)
