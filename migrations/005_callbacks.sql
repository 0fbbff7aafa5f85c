-- Callbacks (docs/callbacks.md). Every table and column is in docs/schema.md.

-- A callback definition: a line of a callbacks.conf (universal) or a `--callback` of one
-- submission (job). Definitions are never changed: a reloaded callbacks.conf retires the
-- rows it no longer holds and adds new ones, and jobs keep those they were submitted with.
CREATE TABLE callbacks (
    id          INTEGER PRIMARY KEY,
    scope       TEXT    NOT NULL CHECK (scope IN ('universal', 'job')),
    path        TEXT    NOT NULL,
    language    TEXT    NOT NULL CHECK (language IN ('python', 'perl', 'qcb', 'shell')),
    trigger     TEXT    NOT NULL,
    compiled    TEXT    NOT NULL CHECK (json_valid(compiled)),
    source      TEXT    NOT NULL,
    created     REAL    NOT NULL,
    retired     REAL,
    journal_id  INTEGER NOT NULL
) STRICT;

CREATE INDEX callbacks_live ON callbacks (id) WHERE scope = 'universal' AND retired IS NULL;

-- A callback attached to a job, with its trigger's contexts resolved to job ids.
CREATE TABLE job_callbacks (
    id           INTEGER PRIMARY KEY,
    job_id       INTEGER NOT NULL REFERENCES jobs (id),
    callback_id  INTEGER NOT NULL REFERENCES callbacks (id),
    compiled     TEXT    NOT NULL CHECK (json_valid(compiled)),
    fired        INTEGER NOT NULL DEFAULT 0,
    UNIQUE (job_id, callback_id)
) STRICT;

-- One row per event term of an attached trigger: what the tick looks up when a job (the
-- term's context) changes state. `seen` latches a term until the whole trigger fires.
CREATE TABLE callback_terms (
    job_callback_id  INTEGER NOT NULL REFERENCES job_callbacks (id),
    term             INTEGER NOT NULL,
    name             TEXT    NOT NULL,
    type             TEXT    NOT NULL CHECK (type IN ('job', 'work')),
    context_job      INTEGER,
    extra            TEXT,
    seen             INTEGER NOT NULL DEFAULT 0 CHECK (seen IN (0, 1)),
    PRIMARY KEY (job_callback_id, term)
) STRICT, WITHOUT ROWID;

CREATE INDEX callback_terms_context ON callback_terms (context_job, name)
    WHERE context_job IS NOT NULL;

-- The callbacks' outbox and their results: a row is written, pending, in the transaction
-- of the transition that fires it; the daemon runs it after the commit and its result
-- comes back as a `callback_finished` journal row. `key` makes a run at-least-once with
-- one recorded outcome: (callback, job, work item, transition).
CREATE TABLE callback_runs (
    id            INTEGER PRIMARY KEY,
    key           TEXT    NOT NULL UNIQUE,
    callback_id   INTEGER NOT NULL REFERENCES callbacks (id),
    job_id        INTEGER NOT NULL REFERENCES jobs (id),
    work_id       INTEGER,
    trigger       TEXT    NOT NULL,
    transition    TEXT    NOT NULL,
    journal_id    INTEGER NOT NULL,
    created       REAL    NOT NULL,
    status        TEXT    NOT NULL DEFAULT 'pending'
                  CHECK (status IN ('pending', 'done', 'failed', 'timeout', 'error')),
    attempts      INTEGER NOT NULL DEFAULT 0,
    exit_code     INTEGER,
    duration      REAL,
    output_tail   TEXT,
    finished      REAL
) STRICT;

CREATE INDEX callback_runs_pending ON callback_runs (id) WHERE status = 'pending';
CREATE INDEX callback_runs_job ON callback_runs (job_id, id);

INSERT INTO counters (name, value) VALUES ('callback', 0);
