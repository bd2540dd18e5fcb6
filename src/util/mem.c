#include "util/mem.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void oom(size_t n)
{
    fprintf(stderr, "aster: out of memory allocating %zu bytes\n", n);
    abort();
}

void *aster_malloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (!p)
        oom(n);
    return p;
}

void *aster_calloc(size_t nmemb, size_t size)
{
    void *p = calloc(nmemb ? nmemb : 1, size ? size : 1);
    if (!p)
        oom(nmemb * size);
    return p;
}

void *aster_realloc(void *p, size_t n)
{
    void *q = realloc(p, n ? n : 1);
    if (!q)
        oom(n);
    return q;
}

char *aster_strdup(const char *s)
{
    if (!s)
        return NULL;
    return aster_strndup(s, strlen(s));
}

char *aster_strndup(const char *s, size_t n)
{
    char *d = aster_malloc(n + 1);
    memcpy(d, s, n);
    d[n] = '\0';
    return d;
}

void aster_free(void *p)
{
    free(p);
}
