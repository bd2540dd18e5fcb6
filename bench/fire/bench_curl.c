/* bench_curl.c — the machine's limit for HTTP jobs: a bare libcurl multi
 * loop that, at each whole second, starts N POSTs to URL with at most C in
 * flight, as a scheduler with nothing else to do would.  A request starts
 * when it gets a slot (curl_multi_add_handle); its start delay from the
 * second is the least drift any scheduler bound to C in flight can show.
 * bench/fire/run.sh prints Aster's drift beside it.
 *
 * usage: bench_curl URL N C SECONDS
 * prints one JSON line: {"n", "c", "seconds", "exec_per_s", "drift_p50",
 *   "drift_p99", "drift_max", "failed"} (drift: start delay in ms, the
 *   keys fire.py reports); the first second (cold connections) is left out
 *   of the figures.
 *
 * libcurl only: it measures libcurl and the OS, not Aster. */
#define _POSIX_C_SOURCE 200809L
#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double wall_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static size_t discard(char *p, size_t sz, size_t n, void *u)
{
    (void)p;
    (void)u;
    return sz * n;
}

static int cmp_d(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
    if (argc != 5) {
        fprintf(stderr, "usage: bench_curl URL N C SECONDS\n");
        return 2;
    }
    const char *url = argv[1];
    long n = atol(argv[2]), c = atol(argv[3]), secs = atol(argv[4]);
    if (n < 1 || n > 1000000 || c < 1 || c > 100000 || secs < 2 || secs > 600) {
        fprintf(stderr, "bench_curl: N 1..1000000, C 1..100000, SECONDS 2..600\n");
        return 2;
    }
    curl_global_init(CURL_GLOBAL_DEFAULT);
    CURLM *m = curl_multi_init();
    CURL **idle = malloc((size_t)c * sizeof(*idle));
    double *delay = malloc((size_t)n * (size_t)(secs - 1) * sizeof(*delay));
    long nidle = 0, ndelay = 0, failed = 0, done_total = 0;
    if (!m || !idle || !delay) {
        fprintf(stderr, "bench_curl: out of memory\n");
        return 1;
    }
    curl_multi_setopt(m, CURLMOPT_MAXCONNECTS, c);
    for (long i = 0; i < c; i++) {
        CURL *h = curl_easy_init();
        curl_easy_setopt(h, CURLOPT_URL, url);
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, "");
        curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
        curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, discard);
        curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, 30000L);
        idle[nidle++] = h;
    }
    double first = (double)(long)wall_s() + 1.0, t_meas = first + 1.0;
    for (long s = 0; s < secs; s++) {
        double at = first + (double)s;
        long started = 0, running = 0;
        double now;
        while ((now = wall_s()) < at) {
            int k;
            curl_multi_poll(m, NULL, 0, (int)((at - now) * 1000) + 1, &k);
        }
        while (started < n || running > 0) {
            int still, left;
            CURLMsg *msg;
            while (started < n && nidle > 0) {
                CURL *h = idle[--nidle];
                curl_multi_add_handle(m, h);
                if (at >= t_meas)
                    delay[ndelay++] = wall_s() - at;
                started++;
                running++;
            }
            curl_multi_perform(m, &still);
            while ((msg = curl_multi_info_read(m, &left))) {
                if (msg->msg != CURLMSG_DONE)
                    continue;
                long code = 0;
                curl_easy_getinfo(msg->easy_handle, CURLINFO_RESPONSE_CODE, &code);
                if (msg->data.result != CURLE_OK || code / 100 != 2)
                    failed++;
                curl_multi_remove_handle(m, msg->easy_handle);
                idle[nidle++] = msg->easy_handle;
                running--;
                if (at >= t_meas)
                    done_total++;
            }
            if (running > 0 && (nidle == 0 || started == n)) {
                int k;
                curl_multi_poll(m, NULL, 0, 100, &k);
            }
        }
    }
    qsort(delay, (size_t)ndelay, sizeof(*delay), cmp_d);
    printf("{\"n\": %ld, \"c\": %ld, \"seconds\": %ld, \"exec_per_s\": %.0f, \"drift_p50\": %.0f, "
           "\"drift_p99\": %.0f, \"drift_max\": %.0f, \"failed\": %ld}\n",
           n, c, secs - 1, (double)done_total / (double)(secs - 1), delay[ndelay / 2] * 1000.0,
           delay[(size_t)((double)ndelay * 0.99)] * 1000.0, delay[ndelay - 1] * 1000.0, failed);
    for (long i = 0; i < nidle; i++)
        curl_easy_cleanup(idle[i]);
    curl_multi_cleanup(m);
    curl_global_cleanup();
    free(idle);
    free(delay);
    return 0;
}
