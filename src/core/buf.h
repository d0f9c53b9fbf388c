/* A growable byte buffer, always NUL-terminated. The owner calls buf_cleanup(). */
#ifndef SLUICE_CORE_BUF_H
#define SLUICE_CORE_BUF_H

#include <stddef.h>

struct buf {
    char *data; /* NULL until the first append; then NUL-terminated */
    size_t len;
    size_t cap;
};

#define BUF_INIT                                                                                   \
    {                                                                                              \
        NULL, 0, 0                                                                                 \
    }

void buf_init(struct buf *b);
void buf_cleanup(struct buf *b);
void buf_reset(struct buf *b);
void buf_append(struct buf *b, const void *data, size_t len);
void buf_puts(struct buf *b, const char *s);
void buf_putc(struct buf *b, char c);
/* Appends s (NULL: nothing) escaped for HTML text and attribute values (& < > " '). */
void buf_put_html(struct buf *b, const char *s);
void buf_printf(struct buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Hands the data to the caller (who frees it) and leaves b empty. Never NULL. */
char *buf_steal(struct buf *b);

#endif
