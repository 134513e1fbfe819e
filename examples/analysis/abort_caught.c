/* A failed assert whose SIGABRT is caught by a handler that never returns: the
 * process stays alive inside abort(), for tracing it live (tests/analysis_live.rs).
 * The handler says "ready" on stdout once it holds. With argument "perror", an
 * assert_perror(ENOENT) fails instead. Also built with -static by the tests. */
#define _GNU_SOURCE
#include <assert.h>
#include <signal.h>
#include <string.h>
#include <unistd.h>

static void hold(int sig)
{
    (void)sig;
    static const char ready[] = "ready\n";
    (void)!write(1, ready, sizeof ready - 1);
    for (;;)
        pause();
}

__attribute__((noinline)) static void check(int value) { assert(value == 42 && "caught abort"); }

static volatile int no_such_file = 2; /* ENOENT */

__attribute__((noinline)) static void check_errno(void) { assert_perror(no_such_file); }

int main(int argc, char **argv)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = hold;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGABRT, &sa, NULL);
    if (argc > 1 && strcmp(argv[1], "perror") == 0)
        check_errno();
    check(argc);
    return 0;
}
