-- Patient movements (IHE PAM / HL7 v2 ADT) and the encounters they build.

-- The subscription position counter. Each publishing transaction locks this row
-- first and advances it just before inserting: writers are serialised, so the
-- commit order is the position order and a cursor never skips a movement.
CREATE TABLE movement_head (
    id        BIGINT PRIMARY KEY,
    position  BIGINT NOT NULL
);
INSERT INTO movement_head (id, position) VALUES (1, 0);

-- position: INTEGER PRIMARY KEY is SQLite's rowid (a 64-bit integer): no extra index.
CREATE TABLE movement (
    position                      INTEGER PRIMARY KEY,
    establishment_id              TEXT NOT NULL REFERENCES establishment (id),
    event_id                      TEXT NOT NULL,
    ipp                           TEXT NOT NULL,
    encounter_id                  TEXT NOT NULL,
    trigger_code                  TEXT NOT NULL,
    event_time                    BIGINT NOT NULL,
    medical_unit                  TEXT NOT NULL,
    care_unit                     TEXT NOT NULL,
    encounter_class               TEXT NOT NULL,
    target_event_id               TEXT,
    origin_establishment_id       TEXT NOT NULL,
    destination_establishment_id  TEXT NOT NULL,
    recorded_at                   BIGINT NOT NULL,
    recorded_by                   TEXT NOT NULL,
    -- The event id of the cancellation that cancelled this movement.
    cancelled_by                  TEXT,
    -- Hash of the published content: a replayed event id must carry the same content.
    content_hash                  TEXT NOT NULL,
    UNIQUE (establishment_id, event_id)
);
CREATE INDEX movement_by_encounter ON movement (establishment_id, encounter_id, event_time);
-- IHE PAM France: two movements of the same nature cannot concern the same patient,
-- the same medical responsibility and the same date-time (cancellations and updates aside).
CREATE UNIQUE INDEX movement_same_nature ON movement (establishment_id, ipp, trigger_code, medical_unit, event_time)
    WHERE cancelled_by IS NULL AND trigger_code NOT IN ('A11', 'A12', 'A13', 'A38', 'A52', 'A53', 'Z81', 'Z99');

-- The state of each encounter (séjour), recomputed from its movements in event-time
-- order on every change; care relationships and journeys read it.
CREATE TABLE encounter (
    establishment_id              TEXT NOT NULL REFERENCES establishment (id),
    encounter_id                  TEXT NOT NULL,
    ipp                           TEXT NOT NULL,
    status                        TEXT NOT NULL,
    encounter_class               TEXT NOT NULL,
    medical_unit                  TEXT NOT NULL,
    care_unit                     TEXT NOT NULL,
    admitted_at                   BIGINT,
    discharged_at                 BIGINT,
    origin_establishment_id       TEXT NOT NULL,
    destination_establishment_id  TEXT NOT NULL,
    anomalies                     TEXT NOT NULL,
    first_event_at                BIGINT NOT NULL,
    updated_at                    BIGINT NOT NULL,
    PRIMARY KEY (establishment_id, encounter_id)
);
CREATE INDEX encounter_by_patient ON encounter (establishment_id, ipp);
