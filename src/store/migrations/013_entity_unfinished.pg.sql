-- The per-entity ordering check of every publish (deliveries_insert_many: which of these
-- entities already have an unfinished delivery of this integration, share-locking them)
-- must stay an index lookup per entity. Since migration 010 made deliveries_queue a partial
-- index with exactly this check's state predicate, the planner took it — walking every
-- unfinished delivery of the integration (2.9 s per group commit at 25,000 pending with
-- --roles api; it would be worse with an ERP down for a day) instead of the entity's few
-- rows through deliveries_entity. This index has the entity and the same predicate, and id
-- last: the check reads (and share-locks) the entity's newest unfinished row and nothing else.
CREATE INDEX deliveries_entity_unfinished ON deliveries (tenant_id, integration_id, entity_key, id)
    WHERE state IN ('waiting', 'held', 'pending', 'in_flight');
