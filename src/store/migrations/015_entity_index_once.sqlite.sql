-- On PostgreSQL this drops an index identical to deliveries_entity (see
-- 015_entity_index_once.pg.sql). SQLite never had it: nothing to do here.
SELECT 1;
