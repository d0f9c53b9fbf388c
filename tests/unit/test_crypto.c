/* Tests for core/crypto: digests against published vectors, encodings, AES-GCM sealing. */
#include <stdlib.h>
#include <string.h>

#include "core/crypto.h"
#include "unit.h"

/* Hex of a digest, for comparing with published vectors. */
static void digest_hex(const unsigned char d[SHA256_LEN], char out[2 * SHA256_LEN + 1])
{
    char *h = hex_encode(d, SHA256_LEN);
    memcpy(out, h, 2 * SHA256_LEN + 1);
    free(h);
}

static void test_sha256_vectors(void)
{
    unsigned char d[SHA256_LEN];
    char hex[2 * SHA256_LEN + 1];
    crypto_sha256("abc", 3, d);
    digest_hex(d, hex);
    ASSERT_EQ_STR(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    crypto_sha256("", 0, d);
    digest_hex(d, hex);
    ASSERT_EQ_STR(hex, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    crypto_sha256_hex("abc", hex);
    ASSERT_EQ_STR(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

static void test_hmac_rfc4231_case2(void)
{
    static const char data[] = "what do ya want for nothing?";
    unsigned char d[SHA256_LEN];
    char hex[2 * SHA256_LEN + 1];
    crypto_hmac_sha256("Jefe", 4, data, strlen(data), d);
    digest_hex(d, hex);
    ASSERT_EQ_STR(hex, "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
}

static void test_hex(void)
{
    static const unsigned char bytes[] = {0x00, 0x01, 0xab, 0xcd, 0xef, 0xff};
    char *h = hex_encode(bytes, sizeof bytes);
    ASSERT_EQ_STR(h, "0001abcdefff");
    unsigned char back[sizeof bytes];
    ASSERT_EQ_ERR(hex_decode(h, back, sizeof back), ERR_OK);
    ASSERT_TRUE(!memcmp(back, bytes, sizeof bytes));
    free(h);
    ASSERT_EQ_ERR(hex_decode("0001ABCDEFFF", back, sizeof back), ERR_OK); /* upper case */
    ASSERT_TRUE(!memcmp(back, bytes, sizeof bytes));
    /* surrounding whitespace (a key file's trailing newline) is ignored */
    ASSERT_EQ_ERR(hex_decode("  0001abcdefff\n", back, sizeof back), ERR_OK);
    ASSERT_TRUE(!memcmp(back, bytes, sizeof bytes));
    h = hex_encode(bytes, 0);
    ASSERT_EQ_STR(h, "");
    free(h);
}

static void test_hex_decode_invalid(void)
{
    unsigned char out[4];
    ASSERT_EQ_ERR(hex_decode("0011223", out, 4), ERR_INVALID);    /* too short, odd */
    ASSERT_EQ_ERR(hex_decode("001122", out, 4), ERR_INVALID);     /* too short */
    ASSERT_EQ_ERR(hex_decode("0011223344", out, 4), ERR_INVALID); /* too long */
    ASSERT_EQ_ERR(hex_decode("0011g233", out, 4), ERR_INVALID);   /* not hex */
    ASSERT_EQ_ERR(hex_decode("00 11 22 33", out, 4), ERR_INVALID);
    ASSERT_EQ_ERR(hex_decode("001122335", out, 4), ERR_INVALID);
    ASSERT_EQ_ERR(hex_decode("", out, 4), ERR_INVALID);
    ASSERT_EQ_ERR(hex_decode("0x112233", out, 4), ERR_INVALID);
}

static void test_base64_round_trip(void)
{
    static const struct {
        const char *plain, *b64;
    } rfc4648[] = {
        {"", ""},
        {"f", "Zg=="},
        {"fo", "Zm8="},
        {"foo", "Zm9v"},
        {"foob", "Zm9vYg=="},
        {"fooba", "Zm9vYmE="},
        {"foobar", "Zm9vYmFy"},
    };
    for (size_t i = 0; i < sizeof rfc4648 / sizeof rfc4648[0]; i++) {
        size_t n = strlen(rfc4648[i].plain);
        char *e = base64_encode((const unsigned char *)rfc4648[i].plain, n);
        ASSERT_EQ_STR(e, rfc4648[i].b64);
        unsigned char *d = NULL;
        size_t dlen = 99;
        ASSERT_EQ_ERR(base64_decode(e, &d, &dlen), ERR_OK);
        ASSERT_EQ_INT(dlen, n);
        ASSERT_TRUE(d && !memcmp(d, rfc4648[i].plain, n));
        free(d);
        free(e);
    }
    /* every byte value survives */
    unsigned char all[256];
    for (int i = 0; i < 256; i++)
        all[i] = (unsigned char)i;
    for (size_t len = 250; len <= 256; len++) {
        char *e = base64_encode(all, len);
        unsigned char *d = NULL;
        size_t dlen = 0;
        ASSERT_EQ_ERR(base64_decode(e, &d, &dlen), ERR_OK);
        ASSERT_EQ_INT(dlen, len);
        ASSERT_TRUE(d && !memcmp(d, all, len));
        free(d);
        free(e);
    }
}

static void test_base64url_round_trip(void)
{
    unsigned char all[256];
    for (int i = 0; i < 256; i++)
        all[i] = (unsigned char)i;
    for (size_t n = 0; n <= sizeof all; n += 37) {
        char *e = base64url_encode(all, n);
        ASSERT_TRUE(strspn(e, "+/=") == 0 && !strpbrk(e, "+/="));
        unsigned char *d = NULL;
        size_t dlen = 0;
        ASSERT_EQ_ERR(base64url_decode(e, &d, &dlen), ERR_OK);
        ASSERT_EQ_INT(dlen, n);
        ASSERT_TRUE(n == 0 || memcmp(d, all, n) == 0);
        free(d);
        free(e);
    }
    static const char *const bad[] = {"Zg==", "Zm9v+A", "Zm9v/A", "Z", "Zm 9v", "Zm9v%A"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        unsigned char *d = NULL;
        size_t dlen = 0;
        ASSERT_EQ_ERR(base64url_decode(bad[i], &d, &dlen), ERR_INVALID);
        ASSERT_TRUE(d == NULL);
    }
}

static void test_base64_decode_invalid(void)
{
    static const char *const bad[] = {
        "Zg=",
        "Zm9",
        "Z",
        "Zm9v!A==",
        "Zm9v\xff\xff\xff\xff",
        "Zm 9v",
        "Zm9v-_==",
        /* '=' only as the final padding of the last quantum, and a quantum carries at least
         * one byte (two characters) */
        "====",
        "A===",
        "AA=A",
        "=Zm9",
        "Zg==Zg==",
        "Zm9vZ===",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        unsigned char *d = NULL;
        size_t dlen = 0;
        enum err rc = base64_decode(bad[i], &d, &dlen);
        if (rc != ERR_INVALID)
            unit_fail(__FILE__, __LINE__, "base64_decode(\"%s\") = %s (%zu bytes), want invalid",
                      bad[i], err_name(rc), dlen);
        if (rc == ERR_OK)
            free(d);
    }
}

static void test_base64url(void)
{
    static const unsigned char b[] = {0xfb, 0xff, 0xfe};
    char *s = base64url_encode(b, sizeof b);
    ASSERT_EQ_STR(s, "-__-");
    free(s);
    s = base64url_encode((const unsigned char *)"f", 1);
    ASSERT_EQ_STR(s, "Zg"); /* no padding */
    free(s);
    s = base64url_encode((const unsigned char *)"fo", 2);
    ASSERT_EQ_STR(s, "Zm8");
    free(s);
    s = base64url_encode((const unsigned char *)"", 0);
    ASSERT_EQ_STR(s, "");
    free(s);
    unsigned char raw[24];
    crypto_random(raw, sizeof raw);
    s = base64url_encode(raw, sizeof raw);
    ASSERT_EQ_INT(strlen(s), 32);
    ASSERT_EQ_INT(strcspn(s, "+/="), 32);
    free(s);
}

static void test_streq(void)
{
    ASSERT_TRUE(crypto_streq("", ""));
    ASSERT_TRUE(crypto_streq("secret", "secret"));
    ASSERT_TRUE(!crypto_streq("secret", "secreT"));
    ASSERT_TRUE(!crypto_streq("secret", "secret2"));
    ASSERT_TRUE(!crypto_streq("secret2", "secret"));
    ASSERT_TRUE(!crypto_streq("", "x"));
}

static void test_random(void)
{
    unsigned char a[32] = {0}, b[32] = {0};
    crypto_random(a, sizeof a);
    crypto_random(b, sizeof b);
    ASSERT_TRUE(memcmp(a, b, sizeof a) != 0);
}

static void test_seal_open_round_trip(void)
{
    unsigned char key[32];
    crypto_random(key, sizeof key);
    static const char *const texts[] = {"", "x", "hunter2", "a longer secret: p@ss/w0rd+=\n"};
    for (size_t i = 0; i < sizeof texts / sizeof texts[0]; i++) {
        char *sealed = crypto_seal(key, texts[i]);
        ASSERT_TRUE(!strncmp(sealed, "v1:", 3));
        if (strlen(texts[i]) >= 5)
            ASSERT_TRUE(strstr(sealed, texts[i]) == NULL);
        char *out = NULL;
        ASSERT_EQ_ERR(crypto_open(key, sealed, &out), ERR_OK);
        ASSERT_EQ_STR(out, texts[i]);
        free(out);
        /* a fresh IV each time: the same plaintext seals differently */
        char *again = crypto_seal(key, texts[i]);
        ASSERT_TRUE(strcmp(sealed, again) != 0);
        free(again);
        free(sealed);
    }
}

static void test_open_tampered(void)
{
    unsigned char key[32];
    crypto_random(key, sizeof key);
    char *sealed = crypto_seal(key, "the webhook secret");
    size_t n = strlen(sealed);
    /* flip one character at several places: IV, ciphertext and tag */
    size_t at[] = {3, 10, n / 2, n - 6};
    for (size_t i = 0; i < sizeof at / sizeof at[0]; i++) {
        char *t = strdup(sealed);
        t[at[i]] = t[at[i]] == 'A' ? 'B' : 'A';
        char *out = NULL;
        ASSERT_EQ_ERR(crypto_open(key, t, &out), ERR_INVALID);
        ASSERT_TRUE(out == NULL);
        free(out);
        free(t);
    }
    char *out = NULL;
    ASSERT_EQ_ERR(crypto_open(key, "v2:AAAA", &out), ERR_INVALID);
    ASSERT_EQ_ERR(crypto_open(key, "", &out), ERR_INVALID);
    ASSERT_EQ_ERR(crypto_open(key, "v1:", &out), ERR_INVALID);
    ASSERT_EQ_ERR(crypto_open(key, "v1:AAAA", &out), ERR_INVALID); /* shorter than IV + tag */
    ASSERT_EQ_ERR(crypto_open(key, "v1:not base64!", &out), ERR_INVALID);
    ASSERT_EQ_ERR(crypto_open(key, sealed + 3, &out), ERR_INVALID); /* no version */
    ASSERT_TRUE(out == NULL);
    free(sealed);
}

static void test_open_wrong_key(void)
{
    unsigned char key[32], other[32];
    crypto_random(key, sizeof key);
    memcpy(other, key, sizeof key);
    other[31] ^= 1;
    char *sealed = crypto_seal(key, "the webhook secret");
    char *out = NULL;
    ASSERT_EQ_ERR(crypto_open(other, sealed, &out), ERR_INVALID);
    ASSERT_TRUE(out == NULL);
    free(out);
    free(sealed);
}

void unit_crypto(void)
{
    RUN(test_sha256_vectors);
    RUN(test_hmac_rfc4231_case2);
    RUN(test_hex);
    RUN(test_hex_decode_invalid);
    RUN(test_base64_round_trip);
    RUN(test_base64_decode_invalid);
    RUN(test_base64url_round_trip);
    RUN(test_base64url);
    RUN(test_streq);
    RUN(test_random);
    RUN(test_seal_open_round_trip);
    RUN(test_open_tampered);
    RUN(test_open_wrong_key);
}
