-- Establishment IS inventories: immutable versions, the latest-version pointer, and
-- the application rows the territorial consolidation and the indicator facts read.

-- One row per pushed version. `document` is the canonical protobuf encoding of the
-- InventoryDocument (the bytes `content_hash` is computed over); `summary` is a small
-- protobuf (staff, per-domain products and targets, hosting counts) so trends and
-- totals never decode whole documents. Budgets are in euro cents (BIGINT: exact, and
-- an absent amount binds as a typed NULL on both back-ends).
CREATE TABLE inventory_version (
    establishment_id       TEXT NOT NULL REFERENCES establishment (id),
    version                BIGINT NOT NULL,
    ght_id                 TEXT NOT NULL REFERENCES ght (id),
    pushed_at              BIGINT NOT NULL,
    author                 TEXT NOT NULL,
    content_hash           TEXT NOT NULL,
    as_of                  TEXT NOT NULL,
    application_count      BIGINT NOT NULL,
    budget_operating_cents   BIGINT,
    budget_investment_cents  BIGINT,
    pssi_status            TEXT,
    document               BYTEA NOT NULL,
    summary                BYTEA NOT NULL,
    -- Version numbers are unique per establishment: concurrent pushes cannot share one.
    PRIMARY KEY (establishment_id, version)
);
CREATE INDEX inventory_version_by_ght ON inventory_version (ght_id, as_of);

-- The latest version of each establishment. Its row is updated inside the pushing
-- transaction, so it also serialises concurrent pushes of one establishment (row lock).
CREATE TABLE inventory_head (
    establishment_id  TEXT PRIMARY KEY REFERENCES establishment (id),
    ght_id            TEXT NOT NULL REFERENCES ght (id),
    version           BIGINT NOT NULL,
    content_hash      TEXT NOT NULL
);
CREATE INDEX inventory_head_by_ght ON inventory_head (ght_id);

-- The applications of every version (immutable like their version).
CREATE TABLE inventory_application (
    establishment_id  TEXT NOT NULL,
    version           BIGINT NOT NULL,
    item_id           TEXT NOT NULL,
    domain            TEXT NOT NULL,
    product           TEXT NOT NULL,
    vendor            TEXT NOT NULL,
    name              TEXT NOT NULL,
    app_version       TEXT NOT NULL,
    hosting           TEXT NOT NULL,
    users_count       BIGINT NOT NULL,
    is_target         BIGINT NOT NULL,
    end_of_support    TEXT NOT NULL,
    PRIMARY KEY (establishment_id, version, item_id),
    FOREIGN KEY (establishment_id, version) REFERENCES inventory_version (establishment_id, version)
);

-- A version never changes once stored.
CREATE FUNCTION inventory_immutable() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION '% is immutable', TG_TABLE_NAME;
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER inventory_version_immutable BEFORE UPDATE OR DELETE ON inventory_version
    FOR EACH ROW EXECUTE FUNCTION inventory_immutable();
CREATE TRIGGER inventory_application_immutable BEFORE UPDATE OR DELETE ON inventory_application
    FOR EACH ROW EXECUTE FUNCTION inventory_immutable();
