/* Known values in locals, parameters, structs, arrays, heap lists, strings, globals
   and TLS; crashes with SIGSEGV in crash_here. Built at -O0 and -O2 by the tests. */
#include <stdlib.h>
#include <string.h>
#include <stdio.h>

enum color { RED, GREEN = 5, BLUE };
struct point { int x; int y; };
struct node { int value; struct node *next; };
struct flags { unsigned a : 3; int b : 5; unsigned c : 1; };
struct shape { const char *name; struct point corners[2]; enum color color; double area; struct flags f; };
typedef int (*callback_t)(int);

int global_counter = 42;
static const char *global_name = "bt-global";
__thread int tls_value = 7;
struct point global_point = { 3, -4 };
volatile int sink;

int twice(int v) { return v * 2; }

__attribute__((noinline)) void crash_here(struct node *list, int depth, const char *label)
{
    int local_answer = 1234 + depth;
    char letter = 'Q';
    double ratio = 3.14;
    float half = 2.5f;
    sink = local_answer + letter;
    if (label[0] == 'm')
        *(volatile int *)(long)list->next->next->next->value = local_answer; /* value 0 → null write */
    sink = (int)ratio + (int)half;
}

__attribute__((noinline)) int walk(struct shape *s, int count)
{
    struct node *head = NULL;
    for (int i = count; i > 0; i--) {
        struct node *n = malloc(sizeof *n);
        n->value = i == 1 ? 0 : i * 10;
        n->next = head;
        head = n;
    }
    /* make the list 0 → 20 → 30 → 40 with value 0 first. */
    int numbers[5] = { 1, 2, 3, 4, 5 };
    char buffer[16] = "hello";
    unsigned long big = 18446744073709551615UL;
    callback_t cb = twice;
    enum color c = BLUE;
    int *counter_ptr = &global_counter;
    struct point *gp = &global_point;
    sink = *counter_ptr + gp->y;
    sink = numbers[2] + buffer[0] + (int)big + cb(1) + c + s->corners[1].y;
    tls_value = 99;
    crash_here(head, count, "main");
    return sink;
}

int main(int argc, char **argv)
{
    (void)argv;
    struct shape sh = { "square", { { 1, 2 }, { 3, 4 } }, GREEN, 12.5, { 5, -3, 1 } };
    sink = global_counter + (int)strlen(global_name) + global_point.x;
    return walk(&sh, 3 + argc);
}
