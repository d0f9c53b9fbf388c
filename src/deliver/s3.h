/* The S3 target driver: events batched into JSON Lines objects (docs/internals/s3.md).
 *
 * s3_target.c: validation of an integration's S3 target, masking and rendering (HTTP
 * threads), request URLs (virtual-hosted or path-style) and signed request setup, and the
 * probe object (a blocking thread of its own).
 * s3_batch.c: the batch rows on the database: append, close (fixing the object key),
 * claim with a lease, lease renewal, outcomes (writer thread, inside transactions).
 * s3.c: the driver's engine callbacks (engine.h, the engine thread): builds each closed
 * batch's JSON Lines spool file in the data dir, uploads it with SigV4 (single PUT, or
 * multipart above 16 MiB), and hands outcomes back to the writer. */
#ifndef SLUICE_DELIVER_S3_H
#define SLUICE_DELIVER_S3_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "core/config.h"
#include "core/err.h"
#include "core/json.h"
#include "store/db.h"
#include "stream/integrations.h"
#include "stream/targets.h"

/* Objects above this size go up as multipart uploads. */
#define S3_MULTIPART_THRESHOLD (16 * 1024 * 1024)

/* Validates an S3 target object t (create, or PATCH with old = the stored target) and
 * writes the stored form (secret sealed, with a hint for masking) to *out (malloc'd, caller
 * frees). Problems go to v. HTTP threads. */
void s3_target_parse(json_t *t, json_t *old, bool allow_private, struct verrs *v, char **out);
/* Replaces the sealed secret of a stored target object with its mask ("****wxyz"). */
void s3_target_mask(json_t *t);

/* Puts the probe object <key_prefix>_sluice_probe with the stored target (JSON text, secret
 * sealed) now, then deletes it, blocking (bounded by timeout_ms per request). Returns
 * {"ok", "status", "latency_ms", "error", "response_body", "code", "message", "key"}, every
 * member present (caller decrefs). Any thread but an HTTP one. */
json_t *s3_probe(const char *target, bool allow_private, int64_t timeout_ms);

/* Adds "open_batch" and "last_object" of an S3 integration to its JSON (read from db); a
 * storage error is returned and o is then incomplete. */
enum err s3_integration_json(struct db *db, const struct integration *in, json_t *o);

/* The S3 target driver (stream/targets.h), with its engine (role s3). */
extern const struct target_driver s3_driver;

#endif
