"""Runs when a job fails: one row per failure in failures.db (SQLite), beside this file."""

import sqlite3
import time

import qb

(job,) = qb.jobinfo("-id", qb.jobid())
db = sqlite3.connect("failures.db")
with db:
    db.execute(
        "CREATE TABLE IF NOT EXISTS failures (job_id INTEGER, name TEXT, user TEXT, "
        "exit_code INTEGER, trigger TEXT, logged REAL)"
    )
    db.execute(
        "INSERT INTO failures VALUES (?, ?, ?, ?, ?, ?)",
        (job["id"], job["name"], job["user"], job["exit_code"], qb.trigger(), time.time()),
    )
db.close()
