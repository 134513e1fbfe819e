//! Snapshot files: `bt ptrace -o FILE` then `--snapshot FILE` prints the same threads
//! and frames, also after the executables and the core are gone.

mod common;

use common::*;
use serde_json::Value;
use std::fs;

/// The parts of a snapshot that must survive the round trip, frame by frame.
fn essence(snap: &Value) -> Vec<(i64, String, bool, Vec<Value>)> {
    snap["threads"]
        .as_array()
        .expect("threads")
        .iter()
        .map(|t| {
            let frames = t["frames"]
                .as_array()
                .expect("frames")
                .iter()
                .map(|f| {
                    serde_json::json!([
                        f["pc"],
                        f["function"],
                        f["file"],
                        f["line"],
                        f["module"],
                        f["inlined"],
                        f["trust"]
                    ])
                })
                .collect();
            (
                t["tid"].as_i64().unwrap(),
                t["name"].as_str().unwrap_or("").to_string(),
                t["faulted"].as_bool().unwrap(),
                frames,
            )
        })
        .collect()
}

/// Guards "a saved snapshot can be printed again on another machine, without the
/// binaries": write, delete every binary and the core, print again, compare.
#[test]
fn saved_snapshot_prints_the_same_without_binaries() {
    let dir = scratch_dir("bt-cores-roundtrip");
    let examples = examples_dir();
    let names = ["c_threads", "cpp_templates", "c_split_debug"];
    let crashes: Vec<Crash> = {
        let _guard = CorePatternGuard::set(&dir);
        names
            .iter()
            .map(|n| {
                let spec = crash_spec(n);
                let exe = dir.join(&spec.program);
                fs::copy(examples.join(&spec.program), &exe).expect("copying the example");
                let dbg = examples.join(format!("{}.debug", spec.program));
                if dbg.exists() {
                    fs::copy(&dbg, dir.join(format!("{}.debug", spec.program))).expect("copying the debug file");
                }
                crash_one(&spec, &exe, &dir)
            })
            .collect()
    };
    let mut saved = vec![];
    for c in &crashes {
        let (core, exe) = (c.core.to_str().unwrap(), c.exe.to_str().unwrap());
        // One run writes the file and prints the same snapshot as JSON.
        let file = dir.join(format!("{}.btsnap", c.spec.name));
        let direct = bt_json(&["ptrace", "-o", file.to_str().unwrap(), "--core", core, exe]);
        let quiet = dir.join(format!("{}.quiet.btsnap", c.spec.name));
        let out = bt(&["ptrace", "-o", quiet.to_str().unwrap(), "--core", core, exe]);
        assert!(out.status.success(), "{}: -o failed: {}", c.spec.name, String::from_utf8_lossy(&out.stderr));
        assert!(out.stdout.is_empty(), "{}: -o alone prints nothing on stdout", c.spec.name);
        let size = fs::metadata(&file).map(|m| m.len()).unwrap_or(0);
        let core_size = fs::metadata(&c.core).map(|m| m.len()).unwrap_or(0);
        assert!(size > 0 && size < core_size, "{}: snapshot is {size} bytes, core {core_size}", c.spec.name);
        saved.push((c.spec.name.clone(), file, direct));
    }
    // Nothing of the program is left: only the snapshot files.
    for c in &crashes {
        fs::remove_file(&c.exe).expect("removing the executable");
        fs::remove_file(&c.core).expect("removing the core");
        let _ = fs::remove_file(dir.join(format!("{}.debug", c.spec.program)));
    }
    for (name, file, direct) in &saved {
        let again = bt_json(&["ptrace", "--snapshot", file.to_str().unwrap()]);
        assert_eq!(essence(direct), essence(&again), "{name}: threads/frames changed through the snapshot file");
        assert_eq!(direct["signal"], again["signal"], "{name}: signal changed through the snapshot file");
        assert_eq!(direct["uuid"], again["uuid"], "{name}: uuid changed through the snapshot file");
        let text = bt(&["ptrace", "--snapshot", file.to_str().unwrap()]);
        assert!(text.status.success(), "{name}: text rendering of the snapshot failed");
        let text = String::from_utf8_lossy(&text.stdout);
        let first_fn = direct["threads"][0]["frames"][0]["function"].as_str().unwrap_or("??").to_string();
        assert!(text.contains(&first_fn), "{name}: text output lacks the crashing function {first_fn:?}:\n{text}");
    }
    let _ = fs::remove_dir_all(&dir);
}

/// Guards the error path: a corrupt snapshot file is a one-line error, not a panic.
#[test]
fn corrupt_snapshot_file_is_a_clear_error() {
    let dir = scratch_dir("bt-snap-corrupt");
    let c = crash("c_null");
    let file = dir.join("c_null.btsnap");
    let out =
        bt(&["ptrace", "-o", file.to_str().unwrap(), "--core", c.core.to_str().unwrap(), c.exe.to_str().unwrap()]);
    assert!(out.status.success(), "-o failed: {}", String::from_utf8_lossy(&out.stderr));
    let bytes = fs::read(&file).unwrap();
    let cut = dir.join("cut.btsnap");
    fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
    let flipped = dir.join("flipped.btsnap");
    let mut b2 = bytes.clone();
    for b in b2.iter_mut().skip(16).step_by(7) {
        *b ^= 0x5a;
    }
    fs::write(&flipped, &b2).unwrap();
    for f in [&cut, &flipped] {
        let out = bt(&["ptrace", "--snapshot", f.to_str().unwrap(), "--json"]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{}: a corrupt snapshot must fail", f.display());
        assert!(!stderr.contains("panicked"), "{}: panicked:\n{stderr}", f.display());
        assert_eq!(stderr.trim().lines().count(), 1, "{}: expected one error line, got:\n{stderr}", f.display());
    }
    let _ = fs::remove_dir_all(&dir);
}
