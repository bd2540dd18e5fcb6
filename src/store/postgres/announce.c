/* announce.c — new jobs announced to listeners after their commit, many in
 * one statement.
 *
 * Why not a trigger, as for updates and deletes: PostgreSQL commits
 * transactions that NOTIFY one at a time, holding its notification queue
 * lock through the WAL flush, so a NOTIFY in every job INSERT turns
 * concurrent creations into one fsync each (4.6k jobs/s here, against
 * pgbench's 18.7k single-row INSERTs/s).  Here the INSERT commits alone,
 * with its peers' in the same WAL flush, and a thread of this store sends
 * the ids of the jobs just created, a batch at a time, from a transaction
 * that writes nothing.  An announcement is lost only if the process dies
 * between the two; the scheduler reads all jobs again now and then
 * (engine.c) for that case. */
#include "store/postgres/pg_int.h"

#include <string.h>

#include "util/mem.h"

#define ANNOUNCE_MAX 100000 /* queued ids at most; past it the resync catches up */

struct pg_announcer {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    pthread_t thread;
    char *ids; /* n ids of ASTER_ID_LEN, back to back */
    size_t n, cap;
    bool stopping;
};

struct announce_call {
    pg_params p;
};

static int announce_fn(pg_conn *c, void *ctx, aster_err *err)
{
    struct announce_call *x = ctx;
    PGresult *r =
        pg_query(c, PG_ANNOUNCE_JOBS,
                 "SELECT pg_notify('aster_job', id) FROM unnest($1::text[]) AS id", &x->p);
    if (!r)
        return pg_fail(c, "announcing new jobs", err);
    PQclear(r);
    return 0;
}

static void *announce_main(void *arg)
{
    pg_store *s = arg;
    pg_announcer *a = s->announcer;

    for (;;) {
        char *ids;
        size_t n;

        pthread_mutex_lock(&a->mu);
        while (!a->n && !a->stopping)
            pthread_cond_wait(&a->cv, &a->mu);
        ids = a->ids;
        n = a->n;
        a->ids = NULL;
        a->n = a->cap = 0;
        pthread_mutex_unlock(&a->mu);
        if (!n)
            break; /* stopping, and everything sent */

        /* {id,id,...}: ids are UUIDs, nothing to quote. */
        struct announce_call x = {.p = {.n = 0}};
        char *lit = aster_malloc(n * (ASTER_ID_LEN + 1) + 2), *p = lit;
        *p++ = '{';
        for (size_t i = 0; i < n; i++) {
            memcpy(p, ids + i * ASTER_ID_LEN, ASTER_ID_LEN);
            p += ASTER_ID_LEN;
            *p++ = i + 1 < n ? ',' : '}';
        }
        *p = '\0';
        pg_p_text(&x.p, 1, lit);
        aster_err err = {0};
        (void)pg_run(s, PG_READ, announce_fn, &x, &err); /* lost: the resync stands in */
        aster_free(lit);
        aster_free(ids);
    }
    return NULL;
}

void pg_announce_job(pg_store *s, const char *id)
{
    pg_announcer *a;

    pthread_mutex_lock(&s->lock);
    if (!s->announcer) {
        /* Started on the first job created: most processes never create
         * one and need no thread. */
        a = aster_calloc(1, sizeof(*a));
        pthread_mutex_init(&a->mu, NULL);
        pthread_cond_init(&a->cv, NULL);
        s->announcer = a;
        if (pthread_create(&a->thread, NULL, announce_main, s)) {
            s->announcer = NULL;
            pthread_cond_destroy(&a->cv);
            pthread_mutex_destroy(&a->mu);
            aster_free(a);
        }
    }
    a = s->announcer;
    pthread_mutex_unlock(&s->lock);
    if (!a || strlen(id) != ASTER_ID_LEN)
        return;
    pthread_mutex_lock(&a->mu);
    if (a->n < ANNOUNCE_MAX) {
        if (a->n == a->cap) {
            a->cap = a->cap ? a->cap * 2 : 64;
            a->ids = aster_realloc(a->ids, a->cap * ASTER_ID_LEN);
        }
        memcpy(a->ids + a->n++ * ASTER_ID_LEN, id, ASTER_ID_LEN);
        pthread_cond_signal(&a->cv);
    }
    pthread_mutex_unlock(&a->mu);
}

void pg_announce_stop(pg_store *s)
{
    pg_announcer *a = s->announcer;

    if (!a)
        return;
    pthread_mutex_lock(&a->mu);
    a->stopping = true;
    pthread_cond_signal(&a->cv);
    pthread_mutex_unlock(&a->mu);
    pthread_join(a->thread, NULL); /* sends what is queued first */
    aster_free(a->ids);
    pthread_cond_destroy(&a->cv);
    pthread_mutex_destroy(&a->mu);
    aster_free(a);
    s->announcer = NULL;
}
