//! Automated analysis of a snapshot: built-in fault classifiers and annotations
//! ([`classify`]), the faulting instruction ([`decode`]), messages left by libc,
//! libstdc++ and Rust ([`messages`]), heap and call-constraint checks ([`heap`]) on
//! the arguments calls were made with ([`calls`]),
//! aliases of the faulting address ([`aliases`]) and user modules in rhai ([`script`]).
//!
//! Analysis runs inside `trace::build`, after unwinding and symbolization, while the
//! capture's memory is still at hand. It never fails: what it cannot do becomes a
//! `Problem` in the snapshot. Classifier names are a contract (queries, grouping and
//! alerts rely on them): see [`names`].

pub mod aliases;
pub mod calls;
pub mod classify;
pub mod decode;
mod facts;
pub mod heap;
pub mod messages;
pub mod script;

use crate::capture::Memory;
use crate::snapshot::{Annotation, Problem, Scope, Severity, Snapshot};
use crate::symbols::ModuleSet;
use std::path::PathBuf;
use std::sync::Arc;

/// The classifier names, exactly as the product promises them.
pub mod names {
    pub const NULL_DEREFERENCE: &str = "null-dereference";
    /// A fault signal (SIGSEGV, SIGBUS, SIGFPE, SIGILL) that a process sent with
    /// `kill`, `tgkill` or `sigqueue`: no instruction faulted.
    pub const SENT_SIGNAL: &str = "sent-signal";
    pub const INVALID_READ: &str = "invalid-read";
    pub const INVALID_WRITE: &str = "invalid-write";
    pub const INVALID_EXECUTE: &str = "invalid-execute";
    pub const STACK_OVERFLOW: &str = "stack-overflow";
    pub const MISALIGNED_ACCESS: &str = "misaligned-access";
    pub const ABORT: &str = "abort";
    pub const ASSERT: &str = "assert";
    pub const UNCAUGHT_EXCEPTION: &str = "uncaught-exception";
    pub const RUST_PANIC: &str = "rust-panic";
    pub const STACK_SMASH: &str = "stack-smash";
    pub const HEAP_CORRUPTION: &str = "heap-corruption";
    pub const DOUBLE_FREE: &str = "double-free";
    pub const DIVISION_BY_ZERO: &str = "division-by-zero";
    pub const ILLEGAL_INSTRUCTION: &str = "illegal-instruction";
    pub const CONSTRAINT_VIOLATION: &str = "constraint-violation";
    /// The sanitizer that stopped the process (with the kind of error it reported).
    pub const ASAN: &str = "asan";
    pub const UBSAN: &str = "ubsan";
    pub const MSAN: &str = "msan";
    pub const TSAN: &str = "tsan";
    pub const INVALID_FREE: &str = "invalid-free";
    pub const UNINITIALIZED_READ: &str = "uninitialized-read";
    pub const DATA_RACE: &str = "data-race";
    pub const UNDEFINED_BEHAVIOR: &str = "undefined-behavior";
}

/// Limits that keep a user module from hurting the trace.
#[derive(Debug, Clone)]
pub struct ScriptLimits {
    /// Rhai operations per module (all hooks together).
    pub max_operations: u64,
    /// Wall-clock budget per module (all hooks together).
    pub max_time: std::time::Duration,
    pub max_call_levels: usize,
    pub max_string_size: usize,
    pub max_array_size: usize,
    pub max_map_size: usize,
    /// Largest `read_bytes` a script may ask for.
    pub max_read: usize,
    /// Bytes of classifiers, annotations and attributes one module may add (all
    /// hooks together); a module that adds more is stopped with a problem.
    pub max_output: usize,
    /// Classifiers, annotations and attributes one module may add.
    pub max_output_items: usize,
}

impl Default for ScriptLimits {
    fn default() -> Self {
        ScriptLimits {
            max_operations: 5_000_000,
            max_time: std::time::Duration::from_secs(2),
            max_call_levels: 64,
            max_string_size: 1 << 20,
            max_array_size: 1 << 16,
            max_map_size: 1 << 14,
            max_read: 1 << 20,
            max_output: 1 << 20,
            max_output_items: 10_000,
        }
    }
}

/// What the analysis step does.
#[derive(Debug, Clone, Default)]
pub struct AnalysisOptions {
    /// Skip the built-in classifiers (user modules and `classifiers` still apply).
    pub no_builtin: bool,
    /// rhai module files, run in this order after the built-in analysis.
    pub modules: Vec<PathBuf>,
    /// A directory whose `*.rhai` files run (sorted by name) before `modules`.
    pub modules_dir: Option<PathBuf>,
    /// Classifiers added by hand (`--classifier`).
    pub classifiers: Vec<String>,
    pub limits: ScriptLimits,
}

/// Reads the target's address space: captured memory first, then the bytes of the
/// module files (cores and live captures rarely hold file-backed text and rodata).
/// Cheap to clone and `'static`, so rhai functions can own one.
#[derive(Clone)]
pub struct Reader {
    memory: Arc<dyn Memory>,
    modules: Arc<ModuleSet>,
}

impl Reader {
    pub fn new(memory: Arc<dyn Memory>, modules: Arc<ModuleSet>) -> Reader {
        Reader { memory, modules }
    }

    pub fn modules(&self) -> &ModuleSet {
        &self.modules
    }

    /// The captured memory alone (no module files).
    pub fn memory(&self) -> &dyn Memory {
        &*self.memory
    }

    /// Copies up to `buf.len()` bytes; returns how many leading bytes were readable.
    pub fn read(&self, addr: u64, buf: &mut [u8]) -> usize {
        let mut done = self.memory.read(addr, buf);
        while done < buf.len() {
            let n = self.modules.read_code(addr.wrapping_add(done as u64), &mut buf[done..]);
            if n == 0 {
                break;
            }
            done += n;
            // Captured memory may resume after a file-backed gap.
            let m = self.memory.read(addr.wrapping_add(done as u64), &mut buf[done..]);
            done += m;
        }
        done
    }

    /// True when the captured memory (not the files) holds `addr`.
    pub fn in_memory(&self, addr: u64) -> bool {
        let mut b = [0u8; 1];
        self.memory.read(addr, &mut b) == 1
    }

    pub fn bytes(&self, addr: u64, len: usize) -> Vec<u8> {
        let mut buf = vec![0u8; len];
        let n = self.read(addr, &mut buf);
        buf.truncate(n);
        buf
    }

    pub fn u64(&self, addr: u64) -> Option<u64> {
        let mut b = [0u8; 8];
        (self.read(addr, &mut b) == 8).then(|| u64::from_le_bytes(b))
    }

    pub fn u32(&self, addr: u64) -> Option<u32> {
        let mut b = [0u8; 4];
        (self.read(addr, &mut b) == 4).then(|| u32::from_le_bytes(b))
    }

    /// A NUL-terminated string of at most `max` bytes (lossy UTF-8); None when the
    /// first byte is unreadable. `truncated` is true when no NUL came within `max`.
    pub fn cstring(&self, addr: u64, max: usize) -> Option<(String, bool)> {
        let mut out = Vec::new();
        let mut chunk = [0u8; 256];
        while out.len() < max {
            let want = chunk.len().min(max - out.len());
            let n = self.read(addr.wrapping_add(out.len() as u64), &mut chunk[..want]);
            if n == 0 {
                break;
            }
            if let Some(z) = chunk[..n].iter().position(|b| *b == 0) {
                out.extend_from_slice(&chunk[..z]);
                return Some((String::from_utf8_lossy(&out).into_owned(), false));
            }
            out.extend_from_slice(&chunk[..n]);
        }
        if out.is_empty() && self.bytes(addr, 1).is_empty() {
            return None;
        }
        Some((String::from_utf8_lossy(&out).into_owned(), true))
    }
}

/// Collects what the analyses find, then writes it into the snapshot in one place.
#[derive(Debug, Default)]
pub struct Findings {
    pub classifiers: Vec<String>,
    pub annotations: Vec<Annotation>,
    pub attributes: Vec<(String, String)>,
    pub problems: Vec<Problem>,
}

impl Findings {
    pub fn classify(&mut self, name: &str) {
        if !self.classifiers.iter().any(|c| c == name) {
            self.classifiers.push(name.to_string());
        }
    }

    pub fn has(&self, name: &str) -> bool {
        self.classifiers.iter().any(|c| c == name)
    }

    pub fn annotate(&mut self, scope: Scope, severity: Severity, source: &str, text: impl Into<String>) {
        self.annotations.push(Annotation { scope, severity, source: source.to_string(), text: text.into() });
    }

    pub fn problem(&mut self, scope: Scope, message: impl Into<String>) {
        self.problems.push(Problem::new(scope, message));
    }

    fn apply(self, snap: &mut Snapshot) {
        for c in self.classifiers {
            if !snap.classifiers.contains(&c) {
                snap.classifiers.push(c);
            }
        }
        snap.annotations.extend(self.annotations);
        for (k, v) in self.attributes {
            snap.set_attribute(&k, &v);
        }
        snap.problems.extend(self.problems);
    }
}

/// Runs the built-in analysis, then the hand-given classifiers, then the user modules.
/// Never fails; everything lands in `snap`.
pub fn run(snap: &mut Snapshot, reader: &Reader, opts: &AnalysisOptions) {
    run_builtin(snap, reader, opts);
    run_modules(snap, reader, opts);
}

/// The built-in classifiers and annotations, and the classifiers given by hand.
pub fn run_builtin(snap: &mut Snapshot, reader: &Reader, opts: &AnalysisOptions) {
    if !opts.no_builtin {
        // The analysis reads untrusted memory; a bug it trips over must cost the
        // analysis, not the snapshot.
        let mut f = Findings::default();
        let view: &Snapshot = snap;
        let done = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| classify::run(view, reader, &mut f)));
        match done {
            Ok(()) => f.apply(snap),
            Err(_) => snap.problems.push(Problem::new(
                Scope::Snapshot,
                "the built-in analysis failed (a bug in bt); its results are left out",
            )),
        }
    }
    for c in &opts.classifiers {
        let c = c.trim();
        if !c.is_empty() && !snap.classifiers.iter().any(|x| x == c) {
            snap.classifiers.push(c.to_string());
        }
    }
}

/// The user modules (`--modules-dir`, then each `--module`).
pub fn run_modules(snap: &mut Snapshot, reader: &Reader, opts: &AnalysisOptions) {
    let files = script::module_files(opts, &mut snap.problems);
    if !files.is_empty() {
        let mut f = Findings::default();
        script::run_modules(snap, reader, &files, &opts.limits, &mut f);
        f.apply(snap);
    }
}
