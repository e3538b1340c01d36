-- The audit log's hash loses its UNIQUE index: no query reads by hash, and each hash
-- already covers its seq (the primary key), so the index only cost every append a
-- random B-tree insert. The chain's order and integrity rest on seq, the advisory
-- lock of the append and `audit verify`, not on this index.
ALTER TABLE audit_log DROP CONSTRAINT IF EXISTS audit_log_hash_key;
