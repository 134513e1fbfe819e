//! The Peripheral pane's nine tabs as lines of text, each with a highlight
//! class: Summary, Registers, Maps, Modules, Attributes, Environment, Memory,
//! Source, Kernel. Everything comes from the snapshot; the Source tab alone reads
//! the file named by the frame, and says so when it cannot.

use super::model::{Hydra, Pane};
use crate::snapshot::{Memory, Regions, Scope, Snapshot};

/// How a line is drawn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hl {
    Normal,
    /// A heading.
    Head,
    /// What matters: the fault address, a register pointing at it, the current line.
    Hot,
    /// A value pointing into mapped memory.
    Warm,
    /// Secondary text: "not captured", explanations.
    Dim,
}

pub type Lines = Vec<(String, Hl)>;

/// The lines of the current tab.
pub fn lines(h: &mut Hydra) -> Lines {
    let mut out = match h.tab {
        1 => summary(h),
        2 => registers(h),
        3 => maps(&h.snap),
        4 => modules(&h.snap),
        5 => attributes(&h.snap),
        6 => environment(&h.snap),
        7 => memory(h),
        8 => source(h),
        _ => kernel(h),
    };
    let q = h.filters[Pane::Peripheral.index()].to_lowercase();
    if !q.is_empty() {
        out.retain(|(l, _)| l.to_lowercase().contains(&q));
    }
    out
}

fn push(out: &mut Lines, s: impl Into<String>, hl: Hl) {
    out.push((s.into(), hl));
}

fn summary(h: &mut Hydra) -> Lines {
    let s = &h.snap;
    let mut out = Lines::new();
    match &s.signal {
        Some(sig) => {
            push(&mut out, format!("{} ({}) {} in thread {}", sig.name, sig.signo, sig.code_name, sig.tid), Hl::Hot);
            if let Some(a) = sig.fault_address {
                push(&mut out, format!("fault address 0x{a:x}"), Hl::Hot);
            }
            if let Some(p) = sig.sender_pid {
                push(&mut out, format!("sent by pid {p}"), Hl::Normal);
            }
        }
        None => push(&mut out, "no signal: a live snapshot", Hl::Normal),
    }
    if !s.classifiers.is_empty() {
        push(&mut out, format!("classifiers: {}", s.classifiers.join(" ")), Hl::Hot);
    }
    if !s.annotations.is_empty() {
        push(&mut out, "Annotations", Hl::Head);
        for a in &s.annotations {
            let at = match &a.scope {
                Scope::Snapshot => String::new(),
                Scope::Thread(t) => format!("thread {t}: "),
                Scope::Frame(t, f) => format!("thread {t} frame {f}: "),
                Scope::Module(m) => format!("{m}: "),
                Scope::Variable(t, f, v) => format!("thread {t} frame {f} {v}: "),
            };
            push(&mut out, format!("  [{}] {at}{}", a.source, a.text), Hl::Normal);
        }
    }
    push(&mut out, "Process", Hl::Head);
    push(
        &mut out,
        format!("  pid {}  ppid {}  uid {}  gid {}", s.process.pid, s.process.ppid, s.process.uid, s.process.gid),
        Hl::Normal,
    );
    push(&mut out, format!("  exe {}", s.process.exe), Hl::Normal);
    push(&mut out, format!("  cmdline {}", s.process.cmdline.join(" ")), Hl::Normal);
    let source = match &s.source {
        crate::snapshot::Source::Live => "a live process".to_string(),
        crate::snapshot::Source::Core(p) => format!("core {p}"),
    };
    push(&mut out, format!("  from {source}, {} threads, uuid {}", s.threads.len(), s.uuid), Hl::Normal);
    let keys = ["application", "version", "hostname", "fingerprint", "callstack", "uname.sysname", "uname.release"];
    let origin = h.origin.clone();
    if !origin.is_empty() {
        push(&mut out, "Store", Hl::Head);
        for (k, v) in &origin {
            push(&mut out, format!("  {k}: {v}"), Hl::Normal);
        }
    }
    let attrs: Vec<_> = s.attributes.iter().filter(|a| keys.contains(&a.key.as_str())).collect();
    if !attrs.is_empty() {
        push(&mut out, "Key attributes", Hl::Head);
        for a in attrs {
            push(&mut out, format!("  {} = {}", a.key, a.value), Hl::Normal);
        }
    }
    if !s.problems.is_empty() {
        push(&mut out, format!("Problems ({})", s.problems.len()), Hl::Head);
        for p in s.problems.iter().take(50) {
            push(&mut out, format!("  {}", p.message), Hl::Dim);
        }
    }
    out
}

/// Whether `a` lies in a mapping of the snapshot.
fn mapped(s: &Snapshot, a: u64) -> bool {
    s.maps.iter().any(|m| m.start <= a && a < m.end)
}

fn registers(h: &mut Hydra) -> Lines {
    let mut out = Lines::new();
    let (Some(t), Some(f)) = (h.thread(), h.frame()) else { return out };
    let s = &h.snap;
    let th = &s.threads[t];
    let fault = s.signal.as_ref().and_then(|g| g.fault_address);
    let fr = &th.frames[f];
    // Frame 0 (and inlined frames sharing its pc) have the thread's registers; a
    // caller frame has only what unwinding recovered.
    let physical0 = th.frames.iter().take(f).all(|x| x.inlined);
    push(&mut out, format!("frame #{f} of thread {}", th.tid), Hl::Head);
    if physical0 {
        for (name, v) in th.registers.named() {
            out.push(reg_line(s, name, v, false, fault));
        }
    } else {
        let regs = if fr.inlined {
            th.frames[f..].iter().find(|x| !x.inlined).map(|x| x.registers.clone()).unwrap_or_default()
        } else {
            fr.registers.clone()
        };
        push(&mut out, format!("rip 0x{:016x}  (the frame's pc)", fr.pc), Hl::Normal);
        push(&mut out, format!("rsp 0x{:016x}  (the frame's sp)", fr.sp), Hl::Normal);
        if regs.is_empty() {
            push(&mut out, "no other register recovered for this frame", Hl::Dim);
        }
        for (n, v) in regs {
            out.push(reg_line(s, dwarf_name(n), v, true, fault));
        }
    }
    out
}

fn reg_line(s: &Snapshot, name: &str, v: u64, recovered: bool, fault: Option<u64>) -> (String, Hl) {
    let mut text = format!("{name:<8} 0x{v:016x} {v:>20}");
    if recovered {
        text.push_str("  recovered");
    }
    if fault == Some(v) && v != 0 {
        text.push_str("  = fault address");
        return (text, Hl::Hot);
    }
    if v > 0xfff && mapped(s, v) {
        text.push_str("  → mapped");
        return (text, Hl::Warm);
    }
    (text, Hl::Normal)
}

fn dwarf_name(n: u16) -> &'static str {
    const NAMES: [&str; 17] = [
        "rax", "rdx", "rcx", "rbx", "rsi", "rdi", "rbp", "rsp", "r8", "r9", "r10", "r11", "r12", "r13", "r14", "r15",
        "rip",
    ];
    match n {
        0..=16 => NAMES[n as usize],
        49 => "eflags",
        58 => "fs_base",
        59 => "gs_base",
        _ => "dwarf?",
    }
}

fn maps(s: &Snapshot) -> Lines {
    let fault = s.signal.as_ref().and_then(|g| g.fault_address);
    let mut out = vec![(format!("{} mappings", s.maps.len()), Hl::Head)];
    for m in &s.maps {
        let hot = fault.is_some_and(|a| m.start <= a && a < m.end);
        out.push((
            format!(
                "{:012x}-{:012x} {} {:8x} {}{}",
                m.start,
                m.end,
                m.perms,
                m.offset,
                m.path,
                if hot { "  ← fault" } else { "" }
            ),
            if hot { Hl::Hot } else { Hl::Normal },
        ));
    }
    out
}

fn modules(s: &Snapshot) -> Lines {
    let mut out = vec![(format!("{} modules", s.modules.len()), Hl::Head)];
    for m in &s.modules {
        out.push((format!("{:012x}-{:012x} {}", m.start, m.end, m.path), Hl::Normal));
        let debug = match (&m.debug.found, &m.debug.path) {
            (true, Some(p)) => format!("debug info from {p}"),
            (true, None) => "debug info in the module".into(),
            _ => "no debug info".into(),
        };
        out.push((
            format!(
                "    build id {}  bias 0x{:x}  {debug}{}{}",
                m.build_id.as_deref().unwrap_or("none"),
                m.load_bias,
                if m.debug.symbols { ", symbols" } else { ", no symbols" },
                if m.debug.unwind { ", unwind info" } else { "" }
            ),
            Hl::Dim,
        ));
    }
    out
}

fn attributes(s: &Snapshot) -> Lines {
    let mut out = vec![(format!("{} attributes", s.attributes.len()), Hl::Head)];
    for a in &s.attributes {
        out.push((format!("{} = {}", a.key, a.value), Hl::Normal));
    }
    out
}

fn environment(s: &Snapshot) -> Lines {
    let e = &s.environment;
    let mut out = Lines::new();
    push(&mut out, format!("host {}", e.hostname), Hl::Head);
    push(
        &mut out,
        format!("{} {} {} {}", e.uname.sysname, e.uname.release, e.uname.version, e.uname.machine),
        Hl::Normal,
    );
    push(&mut out, format!("cpus {}", e.cpu_count), Hl::Normal);
    if let Some([a, b, c]) = e.loadavg {
        push(&mut out, format!("load {a:.2} {b:.2} {c:.2}"), Hl::Normal);
    }
    if let Some(u) = e.uptime {
        push(&mut out, format!("uptime {:.0} s", u), Hl::Normal);
    }
    if !e.meminfo.is_empty() {
        push(&mut out, "Memory (kB)", Hl::Head);
        for (k, v) in &e.meminfo {
            push(&mut out, format!("  {k:<16} {v}"), Hl::Normal);
        }
    }
    if !e.status.is_empty() {
        push(&mut out, "Process status", Hl::Head);
        for (k, v) in &e.status {
            push(&mut out, format!("  {k:<16} {v}"), Hl::Normal);
        }
    }
    if !e.limits.is_empty() {
        push(&mut out, "Limits (soft / hard)", Hl::Head);
        for l in &e.limits {
            push(&mut out, format!("  {:<26} {} / {} {}", l.name, l.soft, l.hard, l.units), Hl::Normal);
        }
    }
    out
}

/// The address the Memory tab shows: the selected variable's target, else its
/// address, else the fault address, else the selected frame's stack pointer.
pub fn memory_address(h: &mut Hydra) -> Option<(u64, String)> {
    if let Some(r) = h.var() {
        if let Some(a) = r.points_to.filter(|a| *a != 0) {
            return Some((a, format!("what {} points to", r.path)));
        }
        if let Some(a) = r.address {
            return Some((a, format!("{} itself", r.path)));
        }
    }
    if let Some(a) = h.snap.signal.as_ref().and_then(|s| s.fault_address).filter(|a| *a != 0) {
        return Some((a, "the fault address".into()));
    }
    let (t, f) = (h.thread()?, h.frame()?);
    Some((h.snap.threads[t].frames[f].sp, "the frame's stack pointer".into()))
}

fn memory(h: &mut Hydra) -> Lines {
    let mut out = Lines::new();
    let Some((addr, why)) = memory_address(h) else {
        push(&mut out, "nothing selected", Hl::Dim);
        return out;
    };
    push(&mut out, format!("0x{addr:x}: {why}"), Hl::Head);
    let regions = Regions::new(&h.snap.memory);
    let start = addr & !0xf;
    let mut any = false;
    for row in 0..32u64 {
        let at = start.wrapping_add(row * 16);
        let mut hex = String::new();
        let mut ascii = String::new();
        for i in 0..16u64 {
            let mut b = [0u8];
            if regions.read(at.wrapping_add(i), &mut b) == 1 {
                any = true;
                hex.push_str(&format!("{:02x} ", b[0]));
                ascii.push(if b[0].is_ascii_graphic() || b[0] == b' ' { b[0] as char } else { '.' });
            } else {
                hex.push_str("?? ");
                ascii.push(' ');
            }
            if i == 7 {
                hex.push(' ');
            }
        }
        let hot = at <= addr && addr < at + 16;
        out.push((format!("{at:016x}  {hex} |{ascii}|"), if hot { Hl::Hot } else { Hl::Normal }));
    }
    if !any {
        out.insert(1, ("not captured: the snapshot keeps no byte of this range (?? = not captured)".into(), Hl::Dim));
    } else {
        push(&mut out, "?? = not captured in the snapshot", Hl::Dim);
    }
    out
}

/// Source lines shown around the current line.
const CONTEXT: usize = 12;

fn source(h: &mut Hydra) -> Lines {
    let mut out = Lines::new();
    let (Some(t), Some(f)) = (h.thread(), h.frame()) else { return out };
    let fr = &h.snap.threads[t].frames[f];
    let (Some(file), Some(line)) = (&fr.file, fr.line) else {
        push(&mut out, "no source line for this frame (no debug info)", Hl::Dim);
        return out;
    };
    let line = line as usize;
    push(&mut out, format!("{file}:{line}"), Hl::Head);
    match std::fs::read(file) {
        Ok(bytes) => {
            let text = String::from_utf8_lossy(&bytes);
            let from = line.saturating_sub(CONTEXT).max(1);
            for (i, l) in text.lines().enumerate().skip(from - 1).take(2 * CONTEXT + 1) {
                let n = i + 1;
                let mark = if n == line { "→" } else { " " };
                out.push((
                    format!("{mark}{n:>5}  {}", l.replace('\t', "    ")),
                    if n == line { Hl::Hot } else { Hl::Normal },
                ));
            }
        }
        Err(e) => push(&mut out, format!("the source file is not readable on this machine: {e}"), Hl::Dim),
    }
    out
}

fn kernel(h: &mut Hydra) -> Lines {
    let mut out = Lines::new();
    let Some(t) = h.thread() else { return out };
    let tid = h.snap.threads[t].tid;
    let stacks = h.snap.kernel_stacks();
    push(&mut out, format!("kernel stack of thread {tid}"), Hl::Head);
    match stacks {
        None => push(&mut out, "not captured (only a live process as root has /proc/PID/task/TID/stack)", Hl::Dim),
        Some(all) => match all.into_iter().find(|(x, _)| *x == tid) {
            Some((_, text)) if !text.trim().is_empty() => {
                for l in text.lines() {
                    push(&mut out, l.to_string(), Hl::Normal);
                }
            }
            _ => push(&mut out, "empty (the thread was not in the kernel, or the stack was not readable)", Hl::Dim),
        },
    }
    out
}
