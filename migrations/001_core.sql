-- Tock core schema. Every table and column is described in docs/schema.md.
-- Times are REAL seconds since the Unix epoch (UTC); views show them as local ISO text.

-- Every input, in arrival order. Append-only: triggers below refuse UPDATE and DELETE.
CREATE TABLE journal (
    id       INTEGER PRIMARY KEY AUTOINCREMENT,
    time     REAL    NOT NULL,
    kind     TEXT    NOT NULL,
    user     TEXT    NOT NULL,
    job_id   INTEGER,
    run_id   INTEGER,
    payload  TEXT    NOT NULL DEFAULT '{}' CHECK (json_valid(payload))
) STRICT;

-- A run is started, finished and lost at most once: the wrapper's start row is the claim
-- that makes a second wrapper for the same run give up.
CREATE UNIQUE INDEX journal_run_once ON journal (run_id, kind)
    WHERE kind IN ('run_started', 'run_finished', 'run_lost');
CREATE INDEX journal_job ON journal (job_id) WHERE job_id IS NOT NULL;
CREATE INDEX journal_run ON journal (run_id) WHERE run_id IS NOT NULL;

CREATE TRIGGER journal_no_update BEFORE UPDATE ON journal
BEGIN
    SELECT RAISE(ABORT, 'the journal is append-only');
END;

CREATE TRIGGER journal_no_delete BEFORE DELETE ON journal
BEGIN
    SELECT RAISE(ABORT, 'the journal is append-only');
END;

-- The tick's own position: one row.
CREATE TABLE tick_state (
    id              INTEGER PRIMARY KEY CHECK (id = 1),
    journal_cursor  INTEGER NOT NULL DEFAULT 0,
    now             REAL    NOT NULL DEFAULT 0,
    ticks           INTEGER NOT NULL DEFAULT 0,
    max_running     INTEGER NOT NULL DEFAULT 1 CHECK (max_running >= 1),
    orphan_grace    REAL,
    admins          TEXT    NOT NULL DEFAULT '[]' CHECK (json_valid(admins))
) STRICT;
INSERT INTO tick_state (id) VALUES (1);

-- Number sequences handed out at submit time (job ids), so the CLI can print the id at once.
CREATE TABLE counters (
    name   TEXT    PRIMARY KEY,
    value  INTEGER NOT NULL
) STRICT;
INSERT INTO counters (name, value) VALUES ('job', 0);

CREATE TABLE jobs (
    id                INTEGER PRIMARY KEY,
    name              TEXT    NOT NULL,
    user              TEXT    NOT NULL,
    command           TEXT    NOT NULL,
    cwd               TEXT    NOT NULL,
    env               TEXT    NOT NULL DEFAULT '{}' CHECK (json_valid(env)),
    stdout_path       TEXT    NOT NULL,
    stderr_path       TEXT    NOT NULL,
    condition         TEXT,
    state             TEXT    NOT NULL CHECK (state IN ('PEND', 'PSUSP', 'RUN', 'DONE', 'EXIT')),
    dep_value         TEXT    CHECK (dep_value IN ('true', 'false', 'invalid', 'reject')),
    ready             INTEGER NOT NULL DEFAULT 0 CHECK (ready IN (0, 1)),
    pending_reason    TEXT,
    terminate_orphan  INTEGER NOT NULL DEFAULT 0 CHECK (terminate_orphan IN (0, 1)),
    invalid_since     REAL,
    exit_code         INTEGER,
    term_signal       INTEGER,
    exit_reason       TEXT,
    kill_requested_by TEXT,
    submit_time       REAL    NOT NULL,
    start_time        REAL,
    end_time          REAL,
    run_count         INTEGER NOT NULL DEFAULT 0,
    current_run       INTEGER,
    deleted           INTEGER NOT NULL DEFAULT 0 CHECK (deleted IN (0, 1)),
    journal_id        INTEGER NOT NULL
) STRICT;

CREATE INDEX jobs_user_name ON jobs (user, name, id);
-- Serves both "how many run" and "the oldest ready pending jobs" without touching the rest.
CREATE INDEX jobs_state ON jobs (state, ready, id);
-- Set only while a pending job's condition is invalid, so it holds just the orphans.
CREATE INDEX jobs_orphans ON jobs (invalid_since) WHERE invalid_since IS NOT NULL;

CREATE TABLE job_runs (
    id             INTEGER PRIMARY KEY,
    job_id         INTEGER NOT NULL REFERENCES jobs (id),
    run_no         INTEGER NOT NULL,
    status         TEXT    NOT NULL
                   CHECK (status IN ('dispatched', 'running', 'done', 'exit', 'lost', 'cancelled')),
    dispatch_time  REAL    NOT NULL,
    start_time     REAL,
    end_time       REAL,
    pid            INTEGER,
    pid_start      INTEGER,
    host           TEXT,
    exit_code      INTEGER,
    term_signal    INTEGER,
    reason         TEXT,
    UNIQUE (job_id, run_no)
) STRICT;

CREATE INDEX job_runs_status ON job_runs (status);

-- One row per distinct external condition atom (calendar, file or user event).
CREATE TABLE events (
    id           INTEGER PRIMARY KEY,
    kind         TEXT    NOT NULL CHECK (kind IN ('calendar', 'file', 'user')),
    canonical    TEXT    NOT NULL,
    owner        TEXT    NOT NULL,
    status       TEXT    NOT NULL DEFAULT 'inactive'
                 CHECK (status IN ('active', 'inactive', 'invalid', 'reject')),
    attribute    TEXT,
    last_update  REAL    NOT NULL,
    UNIQUE (kind, canonical, owner)
) STRICT;

-- A job's dependency condition, compiled at submit or modify time.
CREATE TABLE rules (
    id            INTEGER PRIMARY KEY,
    job_id        INTEGER NOT NULL UNIQUE REFERENCES jobs (id) ON DELETE CASCADE,
    source        TEXT    NOT NULL,
    source_hash   TEXT    NOT NULL,
    value         TEXT    CHECK (value IN ('true', 'false', 'invalid', 'reject')),
    evaluated_at  REAL
) STRICT;

CREATE TABLE rule_nodes (
    id          INTEGER PRIMARY KEY,
    rule_id     INTEGER NOT NULL REFERENCES rules (id) ON DELETE CASCADE,
    parent_id   INTEGER REFERENCES rule_nodes (id) ON DELETE CASCADE,
    position    INTEGER NOT NULL,
    op          TEXT    NOT NULL CHECK (op IN ('AND', 'OR', 'NOT', 'LEAF')),
    text        TEXT    NOT NULL,
    pred        TEXT    CHECK (pred IN ('started', 'done', 'exit', 'ended')),
    ref_job_id  INTEGER REFERENCES jobs (id),
    exit_op     TEXT    CHECK (exit_op IN ('>', '>=', '<', '<=', '==', '!=')),
    exit_code   INTEGER,
    event_id    INTEGER REFERENCES events (id),
    CHECK ((op = 'LEAF') = (ref_job_id IS NOT NULL OR event_id IS NOT NULL))
) STRICT;

CREATE INDEX rule_nodes_rule ON rule_nodes (rule_id);
-- Without it, deleting a rule checks the parent_id foreign key by scanning every node.
CREATE INDEX rule_nodes_parent ON rule_nodes (parent_id);
CREATE INDEX rule_nodes_job ON rule_nodes (ref_job_id) WHERE ref_job_id IS NOT NULL;
CREATE INDEX rule_nodes_event ON rule_nodes (event_id) WHERE event_id IS NOT NULL;

-- The outbox: side effects decided by a tick, carried out after its commit.
CREATE TABLE actions (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    created        REAL    NOT NULL,
    journal_id     INTEGER NOT NULL,
    kind           TEXT    NOT NULL CHECK (kind IN ('start', 'signal')),
    job_id         INTEGER NOT NULL REFERENCES jobs (id),
    run_id         INTEGER NOT NULL REFERENCES job_runs (id),
    payload        TEXT    NOT NULL DEFAULT '{}' CHECK (json_valid(payload)),
    status         TEXT    NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'done', 'failed')),
    dispatched_at  REAL,
    result         TEXT
) STRICT;

CREATE INDEX actions_pending ON actions (id) WHERE status = 'pending';

-- Every state change of every job, with its reason: what `tock hist` prints.
CREATE TABLE history (
    id          INTEGER PRIMARY KEY,
    time        REAL    NOT NULL,
    job_id      INTEGER NOT NULL REFERENCES jobs (id),
    run_id      INTEGER,
    journal_id  INTEGER NOT NULL,
    event       TEXT    NOT NULL,
    from_state  TEXT,
    to_state    TEXT,
    user        TEXT,
    reason      TEXT
) STRICT;

CREATE INDEX history_job ON history (job_id, id);

-- Journal rows the tick could not apply (a bug, never a user's input): kept, skipped, shown.
CREATE TABLE tick_errors (
    id          INTEGER PRIMARY KEY,
    time        REAL    NOT NULL,
    journal_id  INTEGER NOT NULL,
    message     TEXT    NOT NULL
) STRICT;

-- Views for people reading the file with sqlite3 or sqlite-utils.
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
    strftime('%Y-%m-%dT%H:%M:%S', j.submit_time, 'unixepoch', 'localtime') AS submit_time,
    strftime('%Y-%m-%dT%H:%M:%S', j.start_time, 'unixepoch', 'localtime') AS start_time,
    strftime('%Y-%m-%dT%H:%M:%S', j.end_time, 'unixepoch', 'localtime') AS end_time,
    j.deleted
FROM jobs AS j;

CREATE VIEW v_events AS
SELECT
    e.id,
    e.canonical AS event,
    e.owner,
    e.status,
    e.kind AS source,
    e.attribute,
    strftime('%Y-%m-%dT%H:%M:%S', e.last_update, 'unixepoch', 'localtime') AS last_update,
    (SELECT count(DISTINCT r.job_id)
       FROM rule_nodes AS n JOIN rules AS r ON r.id = n.rule_id
      WHERE n.event_id = e.id) AS dependent_jobs
FROM events AS e;

CREATE VIEW v_pending AS
SELECT
    j.id,
    j.name,
    j.user,
    j.state,
    j.condition,
    j.dep_value,
    j.pending_reason,
    strftime('%Y-%m-%dT%H:%M:%S', j.submit_time, 'unixepoch', 'localtime') AS submit_time,
    strftime('%Y-%m-%dT%H:%M:%S', j.invalid_since, 'unixepoch', 'localtime') AS invalid_since,
    strftime('%Y-%m-%dT%H:%M:%S', j.invalid_since + t.orphan_grace, 'unixepoch', 'localtime')
        AS terminate_at
FROM jobs AS j, tick_state AS t
WHERE j.state IN ('PEND', 'PSUSP') AND j.deleted = 0;
