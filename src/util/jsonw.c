/* jsonw.c — see jsonw.h. */
#include "util/jsonw.h"

#include <stdio.h>
#include <string.h>

#include "util/mem.h"

void aster_jw_init(aster_jw *w)
{
    memset(w, 0, sizeof(*w));
}

void aster_jw_fini(aster_jw *w)
{
    aster_free(w->buf);
    aster_jw_init(w);
}

char *aster_jw_take(aster_jw *w, size_t *len)
{
    char *s = w->buf ? w->buf : aster_strdup("");
    if (len)
        *len = w->len;
    aster_jw_init(w);
    return s;
}

static void put(aster_jw *w, const char *s, size_t n)
{
    if (w->len + n + 1 > w->cap) {
        size_t cap = w->cap ? w->cap * 2 : 1024;
        while (cap < w->len + n + 1)
            cap *= 2;
        w->buf = aster_realloc(w->buf, cap);
        w->cap = cap;
    }
    memcpy(w->buf + w->len, s, n);
    w->len += n;
    w->buf[w->len] = '\0';
}

/* Before a value or a key: the comma that separates it from the last. */
static void sep(aster_jw *w)
{
    if (w->comma)
        put(w, ",", 1);
    w->comma = true;
}

void aster_jw_begin(aster_jw *w, char open)
{
    sep(w);
    put(w, &open, 1);
    w->comma = false;
}

void aster_jw_end(aster_jw *w, char close)
{
    put(w, &close, 1);
    w->comma = true;
}

void aster_jw_key(aster_jw *w, const char *key)
{
    sep(w);
    put(w, "\"", 1);
    put(w, key, strlen(key));
    put(w, "\":", 2);
    w->comma = false;
}

void aster_json_escape(const char *s, void (*out)(void *arg, const char *p, size_t n), void *arg)
{
    /* What jansson's dump_string escapes, nothing more: '/' and non-ASCII
     * stay as they are. */
    static const char from[] = "\"\\\b\f\n\r\t", to[] = "\"\\bfnrt";
    const char *run = s;

    for (;; s++) {
        unsigned char c = (unsigned char)*s;
        if (c >= 0x20 && c != '"' && c != '\\')
            continue;
        if (s > run)
            out(arg, run, (size_t)(s - run));
        if (!c)
            return;
        char esc[8];
        const char *short_form = strchr(from, c);
        if (short_form) {
            esc[0] = '\\';
            esc[1] = to[short_form - from];
            out(arg, esc, 2);
        } else {
            snprintf(esc, sizeof(esc), "\\u%04X", c);
            out(arg, esc, 6);
        }
        run = s + 1;
    }
}

static void put_any(void *w, const char *s, size_t n)
{
    put(w, s, n);
}

void aster_jw_str(aster_jw *w, const char *s)
{
    if (!s) {
        aster_jw_null(w);
        return;
    }
    sep(w);
    put(w, "\"", 1);
    aster_json_escape(s, put_any, w);
    put(w, "\"", 1);
}

void aster_jw_int(aster_jw *w, int64_t v)
{
    /* Digits from the right, without snprintf's format parsing. */
    char num[24], *p = num + sizeof(num);
    uint64_t u = v < 0 ? 0 - (uint64_t)v : (uint64_t)v;
    do {
        *--p = (char)('0' + u % 10);
        u /= 10;
    } while (u);
    if (v < 0)
        *--p = '-';
    sep(w);
    put(w, p, (size_t)(num + sizeof(num) - p));
}

void aster_jw_bool(aster_jw *w, bool v)
{
    sep(w);
    put(w, v ? "true" : "false", v ? 4 : 5);
}

void aster_jw_null(aster_jw *w)
{
    sep(w);
    put(w, "null", 4);
}

void aster_jw_raw(aster_jw *w, const char *json, size_t n)
{
    sep(w);
    put(w, json, n);
}

/* ---- reading members back ---- */

static const char *skip_ws(const char *p)
{
    while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')
        p++;
    return p;
}

/* `p` at an opening quote: the byte after the closing one, or NULL. */
static const char *skip_string(const char *p)
{
    for (p++; *p != '"'; p++) {
        if (!*p)
            return NULL;
        if (*p == '\\' && !*++p)
            return NULL;
    }
    return p + 1;
}

/* `p` at a value: the byte after it, or NULL when the text ends first or
 * brackets do not pair.  Scalars are not checked: the text is jansson's. */
static const char *skip_value(const char *p)
{
    char stack[64];
    size_t depth = 0;

    do {
        if (*p == '"') {
            if (!(p = skip_string(p)))
                return NULL;
        } else if (*p == '{' || *p == '[') {
            if (depth == sizeof(stack))
                return NULL;
            stack[depth++] = *p == '{' ? '}' : ']';
            p++;
        } else if (*p == '}' || *p == ']') {
            if (!depth || stack[--depth] != *p)
                return NULL;
            p++;
        } else if (!*p) {
            return NULL;
        } else if (depth) {
            p++;
        } else {
            size_t n = strcspn(p, ",}] \t\r\n");
            if (!n)
                return NULL;
            p += n;
        }
    } while (depth);
    return p;
}

const char *aster_jw_member(const char *obj, const char *key, size_t *n)
{
    size_t klen = strlen(key);
    const char *p = skip_ws(obj);

    if (*p++ != '{')
        return NULL;
    p = skip_ws(p);
    if (*p == '}')
        return NULL;
    for (;;) {
        const char *k = p, *kend, *v, *end;
        if (*p != '"' || !(kend = skip_string(p)))
            return NULL;
        p = skip_ws(kend);
        if (*p++ != ':')
            return NULL;
        v = skip_ws(p);
        if (!(end = skip_value(v)))
            return NULL;
        if ((size_t)(kend - k) == klen + 2 && !memcmp(k + 1, key, klen)) {
            *n = (size_t)(end - v);
            return v;
        }
        p = skip_ws(end);
        if (*p == '}')
            return NULL;
        if (*p++ != ',')
            return NULL;
        p = skip_ws(p);
    }
}
