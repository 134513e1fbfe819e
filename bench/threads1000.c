/* Benchmark workload: a process with N_THREADS (default 1000) threads; thread i
 * recurses i % 50 + 1 levels, then blocks (cond wait, nanosleep or read, by turns).
 *   threads1000 forever [N]   prints "ready" once every thread is parked, runs forever
 *   threads1000 crash [N]     once every thread is parked, the main thread faults */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t parked_cond = PTHREAD_COND_INITIALIZER;
static pthread_cond_t never = PTHREAD_COND_INITIALIZER;
static int n_parked;
static int pipe_fds[2];

static void count_parked(void)
{
    pthread_mutex_lock(&lock);
    n_parked++;
    pthread_cond_broadcast(&parked_cond);
    pthread_mutex_unlock(&lock);
}

__attribute__((noinline)) void block_in_cond(void)
{
    pthread_mutex_lock(&lock);
    n_parked++;
    pthread_cond_broadcast(&parked_cond);
    for (;;)
        pthread_cond_wait(&never, &lock);
}

__attribute__((noinline)) void block_in_sleep(void)
{
    count_parked();
    for (;;) {
        struct timespec ts = { 3600, 0 };
        nanosleep(&ts, NULL);
    }
}

__attribute__((noinline)) void block_in_read(void)
{
    char c;
    count_parked();
    for (;;)
        if (read(pipe_fds[0], &c, 1) <= 0)
            pause();
}

__attribute__((noinline)) void recurse(int levels, int kind)
{
    volatile int frame_guard = levels;
    if (frame_guard > 1) {
        recurse(levels - 1, kind);
        return;
    }
    switch (kind) {
    case 0: block_in_cond(); break;
    case 1: block_in_sleep(); break;
    default: block_in_read(); break;
    }
}

static void *thread_main(void *arg)
{
    long i = (long)arg;
    recurse((int)(i % 50) + 1, (int)(i % 3));
    return NULL;
}

__attribute__((noinline)) void fault_here(int *p)
{
    *p = 1;
}

int main(int argc, char **argv)
{
    int crash = argc > 1 && strcmp(argv[1], "crash") == 0;
    int n = argc > 2 ? atoi(argv[2]) : 1000;
    if (pipe(pipe_fds) != 0)
        return 1;
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, 256 * 1024);
    for (long i = 0; i < n; i++) {
        pthread_t t;
        if (pthread_create(&t, &attr, thread_main, (void *)i) != 0) {
            perror("pthread_create");
            return 1;
        }
    }
    pthread_mutex_lock(&lock);
    while (n_parked < n)
        pthread_cond_wait(&parked_cond, &lock);
    pthread_mutex_unlock(&lock);
    if (crash) {
        usleep(200 * 1000);
        fault_here(NULL);
    }
    printf("ready\n");
    fflush(stdout);
    for (;;)
        pause();
}
