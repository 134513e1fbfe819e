/* Seven named threads parked at different depths and in different blocking calls.
 *   threads crash    one thread writes through NULL once the others are parked
 *   threads forever  nothing crashes; prints "ready" when every thread is parked
 * The main thread joins, so every thread of the process has a known stack. */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define N_WORKERS 6

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t parked_cond = PTHREAD_COND_INITIALIZER;
static pthread_cond_t never = PTHREAD_COND_INITIALIZER;
static int n_parked;
static int crash_mode;
static int pipe_fds[2];

/* Counts this thread as parked; the caller blocks right after. */
static void announce_parked(void)
{
    pthread_mutex_lock(&lock);
    n_parked++;
    pthread_cond_broadcast(&parked_cond);
    pthread_mutex_unlock(&lock);
}

__attribute__((noinline)) void park_in_sleep(void)
{
    announce_parked();
    for (;;) {
        struct timespec ts = { 3600, 0 };
        nanosleep(&ts, NULL);
    }
}

__attribute__((noinline)) void park_in_cond_wait(void)
{
    pthread_mutex_lock(&lock);
    n_parked++;
    pthread_cond_broadcast(&parked_cond);
    for (;;)
        pthread_cond_wait(&never, &lock); /* releases the lock while waiting */
}

__attribute__((noinline)) void park_in_read(void)
{
    char c;
    announce_parked();
    for (;;)
        if (read(pipe_fds[0], &c, 1) <= 0)
            pause();
}

/* Recurses `depth` more levels, then parks with `park`. */
__attribute__((noinline)) void descend(int depth, void (*park)(void))
{
    volatile int guard = depth; /* keeps each level a real frame */
    if (guard > 0)
        descend(depth - 1, park);
    else
        park();
}

struct worker {
    char name[16];
    int depth;
    void (*park)(void);
};

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    pthread_setname_np(pthread_self(), w->name);
    descend(w->depth, w->park);
    return NULL;
}

struct record {
    int id;
    char *payload;
};

__attribute__((noinline)) void store_record(struct record *r, int id)
{
    r->id = id; /* r is NULL: the crash */
}

__attribute__((noinline)) void handle_request(int id)
{
    struct record *slot = NULL;
    store_record(slot, id);
}

static void *crasher_main(void *arg)
{
    (void)arg;
    pthread_setname_np(pthread_self(), "crasher");
    pthread_mutex_lock(&lock);
    while (n_parked < N_WORKERS)
        pthread_cond_wait(&parked_cond, &lock);
    pthread_mutex_unlock(&lock);
    usleep(200 * 1000); /* let the last worker enter its blocking call */
    handle_request(42);
    return NULL;
}

int main(int argc, char **argv)
{
    if (argc < 2 || (strcmp(argv[1], "crash") && strcmp(argv[1], "forever"))) {
        fprintf(stderr, "usage: %s crash|forever\n", argv[0]);
        return 2;
    }
    crash_mode = strcmp(argv[1], "crash") == 0;
    if (pipe(pipe_fds) != 0)
        return 1;
    static struct worker workers[N_WORKERS];
    void (*parks[3])(void) = { park_in_sleep, park_in_cond_wait, park_in_read };
    pthread_t tids[N_WORKERS + 1];
    for (int i = 0; i < N_WORKERS; i++) {
        snprintf(workers[i].name, sizeof workers[i].name, "worker-%d", i);
        workers[i].depth = 1 + 2 * i;
        workers[i].park = parks[i % 3];
        pthread_create(&tids[i], NULL, worker_main, &workers[i]);
    }
    if (crash_mode) {
        pthread_create(&tids[N_WORKERS], NULL, crasher_main, NULL);
    } else {
        pthread_mutex_lock(&lock);
        while (n_parked < N_WORKERS)
            pthread_cond_wait(&parked_cond, &lock);
        pthread_mutex_unlock(&lock);
        printf("ready\n");
        fflush(stdout);
    }
    pthread_join(tids[0], NULL); /* never returns */
    return 0;
}
