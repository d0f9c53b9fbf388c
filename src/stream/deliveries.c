/* Delivery queue transitions. Writer thread only (see queue.h). */
#include "stream/deliveries.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alert/alerts.h"
#include "core/log.h"
#include "core/timeutil.h"
#include "core/xalloc.h"
#include "deliver/retry.h"
#include "store/store.h"
#include "stream/integrations.h"

#define AUTO_PAUSE_MIN_ATTEMPTS 10

enum err queue_claim(struct db *db, const char *tenant, const char *integration, const char *node,
                     int64_t lease_ms, int limit, struct claimed **out, int *n, int64_t *next_due)
{
    *out = NULL;
    *n = 0;
    *next_due = -1;
    int64_t now = time_now_ms();
    /* Lock the integration row (PostgreSQL) so concurrent nodes count in-flight rows one at
     * a time; read its state and concurrency limit. */
    struct db_stmt *st =
        db_kind(db) == DB_PG
            ? db_stmt(db, "SELECT state, max_in_flight FROM integrations WHERE tenant_id = ? AND "
                          "id = ? FOR UPDATE")
            : db_stmt(db, "SELECT state, max_in_flight FROM integrations WHERE tenant_id = ? AND "
                          "id = ?");
    db_bind_text(st, 1, tenant);
    db_bind_text(st, 2, integration);
    enum err rc = db_next(st);
    if (rc != ERR_OK)
        return rc == ERR_DONE ? ERR_NOT_FOUND : rc;
    if (!strcmp(db_col_text(st, 0), "paused"))
        return ERR_OK;
    int64_t max = db_col_int(st, 1);
    st = db_stmt(db, "SELECT COUNT(*) FROM deliveries WHERE tenant_id = ? AND integration_id = ? "
                     "AND state = 'in_flight'");
    db_bind_text(st, 1, tenant);
    db_bind_text(st, 2, integration);
    if ((rc = db_next(st)) != ERR_OK)
        return rc == ERR_DONE ? ERR_STORAGE : rc;
    int64_t free_slots = max - db_col_int(st, 0);
    if (free_slots < limit)
        limit = (int)free_slots;
    if (limit > 0) {
        st = db_stmt(db,
                     "UPDATE deliveries SET state = 'in_flight', lease_owner = ?, lease_until = ?, "
                     "attempts = attempts + 1, last_attempt_at = ? WHERE tenant_id = ? AND id IN "
                     "(SELECT id FROM deliveries "
                     "WHERE tenant_id = ? AND integration_id = ? AND state = 'pending' AND "
                     "next_attempt_at <= ? ORDER BY next_attempt_at, id LIMIT ?) "
                     "RETURNING id, event_id, attempts");
        db_bind_text(st, 1, node);
        db_bind_int(st, 2, now + lease_ms);
        db_bind_int(st, 3, now);
        db_bind_text(st, 4, tenant);
        db_bind_text(st, 5, tenant);
        db_bind_text(st, 6, integration);
        db_bind_int(st, 7, now);
        db_bind_int(st, 8, limit);
        struct claimed *c = xcalloc((size_t)limit, sizeof *c);
        while ((rc = db_next(st)) == ERR_OK && *n < limit) {
            snprintf(c[*n].delivery_id, ID_MAX, "%s", db_col_text(st, 0));
            snprintf(c[*n].event_id, ID_MAX, "%s", db_col_text(st, 1));
            c[*n].attempt = (int)db_col_int(st, 2);
            (*n)++;
        }
        if (rc != ERR_DONE && rc != ERR_OK) {
            free(c);
            *n = 0;
            return rc;
        }
        *out = c;
    }
    st = db_stmt(db, "SELECT MIN(next_attempt_at) FROM deliveries WHERE tenant_id = ? AND "
                     "integration_id = ? AND state = 'pending'");
    db_bind_text(st, 1, tenant);
    db_bind_text(st, 2, integration);
    if (db_next(st) == ERR_OK && !db_col_null(st, 0))
        *next_due = db_col_int(st, 0);
    return ERR_OK;
}

/* Releases the next waiting delivery of the entity (it becomes pending, or held while the
 * integration is paused). */
static enum err promote_next(struct db *db, const char *tenant, const char *integration,
                             const char *entity_key, bool paused, int64_t now)
{
    struct db_stmt *st = db_stmt(db, "SELECT id FROM deliveries WHERE tenant_id = ? AND "
                                     "integration_id = ? AND entity_key = ? AND state IN "
                                     "('waiting', 'held', 'pending', 'in_flight') ORDER BY id "
                                     "LIMIT 1");
    db_bind_text(st, 1, tenant);
    db_bind_text(st, 2, integration);
    db_bind_text(st, 3, entity_key);
    enum err rc = db_next(st);
    if (rc == ERR_DONE)
        return ERR_OK;
    if (rc != ERR_OK)
        return rc;
    char id[ID_MAX];
    snprintf(id, sizeof id, "%s", db_col_text(st, 0));
    /* Its next_attempt_at stays the routing time, so claims keep publish order. */
    (void)now;
    st = db_stmt(db, "UPDATE deliveries SET state = ? WHERE tenant_id = ? AND id = ? AND "
                     "state = 'waiting'");
    db_bind_text(st, 1, paused ? "held" : "pending");
    db_bind_text(st, 2, tenant);
    db_bind_text(st, 3, id);
    return db_run(st);
}

/* A delivery of an entity succeeded: the failed webhook_delivery tasks recorded earlier for
 * the same integration and entity are recovered, and their alerts resolved (API.md). */
static enum err resolve_recovered(struct db *db, const struct attempt_outcome *o,
                                  const char *entity_key, int64_t now)
{
    const char *slash = strchr(entity_key, '/');
    const char *entity_id = slash ? slash + 1 : entity_key;
    struct db_stmt *st = db_stmt(db, "SELECT id FROM tasks WHERE tenant_id = ? AND kind = "
                                     "'webhook_delivery' AND connection = ? AND entity_id = ? "
                                     "AND status = 'failed' LIMIT 100");
    db_bind_text(st, 1, o->tenant);
    db_bind_text(st, 2, o->integration);
    db_bind_text(st, 3, entity_id);
    char ids[100][ID_MAX];
    int n = 0;
    enum err rc;
    while (n < 100 && (rc = db_next(st)) == ERR_OK)
        snprintf(ids[n++], ID_MAX, "%s", db_col_text(st, 0));
    db_release(db);
    for (int i = 0; i < n; i++) {
        st = db_stmt(db, "UPDATE tasks SET status = 'succeeded', updated_at = ? WHERE tenant_id "
                         "= ? AND id = ?");
        db_bind_int(st, 1, now);
        db_bind_text(st, 2, o->tenant);
        db_bind_text(st, 3, ids[i]);
        if ((rc = db_run(st)) != ERR_OK ||
            (rc = alerts_resolve_task(db, o->tenant, ids[i])) != ERR_OK)
            return rc;
    }
    return ERR_OK;
}

static enum err insert_attempt(struct db *db, const struct attempt_outcome *o)
{
    struct db_stmt *st = db_stmt(
        db, "INSERT INTO delivery_attempts (tenant_id, delivery_id, attempt, node_id, started_at, "
            "duration_ms, status, error, response_body) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) "
            "ON CONFLICT DO NOTHING");
    db_bind_text(st, 1, o->tenant);
    db_bind_text(st, 2, o->delivery_id);
    db_bind_int(st, 3, o->attempt);
    db_bind_text(st, 4, o->node);
    db_bind_int(st, 5, o->started_at);
    db_bind_int(st, 6, o->duration_ms);
    if (o->status)
        db_bind_int(st, 7, o->status);
    else
        db_bind_null(st, 7);
    db_bind_text(st, 8, o->error);
    db_bind_text(st, 9, o->body);
    return db_run(st);
}

static enum err finish(struct db *db, const struct attempt_outcome *o, const char *state,
                       int64_t now)
{
    struct db_stmt *st = db_stmt(
        db, "UPDATE deliveries SET state = ?, finished_at = ?, last_status = ?, last_error = ?, "
            "lease_owner = NULL, lease_until = NULL, first_attempt_at = COALESCE(first_attempt_at, "
            "?) WHERE tenant_id = ? AND id = ?");
    db_bind_text(st, 1, state);
    db_bind_int(st, 2, now);
    if (o->status)
        db_bind_int(st, 3, o->status);
    else
        db_bind_null(st, 3);
    db_bind_text(st, 4, o->error);
    db_bind_int(st, 5, o->started_at);
    db_bind_text(st, 6, o->tenant);
    db_bind_text(st, 7, o->delivery_id);
    return db_run(st);
}

static enum err delivery_alert(struct db *db, const struct attempt_outcome *o, const char *event,
                               const char *entity_key, const char *message)
{
    char task[ID_MAX];
    json_t *d = json_pack("{s:s,s:s,s:i,s:i}", "delivery_id", o->delivery_id, "event_id",
                          o->event_id, "attempts", o->attempt, "status", (int)o->status);
    if (o->error)
        json_object_set_new(d, "error", json_string(o->error));
    char *details = json_dumps(d, JSON_COMPACT);
    json_decref(d);
    const char *slash = strchr(entity_key, '/');
    enum err rc = task_record(db, o->tenant, "webhook_delivery", o->integration,
                              slash ? slash + 1 : entity_key, "failed", details, task);
    if (rc == ERR_OK) {
        struct alert_in a = {.event = event,
                             .connection = o->integration,
                             .entity_id = slash ? slash + 1 : entity_key,
                             .task_id = task,
                             .message = message,
                             .details = details,
                             .occurred_at = -1};
        rc = alert_record(db, o->tenant, &a, NULL);
    }
    free(details);
    return rc;
}

enum err queue_system_pause(struct db *db, const char *tenant, const char *integration,
                            const char *reason)
{
    int64_t now = time_now_ms();
    enum err rc = integration_set_state(db, tenant, integration, "paused", now);
    if (rc == ERR_OK)
        rc = queue_pause(db, tenant, integration);
    if (rc == ERR_OK)
        rc = integration_log(db, tenant, integration, "stopped", reason, "system");
    if (rc == ERR_OK) {
        struct alert_in a = {.event = "event_stream.integration_stopped",
                             .connection = integration,
                             .message = reason,
                             .occurred_at = -1};
        rc = alert_record(db, tenant, &a, NULL);
    }
    return rc;
}

enum err queue_apply_outcome(struct db *db, const struct attempt_outcome *o,
                             enum outcome_kind *kind)
{
    int64_t now = time_now_ms();
    enum err rc = insert_attempt(db, o);
    if (rc != ERR_OK)
        return rc;
    struct db_stmt *st = db_stmt(
        db, "SELECT d.entity_key, d.first_attempt_at, i.state, i.ordering, i.failing_count > 0 "
            "OR i.failing_since IS NOT NULL OR i.lag_alerted_at IS NOT NULL, i.last_attempt_at "
            "FROM deliveries d JOIN integrations i ON i.tenant_id = d.tenant_id AND i.id = "
            "d.integration_id WHERE d.tenant_id = ? AND d.id = ? AND d.state = 'in_flight' AND "
            "d.lease_owner = ?");
    db_bind_text(st, 1, o->tenant);
    db_bind_text(st, 2, o->delivery_id);
    db_bind_text(st, 3, o->node);
    rc = db_next(st);
    if (rc == ERR_DONE) { /* lease lost (expired and re-claimed) or integration deleted */
        *kind = OUTCOME_STALE;
        return ERR_OK;
    }
    if (rc != ERR_OK)
        return rc;
    char key[400], istate[16];
    snprintf(key, sizeof key, "%s", db_col_text(st, 0));
    /* The first attempt's start, on the same clock as failing_since below: a delivery that
     * fails for 24 h with nothing succeeding meanwhile has failing_since <= first. */
    int64_t first = db_col_null(st, 1) ? o->started_at : db_col_int(st, 1);
    snprintf(istate, sizeof istate, "%s", db_col_text(st, 2));
    bool paused = !strcmp(istate, "paused");
    /* Only entity ordering (fixed at creation) ever leaves deliveries waiting. */
    bool ordered = !strcmp(db_col_text(st, 3), "entity");
    bool flagged = db_col_int(st, 4) != 0;
    int64_t last_attempt = db_col_null(st, 5) ? -1 : db_col_int(st, 5);
    db_release(db);

    bool success = o->status >= 200 && o->status < 300 && !o->error;
    if (success) {
        *kind = OUTCOME_SUCCEEDED;
        if ((rc = finish(db, o, "succeeded", now)) != ERR_OK)
            return rc;
        /* The integration row is every outcome's hot spot: a success rewrites it only to
         * clear failure state, or to move last_attempt_at on by a second or more. */
        if (flagged || last_attempt < 0 || now - last_attempt >= 1000) {
            st = db_stmt(db, "UPDATE integrations SET failing_since = NULL, failing_count = 0, "
                             "last_attempt_at = ?, lag_alerted_at = NULL WHERE tenant_id = ? AND "
                             "id = ?");
            db_bind_int(st, 1, now);
            db_bind_text(st, 2, o->tenant);
            db_bind_text(st, 3, o->integration);
            if ((rc = db_run(st)) != ERR_OK)
                return rc;
        }
        if ((rc = resolve_recovered(db, o, key, now)) != ERR_OK)
            return rc;
        return ordered ? promote_next(db, o->tenant, o->integration, key, paused, now) : ERR_OK;
    }
    /* A failed attempt: count it toward auto-pause. */
    st = db_stmt(db, "UPDATE integrations SET failing_since = COALESCE(failing_since, ?), "
                     "failing_count = failing_count + 1, last_attempt_at = ? WHERE tenant_id = ? "
                     "AND id = ? RETURNING failing_since, failing_count");
    db_bind_int(st, 1, o->started_at);
    db_bind_int(st, 2, now);
    db_bind_text(st, 3, o->tenant);
    db_bind_text(st, 4, o->integration);
    if ((rc = db_next(st)) != ERR_OK)
        return rc == ERR_DONE ? ERR_STORAGE : rc;
    int64_t failing_since = db_col_int(st, 0), failing_count = db_col_int(st, 1);
    db_release(db);

    char msg[512];
    if (!retry_status_retryable(o->status) && !o->error) {
        *kind = OUTCOME_REJECTED;
        if ((rc = finish(db, o, "rejected", now)) != ERR_OK)
            return rc;
        snprintf(msg, sizeof msg, "the consumer rejected event %s with HTTP %ld", o->event_id,
                 o->status);
        if ((rc = delivery_alert(db, o, "event_stream.event_rejected", key, msg)) != ERR_OK)
            return rc;
        if (ordered &&
            (rc = promote_next(db, o->tenant, o->integration, key, paused, now)) != ERR_OK)
            return rc;
        if (o->status == 410 && !paused)
            rc = queue_system_pause(db, o->tenant, o->integration,
                                    "paused: the consumer answered 410 Gone");
        return rc;
    }
    if (now - first >= retry_give_up_after()) {
        *kind = OUTCOME_FAILED;
        if ((rc = finish(db, o, "failed", now)) != ERR_OK)
            return rc;
        snprintf(msg, sizeof msg, "event %s could not be delivered after %d attempts: %s",
                 o->event_id, o->attempt, o->error ? o->error : "HTTP error");
        if (!o->error)
            snprintf(msg, sizeof msg, "event %s could not be delivered after %d attempts: HTTP %ld",
                     o->event_id, o->attempt, o->status);
        if ((rc = delivery_alert(db, o, "event_stream.delivery_failed", key, msg)) != ERR_OK)
            return rc;
        if (ordered)
            rc = promote_next(db, o->tenant, o->integration, key, paused, now);
    } else {
        *kind = OUTCOME_RETRY;
        int64_t delay = retry_next_delay(o->attempt, o->retry_after);
        st = db_stmt(db, "UPDATE deliveries SET state = ?, next_attempt_at = ?, last_status = ?, "
                         "last_error = ?, lease_owner = NULL, lease_until = NULL, "
                         "first_attempt_at = COALESCE(first_attempt_at, ?) WHERE tenant_id = ? "
                         "AND id = ?");
        db_bind_text(st, 1, paused ? "held" : "pending");
        db_bind_int(st, 2, now + delay);
        if (o->status)
            db_bind_int(st, 3, o->status);
        else
            db_bind_null(st, 3);
        db_bind_text(st, 4, o->error);
        db_bind_int(st, 5, o->started_at);
        db_bind_text(st, 6, o->tenant);
        db_bind_text(st, 7, o->delivery_id);
        rc = db_run(st);
    }
    if (rc == ERR_OK && !paused && failing_count >= AUTO_PAUSE_MIN_ATTEMPTS &&
        now - failing_since >= retry_give_up_after())
        rc = queue_system_pause(db, o->tenant, o->integration,
                                "auto-paused: every delivery failed for 24h");
    return rc;
}

enum err queue_pause(struct db *db, const char *tenant, const char *integration)
{
    struct db_stmt *st = db_stmt(db, "UPDATE deliveries SET state = 'held' WHERE tenant_id = ? "
                                     "AND integration_id = ? AND state = 'pending'");
    db_bind_text(st, 1, tenant);
    db_bind_text(st, 2, integration);
    return db_run(st);
}

enum err queue_resume(struct db *db, const char *tenant, const char *integration, int64_t paused_at,
                      bool skip, int64_t *skipped)
{
    int64_t now = time_now_ms();
    *skipped = 0;
    struct db_stmt *st;
    if (skip) {
        st = db_stmt(db, "UPDATE deliveries SET state = 'skipped', finished_at = ? WHERE "
                         "tenant_id = ? AND integration_id = ? AND state IN ('held', 'waiting', "
                         "'pending')");
        db_bind_int(st, 1, now);
        db_bind_text(st, 2, tenant);
        db_bind_text(st, 3, integration);
        enum err rc = db_run(st);
        *skipped = db_changes(st);
        return rc;
    }
    int64_t shift = paused_at >= 0 && now > paused_at ? now - paused_at : 0;
    st = db_stmt(db, "UPDATE deliveries SET state = 'pending', next_attempt_at = ?, "
                     "first_attempt_at = first_attempt_at + ? WHERE tenant_id = ? AND "
                     "integration_id = ? AND state = 'held'");
    db_bind_int(st, 1, now);
    db_bind_int(st, 2, shift);
    db_bind_text(st, 3, tenant);
    db_bind_text(st, 4, integration);
    store_wake(STORE_WAKE_DELIVER);
    return db_run(st);
}

enum err queue_release_leases(struct db *db, bool all, int64_t *n)
{
    struct db_stmt *st =
        /* S3 batch members are in_flight without a lease: their batch owns them. */
        /* An attempt whose outcome never came still started the 24 h clock (at its claim). */
        all ? db_stmt(db, "UPDATE deliveries SET state = 'pending', lease_owner = NULL, "
                          "lease_until = NULL, first_attempt_at = COALESCE(first_attempt_at, "
                          "last_attempt_at) WHERE state = 'in_flight' AND batch_id IS NULL")
            : db_stmt(db, "UPDATE deliveries SET state = 'pending', lease_owner = NULL, "
                          "lease_until = NULL, first_attempt_at = COALESCE(first_attempt_at, "
                          "last_attempt_at) WHERE state = 'in_flight' AND lease_until < ?");
    if (!all)
        db_bind_int(st, 1, time_now_ms());
    enum err rc = db_run(st);
    *n = db_changes(st);
    if (rc == ERR_OK && *n > 0)
        store_wake(STORE_WAKE_DELIVER);
    return rc;
}

enum err queue_stop_ended(struct db *db, int64_t *n)
{
    *n = 0;
    struct db_stmt *st = db_stmt(db, "SELECT tenant_id, id FROM integrations WHERE end_at IS NOT "
                                     "NULL AND end_at <= ? AND state <> 'stopped' LIMIT 100");
    db_bind_int(st, 1, time_now_ms());
    char ids[100][2][72];
    int k = 0;
    enum err rc;
    while (k < 100 && (rc = db_next(st)) == ERR_OK) {
        snprintf(ids[k][0], 72, "%s", db_col_text(st, 0));
        snprintf(ids[k][1], 72, "%s", db_col_text(st, 1));
        k++;
    }
    db_release(db);
    for (int i = 0; i < k; i++) {
        int64_t now = time_now_ms();
        /* Deliveries already routed still finish: held ones return to pending. */
        if ((rc = queue_resume(db, ids[i][0], ids[i][1], -1, false, &(int64_t){0})) != ERR_OK)
            return rc;
        if ((rc = integration_set_state(db, ids[i][0], ids[i][1], "stopped", now)) != ERR_OK)
            return rc;
        if ((rc = integration_log(db, ids[i][0], ids[i][1], "stopped", "reached end date",
                                  "system")) != ERR_OK)
            return rc;
        (*n)++;
    }
    return ERR_OK;
}

enum err queue_find_lagging(struct db *db, int64_t lag_ms, struct lag_candidate *out, int max,
                            int *n)
{
    *n = 0;
    struct db_stmt *st = db_stmt(
        db, "SELECT d.tenant_id, d.integration_id, MIN(d.created_at) FROM deliveries d JOIN "
            "integrations i ON i.tenant_id = d.tenant_id AND i.id = d.integration_id WHERE "
            "d.state IN ('waiting', 'pending', 'in_flight') AND i.lag_alerted_at IS NULL "
            "GROUP BY d.tenant_id, d.integration_id HAVING MIN(d.created_at) < ? LIMIT ?");
    db_bind_int(st, 1, time_now_ms() - lag_ms);
    db_bind_int(st, 2, max);
    enum err rc = ERR_OK;
    while (*n < max && (rc = db_next(st)) == ERR_OK) {
        struct lag_candidate *c = &out[(*n)++];
        snprintf(c->tenant, sizeof c->tenant, "%s", db_col_text(st, 0));
        snprintf(c->integration, sizeof c->integration, "%s", db_col_text(st, 1));
        c->oldest = db_col_int(st, 2);
    }
    db_release(db);
    return rc == ERR_DONE || rc == ERR_OK ? ERR_OK : rc;
}

enum err queue_alert_lagging(struct db *db, const struct lag_candidate *c, int n, int64_t lag_ms,
                             int64_t *alerted)
{
    *alerted = 0;
    int64_t now = time_now_ms();
    for (int i = 0; i < n; i++) {
        /* Claim the episode first, so several nodes alert once. The scan's answer may be a
         * few ms old: if the oldest delivery succeeded meanwhile the alert still goes (the
         * lag was real when measured), and the next success ends the episode. */
        struct db_stmt *st = db_stmt(db, "UPDATE integrations SET lag_alerted_at = ? WHERE "
                                         "tenant_id = ? AND id = ? AND lag_alerted_at IS NULL");
        db_bind_int(st, 1, now);
        db_bind_text(st, 2, c[i].tenant);
        db_bind_text(st, 3, c[i].integration);
        enum err rc = db_run(st);
        if (rc != ERR_OK)
            return rc;
        if (db_changes(st) == 0)
            continue;
        char msg[300], details[200];
        snprintf(msg, sizeof msg,
                 "lagging: the oldest undelivered event has waited %lld ms (limit %lld ms)",
                 (long long)(now - c[i].oldest), (long long)lag_ms);
        snprintf(details, sizeof details, "{\"reason\":\"lagging\",\"lag_ms\":%lld}",
                 (long long)(now - c[i].oldest));
        struct alert_in a = {.event = "event_stream.delivery_failed",
                             .connection = c[i].integration,
                             .message = msg,
                             .details = details,
                             .occurred_at = now};
        if ((rc = alert_record(db, c[i].tenant, &a, NULL)) != ERR_OK)
            return rc;
        (*alerted)++;
    }
    return ERR_OK;
}

enum err queue_purge(struct db *db, const char *tenant, int64_t deliveries_before,
                     int64_t events_before, int limit, int64_t *deliveries, int64_t *events)
{
    *deliveries = *events = 0;
    char dlv_floor[ID_MAX], evt_floor[ID_MAX];
    id_floor("dlv", deliveries_before, dlv_floor);
    id_floor("evt", events_before, evt_floor);
    /* Delivery ids are time-ordered, so "created before" is a primary-key range. */
    struct db_stmt *st = db_stmt(
        db, "DELETE FROM delivery_attempts WHERE tenant_id = ? AND delivery_id IN (SELECT id "
            "FROM deliveries WHERE tenant_id = ? AND id < ? AND state IN ('succeeded', 'failed', "
            "'rejected', 'skipped') LIMIT ?)");
    db_bind_text(st, 1, tenant);
    db_bind_text(st, 2, tenant);
    db_bind_text(st, 3, dlv_floor);
    db_bind_int(st, 4, limit);
    enum err rc = db_run(st);
    if (rc != ERR_OK)
        return rc;
    st = db_stmt(db, "DELETE FROM deliveries WHERE tenant_id = ? AND id IN (SELECT id FROM "
                     "deliveries WHERE tenant_id = ? AND id < ? AND state IN ('succeeded', "
                     "'failed', 'rejected', 'skipped') LIMIT ?)");
    db_bind_text(st, 1, tenant);
    db_bind_text(st, 2, tenant);
    db_bind_text(st, 3, dlv_floor);
    db_bind_int(st, 4, limit);
    if ((rc = db_run(st)) != ERR_OK)
        return rc;
    *deliveries = db_changes(st);
    st = db_stmt(db, "DELETE FROM events WHERE tenant_id = ? AND id IN (SELECT e.id FROM "
                     "events e WHERE e.tenant_id = ? AND e.id < ? AND NOT EXISTS (SELECT 1 "
                     "FROM deliveries d WHERE d.tenant_id = e.tenant_id AND d.event_id = e.id "
                     "AND d.state IN ('waiting', 'held', 'pending', 'in_flight')) LIMIT ?)");
    db_bind_text(st, 1, tenant);
    db_bind_text(st, 2, tenant);
    db_bind_text(st, 3, evt_floor);
    db_bind_int(st, 4, limit);
    if ((rc = db_run(st)) != ERR_OK)
        return rc;
    *events = db_changes(st);
    return ERR_OK;
}

enum err deliveries_delete_integration(struct db *db, const char *tenant, const char *integration)
{
    struct db_stmt *st = db_stmt(db, "DELETE FROM delivery_attempts WHERE tenant_id = ? AND "
                                     "delivery_id IN (SELECT id FROM deliveries WHERE tenant_id "
                                     "= ? AND integration_id = ?)");
    db_bind_text(st, 1, tenant);
    db_bind_text(st, 2, tenant);
    db_bind_text(st, 3, integration);
    enum err rc = db_run(st);
    if (rc != ERR_OK)
        return rc;
    st = db_stmt(db, "DELETE FROM deliveries WHERE tenant_id = ? AND integration_id = ?");
    db_bind_text(st, 1, tenant);
    db_bind_text(st, 2, integration);
    return db_run(st);
}
