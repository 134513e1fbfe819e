//! Go programs, built at test time with Debian's Go (`make deps` installs golang-go)
//! from `examples/go`, crashed for real with `GOTRACEBACK=crash` (the kernel writes
//! the core) and attached to live. The oracle is the Go runtime itself: its own
//! dump of the same crash on stderr — every goroutine with its id and status, each
//! parked goroutine's stack, the panic message — must be what bt reads from the core.

mod common;

use common::*;
use serde_json::Value;
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

/// Builds examples/go once per test binary; returns the executable.
fn program() -> &'static Path {
    static EXE: OnceLock<PathBuf> = OnceLock::new();
    EXE.get_or_init(|| {
        let dir = scratch_dir("go-build");
        for f in ["main.go", "go.mod"] {
            std::fs::copy(repo_root().join("examples/go").join(f), dir.join(f)).expect("copy the Go example");
        }
        let out = Command::new("go")
            .args(["build", "-o", "crashgo", "."])
            .current_dir(&dir)
            .env("HOME", &dir)
            .env("GOCACHE", dir.join("cache"))
            .env("GOFLAGS", "-mod=mod")
            .output()
            .expect("go is missing: make deps installs Debian's golang-go");
        assert!(out.status.success(), "go build failed: {}", String::from_utf8_lossy(&out.stderr));
        dir.join("crashgo")
    })
}

/// A goroutine of the Go runtime's own dump: id, status, function names.
#[derive(Debug, Default, Clone)]
struct GoDump {
    status: String,
    functions: Vec<String>,
}

/// Parses `goroutine N [status]:` blocks (and the `panic: …` / `fatal error: …` line).
fn parse_dump(text: &str) -> (Option<String>, BTreeMap<u64, GoDump>) {
    let mut first = None;
    let mut out = BTreeMap::new();
    let mut current: Option<u64> = None;
    for line in text.lines() {
        if first.is_none() && (line.starts_with("panic: ") || line.starts_with("fatal error: ")) {
            first = Some(line.to_string());
        }
        if let Some(rest) = line.strip_prefix("goroutine ") {
            let (id, status) = rest.split_once(" [").unwrap_or((rest, ""));
            let status = status.trim_end_matches(':').trim_end_matches(']');
            // `chan receive, 2 minutes`, `running, locked to thread`: the reason alone.
            let status = status.split(", ").next().unwrap_or(status).to_string();
            if let Ok(id) = id.parse() {
                out.insert(id, GoDump { status, functions: vec![] });
                current = Some(id);
            }
            continue;
        }
        if line.is_empty() {
            current = None;
            continue;
        }
        let Some(id) = current else { continue };
        if line.starts_with('\t') || line.starts_with("created by ") || !line.ends_with(')') {
            continue;
        }
        if let Some(i) = line.rfind('(') {
            if let Some(g) = out.get_mut(&id) {
                g.functions.push(line[..i].to_string());
            }
        }
    }
    (first, out)
}

/// bt's goroutines from a snapshot's JSON (the `go.goroutines` extension).
fn goroutines(snap: &Value) -> Vec<Value> {
    let ext = snap["extensions"]
        .as_array()
        .and_then(|a| a.iter().find(|e| e["name"] == "go.goroutines"))
        .unwrap_or_else(|| panic!("no go.goroutines extension; problems {}", snap["problems"]));
    let bytes: Vec<u8> =
        ext["bytes"].as_array().expect("bytes").iter().map(|b| b.as_u64().unwrap_or(0) as u8).collect();
    serde_json::from_slice::<Vec<Value>>(&bytes).expect("the extension is JSON")
}

fn attribute(snap: &Value, key: &str) -> Option<String> {
    snap["attributes"].as_array()?.iter().find(|a| a["key"] == key).and_then(|a| a["value"].as_str().map(String::from))
}

/// Checks bt's goroutines against the runtime's dump: the same ids, statuses, and
/// for every parked goroutine the same functions (bt lists inlined calls too, as
/// the runtime does).
fn compare(gs: &[Value], dump: &BTreeMap<u64, GoDump>) {
    let bt: BTreeMap<u64, &Value> = gs.iter().map(|g| (g["id"].as_u64().expect("id"), g)).collect();
    let (want, have): (Vec<u64>, Vec<u64>) = (dump.keys().copied().collect(), bt.keys().copied().collect());
    let missing: Vec<&u64> = want.iter().filter(|id| !have.contains(id)).collect();
    let extra: Vec<&u64> = have.iter().filter(|id| !want.contains(id)).collect();
    assert!(missing.is_empty() && extra.is_empty(), "goroutine ids: bt lacks {missing:?}, has too many {extra:?}");
    let mut compared = 0;
    for (id, d) in dump {
        let g = bt[id];
        let status = g["wait_reason"].as_str().or(g["status"].as_str()).unwrap_or("");
        assert_eq!(status, d.status, "goroutine {id}: status");
        let frames: Vec<String> = g["frames"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|f| f["function"].as_str().map(String::from))
            .collect();
        if !frames.is_empty() && !d.functions.is_empty() {
            assert_eq!(frames, d.functions, "goroutine {id}: functions");
            compared += 1;
        }
    }
    assert!(compared > 0, "no parked goroutine's stack was compared");
}

/// Runs the program in `mode` with GOTRACEBACK=crash until it dumps core; returns
/// (snapshot JSON, the runtime's stderr).
fn crash(mode: &str) -> (Value, String) {
    let exe = program();
    let core_dir = scratch_dir(&format!("bt-cores-go-{mode}"));
    let (pid, status, stderr) = {
        let _guard = CorePatternGuard::set(&core_dir);
        let mut cmd = Command::new(exe);
        cmd.arg(mode).env("GOTRACEBACK", "crash").stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::piped());
        allow_core_dumps(&mut cmd);
        let child = cmd.spawn().expect("start crashgo");
        let pid = child.id();
        let out = child.wait_with_output().expect("wait for crashgo");
        (pid, out.status, String::from_utf8_lossy(&out.stderr).into_owned())
    };
    assert!(status.core_dumped(), "crashgo {mode} did not dump core: {status}\n{stderr}");
    assert_eq!(status.signal(), Some(libc::SIGABRT), "GOTRACEBACK=crash ends in SIGABRT");
    let core = core_dir.join(format!("core.{pid}"));
    let snap = bt_json(&["ptrace", "--core", core.to_str().expect("utf-8"), exe.to_str().expect("utf-8")]);
    (snap, stderr)
}

fn classifiers(snap: &Value) -> Vec<String> {
    snap["classifiers"].as_array().into_iter().flatten().filter_map(|c| c.as_str().map(String::from)).collect()
}

/// A panic: go-panic (not abort), the message as the runtime printed it, the
/// panicking goroutine marked, and every goroutine as the runtime listed them.
fn check_panic(mode: &str, fault: Option<&str>) -> Value {
    let (snap, stderr) = crash(mode);
    let (first, dump) = parse_dump(&stderr);
    let first = first.unwrap_or_else(|| panic!("the runtime printed no panic line:\n{stderr}"));
    let message = first.strip_prefix("panic: ").expect("a panic line");
    // The runtime appends ` [recovered]` and the signal line separately; the message is the line.
    assert_eq!(attribute(&snap, "go.panic").as_deref(), Some(message), "panic message\n{stderr}");
    let cls = classifiers(&snap);
    assert!(cls.contains(&"go-panic".to_string()) && !cls.contains(&"abort".to_string()), "{cls:?}");
    if let Some(f) = fault {
        assert!(cls.contains(&f.to_string()), "the fault under the panic: {cls:?}");
    }
    // Go variables through the runtime's types (all in a unit of their own):
    // `runtime.dieFromSignal(sig uint32)` was called with SIGABRT, as gdb reads it.
    let sig: Vec<&Value> = snap["threads"][0]["frames"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|f| f["function"] == "runtime.dieFromSignal")
        .flat_map(|f| f["variables"].as_array().into_iter().flatten())
        .filter(|v| v["name"] == "sig")
        .collect();
    assert!(!sig.is_empty() && sig.iter().all(|v| v["value"] == "6"), "sig of dieFromSignal: {sig:?}");
    let texts = snap.to_string();
    assert!(!texts.contains("expression stack underflow"), "an empty location is <optimized out>");
    let gs = goroutines(&snap);
    // A parked worker's own variables: `id` is its index, `ch` the channel it waits on.
    let worker_vars: Vec<&Value> = gs
        .iter()
        .flat_map(|g| g["frames"].as_array().into_iter().flatten())
        .filter(|f| f["function"] == "main.worker")
        .flat_map(|f| f["variables"].as_array().into_iter().flatten())
        .filter(|v| v["name"] == "ch")
        .collect();
    assert!(
        !worker_vars.is_empty()
            && worker_vars.iter().all(|v| v["value"].as_str().is_some_and(|s| s.starts_with("0xc"))),
        "the workers' channel: {worker_vars:?}"
    );
    let panicking: Vec<u64> = gs.iter().filter(|g| g["panicking"] == true).filter_map(|g| g["id"].as_u64()).collect();
    assert_eq!(panicking, vec![1], "the main goroutine panicked");
    compare(&goroutines(&snap), &dump);
    snap
}

#[test]
fn nil_dereference() {
    let snap = check_panic("nil", Some("null-dereference"));
    // A parked goroutine's map, slice, string and interfaces, shown as Delve shows them.
    let vars: BTreeMap<String, String> = goroutines(&snap)
        .iter()
        .flat_map(|g| g["frames"].as_array().cloned().unwrap_or_default())
        .filter(|f| f["function"] == "main.holder")
        .flat_map(|f| f["variables"].as_array().cloned().unwrap_or_default())
        .map(|v| (v["name"].as_str().unwrap_or("").to_string(), v["value"].as_str().unwrap_or("").to_string()))
        .collect();
    assert_eq!(vars.get("m").map(String::as_str), Some("map[string]int len: 3"), "{vars:?}");
    assert_eq!(vars.get("xs").map(String::as_str), Some("[]int len: 4, cap: 4, [4,5,6,7]"), "{vars:?}");
    assert_eq!(vars.get("name").map(String::as_str), Some("\"hello\""), "{vars:?}");
    // Interfaces with their dynamic types, as Delve shows them (gdb prints the raw
    // `{_type = …, data = …}` pair): a boxed int, a pointer, an error.
    assert_eq!(vars.get("v").map(String::as_str), Some("interface {}(int) 42"), "{vars:?}");
    assert!(vars.get("p").is_some_and(|p| p.starts_with("interface {}(*main.Node) 0xc")), "{vars:?}");
    assert_eq!(vars.get("err").map(String::as_str), Some("error(*errors.errorString) *{s: \"boom\"}"), "{vars:?}");
}

#[test]
fn user_panic() {
    check_panic("panic", None);
}

#[test]
fn index_out_of_range() {
    check_panic("index", None);
}

#[test]
fn panic_with_an_error() {
    check_panic("error", None);
}

#[test]
fn thousand_goroutines() {
    let (snap, stderr) = crash("many");
    let (_, dump) = parse_dump(&stderr);
    assert!(dump.len() > 1000, "the runtime listed {} goroutines", dump.len());
    compare(&goroutines(&snap), &dump);
}

#[test]
fn deadlock_is_a_fatal_error() {
    let (snap, stderr) = crash("deadlock");
    let (first, dump) = parse_dump(&stderr);
    assert_eq!(first.as_deref(), Some("fatal error: all goroutines are asleep - deadlock!"), "{stderr}");
    let cls = classifiers(&snap);
    assert!(cls.contains(&"go-fatal-error".to_string()) && !cls.contains(&"abort".to_string()), "{cls:?}");
    assert_eq!(attribute(&snap, "go.fatal").as_deref(), first.as_deref());
    compare(&goroutines(&snap), &dump);
}

#[test]
fn grouped_by_the_application_frame() {
    let (snap, _) = crash("nil");
    let dir = scratch_dir("go-rules");
    let path = dir.join("snap.json");
    std::fs::write(&path, snap.to_string()).expect("write");
    let out = bt(&["rules", "fingerprint", path.to_str().expect("utf-8")]);
    let v: Value = serde_json::from_slice(&out.stdout).expect("rules JSON");
    assert_eq!(v["signature"], serde_json::json!(["main.deref"]), "{v}");
}

#[test]
fn live_goroutines_match_the_runtime_dump() {
    let exe = program();
    let mut child = Command::new(exe)
        .arg("wait")
        .env("GOTRACEBACK", "system")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start crashgo wait");
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("stdout")).read_line(&mut line).expect("ready");
    assert_eq!(line.trim(), "ready");
    wait_all_asleep(child.id(), 2, 30);
    let snap = bt_json(&["ptrace", &child.id().to_string()]);
    // Now the runtime's own list: SIGQUIT makes it dump every goroutine and exit.
    // SAFETY: kill on our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGQUIT) };
    // The dump is bigger than a pipe holds: read it while waiting.
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    let out = rx.recv_timeout(Duration::from_secs(60)).expect("crashgo ignored SIGQUIT").expect("stderr");
    let stderr = String::from_utf8_lossy(&out.stderr);
    let (_, mut dump) = parse_dump(&stderr);
    // `goroutine 0`: the thread's own g0 the runtime dumps from, not a goroutine of allgs.
    dump.remove(&0);
    // The runtime's dump is taken by the goroutine handling SIGQUIT, running at that
    // moment; in the attached process it was parked. Statuses of the others agree.
    for g in dump.values_mut() {
        if g.status == "running" {
            g.functions.clear();
        }
    }
    let gs = goroutines(&snap);
    assert!(gs.len() > 1000, "bt found {} goroutines", gs.len());
    // Parked goroutines' variables, live: each worker's `id` is its index (0..1000,
    // each once) and `ch` the channel they all wait on.
    let workers: Vec<BTreeMap<String, String>> = gs
        .iter()
        .flat_map(|g| g["frames"].as_array().cloned().unwrap_or_default())
        .filter(|f| f["function"] == "main.worker")
        .map(|f| {
            f["variables"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|v| (v["name"].as_str().unwrap_or("").to_string(), v["value"].as_str().unwrap_or("").to_string()))
                .collect()
        })
        .collect();
    let mut ids: Vec<u64> = workers.iter().filter_map(|w| w.get("id")?.parse().ok()).collect();
    ids.sort_unstable();
    assert_eq!(ids, (0..1000).collect::<Vec<u64>>(), "the workers' ids, live");
    let chans: std::collections::BTreeSet<&String> = workers.iter().filter_map(|w| w.get("ch")).collect();
    assert!(chans.len() == 1 && chans.iter().all(|c| c.starts_with("0xc")), "one channel: {chans:?}");
    let running_in_dump: Vec<u64> = dump.iter().filter(|(_, g)| g.status == "running").map(|(id, _)| *id).collect();
    for id in running_in_dump {
        dump.remove(&id);
    }
    let kept: Vec<Value> = gs.into_iter().filter(|g| dump.contains_key(&g["id"].as_u64().unwrap_or(0))).collect();
    compare(&kept, &dump);
}
