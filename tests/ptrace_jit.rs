//! Mixed native and JIT stacks: Node.js (Debian's `nodejs`, which `make deps`
//! installs), whose JavaScript runs as code V8 generates in anonymous executable
//! memory, with no CFI and no module. bt walks it by its frame pointers (V8 links
//! every frame) and names it from the perf map Node writes with `--perf-basic-prof`
//! (`/tmp/perf-PID.map`). The oracle is Node's own report: `process.abort()` prints the
//! JavaScript stack before it aborts. gdb prints `??` frames of garbage from the first
//! JIT frame on, so it is no oracle here.
//!
//! And a JVM (Debian's OpenJDK 17) crashing in its own native code under Java frames,
//! interpreted ones, whose return addresses follow the interpreter's dispatch jumps
//! rather than calls. The oracle is the JVM's own crash report (`hs_err_pid*.log`),
//! whose "Native frames" list walks the same stack with the VM's knowledge of its
//! frames.

mod common;

use common::*;
use serde_json::Value;
use std::fs;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const NODE: &str = "/usr/bin/node";
const JAVA: &str = "/usr/lib/jvm/java-17-openjdk-amd64/bin/java";

/// Java that writes through a null address with `Unsafe`, 42 Java calls deep (41 of
/// `poke`, then `main`: a run of interpreted frames longer than any fixed lookahead of a
/// few links), from the source launcher (which runs `main` by reflection, so the stack
/// holds Java frames, VM frames, then Java frames again).
const CRASH_JAVA: &str = r#"
import java.lang.reflect.Field;
public class Crash {
    static void poke(sun.misc.Unsafe u, int depth) {
        if (depth > 0) { poke(u, depth - 1); return; }
        u.putLong(0L, 42L);
    }
    public static void main(String[] args) throws Exception {
        Field f = sun.misc.Unsafe.class.getDeclaredField("theUnsafe");
        f.setAccessible(true);
        poke((sun.misc.Unsafe) f.get(null), 40);
    }
}
"#;

/// Java that parks its threads in steady waits: `main` asleep 7 calls deep, one
/// thread waiting on a monitor, one parked inside a lambda.
const SLEEPY_JAVA: &str = r#"
public class Sleepy {
    static void deep(int n) throws Exception {
        if (n == 0) { Thread.sleep(600000); return; }
        deep(n - 1);
    }
    public static void main(String[] args) throws Exception {
        Thread w = new Thread(() -> { synchronized (Sleepy.class) { try { Sleepy.class.wait(); } catch (Exception e) {} } }, "waiter");
        w.start();
        Thread p = new Thread(() -> java.util.concurrent.locks.LockSupport.park(), "parker");
        p.start();
        deep(6);
    }
}
"#;

/// Java whose `poke` and `main` run hot enough to be compiled, then write through a
/// null address with `Unsafe` from compiled `poke`, 4 calls deep.
const CRASH_HOT_JAVA: &str = r#"
import java.lang.reflect.Field;
public class CrashHot {
    static long poke(sun.misc.Unsafe u, long addr, int depth) {
        if (depth > 0) return poke(u, addr, depth - 1) + 1;
        u.putLong(addr, 42L);
        return 0;
    }
    public static void main(String[] args) throws Exception {
        Field f = sun.misc.Unsafe.class.getDeclaredField("theUnsafe");
        f.setAccessible(true);
        sun.misc.Unsafe u = (sun.misc.Unsafe) f.get(null);
        long mem = u.allocateMemory(8);
        long t = 0;
        for (int i = 0; i < 100000; i++) t += poke(u, mem, 3);
        System.out.println(t);
        poke(u, 0L, 3);
    }
}
"#;

/// Java whose `main` runs hot enough to be compiled (on-stack replacement, with
/// `outer` and maybe `work` inlined into it), then sleeps under them: the native
/// `Thread.sleep` called through its compiled wrapper (called in the loop too, so the
/// compilers do not leave that path to the interpreter).
const HOT_JAVA: &str = r#"
public class Hot {
    static long work(long n, long ms) throws Exception {
        long s = 0;
        for (long i = 0; i < n; i++) s += (i ^ (s >>> 3));
        if (ms > 0) Thread.sleep(ms);
        return s;
    }
    static long outer(long n, long ms) throws Exception { return work(n, ms) + 1; }
    public static void main(String[] args) throws Exception {
        long t = 0;
        for (int k = 0; k < 100000; k++) t += outer(k % 500, k % 1000 == 999 ? 1 : 0);
        System.out.println(t);
        outer(1, 600000);
    }
}
"#;

/// Java that compiles a recursion, then parks 300 threads in it at depths 10 to 39
/// and `main` at depth 25.
const MANY_JAVA: &str = r#"
public class Many {
    static long deep(int n, long ms) throws Exception {
        if (n == 0) { if (ms > 0) Thread.sleep(ms); return 1; }
        return deep(n - 1, ms) + n;
    }
    public static void main(String[] args) throws Exception {
        long t = 0;
        for (int k = 0; k < 200000; k++) t += deep(20, k % 5000 == 4999 ? 1 : 0);
        System.out.println(t);
        for (int i = 0; i < 300; i++) {
            final int d = 10 + i % 30;
            new Thread(() -> { try { deep(d, 600000); } catch (Exception e) {} }).start();
        }
        deep(25, 600000);
    }
}
"#;

/// JavaScript that aborts three calls deep, after `hot` and `leaf` ran often enough
/// to be compiled.
const ABORT_JS: &str = r#"
function leaf(n) { if (n > 1e5) process.abort(); return n; }
function hot(n) { let s = 0; for (let i = 0; i < n; i++) s = (s + leaf(i)) | 0; return s; }
function top() { for (let k = 0; k < 100; k++) hot(1000); hot(2e5); }
top();
"#;

/// JavaScript that spins for ever in small-integer arithmetic (nothing allocated, so
/// no collector runs): the main thread is almost always in optimized code.
const SPIN_JS: &str = r#"
function inner(n) { let s = 0; for (let i = 0; i < 1e6; i++) s = (s + i * n) | 0; return s; }
function middle(n) { return inner(n) + 1; }
function outer() { for (;;) { middle(3); } }
outer();
"#;

fn need_node() {
    assert!(Path::new(NODE).exists(), "{NODE} is missing: `make deps` installs Debian's nodejs");
}

/// A child killed when dropped, also when an assertion fails first: a node left
/// spinning would take a core from every test after it.
struct Killed(std::process::Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The perf map Node writes for `pid`; removed when dropped (it lives in /tmp).
struct PerfMap(PathBuf);

impl PerfMap {
    fn of(pid: u32) -> PerfMap {
        PerfMap(PathBuf::from(format!("/tmp/perf-{pid}.map")))
    }
}

impl Drop for PerfMap {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.0);
    }
}

/// The function a V8 perf-map name stands for: `JS:*hot /x.js:2:13` → `hot` (the
/// character after `JS:` is the tier: `~` interpreted, `^` baseline, `*` optimized;
/// an anonymous function has no name before the blank).
fn v8_function(name: &str) -> Option<&str> {
    let rest = name.strip_prefix("JS:")?;
    let rest = rest.strip_prefix(['~', '^', '*', '+', '-']).unwrap_or(rest);
    Some(rest.split_once(' ').map_or(rest, |(f, _)| f))
}

/// The functions of Node's "JavaScript stack trace" (`N: name (place)`, or
/// `N: place` for an anonymous function, which gives "").
fn node_js_stack(stderr: &str) -> Vec<String> {
    let mut lines = stderr.lines().skip_while(|l| !l.contains("JavaScript stack trace")).skip(1);
    let mut out = Vec::new();
    for line in lines.by_ref() {
        let line = line.trim();
        if line.is_empty() {
            if out.is_empty() {
                continue;
            }
            break;
        }
        let Some((_, what)) = line.split_once(": ") else { break };
        out.push(match what.rsplit_once(" (") {
            Some((name, _)) => name.to_string(),
            None => String::new(),
        });
    }
    out
}

fn frames_of(thread: &Value) -> Vec<(String, String, String)> {
    thread["frames"]
        .as_array()
        .expect("frames")
        .iter()
        .map(|f| {
            let s = |k: &str| f[k].as_str().unwrap_or("").to_string();
            (s("function"), s("module"), s("trust"))
        })
        .collect()
}

fn faulted_thread(snap: &Value) -> &Value {
    snap["threads"].as_array().expect("threads").iter().find(|t| t["faulted"] == true).expect("a faulted thread")
}

/// The walk went through the JIT frames down to the process's entry: Node's
/// `node::Start`, then libc's start code and `_start`.
fn assert_reaches_entry(frames: &[(String, String, String)], what: &str) {
    let names: Vec<&str> = frames.iter().map(|f| f.0.as_str()).collect();
    assert!(names.contains(&"node::Start(int, char**)"), "{what}: no node::Start in {names:#?}");
    assert_eq!(names.last().copied(), Some("_start"), "{what}: the walk did not reach _start: {names:#?}");
}

#[test]
fn a_core_of_node_shows_its_javascript_frames_as_node_reports_them() {
    need_node();
    let dir = scratch_dir("jit-core");
    let core_dir = scratch_dir("bt-cores-jit");
    let script = dir.join("abort.js");
    fs::write(&script, ABORT_JS).unwrap();
    let (out, pid) = {
        let _guard = CorePatternGuard::set(&core_dir);
        let mut cmd = Command::new(NODE);
        // From the scratch directory: node writes its V8 log (isolate-*.log) where it runs.
        cmd.args(["--perf-basic-prof", "--interpreted-frames-native-stack"])
            .arg(&script)
            .current_dir(&dir)
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        allow_core_dumps(&mut cmd);
        let child = cmd.spawn().expect("starting node");
        let pid = child.id();
        (child.wait_with_output().expect("waiting for node"), pid)
    };
    let map = PerfMap::of(pid);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.signal(), Some(libc::SIGABRT), "node did not abort: {:?}\n{stderr}", out.status);
    let core = core_dir.join(format!("core.{pid}"));
    assert!(core.exists(), "no core at {}", core.display());
    let expected = node_js_stack(&stderr);
    assert!(expected.len() >= 4 && expected[..3] == ["leaf", "hot", "top"], "Node's own stack: {expected:?}\n{stderr}");

    let snap = bt_json(&[
        "ptrace",
        "--no-variables",
        "--jit-map",
        map.0.to_str().unwrap(),
        "--core",
        core.to_str().unwrap(),
        NODE,
    ]);
    let frames = frames_of(faulted_thread(&snap));
    // Node's JavaScript frames, in bt: JIT code named from the perf map, and frames of
    // V8's interpreter builtins (a function that was running interpreted when its
    // code changed tier re-enters through `Builtins_InterpreterEnterAtNextBytecode`;
    // which function it runs is in V8's frame, and bt does not read it: any name).
    let js: Vec<Option<&str>> = frames
        .iter()
        .filter(|f| f.1 == "[jit]" || f.0.starts_with("Builtins_Interpret"))
        .map(|f| if f.1 == "[jit]" { Some(v8_function(&f.0).unwrap_or(&f.0)) } else { None })
        .collect();
    // Node prints at most its stack-trace limit (10) frames; bt has them all.
    assert!(js.len() >= expected.len(), "bt's JavaScript frames {js:?}, Node's {expected:?}");
    for (b, n) in js.iter().zip(&expected) {
        assert!(b.is_none_or(|b| b == n), "bt's JavaScript frames {js:?} against Node's {expected:?}");
    }
    // Which functions run from their own named trampoline and which from V8's shared
    // one depends on when V8's background compiler finished: most are named.
    let named = js[..expected.len()].iter().filter(|b| b.is_some()).count();
    assert!(named * 2 > expected.len(), "most frames named: {js:?}");
    // The JavaScript is entered from node::Abort's caller chain: native frames above
    // it, then V8's entry and Node's start below it.
    let first_js = frames.iter().position(|f| f.1 == "[jit]").unwrap();
    assert!(frames[..first_js].iter().any(|f| f.0.starts_with("node::Abort")), "{frames:#?}");
    assert_reaches_entry(&frames, "core");

    // Without the perf map the frames are the same, in `[jit]` with no name.
    let snap = bt_json(&["ptrace", "--no-variables", "--core", core.to_str().unwrap(), NODE]);
    let bare = frames_of(faulted_thread(&snap));
    assert_eq!(bare.len(), frames.len(), "{bare:#?}");
    assert!(bare.iter().filter(|f| f.1 == "[jit]").all(|f| f.0.is_empty()), "{bare:#?}");
    assert_reaches_entry(&bare, "core without the perf map");
    let _ = fs::remove_file(&core);
}

#[test]
fn a_live_node_process_in_optimized_code_is_walked_and_named() {
    need_node();
    let dir = scratch_dir("jit-live");
    let script = dir.join("spin.js");
    fs::write(&script, SPIN_JS).unwrap();
    let child = Killed(
        Command::new(NODE)
            .arg("--perf-basic-prof")
            .arg(&script)
            .current_dir(&dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting node"),
    );
    let pid = child.0.id();
    let map = PerfMap::of(pid);
    // Optimized: the perf map names `inner` compiled by TurboFan (`JS:*`).
    let deadline = Instant::now() + Duration::from_secs(60);
    while !fs::read_to_string(&map.0).unwrap_or_default().contains("JS:*inner") {
        assert!(Instant::now() < deadline, "node never optimized inner()");
        std::thread::sleep(Duration::from_millis(100));
    }
    // Caught at a random instruction: in optimized `inner` (or `outer`, into which
    // V8 may inline the others) nearly always; tried a few times.
    let mut seen = Vec::new();
    let named = (0..5).any(|_| {
        std::thread::sleep(Duration::from_millis(50));
        let snap = bt_json(&["ptrace", "--no-variables", "--thread", &pid.to_string(), &pid.to_string()]);
        let thread = &snap["threads"][0];
        let frames = frames_of(thread);
        assert_reaches_entry(&frames, "live");
        let top = frames[0].clone();
        seen.push(top.clone());
        top.1 == "[jit]" && ["inner", "middle", "outer"].contains(&v8_function(&top.0).unwrap_or(""))
    });
    drop(child);
    assert!(named, "the main thread was never shown in named JIT code: {seen:#?}");
}

#[test]
fn perf_map_lines_name_functions_the_v8_way() {
    assert_eq!(v8_function("JS:*hot /x.js:2:13"), Some("hot"));
    assert_eq!(v8_function("JS:~ /x.js:1:1"), Some(""));
    assert_eq!(v8_function("Builtin:ArrayMap"), None);
    let stderr = "----- JavaScript stack trace -----\n\n1: leaf (/t/a.js:2:41)\n2: /t/a.js:5:1\n3: Module.load (node:internal/x:1:2)\n\n\nmore";
    assert_eq!(node_js_stack(stderr), ["leaf", "", "Module.load"]);
}

/// The JVM's own walk of the crashing thread, from its crash report's "Native frames:"
/// list: `("libjvm.so", offset, None)` for a frame of a module (`V`/`C` lines,
/// `[libjvm.so+0x…]`), `("[jit]", 0, name)` for a Java frame or a stub (`j`, `J`, `v`
/// lines), with the name the report gives it: `Crash.poke(Lsun/misc/Unsafe;I)V` (its
/// `+bci` and module version left out), `StubRoutines::call_stub` (its `~` left out).
fn hs_err_named(report: &str) -> Vec<(String, u64, Option<String>)> {
    let mut out = Vec::new();
    for line in report.lines().skip_while(|l| !l.starts_with("Native frames:")).skip(1) {
        let Some(kind) = line.chars().next() else { break };
        match kind {
            'V' | 'C' => {
                let inner = line.split_once('[').and_then(|(_, r)| r.split_once(']')).map(|(i, _)| i);
                let (module, off) = inner.and_then(|i| i.split_once("+0x")).expect("[module+0xoffset]");
                out.push((module.to_string(), u64::from_str_radix(off, 16).expect("hex offset"), None));
            }
            'j' | 'J' | 'v' => {
                // `j  Crash.poke(…)V+8 …`, `J 1353 c1 Crash.poke(…)J (25 bytes) @ …`,
                // `v  ~StubRoutines::call_stub`.
                let what = line[1..].split(' ').find(|t| t.contains('(') || t.starts_with('~')).unwrap_or("");
                let name = what.rsplit_once('+').map_or(what, |(n, _)| n).trim_start_matches('~');
                out.push(("[jit]".to_string(), 0, Some(name.to_string())));
            }
            _ => break,
        }
    }
    out
}

#[test]
fn a_jvm_crash_is_walked_through_its_java_frames_as_the_jvm_reports_them() {
    let (dir, core, snap) = jvm_crash_as_reported("Crash", CRASH_JAVA, &["-Xint"], 50);
    let thread = faulted_thread(&snap);
    let frames = thread["frames"].as_array().expect("frames");
    // Lines from the source: the frame that called `putLong`, the 40 recursive calls,
    // and `main`'s call.
    let line_of = |text: &str| CRASH_JAVA.lines().position(|l| l.contains(text)).map(|i| i as u64 + 1);
    let poke_lines: Vec<(Option<u64>, &str)> = frames
        .iter()
        .filter(|f| f["function"].as_str().is_some_and(|n| n.starts_with("Crash.")))
        .map(|f| (f["line"].as_u64(), f["file"].as_str().unwrap_or("")))
        .collect();
    let mut want = vec![(line_of("u.putLong"), "Crash.java")];
    want.extend(std::iter::repeat_n((line_of("poke(u, depth - 1)"), "Crash.java"), 40));
    want.push((line_of("poke((sun.misc.Unsafe)"), "Crash.java"));
    assert_eq!(poke_lines, want, "the source lines of Crash's frames");
    // Grouped by the application's Java code that led into the VM: the VM's function,
    // the JDK's methods, then the first method of the program's own.
    let input = serde_json::json!({"label": "jvm", "classifiers": [], "frames": frames});
    let lines = dir.join("crash.jsonl");
    fs::write(&lines, format!("{input}\n")).unwrap();
    let out = bt(&["rules", "fingerprint", lines.to_str().unwrap()]);
    assert!(out.status.success(), "bt rules fingerprint: {}", String::from_utf8_lossy(&out.stderr));
    let fp: Value = serde_json::from_slice(&out.stdout).expect("a fingerprint as JSON");
    assert_eq!(
        fp["signature"],
        serde_json::json!([
            "Unsafe_PutLong",
            "jdk.internal.misc.Unsafe.putLong",
            "sun.misc.Unsafe.putLong",
            "Crash.poke"
        ]),
        "{fp}"
    );
    // bt's analysis: the fault under the JVM's handler, not its abort.
    let out = bt(&["ptrace", "--no-variables", "--core", core.to_str().unwrap(), JAVA]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("invalid write at 0x0 in Unsafe_PutLong"), "{text}");
    let _ = fs::remove_file(&core);
}

#[test]
fn a_jvm_crash_in_compiled_code_is_walked_and_named_as_the_jvm_reports_it() {
    // Compiled in the foreground: `poke` and the loop of `main` are compiled before
    // the bad write, which faults in compiled code (no frame pointer kept).
    let (_, core, snap) = jvm_crash_as_reported("CrashHot", CRASH_HOT_JAVA, &["-XX:-BackgroundCompilation"], 3);
    let thread = faulted_thread(&snap);
    let frames = thread["frames"].as_array().expect("frames");
    let restore = frames.iter().position(|f| f["function"] == "__restore_rt").expect("the signal frame");
    let top = &frames[restore + 1];
    assert!(
        top["module"] == "[jit]" && top["function"].as_str().is_some_and(|f| f.starts_with("CrashHot.poke(")),
        "the fault is not in compiled poke: {:#?}",
        frames_of(thread)
    );
    let _ = fs::remove_file(&core);
}

/// Runs `source` (class `class`) on the JVM with `flags` until it crashes, and checks
/// bt's walk of its core against the JVM's own report ("Native frames:" in
/// `hs_err_pid*.log`): from the frame that faulted on, bt's physical frames must be the
/// report's entry for entry (module and offset for the VM's and C frames, `[jit]` for
/// Java frames and stubs, each named as the report names it, with at least
/// `java_frames` of them), then go on to the thread's entry without a guessed frame.
/// Returns the scratch directory, the core and bt's snapshot.
fn jvm_crash_as_reported(
    class: &str,
    source_text: &str,
    flags: &[&str],
    java_frames: usize,
) -> (PathBuf, PathBuf, Value) {
    assert!(Path::new(JAVA).exists(), "{JAVA} is missing: `make deps` installs Debian's openjdk-17-jdk-headless");
    let dir = scratch_dir(&format!("jit-jvm-{class}"));
    let core_dir = scratch_dir(&format!("bt-cores-jvm-{class}"));
    let source = dir.join(format!("{class}.java"));
    fs::write(&source, source_text).unwrap();
    let report = dir.join("hs_err.log");
    let _ = fs::remove_file(&report);
    let (status, pid) = {
        let _guard = CorePatternGuard::set(&core_dir);
        let mut cmd = Command::new(JAVA);
        cmd.args(["-Xmx64m", "-XX:-UsePerfData"])
            .args(flags)
            .arg(format!("-XX:ErrorFile={}", report.display()))
            .args(["--source", "17"])
            .arg(&source)
            .current_dir(&dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        allow_core_dumps(&mut cmd);
        let mut child = cmd.spawn().expect("starting java");
        let pid = child.id();
        (child.wait().expect("waiting for java"), pid)
    };
    assert_eq!(status.signal(), Some(libc::SIGABRT), "the JVM did not abort: {status:?}");
    let core = core_dir.join(format!("core.{pid}"));
    assert!(core.exists(), "no core at {}", core.display());
    let report = fs::read_to_string(&report).expect("the JVM's crash report");
    let named = hs_err_named(&report);
    let jvm: Vec<(String, u64)> = named.iter().map(|(m, o, _)| (m.clone(), *o)).collect();
    assert!(jvm.len() >= 10, "the JVM's frames: {jvm:?}\n{report}");
    assert!(jvm.iter().filter(|f| f.0 == "[jit]").count() >= java_frames, "Java frames in the report: {jvm:?}");

    let snap = bt_json(&["ptrace", "--no-variables", "--core", core.to_str().unwrap(), JAVA]);
    let thread = faulted_thread(&snap);
    let frames = thread["frames"].as_array().expect("frames");
    // bt's walk from the frame that faulted (the one the signal interrupted, after the
    // JVM's handler and the signal trampoline), one entry per physical frame: the
    // report does not list the methods compiled code inlined.
    let restore = frames.iter().position(|f| f["function"] == "__restore_rt").expect("the signal frame");
    let physical: Vec<&Value> = frames[restore + 1..].iter().filter(|f| f["inlined"] != true).collect();
    let walked: Vec<(String, u64)> = physical
        .iter()
        .map(|f| {
            let module = f["module"].as_str().unwrap_or("");
            let base = module.rsplit('/').next().unwrap_or(module).to_string();
            let off = if base == "[jit]" { 0 } else { f["module_offset"].as_u64().unwrap_or(0) };
            (base, off)
        })
        .collect();
    assert!(
        walked.len() > jvm.len() && walked[..jvm.len()] == jvm[..],
        "bt's frames from the fault on differ from the JVM's report:\nbt:  {walked:?}\njvm: {jvm:?}"
    );
    // Each Java frame and stub named as the report names it, read from the JVM's
    // metadata (gdb says `??`).
    let bt_names: Vec<Option<&str>> = physical[..named.len()]
        .iter()
        .map(|f| if f["module"] == "[jit]" { f["function"].as_str() } else { None })
        .collect();
    let jvm_names: Vec<Option<&str>> = named.iter().map(|(_, _, n)| n.as_deref()).collect();
    assert_eq!(bt_names, jvm_names, "Java frames named otherwise than the JVM names them");
    // The JVM's list ends at the launcher's thread function; bt goes on to the entry,
    // and no frame of the walk is a guess.
    let last = frames.last().map(|f| f["function"].as_str().unwrap_or(""));
    assert_eq!(last, Some("clone3"), "the walk did not reach the thread's entry: {:#?}", frames_of(thread));
    assert!(frames.iter().all(|f| f["trust"] != "scan"), "a scanned frame: {:#?}", frames_of(thread));
    (dir, core, snap)
}

/// One thread's Java frames as `jstack` prints them: (native thread id, name, frames of
/// (`Class.method`, file, line)), from lines `"name" #1 … nid=0x1c3b …` and
/// `\tat Sleepy.deep(Sleepy.java:4)` / `(java.base@17/Native Method)`.
type JavaStack = (i64, String, Vec<(String, Option<String>, Option<u64>)>);

fn jstack(pid: u32) -> Vec<JavaStack> {
    let jstack = Path::new(JAVA).with_file_name("jstack");
    let out = Command::new(&jstack).arg(pid.to_string()).output().expect("running jstack");
    assert!(out.status.success(), "jstack failed: {}", String::from_utf8_lossy(&out.stderr));
    let mut threads: Vec<JavaStack> = Vec::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        if let Some(rest) = line.strip_prefix('"') {
            let name = rest.split('"').next().unwrap_or("").to_string();
            let nid = line.split(" nid=0x").nth(1).and_then(|r| r.split(' ').next());
            let tid = nid.and_then(|n| i64::from_str_radix(n, 16).ok()).unwrap_or(-1);
            threads.push((tid, name, Vec::new()));
        } else if let Some(frame) = line.trim_start().strip_prefix("at ")
            && let Some(t) = threads.last_mut()
        {
            let (method, place) = frame.split_once('(').expect("at METHOD(PLACE)");
            let place = place.trim_end_matches(')');
            let place = place.rsplit_once('/').map_or(place, |(_, p)| p);
            let (file, line) = match place.split_once(':') {
                Some((f, l)) => (Some(f.to_string()), l.parse().ok()),
                None if place == "Native Method" || place == "Unknown Source" => (None, None),
                None => (Some(place.to_string()), None),
            };
            t.2.push((method.to_string(), file, line));
        }
    }
    threads.retain(|t| !t.2.is_empty());
    threads
}

#[test]
fn a_live_jvm_names_its_java_frames_as_jstack_does() {
    // Interpreted only: every Java frame is the interpreter's.
    let settled = |t: &JavaStack| t.1 == "main" && t.2.iter().filter(|f| f.0 == "Sleepy.deep").count() == 7;
    live_jvm_as_jstack("Sleepy", SLEEPY_JAVA, &["-Xint"], &settled, 6, 20);
}

#[test]
fn a_live_jvm_in_compiled_code_is_walked_and_named_as_jstack_does() {
    // Compiled (C1/C2) frames keep no frame pointer: bt walks them by the frame sizes
    // in the JVM's code cache and names the methods compiled code inlined, with their
    // lines, from the nmethod's scopes. `main` is compiled while it loops (on-stack
    // replacement), with `outer` inlined into it.
    // Settled in the last call, not in a `sleep(0)` of the loop (where a safepoint,
    // and so jstack, finds it most of the time while it runs).
    let last_call = HOT_JAVA.lines().position(|l| l.contains("outer(1, 600000)")).map(|i| i as u64 + 1);
    let settled = |t: &JavaStack| {
        let methods = ["java.lang.Thread.sleep", "Hot.work", "Hot.outer", "Hot.main"];
        t.1 == "main"
            && t.2.iter().map(|f| f.0.as_str()).take(4).eq(methods)
            && t.2.get(3).is_some_and(|f| f.2 == last_call)
    };
    // Compiled in the foreground: the loop is compiled before it ends, every run.
    let snap = live_jvm_as_jstack("Hot", HOT_JAVA, &["-XX:-BackgroundCompilation"], &settled, 4, 10);
    // Compiled code was met: a method inlined into another, or a frame reached by a
    // compiled frame's size (trust `cfi` above a Java frame).
    let has_main = |t: &&Value| {
        t["frames"]
            .as_array()
            .is_some_and(|f| f.iter().any(|f| f["function"].as_str().is_some_and(|n| n.starts_with("Hot.main("))))
    };
    let main = snap["threads"].as_array().and_then(|t| t.iter().find(has_main)).expect("the thread running Hot.main");
    let frames = main["frames"].as_array().expect("frames");
    let compiled = frames.windows(2).any(|w| {
        w[0]["module"] == "[jit]" && (w[0]["inlined"] == true || (w[1]["inlined"] == false && w[1]["trust"] == "cfi"))
    });
    assert!(compiled, "no compiled Java frame met: {:#?}", frames_of(main));
}

#[test]
fn a_live_jvm_of_many_threads_mixing_compiled_and_interpreted_frames_matches_jstack() {
    // 300 threads started after `deep` was compiled, each asleep 10 to 39 calls deep:
    // compiled frames (with recursion inlined), interpreted ones called from them
    // (whose caller's rbp held data, not a frame pointer), and the reverse.
    let settled = |t: &JavaStack| t.1 == "main" && t.2.iter().filter(|f| f.0 == "Many.deep").count() == 26;
    live_jvm_as_jstack("Many", MANY_JAVA, &["-XX:-BackgroundCompilation"], &settled, 300, 6000);
}

/// Runs `source` (class `class`) on the JVM with `flags`, waits until `settled` holds
/// for a thread of two `jstack` accounts in a row, with bt's walk between them, and
/// compares bt's Java frames of every thread with jstack's: methods, files, lines. At
/// least `threads` threads and `frames` frames compared.
fn live_jvm_as_jstack(
    class: &str,
    source_text: &str,
    flags: &[&str],
    settled: &dyn Fn(&JavaStack) -> bool,
    threads_min: usize,
    frames_min: usize,
) -> Value {
    assert!(Path::new(JAVA).exists(), "{JAVA} is missing: `make deps` installs Debian's openjdk-17-jdk-headless");
    let dir = scratch_dir(&format!("jit-jvm-live-{class}"));
    let source = dir.join(format!("{class}.java"));
    fs::write(&source, source_text).unwrap();
    let child = Killed(
        Command::new(JAVA)
            .args(["-Xmx64m", "-XX:-UsePerfData"])
            .args(flags)
            .args(["--source", "17"])
            .arg(&source)
            .current_dir(&dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting java"),
    );
    let pid = child.0.id();
    let deadline = Instant::now() + Duration::from_secs(120);
    let (java, snap) = loop {
        assert!(Instant::now() < deadline, "the JVM's threads never settled");
        std::thread::sleep(Duration::from_millis(300));
        let before = jstack(pid);
        let snap = bt_json(&["ptrace", "--no-variables", &pid.to_string()]);
        if before.iter().any(settled) && jstack(pid) == before {
            break (before, snap);
        }
    };
    let threads = snap["threads"].as_array().expect("threads");
    let mut compared = 0;
    for (tid, name, frames) in &java {
        let t = threads.iter().find(|t| t["tid"].as_i64() == Some(*tid)).unwrap_or_else(|| panic!("no thread {tid}"));
        let bt_frames: Vec<(String, Option<String>, Option<u64>)> = t["frames"]
            .as_array()
            .expect("frames")
            .iter()
            .filter(|f| f["module"] == "[jit]" && f["function"] != "StubRoutines::call_stub")
            .map(|f| {
                let function = f["function"].as_str().unwrap_or("??");
                let method = function.split('(').next().unwrap_or(function).to_string();
                (method, f["file"].as_str().map(str::to_string), f["line"].as_u64())
            })
            .collect();
        // A native method: jstack says `Native Method` where bt gives the class's
        // source file (without a line, as the JVM has none for it).
        let bt_frames: Vec<_> = bt_frames
            .into_iter()
            .zip(frames.iter().map(|f| f.1.is_none()).chain(std::iter::repeat(false)))
            .map(|((m, file, line), native)| (m, file.filter(|_| !(native && line.is_none())), line))
            .collect();
        assert_eq!(&bt_frames, frames, "thread {tid} {name:?}: bt's Java frames, then jstack's");
        compared += frames.len();
    }
    assert!(java.len() >= threads_min && compared >= frames_min, "too little compared: {java:?}");
    drop(child);
    snap
}
