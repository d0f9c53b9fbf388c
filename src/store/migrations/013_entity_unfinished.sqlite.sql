-- On PostgreSQL this adds a partial index for the per-entity ordering check (see
-- 013_entity_unfinished.pg.sql). SQLite's check is an EXISTS per entity that already
-- reads deliveries_entity (its deliveries_queue is not partial): nothing to do here.
SELECT 1;
