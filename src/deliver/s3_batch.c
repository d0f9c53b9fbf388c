/* S3 batch rows: append, close, claim, outcomes. Writer thread only, inside the writer's
 * transaction (see s3_int.h). Invariants: an integration has at most one open batch; a
 * delivery joins at most one batch (deliveries.batch_id = the batch's id, only set where it
 * is NULL) and is then in_flight until its batch is uploaded or fails for good; closing
 * fixes the object key and nothing joins a closed batch, so its membership, and therefore
 * its object's bytes, never change. */
#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/buf.h"
#include "core/json.h"
#include "core/log.h"
#include "core/timeutil.h"
#include "core/xalloc.h"
#include "deliver/outcome.h"
#include "deliver/retry.h"
#include "deliver/s3_int.h"
#include "store/store.h"
#include "stream/deliveries.h"

#define S3_APPEND_BUSY_RETRY_MS 50

struct open_batch {
    char id[ID_MAX];
    int64_t seq, bytes, count, first, opened_at;
};

static void bind_opt_int(struct db_stmt *st, int i, int64_t v)
{
    if (v < 0)
        db_bind_null(st, i);
    else
        db_bind_int(st, i, v);
}

static enum err load_open(struct db *db, const char *tenant, const char *integration,
                          struct open_batch *b, bool *found, bool *busy)
{
    struct db_stmt *st =
        db_kind(db) == DB_PG
            ? db_stmt(db, "SELECT id, seq, bytes, count, first_published_at, opened_at FROM "
                          "s3_batches WHERE tenant_id = ? AND integration_id = ? AND state = "
                          "'open' FOR UPDATE SKIP LOCKED")
            : db_stmt(db, "SELECT id, seq, bytes, count, first_published_at, opened_at FROM "
                          "s3_batches WHERE tenant_id = ? AND integration_id = ? AND state = "
                          "'open'");
    db_bind_text(st, 1, tenant);
    db_bind_text(st, 2, integration);
    enum err rc = db_next(st);
    *found = rc == ERR_OK;
    *busy = false;
    if (rc == ERR_DONE && db_kind(db) == DB_PG) {
        /* Another node's transaction is appending to it: give way rather than wait (waiting
         * inside a transaction that holds other rows is how nodes deadlock). */
        db_release(db);
        st = db_stmt(db, "SELECT 1 FROM s3_batches WHERE tenant_id = ? AND integration_id = ? "
                         "AND state = 'open'");
        db_bind_text(st, 1, tenant);
        db_bind_text(st, 2, integration);
        rc = db_next(st);
        *busy = rc == ERR_OK;
        if (rc == ERR_OK)
            rc = ERR_DONE;
    } else if (rc == ERR_OK) {
        snprintf(b->id, sizeof b->id, "%s", db_col_text(st, 0));
        b->seq = db_col_int(st, 1);
        b->bytes = db_col_int(st, 2);
        b->count = db_col_int(st, 3);
        b->first = db_col_opt_int(st, 4);
        b->opened_at = db_col_int(st, 5);
    }
    db_release(db);
    return rc == ERR_DONE || rc == ERR_OK ? ERR_OK : rc;
}

static enum err open_new(struct db *db, const char *tenant, const char *integration, int64_t now,
                         struct open_batch *b)
{
    struct db_stmt *st = db_stmt(db, "SELECT COALESCE(MAX(seq), 0) FROM s3_batches WHERE "
                                     "tenant_id = ? AND integration_id = ?");
    db_bind_text(st, 1, tenant);
    db_bind_text(st, 2, integration);
    enum err rc = db_next(st);
    if (rc != ERR_OK)
        return rc == ERR_DONE ? ERR_STORAGE : rc;
    memset(b, 0, sizeof *b);
    b->seq = db_col_int(st, 0) + 1;
    db_release(db);
    b->first = -1;
    b->opened_at = now;
    id_new("s3b", now, b->id);
    st = db_stmt(db, "INSERT INTO s3_batches (tenant_id, id, integration_id, seq, state, "
                     "opened_at) VALUES (?, ?, ?, ?, 'open', ?)");
    db_bind_text(st, 1, tenant);
    db_bind_text(st, 2, b->id);
    db_bind_text(st, 3, integration);
    db_bind_int(st, 4, b->seq);
    db_bind_int(st, 5, now);
    return db_run(st);
}

static enum err save_open(struct db *db, const char *tenant, const struct open_batch *b)
{
    struct db_stmt *st = db_stmt(db, "UPDATE s3_batches SET bytes = ?, count = ?, "
                                     "first_published_at = ?, opened_at = ? WHERE tenant_id = ? "
                                     "AND id = ?");
    db_bind_int(st, 1, b->bytes);
    db_bind_int(st, 2, b->count);
    bind_opt_int(st, 3, b->first);
    db_bind_int(st, 4, b->opened_at);
    db_bind_text(st, 5, tenant);
    db_bind_text(st, 6, b->id);
    return db_run(st);
}

/* <prefix><YYYY>/<MM>/<DD>/<HH>/<integration>-<first published_at compact>-<seq>.jsonl[.gz] */
static void object_key(const char *prefix, const char *integration, int64_t first, int64_t seq,
                       bool gzip, char *out, size_t outlen)
{
    time_t t = (time_t)(first / 1000);
    struct tm tm;
    gmtime_r(&t, &tm);
    char compact[20];
    time_format_compact(first, compact);
    snprintf(out, outlen, "%s%04d/%02d/%02d/%02d/%s-%s-%010lld.jsonl%s", prefix, tm.tm_year + 1900,
             tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, integration, compact, (long long)seq,
             gzip ? ".gz" : "");
}

static enum err close_batch(struct db *db, const char *tenant, const char *integration,
                            const struct s3_conf *conf, struct open_batch *b, int64_t now)
{
    char key[1100];
    object_key(conf->prefix, integration, b->first, b->seq, conf->gzip, key, sizeof key);
    struct db_stmt *st = db_stmt(
        db, "UPDATE s3_batches SET state = 'closing', bytes = ?, count = ?, first_published_at "
            "= ?, object_key = ?, compression = ?, closed_at = ?, next_attempt_at = ? WHERE "
            "tenant_id = ? AND id = ?");
    db_bind_int(st, 1, b->bytes);
    db_bind_int(st, 2, b->count);
    db_bind_int(st, 3, b->first);
    db_bind_text(st, 4, key);
    db_bind_text(st, 5, conf->gzip ? "gzip" : "none");
    db_bind_int(st, 6, now);
    db_bind_int(st, 7, now);
    db_bind_text(st, 8, tenant);
    db_bind_text(st, 9, b->id);
    enum err rc = db_run(st);
    if (rc != ERR_OK)
        return rc;
    log_info("s3", "tenant %s integration %s: closed batch %lld (%lld events, %lld bytes) as %s",
             tenant, integration, (long long)b->seq, (long long)b->count, (long long)b->bytes, key);
    return open_new(db, tenant, integration, now, b);
}

/* Adds candidates to the open batch; counts only the rows that joined (some may have been
 * taken meanwhile by another node, or be no longer pending). A member is in_flight (held by
 * its batch, without a lease time): pausing, skipping and the webhook engine leave it
 * alone, and the scan for unbatched rows skips it. */
static enum err add_members(struct db *db, const char *tenant, const char *integration,
                            struct open_batch *b, const struct s3_candidate *c, int n)
{
    const char **ids = xcalloc((size_t)n, sizeof *ids);
    bool *joined = xcalloc((size_t)n, sizeof *joined);
    for (int i = 0; i < n; i++)
        ids[i] = c[i].delivery_id;
    enum err rc = deliveries_join_batch(db, tenant, integration, b->id, ids, n, joined);
    for (int i = 0; rc == ERR_OK && i < n; i++) {
        if (!joined[i])
            continue;
        b->bytes += c[i].bytes;
        b->count++;
        if (b->first < 0 || c[i].published_at < b->first)
            b->first = c[i].published_at;
    }
    free(ids);
    free(joined);
    return rc;
}

enum err s3_batch_append(struct db *db, const char *tenant, const char *integration,
                         const struct s3_candidate *c, int n, int64_t max_bytes, int64_t max_age_ms,
                         int64_t *next_close, int *closed)
{
    *next_close = -1;
    *closed = 0;
    int64_t now = time_now_ms();
    struct db_stmt *st = db_stmt(db, "SELECT state, target, target_type FROM integrations WHERE "
                                     "tenant_id = ? AND id = ?");
    db_bind_text(st, 1, tenant);
    db_bind_text(st, 2, integration);
    enum err rc = db_next(st);
    if (rc != ERR_OK)
        return rc == ERR_DONE ? ERR_NOT_FOUND : rc;
    bool paused = !strcmp(db_col_text(st, 0), "paused");
    bool is_s3 = !strcmp(db_col_text(st, 2), "s3");
    struct s3_conf conf = {0};
    bool conf_ok = is_s3 && s3_conf_load(db_col_text(st, 1), &conf) == ERR_OK;
    db_release(db);
    if (!is_s3 || paused)
        goto out;
    if (!conf_ok) { /* a target we cannot read (master key?): nothing can be closed */
        rc = ERR_INVALID;
        goto out;
    }
    struct open_batch b;
    bool found, busy;
    if ((rc = load_open(db, tenant, integration, &b, &found, &busy)) != ERR_OK)
        goto out;
    if (busy) { /* the appending node's commit is near: try again shortly */
        *next_close = now + S3_APPEND_BUSY_RETRY_MS;
        goto out;
    }
    if (!found && (rc = open_new(db, tenant, integration, now, &b)) != ERR_OK)
        goto out;
    for (int i = 0; i < n;) {
        /* The next run of candidates that fits in the open batch: one statement joins them
         * (deliveries_join_batch). */
        int k = i;
        int64_t bytes = b.bytes;
        while (k < n) {
            if (b.count + (k - i) > 0 && bytes + c[k].bytes > max_bytes)
                break;
            bytes += c[k].bytes;
            k++;
            if (bytes >= max_bytes)
                break;
        }
        if (k > i && (rc = add_members(db, tenant, integration, &b, c + i, k - i)) != ERR_OK)
            goto out;
        if (k == i || b.bytes >= max_bytes) {
            if ((rc = close_batch(db, tenant, integration, &conf, &b, now)) != ERR_OK)
                goto out;
            (*closed)++;
        }
        i = k;
    }
    int64_t age = time_scaled(max_age_ms);
    if (now >= b.opened_at + age) {
        if (b.count > 0) {
            if ((rc = close_batch(db, tenant, integration, &conf, &b, now)) != ERR_OK)
                goto out;
            (*closed)++;
        } else {
            b.opened_at = now; /* an empty batch closes without an object */
        }
    }
    rc = save_open(db, tenant, &b);
    *next_close = b.opened_at + age;
out:
    s3_conf_cleanup(&conf);
    return rc;
}

enum err s3_batch_claim(struct db *db, const char *tenant, const char *integration,
                        const char *node, int64_t lease_ms, struct s3_claim *out, int64_t *next_due)
{
    int64_t now = time_now_ms();
    *next_due = -1;
    struct db_stmt *st = db_stmt(
        db, "UPDATE s3_batches SET lease_owner = ?, lease_until = ?, attempts = attempts + 1, "
            "first_attempt_at = COALESCE(first_attempt_at, ?), last_attempt_at = ? WHERE "
            "tenant_id = ? AND state = 'closing' AND (lease_until IS NULL OR lease_until < ?) AND "
            "id = (SELECT id FROM s3_batches WHERE tenant_id = ? AND integration_id = ? AND "
            "state = 'closing' AND next_attempt_at <= ? AND (lease_until IS NULL OR lease_until "
            "< ?) ORDER BY seq LIMIT 1) RETURNING id, object_key, COALESCE(upload_id, ''), seq, "
            "count, bytes, attempts, compression");
    db_bind_text(st, 1, node);
    db_bind_int(st, 2, now + lease_ms);
    db_bind_int(st, 3, now);
    db_bind_int(st, 4, now);
    db_bind_text(st, 5, tenant);
    db_bind_int(st, 6, now);
    db_bind_text(st, 7, tenant);
    db_bind_text(st, 8, integration);
    db_bind_int(st, 9, now);
    db_bind_int(st, 10, now);
    enum err rc = db_next(st);
    if (rc == ERR_OK) {
        memset(out, 0, sizeof *out);
        snprintf(out->id, sizeof out->id, "%s", db_col_text(st, 0));
        snprintf(out->key, sizeof out->key, "%s", db_col_text(st, 1));
        snprintf(out->upload_id, sizeof out->upload_id, "%s", db_col_text(st, 2));
        out->seq = db_col_int(st, 3);
        out->count = db_col_int(st, 4);
        out->bytes = db_col_int(st, 5);
        out->attempt = (int)db_col_int(st, 6);
        out->gzip = !strcmp(db_col_text(st, 7), "gzip");
        if ((rc = db_next(st)) == ERR_DONE) /* finish the statement (PostgreSQL: one row) */
            rc = ERR_OK;
    }
    db_release(db);
    if (rc != ERR_OK && rc != ERR_DONE)
        return rc;
    /* A batch leased by another node (or a dead one) is due again when its lease ends. */
    struct db_stmt *q = db_stmt(db, "SELECT MIN(CASE WHEN lease_until IS NOT NULL AND "
                                    "lease_until > next_attempt_at THEN lease_until + 1 ELSE "
                                    "next_attempt_at END) FROM s3_batches WHERE tenant_id = ? AND "
                                    "integration_id = ? AND state = 'closing'");
    db_bind_text(q, 1, tenant);
    db_bind_text(q, 2, integration);
    enum err qrc = db_next(q);
    if (qrc == ERR_OK && !db_col_null(q, 0))
        *next_due = db_col_int(q, 0);
    db_release(db);
    if (qrc != ERR_OK && qrc != ERR_DONE)
        return qrc;
    return rc;
}

static enum err insert_attempt(struct db *db, const struct s3_outcome *o)
{
    struct db_stmt *st = db_stmt(
        db, "INSERT INTO s3_batch_attempts (tenant_id, batch_id, attempt, node_id, started_at, "
            "duration_ms, status, error) VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING");
    db_bind_text(st, 1, o->tenant);
    db_bind_text(st, 2, o->batch_id);
    db_bind_int(st, 3, o->attempt);
    db_bind_text(st, 4, o->node);
    db_bind_int(st, 5, o->started_at);
    db_bind_int(st, 6, o->duration_ms);
    bind_opt_int(st, 7, o->status ? o->status : -1);
    db_bind_text(st, 8, o->error);
    return db_run(st);
}

/* The batch's upload failed for good, or S3 refused it in a way that will not heal by itself:
 * an s3_upload task (once per batch) and its alert. */
static enum err upload_alert(struct db *db, const struct s3_outcome *o, const char *message,
                             char task[ID_MAX])
{
    json_t *d =
        json_pack("{s:s,s:s,s:i}", "batch_id", o->batch_id, "key", o->key, "attempts", o->attempt);
    json_object_set_new(d, "status", o->status ? json_integer(o->status) : json_null());
    json_set_str(d, "code", *o->code ? o->code : NULL);
    json_set_str(d, "s3_message", o->message);
    json_set_str(d, "error", o->error);
    char *details = json_dumps(d, JSON_COMPACT);
    json_decref(d);
    enum err rc = outcome_alert(db, o->tenant, "s3_upload", o->integration, NULL,
                                "event_stream.delivery_failed", message, details, task);
    free(details);
    return rc;
}

/* Ends the batch's lease with its new state, or (state NULL) schedules its retry at due. */
static enum err batch_update(struct db *db, const struct s3_outcome *o, const char *state,
                             int64_t now, int64_t due, const char *error)
{
    struct db_stmt *st;
    if (state && !strcmp(state, "uploaded")) {
        st = db_stmt(db, "UPDATE s3_batches SET state = 'uploaded', uploaded_at = ?, "
                         "object_bytes = ?, last_status = ?, last_error = NULL, lease_owner = "
                         "NULL, lease_until = NULL, upload_id = NULL WHERE tenant_id = ? AND id "
                         "= ?");
        db_bind_int(st, 1, now);
        db_bind_int(st, 2, o->object_bytes);
        db_bind_int(st, 3, o->status);
        db_bind_text(st, 4, o->tenant);
        db_bind_text(st, 5, o->batch_id);
    } else if (state) {
        st = db_stmt(db, "UPDATE s3_batches SET state = ?, last_status = ?, last_error = ?, "
                         "lease_owner = NULL, lease_until = NULL WHERE tenant_id = ? AND id = ?");
        db_bind_text(st, 1, state);
        bind_opt_int(st, 2, o->status ? o->status : -1);
        db_bind_text(st, 3, error);
        db_bind_text(st, 4, o->tenant);
        db_bind_text(st, 5, o->batch_id);
    } else {
        st = db_stmt(db, "UPDATE s3_batches SET next_attempt_at = ?, last_status = ?, last_error "
                         "= ?, lease_owner = NULL, lease_until = NULL WHERE tenant_id = ? AND id "
                         "= ?");
        db_bind_int(st, 1, due);
        bind_opt_int(st, 2, o->status ? o->status : -1);
        db_bind_text(st, 3, error);
        db_bind_text(st, 4, o->tenant);
        db_bind_text(st, 5, o->batch_id);
    }
    return db_run(st);
}

enum err s3_batch_outcome(struct db *db, const struct s3_outcome *o, enum outcome_kind *kind)
{
    assert(store_is_writer());
    int64_t now = time_now_ms();
    enum err rc = insert_attempt(db, o);
    if (rc != ERR_OK)
        return rc;
    struct db_stmt *st = db_stmt(db, "SELECT first_attempt_at, COALESCE(task_id, '') FROM "
                                     "s3_batches WHERE tenant_id = ? AND id = ? AND state = "
                                     "'closing' AND lease_owner = ?");
    db_bind_text(st, 1, o->tenant);
    db_bind_text(st, 2, o->batch_id);
    db_bind_text(st, 3, o->node);
    rc = db_next(st);
    if (rc == ERR_DONE) {
        *kind = OUTCOME_STALE;
        return ERR_OK;
    }
    if (rc != ERR_OK)
        return rc;
    int64_t first = db_col_null(st, 0) ? now : db_col_int(st, 0);
    char task[ID_MAX];
    snprintf(task, sizeof task, "%s", db_col_text(st, 1));
    db_release(db);
    struct batch_attempt members = {.tenant = o->tenant,
                                    .integration = o->integration,
                                    .batch_id = o->batch_id,
                                    .attempt = o->attempt,
                                    .started_at = o->started_at,
                                    .status = o->status,
                                    .error = o->error};

    if (!o->error) {
        *kind = OUTCOME_SUCCEEDED;
        if ((rc = batch_update(db, o, "uploaded", now, -1, NULL)) == ERR_OK &&
            (rc = deliveries_batch_attempt(db, &members, "succeeded", now)) == ERR_OK && task[0])
            rc = outcome_recover(db, o->tenant, "s3_upload", o->integration, NULL, task);
        return rc == ERR_OK
                   ? outcome_integration(db, o->tenant, o->integration, true, o->started_at, NULL)
                   : rc;
    }

    char msg[2400];
    if (*o->code)
        snprintf(msg, sizeof msg, "S3 upload of %s failed: HTTP %ld %s: %s", o->key, o->status,
                 o->code, o->message ? o->message : "");
    else
        snprintf(msg, sizeof msg, "S3 upload of %s failed: %s", o->key, o->error);
    if (now - first >= retry_give_up_after()) {
        *kind = OUTCOME_FAILED;
        char final[2600];
        snprintf(final, sizeof final, "%s (giving up after %d attempts)", msg, o->attempt);
        if ((rc = batch_update(db, o, "failed", now, -1, msg)) == ERR_OK &&
            (rc = deliveries_batch_attempt(db, &members, "failed", now)) == ERR_OK)
            rc = upload_alert(db, o, final, task);
    } else {
        *kind = OUTCOME_RETRY;
        int64_t due = now + retry_next_delay(o->attempt, o->retry_after);
        if ((rc = batch_update(db, o, NULL, now, due, msg)) == ERR_OK)
            rc = deliveries_batch_attempt(db, &members, NULL, now);
        /* Bad credentials, clock skew or a missing bucket will not heal by themselves: alert
         * at once (once per batch), and keep retrying. */
        if (rc == ERR_OK && (o->status == 403 || o->status == 404) && !task[0]) {
            rc = upload_alert(db, o, msg, task);
            if (rc == ERR_OK) {
                st = db_stmt(db, "UPDATE s3_batches SET task_id = ? WHERE tenant_id = ? AND "
                                 "id = ?");
                db_bind_text(st, 1, task);
                db_bind_text(st, 2, o->tenant);
                db_bind_text(st, 3, o->batch_id);
                rc = db_run(st);
            }
        }
    }
    if (rc == ERR_OK)
        rc = outcome_integration(db, o->tenant, o->integration, false, o->started_at, NULL);
    return rc;
}

enum err s3_batch_set_upload(struct db *db, const char *tenant, const char *batch_id,
                             const char *node, const char *upload_id)
{
    struct db_stmt *st = db_stmt(db, "UPDATE s3_batches SET upload_id = ? WHERE tenant_id = ? "
                                     "AND id = ? AND lease_owner = ?");
    db_bind_text(st, 1, upload_id);
    db_bind_text(st, 2, tenant);
    db_bind_text(st, 3, batch_id);
    db_bind_text(st, 4, node);
    return db_run(st);
}

enum err s3_batch_release(struct db *db, const char *node)
{
    struct db_stmt *st =
        node ? db_stmt(db, "UPDATE s3_batches SET lease_owner = NULL, lease_until = NULL WHERE "
                           "state = 'closing' AND lease_owner = ?")
             : db_stmt(db, "UPDATE s3_batches SET lease_owner = NULL, lease_until = NULL WHERE "
                           "state = 'closing' AND lease_owner IS NOT NULL");
    if (node)
        db_bind_text(st, 1, node);
    return db_run(st);
}

enum err s3_batch_remove(struct db *db, const char *tenant, const char *integration)
{
    struct db_stmt *st =
        db_stmt(db, "DELETE FROM s3_batch_attempts WHERE tenant_id = ? AND batch_id IN (SELECT "
                    "id FROM s3_batches WHERE tenant_id = ? AND integration_id = ?)");
    db_bind_text(st, 1, tenant);
    db_bind_text(st, 2, tenant);
    db_bind_text(st, 3, integration);
    enum err rc = db_run(st);
    if (rc != ERR_OK)
        return rc;
    st = db_stmt(db, "DELETE FROM s3_batches WHERE tenant_id = ? AND integration_id = ?");
    db_bind_text(st, 1, tenant);
    db_bind_text(st, 2, integration);
    return db_run(st);
}

enum err s3_batch_renew(struct db *db, const char *tenant, const char *batch_id, const char *node,
                        int64_t until, bool *held)
{
    assert(store_is_writer());
    struct db_stmt *st = db_stmt(db, "UPDATE s3_batches SET lease_until = ? WHERE tenant_id = ? "
                                     "AND id = ? AND state = 'closing' AND lease_owner = ?");
    db_bind_int(st, 1, until);
    db_bind_text(st, 2, tenant);
    db_bind_text(st, 3, batch_id);
    db_bind_text(st, 4, node);
    enum err rc = db_run(st);
    *held = rc == ERR_OK && db_changes(st) > 0;
    return rc;
}
