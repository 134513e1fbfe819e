/* Crashes stopped by a sanitizer's report, for the analysis tests: built with
 * -fsanitize=address (and undefined), each mode ends in abort() so the kernel
 * writes a core (the options below are the program's own defaults).
 *
 *   heap_read    reads one int past a malloc'ed array      (heap-buffer-overflow)
 *   heap_write   writes one byte past a malloc'ed buffer   (heap-buffer-overflow)
 *   double_free  frees a block twice
 *   bad_free     frees a pointer into the middle of a block
 *   segv         dereferences NULL (ASan's deadly-signal handler reports it)
 *   recurse      recurses without end (ASan's handler reports a stack-overflow)
 *   ubsan_shift  shifts an int by 40 (-fsanitize=shift)
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *__asan_default_options(void) { return "abort_on_error=1:disable_coredump=0:detect_leaks=0"; }
const char *__ubsan_default_options(void) { return "halt_on_error=1:abort_on_error=1:print_stacktrace=0"; }

__attribute__((noinline)) int sum_prices(const int *prices, int n) {
    int total = 0;
    for (int i = 0; i <= n; i++) /* one too many */
        total += prices[i];
    return total;
}

__attribute__((noinline)) void copy_name(char *dst, const char *src) { strcpy(dst, src); }

__attribute__((noinline)) void release(void *p) { free(p); }

__attribute__((noinline)) int field_of(int *record) { return record[2]; }

__attribute__((noinline)) int scale(int v, int by) { return v << by; }

__attribute__((noinline)) int descend(int depth) {
    volatile char frame[256];
    frame[depth % 256] = (char)depth;
    return descend(depth + 1) + frame[0];
}

int main(int argc, char **argv) {
    const char *mode = argc > 1 ? argv[1] : "heap_read";
    volatile int sink = 0;
    if (!strcmp(mode, "heap_read")) {
        int *prices = malloc(4 * sizeof(int));
        memset(prices, 0, 4 * sizeof(int));
        sink = sum_prices(prices, 4);
    } else if (!strcmp(mode, "heap_write")) {
        char *name = malloc(5);
        copy_name(name, "hello");
    } else if (!strcmp(mode, "double_free")) {
        char *p = malloc(32);
        release(p);
        release(p);
    } else if (!strcmp(mode, "bad_free")) {
        char *p = malloc(32);
        release(p + 8);
    } else if (!strcmp(mode, "segv")) {
        sink = field_of((int *)(argc > 100 ? argv : NULL));
    } else if (!strcmp(mode, "recurse")) {
        sink = descend(argc);
    } else if (!strcmp(mode, "ubsan_shift")) {
        sink = scale(argc, 40 + argc - 2);
    }
    printf("%d\n", sink);
    return 0;
}
