/* One crash per mode (argv[1]), each for one classifier of bt's analysis.
 * Built by tests/analysis_c.rs with: gcc -O0 -g -fstack-protector-all -U_FORTIFY_SOURCE -pthread
 * Inline assembly pins down the exact instruction where the direction matters. */
#include <assert.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

/* An address that is surely unmapped: a page we mapped and gave back. */
static char *unmapped_page(void)
{
    char *p = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED)
        abort();
    munmap(p, 4096);
    return p;
}

static volatile int sink;

__attribute__((noinline)) static void null_read(void) { volatile int *p = NULL; sink = p[4]; }
__attribute__((noinline)) static void null_write(void) { volatile int *p = NULL; p[2] = 1; }

__attribute__((noinline)) static void wild_read(void)
{
    char *p = unmapped_page() + 0x40;
    uint64_t v;
    __asm__ volatile("mov (%1), %0" : "=r"(v) : "r"(p) : "memory");
    sink = (int)v;
}

__attribute__((noinline)) static void wild_write(void)
{
    char *p = unmapped_page() + 0x40;
    __asm__ volatile("movq $1, (%0)" : : "r"(p) : "memory");
}

__attribute__((noinline)) static void ro_write(void)
{
    char *p = mmap(NULL, 4096, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    __asm__ volatile("movl $7, 8(%0)" : : "r"(p) : "memory");
}

__attribute__((noinline)) static void rmw(void)
{
    char *p = unmapped_page() + 0x80;
    __asm__ volatile("addl $1, (%0)" : : "r"(p) : "memory");
}

__attribute__((noinline)) static void rep_movs_src(void)
{
    char buf[64];
    char *dst = buf;
    char *src = unmapped_page();
    __asm__ volatile("rep movsb" : "+D"(dst), "+S"(src) : "c"(64UL) : "memory");
}

__attribute__((noinline)) static void rep_movs_dst(void)
{
    char src[64] = {0};
    char *dst = unmapped_page();
    char *s = src;
    __asm__ volatile("rep movsb" : "+D"(dst), "+S"(s) : "c"(64UL) : "memory");
}

__attribute__((noinline)) static void rep_stos(void)
{
    char *dst = unmapped_page();
    __asm__ volatile("rep stosq" : "+D"(dst) : "c"(8UL), "a"(0UL) : "memory");
}

typedef void (*fn_t)(void);
static volatile fn_t null_fn;

__attribute__((noinline)) static void call_null(void) { null_fn(); sink = 1; }

__attribute__((noinline)) static void call_mem(void)
{
    /* A C++-style virtual call through a vtable pointer that is garbage. */
    char *obj = unmapped_page();
    __asm__ volatile("call *8(%0)" : : "r"(obj) : "memory");
}

__attribute__((noinline)) static void call_wild(void)
{
    fn_t f = (fn_t)(void *)unmapped_page();
    f();
    sink = 2;
}

__attribute__((noinline)) static int overflow(int n)
{
    volatile char pad[1024];
    pad[0] = (char)n;
    return overflow(n + 1) + pad[0];
}

static void *overflow_thread(void *arg)
{
    (void)arg;
    sink = overflow(0);
    return NULL;
}

/* A thread with a small stack runs into the guard page glibc puts below it. */
__attribute__((noinline)) static void thread_overflow(void)
{
    pthread_t t;
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, 64 * 1024);
    if (pthread_create(&t, &attr, overflow_thread, NULL) != 0)
        abort();
    pthread_join(t, NULL);
}

__attribute__((noinline)) static void misaligned_sse(void)
{
    static char buf[64] __attribute__((aligned(16)));
    char *p = buf + 1;
    __asm__ volatile("movaps (%0), %%xmm0" : : "r"(p) : "xmm0", "memory");
}

__attribute__((noinline)) static void alignment_check(void)
{
    static char buf[64] __attribute__((aligned(16)));
    char *p = buf + 1;
    uint64_t v;
    /* Set EFLAGS.AC: misaligned user accesses now raise #AC (SIGBUS BUS_ADRALN). */
    __asm__ volatile("pushf\n\torl $0x40000, (%%rsp)\n\tpopf\n\tmov (%1), %0" : "=r"(v) : "r"(p) : "memory");
    sink = (int)v;
}

__attribute__((noinline)) static void div_zero(void)
{
    volatile int a = 7, b = 0;
    sink = a / b;
}

__attribute__((noinline)) static void illegal(void) { __builtin_trap(); }

__attribute__((noinline)) static void do_abort(void) { abort(); }

__attribute__((noinline)) static void do_assert(int answer) { assert(answer == 42 && "the answer"); }

__attribute__((noinline)) static void smash(const char *s)
{
    char buf[8];
    volatile size_t n = strlen(s);
    memcpy(buf, s, n); /* no fortify (-U_FORTIFY_SOURCE): the canary catches it */
    sink = buf[0];
}

__attribute__((noinline)) static void double_free(void)
{
    char *p = malloc(32);
    free(p);
    free(p);
}

/* A write of 8 bytes just before a block (its chunk header), then free: glibc says
 * "double free or corruption (out)", but nothing was freed twice. */
__attribute__((noinline)) static void header_smash(void)
{
    char *p = malloc(4000);
    char *volatile guard = malloc(32);
    size_t *volatile hdr = (size_t *)(void *)p - 1;
    *hdr = 0x100011; /* a size far past the end of the heap */
    free(p);
    sink = guard[0];
}

/* A real double free of a block too big for the tcache: glibc says
 * "double free or corruption (!prev)". */
__attribute__((noinline)) static void double_free_large(void)
{
    char *volatile p = malloc(4000);
    char *volatile guard = malloc(32);
    free(p);
    free(p);
    sink = guard[0];
}

__attribute__((noinline)) static void heap_overflow(void)
{
    char *a = malloc(24);
    char *b = malloc(24);
    volatile size_t n = 40;
    memset(a, 0xff, n); /* runs over b's chunk header */
    free(b);
}

__attribute__((noinline)) static void free_bad(void)
{
    char *volatile p = malloc(64);
    free(p + 8);
}

__attribute__((noinline)) static void memcpy_null(void)
{
    char dst[64];
    void *volatile src = NULL;
    volatile size_t n = sizeof dst;
    memcpy(dst, src, n);
    sink = dst[0];
}

/* Aliases: a second thread blocks in read(2) with the soon-bad pointer as its
 * buffer argument (rsi at the syscall), then the main thread unmaps the page and
 * touches it. */
static int alias_pipe[2];
static char *alias_page;

static void *alias_reader(void *arg)
{
    (void)arg;
    ssize_t r = read(alias_pipe[0], alias_page + 0x10, 1);
    sink = (int)r;
    return NULL;
}

/* Aliases through a variable: this thread keeps the soon-bad pointer in a local
 * variable (its stack slot, no register) while it blocks reading the pipe. */
static void *alias_holder(void *arg)
{
    (void)arg;
    char *volatile held = alias_page + 0x20;
    char c;
    ssize_t r = read(alias_pipe[0], &c, 1);
    sink = (int)r + (held != NULL);
    return NULL;
}

/* Starts `holder`, lets it block, then unmaps the page and reads at `offset`. */
static void alias_crash(void *(*holder)(void *), size_t offset)
{
    pthread_t t;
    alias_page = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (pipe(alias_pipe) != 0 || pthread_create(&t, NULL, holder, NULL) != 0)
        abort();
    usleep(200 * 1000);
    munmap(alias_page, 4096);
    uint64_t v;
    char *p = alias_page + offset;
    __asm__ volatile("mov (%1), %0" : "=r"(v) : "r"(p) : "memory");
    sink = (int)v;
}

__attribute__((noinline)) static void alias(void) { alias_crash(alias_reader, 0x10); }
__attribute__((noinline)) static void alias_variable(void) { alias_crash(alias_holder, 0x20); }

/* Not a crash: two threads take two mutexes in opposite order and hang, for the
 * live tests of analysis modules (lock_waits.rhai). */
static pthread_mutex_t lock_a = PTHREAD_MUTEX_INITIALIZER, lock_b = PTHREAD_MUTEX_INITIALIZER;

static void *take_b_then_a(void *arg)
{
    (void)arg;
    pthread_mutex_lock(&lock_b);
    usleep(100 * 1000);
    pthread_mutex_lock(&lock_a);
    return NULL;
}

__attribute__((noinline)) static void deadlock(void)
{
    pthread_t t;
    pthread_mutex_lock(&lock_a);
    if (pthread_create(&t, NULL, take_b_then_a, NULL) != 0)
        abort();
    usleep(100 * 1000);
    pthread_mutex_lock(&lock_b);
}

/* A crash handler (as many programs install) catches the SIGSEGV of a null write
 * and aborts: the fault is what to report, not the abort. */
static void crash_handler(int sig)
{
    (void)sig;
    abort();
}

__attribute__((noinline)) static void handled_null_write(void)
{
    signal(SIGSEGV, crash_handler);
    volatile int *p = (volatile int *)(uintptr_t)sink;
    *(p + 4) = 1;
}

/* A crash handler that puts the default action back and raises the signal again (the
 * pattern of Python's faulthandler and many crash reporters): the core's signal is a
 * SIGSEGV sent by the process itself, the fault is in the handler's interrupted frame. */
static void reraise_handler(int sig)
{
    signal(sig, SIG_DFL);
    raise(sig);
}

__attribute__((noinline)) static void reraised_null_write(void)
{
    struct sigaction old;
    if (sigaction(SIGSEGV, NULL, &old) == 0 && old.sa_handler != reraise_handler)
        signal(SIGSEGV, reraise_handler);
    volatile int *p = (volatile int *)(uintptr_t)sink;
    *(p + 2) = 1;
}

/* The same handler installed with SA_NODEFER: raise() takes effect inside it. */
__attribute__((noinline)) static void reraised_nodefer(void)
{
    struct sigaction sa = {0};
    sa.sa_handler = reraise_handler;
    sa.sa_flags = SA_NODEFER;
    sigaction(SIGSEGV, &sa, NULL);
    reraised_null_write();
}

/* SIGSEGV sent with kill(): no fault at all. */
__attribute__((noinline)) static void killed_by_self(void)
{
    kill(getpid(), SIGSEGV);
}

/* SIGSEGV sent by another process while this one sleeps. */
__attribute__((noinline)) static void killed_by_other(void)
{
    pid_t parent = getpid();
    if (fork() == 0) {
        usleep(100 * 1000);
        kill(parent, SIGSEGV);
        _exit(0);
    }
    for (;;)
        pause();
}

int main(int argc, char **argv)
{
    const char *m = argc > 1 ? argv[1] : "";
    struct { const char *name; void (*run)(void); } modes[] = {
        {"null_read", null_read},       {"null_write", null_write},     {"wild_read", wild_read},
        {"wild_write", wild_write},     {"ro_write", ro_write},         {"rmw", rmw},
        {"rep_movs_src", rep_movs_src}, {"rep_movs_dst", rep_movs_dst}, {"rep_stos", rep_stos},
        {"call_null", call_null},       {"call_mem", call_mem},         {"call_wild", call_wild},
        {"misaligned_sse", misaligned_sse}, {"alignment_check", alignment_check},
        {"div_zero", div_zero},         {"illegal", illegal},           {"abort", do_abort},
        {"double_free", double_free},   {"heap_overflow", heap_overflow}, {"free_bad", free_bad},
        {"header_smash", header_smash}, {"double_free_large", double_free_large},
        {"memcpy_null", memcpy_null},   {"alias", alias},               {"deadlock", deadlock},
        {"alias_variable", alias_variable},
        {"thread_overflow", thread_overflow}, {"handled_null_write", handled_null_write},
        {"reraised_null_write", reraised_null_write}, {"reraised_nodefer", reraised_nodefer},
        {"killed_by_self", killed_by_self},
        {"killed_by_other", killed_by_other},
    };
    for (size_t i = 0; i < sizeof modes / sizeof modes[0]; i++)
        if (strcmp(m, modes[i].name) == 0)
            modes[i].run();
    if (strcmp(m, "stack_overflow") == 0)
        return overflow(0);
    if (strcmp(m, "assert") == 0)
        do_assert(argc);
    if (strcmp(m, "stack_smash") == 0)
        smash("this string is much longer than eight bytes, it overwrites the canary");
    fprintf(stderr, "unknown mode %s\n", m);
    return 2;
}
