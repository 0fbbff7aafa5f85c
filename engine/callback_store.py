"""Callback definitions and attachments in the store.

Universal callbacks come from the callbacks.conf files of the callback path: the daemon
reads them and journals the whole set (`callbacks_loaded`, ids allocated there), and the
tick retires the definitions no longer in it and adds the new ones. A submission attaches
every live universal callback and its own `--callback`s to the job, with each trigger
term's context resolved to a job id by the API (so a replay resolves nothing), and the
tick writes `job_callbacks` and `callback_terms` from that.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from typing import Any

from engine.transitions import TickContext


@dataclass(frozen=True, slots=True)
class CallbackDef:
    id: int
    scope: str  # 'universal' | 'job'
    path: str
    language: str
    trigger: str  # canonical text
    tree: dict[str, Any]  # engine.callbacks_conf.to_json
    source: str  # file:line, or "--callback"

    def payload(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_payload(cls, payload: Mapping[str, Any]) -> CallbackDef:
        return cls(**payload)


def accept_callback(
    conn: sqlite3.Connection, cdef: CallbackDef, time: float, journal_id: int
) -> None:
    conn.execute(
        "INSERT OR IGNORE INTO callbacks (id, scope, path, language, trigger, compiled, source, "
        "created, journal_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            cdef.id,
            cdef.scope,
            cdef.path,
            cdef.language,
            cdef.trigger,
            json.dumps(cdef.tree, separators=(",", ":")),
            cdef.source,
            time,
            journal_id,
        ),
    )
    conn.execute("UPDATE counters SET value = max(value, ?) WHERE name = 'callback'", (cdef.id,))


def load_universal(ctx: TickContext, defs: Iterable[Mapping[str, Any]]) -> None:
    """The live universal callbacks become exactly these; jobs keep what they had."""
    wanted = [CallbackDef.from_payload(item) for item in defs]
    keep = {cdef.id for cdef in wanted}
    live = ctx.conn.execute(
        "SELECT id FROM callbacks WHERE scope = 'universal' AND retired IS NULL"
    ).fetchall()
    for (callback_id,) in live:
        if callback_id not in keep:
            ctx.conn.execute(
                "UPDATE callbacks SET retired = ? WHERE id = ?", (ctx.now, callback_id)
            )
    for cdef in wanted:
        accept_callback(ctx.conn, cdef, ctx.now, ctx.journal_id)


def live_universal(conn: sqlite3.Connection) -> list[sqlite3.Row]:
    return conn.execute(
        "SELECT * FROM callbacks WHERE scope = 'universal' AND retired IS NULL ORDER BY id"
    ).fetchall()


def find_universal(conn: sqlite3.Connection, path: str, trigger: str) -> int | None:
    row = conn.execute(
        "SELECT id FROM callbacks WHERE scope = 'universal' AND retired IS NULL AND path = ? "
        "AND trigger = ?",
        (path, trigger),
    ).fetchone()
    return None if row is None else int(row[0])


# --- attaching -------------------------------------------------------------------------


def compile_attachment(
    tree: Mapping[str, Any], resolve: Any
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """(the trigger as {"op","args"}/{"term": i}, its terms with contexts as job ids).
    `resolve(context)` gives a job id, or None for a context that names no job (the term
    can then never happen)."""
    terms: list[dict[str, Any]] = []

    def walk(node: Mapping[str, Any]) -> dict[str, Any]:
        if "op" in node:
            return {"op": node["op"], "args": [walk(arg) for arg in node["args"]]}
        terms.append(
            {
                "name": node["name"],
                "type": node["type"],
                "context_job": resolve(node["context"]),
                "extra": node.get("extra"),
            }
        )
        return {"term": len(terms) - 1}

    return walk(tree), terms


def attach_callbacks(
    ctx: TickContext, job_id: int, attachments: Iterable[Mapping[str, Any]]
) -> None:
    for item in attachments:
        cursor = ctx.conn.execute(
            "INSERT OR IGNORE INTO job_callbacks (job_id, callback_id, compiled) VALUES (?, ?, ?)",
            (job_id, item["callback_id"], json.dumps(item["compiled"], separators=(",", ":"))),
        )
        if not cursor.rowcount:
            continue
        attached_id = cursor.lastrowid
        for index, term in enumerate(item["terms"]):
            ctx.conn.execute(
                "INSERT INTO callback_terms (job_callback_id, term, name, type, context_job, "
                "extra) VALUES (?, ?, ?, ?, ?, ?)",
                (
                    attached_id,
                    index,
                    term["name"],
                    term["type"],
                    term["context_job"],
                    term.get("extra"),
                ),
            )


# --- results ---------------------------------------------------------------------------


def record_result(ctx: TickContext, payload: Mapping[str, Any]) -> bool:
    """A run's result, once: a second report for the same key (a run repeated after a
    daemon restart) changes nothing. True when this one was recorded."""
    row = ctx.conn.execute(
        "SELECT * FROM callback_runs WHERE key = ?", (payload["key"],)
    ).fetchone()
    if row is None or row["status"] != "pending":
        return False
    ctx.conn.execute(
        "UPDATE callback_runs SET status = ?, attempts = attempts + 1, exit_code = ?, "
        "duration = ?, output_tail = ?, finished = ? WHERE key = ?",
        (
            payload["status"],
            payload.get("exit_code"),
            payload.get("duration"),
            payload.get("output_tail"),
            ctx.now,
            payload["key"],
        ),
    )
    path = ctx.conn.execute(
        "SELECT path FROM callbacks WHERE id = ?", (row["callback_id"],)
    ).fetchone()[0]
    code = payload.get("exit_code")
    ctx.history(
        row["job_id"],
        "callback",
        reason=f"{path} on {row['trigger']}: {payload['status']}"
        + ("" if code is None else f" (exit {code})"),
    )
    return True


# --- the API's half --------------------------------------------------------------------


def _resolver(conn: sqlite3.Connection, job_id: int, user: str, env: Mapping[str, str]) -> Any:
    def resolve(context: str) -> int | None:
        if context == "self":
            return job_id
        if context == "parent":  # the job whose command submitted this one
            context = env.get("TOCK_JOBID", "")
            if not context.isdigit():
                return None
        if context.isdigit():
            row = conn.execute("SELECT id FROM jobs WHERE id = ?", (int(context),)).fetchone()
            return None if row is None else int(row[0])
        row = conn.execute(
            "SELECT max(id) FROM jobs WHERE user = ? AND name = ? AND deleted = 0",
            (user, context),
        ).fetchone()
        return None if row is None or row[0] is None else int(row[0])

    return resolve


def attachments_for(
    conn: sqlite3.Connection,
    job_id: int,
    user: str,
    env: Mapping[str, str],
    per_job: Iterable[tuple[str, str]],
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(attachments, the job's own callback definitions): every live universal callback,
    then each `--callback TRIGGER=PATH`. Raises TockError for a bad --callback."""
    from pathlib import Path

    from engine.calendar_store import allocate
    from engine.callback_dirs import check_callback_file
    from engine.callbacks_conf import LANGUAGES, parse_trigger, to_json
    from engine.errors import TockError

    resolve = _resolver(conn, job_id, user, env)
    attachments: list[dict[str, Any]] = []
    for row in live_universal(conn):
        compiled, terms = compile_attachment(json.loads(row["compiled"]), resolve)
        attachments.append({"callback_id": row["id"], "compiled": compiled, "terms": terms})
    defs: list[dict[str, Any]] = []
    for trigger_text, path_text in per_job:
        parsed = parse_trigger(trigger_text, "--callback")
        if parsed.tree is None or parsed.diagnostics:
            raise TockError(str(parsed.diagnostics[0]))
        path = Path(path_text)
        if not path.is_absolute():
            raise TockError(f"--callback {path_text}: give an absolute path")
        language = LANGUAGES.get(path.suffix)
        if language is None:
            raise TockError(f"--callback {path_text}: the extension must be .py, .pl, .qcb or .sh")
        refused = check_callback_file(path.parent, path.name)
        if refused is not None:
            raise TockError(f"--callback {path_text}: {refused}")
        from engine.callbacks_conf import format_trigger

        cdef = CallbackDef(
            allocate(conn, "callback"),
            "job",
            str(path),
            language,
            format_trigger(parsed.tree),
            to_json(parsed.tree),
            "--callback",
        )
        defs.append(cdef.payload())
        compiled, terms = compile_attachment(cdef.tree, resolve)
        attachments.append({"callback_id": cdef.id, "compiled": compiled, "terms": terms})
    return attachments, defs
