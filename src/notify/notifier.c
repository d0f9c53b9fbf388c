/* The notifier thread: claim due notifications, render, send over SMTP, record.
 *
 * Runs on its own thread with its own read connection; claims and outcomes go through the
 * writer (store_write). No lock is held across I/O: g.lock guards only the stop flag, the
 * wake flag and the last SMTP error. A mail's Message-ID is derived from its notification
 * id and its Date from the first attempt, so a resend after a crash between the SMTP send
 * and the commit is the same mail (at-least-once, deduplicable by Message-ID). */
#include "notify/notifier.h"

#include <curl/curl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "alert/issues.h"
#include "core/buf.h"
#include "core/crypto.h"
#include "core/log.h"
#include "core/metrics.h"
#include "core/timeutil.h"
#include "core/xalloc.h"
#include "notify/unsubscribe.h"
#include "store/store.h"

#define CLAIM_BATCH 10
#define IDLE_WAIT_MS 250
#define LIST_CAP 20
#define REFS_CAP 50
#define GIVE_UP_MS (24LL * 3600 * 1000)

static struct metric m_sent = {.name = "sluice_notifications_total",
                               .help = "Notification mails by outcome.",
                               .type = "counter",
                               .labels = "outcome=\"sent\""};
static struct metric m_retry = {.name = "sluice_notifications_total",
                                .help = "Notification mails by outcome.",
                                .type = "counter",
                                .labels = "outcome=\"retry\""};
static struct metric m_failed = {.name = "sluice_notifications_total",
                                 .help = "Notification mails by outcome.",
                                 .type = "counter",
                                 .labels = "outcome=\"failed\""};

static struct {
    const struct config *cfg;
    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    bool stopping, running, woken;
    char last_error[256];
} g = {.lock = PTHREAD_MUTEX_INITIALIZER, .cond = PTHREAD_COND_INITIALIZER};

static const int64_t backoff_ms[] = {30000,  60000,  120000,  300000,
                                     600000, 900000, 1800000, 3600000};

/* --- SMTP ------------------------------------------------------------------------------ */

struct upload {
    const char *data;
    size_t len, off;
};

static size_t upload_read(char *ptr, size_t size, size_t nmemb, void *userdata)
{
    struct upload *u = userdata;
    size_t n = size * nmemb;
    if (n > u->len - u->off)
        n = u->len - u->off;
    memcpy(ptr, u->data + u->off, n);
    u->off += n;
    return n;
}

/* The bare address of --smtp-from ("Name <a@b>" -> "a@b"). */
static void from_address(char *out, size_t outlen)
{
    const char *from = g.cfg->smtp_from ? g.cfg->smtp_from : "sluice@localhost";
    const char *lt = strchr(from, '<');
    if (lt) {
        const char *gt = strchr(lt, '>');
        snprintf(out, outlen, "%.*s", gt ? (int)(gt - lt - 1) : (int)strlen(lt + 1), lt + 1);
    } else {
        snprintf(out, outlen, "%s", from);
    }
}

static void set_smtp_state(const char *err)
{
    pthread_mutex_lock(&g.lock);
    snprintf(g.last_error, sizeof g.last_error, "%s", err ? err : "");
    pthread_mutex_unlock(&g.lock);
}

const char *notifier_smtp_state(char *out, size_t outlen)
{
    if (!g.cfg || !g.cfg->smtp_url)
        return "disabled";
    pthread_mutex_lock(&g.lock);
    snprintf(out, outlen, "%s", g.last_error[0] ? g.last_error : "ok");
    pthread_mutex_unlock(&g.lock);
    return out;
}

static enum err smtp_send(json_t *rcpts, const char *msg, size_t len, char *err, size_t errlen)
{
    CURL *c = curl_easy_init();
    if (!c) {
        snprintf(err, errlen, "curl_easy_init failed");
        return ERR_IO;
    }
    char from[256], mailfrom[260], ebuf[CURL_ERROR_SIZE] = "";
    from_address(from, sizeof from);
    snprintf(mailfrom, sizeof mailfrom, "<%s>", from);
    struct curl_slist *to = NULL;
    size_t i;
    json_t *e;
    json_array_foreach(rcpts, i, e)
    {
        char r[300];
        snprintf(r, sizeof r, "<%s>", json_string_value(e));
        to = curl_slist_append(to, r);
    }
    struct upload u = {msg, len, 0};
    curl_easy_setopt(c, CURLOPT_URL, g.cfg->smtp_url);
    curl_easy_setopt(c, CURLOPT_MAIL_FROM, mailfrom);
    curl_easy_setopt(c, CURLOPT_MAIL_RCPT, to);
    curl_easy_setopt(c, CURLOPT_READFUNCTION, upload_read);
    curl_easy_setopt(c, CURLOPT_READDATA, &u);
    curl_easy_setopt(c, CURLOPT_UPLOAD, 1L);
    curl_easy_setopt(c, CURLOPT_INFILESIZE_LARGE, (curl_off_t)len);
    curl_easy_setopt(c, CURLOPT_USE_SSL, (long)CURLUSESSL_TRY); /* STARTTLS when offered */
    if (g.cfg->smtp_ca_file)
        curl_easy_setopt(c, CURLOPT_CAINFO, g.cfg->smtp_ca_file);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, 10000L);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 60000L);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, ebuf);
    CURLcode cc = curl_easy_perform(c);
    enum err rc = ERR_OK;
    if (cc != CURLE_OK) {
        long code = 0;
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code);
        if (code)
            snprintf(err, errlen, "SMTP %ld: %s", code, ebuf[0] ? ebuf : curl_easy_strerror(cc));
        else
            snprintf(err, errlen, "%s", ebuf[0] ? ebuf : curl_easy_strerror(cc));
        rc = ERR_IO;
    }
    set_smtp_state(rc == ERR_OK ? NULL : err);
    curl_slist_free_all(to);
    curl_easy_cleanup(c);
    return rc;
}

/* --- rendering ------------------------------------------------------------------------- */

static void mail_domain(char *out, size_t outlen)
{
    char from[256];
    from_address(from, sizeof from);
    const char *at = strchr(from, '@');
    snprintf(out, outlen, "%s", at && at[1] ? at + 1 : "sluice.local");
}

static void rfc5322_date(int64_t ms, char *out, size_t outlen)
{
    time_t t = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&t, &tm);
    static const char *const days[] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
    static const char *const mons[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                       "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
    snprintf(out, outlen, "%s, %02d %s %04d %02d:%02d:%02d +0000", days[tm.tm_wday], tm.tm_mday,
             mons[tm.tm_mon], tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec);
}

/* Appends an RFC 2047 encoded header value, split into encoded words at UTF-8 boundaries. */
static void put_encoded(struct buf *b, const char *s)
{
    size_t n = strlen(s), i = 0;
    bool first = true;
    while (i < n) {
        size_t take = n - i > 45 ? 45 : n - i;
        while (take < n - i && take > 0 && ((unsigned char)s[i + take] & 0xC0) == 0x80)
            take--;
        char *enc = base64_encode((const unsigned char *)s + i, take);
        buf_printf(b, "%s=?UTF-8?B?%s?=", first ? "" : "\r\n ", enc);
        free(enc);
        first = false;
        i += take;
    }
}

static void put_base64_body(struct buf *b, const char *s)
{
    char *enc = base64_encode((const unsigned char *)s, strlen(s));
    size_t n = strlen(enc);
    for (size_t i = 0; i < n; i += 76)
        buf_printf(b, "%.*s\r\n", (int)(n - i > 76 ? 76 : n - i), enc + i);
    free(enc);
}

struct item {
    char kind[12];
    char issue[ID_MAX];
    char *title;
    char status[16];
    int64_t alerts, opened_at, last_alert_at;
};

struct mail {
    char tenant[72];
    char id[ID_MAX];
    char channel_id[ID_MAX];
    char *channel_name;
    char *tenant_name;
    json_t *rcpts;     /* the channel's addresses when the mail is sent */
    json_t *delivered; /* the addresses already mailed by an earlier attempt of this row */
    int64_t first_attempt_at;
    int attempts;
    struct item *items;
    size_t nitems;
    char *subject;
    struct buf msg;
};

static void mail_cleanup(struct mail *m)
{
    free(m->channel_name);
    free(m->tenant_name);
    json_decref(m->rcpts);
    json_decref(m->delivered);
    for (size_t i = 0; i < m->nitems; i++)
        free(m->items[i].title);
    free(m->items);
    free(m->subject);
    buf_cleanup(&m->msg);
    memset(m, 0, sizeof *m);
}

static void render_section(struct buf *txt, struct buf *html, const struct mail *m,
                           const char *kind, const char *heading, size_t count)
{
    if (!count)
        return;
    const char *base = g.cfg->public_url;
    buf_printf(txt, "%s (%zu):\n", heading, count);
    buf_printf(html, "<h3>%s (%zu)</h3>\n<ul>\n", heading, count);
    size_t shown = 0;
    for (size_t i = 0; i < m->nitems; i++) {
        const struct item *it = &m->items[i];
        if (strcmp(it->kind, kind) != 0)
            continue;
        if (shown == LIST_CAP)
            break;
        shown++;
        char opened[TIME_RFC3339_LEN];
        time_format(it->opened_at, opened);
        buf_printf(txt, "- %s — %lld alert%s, opened %s, now %s\n  %s/#/issues/%s\n", it->title,
                   (long long)it->alerts, it->alerts == 1 ? "" : "s", opened, it->status, base,
                   it->issue);
        buf_printf(html, "<li><a href=\"%s/#/issues/%s\">", base, it->issue);
        buf_put_html(html, it->title);
        buf_printf(html, "</a> — %lld alert%s, opened %s, now %s</li>\n", (long long)it->alerts,
                   it->alerts == 1 ? "" : "s", opened, it->status);
    }
    if (count > shown) {
        buf_printf(txt, "…and %zu more\n", count - shown);
        buf_printf(html, "<li>…and %zu more</li>\n", count - shown);
    }
    buf_puts(txt, "\n");
    buf_puts(html, "</ul>\n");
}

/* The signed unsubscribe URL of rcpt for m's channel; malloc'd. */
static char *unsubscribe_url(const struct mail *m, const char *rcpt)
{
    char *token = unsubscribe_token(m->tenant, m->channel_id, rcpt);
    char *url = xasprintf("%s/unsubscribe/%s", g.cfg->public_url, token);
    free(token);
    return url;
}

/* Builds m's subject and, into m->msg, the message for one recipient: each recipient gets a
 * mail of their own, because its unsubscribe link names them. */
static void render(struct mail *m, const char *rcpt)
{
    const char *tenant_name = m->tenant_name;
    size_t opened = 0, closed = 0;
    for (size_t i = 0; i < m->nitems; i++) {
        if (!strcmp(m->items[i].kind, "opened"))
            opened++;
        else if (!strcmp(m->items[i].kind, "closed"))
            closed++;
    }
    struct buf subj = BUF_INIT;
    buf_puts(&subj, "[Sluice] ");
    if (opened)
        buf_printf(&subj, "%zu opened", opened);
    if (opened && closed)
        buf_puts(&subj, " · ");
    if (closed)
        buf_printf(&subj, "%zu closed", closed);
    buf_printf(&subj, " — %s", tenant_name);
    free(m->subject);
    m->subject = buf_steal(&subj);
    char *unsub = unsubscribe_url(m, rcpt);

    char domain[200], date[64];
    mail_domain(domain, sizeof domain);
    rfc5322_date(m->first_attempt_at, date, sizeof date);
    struct buf txt = BUF_INIT, html = BUF_INIT;
    buf_printf(&txt, "%s — issues for the notification channel \"%s\"\n\n", tenant_name,
               m->channel_name);
    buf_puts(&html, "<!DOCTYPE html>\n<html><body>\n<h2>");
    buf_put_html(&html, tenant_name);
    buf_puts(&html, " — issues for the notification channel &quot;");
    buf_put_html(&html, m->channel_name);
    buf_puts(&html, "&quot;</h2>\n");
    render_section(&txt, &html, m, "opened", "Opened", opened);
    render_section(&txt, &html, m, "closed", "Closed", closed);
    buf_printf(&txt, "Console: %s/#/issues\nStop these mails: %s\n", g.cfg->public_url, unsub);
    buf_printf(&html,
               "<p><a href=\"%s/#/issues\">Open the console</a> · <a href=\"%s\">Stop these "
               "mails</a> (unsubscribes ",
               g.cfg->public_url, unsub);
    buf_put_html(&html, rcpt);
    buf_puts(&html, " from this channel)</p>\n</body></html>\n");

    struct buf *b = &m->msg;
    buf_reset(b);
    buf_printf(b, "From: %s\r\n", g.cfg->smtp_from ? g.cfg->smtp_from : "sluice@localhost");
    buf_printf(b, "To: %s\r\nSubject: ", rcpt);
    put_encoded(b, m->subject);
    buf_printf(b, "\r\nDate: %s\r\nMessage-ID: <%s@%s>\r\n", date, m->id, domain);
    /* Threading: one thread per issue; a digest references every issue it lists. */
    size_t distinct = 0;
    struct buf refs = BUF_INIT;
    char last[ID_MAX] = "";
    for (size_t k = 0; k < m->nitems && distinct < REFS_CAP; k++) {
        bool seen = false;
        for (size_t j = 0; j < k; j++)
            seen = seen || !strcmp(m->items[j].issue, m->items[k].issue);
        if (seen)
            continue;
        buf_printf(&refs, "%s<%s@%s>", distinct ? "\r\n " : "", m->items[k].issue, domain);
        snprintf(last, sizeof last, "%s", m->items[k].issue);
        distinct++;
    }
    if (distinct) {
        buf_printf(b, "References: %s\r\n", refs.data);
        if (distinct == 1)
            buf_printf(b, "In-Reply-To: <%s@%s>\r\n", last, domain);
    }
    buf_cleanup(&refs);
    buf_printf(b,
               "Auto-Submitted: auto-generated\r\nX-Auto-Response-Suppress: All\r\n"
               "List-Unsubscribe: <%s>\r\nList-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n"
               "X-Sluice-Notification: %s\r\nMIME-Version: 1.0\r\n"
               "Content-Type: multipart/alternative; boundary=\"=_sluice_%s\"\r\n\r\n",
               unsub, m->id, m->id);
    buf_printf(b,
               "--=_sluice_%s\r\nContent-Type: text/plain; charset=utf-8\r\n"
               "Content-Transfer-Encoding: base64\r\n\r\n",
               m->id);
    put_base64_body(b, txt.data);
    buf_printf(b,
               "--=_sluice_%s\r\nContent-Type: text/html; charset=utf-8\r\n"
               "Content-Transfer-Encoding: base64\r\n\r\n",
               m->id);
    put_base64_body(b, html.data);
    buf_printf(b, "--=_sluice_%s--\r\n", m->id);
    buf_cleanup(&txt);
    buf_cleanup(&html);
    free(unsub);
}

/* Reads channel, tenant and items of m (claimed row). ERR_NOT_FOUND when the channel is
 * gone. */
static enum err load(struct db *db, struct mail *m)
{
    struct channel ch;
    enum err rc = channel_load(db, m->tenant, m->channel_id, &ch);
    if (rc != ERR_OK)
        return rc;
    m->channel_name = xstrdup(ch.name);
    m->rcpts = json_incref(ch.addresses);
    channel_cleanup(&ch);
    char tname[256];
    struct db_stmt *st = db_stmt(db, "SELECT name FROM tenants WHERE id = ?");
    db_bind_text(st, 1, m->tenant);
    rc = db_next(st);
    snprintf(tname, sizeof tname, "%s", rc == ERR_OK ? db_col_text(st, 0) : m->tenant);
    m->tenant_name = xstrdup(tname);
    st = db_stmt(db, "SELECT ni.kind, ni.issue_id, i.title, i.status, i.alert_count, "
                     "i.opened_at, i.last_alert_at FROM notification_items ni JOIN issues i ON "
                     "i.tenant_id = ni.tenant_id AND i.id = ni.issue_id WHERE ni.tenant_id = ? "
                     "AND ni.notification_id = ? ORDER BY ni.at, ni.issue_id");
    db_bind_text(st, 1, m->tenant);
    db_bind_text(st, 2, m->id);
    size_t cap = 0;
    while ((rc = db_next(st)) == ERR_OK) {
        if (m->nitems == cap) {
            cap = cap ? 2 * cap : 8;
            m->items = xrealloc(m->items, cap * sizeof *m->items);
        }
        struct item *it = &m->items[m->nitems++];
        snprintf(it->kind, sizeof it->kind, "%s", db_col_text(st, 0));
        snprintf(it->issue, sizeof it->issue, "%s", db_col_text(st, 1));
        it->title = xstrdup(db_col_text(st, 2));
        snprintf(it->status, sizeof it->status, "%s", db_col_text(st, 3));
        it->alerts = db_col_int(st, 4);
        it->opened_at = db_col_int(st, 5);
        it->last_alert_at = db_col_int(st, 6);
    }
    db_release(db);
    return rc == ERR_DONE ? ERR_OK : rc;
}

/* --- claims and outcomes (writer jobs) ------------------------------------------------- */

struct claim {
    int n;
    struct mail mails[CLAIM_BATCH];
};

static enum err claim_run(struct db *db, void *arg)
{
    struct claim *c = arg;
    int64_t now = time_now_ms();
    const char *sql =
        store_kind() == DB_PG
            ? "UPDATE notifications SET state = 'sending', lease_owner = ?, lease_until = ?, "
              "attempts = attempts + 1, first_attempt_at = COALESCE(first_attempt_at, ?) WHERE "
              "(tenant_id, id) IN (SELECT tenant_id, id FROM notifications WHERE (state = "
              "'pending' AND due_at <= ?) OR (state = 'sending' AND lease_until < ?) ORDER BY "
              "due_at LIMIT 10 FOR UPDATE SKIP LOCKED) RETURNING tenant_id, id, channel_id, "
              "attempts, first_attempt_at, delivered_to"
            : "UPDATE notifications SET state = 'sending', lease_owner = ?, lease_until = ?, "
              "attempts = attempts + 1, first_attempt_at = COALESCE(first_attempt_at, ?) WHERE "
              "(tenant_id, id) IN (SELECT tenant_id, id FROM notifications WHERE (state = "
              "'pending' AND due_at <= ?) OR (state = 'sending' AND lease_until < ?) ORDER BY "
              "due_at LIMIT 10) RETURNING tenant_id, id, channel_id, attempts, first_attempt_at, "
              "delivered_to";
    struct db_stmt *st = db_stmt(db, sql);
    db_bind_text(st, 1, g.cfg->node_id);
    db_bind_int(st, 2, now + g.cfg->lease_ms);
    db_bind_int(st, 3, now);
    db_bind_int(st, 4, now);
    db_bind_int(st, 5, now);
    enum err rc;
    for (int i = 0; i < c->n; i++) /* a batch run again (store.c) runs its jobs again */
        mail_cleanup(&c->mails[i]);
    c->n = 0;
    while ((rc = db_next(st)) == ERR_OK && c->n < CLAIM_BATCH) {
        struct mail *m = &c->mails[c->n++];
        memset(m, 0, sizeof *m);
        snprintf(m->tenant, sizeof m->tenant, "%s", db_col_text(st, 0));
        snprintf(m->id, sizeof m->id, "%s", db_col_text(st, 1));
        snprintf(m->channel_id, sizeof m->channel_id, "%s", db_col_text(st, 2));
        m->attempts = (int)db_col_int(st, 3);
        m->first_attempt_at = db_col_int(st, 4);
        const char *d = db_col_text(st, 5);
        m->delivered = d ? json_loads(d, 0, NULL) : NULL;
        if (!json_is_array(m->delivered)) {
            json_decref(m->delivered);
            m->delivered = json_array();
        }
    }
    if (rc == ERR_OK)
        while ((rc = db_next(st)) == ERR_OK) {
        }
    return rc == ERR_DONE ? ERR_OK : rc;
}

struct outcome {
    struct mail *m;
    bool sent;  /* every recipient has the mail */
    bool final; /* failed for good now (nothing left to mail to) */
    const char *error;
};

static enum err outcome_run(struct db *db, void *arg)
{
    struct outcome *o = arg;
    struct mail *m = o->m;
    int64_t now = time_now_ms();
    char *rcpts = m->rcpts ? json_dumps(m->rcpts, JSON_COMPACT) : NULL;
    char *delivered = json_dumps(m->delivered, JSON_COMPACT);
    const char *state;
    int64_t due = now;
    if (o->sent) {
        state = "sent";
    } else if (o->final || !m->rcpts || now - m->first_attempt_at >= time_scaled(GIVE_UP_MS)) {
        state = "failed";
    } else {
        state = "pending";
        int k = m->attempts - 1;
        int nb = (int)(sizeof backoff_ms / sizeof backoff_ms[0]);
        due = now + time_scaled(backoff_ms[k < nb ? (k < 0 ? 0 : k) : nb - 1]);
    }
    struct db_stmt *st = db_stmt(
        db, "UPDATE notifications SET state = ?, due_at = ?, lease_owner = NULL, lease_until = "
            "NULL, sent_at = ?, last_error = ?, recipients = COALESCE(?, recipients), subject = "
            "COALESCE(?, subject), delivered_to = ? WHERE tenant_id = ? AND id = ? AND state = "
            "'sending' AND lease_owner = ?");
    db_bind_text(st, 1, state);
    db_bind_int(st, 2, due);
    if (o->sent)
        db_bind_int(st, 3, now);
    else
        db_bind_null(st, 3);
    db_bind_text(st, 4, o->sent ? NULL : o->error);
    db_bind_text(st, 5, rcpts);
    db_bind_text(st, 6, m->subject);
    db_bind_text(st, 7, delivered);
    db_bind_text(st, 8, m->tenant);
    db_bind_text(st, 9, m->id);
    db_bind_text(st, 10, g.cfg->node_id);
    enum err rc = db_run(st);
    free(rcpts);
    free(delivered);
    if (rc != ERR_OK || db_changes(st) == 0)
        return rc; /* lease lost: another node owns it now */
    char *detail;
    if (o->sent)
        detail = xasprintf("emailed \"%s\" (%zu recipient%s): %s", m->channel_name,
                           json_array_size(m->rcpts), json_array_size(m->rcpts) == 1 ? "" : "s",
                           m->subject);
    else if (!strcmp(state, "failed"))
        detail =
            xasprintf("gave up mailing \"%s\" after %d attempts: %s",
                      m->channel_name ? m->channel_name : m->channel_id, m->attempts, o->error);
    else {
        char at[TIME_RFC3339_LEN];
        time_format(due, at);
        detail = xasprintf("attempt %d to mail \"%s\" failed: %s; retrying at %s", m->attempts,
                           m->channel_name ? m->channel_name : m->channel_id, o->error, at);
    }
    for (size_t i = 0; i < m->nitems && rc == ERR_OK; i++) {
        bool seen = false;
        for (size_t j = 0; j < i; j++)
            seen = seen || !strcmp(m->items[j].issue, m->items[i].issue);
        if (!seen)
            rc = issue_timeline_add(db, m->tenant, m->items[i].issue,
                                    o->sent ? "notified" : "notification_failed", "system", detail,
                                    now);
    }
    free(detail);
    if (rc == ERR_OK)
        store_count(o->sent ? &m_sent : !strcmp(state, "failed") ? &m_failed : &m_retry, 1);
    return rc;
}

static bool listed(json_t *arr, const char *s)
{
    size_t i;
    json_t *e;
    json_array_foreach(arr, i, e)
    {
        if (!strcmp(json_string_value(e), s))
            return true;
    }
    return false;
}

/* Mails every recipient not reached yet, one message each; o says how it went. */
static void send_all(struct mail *m, struct outcome *o, char *err, size_t errlen)
{
    size_t i, failed = 0;
    json_t *e;
    json_array_foreach(m->rcpts, i, e)
    {
        const char *rcpt = json_string_value(e);
        if (listed(m->delivered, rcpt))
            continue;
        render(m, rcpt);
        json_t *one = json_pack("[s]", rcpt);
        char why[400];
        if (smtp_send(one, m->msg.data, m->msg.len, why, sizeof why) == ERR_OK) {
            json_array_append_new(m->delivered, json_string(rcpt));
        } else {
            if (!failed)
                snprintf(err, errlen, "%s: %s", rcpt, why);
            failed++;
        }
        json_decref(one);
    }
    if (failed > 1) {
        size_t n = strlen(err);
        snprintf(err + n, errlen - n, " (and %zu more recipients failed)", failed - 1);
    }
    o->sent = failed == 0;
    o->error = failed ? err : NULL;
}

static void process(struct mail *m)
{
    struct db *db = store_reader();
    struct outcome o = {m, false, false, NULL};
    char err[512];
    enum err rc = db ? load(db, m) : ERR_STORAGE;
    if (rc == ERR_STORAGE) {
        log_warn("notify", "cannot read notification %s; it will be retried", m->id);
        return; /* the lease expires and the row is claimed again */
    }
    if (rc == ERR_NOT_FOUND) {
        o.error = "the notification channel was deleted";
    } else if (json_array_size(m->rcpts) == 0) {
        o.error = "the channel has no addresses left (every one unsubscribed)";
        o.final = true;
    } else {
        send_all(m, &o, err, sizeof err);
        if (o.sent)
            log_info("notify", "sent %s (%s) to channel %s", m->id, m->subject, m->channel_id);
        else
            log_warn("notify", "sending %s to channel %s failed: %s", m->id, m->channel_id, err);
    }
    if (store_write(outcome_run, &o, 0) != ERR_OK)
        log_warn("notify", "cannot record the outcome of %s; it will be retried", m->id);
}

enum err notifier_release(struct db *db, const char *node)
{
    struct db_stmt *st =
        node ? db_stmt(db, "UPDATE notifications SET state = 'pending', lease_owner = NULL, "
                           "lease_until = NULL WHERE state = 'sending' AND lease_owner = ?")
             : db_stmt(db, "UPDATE notifications SET state = 'pending', lease_owner = NULL, "
                           "lease_until = NULL WHERE state = 'sending'");
    if (node)
        db_bind_text(st, 1, node);
    enum err rc = db_run(st);
    if (rc == ERR_OK && db_changes(st) > 0)
        store_wake(STORE_WAKE_NOTIFY);
    return rc;
}

static enum err release_run(struct db *db, void *arg)
{
    (void)arg;
    return notifier_release(db, NULL);
}

static void *notifier_main(void *arg)
{
    (void)arg;
    if (store_kind() == DB_SQLITE) /* one node: every lease is ours from an earlier run */
        store_write(release_run, NULL, 0);
    struct claim *c = xcalloc(1, sizeof *c);
    pthread_mutex_lock(&g.lock);
    while (!g.stopping) {
        g.woken = false;
        pthread_mutex_unlock(&g.lock);
        enum err rc = store_write(claim_run, c, 0);
        if (rc != ERR_OK)
            c->n = 0;
        for (int i = 0; i < c->n; i++) {
            process(&c->mails[i]);
            mail_cleanup(&c->mails[i]);
        }
        store_reader_release();
        pthread_mutex_lock(&g.lock);
        if (c->n > 0 || g.woken || g.stopping)
            continue;
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += IDLE_WAIT_MS * 1000000L;
        if (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&g.cond, &g.lock, &ts);
    }
    pthread_mutex_unlock(&g.lock);
    free(c);
    return NULL;
}

enum err notifier_start(const struct config *cfg, bool run)
{
    g.cfg = cfg;
    metric_register(&m_sent);
    metric_register(&m_retry);
    metric_register(&m_failed);
    if (!run || !cfg->smtp_url)
        return ERR_OK;
    g.stopping = false;
    if (pthread_create(&g.thread, NULL, notifier_main, NULL) != 0)
        return ERR_INTERNAL;
    g.running = true;
    return ERR_OK;
}

void notifier_stop(void)
{
    if (!g.running)
        return;
    pthread_mutex_lock(&g.lock);
    g.stopping = true;
    pthread_cond_signal(&g.cond);
    pthread_mutex_unlock(&g.lock);
    pthread_join(g.thread, NULL);
    g.running = false;
}

void notifier_wake(void)
{
    pthread_mutex_lock(&g.lock);
    g.woken = true;
    pthread_cond_signal(&g.cond);
    pthread_mutex_unlock(&g.lock);
}

enum err notifier_send_test(const struct channel *c, const char *tenant_name, char *errmsg,
                            size_t errlen)
{
    if (!g.cfg || !g.cfg->smtp_url) {
        snprintf(errmsg, errlen, "mail is disabled: the server has no --smtp-url");
        return ERR_CONFLICT;
    }
    if (json_array_size(c->addresses) == 0) {
        snprintf(errmsg, errlen, "the channel has no addresses (every one unsubscribed)");
        return ERR_CONFLICT;
    }
    char domain[200], date[64], id[ID_MAX];
    int64_t now = time_now_ms();
    id_new("tst", now, id);
    mail_domain(domain, sizeof domain);
    rfc5322_date(now, date, sizeof date);
    enum err rc = ERR_OK;
    size_t i;
    json_t *e;
    json_array_foreach(c->addresses, i, e) /* one mail each: the unsubscribe link names them */
    {
        const char *rcpt = json_string_value(e);
        char *token = unsubscribe_token(c->tenant, c->id, rcpt);
        char *unsub = xasprintf("%s/unsubscribe/%s", g.cfg->public_url, token);
        free(token);
        struct buf b = BUF_INIT, subj = BUF_INIT, txt = BUF_INIT;
        buf_printf(&subj, "[Sluice] Test message — %s", tenant_name);
        buf_printf(&txt,
                   "This is a test message from Sluice for the notification channel \"%s\".\n"
                   "Issues will be mailed to this list (batching: %s).\n\n"
                   "Stop these mails: %s\n",
                   c->name, c->batching, unsub);
        buf_printf(&b, "From: %s\r\nTo: %s\r\nSubject: ",
                   g.cfg->smtp_from ? g.cfg->smtp_from : "sluice@localhost", rcpt);
        put_encoded(&b, subj.data);
        buf_printf(&b,
                   "\r\nDate: %s\r\nMessage-ID: <%s@%s>\r\nAuto-Submitted: auto-generated\r\n"
                   "List-Unsubscribe: <%s>\r\nList-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n"
                   "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n"
                   "Content-Transfer-Encoding: base64\r\n\r\n",
                   date, id, domain, unsub);
        put_base64_body(&b, txt.data);
        json_t *one = json_pack("[s]", rcpt);
        char why[400];
        if (smtp_send(one, b.data, b.len, why, sizeof why) != ERR_OK && rc == ERR_OK) {
            snprintf(errmsg, errlen, "%s: %s", rcpt, why);
            rc = ERR_IO;
        }
        json_decref(one);
        free(unsub);
        buf_cleanup(&b);
        buf_cleanup(&subj);
        buf_cleanup(&txt);
    }
    return rc;
}
