//! Variable capture on hostile input stays bounded: cyclic lists, wild pointers, huge
//! array bounds, corrupted DWARF (no hang, no panic, problems recorded), and a live
//! process that keeps running after its variables were read.

mod common;

use common::*;
use object::{Object, ObjectSection};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

fn build_bad(dir: &Path) -> PathBuf {
    let exe = dir.join("bad");
    let st = Command::new("gcc")
        .args(["-g", "-O0", "-pthread", "-o"])
        .arg(&exe)
        .arg(repo_root().join("examples/variables/bad.c"))
        .status()
        .expect("gcc");
    assert!(st.success());
    exe
}

/// Each test crashes its own copy (tests run in parallel: one directory each).
fn crashed_bad(tag: &str) -> (PathBuf, PathBuf, PathBuf) {
    let dir = scratch_dir(&format!("bt-cores-variables-bad-{tag}"));
    let exe = build_bad(&dir);
    let spec = CrashSpec {
        name: "bad".into(),
        program: "bad".into(),
        args: vec![],
        signal: "SIGSEGV".into(),
        what: String::new(),
    };
    let _guard = CorePatternGuard::set(&dir);
    let c = crash_one(&spec, &exe, &dir);
    (dir, exe, c.core)
}

fn var<'a>(snap: &'a serde_json::Value, func: &str, name: &str) -> &'a serde_json::Value {
    snap["threads"][0]["frames"]
        .as_array()
        .expect("frames")
        .iter()
        .filter(|f| f["function"] == func)
        .flat_map(|f| f["variables"].as_array().expect("variables"))
        .find(|v| v["name"] == name)
        .unwrap_or_else(|| panic!("no variable {name} in {func}"))
}

#[test]
fn hostile_values_are_bounded_and_said() {
    let (_dir, exe, core) = crashed_bad("hostile");
    let started = Instant::now();
    let snap = bt_json(&["ptrace", "--core", core.to_str().expect("utf-8"), exe.to_str().expect("utf-8")]);
    assert!(started.elapsed() < Duration::from_secs(20), "took {:?}", started.elapsed());
    // The cycle a → b → a is followed only to the depth bound.
    let cycle = &var(&snap, "hostile", "cycle")["structured"];
    let mut depth = 0;
    let mut cur = cycle;
    while let Some(t) = cur["pointer"]["target"].as_object() {
        depth += 1;
        cur = &t["struct"][1]["value"];
        assert!(depth < 10, "cycle followed without bound");
    }
    assert_eq!(depth, 3, "followed {depth} pointers, expected the default bound of 3");
    // A wild pointer's target is unreadable, not invented.
    let wild = &var(&snap, "hostile", "wild")["structured"]["pointer"];
    assert_eq!(wild["address"], 0xdead0000beefu64);
    assert!(wild["target"]["unreadable"].is_object(), "wild target: {}", wild["target"]);
    // A pointer to int[100000000] reads at most the element bound.
    let huge = &var(&snap, "hostile", "huge")["structured"]["pointer"]["target"]["array"];
    assert_eq!(huge["length"], 100000000);
    assert!(huge["items"].as_array().expect("items").len() <= 200);
    // A 4999-character string is cut at 200 like gdb does.
    assert_eq!(
        var(&snap, "hostile", "longtext")["value"].as_str().map(|s| s.ends_with("'x' <repeats 200 times>...")),
        Some(true)
    );
    assert_eq!(var(&snap, "hostile", "marker")["value"], "777");
}

/// Overwrites bytes of `.debug_info` (and `.debug_abbrev`) with a deterministic
/// pseudo-random stream; the build id stays, so bt trusts the file.
fn corrupt(src: &Path, dst: &Path, seed: u64) {
    let mut bytes = std::fs::read(src).expect("reading exe");
    let ranges: Vec<(usize, usize)> = {
        let obj = object::File::parse(&*bytes).expect("ELF");
        [".debug_info", ".debug_abbrev", ".debug_loclists", ".debug_rnglists"]
            .iter()
            .filter_map(|n| obj.section_by_name(n))
            .filter_map(|s| s.file_range())
            .map(|(o, l)| (o as usize, l as usize))
            .collect()
    };
    let mut x = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
    for (off, len) in ranges {
        for _ in 0..(len / 50).max(4) {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            let at = off + (x >> 33) as usize % len;
            bytes[at] = (x >> 17) as u8;
        }
    }
    std::fs::write(dst, &bytes).expect("writing corrupt exe");
}

#[test]
fn corrupted_dwarf_never_hangs_or_panics() {
    let (dir, exe, core) = crashed_bad("corrupt");
    let bad = dir.join("bad-corrupt");
    for seed in 0..25 {
        corrupt(&exe, &bad, seed);
        let started = Instant::now();
        let out = run_with_timeout(
            30,
            &bt_bin(),
            &[
                "ptrace",
                "--json",
                "--global",
                "thread_tag",
                "--core",
                core.to_str().expect("utf-8"),
                bad.to_str().expect("utf-8"),
            ],
            &[],
        );
        assert!(out.status.success(), "seed {seed}: bt failed: {}", String::from_utf8_lossy(&out.stderr));
        assert!(started.elapsed() < Duration::from_secs(20), "seed {seed}: took {:?}", started.elapsed());
        let snap: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
        assert!(!snap["threads"].as_array().expect("threads").is_empty());
    }
}

#[test]
fn live_process_keeps_running_and_tls_is_per_thread() {
    let dir = scratch_dir("variables-live");
    let exe = build_bad(&dir);
    let mut child = Command::new(&exe).arg("live").spawn().expect("starting bad live");
    let pid = child.id() as i32;
    // Wait until the four workers exist.
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::fs::read_dir(format!("/proc/{pid}/task")).map(|d| d.count()).unwrap_or(0) < 5 {
        assert!(Instant::now() < deadline, "workers did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
    wait_all_asleep(pid as u32, 5, 20);
    let snap = bt_json(&["ptrace", &pid.to_string(), "--global", "thread_tag"]);
    // Every thread sits in worker() with its own n and TLS tag.
    let mut ns: Vec<String> = Vec::new();
    for t in snap["threads"].as_array().expect("threads") {
        let f =
            t["frames"].as_array().expect("frames").iter().find(|f| f["function"] == "worker").expect("worker frame");
        let n = f["variables"].as_array().expect("vars").iter().find(|v| v["name"] == "n").expect("n");
        ns.push(n["value"].as_str().unwrap_or("").to_string());
        let left = f["variables"]
            .as_array()
            .expect("vars")
            .iter()
            .find(|v| v["name"] == "seconds_left")
            .expect("seconds_left");
        assert!(left["value"].as_str().unwrap_or("").parse::<i64>().is_ok(), "seconds_left = {}", left["value"]);
    }
    ns.sort();
    assert_eq!(ns, ["0", "1", "2", "3", "99"]);
    // thread_tag is read in the first thread listed (the main thread, no fault), which
    // runs worker(99): 1000 + 99, not the workers' 1000..1003.
    assert_eq!(snap["globals"][0]["value"], "1099");
    // Detached: the process runs on (not stopped, not traced).
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    assert!(status.lines().any(|l| l.starts_with("TracerPid:") && l.trim_end().ends_with("\t0")), "{status}");
    assert!(child.try_wait().expect("try_wait").is_none(), "the process died");
    let _ = child.kill();
    let _ = child.wait();
}
