/* The Event Stream envelope — what a consumer receives for one event, the same object as a
 * webhook body and as a line of an S3 object — and its Standard Webhooks signature. Pure
 * functions; any thread. */
#ifndef SLUICE_DELIVER_ENVELOPE_H
#define SLUICE_DELIVER_ENVELOPE_H

#include <stdint.h>

#include "store/db.h"

/* One stored event (strings borrowed; payload is the stored compact JSON text). */
struct envelope_event {
    const char *id, *type, *entity, *entity_id;
    int64_t sequence, occurred_at, published_at;
    const char *payload;
};

/* The events columns an envelope needs, in the order envelope_from_row() reads them (an
 * events table aliased "e"). */
#define ENVELOPE_COLS                                                                              \
    "e.id, e.type, e.entity, e.entity_id, e.sequence, e.occurred_at, e.published_at, e.payload"
/* Fills ev from the current row of st, columns ENVELOPE_COLS from col on (the strings stay
 * the statement's until it moves on). */
void envelope_from_row(struct db_stmt *st, int col, struct envelope_event *ev);

/* {"id", "type", "name", "entity", "entity_id", "sequence", "occurred_at", "published_at",
 * "tenant", "integration_id", ["attempt",] "payload"} as compact JSON, the payload text
 * copied as it is stored. attempt < 0 leaves "attempt" out (S3 lines). Returns malloc'd
 * text; the caller frees it. */
char *envelope_build(const struct envelope_event *ev, const char *tenant, const char *integration,
                     int attempt);

/* The Standard Webhooks signature "v1,<base64 HMAC-SHA256(msg_id.timestamp.body)>" with the
 * key of secret ("whsec_<base64>"). Returns malloc'd text, or NULL for a malformed secret. */
char *envelope_sign(const char *secret, const char *msg_id, long long timestamp, const char *body);

#endif
