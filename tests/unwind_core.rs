//! Stack walking on real cores: small C programs built at test time, crashed for real
//! (core_pattern points at the program's directory while it crashes, then is restored),
//! unwound with `bt::trace::trace_core` and compared with `gdb -batch` frame by frame
//! (function and line), plus walks gdb cannot be compared with (caps, missing CFI).

use bt::snapshot::{Snapshot, Trust};
use bt::trace::{TraceOptions, trace_core};
use std::path::{Path, PathBuf};
use std::process::Command;

mod common;

fn scratch(name: &str) -> PathBuf {
    // One directory per test, replaced by the next run (kept after a failure to look at).
    // The name carries "bt-cores-": the shared core_pattern guard only points there.
    let d = std::env::temp_dir().join(format!("bt-cores-unwind-{name}"));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).expect("create scratch dir");
    d
}

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("running {cmd:?}: {e}"));
    assert!(out.status.success(), "{cmd:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Builds `src` (C, or assembly appended with `asm`) with `flags` and crashes it in
/// `dir` with core_pattern pointed at `dir`. Returns (exe, core); no core is a failure.
fn crash(name: &str, src: &str, flags: &[&str], args: &[&str]) -> (PathBuf, PathBuf) {
    let dir = scratch(name);
    let c = dir.join("prog.c");
    std::fs::write(&c, src).expect("write source");
    let exe = dir.join("prog");
    run(Command::new("gcc").args(flags).arg("-o").arg(&exe).arg(&c));
    // Sets core_pattern under the suites' shared lock and restores it on drop.
    let _pattern = common::CorePatternGuard::set(&dir);
    let out = Command::new("sh")
        .arg("-c")
        .arg(format!("echo $$; ulimit -c unlimited; exec ./prog {}", args.join(" ")))
        .current_dir(&dir)
        .output()
        .expect("run the crasher");
    let pid = String::from_utf8_lossy(&out.stdout).split_whitespace().next().unwrap_or("").to_string();
    let core = find_core(&dir, &pid);
    let core = core.unwrap_or_else(|| {
        panic!(
            "no core written in {} (core_pattern {:?})",
            dir.display(),
            std::fs::read_to_string("/proc/sys/kernel/core_pattern")
        )
    });
    (exe, core)
}

fn find_core(dir: &Path, pid: &str) -> Option<PathBuf> {
    let pattern = std::fs::read_to_string("/proc/sys/kernel/core_pattern").unwrap_or_default();
    let pattern = pattern.trim();
    let elsewhere = (pattern.starts_with('/') && !pattern.contains('%')
        || pattern.starts_with('/') && pattern.matches('%').count() == pattern.matches("%p").count())
    .then(|| PathBuf::from(pattern.replace("%p", pid)));
    for _ in 0..50 {
        let here = std::fs::read_dir(dir).ok()?.filter_map(|e| e.ok()).map(|e| e.path()).find(|p| {
            p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n == "core" || n == format!("core.{pid}"))
        });
        if here.is_some() {
            return here;
        }
        if let Some(p) = elsewhere.as_ref().filter(|p| p.exists()) {
            // Let the kernel finish writing before taking it: its size stops changing.
            let mut last = u64::MAX;
            for _ in 0..100 {
                let now = std::fs::metadata(p).map(|m| m.len()).unwrap_or(0);
                if now == last && now > 0 {
                    break;
                }
                last = now;
                std::thread::sleep(std::time::Duration::from_millis(30));
            }
            let dest = dir.join("core");
            std::fs::rename(p, &dest).or_else(|_| std::fs::copy(p, &dest).map(|_| ())).ok()?;
            return Some(dest);
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    None
}

fn snapshot(exe: &Path, core: &Path, max_frames: usize) -> Snapshot {
    let mut opts = TraceOptions::default();
    opts.walk.max_frames = max_frames;
    trace_core(core, Some(exe), &opts).expect("trace_core")
}

/// Last name component without template/parameter lists (what gdb and we agree on).
fn norm(f: &str) -> String {
    let mut out = String::new();
    let mut depth = 0;
    for c in f.chars() {
        match c {
            '<' | '(' => depth += 1,
            '>' | ')' => depth -= 1,
            _ if depth == 0 => out.push(c),
            _ => {}
        }
    }
    let out = out.trim().to_string();
    let last = out.rsplit("::").next().unwrap_or(&out).trim();
    last.strip_prefix("__GI_").unwrap_or(last).to_string()
}

/// gdb's frames of the crashing thread: (function, line).
fn gdb_frames(exe: &Path, core: &Path) -> Vec<(String, Option<u32>)> {
    let out = run(Command::new("gdb").args(["-batch", "-nx", "-ex", "bt"]).arg(exe).arg(core));
    let mut frames: Vec<(String, Option<u32>)> = Vec::new();
    for l in out.lines().filter(|l| l.starts_with('#')) {
        let rest = l.split_once(' ').map(|x| x.1).unwrap_or("").trim_start();
        let rest = match rest.split_once(" in ") {
            Some((addr, r)) if addr.starts_with("0x") => r,
            _ => rest,
        };
        let func = if rest.starts_with("<signal handler called>") {
            "__restore_rt".to_string()
        } else {
            norm(rest.split(" (").next().unwrap_or(rest))
        };
        let line = rest.rsplit_once(" at ").and_then(|(_, loc)| loc.rsplit(':').next()?.trim().parse().ok());
        let idx: usize = l[1..].split_whitespace().next().and_then(|n| n.parse().ok()).unwrap_or(usize::MAX);
        if idx < frames.len() {
            continue; // gdb repeats frame 0 when it prints the crash location
        }
        frames.push((func, line));
    }
    frames
}

fn bt_frames(snap: &Snapshot) -> Vec<(String, Option<u32>)> {
    snap.threads[0].frames.iter().map(|f| (norm(f.function.as_deref().unwrap_or("??")), f.line)).collect()
}

/// gdb stops at main (backtrace past-main is off), so only its frames are compared.
fn compare_with_gdb(exe: &Path, core: &Path) -> Snapshot {
    compare_with_gdb_max(exe, core, 1024)
}

fn compare_with_gdb_max(exe: &Path, core: &Path, max_frames: usize) -> Snapshot {
    let snap = snapshot(exe, core, max_frames);
    let ours = bt_frames(&snap);
    let gdb = gdb_frames(exe, core);
    assert!(!gdb.is_empty(), "gdb printed no frames");
    let n = gdb.len();
    assert!(ours.len() >= n, "bt has fewer frames than gdb:\nbt  {ours:?}\ngdb {gdb:?}");
    assert_eq!(&ours[..n], &gdb[..], "\nbt  {ours:?}\ngdb {gdb:?}");
    snap
}

const SIGHANDLER: &str = r#"
#include <signal.h>
#include <stdio.h>
static volatile int *bad;
__attribute__((noinline)) void in_handler(int s) { *bad = s; }
void handler(int s) { in_handler(s); }
__attribute__((noinline)) int work(int n) { if (n == 0) { raise(SIGUSR1); return 1; } return work(n - 1) + 1; }
int main(void) { signal(SIGUSR1, handler); printf("%d\n", work(3)); return 0; }
"#;

#[test]
fn crash_in_signal_handler_unwinds_through_restore_rt() {
    let (exe, core) = crash("sighandler", SIGHANDLER, &["-g", "-O0"], &[]);
    let snap = compare_with_gdb(&exe, &core);
    let frames = &snap.threads[0].frames;
    let tramp = frames.iter().position(|f| f.function.as_deref() == Some("__restore_rt")).expect("trampoline frame");
    assert!(frames[tramp].signal_frame);
    // The interrupted frame's pc is exact: it is the instruction after the syscall.
    assert!(frames[tramp + 1].signal_frame, "interrupted frame not marked");
    assert!(frames[1..].iter().all(|f| f.trust == Trust::Cfi), "{frames:?}");
    // Callee-saved registers recovered for caller frames.
    assert!(frames[1].registers.iter().any(|(r, _)| *r == 3), "rbx missing: {:?}", frames[1].registers);
}

const OMITFP: &str = r#"
#include <stdlib.h>
__attribute__((noinline)) long mix(long *p, long k) { long s = 0; for (long i = 0; i < k; i++) s += p[i] * (i + 3); return s; }
__attribute__((noinline)) long block(long *p, long k) { long r = mix(p, k) ^ 0x55; return r + mix(p + 1, k - 1); }
__attribute__((noinline)) long file(long k) { long *p = k > 3 ? NULL : malloc(64); return block(p, k) * 7; }
int main(int argc, char **argv) { (void)argv; return (int)file(argc + 4); }
"#;

#[test]
fn omit_frame_pointer_o2_unwinds_by_cfi() {
    let (exe, core) = crash("omitfp", OMITFP, &["-g", "-O2", "-fomit-frame-pointer"], &[]);
    let snap = compare_with_gdb(&exe, &core);
    assert!(snap.threads[0].frames[1..].iter().all(|f| f.trust == Trust::Cfi));
}

#[test]
fn non_pie_executable() {
    let (exe, core) = crash("nopie", OMITFP, &["-g", "-O0", "-fno-pie", "-no-pie"], &[]);
    let snap = compare_with_gdb(&exe, &core);
    let m = snap.modules.iter().find(|m| m.is_executable).expect("executable module");
    assert_eq!(m.load_bias, 0);
}

const RECURSION: &str = r#"
#include <stdlib.h>
__attribute__((noinline)) int down(int n) { if (n == 0) abort(); return down(n - 1) + 1; }
int main(int argc, char **argv) { return down(argc > 1 ? atoi(argv[1]) : 10); }
"#;

#[test]
fn deep_recursion_is_capped_and_fast() {
    let (exe, core) = crash("recursion", RECURSION, &["-g", "-O0"], &["10000"]);
    compare_with_gdb_max(&exe, &core, 20000);
    let t = std::time::Instant::now();
    let snap = snapshot(&exe, &core, 512);
    let took = t.elapsed();
    let frames = &snap.threads[0].frames;
    assert_eq!(frames.len(), 512, "walk not capped at max_frames");
    assert!(snap.problems.iter().any(|p| p.message.contains("truncated at 512")), "{:?}", snap.problems);
    assert!(frames.iter().filter(|f| f.function.as_deref() == Some("down")).count() > 500);
    assert!(took.as_secs_f64() < 2.0, "walking 512 frames took {took:?}");
    // Uncapped: the whole 10000-deep stack down to _start, no problem recorded.
    let snap = snapshot(&exe, &core, 20000);
    let frames = &snap.threads[0].frames;
    assert!(frames.len() > 10000, "{} frames", frames.len());
    assert_eq!(frames.last().and_then(|f| f.function.as_deref()), Some("_start"));
    assert!(snap.problems.iter().all(|p| !p.message.contains("walk")), "{:?}", snap.problems);
}

/// A hand-written assembly function without CFI (and without a frame of its own)
/// crashing: the walker must fall back and still reach main.
const NO_CFI: &str = r#"
__asm__(".text\n.globl nocfi\n.type nocfi,@function\nnocfi:\n movq $0, %rax\n movq (%rax), %rax\n ret\n.size nocfi, .-nocfi\n");
void nocfi(void);
__attribute__((noinline)) void caller_fp(void) { nocfi(); __asm__ volatile(""); }
int main(void) { caller_fp(); return 0; }
"#;

#[test]
fn function_without_cfi_falls_back() {
    let (exe, core) = crash("nocfi", NO_CFI, &["-g", "-O0", "-fno-asynchronous-unwind-tables"], &[]);
    let snap = snapshot(&exe, &core, 64);
    let names: Vec<_> =
        snap.threads[0].frames.iter().map(|f| (f.function.clone().unwrap_or_default(), f.trust)).collect();
    assert_eq!(names[0].0, "nocfi", "{names:?}");
    let caller = names.iter().position(|(n, _)| n == "caller_fp").expect("caller_fp found");
    assert!(names.iter().any(|(n, _)| n == "main"), "{names:?}");
    assert_ne!(names[caller].1, Trust::Context);
}

/// A call through a NULL function pointer: pc 0 is in no module; the return address
/// is at [rsp].
const NULL_CALL: &str = r#"
void (*volatile fp)(void);
__attribute__((noinline)) void call_it(void) { fp(); __asm__ volatile(""); }
int main(void) { call_it(); return 0; }
"#;

#[test]
fn call_through_null_pointer() {
    let (exe, core) = crash("nullcall", NULL_CALL, &["-g", "-O0"], &[]);
    let snap = snapshot(&exe, &core, 64);
    let frames = &snap.threads[0].frames;
    assert_eq!(frames[0].pc, 0);
    assert_eq!(frames[1].function.as_deref(), Some("call_it"), "{frames:?}");
    assert!(frames.iter().any(|f| f.function.as_deref() == Some("main")));
}

#[test]
fn executable_with_another_build_id_is_refused() {
    let (exe, core) = crash("wrongexe", RECURSION, &["-g", "-O0", "-Wl,--build-id"], &["3"]);
    // Same source, different code: another build id.
    let other = exe.with_file_name("other");
    run(Command::new("gcc").args(["-g", "-O1", "-Wl,--build-id", "-o"]).arg(&other).arg(exe.with_file_name("prog.c")));
    // The core reader refuses such a pair up front; the module layer must too, on its own.
    let cap = bt::capture::corefile::open(&core, None).expect("open core");
    let opts = bt::symbols::SymbolOptions { exe: Some(other.clone()), ..Default::default() };
    let (modules, _) = bt::symbols::ModuleSet::load(&cap.maps, &cap.auxv, &cap.link_map, cap.memory.as_ref(), &opts);
    let list = modules.modules();
    let problems = modules.take_problems();
    assert!(problems.iter().any(|p| p.message.contains("build id") && p.message.contains("not used")), "{problems:?}");
    let m = list.iter().find(|m| m.is_executable).expect("executable module");
    assert!(!m.debug.found);
    let main_pc = cap.threads[0].registers.rip;
    let frames = modules.symbolize(bt::snapshot::Frame { pc: main_pc, ..Default::default() });
    assert!(frames.iter().all(|f| f.function.as_deref() != Some("down")), "names came from the wrong file: {frames:?}");
}

/// A fault at a function's first instruction, caught by a handler that then aborts:
/// below `__restore_rt` the interrupted frame's pc is the function's entry, exact (no
/// pc - 1, which would land in the previous function), and its CFI row is the entry row.
const FAULT_AT_ENTRY: &str = r#"
#include <signal.h>
#include <stdlib.h>
__asm__(".text\n.globl entry_fault\n.type entry_fault,@function\nentry_fault:\n.cfi_startproc\n movl $1, 0\n ret\n.cfi_endproc\n.size entry_fault, .-entry_fault\n");
void entry_fault(void);
void on_segv(int s) { (void)s; abort(); }
__attribute__((noinline)) void before(void) { entry_fault(); __asm__ volatile(""); }
int main(void) { signal(SIGSEGV, on_segv); before(); return 0; }
"#;

#[test]
fn fault_at_function_entry_inside_signal_frame() {
    let (exe, core) = crash("entryfault", FAULT_AT_ENTRY, &["-g", "-O0"], &[]);
    let snap = compare_with_gdb(&exe, &core);
    let frames = &snap.threads[0].frames;
    let i = frames.iter().position(|f| f.function.as_deref() == Some("entry_fault")).expect("entry_fault frame");
    assert!(frames[i].signal_frame, "interrupted frame not marked exact");
    assert_eq!(frames[i + 1].function.as_deref(), Some("before"));
}

/// A caller frame at an address where the line program has two non-statement rows of
/// two files (GCC -O2, std::regex's _Compiler constructor: `regex_automaton.h:372`, then
/// `regex_compiler.tcc:76`): gdb records the second, since no statement row is there to
/// keep, and so must bt. Every frame's name, file and line against gdb's.
#[test]
fn non_statement_rows_of_two_files_at_one_address_keep_the_last_as_gdb() {
    let dir = scratch("regex-throw");
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/regex_throw.cpp");
    let crash = common::build_and_crash(&dir, "regex_throw", "g++", &["-O2", "-g"], &src);
    let gdb = common::gdb_core(&crash.exe, &crash.core);
    assert!(
        gdb.raw.contains("regex_compiler.tcc:76"),
        "the precondition failed: gdb shows no _Compiler frame at line 76:\n{}",
        gdb.raw
    );
    let snap = common::bt_json(&[
        "ptrace",
        "--no-variables",
        "--core",
        crash.core.to_str().expect("utf-8"),
        crash.exe.to_str().expect("utf-8"),
    ]);
    if let Err(e) = common::compare_report(&gdb, &snap) {
        panic!("{e}");
    }
}

const STATIC_QSORT: &str = r#"
#include <pthread.h>
#include <stdlib.h>
volatile int *volatile bad;
static int cmp(const void *a, const void *b) { if (*(const int *)a == 3) *bad = 1; return *(const int *)a - *(const int *)b; }
static void *worker(void *p) { (void)p; int v[] = {5, 3, 9, 1}; qsort(v, 4, sizeof(int), cmp); return 0; }
int main(void) { pthread_t t; pthread_create(&t, 0, worker, 0); pthread_join(t, 0); return 0; }
"#;

/// A static executable names libc's functions from its symbol table, where aliases
/// share addresses (`__qsort_r` and the weak `qsort_r`): the name is gdb's choice
/// (the last by name among the sized symbols at the address). One exception, gdb's
/// own: it reads some file-local clones as Go names and drops their numeric suffix
/// (`msort_with_tmp.part.0` prints as `msort_with_tmp.part`).
#[test]
fn static_executable_aliases_are_named_as_gdb_names_them() {
    let (exe, core) = crash("static-qsort", STATIC_QSORT, &["-g", "-O2", "-static", "-pthread"], &[]);
    let snap = snapshot(&exe, &core, 64);
    let ours = bt_frames(&snap);
    let gdb = gdb_frames(&exe, &core);
    assert!(gdb.iter().any(|(f, _)| f == "qsort_r"), "the precondition failed: gdb shows no qsort_r frame: {gdb:?}");
    assert!(ours.len() >= gdb.len(), "bt has fewer frames than gdb:\nbt  {ours:?}\ngdb {gdb:?}");
    for ((b, _), (g, _)) in ours.iter().zip(&gdb) {
        let go_quirk = b.strip_prefix(g.as_str()).is_some_and(|rest| {
            rest.strip_prefix('.').is_some_and(|n| !n.is_empty() && n.bytes().all(|c| c.is_ascii_digit()))
        });
        assert!(b == g || go_quirk, "bt names a frame {b:?} where gdb says {g:?}:\nbt  {ours:?}\ngdb {gdb:?}");
    }
}

/// musl's `raise` and `abort` carry no CFI, so the walk from an abort scans the
/// stack. A scan finds the return address but not what the functions scanned past
/// did to the callee-saved registers: rbp is kept for the walk to follow, never
/// shown as a variable's value (GCC -O1 keeps `main`'s `argc` in rbp here; it was
/// printed as whatever rbp held inside `raise`). The walk ends at musl's `_start`,
/// which has no CFI either and was called by nothing.
const MUSL_ABORT: &str = r#"
#include <stdio.h>
#include <stdlib.h>
struct item { int id; char name[16]; };
__attribute__((noinline)) int check(struct item *it, int n) {
    if (n > 2) abort();
    return it->id + n;
}
__attribute__((noinline)) int walk(struct item *it, int n) { return check(it, n + 1) + 1; }
int main(int argc, char **argv) {
    struct item it = { 42, "musl" };
    printf("%p\n", (void *)argv);
    fflush(stdout);
    int r = walk(&it, 2);
    /* Both live across the call: kept in callee-saved registers (rbx, rbp). */
    return r + argc + (argv[0][0] == 'x');
}
"#;

#[test]
fn registers_a_stack_scan_carries_are_not_shown_as_values() {
    let dir = scratch("musl");
    std::fs::write(dir.join("prog.c"), MUSL_ABORT).expect("write source");
    let exe = dir.join("prog");
    run(Command::new("musl-gcc").args(["-O1", "-g", "-static", "-o"]).arg(&exe).arg(dir.join("prog.c")));
    let (core, argv) = {
        let _pattern = common::CorePatternGuard::set(&dir);
        let out = Command::new("sh")
            .arg("-c")
            .arg("echo $$; ulimit -c unlimited; exec ./prog")
            .current_dir(&dir)
            .output()
            .expect("run the crasher");
        let said = String::from_utf8_lossy(&out.stdout).into_owned();
        let mut words = said.split_whitespace().map(str::to_string);
        let (pid, argv) = (words.next().unwrap_or_default(), words.next().unwrap_or_default());
        (find_core(&dir, &pid).expect("a core of the musl program"), argv)
    };
    let snap = snapshot(&exe, &core, 64);
    let frames = &snap.threads[0].frames;
    let names: Vec<&str> = frames.iter().map(|f| f.function.as_deref().unwrap_or("??")).collect();
    let at = |name: &str| names.iter().position(|n| *n == name).unwrap_or_else(|| panic!("no {name} in {names:?}"));
    assert!(at("raise") < at("abort") && at("abort") < at("check") && at("check") < at("walk"), "{names:?}");
    assert_eq!(at("main"), at("walk") + 1, "{names:?}");
    assert!(frames[at("check")].trust == Trust::Scan, "check is reached by a scan: {:?}", frames[at("check")].trust);
    assert_eq!(names.last(), Some(&"_start"), "the walk ends at the entry point: {names:?}");
    let main = &frames[at("main")];
    let argc = main.variables.iter().find(|v| v.name == "argc").expect("main's argc");
    assert!(argc.text == "1" || argc.text == "<optimized out>", "argc is 1 or unknown, not {:?}", argc.text);
    let argv_now = main.variables.iter().find(|v| v.name == "argv").expect("main's argv");
    assert!(
        argv_now.text == argv || argv_now.text == "<optimized out>",
        "argv is {argv} (the program said) or unknown, not {:?}",
        argv_now.text
    );
    // What is known is still shown: main's struct on its stack.
    let it = main.variables.iter().find(|v| v.name == "it").expect("main's it");
    assert!(it.text.starts_with("{id = 42,"), "{}", it.text);
}
