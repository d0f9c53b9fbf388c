/* The envelope and its signature (see envelope.h). Pure; any thread. */
#include "deliver/envelope.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "core/crypto.h"
#include "core/json.h"
#include "core/xalloc.h"

void envelope_from_row(struct db_stmt *st, int col, struct envelope_event *ev)
{
    ev->id = db_col_text(st, col);
    ev->type = db_col_text(st, col + 1);
    ev->entity = db_col_text(st, col + 2);
    ev->entity_id = db_col_text(st, col + 3);
    ev->sequence = db_col_int(st, col + 4);
    ev->occurred_at = db_col_int(st, col + 5);
    ev->published_at = db_col_int(st, col + 6);
    ev->payload = db_col_text(st, col + 7);
}

char *envelope_build(const struct envelope_event *ev, const char *tenant, const char *integration,
                     int attempt)
{
    json_t *o = json_pack("{s:s,s:s,s:s,s:s,s:s,s:I}", "id", ev->id, "type", ev->type, "name",
                          ev->type, "entity", ev->entity, "entity_id", ev->entity_id, "sequence",
                          (json_int_t)ev->sequence);
    json_set_time(o, "occurred_at", ev->occurred_at);
    json_set_time(o, "published_at", ev->published_at);
    json_object_set_new(o, "tenant", json_string(tenant));
    json_object_set_new(o, "integration_id", json_string(integration));
    if (attempt >= 0)
        json_object_set_new(o, "attempt", json_integer(attempt));
    char *head = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(o);
    size_t n = strlen(head);
    head[n - 1] = '\0'; /* drop the closing brace: the stored payload text follows */
    const char *payload = ev->payload && *ev->payload ? ev->payload : "{}";
    char *out = xasprintf("%s,\"payload\":%s}", head, payload);
    free(head);
    return out;
}

char *envelope_sign(const char *secret, const char *msg_id, long long timestamp, const char *body)
{
    if (!secret || strncmp(secret, "whsec_", 6) != 0)
        return NULL;
    unsigned char *key = NULL;
    size_t keylen = 0;
    if (base64_decode(secret + 6, &key, &keylen) != ERR_OK)
        return NULL;
    struct buf m = BUF_INIT;
    buf_printf(&m, "%s.%lld.", msg_id, timestamp);
    buf_puts(&m, body);
    unsigned char mac[SHA256_LEN];
    crypto_hmac_sha256(key, keylen, m.data, m.len, mac);
    buf_cleanup(&m);
    free(key);
    char *b = base64_encode(mac, sizeof mac);
    char *out = xasprintf("v1,%s", b);
    free(b);
    return out;
}
