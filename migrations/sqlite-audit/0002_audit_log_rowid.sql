-- The audit file's tables rebuilt for cheaper appends; same columns, same order (the
-- carry-over from the main file copies with SELECT *), same records, same hashes.
--
-- * audit_log.seq becomes the rowid (INTEGER PRIMARY KEY). Declared BIGINT it was a
--   separate unique index next to the table's own rowid B-tree: two B-trees per record.
-- * The UNIQUE index on hash goes: no query reads by hash, and a hash already covers
--   its seq. Each append inserted a random key into it, a random page dirtied and
--   written to the WAL at every commit (a profile of the load mix: the audit commit
--   was ~60 % of the audit writer's time).
-- * audit_target is keyed by (target_id, seq) WITHOUT ROWID: the key is the table,
--   one B-tree instead of a rowid table plus its key's index.
--
-- Rebuilt in the migration's transaction: the child table is dropped before its
-- parent, the new tables take the old names (SQLite rewrites the new child's
-- REFERENCES clause on the rename), and the append-only triggers are created again.

CREATE TABLE audit_log_v2 (
    seq               INTEGER PRIMARY KEY,
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
    hash              TEXT NOT NULL
);
INSERT INTO audit_log_v2 (seq, at, subject, role, ght_id, establishment_id, rpc, data_class, action, target_ids,
                          target_ght_id, decision, reason, request_id, prev_hash, hash)
    SELECT seq, at, subject, role, ght_id, establishment_id, rpc, data_class, action, target_ids,
           target_ght_id, decision, reason, request_id, prev_hash, hash
    FROM audit_log ORDER BY seq;

CREATE TABLE audit_target_v2 (
    target_id  TEXT NOT NULL,
    seq        BIGINT NOT NULL REFERENCES audit_log_v2 (seq),
    PRIMARY KEY (target_id, seq)
) WITHOUT ROWID;
INSERT INTO audit_target_v2 (target_id, seq) SELECT target_id, seq FROM audit_target;

-- DROP TABLE's implicit delete fires no trigger; the child goes first, so no
-- reference to the old audit_log remains when it goes.
DROP TABLE audit_target;
DROP TABLE audit_log;
ALTER TABLE audit_log_v2 RENAME TO audit_log;
ALTER TABLE audit_target_v2 RENAME TO audit_target;

CREATE INDEX audit_log_by_subject ON audit_log (subject, seq);

-- Append-only at the database level.
CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END;
CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END;
CREATE TRIGGER audit_target_no_update BEFORE UPDATE ON audit_target
BEGIN SELECT RAISE(ABORT, 'audit_target is append-only'); END;
CREATE TRIGGER audit_target_no_delete BEFORE DELETE ON audit_target
BEGIN SELECT RAISE(ABORT, 'audit_target is append-only'); END;
