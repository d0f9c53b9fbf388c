/* S3 targets — the driver's parts that are not the engine: validation and masking (HTTP
 * threads), rendering of an integration's batches (any thread, its own connection), URLs,
 * signed request setup and error parsing (the engine thread too), and the probe (a
 * blocking thread, never an HTTP one). Nothing here keeps state between calls. */
#include <ctype.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/crypto.h"
#include "core/log.h"
#include "core/timeutil.h"
#include "core/xalloc.h"
#include "deliver/outbound.h"
#include "deliver/s3.h"
#include "deliver/s3_int.h"
#include "store/store.h"

#define S3_PREFIX_MAX 512
#define S3_RESP_KEEP 65536

/* --- validation ---------------------------------------------------------------------- */

/* Bucket naming rules of S3 (general purpose buckets). */
static bool bucket_ok(const char *b, char *why, size_t whylen)
{
    size_t n = strlen(b);
    if (n < 3 || n > 63) {
        snprintf(why, whylen, "must be 3 to 63 characters");
        return false;
    }
    for (const char *p = b; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '.' || *p == '-')) {
            snprintf(why, whylen, "may only contain lower-case letters, digits, '.' and '-'");
            return false;
        }
    if (!isalnum((unsigned char)b[0]) || !isalnum((unsigned char)b[n - 1])) {
        snprintf(why, whylen, "must begin and end with a letter or digit");
        return false;
    }
    if (strstr(b, "..") || strstr(b, ".-") || strstr(b, "-.")) {
        snprintf(why, whylen, "must not contain two adjacent periods or a period next to '-'");
        return false;
    }
    int dots = 0;
    bool digits_only = true;
    for (const char *p = b; *p; p++) {
        if (*p == '.')
            dots++;
        else if (!isdigit((unsigned char)*p))
            digits_only = false;
    }
    if (dots == 3 && digits_only) {
        snprintf(why, whylen, "must not be formatted as an IP address");
        return false;
    }
    if (!strncmp(b, "xn--", 4) || !strncmp(b, "sthree-", 7) ||
        (n > 8 && !strcmp(b + n - 8, "-s3alias")) || (n > 7 && !strcmp(b + n - 7, "--ol-s3"))) {
        snprintf(why, whylen,
                 "uses a prefix or suffix S3 reserves (xn--, sthree-, -s3alias, "
                 "--ol-s3)");
        return false;
    }
    return true;
}

/* "eu-central-1", "us-gov-west-1", "ap-southeast-2". */
static bool region_ok(const char *r)
{
    size_t n = strlen(r);
    if (n < 4 || n > 32)
        return false;
    const char *p = r;
    int parts = 0;
    while (*p) {
        const char *s = p;
        while (*p >= 'a' && *p <= 'z')
            p++;
        if (p == s)
            break;
        parts++;
        if (*p != '-')
            return false;
        p++;
    }
    if (parts < 2 || !isdigit((unsigned char)*p))
        return false;
    while (isdigit((unsigned char)*p))
        p++;
    return *p == '\0';
}

static bool prefix_ok(const char *s, char *why, size_t whylen)
{
    if (strlen(s) > S3_PREFIX_MAX) {
        snprintf(why, whylen, "must be at most %d characters", S3_PREFIX_MAX);
        return false;
    }
    if (*s == '/') {
        snprintf(why, whylen, "must not begin with '/'");
        return false;
    }
    for (const char *p = s; *p; p++)
        if (!(isalnum((unsigned char)*p) || strchr("/!-_.*'()=", *p))) {
            snprintf(why, whylen, "may only contain letters, digits and / ! - _ . * ' ( ) =");
            return false;
        }
    if (strstr(s, "//")) {
        snprintf(why, whylen, "must not contain '//'");
        return false;
    }
    return true;
}

/* A string member that may be left out on PATCH (then the stored value is kept). */
static const char *member(json_t *t, json_t *old, const char *name, bool *given)
{
    json_t *v = json_object_get(t, name);
    *given = v != NULL;
    if (v)
        return json_string_value(v);
    return old ? json_string_value(json_object_get(old, name)) : NULL;
}

void s3_target_parse(json_t *t, json_t *old, bool allow_private, struct verrs *v, char **out)
{
    static const char *const fields[] = {"type",       "bucket",        "region",
                                         "key_prefix", "access_key_id", "secret_access_key",
                                         "endpoint",   "compression",   NULL};
    json_check_fields(t, fields, "target.", v);
    json_t *stored = json_pack("{s:s}", "type", "s3");
    char why[256];
    bool given;

    const char *bucket = member(t, old, "bucket", &given);
    if (!bucket)
        verrs_add(v, "target.bucket", "is required: the name of an S3 bucket");
    else if (!bucket_ok(bucket, why, sizeof why))
        verrs_add(v, "target.bucket", "%s", why);
    else
        json_object_set_new(stored, "bucket", json_string(bucket));

    const char *region = member(t, old, "region", &given);
    if (!region || !region_ok(region))
        verrs_add(v, "target.region", "must be an AWS region such as \"eu-central-1\"");
    else
        json_object_set_new(stored, "region", json_string(region));

    json_t *pv = json_object_get(t, "key_prefix");
    const char *prefix = member(t, old, "key_prefix", &given);
    if (pv && !json_is_null(pv) && !json_is_string(pv))
        verrs_add(v, "target.key_prefix", "must be a string");
    else if (prefix && !prefix_ok(prefix, why, sizeof why))
        verrs_add(v, "target.key_prefix", "%s", why);
    else
        json_object_set_new(stored, "key_prefix", json_string(prefix ? prefix : ""));

    const char *akid = member(t, old, "access_key_id", &given);
    bool akid_ok = akid && strlen(akid) >= 3 && strlen(akid) <= 128;
    for (const char *p = akid; akid_ok && *p; p++)
        akid_ok = isalnum((unsigned char)*p);
    if (!akid_ok)
        verrs_add(v, "target.access_key_id",
                  "must be an access key id (3 to 128 letters and "
                  "digits, such as AKIA...)");
    else
        json_object_set_new(stored, "access_key_id", json_string(akid));

    json_t *sk = json_object_get(t, "secret_access_key");
    if (sk && json_is_string(sk) && !target_secret_masked(json_string_value(sk))) {
        const char *s = json_string_value(sk);
        size_t n = strlen(s);
        bool ok = n >= 1 && n <= 256;
        for (const char *p = s; ok && *p; p++)
            ok = *p > 32 && *p < 127;
        if (!ok)
            verrs_add(v, "target.secret_access_key", "must be 1 to 256 printable characters");
        else
            target_secret_seal(stored, "secret_access_key", "secret_hint", s);
    } else if (sk && !json_is_string(sk)) {
        verrs_add(v, "target.secret_access_key", "must be a string");
    } else if (old && target_secret_keep(stored, old, "secret_access_key", "secret_hint")) {
        /* left out or masked: the stored value stays */
    } else {
        verrs_add(v, "target.secret_access_key", "is required");
    }

    json_t *ev = json_object_get(t, "endpoint");
    const char *endpoint = member(t, old, "endpoint", &given);
    if (ev && !json_is_null(ev) && !json_is_string(ev)) {
        verrs_add(v, "target.endpoint", "must be an http or https URL or null");
    } else if (endpoint) {
        if (strlen(endpoint) > 1024 || strchr(endpoint, '?') || strchr(endpoint, '#'))
            verrs_add(v, "target.endpoint", "must be an http or https URL without query");
        else if (outbound_check_url(endpoint, allow_private, why, sizeof why) != ERR_OK)
            verrs_add(v, "target.endpoint", "%s", why);
        else
            json_object_set_new(stored, "endpoint", json_string(endpoint));
    }
    if (!json_object_get(stored, "endpoint"))
        json_object_set_new(stored, "endpoint", json_null());

    json_t *cv = json_object_get(t, "compression");
    const char *comp = member(t, old, "compression", &given);
    if (cv && (!json_is_string(cv) || (strcmp(comp, "gzip") && strcmp(comp, "none"))))
        verrs_add(v, "target.compression", "must be \"gzip\" or \"none\"");
    json_object_set_new(stored, "compression",
                        json_string(comp && !strcmp(comp, "none") ? "none" : "gzip"));
    *out = json_dump_compact(stored);
    json_decref(stored);
}

void s3_target_mask(json_t *t)
{
    target_secret_mask(t, "secret_access_key", "secret_hint", false);
}

/* --- the integration's view ---------------------------------------------------------- */

enum err s3_integration_json(struct db *db, const struct integration *in, json_t *o)
{
    json_t *ob = json_pack("{s:i,s:i}", "events", 0, "bytes", 0);
    json_object_set_new(ob, "opened_at", json_null());
    json_object_set_new(o, "open_batch", ob);
    struct db_stmt *st = db_stmt(db, "SELECT count, bytes, opened_at FROM s3_batches WHERE "
                                     "tenant_id = ? AND integration_id = ? AND state = 'open'");
    db_bind_text(st, 1, in->tenant);
    db_bind_text(st, 2, in->id);
    enum err rc = db_next(st);
    if (rc == ERR_OK) {
        json_object_set_new(ob, "events", json_integer(db_col_int(st, 0)));
        json_object_set_new(ob, "bytes", json_integer(db_col_int(st, 1)));
        json_set_time(ob, "opened_at", db_col_int(st, 2));
    }
    db_release(db);
    if (rc != ERR_OK && rc != ERR_DONE)
        return rc;
    json_t *last = json_null();
    st = db_stmt(db, "SELECT object_key, uploaded_at, count, object_bytes, bytes FROM s3_batches "
                     "WHERE tenant_id = ? AND integration_id = ? AND state = 'uploaded' ORDER BY "
                     "uploaded_at DESC, seq DESC LIMIT 1");
    db_bind_text(st, 1, in->tenant);
    db_bind_text(st, 2, in->id);
    if ((rc = db_next(st)) == ERR_OK) {
        last = json_pack("{s:s}", "key", db_col_text(st, 0));
        json_set_time(last, "uploaded_at", db_col_int(st, 1));
        json_object_set_new(last, "events", json_integer(db_col_int(st, 2)));
        json_object_set_new(last, "bytes", json_integer(db_col_int(st, 3)));
        json_object_set_new(last, "uncompressed_bytes", json_integer(db_col_int(st, 4)));
    }
    db_release(db);
    json_object_set_new(o, "last_object", last);
    return rc == ERR_OK || rc == ERR_DONE ? ERR_OK : rc;
}

/* --- configuration and URLs ---------------------------------------------------------- */

static char *str_member(json_t *t, const char *name)
{
    return xstrdup(json_string_value(json_object_get(t, name)));
}

enum err s3_conf_load(const char *target, struct s3_conf *c)
{
    memset(c, 0, sizeof *c);
    json_t *t = target ? json_loads(target, 0, NULL) : NULL;
    if (!t)
        return ERR_INVALID;
    c->bucket = str_member(t, "bucket");
    c->region = str_member(t, "region");
    c->prefix = str_member(t, "key_prefix");
    c->access_key_id = str_member(t, "access_key_id");
    c->endpoint = str_member(t, "endpoint");
    const char *comp = json_string_value(json_object_get(t, "compression"));
    c->gzip = !comp || strcmp(comp, "none") != 0;
    c->secret = integration_secret_open(json_string_value(json_object_get(t, "secret_access_key")));
    json_decref(t);
    if (!c->prefix)
        c->prefix = xstrdup("");
    if (!c->bucket || !c->region || !c->access_key_id || !c->secret) {
        s3_conf_cleanup(c);
        return ERR_INVALID;
    }
    return ERR_OK;
}

void s3_conf_cleanup(struct s3_conf *c)
{
    if (c->secret) {
        memset(c->secret, 0, strlen(c->secret));
        free(c->secret);
    }
    free(c->bucket);
    free(c->region);
    free(c->prefix);
    free(c->access_key_id);
    free(c->endpoint);
    memset(c, 0, sizeof *c);
}

/* SigV4's URI encoding: unreserved characters stay, '/' stays in keys, the rest %XX. */
static void uri_encode(struct buf *b, const char *s)
{
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (isalnum(*p) || *p == '-' || *p == '_' || *p == '.' || *p == '~' || *p == '/')
            buf_putc(b, (char)*p);
        else
            buf_printf(b, "%%%02X", *p);
    }
}

char *s3_url(const struct s3_conf *c, const char *key, const char *query)
{
    struct buf b = BUF_INIT;
    if (c->endpoint && *c->endpoint) {
        size_t n = strlen(c->endpoint);
        while (n > 0 && c->endpoint[n - 1] == '/')
            n--;
        buf_append(&b, c->endpoint, n);
        buf_putc(&b, '/');
        buf_puts(&b, c->bucket);
        buf_putc(&b, '/');
    } else {
        buf_printf(&b, "https://%s.s3.%s.amazonaws.com/", c->bucket, c->region);
    }
    uri_encode(&b, key);
    if (query && *query) {
        buf_putc(&b, '?');
        buf_puts(&b, query);
    }
    return buf_steal(&b);
}

/* --- requests ------------------------------------------------------------------------ */

static size_t on_read(char *ptr, size_t size, size_t nmemb, void *ud)
{
    struct s3_body *b = ud;
    size_t want = size * nmemb;
    int64_t left = b->len - b->pos;
    if (left <= 0)
        return 0;
    if ((int64_t)want > left)
        want = (size_t)left;
    if (b->mem) {
        memcpy(ptr, b->mem + b->pos, want);
        b->pos += (int64_t)want;
        return want;
    }
    ssize_t r = pread(b->fd, ptr, want, (off_t)(b->offset + b->pos));
    if (r < 0)
        return CURL_READFUNC_ABORT;
    b->pos += r;
    return (size_t)r;
}

static int on_seek(void *ud, curl_off_t offset, int origin)
{
    struct s3_body *b = ud;
    if (origin != SEEK_SET || offset < 0 || offset > b->len)
        return CURL_SEEKFUNC_CANTSEEK;
    b->pos = offset;
    return CURL_SEEKFUNC_OK;
}

struct curl_slist *s3_setup(struct outbound *out, const struct s3_conf *c, const char *method,
                            const char *url, struct s3_body *body, const char *sha256_hex,
                            const char *md5_b64, struct curl_slist *extra, bool allow_private,
                            int64_t timeout_ms)
{
    /* Uploads are long: give up only when the transfer stalls, not after a fixed time. */
    struct outbound_limits limits = {.timeout_ms = timeout_ms, .stall_only = true};
    outbound_init(out, url, allow_private, S3_RESP_KEEP, &limits);
    CURL *easy = out->easy;
    struct curl_slist *h = extra;
    char line[256];
    snprintf(line, sizeof line, "x-amz-content-sha256: %s", sha256_hex);
    h = curl_slist_append(h, line);
    if (md5_b64) {
        snprintf(line, sizeof line, "Content-MD5: %s", md5_b64);
        h = curl_slist_append(h, line);
    }
    char sigv4[96];
    snprintf(sigv4, sizeof sigv4, "aws:amz:%s:s3", c->region);
    curl_easy_setopt(easy, CURLOPT_AWS_SIGV4, sigv4);
    curl_easy_setopt(easy, CURLOPT_USERNAME, c->access_key_id);
    curl_easy_setopt(easy, CURLOPT_PASSWORD, c->secret);
    if (!strcmp(method, "PUT")) {
        curl_easy_setopt(easy, CURLOPT_UPLOAD, 1L);
        curl_easy_setopt(easy, CURLOPT_INFILESIZE_LARGE, (curl_off_t)body->len);
        curl_easy_setopt(easy, CURLOPT_READFUNCTION, on_read);
        curl_easy_setopt(easy, CURLOPT_READDATA, body);
        curl_easy_setopt(easy, CURLOPT_SEEKFUNCTION, on_seek);
        curl_easy_setopt(easy, CURLOPT_SEEKDATA, body);
    } else if (!strcmp(method, "POST")) {
        curl_easy_setopt(easy, CURLOPT_POST, 1L);
        curl_easy_setopt(easy, CURLOPT_POSTFIELDS, body && body->mem ? body->mem : "");
        curl_easy_setopt(easy, CURLOPT_POSTFIELDSIZE_LARGE,
                         (curl_off_t)(body && body->mem ? body->len : 0));
    } else {
        curl_easy_setopt(easy, CURLOPT_CUSTOMREQUEST, method);
    }
    curl_easy_setopt(easy, CURLOPT_HTTPHEADER, h);
    return h;
}

void s3_xml_value(const char *xml, const char *tag, char *out, size_t outlen)
{
    out[0] = '\0';
    if (!xml)
        return;
    char open[80], close[80];
    snprintf(open, sizeof open, "<%s>", tag);
    snprintf(close, sizeof close, "</%s>", tag);
    const char *s = strstr(xml, open);
    if (!s)
        return;
    s += strlen(open);
    const char *e = strstr(s, close);
    if (!e)
        return;
    size_t n = (size_t)(e - s) < outlen - 1 ? (size_t)(e - s) : outlen - 1;
    memcpy(out, s, n);
    out[n] = '\0';
}

void s3_error_parse(const char *xml, char *code, size_t codelen, char *msg, size_t msglen)
{
    s3_xml_value(xml, "Code", code, codelen);
    s3_xml_value(xml, "Message", msg, msglen);
}

/* --- probe --------------------------------------------------------------------------- */

/* One blocking signed request of the probe: PUT of the probe text, or DELETE (body NULL). */
static CURLcode probe_request(const struct s3_conf *c, const char *url, const char *body,
                              bool allow_private, int64_t timeout_ms, struct outbound *out,
                              long *status)
{
    size_t n = body ? strlen(body) : 0;
    unsigned char sha[SHA256_LEN], md5[16];
    crypto_sha256(body ? body : "", n, sha);
    EVP_Digest(body ? body : "", n, md5, NULL, EVP_md5(), NULL);
    char *sha_hex = hex_encode(sha, sizeof sha), *md5_b64 = base64_encode(md5, sizeof md5);
    struct s3_body b = {.fd = -1, .len = (int64_t)n, .mem = body};
    struct curl_slist *h = body ? curl_slist_append(NULL, "Content-Type: text/plain") : NULL;
    h = s3_setup(out, c, body ? "PUT" : "DELETE", url, &b, sha_hex, body ? md5_b64 : NULL, h,
                 allow_private, timeout_ms);
    curl_easy_setopt(out->easy, CURLOPT_TIMEOUT_MS, (long)timeout_ms);
    CURLcode cc = curl_easy_perform(out->easy);
    *status = outbound_status(out, cc);
    curl_slist_free_all(h);
    free(sha_hex);
    free(md5_b64);
    return cc;
}

json_t *s3_probe(const char *target, bool allow_private, int64_t timeout_ms)
{
    struct s3_conf c;
    if (s3_conf_load(target, &c) != ERR_OK) {
        json_t *o = outbound_test_json(false, 0, 0, "the target is incomplete", NULL);
        json_object_set_new(o, "key", json_null());
        json_object_set_new(o, "code", json_null());
        json_object_set_new(o, "message", json_null());
        return o;
    }
    static const char probe[] = "sluice probe: this object checks the integration's "
                                "credentials and may be deleted\n";
    char *key = xasprintf("%s_sluice_probe", c.prefix);
    char *url = s3_url(&c, key, NULL);
    struct outbound out = {0};
    long status = 0;
    int64_t t0 = time_mono_ns();
    CURLcode cc = probe_request(&c, url, probe, allow_private, timeout_ms, &out, &status);
    int64_t ms = (time_mono_ns() - t0) / 1000000;
    bool ok = status >= 200 && status < 300;
    char code[64] = "", msg[512] = "", e[700] = "";
    if (cc != CURLE_OK) {
        snprintf(e, sizeof e, "%s", outbound_error(&out, cc));
    } else if (!ok) {
        if (out.body.data)
            s3_error_parse(out.body.data, code, sizeof code, msg, sizeof msg);
        utf8_scrub(code);
        utf8_scrub(msg);
        if (*code)
            snprintf(e, sizeof e, "S3 answered HTTP %ld %s: %s", status, code, msg);
        else
            snprintf(e, sizeof e, "S3 answered HTTP %ld", status);
    }
    /* S3's answer is XML for the machine; code and message carry what it says. */
    json_t *o = outbound_test_json(ok, status, ms, e, NULL);
    json_object_set_new(o, "key", json_string(key));
    json_set_str(o, "code", *code ? code : NULL);
    json_set_str(o, "message", *msg ? msg : NULL);
    outbound_cleanup(&out);
    if (ok) {
        /* The probe leaves nothing behind. Deleting needs s3:DeleteObject, which Sluice does
         * not otherwise need: a refusal is logged, not a failed probe. */
        struct outbound del = {0};
        long dstatus = 0;
        CURLcode dc = probe_request(&c, url, NULL, allow_private, timeout_ms, &del, &dstatus);
        if (dc != CURLE_OK || dstatus < 200 || dstatus >= 300)
            log_warn("s3",
                     "the probe object %s could not be deleted (%s); it may be deleted by "
                     "hand",
                     key, dc != CURLE_OK ? outbound_error(&del, dc) : "S3 refused");
        outbound_cleanup(&del);
    }
    free(url);
    free(key);
    s3_conf_cleanup(&c);
    return o;
}
