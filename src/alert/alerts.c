/* Alert and task rows, and the entry to the alert engine: alert_record() stores the alert
 * and, in the same transaction, matches it against the tenant's policies (issues.c).
 * Writer thread only (inside the caller's transaction). */
#include "alert/alerts.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alert/issues.h"
#include "core/buf.h"
#include "core/xalloc.h"

#include "core/log.h"
#include "core/metrics.h"
#include "core/timeutil.h"
#include "store/store.h"
#include "stream/catalog.h"

static struct metric m_recorded = {.name = "sluice_alerts_recorded_total",
                                   .help = "Alerts stored (reported or raised by Sluice).",
                                   .type = "counter"};
static struct metric m_matched = {.name = "sluice_alerts_matched_total",
                                  .help = "Alerts that matched at least one enabled policy.",
                                  .type = "counter"};

void alerts_register_metrics(void)
{
    metric_register(&m_recorded);
    metric_register(&m_matched);
    issues_register_metrics();
}

/* Inserts every alert of the batches with one set-based statement (a few chunks on SQLite,
 * one array-bound statement on PostgreSQL); each batch's ids get their new ids. */
static enum err insert_alerts(struct db *db, const struct alert_batch *b, size_t nb, int64_t now)
{
    struct db_rows r;
    db_rows_init(&r, "tttttttttii");
    for (size_t j = 0; j < nb; j++)
        for (size_t i = 0; i < b[j].n; i++) {
            const struct alert_in *a = &b[j].alerts[i];
            char category[72];
            id_new("alr", now, b[j].ids[i]);
            catalog_entity(a->event, category, sizeof category);
            db_rows_text(&r, b[j].tenant);
            db_rows_text(&r, b[j].ids[i]);
            db_rows_text(&r, a->event);
            db_rows_text(&r, category);
            db_rows_text(&r, a->connection);
            db_rows_text(&r, a->entity_id);
            db_rows_text(&r, a->task_id);
            db_rows_text(&r, a->message);
            db_rows_text(&r, a->details);
            db_rows_int(&r, a->occurred_at >= 0 ? a->occurred_at : now);
            db_rows_int(&r, now);
        }
    enum err rc = db_rows_run(db,
                              "INSERT INTO alerts (tenant_id, id, event, category, connection, "
                              "entity_id, task_id, message, details, occurred_at, created_at) "
                              "{ROWS}",
                              &r, NULL, NULL, NULL);
    db_rows_cleanup(&r);
    return rc;
}

enum err alerts_record_many(struct db *db, const struct alert_batch *b, size_t nb)
{
    int64_t now = time_now_ms();
    enum err rc = insert_alerts(db, b, nb, now);
    size_t total = 0, matched = 0;
    for (size_t j = 0; j < nb; j++)
        total += b[j].n;
    /* Each tenant's alerts in one run of the policies, so each issue they touch is moved
     * once per group commit (batches of one tenant are the common case: no copy). */
    struct alert_in *a = NULL;
    char(*ids)[ID_MAX] = NULL;
    bool *done = xcalloc(nb ? nb : 1, sizeof *done);
    for (size_t j = 0; j < nb && rc == ERR_OK; j++) {
        if (done[j])
            continue;
        size_t n = 0, m = 0;
        for (size_t k = j; k < nb; k++)
            if (!done[k] && !strcmp(b[k].tenant, b[j].tenant))
                n += b[k].n;
        if (n == b[j].n) { /* the tenant's only batch */
            done[j] = true;
            rc = issues_on_alerts(db, b[j].tenant, (const char(*)[ID_MAX])b[j].ids, b[j].alerts, n,
                                  now, &m);
            matched += m;
            continue;
        }
        if (!a) {
            a = xcalloc(total, sizeof *a);
            ids = xcalloc(total, sizeof *ids);
        }
        size_t at = 0;
        for (size_t k = j; k < nb; k++) {
            if (done[k] || strcmp(b[k].tenant, b[j].tenant))
                continue;
            done[k] = true;
            memcpy(a + at, b[k].alerts, b[k].n * sizeof *a);
            memcpy(ids + at, b[k].ids, b[k].n * sizeof *ids);
            at += b[k].n;
        }
        rc = issues_on_alerts(db, b[j].tenant, (const char(*)[ID_MAX])ids, a, n, now, &m);
        matched += m;
    }
    free(a);
    free(ids);
    free(done);
    if (rc == ERR_OK) {
        store_count(&m_recorded, (int64_t)total); /* once committed */
        store_count(&m_matched, (int64_t)matched);
    }
    return rc;
}

enum err alerts_record_batch(struct db *db, const char *tenant, const struct alert_in *a, size_t n,
                             char (*ids)[ID_MAX])
{
    struct alert_batch b = {.tenant = tenant, .alerts = a, .n = n, .ids = ids};
    return alerts_record_many(db, &b, 1);
}

enum err alert_record(struct db *db, const char *tenant, const struct alert_in *a,
                      char id_out[ID_MAX])
{
    char id[1][ID_MAX];
    enum err rc = alerts_record_batch(db, tenant, a, 1, id);
    if (rc == ERR_OK && id_out)
        memcpy(id_out, id[0], ID_MAX);
    if (rc == ERR_OK)
        log_debug("alert", "tenant %s: %s on %s: %s", tenant, a->event,
                  a->connection ? a->connection : "-", a->message);
    return rc;
}

enum err task_record(struct db *db, const char *tenant, const char *kind, const char *connection,
                     const char *entity_id, const char *status, const char *details,
                     char id_out[ID_MAX])
{
    char id[ID_MAX];
    int64_t now = time_now_ms();
    id_new("tsk", now, id);
    struct db_stmt *st = db_stmt(
        db,
        "INSERT INTO tasks (tenant_id, id, kind, connection, entity_id, status, started_at, "
        "finished_at, details, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)");
    db_bind_text(st, 1, tenant);
    db_bind_text(st, 2, id);
    db_bind_text(st, 3, kind);
    db_bind_text(st, 4, connection);
    db_bind_text(st, 5, entity_id);
    db_bind_text(st, 6, status);
    db_bind_int(st, 7, now);
    db_bind_int(st, 8, now);
    db_bind_text(st, 9, details);
    db_bind_int(st, 10, now);
    db_bind_int(st, 11, now);
    enum err rc = db_run(st);
    if (rc == ERR_OK && id_out)
        memcpy(id_out, id, ID_MAX);
    return rc;
}

/* Resolves the alerts a statement selected (column 0: id), then runs recovery. */
static enum err resolve_selected(struct db *db, const char *tenant, struct db_stmt *sel)
{
    char **ids = NULL;
    size_t n = 0, cap = 0;
    enum err rc;
    while ((rc = db_next(sel)) == ERR_OK) {
        if (n == cap) {
            cap = cap ? 2 * cap : 16;
            ids = xrealloc(ids, cap * sizeof *ids);
        }
        ids[n++] = xstrdup(db_col_text(sel, 0));
    }
    if (rc == ERR_DONE)
        rc = ERR_OK;
    int64_t now = time_now_ms();
    for (size_t i = 0; i < n && rc == ERR_OK; i++) {
        struct db_stmt *st = db_stmt(db, "UPDATE alerts SET resolved_at = ? WHERE tenant_id = ? "
                                         "AND id = ? AND resolved_at IS NULL");
        db_bind_int(st, 1, now);
        db_bind_text(st, 2, tenant);
        db_bind_text(st, 3, ids[i]);
        rc = db_run(st);
        if (rc == ERR_OK)
            rc = issues_recovery(db, tenant, ids[i], now);
    }
    for (size_t i = 0; i < n; i++)
        free(ids[i]);
    free(ids);
    return rc;
}

enum err alerts_resolve_task(struct db *db, const char *tenant, const char *task_id)
{
    struct db_stmt *st = db_stmt(db, "SELECT id FROM alerts WHERE tenant_id = ? AND task_id = ? "
                                     "AND resolved_at IS NULL");
    db_bind_text(st, 1, tenant);
    db_bind_text(st, 2, task_id);
    return resolve_selected(db, tenant, st);
}

#define RECOVER_MAX 100 /* tasks per call: the next success recovers the rest */

enum err tasks_recover(struct db *db, const char *tenant, const char *kind, const char *connection,
                       const char *entity_id, const char *task_id, int64_t now)
{
    char ids[RECOVER_MAX][ID_MAX];
    int n = 0;
    enum err rc = ERR_OK;
    if (task_id) {
        snprintf(ids[n++], ID_MAX, "%s", task_id);
    } else {
        struct db_stmt *st = db_stmt(db, "SELECT id FROM tasks WHERE tenant_id = ? AND kind = ? "
                                         "AND connection = ? AND entity_id = ? AND status = "
                                         "'failed' LIMIT 100");
        db_bind_text(st, 1, tenant);
        db_bind_text(st, 2, kind);
        db_bind_text(st, 3, connection);
        db_bind_text(st, 4, entity_id);
        while (n < RECOVER_MAX && (rc = db_next(st)) == ERR_OK)
            snprintf(ids[n++], ID_MAX, "%s", db_col_text(st, 0));
        db_release(db);
        if (rc != ERR_OK && rc != ERR_DONE)
            return rc;
    }
    for (int i = 0; i < n; i++) {
        struct db_stmt *st = db_stmt(db, "UPDATE tasks SET status = 'succeeded', finished_at = "
                                         "?, updated_at = ? WHERE tenant_id = ? AND id = ?");
        db_bind_int(st, 1, now);
        db_bind_int(st, 2, now);
        db_bind_text(st, 3, tenant);
        db_bind_text(st, 4, ids[i]);
        if ((rc = db_run(st)) != ERR_OK || (rc = alerts_resolve_task(db, tenant, ids[i])) != ERR_OK)
            return rc;
    }
    return ERR_OK;
}

struct failed_ctx {
    const struct task_work *w;
    size_t n;
    bool *failed;
};

static enum err failed_row(struct db_stmt *st, void *arg)
{
    struct failed_ctx *c = arg;
    const char *t = db_col_text(st, 0), *conn = db_col_text(st, 1), *e = db_col_text(st, 2);
    for (size_t i = 0; i < c->n; i++)
        if (!strcmp(c->w[i].tenant, t) && !strcmp(c->w[i].connection, conn) &&
            !strcmp(c->w[i].entity_id, e))
            c->failed[i] = true;
    return ERR_OK;
}

enum err tasks_failed_any(struct db *db, const char *kind, const struct task_work *w, size_t n,
                          bool *failed)
{
    struct db_rows r;
    db_rows_init(&r, "tttt");
    for (size_t i = 0; i < n; i++) {
        failed[i] = false;
        db_rows_text(&r, w[i].tenant);
        db_rows_text(&r, kind);
        db_rows_text(&r, w[i].connection);
        db_rows_text(&r, w[i].entity_id);
    }
    struct failed_ctx c = {.w = w, .n = n, .failed = failed};
    enum err rc = db_rows_run(db,
                              "SELECT DISTINCT t.tenant_id, t.connection, t.entity_id FROM "
                              "({ROWS}) AS v JOIN tasks t ON t.tenant_id = v.column1 AND t.kind = "
                              "v.column2 AND t.connection = v.column3 AND t.entity_id = v.column4 "
                              "WHERE t.status = 'failed'",
                              &r, failed_row, &c, NULL);
    db_rows_cleanup(&r);
    return rc;
}

enum err alert_resolve(struct db *db, const char *tenant, const char *alert_id)
{
    struct db_stmt *st =
        db_stmt(db, "SELECT id, resolved_at FROM alerts WHERE tenant_id = ? AND id = ?");
    db_bind_text(st, 1, tenant);
    db_bind_text(st, 2, alert_id);
    enum err rc = db_next(st);
    if (rc != ERR_OK)
        return rc == ERR_DONE ? ERR_NOT_FOUND : rc;
    st = db_stmt(db, "SELECT id FROM alerts WHERE tenant_id = ? AND id = ? AND resolved_at IS "
                     "NULL");
    db_bind_text(st, 1, tenant);
    db_bind_text(st, 2, alert_id);
    return resolve_selected(db, tenant, st);
}

enum err alerts_resolve_work(struct db *db, const char *tenant, const char *kind,
                             const char *connection, const char *entity_id, const char *except_task)
{
    struct db_stmt *st = db_stmt(
        db, "SELECT a.id FROM tasks t JOIN alerts a ON a.tenant_id = t.tenant_id AND a.task_id "
            "= t.id WHERE t.tenant_id = ? AND t.kind = ? AND t.connection IS NOT DISTINCT FROM ? "
            "AND t.entity_id IS NOT DISTINCT FROM ? AND t.id <> ? AND a.resolved_at IS NULL");
    db_bind_text(st, 1, tenant);
    db_bind_text(st, 2, kind);
    db_bind_text(st, 3, connection);
    db_bind_text(st, 4, entity_id);
    db_bind_text(st, 5, except_task ? except_task : "");
    return resolve_selected(db, tenant, st);
}

enum err alerts_purge(struct db *db, const char *tenant, int64_t before, int limit, int64_t *alerts,
                      int64_t *tasks)
{
    *alerts = *tasks = 0;
    char alr_floor[ID_MAX], tsk_floor[ID_MAX];
    id_floor("alr", before, alr_floor);
    id_floor("tsk", before, tsk_floor);
    /* The old alerts that may go: none of their issues is still open. */
    static const char *const purgeable =
        "SELECT a.id FROM alerts a WHERE a.tenant_id = ? AND a.id < ? AND NOT EXISTS (SELECT 1 "
        "FROM issue_alerts ia JOIN issues i ON i.tenant_id = ia.tenant_id AND i.id = "
        "ia.issue_id WHERE ia.tenant_id = a.tenant_id AND ia.alert_id = a.id AND i.status IN "
        "('open', 'acknowledged')) ORDER BY a.id LIMIT ?";
    char sql[1024];
    snprintf(sql, sizeof sql, "DELETE FROM issue_alerts WHERE tenant_id = ? AND alert_id IN (%s)",
             purgeable);
    struct db_stmt *st = db_stmt(db, sql);
    db_bind_text(st, 1, tenant);
    db_bind_text(st, 2, tenant);
    db_bind_text(st, 3, alr_floor);
    db_bind_int(st, 4, limit);
    enum err rc = db_run(st);
    if (rc != ERR_OK)
        return rc;
    snprintf(sql, sizeof sql, "DELETE FROM alerts WHERE tenant_id = ? AND id IN (%s)", purgeable);
    st = db_stmt(db, sql);
    db_bind_text(st, 1, tenant);
    db_bind_text(st, 2, tenant);
    db_bind_text(st, 3, alr_floor);
    db_bind_int(st, 4, limit);
    if ((rc = db_run(st)) != ERR_OK)
        return rc;
    *alerts = db_changes(st);
    /* Finished tasks only: a pending or running task may still be updated. */
    st = db_stmt(db, "DELETE FROM tasks WHERE tenant_id = ? AND id IN (SELECT t.id FROM tasks t "
                     "WHERE t.tenant_id = ? AND t.id < ? AND t.updated_at < ? AND t.status IN "
                     "('succeeded', 'failed') AND NOT EXISTS (SELECT 1 FROM alerts a WHERE "
                     "a.tenant_id = t.tenant_id AND a.task_id = t.id) ORDER BY t.id LIMIT ?)");
    db_bind_text(st, 1, tenant);
    db_bind_text(st, 2, tenant);
    db_bind_text(st, 3, tsk_floor);
    db_bind_int(st, 4, before);
    db_bind_int(st, 5, limit);
    if ((rc = db_run(st)) != ERR_OK)
        return rc;
    *tasks = db_changes(st);
    return ERR_OK;
}

/* --- rendering ------------------------------------------------------------------------ */

json_t *alert_json_row(struct db_stmt *st)
{
    json_t *o = json_object();
    json_set_str(o, "id", db_col_text(st, 0));
    json_set_str(o, "event", db_col_text(st, 1));
    json_set_str(o, "category", db_col_text(st, 2));
    json_set_str(o, "connection", db_col_text(st, 3));
    json_set_str(o, "entity_id", db_col_text(st, 4));
    json_set_str(o, "task_id", db_col_text(st, 5));
    json_set_str(o, "message", db_col_text(st, 6));
    json_object_set_new(o, "details", json_stored(db_col_text(st, 7)));
    json_set_time(o, "occurred_at", db_col_int(st, 8));
    json_set_time(o, "created_at", db_col_int(st, 9));
    json_set_time(o, "resolved_at", db_col_opt_int(st, 10));
    return o;
}

enum err alert_json_issue_ids(struct db *db, const char *tenant, json_t *alert)
{
    json_t *ids = json_array();
    struct db_stmt *q = db_stmt(db, "SELECT issue_id FROM issue_alerts WHERE tenant_id = ? AND "
                                    "alert_id = ? ORDER BY issue_id");
    db_bind_text(q, 1, tenant);
    db_bind_text(q, 2, json_string_value(json_object_get(alert, "id")));
    enum err rc;
    while ((rc = db_next(q)) == ERR_OK)
        json_array_append_new(ids, json_string(db_col_text(q, 0)));
    if (rc != ERR_DONE) {
        json_decref(ids);
        return rc;
    }
    json_object_set_new(alert, "issue_ids", ids);
    return ERR_OK;
}
