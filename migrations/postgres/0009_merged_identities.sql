-- The identities merged into another (A40): few. A movement batch checks each of its
-- patients against this index and the table's key, both without reading the table's
-- rows, which are scattered over a file of millions of identities (one random page
-- read per patient and batch).
CREATE INDEX local_identity_merged ON local_identity (establishment_id, ipp, merged_into_ipp)
    WHERE merged_into_ipp IS NOT NULL;
