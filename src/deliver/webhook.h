/* The webhook engine: one thread running a libcurl multi handle. It claims due deliveries
 * per integration (through the writer, with a lease), sends them with connection reuse,
 * and hands each outcome back to the writer. Woken directly after commits that route
 * events; a 1 s tick covers other nodes' work and retry times. */
#ifndef SLUICE_DELIVER_WEBHOOK_H
#define SLUICE_DELIVER_WEBHOOK_H

#include <jansson.h>

#include "core/config.h"
#include "core/err.h"
#include "core/json.h"
#include "deliver/outcome.h"
#include "stream/deliveries.h"
#include "stream/integrations.h"
#include "stream/targets.h"

enum err webhook_start(const struct config *cfg);
/* Stops claiming, aborts what is in flight and releases this node's leases. */
void webhook_stop(void);
/* Store wake hook bits arrived: there may be new due work. Any thread. */
void webhook_wake(void);
/* An integration changed on this node: reload the engine's view now. Any thread. */
void webhook_config_changed(void);

/* Sends a sluice.test event to the integration now (blocking, bounded by the webhook
 * timeout) and returns {"ok", "status", "latency_ms", "error"} (caller decrefs). */
json_t *webhook_test(const struct integration *in, const struct config *cfg);

/* Records one attempt of a webhook delivery and applies its outcome: the delivery moves on
 * (succeeded, rejected, retried or failed after 24 h; the entity's next one released), a
 * final failure records its task and alert, and the integration takes the consequences
 * (outcome.h). *kind says what happened. Writer thread. */
enum err webhook_record_outcome(struct db *db, const struct attempt_outcome *o,
                                enum outcome_kind *kind);

/* The webhook target driver (stream/targets.h), and its parts (webhook_target.c). */
extern const struct target_driver webhook_driver;
void webhook_target_parse(json_t *t, json_t *old, bool allow_private, struct verrs *v, char **out);
void webhook_target_mask(json_t *t);

/* Builds the envelope body for an event row (payload is raw JSON text). Returns malloc'd
 * JSON; the caller frees it. attempt < 0 leaves the "attempt" member out (S3 lines). */
char *webhook_envelope(const char *event_id, const char *type, const char *entity,
                       const char *entity_id, int64_t sequence, int64_t occurred_at,
                       int64_t published_at, const char *tenant, const char *integration,
                       int attempt, const char *payload);
/* Standard Webhooks signature "v1,<base64 HMAC-SHA256(id.timestamp.body)>" with the key
 * from "whsec_<base64>". Returns malloc'd text, or NULL for a malformed secret. */
char *webhook_sign(const char *secret, const char *msg_id, long long timestamp, const char *body);

#endif
