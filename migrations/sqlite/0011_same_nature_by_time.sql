-- The same-nature rule's index, ordered by event time first (it was ordered by
-- patient first), its condition written as comparisons (it was a NOT IN list).
-- Publication now looks each movement's nature up exactly, and the movements of a
-- batch are close in time: ordered by patient, every insert and look-up went to a
-- page of its own (one per patient of the batch, each written to the WAL at every
-- commit); ordered by time, a batch shares a few pages. SQLite evaluates an IN list
-- of more than two values through a temporary B-tree built at every execution: for
-- every insert into this index and every probe of it. Same columns, same rows, same
-- uniqueness. A query that repeats this condition (movement::store::SAME_NATURE) lets
-- the planner use the index.
DROP INDEX movement_same_nature;
CREATE UNIQUE INDEX movement_same_nature ON movement (establishment_id, event_time, ipp, trigger_code, medical_unit)
    WHERE cancelled_by IS NULL
      AND trigger_code <> 'A11' AND trigger_code <> 'A12' AND trigger_code <> 'A13' AND trigger_code <> 'A38'
      AND trigger_code <> 'A52' AND trigger_code <> 'A53' AND trigger_code <> 'Z81' AND trigger_code <> 'Z99';
