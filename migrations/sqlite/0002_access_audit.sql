-- DIM staff designations, break-glass grants and the hash-chained audit trail.
CREATE TABLE dim_designation (
    id                TEXT PRIMARY KEY,
    ght_id            TEXT NOT NULL REFERENCES ght (id),
    staff_subject     TEXT NOT NULL,
    establishment_id  TEXT REFERENCES establishment (id),
    designated_by     TEXT NOT NULL,
    mission           TEXT NOT NULL,
    valid_from        BIGINT NOT NULL,
    valid_until       BIGINT,
    revoked_at        BIGINT,
    revoked_by        TEXT
);
CREATE INDEX dim_designation_by_staff ON dim_designation (staff_subject, ght_id);

CREATE TABLE break_glass (
    id           TEXT PRIMARY KEY,
    subject      TEXT NOT NULL,
    ght_id       TEXT NOT NULL REFERENCES ght (id),
    patient_ref  TEXT,
    reason       TEXT NOT NULL,
    granted_at   BIGINT NOT NULL,
    expires_at   BIGINT NOT NULL
);
CREATE INDEX break_glass_by_subject ON break_glass (subject, expires_at);

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
