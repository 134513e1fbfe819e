//! The tracer pipeline: capture (live or core) → modules → unwind → symbolize →
//! [`Snapshot`]. Live targets are detached inside the capture step, before any of
//! the slow work here begins — except when variables are captured, which need the
//! live memory: then the process stays stopped until the variables are read.

pub mod foreign;
mod golang;
mod hotspot;
mod memory;

use crate::analysis::{self, AnalysisOptions};
use crate::capture::{self, Capture, CaptureError, live::LiveOptions};
use crate::snapshot::{Attribute, Frame, Problem, Regions, Scope, Snapshot, Thread, values};
use crate::symbols::{ModuleSet, SymbolOptions, TypeTable, VariableOptions};
use crate::unwind::{self, WalkOptions};
use std::path::Path;
use std::sync::Arc;

/// Everything that shapes one trace.
#[derive(Debug, Clone, Default)]
pub struct TraceOptions {
    pub live: LiveOptions,
    pub symbols: SymbolOptions,
    pub walk: WalkOptions,
    /// User attributes (`--kv`, `BACKTRACE_DEFAULTS`), applied after the automatic ones.
    pub attributes: Vec<(String, String)>,
    /// Only these threads (all when empty).
    pub threads: Vec<i32>,
    /// Treat this thread as the faulting one (overrides the signal's).
    pub fault_thread: Option<i32>,
    pub variables: VariableCapture,
    /// Classifiers, annotations and user modules (see [`crate::analysis`]).
    pub analysis: AnalysisOptions,
    /// Back bt's heap with transparent huge pages when at least this many threads get
    /// their variables ([`crate::thp`]): for a one-shot process only, the flag being
    /// the whole process's.
    pub huge_pages_from: Option<usize>,
}

/// Which threads get their variables captured.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum VariableMode {
    /// Every thread (the `bt ptrace` default).
    #[default]
    All,
    /// Only the faulting thread (`--faulted`, the collector's default).
    Faulted,
    /// None (`--no-variables`).
    None,
}

/// Variables, globals and kept memory.
#[derive(Debug, Clone)]
pub struct VariableCapture {
    pub mode: VariableMode,
    pub options: VariableOptions,
    /// Globals, statics and thread-locals by name (`--global`).
    pub globals: Vec<String>,
    /// Bytes of stacks and reached objects kept in `Snapshot::memory` (0: none, and
    /// what variables read is not even recorded unless a held target needs it).
    pub memory_budget: usize,
}

impl Default for VariableCapture {
    fn default() -> Self {
        VariableCapture {
            mode: VariableMode::All,
            options: VariableOptions::default(),
            globals: Vec::new(),
            memory_budget: 4 << 20,
        }
    }
}

/// Snapshots a running process. The process is running again when this returns.
pub fn trace_pid(pid: i32, opts: &TraceOptions) -> Result<Snapshot, CaptureError> {
    let mut sym = opts.symbols.clone();
    if sym.sysroot.is_none() {
        // Folklore: the target may live in another mount namespace (a container);
        // its files are reachable through /proc/PID/root whatever our namespace is.
        sym.sysroot = Some(format!("/proc/{pid}/root").into());
    }
    if sym.jit_map.is_none() {
        sym.jit_map = perf_map_of(pid);
    }
    let mut live = opts.live.clone();
    // Variables read heap objects the stack copies do not hold: keep the threads
    // stopped until they are read (build releases them before its slow tail).
    // A JVM's Java frames are named from its metadata, which the copies do not hold either.
    live.hold = opts.variables.mode != VariableMode::None || !opts.variables.globals.is_empty() || runs_jvm(pid);
    let kernel = if live.kernel_stacks { capture::procfs::kernel_stacks(pid) } else { Vec::new() };
    let cap = capture::live::capture(pid, &live)?;
    let mut snap = build(cap, &TraceOptions { symbols: sym, ..opts.clone() });
    if !kernel.is_empty() {
        snap.set_kernel_stacks(&kernel);
    }
    Ok(snap)
}

/// Whether the process has HotSpot (`libjvm.so`) loaded.
fn runs_jvm(pid: i32) -> bool {
    std::fs::read(format!("/proc/{pid}/maps")).is_ok_and(|m| m.windows(10).any(|w| w == b"/libjvm.so"))
}

/// The perf map a live process's JIT runtime writes (`/tmp/perf-PID.map`, in the
/// process's own mount namespace), when there is one and it is the process's: `/tmp` is
/// anyone's, so a file another user owns is not believed (as `perf` refuses it). Its
/// sticky bit keeps anyone but that owner from replacing the file once checked.
fn perf_map_of(pid: i32) -> Option<std::path::PathBuf> {
    use std::os::unix::fs::MetadataExt;
    // A process in a container names the file by its pid there (the last of NSpid).
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let ns_pid = capture::procfs::parse_status(&status, &["NSpid"])
        .first()
        .and_then(|(_, v)| v.split(' ').next_back()?.parse::<i32>().ok())
        .unwrap_or(pid);
    let path = std::path::PathBuf::from(format!("/proc/{pid}/root/tmp/perf-{ns_pid}.map"));
    let owner = std::fs::metadata(format!("/proc/{pid}")).ok()?.uid();
    let file = std::fs::symlink_metadata(&path).ok()?;
    (file.is_file() && (file.uid() == owner || file.uid() == 0)).then_some(path)
}

/// Snapshots an ELF core file, with the executable given explicitly or found via the core.
pub fn trace_core(core: &Path, exe: Option<&Path>, opts: &TraceOptions) -> Result<Snapshot, CaptureError> {
    let cap = capture::corefile::open(core, exe)?;
    let mut sym = opts.symbols.clone();
    if let Some(exe) = exe {
        sym.exe = Some(exe.to_path_buf());
    }
    Ok(build(cap, &TraceOptions { symbols: sym, ..opts.clone() }))
}

/// Snapshots a minidump (Linux x86-64, as Breakpad and Crashpad write them): the
/// same unwinder, symbolizer and analysis as a core, over the memory the dump holds.
///
/// Dumps of other platforms are walked by `minidump-processor` instead
/// ([`foreign`]), with the Breakpad symbols under `DIR/breakpad` of each
/// `opts.symbols.debug_dirs`.
pub fn trace_minidump(name: &str, bytes: &[u8], opts: &TraceOptions) -> Result<Snapshot, CaptureError> {
    if !capture::minidump::looks_like_minidump(bytes) {
        return Err(CaptureError::Minidump("not a minidump (no MDMP header)".into()));
    }
    if !capture::minidump::is_linux_x86_64(bytes)? {
        let roots = opts.symbols.debug_dirs.iter().map(|d| d.join("breakpad")).collect();
        return foreign::snapshot(name, bytes, roots);
    }
    let cap = capture::minidump::open(name, bytes, &opts.symbols.debug_dirs)?;
    Ok(build(cap, opts))
}

/// One thread after the stopped phase: raw frames, their variables, problems.
type Stopped = (Vec<crate::snapshot::Frame>, Vec<Vec<Vec<crate::snapshot::Variable>>>, Vec<Problem>);

/// Maps `f` over `items`, spread over the cores when there is more than one (threads are
/// independent of each other); results keep the order of `items`.
/// The message of a caught panic.
fn panic_text(p: &(dyn std::any::Any + Send)) -> String {
    p.downcast_ref::<&str>().map(|s| s.to_string()).or_else(|| p.downcast_ref::<String>().cloned()).unwrap_or_default()
}

/// Failpoint for the tests of the pipeline's panic handling: `BT_INJECT_PANIC=PHASE:TID`
/// (`unwind` or `symbolize`) makes that phase panic for that thread.
fn inject_panic(phase: &str, tid: i32) {
    static WANT: std::sync::OnceLock<Option<(String, i32)>> = std::sync::OnceLock::new();
    let want = WANT.get_or_init(|| {
        let v = std::env::var("BT_INJECT_PANIC").ok()?;
        let (p, t) = v.split_once(':')?;
        Some((p.to_string(), t.parse().ok()?))
    });
    if let Some((p, t)) = want
        && p == phase
        && *t == tid
    {
        panic!("injected panic in {phase} of thread {tid}");
    }
}

fn spread<T: Send, R: Send>(items: Vec<T>, f: impl Fn(T) -> R + Sync) -> Vec<R> {
    spread_after(items, f, || ()).0
}

/// [`spread`], with `first` run by the calling thread before it joins the others
/// (releasing a held live target, which only the thread that attached may do,
/// while the others already symbolize).
fn spread_after<T: Send, R: Send, P>(
    items: Vec<T>,
    f: impl Fn(T) -> R + Sync,
    first: impl FnOnce() -> P,
) -> (Vec<R>, P) {
    let n = items.len();
    let workers = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1).min(n.max(1));
    if workers <= 1 {
        let p = first();
        return (items.into_iter().map(f).collect(), p);
    }
    // Handed out one at a time, not in fixed chunks: the first thread to reach a
    // module pays for its DWARF (a big unit's outline and line program take
    // milliseconds), so the work per item is very uneven, and a few threads in
    // different modules are the common case worth splitting.
    let queue = std::sync::Mutex::new(items.into_iter().enumerate());
    let worker = || {
        let mut done = Vec::new();
        loop {
            let next = queue.lock().map(|mut q| q.next()).unwrap_or(None);
            let Some((i, item)) = next else { break done };
            done.push((i, f(item)));
        }
    };
    let (mut indexed, p): (Vec<(usize, R)>, P) = std::thread::scope(|s| {
        let handles: Vec<_> = (1..workers).map(|_| s.spawn(worker)).collect();
        let p = first();
        let mut all = worker();
        for h in handles {
            all.extend(h.join().expect("tracer worker thread panicked"));
        }
        (all, p)
    });
    indexed.sort_unstable_by_key(|r| r.0);
    (indexed.into_iter().map(|r| r.1).collect(), p)
}

/// `BT_TIMING` set (or `BT_LOG=debug`): how long each phase of [`build`] took, on
/// stderr. A debugging aid for the stop window of live captures, not an interface.
struct Timing(Option<std::time::Instant>);

impl Timing {
    fn new() -> Timing {
        let on = std::env::var_os("BT_TIMING").is_some() || log::log_enabled!(log::Level::Debug);
        Timing(on.then(std::time::Instant::now))
    }

    fn mark(&mut self, phase: &str) {
        if let Some(t) = &mut self.0 {
            log::log!(
                if std::env::var_os("BT_TIMING").is_some() { log::Level::Info } else { log::Level::Debug },
                "timing: {phase}: {:.1} ms",
                t.elapsed().as_secs_f64() * 1e3
            );
            *t = std::time::Instant::now();
        }
    }
}

/// Turns a capture into a snapshot. Never fails: what cannot be done becomes a problem.
pub fn build(cap: Capture, opts: &TraceOptions) -> Snapshot {
    let mut timing = Timing::new();
    let Capture { source, process, signal, mut threads, maps, auxv, link_map, memory, environment, mut problems, hold } =
        cap;

    let want_vars = |t: &capture::ThreadState| match opts.variables.mode {
        _ if t.partial => false,
        VariableMode::All => true,
        VariableMode::Faulted => t.faulted,
        VariableMode::None => false,
    };
    let memory: Arc<dyn capture::Memory> = Arc::from(memory);
    let (modules, module_problems) = ModuleSet::load(&maps, &auxv, &link_map, memory.as_ref(), &opts.symbols);
    problems.extend(module_problems);
    let modules = Arc::new(modules);
    timing.mark("modules");
    // A held live target's values are rendered while it is stopped, with their type
    // and symbol names, as a core's are: naming is per type and per address, cached,
    // and measured no longer than copying the bytes to render them again after
    // release (1,000 threads: the same stop, a third less wall time; the big-DWARF
    // workload: the same stop). A Go program's goroutines and interfaces are still
    // rendered after release, from the bytes the first pass copied (`two_pass`).
    let two_pass = hold.is_some() && golang::is_go(&modules);
    // What variables read is recorded to keep it in the snapshot, and for a second pass.
    let record = opts.variables.memory_budget > 0 || two_pass;
    let recorder = memory::Recorder::new(memory.as_ref(), Some(modules.as_ref()), record);
    // The second pass names types and addresses after the target runs again.
    let mut type_table = if two_pass { TypeTable::deferred() } else { TypeTable::default() };

    if let Some(tid) = opts.fault_thread {
        for t in threads.iter_mut() {
            t.faulted = t.tid == tid;
        }
    }
    if !opts.threads.is_empty() {
        threads.retain(|t| opts.threads.contains(&t.tid));
    }
    // Faulting thread first, then by tid, so output is stable.
    threads.sort_by_key(|t| (!t.faulted, t.tid));
    if opts.huge_pages_from.is_some_and(|n| threads.iter().filter(|t| want_vars(t)).count() >= n) {
        let on = crate::thp::allow(true);
        log::debug!("transparent huge pages for the heap: {}", if on { "on" } else { "refused" });
    }

    // While a held live target is stopped: what needs its memory. Unwinding reads
    // the stack copies; variables evaluate their locations and read what rendering
    // them needs (heap objects behind pointers) through the recorder.
    // A JVM describes its frames (compiled code keeps no frame pointer).
    let hotspot = match hotspot::HotSpot::find(&modules, memory.as_ref()) {
        Some(Ok(h)) => Some(h),
        Some(Err(p)) => {
            problems.push(p);
            None
        }
        None => None,
    };
    let unwinder = match &hotspot {
        Some(h) => unwind::Unwinder::new(&modules).with_jit(h),
        None => unwind::Unwinder::new(&modules),
    };
    // Each thread's share of what pointed-to objects may render (every thread counts,
    // as when the snapshot's variables are rendered again).
    let follow = values::follow_share(threads.len());
    // A panic in one thread's work (a bug met on a strange binary) costs that
    // thread, recorded as a problem, never the whole trace.
    let stopped_one = |t: &capture::ThreadState| {
        let work = || {
            inject_panic("unwind", t.tid);
            let (raw, probs) = unwinder.walk(&t.registers, memory.as_ref(), &opts.walk);
            let vars = if want_vars(t) {
                modules.capture_variables(&t.registers, &raw, &recorder, &opts.variables.options, &type_table, follow)
            } else {
                Vec::new()
            };
            (raw, vars, probs)
        };
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(work)).unwrap_or_else(|p| {
            let msg = format!("unwinding thread {} failed: bt panicked ({}); please report it", t.tid, panic_text(&*p));
            (Vec::new(), Vec::new(), vec![Problem::new(Scope::Thread(t.tid), msg)])
        })
    };
    let stopped = spread(threads.iter().collect(), stopped_one);
    timing.mark("unwind, variables");
    // A JVM: the Java method of each frame, read while the memory is consistent
    // (metadata the stack copies do not hold).
    let java = hotspot.as_ref().map(|h| {
        let raw: Vec<_> = threads.iter().zip(&stopped).map(|(t, (raw, _, _))| (&t.registers, raw.as_slice())).collect();
        h.name_frames(memory.as_ref(), &raw)
    });
    // A Go program: its goroutines, read while the memory is consistent.
    let mut go = golang::is_go(&modules).then(|| {
        // Goroutines' variables: a held live target's are rendered after it runs
        // again, from what was copied, with the threads'.
        let vars = |regs: &crate::snapshot::Registers, frames: &[Frame], follow: usize| {
            if opts.variables.mode == VariableMode::All {
                modules.capture_variables(regs, frames, &recorder, &opts.variables.options, &type_table, follow)
            } else {
                Vec::new()
            }
        };
        golang::read(&modules, memory.as_ref(), &unwinder, &vars)
    });
    if hold.is_some()
        && let Some(found) = go.as_ref()
    {
        let thread_vars = stopped.iter().flat_map(|(_, v, _)| v.iter().flatten().flatten());
        golang::read_interfaces(&modules, &recorder, found, thread_vars);
    }
    let mut globals = Vec::new();
    if !opts.variables.globals.is_empty() {
        // Thread-locals are read in the faulting thread (or the first one).
        let regs = threads.first().map(|t| t.registers).unwrap_or_default();
        let (g, p) =
            modules.capture_globals(&opts.variables.globals, &regs, &recorder, &opts.variables.options, &type_table);
        globals = g;
        problems.extend(p);
    }
    let mut kept = Vec::new();
    // Every byte the variables read, for rendering them once a held target runs again.
    let mut reads = Vec::new();
    if opts.variables.mode != VariableMode::None || !globals.is_empty() {
        if two_pass {
            reads = recorder.copy_reads();
        }
        let stacks: Vec<(i32, u64, u64)> = threads
            .iter()
            .zip(&stopped)
            .map(|(t, (raw, _, _))| (t.tid, t.registers.rsp, raw.iter().map(|f| f.sp).max().unwrap_or(t.registers.rsp)))
            .collect();
        if opts.variables.memory_budget > 0 {
            let (k, note) = recorder.keep(&stacks, opts.variables.memory_budget);
            kept = k;
            problems.extend(note.map(|n| Problem::new(Scope::Snapshot, n)));
        }
    } else {
        drop(recorder);
    }
    timing.mark("globals, memory kept");
    // A live target held for variable capture runs again from here on: the rest
    // (symbolization, names, text, analysis) works on what was copied. This thread
    // releases it while the other workers start symbolizing (which reads the
    // modules' files, not the target).

    let symbolize_one = |(t, (raw, mut vars, mut probs)): (&capture::ThreadState, Stopped)| {
        // Room for a few inlined frames besides the physical ones.
        let mut frames = Vec::with_capacity(raw.len() + 4);
        for (k, f) in raw.into_iter().enumerate() {
            // What a frame keeps if symbolizing it panics (no clone on the hot path).
            let (pc, sp, trust, signal_frame) = (f.pc, f.sp, f.trust, f.signal_frame);
            let first = frames.len();
            let done = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                inject_panic("symbolize", t.tid);
                modules.symbolize_into(f, &mut frames)
            }));
            if let Err(p) = done {
                probs.push(Problem::new(
                    Scope::Thread(t.tid),
                    format!(
                        "symbolizing frame #{k} of thread {} failed: bt panicked ({}); please report it",
                        t.tid,
                        panic_text(&*p)
                    ),
                ));
                frames.truncate(first);
                frames.push(Frame { pc, sp, trust, signal_frame, ..Default::default() });
            }
            // The variables of each function of the inline chain, innermost first, as
            // symbolize lists the frames.
            if let Some(lists) = vars.get_mut(k) {
                for (frame, list) in frames[first..].iter_mut().zip(lists.drain(..)) {
                    frame.variables = list;
                }
            }
        }
        for p in probs.iter_mut() {
            if p.scope == Scope::Snapshot {
                p.scope = Scope::Thread(t.tid);
            }
        }
        let thread = Thread {
            tid: t.tid,
            name: t.name.clone(),
            state: t.state.clone(),
            faulted: t.faulted,
            registers: t.registers,
            frames,
        };
        (thread, probs)
    };
    let release = || hold.map(|release| release());
    let (results, released) = spread_after(threads.iter().zip(stopped).collect(), symbolize_one, release);
    if let Some(p) = released {
        problems.extend(p);
    }
    timing.mark("released, symbolize");
    let mut out_threads = Vec::with_capacity(results.len());
    for (t, p) in results {
        out_threads.push(t);
        problems.extend(p);
    }
    if let Some(names) = java {
        hotspot::apply(&mut out_threads, &names);
    }
    type_table.resolve(&modules);
    let (types, symbols) = type_table.finish();
    let module_list = modules.modules();
    // Problems the module set met lazily (files opened, debug files searched on demand).
    problems.extend(modules.take_problems());

    let mut snap = Snapshot {
        uuid: crate::snapshot::new_uuid(),
        timestamp: now(),
        source,
        process,
        signal,
        threads: out_threads,
        modules: module_list,
        maps,
        environment,
        problems,
        memory: kept,
        globals,
        types,
        symbols,
        ..Default::default()
    };
    add_automatic_attributes(&mut snap);
    for (k, v) in &opts.attributes {
        snap.set_attribute(k, v);
    }
    if !reads.is_empty() {
        // The second pass of a held Go program: its values are rendered now, from the
        // bytes copied while it was stopped, with the finished type table and names.
        values::render_snapshot_from(&mut snap, &Regions::new(&reads), &opts.variables.options);
        if let Some(found) = go.as_mut() {
            golang::render_variables(&snap, found, &Regions::new(&reads), &opts.variables.options);
        }
        timing.mark("names and text");
    }
    // Analysis last: it reads frames, symbols and the capture's memory (for a
    // released live target: what was copied while it was stopped).
    let reader = analysis::Reader::new(memory.clone(), modules.clone());
    analysis::run_builtin(&mut snap, &reader, &opts.analysis);
    if let Some(found) = go {
        // A released target's interfaces are described from what was copied for them
        // (`golang::read_interfaces`).
        let copied = Regions::new(&reads);
        golang::annotate(&mut snap, &modules, &memory::Layered(&copied, memory.as_ref()), found);
    } else {
        golang::annotate_stripped(&mut snap);
    }
    timing.mark("built-in analysis");
    analysis::run_modules(&mut snap, &reader, &opts.analysis);
    // Modules opened lazily by the analysis (rodata of libc, type names) may have met problems.
    snap.problems.extend(modules.take_problems());
    drop((reader, unwinder));
    // The snapshot is ready: what made it (the module set's caches) is freed aside.
    free_aside((modules, memory, reads, threads));
    snap
}

/// Drops `spent` on a thread of its own: freeing what a trace built (after a thousand
/// threads with variables, millions of small allocations, 3–4 ms; a thousand
/// goroutines' frames, 30 ms) is work the snapshot does not wait for, and a process
/// that exits next does not either.
pub(crate) fn free_aside<T: Send + 'static>(spent: T) {
    if let Err(e) = std::thread::Builder::new().name("bt-free".into()).spawn(move || drop(spent)) {
        log::debug!("freeing on another thread: {e}");
    }
}

fn add_automatic_attributes(snap: &mut Snapshot) {
    let env = snap.environment.clone();
    let application = Path::new(&snap.process.exe)
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| snap.process.comm.clone());
    let auto = [
        ("hostname", env.hostname.as_str()),
        ("application", application.as_str()),
        ("uname.sysname", env.uname.sysname.as_str()),
        ("uname.release", env.uname.release.as_str()),
        ("uname.version", env.uname.version.as_str()),
        ("uname.machine", env.uname.machine.as_str()),
    ];
    for (k, v) in auto {
        if !v.is_empty() {
            snap.attributes.push(Attribute { key: k.into(), value: v.into() });
        }
    }
    snap.set_attribute("pid", &snap.process.pid.to_string());
    if let Some(sig) = snap.signal.clone() {
        snap.set_attribute("signal", &sig.name);
    }
}

/// Parses `key:value[,key:value…]` (the `--kv` syntax).
pub fn parse_kv(spec: &str) -> Result<Vec<(String, String)>, String> {
    spec.split(',')
        .filter(|s| !s.is_empty())
        .map(|pair| match pair.split_once(':') {
            Some((k, v)) if !k.trim().is_empty() => Ok((k.trim().to_string(), v.to_string())),
            _ => Err(format!("bad --kv pair {pair:?}: expected key:value")),
        })
        .collect()
}

fn now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kv_parsing() {
        let cases: &[(&str, Result<Vec<(&str, &str)>, ()>)] = &[
            ("a:1", Ok(vec![("a", "1")])),
            ("a:1,b:two", Ok(vec![("a", "1"), ("b", "two")])),
            ("url:http://x", Ok(vec![("url", "http://x")])),
            ("", Ok(vec![])),
            ("novalue", Err(())),
            (":v", Err(())),
        ];
        for (input, want) in cases {
            let got = parse_kv(input).map_err(|_| ());
            let want = want.clone().map(|v| v.into_iter().map(|(a, b)| (a.to_string(), b.to_string())).collect());
            assert_eq!(got, want, "input {input:?}");
        }
    }
}
