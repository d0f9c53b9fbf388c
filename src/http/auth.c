/* Bearer-token authentication: the admin token (hash in settings) or a tenant API key
 * (SHA-256 hash looked up in api_keys). Runs on HTTP threads with their read connection. */
#include <microhttpd.h>
#include <stdio.h>
#include <string.h>

#include "core/crypto.h"
#include "http/http.h"
#include "store/store.h"

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
    struct db *db = store_reader();
    if (!db)
        return ERR_STORAGE;
    char hash[2 * SHA256_LEN + 1];
    crypto_sha256_hex(tok, hash);
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
    return ERR_OK;
}
