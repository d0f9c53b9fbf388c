/* Logging to stderr, as text or JSON lines. Any thread: each record is one write(2).
 * Never log secrets: callers pass masked values. */
#ifndef SLUICE_CORE_LOG_H
#define SLUICE_CORE_LOG_H

enum log_level { LOG_DEBUG, LOG_INFO, LOG_WARN, LOG_ERROR };

/* Configure once at start-up. level: "debug"|"info"|"warn"|"error"; format: "text"|"json".
 * Returns 0, or -1 for an unknown value. */
int log_configure(const char *level, const char *format);
void log_msg(enum log_level level, const char *component, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#define log_debug(c, ...) log_msg(LOG_DEBUG, c, __VA_ARGS__)
#define log_info(c, ...) log_msg(LOG_INFO, c, __VA_ARGS__)
#define log_warn(c, ...) log_msg(LOG_WARN, c, __VA_ARGS__)
#define log_error(c, ...) log_msg(LOG_ERROR, c, __VA_ARGS__)

#endif
