/*
 * The hash pipe of gsn_native.h: one POSIX thread per digest, all reading the
 * same ring of caller-owned buffers in order.
 *
 * Buffer number s (1-based) sits in ring[(s - 1) % capacity]. Each worker
 * counts the buffers it has consumed (`done`); a buffer is finished when the
 * slowest worker is past it. One mutex guards the counters and the flags;
 * `work` wakes the workers when a buffer is queued or the pipe closes,
 * `progress` wakes the callers when a worker finishes a buffer or the threads
 * have been joined. Hashing itself runs unlocked.
 *
 * Closing: the first gsn_hashpipe_close() sets `closing` under the lock and is
 * the only call that joins the threads (joining a thread twice is undefined;
 * glibc hangs). Any other close, concurrent or later, waits for `closed` and
 * returns the same status. Only gsn_hashpipe_free() releases the pipe, so a
 * close never touches freed memory while the caller keeps to its contract.
 */
#include "gsn_native.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>

struct gsn_task {
    const uint8_t *data;
    size_t len;
};

struct gsn_worker {
    struct gsn_hashpipe *pipe;
    gsn_digest *digest;
    pthread_t thread;
    uint64_t done;
    int error;
};

struct gsn_hashpipe {
    pthread_mutex_t lock;
    pthread_cond_t work;
    pthread_cond_t progress;
    struct gsn_task *ring;
    size_t capacity;
    uint64_t submitted;
    struct gsn_worker *workers;
    size_t n_workers;
    size_t n_started;
    int closing; /* a close has begun: no more submits; its caller joins the threads */
    int abandon; /* that close drops the buffers still queued */
    int closed;  /* the threads are joined and `status` is set */
    int status;  /* what the close returns: the first error a digest reported */
};

static uint64_t gsn_slowest(const struct gsn_hashpipe *pipe)
{
    uint64_t slowest = pipe->submitted;
    for (size_t i = 0; i < pipe->n_workers; i++)
        if (pipe->workers[i].done < slowest)
            slowest = pipe->workers[i].done;
    return slowest;
}

static void *gsn_worker_main(void *arg)
{
    struct gsn_worker *worker = arg;
    struct gsn_hashpipe *pipe = worker->pipe;

    pthread_mutex_lock(&pipe->lock);
    for (;;) {
        while (worker->done == pipe->submitted && !pipe->closing)
            pthread_cond_wait(&pipe->work, &pipe->lock);
        if (pipe->abandon || worker->done == pipe->submitted)
            break; /* closing, and nothing queued is left for this worker */
        struct gsn_task task = pipe->ring[worker->done % pipe->capacity];
        pthread_mutex_unlock(&pipe->lock);

        if (worker->error == GSN_OK)
            worker->error = gsn_digest_update(worker->digest, task.data, task.len);

        pthread_mutex_lock(&pipe->lock);
        worker->done++;
        pthread_cond_broadcast(&pipe->progress);
    }
    pthread_mutex_unlock(&pipe->lock);
    return NULL;
}

/* The status for an error number from pthread_*_init() or pthread_create(). */
static int gsn_thread_status(int err)
{
    return err == ENOMEM ? GSN_ENOMEM : GSN_ETHREAD;
}

int gsn_hashpipe_new(gsn_digest **digests, size_t n_digests, size_t capacity,
                     gsn_hashpipe **out)
{
    int err;

    if (digests == NULL || n_digests == 0 || capacity == 0 || out == NULL)
        return GSN_EINVAL;
    for (size_t i = 0; i < n_digests; i++)
        if (digests[i] == NULL)
            return GSN_EINVAL;
    struct gsn_hashpipe *pipe = calloc(1, sizeof(*pipe));
    if (pipe == NULL)
        return GSN_ENOMEM;
    pipe->ring = calloc(capacity, sizeof(*pipe->ring));
    pipe->workers = calloc(n_digests, sizeof(*pipe->workers));
    if (pipe->ring == NULL || pipe->workers == NULL) {
        err = ENOMEM;
        goto free_memory;
    }
    pipe->capacity = capacity;
    pipe->n_workers = n_digests;
    if ((err = pthread_mutex_init(&pipe->lock, NULL)) != 0)
        goto free_memory;
    if ((err = pthread_cond_init(&pipe->work, NULL)) != 0)
        goto destroy_lock;
    if ((err = pthread_cond_init(&pipe->progress, NULL)) != 0)
        goto destroy_work;
    for (size_t i = 0; i < n_digests; i++) {
        struct gsn_worker *worker = &pipe->workers[i];
        worker->pipe = pipe;
        worker->digest = digests[i];
        err = pthread_create(&worker->thread, NULL, gsn_worker_main, worker);
        if (err != 0) {
            gsn_hashpipe_free(pipe); /* joins the n_started threads, releases all */
            return gsn_thread_status(err);
        }
        pipe->n_started++;
    }
    *out = pipe;
    return GSN_OK;

destroy_work:
    pthread_cond_destroy(&pipe->work);
destroy_lock:
    pthread_mutex_destroy(&pipe->lock);
free_memory:
    free(pipe->ring);
    free(pipe->workers);
    free(pipe);
    return gsn_thread_status(err);
}

int gsn_hashpipe_submit(gsn_hashpipe *pipe, const uint8_t *data, size_t len, uint64_t *seq)
{
    if (pipe == NULL || seq == NULL || (data == NULL && len != 0))
        return GSN_EINVAL;
    pthread_mutex_lock(&pipe->lock);
    while (!pipe->closing && pipe->submitted - gsn_slowest(pipe) >= pipe->capacity)
        pthread_cond_wait(&pipe->progress, &pipe->lock);
    if (pipe->closing) {
        pthread_mutex_unlock(&pipe->lock);
        return GSN_ECLOSED;
    }
    pipe->ring[pipe->submitted % pipe->capacity] = (struct gsn_task){data, len};
    *seq = ++pipe->submitted;
    pthread_cond_broadcast(&pipe->work);
    pthread_mutex_unlock(&pipe->lock);
    return GSN_OK;
}

int gsn_hashpipe_wait(gsn_hashpipe *pipe, uint64_t seq)
{
    if (pipe == NULL)
        return GSN_EINVAL;
    int status = GSN_OK;
    pthread_mutex_lock(&pipe->lock);
    if (seq > pipe->submitted)
        status = GSN_EINVAL;
    while (status == GSN_OK && gsn_slowest(pipe) < seq) {
        if (pipe->abandon) {
            status = GSN_ECLOSED;
            break;
        }
        pthread_cond_wait(&pipe->progress, &pipe->lock);
    }
    pthread_mutex_unlock(&pipe->lock);
    return status;
}

int gsn_hashpipe_close(gsn_hashpipe *pipe, int abandon)
{
    if (pipe == NULL)
        return GSN_EINVAL;
    pthread_mutex_lock(&pipe->lock);
    if (pipe->closing) {
        /* Another call joins the threads: wait until it has, report what it reports. */
        while (!pipe->closed)
            pthread_cond_wait(&pipe->progress, &pipe->lock);
        int status = pipe->status;
        pthread_mutex_unlock(&pipe->lock);
        return status;
    }
    pipe->closing = 1;
    pipe->abandon = abandon != 0;
    pthread_cond_broadcast(&pipe->work);
    pthread_cond_broadcast(&pipe->progress);
    pthread_mutex_unlock(&pipe->lock);

    /* Only the call that set `closing` gets here: each thread is joined once. */
    for (size_t i = 0; i < pipe->n_started; i++)
        pthread_join(pipe->workers[i].thread, NULL);
    int status = GSN_OK;
    for (size_t i = 0; i < pipe->n_workers && status == GSN_OK; i++)
        status = pipe->workers[i].error;

    pthread_mutex_lock(&pipe->lock);
    pipe->status = status;
    pipe->closed = 1;
    pthread_cond_broadcast(&pipe->progress);
    pthread_mutex_unlock(&pipe->lock);
    return status;
}

void gsn_hashpipe_free(gsn_hashpipe *pipe)
{
    if (pipe == NULL)
        return;
    gsn_hashpipe_close(pipe, 1);
    pthread_cond_destroy(&pipe->progress);
    pthread_cond_destroy(&pipe->work);
    pthread_mutex_destroy(&pipe->lock);
    free(pipe->ring);
    free(pipe->workers);
    free(pipe);
}
