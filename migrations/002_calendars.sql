-- Calendars and time events (docs/calendars.md). Every table and column is in docs/schema.md.

-- A calendar: named (kind user or system) or written inline in one job's condition
-- (anonymous). Its definition is set by journal rows; the columns after `journal_id` are the
-- tick's bookkeeping, derived from the definition and `now`.
CREATE TABLE calendars (
    id             INTEGER PRIMARY KEY,
    name           TEXT    NOT NULL,
    owner          TEXT    NOT NULL,
    kind           TEXT    NOT NULL CHECK (kind IN ('user', 'system', 'anonymous')),
    job_id         INTEGER REFERENCES jobs (id),
    event_id       INTEGER NOT NULL UNIQUE REFERENCES events (id),
    description    TEXT    NOT NULL DEFAULT '',
    expression     TEXT    NOT NULL,
    compiled       TEXT    NOT NULL CHECK (json_valid(compiled)),
    timezone       TEXT    NOT NULL,
    created        REAL    NOT NULL,
    modified       REAL    NOT NULL,
    deleted        INTEGER NOT NULL DEFAULT 0 CHECK (deleted IN (0, 1)),
    journal_id     INTEGER NOT NULL,
    horizon        REAL,
    checked_at     REAL,
    next_change    REAL,
    current_start  REAL,
    current_end    REAL,
    CHECK ((kind = 'anonymous') = (job_id IS NOT NULL))
) STRICT;

-- Names are case-sensitive and unique per owner among live named calendars.
CREATE UNIQUE INDEX calendars_name ON calendars (owner, name)
    WHERE deleted = 0 AND kind != 'anonymous';
-- The tick's "which calendars have a boundary due" lookup.
CREATE INDEX calendars_due ON calendars (next_change) WHERE deleted = 0;
CREATE INDEX calendars_job ON calendars (job_id) WHERE job_id IS NOT NULL;

-- Materialised time events, in UTC, for a rolling horizon (see calendars.horizon).
CREATE TABLE calendar_instances (
    calendar_id  INTEGER NOT NULL REFERENCES calendars (id) ON DELETE CASCADE,
    start        REAL    NOT NULL,
    end          REAL    NOT NULL CHECK (end > start),
    PRIMARY KEY (calendar_id, start)
) STRICT, WITHOUT ROWID;

-- Who created, modified and deleted which named calendar (what `tock cal hist` prints).
CREATE TABLE calendar_history (
    id           INTEGER PRIMARY KEY,
    time         REAL    NOT NULL,
    calendar_id  INTEGER NOT NULL REFERENCES calendars (id),
    journal_id   INTEGER NOT NULL,
    action       TEXT    NOT NULL CHECK (action IN ('created', 'modified', 'deleted', 'refused')),
    user         TEXT    NOT NULL,
    expression   TEXT,
    description  TEXT,
    timezone     TEXT,
    reason       TEXT
) STRICT;

CREATE INDEX calendar_history_calendar ON calendar_history (calendar_id, id);

-- Which time events a job has used: at most one run per calendar instance.
CREATE TABLE job_calendars (
    job_id      INTEGER NOT NULL REFERENCES jobs (id),
    event_id    INTEGER NOT NULL REFERENCES events (id),
    since       REAL    NOT NULL,
    used_until  REAL,
    PRIMARY KEY (job_id, event_id)
) STRICT, WITHOUT ROWID;

CREATE INDEX job_calendars_event ON job_calendars (event_id);

ALTER TABLE jobs ADD COLUMN repetitive INTEGER NOT NULL DEFAULT 0 CHECK (repetitive IN (0, 1));
ALTER TABLE jobs ADD COLUMN catchup TEXT NOT NULL DEFAULT 'none'
    CHECK (catchup IN ('none', 'once', 'all'));
ALTER TABLE jobs ADD COLUMN runs_left INTEGER CHECK (runs_left >= 0);
ALTER TABLE jobs ADD COLUMN last_start REAL;
ALTER TABLE jobs ADD COLUMN last_end REAL;
ALTER TABLE jobs ADD COLUMN last_ok INTEGER CHECK (last_ok IN (0, 1));

INSERT INTO counters (name, value) VALUES ('calendar', 0), ('event', 0);

DROP VIEW v_jobs;
CREATE VIEW v_jobs AS
SELECT
    j.id,
    j.name,
    j.user,
    j.state,
    j.exit_code,
    j.command,
    j.condition,
    j.dep_value,
    CASE WHEN j.state IN ('PEND', 'PSUSP') THEN j.pending_reason END AS pending_reason,
    j.exit_reason,
    j.run_count,
    j.repetitive,
    strftime('%Y-%m-%dT%H:%M:%S', j.submit_time, 'unixepoch', 'localtime') AS submit_time,
    strftime('%Y-%m-%dT%H:%M:%S', j.start_time, 'unixepoch', 'localtime') AS start_time,
    strftime('%Y-%m-%dT%H:%M:%S', j.end_time, 'unixepoch', 'localtime') AS end_time,
    strftime('%Y-%m-%dT%H:%M:%S', j.last_end, 'unixepoch', 'localtime') AS last_end,
    j.deleted
FROM jobs AS j;

CREATE VIEW v_calendars AS
SELECT
    c.id,
    c.name,
    c.owner,
    c.kind,
    e.status,
    c.expression,
    c.timezone,
    c.description,
    strftime('%Y-%m-%dT%H:%M:%S', c.current_start, 'unixepoch', 'localtime') AS current_start,
    strftime('%Y-%m-%dT%H:%M:%S', c.current_end, 'unixepoch', 'localtime') AS current_end,
    strftime('%Y-%m-%dT%H:%M:%S',
             (SELECT min(i.start) FROM calendar_instances AS i
               WHERE i.calendar_id = c.id AND i.start > coalesce(c.checked_at, 0)),
             'unixepoch', 'localtime') AS next_start,
    (SELECT count(DISTINCT jc.job_id) FROM job_calendars AS jc
       JOIN jobs AS j ON j.id = jc.job_id
      WHERE jc.event_id = c.event_id AND j.state IN ('PEND', 'PSUSP', 'RUN')) AS dependent_jobs
FROM calendars AS c JOIN events AS e ON e.id = c.event_id
WHERE c.deleted = 0;
