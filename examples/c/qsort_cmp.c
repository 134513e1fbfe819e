/* A NULL dereference inside a qsort comparator, built -O2 so that main's DWARF
 * records its call sites. qsort only jumps to __qsort_r (a tail call), so the
 * return address leads from __qsort_r straight back to main; gdb shows the qsort
 * frame from the call-site records (main calls qsort through the PLT), and so
 * must the tracer. */
#include <stdio.h>
#include <stdlib.h>

static int by_value(const void *a, const void *b) {
    int *p = *(int *const *)a, *q = *(int *const *)b;
    return *p - *q;
}

int main(void) {
    int x = 1;
    int *arr[4] = {&x, NULL, &x, NULL};
    qsort(arr, 4, sizeof arr[0], by_value);
    printf("%d\n", x);
    return 0;
}
