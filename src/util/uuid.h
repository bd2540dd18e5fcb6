/* uuid.h — UUIDv7 identifiers (RFC 9562): 48-bit Unix milliseconds, then
 * random bits, so ids sort by creation time and make good B-tree keys.
 * Within one process ids are strictly increasing: the 12-bit rand_a field
 * carries a counter when several ids share a millisecond. Thread-safe. */
#ifndef ASTER_UTIL_UUID_H
#define ASTER_UTIL_UUID_H

#include <stdbool.h>

#define ASTER_UUID_STRLEN 36

/* Writes the text form (36 chars + NUL) into out[37]. */
void aster_uuid7(char out[ASTER_UUID_STRLEN + 1]);
/* True when s has the 8-4-4-4-12 hex form of any UUID (any version). */
bool aster_uuid_is_uuid(const char *s);

#endif
