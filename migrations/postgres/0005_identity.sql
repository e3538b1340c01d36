-- Patient identities (INS) per establishment and the territorial identity index.

-- One patient across the GHT. A retired one (linked or merged into another) keeps
-- its id and points to where its local identities went.
CREATE TABLE territorial_identity (
    id           TEXT PRIMARY KEY,
    ght_id       TEXT NOT NULL REFERENCES ght (id),
    merged_into  TEXT REFERENCES territorial_identity (id),
    created_at   BIGINT NOT NULL
);

-- A patient identity in one establishment's IPP namespace.
CREATE TABLE local_identity (
    establishment_id   TEXT NOT NULL REFERENCES establishment (id),
    ipp                TEXT NOT NULL,
    ght_id             TEXT NOT NULL REFERENCES ght (id),
    -- Exactly one territorial identity per local identity: a single NOT NULL column
    -- (not a link table that could hold two rows).
    territorial_id     TEXT NOT NULL REFERENCES territorial_identity (id),
    status             TEXT NOT NULL,
    ins_matricule      TEXT,
    ins_oid            TEXT,
    birth_name         TEXT NOT NULL,
    first_given_name   TEXT NOT NULL,
    birth_given_names  TEXT NOT NULL,
    used_name          TEXT NOT NULL,
    used_given_name    TEXT NOT NULL,
    birth_date         TEXT NOT NULL,
    sex                TEXT NOT NULL,
    birth_place_code   TEXT NOT NULL,
    identity_document  TEXT NOT NULL,
    -- Matching keys: normalised (accents, hyphens, case) and phonetic.
    birth_name_norm    TEXT NOT NULL,
    birth_name_phon    TEXT NOT NULL,
    first_name_norm    TEXT NOT NULL,
    first_name_phon    TEXT NOT NULL,
    given_names_norm   TEXT NOT NULL,
    -- Set when this IPP was merged (A40) into another IPP of the establishment.
    merged_into_ipp    TEXT,
    created_at         BIGINT NOT NULL,
    updated_at         BIGINT NOT NULL,
    updated_by         TEXT NOT NULL,
    PRIMARY KEY (establishment_id, ipp),
    CHECK (status IN ('PROVISOIRE', 'RECUPEREE', 'VALIDEE', 'QUALIFIEE')),
    -- The INS exists exactly for RECUPEREE (withheld) and QUALIFIEE identities.
    CHECK ((status IN ('RECUPEREE', 'QUALIFIEE')) = (ins_matricule IS NOT NULL AND ins_oid IS NOT NULL))
);
CREATE INDEX local_identity_by_territorial ON local_identity (territorial_id);
CREATE INDEX local_identity_by_phonetic_first ON local_identity (ght_id, birth_name_phon, first_name_phon);
CREATE INDEX local_identity_by_phonetic_date ON local_identity (ght_id, birth_name_phon, birth_date);
CREATE INDEX local_identity_by_date_first ON local_identity (ght_id, birth_date, first_name_phon);
CREATE INDEX local_identity_by_ins ON local_identity (ins_matricule) WHERE ins_matricule IS NOT NULL;

-- Link, unlink, merge and unmerge, with their author. `changes` holds the exact
-- column changes (JSON) so a merge can be undone exactly.
CREATE TABLE identity_event (
    id               TEXT PRIMARY KEY,
    ght_id           TEXT NOT NULL REFERENCES ght (id),
    kind             TEXT NOT NULL,
    author           TEXT NOT NULL,
    at               BIGINT NOT NULL,
    reason           TEXT NOT NULL,
    identities       TEXT NOT NULL,
    territorial_id   TEXT NOT NULL,
    other_territorial_id TEXT NOT NULL,
    related_event_id TEXT,
    changes          TEXT NOT NULL
);
-- Which territorial identities an event concerns.
CREATE TABLE identity_event_ref (
    territorial_id  TEXT NOT NULL,
    event_id        TEXT NOT NULL REFERENCES identity_event (id),
    PRIMARY KEY (territorial_id, event_id)
);

-- Pairs of local identities (a < b) whose strict traits are close: for a human.
CREATE TABLE candidate_match (
    id                  TEXT PRIMARY KEY,
    ght_id              TEXT NOT NULL REFERENCES ght (id),
    a_establishment_id  TEXT NOT NULL,
    a_ipp               TEXT NOT NULL,
    b_establishment_id  TEXT NOT NULL,
    b_ipp               TEXT NOT NULL,
    score               DOUBLE PRECISION NOT NULL,
    reasons             TEXT NOT NULL,
    status              TEXT NOT NULL,
    created_at          BIGINT NOT NULL,
    decided_by          TEXT,
    decided_at          BIGINT,
    decision_reason     TEXT,
    UNIQUE (a_establishment_id, a_ipp, b_establishment_id, b_ipp)
);
CREATE INDEX candidate_match_by_status ON candidate_match (ght_id, status, score);
CREATE INDEX candidate_match_by_b ON candidate_match (b_establishment_id, b_ipp);

-- Identity-vigilance alerts: one INS, different strict traits.
CREATE TABLE vigilance_alert (
    id                  TEXT PRIMARY KEY,
    ght_id              TEXT NOT NULL REFERENCES ght (id),
    kind                TEXT NOT NULL,
    ins_matricule       TEXT NOT NULL,
    ins_oid             TEXT NOT NULL,
    a_establishment_id  TEXT NOT NULL,
    a_ipp               TEXT NOT NULL,
    b_establishment_id  TEXT NOT NULL,
    b_ipp               TEXT NOT NULL,
    differing_traits    TEXT NOT NULL,
    raised_at           BIGINT NOT NULL,
    raised_by           TEXT NOT NULL,
    UNIQUE (kind, a_establishment_id, a_ipp, b_establishment_id, b_ipp)
);
CREATE INDEX vigilance_alert_by_ght ON vigilance_alert (ght_id, raised_at);
