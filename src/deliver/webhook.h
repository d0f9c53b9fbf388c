/* The webhook target driver: an integration whose target is {"type": "webhook", "url",
 * "api_key", "api_key_header"} gets each event POSTed as a signed envelope. Its engine
 * (deliver/engine.h) claims due deliveries per integration through the writer, with a
 * lease, sends them with connection reuse and hands each outcome back to the writer.
 *
 * webhook.c: the engine's driver (engine thread), the outcome of an attempt (writer), the
 * test action (a blocking thread of its own). webhook_target.c: target validation and
 * masking (HTTP threads). */
#ifndef SLUICE_DELIVER_WEBHOOK_H
#define SLUICE_DELIVER_WEBHOOK_H

#include <jansson.h>
#include <stdbool.h>

#include "core/json.h"
#include "deliver/outcome.h"
#include "store/db.h"
#include "stream/deliveries.h"
#include "stream/targets.h"

/* The webhook target driver (stream/targets.h). */
extern const struct target_driver webhook_driver;

/* Records one attempt of a webhook delivery and applies its outcome: the delivery moves on
 * (succeeded, rejected, retried or failed after 24 h; the entity's next one released), a
 * final failure records its task and alert, and the integration takes the consequences
 * (outcome.h). *kind says what happened. Writer thread. */
enum err webhook_record_outcome(struct db *db, const struct attempt_outcome *o,
                                enum outcome_kind *kind);

/* webhook_target.c: validates a webhook target (create: old NULL; PATCH: old = the stored
 * target) into its stored form with the API key sealed; masks it for answers. */
void webhook_target_parse(json_t *t, json_t *old, bool allow_private, struct verrs *v, char **out);
void webhook_target_mask(json_t *t);

#endif
