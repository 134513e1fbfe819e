//! `bt::capture::live` against real processes: a multithreaded C program built with gcc
//! at test time is captured; every thread must be there with its stack copied, and
//! the process must run on, unstopped, with no signal lost.

use bt::capture::{Capture, CaptureError, live};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::sync::OnceLock;
use std::sync::mpsc::{Receiver, channel};
use std::time::{Duration, Instant};

const PROG: &str = r#"
#define _GNU_SOURCE
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ptrace.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static volatile unsigned long spins;

static void on_usr1(int s) { (void)s; if (write(1, "pong\n", 5) < 0) _exit(3); }
static void report(void) {
    printf("tid %ld\n", (long)syscall(SYS_gettid));
    fflush(stdout);
}
static void *sleeper(void *a) {
    char n[16];
    snprintf(n, sizeof n, "sleeper%ld", (long)a);
    pthread_setname_np(pthread_self(), n);
    report();
    for (;;) { struct timespec ts = {10, 0}; nanosleep(&ts, 0); }
}
static void *waiter(void *a) {
    (void)a;
    pthread_setname_np(pthread_self(), "waiter");
    report();
    pthread_mutex_lock(&mu);
    for (;;) pthread_cond_wait(&cv, &mu);
}
static void *spinner(void *a) {
    (void)a;
    pthread_setname_np(pthread_self(), "spinner");
    report();
    for (;;) spins++;
}
static void *quick(void *a) { return a; }
static void on_usr2(int s) {
    (void)s;
    volatile int here = 0;
    printf("handler %p\n", (void *)&here);
    fflush(stdout);
    for (;;) { struct timespec ts = {10, 0}; nanosleep(&ts, 0); }
}
/* Handles SIGUSR2 on a sigaltstack and stays in the handler, as crash handlers do. */
static void *alt(void *a) {
    pthread_setname_np(pthread_self(), "alt");
    /* "autodisarm": SS_AUTODISARM (1 << 31), as crash handlers use. */
    int autodisarm = a != 0;
    stack_t ss = {.ss_sp = malloc(65536), .ss_size = 65536, .ss_flags = autodisarm ? (int)(1u << 31) : 0};
    sigaltstack(&ss, 0);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_usr2;
    sa.sa_flags = SA_ONSTACK;
    sigaction(SIGUSR2, &sa, 0);
    volatile int local = 0;
    printf("normal %p\n", (void *)&local);
    report();
    pthread_kill(pthread_self(), SIGUSR2);
    return 0;
}

int main(int argc, char **argv) {
    const char *mode = argc > 1 ? argv[1] : "threads";
    signal(SIGUSR1, on_usr1);
    if (!strcmp(mode, "tracer")) {
        pid_t c = fork();
        if (c == 0) for (;;) pause();
        if (ptrace(PTRACE_SEIZE, c, 0, 0) != 0) { perror("seize"); return 1; }
        printf("traced %d\n", c);
        fflush(stdout);
        for (;;) pause();
    }
    int n = argc > 2 ? atoi(argv[2]) : 8;
    report();
    pthread_t t;
    for (long i = 0; i < n; i++) pthread_create(&t, 0, i % 2 ? waiter : sleeper, (void *)i);
    pthread_create(&t, 0, spinner, 0);
    if (!strcmp(mode, "altstack")) pthread_create(&t, 0, alt, argc > 3 ? (void *)1 : 0);
    if (!strcmp(mode, "zombie")) pthread_exit(0);
    if (!strcmp(mode, "churn"))
        for (;;) { if (pthread_create(&t, 0, quick, 0) == 0) pthread_detach(t); }
    for (;;) pause();
}
"#;

/// Removes the temp dirs `bt-{tag}-PID` left by earlier test runs whose PID is gone.
fn remove_stale(tag: &str) {
    let prefix = format!("bt-{tag}-");
    for e in std::fs::read_dir(std::env::temp_dir()).into_iter().flatten().flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if let Some(pid) = name.strip_prefix(&prefix).and_then(|p| p.parse::<u32>().ok())
            && pid != std::process::id()
            && !Path::new(&format!("/proc/{pid}")).exists()
        {
            let _ = std::fs::remove_dir_all(e.path());
        }
    }
}

fn program() -> &'static PathBuf {
    static EXE: OnceLock<PathBuf> = OnceLock::new();
    EXE.get_or_init(|| {
        remove_stale("target-live");
        let dir = std::env::temp_dir().join(format!("bt-target-live-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("mkdir");
        let src = dir.join("live.c");
        std::fs::write(&src, PROG).expect("write C source");
        let exe = dir.join("live");
        let out = Command::new("gcc")
            .args(["-g", "-O1", "-pthread", "-o"])
            .arg(&exe)
            .arg(&src)
            .output()
            .expect("gcc must be installed to build the test program");
        assert!(out.status.success(), "gcc failed: {}", String::from_utf8_lossy(&out.stderr));
        exe
    })
}

/// A running instance of the test program; killed when dropped.
struct Target {
    child: Child,
    lines: Receiver<String>,
    /// Lines read while looking for others.
    stash: std::cell::RefCell<Vec<String>>,
    extra_pids: Vec<i32>,
}

impl Drop for Target {
    fn drop(&mut self) {
        for pid in &self.extra_pids {
            // SAFETY: kill has no memory-safety preconditions.
            unsafe { libc::kill(*pid, libc::SIGKILL) };
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Target {
    fn spawn(args: &[&str]) -> Target {
        let mut child = Command::new(program()).args(args).stdout(Stdio::piped()).spawn().expect("spawn");
        let stdout: ChildStdout = child.stdout.take().expect("piped stdout");
        let (tx, lines) = channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Target { child, lines, stash: Default::default(), extra_pids: Vec::new() }
    }

    fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    fn line(&self, what: &str) -> String {
        self.lines
            .recv_timeout(Duration::from_secs(10))
            .unwrap_or_else(|_| panic!("target printed no {what} within 10 s"))
    }

    /// The next line starting with `prefix` (without it); other lines are stashed.
    fn value(&self, prefix: &str) -> String {
        let mut stash = self.stash.borrow_mut();
        if let Some(i) = stash.iter().position(|l| l.starts_with(prefix)) {
            return stash.remove(i)[prefix.len()..].to_string();
        }
        loop {
            let l = self.line(prefix);
            match l.strip_prefix(prefix) {
                Some(v) => return v.to_string(),
                None => stash.push(l),
            }
        }
    }

    /// Waits for the `n` "tid N" lines the threads print once running.
    fn tids(&self, n: usize) -> Vec<i32> {
        (0..n)
            .map(|_| {
                let v = self.value("tid ");
                v.parse().unwrap_or_else(|_| panic!("odd tid {v:?}"))
            })
            .collect()
    }

    /// Sends SIGUSR1 and waits for the handler's "pong": the process runs and handles signals.
    fn ping(&self) {
        // SAFETY: kill has no memory-safety preconditions.
        assert_eq!(unsafe { libc::kill(self.pid(), libc::SIGUSR1) }, 0);
        self.expect_pong();
    }

    fn expect_pong(&self) {
        self.value("pong");
    }
}

/// Thread states from /proc; waits up to a second for none to be traced-stopped.
fn assert_running(pid: i32) {
    // SAFETY: kill with signal 0 only checks existence.
    assert_eq!(unsafe { libc::kill(pid, 0) }, 0, "process {pid} is gone");
    let deadline = Instant::now() + Duration::from_secs(1);
    loop {
        let states: Vec<(i32, String)> = std::fs::read_dir(format!("/proc/{pid}/task"))
            .expect("task dir")
            .flatten()
            .filter_map(|e| {
                let tid: i32 = e.file_name().to_str()?.parse().ok()?;
                let stat = std::fs::read_to_string(e.path().join("stat")).ok()?;
                let state = stat[stat.rfind(')')? + 1..].split_whitespace().next()?.to_string();
                Some((tid, state))
            })
            .collect();
        let stopped: Vec<_> = states.iter().filter(|(_, s)| s == "t" || s == "T").collect();
        if stopped.is_empty() {
            return;
        }
        assert!(Instant::now() < deadline, "threads still stopped after capture: {stopped:?}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn check_capture(cap: &Capture, pid: i32, tids: &[i32]) {
    let mut got: Vec<i32> = cap.threads.iter().map(|t| t.tid).collect();
    got.sort_unstable();
    let mut want = tids.to_vec();
    want.sort_unstable();
    assert_eq!(got, want, "every thread captured; problems: {:?}", cap.problems);
    assert_eq!(cap.process.pid, pid);
    assert_eq!(Path::new(&cap.process.exe), program().as_path());
    for t in &cap.threads {
        let r = &t.registers;
        let text = cap.maps.iter().find(|m| m.start <= r.rip && r.rip < m.end).expect("rip mapped");
        assert!(text.perms.contains('x'), "thread {} rip {:#x} in {text:?}", t.tid, r.rip);
        let stack = cap.maps.iter().find(|m| m.start <= r.rsp && r.rsp < m.end).expect("rsp mapped");
        assert!(stack.perms.starts_with("rw"), "thread {} rsp {:#x} in {stack:?}", t.tid, r.rsp);
        assert!(cap.memory.read_u64(r.rsp).is_some(), "stack of {} copied at rsp", t.tid);
        assert!(cap.memory.read_u64(r.rsp - 128).is_some(), "red zone of {} copied", t.tid);
        let mut top = [0u8; 8];
        assert!(cap.memory.read_exact(stack.end - 8, &mut top), "stack of {} copied up to its mapping's end", t.tid);
        assert_ne!(r.fs_base, 0);
        assert!(t.state == "S" || t.state == "R", "thread {} state {:?} read before interrupting", t.tid, t.state);
        assert!(!t.faulted);
    }
    let vdso = cap.maps.iter().find(|m| m.path == "[vdso]").expect("[vdso]");
    let mut magic = [0u8; 4];
    assert!(cap.memory.read_exact(vdso.start, &mut magic) && &magic == b"\x7fELF", "vDSO copied");
    assert!(cap.auxv.iter().any(|(k, v)| *k == 33 && *v == vdso.start), "AT_SYSINFO_EHDR");
    assert!(cap.environment.status.iter().any(|(k, _)| k == "Threads"));
    assert!(!cap.environment.limits.is_empty());
}

#[test]
fn captures_every_thread_and_leaves_the_process_running() {
    let target = Target::spawn(&["threads", "8"]);
    let tids = target.tids(10);
    let cap = live::capture(target.pid(), &live::LiveOptions::default()).expect("capture");
    check_capture(&cap, target.pid(), &tids);
    let name = |tid: i32| cap.threads.iter().find(|t| t.tid == tid).map(|t| t.name.clone());
    assert_eq!(name(target.pid()).as_deref(), Some("live"));
    assert!(cap.threads.iter().any(|t| t.name == "spinner" && t.state == "R"), "the spinner was running");
    assert!(cap.threads.iter().any(|t| t.name == "sleeper0"));
    assert!(cap.problems.is_empty(), "{:?}", cap.problems);

    // The main thread sleeps in pause(): its stack above rsp is what we copied.
    let main = cap.threads.iter().find(|t| t.tid == target.pid()).expect("main thread");
    let mut copied = [0u8; 64];
    assert!(cap.memory.read_exact(main.registers.rsp, &mut copied));
    let mut now = [0u8; 64];
    let mem = std::fs::File::open(format!("/proc/{}/mem", target.pid())).expect("open mem");
    std::os::unix::fs::FileExt::read_exact_at(&mem, &mut now, main.registers.rsp).expect("read mem");
    assert_eq!(copied, now, "copied stack bytes match the process's memory");

    assert_running(target.pid());
    target.ping();
    // Again, with a signal racing the freeze: it must be delivered, not lost.
    for _ in 0..5 {
        // SAFETY: kill has no memory-safety preconditions.
        assert_eq!(unsafe { libc::kill(target.pid(), libc::SIGUSR1) }, 0);
        let cap = live::capture(target.pid(), &live::LiveOptions::default()).expect("capture");
        assert_eq!(cap.threads.len(), 10);
        target.expect_pong();
        assert_running(target.pid());
    }
}

#[test]
fn handler_on_a_sigaltstack_keeps_the_interrupted_stack() {
    altstack(&["altstack", "2"]);
    altstack(&["altstack", "2", "autodisarm"]);
}

fn altstack(args: &[&str]) {
    let target = Target::spawn(args);
    let tids = target.tids(5);
    let hex = |v: String| u64::from_str_radix(v.trim_start_matches("0x"), 16).expect("hex address");
    let normal = hex(target.value("normal "));
    let handler = hex(target.value("handler "));
    let cap = live::capture(target.pid(), &live::LiveOptions::default()).expect("capture");
    assert_eq!(cap.threads.len(), tids.len());
    let alt = cap.threads.iter().find(|t| t.name == "alt").expect("alt thread");
    let rsp = alt.registers.rsp;
    assert!(rsp <= handler && handler - rsp < 65536, "rsp {rsp:#x} is on the altstack near {handler:#x}");
    assert!(
        cap.memory.read_u64(normal).is_some(),
        "the interrupted code's stack at {normal:#x} was copied too; problems {:?}",
        cap.problems
    );
    assert_running(target.pid());
    target.ping();
}

#[test]
fn a_thread_id_captures_its_process() {
    let target = Target::spawn(&["threads", "2"]);
    let tids = target.tids(4);
    let worker = *tids.iter().find(|t| **t != target.pid()).expect("a worker");
    let cap = live::capture(worker, &live::LiveOptions::default()).expect("capture");
    assert_eq!(cap.process.pid, target.pid());
    assert_eq!(cap.threads.len(), 4);
    assert!(cap.problems.iter().any(|p| p.message.contains("is a thread of process")));
    assert_running(target.pid());
}

#[test]
fn zombie_main_thread() {
    let target = Target::spawn(&["zombie", "4"]);
    let tids = target.tids(6);
    // Until the main thread has exited (a zombie leader).
    let deadline = Instant::now() + Duration::from_secs(10);
    while !std::fs::read_to_string(format!("/proc/{}/status", target.pid())).unwrap_or_default().contains("State:\tZ") {
        assert!(Instant::now() < deadline, "the main thread never exited");
        std::thread::sleep(Duration::from_millis(5));
    }
    let cap = live::capture(target.pid(), &live::LiveOptions::default()).expect("capture despite a zombie leader");
    assert_eq!(cap.threads.len(), 5, "all but the exited main thread; problems {:?}", cap.problems);
    assert!(cap.threads.iter().all(|t| t.tid != target.pid() && tids.contains(&t.tid)));
    assert!(cap.problems.iter().any(|p| p.message.contains("zombie")), "{:?}", cap.problems);
    assert_running(target.pid());
    target.ping();
}

#[test]
fn threads_appearing_and_exiting_during_attach() {
    let target = Target::spawn(&["churn", "4"]);
    let _ = target.tids(6);
    for _ in 0..20 {
        let cap = live::capture(target.pid(), &live::LiveOptions::default()).expect("capture under thread churn");
        assert!(cap.threads.len() >= 6, "the long-lived threads are there");
        for t in &cap.threads {
            assert!(cap.memory.read_u64(t.registers.rsp).is_some(), "stack of {}", t.tid);
        }
        assert_running(target.pid());
    }
    target.ping();
}

#[test]
fn many_threads() {
    let target = Target::spawn(&["threads", "300"]);
    let tids = target.tids(302);
    let t0 = Instant::now();
    let cap = live::capture(target.pid(), &live::LiveOptions::default()).expect("capture");
    let took = t0.elapsed();
    check_capture(&cap, target.pid(), &tids);
    eprintln!("captured {} threads in {took:?}", cap.threads.len());
    assert_running(target.pid());
    target.ping();
}

#[test]
fn a_stopped_process_stays_stopped() {
    let mut child = Command::new("sleep").arg("100").spawn().expect("spawn sleep");
    let pid = child.id() as i32;
    let state = || {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("stat");
        stat[stat.rfind(')').expect(")") + 2..].chars().next().expect("state")
    };
    // SAFETY: kill has no memory-safety preconditions.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGSTOP) }, 0);
    let deadline = Instant::now() + Duration::from_secs(5);
    while state() != 'T' {
        assert!(Instant::now() < deadline, "sleep did not stop");
        std::thread::sleep(Duration::from_millis(5));
    }
    let cap = live::capture(pid, &live::LiveOptions::default()).expect("capture a stopped process");
    assert_eq!((cap.threads.len(), cap.threads[0].state.as_str()), (1, "T"));
    // A fixed wait, the one a negative check needs: had the detach resumed it, the
    // process would run again within this time.
    std::thread::sleep(Duration::from_millis(50));
    assert_eq!(state(), 'T', "a job-control stop survives our attach/detach");
    // SAFETY: as above.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGCONT) }, 0);
    let deadline = Instant::now() + Duration::from_secs(5);
    while state() != 'S' {
        assert!(Instant::now() < deadline, "sleep did not resume after SIGCONT");
        std::thread::sleep(Duration::from_millis(5));
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// Set in the child copy of this test binary that runs as nobody.
const AS_NOBODY: &str = "BT_TARGET_LIVE_CAPTURE_AS_NOBODY";

#[test]
fn permission_denied_without_privileges() {
    if let Ok(pid) = std::env::var(AS_NOBODY) {
        // The unprivileged child: attaching to root's process must fail with EPERM.
        let pid: i32 = pid.parse().expect("pid");
        match live::capture(pid, &live::LiveOptions::default()) {
            Err(e @ CaptureError::PermissionDenied { .. }) => {
                println!("child got: {e}");
                std::process::exit(0)
            }
            Err(e) => {
                println!("child got the wrong error: {e}");
                std::process::exit(2)
            }
            Ok(_) => std::process::exit(3),
        }
    }
    // SAFETY: geteuid has no preconditions.
    assert_eq!(unsafe { libc::geteuid() }, 0, "this test drops root to get EPERM; run as root");
    let target = Target::spawn(&["threads", "1"]);
    let _ = target.tids(3);
    let mut cmd = Command::new(std::env::current_exe().expect("test binary"));
    cmd.args(["--exact", "permission_denied_without_privileges", "--nocapture", "--test-threads=1"])
        .env(AS_NOBODY, target.pid().to_string());
    // SAFETY: setgid/setuid are async-signal-safe; nothing else runs before exec.
    unsafe {
        use std::os::unix::process::CommandExt;
        cmd.pre_exec(|| {
            if libc::setgroups(0, std::ptr::null()) != 0 || libc::setgid(65534) != 0 || libc::setuid(65534) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let out = cmd.output().expect("run the test binary as nobody");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "child: {:?}\n{stdout}\n{}", out.status, String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("permission denied") && stdout.contains("CAP_SYS_PTRACE"), "{stdout}");
    assert_running(target.pid());
}

#[test]
fn a_32_bit_process_is_captured_and_flagged() {
    // A static i386 program without libc: loops in pause() (syscall 29 through int 0x80).
    let dir = program().parent().expect("dir").join("p32");
    std::fs::create_dir_all(&dir).expect("mkdir");
    std::fs::write(
        dir.join("p32.c"),
        "void _start(void) { for (;;) __asm__ volatile(\"movl $29, %%eax; int $0x80\" ::: \"eax\"); }\n",
    )
    .expect("write");
    let out = Command::new("gcc")
        .args(["-m32", "-nostdlib", "-static", "-fno-pie", "-no-pie", "-o", "p32", "p32.c"])
        .current_dir(&dir)
        .output()
        .expect("gcc");
    assert!(out.status.success(), "gcc -m32 failed: {}", String::from_utf8_lossy(&out.stderr));
    let mut child = Command::new(dir.join("p32")).spawn().expect("spawn p32");
    let pid = child.id() as i32;
    // Until it sleeps in pause().
    let deadline = Instant::now() + Duration::from_secs(10);
    while !std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default().contains(") S ") {
        assert!(Instant::now() < deadline, "p32 never reached pause()");
        std::thread::sleep(Duration::from_millis(5));
    }
    let cap = live::capture(pid, &live::LiveOptions::default());
    let _ = child.kill();
    let _ = child.wait();
    let cap = cap.expect("capture a 32-bit process");
    assert_eq!(cap.threads.len(), 1);
    assert_eq!(cap.threads[0].registers.cs, 0x23);
    assert!(cap.problems.iter().any(|p| p.message.contains("32-bit")), "{:?}", cap.problems);
}

#[test]
fn errors() {
    // A pid that does not exist (pid_max is at most 2^22).
    assert!(matches!(
        live::capture(5_000_000, &live::LiveOptions::default()),
        Err(CaptureError::NoSuchProcess { pid: 5_000_000 })
    ));
    // Already traced by someone else: EPERM, named as such.
    let mut target = Target::spawn(&["tracer"]);
    let line = target.line("traced pid");
    let traced: i32 = line.strip_prefix("traced ").and_then(|p| p.parse().ok()).expect("traced pid");
    target.extra_pids.push(traced);
    match live::capture(traced, &live::LiveOptions::default()) {
        Err(e @ CaptureError::AlreadyTraced { .. }) => {
            assert!(e.to_string().contains(&format!("already traced by pid {}", target.pid())), "{e}")
        }
        Err(e) => panic!("wrong error: {e}"),
        Ok(_) => panic!("captured a process traced by another tracer"),
    }
}
