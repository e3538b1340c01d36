-- Convergence indicators and hôpital numérique prerequisites: catalogue versions,
-- value revisions with their workflow, the steps of that workflow, and the change
-- position that orders region pulls.

-- Every catalogue version ever loaded, with its YAML text (values name the version
-- they were declared under; loading a version never rewrites them).
CREATE TABLE indicator_catalogue (
    catalogue   TEXT NOT NULL,
    version     TEXT NOT NULL,
    yaml        TEXT NOT NULL,
    sha256      TEXT NOT NULL,
    indicators  BIGINT NOT NULL,
    loaded_by   TEXT NOT NULL,
    loaded_at   BIGINT NOT NULL,
    PRIMARY KEY (catalogue, version)
);

-- One row per revision of a value: GHT (or establishment) × indicator × period.
-- establishment_id is '' for GHT-scope indicators. ars_region is the GHT's region,
-- which the registry never changes: kept here so a region pull is one ordered range
-- scan of (ars_region, change_seq), without a join or a sort. record is the row as an
-- encoded ghthub.v1.IndicatorValue, written with the columns from the same data: a pull
-- reads one column per row instead of twenty-five.
CREATE TABLE indicator_value (
    id                 TEXT PRIMARY KEY,
    ght_id             TEXT NOT NULL REFERENCES ght (id),
    ars_region         TEXT NOT NULL,
    establishment_id   TEXT NOT NULL,
    catalogue          TEXT NOT NULL,
    catalogue_version  TEXT NOT NULL,
    indicator_code     TEXT NOT NULL,
    domain             BIGINT NOT NULL,
    period             TEXT NOT NULL,
    period_key         BIGINT NOT NULL,
    revision           BIGINT NOT NULL,
    value_type         TEXT NOT NULL,
    value_text         TEXT NOT NULL,
    evidence_note      TEXT NOT NULL,
    evidence_ref       TEXT NOT NULL,
    status             TEXT NOT NULL,
    declared_by        TEXT NOT NULL,
    declared_at        BIGINT NOT NULL,
    submitted_by       TEXT NOT NULL,
    submitted_at       BIGINT NOT NULL,
    reviewed_by        TEXT NOT NULL,
    reviewed_at        BIGINT NOT NULL,
    review_comment     TEXT NOT NULL,
    updated_at         BIGINT NOT NULL,
    change_seq         BIGINT NOT NULL UNIQUE,
    record             BLOB NOT NULL,
    UNIQUE (ght_id, establishment_id, indicator_code, period, revision)
);
-- At most one open (not yet validated) revision per value: a constraint, not a convention.
CREATE UNIQUE INDEX indicator_value_one_open
    ON indicator_value (ght_id, establishment_id, indicator_code, period) WHERE status <> 'VALIDATED';
CREATE INDEX indicator_value_by_scope ON indicator_value (ght_id, establishment_id, catalogue);
CREATE INDEX indicator_value_by_region ON indicator_value (ars_region, change_seq);

-- A validated revision is immutable, and no revision is ever deleted.
CREATE TRIGGER indicator_value_validated_immutable BEFORE UPDATE ON indicator_value
WHEN OLD.status = 'VALIDATED'
BEGIN SELECT RAISE(ABORT, 'a VALIDATED indicator value is immutable'); END;
CREATE TRIGGER indicator_value_no_delete BEFORE DELETE ON indicator_value
BEGIN SELECT RAISE(ABORT, 'indicator values are never deleted'); END;

-- Every step of every value's workflow (History), keyed by its change position.
CREATE TABLE indicator_event (
    change_seq     BIGINT PRIMARY KEY,
    value_id       TEXT NOT NULL REFERENCES indicator_value (id),
    revision       BIGINT NOT NULL,
    action         TEXT NOT NULL,
    status         TEXT NOT NULL,
    value_type     TEXT NOT NULL,
    value_text     TEXT NOT NULL,
    evidence_note  TEXT NOT NULL,
    evidence_ref   TEXT NOT NULL,
    actor          TEXT NOT NULL,
    actor_role     TEXT NOT NULL,
    at             BIGINT NOT NULL,
    comment        TEXT NOT NULL
);
CREATE INDEX indicator_event_by_value ON indicator_event (value_id);
CREATE TRIGGER indicator_event_no_update BEFORE UPDATE ON indicator_event
BEGIN SELECT RAISE(ABORT, 'indicator_event is append-only'); END;
CREATE TRIGGER indicator_event_no_delete BEFORE DELETE ON indicator_event
BEGIN SELECT RAISE(ABORT, 'indicator_event is append-only'); END;

-- The last change position handed out. Every writing transaction bumps it first, so
-- writers are serialised by this row and positions are committed in increasing order.
CREATE TABLE indicator_position (
    id   BIGINT PRIMARY KEY,
    pos  BIGINT NOT NULL
);
INSERT INTO indicator_position (id, pos) VALUES (1, 0);
