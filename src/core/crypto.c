/* libcrypto wrappers. Any thread: every call uses its own contexts. */
#include "core/crypto.h"

#include <ctype.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/xalloc.h"

void crypto_random(void *out, size_t len)
{
    if (RAND_bytes(out, (int)len) != 1) {
        fprintf(stderr, "sluice: the random number generator failed\n");
        abort();
    }
}

void crypto_sha256(const void *data, size_t len, unsigned char out[SHA256_LEN])
{
    unsigned int n = 0;
    EVP_Digest(data, len, out, &n, EVP_sha256(), NULL);
}

void crypto_sha256_hex(const char *s, char out[2 * SHA256_LEN + 1])
{
    unsigned char h[SHA256_LEN];
    crypto_sha256(s, strlen(s), h);
    static const char hexd[] = "0123456789abcdef";
    for (int i = 0; i < SHA256_LEN; i++) {
        out[2 * i] = hexd[h[i] >> 4];
        out[2 * i + 1] = hexd[h[i] & 15];
    }
    out[2 * SHA256_LEN] = '\0';
}

void crypto_hmac_sha256(const void *key, size_t keylen, const void *data, size_t len,
                        unsigned char out[SHA256_LEN])
{
    unsigned int n = 0;
    HMAC(EVP_sha256(), key, (int)keylen, data, len, out, &n);
}

char *hex_encode(const unsigned char *data, size_t len)
{
    static const char hexd[] = "0123456789abcdef";
    char *out = xmalloc(2 * len + 1);
    for (size_t i = 0; i < len; i++) {
        out[2 * i] = hexd[data[i] >> 4];
        out[2 * i + 1] = hexd[data[i] & 15];
    }
    out[2 * len] = '\0';
    return out;
}

static int hexval(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

enum err hex_decode(const char *hex, unsigned char *out, size_t outlen)
{
    while (isspace((unsigned char)*hex))
        hex++;
    for (size_t i = 0; i < outlen; i++) {
        int hi = hexval(hex[2 * i]), lo = hi < 0 ? -1 : hexval(hex[2 * i + 1]);
        if (hi < 0 || lo < 0)
            return ERR_INVALID;
        out[i] = (unsigned char)(hi << 4 | lo);
    }
    for (const char *p = hex + 2 * outlen; *p; p++)
        if (!isspace((unsigned char)*p))
            return ERR_INVALID;
    return ERR_OK;
}

char *base64_encode(const unsigned char *data, size_t len)
{
    char *out = xmalloc(4 * ((len + 2) / 3) + 1);
    EVP_EncodeBlock((unsigned char *)out, data, (int)len);
    return out;
}

enum err base64_decode(const char *s, unsigned char **out, size_t *outlen)
{
    size_t n = strlen(s);
    if (n % 4 != 0)
        return ERR_INVALID;
    /* '=' only as padding: at most two, and only at the very end. */
    const char *eq = strchr(s, '=');
    if (eq && (n - (size_t)(eq - s) > 2 || strspn(eq, "=") != n - (size_t)(eq - s)))
        return ERR_INVALID;
    unsigned char *buf = xmalloc(n / 4 * 3 + 1);
    int r = EVP_DecodeBlock(buf, (const unsigned char *)s, (int)n);
    if (r < 0) {
        free(buf);
        return ERR_INVALID;
    }
    size_t len = (size_t)r;
    if (n >= 1 && s[n - 1] == '=')
        len--;
    if (n >= 2 && s[n - 2] == '=')
        len--;
    *out = buf;
    *outlen = len;
    return ERR_OK;
}

char *base64url_encode(const unsigned char *data, size_t len)
{
    char *s = base64_encode(data, len);
    char *w = s;
    for (char *p = s; *p; p++) {
        if (*p == '=')
            continue;
        *w++ = *p == '+' ? '-' : *p == '/' ? '_' : *p;
    }
    *w = '\0';
    return s;
}

enum err base64url_decode(const char *s, unsigned char **out, size_t *outlen)
{
    size_t n = strlen(s);
    if (strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_") != n ||
        n % 4 == 1)
        return ERR_INVALID;
    char *std = xmalloc(n + 3);
    for (size_t i = 0; i < n; i++)
        std[i] = s[i] == '-' ? '+' : s[i] == '_' ? '/' : s[i];
    size_t m = n;
    while (m % 4)
        std[m++] = '=';
    std[m] = '\0';
    enum err rc = base64_decode(std, out, outlen);
    free(std);
    return rc;
}

int crypto_streq(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    unsigned char diff = (unsigned char)(la != lb);
    size_t n = la < lb ? la : lb;
    for (size_t i = 0; i < n; i++)
        diff |= (unsigned char)(a[i] ^ b[i]);
    return diff == 0;
}

#define GCM_IV 12
#define GCM_TAG 16

char *crypto_seal(const unsigned char key[32], const char *plaintext)
{
    size_t n = strlen(plaintext);
    unsigned char *blob = xmalloc(GCM_IV + n + GCM_TAG);
    crypto_random(blob, GCM_IV);
    EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
    int len = 0;
    if (!ctx || EVP_EncryptInit_ex(ctx, EVP_aes_256_gcm(), NULL, key, blob) != 1 ||
        EVP_EncryptUpdate(ctx, blob + GCM_IV, &len, (const unsigned char *)plaintext, (int)n) !=
            1 ||
        EVP_EncryptFinal_ex(ctx, blob + GCM_IV + len, &len) != 1 ||
        EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, GCM_TAG, blob + GCM_IV + n) != 1) {
        fprintf(stderr, "sluice: AES-GCM encryption failed\n");
        abort();
    }
    EVP_CIPHER_CTX_free(ctx);
    char *b64 = base64_encode(blob, GCM_IV + n + GCM_TAG);
    free(blob);
    char *out = xasprintf("v1:%s", b64);
    free(b64);
    return out;
}

enum err crypto_open(const unsigned char key[32], const char *sealed, char **out)
{
    if (strncmp(sealed, "v1:", 3) != 0)
        return ERR_INVALID;
    unsigned char *blob = NULL;
    size_t n = 0;
    if (base64_decode(sealed + 3, &blob, &n) != ERR_OK)
        return ERR_INVALID;
    if (n < GCM_IV + GCM_TAG) {
        free(blob);
        return ERR_INVALID;
    }
    size_t ctlen = n - GCM_IV - GCM_TAG;
    char *pt = xmalloc(ctlen + 1);
    EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
    int len = 0,
        ok = ctx && EVP_DecryptInit_ex(ctx, EVP_aes_256_gcm(), NULL, key, blob) == 1 &&
             EVP_DecryptUpdate(ctx, (unsigned char *)pt, &len, blob + GCM_IV, (int)ctlen) == 1 &&
             EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, GCM_TAG, blob + GCM_IV + ctlen) == 1 &&
             EVP_DecryptFinal_ex(ctx, (unsigned char *)pt + len, &len) == 1;
    EVP_CIPHER_CTX_free(ctx);
    free(blob);
    if (!ok) {
        free(pt);
        return ERR_INVALID;
    }
    pt[ctlen] = '\0';
    *out = pt;
    return ERR_OK;
}
