-- File events (docs/files.md). Every table and column is in docs/schema.md.

-- One `file(...)` clause of one owner is one event: its identity and status are the
-- `events` row (kind 'file'); this row is the tick's state for it. A clause that cannot
-- be watched (a relative path, an unknown function, another host) is kept with `compiled`
-- NULL and the reason, so its jobs are accepted and pend with that reason.
CREATE TABLE file_events (
    event_id    INTEGER PRIMARY KEY REFERENCES events (id),
    expression  TEXT    NOT NULL,
    compiled    TEXT    CHECK (compiled IS NULL OR json_valid(compiled)),
    reason      TEXT,
    edge        INTEGER NOT NULL CHECK (edge IN (0, 1)),
    value       INTEGER NOT NULL DEFAULT 0 CHECK (value IN (0, 1)),
    fired       INTEGER NOT NULL DEFAULT 0 CHECK (fired >= 0),
    fired_at    REAL,
    next_check  REAL,
    created     REAL    NOT NULL,
    removed     REAL,
    journal_id  INTEGER NOT NULL,
    CHECK ((compiled IS NULL) = (reason IS NOT NULL))
) STRICT;

-- The tick's "which clauses reach an age() or stable() threshold now" lookup.
CREATE INDEX file_events_due ON file_events (next_check)
    WHERE removed IS NULL AND next_check IS NOT NULL;

-- The paths each clause reads, with its pending arrivals.
CREATE TABLE file_event_paths (
    event_id  INTEGER NOT NULL REFERENCES file_events (event_id),
    path      TEXT    NOT NULL,
    armed     INTEGER NOT NULL DEFAULT 0 CHECK (armed IN (0, 1)),
    PRIMARY KEY (event_id, path)
) STRICT, WITHOUT ROWID;

CREATE INDEX file_event_paths_path ON file_event_paths (path);

-- The last observation of every path a live clause reads: what the watcher saw, as the
-- `file_observed` journal rows (and submit snapshots) told the tick.
CREATE TABLE file_paths (
    path        TEXT    PRIMARY KEY,
    present     INTEGER NOT NULL CHECK (present IN (0, 1)),
    size        INTEGER NOT NULL,
    mtime       REAL    NOT NULL,
    inode       INTEGER NOT NULL DEFAULT 0,
    changed     REAL    NOT NULL,
    observed    REAL    NOT NULL,
    journal_id  INTEGER NOT NULL
) STRICT, WITHOUT ROWID;

-- Which file events a job waits on, and how many firings of each it has had: an arrival
-- clause's firing is owed to a job while `used` is below the event's `fired`.
CREATE TABLE job_file_events (
    job_id    INTEGER NOT NULL REFERENCES jobs (id),
    event_id  INTEGER NOT NULL REFERENCES events (id),
    used      INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (job_id, event_id)
) STRICT, WITHOUT ROWID;

CREATE INDEX job_file_events_event ON job_file_events (event_id);

-- Bumped whenever the set of watched paths changes, so the daemon re-reads it only then.
ALTER TABLE tick_state ADD COLUMN file_generation INTEGER NOT NULL DEFAULT 0;

CREATE VIEW v_file_events AS
SELECT
    f.event_id AS id,
    e.canonical AS event,
    e.owner,
    e.status,
    CASE WHEN f.edge = 1 THEN 'arrival' ELSE 'level' END AS kind,
    f.fired,
    strftime('%Y-%m-%dT%H:%M:%S', f.fired_at, 'unixepoch', 'localtime') AS fired_at,
    strftime('%Y-%m-%dT%H:%M:%S', f.next_check, 'unixepoch', 'localtime') AS next_check,
    f.reason,
    (SELECT json_group_array(p.path) FROM file_event_paths AS p
      WHERE p.event_id = f.event_id) AS paths,
    (SELECT count(*) FROM job_file_events AS l JOIN jobs AS j ON j.id = l.job_id
      WHERE l.event_id = f.event_id AND j.state IN ('PEND', 'PSUSP', 'RUN')) AS dependent_jobs
FROM file_events AS f JOIN events AS e ON e.id = f.event_id
WHERE f.removed IS NULL;
