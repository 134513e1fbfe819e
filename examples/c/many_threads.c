/* A live process for hydra and its benchmark: N sleeping workers with identical
   stacks (hydra groups them ×N), two threads deadlocked on two mutexes taken in
   opposite orders, and the main thread waiting. Prints "ready" when all are there.
   Usage: many_threads [N] (default 1000 threads in all). */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

static pthread_mutex_t first = PTHREAD_MUTEX_INITIALIZER, second = PTHREAD_MUTEX_INITIALIZER;
static pthread_barrier_t both_hold_one;
static pthread_barrier_t all_started;

__attribute__((noinline)) static void idle_worker(int id)
{
    pthread_barrier_wait(&all_started);
    for (;;)
        sleep(1000 + id % 1);
}

static void *worker(void *arg)
{
    idle_worker((int)(long)arg);
    return NULL;
}

__attribute__((noinline)) static void lock_in_order(pthread_mutex_t *a, pthread_mutex_t *b)
{
    pthread_mutex_lock(a);
    pthread_barrier_wait(&both_hold_one);
    pthread_mutex_lock(b); /* never returns: the other thread holds b and waits for a */
    pthread_mutex_unlock(b);
    pthread_mutex_unlock(a);
}

static void *deadlock_ab(void *arg)
{
    (void)arg;
    lock_in_order(&first, &second);
    return NULL;
}

static void *deadlock_ba(void *arg)
{
    (void)arg;
    lock_in_order(&second, &first);
    return NULL;
}

int main(int argc, char **argv)
{
    int total = argc > 1 ? atoi(argv[1]) : 1000;
    int workers = total > 3 ? total - 3 : 1;
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, 64 * 1024);
    pthread_barrier_init(&all_started, NULL, workers + 1);
    pthread_barrier_init(&both_hold_one, NULL, 2);
    pthread_t t;
    for (int i = 0; i < workers; i++)
        if (pthread_create(&t, &attr, worker, (void *)(long)i) != 0) {
            perror("pthread_create");
            return 1;
        }
    pthread_create(&t, &attr, deadlock_ab, NULL);
    pthread_create(&t, &attr, deadlock_ba, NULL);
    pthread_barrier_wait(&all_started);
    printf("ready\n");
    fflush(stdout);
    pause();
    return 0;
}
