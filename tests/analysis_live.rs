//! Analysis on a live process: a deadlocked program (examples/analysis/faults.c,
//! mode deadlock) attached with `bt PID`; the lock_waits module marks both threads,
//! and without a fatal signal the built-in analysis adds no fault classifier.

mod common;

use common::{bt_json, scratch_dir};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

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
    // Both threads are blocked after ~100 ms; leave them time to get there.
    std::thread::sleep(Duration::from_millis(600));
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
    let mut tids: Vec<i64> = waits.iter().filter(|(_, t)| t.contains("waits for a lock")).map(|(tid, _)| *tid).collect();
    tids.sort();
    tids.dedup();
    assert_eq!(tids.len(), 2, "both threads wait for a lock: {waits:?}");
    assert!(snap["classifiers"].as_array().is_some_and(|c| c.is_empty()), "no fault, no classifier: {}", snap["classifiers"]);
}
