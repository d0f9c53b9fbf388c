/* JSON on jansson: parsing with Sluice's limits (depth 64), field access helpers that
 * collect validation errors, and serialization. Any thread. */
#ifndef SLUICE_CORE_JSON_H
#define SLUICE_CORE_JSON_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/err.h"

#define JSON_MAX_DEPTH 64

/* Parses body into *out (caller json_decref's it). ERR_MALFORMED with a message in errmsg
 * (at least 160 bytes) for bad syntax, invalid UTF-8, duplicate keys or depth > 64. */
enum err json_parse(const char *body, size_t len, json_t **out, char *errmsg, size_t errlen);
/* Returns the nesting depth of the JSON text (strings are skipped). */
int json_depth(const char *body, size_t len);

/* Returns a malloc'd compact serialization (caller frees). */
char *json_dump_compact(const json_t *v);

/* Validation errors for RFC 9457's "errors" member: [{"field", "message"}]. */
struct verrs {
    json_t *list; /* array, owned */
};
void verrs_init(struct verrs *v);
void verrs_cleanup(struct verrs *v);
void verrs_add(struct verrs *v, const char *field, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
bool verrs_any(const struct verrs *v);

/* Adds an "unknown field" error for every member of obj not in allowed (NULL-terminated).
 * prefix ("" or "events[3].") is put before the field name. */
void json_check_fields(json_t *obj, const char *const *allowed, const char *prefix,
                       struct verrs *v);
/* Joins prefix and field into out: "events[3]." + "type". */
const char *json_field(char *out, size_t outlen, const char *prefix, const char *field);

/* Replaces every byte that is not part of valid UTF-8 with '?', in place. */
void utf8_scrub(char *s);

/* Adds an RFC 3339 time member (or null when ms < 0). */
void json_set_time(json_t *obj, const char *key, int64_t ms);
/* Sets obj[key] = string s, or null when s is NULL. */
void json_set_str(json_t *obj, const char *key, const char *s);
/* Parses JSON text stored by Sluice itself (a column): the value, or JSON null when s is NULL
 * or not JSON (caller decrefs). */
json_t *json_stored(const char *s);

#endif
