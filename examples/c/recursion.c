/* Runaway recursion: walk_tree recurses DEPTH levels (default 10000), then abort()s.
 * Tests frame caps and long, regular stacks. */
#include <stdio.h>
#include <stdlib.h>

__attribute__((noinline)) int walk_tree(int level, int depth)
{
    volatile int local = level; /* a real frame per level */
    if (level >= depth)
        abort();
    return walk_tree(level + 1, depth) + local;
}

int main(int argc, char **argv)
{
    int depth = argc > 1 ? atoi(argv[1]) : 10000;
    printf("%d\n", walk_tree(0, depth));
    return 0;
}
