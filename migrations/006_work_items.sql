-- Work items: a job submitted with `-J 'name[1-100]%5'` (docs/work.md). Every table and
-- column is in docs/schema.md.

-- The index list as submitted ('[1-100]%5'), NULL for a plain job.
ALTER TABLE jobs ADD COLUMN work_spec TEXT;
-- `%N`: at most N of the job's items run at once (NULL: no limit of its own).
ALTER TABLE jobs ADD COLUMN work_limit INTEGER CHECK (work_limit >= 1);
-- The job's items by state, kept by the triggers below: what num*() and the scheduler read
-- without counting rows. work_started counts items that ever started running.
ALTER TABLE jobs ADD COLUMN work_total INTEGER NOT NULL DEFAULT 0;
ALTER TABLE jobs ADD COLUMN work_pend INTEGER NOT NULL DEFAULT 0;
ALTER TABLE jobs ADD COLUMN work_run INTEGER NOT NULL DEFAULT 0;
ALTER TABLE jobs ADD COLUMN work_done INTEGER NOT NULL DEFAULT 0;
ALTER TABLE jobs ADD COLUMN work_exit INTEGER NOT NULL DEFAULT 0;
ALTER TABLE jobs ADD COLUMN work_started INTEGER NOT NULL DEFAULT 0;

-- One row per index of a job with work items. An item runs the job's command with
-- LSB_JOBINDEX and QB_FRAME_NUMBER set to `idx`; the job's state follows its items.
CREATE TABLE work_items (
    job_id       INTEGER NOT NULL REFERENCES jobs (id),
    idx          INTEGER NOT NULL,
    state        TEXT    NOT NULL DEFAULT 'PEND'
                 CHECK (state IN ('PEND', 'PSUSP', 'RUN', 'DONE', 'EXIT')),
    started      INTEGER NOT NULL DEFAULT 0 CHECK (started IN (0, 1)),
    run_count    INTEGER NOT NULL DEFAULT 0,
    current_run  INTEGER REFERENCES job_runs (id),
    forced       TEXT    CHECK (forced IN ('DONE', 'EXIT')),
    exit_code    INTEGER,
    term_signal  INTEGER,
    reason       TEXT,
    start_time   REAL,
    end_time     REAL,
    PRIMARY KEY (job_id, idx)
) STRICT, WITHOUT ROWID;

-- "The next pending items of this job", lowest index first.
CREATE INDEX work_items_state ON work_items (job_id, state, idx);

CREATE TRIGGER work_items_count_insert AFTER INSERT ON work_items
BEGIN
    UPDATE jobs SET
        work_total = work_total + 1,
        work_pend = work_pend + (NEW.state IN ('PEND', 'PSUSP')),
        work_run = work_run + (NEW.state = 'RUN'),
        work_done = work_done + (NEW.state = 'DONE'),
        work_exit = work_exit + (NEW.state = 'EXIT'),
        work_started = work_started + NEW.started
    WHERE id = NEW.job_id;
END;

CREATE TRIGGER work_items_count_update AFTER UPDATE OF state, started ON work_items
BEGIN
    UPDATE jobs SET
        work_pend = work_pend - (OLD.state IN ('PEND', 'PSUSP')) + (NEW.state IN ('PEND', 'PSUSP')),
        work_run = work_run - (OLD.state = 'RUN') + (NEW.state = 'RUN'),
        work_done = work_done - (OLD.state = 'DONE') + (NEW.state = 'DONE'),
        work_exit = work_exit - (OLD.state = 'EXIT') + (NEW.state = 'EXIT'),
        work_started = work_started - OLD.started + NEW.started
    WHERE id = NEW.job_id;
END;

-- The item a run is for (NULL: the run of a plain job).
ALTER TABLE job_runs ADD COLUMN work_index INTEGER;
-- The item a history row is about (NULL: the job itself).
ALTER TABLE history ADD COLUMN work_index INTEGER;

-- num*(job, op N | *) leaves: which count (the comparison is in exit_op/exit_code, and
-- exit_code NULL with exit_op '==' means `*`, all of the job's items).
ALTER TABLE rule_nodes ADD COLUMN count_func TEXT
    CHECK (count_func IN ('numdone', 'numexit', 'numended', 'numrun', 'numpend', 'numstart'));

-- `tock submit --timeout S`: a run (of the job, or of one of its work items) still running
-- S seconds after it started raises the `timeout` event (timeout-job-self,
-- timeout-work-self-*) once; what to do about it is the callbacks' choice.
ALTER TABLE jobs ADD COLUMN timeout REAL CHECK (timeout > 0);
-- When this run's timeout falls due; NULL when there is none, once raised, or once ended.
ALTER TABLE job_runs ADD COLUMN timeout_at REAL;
CREATE INDEX job_runs_timeout ON job_runs (timeout_at) WHERE timeout_at IS NOT NULL;
