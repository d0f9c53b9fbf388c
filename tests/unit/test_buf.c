/* Tests for core/buf: the growable, always NUL-terminated byte buffer. */
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "unit.h"

static void test_buf_empty(void)
{
    struct buf b = BUF_INIT;
    ASSERT_TRUE(b.data == NULL);
    ASSERT_EQ_INT(b.len, 0);
    char *s = buf_steal(&b); /* never NULL, even when nothing was appended */
    ASSERT_EQ_STR(s, "");
    free(s);
    buf_cleanup(&b);
    buf_cleanup(&b); /* twice is harmless */
    buf_reset(&b);   /* on an empty buffer too */
    ASSERT_EQ_INT(b.len, 0);
}

static void test_buf_append(void)
{
    struct buf b;
    buf_init(&b);
    buf_puts(&b, "hello");
    buf_putc(&b, ',');
    buf_append(&b, " world!!", 6);
    ASSERT_EQ_INT(b.len, 12);
    ASSERT_EQ_STR(b.data, "hello, world");
    buf_append(&b, "", 0);
    ASSERT_EQ_INT(b.len, 12);
    ASSERT_EQ_STR(b.data, "hello, world");
    /* binary data with NUL bytes keeps its length */
    buf_append(&b, "\0x", 2);
    ASSERT_EQ_INT(b.len, 14);
    ASSERT_TRUE(!memcmp(b.data + 12, "\0x", 2));
    ASSERT_EQ_INT(b.data[14], '\0');
    buf_cleanup(&b);
    ASSERT_TRUE(b.data == NULL);
    ASSERT_EQ_INT(b.len, 0);
}

static void test_buf_grows(void)
{
    struct buf b = BUF_INIT;
    for (int i = 0; i < 10000; i++)
        buf_putc(&b, (char)('a' + i % 26));
    ASSERT_EQ_INT(b.len, 10000);
    ASSERT_TRUE(b.cap > b.len);
    ASSERT_EQ_INT(b.data[10000], '\0');
    int ok = 1;
    for (int i = 0; i < 10000; i++)
        ok &= b.data[i] == (char)('a' + i % 26);
    ASSERT_TRUE(ok);
    buf_cleanup(&b);
}

static void test_buf_printf(void)
{
    struct buf b = BUF_INIT;
    buf_printf(&b, "%s=%d", "n", 42);
    ASSERT_EQ_STR(b.data, "n=42");
    /* longer than the internal stack buffer */
    char big[1000];
    memset(big, 'x', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    buf_printf(&b, "[%s]", big);
    ASSERT_EQ_INT(b.len, 4 + 2 + 999);
    ASSERT_EQ_INT(b.data[4], '[');
    ASSERT_EQ_INT(b.data[b.len - 1], ']');
    ASSERT_EQ_INT(b.data[b.len], '\0');
    ASSERT_EQ_INT(strlen(b.data), b.len);
    buf_printf(&b, "%s", "");
    ASSERT_EQ_INT(b.len, 1005);
    buf_cleanup(&b);
}

static void test_buf_reset_and_steal(void)
{
    struct buf b = BUF_INIT;
    buf_puts(&b, "some text");
    size_t cap = b.cap;
    buf_reset(&b);
    ASSERT_EQ_INT(b.len, 0);
    ASSERT_EQ_STR(b.data, "");
    ASSERT_EQ_INT(b.cap, cap); /* keeps its memory */
    buf_puts(&b, "again");
    char *s = buf_steal(&b);
    ASSERT_EQ_STR(s, "again");
    ASSERT_TRUE(b.data == NULL);
    ASSERT_EQ_INT(b.len, 0);
    ASSERT_EQ_INT(b.cap, 0);
    free(s);
    buf_puts(&b, "reuse after steal");
    ASSERT_EQ_STR(b.data, "reuse after steal");
    buf_cleanup(&b);
}

static void test_buf_put_html(void)
{
    struct buf b = BUF_INIT;
    buf_put_html(&b, "<img src=x onerror='a(\"&\")'> ok");
    ASSERT_EQ_STR(b.data, "&lt;img src=x onerror=&#39;a(&quot;&amp;&quot;)&#39;&gt; ok");
    buf_put_html(&b, NULL); /* nothing */
    ASSERT_EQ_STR(b.data, "&lt;img src=x onerror=&#39;a(&quot;&amp;&quot;)&#39;&gt; ok");
    buf_cleanup(&b);
}

void unit_buf(void)
{
    RUN(test_buf_empty);
    RUN(test_buf_append);
    RUN(test_buf_grows);
    RUN(test_buf_printf);
    RUN(test_buf_reset_and_steal);
    RUN(test_buf_put_html);
}
