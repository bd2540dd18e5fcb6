/* jsonw.h — writing JSON text straight into a growing buffer.
 *
 * The documents the API answers with most (a job, a page of jobs) are built
 * here rather than as a jansson tree: a tree costs an allocation and a hash
 * insert per field, and then a second walk to print it, which was a third of
 * the CPU of a GET.  The output is what jansson prints with JSON_COMPACT
 * (same escapes, UTF-8 kept as is), so both paths give the same bytes.
 *
 * Commas are the writer's business: keys and values are written in order
 * and it puts a comma before each member or element but the first. */
#ifndef ASTER_UTIL_JSONW_H
#define ASTER_UTIL_JSONW_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct aster_jw {
    char *buf; /* owned; NUL-terminated after every call */
    size_t len, cap;
    bool comma; /* the next member or element needs one */
} aster_jw;

void aster_jw_init(aster_jw *w);
void aster_jw_fini(aster_jw *w);
/* Hands the text over (free it with free() or aster_free) and leaves `w`
 * empty, as after init. */
char *aster_jw_take(aster_jw *w, size_t *len);

void aster_jw_begin(aster_jw *w, char open); /* '{' or '[' */
void aster_jw_end(aster_jw *w, char close);  /* '}' or ']' */
/* An object member's key; its value is the next call. `key` is written as
 * is: a literal of plain ASCII with nothing to escape. */
void aster_jw_key(aster_jw *w, const char *key);
void aster_jw_str(aster_jw *w, const char *s); /* NULL: null */
void aster_jw_int(aster_jw *w, int64_t v);
void aster_jw_bool(aster_jw *w, bool v);
void aster_jw_null(aster_jw *w);
/* `n` bytes of JSON text written as one value, unchecked. */
void aster_jw_raw(aster_jw *w, const char *json, size_t n);

/* Writes `s` escaped as the inside of a JSON string (no quotes), with the
 * escapes jansson writes, through `out`: the one escaper, for the writer
 * and for log lines (util/log.c). */
void aster_json_escape(const char *s, void (*out)(void *arg, const char *p, size_t n), void *arg);

/* In the JSON object text `obj` (as jansson prints it), the value of the
 * top-level member `key` (plain ASCII): its start, and its length in *n.
 * NULL when there is no such member or the text is not a well-formed
 * object. */
const char *aster_jw_member(const char *obj, const char *key, size_t *n);

#endif
