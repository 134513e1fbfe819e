//! Human-readable text rendering of a snapshot (the default `bt ptrace` output).

use super::{Frame, Snapshot, Thread};
use std::fmt::Write;

/// Options for [`text`].
#[derive(Debug, Clone, Default)]
pub struct TextOptions {
    /// Print registers of frame 0 for each thread.
    pub registers: bool,
    /// Print the problems recorded while tracing.
    pub problems: bool,
}

/// Renders the whole snapshot: a header, then every thread, faulting thread first.
pub fn text(snap: &Snapshot, opts: &TextOptions) -> String {
    let mut out = String::new();
    let p = &snap.process;
    let _ = write!(out, "pid {} ({})", p.pid, if p.exe.is_empty() { &p.comm } else { &p.exe });
    if let Some(sig) = &snap.signal {
        let _ = write!(
            out,
            " {} {}",
            if matches!(snap.source, super::Source::Core(_)) { "killed by" } else { "stopped by" },
            sig.name
        );
        if !sig.code_name.is_empty() {
            let _ = write!(out, " ({})", sig.code_name);
        }
        if let Some(addr) = sig.fault_address {
            let _ = write!(out, " at address {addr:#x}");
        }
        let _ = write!(out, " in thread {}", sig.tid);
    }
    out.push('\n');
    if !snap.classifiers.is_empty() {
        let _ = writeln!(out, "classifiers: {}", snap.classifiers.join(" "));
    }
    for a in &snap.annotations {
        let sev = match a.severity {
            super::Severity::Info => "info",
            super::Severity::Warning => "warning",
            super::Severity::Error => "error",
        };
        let at = match &a.scope {
            super::Scope::Snapshot => String::new(),
            super::Scope::Thread(tid) => format!(" [thread {tid}]"),
            super::Scope::Frame(tid, idx) => format!(" [thread {tid} #{idx}]"),
            super::Scope::Module(m) => format!(" [{m}]"),
            super::Scope::Variable(tid, idx, name) => format!(" [thread {tid} #{idx} {name}]"),
        };
        let _ = writeln!(out, "{sev}{at}: {} ({})", a.text, a.source);
    }
    for t in &snap.threads {
        out.push('\n');
        thread(&mut out, t, opts);
    }
    if !snap.globals.is_empty() {
        out.push_str("\nglobals:\n");
        for v in &snap.globals {
            let _ = writeln!(out, "  {} = {}", v.name, v.text);
        }
    }
    if opts.problems && !snap.problems.is_empty() {
        out.push_str("\nproblems:\n");
        for pr in &snap.problems {
            let _ = writeln!(out, "  {:?}: {}", pr.scope, pr.message);
        }
    }
    out
}

fn thread(out: &mut String, t: &Thread, opts: &TextOptions) {
    let _ = writeln!(
        out,
        "Thread {} \"{}\"{}{}",
        t.tid,
        t.name,
        if t.state.is_empty() { String::new() } else { format!(" [{}]", t.state) },
        if t.faulted { " (faulted)" } else { "" }
    );
    if opts.registers {
        for (name, value) in t.registers.named().iter().take(17) {
            let _ = writeln!(out, "    {name:<6} {value:#018x}");
        }
    }
    for (idx, f) in t.frames.iter().enumerate() {
        // The trampoline is the signal frame whose caller is also a signal frame
        // (the interrupted one); only it gets gdb's "<signal handler called>".
        let trampoline =
            f.signal_frame && t.frames[idx + 1..].iter().find(|n| !n.inlined).is_some_and(|n| n.signal_frame);
        frame_line(out, idx, f, trampoline);
        // Like gdb's `bt full`: the frame's variables, indented under it.
        for v in &f.variables {
            let _ = writeln!(out, "        {} = {}", v.name, v.text);
        }
    }
}

/// `#N  0xPC in function (file:line) [module]`; inlined frames print no pc, as gdb does.
pub fn frame_line(out: &mut String, idx: usize, f: &Frame, trampoline: bool) {
    let _ = write!(out, "#{idx:<3}");
    if !f.inlined {
        let _ = write!(out, "{:#018x} in ", f.pc);
    } else {
        out.push_str("[inlined]          ");
    }
    out.push_str(f.function.as_deref().unwrap_or("??"));
    match (&f.file, f.line) {
        (Some(file), Some(line)) => {
            let _ = write!(out, " ({file}:{line})");
        }
        (Some(file), None) => {
            let _ = write!(out, " ({file})");
        }
        _ => {}
    }
    if let Some(m) = &f.module {
        let m = m.strip_prefix('[').and_then(|m| m.strip_suffix(']')).unwrap_or(m);
        let _ = write!(out, " [{m}+{:#x}]", f.module_offset);
    }
    match f.trust {
        super::Trust::Scan => out.push_str(" <scan: suspect>"),
        super::Trust::FramePointer => out.push_str(" <frame pointer>"),
        _ => {}
    }
    if trampoline {
        out.push_str(" <signal handler called>");
    }
    out.push('\n');
}
