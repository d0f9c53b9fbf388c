/* The S3 driver's engine: batches and uploads, on the engine core (engine.h).
 *
 * Threads: the engine thread runs every callback below and owns the per-integration state,
 * the uploads and their spool files; it reads candidates and batch members through its own
 * read connection and asks the writer (jobs) to append, close, claim, renew leases and
 * record outcomes. HTTP test threads run s3_test (the probe, s3_target.c).
 *
 * Per integration, at most one append job and one upload are under way at a time. A closed
 * batch's object is rebuilt from its members (ordered by event id, so in publish order)
 * into <data-dir>/s3-spool/<batch>.jsonl[.gz] for each attempt: the bytes only depend on
 * the members, so a retry or a re-upload after a crash writes exactly the same object.
 * An upload holds its batch's lease; the lease is renewed while the upload runs (a large
 * object is given up only when it stalls, so it has no time bound), and an upload whose
 * lease was lost is abandoned without an outcome. */
#include "deliver/s3.h"

#include <ctype.h>
#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "core/crypto.h"
#include "core/log.h"
#include "core/timeutil.h"
#include "core/xalloc.h"
#include "deliver/engine.h"
#include "deliver/envelope.h"
#include "deliver/outbound.h"
#include "deliver/s3_int.h"
#include "store/store.h"

#define APPEND_LIMIT 5000
#define PART_SIZE (8 * 1024 * 1024)
#define PART_TRIES 3
#define RETRY_MS 1000 /* a failed append or claim (storage) is tried again after this */
#define EMPTY_SHA256 "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

static char g_spool_dir[900];

struct s3_up;

/* The engine's state of one S3 integration. */
struct s3 {
    bool dirty;         /* new deliveries may wait to be appended */
    bool appending;     /* an append job is under way */
    bool uploading;     /* a claim job or an upload is under way */
    bool upload_dirty;  /* a batch may have closed */
    bool renewing;      /* a lease renewal job is under way */
    int64_t next_close; /* when the open batch's age is due (-1: unknown) */
    int64_t next_due;   /* when the next closed batch is due for upload (-1: none) */
    struct s3_up *up;   /* the upload under way */
};

enum up_step { UP_ABORT_OLD, UP_PUT, UP_CREATE, UP_PART, UP_COMPLETE, UP_ABORT };

struct s3_up {
    struct engine_xfer x;
    struct outbound out;
    struct engine_integ *integ;
    struct s3_claim cl;
    struct s3_conf conf;
    char path[1024];
    int fd;
    int64_t size;
    char sha_hex[2 * SHA256_LEN + 1];
    char md5_b64[32];
    enum up_step step;
    struct curl_slist *headers;
    struct s3_body body;
    char *url, *post;
    char upload_id[256];
    char etag[80];
    int64_t fail_retry_after; /* the failed step's Retry-After (ms), -1: none */
    char (*etags)[80];
    int nparts, part, tries;
    int64_t started_at, start_ns;
    int64_t renew_at; /* when to renew the batch's lease (ms since the epoch) */
    /* the failure to report once an abort is done */
    long fail_status;
    char *fail_error;
    char fail_code[64];
    char *fail_message;
};

struct append_job {
    struct engine_job j;
    struct s3_candidate *c;
    int n, closed;
    int64_t max_bytes, max_age_ms, next_close;
};

struct claim_job {
    struct engine_job j;
    int64_t lease_ms;
    struct s3_claim cl;
    int64_t next_due;
};

struct outcome_job {
    struct engine_job j;
    struct s3_outcome o;
    enum outcome_kind kind;
};

struct note_job {
    struct engine_job j;
    char batch[ID_MAX];
    char *upload_id;
};

struct renew_job {
    struct engine_job j;
    char batch[ID_MAX];
    int64_t until;
    bool held;
};

static void start_upload(struct engine *e, struct engine_integ *w, const struct s3_claim *cl);
static void up_free(struct s3_up *u);

/* --- appending ----------------------------------------------------------------------- */

static enum err append_run(struct db *db, void *arg)
{
    struct append_job *a = arg;
    return s3_batch_append(db, a->j.integ->tenant, a->j.integ->id, a->c, a->n, a->max_bytes,
                           a->max_age_ms, &a->next_close, &a->closed);
}

static void append_back(struct engine *e, struct engine_job *j, enum err rc)
{
    (void)e;
    struct append_job *a = (struct append_job *)j;
    struct engine_integ *w = j->integ;
    struct s3 *s = w->data;
    s->appending = false;
    /* A failed append is tried again soon: nothing else may wake the integration (a
     * backlog with no new events), and waiting for a wake stalled it for good. */
    s->next_close = rc == ERR_OK ? a->next_close : time_now_ms() + RETRY_MS;
    if (rc != ERR_OK)
        log_warn("s3", "tenant %s integration %s: cannot append to its batch: %s", w->tenant, w->id,
                 err_name(rc));
    else if (a->n == APPEND_LIMIT)
        s->dirty = true; /* more are waiting */
    if (rc == ERR_OK && a->closed)
        s->upload_dirty = true;
    free(a->c);
    free(a);
}

/* Reads the integration's unbatched deliveries with the exact size of their lines and asks
 * the writer to append them (also when there are none: the open batch's age may be due). */
static void start_append(struct engine *e, struct engine_integ *w)
{
    struct s3 *s = w->data;
    struct db *db = store_reader();
    if (!db)
        return;
    const struct config *cfg = engine_config(e);
    struct append_job *a = xcalloc(1, sizeof *a);
    a->max_bytes = cfg->s3_batch_max_bytes;
    a->max_age_ms = cfg->s3_batch_max_age_ms;
    a->c = xcalloc(APPEND_LIMIT, sizeof *a->c);
    struct db_stmt *st = db_stmt(
        db, "SELECT d.id, " ENVELOPE_COLS " FROM deliveries d JOIN events e ON e.tenant_id = "
            "d.tenant_id AND e.id = d.event_id WHERE d.tenant_id = ? AND d.integration_id = ? AND "
            "d.state IN ('pending', 'waiting') AND d.batch_id IS NULL ORDER BY d.event_id, d.id "
            "LIMIT ?");
    db_bind_text(st, 1, w->tenant);
    db_bind_text(st, 2, w->id);
    db_bind_int(st, 3, APPEND_LIMIT);
    enum err rc;
    while (a->n < APPEND_LIMIT && (rc = db_next(st)) == ERR_OK) {
        struct envelope_event ev;
        envelope_from_row(st, 1, &ev);
        char *line = envelope_build(&ev, w->tenant, w->id, -1);
        struct s3_candidate *c = &a->c[a->n++];
        snprintf(c->delivery_id, sizeof c->delivery_id, "%s", db_col_text(st, 0));
        c->bytes = (int64_t)strlen(line) + 1;
        c->published_at = ev.published_at;
        free(line);
    }
    db_release(db);
    s->dirty = false;
    if (a->n == 0 && s->next_close > time_now_ms()) {
        free(a->c); /* nothing new, and the open batch's age is not due: no writer job */
        free(a);
        return;
    }
    s->appending = true;
    engine_submit(e, &a->j, w, append_run, append_back);
}

/* --- claims, outcomes, leases -------------------------------------------------------- */

static enum err claim_run(struct db *db, void *arg)
{
    struct claim_job *c = arg;
    struct engine_integ *w = c->j.integ;
    enum err rc = s3_batch_claim(db, w->tenant, w->id, engine_config(c->j.e)->node_id, c->lease_ms,
                                 &c->cl, &c->next_due);
    if (rc == ERR_DONE) {
        c->cl.id[0] = '\0';
        rc = ERR_OK;
    }
    return rc;
}

static void claim_back(struct engine *e, struct engine_job *j, enum err rc)
{
    struct claim_job *c = (struct claim_job *)j;
    struct engine_integ *w = j->integ;
    struct s3 *s = w->data;
    s->next_due = rc == ERR_OK ? c->next_due : time_now_ms() + RETRY_MS; /* as appends */
    /* Claimed while stopping: the batch keeps this node's lease, released at stop. */
    if (rc == ERR_OK && c->cl.id[0] && !engine_stopping(e))
        start_upload(e, w, &c->cl);
    else
        s->uploading = false;
    free(c);
}

static void submit_claim(struct engine *e, struct engine_integ *w)
{
    struct s3 *s = w->data;
    struct claim_job *c = xcalloc(1, sizeof *c);
    c->lease_ms = engine_lease_ms(e);
    s->uploading = true;
    s->upload_dirty = false;
    engine_submit(e, &c->j, w, claim_run, claim_back);
}

static enum err outcome_run(struct db *db, void *arg)
{
    struct outcome_job *oj = arg;
    return s3_batch_outcome(db, &oj->o, &oj->kind);
}

static void outcome_back(struct engine *e, struct engine_job *j, enum err rc)
{
    (void)e;
    struct outcome_job *oj = (struct outcome_job *)j;
    struct s3 *s = j->integ->data;
    if (rc != ERR_OK)
        log_error("s3",
                  "cannot record the outcome of %s: %s (the lease will expire and it is "
                  "retried)",
                  oj->o.key, err_name(rc));
    else if (oj->kind == OUTCOME_SUCCEEDED)
        log_info("s3", "tenant %s integration %s: uploaded %s", oj->o.tenant, oj->o.integration,
                 oj->o.key);
    s->uploading = false;
    s->upload_dirty = true; /* the next batch may be due */
    free(oj->o.error);
    free(oj->o.message);
    free(oj);
}

static enum err note_run(struct db *db, void *arg)
{
    struct note_job *n = arg;
    return s3_batch_set_upload(db, n->j.integ->tenant, n->batch, engine_config(n->j.e)->node_id,
                               n->upload_id);
}

static void note_back(struct engine *e, struct engine_job *j, enum err rc)
{
    (void)e;
    (void)rc; /* best effort: without it, a crash leaves an upload for S3 to expire */
    struct note_job *n = (struct note_job *)j;
    free(n->upload_id);
    free(n);
}

static enum err renew_run(struct db *db, void *arg)
{
    struct renew_job *r = arg;
    return s3_batch_renew(db, r->j.integ->tenant, r->batch, engine_config(r->j.e)->node_id,
                          r->until, &r->held);
}

static void renew_back(struct engine *e, struct engine_job *j, enum err rc)
{
    (void)e;
    struct renew_job *r = (struct renew_job *)j;
    struct s3 *s = j->integ->data;
    s->renewing = false;
    struct s3_up *u = s->up;
    if (rc == ERR_OK && !r->held && u && !strcmp(u->cl.id, r->batch)) {
        /* Another node holds the batch now (this one was too slow to renew): stop here,
         * without an outcome; the other upload writes the same bytes to the same key. */
        log_warn("s3", "tenant %s integration %s: the lease of %s was lost; upload abandoned",
                 j->integ->tenant, j->integ->id, u->cl.key);
        engine_remove(e, &u->x);
        up_free(u);
        s->uploading = false;
    }
    free(r);
}

/* Keeps the lease of the upload under way: renewed a third of a lease before it ends. */
static int64_t renew_lease(struct engine *e, struct engine_integ *w, int64_t now)
{
    struct s3 *s = w->data;
    struct s3_up *u = s->up;
    if (!u)
        return -1;
    if (now < u->renew_at || s->renewing)
        return u->renew_at;
    int64_t lease = engine_lease_ms(e);
    struct renew_job *r = xcalloc(1, sizeof *r);
    snprintf(r->batch, sizeof r->batch, "%s", u->cl.id);
    r->until = now + lease;
    s->renewing = true;
    u->renew_at = now + lease / 3;
    engine_submit(e, &r->j, w, renew_run, renew_back);
    return u->renew_at;
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
    snprintf(u->path, sizeof u->path, "%s/%s.jsonl%s", g_spool_dir, u->cl.id,
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
        db, "SELECT " ENVELOPE_COLS " FROM deliveries d JOIN events e ON e.tenant_id = "
            "d.tenant_id AND e.id = d.event_id WHERE d.tenant_id = ? AND d.integration_id = ? AND "
            "d.batch_id = ? ORDER BY d.event_id, d.id");
    db_bind_text(st, 1, u->integ->tenant);
    db_bind_text(st, 2, u->integ->id);
    db_bind_text(st, 3, u->cl.id);
    enum err rc;
    int64_t lines = 0;
    struct buf line = BUF_INIT;
    while ((rc = db_next(st)) == ERR_OK) {
        struct envelope_event ev;
        envelope_from_row(st, 0, &ev);
        char *env = envelope_build(&ev, u->integ->tenant, u->integ->id, -1);
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

static void on_header(void *ud, const char *line, size_t n)
{
    struct s3_up *u = ud;
    if (n > 5 && !strncasecmp(line, "ETag:", 5)) {
        const char *v = line + 5;
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
}

static void step_done(struct engine *e, struct engine_xfer *x, CURLcode cc);
static void up_abort(struct engine *e, struct engine_xfer *x);

/* Starts the request of the upload's current step. */
static void start_step(struct engine *e, struct s3_up *u)
{
    outbound_cleanup(&u->out);
    curl_slist_free_all(u->headers);
    free(u->url);
    free(u->post);
    u->url = u->post = NULL;
    u->headers = NULL;
    u->etag[0] = '\0';
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
        unsigned char d[SHA256_LEN];
        crypto_sha256(u->post, (size_t)u->body.len, d);
        char *h = hex_encode(d, sizeof d);
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
    u->out.on_header = on_header;
    u->out.header_ud = u;
    const struct config *cfg = engine_config(e);
    u->headers = s3_setup(&u->out, &u->conf, method, u->url, &u->body, sha, md5p, extra,
                          cfg->allow_private_targets, cfg->webhook_timeout_ms);
    u->x.easy = u->out.easy;
    u->x.integ = u->integ;
    u->x.done = step_done;
    u->x.abort = up_abort;
    engine_add(e, &u->x);
}

/* Frees the upload (off the multi handle already) and its spool file. */
static void up_free(struct s3_up *u)
{
    struct s3 *s = u->integ->data;
    if (s->up == u)
        s->up = NULL;
    outbound_cleanup(&u->out);
    curl_slist_free_all(u->headers);
    if (u->fd >= 0)
        close(u->fd);
    if (u->path[0])
        unlink(u->path);
    free(u->url);
    free(u->post);
    free(u->etags);
    free(u->fail_error);
    free(u->fail_message);
    s3_conf_cleanup(&u->conf);
    free(u);
}

static void up_abort(struct engine *e, struct engine_xfer *x)
{
    (void)e;
    struct s3_up *u = (struct s3_up *)x;
    struct s3 *s = u->integ->data;
    s->uploading = false;
    up_free(u);
}

/* Ends the upload: hands its outcome (error NULL: uploaded) to the writer. */
static void finish_upload(struct engine *e, struct s3_up *u, long status, const char *error,
                          const char *code, const char *message, int64_t retry_after)
{
    struct outcome_job *oj = xcalloc(1, sizeof *oj);
    struct s3_outcome *o = &oj->o;
    snprintf(o->tenant, sizeof o->tenant, "%s", u->integ->tenant);
    snprintf(o->integration, sizeof o->integration, "%s", u->integ->id);
    snprintf(o->node, sizeof o->node, "%s", engine_config(e)->node_id);
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
    o->retry_after = retry_after;
    if (error)
        log_warn("s3", "tenant %s integration %s: upload of %s failed (attempt %d): %s", o->tenant,
                 o->integration, o->key, o->attempt, error);
    engine_submit(e, &oj->j, u->integ, outcome_run, outcome_back);
    up_free(u);
}

/* Remembers a failure, aborts the multipart upload, and reports once the abort is done. */
static void fail_multipart(struct engine *e, struct s3_up *u, long status, const char *error,
                           const char *code, const char *message)
{
    u->fail_status = status;
    u->fail_error = xstrdup(error);
    snprintf(u->fail_code, sizeof u->fail_code, "%s", code ? code : "");
    u->fail_message = xstrdup(message);
    u->fail_retry_after = u->out.retry_after;
    u->step = UP_ABORT;
    start_step(e, u);
}

static void note_upload(struct engine *e, struct s3_up *u, const char *upload_id)
{
    struct note_job *n = xcalloc(1, sizeof *n);
    snprintf(n->batch, sizeof n->batch, "%s", u->cl.id);
    n->upload_id = xstrdup(upload_id);
    engine_submit(e, &n->j, u->integ, note_run, note_back);
}

static void begin_transfer(struct engine *e, struct s3_up *u)
{
    if (u->size <= S3_MULTIPART_THRESHOLD) {
        u->step = UP_PUT;
    } else {
        u->nparts = (int)((u->size + PART_SIZE - 1) / PART_SIZE);
        u->etags = xcalloc((size_t)u->nparts, sizeof *u->etags);
        u->step = UP_CREATE;
    }
    start_step(e, u);
}

/* A request of an upload ended: move to the next step. */
static void step_done(struct engine *e, struct engine_xfer *x, CURLcode cc)
{
    struct s3_up *u = (struct s3_up *)x;
    long status = outbound_status(&u->out, cc);
    bool ok = status >= 200 && status < 300;
    const char *resp = u->out.body.data;
    char code[64] = "", message[512] = "", error[700] = "";
    if (cc != CURLE_OK) {
        snprintf(error, sizeof error, "%s", outbound_error(&u->out, cc));
    } else if (resp && strstr(resp, "<Error>")) {
        ok = false; /* CompleteMultipartUpload may fail with 200 and an error body */
        s3_error_parse(resp, code, sizeof code, message, sizeof message);
    } else if (!ok && resp) {
        s3_error_parse(resp, code, sizeof code, message, sizeof message);
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
        begin_transfer(e, u);
        return;
    case UP_PUT:
        finish_upload(e, u, status, ok ? NULL : error, code, message, u->out.retry_after);
        return;
    case UP_CREATE: {
        char id[256];
        s3_xml_value(resp, "UploadId", id, sizeof id);
        if (!ok || !*id) {
            finish_upload(e, u, status, ok ? "no UploadId in the answer" : error, code, message,
                          u->out.retry_after);
            return;
        }
        /* Upload ids go into query strings: accept only what needs no encoding. */
        for (const char *p = id; *p; p++)
            if (!(isalnum((unsigned char)*p) || strchr("-_.~", *p))) {
                finish_upload(e, u, status, "unexpected characters in the UploadId", code, message,
                              -1);
                return;
            }
        snprintf(u->upload_id, sizeof u->upload_id, "%s", id);
        note_upload(e, u, id);
        u->part = 1;
        u->tries = 0;
        u->step = UP_PART;
        start_step(e, u);
        return;
    }
    case UP_PART:
        if (ok && u->etag[0]) {
            snprintf(u->etags[u->part - 1], sizeof u->etags[0], "%s", u->etag);
            u->tries = 0;
            if (++u->part > u->nparts)
                u->step = UP_COMPLETE;
            start_step(e, u);
        } else if (++u->tries < PART_TRIES && (status == 0 || status >= 500)) {
            log_warn("s3", "part %d of %s failed (%s); retrying the part", u->part, u->cl.key,
                     error);
            start_step(e, u); /* the same part again */
        } else {
            fail_multipart(e, u, status, ok ? "no ETag for a part" : error, code, message);
        }
        return;
    case UP_COMPLETE:
        if (ok)
            finish_upload(e, u, status, NULL, NULL, NULL, -1);
        else
            fail_multipart(e, u, status, error, code, message);
        return;
    case UP_ABORT: /* the failed step's Retry-After, not the abort's */
        finish_upload(e, u, u->fail_status, u->fail_error, u->fail_code, u->fail_message,
                      u->fail_retry_after);
        return;
    }
}

static void start_upload(struct engine *e, struct engine_integ *w, const struct s3_claim *cl)
{
    struct s3 *s = w->data;
    struct s3_up *u = xcalloc(1, sizeof *u);
    u->fail_retry_after = -1;
    u->integ = w;
    u->cl = *cl;
    u->fd = -1;
    u->started_at = time_now_ms();
    u->start_ns = time_mono_ns();
    u->renew_at = u->started_at + engine_lease_ms(e) / 3;
    s->up = u;
    struct db *db = store_reader();
    char *target = NULL;
    enum err rc = ERR_STORAGE;
    if (db) {
        struct db_stmt *st =
            db_stmt(db, "SELECT target FROM integrations WHERE tenant_id = ? AND id = ?");
        db_bind_text(st, 1, w->tenant);
        db_bind_text(st, 2, w->id);
        if ((rc = db_next(st)) == ERR_OK)
            target = xstrdup(db_col_text(st, 0));
        db_release(db);
    }
    if (target)
        rc = s3_conf_load(target, &u->conf);
    else if (rc == ERR_OK || rc == ERR_DONE)
        rc = ERR_NOT_FOUND;
    free(target);
    if (rc != ERR_OK) {
        finish_upload(e, u, 0, "the integration's S3 target cannot be read", NULL, NULL, -1);
        return;
    }
    if ((rc = build_spool(u)) != ERR_OK) {
        finish_upload(e, u, 0, "cannot build the batch's spool file", NULL, NULL, -1);
        return;
    }
    if (u->cl.upload_id[0]) {
        u->step = UP_ABORT_OLD;
        start_step(e, u);
    } else {
        begin_transfer(e, u);
    }
}

/* --- the driver's engine callbacks --------------------------------------------------- */

static void s3_load(struct engine *e, struct engine_integ *w, const struct engine_row *row)
{
    (void)e;
    (void)row; /* the target is read when an upload starts */
    struct s3 *s = w->data;
    if (!s) {
        s = w->data = xcalloc(1, sizeof *s);
        s->next_close = s->next_due = -1;
    }
}

static void s3_unload(struct engine_integ *w)
{
    free(w->data);
    w->data = NULL;
}

static int64_t min_due(int64_t a, int64_t b)
{
    return a < 0 ? b : b < 0 ? a : a < b ? a : b;
}

static int64_t s3_poll(struct engine *e, struct engine_integ *w, int64_t now)
{
    struct s3 *s = w->data;
    if (!s)
        return -1;
    int64_t next = renew_lease(e, w, now); /* even while paused: the upload goes on */
    if (w->paused || engine_stopping(e))
        return next;
    if (w->wake) {
        s->dirty = s->upload_dirty = true;
        w->wake = false;
    }
    if (!s->appending && (s->dirty || (s->next_close >= 0 && s->next_close <= now)))
        start_append(e, w);
    else
        next = min_due(next, s->next_close);
    if (!s->uploading && (s->upload_dirty || (s->next_due >= 0 && s->next_due <= now)))
        submit_claim(e, w);
    else
        next = min_due(next, s->next_due);
    return next;
}

static enum err release_all(struct db *db, void *arg)
{
    (void)arg;
    return s3_batch_release(db, NULL);
}

static enum err s3_start(struct engine *e)
{
    snprintf(g_spool_dir, sizeof g_spool_dir, "%s/s3-spool", engine_config(e)->data_dir);
    if (mkdir(g_spool_dir, 0700) != 0 && errno != EEXIST) {
        log_error("s3", "cannot create %s: %s", g_spool_dir, strerror(errno));
        return ERR_IO;
    }
    /* SQLite has one node: every batch lease is this node's own from an earlier run. */
    if (store_kind() == DB_SQLITE)
        store_write(release_all, NULL, 0);
    return ERR_OK;
}

static const struct engine_ops s3_engine = {
    .type = "s3",
    .start = s3_start,
    .load = s3_load,
    .unload = s3_unload,
    .poll = s3_poll,
    .release = s3_batch_release,
};

/* --- the driver ---------------------------------------------------------------------- */

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
    .engine = &s3_engine,
};
