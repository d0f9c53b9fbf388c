/* jansson wrappers. Any thread. */
#include "core/json.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/timeutil.h"
#include "core/xalloc.h"

int json_depth(const char *body, size_t len)
{
    int depth = 0, max = 0, in_str = 0;
    for (size_t i = 0; i < len; i++) {
        char c = body[i];
        if (in_str) {
            if (c == '\\')
                i++;
            else if (c == '"')
                in_str = 0;
        } else if (c == '"') {
            in_str = 1;
        } else if (c == '{' || c == '[') {
            if (++depth > max)
                max = depth;
        } else if (c == '}' || c == ']') {
            depth--;
        }
    }
    return max;
}

enum err json_parse(const char *body, size_t len, json_t **out, char *errmsg, size_t errlen)
{
    if (json_depth(body, len) > JSON_MAX_DEPTH) {
        snprintf(errmsg, errlen, "JSON nested deeper than %d levels", JSON_MAX_DEPTH);
        return ERR_MALFORMED;
    }
    json_error_t je;
    json_t *v = json_loadb(body, len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &je);
    if (!v) {
        snprintf(errmsg, errlen, "malformed JSON at line %d column %d: %s", je.line, je.column,
                 je.text);
        return ERR_MALFORMED;
    }
    *out = v;
    return ERR_OK;
}

char *json_dump_compact(const json_t *v)
{
    char *s = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
    if (!s) {
        fprintf(stderr, "sluice: JSON serialization failed\n");
        abort();
    }
    return s;
}

void verrs_init(struct verrs *v)
{
    v->list = json_array();
}

void verrs_cleanup(struct verrs *v)
{
    json_decref(v->list);
    v->list = NULL;
}

void verrs_add(struct verrs *v, const char *field, const char *fmt, ...)
{
    if (json_array_size(v->list) >= 100) /* bound what one response can carry */
        return;
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    json_array_append_new(v->list, json_pack("{s:s,s:s}", "field", field, "message", msg));
}

bool verrs_any(const struct verrs *v)
{
    return json_array_size(v->list) > 0;
}

void json_set_time(json_t *obj, const char *key, int64_t ms)
{
    if (ms < 0) {
        json_object_set_new(obj, key, json_null());
        return;
    }
    char t[TIME_RFC3339_LEN];
    time_format(ms, t);
    json_object_set_new(obj, key, json_string(t));
}

void json_set_str(json_t *obj, const char *key, const char *s)
{
    json_object_set_new(obj, key, s ? json_string(s) : json_null());
}

void json_check_fields(json_t *obj, const char *const *allowed, const char *prefix, struct verrs *v)
{
    const char *key;
    json_t *val;
    json_object_foreach(obj, key, val)
    {
        bool ok = false;
        for (const char *const *a = allowed; *a && !ok; a++)
            ok = !strcmp(*a, key);
        if (!ok) {
            char f[256];
            verrs_add(v, json_field(f, sizeof f, prefix, key), "unknown field");
        }
    }
}

const char *json_field(char *out, size_t outlen, const char *prefix, const char *field)
{
    snprintf(out, outlen, "%s%s", prefix, field);
    return out;
}

void utf8_scrub(char *s)
{
    unsigned char *p = (unsigned char *)s;
    while (*p) {
        int n = *p < 0x80                  ? 1
                : *p >= 0xc2 && *p <= 0xdf ? 2
                : *p >= 0xe0 && *p <= 0xef ? 3
                : *p >= 0xf0 && *p <= 0xf4 ? 4
                                           : 0;
        /* RFC 3629's table: the second byte's range rules out overlong forms, surrogates
         * (U+D800-DFFF) and anything past U+10FFFF. */
        unsigned char lo = 0x80, hi = 0xbf;
        if (*p == 0xe0)
            lo = 0xa0;
        else if (*p == 0xed)
            hi = 0x9f;
        else if (*p == 0xf0)
            lo = 0x90;
        else if (*p == 0xf4)
            hi = 0x8f;
        int ok = n > 0;
        for (int i = 1; i < n && ok; i++)
            ok = i == 1 ? p[1] >= lo && p[1] <= hi : (p[i] & 0xc0) == 0x80;
        if (!ok) {
            *p++ = '?';
            continue;
        }
        p += n;
    }
}

json_t *json_stored(const char *s)
{
    json_t *v = s ? json_loads(s, 0, NULL) : NULL;
    return v ? v : json_null();
}
