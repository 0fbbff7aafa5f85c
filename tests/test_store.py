"""Opening databases: pragmas, migrations, and clear errors for files we cannot use."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from engine.resources import resource_dir
from engine.store import StoreError, migrations, open_db, statements, write


def test_pragmas_for_a_durable_single_writer(db_path: Path) -> None:
    conn = open_db(db_path)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    assert conn.execute("PRAGMA foreign_keys").fetchone()[0] == 1
    assert conn.execute("PRAGMA busy_timeout").fetchone()[0] == 5000


def test_every_table_is_strict(db_path: Path) -> None:
    conn = open_db(db_path)
    tables = conn.execute(
        "SELECT name, sql FROM sqlite_master WHERE type = 'table' AND name != 'sqlite_sequence'"
    ).fetchall()
    assert len(tables) >= 10
    for name, sql in tables:
        options = sql.rstrip().rsplit(")", 1)[1]
        assert "STRICT" in options, name


def test_migrations_are_recorded_and_applied_once(db_path: Path) -> None:
    known = len(migrations(resource_dir("migrations")))
    conn = open_db(db_path)
    assert conn.execute("SELECT max(version) FROM schema_migrations").fetchone()[0] == known
    assert conn.execute("PRAGMA user_version").fetchone()[0] == known
    conn.close()
    again = open_db(db_path)
    assert again.execute("SELECT count(*) FROM schema_migrations").fetchone()[0] == known


def test_the_journal_is_append_only(db_path: Path) -> None:
    conn = open_db(db_path)
    with write(conn):
        conn.execute("INSERT INTO journal (time, kind, user) VALUES (1, 'clock', 'x')")
    with pytest.raises(sqlite3.IntegrityError, match="append-only"), write(conn):
        conn.execute("UPDATE journal SET kind = 'kill'")
    with pytest.raises(sqlite3.IntegrityError, match="append-only"), write(conn):
        conn.execute("DELETE FROM journal")
    assert conn.execute("SELECT count(*) FROM journal").fetchone()[0] == 1


def test_a_run_can_be_claimed_only_once(db_path: Path) -> None:
    conn = open_db(db_path)
    insert = "INSERT INTO journal (time, kind, user, run_id) VALUES (1, 'run_started', 'x', 7)"
    conn.execute(insert)
    with pytest.raises(sqlite3.IntegrityError):
        conn.execute(insert)


def test_a_file_that_is_not_a_database(tmp_path: Path) -> None:
    path = tmp_path / "junk.db"
    path.write_bytes(b"\x00garbage" * 512)
    with pytest.raises(StoreError) as caught:
        open_db(path)
    assert str(caught.value) == f"{path}: not a usable Tock database (file is not a database)"


def test_somebody_elses_database_is_left_alone(tmp_path: Path) -> None:
    path = tmp_path / "other.db"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE customers (id INTEGER)")
    conn.commit()
    conn.close()
    with pytest.raises(StoreError, match="not a Tock database"):
        open_db(path)


def test_a_newer_schema_is_refused(db_path: Path) -> None:
    conn = open_db(db_path)
    conn.execute("INSERT INTO schema_migrations VALUES (999, 'future', 0)")
    conn.close()
    with pytest.raises(StoreError, match="schema version 999 is newer"):
        open_db(db_path)


def test_a_locked_database_is_reported_not_raised_raw(db_path: Path) -> None:
    open_db(db_path).close()
    holder = sqlite3.connect(db_path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    conn = open_db(db_path, busy_timeout_ms=50)
    from engine.api import Tock

    api = Tock(db_path)
    api._conn = conn  # the same database, with a short busy timeout
    with pytest.raises(StoreError) as caught:
        api.submit("true", env={})
    assert str(caught.value) == f"{db_path}: database is locked by another process; try again"
    holder.execute("ROLLBACK")
    assert api.submit("true", env={}) == 1  # nothing was half-done


def test_migrations_must_be_numbered_without_gaps(tmp_path: Path) -> None:
    (tmp_path / "001_a.sql").write_text("")
    (tmp_path / "003_c.sql").write_text("")
    with pytest.raises(RuntimeError, match="not numbered"):
        migrations(tmp_path)


def test_processes_opening_a_new_database_at_once_all_succeed(tmp_path: Path) -> None:
    """A daemon and a first `tock submit` often create the database together."""
    opener = "import sys; from pathlib import Path; from engine.store import open_db;"
    opener += "open_db(Path(sys.argv[1])).close()"
    for trial in range(8):
        db = tmp_path / f"new{trial}.db"
        openers = [
            subprocess.Popen([sys.executable, "-c", opener, str(db)], stderr=subprocess.PIPE)
            for _ in range(6)
        ]
        errors = [process.communicate()[1].decode() for process in openers]
        assert [process.returncode for process in openers] == [0] * 6, errors
        conn = open_db(db)
        assert conn.execute("SELECT count(*) FROM schema_migrations").fetchone()[0] == len(
            migrations(resource_dir("migrations"))
        )


def test_migration_files_split_into_whole_statements() -> None:
    sql = "-- a comment\nCREATE TABLE a (x);\n\nCREATE TRIGGER t BEFORE DELETE ON a\nBEGIN\n"
    sql += "    SELECT RAISE(ABORT, 'no');\nEND;\n"
    assert list(statements(sql)) == [
        "CREATE TABLE a (x);",
        "CREATE TRIGGER t BEFORE DELETE ON a\nBEGIN\n    SELECT RAISE(ABORT, 'no');\nEND;",
    ]
