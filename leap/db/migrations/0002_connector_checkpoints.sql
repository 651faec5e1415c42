-- The Moodle connector's positions (connectors/moodle.py), adopted into the versioned schema.
-- IF NOT EXISTS: a connector that ran before `leap db upgrade` has made this same table.
CREATE SCHEMA IF NOT EXISTS leap;

CREATE TABLE IF NOT EXISTS leap.connector_checkpoints (
    connector  text PRIMARY KEY,
    position   bigint NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
);
