-- The care-relationship check of every nominative read ("has this patient an open
-- encounter at the caller's establishment?") reads only the open encounters: without
-- this index it read every encounter of the patient (the closed ones of years past
-- included) or, in the plan SQLite chose on a database without statistics, every
-- encounter of the establishment.
CREATE INDEX encounter_open ON encounter (establishment_id, ipp) WHERE status IN ('ADMITTED', 'ON_LEAVE');
