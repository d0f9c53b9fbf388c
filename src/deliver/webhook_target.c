/* Webhook targets: validation of {"type", "url", "api_key", "api_key_header"} with the API
 * key sealed at rest, and masking for answers. HTTP threads; nothing here keeps state. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "deliver/outbound.h"
#include "deliver/webhook.h"

static bool header_name_ok(const char *s)
{
    if (!*s || strlen(s) > 64)
        return false;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') ||
              *s == '-' || *s == '_'))
            return false;
    return true;
}

void webhook_target_parse(json_t *t, json_t *old, bool allow_private, struct verrs *v, char **out)
{
    static const char *const fields[] = {"type", "url", "api_key", "api_key_header", NULL};
    json_check_fields(t, fields, "target.", v);
    json_t *stored = json_pack("{s:s}", "type", "webhook");
    const char *url = json_string_value(json_object_get(t, "url"));
    if (!url && old)
        url = json_string_value(json_object_get(old, "url"));
    char why[256];
    if (!url || strlen(url) > 2048)
        verrs_add(v, "target.url", "must be an http or https URL");
    else if (outbound_check_url(url, allow_private, why, sizeof why) != ERR_OK)
        verrs_add(v, "target.url", "%s", why);
    else
        json_object_set_new(stored, "url", json_string(url));
    json_t *key = json_object_get(t, "api_key");
    if (key && !json_is_null(key) && !json_is_string(key)) {
        verrs_add(v, "target.api_key", "must be a string");
    } else if (key && json_is_string(key) && !target_secret_masked(json_string_value(key))) {
        const char *k = json_string_value(key);
        if (!*k || strlen(k) > 1024)
            verrs_add(v, "target.api_key", "must be 1 to 1024 characters");
        else
            target_secret_seal(stored, "api_key", "api_key_hint", k);
    } else if (old && (!key || json_is_string(key))) {
        /* left out or masked: keep the stored value */
        target_secret_keep(stored, old, "api_key", "api_key_hint");
    }
    json_t *hdr = json_object_get(t, "api_key_header");
    const char *h = json_string_value(hdr);
    if (hdr && !json_is_null(hdr) && (!h || !header_name_ok(h)))
        verrs_add(v, "target.api_key_header", "must be an HTTP header name such as X-API-Key");
    if (!h && old)
        h = json_string_value(json_object_get(old, "api_key_header"));
    json_object_set_new(stored, "api_key_header", json_string(h ? h : "Authorization"));
    *out = json_dump_compact(stored);
    json_decref(stored);
}

void webhook_target_mask(json_t *t)
{
    target_secret_mask(t, "api_key", "api_key_hint", true);
}
