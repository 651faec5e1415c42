-- Daily indicator history (trends, term reports) and the audit log of staff reads.
CREATE SCHEMA IF NOT EXISTS leap;

-- One row per student per closed local day: the indicator as it stood that day. Written by an
-- idempotent upsert, so a replayed or re-closed day replaces its row instead of adding one.
CREATE TABLE leap.indicator_history (
    student_id      text NOT NULL,
    as_of           date NOT NULL,
    indicator       text NOT NULL
        CHECK (indicator IN ('high', 'good', 'partial', 'low', 'very_low')),
    score           double precision NOT NULL CHECK (score >= 0),
    reference_score double precision NOT NULL CHECK (reference_score >= 0),
    window_days     smallint NOT NULL CHECK (window_days > 0),
    breakdown       jsonb NOT NULL,
    policy_version  text NOT NULL,
    course          text NOT NULL,
    year            smallint NOT NULL,
    contact_allowed boolean NOT NULL,
    recorded_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (student_id, as_of)
);
-- Retention deletes by date.
CREATE INDEX indicator_history_as_of ON leap.indicator_history (as_of);

-- Every staff read of one student's data, allowed or denied. Rows are only ever inserted
-- (and deleted by retention): the log answers "who looked at my data, and when?".
CREATE TABLE leap.audit_log (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at         timestamptz NOT NULL,
    actor_sub  text NOT NULL,
    actor_role text NOT NULL,
    student_id text NOT NULL,
    endpoint   text NOT NULL,
    allowed    boolean NOT NULL
);
CREATE INDEX audit_log_student_at ON leap.audit_log (student_id, at);
CREATE INDEX audit_log_at ON leap.audit_log (at);
