//! Analysis on a live process: a deadlocked program (examples/analysis/faults.c,
//! mode deadlock) attached with `bt PID`; the lock_waits module marks both threads,
//! and without a fatal signal the built-in analysis adds no fault classifier.
//! A failed assert whose SIGABRT handler never returns (examples/analysis/
//! abort_caught.c), traced live, is an `assert` with glibc's message: the live
//! capture copies `__abort_msg` and the text it points to.

mod common;

use common::{bt_json, scratch_dir};
use std::io::BufRead;
use std::path::PathBuf;
use std::process::{Command, Stdio};

/// Kills the child when the test ends, whatever happens.
struct Child(std::process::Child);

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn lock_waits_module_marks_a_live_deadlock() {
    let repo = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let dir = scratch_dir("analysis-build-live");
    let exe = dir.join("faults");
    let res = Command::new("gcc")
        .args(["-O0", "-g", "-pthread"])
        .arg(repo.join("examples/analysis/faults.c"))
        .arg("-o")
        .arg(&exe)
        .output()
        .expect("running gcc");
    assert!(res.status.success(), "gcc: {}", String::from_utf8_lossy(&res.stderr));
    let child = Child(
        Command::new(&exe).arg("deadlock").stdout(Stdio::null()).stderr(Stdio::null()).spawn().expect("spawn faults"),
    );
    // Both threads block on their second lock: wait until both sit in futex(2)
    // (syscall 202; asleep alone could still be the usleep before it).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let in_futex: Vec<bool> = std::fs::read_dir(format!("/proc/{}/task", child.0.id()))
            .map(|d| {
                d.flatten()
                    .map(|e| std::fs::read_to_string(e.path().join("syscall")).is_ok_and(|t| t.starts_with("202 ")))
                    .collect()
            })
            .unwrap_or_default();
        if in_futex.len() >= 2 && in_futex.iter().all(|b| *b) {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "the threads never blocked on their locks: {in_futex:?}");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let pid = child.0.id().to_string();
    let module = repo.join("examples/modules/lock_waits.rhai");
    let snap = bt_json(&["ptrace", &pid, "--module", module.to_str().expect("utf-8")]);
    let waits: Vec<(i64, String)> = snap["annotations"]
        .as_array()
        .expect("annotations")
        .iter()
        .filter(|a| a["source"] == "module:lock_waits")
        .map(|a| (a["scope"]["frame"][0].as_i64().unwrap_or(0), a["text"].as_str().unwrap_or("").to_string()))
        .collect();
    let mut tids: Vec<i64> =
        waits.iter().filter(|(_, t)| t.contains("waits for a lock")).map(|(tid, _)| *tid).collect();
    tids.sort();
    tids.dedup();
    assert_eq!(tids.len(), 2, "both threads wait for a lock: {waits:?}");
    assert!(
        snap["classifiers"].as_array().is_some_and(|c| c.is_empty()),
        "no fault, no classifier: {}",
        snap["classifiers"]
    );
}

#[test]
fn live_process_held_in_abort_reports_the_assertion() {
    let exe = build_abort_caught("analysis-build-live-abort", &[]);
    let child = spawn_held(&exe, &[]);
    let texts = live_assert_texts(child.0.id());
    let want = "abort_caught.c:20: check: Assertion `value == 42 && \"caught abort\"' failed.";
    // Only glibc's own message (not the arguments' fallback) starts with the program name.
    assert!(texts.iter().any(|t| t.starts_with("assertion failed: abort_caught: ") && t.contains(want)), "{texts:?}");
}

/// Traces `pid` with `bt ptrace`; checks it is classified `assert` (and nothing else)
/// and returns the annotations' texts.
fn live_assert_texts(pid: u32) -> Vec<String> {
    let snap = bt_json(&["ptrace", &pid.to_string()]);
    let classifiers: Vec<&str> =
        snap["classifiers"].as_array().expect("classifiers").iter().filter_map(|c| c.as_str()).collect();
    assert_eq!(classifiers, ["assert"], "{}", snap["annotations"]);
    snap["annotations"]
        .as_array()
        .expect("annotations")
        .iter()
        .filter_map(|a| a["text"].as_str().map(String::from))
        .collect()
}

/// Hides glibc's `__abort_msg` pointer from the analysis, as when it was not copied.
struct WithoutAbortMsg {
    inner: Box<dyn bt::capture::Memory>,
    var: u64,
}

impl bt::capture::Memory for WithoutAbortMsg {
    fn read(&self, addr: u64, buf: &mut [u8]) -> usize {
        if addr <= self.var + 7 && addr + buf.len() as u64 > self.var {
            // Readable up to the pointer, not beyond.
            let n = self.var.saturating_sub(addr) as usize;
            return self.inner.read(addr, &mut buf[..n]);
        }
        self.inner.read(addr, buf)
    }
}

/// Without `__abort_msg`, the assertion comes from `__assert_fail`'s arguments, as
/// far as its frame's recovered registers hold them.
#[test]
fn assertion_from_assert_fail_arguments_when_abort_msg_is_missing() {
    let exe = build_abort_caught("analysis-build-live-abort-args", &[]);
    let child = spawn_held(&exe, &[]);
    let snap = trace_without_abort_msg(child.0.id() as i32);
    assert_annotation(
        &snap,
        "abort_caught.c:20: check: Assertion `value == 42 && \"caught abort\"' failed. (from __assert_fail's arguments)",
    );
}

/// Builds examples/analysis/abort_caught.c (static with `-static`) into a scratch dir.
fn build_abort_caught(tag: &str, extra: &[&str]) -> PathBuf {
    let repo = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let dir = scratch_dir(tag);
    let exe = dir.join("abort_caught");
    let res = Command::new("gcc")
        .args(["-O0", "-g"])
        .args(extra)
        .arg(repo.join("examples/analysis/abort_caught.c"))
        .arg("-o")
        .arg(&exe)
        .output()
        .expect("running gcc");
    assert!(res.status.success(), "gcc: {}", String::from_utf8_lossy(&res.stderr));
    exe
}

/// Starts abort_caught and waits until its SIGABRT handler holds it inside abort().
fn spawn_held(exe: &std::path::Path, args: &[&str]) -> Child {
    let mut child =
        Child(Command::new(exe).args(args).stdout(Stdio::piped()).stderr(Stdio::null()).spawn().expect("spawn"));
    let out = child.0.stdout.take().expect("stdout");
    let mut line = String::new();
    std::io::BufReader::new(out).read_line(&mut line).expect("read ready");
    assert_eq!(line.trim(), "ready");
    child
}

/// The runtime address of `__abort_msg` in whichever module defines it (libc, or a
/// static executable), from the module file's symbols and the snapshot's load bias.
fn abort_msg_var(snap: &bt::snapshot::Snapshot) -> u64 {
    use object::{Object, ObjectSymbol};
    for m in &snap.modules {
        let Ok(bytes) = std::fs::read(&m.path) else { continue };
        let Ok(elf) = object::File::parse(&*bytes) else { continue };
        let hit =
            elf.dynamic_symbols().chain(elf.symbols()).find(|s| s.name() == Ok("__abort_msg") && s.address() != 0);
        if let Some(sym) = hit {
            return sym.address() + m.load_bias;
        }
    }
    panic!("no module defines __abort_msg")
}

/// Traces a held process twice: once to find `__abort_msg`, once with it hidden.
fn trace_without_abort_msg(pid: i32) -> bt::snapshot::Snapshot {
    let opts = bt::trace::TraceOptions::default();
    let cap = bt::capture::live::capture(pid, &opts.live).expect("capture");
    let var = abort_msg_var(&bt::trace::build(cap, &opts));
    let mut cap = bt::capture::live::capture(pid, &opts.live).expect("capture");
    cap.memory = Box::new(WithoutAbortMsg { inner: cap.memory, var });
    bt::trace::build(cap, &opts)
}

fn assert_annotation(snap: &bt::snapshot::Snapshot, want_suffix: &str) {
    assert_eq!(snap.classifiers, ["assert"], "{:?}", snap.annotations);
    let texts: Vec<&str> = snap.annotations.iter().map(|a| a.text.as_str()).collect();
    assert!(
        texts.iter().any(|t| t.starts_with("assertion failed: ") && t.ends_with(want_suffix)),
        "no annotation ends with {want_suffix:?}: {texts:?}"
    );
}

/// A static executable has glibc's `__abort_msg` in itself: the live capture copies
/// it from there, and the assertion reads as in a dynamic program.
#[test]
fn static_executable_held_in_abort_reports_the_assertion() {
    let exe = build_abort_caught("analysis-build-live-static", &["-static"]);
    let child = spawn_held(&exe, &[]);
    let texts = live_assert_texts(child.0.id());
    let want = "abort_caught.c:20: check: Assertion `value == 42 && \"caught abort\"' failed.";
    assert!(texts.iter().any(|t| t.starts_with("assertion failed: abort_caught: ") && t.contains(want)), "{texts:?}");
}

/// Static, and `__abort_msg` hidden: the assertion comes from the arguments
/// `__assert_fail` (decoded) or `__assert_fail_base` (its caller's set-up) got.
#[test]
fn static_executable_assertion_without_abort_msg() {
    let exe = build_abort_caught("analysis-build-live-static-args", &["-static"]);
    let child = spawn_held(&exe, &[]);
    let snap = trace_without_abort_msg(child.0.id() as i32);
    assert_annotation(
        &snap,
        "abort_caught.c:20: check: Assertion `value == 42 && \"caught abort\"' failed. (from __assert_fail's arguments)",
    );
}

/// `assert_perror` goes through `__assert_perror_fail`, not `__assert_fail`: without
/// `__abort_msg`, its text comes from the call into `__assert_fail_base`.
#[test]
fn assert_perror_text_from_assert_fail_base_arguments() {
    let exe = build_abort_caught("analysis-build-live-perror", &[]);
    let child = spawn_held(&exe, &["perror"]);
    let snap = trace_without_abort_msg(child.0.id() as i32);
    assert_annotation(
        &snap,
        "abort_caught.c:24: check_errno: Unexpected error: No such file or directory. (from __assert_fail_base's arguments)",
    );
}
