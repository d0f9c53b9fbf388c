/* Log records to stderr. Any thread; configuration is written before threads start. */
#include "core/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "core/buf.h"
#include "core/timeutil.h"

static enum log_level g_level = LOG_INFO;
static int g_json = 0;
static const char *const names[] = {"debug", "info", "warn", "error"};

int log_configure(const char *level, const char *format)
{
    int found = 0;
    for (int i = 0; i < 4; i++)
        if (level && strcmp(level, names[i]) == 0) {
            g_level = (enum log_level)i;
            found = 1;
        }
    if (level && !found)
        return -1;
    if (format && strcmp(format, "json") == 0)
        g_json = 1;
    else if (format && strcmp(format, "text") == 0)
        g_json = 0;
    else if (format)
        return -1;
    return 0;
}

static void json_escape(struct buf *b, const char *s)
{
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') {
            buf_putc(b, '\\');
            buf_putc(b, (char)c);
        } else if (c == '\n') {
            buf_puts(b, "\\n");
        } else if (c < 0x20) {
            buf_printf(b, "\\u%04x", c);
        } else {
            buf_putc(b, (char)c);
        }
    }
}

void log_msg(enum log_level level, const char *component, const char *fmt, ...)
{
    if (level < g_level)
        return;
    char msg[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    char ts[TIME_RFC3339_LEN];
    time_format(time_now_ms(), ts);
    struct buf b = BUF_INIT;
    if (g_json) {
        buf_printf(&b, "{\"ts\":\"%s\",\"level\":\"%s\",\"component\":\"", ts, names[level]);
        json_escape(&b, component);
        buf_puts(&b, "\",\"msg\":\"");
        json_escape(&b, msg);
        buf_puts(&b, "\"}\n");
    } else {
        buf_printf(&b, "%s %-5s %s: %s\n", ts, names[level], component, msg);
    }
    ssize_t w = write(STDERR_FILENO, b.data, b.len);
    (void)w;
    buf_cleanup(&b);
}
