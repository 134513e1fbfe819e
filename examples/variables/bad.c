/* Hostile values for variable capture: a cyclic list, a wild pointer, a pointer to a
   huge array, a self-referencing struct, a long string. With argument "live" it
   sleeps with four threads instead of crashing (each holding its own TLS value). */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct ring { int id; struct ring *next; };
struct self { struct self *me; long pad[4]; };

__thread long thread_tag;
volatile int sink;

__attribute__((noinline)) void hostile(struct ring *cycle, int *wild, int (*huge)[100000000], struct self *loop, const char *longtext)
{
    int marker = 777;
    sink = marker;
    if (cycle->id == 1)
        *(volatile int *)16 = 1;   /* SIGSEGV */
    sink = cycle->id + (wild != 0) + (huge != 0) + (loop != 0) + longtext[0];
}

static void *worker(void *arg)
{
    long n = (long)arg;
    thread_tag = 1000 + n;
    long seconds_left = 60;
    while (seconds_left-- > 0)
        sleep(1);
    return NULL;
}

int main(int argc, char **argv)
{
    struct ring a = { 1, 0 }, b = { 2, &a };
    a.next = &b;
    struct self s = { &s, { 1, 2, 3, 4 } };
    char *text = malloc(5000);
    memset(text, 'x', 4999);
    text[4999] = 0;
    int small[4] = { 9, 9, 9, 9 };
    if (argc > 1 && strcmp(argv[1], "live") == 0) {
        pthread_t t[4];
        for (long i = 0; i < 4; i++)
            pthread_create(&t[i], NULL, worker, (void *)i);
        thread_tag = 999;
        worker((void *)99);
        return 0;
    }
    hostile(&a, (int *)0xdead0000beef, (int (*)[100000000])small, &s, text);
    return 0;
}
