/* A SIGUSR1 handler that dereferences NULL: the fault happens on a signal frame,
 * so an unwinder must step through __restore_rt back into raise() and its callers. */
#include <signal.h>
#include <stdio.h>
#include <string.h>

struct stats {
    long reloads;
};

static struct stats *current_stats; /* never set */

__attribute__((noinline)) void count_reload(void)
{
    current_stats->reloads++; /* NULL: the crash, inside the handler */
}

static void on_sigusr1(int signo)
{
    (void)signo;
    count_reload();
}

__attribute__((noinline)) void request_reload(void)
{
    raise(SIGUSR1);
}

__attribute__((noinline)) void serve(int rounds)
{
    for (int i = 0; i < rounds; i++)
        request_reload();
}

int main(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_sigusr1;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGUSR1, &sa, NULL);
    serve(3);
    puts("unreachable");
    return 0;
}
