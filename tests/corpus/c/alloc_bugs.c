/* Heap bugs under third-party allocators loaded with LD_PRELOAD (Debian's jemalloc,
 * tcmalloc and mimalloc): argv[1] is the allocator library (the program restarts
 * itself with it preloaded), argv[2] the bug:
 *   overflow  - a write over the heap around freed nodes, then more allocations
 *               (make_node): the allocator follows a garbage link;
 *   bad_free  - release_item frees a pointer no allocator handed out.
 * Which check fires, and in which of the allocator's internal (often unsymbolized)
 * functions, is the allocator's business; the signature is the allocation or free
 * and its caller. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct node { struct node *next; long value; char name[48]; };

__attribute__((noinline)) static struct node *make_node(long v)
{
    struct node *n = malloc(sizeof *n);
    n->value = v;
    return n;
}

__attribute__((noinline)) static void drop_node(struct node *n)
{
    free(n);
}

__attribute__((noinline)) static int release_item(void *item)
{
    free(item);
    return puts("released") > 0; /* no tail call: this frame stays */
}

__attribute__((noinline)) static void overflow(void)
{
    struct node *keep[256];
    for (int i = 0; i < 256; i++)
        keep[i] = make_node(i);
    for (int i = 0; i < 256; i += 2)
        drop_node(keep[i]);
    memset((char *)keep[1] - 256, 0x41, 1024);
    for (int i = 0; i < 512; i++)
        make_node(i);
}

__attribute__((noinline)) static void bad_free(void)
{
    release_item((void *)0x7f0000001000);
}

int main(int argc, char **argv)
{
    if (argc < 3)
        return 2;
    if (!getenv("LD_PRELOAD")) {
        setenv("LD_PRELOAD", argv[1], 1);
        execv("/proc/self/exe", argv);
        return 3;
    }
    if (strcmp(argv[2], "overflow") == 0)
        overflow();
    else if (strcmp(argv[2], "bad_free") == 0)
        bad_free();
    fprintf(stderr, "no crash for %s under %s\n", argv[2], argv[1]);
    return 2;
}
