//! Human-readable text rendering of a snapshot (the default `bt ptrace` output).

use super::{Frame, Snapshot, Thread, Variable};
use std::borrow::Cow;
use std::fmt::Write;

/// Text from a crash report or a target, made safe to print on a terminal: every
/// control character (C0, DEL, C1: ESC, BEL, CR, BS, a newline inside a name …)
/// and the bidirectional overrides ("Trojan Source") are written as escapes
/// (`\x1b`, `\n`, `\u{202e}`), so a thread name or an attribute cannot move
/// the cursor, retitle the window, hide text or forge lines.
pub fn for_terminal(s: &str) -> Cow<'_, str> {
    // Printable ASCII, most text, is checked 16 bytes at a time (megabytes of
    // variables for a thousand threads go through here).
    if printable_ascii(s.as_bytes()) {
        return Cow::Borrowed(s);
    }
    let unsafe_char = |c: char| c.is_control() || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}');
    if !s.chars().any(unsafe_char) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x100 && unsafe_char(c) => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c if unsafe_char(c) => {
                let _ = write!(out, "\\u{{{:x}}}", c as u32);
            }
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

/// Every byte in 0x20..0x7f. Whole chunks are tested without an early exit, so
/// the compiler turns each into a few vector instructions.
fn printable_ascii(b: &[u8]) -> bool {
    let printable = |x: u8| x.wrapping_sub(0x20) < 0x5f;
    let mut chunks = b.chunks_exact(16);
    for c in &mut chunks {
        if !c.iter().fold(true, |ok, &x| ok & printable(x)) {
            return false;
        }
    }
    chunks.remainder().iter().all(|&x| printable(x))
}

/// Short name for [`for_terminal`] in this file's format strings.
fn t(s: &str) -> Cow<'_, str> {
    for_terminal(s)
}

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
    text_parts(snap, opts).concat()
}

/// [`text`] in consecutive parts, to be written one after the other: a thousand
/// threads' text is megabytes, written by several threads, and joining their parts
/// into one string copied it all once more into fresh pages.
pub fn text_parts(snap: &Snapshot, opts: &TextOptions) -> Vec<String> {
    let mut out = String::new();
    let p = &snap.process;
    let _ = write!(out, "pid {} ({})", p.pid, t(if p.exe.is_empty() { &p.comm } else { &p.exe }));
    if let Some(sig) = &snap.signal {
        let _ = write!(
            out,
            " {} {}",
            if matches!(snap.source, super::Source::Core(_)) { "killed by" } else { "stopped by" },
            t(&sig.name)
        );
        if !sig.code_name.is_empty() {
            let _ = write!(out, " ({})", t(&sig.code_name));
        }
        if let Some(addr) = sig.fault_address {
            let _ = write!(out, " at address {addr:#x}");
        }
        let _ = write!(out, " in thread {}", sig.tid);
    }
    out.push('\n');
    if !snap.classifiers.is_empty() {
        let _ = writeln!(out, "classifiers: {}", t(&snap.classifiers.join(" ")));
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
            super::Scope::Module(m) => format!(" [{}]", t(m)),
            super::Scope::Variable(tid, idx, name) => format!(" [thread {tid} #{idx} {}]", t(name)),
        };
        let _ = writeln!(out, "{sev}{at}: {} ({})", t(&a.text), t(&a.source));
    }
    let rest = threads(&mut out, &snap.threads, opts);
    let mut parts = Vec::with_capacity(rest.len() + 2);
    parts.push(out);
    parts.extend(rest);
    let mut out = String::new();
    if let Some(gs) = snap.goroutines_for_text() {
        for g in &gs {
            let status = g.wait_reason.as_deref().unwrap_or(&g.status);
            let _ = write!(out, "\nGoroutine {} [{}]", g.id, t(status));
            if let Some(tid) = g.thread {
                let _ = write!(out, " on thread {tid}");
            }
            out.push_str(if g.panicking { " (panicked)\n" } else { "\n" });
            if let (true, Some(tid)) = (g.frames.is_empty(), g.thread) {
                let _ = writeln!(out, "    (its stack is thread {tid}'s)");
            }
            for (idx, f) in g.frames.iter().enumerate() {
                frame_line(&mut out, idx, f, false);
                variable_lines(&mut out, &f.variables);
            }
        }
    }
    if !snap.globals.is_empty() {
        out.push_str("\nglobals:\n");
        for v in &snap.globals {
            let _ = writeln!(out, "  {} = {}", t(&v.name), t(&v.text));
        }
    }
    if opts.problems && !snap.problems.is_empty() {
        out.push_str("\nproblems:\n");
        for pr in &snap.problems {
            let _ = writeln!(out, "  {}: {}", t(&format!("{:?}", pr.scope)), t(&pr.message));
        }
    }
    if !out.is_empty() {
        parts.push(out);
    }
    parts
}

fn thread(out: &mut String, th: &Thread, opts: &TextOptions) {
    let _ = writeln!(
        out,
        "Thread {} \"{}\"{}{}",
        th.tid,
        t(&th.name),
        if th.state.is_empty() { String::new() } else { format!(" [{}]", t(&th.state)) },
        if th.faulted { " (faulted)" } else { "" }
    );
    let t_frames = &th.frames;
    if opts.registers {
        for (name, value) in th.registers.named().iter().take(17) {
            let _ = writeln!(out, "    {name:<6} {value:#018x}");
        }
    }
    for (idx, f) in t_frames.iter().enumerate() {
        // The trampoline is the signal frame whose caller is also a signal frame
        // (the interrupted one); only it gets gdb's "<signal handler called>".
        let trampoline =
            f.signal_frame && t_frames[idx + 1..].iter().find(|n| !n.inlined).is_some_and(|n| n.signal_frame);
        frame_line(out, idx, f, trampoline);
        variable_lines(out, &f.variables);
    }
}

/// Every thread, each after a blank line: the first ones appended to `out`, the rest
/// returned as the parts that follow it. A thousand threads with their variables
/// are megabytes of text: many threads are written by several threads, in order.
fn threads(out: &mut String, list: &[Thread], opts: &TextOptions) -> Vec<String> {
    // Sized up front from a guess of each line's length: a thousand threads' text is
    // megabytes, and growing it by doubling copied it and faulted in fresh pages
    // several times over.
    let guess = |part: &[Thread]| -> usize {
        part.iter().map(|th| 64 + th.frames.iter().map(|f| 96 + 40 * f.variables.len()).sum::<usize>()).sum()
    };
    let one = |out: &mut String, part: &[Thread]| {
        out.reserve(guess(part));
        for th in part {
            out.push('\n');
            thread(out, th, opts);
        }
    };
    let workers = std::thread::available_parallelism().map_or(1, |n| n.get()).clamp(1, 8);
    if list.len() < 64 || workers == 1 {
        one(out, list);
        return Vec::new();
    }
    let per = list.len().div_ceil(workers);
    std::thread::scope(|s| {
        let mut chunks = list.chunks(per);
        let first = chunks.next().unwrap_or_default();
        let rest: Vec<_> = chunks
            .map(|c| {
                s.spawn(move || {
                    let mut part = String::new();
                    one(&mut part, c);
                    part
                })
            })
            .collect();
        one(out, first);
        // A writer that panicked loses its threads' text, not the whole output.
        rest.into_iter().map(|h| h.join().unwrap_or_else(|_| "\n<text of these threads failed>\n".into())).collect()
    })
}

/// Like gdb's `bt full`: a frame's variables, indented under it.
fn variable_lines(out: &mut String, vars: &[Variable]) {
    for v in vars {
        out.push_str("        ");
        out.push_str(&t(&v.name));
        out.push_str(" = ");
        out.push_str(&t(&v.text));
        out.push('\n');
    }
}

/// `#N  0xPC in function (file:line) [module]`; inlined frames print no pc, as gdb does.
pub fn frame_line(out: &mut String, idx: usize, f: &Frame, trampoline: bool) {
    // Numbers by hand: `write!` was most of the time of a thousand threads' text.
    out.push('#');
    let at = out.len();
    decimal(out, idx as u64);
    for _ in out.len() - at..3 {
        out.push(' ');
    }
    if !f.inlined {
        out.push_str("0x");
        hex(out, f.pc, 16);
        out.push_str(" in ");
    } else {
        out.push_str("[inlined]          ");
    }
    out.push_str(&t(f.function.as_deref().unwrap_or("??")));
    match (&f.file, f.line) {
        (Some(file), Some(line)) => {
            out.push_str(" (");
            out.push_str(&t(file));
            out.push(':');
            decimal(out, u64::from(line));
            out.push(')');
        }
        (Some(file), None) => {
            let _ = write!(out, " ({})", t(file));
        }
        _ => {}
    }
    if let Some(m) = &f.module {
        let m = m.strip_prefix('[').and_then(|m| m.strip_suffix(']')).unwrap_or(m);
        out.push_str(" [");
        out.push_str(&t(m));
        out.push_str("+0x");
        hex(out, f.module_offset, 1);
        out.push(']');
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

/// `n` in decimal.
fn decimal(out: &mut String, mut n: u64) {
    let mut buf = [0u8; 20];
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.push_str(std::str::from_utf8(&buf[i..]).unwrap_or_default());
}

/// `n` in lowercase hex, zero-padded to at least `width` digits (1..=16), no prefix.
fn hex(out: &mut String, n: u64, width: usize) {
    let digits = (16 - n.leading_zeros() as usize / 4).max(width.clamp(1, 16));
    let mut buf = [0u8; 16];
    for (k, b) in buf[..digits].iter_mut().rev().enumerate() {
        *b = b"0123456789abcdef"[((n >> (4 * k)) & 0xf) as usize];
    }
    out.push_str(std::str::from_utf8(&buf[..digits]).unwrap_or_default());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_as_write_would_print_them() {
        for n in [0u64, 1, 9, 10, 15, 16, 255, 0x1234_5678, u64::MAX, u64::MAX / 3, 1 << 63] {
            let (mut d, mut h, mut p) = (String::new(), String::new(), String::new());
            decimal(&mut d, n);
            hex(&mut h, n, 1);
            hex(&mut p, n, 16);
            assert_eq!(d, n.to_string());
            assert_eq!(h, format!("{n:x}"));
            assert_eq!(p, format!("{n:016x}"));
        }
        for (raw, ok) in [("", true), ("abc", true), ("0123456789abcdef0123", true), ("0123456789abcdef\\x7f", true)] {
            assert_eq!(printable_ascii(raw.as_bytes()), ok, "{raw:?}");
        }
        for bad in [0x00u8, 0x1f, 0x7f, 0x80, 0xff] {
            for at in [0, 5, 15, 16, 31, 33] {
                let mut b = vec![b'a'; 40];
                b[at] = bad;
                assert!(!printable_ascii(&b), "{bad:#x} at {at}");
            }
        }
    }

    #[test]
    fn terminal_escapes() {
        for (raw, shown) in [
            ("main", "main"),
            ("a\x1b]0;pwned\x07b", "a\\x1b]0;pwned\\x07b"),
            ("line\nforged", "line\\nforged"),
            ("cr\rbs\x08del\x7f", "cr\\rbs\\x08del\\x7f"),
            ("c1\u{9b}31m", "c1\\x9b31m"),
            ("bidi\u{202e}txt", "bidi\\u{202e}txt"),
            ("ünïcödé ← ok", "ünïcödé ← ok"),
        ] {
            assert_eq!(for_terminal(raw), shown, "{raw:?}");
        }
    }
}

#[cfg(test)]
mod many_threads {
    use super::*;

    /// Many threads are written by several threads: the text is the same, in order.
    #[test]
    fn many_threads_are_written_in_order() {
        let list: Vec<Thread> = (0..301)
            .map(|i| Thread {
                tid: 1000 + i,
                name: format!("worker-{i}"),
                frames: (0..(i % 7) as u64)
                    .map(|k| Frame {
                        pc: 0x1000 + k,
                        function: Some(format!("f{k}")),
                        variables: vec![Variable { name: "i".into(), text: format!("{i}"), ..Default::default() }],
                        ..Default::default()
                    })
                    .collect(),
                ..Default::default()
            })
            .collect();
        let opts = TextOptions::default();
        let mut one_by_one = String::new();
        for th in &list {
            one_by_one.push('\n');
            thread(&mut one_by_one, th, &opts);
        }
        let mut together = String::new();
        let rest = threads(&mut together, &list, &opts);
        if std::thread::available_parallelism().map_or(1, |n| n.get()) > 1 {
            assert!(!rest.is_empty(), "written by several threads, in parts");
        }
        together.extend(rest);
        assert_eq!(together, one_by_one);
        assert!(together.contains("Thread 1300 \"worker-300\""));
    }
}

#[cfg(test)]
mod goroutines {
    use super::*;
    use crate::snapshot::{Goroutine, Trust, Value};

    /// The goroutines' text reads the extension without the structured values, and
    /// shows what the whole goroutines show.
    #[test]
    fn goroutine_text_skips_only_what_it_does_not_show() {
        let var = |name: &str, text: &str| Variable {
            name: name.into(),
            text: text.into(),
            type_name: "runtime.g *".into(),
            value: Value::Pointer { address: 0xc000, symbol: None, target: Some(Box::new(Value::Int(7))) },
            ..Default::default()
        };
        let frame = |pc: u64, function: &str, vars: Vec<Variable>| Frame {
            pc,
            sp: 0x7000,
            module: Some("gor".into()),
            module_offset: pc - 0x1000,
            function: Some(function.into()),
            file: Some("/src/main.go".into()),
            line: Some(20),
            trust: Trust::Cfi,
            registers: vec![(6, 0x7000)],
            variables: vars,
            ..Default::default()
        };
        let gs = vec![
            Goroutine {
                id: 7,
                status: "waiting".into(),
                wait_reason: Some("chan receive".into()),
                thread: None,
                panicking: false,
                frames: vec![
                    frame(0x4343d6, "runtime.gopark", vec![var("gp", "0xc000")]),
                    frame(0x4832c5, "main.work", vec![var("i", "494"), var("name", "\"w494\"")]),
                ],
            },
            Goroutine { id: 1, status: "running".into(), thread: Some(42), panicking: true, ..Default::default() },
        ];
        let mut snap = Snapshot::default();
        snap.set_goroutines(&gs);
        let lean = snap.goroutines_for_text().expect("the extension reads");
        let full = snap.goroutines().expect("the extension reads");
        assert_eq!(full, gs);
        assert_eq!(lean.len(), gs.len());
        for (l, g) in lean.iter().zip(&gs) {
            assert_eq!(
                (l.id, &l.status, &l.wait_reason, l.thread, l.panicking),
                (g.id, &g.status, &g.wait_reason, g.thread, g.panicking)
            );
            let mut a = String::new();
            let mut b = String::new();
            for (idx, (lf, gf)) in l.frames.iter().zip(&g.frames).enumerate() {
                frame_line(&mut a, idx, lf, false);
                variable_lines(&mut a, &lf.variables);
                frame_line(&mut b, idx, gf, false);
                variable_lines(&mut b, &gf.variables);
            }
            assert_eq!(a, b);
            assert!(l.frames.iter().flat_map(|f| &f.variables).all(|v| v.value == Value::OptimizedOut), "not built");
        }
        let text = text(&snap, &TextOptions::default());
        assert!(text.contains("Goroutine 7 [chan receive]\n#0  0x00000000004343d6 in runtime.gopark (/src/main.go:20) [gor+0x4333d6]\n        gp = 0xc000\n"), "{text}");
        assert!(
            text.contains("Goroutine 1 [running] on thread 42 (panicked)\n    (its stack is thread 42's)\n"),
            "{text}"
        );
    }
}
