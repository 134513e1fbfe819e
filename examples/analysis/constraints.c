/* Calls that break the contract of memcpy, strcpy, free and realloc, one per mode (argv[1]).
 * Built by tests/analysis_crashes.rs at -O2 -g (the arguments come back from the
 * callers' DWARF call-site records), at -O0 -g (from replaying the caller's argument
 * set-up code) and at -O2 without -g (only the registers at the fault prove anything).
 * The callers use their arguments after the call, as real code does, so the
 * compiler keeps them in callee-saved registers across it. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

static volatile long sink;
/* Values the compiler cannot see through. */
static volatile long opaque_minus_five = -5;
static volatile size_t opaque_overlap_size = 8192;
/* The bad pointer of the free/realloc modes, for the test's oracle (gdb reads it). */
static char *volatile bad_pointer;
/* The unterminated run of the strcpy modes, for the same oracle. */
static char *volatile string_run;

/* Three pages mapped, the third given back: a copy that runs past two pages faults. */
static char *two_pages(void)
{
    char *p = mmap(NULL, 3 * 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED)
        abort();
    munmap(p + 2 * 4096, 4096);
    memset(p, 'x', 2 * 4096);
    return p;
}

__attribute__((noinline)) static void copy(char *dst, const char *src, size_t n)
{
    memcpy(dst, src, n);
    sink = dst[0] + src[0] + (long)n;
}

/* Destination and source 4096 bytes apart, 8192 bytes copied: the ranges overlap
 * (and the destination runs into the unmapped third page). */
__attribute__((noinline)) static void memcpy_overlap(void)
{
    char *p = two_pages();
    copy(p + 4096, p, opaque_overlap_size);
    sink = p[1];
}

/* Overlapping ranges, source ahead of the destination, large enough for glibc's
 * `rep movsb` path: the source runs into the unmapped fifth page mid-copy. */
__attribute__((noinline)) static void memcpy_overlap_movsb(void)
{
    char *p = mmap(NULL, 5 * 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED)
        abort();
    munmap(p + 4 * 4096, 4096);
    copy(p, p + 1024, opaque_overlap_size + 3 * 4096);
    sink = p[1];
}

/* A negative int passed as the size: (size_t)-5. */
__attribute__((noinline)) static void memcpy_negative(void)
{
    char *p = two_pages();
    int n = (int)opaque_minus_five;
    copy(p, p + 4096, n);
    sink = p[1];
}

/* (size_t)-1 straight from an error return nobody checked. */
__attribute__((noinline)) static void memcpy_huge(void)
{
    char *p = two_pages();
    copy(p + 4096, p, (size_t)opaque_minus_five + 4);
    sink = p[1];
}

/* A page of 'A's with no NUL, followed by a PROT_NONE guard page: a string copy of
 * it reads into the guard page and faults. */
static char *unterminated_run(void)
{
    char *p = mmap(NULL, 2 * 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED || mprotect(p + 4096, 4096, PROT_NONE) != 0)
        abort();
    memset(p, 'A', 4096);
    string_run = p;
    return p;
}

__attribute__((noinline)) static void copy_string(char *dst, const char *src)
{
    strcpy(dst, src);
    sink = dst[0] + src[0];
}

__attribute__((noinline)) static void append_string(char *dst, const char *src)
{
    /* The result used, or gcc turns the call into strcpy. */
    sink = (long)stpcpy(dst, src) + dst[0] + src[0];
}

/* strcpy onto its own source one byte ahead: the ranges overlap, and the source,
 * never NUL-terminated, runs into the guard page mid-copy. */
__attribute__((noinline)) static void strcpy_overlap(void)
{
    char *p = unterminated_run();
    copy_string(p + 1, p);
    sink = p[1];
}

/* An unterminated source copied into a buffer of its own: no overlap, but the copy
 * runs into the guard page all the same. */
__attribute__((noinline)) static void strcpy_unterminated(void)
{
    char *p = unterminated_run();
    char *dst = two_pages();
    copy_string(dst, p);
    sink = dst[1];
}

/* The same through stpcpy, the destination one byte behind the source. */
__attribute__((noinline)) static void stpcpy_overlap(void)
{
    char *p = unterminated_run();
    append_string(p, p + 1);
    sink = p[1];
}

__attribute__((noinline)) static void release(char *p)
{
    bad_pointer = p;
    free(p);
    sink = (long)p;
}

/* A pointer into the middle of a heap block: glibc says "free(): invalid pointer".
 * The block is zeroed so that what free takes for a chunk header is the same on every
 * run (leftovers with glibc's flag bits would send it down other paths). */
__attribute__((noinline)) static void free_inside(void)
{
    char *volatile block = calloc(1, 64);
    release(block + 24);
}

/* A pointer into a page that is gone: free faults reading its chunk header. */
__attribute__((noinline)) static void free_unmapped(void)
{
    char *p = two_pages();
    release(p + 2 * 4096 + 0x40);
}

__attribute__((noinline)) static void *grow(char *p, size_t n)
{
    bad_pointer = p;
    void *q = realloc(p, n);
    sink = (long)p + (long)n;
    return q;
}

/* realloc of a pointer malloc never returned. */
__attribute__((noinline)) static void realloc_inside(void)
{
    char *volatile block = calloc(1, 64);
    sink = (long)grow(block + 8, 128);
}

int main(int argc, char **argv)
{
    const char *m = argc > 1 ? argv[1] : "";
    struct { const char *name; void (*run)(void); } modes[] = {
        {"memcpy_overlap", memcpy_overlap}, {"memcpy_overlap_movsb", memcpy_overlap_movsb},
        {"memcpy_negative", memcpy_negative},
        {"memcpy_huge", memcpy_huge},       {"strcpy_overlap", strcpy_overlap},
        {"stpcpy_overlap", stpcpy_overlap}, {"strcpy_unterminated", strcpy_unterminated},
        {"free_inside", free_inside},
        {"free_unmapped", free_unmapped},   {"realloc_inside", realloc_inside},
    };
    for (size_t i = 0; i < sizeof modes / sizeof modes[0]; i++)
        if (strcmp(m, modes[i].name) == 0)
            modes[i].run();
    fprintf(stderr, "unknown mode %s\n", m);
    return 2;
}
