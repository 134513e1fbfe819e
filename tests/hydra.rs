//! hydra's screens, rendered with tui-realm's test terminal and event port (the
//! `--screen` path, in process) on snapshots of real crashes of the example
//! programs and of a live 1,000-thread process: the opening screen, every
//! peripheral tab, filter, global find, alias jumps, expanding variables past the
//! depth the tracer printed, zoom, and a 40×12 screen.

mod common;

use bt::snapshot::{Snapshot, values};
use bt::viewer::{self, Options};
use common::*;
use std::path::{Path, PathBuf};

/// `bt ptrace --core CORE EXE [EXTRA…] -o FILE` into a scratch file; returns it.
fn snapshot_of(name: &str, exe: &Path, core: &Path, extra: &[&str]) -> PathBuf {
    let out = scratch_dir(&format!("bt-hydra-{name}")).join("snap.bt");
    snapshot_of_core(exe, core, &out, extra);
    out
}

/// The snapshot of an example crash, made once per test binary (tests run in
/// parallel and share it; a scratch directory is wiped when made again).
fn crash_snapshot(name: &str) -> PathBuf {
    static MADE: std::sync::Mutex<Vec<(String, PathBuf)>> = std::sync::Mutex::new(Vec::new());
    let mut made = MADE.lock().unwrap_or_else(|e| e.into_inner());
    if let Some((_, p)) = made.iter().find(|(n, _)| n == name) {
        return p.clone();
    }
    let c = crash(name);
    let p = snapshot_of(name, &c.exe, &c.core, &[]);
    made.push((name.to_string(), p.clone()));
    p
}

/// The screen after `keys`, as `bt hydra FILE --screen SIZE --keys KEYS` renders it.
fn screen(file: &Path, size: &str, keys: &str) -> String {
    let mut snap = Snapshot::read_file(file).expect("read snapshot");
    values::render_snapshot(&mut snap, &values::VariableOptions::default());
    let size = viewer::parse_screen(size).expect("size");
    let keys = viewer::parse_keys(keys).expect("keys");
    viewer::headless(snap, size, &keys, &Options::default()).expect("headless screen")
}

/// The rows of the screen that contain `needle`.
fn rows_with<'a>(screen: &'a str, needle: &str) -> Vec<&'a str> {
    screen.lines().filter(|l| l.contains(needle)).collect()
}

/// The left half of each row (Threads and Variables panes at the default layout).
fn left(screen: &str, cols: usize) -> String {
    screen.lines().map(|l| l.chars().take(cols).collect::<String>()).collect::<Vec<_>>().join("\n")
}

/// The cpp of the vars example at -O0, crashed once per test binary.
fn vars_crash() -> &'static Crash {
    static C: std::sync::OnceLock<Crash> = std::sync::OnceLock::new();
    C.get_or_init(|| {
        let dir = scratch_dir("bt-cores-hydra-vars");
        build_and_crash(&dir, "hydra_vars", "gcc", &["-O0", "-g"], &repo_root().join("examples/variables/vars.c"))
    })
}

#[test]
fn opens_on_the_faulting_thread_frame_and_variable() {
    let snap = crash_snapshot("c_threads");
    let s = screen(&snap, "140x40", "");
    let parsed = Snapshot::read_file(&snap).expect("read");
    let tid = parsed.faulting_thread().expect("a faulting thread").tid.to_string();
    // The faulted thread is marked and selected; its frames are shown.
    let marked = rows_with(&s, "!  ");
    assert!(marked.iter().any(|r| r.contains(&tid)), "faulted thread {tid} not marked:\n{s}");
    assert!(s.contains(&format!("Frames of {tid}")), "frames of another thread:\n{s}");
    assert!(rows_with(&s, "#0  store_record threads.c:89 [ctx]").len() == 1, "{s}");
    assert!(rows_with(&s, "#1  handle_request threads.c:95 [cfi]").len() == 1, "{s}");
    // The variable holding the fault address (the NULL `r`) is selected, in the focused pane.
    assert!(rows_with(&s, "›  r: (struct record *) 0x0").len() == 1, "r not selected:\n{s}");
    assert!(s.contains("a alias"), "the bar shows the Variables keys:\n{s}");
    // Summary by default: the signal and the classifiers.
    assert!(s.contains("SIGSEGV (11) SEGV_MAPERR"), "{s}");
    assert!(s.contains("null-dereference"), "{s}");
}

#[test]
fn every_peripheral_tab_shows_its_part_of_the_snapshot() {
    let snap = crash_snapshot("c_threads");
    let want: [(&str, &[&str]); 9] = [
        ("1", &["[1 Summary]", "classifiers: invalid-write null-dereference", "Process"]),
        ("2", &["[2 Registers]", "frame #0 of thread", "rip ", "→ mapped"]),
        ("3", &["[3 Maps]", " mappings", "c_threads"]),
        ("4", &["[4 Modules]", " modules", "build id "]),
        ("5", &["[5 Attributes]", "hostname = "]),
        ("6", &["[6 Environment]", "host ", "cpus "]),
        ("7", &["[7 Memory]", "0x", ": r itself", "?? = not captured"]),
        ("8", &["[8 Source]", "threads.c:89", "→   89", "r->id = id;"]),
        ("9", &["[9 Kernel]", "not captured (only a live process"]),
    ];
    for (key, needles) in want {
        // Zoomed, so long lines are not cut by the pane's width.
        // From the Variables pane the opening focuses, Tab reaches the Peripheral.
        let s = screen(&snap, "200x60", &format!("Tab {key} z"));
        for n in needles {
            assert!(s.contains(n), "tab {key}: no {n:?} in\n{s}");
        }
    }
    // Registers of a caller frame: only what unwinding recovered, marked so.
    let s = screen(&snap, "200x60", "BTab Down Tab Tab 2 z");
    assert!(s.contains("frame #1 of thread"), "{s}");
    assert!(s.contains("recovered"), "caller registers are marked recovered:\n{s}");
}

#[test]
fn filter_search_and_global_find() {
    let snap = crash_snapshot("c_threads");
    // `/` filters the focused list (Threads) as it is typed; Enter keeps it.
    let s = screen(&snap, "140x40", "BTab BTab /clock_nanosleep Enter");
    let l = left(&s, 60);
    assert!(l.contains("/clock_nanosleep"), "the pane title shows the filter:\n{s}");
    assert_eq!(rows_with(&l, "clock_nanosleep").len() - 1, 2, "two sleeping threads match:\n{l}");
    assert!(rows_with(&l, "futex").is_empty(), "non-matching threads hidden:\n{l}");
    // Esc clears it.
    let s = screen(&snap, "140x40", "BTab BTab /clock_nanosleep Enter Escape");
    assert_eq!(rows_with(&left(&s, 60), "c_threads ").len(), 8, "all threads back:\n{s}");
    // `f` finds across every thread; n/N walk the matches.
    let s = screen(&snap, "140x40", "f handle_request Enter");
    assert!(s.contains("\"handle_request\": match 1/1"), "{s}");
    assert!(rows_with(&s, "›#1  handle_request").len() == 1, "the match is selected:\n{s}");
    let s = screen(&snap, "140x40", "f nanosleep Enter n");
    assert!(s.contains("match 2/"), "n goes to the next match:\n{s}");
    let s = screen(&snap, "140x40", "f no_such_function_anywhere Enter");
    assert!(s.contains("not found in any thread"), "{s}");
}

#[test]
fn alias_jump_walks_the_holders_of_an_address() {
    let c = vars_crash();
    let snap = snapshot_of("vars", &c.exe, &c.core, &[]);
    // `list` (crash_here, frame 0) and `head` (walk, frame 1) hold the same pointer.
    let s = screen(&snap, "140x40", "f list Enter");
    assert!(rows_with(&s, "›▸ list: (struct node *) 0x").len() == 1, "{s}");
    let s = screen(&snap, "140x40", "f list Enter a");
    assert!(s.contains("Variables of frame #1"), "a goes to walk's frame:\n{s}");
    assert!(rows_with(&s, "›▸ head: (struct node *) 0x").len() == 1, "head selected:\n{s}");
    assert!(s.contains(": holder 2/2 (a: next)"), "{s}");
    let s = screen(&snap, "140x40", "f list Enter a a");
    assert!(s.contains("Variables of frame #0") && s.contains(": holder 1/2"), "and back:\n{s}");
}

#[test]
fn variables_expand_past_the_depth_the_tracer_printed() {
    let c = vars_crash();
    // The tracer renders three pointers deep and keeps the bytes of a fourth: the
    // tree opens the fourth from the kept memory.
    let snap = snapshot_of("vars-depth", &c.exe, &c.core, &[]);
    let json = bt(&["ptrace", "--snapshot", &snap.to_string_lossy(), "--json"]);
    let json: serde_json::Value = serde_json::from_slice(&json.stdout).expect("json");
    let list = &json["threads"][0]["frames"][0]["variables"]
        .as_array()
        .expect("variables")
        .iter()
        .find(|v| v["name"] == "list")
        .expect("list")["structured"];
    let mut at = list;
    for _ in 0..3 {
        at = &at["pointer"]["target"]["struct"][1]["value"];
    }
    assert!(at["pointer"]["target"].is_null(), "the tracer stops at list->next->next->next: {list}");
    assert!(!list.to_string().contains("{\"int\":40}"), "40 is not in what the tracer rendered: {list}");
    let open3 = "f list Enter Right Down Down Right Down Down Right Down Down Right";
    let s = screen(&snap, "140x50", open3);
    assert!(rows_with(&s, "value: 30").len() == 1, "list->next->next->value:\n{s}");
    assert!(rows_with(&s, "value: 40").len() == 1, "list->next->next->next->value from kept memory:\n{s}");
    // Left folds; Left on a child goes to its parent.
    let s = screen(&snap, "140x50", "f list Enter Right Down Left");
    assert!(rows_with(&s, "›▾ list:").len() == 1, "{s}");
    let s = screen(&snap, "140x50", "f list Enter Right Down Down Right Left");
    assert!(rows_with(&s, "›  ▸ next:").len() == 1, "{s}");

    // Bytes kept two pointers deep: past them the tree says "not captured".
    let shallow = snapshot_of("vars-depth1", &c.exe, &c.core, &["--max-depth", "1"]);
    let s = screen(&shallow, "140x50", "f list Enter Right Down Down Right Down Down Right");
    assert!(rows_with(&s, "value: 20").len() == 1, "{s}");
    assert!(s.contains("not captured"), "past the kept bytes the tree says so:\n{s}");
}

#[test]
fn zoom_and_a_small_screen() {
    let snap = crash_snapshot("c_threads");
    let s = screen(&snap, "140x40", "");
    assert_eq!(s.matches('┌').count(), 4, "four panes:\n{s}");
    let s = screen(&snap, "140x40", "z");
    assert_eq!(s.matches('┌').count(), 1, "one pane zoomed:\n{s}");
    assert!(s.contains("Variables of frame #0"), "{s}");
    let s = screen(&snap, "140x40", "z z");
    assert_eq!(s.matches('┌').count(), 4, "z again unzooms:\n{s}");
    let s = screen(&snap, "40x12", "Tab Down Tab 2 PageDown End g ?");
    let lines: Vec<&str> = s.lines().collect();
    assert_eq!(lines.len(), 12, "{s}");
    assert!(lines.iter().all(|l| l.chars().count() <= 40), "{s}");
    assert!(s.contains("help"), "help fits a small screen:\n{s}");
    let s = screen(&snap, "40x12", "");
    assert!(s.contains("Threads (8)"), "{s}");
}

#[test]
fn cpp_inlines_and_rust_panics() {
    let s = screen(&crash_snapshot("cpp_templates"), "160x40", "BTab z");
    assert!(s.contains("(inline) "), "inlined frames are marked:\n{s}");
    // No variable holds the fault: hydra opens on the Frames pane; two Tabs reach the Peripheral.
    let s = screen(&crash_snapshot("rust_panic"), "160x40", "Tab Tab 1 z");
    assert!(s.contains("SIGABRT (6)"), "{s}");
    let s = screen(&crash_snapshot("rust_panic"), "160x40", "f panic Enter");
    assert!(s.contains("\"panic\": match 1/"), "the panic machinery is found:\n{s}");
}

#[test]
fn a_thousand_threads_grouped_and_a_deadlock_with_kernel_stacks() {
    let p = ManyThreads::start(1000);
    let out = scratch_dir("bt-hydra-many").join("many.bt");
    let o = bt(&["ptrace", &p.child.id().to_string(), "-o", &out.to_string_lossy()]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let s = screen(&out, "160x50", "");
    assert!(s.contains("Threads (1000)"), "{s}");
    assert!(s.contains("×997▸"), "the 997 idle workers are one row:\n{s}");
    assert_eq!(rows_with(&s, "‹ lock_in_order").len(), 2, "the two deadlocked threads:\n{s}");
    // Expanding the group lists its members.
    let s = screen(&out, "160x50", "BTab /idle Enter Right");
    assert!(s.contains("×997▾"), "{s}");
    assert!(rows_with(&left(&s, 64), "‹ idle_wo").len() > 10, "members listed:\n{s}");
    // The kernel stack of a deadlocked thread: it waits on a futex.
    let s = screen(&out, "160x50", "f lock_in_order Enter Tab Tab 9 z");
    assert!(s.contains("kernel stack of thread"), "{s}");
    assert!(s.contains("futex"), "the deadlocked thread waits in the kernel on a futex:\n{s}");
}

#[test]
fn opens_every_snapshot_format_version() {
    for v in 1..=3 {
        let file = repo_root().join(format!("tests/data/snapshot-v{v}.bt"));
        let s = screen(&file, "120x30", "Tab Tab Tab Tab 1");
        assert!(rows_with(&s, "›#0 ").len() + rows_with(&s, "·#0 ").len() == 1, "v{v}: frame 0 shown:\n{s}");
        assert!(s.contains("[1 Summary]") && s.contains("SIGSEGV"), "v{v}:\n{s}");
    }
}

#[test]
fn a_fault_in_the_null_page_opens_on_the_null_pointer() {
    // c_null reads e->value with e NULL: the fault address is 0x8, not 0.
    let s = screen(&crash_snapshot("c_null"), "120x30", "");
    assert!(s.contains("fault address 0x8"), "{s}");
    assert!(rows_with(&s, "›  e: (const struct entry *) 0x0").len() == 1, "e is selected:\n{s}");
}
