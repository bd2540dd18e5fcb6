/* log.h — structured log lines: JSON (one object a line) or readable text.
 *
 * Every line carries time, level, component and message, plus typed fields:
 *   const aster_kv kv[] = { ASTER_KV_STR("job_id", id), ASTER_KV_INT("attempt", 2) };
 *   aster_log(lg, ASTER_LOG_WARN, "engine", "retry scheduled", kv, ASTER_NELEM(kv));
 * A line is formatted into one buffer and written with one write(2), so lines
 * from different threads never interleave.  Any thread may log.
 * Never log secrets: API keys, Authorization headers, a command's env. */
#ifndef ASTER_UTIL_LOG_H
#define ASTER_UTIL_LOG_H

#include <stddef.h>
#include <stdint.h>

#include "util/err.h"

typedef enum {
    ASTER_LOG_DEBUG = 0,
    ASTER_LOG_INFO,
    ASTER_LOG_WARN,
    ASTER_LOG_ERROR
} aster_log_level;
typedef enum { ASTER_LOG_JSON = 0, ASTER_LOG_TEXT } aster_log_format;

typedef enum { ASTER_KV_T_STR, ASTER_KV_T_INT, ASTER_KV_T_DBL, ASTER_KV_T_BOOL } aster_kv_type;

typedef struct aster_kv {
    const char *key;
    aster_kv_type type;
    const char *s;
    int64_t i;
    double d;
} aster_kv;

#define ASTER_KV_STR(k, v)  ((aster_kv){.key = (k), .type = ASTER_KV_T_STR, .s = (v)})
#define ASTER_KV_INT(k, v)  ((aster_kv){.key = (k), .type = ASTER_KV_T_INT, .i = (int64_t)(v)})
#define ASTER_KV_DBL(k, v)  ((aster_kv){.key = (k), .type = ASTER_KV_T_DBL, .d = (double)(v)})
#define ASTER_KV_BOOL(k, v) ((aster_kv){.key = (k), .type = ASTER_KV_T_BOOL, .i = !!(v)})

typedef struct aster_logger {
    aster_log_level level;
    aster_log_format format;
    int fd; /* where lines go: 2 (stderr) normally */
} aster_logger;

/* Fills `lg` (caller's struct).  No resources: nothing to fini. */
void aster_log_init(aster_logger *lg, aster_log_level level, aster_log_format format, int fd);

/* Cheap check so callers can skip building fields for a disabled level. */
static inline int aster_log_enabled(const aster_logger *lg, aster_log_level level)
{
    return lg && level >= lg->level;
}

/* Borrows everything during the call.  A NULL logger discards. */
void aster_log(const aster_logger *lg, aster_log_level level, const char *component,
               const char *msg, const aster_kv *kv, size_t nkv);

int aster_log_level_parse(const char *s);  /* -1 when unknown */
int aster_log_format_parse(const char *s); /* -1 when unknown */
const char *aster_log_level_name(aster_log_level l);

#endif
