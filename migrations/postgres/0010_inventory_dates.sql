-- The latest version of each establishment and inventory date, for the convergence
-- trends, from this index alone: the table's rows sit between the pages of their
-- documents, and the trends read one row page per version pushed.
CREATE INDEX inventory_version_dates ON inventory_version (ght_id, establishment_id, as_of, version);
