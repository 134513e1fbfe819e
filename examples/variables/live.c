/* Known values held in a parked function until killed: bt attaches to it live
   (copy while stopped, render after) and gdb attaches afterwards as the oracle. */
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

struct node { int value; struct node *next; };
struct point { int x; int y; };
typedef int (*callback_t)(int);

int global_counter = 42;
static const char *greeting = "hello, live";

int twice(int v) { return v * 2; }

__attribute__((noinline)) void park(struct node *list, const char *label, callback_t cb)
{
    struct point corner = { 7, -8 };
    int *counter = &global_counter;
    double ratio = 0.25;
    char tag[8] = "parked";
    printf("ready\n");
    fflush(stdout);
    for (;;)
        pause();
    (void)list, (void)label, (void)cb, (void)corner, (void)counter, (void)ratio, (void)tag;
}

int main(void)
{
    struct node *head = NULL;
    for (int i = 4; i > 0; i--) {
        struct node *n = malloc(sizeof *n);
        n->value = i * 10;
        n->next = head;
        head = n;
    }
    park(head, greeting, twice);
    return 0;
}
