/* The notifier: one thread that claims due notification rows (the database is the queue),
 * renders each as a MIME mail (an immediate issue mail or a window's digest) and sends it
 * over SMTP with libcurl, then records the outcome through the writer: sent, or a retry
 * with backoff, or failed after 24 h (scaled) of retries, each on the issues' timelines. */
#ifndef SLUICE_NOTIFY_NOTIFIER_H
#define SLUICE_NOTIFY_NOTIFIER_H

#include <stdbool.h>
#include <stddef.h>

#include "alert/channels.h"
#include "core/config.h"
#include "core/err.h"
#include "store/db.h"

/* Registers metrics and keeps cfg (read-only afterwards); starts the sending thread when
 * run is true and --smtp-url is set. Main thread. */
enum err notifier_start(const struct config *cfg, bool run);
void notifier_stop(void);
/* Wakes the thread: new notifications may be due. Any thread. */
void notifier_wake(void);
/* Sends a test message to the channel's addresses now (blocking; the caller's thread).
 * ERR_IO with a reason in errmsg when the send fails, ERR_CONFLICT when mail is disabled. */
enum err notifier_send_test(const struct channel *c, const char *tenant_name, char *errmsg,
                            size_t errlen);
/* Writer: returns the notifications node leased (every leased one when node is NULL) to
 * pending, for another node to send. */
enum err notifier_release(struct db *db, const char *node);
/* "disabled", "ok", or the last SMTP error (static or thread-safe copy into out). */
const char *notifier_smtp_state(char *out, size_t outlen);

#endif
