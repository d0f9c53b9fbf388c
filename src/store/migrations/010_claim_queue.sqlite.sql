-- The claim of an integration's due work (deliveries_claim: "state = 'pending' AND
-- next_attempt_at <= now ORDER BY next_attempt_at, id LIMIT n") reads this index in order,
-- with no sort: id is its last column. (Not partial as on PostgreSQL: SQLite uses a partial
-- index only when the query repeats its WHERE term, and the claim names one state.)
DROP INDEX deliveries_queue;
CREATE INDEX deliveries_queue ON deliveries (tenant_id, integration_id, state, next_attempt_at, id);
