/* Cryptography on OpenSSL's libcrypto: random bytes, SHA-256, HMAC-SHA256, base64, hex and
 * AES-256-GCM for secrets at rest. Any thread. */
#ifndef SLUICE_CORE_CRYPTO_H
#define SLUICE_CORE_CRYPTO_H

#include <stddef.h>
#include <stdint.h>

#include "core/err.h"

#define SHA256_LEN 32

/* Fills out with cryptographically secure random bytes; aborts if the RNG fails. */
void crypto_random(void *out, size_t len);
void crypto_sha256(const void *data, size_t len, unsigned char out[SHA256_LEN]);
/* Writes the lower-case hex SHA-256 of s (65 bytes with NUL) into out. */
void crypto_sha256_hex(const char *s, char out[2 * SHA256_LEN + 1]);
void crypto_hmac_sha256(const void *key, size_t keylen, const void *data, size_t len,
                        unsigned char out[SHA256_LEN]);

/* Encodes bytes as lower-case hex; returns a malloc'd string the caller frees. */
char *hex_encode(const unsigned char *data, size_t len);
/* Decodes exactly outlen bytes from hex (ignoring surrounding whitespace). */
enum err hex_decode(const char *hex, unsigned char *out, size_t outlen);
/* Standard base64 with padding; returns a malloc'd string the caller frees. */
char *base64_encode(const unsigned char *data, size_t len);
/* Decodes standard base64; returns a malloc'd buffer (caller frees) and its length. */
enum err base64_decode(const char *s, unsigned char **out, size_t *outlen);
/* URL-safe base64 without padding; returns a malloc'd string the caller frees. */
char *base64url_encode(const unsigned char *data, size_t len);

/* Decodes what base64url_encode made (no padding, only A-Z a-z 0-9 - _); returns a malloc'd
 * buffer (caller frees) and its length. ERR_INVALID for anything else. */
enum err base64url_decode(const char *s, unsigned char **out, size_t *outlen);
/* Constant-time comparison of two NUL-terminated strings. */
int crypto_streq(const char *a, const char *b);

/* Seals plaintext with AES-256-GCM under key: returns a malloc'd "v1:<base64(iv|ct|tag)>". */
char *crypto_seal(const unsigned char key[32], const char *plaintext);
/* Opens what crypto_seal produced; *out is a malloc'd string the caller frees. */
enum err crypto_open(const unsigned char key[32], const char *sealed, char **out);

#endif
