/* Tests for core/json: depth limit, strict parsing, validation error helpers. */
#include <stdlib.h>
#include <string.h>

#include "core/json.h"
#include "core/xalloc.h"
#include "unit.h"

/* Returns a malloc'd array nested depth levels deep: "[[...]]". */
static char *nested(int depth)
{
    char *s = xmalloc((size_t)depth * 2 + 1);
    for (int i = 0; i < depth; i++) {
        s[i] = '[';
        s[2 * depth - 1 - i] = ']';
    }
    s[2 * depth] = '\0';
    return s;
}

static enum err parse(const char *s, json_t **out, char errmsg[256])
{
    *out = NULL;
    errmsg[0] = '\0';
    return json_parse(s, strlen(s), out, errmsg, 256);
}

static void test_json_depth(void)
{
    static const struct {
        const char *s;
        int depth;
    } cases[] = {
        {"1", 0},
        {"\"x\"", 0},
        {"{}", 1},
        {"[1,2,3]", 1},
        {"{\"a\":{\"b\":[1,{\"c\":2}]}}", 4},
        {"[[],[],[[]]]", 3},
        {"{\"a\":\"[[[[{{{{\"}", 1},           /* brackets in strings do not count */
        {"[\"\\\"[[[\", \"]]\\\\\", [2]]", 2}, /* nor do escaped quotes end a string */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int d = json_depth(cases[i].s, strlen(cases[i].s));
        if (d != cases[i].depth)
            unit_fail(__FILE__, __LINE__, "json_depth(%s) = %d, want %d", cases[i].s, d,
                      cases[i].depth);
    }
    char *s = nested(200);
    ASSERT_EQ_INT(json_depth(s, strlen(s)), 200);
    ASSERT_EQ_INT(json_depth(s, 10), 10); /* only len bytes are read */
    free(s);
}

static void test_json_parse_depth_limit(void)
{
    char errmsg[256];
    json_t *v = NULL;
    char *s = nested(JSON_MAX_DEPTH);
    ASSERT_EQ_ERR(parse(s, &v, errmsg), ERR_OK);
    ASSERT_TRUE(json_is_array(v));
    json_decref(v);
    free(s);

    s = nested(JSON_MAX_DEPTH + 1);
    ASSERT_EQ_ERR(parse(s, &v, errmsg), ERR_MALFORMED);
    ASSERT_TRUE(strlen(errmsg) > 0);
    ASSERT_TRUE(strstr(errmsg, "64") != NULL);
    free(s);

    /* objects count as levels too: 64 objects deep is fine, 65 is not */
    for (int depth = JSON_MAX_DEPTH; depth <= JSON_MAX_DEPTH + 1; depth++) {
        char *o = xmalloc((size_t)depth * 6 + 8);
        size_t n = 0;
        for (int i = 0; i < depth - 1; i++) {
            memcpy(o + n, "{\"a\":", 5);
            n += 5;
        }
        memcpy(o + n, "{}", 2);
        n += 2;
        for (int i = 0; i < depth - 1; i++)
            o[n++] = '}';
        o[n] = '\0';
        enum err rc = parse(o, &v, errmsg);
        ASSERT_EQ_ERR(rc, depth <= JSON_MAX_DEPTH ? ERR_OK : ERR_MALFORMED);
        if (rc == ERR_OK)
            json_decref(v);
        free(o);
    }
}

static void test_json_parse_ok(void)
{
    char errmsg[256];
    json_t *v = NULL;
    ASSERT_EQ_ERR(
        parse("{\"type\":\"order.created\",\"n\":3,\"x\":null,\"u\":\"caf\xc3\xa9\"}", &v, errmsg),
        ERR_OK);
    REQUIRE_TRUE(json_is_object(v));
    ASSERT_EQ_STR(json_string_value(json_object_get(v, "type")), "order.created");
    ASSERT_EQ_INT(json_integer_value(json_object_get(v, "n")), 3);
    ASSERT_EQ_STR(json_string_value(json_object_get(v, "u")), "caf\xc3\xa9");
    char *s = json_dump_compact(v);
    ASSERT_TRUE(strstr(s, "\"n\":3") != NULL);
    ASSERT_TRUE(strchr(s, ' ') == NULL && strchr(s, '\n') == NULL);
    free(s);
    json_decref(v);

    /* only len bytes are parsed */
    const char *body = "{\"a\":1}garbage";
    ASSERT_EQ_ERR(json_parse(body, 7, &v, errmsg, sizeof errmsg), ERR_OK);
    json_decref(v);
}

static void test_json_parse_rejects(void)
{
    static const char *const bad[] = {
        "",
        "{",
        "{\"a\":1,}",
        "{\"a\":1,\"a\":2}",         /* duplicate keys */
        "{\"a\":{\"b\":1,\"b\":1}}", /* duplicate keys, nested */
        "{\"a\":\"\xff\"}",          /* invalid UTF-8 */
        "{\"a\":\"\xc3\"}",          /* truncated UTF-8 sequence */
        "{\"a\":\"\xed\xa0\x80\"}",  /* an encoded surrogate */
        "{\"\xc0\xaf\":1}",          /* overlong encoding, in a key */
        "{\"a\":1} {\"b\":2}",       /* trailing data */
        "{'a':1}",
        "{\"a\":NaN}",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char errmsg[256];
        json_t *v = NULL;
        enum err rc = parse(bad[i], &v, errmsg);
        if (rc != ERR_MALFORMED) {
            unit_fail(__FILE__, __LINE__, "json_parse(%s) = %s, want malformed", bad[i],
                      err_name(rc));
            json_decref(v);
        } else if (!errmsg[0]) {
            unit_fail(__FILE__, __LINE__, "json_parse(%s): empty message", bad[i]);
        }
    }
}

static void test_json_check_fields(void)
{
    static const char *const allowed[] = {"type", "entity_id", "payload", NULL};
    char errmsg[256];
    json_t *obj = NULL;
    REQUIRE_TRUE(parse("{\"type\":\"a.b\",\"bogus\":1,\"payload\":{},\"extra\":true}", &obj,
                       errmsg) == ERR_OK);
    struct verrs v;
    verrs_init(&v);
    ASSERT_TRUE(!verrs_any(&v));
    json_check_fields(obj, allowed, "events[3].", &v);
    ASSERT_TRUE(verrs_any(&v));
    ASSERT_EQ_INT(json_array_size(v.list), 2);
    int seen = 0;
    for (size_t i = 0; i < json_array_size(v.list); i++) {
        json_t *e = json_array_get(v.list, i);
        const char *f = json_string_value(json_object_get(e, "field"));
        ASSERT_TRUE(json_string_value(json_object_get(e, "message")) != NULL);
        if (f && !strcmp(f, "events[3].bogus"))
            seen |= 1;
        else if (f && !strcmp(f, "events[3].extra"))
            seen |= 2;
        else
            unit_fail(__FILE__, __LINE__, "unexpected field %s", f ? f : "NULL");
    }
    ASSERT_EQ_INT(seen, 3);
    verrs_cleanup(&v);

    /* no prefix, nothing unknown */
    verrs_init(&v);
    json_object_del(obj, "bogus");
    json_object_del(obj, "extra");
    json_check_fields(obj, allowed, "", &v);
    ASSERT_TRUE(!verrs_any(&v));
    json_object_set_new(obj, "zzz", json_true());
    json_check_fields(obj, allowed, "", &v);
    ASSERT_EQ_INT(json_array_size(v.list), 1);
    ASSERT_EQ_STR(json_string_value(json_object_get(json_array_get(v.list, 0), "field")), "zzz");
    verrs_cleanup(&v);
    json_decref(obj);
}

static void test_verrs(void)
{
    struct verrs v;
    verrs_init(&v);
    verrs_add(&v, "name", "must be at most %d characters", 64);
    ASSERT_TRUE(verrs_any(&v));
    json_t *e = json_array_get(v.list, 0);
    ASSERT_EQ_STR(json_string_value(json_object_get(e, "field")), "name");
    ASSERT_EQ_STR(json_string_value(json_object_get(e, "message")),
                  "must be at most 64 characters");
    for (int i = 0; i < 500; i++) /* bounded: one response carries a limited list */
        verrs_add(&v, "x", "again");
    ASSERT_TRUE(json_array_size(v.list) <= 100);
    verrs_cleanup(&v);
    verrs_cleanup(&v); /* cleanup twice is harmless */
}

static void test_json_helpers(void)
{
    char f[32];
    ASSERT_EQ_STR(json_field(f, sizeof f, "events[3].", "type"), "events[3].type");
    ASSERT_EQ_STR(json_field(f, sizeof f, "", "type"), "type");

    json_t *o = json_object();
    json_set_time(o, "at", 1795342530123);
    json_set_time(o, "never", -1);
    json_set_str(o, "s", "v");
    json_set_str(o, "none", NULL);
    ASSERT_EQ_STR(json_string_value(json_object_get(o, "at")), "2026-11-22T10:15:30.123Z");
    ASSERT_TRUE(json_is_null(json_object_get(o, "never")));
    ASSERT_EQ_STR(json_string_value(json_object_get(o, "s")), "v");
    ASSERT_TRUE(json_is_null(json_object_get(o, "none")));
    json_decref(o);
}

/* Whatever utf8_scrub leaves is valid UTF-8 (jansson takes it), and valid text is kept. Found
 * by tests/fuzz/fuzz_json: a receiver's or S3's bytes F4 BC.. or F5.. passed as UTF-8. */
static void test_utf8_scrub(void)
{
    static const struct {
        const char *in, *out;
    } cases[] = {
        {"plain ascii", "plain ascii"},
        {"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80", "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80"},
        {"\xf4\x8f\xbf\xbf", "\xf4\x8f\xbf\xbf"}, /* U+10FFFF, the last code point */
        {"\xf4\xbc\xbc\xbc\xf5", "?????"},        /* past U+10FFFF; F5 never starts one */
        {"\xf4\x90\x80\x80", "????"},             /* U+110000 */
        {"\xf5\x80\x80\x80", "????"},
        {"\xc0\xaf", "??"},               /* overlong '/' */
        {"\xe0\x80\xaf", "???"},          /* overlong, three bytes */
        {"\xf0\x80\x80\xaf", "????"},     /* overlong, four bytes */
        {"\xed\xa0\x80", "???"},          /* a UTF-16 surrogate */
        {"\xed\x9f\xbf", "\xed\x9f\xbf"}, /* U+D7FF, just before them */
        {"\xe2\x82", "??"},               /* cut short by the end */
        {"\xff\xfe", "??"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char buf[64];
        snprintf(buf, sizeof buf, "%s", cases[i].in);
        utf8_scrub(buf);
        ASSERT_EQ_STR(buf, cases[i].out);
        json_t *j = json_string(buf);
        ASSERT_TRUE(j != NULL);
        json_decref(j);
    }
}

void unit_json(void)
{
    RUN(test_json_depth);
    RUN(test_json_parse_depth_limit);
    RUN(test_json_parse_ok);
    RUN(test_json_parse_rejects);
    RUN(test_json_check_fields);
    RUN(test_verrs);
    RUN(test_json_helpers);
    RUN(test_utf8_scrub);
}
