/* Heap corruption under a third-party allocator, Boehm GC (Debian's libgc1, loaded
 * with dlopen: the tests need no headers). Each bug writes past a 16-byte object
 * into the free-list links of the objects after it; the next allocation of that
 * size follows a garbage link and crashes inside the collector's allocator
 * (GC_malloc_kind in Debian's build, reached through GC_malloc's tail call).
 * argv[1]: the bug (node_overflow, tag_overflow); argv[2]: the path (direct,
 * recurse N). */
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef void *(*gc_malloc_fn)(size_t);
static gc_malloc_fn gc_malloc;

__attribute__((noinline)) static void smash_before(char *obj)
{
    /* A free list of a fresh block runs down through memory: the objects below
     * this one are the next to be handed out, and their first word is the link. */
    memset(obj - 96, 0x41, 96);
}

struct node { struct node *next; long value; };

__attribute__((noinline)) static struct node *make_node(long value)
{
    struct node *n = gc_malloc(sizeof *n);
    n->value = value;
    return n;
}

__attribute__((noinline)) static char *make_tag(const char *text)
{
    char *t = gc_malloc(16);
    strncpy(t, text, 15);
    return t;
}

__attribute__((noinline)) static void node_overflow(void)
{
    struct node *head = make_node(0);
    smash_before((char *)head);
    for (long i = 1; i < 64; i++)
        head = make_node(i);
    printf("%ld\n", head->value);
}

__attribute__((noinline)) static void tag_overflow(void)
{
    char *t = make_tag("first");
    smash_before(t);
    for (int i = 0; i < 64; i++)
        t = make_tag("more");
    puts(t);
}

static void run(const char *bug, int depth)
{
    if (depth > 0) {
        run(bug, depth - 1);
        return;
    }
    if (strcmp(bug, "node_overflow") == 0)
        node_overflow();
    else if (strcmp(bug, "tag_overflow") == 0)
        tag_overflow();
}

int main(int argc, char **argv)
{
    void *gc = dlopen("libgc.so.1", RTLD_NOW);
    if (!gc) {
        fprintf(stderr, "%s\n", dlerror());
        return 3;
    }
    void (*gc_init)(void) = (void (*)(void))dlsym(gc, "GC_init");
    gc_malloc = (gc_malloc_fn)dlsym(gc, "GC_malloc");
    if (!gc_init || !gc_malloc)
        return 3;
    gc_init();
    const char *bug = argc > 1 ? argv[1] : "";
    int depth = argc > 3 && strcmp(argv[2], "recurse") == 0 ? atoi(argv[3]) : 0;
    run(bug, depth);
    fprintf(stderr, "no crash for %s\n", bug);
    return 2;
}
