/* mem.h — allocation that never returns NULL.
 *
 * Inputs are bounded (util/limits.h), so running out of memory is not an
 * input error to report but a condition we cannot serve through: these log
 * one line to stderr and abort, and error paths stay for real errors. */
#ifndef ASTER_UTIL_MEM_H
#define ASTER_UTIL_MEM_H

#include <stddef.h>

void *aster_malloc(size_t n);
void *aster_calloc(size_t nmemb, size_t size);
void *aster_realloc(void *p, size_t n);
char *aster_strdup(const char *s); /* NULL in, NULL out */
char *aster_strndup(const char *s, size_t n);
void aster_free(void *p); /* NULL is a no-op */

#endif
