/* Tests for api/list's cursors: they round-trip, and anything the server did not make for
 * that list and tenant (tampered, another list's, another tenant's, another key's, wrong
 * shape) is refused. */
#include <stdlib.h>
#include <string.h>

#include "api/list.h"
#include "unit.h"

static void set_key(unsigned char fill)
{
    unsigned char master[32];
    memset(master, fill, sizeof master);
    list_cursor_key(master);
}

static void free_key(char **key, int n)
{
    for (int i = 0; i < n; i++)
        free(key[i]);
}

static void test_cursor_round_trip(void)
{
    set_key(7);
    const char *parts[] = {"1764558000123", "erp/orders \"x\"\n\xc3\xa9"};
    char *c = list_cursor_encode("integrations", "acme", parts, 2);
    ASSERT_TRUE(strspn(c, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.") ==
                strlen(c)); /* safe in a URL as is */
    char *key[LIST_KEY_MAX];
    REQUIRE_TRUE(list_cursor_decode(c, "integrations", "acme", 2, key) == ERR_OK);
    ASSERT_EQ_STR(key[0], parts[0]);
    ASSERT_EQ_STR(key[1], parts[1]);
    free_key(key, 2);
    free(c);
}

static void test_cursor_refused_unless_ours(void)
{
    set_key(7);
    const char *parts[] = {"alr_01KZZZZZZZZZZZZZZZZZZZZZZZ"};
    char *c = list_cursor_encode("alerts", "acme", parts, 1);
    char *key[LIST_KEY_MAX];
    ASSERT_EQ_ERR(list_cursor_decode(c, "issues", "acme", 1, key), ERR_INVALID);
    ASSERT_EQ_ERR(list_cursor_decode(c, "alerts", "globex", 1, key), ERR_INVALID);
    ASSERT_EQ_ERR(list_cursor_decode(c, "alerts", "acme", 2, key), ERR_INVALID);
    ASSERT_TRUE(key[0] == NULL);
    /* every single-character change of the cursor is refused */
    size_t n = strlen(c);
    for (size_t i = 0; i < n; i++) {
        char *t = strdup(c);
        t[i] = t[i] == 'A' ? 'B' : 'A';
        if (strcmp(t, c))
            ASSERT_EQ_ERR(list_cursor_decode(t, "alerts", "acme", 1, key), ERR_INVALID);
        free(t);
    }
    static const char *const junk[] = {"",
                                       ".",
                                       "abc",
                                       "abc.def",
                                       "alr_01KZZZZZZZZZZZZZZZZZZZZZZZ",
                                       "WyJ4Il0.",
                                       "WyJ4Il0.AAAAAAAAAAAAAAAAAAAAAA"};
    for (size_t i = 0; i < sizeof junk / sizeof junk[0]; i++)
        ASSERT_EQ_ERR(list_cursor_decode(junk[i], "alerts", "acme", 1, key), ERR_INVALID);
    /* a server with another master key does not take it either */
    set_key(8);
    ASSERT_EQ_ERR(list_cursor_decode(c, "alerts", "acme", 1, key), ERR_INVALID);
    set_key(7);
    REQUIRE_TRUE(list_cursor_decode(c, "alerts", "acme", 1, key) == ERR_OK);
    free_key(key, 1);
    free(c);
}

/* The longest keys the lists have (a 128-character connection name of control characters,
 * each escaped as \u00XX in the cursor's JSON) make cursors the server takes back. It once
 * handed out such a cursor and then refused it (found by tests/fuzz/fuzz_cursor). */
static void test_cursor_of_longest_keys(void)
{
    set_key(7);
    char part[129];
    memset(part, '\x01', 128);
    part[128] = '\0';
    const char *parts[] = {part, part, part};
    char *c = list_cursor_encode("connections", "acme", parts, 3);
    char *key[LIST_KEY_MAX];
    REQUIRE_TRUE(list_cursor_decode(c, "connections", "acme", 3, key) == ERR_OK);
    ASSERT_EQ_STR(key[2], part);
    free_key(key, 3);
    free(c);
}

void unit_list(void)
{
    RUN(test_cursor_round_trip);
    RUN(test_cursor_refused_unless_ours);
    RUN(test_cursor_of_longest_keys);
}
