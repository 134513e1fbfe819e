//! `bt ptrace PID` on a running multithreaded process: the same threads, names and
//! frames as gdb attaching right after, and the process keeps running, not stopped.

mod common;

use common::*;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// Kills the example when the test ends, whatever happens.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn task_states(pid: u32) -> Vec<(i32, char)> {
    let mut out = vec![];
    let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/task")) else { return out };
    for e in dir.flatten() {
        let tid: i32 = e.file_name().to_string_lossy().parse().unwrap_or(0);
        if let Ok(stat) = std::fs::read_to_string(e.path().join("stat")) {
            // The state follows the parenthesised comm, which may contain spaces.
            if let Some(i) = stat.rfind(')') {
                let state = stat[i + 1..].trim_start().chars().next().unwrap_or('?');
                out.push((tid, state));
            }
        }
    }
    out.sort();
    out
}

/// Starts `c_threads forever` and waits until it says "ready" and every thread sleeps.
fn start_parked() -> Running {
    let exe = examples_dir().join("c_threads");
    let mut child = Command::new(&exe)
        .arg("forever")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("starting {}: {e}", exe.display()));
    let stdout = child.stdout.take().expect("piped stdout");
    let running = Running(child);
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let _ = BufReader::new(stdout).read_line(&mut line);
        let _ = tx.send(line);
    });
    let line = rx.recv_timeout(Duration::from_secs(30)).expect("c_threads did not print ready within 30 s");
    assert_eq!(line.trim(), "ready", "c_threads printed {line:?}");
    let pid = running.0.id();
    // Parked = every task sleeping, twice in a row 100 ms apart.
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut calm = 0;
    while calm < 2 {
        let states = task_states(pid);
        assert!(Instant::now() < deadline, "threads never all parked: {states:?}");
        if states.len() == 7 && states.iter().all(|(_, s)| *s == 'S') {
            calm += 1;
        } else {
            calm = 0;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    running
}

fn assert_running_not_stopped(pid: u32, when: &str) {
    let states = task_states(pid);
    assert_eq!(states.len(), 7, "{when}: the process lost threads or died: {states:?}");
    for (tid, s) in &states {
        assert!(*s != 't' && *s != 'T', "{when}: thread {tid} is left stopped (state {s}): {states:?}");
    }
}

/// Guards live tracing end to end: frames and names match gdb's, nothing is marked
/// faulted and no signal is invented, and the target runs on after bt and after gdb.
#[test]
fn live_multithreaded_process_matches_gdb_and_keeps_running() {
    let proc_ = start_parked();
    let pid = proc_.0.id();
    let snap = bt_json(&["ptrace", &pid.to_string()]);
    // Detached: every thread goes back to sleep where it was (not left stopped).
    wait_all_asleep(pid, 7, 10);
    assert_running_not_stopped(pid, "after bt");
    let gdb = gdb_live(pid as i32);
    assert_running_not_stopped(pid, "after gdb");

    let mut errors = vec![];
    if let Err(e) = compare_report(&gdb, &snap) {
        errors.push(e);
    }
    let threads = bt_threads(&snap);
    for g in &gdb.threads {
        if let (Some(name), Some(b)) = (&g.name, threads.iter().find(|t| t.tid == g.tid)) {
            if &b.name != name {
                errors.push(format!("thread {} name: gdb {name:?}, bt {:?}", g.tid, b.name));
            }
        }
    }
    if threads.iter().any(|t| t.faulted) {
        errors.push("a live process without a signal has no faulted thread".into());
    }
    if !snap["signal"].is_null() {
        errors.push(format!("a live process that was not signalled has no signal; bt says {}", snap["signal"]));
    }
    if snap["process"]["pid"].as_i64() != Some(pid as i64) {
        errors.push(format!("process.pid: bt {}, real {pid}", snap["process"]["pid"]));
    }
    assert!(errors.is_empty(), "live trace of pid {pid} disagrees with gdb:\n{}", errors.join("\n"));
}

/// Guards repeated attaches: tracing the same process several times in a row works
/// and leaves it running each time (no stale stops, no lost SIGSTOP).
#[test]
fn live_process_survives_repeated_traces() {
    let proc_ = start_parked();
    let pid = proc_.0.id();
    let mut first = None;
    for round in 0..3 {
        let snap = bt_json(&["ptrace", &pid.to_string()]);
        // A fixed wait, the one a negative check needs: a thread left stopped by the
        // trace would show as such within this time.
        std::thread::sleep(Duration::from_millis(100));
        assert_running_not_stopped(pid, &format!("after trace {round}"));
        let tids: Vec<i32> = bt_threads(&snap).iter().map(|t| t.tid).collect();
        assert_eq!(tids.len(), 7, "trace {round}: expected 7 threads, got {tids:?}");
        match &first {
            None => first = Some(tids),
            Some(f) => assert_eq!(f, &tids, "trace {round}: thread list changed"),
        }
    }
}

/// Guards the module list live (issue 12): a process that maps libc and its own
/// executable as data (as debuggers and symbolizers do) is named as gdb names it,
/// because modules come from the dynamic linker's link map, not from the union
/// of each path's mappings.
#[test]
fn live_process_with_elf_files_mapped_as_data_matches_gdb() {
    let exe = examples_dir().join("c_mmap_elf");
    let mut child = Command::new(&exe)
        .arg("forever")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("starting {}: {e}", exe.display()));
    let stdout = child.stdout.take().expect("piped stdout");
    let running = Running(child);
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line).expect("read ready");
    assert_eq!(line.trim(), "ready");
    let pid = running.0.id();
    let deadline = Instant::now() + Duration::from_secs(30);
    while task_states(pid).iter().any(|(_, s)| *s != 'S') {
        assert!(Instant::now() < deadline, "the target never parked");
        std::thread::sleep(Duration::from_millis(50));
    }
    let maps = std::fs::read_to_string(format!("/proc/{pid}/maps")).expect("maps");
    let libc_maps = maps.lines().filter(|l| l.contains("libc.so")).count();
    assert!(libc_maps >= 5, "libc is mapped as an image and as data: {maps}");
    let snap = bt_json(&["ptrace", &pid.to_string()]);
    let gdb = gdb_live(pid as i32);
    if let Err(e) = compare_report(&gdb, &snap) {
        panic!("live trace of pid {pid} disagrees with gdb:\n{e}");
    }
    let frames = &bt_threads(&snap)[0].frames;
    assert!(frames.iter().any(|f| f.function.as_deref() == Some("park")), "{frames:?}");
}

/// A thread no signal can stop (a vfork parent waits in the kernel, state D, until its
/// child execs or exits; so does a read from a hung NFS server): gdb waits for it as
/// long as that takes. bt gives up after its stop timeout, shows the other threads as
/// always, and this one walked from the stack and instruction pointers the kernel
/// gives for a blocked thread, saying so; the process goes on unharmed.
#[test]
fn a_thread_that_never_stops_is_walked_from_the_kernels_sp_and_pc() {
    let dir = scratch_dir("bt-live-vfork");
    let src = dir.join("vf.c");
    std::fs::write(
        &src,
        "#include <pthread.h>\n#include <unistd.h>\n\
         static void *other(void *a) { (void)a; for (;;) pause(); return 0; }\n\
         int main(void) { pthread_t t; pthread_create(&t, 0, other, 0);\n\
           if (vfork() == 0) { sleep(9); _exit(0); }\n  return 0; }\n",
    )
    .expect("write vf.c");
    let exe = dir.join("vf");
    let st = Command::new("gcc").args(["-g", "-pthread", "-o"]).arg(&exe).arg(&src).status().expect("gcc");
    assert!(st.success());
    let mut running = Running(Command::new(&exe).stdin(Stdio::null()).spawn().expect("start vf"));
    let pid = running.0.id();
    let deadline = Instant::now() + Duration::from_secs(5);
    while !task_states(pid).iter().any(|&(tid, s)| tid == pid as i32 && s == 'D') {
        assert!(Instant::now() < deadline, "the vfork parent never waited: {:?}", task_states(pid));
        std::thread::sleep(Duration::from_millis(20));
    }
    let started = Instant::now();
    let snap = bt_json(&["ptrace", &pid.to_string()]);
    assert!(started.elapsed() < Duration::from_secs(8), "bt waited {:?}", started.elapsed());
    let threads = bt_threads(&snap);
    assert_eq!(threads.len(), 2, "both threads: {:?}", threads.iter().map(|t| t.tid).collect::<Vec<_>>());
    let main = threads.iter().find(|t| t.tid == pid as i32).expect("the vfork parent");
    let top = main.frames.first().and_then(|f| f.function.clone()).unwrap_or_default();
    assert!(top.contains("vfork"), "the parent's frame 0: {top:?}");
    let other = threads.iter().find(|t| t.tid != pid as i32).expect("the other thread");
    assert!(other.frames.iter().any(|f| f.function.as_deref() == Some("other")), "{:?}", other.frames);
    let said = snap["problems"].to_string();
    assert!(said.contains("never stopped"), "{said}");
    // Unharmed: the child exits, the parent returns from vfork and exits 0.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(status) = running.0.try_wait().expect("wait") {
            assert!(status.success(), "vf ended with {status:?}");
            break;
        }
        assert!(Instant::now() < deadline, "vf did not end: {:?}", task_states(pid));
        std::thread::sleep(Duration::from_millis(50));
    }
}
