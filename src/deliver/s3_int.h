/* Internals shared by the S3 files (s3_target.c, s3_batch.c, s3.c): the opened
 * configuration of a target, request URLs and signed request setup, S3 error parsing, and
 * the batch row operations run on the writer. Not for other subsystems. */
#ifndef SLUICE_DELIVER_S3_INT_H
#define SLUICE_DELIVER_S3_INT_H

#include <curl/curl.h>
#include <stdbool.h>
#include <stdint.h>

#include "core/buf.h"
#include "core/err.h"
#include "core/id.h"
#include "deliver/outbound.h"
#include "deliver/outcome.h"
#include "store/db.h"

/* A target with its secret opened (plaintext: never log it). */
struct s3_conf {
    char *bucket, *region, *prefix, *access_key_id, *secret, *endpoint;
    bool gzip;
};

/* Loads a stored target (JSON text, secret sealed) into c; ERR_INVALID when unusable. The
 * caller calls s3_conf_cleanup() (which wipes the secret). */
enum err s3_conf_load(const char *target, struct s3_conf *c);
void s3_conf_cleanup(struct s3_conf *c);
/* The URL of key (percent-encoded per SigV4) with an optional query ("uploads=", or
 * "partNumber=1&uploadId=..."), path-style with an endpoint. Returns malloc'd text. */
char *s3_url(const struct s3_conf *c, const char *key, const char *query);

/* Request options for one signed request. Body: from a file (fd, offset, len), or from
 * memory (mem, len), or none (len 0). */
struct s3_body {
    int fd;
    int64_t offset, len, pos;
    const char *mem;
};

/* Prepares out (outbound.h: defaults, SSRF guard, given up only when it stalls for
 * timeout_ms, the answer kept up to 64 KiB) for method on url with SigV4, the payload hash
 * header, Content-MD5 and extra headers (may be NULL). Returns the header list the caller
 * frees after the transfer. out->on_header may be set before. */
struct curl_slist *s3_setup(struct outbound *out, const struct s3_conf *c, const char *method,
                            const char *url, struct s3_body *body, const char *sha256_hex,
                            const char *md5_b64, struct curl_slist *extra, bool allow_private,
                            int64_t timeout_ms);
/* Extracts <Code> and <Message> from an S3 XML error body (empty strings when absent). */
void s3_error_parse(const char *xml, char *code, size_t codelen, char *msg, size_t msglen);
/* Extracts the text of the first <tag>…</tag> in xml into out (empty when absent). */
void s3_xml_value(const char *xml, const char *tag, char *out, size_t outlen);

/* --- batch rows (s3_batch.c, writer thread) ---------------------------------------- */

struct s3_candidate {
    char delivery_id[ID_MAX];
    int64_t bytes;
    int64_t published_at;
};

/* Appends candidates (unbatched deliveries with their exact line sizes) to the
 * integration's open batch, closing batches at max_bytes, and closes the open batch when
 * its age is due (an empty one only restarts its clock). *next_close gets the open batch's
 * due time; *closed the number of batches closed. */
enum err s3_batch_append(struct db *db, const char *tenant, const char *integration,
                         const struct s3_candidate *c, int n, int64_t max_bytes, int64_t max_age_ms,
                         int64_t *next_close, int *closed);

struct s3_claim {
    char id[ID_MAX];
    char key[1100];
    char upload_id[256]; /* an earlier multipart upload to abort, or "" */
    int64_t seq, count, bytes;
    int attempt;
    bool gzip;
};

/* Claims the integration's oldest due closed batch for node with a lease. ERR_DONE when
 * none is due; *next_due gets the next due time of the others (-1: none). */
enum err s3_batch_claim(struct db *db, const char *tenant, const char *integration,
                        const char *node, int64_t lease_ms, struct s3_claim *out,
                        int64_t *next_due);

struct s3_outcome {
    char tenant[72], integration[72], node[128];
    char batch_id[ID_MAX];
    char key[1100];
    int attempt;
    int64_t started_at, duration_ms, object_bytes;
    long status;   /* HTTP status, 0 without a response */
    char *error;   /* NULL on success */
    char code[64]; /* S3 error code, or "" */
    char *message; /* S3 error message, or NULL */
    int64_t retry_after;
};

/* Records an upload attempt and moves the batch and its deliveries on (uploaded, retried,
 * or failed after 24 h), with the alerts it causes; the integration takes the consequences
 * (outcome.h) like a webhook's. *kind says what happened (never OUTCOME_REJECTED). */
enum err s3_batch_outcome(struct db *db, const struct s3_outcome *o, enum outcome_kind *kind);
/* Remembers (or forgets, with upload_id NULL) the multipart upload of a leased batch. */
enum err s3_batch_set_upload(struct db *db, const char *tenant, const char *batch_id,
                             const char *node, const char *upload_id);
/* Extends the lease of a batch node still holds to until; *held is false when the lease
 * was lost (another node claimed the batch after it expired). */
enum err s3_batch_renew(struct db *db, const char *tenant, const char *batch_id, const char *node,
                        int64_t until, bool *held);
/* Gives back this node's batch leases (or every lease with node NULL: SQLite start-up). */
enum err s3_batch_release(struct db *db, const char *node);
/* Deletes the batches (and their attempts) of an integration being deleted. */
enum err s3_batch_remove(struct db *db, const char *tenant, const char *integration);

#endif
