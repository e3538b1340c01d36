-- The hash-chained audit trail, in its own SQLite file (`<database>-audit.db`): its
-- appends then have their own writer and never wait for movement batches or other writes
-- of the main file. Same tables as the main file's 0002 (which keeps them, empty, or with
-- the records written before the split, copied here at the first start).

CREATE TABLE audit_log (
    seq               BIGINT PRIMARY KEY,
    at                BIGINT NOT NULL,
    subject           TEXT NOT NULL,
    role              TEXT NOT NULL,
    ght_id            TEXT NOT NULL,
    establishment_id  TEXT NOT NULL,
    rpc               TEXT NOT NULL,
    data_class        TEXT NOT NULL,
    action            TEXT NOT NULL,
    target_ids        TEXT NOT NULL,
    target_ght_id     TEXT NOT NULL,
    decision          TEXT NOT NULL,
    reason            TEXT NOT NULL,
    request_id        TEXT NOT NULL,
    prev_hash         TEXT NOT NULL,
    hash              TEXT NOT NULL UNIQUE
);
CREATE INDEX audit_log_by_subject ON audit_log (subject, seq);

-- One row per target id, so "who accessed this patient" is an index lookup.
CREATE TABLE audit_target (
    target_id  TEXT NOT NULL,
    seq        BIGINT NOT NULL REFERENCES audit_log (seq),
    PRIMARY KEY (target_id, seq)
);

-- Append-only at the database level.
CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END;
CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END;
CREATE TRIGGER audit_target_no_update BEFORE UPDATE ON audit_target
BEGIN SELECT RAISE(ABORT, 'audit_target is append-only'); END;
CREATE TRIGGER audit_target_no_delete BEFORE DELETE ON audit_target
BEGIN SELECT RAISE(ABORT, 'audit_target is append-only'); END;
