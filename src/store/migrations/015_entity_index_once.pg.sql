-- deliveries_entity_unfinished (013) has exactly the columns and the predicate of
-- deliveries_entity (002): what fixed the per-entity ordering check was its rewrite as a
-- lateral index scan per entity, which either index serves. Two identical indexes cost a
-- second entry for every delivery inserted and for every change of a delivery's state
-- (a claim, an outcome), for nothing.
DROP INDEX IF EXISTS deliveries_entity_unfinished;
