-- An integration deleted and created again with the same id starts a new log. Each
-- integration row carries an incarnation (a fresh id when it is created); each log row, the
-- incarnation it was written for. The logs view shows the rows of the current incarnation
-- only; rows of an earlier one stay for audit but are never shown as the new one's.
ALTER TABLE integrations ADD COLUMN incarnation TEXT;
ALTER TABLE integration_logs ADD COLUMN incarnation TEXT;
-- Existing rows: each integration is its own incarnation; a log row belongs to it when it
-- was written since the integration was created (earlier rows are an earlier one's).
UPDATE integrations SET incarnation = 'inc_' || id || '_' || created_at;
UPDATE integration_logs SET incarnation = (
    SELECT i.incarnation FROM integrations i
    WHERE i.tenant_id = integration_logs.tenant_id AND i.id = integration_logs.integration_id
      AND integration_logs.created_at >= i.created_at);
