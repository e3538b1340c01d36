-- Registry of the territory: GHTs, establishments, party accounts; request idempotency.
CREATE TABLE ght (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    ars_region  TEXT NOT NULL,
    created_at  BIGINT NOT NULL
);
CREATE INDEX ght_by_region ON ght (ars_region);

CREATE TABLE establishment (
    id          TEXT PRIMARY KEY,
    ght_id      TEXT NOT NULL REFERENCES ght (id),
    name        TEXT NOT NULL,
    role        TEXT NOT NULL,
    category    TEXT NOT NULL,
    created_at  BIGINT NOT NULL
);
CREATE INDEX establishment_by_ght ON establishment (ght_id);
-- A GHT has one support establishment: a constraint, not a convention.
CREATE UNIQUE INDEX establishment_one_support ON establishment (ght_id) WHERE role = 'SUPPORT';

CREATE TABLE party_account (
    subject           TEXT PRIMARY KEY,
    role              TEXT NOT NULL,
    ght_id            TEXT REFERENCES ght (id),
    establishment_id  TEXT REFERENCES establishment (id),
    ars_region        TEXT,
    display_name      TEXT NOT NULL,
    created_at        BIGINT NOT NULL
);
CREATE INDEX party_account_by_ght ON party_account (ght_id);

-- Retries of a write with the same request id return the first answer.
CREATE TABLE idempotency (
    subject     TEXT NOT NULL,
    method      TEXT NOT NULL,
    request_id  TEXT NOT NULL,
    response    BLOB NOT NULL,
    created_at  BIGINT NOT NULL,
    PRIMARY KEY (subject, method, request_id)
);
