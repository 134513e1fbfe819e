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
