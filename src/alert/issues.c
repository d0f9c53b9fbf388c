/* Issues and their timeline. Writer thread only, inside the caller's transaction: the
 * policy index (alert/policies.c) is the writer's cache, and every change here commits
 * with the alert or request that caused it.
 *
 * Invariant: at most one issue per (tenant, policy, group key) is open or acknowledged —
 * the partial unique index issues_open_key enforces it on every node; the insert below
 * uses ON CONFLICT DO NOTHING against that index and re-reads the winner. */
#include "alert/issues.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alert/channels.h"
#include "alert/policies.h"
#include "core/buf.h"
#include "core/id.h"
#include "core/log.h"
#include "core/metrics.h"
#include "core/timeutil.h"
#include "core/xalloc.h"
#include "store/store.h"

#define AUTO_CLOSE_BATCH 100
#define MAX_MATCHES 64

static struct metric m_opened = {.name = "sluice_issues_opened_total",
                                 .help = "Issues opened by the alert engine.",
                                 .type = "counter"};
static struct metric m_closed_manual = {.name = "sluice_issues_closed_total",
                                        .help = "Issues closed, by reason.",
                                        .type = "counter",
                                        .labels = "reason=\"manual\""};
static struct metric m_closed_auto = {.name = "sluice_issues_closed_total",
                                      .help = "Issues closed, by reason.",
                                      .type = "counter",
                                      .labels = "reason=\"auto\""};
static struct metric m_closed_recovered = {.name = "sluice_issues_closed_total",
                                           .help = "Issues closed, by reason.",
                                           .type = "counter",
                                           .labels = "reason=\"recovered\""};

/* The open-issues gauge, computed at scrape time on the HTTP thread with its own read
 * connection (the partial unique index issues_open_key covers the count). */
static void render_open_gauge(struct buf *out)
{
    struct db *db = store_reader();
    if (!db)
        return;
    struct db_stmt *st =
        db_stmt(db, "SELECT COUNT(*) FROM issues WHERE status IN ('open', 'acknowledged')");
    enum err rc = db_next(st);
    if (rc == ERR_OK)
        buf_printf(out,
                   "# HELP sluice_issues_open Issues open or acknowledged, every tenant.\n"
                   "# TYPE sluice_issues_open gauge\nsluice_issues_open %lld\n",
                   (long long)db_col_int(st, 0));
    else /* the scrape goes on without this gauge; say why */
        log_warn("issues", "open-issues gauge not read: %s", db_errmsg(db));
    db_release(db);
}

static struct metric_fn m_open = {.render = render_open_gauge};

void issues_register_metrics(void)
{
    metric_fn_register(&m_open);
    metric_register(&m_opened);
    metric_register(&m_closed_manual);
    metric_register(&m_closed_auto);
    metric_register(&m_closed_recovered);
}

enum err issue_timeline_add(struct db *db, const char *tenant, const char *issue_id,
                            const char *kind, const char *actor, const char *detail, int64_t now)
{
    char id[ID_MAX];
    id_new("itl", now, id);
    struct db_stmt *st =
        db_stmt(db, "INSERT INTO issue_timeline (tenant_id, issue_id, id, at, kind, actor, "
                    "detail) VALUES (?, ?, ?, ?, ?, ?, ?)");
    db_bind_text(st, 1, tenant);
    db_bind_text(st, 2, issue_id);
    db_bind_text(st, 3, id);
    db_bind_int(st, 4, now);
    db_bind_text(st, 5, kind);
    db_bind_text(st, 6, actor);
    db_bind_text(st, 7, detail);
    enum err rc = db_run(st);
    if (rc != ERR_OK)
        return rc;
    st = db_stmt(db, "UPDATE issues SET fold_timeline_id = NULL WHERE tenant_id = ? AND id = ? "
                     "AND fold_timeline_id IS NOT NULL");
    db_bind_text(st, 1, tenant);
    db_bind_text(st, 2, issue_id);
    return db_run(st);
}

/* Queues kind ("opened"/"closed") for every channel of the rule. */
static enum err notify_rule(struct db *db, const char *tenant, const struct policy_rule *r,
                            const char *issue_id, const char *kind, int64_t now)
{
    enum err rc = ERR_OK;
    for (int i = 0; i < r->nchannels && rc == ERR_OK; i++)
        rc = notify_enqueue(db, tenant, r->channels[i].id, r->channels[i].window_ms, issue_id, kind,
                            now);
    return rc;
}

static int64_t auto_close_at(const struct policy_rule *r, int64_t from)
{
    return r->auto_close_ms >= 0 ? from + time_scaled(r->auto_close_ms) : -1;
}

static void bind_opt_int(struct db_stmt *st, int i, int64_t v)
{
    if (v >= 0)
        db_bind_int(st, i, v);
    else
        db_bind_null(st, i);
}

/* Writes the group key of an alert under rule r into key (reset first). */
static void group_key(const struct policy_rule *r, const struct alert_in *a, struct buf *key)
{
    const char *vals[4] = {a->event, a->connection, a->entity_id, a->message};
    static const char *const names[4] = {"event", "connection", "entity_id", "message"};
    buf_reset(key);
    for (int k = 0; k < 4; k++) {
        if (!(r->group_by & (1u << k)))
            continue;
        buf_puts(key, names[k]);
        buf_putc(key, '=');
        buf_puts(key, vals[k] ? vals[k] : "");
        buf_putc(key, '\n');
    }
    if (!key->len)
        buf_puts(key, "*");
}

/* Builds the group object and the title of a new issue. */
static void group_describe(const struct policy_rule *r, const struct alert_in *a, json_t **group,
                           struct buf *title)
{
    const char *vals[4] = {a->event, a->connection, a->entity_id, a->message};
    static const char *const names[4] = {"event", "connection", "entity_id", "message"};
    *group = json_object();
    for (int k = 0; k < 4; k++)
        if (r->group_by & (1u << k))
            json_set_str(*group, names[k], vals[k]);
    buf_puts(title, (r->group_by & POLICY_GROUP_EVENT) ? a->event : r->name);
    if ((r->group_by & POLICY_GROUP_CONNECTION) && a->connection)
        buf_printf(title, " on %s", a->connection);
    if ((r->group_by & POLICY_GROUP_ENTITY) && a->entity_id)
        buf_printf(title, " for %s", a->entity_id);
    if ((r->group_by & POLICY_GROUP_MESSAGE) && a->message)
        buf_printf(title, ": %.120s", a->message);
}

/* Moves the open or acknowledged issue of (policy, key) by k alerts in one statement and
 * returns its id and fold entry; ERR_DONE when the key has no open issue. */
static enum err bump_open(struct db *db, const char *tenant, const struct policy_rule *r,
                          const char *key, int64_t k, int64_t now, char id[ID_MAX],
                          char fold[ID_MAX])
{
    struct db_stmt *st = db_stmt(
        db, "UPDATE issues SET alert_count = alert_count + ?, last_alert_at = ?, auto_close_at = "
            "? WHERE tenant_id = ? AND policy_id = ? AND group_key = ? AND status IN ('open', "
            "'acknowledged') RETURNING id, fold_timeline_id");
    db_bind_int(st, 1, k);
    db_bind_int(st, 2, now);
    bind_opt_int(st, 3, auto_close_at(r, now));
    db_bind_text(st, 4, tenant);
    db_bind_text(st, 5, r->id);
    db_bind_text(st, 6, key);
    enum err rc = db_next(st);
    if (rc == ERR_OK) {
        snprintf(id, ID_MAX, "%s", db_col_text(st, 0));
        snprintf(fold, ID_MAX, "%s", db_col_null(st, 1) ? "" : db_col_text(st, 1));
        enum err more;
        while ((more = db_next(st)) == ERR_OK) { /* at most one row: the unique index */
        }
        if (more != ERR_DONE)
            rc = more;
    }
    return rc;
}

/* Records k added alerts (the first being alert_id) on the timeline: folded into the
 * current alert_added entry, or a new one that later additions fold into. */
static enum err add_timeline(struct db *db, const char *tenant, const char *issue, const char *fold,
                             const char *alert_id, int64_t k, int64_t now)
{
    struct db_stmt *st;
    if (*fold) { /* consecutive additions fold into one entry with a count */
        st = db_stmt(db, "UPDATE issue_timeline SET count = count + ?, at = ? WHERE tenant_id = "
                         "? AND issue_id = ? AND id = ?");
        db_bind_int(st, 1, k);
        db_bind_int(st, 2, now);
        db_bind_text(st, 3, tenant);
        db_bind_text(st, 4, issue);
        db_bind_text(st, 5, fold);
        return db_run(st);
    }
    char tid[ID_MAX];
    id_new("itl", now, tid);
    st = db_stmt(db, "INSERT INTO issue_timeline (tenant_id, issue_id, id, at, kind, actor, "
                     "detail, count) VALUES (?, ?, ?, ?, 'alert_added', 'system', ?, ?)");
    db_bind_text(st, 1, tenant);
    db_bind_text(st, 2, issue);
    db_bind_text(st, 3, tid);
    db_bind_int(st, 4, now);
    db_bind_text(st, 5, alert_id);
    db_bind_int(st, 6, k);
    enum err rc = db_run(st);
    if (rc != ERR_OK)
        return rc;
    st = db_stmt(db, "UPDATE issues SET fold_timeline_id = ? WHERE tenant_id = ? AND id = ?");
    db_bind_text(st, 1, tid);
    db_bind_text(st, 2, tenant);
    db_bind_text(st, 3, issue);
    return db_run(st);
}

static enum err open_issue(struct db *db, const char *tenant, const struct policy_rule *r,
                           const char *key, json_t *group, const char *title, const char *alert_id,
                           int64_t count, int64_t now, char id[ID_MAX], bool *opened)
{
    *opened = false;
    char prev[ID_MAX] = "";
    struct db_stmt *st = db_stmt(db, "SELECT id FROM issues WHERE tenant_id = ? AND policy_id = "
                                     "? AND group_key = ? ORDER BY id DESC LIMIT 1");
    db_bind_text(st, 1, tenant);
    db_bind_text(st, 2, r->id);
    db_bind_text(st, 3, key);
    enum err rc = db_next(st);
    if (rc == ERR_OK)
        snprintf(prev, sizeof prev, "%s", db_col_text(st, 0));
    else if (rc != ERR_DONE)
        return rc;
    id_new("iss", now, id);
    char *gj = json_dumps(group, JSON_COMPACT | JSON_SORT_KEYS);
    st = db_stmt(db, "INSERT INTO issues (tenant_id, id, policy_id, group_key, group_json, "
                     "title, status, alert_count, opened_at, last_alert_at, previous_issue_id, "
                     "auto_close_at) VALUES (?, ?, ?, ?, ?, ?, 'open', ?, ?, ?, ?, ?) "
                     "ON CONFLICT (tenant_id, policy_id, group_key) "
                     "WHERE status IN ('open', 'acknowledged') DO NOTHING");
    db_bind_text(st, 1, tenant);
    db_bind_text(st, 2, id);
    db_bind_text(st, 3, r->id);
    db_bind_text(st, 4, key);
    db_bind_text(st, 5, gj);
    db_bind_text(st, 6, title);
    db_bind_int(st, 7, count);
    db_bind_int(st, 8, now);
    db_bind_int(st, 9, now);
    db_bind_text(st, 10, *prev ? prev : NULL);
    bind_opt_int(st, 11, auto_close_at(r, now));
    rc = db_run(st);
    free(gj);
    if (rc != ERR_OK || db_changes(st) == 0)
        return rc; /* another node opened it first: the caller re-reads */
    *opened = true;
    char detail[200];
    if (*prev)
        snprintf(detail, sizeof detail, "opened by alert %s; previous issue %s", alert_id, prev);
    else
        snprintf(detail, sizeof detail, "opened by alert %s", alert_id);
    rc = issue_timeline_add(db, tenant, id, "opened", "system", detail, now);
    if (rc == ERR_OK && count > 1) /* the rest of this batch, folded */
        rc = add_timeline(db, tenant, id, "", alert_id, count - 1, now);
    if (rc == ERR_OK && r->notify_opened)
        rc = notify_rule(db, tenant, r, id, "opened", now);
    return rc;
}

/* Links every (issue, alert) pair of a batch with one set-based statement. */
static enum err link_alerts(struct db *db, const char *tenant, const char *const *issues,
                            const char *const *alerts, size_t n)
{
    struct db_rows r;
    db_rows_init(&r, "ttt");
    for (size_t i = 0; i < n; i++) {
        db_rows_text(&r, tenant);
        db_rows_text(&r, issues[i]);
        db_rows_text(&r, alerts[i]);
    }
    enum err rc = db_rows_run(db,
                              "INSERT INTO issue_alerts (tenant_id, issue_id, alert_id) {ROWS} "
                              "ON CONFLICT DO NOTHING",
                              &r, NULL, NULL, NULL);
    db_rows_cleanup(&r);
    return rc;
}

/* One (policy, group key) of a batch and the alerts that fall into it. */
struct batch_group {
    const struct policy_rule *rule;
    char *key;
    struct buf title;
    json_t *group;
    size_t *members, n, cap;
    char issue[ID_MAX];       /* the issue the group's alerts went to */
    char fold[ID_MAX];        /* its alert_added entry to fold into ("" for none) */
    bool bumped;              /* its open issue was moved by bump_chunk() */
    struct batch_group *next; /* hash chain */
};

#define GROUP_BUCKETS 256

static unsigned group_hash(const char *policy_id, const char *key)
{
    unsigned h = 2166136261u;
    for (const unsigned char *p = (const unsigned char *)policy_id; *p; p++)
        h = (h ^ *p) * 16777619u;
    h = (h ^ '\n') * 16777619u;
    for (const unsigned char *p = (const unsigned char *)key; *p; p++)
        h = (h ^ *p) * 16777619u;
    return h % GROUP_BUCKETS;
}

/* The batch's group of (policy id, key), or NULL. */
static struct batch_group *group_find(struct batch_group *const *buckets, const char *policy_id,
                                      const char *key)
{
    struct batch_group *g = buckets[group_hash(policy_id, key)];
    while (g && (strcmp(g->rule->id, policy_id) || strcmp(g->key, key)))
        g = g->next;
    return g;
}

/* Upserts the issue of one group and links its alerts. */
static enum err apply_group(struct db *db, const char *tenant, struct batch_group *g,
                            const char (*ids)[ID_MAX], int64_t now)
{
    const struct policy_rule *r = g->rule;
    const char *first = ids[g->members[0]];
    char id[ID_MAX], fold[ID_MAX];
    enum err rc = ERR_OK;
    for (int attempt = 0; attempt < 2; attempt++) {
        rc = bump_open(db, tenant, r, g->key, (int64_t)g->n, now, id, fold);
        if (rc == ERR_OK) {
            rc = add_timeline(db, tenant, id, fold, first, (int64_t)g->n, now);
            break;
        }
        if (rc != ERR_DONE)
            break;
        bool opened;
        rc = open_issue(db, tenant, r, g->key, g->group, g->title.data, first, (int64_t)g->n, now,
                        id, &opened);
        if (rc != ERR_OK || opened) {
            if (opened)
                store_count(&m_opened, 1); /* once committed */
            break;
        }
        rc = ERR_CONFLICT; /* lost a race with another node: read its issue */
    }
    memcpy(g->issue, id, ID_MAX);
    return rc;
}

/* Set-based forms of bump_open() and the timeline fold, for every group of a batch at
 * once (db_rows: a few chunks on SQLite, one array-bound statement on PostgreSQL). */
static enum err bumped_row(struct db_stmt *st, void *arg)
{
    struct batch_group *g = group_find(arg, db_col_text(st, 0), db_col_text(st, 1));
    if (g && !g->bumped) { /* at most one row per group: the unique index */
        g->bumped = true;
        snprintf(g->issue, ID_MAX, "%s", db_col_text(st, 2));
        snprintf(g->fold, ID_MAX, "%s", db_col_null(st, 3) ? "" : db_col_text(st, 3));
    }
    return ERR_OK;
}

/* Moves the open issues of the groups in one statement; marks the groups found. */
static enum err bump_groups(struct db *db, const char *tenant, struct batch_group *const *buckets,
                            struct batch_group **g, size_t n, int64_t now)
{
    struct db_rows r;
    db_rows_init(&r, "tttiii");
    for (size_t i = 0; i < n; i++) {
        db_rows_text(&r, tenant);
        db_rows_text(&r, g[i]->rule->id);
        db_rows_text(&r, g[i]->key);
        db_rows_int(&r, (int64_t)g[i]->n);
        db_rows_int(&r, now);
        db_rows_opt_int(&r, auto_close_at(g[i]->rule, now));
    }
    enum err rc = db_rows_run(
        db,
        "UPDATE issues SET alert_count = alert_count + v.column4, last_alert_at = v.column5, "
        "auto_close_at = v.column6 FROM ({ROWS}) AS v WHERE issues.tenant_id = v.column1 AND "
        "issues.policy_id = v.column2 AND issues.group_key = v.column3 AND issues.status IN "
        "('open', 'acknowledged') RETURNING issues.policy_id, issues.group_key, issues.id, "
        "issues.fold_timeline_id",
        &r, bumped_row, (void *)buckets, NULL);
    db_rows_cleanup(&r);
    return rc;
}

/* Folds the additions of bumped groups into their alert_added entries, in one statement. */
static enum err fold_groups(struct db *db, const char *tenant, struct batch_group **g, size_t n,
                            int64_t now)
{
    struct db_rows r;
    db_rows_init(&r, "tttii");
    for (size_t i = 0; i < n; i++) {
        db_rows_text(&r, tenant);
        db_rows_text(&r, g[i]->issue);
        db_rows_text(&r, g[i]->fold);
        db_rows_int(&r, (int64_t)g[i]->n);
        db_rows_int(&r, now);
    }
    enum err rc = db_rows_run(db,
                              "UPDATE issue_timeline SET count = count + v.column4, at = "
                              "v.column5 FROM ({ROWS}) AS v WHERE issue_timeline.tenant_id = "
                              "v.column1 AND issue_timeline.issue_id = v.column2 AND "
                              "issue_timeline.id = v.column3",
                              &r, NULL, NULL, NULL);
    db_rows_cleanup(&r);
    return rc;
}

/* Applies every group: set-based moves of existing issues first, then the groups that need
 * a new issue (or a new alert_added entry) one by one. */
static enum err apply_groups(struct db *db, const char *tenant, struct batch_group *const *buckets,
                             struct batch_group **all, size_t ngroups, const char (*ids)[ID_MAX],
                             int64_t now)
{
    enum err rc = bump_groups(db, tenant, buckets, all, ngroups, now);
    struct batch_group **folds = xcalloc(ngroups ? ngroups : 1, sizeof *folds);
    size_t nf = 0;
    for (size_t i = 0; i < ngroups && rc == ERR_OK; i++) {
        struct batch_group *g = all[i];
        if (!g->bumped)
            rc = apply_group(db, tenant, g, ids, now);
        else if (!g->fold[0])
            rc = add_timeline(db, tenant, g->issue, "", ids[g->members[0]], (int64_t)g->n, now);
        else
            folds[nf++] = g;
    }
    if (rc == ERR_OK)
        rc = fold_groups(db, tenant, folds, nf, now);
    free(folds);
    return rc;
}

enum err issues_on_alerts(struct db *db, const char *tenant, const char (*ids)[ID_MAX],
                          const struct alert_in *a, size_t n, int64_t now, size_t *matched)
{
    *matched = 0;
    struct policy_index *ix;
    enum err rc = policy_index_get(db, tenant, &ix);
    if (rc != ERR_OK)
        return rc;
    struct batch_group *buckets[GROUP_BUCKETS] = {0};
    struct batch_group **all = NULL;
    size_t ngroups = 0, cap = 0;
    struct buf key = BUF_INIT;
    for (size_t i = 0; i < n; i++) {
        const struct policy_rule *rules[MAX_MATCHES];
        int m = policy_index_match(ix, a[i].event, a[i].connection, rules, MAX_MATCHES);
        if (m)
            (*matched)++;
        for (int k = 0; k < m; k++) {
            group_key(rules[k], &a[i], &key);
            struct batch_group *g = group_find(buckets, rules[k]->id, key.data);
            if (!g) {
                unsigned h = group_hash(rules[k]->id, key.data);
                g = xcalloc(1, sizeof *g);
                g->rule = rules[k];
                g->key = xstrdup(key.data);
                group_describe(rules[k], &a[i], &g->group, &g->title);
                g->next = buckets[h];
                buckets[h] = g;
                if (ngroups == cap) {
                    cap = cap ? 2 * cap : 16;
                    all = xrealloc(all, cap * sizeof *all);
                }
                all[ngroups++] = g;
            }
            if (g->n == g->cap) {
                g->cap = g->cap ? 2 * g->cap : 4;
                g->members = xrealloc(g->members, g->cap * sizeof *g->members);
            }
            g->members[g->n++] = i;
        }
    }
    size_t nlinks = 0;
    for (size_t i = 0; i < ngroups; i++)
        nlinks += all[i]->n;
    rc = apply_groups(db, tenant, buckets, all, ngroups, ids, now);
    if (rc == ERR_OK) { /* every link of the batch, a chunk at a time */
        const char **li = xcalloc(nlinks ? nlinks : 1, sizeof *li);
        const char **la = xcalloc(nlinks ? nlinks : 1, sizeof *la);
        size_t k = 0;
        for (size_t i = 0; i < ngroups; i++)
            for (size_t j = 0; j < all[i]->n; j++, k++) {
                li[k] = all[i]->issue;
                la[k] = ids[all[i]->members[j]];
            }
        rc = link_alerts(db, tenant, li, la, nlinks);
        free(li);
        free(la);
    }
    for (size_t i = 0; i < ngroups; i++) {
        free(all[i]->key);
        buf_cleanup(&all[i]->title);
        json_decref(all[i]->group);
        free(all[i]->members);
        free(all[i]);
    }
    free(all);
    buf_cleanup(&key);
    return rc;
}

static struct metric *closed_metric(const char *reason)
{
    if (!strcmp(reason, "auto"))
        return &m_closed_auto;
    if (!strcmp(reason, "recovered"))
        return &m_closed_recovered;
    return &m_closed_manual;
}

/* The issue's policy id; ERR_NOT_FOUND when there is no such issue. */
static enum err issue_policy(struct db *db, const char *tenant, const char *id, char policy[ID_MAX],
                             char status[16])
{
    struct db_stmt *st =
        db_stmt(db, "SELECT policy_id, status FROM issues WHERE tenant_id = ? AND id = ?");
    db_bind_text(st, 1, tenant);
    db_bind_text(st, 2, id);
    enum err rc = db_next(st);
    if (rc != ERR_OK)
        return rc == ERR_DONE ? ERR_NOT_FOUND : rc;
    snprintf(policy, ID_MAX, "%s", db_col_text(st, 0));
    snprintf(status, 16, "%s", db_col_text(st, 1));
    return ERR_OK;
}

enum err issue_close(struct db *db, const char *tenant, const char *id, const char *reason,
                     const char *actor, const char *comment, int64_t now)
{
    char policy[ID_MAX], status[16];
    enum err rc = issue_policy(db, tenant, id, policy, status);
    if (rc != ERR_OK)
        return rc;
    struct db_stmt *st =
        db_stmt(db, "UPDATE issues SET status = 'closed', closed_at = ?, close_reason = ?, "
                    "auto_close_at = NULL WHERE tenant_id = ? AND id = ? AND status IN ('open', "
                    "'acknowledged')");
    db_bind_int(st, 1, now);
    db_bind_text(st, 2, reason);
    db_bind_text(st, 3, tenant);
    db_bind_text(st, 4, id);
    if ((rc = db_run(st)) != ERR_OK)
        return rc;
    if (db_changes(st) == 0)
        return ERR_CONFLICT;
    char *detail = comment && *comment ? xasprintf("%s: %s", reason, comment) : xstrdup(reason);
    rc = issue_timeline_add(db, tenant, id, "closed", actor, detail, now);
    free(detail);
    if (rc == ERR_OK) {
        struct policy_index *ix;
        rc = policy_index_get(db, tenant, &ix);
        const struct policy_rule *r = rc == ERR_OK ? policy_index_rule(ix, policy) : NULL;
        if (r && r->notify_closed)
            rc = notify_rule(db, tenant, r, id, "closed", now);
    }
    if (rc == ERR_OK)
        store_count(closed_metric(reason), 1); /* once committed */
    return rc;
}

enum err issue_acknowledge(struct db *db, const char *tenant, const char *id, const char *actor,
                           int64_t now)
{
    char policy[ID_MAX], status[16];
    enum err rc = issue_policy(db, tenant, id, policy, status);
    if (rc != ERR_OK)
        return rc;
    struct db_stmt *st = db_stmt(db, "UPDATE issues SET status = 'acknowledged', "
                                     "acknowledged_at = ? WHERE tenant_id = ? AND id = ? AND "
                                     "status = 'open'");
    db_bind_int(st, 1, now);
    db_bind_text(st, 2, tenant);
    db_bind_text(st, 3, id);
    if ((rc = db_run(st)) != ERR_OK)
        return rc;
    if (db_changes(st) == 0)
        return ERR_CONFLICT;
    return issue_timeline_add(db, tenant, id, "acknowledged", actor, NULL, now);
}

enum err issue_reopen(struct db *db, const char *tenant, const char *id, const char *actor,
                      int64_t now)
{
    char policy[ID_MAX], status[16];
    enum err rc = issue_policy(db, tenant, id, policy, status);
    if (rc != ERR_OK)
        return rc;
    if (strcmp(status, "closed") != 0)
        return ERR_CONFLICT;
    /* The partial unique index answers for another open issue of the key (409); the check
     * first keeps PostgreSQL's transaction usable. */
    struct db_stmt *st = db_stmt(
        db, "SELECT 1 FROM issues o JOIN issues c ON c.tenant_id = o.tenant_id AND c.policy_id "
            "= o.policy_id AND c.group_key = o.group_key WHERE c.tenant_id = ? AND c.id = ? AND "
            "o.status IN ('open', 'acknowledged')");
    db_bind_text(st, 1, tenant);
    db_bind_text(st, 2, id);
    rc = db_next(st);
    if (rc == ERR_OK)
        return ERR_CONFLICT;
    if (rc != ERR_DONE)
        return rc;
    struct policy_index *ix;
    if ((rc = policy_index_get(db, tenant, &ix)) != ERR_OK)
        return rc;
    const struct policy_rule *r = policy_index_rule(ix, policy);
    st = db_stmt(db, "UPDATE issues SET status = 'open', closed_at = NULL, close_reason = NULL, "
                     "acknowledged_at = NULL, auto_close_at = ? WHERE tenant_id = ? AND id = ? "
                     "AND status = 'closed'");
    bind_opt_int(st, 1, r ? auto_close_at(r, now) : -1);
    db_bind_text(st, 2, tenant);
    db_bind_text(st, 3, id);
    if ((rc = db_run(st)) != ERR_OK)
        return rc;
    return issue_timeline_add(db, tenant, id, "reopened", actor, NULL, now);
}

enum err issue_comment(struct db *db, const char *tenant, const char *id, const char *actor,
                       const char *text, int64_t now)
{
    char policy[ID_MAX], status[16];
    enum err rc = issue_policy(db, tenant, id, policy, status);
    if (rc != ERR_OK)
        return rc;
    return issue_timeline_add(db, tenant, id, "comment", actor, text, now);
}

enum err issues_recovery(struct db *db, const char *tenant, const char *alert_id, int64_t now)
{
    struct policy_index *ix;
    enum err rc = policy_index_get(db, tenant, &ix);
    if (rc != ERR_OK)
        return rc;
    struct db_stmt *st = db_stmt(
        db, "SELECT i.id, i.policy_id FROM issue_alerts ia JOIN issues i ON i.tenant_id = "
            "ia.tenant_id AND i.id = ia.issue_id WHERE ia.tenant_id = ? AND ia.alert_id = ? AND "
            "i.status IN ('open', 'acknowledged')");
    db_bind_text(st, 1, tenant);
    db_bind_text(st, 2, alert_id);
    char ids[MAX_MATCHES][ID_MAX];
    int n = 0;
    while ((rc = db_next(st)) == ERR_OK && n < MAX_MATCHES) {
        const struct policy_rule *r = policy_index_rule(ix, db_col_text(st, 1));
        if (r && r->close_on_recovery)
            snprintf(ids[n++], ID_MAX, "%s", db_col_text(st, 0));
    }
    if (rc != ERR_DONE && rc != ERR_OK)
        return rc;
    rc = ERR_OK;
    for (int i = 0; i < n && rc == ERR_OK; i++) {
        st = db_stmt(db, "SELECT 1 FROM issue_alerts ia JOIN alerts a ON a.tenant_id = "
                         "ia.tenant_id AND a.id = ia.alert_id WHERE ia.tenant_id = ? AND "
                         "ia.issue_id = ? AND a.resolved_at IS NULL LIMIT 1");
        db_bind_text(st, 1, tenant);
        db_bind_text(st, 2, ids[i]);
        rc = db_next(st);
        if (rc == ERR_OK) {
            rc = ERR_OK; /* still has unresolved alerts */
            continue;
        }
        if (rc != ERR_DONE)
            return rc;
        rc = issue_close(db, tenant, ids[i], "recovered", "system", "every alert is resolved", now);
        if (rc == ERR_CONFLICT)
            rc = ERR_OK;
    }
    return rc;
}

enum err issues_auto_close(struct db *db, int64_t now, int64_t *closed)
{
    *closed = 0;
    struct db_stmt *st = db_stmt(
        db, "SELECT tenant_id, id FROM issues WHERE status IN ('open', 'acknowledged') AND "
            "auto_close_at IS NOT NULL AND auto_close_at <= ? ORDER BY auto_close_at LIMIT 100");
    db_bind_int(st, 1, now);
    struct {
        char tenant[72];
        char id[ID_MAX];
    } due[AUTO_CLOSE_BATCH] = {0};
    int n = 0;
    enum err rc;
    while ((rc = db_next(st)) == ERR_OK && n < AUTO_CLOSE_BATCH) {
        snprintf(due[n].tenant, sizeof due[n].tenant, "%s", db_col_text(st, 0));
        snprintf(due[n].id, ID_MAX, "%s", db_col_text(st, 1));
        n++;
    }
    if (rc != ERR_DONE && rc != ERR_OK)
        return rc;
    rc = ERR_OK;
    for (int i = 0; i < n && rc == ERR_OK; i++) {
        rc = issue_close(db, due[i].tenant, due[i].id, "auto", "system",
                         "no new alert within auto_close_after", now);
        if (rc == ERR_CONFLICT)
            rc = ERR_OK;
        else if (rc == ERR_OK)
            (*closed)++;
    }
    return rc;
}

/* --- rendering ------------------------------------------------------------------------ */

json_t *issue_json_row(struct db_stmt *st)
{
    json_t *o = json_object();
    json_set_str(o, "id", db_col_text(st, 0));
    json_set_str(o, "policy_id", db_col_text(st, 1));
    json_set_str(o, "title", db_col_text(st, 2));
    json_t *g = json_loads(db_col_text(st, 3), 0, NULL);
    json_object_set_new(o, "group", g ? g : json_object());
    json_set_str(o, "status", db_col_text(st, 4));
    json_object_set_new(o, "alert_count", json_integer(db_col_int(st, 5)));
    json_set_time(o, "opened_at", db_col_int(st, 6));
    json_set_time(o, "last_alert_at", db_col_int(st, 7));
    json_set_time(o, "acknowledged_at", db_col_opt_int(st, 8));
    json_set_time(o, "closed_at", db_col_opt_int(st, 9));
    json_set_str(o, "close_reason", db_col_text(st, 10));
    json_set_str(o, "previous_issue_id", db_col_text(st, 11));
    return o;
}

enum err issue_json_load(struct db *db, const char *tenant, const char *id, json_t **out)
{
    struct db_stmt *st =
        db_stmt(db, "SELECT " ISSUE_JSON_COLS " FROM issues WHERE tenant_id = ? AND id = ?");
    db_bind_text(st, 1, tenant);
    db_bind_text(st, 2, id);
    enum err rc = db_next(st);
    if (rc != ERR_OK)
        return rc == ERR_DONE ? ERR_NOT_FOUND : rc;
    *out = issue_json_row(st);
    return ERR_OK;
}
