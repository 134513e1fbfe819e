//! The built-in classifiers: what kind of fault it was (from the signal, the faulting
//! instruction and the memory map) and what the runtime was doing when it gave up
//! (abort, assert, uncaught C++ exception, Rust panic, stack smashing, malloc checks).
//!
//! Conventions (ARCHITECTURE.md repeats them):
//! - every SIGSEGV/SIGBUS memory fault gets exactly one direction classifier
//!   (`invalid-read`, `invalid-write` or `invalid-execute`); a read-modify-write
//!   counts as a write;
//! - cause classifiers add to it: `null-dereference`, `stack-overflow`,
//!   `misaligned-access`, and `heap-corruption` for a fault inside an allocator's
//!   code (glibc malloc, Boehm GC, jemalloc, tcmalloc, mimalloc);
//! - a SIGABRT gets exactly one cause: the most specific of `stack-overflow` (Rust's
//!   guard-page handler), `stack-smash`, `double-free`, `heap-corruption`, `assert`,
//!   `uncaught-exception`, `rust-panic`; plain `abort` only when none applies;
//! - a fault signal a process sent (`si_code` ≤ 0: `kill`, `tgkill`, `raise`) is no
//!   memory fault: the fault a signal handler caught and then re-raised is classified
//!   as if it had killed the process, else the crash is `sent-signal`;
//! - a sanitizer's abort gets the tool (`asan`, `ubsan`, `msan`, `tsan`) and the error
//!   its report functions name instead.

use super::decode;
pub use super::facts::{MemoryFault, NULL_LIMIT, base_name, mapping_of};
use super::{Findings, Reader, aliases, heap, messages, names};
use crate::snapshot::{Frame, Scope, Severity, Snapshot, Thread};

const SOURCE: &str = "bt";
/// A fault this close to the stack pointer, in no mapping, ran off the stack.
const STACK_SLACK: u64 = 64 * 1024;

const SIGILL: i32 = 4;
const SIGTRAP: i32 = 5;
const SIGABRT: i32 = 6;
const SIGBUS: i32 = 7;
const SIGFPE: i32 = 8;
const SIGSEGV: i32 = 11;
const BUS_ADRALN: i32 = 1;
const BUS_ADRERR: i32 = 2;
const FPE_INTDIV: i32 = 1;
const FPE_INTOVF: i32 = 2;
/// si_code of a fault the kernel raised itself without an address (#GP).
const SI_KERNEL: i32 = 0x80;

fn find_frame(t: &Thread, pred: impl Fn(&str) -> bool) -> Option<usize> {
    t.frames.iter().position(|f| pred(&base_name(f)))
}

/// The thread the analysis is about: the faulted one, else the signal's, else the first.
pub fn fault_thread(snap: &Snapshot) -> Option<&Thread> {
    snap.threads
        .iter()
        .find(|t| t.faulted)
        .or_else(|| snap.signal.as_ref().and_then(|s| snap.threads.iter().find(|t| t.tid == s.tid)))
        .or(snap.threads.first())
}

/// Runs every built-in analysis on the snapshot.
pub fn run(snap: &Snapshot, reader: &Reader, f: &mut Findings) {
    let Some(t) = fault_thread(snap) else { return };
    let Some(sig) = snap.signal.clone() else {
        // A live snapshot with no fatal signal pending: no fault to explain, unless a
        // thread is inside abort() (SIGABRT caught by a handler that never returns, or
        // a process traced mid-abort): why it aborted is still worth telling.
        // Names without "abort" are passed over unreduced: a thousand threads' frames.
        let aborting =
            |f: &Frame| f.function.as_deref().is_some_and(|n| n.contains("abort")) && base_name(f) == "abort";
        if let Some(t) = snap.threads.iter().find(|t| t.frames.iter().any(aborting)) {
            runtime_abort(snap, t, &crate::snapshot::Signal::default(), reader, f);
        }
        return;
    };
    let mut fault = MemoryFault::default();
    let fault_signal = matches!(sig.signo, SIGSEGV | SIGBUS | SIGFPE | SIGILL);
    if fault_signal && sig.code <= 0 {
        fault = sent_signal(snap, t, &sig, reader, f);
    } else {
        match sig.signo {
            SIGSEGV | SIGBUS => fault = memory_fault(snap, t, &sig, reader, f),
            SIGFPE => arithmetic(t, &sig, reader, f),
            SIGILL => illegal(t, &sig, reader, f),
            _ => {}
        }
    }
    if matches!(sig.signo, SIGABRT | SIGTRAP) || find_frame(t, |n| n == "abort").is_some() {
        runtime_abort(snap, t, &sig, reader, f);
    }
    heap::call_constraints(snap, t, &fault, reader, f);
    // A stack that ran out inside malloc is a stack overflow, not a heap problem; a
    // process killed while it was in malloc did nothing wrong there.
    let explained = [names::CONSTRAINT_VIOLATION, names::STACK_OVERFLOW, names::SENT_SIGNAL];
    if matches!(sig.signo, SIGSEGV | SIGBUS) && !explained.iter().any(|c| f.has(c)) {
        heap::allocator_fault(t, f);
    }
    if let Some(addr) = fault.target.filter(|a| *a >= NULL_LIMIT) {
        aliases::run(snap, t.tid, addr, reader, f);
    }
}

/// A fault signal that a process sent (folklore: `si_code` ≤ 0 is `SI_USER`, `SI_QUEUE`,
/// `SI_TKILL` …; only the kernel's own faults have positive codes). Crash handlers
/// often catch the real fault, put the default action back and `raise()` the signal
/// again (Python's faulthandler, crash reporters): the handler's interrupted frame
/// then holds the fault, found through the `ucontext` that `__restore_rt` returns to.
/// Otherwise the process was killed, and the instruction at the pc did nothing wrong.
fn sent_signal(
    snap: &Snapshot,
    t: &Thread,
    sig: &crate::snapshot::Signal,
    reader: &Reader,
    f: &mut Findings,
) -> MemoryFault {
    if let Some(c) = caught_fault(t, reader) {
        report_caught(snap, t, &c, &format!("raised {} again", sig.name), f);
        return MemoryFault { target: Some(c.address), ..Default::default() };
    }
    // The handler returned before the signal it raised was delivered (it was blocked
    // while the handler ran): the process is back at the instruction that faulted.
    // Folklore: `signal()` handlers run with their signal blocked, so `raise()` in one
    // takes effect at `sigreturn`; `SA_NODEFER` handlers (faulthandler) die inside.
    if sig.sender_pid == Some(snap.process.pid) && sig.signo != SIGFPE && sig.signo != SIGILL {
        let bad = decode::decode_at(reader, &t.registers).and_then(|d| {
            d.operands.iter().filter(|o| !o.stack).find_map(|o| {
                let a = o.address?;
                let ok = mapping_of(&snap.maps, a)
                    .is_some_and(|m| m.perms.contains('r') && (!o.access.writes() || m.perms.contains('w')));
                (!ok).then_some(a)
            })
        });
        if let Some(a) = bad {
            let again = crate::snapshot::Signal { fault_address: Some(a), code: 0, ..sig.clone() };
            let out = memory_fault(snap, t, &again, reader, f);
            f.annotate(
                Scope::Frame(t.tid, 0),
                Severity::Info,
                SOURCE,
                format!(
                    "{} was raised again by the process ({}) after a signal handler had caught the fault",
                    sig.name, sig.code_name
                ),
            );
            return out;
        }
    }
    f.classify(names::SENT_SIGNAL);
    let by = match sig.sender_pid {
        Some(p) if p == snap.process.pid => "by the process itself".to_string(),
        Some(p) => format!("by pid {p}"),
        None => "by a process".to_string(),
    };
    let code = if sig.code_name.is_empty() { sig.code.to_string() } else { sig.code_name.clone() };
    // Raised from inside a handler for a signal other than a page fault (a SIGFPE or
    // SIGILL caught and raised again): what the handler interrupted is where to look.
    let interrupted = t
        .frames
        .iter()
        .position(|fr| base_name(fr) == "__restore_rt")
        .and_then(|j| t.frames.get(j + 1))
        .map(|fr| fr.function.clone().unwrap_or_else(|| format!("{:#x}", fr.pc)));
    let text = match interrupted {
        Some(at) => format!("{} was sent {by} ({code}) from a signal handler that interrupted {at}", sig.name),
        None => format!("{} was sent {by} ({code}), not raised by a fault: no instruction faulted", sig.name),
    };
    f.annotate(Scope::Frame(t.tid, 0), Severity::Warning, SOURCE, text);
    MemoryFault::default()
}

fn memory_fault(
    snap: &Snapshot,
    t: &Thread,
    sig: &crate::snapshot::Signal,
    reader: &Reader,
    f: &mut Findings,
) -> MemoryFault {
    let regs = &t.registers;
    let pc = regs.rip;
    let scope = Scope::Frame(t.tid, 0);
    let kernel_gp = sig.code == SI_KERNEL;
    let si_addr = sig.fault_address.filter(|_| !kernel_gp);
    let mut out = MemoryFault { target: si_addr, ..Default::default() };

    // Executing where no code is: a jump or call to a wild, freed or null address.
    let pc_mapping = mapping_of(&snap.maps, pc);
    let pc_executable = pc_mapping.is_some_and(|m| m.perms.contains('x'));
    if !pc_executable {
        f.classify(names::INVALID_EXECUTE);
        out.execute = true;
        out.target = Some(pc);
        let what = match pc_mapping {
            None => "no mapping".to_string(),
            Some(m) => format!(
                "a non-executable mapping ({} {})",
                m.perms,
                if m.path.is_empty() { "anonymous" } else { &m.path }
            ),
        };
        let from = t.frames.iter().skip(1).find(|fr| !fr.inlined);
        let caller = match from {
            Some(fr) => {
                format!("; the frame that jumped there is {} at {:#x}", fr.function.as_deref().unwrap_or("??"), fr.pc)
            }
            None => String::new(),
        };
        f.annotate(scope.clone(), Severity::Error, SOURCE, format!("executing at {pc:#x}, which is in {what}{caller}"));
        if pc < NULL_LIMIT {
            f.classify(names::NULL_DEREFERENCE);
            f.annotate(
                scope,
                Severity::Error,
                SOURCE,
                format!("call or jump through a null function pointer (pc {pc:#x})"),
            );
        }
        return out;
    }

    let decoded = decode::decode_at(reader, regs);
    let op = decoded.as_ref().and_then(|d| d.faulting_operand(sig.fault_address.filter(|_| !kernel_gp)));
    if let Some(op) = op {
        out.access = Some(op.access);
        if op.address.is_some() {
            out.target = op.address;
        }
    }
    match (&decoded, op) {
        (Some(d), Some(op)) => {
            f.classify(if op.access.writes() { names::INVALID_WRITE } else { names::INVALID_READ });
            let regs_text = if op.registers.is_empty() {
                String::new()
            } else {
                let r: Vec<String> = op.registers.iter().map(|(n, v)| format!("{n} = {v:#x}")).collect();
                format!(" ({})", r.join(", "))
            };
            let addr_text = op.address.map(|a| format!(" at {a:#x}")).unwrap_or_default();
            f.annotate(
                scope.clone(),
                Severity::Error,
                SOURCE,
                format!(
                    "invalid {} of {} bytes{addr_text} through {}{regs_text} by `{}` at {:#x} [{}]",
                    op.access.describe(),
                    op.size,
                    op.text,
                    d.mnemonic,
                    d.pc,
                    d.bytes_hex()
                ),
            );
        }
        (Some(d), None) => {
            f.annotate(
                scope.clone(),
                Severity::Warning,
                SOURCE,
                format!(
                    "the faulting instruction `{}` at {:#x} [{}] has no memory operand matching the fault address",
                    d.mnemonic,
                    d.pc,
                    d.bytes_hex()
                ),
            );
            f.problem(scope.clone(), "could not tell which memory operand faulted: direction unknown");
        }
        (None, _) => {
            f.problem(scope.clone(), format!("could not read or decode the instruction at {pc:#x}: direction unknown"));
        }
    }

    // Null: a small fault address, or an address formed from a null base register.
    let target_small = out.target.is_some_and(|a| a < NULL_LIMIT);
    let null_base = op.and_then(|o| o.registers.first()).is_some_and(|(_, v)| *v == 0);
    if target_small || (null_base && out.target.is_none_or(|a| a < NULL_LIMIT)) {
        f.classify(names::NULL_DEREFERENCE);
        let base = op
            .and_then(|o| o.registers.first())
            .filter(|(_, v)| *v == 0)
            .map(|(n, _)| format!(" ({n} is null)"))
            .unwrap_or_default();
        f.annotate(
            scope.clone(),
            Severity::Error,
            SOURCE,
            format!("null pointer dereference at {:#x}{base}", out.target.unwrap_or(0)),
        );
    }

    // Misalignment: the kernel says so (alignment checking on), or an aligned-only
    // instruction met a misaligned address (#GP, reported with address 0).
    let misaligned_op = match (&decoded, op) {
        (Some(d), Some(op)) if d.aligned_only => {
            let align = op.size.clamp(1, 64) as u64;
            op.address.is_some_and(|a| a % align != 0).then_some((d, op, align))
        }
        _ => None,
    };
    if sig.signo == SIGBUS && sig.code == BUS_ADRALN {
        f.classify(names::MISALIGNED_ACCESS);
        f.annotate(
            scope.clone(),
            Severity::Error,
            SOURCE,
            format!(
                "misaligned access at {:#x} with alignment checking enabled (SIGBUS BUS_ADRALN)",
                out.target.unwrap_or(0)
            ),
        );
    } else if let Some((d, op, align)) = misaligned_op {
        f.classify(names::MISALIGNED_ACCESS);
        f.annotate(
            scope.clone(),
            Severity::Error,
            SOURCE,
            format!(
                "`{}` requires a {align}-byte aligned operand but {} is {:#x}",
                d.mnemonic,
                op.text,
                op.address.unwrap_or(0)
            ),
        );
    } else if kernel_gp && op.is_some_and(|o| o.address.is_some_and(|a| !decode::is_canonical(a))) {
        f.annotate(
            scope.clone(),
            Severity::Error,
            SOURCE,
            format!("non-canonical address {:#x}: a garbage or uninitialised pointer", out.target.unwrap_or(0)),
        );
    }
    if sig.signo == SIGBUS && sig.code == BUS_ADRERR {
        f.annotate(
            scope.clone(),
            Severity::Error,
            SOURCE,
            "access to a part of a file mapping beyond the end of the file (truncated while mapped?)",
        );
    }

    stack_overflow(snap, t, t.registers.rsp, out.target, f);
    out
}

/// Stack overflow: the access (or the stack pointer) is just beyond the stack,
/// in no mapping or in a guard mapping.
/// `sp` is the stack pointer of the faulting code: the thread's, or for a fault a
/// signal handler caught (on an alternate stack, as sanitizers do) the interrupted one.
fn stack_overflow(snap: &Snapshot, t: &Thread, sp: u64, target: Option<u64>, f: &mut Findings) {
    let is_guard = |a: u64| match mapping_of(&snap.maps, a) {
        None => true,
        Some(m) => !m.perms.contains('r') && !m.perms.contains('w'),
    };
    let by_target = target.is_some_and(|a| a.abs_diff(sp) <= STACK_SLACK && is_guard(a));
    let by_sp =
        is_guard(sp) && snap.maps.iter().any(|m| m.start > sp && m.start - sp <= STACK_SLACK && m.perms.contains('w'));
    if !(by_target || by_sp) {
        return;
    }
    f.classify(names::STACK_OVERFLOW);
    f.annotate(
        Scope::Thread(t.tid),
        Severity::Error,
        SOURCE,
        format!(
            "stack overflow: {} beyond the stack (stack pointer {sp:#x})",
            match target {
                Some(a) if by_target => format!("access at {a:#x} is"),
                _ => "the stack pointer is".to_string(),
            }
        ),
    );
    recursion(t, f);
}

/// Annotates the function that repeats most in the thread's stack.
pub fn recursion(t: &Thread, f: &mut Findings) {
    let mut counts: Vec<(String, usize)> = Vec::new();
    for fr in &t.frames {
        let Some(name) = fr.function.as_deref() else { continue };
        match counts.iter_mut().find(|(n, _)| n == name) {
            Some(c) => c.1 += 1,
            None => counts.push((name.to_string(), 1)),
        }
    }
    if let Some((name, n)) = counts.into_iter().max_by_key(|c| c.1).filter(|c| c.1 >= 8) {
        f.annotate(
            Scope::Thread(t.tid),
            Severity::Warning,
            SOURCE,
            format!("recursion: {name} appears {n} times in {} frames", t.frames.len()),
        );
    }
}

fn arithmetic(t: &Thread, sig: &crate::snapshot::Signal, reader: &Reader, f: &mut Findings) {
    let d = decode::decode_at(reader, &t.registers);
    let divides = d.as_ref().is_some_and(|d| d.divides);
    if sig.code == FPE_INTDIV || sig.code == FPE_INTOVF || divides {
        f.classify(names::DIVISION_BY_ZERO);
        let what = d.as_ref().map(|d| format!(" by `{}` at {:#x}", d.mnemonic, d.pc)).unwrap_or_default();
        let text = if sig.code == FPE_INTOVF {
            format!("integer division overflow{what}")
        } else {
            format!("integer division by zero (or quotient overflow, e.g. INT_MIN / -1){what}")
        };
        f.annotate(Scope::Frame(t.tid, 0), Severity::Error, SOURCE, text);
    }
}

fn illegal(t: &Thread, sig: &crate::snapshot::Signal, reader: &Reader, f: &mut Findings) {
    f.classify(names::ILLEGAL_INSTRUCTION);
    let text = match decode::decode_at(reader, &t.registers) {
        Some(d) if d.undefined => format!(
            "`{}` at {:#x}: a trap the compiler placed on purpose (__builtin_trap, unreachable code, Rust's abort intrinsic)",
            d.mnemonic, d.pc
        ),
        Some(d) => {
            format!("`{}` at {:#x} [{}] is not supported here ({})", d.mnemonic, d.pc, d.bytes_hex(), sig.code_name)
        }
        None => format!("no valid instruction at {:#x} ({})", t.registers.rip, sig.code_name),
    };
    f.annotate(Scope::Frame(t.tid, 0), Severity::Error, SOURCE, text);
}

fn is_abort_fn(n: &str) -> bool {
    matches!(n, "abort" | "raise" | "gsignal" | "pthread_kill" | "__pthread_kill") || n.starts_with("__pthread_kill_")
}

/// SIGABRT (or a thread in abort()): find out who called abort and why.
fn runtime_abort(snap: &Snapshot, t: &Thread, sig: &crate::snapshot::Signal, reader: &Reader, f: &mut Findings) {
    let scope = Scope::Thread(t.tid);
    // Rust's guard-page handler reports the overflow and aborts from the signal handler.
    if let Some(i) = find_frame(t, |n| n.contains("stack_overflow::imp::signal_handler")) {
        f.classify(names::STACK_OVERFLOW);
        f.annotate(
            scope,
            Severity::Error,
            SOURCE,
            "stack overflow: the Rust runtime caught the guard-page fault and aborted",
        );
        let interrupted = Thread { frames: t.frames[i..].to_vec(), ..t.clone() };
        recursion(&interrupted, f);
        return;
    }
    if sanitizer(snap, t, reader, f) {
        return;
    }
    if let Some(i) = find_frame(t, |n| n == "__stack_chk_fail" || n == "__stack_chk_fail_local") {
        f.classify(names::STACK_SMASH);
        let victim = t.frames.get(i + 1).and_then(|fr| fr.function.clone()).unwrap_or_else(|| "??".into());
        let msg = messages::abort_msg(reader);
        f.annotate(
            Scope::Frame(t.tid, (i + 1) as u32),
            Severity::Error,
            SOURCE,
            format!("stack smashing detected: the stack protector canary of {victim} was overwritten{}", quoted(&msg)),
        );
        return;
    }
    if let Some(i) = find_frame(t, |n| n == "__fortify_fail" || n == "__chk_fail") {
        f.classify(names::CONSTRAINT_VIOLATION);
        let call = t.frames[i + 1..]
            .iter()
            .map(base_name)
            .find(|n| n.ends_with("_chk") && n != "__chk_fail")
            .unwrap_or_else(|| "a fortified call".into());
        let msg = messages::abort_msg(reader);
        f.annotate(
            Scope::Frame(t.tid, i as u32),
            Severity::Error,
            SOURCE,
            format!(
                "buffer overflow caught by _FORTIFY_SOURCE in {call}: the size exceeds the destination object{}",
                quoted(&msg)
            ),
        );
        return;
    }
    if let Some(i) = find_frame(t, |n| n == "malloc_printerr") {
        let msg = messages::abort_msg(reader).unwrap_or_default();
        // "double free or corruption (…)" is ambiguous: the chunk decides. Without
        // it, (out) — a chunk outside the arena — is taken as corruption.
        let (double, evidence) = if msg.contains("double free or corruption") {
            match heap::double_free_or_corruption(t, i, reader) {
                Some((d, why)) => (d, Some(why)),
                None => (!msg.contains("(out)"), Some("the chunk could not be read to tell which".to_string())),
            }
        } else {
            (msg.contains("double free"), None)
        };
        f.classify(if double { names::DOUBLE_FREE } else { names::HEAP_CORRUPTION });
        f.annotate(
            Scope::Frame(t.tid, i as u32),
            Severity::Error,
            SOURCE,
            match (msg.is_empty(), evidence) {
                (true, _) => "glibc malloc detected heap corruption (message not readable)".to_string(),
                (false, None) => format!("glibc malloc: {msg}"),
                (false, Some(why)) => format!("glibc malloc: {msg}; {why}"),
            },
        );
        heap::malloc_error_constraint(t, i, &msg, reader, f);
        return;
    }
    if let Some(i) = find_frame(t, |n| {
        ["__assert_fail", "__assert_perror_fail", "__assert_fail_base"].iter().any(|a| messages::is_assert_fn(n, a))
    }) {
        f.classify(names::ASSERT);
        let mut msg = messages::abort_msg(reader);
        let text = match &msg {
            Some(m) => format!("assertion failed: {m}"),
            None => match messages::assert_args(t, reader).or_else(|| messages::assert_base_args(t, reader)) {
                Some(args) => {
                    let m = args.text();
                    let text = format!("assertion failed: {m} (from {}'s arguments)", args.from);
                    msg = Some(m);
                    text
                }
                None => "assertion failed (message not readable)".into(),
            },
        };
        let caller = t.frames[i..].iter().position(|fr| {
            let n = base_name(fr);
            !n.starts_with("__assert")
        });
        let at = caller.map(|c| (i + c) as u32).unwrap_or(i as u32);
        f.annotate(Scope::Frame(t.tid, at), Severity::Error, SOURCE, text);
        if let Some(m) = msg {
            f.attributes.push(("assert".into(), m));
        }
        return;
    }
    let cxx = find_frame(t, |n| {
        n == "__cxa_throw"
            || n == "__cxa_rethrow"
            || n == "std::terminate"
            || n == "__cxxabiv1::__terminate"
            || n == "__gnu_cxx::__verbose_terminate_handler"
            || n == "std::rethrow_exception"
            || n == "__cxa_call_terminate"
    });
    if let Some(i) = cxx {
        f.classify(names::UNCAUGHT_EXCEPTION);
        let ty = messages::exception_type(t, reader);
        let thrower = find_frame(t, |n| n == "__cxa_throw" || n == "__cxa_rethrow" || n == "std::rethrow_exception");
        let at = thrower.map(|k| k + 1).unwrap_or(i) as u32;
        let what = messages::exception_what(t, reader);
        let mut text = match &ty {
            Some(ty) => format!("uncaught C++ exception of type {ty}"),
            None => "uncaught C++ exception (type not recoverable)".to_string(),
        };
        if let Some(w) = &what {
            text.push_str(&format!(": what() = {w:?}"));
        }
        f.annotate(Scope::Frame(t.tid, at), Severity::Error, SOURCE, text);
        if let Some(ty) = ty {
            f.attributes.push(("exception.type".into(), ty));
        }
        if let Some(w) = what {
            f.attributes.push(("exception.what".into(), w));
        }
        return;
    }
    let rust = find_frame(t, |n| {
        n.ends_with("rust_panic_with_hook")
            || n.starts_with("core::panicking::")
            || n == "rust_begin_unwind"
            || n.ends_with("begin_panic_handler")
            || n.starts_with("std::panicking::begin_panic")
            || n == "__rust_start_panic"
    });
    if let Some(i) = rust {
        f.classify(names::RUST_PANIC);
        let p = messages::rust_panic(t, i, reader);
        let mut text = String::from("Rust panic");
        if let Some(loc) = &p.location {
            text.push_str(&format!(" at {loc}"));
        }
        match &p.message {
            Some(m) => text.push_str(&format!(": {m}")),
            None => text.push_str(" (message not recoverable)"),
        }
        let user = t.frames.iter().enumerate().skip(i).find(|(_, fr)| {
            let n = base_name(fr);
            !(n.starts_with("core::") || n.starts_with("std::") || n.starts_with("rust_") || n.starts_with("__rust"))
        });
        let at = user.map(|(k, _)| k).unwrap_or(i) as u32;
        f.annotate(Scope::Frame(t.tid, at), Severity::Error, SOURCE, text);
        if let Some(m) = p.message {
            f.attributes.push(("panic.message".into(), m));
        }
        if let Some(l) = p.location {
            f.attributes.push(("panic.location".into(), l));
        }
        return;
    }
    let aborted = find_frame(t, is_abort_fn);
    // A crash handler that caught a fault and aborted: the fault is the cause.
    if let (Some(_), Some(c)) = (aborted, caught_fault(t, reader)) {
        report_caught(snap, t, &c, "then aborted", f);
        return;
    }
    let self_sent = sig.sender_pid.is_some_and(|p| p == snap.process.pid);
    if aborted.is_some() || (sig.signo == SIGABRT && self_sent) {
        f.classify(names::ABORT);
        let caller = aborted.and_then(|i| {
            t.frames[i..].iter().enumerate().find(|(_, fr)| !is_abort_fn(&base_name(fr))).map(|(k, fr)| (i + k, fr))
        });
        let msg = messages::abort_msg(reader);
        let text = match (&caller, &msg) {
            (Some((_, fr)), _) => {
                format!("abort() called from {}{}", fr.function.as_deref().unwrap_or("??"), quoted(&msg))
            }
            (None, _) => format!("the process aborted itself{}", quoted(&msg)),
        };
        let scope = caller.map(|(k, _)| Scope::Frame(t.tid, k as u32)).unwrap_or(scope);
        f.annotate(scope, Severity::Error, SOURCE, text);
    }
}

/// A sanitizer's report ended the process (ASan, UBSan, MSan or TSan with
/// `abort_on_error`/`halt_on_error`): the tool, and what it reported as far as its
/// report functions tell (the report's text went to stderr, not into the core).
/// The annotation goes on the first frame past the sanitizer's runtime.
fn sanitizer(snap: &Snapshot, t: &Thread, reader: &Reader, f: &mut Findings) -> bool {
    // `__asan::__asan_report_load4`: libasan's DWARF puts its entry points in its namespace.
    let names_of: Vec<String> = t
        .frames
        .iter()
        .map(|fr| {
            let n = base_name(fr);
            match n.split_once("::") {
                Some((ns, rest)) if ns.starts_with("__") && rest.starts_with(ns) => rest.to_string(),
                _ => n,
            }
        })
        .collect();
    let runtime = |n: &str| {
        ["__asan", "__ubsan", "__msan", "__tsan", "__lsan", "__sanitizer", "__interceptor_", "___interceptor_"]
            .iter()
            .any(|p| n.starts_with(p))
    };
    let Some(last) = names_of.iter().rposition(|n| runtime(n)) else { return false };
    let has = |p: &str| names_of.iter().any(|n| n.starts_with(p));
    let access = |kind: &str| {
        names_of.iter().find_map(|n| {
            let rest = n.strip_prefix(kind)?;
            let rest = rest.strip_prefix("exp_").unwrap_or(rest);
            let dir = if rest.starts_with("load") {
                "read"
            } else if rest.starts_with("store") {
                "write"
            } else {
                return None;
            };
            let size: String = rest.chars().filter(char::is_ascii_digit).collect();
            Some((dir, size))
        })
    };
    // The faulty code: past the runtime, and past a signal frame the runtime caught.
    let mut at = last + 1;
    if names_of.get(at).is_some_and(|n| n == "__restore_rt" || n.starts_with("<signal handler")) {
        at += 1;
    }
    let culprit = t.frames.get(at).and_then(|fr| fr.function.clone()).unwrap_or_else(|| "??".into());
    let (tool, kind, what): (&str, Option<&str>, String) = if let Some((dir, size)) = access("__asan_report_") {
        let bytes = if size.is_empty() { String::new() } else { format!(" of {size} bytes") };
        let kind = if dir == "read" { names::INVALID_READ } else { names::INVALID_WRITE };
        (names::ASAN, Some(kind), format!("AddressSanitizer: invalid {dir}{bytes} in {culprit}"))
    } else if has("__asan::ReportDoubleFree") {
        (names::ASAN, Some(names::DOUBLE_FREE), format!("AddressSanitizer: double free in {culprit}"))
    } else if has("__asan::ReportFreeNotMalloced") || has("__asan::ReportAllocTypeMismatch") {
        (names::ASAN, Some(names::INVALID_FREE), format!("AddressSanitizer: bad free in {culprit}"))
    } else if has("__asan::ReportStackOverflow") {
        (names::ASAN, Some(names::STACK_OVERFLOW), format!("AddressSanitizer: stack overflow in {culprit}"))
    } else if has("__asan::ReportDeadlySignal") || has("__sanitizer::HandleDeadlySignal") {
        match caught_fault(t, reader) {
            Some(c) => {
                f.classify(c.direction);
                if c.null {
                    f.classify(names::NULL_DEREFERENCE);
                }
                // ASan reports a fault on the stack's guard as `stack-overflow`.
                stack_overflow(snap, t, c.sp, Some(c.address), f);
                let what = format!(
                    "AddressSanitizer caught a SIGSEGV in {culprit}: {} at {:#x}",
                    c.direction.replace('-', " "),
                    c.address
                );
                (names::ASAN, None, what)
            }
            None => (names::ASAN, None, format!("AddressSanitizer caught a fatal signal in {culprit}")),
        }
    } else if let Some(call) = names_of.iter().find_map(|n| n.trim_start_matches('_').strip_prefix("interceptor_")) {
        // A libc call's arguments checked by its interceptor (strcpy, memcpy …): the
        // report says whether the source or the destination was bad; the frames do not.
        (names::ASAN, None, format!("AddressSanitizer: bad memory passed to {call}() by {culprit}"))
    } else if has("__asan") {
        (names::ASAN, None, format!("AddressSanitizer stopped the process in {culprit}"))
    } else if has("__msan") {
        (
            names::MSAN,
            Some(names::UNINITIALIZED_READ),
            format!("MemorySanitizer: use of an uninitialized value in {culprit}"),
        )
    } else if has("__tsan") {
        let kind = has("__tsan::ReportRace").then_some(names::DATA_RACE);
        (names::TSAN, kind, format!("ThreadSanitizer stopped the process in {culprit}"))
    } else if let Some(h) = names_of.iter().find_map(|n| n.strip_prefix("__ubsan_handle_")) {
        let check = h.trim_end_matches("_abort").trim_end_matches("_v1").replace('_', " ");
        (names::UBSAN, Some(names::UNDEFINED_BEHAVIOR), format!("UndefinedBehaviorSanitizer: {check} in {culprit}"))
    } else {
        return false;
    };
    f.classify(tool);
    if let Some(k) = kind {
        f.classify(k);
    }
    let scope = if at < t.frames.len() { Scope::Frame(t.tid, at as u32) } else { Scope::Thread(t.tid) };
    f.annotate(scope, Severity::Error, SOURCE, what);
    true
}

/// A page fault that a signal handler caught (and then aborted): read from the
/// kernel's signal frame on the stack. At the trampoline's frame (`__restore_rt`)
/// the stack holds the `ucontext`, whose machine context keeps the trap number, the
/// page-fault error code and the faulting address (`cr2`); the saved `rip` must be
/// the interrupted frame's pc, or the layout is not trusted.
struct CaughtFault {
    direction: &'static str,
    null: bool,
    address: u64,
    /// The interrupted code's stack pointer.
    sp: u64,
}

/// Classifies and annotates a fault that a signal handler caught; `then` says what the
/// handler did next ("then aborted", "raised SIGSEGV again").
fn report_caught(snap: &Snapshot, t: &Thread, c: &CaughtFault, then: &str, f: &mut Findings) {
    f.classify(c.direction);
    if c.null {
        f.classify(names::NULL_DEREFERENCE);
    }
    stack_overflow(snap, t, c.sp, Some(c.address), f);
    let j = t.frames.iter().position(|fr| base_name(fr) == "__restore_rt").unwrap_or(0);
    let at = t.frames.get(j + 1).and_then(|fr| fr.function.clone()).unwrap_or_else(|| "??".into());
    f.annotate(
        Scope::Frame(t.tid, (j + 1) as u32),
        Severity::Error,
        SOURCE,
        format!(
            "{} at {:#x} in {at}, caught by a signal handler that {then}",
            c.direction.replace('-', " "),
            c.address
        ),
    );
}

fn caught_fault(t: &Thread, reader: &Reader) -> Option<CaughtFault> {
    // struct ucontext: uc_flags, uc_link, uc_stack (24 bytes), then uc_mcontext.
    const MCONTEXT: u64 = 40;
    const RSP: u64 = MCONTEXT + 15 * 8;
    const RIP: u64 = MCONTEXT + 16 * 8;
    const ERR: u64 = MCONTEXT + 19 * 8;
    const TRAPNO: u64 = MCONTEXT + 20 * 8;
    const CR2: u64 = MCONTEXT + 22 * 8;
    const PAGE_FAULT: u64 = 14;
    let j = t.frames.iter().position(|fr| base_name(fr) == "__restore_rt")?;
    let uc = t.frames[j].sp;
    let interrupted = t.frames.get(j + 1)?;
    if reader.u64(uc + RIP)? != interrupted.pc || reader.u64(uc + TRAPNO)? != PAGE_FAULT {
        return None;
    }
    let (err, address) = (reader.u64(uc + ERR)?, reader.u64(uc + CR2)?);
    let direction = if err & 16 != 0 {
        names::INVALID_EXECUTE
    } else if err & 2 != 0 {
        names::INVALID_WRITE
    } else {
        names::INVALID_READ
    };
    Some(CaughtFault { direction, null: address < NULL_LIMIT, address, sp: reader.u64(uc + RSP)? })
}

fn quoted(msg: &Option<String>) -> String {
    match msg {
        Some(m) if !m.is_empty() => format!(": {m:?}"),
        _ => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::snapshot::Frame;

    /// A SIGSEGV with `si_code` `code` (sent by pid 99 when ≤ 0, else a fault at 0x10)
    /// delivered while the thread was inside glibc's malloc.
    fn in_malloc(code: i32) -> Findings {
        let frame = |f: &str, m: &str| Frame {
            function: Some(f.into()),
            module: Some(m.into()),
            pc: 0x1000,
            ..Default::default()
        };
        let thread = Thread {
            tid: 7,
            faulted: true,
            frames: vec![frame("_int_malloc", "libc.so.6"), frame("malloc", "libc.so.6"), frame("make_node", "app")],
            ..Default::default()
        };
        let mut snap = Snapshot { threads: vec![thread], ..Default::default() };
        snap.process.pid = 7;
        snap.signal = Some(crate::snapshot::Signal {
            signo: SIGSEGV,
            name: "SIGSEGV".into(),
            code,
            code_name: if code == 0 { "SI_USER".into() } else { "SEGV_MAPERR".into() },
            fault_address: (code > 0).then_some(0x10),
            tid: 7,
            sender_pid: (code <= 0).then_some(99),
        });
        let memory = crate::capture::CopiedMemory::default();
        let (modules, _) =
            crate::symbols::ModuleSet::load(&[], &[], &[], &memory, &crate::symbols::SymbolOptions::default());
        let reader = Reader::new(std::sync::Arc::new(memory), std::sync::Arc::new(modules));
        let mut f = Findings::default();
        run(&snap, &reader, &mut f);
        f
    }

    #[test]
    fn a_process_killed_inside_malloc_has_no_heap_corruption() {
        let killed = in_malloc(0);
        assert!(killed.has(names::SENT_SIGNAL), "{:?}", killed.classifiers);
        assert!(!killed.has(names::HEAP_CORRUPTION), "{:?}", killed.classifiers);
        // The same frames with a real fault: the allocator read garbage.
        let faulted = in_malloc(1);
        assert!(faulted.has(names::HEAP_CORRUPTION), "{:?}", faulted.classifiers);
    }

    #[test]
    fn base_names() {
        let cases = [
            ("__GI_abort", "abort"),
            ("std::terminate()", "std::terminate"),
            ("__cxxabiv1::__terminate(void (*)())", "__cxxabiv1::__terminate"),
            ("core::panicking::panic_fmt::h0123456789abcdef", "core::panicking::panic_fmt"),
            ("foo::operator()", "foo::operator()"),
            ("memcpy@@GLIBC_2.14", "memcpy"),
        ];
        for (input, want) in cases {
            let fr = Frame { function: Some(input.into()), ..Default::default() };
            assert_eq!(base_name(&fr), want, "{input}");
        }
    }
}
