/* A program that crashes and reports the crash as an application embedding
 * Crashpad does: its SIGSEGV handler starts Crashpad's real crashpad_handler with
 * --trace-parent-with-exception (the handler reads the exception from this process
 * through ptrace, writes the minidump and uploads it), then restores the default
 * action and returns, so the kernel also writes a core of the same crash.
 * Compiles as C and as C++.
 * usage: crasher HANDLER DATABASE URL single|threads [HANDLER OPTIONS…] */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

/* Crashpad's ExceptionInformation (client/linux: the addresses of the siginfo and
 * the ucontext in this process, and the crashing thread). */
struct exception_information { uint64_t siginfo; uint64_t context; uint64_t thread_id; };
static struct exception_information info;
static char *handler_argv[40];
static char trace_arg[96];

static void on_fault(int sig, siginfo_t *si, void *uc) {
  info.siginfo = (uint64_t)(uintptr_t)si;
  info.context = (uint64_t)(uintptr_t)uc;
  info.thread_id = (uint64_t)syscall(SYS_gettid);
  snprintf(trace_arg, sizeof trace_arg, "--trace-parent-with-exception=0x%llx",
           (unsigned long long)(uintptr_t)&info);
  handler_argv[1] = trace_arg;
  pid_t child = fork();
  if (child == 0) {
    execv(handler_argv[0], handler_argv);
    _exit(127);
  }
  prctl(PR_SET_PTRACER, child, 0, 0, 0);
  int status;
  waitpid(child, &status, 0);
  signal(sig, SIG_DFL);
}

struct node { int value; struct node *next; };

static inline __attribute__((always_inline)) int read_next(struct node *n) {
  return n->next->value;
}

__attribute__((noinline)) int crash_here(struct node *n, int depth) {
  volatile int local = depth * 3;
  return read_next(n) + local;
}

__attribute__((noinline)) int walk(struct node *n, int d) {
  int r = crash_here(n, d);
  __asm__ volatile("" ::: "memory");
  return r + 1;
}

static void *idle(void *arg) {
  (void)arg;
  for (;;) pause();
  return NULL;
}

int main(int argc, char **argv) {
  if (argc < 5) {
    fprintf(stderr, "usage: crasher HANDLER DATABASE URL single|threads [options]\n");
    return 2;
  }
  static char db[1024], url[1024];
  int k = 0;
  handler_argv[k++] = argv[1];
  handler_argv[k++] = NULL; /* the exception's address, set in the handler */
  snprintf(db, sizeof db, "--database=%s", argv[2]);
  snprintf(url, sizeof url, "--url=%s", argv[3]);
  handler_argv[k++] = db;
  handler_argv[k++] = url;
  handler_argv[k++] = (char *)"--no-rate-limit";
  for (int i = 5; i < argc && k < 38; i++) handler_argv[k++] = argv[i];
  handler_argv[k] = NULL;
  if (strcmp(argv[4], "threads") == 0) {
    for (int i = 0; i < 3; i++) {
      pthread_t t;
      pthread_create(&t, NULL, idle, NULL);
    }
    usleep(20000);
  }
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_sigaction = on_fault;
  sa.sa_flags = SA_SIGINFO;
  sigaction(SIGSEGV, &sa, NULL);
  struct node n = { 7, NULL };
  printf("%d\n", walk(&n, argc));
  return 0;
}
