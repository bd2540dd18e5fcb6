/* auth.h — API keys.  A key is a secret: it is never logged or echoed. */
#ifndef ASTER_API_AUTH_H
#define ASTER_API_AUTH_H

#include <stddef.h>

#include "util/err.h"

typedef struct aster_keys aster_keys; /* opaque */

typedef enum { ASTER_KEY_NONE = 0, ASTER_KEY_READ = 1, ASTER_KEY_WRITE = 2 } aster_key_access;

/* Builds the key set from a comma-separated list (may be NULL) and a file
 * with one key a line (may be NULL; blank lines and '#' comments skipped).
 * "ro:KEY" is a read-only key.  Errors name the field ("ASTER_API_KEYS",
 * "--api-keys-file").  *out is NULL when no key is configured at all. */
ASTER_MUST_CHECK
int aster_keys_load(const char *list, const char *file, aster_keys **out, aster_err *err);
void aster_keys_free(aster_keys *k); /* NULL-safe */
size_t aster_keys_count(const aster_keys *k);

/* Access granted by the Authorization header value (may be NULL).  Keys
 * are compared through their SHA-256 digests with a constant-time compare,
 * and every key is compared, so timing reveals neither a key nor which
 * matched.  Any thread. */
aster_key_access aster_keys_check(const aster_keys *k, const char *authorization);

#endif
