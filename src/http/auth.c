/* Bearer-token authentication: the admin token (hash in settings) or a tenant API key
 * (SHA-256 hash looked up in api_keys). Runs on HTTP threads with their read connection.
 *
 * Keys found are kept for KEY_CACHE_MS: on PostgreSQL the look-up was a round trip per
 * request, a third of an HTTP thread's time under single-event publishes. A key revoked
 * through this node is refused at once (http_auth_forget, before the DELETE answers); one
 * revoked through another node within KEY_CACHE_MS. Unknown tokens are never kept. */
#include <microhttpd.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "core/crypto.h"
#include "core/timeutil.h"
#include "http/http.h"
#include "store/store.h"

#define KEY_CACHE_MS 1000
#define KEY_CACHE_SLOTS 256 /* direct-mapped by the hash's first bytes */

struct key_slot {
    char hash[2 * SHA256_LEN + 1];
    struct auth auth;
    int64_t until; /* monotonic ms */
    uint64_t gen;
};

static struct {
    pthread_mutex_t lock;
    _Atomic uint64_t gen; /* bumped by http_auth_forget: older slots and reads are void */
    struct key_slot slot[KEY_CACHE_SLOTS];
} g_keys = {.lock = PTHREAD_MUTEX_INITIALIZER, .gen = 1};

static struct key_slot *key_slot(const char *hash)
{
    unsigned h = 0;
    for (int i = 0; i < 8; i++)
        h = h * 16 + (unsigned)(hash[i] <= '9' ? hash[i] - '0' : hash[i] - 'a' + 10);
    return &g_keys.slot[h % KEY_CACHE_SLOTS];
}

static bool key_cached(const char *hash, struct auth *out)
{
    bool hit = false;
    pthread_mutex_lock(&g_keys.lock);
    struct key_slot *s = key_slot(hash);
    if (s->gen == atomic_load(&g_keys.gen) && time_mono_ms() < s->until && !strcmp(s->hash, hash)) {
        *out = s->auth;
        hit = true;
    }
    pthread_mutex_unlock(&g_keys.lock);
    return hit;
}

/* Keeps what a read that began at generation gen, at monotonic time t0, found, unless a
 * key was revoked since; for KEY_CACHE_MS from the read, not from its end. */
static void key_keep(const char *hash, const struct auth *a, uint64_t gen, int64_t t0)
{
    pthread_mutex_lock(&g_keys.lock);
    if (gen == atomic_load(&g_keys.gen)) {
        struct key_slot *s = key_slot(hash);
        snprintf(s->hash, sizeof s->hash, "%s", hash);
        s->auth = *a;
        s->until = t0 + KEY_CACHE_MS;
        s->gen = gen;
    }
    pthread_mutex_unlock(&g_keys.lock);
}

void http_auth_forget(void)
{
    pthread_mutex_lock(&g_keys.lock);
    atomic_fetch_add(&g_keys.gen, 1);
    pthread_mutex_unlock(&g_keys.lock);
}

static const struct {
    const char *name;
    unsigned bit;
} perm_names[] = {
    {"events:publish", PERM_EVENTS_PUBLISH}, {"tools:view", PERM_TOOLS_VIEW},
    {"tools:manage", PERM_TOOLS_MANAGE},     {"alerts:report", PERM_ALERTS_REPORT},
    {"alerts:view", PERM_ALERTS_VIEW},       {"alerts:manage", PERM_ALERTS_MANAGE},
};
#define NPERMS (sizeof perm_names / sizeof perm_names[0])

unsigned perm_parse(const char *name)
{
    for (size_t i = 0; i < NPERMS; i++)
        if (!strcmp(perm_names[i].name, name))
            return perm_names[i].bit;
    return 0;
}

void perm_to_json(unsigned mask, json_t *arr)
{
    for (size_t i = 0; i < NPERMS; i++)
        if (mask & perm_names[i].bit)
            json_array_append_new(arr, json_string(perm_names[i].name));
}

unsigned perm_expand(unsigned mask)
{
    if (mask & PERM_TOOLS_MANAGE)
        mask |= PERM_TOOLS_VIEW;
    if (mask & PERM_ALERTS_MANAGE)
        mask |= PERM_ALERTS_VIEW;
    return mask;
}

enum err http_authenticate(struct http_req *req)
{
    memset(&req->auth, 0, sizeof req->auth);
    const char *h = http_header(req, "Authorization");
    if (!h || strncasecmp(h, "Bearer ", 7) != 0)
        return ERR_AUTH;
    const char *tok = h + 7;
    while (*tok == ' ')
        tok++;
    if (!*tok || strlen(tok) > 256)
        return ERR_AUTH;
    if (store_admin_token_ok(tok)) {
        req->auth.admin = true;
        return ERR_OK;
    }
    char hash[2 * SHA256_LEN + 1];
    crypto_sha256_hex(tok, hash);
    if (key_cached(hash, &req->auth))
        return ERR_OK;
    uint64_t gen = atomic_load(&g_keys.gen);
    int64_t t0 = time_mono_ms();
    struct db *db = store_reader();
    if (!db)
        return ERR_STORAGE;
    struct db_stmt *st =
        db_stmt(db, "SELECT tenant_id, id, name, permissions FROM api_keys WHERE key_hash = ?");
    db_bind_text(st, 1, hash);
    enum err rc = db_next(st);
    if (rc == ERR_DONE)
        return ERR_AUTH;
    if (rc != ERR_OK)
        return ERR_STORAGE;
    snprintf(req->auth.tenant, sizeof req->auth.tenant, "%s", db_col_text(st, 0));
    snprintf(req->auth.key_id, sizeof req->auth.key_id, "%s", db_col_text(st, 1));
    snprintf(req->auth.key_name, sizeof req->auth.key_name, "%s", db_col_text(st, 2));
    req->auth.perms = perm_expand((unsigned)db_col_int(st, 3));
    key_keep(hash, &req->auth, gen, t0);
    return ERR_OK;
}
