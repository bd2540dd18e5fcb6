#include "api/auth.h"

#include <ctype.h>
#include <errno.h>
#include <openssl/crypto.h>
#include <openssl/sha.h>
#include <stdio.h>
#include <string.h>

#include "util/mem.h"

#define MAX_KEYS    1024
#define MAX_KEY_LEN 512

typedef struct key {
    unsigned char digest[SHA256_DIGEST_LENGTH];
    int readonly;
} key;

struct aster_keys {
    key *v;
    size_t n;
};

static int add_key(aster_keys *k, const char *s, size_t len, const char *field, aster_err *err)
{
    int ro = 0;
    while (len && isspace((unsigned char)*s))
        s++, len--;
    while (len && isspace((unsigned char)s[len - 1]))
        len--;
    if (!len)
        return 0;
    if (len > 3 && !strncmp(s, "ro:", 3)) {
        ro = 1;
        s += 3;
        len -= 3;
    }
    if (len > MAX_KEY_LEN)
        return aster_err_set(err, ASTER_EINVAL, field, "a key is longer than %d bytes",
                             MAX_KEY_LEN);
    if (k->n == MAX_KEYS)
        return aster_err_set(err, ASTER_EINVAL, field, "more than %d keys", MAX_KEYS);
    k->v = aster_realloc(k->v, (k->n + 1) * sizeof(key));
    SHA256((const unsigned char *)s, len, k->v[k->n].digest);
    k->v[k->n].readonly = ro;
    k->n++;
    return 0;
}

int aster_keys_load(const char *list, const char *file, aster_keys **out, aster_err *err)
{
    aster_keys *k = aster_calloc(1, sizeof(*k));
    FILE *f = NULL;
    char line[MAX_KEY_LEN + 64];
    int rc = 0;

    for (const char *p = list; p && *p && !rc;) {
        const char *comma = strchr(p, ',');
        size_t len = comma ? (size_t)(comma - p) : strlen(p);
        rc = add_key(k, p, len, "ASTER_API_KEYS", err);
        p = comma ? comma + 1 : p + len;
    }
    if (!rc && file) {
        f = fopen(file, "r");
        if (!f)
            rc = aster_err_set(err, ASTER_EINVAL, "--api-keys-file", "cannot read %s: %s", file,
                               strerror(errno));
        while (!rc && f && fgets(line, sizeof(line), f)) {
            if (line[0] == '#')
                continue;
            rc = add_key(k, line, strlen(line), "--api-keys-file", err);
        }
    }
    if (f)
        fclose(f);
    /* A key source that was given but holds no key must not leave the API
     * open: the operator meant to protect it. */
    if (!rc && k->n == 0 && (file || (list && *list)))
        rc = aster_err_set(err, ASTER_EINVAL, file ? "--api-keys-file" : "ASTER_API_KEYS",
                           "no API key found%s%s", file ? " in " : "", file ? file : "");
    if (!rc && k->n == 0) {
        aster_keys_free(k);
        k = NULL;
    }
    if (rc) {
        aster_keys_free(k);
        return rc;
    }
    *out = k;
    return 0;
}

void aster_keys_free(aster_keys *k)
{
    if (!k)
        return;
    OPENSSL_cleanse(k->v, k->n * sizeof(key));
    aster_free(k->v);
    aster_free(k);
}

size_t aster_keys_count(const aster_keys *k)
{
    return k ? k->n : 0;
}

aster_key_access aster_keys_check(const aster_keys *k, const char *authorization)
{
    unsigned char d[SHA256_DIGEST_LENGTH];
    aster_key_access best = ASTER_KEY_NONE;
    const char *tok;

    if (!k || !authorization || strncasecmp(authorization, "Bearer ", 7))
        return ASTER_KEY_NONE;
    tok = authorization + 7;
    while (*tok == ' ')
        tok++;
    SHA256((const unsigned char *)tok, strlen(tok), d);
    for (size_t i = 0; i < k->n; i++) {
        /* No early exit: every key costs the same. */
        if (CRYPTO_memcmp(d, k->v[i].digest, sizeof(d)) == 0) {
            aster_key_access a = k->v[i].readonly ? ASTER_KEY_READ : ASTER_KEY_WRITE;
            if (a > best)
                best = a;
        }
    }
    return best;
}
