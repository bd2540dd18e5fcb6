#include "util/log.h"

#include <errno.h>
#include <stdarg.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "util/jsonw.h"
#include "util/time.h"

/* A line longer than this is cut (and says so): logs must not be a way to
 * make the process allocate without bound. */
#define LINE_MAX_BYTES 8192

typedef struct line {
    char buf[LINE_MAX_BYTES];
    size_t len;
    int cut;
} line;

static void put(line *l, const char *s, size_t n)
{
    if (l->len + n > sizeof(l->buf) - 64) {
        l->cut = 1;
        return;
    }
    memcpy(l->buf + l->len, s, n);
    l->len += n;
}

static void puts_(line *l, const char *s)
{
    put(l, s, strlen(s));
}

static void putf(line *l, const char *fmt, ...) ASTER_PRINTF(2, 3);
static void putf(line *l, const char *fmt, ...)
{
    char tmp[128];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
    va_end(ap);
    if (n > 0)
        put(l, tmp, (size_t)n < sizeof(tmp) ? (size_t)n : sizeof(tmp) - 1);
}

static void put_any(void *l, const char *s, size_t n)
{
    put(l, s, n);
}

/* JSON string escaping; in text format, quotes only values that need it. */
static void put_json_str(line *l, const char *s)
{
    put(l, "\"", 1);
    aster_json_escape(s ? s : "", put_any, l);
    put(l, "\"", 1);
}

static void put_text_str(line *l, const char *s)
{
    s = s ? s : "";
    if (*s && !strpbrk(s, " \"=\t\n\r\\"))
        puts_(l, s);
    else
        put_json_str(l, s);
}

static void put_value(line *l, const aster_kv *kv, int json)
{
    switch (kv->type) {
    case ASTER_KV_T_STR:
        if (json)
            put_json_str(l, kv->s);
        else
            put_text_str(l, kv->s);
        break;
    case ASTER_KV_T_INT:
        putf(l, "%lld", (long long)kv->i);
        break;
    case ASTER_KV_T_DBL:
        if (isfinite(kv->d))
            putf(l, "%.6g", kv->d);
        else
            puts_(l, json ? "null" : "nan");
        break;
    case ASTER_KV_T_BOOL:
        puts_(l, kv->i ? "true" : "false");
        break;
    }
}

static const char *const level_names[] = {"debug", "info", "warn", "error"};

void aster_log_init(aster_logger *lg, aster_log_level level, aster_log_format format, int fd)
{
    lg->level = level;
    lg->format = format;
    lg->fd = fd;
}

void aster_log(const aster_logger *lg, aster_log_level level, const char *component,
               const char *msg, const aster_kv *kv, size_t nkv)
{
    line l;
    char ts[ASTER_TIME_BUFSZ];
    int json;

    if (!aster_log_enabled(lg, level))
        return;
    json = lg->format == ASTER_LOG_JSON;
    l.len = 0;
    l.cut = 0;
    aster_time_format_ms(aster_time_now(), ts, sizeof(ts));
    if (json) {
        puts_(&l, "{\"time\":\"");
        puts_(&l, ts);
        puts_(&l, "\",\"level\":\"");
        puts_(&l, level_names[level]);
        puts_(&l, "\",\"component\":");
        put_json_str(&l, component);
        puts_(&l, ",\"msg\":");
        put_json_str(&l, msg);
        for (size_t i = 0; i < nkv; i++) {
            puts_(&l, ",");
            put_json_str(&l, kv[i].key);
            puts_(&l, ":");
            put_value(&l, &kv[i], 1);
        }
        if (l.cut)
            puts_(&l, ",\"truncated\":true");
        puts_(&l, "}\n");
    } else {
        putf(&l, "%s %-5s [%s] ", ts, level_names[level], component ? component : "");
        puts_(&l, msg ? msg : "");
        for (size_t i = 0; i < nkv; i++) {
            puts_(&l, " ");
            puts_(&l, kv[i].key);
            puts_(&l, "=");
            put_value(&l, &kv[i], 0);
        }
        if (l.cut)
            puts_(&l, " (truncated)");
        puts_(&l, "\n");
    }
    /* The 64 bytes kept free in put() guarantee room for the closing part. */
    for (size_t off = 0; off < l.len;) {
        ssize_t w = write(lg->fd, l.buf + off, l.len - off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            break; /* nowhere to report a failing log sink */
        off += (size_t)w;
    }
}

int aster_log_level_parse(const char *s)
{
    for (size_t i = 0; s && i < ASTER_NELEM(level_names); i++)
        if (!strcmp(s, level_names[i]))
            return (int)i;
    if (s && !strcmp(s, "warning"))
        return ASTER_LOG_WARN;
    return -1;
}

int aster_log_format_parse(const char *s)
{
    if (s && !strcmp(s, "json"))
        return ASTER_LOG_JSON;
    if (s && !strcmp(s, "text"))
        return ASTER_LOG_TEXT;
    return -1;
}

const char *aster_log_level_name(aster_log_level l)
{
    return (unsigned)l < ASTER_NELEM(level_names) ? level_names[l] : "unknown";
}
