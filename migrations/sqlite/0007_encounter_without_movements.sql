-- Before the fix of the same name, a batch that committed some movements stored an
-- encounter row for every encounter it had looked at, including one whose only
-- movement was rejected: an encounter without movements, claimed by that movement's
-- patient. Publication now stores an encounter only with an accepted movement and
-- reads an encounter's patient from its movements; these rows are removed so that
-- every encounter row has movements.
DELETE FROM encounter
WHERE NOT EXISTS (
    SELECT 1 FROM movement m
    WHERE m.establishment_id = encounter.establishment_id AND m.encounter_id = encounter.encounter_id
);
