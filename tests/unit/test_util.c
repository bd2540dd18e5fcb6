/* Unit tests for src/util and src/api/auth: pure functions, table-driven. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>

#include "api/auth.h"
#include "util/addr.h"
#include "util/config.h"
#include "util/jsonw.h"
#include "util/log.h"
#include "util/time.h"
#include "util/uuid.h"

static void test_civil_roundtrip(void **state)
{
    (void)state;
    static const struct {
        int64_t y;
        int m, d;
        int64_t days;
        int wday;
    } cases[] = {
        {1970, 1, 1, 0, 4},       {2000, 2, 29, 11016, 2}, {2024, 2, 29, 19782, 4},
        {1969, 12, 31, -1, 3},    {2100, 3, 1, 47541, 1},  {2026, 11, 23, 20780, 1},
        {1600, 1, 1, -135140, 6},
    };
    for (size_t i = 0; i < ASTER_NELEM(cases); i++) {
        int64_t y;
        int m, d;
        assert_int_equal(aster_days_from_civil(cases[i].y, cases[i].m, cases[i].d), cases[i].days);
        aster_civil_from_days(cases[i].days, &y, &m, &d);
        assert_int_equal(y, cases[i].y);
        assert_int_equal(m, cases[i].m);
        assert_int_equal(d, cases[i].d);
        assert_int_equal(aster_weekday_from_days(cases[i].days), cases[i].wday);
    }
    assert_int_equal(aster_days_in_month(2024, 2), 29);
    assert_int_equal(aster_days_in_month(2100, 2), 28);
    assert_int_equal(aster_days_in_month(2000, 2), 29);
    assert_int_equal(aster_days_in_month(2026, 4), 30);
}

static void test_rfc3339(void **state)
{
    (void)state;
    static const struct {
        const char *in;
        aster_time_us want;
    } ok[] = {
        {"1970-01-01T00:00:00Z", 0},
        {"2026-03-08T06:30:00Z", INT64_C(1772951400) * 1000000},
        {"2026-03-08T01:30:00-05:00", INT64_C(1772951400) * 1000000},
        {"2026-03-08T07:30:00+01:00", INT64_C(1772951400) * 1000000},
        {"2026-03-08t06:30:00.25z", INT64_C(1772951400) * 1000000 + 250000},
        {"2026-03-08 06:30:00.123456789Z", INT64_C(1772951400) * 1000000 + 123456},
        {"1969-12-31T23:59:59.5Z", -500000},
    };
    static const char *const bad[] = {
        "",
        "2026-03-08",
        "2026-03-08T06:30Z",
        "2026-13-01T00:00:00Z",
        "2026-02-30T00:00:00Z",
        "2026-03-08T24:00:00Z",
        "2026-03-08T06:30:00",
        "2026-03-08T06:30:00+5",
        "x",
        "2026-03-08T06:30:00.Z",
        "2026-03-08T06:30:00Zjunk",
    };
    for (size_t i = 0; i < ASTER_NELEM(ok); i++) {
        aster_time_us t = 0;
        aster_err err = {0};
        assert_int_equal(aster_time_parse_rfc3339(ok[i].in, "from", &t, &err), 0);
        assert_true(t == ok[i].want);
    }
    for (size_t i = 0; i < ASTER_NELEM(bad); i++) {
        aster_time_us t = 42;
        aster_err err = {0};
        assert_int_equal(aster_time_parse_rfc3339(bad[i], "from", &t, &err), ASTER_EINVAL);
        assert_string_equal(err.field, "from");
        assert_true(t == 42);
    }
    char buf[ASTER_TIME_BUFSZ];
    assert_string_equal(
        aster_time_format_ms(INT64_C(1772951400) * 1000000 + 7999, buf, sizeof(buf)),
        "2026-03-08T06:30:00.007Z");
    assert_string_equal(aster_time_format_ms(-500000, buf, sizeof(buf)),
                        "1969-12-31T23:59:59.500Z");
    assert_string_equal(aster_time_format_sec(1772951400, buf, sizeof(buf)),
                        "2026-03-08T06:30:00Z");
}

static void test_duration(void **state)
{
    (void)state;
    static const struct {
        const char *in;
        int64_t sec;
    } ok[] = {{"90s", 90}, {"5m", 300}, {"1h30m", 5400}, {"2d", 172800}, {"1d2h3m4s", 93784}};
    static const char *const bad[] = {"",   "5",    "m",  "-5s",
                                      "5x", "1.5h", "s5", "99999999999999999999d"};
    for (size_t i = 0; i < ASTER_NELEM(ok); i++) {
        int64_t us = 0;
        assert_int_equal(aster_duration_parse(ok[i].in, "d", &us, NULL), 0);
        assert_true(us == ok[i].sec * 1000000);
    }
    int64_t ms = 0;
    assert_int_equal(aster_duration_parse("250ms", "d", &ms, NULL), 0);
    assert_true(ms == 250000);
    for (size_t i = 0; i < ASTER_NELEM(bad); i++) {
        int64_t us = 0;
        aster_err err = {0};
        assert_int_equal(aster_duration_parse(bad[i], "timeout", &us, &err), ASTER_EINVAL);
        assert_string_equal(err.field, "timeout");
    }
}

static void test_uuid7(void **state)
{
    (void)state;
    char prev[ASTER_UUID_STRLEN + 1] = "", cur[ASTER_UUID_STRLEN + 1];
    for (int i = 0; i < 10000; i++) {
        aster_uuid7(cur);
        assert_true(aster_uuid_is_uuid(cur));
        assert_int_equal(cur[14], '7');
        assert_true(strchr("89ab", cur[19]) != NULL);
        assert_true(strcmp(prev, cur) < 0); /* strictly increasing in one process */
        memcpy(prev, cur, sizeof(cur));
    }
    assert_false(aster_uuid_is_uuid("nightly-backup"));
    assert_false(aster_uuid_is_uuid("0192d8c0-0000-7000-8000-00000000000"));
    assert_false(aster_uuid_is_uuid("0192d8c0-0000-7000-8000-0000000000000"));
    assert_true(aster_uuid_is_uuid("0192D8C0-0000-4000-8000-000000000000"));
}

static void test_config(void **state)
{
    (void)state;
    aster_config cfg;
    aster_err err = {0};
    char *argv1[] = {"serve", "--listen", "127.0.0.1:9", "--concurrency=7", "--insecure"};

    setenv("ASTER_LISTEN", "127.0.0.1:1", 1);
    setenv("ASTER_LOG_LEVEL", "warn", 1);
    assert_int_equal(aster_config_load(&cfg, ASTER_CMD_SERVE, 5, argv1, &err), 0);
    assert_string_equal(cfg.listen, "127.0.0.1:9");  /* the flag wins */
    assert_int_equal(cfg.log_level, ASTER_LOG_WARN); /* the variable applies */
    assert_true(cfg.concurrency == 7);
    assert_true(cfg.insecure);
    assert_string_equal(cfg.store, "sqlite:./aster.db");
    aster_config_fini(&cfg);
    unsetenv("ASTER_LISTEN");
    unsetenv("ASTER_LOG_LEVEL");

    static const struct {
        const char *arg, *field;
    } bad[] = {
        {"--nope", "--nope"},
        {"--concurrency=abc", "--concurrency"},
        {"--concurrency=0", "--concurrency"},
        {"--log-level=loud", "--log-level"},
        {"--log-format=xml", "--log-format"},
        {"stray", "stray"},
        {"--insecure=maybe", "--insecure"},
    };
    for (size_t i = 0; i < ASTER_NELEM(bad); i++) {
        char *argv[] = {"serve", (char *)bad[i].arg};
        aster_err e = {0};
        assert_int_equal(aster_config_load(&cfg, ASTER_CMD_SERVE, 2, argv, &e), ASTER_EINVAL);
        assert_string_equal(e.field, bad[i].field);
        aster_config_fini(&cfg);
    }
    char *argv2[] = {"serve", "--listen"};
    assert_int_equal(aster_config_load(&cfg, ASTER_CMD_SERVE, 2, argv2, &err), ASTER_EINVAL);
    aster_config_fini(&cfg);

    aster_err e2 = {0};
    setenv("ASTER_CONCURRENCY", "lots", 1);
    char *argv3[] = {"serve"};
    assert_int_equal(aster_config_load(&cfg, ASTER_CMD_SERVE, 1, argv3, &e2), ASTER_EINVAL);
    assert_string_equal(e2.field, "ASTER_CONCURRENCY");
    aster_config_fini(&cfg);
    unsetenv("ASTER_CONCURRENCY");
}

static void test_addr(void **state)
{
    (void)state;
    static const struct {
        const char *in;
        int loopback;
        const char *fmt;
    } ok[] = {
        {"127.0.0.1:8080", 1, "127.0.0.1:8080"},
        {"127.1.2.3:0", 1, "127.1.2.3:0"},
        {"[::1]:80", 1, "[::1]:80"},
        {"0.0.0.0:8080", 0, "0.0.0.0:8080"},
        {"192.0.2.1:1", 0, "192.0.2.1:1"},
        {"localhost:5", 1, NULL},
    };
    static const char *const bad[] = {
        "", "8080", ":8080", "127.0.0.1:", "127.0.0.1:70000", "127.0.0.1:x", "[::1:80"};
    for (size_t i = 0; i < ASTER_NELEM(ok); i++) {
        aster_addr a;
        char buf[80];
        assert_int_equal(aster_addr_parse(ok[i].in, "--listen", &a, NULL), 0);
        assert_int_equal(aster_addr_is_loopback(&a), ok[i].loopback);
        if (ok[i].fmt)
            assert_string_equal(aster_addr_format(&a, -1, buf, sizeof(buf)), ok[i].fmt);
    }
    for (size_t i = 0; i < ASTER_NELEM(bad); i++) {
        aster_addr a;
        aster_err err = {0};
        assert_int_equal(aster_addr_parse(bad[i], "--listen", &a, &err), ASTER_EINVAL);
        assert_string_equal(err.field, "--listen");
    }
}

static void test_keys(void **state)
{
    (void)state;
    aster_keys *k = NULL;
    char path[] = "/tmp/aster-keys-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_true(write(fd, "# comment\nfilekey\n\nro:filero\n", 28) == 28);
    close(fd);

    assert_int_equal(aster_keys_load(" k1 ,ro:k2", path, &k, NULL), 0);
    assert_int_equal(aster_keys_count(k), 4);
    assert_int_equal(aster_keys_check(k, "Bearer k1"), ASTER_KEY_WRITE);
    assert_int_equal(aster_keys_check(k, "bearer k2"), ASTER_KEY_READ);
    assert_int_equal(aster_keys_check(k, "Bearer filekey"), ASTER_KEY_WRITE);
    assert_int_equal(aster_keys_check(k, "Bearer filero"), ASTER_KEY_READ);
    assert_int_equal(aster_keys_check(k, "Bearer k3"), ASTER_KEY_NONE);
    assert_int_equal(aster_keys_check(k, "Bearer ro:k2"), ASTER_KEY_NONE);
    assert_int_equal(aster_keys_check(k, "k1"), ASTER_KEY_NONE);
    assert_int_equal(aster_keys_check(k, NULL), ASTER_KEY_NONE);
    aster_keys_free(k);
    unlink(path);

    k = (aster_keys *)1;
    assert_int_equal(aster_keys_load(NULL, NULL, &k, NULL), 0);
    assert_null(k);
    aster_err err = {0};
    assert_int_equal(aster_keys_load(NULL, "/nonexistent/keys", &k, &err), ASTER_EINVAL);
    assert_string_equal(err.field, "--api-keys-file");
}

static void test_log_lines(void **state)
{
    (void)state;
    int fds[2];
    char buf[4096];
    aster_logger lg;
    assert_int_equal(pipe(fds), 0);

    aster_log_init(&lg, ASTER_LOG_INFO, ASTER_LOG_JSON, fds[1]);
    const aster_kv kv[] = {ASTER_KV_STR("job_id", "a\"b\n"), ASTER_KV_INT("attempt", 2),
                           ASTER_KV_BOOL("ok", 1)};
    aster_log(&lg, ASTER_LOG_DEBUG, "engine", "hidden", kv, ASTER_NELEM(kv));
    aster_log(&lg, ASTER_LOG_WARN, "engine", "retry scheduled", kv, ASTER_NELEM(kv));
    aster_log_init(&lg, ASTER_LOG_DEBUG, ASTER_LOG_TEXT, fds[1]);
    aster_log(&lg, ASTER_LOG_ERROR, "api", "oops", kv + 1, 1);
    close(fds[1]);
    ssize_t n = read(fds[0], buf, sizeof(buf) - 1);
    close(fds[0]);
    assert_true(n > 0);
    buf[n] = '\0';
    assert_null(strstr(buf, "hidden"));
    char *nl = strchr(buf, '\n');
    assert_non_null(nl);
    *nl = '\0';
    assert_true(buf[0] == '{');
    assert_non_null(strstr(buf, "\"level\":\"warn\",\"component\":\"engine\","
                                "\"msg\":\"retry scheduled\",\"job_id\":\"a\\\"b\\n\","
                                "\"attempt\":2,\"ok\":true}"));
    assert_non_null(strstr(buf, "\"time\":\""));
    assert_non_null(strstr(nl + 1, "error [api] oops attempt=2\n"));
}

/* The writer prints what jansson prints with JSON_COMPACT, byte for byte:
 * the API answers with both. */
static void test_jsonw_matches_jansson(void **state)
{
    (void)state;
    char every[128];
    for (int c = 1; c < 128; c++)
        every[c - 1] = (char)c;
    every[127] = '\0';
    const char *strs[] = {"",
                          "plain",
                          every,
                          "caf\xc3\xa9",
                          "\xe6\x97\xa5\xe6\x9c\xac",
                          "\xf0\x9f\x98\x80 / \\ \"q\"",
                          "tab\there\r\n",
                          "\x7f\x1f"};
    const int64_t ints[] = {0, -1, 42, INT64_MAX, INT64_MIN};
    aster_jw w;
    json_t *ref = json_object(), *arr = json_array();

    aster_jw_init(&w);
    aster_jw_begin(&w, '{');
    for (size_t i = 0; i < sizeof(strs) / sizeof(strs[0]); i++) {
        char key[16];
        snprintf(key, sizeof(key), "s%zu", i);
        aster_jw_key(&w, key);
        aster_jw_str(&w, strs[i]);
        json_object_set_new(ref, key, json_string(strs[i]));
    }
    aster_jw_key(&w, "ints");
    aster_jw_begin(&w, '[');
    for (size_t i = 0; i < sizeof(ints) / sizeof(ints[0]); i++) {
        aster_jw_int(&w, ints[i]);
        json_array_append_new(arr, json_integer(ints[i]));
    }
    aster_jw_begin(&w, '{');
    aster_jw_end(&w, '}');
    json_array_append_new(arr, json_object());
    aster_jw_begin(&w, '[');
    aster_jw_bool(&w, true);
    aster_jw_bool(&w, false);
    aster_jw_null(&w);
    aster_jw_str(&w, NULL);
    aster_jw_end(&w, ']');
    json_array_append_new(arr, json_pack("[bbnn]", 1, 0));
    aster_jw_end(&w, ']');
    json_object_set_new(ref, "ints", arr);
    aster_jw_key(&w, "raw");
    aster_jw_raw(&w, "{\"k\":[1,2]}", 11);
    json_object_set_new(ref, "raw", json_pack("{s:[ii]}", "k", 1, 2));
    aster_jw_end(&w, '}');

    char *want = json_dumps(ref, JSON_COMPACT);
    size_t len = 0;
    char *got = aster_jw_take(&w, &len);
    assert_string_equal(got, want);
    assert_int_equal(len, strlen(want));
    assert_null(w.buf); /* take leaves it empty */
    free(got);
    free(want);
    json_decref(ref);
    got = aster_jw_take(&w, &len); /* nothing written: an empty string */
    assert_string_equal(got, "");
    assert_int_equal(len, 0);
    free(got);
}

static void test_jsonw_member(void **state)
{
    (void)state;
    const char *obj = "{\"ab\":0,\"a\":{\"c\":[1,\"]}\\\"\"]},\"d\":\"x\\\"y\", \"e\" : -12.5e3 ,"
                      "\"f\":null}";
    static const struct {
        const char *key, *value;
    } cases[] = {{"a", "{\"c\":[1,\"]}\\\"\"]}"},
                 {"ab", "0"},
                 {"d", "\"x\\\"y\""},
                 {"e", "-12.5e3"},
                 {"f", "null"},
                 {"c", NULL},
                 {"", NULL},
                 {"abc", NULL}};
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        size_t n = 0;
        const char *v = aster_jw_member(obj, cases[i].key, &n);
        if (!cases[i].value) {
            assert_null(v);
            continue;
        }
        assert_non_null(v);
        assert_int_equal(n, strlen(cases[i].value));
        assert_memory_equal(v, cases[i].value, n);
    }
    /* Not an object, or not a whole one: no member, never a read past the
     * end. */
    const char *bad[] = {"",          "[1]",        "{",           "{\"a\"",
                         "{\"a\":",   "{\"a\":[1}", "{\"a\":\"x}", "{\"a\":1 \"b\":2}",
                         "{\"a\":]}", "{}"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        size_t n = 0;
        assert_null(aster_jw_member(bad[i], "b", &n));
    }
    size_t n = 0;
    assert_null(aster_jw_member("{\"a\":[1}", "a", &n));
}

/* The hand-written format against the C library's, across eras and the
 * fallback for years beyond four digits. */
static void test_time_format_ms(void **state)
{
    (void)state;
    const int64_t secs[] = {0,
                            -1,
                            1,
                            951782400,
                            1795377600,
                            4102444799,
                            -62135596800,
                            253402300799,
                            253402300800,
                            -62135596801};
    const int64_t frac[] = {0, 1, 999, 1000, 123456, 999999};
    for (size_t i = 0; i < sizeof(secs) / sizeof(secs[0]); i++)
        for (size_t k = 0; k < sizeof(frac) / sizeof(frac[0]); k++) {
            aster_time_us t = secs[i] * 1000000 + frac[k];
            time_t tt = (time_t)secs[i];
            struct tm tm;
            char want[64], got[ASTER_TIME_BUFSZ];
            assert_non_null(gmtime_r(&tt, &tm));
            snprintf(want, sizeof(want), "%04lld-%02d-%02dT%02d:%02d:%02d.%03dZ",
                     (long long)tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
                     tm.tm_sec, (int)(frac[k] / 1000));
            assert_string_equal(aster_time_format_ms(t, got, sizeof(got)), want);
        }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_civil_roundtrip),
        cmocka_unit_test(test_rfc3339),
        cmocka_unit_test(test_duration),
        cmocka_unit_test(test_uuid7),
        cmocka_unit_test(test_config),
        cmocka_unit_test(test_addr),
        cmocka_unit_test(test_keys),
        cmocka_unit_test(test_log_lines),
        cmocka_unit_test(test_time_format_ms),
        cmocka_unit_test(test_jsonw_matches_jansson),
        cmocka_unit_test(test_jsonw_member),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
