/* Corpus program (C): eight distinct bugs, each reachable through six paths.
 * usage: bugs BUG PATH [DEPTH]
 * BUG:  null_header assert_qty double_free stack_smash div_zero fatal_config
 *       fatal_db strlen_null
 * PATH: direct caller_a caller_b loop thread recurse */
#include <assert.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct header { int len; int flags; };
struct order { int id; int qty; };
struct item { char *name; };

/* Inputs come from globals the compiler cannot see through. */
struct header *volatile g_header = NULL;
volatile int g_qty = 0;
volatile size_t g_name_len = 200;
volatile int g_count = 0;
volatile int g_base = 10;
const char *volatile g_msg = NULL;
int g_sink;

/* The application's own fatal-error wrapper (prints, then aborts). */
void fatal(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    abort();
}

/* Bug 1: reads through a NULL header. */
int parse_header(const struct header *h) { return h->len + h->flags; }
int read_request(void) { return parse_header(g_header) + 1; }

/* Bug 2: an order with no quantity reaches validation. */
void validate_order(const struct order *o) {
    assert(o->qty > 0);
    g_sink += o->id;
}
void submit_order(void) {
    struct order o = { 7, g_qty };
    validate_order(&o);
}

/* Bug 3: the name is freed twice. */
struct item *volatile g_item;
void release_item(struct item *it) {
    free(it->name);
    if (g_count == 0) free(it->name);
}
void drop_item(void) {
    static struct item it;
    it.name = malloc(32);
    g_item = &it;
    release_item(g_item);
}

/* Bug 4: a name longer than the buffer smashes the stack. */
/* Calls through a volatile pointer: the optimizer cannot drop the buffer. */
static void keep_buf(char *b) { g_sink += b[3]; }
void (*volatile g_keep)(char *) = keep_buf;
void copy_name(const char *src, size_t n) {
    char buf[16];
    memcpy(buf, src, n);
    g_keep(buf);
}
void rename_user(void) {
    char src[128];
    memset(src, 'A', sizeof src);
    copy_name(src, g_name_len);
}

/* Bug 5: the average of no samples. */
int compute_average(const int *v, int n) {
    int sum = g_base;
    for (int i = 0; i < n; i++) sum += v[i];
    return sum / n;
}
void report_stats(void) {
    int v[4] = { 1, 2, 3, 4 };
    g_sink += compute_average(v, g_count);
}

/* Bugs 6 and 7: two different callers of the fatal() wrapper. */
void load_config(const char *path) {
    if (g_count == 0) fatal("config %s missing", path);
}
void open_database(const char *name) {
    if (g_count == 0) fatal("database %s unreachable", name);
}

/* Bug 8: logs a NULL message (the crash is inside strlen). */
void log_message(const char *msg) {
    size_t n = strlen(msg);
    g_sink += (int)n;
}

/* Unbounded recursion: a parser's mutual recursion through three functions (frames
 * of varying size, so the stack runs out in a different one depending on the path
 * and the build) and a direct recursion that runs out in memset or in itself. */
int parse_expr(const char *s, int d);
int parse_factor(const char *s, int d) {
    volatile char pad[40 + 16 * (d % 5)];
    pad[0] = s[d % 4];
    return parse_expr(s, d + 1) + pad[0];
}
int parse_term(const char *s, int d) {
    volatile char pad[32];
    pad[1] = s[d % 4];
    return parse_factor(s, d + 1) + pad[1];
}
int parse_expr(const char *s, int d) {
    volatile char pad[24];
    pad[2] = s[d % 4];
    return parse_term(s, d + 1) + pad[2];
}
void nest_list(int d) {
    char pad[200];
    memset(pad, d, sizeof pad);
    g_keep(pad);
    nest_list(d + 1);
    g_sink += pad[d % 200];
}

static const char *g_bug;

void run_bug(void) {
    const char *b = g_bug;
    if (!strcmp(b, "null_header")) g_sink += read_request();
    else if (!strcmp(b, "assert_qty")) submit_order();
    else if (!strcmp(b, "double_free")) drop_item();
    else if (!strcmp(b, "stack_smash")) rename_user();
    else if (!strcmp(b, "div_zero")) report_stats();
    else if (!strcmp(b, "fatal_config")) load_config("/etc/app.conf");
    else if (!strcmp(b, "fatal_db")) open_database("orders");
    else if (!strcmp(b, "strlen_null")) log_message(g_msg);
    else if (!strcmp(b, "overflow_expr")) g_sink += parse_expr("(1+", 0);
    else if (!strcmp(b, "overflow_list")) nest_list(0);
    else { fprintf(stderr, "unknown bug %s\n", b); exit(2); }
}

/* The paths that lead to a bug. */
void handle_request_a(void) { run_bug(); g_sink++; }
void process_item(int i) { if (i >= 0) run_bug(); g_sink++; }
void handle_batch_b(void) { for (int i = 0; i < 1; i++) process_item(i); g_sink++; }

typedef void (*callback_fn)(void *);
struct event { callback_fn cb; void *arg; };
void on_readable(void *arg) { (void)arg; run_bug(); g_sink++; }
void dispatch_event(struct event *ev) { ev->cb(ev->arg); g_sink++; }
void event_loop_run(struct event *evs, int n) {
    for (int i = 0; i < n; i++) dispatch_event(&evs[i]);
    g_sink++;
}

void *worker_main(void *arg) { (void)arg; run_bug(); return NULL; }

void walk(int depth) {
    if (depth <= 0) run_bug();
    else walk(depth - 1);
    g_sink++;
}

int main(int argc, char **argv) {
    if (argc < 3) { fprintf(stderr, "usage: %s BUG PATH [DEPTH]\n", argv[0]); return 2; }
    g_bug = argv[1];
    const char *path = argv[2];
    int depth = argc > 3 ? atoi(argv[3]) : 3;
    if (!strcmp(path, "direct")) run_bug();
    else if (!strcmp(path, "caller_a")) handle_request_a();
    else if (!strcmp(path, "caller_b")) handle_batch_b();
    else if (!strcmp(path, "loop")) {
        struct event evs[1] = { { on_readable, NULL } };
        event_loop_run(evs, 1);
    } else if (!strcmp(path, "thread")) {
        pthread_t t;
        pthread_create(&t, NULL, worker_main, NULL);
        pthread_join(t, NULL);
    } else if (!strcmp(path, "recurse")) walk(depth);
    else { fprintf(stderr, "unknown path %s\n", path); return 2; }
    return g_sink == 12345;
}
