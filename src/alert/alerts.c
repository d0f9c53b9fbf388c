/* Alert and task rows. Writer thread only (inside the caller's transaction). */
#include "alert/alerts.h"

#include <stdio.h>
#include <string.h>

#include "core/log.h"
#include "core/metrics.h"
#include "core/timeutil.h"
#include "stream/catalog.h"

enum err alert_record(struct db *db, const char *tenant, const struct alert_in *a,
                      char id_out[ID_MAX])
{
    char id[ID_MAX], category[72];
    int64_t now = time_now_ms();
    id_new("alr", now, id);
    catalog_entity(a->event, category, sizeof category);
    struct db_stmt *st = db_stmt(
        db, "INSERT INTO alerts (tenant_id, id, event, category, connection, entity_id, task_id, "
            "message, details, occurred_at, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)");
    db_bind_text(st, 1, tenant);
    db_bind_text(st, 2, id);
    db_bind_text(st, 3, a->event);
    db_bind_text(st, 4, category);
    db_bind_text(st, 5, a->connection);
    db_bind_text(st, 6, a->entity_id);
    db_bind_text(st, 7, a->task_id);
    db_bind_text(st, 8, a->message);
    db_bind_text(st, 9, a->details);
    db_bind_int(st, 10, a->occurred_at >= 0 ? a->occurred_at : now);
    db_bind_int(st, 11, now);
    enum err rc = db_run(st);
    if (rc == ERR_OK && id_out)
        memcpy(id_out, id, ID_MAX);
    if (rc == ERR_OK)
        log_info("alert", "tenant %s: %s on %s: %s", tenant, a->event,
                 a->connection ? a->connection : "-", a->message);
    return rc;
}

enum err task_record(struct db *db, const char *tenant, const char *kind,
                     const char *connection, const char *entity_id, const char *status,
                     const char *details, char id_out[ID_MAX])
{
    char id[ID_MAX];
    int64_t now = time_now_ms();
    id_new("tsk", now, id);
    struct db_stmt *st = db_stmt(
        db, "INSERT INTO tasks (tenant_id, id, kind, connection, entity_id, status, started_at, "
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

enum err alerts_resolve_task(struct db *db, const char *tenant, const char *task_id)
{
    struct db_stmt *st = db_stmt(db, "UPDATE alerts SET resolved_at = ? WHERE tenant_id = ? AND "
                                     "task_id = ? AND resolved_at IS NULL");
    db_bind_int(st, 1, time_now_ms());
    db_bind_text(st, 2, tenant);
    db_bind_text(st, 3, task_id);
    return db_run(st);
}
