/* Unsubscribe links: the signed URL in every notification mail ("Stop these mails" and the
 * RFC 8058 List-Unsubscribe header) and what following it does.
 *
 * A token names (tenant, channel, address) and carries an HMAC-SHA256 tag under a key derived
 * from the master key, so it needs no API key and cannot be forged or altered; it does not
 * expire (an old mail's link still works). Token functions run on any thread; the
 * unsubscribe itself is a writer job. */
#ifndef SLUICE_NOTIFY_UNSUBSCRIBE_H
#define SLUICE_NOTIFY_UNSUBSCRIBE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/err.h"
#include "core/id.h"
#include "store/db.h"

#define UNSUB_ADDRESS_MAX 256

/* What a valid token names. */
struct unsub_target {
    char tenant[72];
    char channel_id[ID_MAX];
    char address[UNSUB_ADDRESS_MAX];
};

/* The URL-safe token for address on the channel; malloc'd, the caller frees it. */
char *unsubscribe_token(const char *tenant, const char *channel_id, const char *address);

/* Checks token's tag and fills out; ERR_INVALID for anything malformed or forged. */
enum err unsubscribe_verify(const char *token, struct unsub_target *out);

/* Removes the address from the channel's addresses (compared without regard to case) and
 * records it with time now in the channel's unsubscribed list. *done is true when this call
 * removed it, false when it was no longer there. ERR_NOT_FOUND when the channel is gone.
 * Writer thread. */
enum err unsubscribe_apply(struct db *db, const struct unsub_target *t, int64_t now, bool *done);

#endif
