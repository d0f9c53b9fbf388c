/* Unsubscribe tokens and the unsubscribe itself (see unsubscribe.h).
 *
 * Token: base64url(tenant "\n" channel "\n" address) "." base64url(first 16 bytes of
 * HMAC-SHA256(k, payload)), where k = HMAC-SHA256(master key, "sluice unsubscribe v1"): a
 * purpose-bound key, so the tag can never double as anything else the master key protects.
 * Token functions: any thread. unsubscribe_apply: the writer thread. */
#include "notify/unsubscribe.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/crypto.h"
#include "core/xalloc.h"
#include "store/store.h"

#define TAG_LEN 16
#define TOKEN_MAX 1024

static void derive_key(unsigned char key[SHA256_LEN])
{
    static const char purpose[] = "sluice unsubscribe v1";
    crypto_hmac_sha256(store_master_key(), 32, purpose, sizeof purpose - 1, key);
}

static char *tag_of(const char *payload, size_t len)
{
    unsigned char key[SHA256_LEN], mac[SHA256_LEN];
    derive_key(key);
    crypto_hmac_sha256(key, sizeof key, payload, len, mac);
    return base64url_encode(mac, TAG_LEN);
}

char *unsubscribe_token(const char *tenant, const char *channel_id, const char *address)
{
    char *payload = xasprintf("%s\n%s\n%s", tenant, channel_id, address);
    size_t len = strlen(payload);
    char *p = base64url_encode((const unsigned char *)payload, len);
    char *tag = tag_of(payload, len);
    char *token = xasprintf("%s.%s", p, tag);
    free(payload);
    free(p);
    free(tag);
    return token;
}

/* Decodes unpadded base64url of n characters; malloc'd NUL-terminated result or NULL. */
static char *b64url_decode(const char *s, size_t n, size_t *outlen)
{
    char *std = xmalloc(n + 4);
    size_t i;
    for (i = 0; i < n; i++) {
        char c = s[i];
        if (c == '-')
            c = '+';
        else if (c == '_')
            c = '/';
        else if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'))) {
            free(std);
            return NULL;
        }
        std[i] = c;
    }
    while (i % 4)
        std[i++] = '=';
    std[i] = '\0';
    unsigned char *raw = NULL;
    size_t len = 0;
    enum err rc = base64_decode(std, &raw, &len);
    free(std);
    if (rc != ERR_OK)
        return NULL;
    char *out = xmalloc(len + 1);
    memcpy(out, raw, len);
    out[len] = '\0';
    free(raw);
    *outlen = len;
    return out;
}

enum err unsubscribe_verify(const char *token, struct unsub_target *out)
{
    memset(out, 0, sizeof *out);
    size_t n = strlen(token);
    const char *dot = strchr(token, '.');
    if (n > TOKEN_MAX || !dot || dot == token)
        return ERR_INVALID;
    size_t plen = 0;
    char *payload = b64url_decode(token, (size_t)(dot - token), &plen);
    if (!payload)
        return ERR_INVALID;
    enum err rc = ERR_INVALID;
    char *tag = tag_of(payload, plen);
    char *nl1 = strchr(payload, '\n'), *nl2 = nl1 ? strchr(nl1 + 1, '\n') : NULL;
    if (!crypto_streq(tag, dot + 1) || strlen(payload) != plen || !nl2)
        goto out;
    *nl1 = *nl2 = '\0';
    if (strlen(payload) >= sizeof out->tenant || strlen(nl1 + 1) >= sizeof out->channel_id ||
        strlen(nl2 + 1) >= sizeof out->address)
        goto out;
    memcpy(out->tenant, payload, strlen(payload) + 1);
    memcpy(out->channel_id, nl1 + 1, strlen(nl1 + 1) + 1);
    memcpy(out->address, nl2 + 1, strlen(nl2 + 1) + 1);
    rc = ERR_OK;
out:
    free(tag);
    free(payload);
    return rc;
}

enum err unsubscribe_apply(struct db *db, const struct unsub_target *t, int64_t now, bool *done)
{
    *done = false;
    struct db_stmt *st = db_stmt(db, "SELECT addresses, unsubscribed FROM notification_channels "
                                     "WHERE tenant_id = ? AND id = ?");
    db_bind_text(st, 1, t->tenant);
    db_bind_text(st, 2, t->channel_id);
    enum err rc = db_next(st);
    if (rc != ERR_OK)
        return rc == ERR_DONE ? ERR_NOT_FOUND : rc;
    json_t *addrs = json_loads(db_col_text(st, 0), 0, NULL);
    json_t *gone = json_loads(db_col_text(st, 1), 0, NULL);
    while ((rc = db_next(st)) == ERR_OK) { /* one row (primary key): finish the statement */
    }
    if (rc != ERR_DONE)
        goto out;
    if (!json_is_array(addrs) || !json_is_array(gone)) {
        rc = ERR_INTERNAL;
        goto out;
    }
    size_t i;
    json_t *e = NULL;
    json_array_foreach(addrs, i, e)
    {
        if (!strcasecmp(json_string_value(e), t->address))
            break;
    }
    if (i == json_array_size(addrs)) {
        rc = ERR_OK; /* already unsubscribed (or removed by hand): nothing to do */
        goto out;
    }
    json_t *rec = json_pack("{s:O}", "address", e);
    json_object_set_new(rec, "at", json_integer(now));
    json_array_remove(addrs, i);
    json_array_append_new(gone, rec);
    char *a = json_dumps(addrs, JSON_COMPACT), *g = json_dumps(gone, JSON_COMPACT);
    st = db_stmt(db, "UPDATE notification_channels SET addresses = ?, unsubscribed = ?, "
                     "updated_at = ? WHERE tenant_id = ? AND id = ?");
    db_bind_text(st, 1, a);
    db_bind_text(st, 2, g);
    db_bind_int(st, 3, now);
    db_bind_text(st, 4, t->tenant);
    db_bind_text(st, 5, t->channel_id);
    rc = db_run(st);
    free(a);
    free(g);
    *done = rc == ERR_OK;
out:
    json_decref(addrs);
    json_decref(gone);
    return rc;
}
