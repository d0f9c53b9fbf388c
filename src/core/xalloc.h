/* Allocation that aborts on failure (h2o, git): callers never check for NULL. Limits on
 * everything that grows keep hostile input from reaching these. Any thread. */
#ifndef SLUICE_CORE_XALLOC_H
#define SLUICE_CORE_XALLOC_H

#include <stddef.h>

void *xmalloc(size_t n);
void *xcalloc(size_t count, size_t n);
void *xrealloc(void *p, size_t n);
/* Returns a malloc'd copy of s (NULL stays NULL); the caller frees it. */
char *xstrdup(const char *s);
/* Returns a malloc'd, NUL-terminated copy of the first n bytes of s; the caller frees it. */
char *xstrndup(const char *s, size_t n);
/* Returns a malloc'd formatted string; the caller frees it. */
char *xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
