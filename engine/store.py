"""Opening the database: pragmas, migrations, and the one way to write.

This module imports only the standard library: the job wrapper uses it from a bare
`python -S`. Every write goes through `write(conn)`, which is `BEGIN IMMEDIATE`, so a
reader never upgrades into SQLITE_BUSY halfway through a transaction.
"""

from __future__ import annotations

import contextlib
import re
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

from engine.errors import TockError

BUSY_TIMEOUT_MS = 5000

_NOW_SQL = "(julianday('now') - 2440587.5) * 86400.0"  # unixepoch('subsec') needs SQLite 3.42
_MIGRATION_NAME = re.compile(r"^(\d{3})_[a-z0-9_]+\.sql$")


class StoreError(TockError):
    """The database cannot be used: corrupt, locked, too new, not Tock's."""


def _explain(path: Path, exc: sqlite3.Error) -> StoreError:
    text = str(exc)
    if "locked" in text or "busy" in text:
        return StoreError(f"{path}: database is locked by another process; try again")
    if "not a database" in text or "malformed" in text or "corrupt" in text:
        return StoreError(f"{path}: not a usable Tock database ({text})")
    if "unable to open" in text or "readonly" in text:
        return StoreError(f"{path}: cannot open database ({text})")
    return StoreError(f"{path}: {text}")


@contextlib.contextmanager
def translated_errors(path: Path) -> Iterator[None]:
    """Turn SQLite's operational errors into one-line StoreErrors naming the file."""
    try:
        yield
    except (sqlite3.OperationalError, sqlite3.DatabaseError) as exc:
        if isinstance(exc, sqlite3.IntegrityError):
            raise
        raise _explain(path, exc) from None


def _switch_to_wal(conn: sqlite3.Connection, busy_timeout_ms: int) -> None:
    """WAL is a property of the file, set once by whoever creates it. Two processes opening
    a new file at the same moment can have the switch refused at once (busy, without the
    busy handler), so it is retried here for as long as the busy timeout allows."""
    deadline = time.monotonic() + busy_timeout_ms / 1000
    while True:
        try:
            mode = str(conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]).lower()
        except sqlite3.OperationalError as exc:
            if ("locked" not in str(exc) and "busy" not in str(exc)) or (
                time.monotonic() > deadline
            ):
                raise
            time.sleep(0.005)
            continue
        if mode != "wal":
            raise sqlite3.OperationalError(f"cannot switch to WAL (journal_mode is {mode})")
        return


def _configure(conn: sqlite3.Connection, busy_timeout_ms: int) -> None:
    conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
    if str(conn.execute("PRAGMA journal_mode").fetchone()[0]).lower() != "wal":
        _switch_to_wal(conn, busy_timeout_ms)
    conn.execute("PRAGMA synchronous = FULL")
    conn.execute("PRAGMA foreign_keys = ON")
    conn.execute("PRAGMA journal_size_limit = 67108864")


def raw_connect(path: Path, busy_timeout_ms: int = BUSY_TIMEOUT_MS) -> sqlite3.Connection:
    """A configured connection in autocommit mode; no schema check (the wrapper's use)."""
    conn = sqlite3.connect(str(path), timeout=busy_timeout_ms / 1000, isolation_level=None)
    conn.row_factory = sqlite3.Row
    _configure(conn, busy_timeout_ms)
    return conn


@contextlib.contextmanager
def write(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """One write transaction: BEGIN IMMEDIATE ... COMMIT, rolled back on any exception."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


def migrations(directory: Path) -> list[tuple[int, str, Path]]:
    found = []
    for path in sorted(directory.iterdir()):
        match = _MIGRATION_NAME.match(path.name)
        if match:
            found.append((int(match.group(1)), path.stem, path))
    versions = [v for v, _, _ in found]
    if versions != list(range(1, len(versions) + 1)):
        raise RuntimeError(f"migrations in {directory} are not numbered 001, 002, ...")
    return found


def schema_version(conn: sqlite3.Connection) -> int | None:
    """The applied version, 0 for an empty database, None for somebody else's database."""
    tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    if "schema_migrations" in tables:
        return int(conn.execute("SELECT max(version) FROM schema_migrations").fetchone()[0] or 0)
    if tables - {"sqlite_sequence"}:
        return None
    return 0


def statements(sql: str) -> Iterator[str]:
    """The statements of a migration file, one at a time (trigger bodies stay whole)."""
    buffer = ""
    for line in sql.splitlines(keepends=True):
        if not buffer and (not line.strip() or line.lstrip().startswith("--")):
            continue
        buffer += line
        if sqlite3.complete_statement(buffer):
            yield buffer.strip()
            buffer = ""
    if buffer.strip():
        raise RuntimeError(f"incomplete SQL statement at the end of a migration: {buffer!r}")


def migrate(conn: sqlite3.Connection, path: Path, directory: Path) -> int:
    """Apply the migrations this database lacks, all in one transaction.

    The version check and the migrations share the transaction, so processes opening a new
    database at the same moment (a daemon and a first `tock submit`) serialise: the second
    one finds the schema complete.
    """
    known = migrations(directory)
    with write(conn):
        current = schema_version(conn)
        if current is None:
            raise StoreError(f"{path}: not a Tock database (it holds other tables)")
        if current > len(known):
            raise StoreError(
                f"{path}: schema version {current} is newer than this Tock ({len(known)}); "
                "upgrade Tock"
            )
        if current == 0:
            conn.execute(
                "CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, "
                "name TEXT NOT NULL, applied_at REAL NOT NULL) STRICT"
            )
        for version, name, file in known[current:]:
            for statement in statements(file.read_text(encoding="utf-8")):
                conn.execute(statement)
            conn.execute(
                f"INSERT INTO schema_migrations VALUES (?, ?, {_NOW_SQL})", (version, name)
            )
            conn.execute(f"PRAGMA user_version = {version}")
    return len(known)


def open_db(
    path: Path, *, create: bool = True, busy_timeout_ms: int = BUSY_TIMEOUT_MS
) -> sqlite3.Connection:
    """Open (and if needed create and migrate) a Tock database."""
    from engine.resources import resource_dir

    if not create and not path.exists():
        raise StoreError(f"{path}: no such database")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StoreError(f"{path}: cannot create its directory: {exc.strerror}") from None
    with translated_errors(path):
        conn = raw_connect(path, busy_timeout_ms)
        try:
            known = len(migrations(resource_dir("migrations")))
            current = schema_version(conn)
            if current != known:
                migrate(conn, path, resource_dir("migrations"))
        except BaseException:
            conn.close()
            raise
    return conn
