-- User events (docs/events.md). Every table and column is in docs/schema.md.

-- One `event(name)` is one event for everybody: its identity and status are the `events`
-- row (kind 'user', owner the user who first subscribed or posted it); this row is the
-- tick's state for it, set by posts (`tock event start|end|reject`, site event daemons).
CREATE TABLE user_events (
    event_id    INTEGER PRIMARY KEY REFERENCES events (id),
    name        TEXT    NOT NULL UNIQUE,
    type        TEXT    CHECK (type IN ('latched', 'pulse', 'pulseAll', 'exclusive')),
    level       INTEGER NOT NULL DEFAULT 0 CHECK (level IN (0, 1)),
    pulses      INTEGER NOT NULL DEFAULT 0 CHECK (pulses >= 0),
    fired       INTEGER NOT NULL DEFAULT 0 CHECK (fired >= 0),
    holder      INTEGER REFERENCES jobs (id),
    rejected    INTEGER NOT NULL DEFAULT 0 CHECK (rejected IN (0, 1)),
    source      TEXT,
    stale       INTEGER NOT NULL DEFAULT 0 CHECK (stale IN (0, 1)),
    subscribed  INTEGER NOT NULL DEFAULT 0 CHECK (subscribed IN (0, 1)),
    created     REAL    NOT NULL,
    journal_id  INTEGER NOT NULL
) STRICT;

-- The daemon's SUB list, and the stale marks of a site daemon that exited.
CREATE INDEX user_events_subscribed ON user_events (event_id) WHERE subscribed = 1;
CREATE INDEX user_events_source ON user_events (source) WHERE source IS NOT NULL;

-- Which user events a job waits on, and how many pulseAll firings of each it has had.
CREATE TABLE job_user_events (
    job_id    INTEGER NOT NULL REFERENCES jobs (id),
    event_id  INTEGER NOT NULL REFERENCES events (id),
    used      INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (job_id, event_id)
) STRICT, WITHOUT ROWID;

CREATE INDEX job_user_events_event ON job_user_events (event_id);

-- What the events that released a run carried (LSB_EVENT_ATTRIB), set at dispatch.
ALTER TABLE job_runs ADD COLUMN event_attrib TEXT;

-- Bumped whenever the set of subscribed user events changes (the daemon sends SUB/UNSUB).
ALTER TABLE tick_state ADD COLUMN user_generation INTEGER NOT NULL DEFAULT 0;
-- User events anyone may post to, from the last daemon_start (config `public_events`).
ALTER TABLE tick_state ADD COLUMN public_events TEXT NOT NULL DEFAULT '[]'
    CHECK (json_valid(public_events));
