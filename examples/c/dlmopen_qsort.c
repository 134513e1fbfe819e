/* A second copy of libc loaded into a new link-map namespace (dlmopen), and a
 * crash inside that copy's qsort. The same library is then mapped twice at
 * different addresses: each copy must be its own module, as the dynamic linker's
 * namespaces (r_debug_extended.r_next) say. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>

static int by_value(const void *a, const void *b) {
    int *p = *(int *const *)a, *q = *(int *const *)b;
    return *p - *q;
}

int main(void) {
    void *h = dlmopen(LM_ID_NEWLM, "libc.so.6", RTLD_NOW);
    if (!h) {
        fprintf(stderr, "dlmopen: %s\n", dlerror());
        return 2;
    }
    void (*second_qsort)(void *, size_t, size_t, int (*)(const void *, const void *)) = dlsym(h, "qsort");
    int x = 1;
    int *arr[4] = {&x, NULL, &x, NULL};
    printf("second libc qsort at %p\n", (void *)second_qsort);
    fflush(stdout);
    second_qsort(arr, 4, sizeof arr[0], by_value);
    return 0;
}
