/* group.c — concurrent job creations written together.
 *
 * Every POST /jobs is an API thread calling aster_store_job_insert.  Alone,
 * each creation is a transaction: on SQLite the threads hand the write lock
 * to one another once per job, on PostgreSQL each is a statement and a WAL
 * flush in a backend.  Here a creation joins a queue; a thread that finds a
 * lane free takes what is queued (its own and others') and hands it to the
 * backend's job_insert_many, one write for the lot, then wakes the owners.
 * A lone creation finds a lane free and is written at once through the
 * plain job_insert, so nothing ever waits for company.
 *
 * Each creation keeps its own answer: the backends write each row so that
 * one refused (a name in use) spoils no other. */
#include "store/store_int.h"

#include "util/mem.h"

#define GROUP_CHUNK 256 /* creations per write at most */

struct group_ins {
    const aster_job *job;
    int rc;
    aster_err err;
    bool done;
    pthread_cond_t cond; /* its owner waits here: a wake-up is for it alone */
    struct group_ins *next;
};

void aster_store_group_init(aster_store_group *g)
{
    pthread_mutex_init(&g->lock, NULL);
    g->head = NULL;
    g->tail = &g->head;
    g->lanes = 0;
}

void aster_store_group_fini(aster_store_group *g)
{
    pthread_mutex_destroy(&g->lock);
}

/* Writes `batch` (taken off the queue) and sets each one's rc and err. */
static void write_batch(aster_store *st, struct group_ins *batch, size_t n)
{
    const aster_job **jobs;
    int *rcs;
    aster_err *errs;
    size_t i = 0;

    if (n == 1) {
        batch->rc = st->ops->job_insert(st, batch->job, &batch->err);
        return;
    }
    jobs = aster_malloc(n * sizeof(*jobs));
    rcs = aster_malloc(n * sizeof(*rcs));
    errs = aster_malloc(n * sizeof(*errs));
    for (struct group_ins *x = batch; x; x = x->next)
        jobs[i++] = x->job;
    st->ops->job_insert_many(st, jobs, n, rcs, errs);
    i = 0;
    for (struct group_ins *x = batch; x; x = x->next, i++) {
        x->rc = rcs[i];
        x->err = errs[i];
    }
    aster_free(jobs);
    aster_free(rcs);
    aster_free(errs);
}

int aster_store_group_insert(aster_store *st, const aster_job *job, aster_err *err)
{
    aster_store_group *g = &st->group;
    struct group_ins me = {.job = job};

    pthread_cond_init(&me.cond, NULL);
    pthread_mutex_lock(&g->lock);
    *g->tail = &me;
    g->tail = &me.next;
    while (!me.done) {
        if (g->lanes >= st->ops->insert_lanes || !g->head) {
            /* Woken when done, or when a lane is free and this entry heads
             * the queue.  Whoever finds a lane free writes the queue, its
             * own creation and others': not waiting for the head's owner
             * to be scheduled saves a context switch's delay per write. */
            pthread_cond_wait(&me.cond, &g->lock);
            continue;
        }
        struct group_ins *batch = g->head, *last = batch;
        size_t n = 1;
        for (; n < GROUP_CHUNK && last->next; n++)
            last = last->next;
        g->head = last->next;
        if (!g->head)
            g->tail = &g->head;
        last->next = NULL;
        if (++g->lanes < st->ops->insert_lanes && g->head) /* more than a chunk queued */
            pthread_cond_signal(&g->head->cond);
        pthread_mutex_unlock(&g->lock);
        write_batch(st, batch, n);
        pthread_mutex_lock(&g->lock);
        for (struct group_ins *x = batch, *next; x; x = next) {
            next = x->next; /* x is its owner's again once done */
            x->done = true;
            if (x != &me)
                pthread_cond_signal(&x->cond);
        }
        g->lanes--;
        if (g->head) /* the lane is free: the queue's head takes it */
            pthread_cond_signal(&g->head->cond);
    }
    pthread_mutex_unlock(&g->lock);
    pthread_cond_destroy(&me.cond);
    if (me.rc && err)
        *err = me.err;
    return me.rc;
}
