/* The S3 engine: one thread with a curl multi handle (like the webhook engine).
 *
 * Threads: the engine thread owns the integration table, the uploads and their spool files.
 * It reads candidates and batch members through its own read connection, and asks the
 * writer (jobs) to append, close, claim and record outcomes; the writer posts each job's
 * result into the inbox (g.lock) and wakes the engine with curl_multi_wakeup(). HTTP threads
 * only call s3_wake/s3_config_changed (atomics) and s3_integration_json (their own reader).
 * No lock is held across I/O.
 *
 * Per integration, at most one append job and one upload are under way at a time. A closed
 * batch's object is rebuilt from its members (ordered by event id, so in publish order)
 * into <data-dir>/s3-spool/<batch>.jsonl[.gz] for each attempt: the bytes only depend on
 * the members, so a retry or a re-upload after a crash writes exactly the same object. */
#include "deliver/s3.h"

#include <ctype.h>
#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "core/crypto.h"
#include "core/log.h"
#include "core/timeutil.h"
#include "core/xalloc.h"
#include "deliver/retry.h"
#include "deliver/s3_int.h"
#include "deliver/webhook.h"
#include "store/store.h"

#define REFRESH_MS 1000
#define APPEND_LIMIT 5000
#define PART_SIZE (8 * 1024 * 1024)
#define PART_TRIES 3
#define EMPTY_SHA256 "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

struct s3_integ {
    char tenant[72];
    char id[72];
    int64_t updated_at;
    bool present, paused;
    bool dirty;         /* new deliveries may wait to be appended */
    bool appending;     /* an append job is under way */
    bool uploading;     /* a claim job or an upload is under way */
    bool upload_dirty;  /* a batch may have closed */
    int64_t next_close; /* when the open batch's age is due (-1: unknown) */
    int64_t next_due;   /* when the next closed batch is due for upload (-1: none) */
    struct s3_integ *next;
};

enum up_step { UP_ABORT_OLD, UP_PUT, UP_CREATE, UP_PART, UP_COMPLETE, UP_ABORT };

struct s3_up {
    struct s3_integ *integ;
    struct s3_claim cl;
    struct s3_conf conf;
    char path[1024];
    int fd;
    int64_t size;
    char sha_hex[2 * SHA256_LEN + 1];
    char md5_b64[32];
    enum up_step step;
    CURL *easy;
    struct curl_slist *headers;
    struct buf resp;
    struct s3_body body;
    char *url, *post;
    char upload_id[256];
    char etag[80];
    int64_t retry_after, fail_retry_after; /* Retry-After of the answer (ms), -1: none */
    char (*etags)[80];
    int nparts, part, tries;
    int64_t started_at, start_ns;
    /* the failure to report once an abort is done */
    long fail_status;
    char *fail_error;
    char fail_code[64];
    char *fail_message;
    struct s3_up *next;
};

enum msg_kind { MSG_APPENDED, MSG_CLAIMED, MSG_OUTCOME, MSG_NOTE };

struct msg {
    enum msg_kind kind;
    struct s3_integ *integ;
    enum err rc;
    int64_t next_close, next_due;
    int closed, n;
    bool claimed;
    struct s3_claim cl;
    struct msg *next;
};

struct append_job {
    struct store_job job;
    struct s3_integ *integ;
    char tenant[72], id[72];
    struct s3_candidate *c;
    int n, closed;
    int64_t next_close;
};

struct claim_job {
    struct store_job job;
    struct s3_integ *integ;
    char tenant[72], id[72];
    struct s3_claim cl;
    int64_t next_due;
};

struct outcome_job {
    struct store_job job;
    struct s3_integ *integ;
    struct s3_outcome o;
    enum outcome_kind kind;
};

struct note_job {
    struct store_job job;
    char tenant[72], batch[ID_MAX];
    char *upload_id;
};

static struct {
    const struct config *cfg;
    pthread_t thread;
    bool running;
    CURLM *multi;
    _Atomic bool stopping;
    _Atomic bool all_dirty;
    _Atomic unsigned config_gen;
    unsigned seen_gen;
    int64_t last_refresh;
    char spool_dir[900];
    struct s3_integ *integs;
    struct s3_up *ups;
    pthread_mutex_t lock;
    struct msg *inbox;
    _Atomic int jobs_pending;
} g = {.lock = PTHREAD_MUTEX_INITIALIZER};

/* --- writer jobs --------------------------------------------------------------------- */

static void post(struct msg *m)
{
    pthread_mutex_lock(&g.lock);
    m->next = g.inbox;
    g.inbox = m;
    pthread_mutex_unlock(&g.lock);
    curl_multi_wakeup(g.multi);
}

static enum err append_run(struct db *db, void *arg)
{
    struct append_job *j = arg;
    return s3_batch_append(db, j->tenant, j->id, j->c, j->n, g.cfg->s3_batch_max_bytes,
                           g.cfg->s3_batch_max_age_ms, &j->next_close, &j->closed);
}

static void append_done(void *arg, enum err rc)
{
    struct append_job *j = arg;
    struct msg *m = xcalloc(1, sizeof *m);
    m->kind = MSG_APPENDED;
    m->integ = j->integ;
    m->rc = rc;
    m->n = j->n;
    m->closed = rc == ERR_OK ? j->closed : 0;
    m->next_close = rc == ERR_OK ? j->next_close : -1;
    free(j->c);
    free(j);
    post(m);
}

static enum err claim_run(struct db *db, void *arg)
{
    struct claim_job *j = arg;
    enum err rc =
        s3_batch_claim(db, j->tenant, j->id, g.cfg->node_id, g.cfg->lease_ms, &j->cl, &j->next_due);
    if (rc == ERR_DONE) {
        j->cl.id[0] = '\0';
        rc = ERR_OK;
    }
    return rc;
}

static void claim_done(void *arg, enum err rc)
{
    struct claim_job *j = arg;
    struct msg *m = xcalloc(1, sizeof *m);
    m->kind = MSG_CLAIMED;
    m->integ = j->integ;
    m->rc = rc;
    m->claimed = rc == ERR_OK && j->cl.id[0];
    m->cl = j->cl;
    m->next_due = rc == ERR_OK ? j->next_due : -1;
    free(j);
    post(m);
}

static enum err outcome_run(struct db *db, void *arg)
{
    struct outcome_job *j = arg;
    return s3_batch_outcome(db, &j->o, &j->kind);
}

static void outcome_done(void *arg, enum err rc)
{
    struct outcome_job *j = arg;
    if (rc != ERR_OK)
        log_error("s3",
                  "cannot record the outcome of %s: %s (the lease will expire and it is "
                  "retried)",
                  j->o.key, err_name(rc));
    else if (j->kind == OUTCOME_SUCCEEDED)
        log_info("s3", "tenant %s integration %s: uploaded %s", j->o.tenant, j->o.integration,
                 j->o.key);
    struct msg *m = xcalloc(1, sizeof *m);
    m->kind = MSG_OUTCOME;
    m->integ = j->integ;
    m->rc = rc;
    free(j->o.error);
    free(j->o.message);
    free(j);
    post(m);
}

static enum err note_run(struct db *db, void *arg)
{
    struct note_job *j = arg;
    return s3_batch_set_upload(db, j->tenant, j->batch, g.cfg->node_id, j->upload_id);
}

static void note_done(void *arg, enum err rc)
{
    (void)rc;
    struct note_job *j = arg;
    free(j->upload_id);
    free(j);
    struct msg *m = xcalloc(1, sizeof *m);
    m->kind = MSG_NOTE;
    post(m);
}

static void submit(struct store_job *job, enum err (*run)(struct db *, void *),
                   void (*done)(void *, enum err), void *arg)
{
    job->run = run;
    job->done = done;
    job->arg = arg;
    atomic_fetch_add(&g.jobs_pending, 1);
    store_submit(job);
}

/* --- appending ----------------------------------------------------------------------- */

/* Reads the integration's unbatched deliveries with the exact size of their lines and asks
 * the writer to append them (also when there are none: the open batch's age may be due). */
static void start_append(struct s3_integ *w)
{
    struct db *db = store_reader();
    if (!db)
        return;
    struct append_job *j = xcalloc(1, sizeof *j);
    j->integ = w;
    snprintf(j->tenant, sizeof j->tenant, "%s", w->tenant);
    snprintf(j->id, sizeof j->id, "%s", w->id);
    j->c = xcalloc(APPEND_LIMIT, sizeof *j->c);
    struct db_stmt *st = db_stmt(
        db, "SELECT d.id, d.event_id, e.type, e.entity, e.entity_id, e.sequence, e.occurred_at, "
            "e.published_at, e.payload FROM deliveries d JOIN events e ON e.tenant_id = "
            "d.tenant_id AND e.id = d.event_id WHERE d.tenant_id = ? AND d.integration_id = ? AND "
            "d.state IN ('pending', 'waiting') AND d.batch_id IS NULL ORDER BY d.event_id, d.id "
            "LIMIT ?");
    db_bind_text(st, 1, w->tenant);
    db_bind_text(st, 2, w->id);
    db_bind_int(st, 3, APPEND_LIMIT);
    while (j->n < APPEND_LIMIT && db_next(st) == ERR_OK) {
        char *line = webhook_envelope(db_col_text(st, 1), db_col_text(st, 2), db_col_text(st, 3),
                                      db_col_text(st, 4), db_col_int(st, 5), db_col_int(st, 6),
                                      db_col_int(st, 7), w->tenant, w->id, -1, db_col_text(st, 8));
        struct s3_candidate *c = &j->c[j->n++];
        snprintf(c->delivery_id, sizeof c->delivery_id, "%s", db_col_text(st, 0));
        c->bytes = (int64_t)strlen(line) + 1;
        c->published_at = db_col_int(st, 7);
        free(line);
    }
    db_release(db);
    w->dirty = false;
    if (j->n == 0 && w->next_close > time_now_ms()) {
        free(j->c); /* nothing new, and the open batch's age is not due: no writer job */
        free(j);
        return;
    }
    w->appending = true;
    submit(&j->job, append_run, append_done, j);
}

/* --- spool files --------------------------------------------------------------------- */

struct spool {
    int fd;
    z_stream z;
    bool gzip;
    EVP_MD_CTX *sha, *md5;
    int64_t size;
    unsigned char out[65536];
    bool failed;
};

static void spool_emit(struct spool *s, const unsigned char *p, size_t n)
{
    EVP_DigestUpdate(s->sha, p, n);
    EVP_DigestUpdate(s->md5, p, n);
    s->size += (int64_t)n;
    while (n > 0 && !s->failed) {
        ssize_t w = write(s->fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            s->failed = true;
            return;
        }
        p += w;
        n -= (size_t)w;
    }
}

static void spool_write(struct spool *s, const char *data, size_t len, bool finish)
{
    if (!s->gzip) {
        spool_emit(s, (const unsigned char *)data, len);
        return;
    }
    s->z.next_in = (unsigned char *)(uintptr_t)data;
    s->z.avail_in = (uInt)len;
    int zr;
    do {
        s->z.next_out = s->out;
        s->z.avail_out = sizeof s->out;
        zr = deflate(&s->z, finish ? Z_FINISH : Z_NO_FLUSH);
        spool_emit(s, s->out, sizeof s->out - s->z.avail_out);
    } while (s->z.avail_out == 0 || (finish && zr != Z_STREAM_END && zr != Z_STREAM_ERROR));
}

/* Writes the batch's JSON Lines (compressed with a fixed gzip header: mtime 0, OS unknown)
 * to its spool file and computes the SHA-256 and MD5 of what will be uploaded. */
static enum err build_spool(struct s3_up *u)
{
    snprintf(u->path, sizeof u->path, "%s/%s.jsonl%s", g.spool_dir, u->cl.id,
             u->cl.gzip ? ".gz" : "");
    struct db *db = store_reader();
    if (!db)
        return ERR_STORAGE;
    struct spool s = {.gzip = u->cl.gzip};
    s.fd = open(u->path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (s.fd < 0) {
        log_error("s3", "cannot create the spool file %s: %s", u->path, strerror(errno));
        return ERR_IO;
    }
    gz_header hdr;
    memset(&hdr, 0, sizeof hdr);
    hdr.os = 255;
    if (s.gzip) {
        deflateInit2(&s.z, 6, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY);
        deflateSetHeader(&s.z, &hdr);
    }
    s.sha = EVP_MD_CTX_new();
    s.md5 = EVP_MD_CTX_new();
    EVP_DigestInit_ex(s.sha, EVP_sha256(), NULL);
    EVP_DigestInit_ex(s.md5, EVP_md5(), NULL);
    struct db_stmt *st = db_stmt(
        db, "SELECT d.event_id, e.type, e.entity, e.entity_id, e.sequence, e.occurred_at, "
            "e.published_at, e.payload FROM deliveries d JOIN events e ON e.tenant_id = "
            "d.tenant_id AND e.id = d.event_id WHERE d.tenant_id = ? AND d.integration_id = ? AND "
            "d.batch_id = ? ORDER BY d.event_id, d.id");
    db_bind_text(st, 1, u->integ->tenant);
    db_bind_text(st, 2, u->integ->id);
    db_bind_text(st, 3, u->cl.id);
    enum err rc;
    int64_t lines = 0;
    struct buf line = BUF_INIT;
    while ((rc = db_next(st)) == ERR_OK) {
        char *env = webhook_envelope(db_col_text(st, 0), db_col_text(st, 1), db_col_text(st, 2),
                                     db_col_text(st, 3), db_col_int(st, 4), db_col_int(st, 5),
                                     db_col_int(st, 6), u->integ->tenant, u->integ->id, -1,
                                     db_col_text(st, 7));
        buf_puts(&line, env);
        buf_putc(&line, '\n');
        free(env);
        if (line.len >= 65536) {
            spool_write(&s, line.data, line.len, false);
            buf_reset(&line);
        }
        lines++;
    }
    db_release(db);
    spool_write(&s, line.data ? line.data : "", line.len, true);
    buf_cleanup(&line);
    if (s.gzip)
        deflateEnd(&s.z);
    unsigned char sha[SHA256_LEN], md5[16];
    EVP_DigestFinal_ex(s.sha, sha, NULL);
    EVP_DigestFinal_ex(s.md5, md5, NULL);
    EVP_MD_CTX_free(s.sha);
    EVP_MD_CTX_free(s.md5);
    if (rc != ERR_DONE || s.failed) {
        close(s.fd);
        unlink(u->path);
        return s.failed ? ERR_IO : ERR_STORAGE;
    }
    if (lines != u->cl.count)
        log_warn("s3", "batch %s: %lld of its %lld events are still in the event log", u->cl.key,
                 (long long)lines, (long long)u->cl.count);
    char *hex = hex_encode(sha, sizeof sha), *b64 = base64_encode(md5, sizeof md5);
    snprintf(u->sha_hex, sizeof u->sha_hex, "%s", hex);
    snprintf(u->md5_b64, sizeof u->md5_b64, "%s", b64);
    free(hex);
    free(b64);
    u->fd = s.fd;
    u->size = s.size;
    return ERR_OK;
}

/* Hashes one part of the spool file. */
static bool hash_range(int fd, int64_t off, int64_t len, char sha_hex[2 * SHA256_LEN + 1],
                       char md5_b64[32])
{
    EVP_MD_CTX *sha = EVP_MD_CTX_new(), *md5 = EVP_MD_CTX_new();
    EVP_DigestInit_ex(sha, EVP_sha256(), NULL);
    EVP_DigestInit_ex(md5, EVP_md5(), NULL);
    unsigned char *b = xmalloc(65536);
    bool ok = true;
    while (len > 0) {
        ssize_t r = pread(fd, b, len > 65536 ? 65536 : (size_t)len, (off_t)off);
        if (r <= 0) {
            ok = false;
            break;
        }
        EVP_DigestUpdate(sha, b, (size_t)r);
        EVP_DigestUpdate(md5, b, (size_t)r);
        off += r;
        len -= r;
    }
    free(b);
    unsigned char s[SHA256_LEN], m[16];
    EVP_DigestFinal_ex(sha, s, NULL);
    EVP_DigestFinal_ex(md5, m, NULL);
    EVP_MD_CTX_free(sha);
    EVP_MD_CTX_free(md5);
    char *hex = hex_encode(s, sizeof s), *b64 = base64_encode(m, sizeof m);
    snprintf(sha_hex, 2 * SHA256_LEN + 1, "%s", hex);
    snprintf(md5_b64, 32, "%s", b64);
    free(hex);
    free(b64);
    return ok;
}

/* --- uploads ------------------------------------------------------------------------- */

static size_t on_header(char *ptr, size_t size, size_t nmemb, void *ud)
{
    struct s3_up *u = ud;
    size_t n = size * nmemb;
    if (n > 5 && !strncasecmp(ptr, "ETag:", 5)) {
        const char *v = ptr + 5;
        size_t len = n - 5;
        while (len && (*v == ' ' || *v == '\t')) {
            v++;
            len--;
        }
        while (len && (v[len - 1] == '\r' || v[len - 1] == '\n' || v[len - 1] == ' '))
            len--;
        if (len >= sizeof u->etag)
            len = sizeof u->etag - 1;
        memcpy(u->etag, v, len);
        u->etag[len] = '\0';
    }
    int64_t ra = retry_after_header(ptr, n, time_now_ms());
    if (ra != -2)
        u->retry_after = ra;
    return n;
}

/* Starts the request of the upload's current step. */
static void start_step(struct s3_up *u)
{
    if (u->easy) {
        curl_multi_remove_handle(g.multi, u->easy);
        curl_easy_cleanup(u->easy);
        curl_slist_free_all(u->headers);
    }
    free(u->url);
    free(u->post);
    u->url = u->post = NULL;
    u->headers = NULL;
    buf_reset(&u->resp);
    u->etag[0] = '\0';
    u->retry_after = -1;
    u->easy = curl_easy_init();
    memset(&u->body, 0, sizeof u->body);
    u->body.fd = u->fd;
    const char *method = "PUT";
    char query[400] = "";
    char sha[2 * SHA256_LEN + 1], md5[32];
    const char *md5p = NULL;
    snprintf(sha, sizeof sha, "%s", EMPTY_SHA256);
    struct curl_slist *extra = NULL;
    switch (u->step) {
    case UP_PUT:
        u->body.len = u->size;
        snprintf(sha, sizeof sha, "%s", u->sha_hex);
        md5p = u->md5_b64;
        extra = curl_slist_append(extra, "Content-Type: application/x-ndjson");
        if (u->cl.gzip)
            extra = curl_slist_append(extra, "Content-Encoding: gzip");
        break;
    case UP_CREATE:
        method = "POST";
        snprintf(query, sizeof query, "uploads=");
        extra = curl_slist_append(extra, "Content-Type: application/x-ndjson");
        if (u->cl.gzip)
            extra = curl_slist_append(extra, "Content-Encoding: gzip");
        break;
    case UP_PART: {
        int64_t off = (int64_t)(u->part - 1) * PART_SIZE;
        u->body.offset = off;
        u->body.len = u->size - off < PART_SIZE ? u->size - off : PART_SIZE;
        hash_range(u->fd, off, u->body.len, sha, md5);
        md5p = md5;
        snprintf(query, sizeof query, "partNumber=%d&uploadId=%s", u->part, u->upload_id);
        break;
    }
    case UP_COMPLETE: {
        method = "POST";
        snprintf(query, sizeof query, "uploadId=%s", u->upload_id);
        struct buf x = BUF_INIT;
        buf_puts(&x, "<CompleteMultipartUpload xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">");
        for (int i = 0; i < u->nparts; i++)
            buf_printf(&x, "<Part><PartNumber>%d</PartNumber><ETag>%s</ETag></Part>", i + 1,
                       u->etags[i]);
        buf_puts(&x, "</CompleteMultipartUpload>");
        u->body.len = (int64_t)x.len;
        u->post = buf_steal(&x);
        u->body.mem = u->post;
        char *h = NULL;
        unsigned char d[SHA256_LEN];
        crypto_sha256(u->post, (size_t)u->body.len, d);
        h = hex_encode(d, sizeof d);
        snprintf(sha, sizeof sha, "%s", h);
        free(h);
        extra = curl_slist_append(extra, "Content-Type: application/xml");
        break;
    }
    case UP_ABORT:
    case UP_ABORT_OLD:
        method = "DELETE";
        snprintf(query, sizeof query, "uploadId=%s",
                 u->step == UP_ABORT ? u->upload_id : u->cl.upload_id);
        break;
    }
    u->url = s3_url(&u->conf, u->cl.key, query);
    u->headers = s3_setup(u->easy, &u->conf, method, u->url, &u->body, sha, md5p, extra, &u->resp,
                          g.cfg->allow_private_targets, g.cfg->webhook_timeout_ms);
    curl_easy_setopt(u->easy, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(u->easy, CURLOPT_HEADERDATA, u);
    curl_easy_setopt(u->easy, CURLOPT_PRIVATE, u);
    curl_multi_add_handle(g.multi, u->easy);
}

static void up_free(struct s3_up *u)
{
    if (u->easy) {
        curl_multi_remove_handle(g.multi, u->easy);
        curl_easy_cleanup(u->easy);
    }
    curl_slist_free_all(u->headers);
    if (u->fd >= 0)
        close(u->fd);
    if (u->path[0])
        unlink(u->path);
    buf_cleanup(&u->resp);
    free(u->url);
    free(u->post);
    free(u->etags);
    free(u->fail_error);
    free(u->fail_message);
    s3_conf_cleanup(&u->conf);
    struct s3_up **pp = &g.ups;
    while (*pp && *pp != u)
        pp = &(*pp)->next;
    if (*pp)
        *pp = u->next;
    free(u);
}

/* Ends the upload: hands its outcome (error NULL: uploaded) to the writer. */
static void finish_upload(struct s3_up *u, long status, const char *error, const char *code,
                          const char *message)
{
    struct outcome_job *j = xcalloc(1, sizeof *j);
    j->integ = u->integ;
    struct s3_outcome *o = &j->o;
    snprintf(o->tenant, sizeof o->tenant, "%s", u->integ->tenant);
    snprintf(o->integration, sizeof o->integration, "%s", u->integ->id);
    snprintf(o->node, sizeof o->node, "%s", g.cfg->node_id);
    snprintf(o->batch_id, sizeof o->batch_id, "%s", u->cl.id);
    snprintf(o->key, sizeof o->key, "%s", u->cl.key);
    o->attempt = u->cl.attempt;
    o->started_at = u->started_at;
    o->duration_ms = (time_mono_ns() - u->start_ns) / 1000000;
    o->object_bytes = u->size;
    o->status = status;
    o->error = error ? xstrdup(error) : NULL;
    snprintf(o->code, sizeof o->code, "%s", code ? code : "");
    o->message = message && *message ? xstrdup(message) : NULL;
    o->retry_after = u->retry_after;
    if (error)
        log_warn("s3", "tenant %s integration %s: upload of %s failed (attempt %d): %s", o->tenant,
                 o->integration, o->key, o->attempt, error);
    submit(&j->job, outcome_run, outcome_done, j);
    up_free(u);
}

/* Remembers a failure, aborts the multipart upload, and reports once the abort is done. */
static void fail_multipart(struct s3_up *u, long status, const char *error, const char *code,
                           const char *message)
{
    u->fail_status = status;
    u->fail_error = xstrdup(error);
    snprintf(u->fail_code, sizeof u->fail_code, "%s", code ? code : "");
    u->fail_message = xstrdup(message);
    u->fail_retry_after = u->retry_after;
    u->step = UP_ABORT;
    start_step(u);
}

static void note_upload(struct s3_up *u, const char *upload_id)
{
    struct note_job *j = xcalloc(1, sizeof *j);
    snprintf(j->tenant, sizeof j->tenant, "%s", u->integ->tenant);
    snprintf(j->batch, sizeof j->batch, "%s", u->cl.id);
    j->upload_id = xstrdup(upload_id);
    submit(&j->job, note_run, note_done, j);
}

static void begin_transfer(struct s3_up *u)
{
    if (u->size <= S3_MULTIPART_THRESHOLD) {
        u->step = UP_PUT;
    } else {
        u->nparts = (int)((u->size + PART_SIZE - 1) / PART_SIZE);
        u->etags = xcalloc((size_t)u->nparts, sizeof *u->etags);
        u->step = UP_CREATE;
    }
    start_step(u);
}

/* A request of an upload ended: move to the next step. */
static void step_done(struct s3_up *u, CURLcode cc)
{
    long status = 0;
    curl_easy_getinfo(u->easy, CURLINFO_RESPONSE_CODE, &status);
    bool ok = cc == CURLE_OK && status >= 200 && status < 300;
    char code[64] = "", message[512] = "", error[700] = "";
    if (cc != CURLE_OK) {
        snprintf(error, sizeof error, "%s", curl_easy_strerror(cc));
        status = 0;
    } else if (u->resp.data && strstr(u->resp.data, "<Error>")) {
        ok = false; /* CompleteMultipartUpload may fail with 200 and an error body */
        s3_error_parse(u->resp.data, code, sizeof code, message, sizeof message);
    } else if (!ok && u->resp.data) {
        s3_error_parse(u->resp.data, code, sizeof code, message, sizeof message);
    }
    utf8_scrub(code);
    utf8_scrub(message);
    if (!ok && !*error) {
        if (*code)
            snprintf(error, sizeof error, "HTTP %ld %s: %s", status, code, message);
        else
            snprintf(error, sizeof error, "HTTP %ld", status);
    }
    switch (u->step) {
    case UP_ABORT_OLD: /* best effort: the old upload may be gone already */
        begin_transfer(u);
        return;
    case UP_PUT:
        finish_upload(u, status, ok ? NULL : error, code, message);
        return;
    case UP_CREATE: {
        char id[256];
        s3_xml_value(u->resp.data, "UploadId", id, sizeof id);
        if (!ok || !*id) {
            finish_upload(u, status, ok ? "no UploadId in the answer" : error, code, message);
            return;
        }
        /* Upload ids go into query strings: accept only what needs no encoding. */
        for (const char *p = id; *p; p++)
            if (!(isalnum((unsigned char)*p) || strchr("-_.~", *p))) {
                finish_upload(u, status, "unexpected characters in the UploadId", code, message);
                return;
            }
        snprintf(u->upload_id, sizeof u->upload_id, "%s", id);
        note_upload(u, id);
        u->part = 1;
        u->tries = 0;
        u->step = UP_PART;
        start_step(u);
        return;
    }
    case UP_PART:
        if (ok && u->etag[0]) {
            snprintf(u->etags[u->part - 1], sizeof u->etags[0], "%s", u->etag);
            u->tries = 0;
            if (++u->part > u->nparts)
                u->step = UP_COMPLETE;
            start_step(u);
        } else if (++u->tries < PART_TRIES && (status == 0 || status >= 500)) {
            log_warn("s3", "part %d of %s failed (%s); retrying the part", u->part, u->cl.key,
                     error);
            start_step(u); /* the same part again */
        } else {
            fail_multipart(u, status, ok ? "no ETag for a part" : error, code, message);
        }
        return;
    case UP_COMPLETE:
        if (ok)
            finish_upload(u, status, NULL, NULL, NULL);
        else
            fail_multipart(u, status, error, code, message);
        return;
    case UP_ABORT:
        u->retry_after = u->fail_retry_after; /* the failed step's, not the abort's */
        finish_upload(u, u->fail_status, u->fail_error, u->fail_code, u->fail_message);
        return;
    }
}

static void start_upload(struct s3_integ *w, const struct s3_claim *cl)
{
    struct s3_up *u = xcalloc(1, sizeof *u);
    u->retry_after = u->fail_retry_after = -1;
    u->integ = w;
    u->cl = *cl;
    u->fd = -1;
    u->started_at = time_now_ms();
    u->start_ns = time_mono_ns();
    u->next = g.ups;
    g.ups = u;
    struct db *db = store_reader();
    char *target = NULL;
    if (db) {
        struct db_stmt *st =
            db_stmt(db, "SELECT target FROM integrations WHERE tenant_id = ? AND id = ?");
        db_bind_text(st, 1, w->tenant);
        db_bind_text(st, 2, w->id);
        if (db_next(st) == ERR_OK)
            target = xstrdup(db_col_text(st, 0));
        db_release(db);
    }
    enum err rc = s3_conf_load(target, &u->conf);
    free(target);
    if (rc != ERR_OK) {
        finish_upload(u, 0, "the integration's S3 target cannot be read", NULL, NULL);
        return;
    }
    if ((rc = build_spool(u)) != ERR_OK) {
        finish_upload(u, 0, "cannot build the batch's spool file", NULL, NULL);
        return;
    }
    if (u->cl.upload_id[0]) {
        u->step = UP_ABORT_OLD;
        start_step(u);
    } else {
        begin_transfer(u);
    }
}

/* --- the engine loop ----------------------------------------------------------------- */

static void refresh(void)
{
    struct db *db = store_reader();
    if (!db)
        return;
    g.last_refresh = time_mono_ms();
    for (struct s3_integ *w = g.integs; w; w = w->next)
        w->present = false;
    struct db_stmt *st = db_stmt(db, "SELECT tenant_id, id, state, updated_at FROM integrations "
                                     "WHERE target_type = 's3'");
    while (db_next(st) == ERR_OK) {
        const char *tenant = db_col_text(st, 0), *id = db_col_text(st, 1);
        struct s3_integ *w = g.integs;
        while (w && (strcmp(w->tenant, tenant) || strcmp(w->id, id)))
            w = w->next;
        if (!w) {
            w = xcalloc(1, sizeof *w);
            snprintf(w->tenant, sizeof w->tenant, "%s", tenant);
            snprintf(w->id, sizeof w->id, "%s", id);
            w->next_close = w->next_due = -1;
            w->dirty = w->upload_dirty = true;
            w->next = g.integs;
            g.integs = w;
        }
        w->present = true;
        bool paused = !strcmp(db_col_text(st, 2), "paused");
        if (w->paused && !paused)
            w->dirty = w->upload_dirty = true;
        w->paused = paused;
        int64_t updated = db_col_int(st, 3);
        if (updated != w->updated_at)
            w->dirty = w->upload_dirty = true;
        w->updated_at = updated;
    }
    db_release(db);
    struct s3_integ **pp = &g.integs;
    while (*pp) {
        struct s3_integ *w = *pp;
        if (!w->present && !w->appending && !w->uploading) {
            *pp = w->next;
            free(w);
        } else {
            pp = &w->next;
        }
    }
}

static void handle_inbox(void)
{
    pthread_mutex_lock(&g.lock);
    struct msg *m = g.inbox;
    g.inbox = NULL;
    pthread_mutex_unlock(&g.lock);
    while (m) {
        struct msg *next = m->next;
        struct s3_integ *w = m->integ;
        atomic_fetch_sub(&g.jobs_pending, 1);
        switch (m->kind) {
        case MSG_APPENDED:
            w->appending = false;
            w->next_close = m->next_close;
            if (m->rc != ERR_OK)
                log_warn("s3", "tenant %s integration %s: cannot append to its batch: %s",
                         w->tenant, w->id, err_name(m->rc));
            else if (m->n == APPEND_LIMIT)
                w->dirty = true; /* more are waiting */
            if (m->closed)
                w->upload_dirty = true;
            break;
        case MSG_CLAIMED:
            w->next_due = m->next_due;
            if (m->claimed && !atomic_load(&g.stopping))
                start_upload(w, &m->cl);
            else
                w->uploading = false;
            break;
        case MSG_OUTCOME:
            w->uploading = false;
            w->upload_dirty = true; /* the next batch may be due */
            break;
        case MSG_NOTE:
            break;
        }
        free(m);
        m = next;
    }
}

static void *engine_main(void *arg)
{
    (void)arg;
    while (!atomic_load(&g.stopping)) {
        handle_inbox();
        unsigned gen = atomic_load(&g.config_gen);
        if (gen != g.seen_gen || time_mono_ms() - g.last_refresh >= REFRESH_MS) {
            g.seen_gen = gen;
            refresh();
        }
        bool all = atomic_exchange(&g.all_dirty, false);
        int64_t now = time_now_ms(), wait = REFRESH_MS;
        for (struct s3_integ *w = g.integs; w; w = w->next) {
            if (!w->present || w->paused)
                continue;
            if (all)
                w->dirty = true;
            if (!w->appending && (w->dirty || (w->next_close >= 0 && w->next_close <= now)))
                start_append(w);
            else if (w->next_close > now && w->next_close - now < wait)
                wait = w->next_close - now;
            if (!w->uploading && (w->upload_dirty || (w->next_due >= 0 && w->next_due <= now))) {
                struct claim_job *j = xcalloc(1, sizeof *j);
                j->integ = w;
                snprintf(j->tenant, sizeof j->tenant, "%s", w->tenant);
                snprintf(j->id, sizeof j->id, "%s", w->id);
                w->uploading = true;
                w->upload_dirty = false;
                submit(&j->job, claim_run, claim_done, j);
            } else if (w->next_due > now && w->next_due - now < wait) {
                wait = w->next_due - now;
            }
        }
        int running = 0;
        curl_multi_perform(g.multi, &running);
        CURLMsg *cm;
        int left;
        while ((cm = curl_multi_info_read(g.multi, &left))) {
            if (cm->msg != CURLMSG_DONE)
                continue;
            struct s3_up *u = NULL;
            curl_easy_getinfo(cm->easy_handle, CURLINFO_PRIVATE, (char **)&u);
            step_done(u, cm->data.result);
        }
        curl_multi_poll(g.multi, NULL, 0, (int)(wait > 0 ? wait : 1), NULL);
    }
    return NULL;
}

/* --- lifecycle ----------------------------------------------------------------------- */

void s3_wake(void)
{
    atomic_store(&g.all_dirty, true);
    if (g.multi)
        curl_multi_wakeup(g.multi);
}

void s3_config_changed(void)
{
    atomic_fetch_add(&g.config_gen, 1);
    s3_wake();
}

static enum err release_run(struct db *db, void *arg)
{
    return s3_batch_release(db, arg);
}

enum err s3_start(const struct config *cfg)
{
    g.cfg = cfg;
    snprintf(g.spool_dir, sizeof g.spool_dir, "%s/s3-spool", cfg->data_dir);
    if (mkdir(g.spool_dir, 0700) != 0 && errno != EEXIST) {
        log_error("s3", "cannot create %s: %s", g.spool_dir, strerror(errno));
        return ERR_IO;
    }
    /* SQLite has one node: every batch lease is this node's own from an earlier run. */
    if (store_kind() == DB_SQLITE)
        store_write(release_run, NULL, 0);
    g.multi = curl_multi_init();
    curl_multi_setopt(g.multi, CURLMOPT_MAX_TOTAL_CONNECTIONS, (long)cfg->webhook_max_connections);
    atomic_store(&g.stopping, false);
    atomic_store(&g.all_dirty, true);
    if (pthread_create(&g.thread, NULL, engine_main, NULL) != 0) {
        curl_multi_cleanup(g.multi);
        g.multi = NULL;
        return ERR_INTERNAL;
    }
    g.running = true;
    return ERR_OK;
}

void s3_stop(void)
{
    if (!g.running)
        return;
    atomic_store(&g.stopping, true);
    curl_multi_wakeup(g.multi);
    pthread_join(g.thread, NULL);
    /* Abort what is in flight: no outcome is recorded, the leases are given back. */
    while (g.ups) {
        g.ups->integ->uploading = false;
        up_free(g.ups);
    }
    while (atomic_load(&g.jobs_pending) > 0) {
        handle_inbox();
        usleep(1000);
    }
    handle_inbox();
    store_write(release_run, (void *)g.cfg->node_id, 0);
    while (g.integs) {
        struct s3_integ *next = g.integs->next;
        free(g.integs);
        g.integs = next;
    }
    curl_multi_cleanup(g.multi);
    g.multi = NULL;
    g.running = false;
}

/* --- the integration's view ---------------------------------------------------------- */

void s3_integration_json(struct db *db, const struct integration *in, json_t *o)
{
    json_t *ob = json_pack("{s:i,s:i}", "events", 0, "bytes", 0);
    json_object_set_new(ob, "opened_at", json_null());
    struct db_stmt *st = db_stmt(db, "SELECT count, bytes, opened_at FROM s3_batches WHERE "
                                     "tenant_id = ? AND integration_id = ? AND state = 'open'");
    db_bind_text(st, 1, in->tenant);
    db_bind_text(st, 2, in->id);
    if (db_next(st) == ERR_OK) {
        json_object_set_new(ob, "events", json_integer(db_col_int(st, 0)));
        json_object_set_new(ob, "bytes", json_integer(db_col_int(st, 1)));
        json_set_time(ob, "opened_at", db_col_int(st, 2));
    }
    db_release(db);
    json_object_set_new(o, "open_batch", ob);
    json_t *last = json_null();
    st = db_stmt(db, "SELECT object_key, uploaded_at, count, object_bytes, bytes FROM s3_batches "
                     "WHERE tenant_id = ? AND integration_id = ? AND state = 'uploaded' ORDER BY "
                     "uploaded_at DESC, seq DESC LIMIT 1");
    db_bind_text(st, 1, in->tenant);
    db_bind_text(st, 2, in->id);
    if (db_next(st) == ERR_OK) {
        last = json_pack("{s:s}", "key", db_col_text(st, 0));
        json_set_time(last, "uploaded_at", db_col_int(st, 1));
        json_object_set_new(last, "events", json_integer(db_col_int(st, 2)));
        json_object_set_new(last, "bytes", json_integer(db_col_int(st, 3)));
        json_object_set_new(last, "uncompressed_bytes", json_integer(db_col_int(st, 4)));
    }
    db_release(db);
    json_object_set_new(o, "last_object", last);
}

static json_t *s3_test(const struct integration *in, const struct config *cfg)
{
    return s3_probe(in->target, cfg->allow_private_targets, cfg->webhook_timeout_ms);
}

const struct target_driver s3_driver = {
    .type = "s3",
    .parse = s3_target_parse,
    .mask = s3_target_mask,
    .render = s3_integration_json,
    .test = s3_test,
    .verify = true,
    .remove = s3_batch_remove,
};
