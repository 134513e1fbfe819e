//! Stack walking: DWARF CFI (.eh_frame via .eh_frame_hdr, .debug_frame), signal
//! frames, frame pointers, and stack scanning as a last resort. Every walk terminates:
//! it is capped at `max_frames`, and every step must move the stack pointer up
//! (except across a signal frame, whose interrupted stack may be anywhere).
//!
//! Conventions for the frames produced:
//! - frame 0 is `Trust::Context`; callers are `Cfi`, `FramePointer` or `Scan`;
//! - `signal_frame` is set on the `__restore_rt` trampoline frame AND on the frame the
//!   signal interrupted: both pcs are exact (not return addresses), so the symbolizer
//!   and the CFI lookup use `pc`, not `pc - 1`, for them;
//! - a caller frame with no `registers` is a tail-call frame (see `insert_tail_calls`);
//! - `registers` holds what was recovered for caller frames, DWARF numbered: always
//!   rsp (7) and rip (16), callee-saved registers (rbx, rbp, r12–r15) when known, and
//!   caller-saved ones only when a rule recovered them.

mod cfi;
mod heuristics;
mod sigframe;

use crate::capture::Memory;
use crate::snapshot::{Frame, Problem, Registers, Scope, Trust};
use crate::symbols::{ModuleSet, ShardedCache};
use cfi::{N_REGS, RIP, RSP, Regs};

#[derive(Debug, Clone)]
pub struct WalkOptions {
    pub max_frames: usize,
}

impl Default for WalkOptions {
    fn default() -> Self {
        WalkOptions { max_frames: 1024 }
    }
}

/// How far the stack scan looks above sp for a return address, in words.
const SCAN_WORDS: u64 = 1024;
const RBP: usize = 6;

/// The next (caller) frame found by one step.
struct Step {
    regs: Regs,
    trust: Trust,
    /// The caller's pc is exact (it was interrupted by a signal).
    interrupted: bool,
    /// The current frame is a signal trampoline.
    callee_is_trampoline: bool,
    /// The caller resumes at a function's first instruction, on the frame its frame
    /// pointer links (see [`chain_return`]): its pc is exact, and only its frame
    /// pointer leads further.
    resumed: bool,
    /// Registers (bit per DWARF number) the caller has as the callee had them: a
    /// guess about one stays a guess.
    carried: u32,
    /// Registers given a value the walk may follow but nothing else may trust: the
    /// rbp a stack scan carries up past a function that may have changed it.
    guessed: u32,
}

impl Step {
    fn new(regs: Regs, trust: Trust) -> Step {
        Step { regs, trust, interrupted: false, callee_is_trampoline: false, resumed: false, carried: 0, guessed: 0 }
    }
}

/// The callee-saved registers as a mask of [`Step::carried`].
const CALLEE_SAVED_MASK: u32 = {
    let mut mask = 0;
    let mut i = 0;
    while i < cfi::CALLEE_SAVED.len() {
        mask |= 1 << cfi::CALLEE_SAVED[i];
        i += 1;
    }
    mask
};

// A step's registers are moved once per frame; boxing them would cost more than it saves.
#[allow(clippy::large_enum_variant)]
enum Outcome {
    Caller(Step),
    /// The walk reached the outermost frame (return address undefined by CFI).
    End,
    /// The walk cannot go on; the message says why.
    Stuck(String),
}

fn regs_from(r: &Registers) -> Regs {
    let mut out: Regs = [None; N_REGS];
    for (i, slot) in out.iter_mut().enumerate() {
        *slot = r.by_dwarf(i as u16);
    }
    out
}

/// A frame's registers: those the walk knows, less the `guessed` ones (a bit per
/// DWARF number).
fn frame_registers(regs: &Regs, guessed: u32) -> Vec<(u16, u64)> {
    let known = |i: usize| guessed & (1 << i) == 0;
    // Sized once: collecting from a filter grew the vector twice for the usual eight.
    let mut out = Vec::with_capacity(regs.iter().enumerate().filter(|(i, v)| v.is_some() && known(*i)).count());
    out.extend(regs.iter().enumerate().filter(|(i, _)| known(*i)).filter_map(|(i, v)| v.map(|v| (i as u16, v))));
    out
}

/// What a JIT runtime knows of its own frames (a JVM's code cache), for the frames no
/// module describes. `exact`: `pc` is where the frame stopped, not a return address.
pub trait JitFrames: Sync {
    /// The size in bytes of the frame of compiled code at `pc`, once its prologue has
    /// run: its return address is at sp + size - 8, the caller's rbp at sp + size - 16.
    fn frame_size(&self, pc: u64, exact: bool, memory: &dyn Memory) -> Option<u64>;
    /// For an interpreted frame at `pc` whose frame pointer is `fp`: its caller's sp,
    /// as the frame recorded it (an adapter from compiled code may have grown the
    /// stack between the two).
    fn sender_sp(&self, pc: u64, exact: bool, fp: u64, memory: &dyn Memory) -> Option<u64>;
    /// Whether `addr` is in code the runtime knows (where a compiled frame may return
    /// to after no call: a JVM's interpreter pushes its return address and jumps).
    fn knows_code(&self, addr: u64, memory: &dyn Memory) -> bool;
}

/// The unwinder of one module set: it owns its per-module caches (CFI rules,
/// decompressed `.debug_frame`), so the symbolizer knows nothing of unwinding.
/// `Sync`: the threads of one trace share it.
pub struct Unwinder<'m> {
    pub(crate) modules: &'m ModuleSet,
    caches: Vec<cfi::ModuleCache>,
    /// The tail-call chain found between a caller's return address and its callee's
    /// pc (usually none), by those two pcs: the threads of a pool share their frames.
    tails: ShardedCache<(u64, u64), std::sync::Arc<[u64]>>,
    /// A JIT runtime's account of its frames, when the trace found one.
    jit: Option<&'m dyn JitFrames>,
}

impl<'m> Unwinder<'m> {
    pub fn new(modules: &'m ModuleSet) -> Unwinder<'m> {
        Unwinder {
            modules,
            caches: (0..modules.len()).map(|_| cfi::ModuleCache::default()).collect(),
            tails: Default::default(),
            jit: None,
        }
    }

    /// Frames of JIT code are unwound with what the runtime says of them.
    pub fn with_jit(mut self, jit: &'m dyn JitFrames) -> Unwinder<'m> {
        self.jit = Some(jit);
        self
    }

    pub(crate) fn cache(&self, idx: usize) -> Option<&cfi::ModuleCache> {
        self.caches.get(idx)
    }

    /// Walks one thread's stack from its registers (see [`walk`]).
    pub fn walk(&self, regs: &Registers, memory: &dyn Memory, opts: &WalkOptions) -> (Vec<Frame>, Vec<Problem>) {
        walk_with(self, regs, memory, opts)
    }
}

/// Walks one thread's stack from its registers. Returns physical frames
/// (pc, sp, trust, signal_frame, registers filled; names not yet) and problems met.
/// A trace walks many threads through one [`Unwinder`] to share its caches.
pub fn walk(
    regs: &Registers,
    memory: &dyn Memory,
    modules: &ModuleSet,
    opts: &WalkOptions,
) -> (Vec<Frame>, Vec<Problem>) {
    Unwinder::new(modules).walk(regs, memory, opts)
}

fn walk_with(
    u: &Unwinder<'_>,
    regs: &Registers,
    memory: &dyn Memory,
    opts: &WalkOptions,
) -> (Vec<Frame>, Vec<Problem>) {
    let modules = u.modules;
    let max = opts.max_frames.max(1);
    // Room for a typical stack up front: growing a vector of frames (200 bytes each)
    // by doubling copied them four times per thread.
    let mut frames = Vec::with_capacity(max.min(32));
    frames.push(Frame { pc: regs.rip, sp: regs.rsp, trust: Trust::Context, ..Default::default() });
    let mut problems = Vec::new();
    let mut cur = regs_from(regs);
    let mut exact = true;
    let mut resumed = false;
    // Registers of `cur` the walk follows but a frame does not report (Step::guessed).
    let mut guessed = 0u32;
    // The frame pointers of a chain through JIT code already vouched for (see
    // `jit_chain_vouched`): its links are not looked ahead from again.
    let mut vouched = JitVouched::default();

    loop {
        let sp = cur[RSP].unwrap_or(0);
        if frames.len() >= max {
            problems.push(Problem::new(
                Scope::Snapshot,
                format!("stack truncated at {max} frames (deeper frames not walked)"),
            ));
            break;
        }
        let step = match step(&cur, exact, resumed, frames.len() == 1, memory, u, &mut vouched) {
            Outcome::Caller(s) => s,
            Outcome::End => break,
            Outcome::Stuck(msg) => {
                problems.push(Problem::new(Scope::Snapshot, msg));
                break;
            }
        };
        let new_pc = step.regs[RIP].unwrap_or(0);
        let new_sp = step.regs[RSP].unwrap_or(0);
        if step.callee_is_trampoline
            && let Some(f) = frames.last_mut()
        {
            f.signal_frame = true;
        }
        if new_pc == 0 {
            // Some thread entry points (and corrupted stacks) end in a zero return
            // address; treat it as the end of the stack unless nothing sensible came before.
            break;
        }
        // Termination: the stack must grow up, except across a signal frame (the handler
        // may run on an alternate stack anywhere in memory).
        if !step.callee_is_trampoline && new_sp <= sp {
            problems.push(Problem::new(
                Scope::Snapshot,
                format!(
                    "walk stopped at frame {}: stack pointer did not increase ({sp:#x} -> {new_sp:#x})",
                    frames.len()
                ),
            ));
            break;
        }
        // JIT code is walked on (by its frame pointers, as nothing else describes it).
        let in_module = modules.find(new_pc).is_some() || modules.is_jit(new_pc);
        guessed = (guessed & step.carried) | step.guessed;
        frames.push(Frame {
            pc: new_pc,
            sp: new_sp,
            trust: step.trust,
            signal_frame: step.interrupted || step.resumed,
            registers: frame_registers(&step.regs, guessed),
            ..Default::default()
        });
        if !in_module {
            problems.push(Problem::new(
                Scope::Snapshot,
                format!("walk stopped at frame {}: pc {new_pc:#x} is not in any module", frames.len() - 1),
            ));
            break;
        }
        cur = step.regs;
        exact = step.interrupted || step.resumed;
        resumed = step.resumed;
    }
    insert_tail_calls(&mut frames, u);
    frames.truncate(max);
    (frames, problems)
}

/// Folklore: `raise` calls `pthread_kill`, which *jumps* to
/// `__pthread_kill_implementation`; the return address on the stack leads straight back
/// to `raise`, so the physical walk never sees `pthread_kill`. gdb shows such tail-call
/// frames (from DWARF call-site info), and so do we when the code says so unambiguously:
/// the caller's `call rel32` targets a function T other than the callee (directly, or
/// through a PLT stub bound to T in another module); from T exactly one chain of
/// `jmp` tail calls (T → … → callee, each jump to the start of the next
/// function, at most [`MAX_TAIL_CHAIN`] long) reaches the callee's start; the caller's
/// DWARF records a call site at its return address, and each jump is a tail-call site
/// in DWARF (glibc's `sem_wait`: `__new_sem_wait_slow64` calls `do_futex_wait`, which
/// jumps to `__futex_abstimed_wait_cancelable64`, which jumps to
/// `__futex_abstimed_wait_common`). An inserted frame's pc is the address after its
/// jmp; it has no recovered registers (that is how it is told apart).
fn insert_tail_calls(frames: &mut Vec<Frame>, u: &Unwinder<'_>) {
    let mut i = 1;
    while i < frames.len() {
        let chain = tail_calls_between(&frames[i - 1], &frames[i], u);
        let n = chain.len();
        // Innermost first: the jump into the callee is the frame right above it.
        for (k, f) in chain.into_iter().rev().enumerate() {
            frames.insert(i + k, f);
        }
        i += n + 1;
    }
}

/// Longest chain of tail calls looked for between a call and its callee. gdb sets
/// none: GCC -O2 turns a chain of forwarding calls (`S<0>::run` → `S<1>::run` → …)
/// into as many jumps, and gdb shows every one.
const MAX_TAIL_CHAIN: usize = 64;
/// Functions scanned for one search, whatever the chain's shape: the search stays
/// cheap on code that jumps everywhere.
const TAIL_SEARCH_BUDGET: usize = 512;

fn tail_calls_between(callee: &Frame, caller: &Frame, u: &Unwinder<'_>) -> Vec<Frame> {
    if caller.signal_frame || caller.trust != Trust::Cfi || caller.pc < 5 {
        return Vec::new();
    }
    let callee_pc =
        if callee.trust == Trust::Context || callee.signal_frame { callee.pc } else { callee.pc.wrapping_sub(1) };
    let pcs = u.tails.get_or_make((caller.pc, callee_pc), || tail_chain(callee_pc, caller.pc, u).into());
    pcs.iter().map(|&pc| Frame { pc, sp: callee.sp, trust: Trust::Cfi, ..Default::default() }).collect()
}

/// The pcs of the tail-call frames between a call returning to `caller_pc` and the
/// callee at `callee_pc` (see [`insert_tail_calls`]), outermost first; usually none.
fn tail_chain(callee_pc: u64, caller_pc: u64, u: &Unwinder<'_>) -> Vec<u64> {
    let modules = u.modules;
    let mut call = [0u8; 5];
    if modules.read_code(caller_pc - 5, &mut call) != 5 || call[0] != 0xe8 {
        return Vec::new();
    }
    let rel = i32::from_le_bytes([call[1], call[2], call[3], call[4]]);
    let mut target = caller_pc.wrapping_add_signed(rel as i64);
    // Cheap check first: the callee's FDE (cached by the walk) starts at the call target.
    let Some(idx) = modules.find(callee_pc) else { return Vec::new() };
    let bias = modules.entry(idx).record.load_bias;
    if cfi::rule(u, idx, callee_pc.wrapping_sub(bias)).is_some_and(|r| r.fde_start.wrapping_add(bias) == target) {
        return Vec::new();
    }
    let Some(callee_start) = modules.symbol_start(callee_pc) else { return Vec::new() };
    if modules.in_plt(target) {
        // A call into another module through its PLT (main → qsort@plt, and
        // qsort jumps to __qsort_r): the function the stub binds to is T.
        match modules.plt_target(target) {
            Some(t) => target = t,
            None => return Vec::new(),
        }
    }
    if target == callee_start || modules.find(target) != modules.find(callee_start) {
        return Vec::new();
    }
    // Only where DWARF confirms it, as gdb requires: the caller records a call
    // returning to its pc.
    if !modules.is_call_site(caller_pc, false) {
        return Vec::new();
    }
    let mut found = Vec::new();
    tail_chains(u, target, callee_start, &mut Vec::new(), &mut found, &mut { TAIL_SEARCH_BUDGET });
    // gdb too shows tail-call frames only when the chain is unique.
    if found.len() == 1 { found.swap_remove(0) } else { Vec::new() }
}

/// Every chain of DWARF-confirmed `jmp` tail calls from the function starting at
/// `from` to the one starting at `to`, as the addresses after each jump (outermost
/// first); stops looking once two are found (an ambiguous chain is not shown).
fn tail_chains(
    u: &Unwinder<'_>,
    from: u64,
    to: u64,
    path: &mut Vec<u64>,
    found: &mut Vec<Vec<u64>>,
    budget: &mut usize,
) {
    let modules = u.modules;
    if path.len() >= MAX_TAIL_CHAIN || found.len() > 1 || *budget == 0 {
        return;
    }
    *budget -= 1;
    let Some((start, end)) = modules.symbol_range(from) else { return };
    if start != from || end - start > 4096 {
        return;
    }
    let mut code = vec![0u8; (end - start) as usize];
    if modules.read_code(start, &mut code) != code.len() {
        return;
    }
    for o in 0..code.len().saturating_sub(1) {
        // `jmp rel32` (e9) or, between neighbouring functions, `jmp rel8` (eb).
        let (after, rel) = match code[o] {
            0xe9 if o + 5 <= code.len() => {
                (start + o as u64 + 5, i32::from_le_bytes([code[o + 1], code[o + 2], code[o + 3], code[o + 4]]) as i64)
            }
            0xeb => (start + o as u64 + 2, code[o + 1] as i8 as i64),
            _ => continue,
        };
        let dest = after.wrapping_add_signed(rel);
        // A jump inside the function is a branch, not a call.
        if (start..end).contains(&dest) || path.contains(&after) || !modules.is_tail_call_site(after) {
            continue;
        }
        path.push(after);
        if dest == to {
            found.push(path.clone());
        } else if modules.find(dest) == modules.find(to) {
            tail_chains(u, dest, to, path, found, budget);
        }
        path.pop();
        if found.len() > 1 {
            return;
        }
    }
}

/// One unwind step from the frame whose registers are `cur`.
fn step(
    cur: &Regs,
    exact: bool,
    resumed: bool,
    first: bool,
    memory: &dyn Memory,
    u: &Unwinder<'_>,
    vouched: &mut JitVouched,
) -> Outcome {
    let modules = u.modules;
    let pc = cur[RIP].unwrap_or(0);
    let sp = cur[RSP].unwrap_or(0);
    let module = modules.find(pc);

    // A resumed frame (see `chain_return`) is not where a call left it: what CFI says
    // at its pc describes a function just called, not the frame it re-enters.
    if let Some(idx) = module.filter(|_| !resumed) {
        // Signal trampoline, recognised by its bytes (from the module file, or memory).
        let mut code = [0u8; sigframe::RESTORE_RT.len()];
        let have = modules.read_code(pc, &mut code) == code.len() || memory.read_exact(pc, &mut code);
        if have && sigframe::is_restore_rt(&code) {
            return restore_from_ucontext(sp, memory);
        }

        let bias = modules.entry(idx).record.load_bias;
        let vaddr = pc.wrapping_sub(bias);
        let lookup = if exact { vaddr } else { vaddr.wrapping_sub(1) };
        if let Some(rule) = cfi::rule(u, idx, lookup) {
            match cfi::apply(u, idx, &rule, cur, memory) {
                Some(a) if a.outermost => return Outcome::End,
                Some(a) => {
                    // Go's sigpanic and asyncPreempt "return" to the interrupted
                    // instruction (see GoFrame).
                    let trap = modules.in_go_trap(idx, lookup);
                    return Outcome::Caller(Step {
                        interrupted: rule.signal || trap,
                        callee_is_trampoline: rule.signal,
                        carried: a.carried,
                        ..Step::new(a.regs, Trust::Cfi)
                    });
                }
                None => {
                    // Fall through to the heuristics: the rule needed memory or a
                    // register we do not have.
                }
            }
        } else if let Some(go) = modules.go_unwind(idx, lookup) {
            return go_step(cur, first, &go, memory, modules);
        }
    }

    // JIT code its runtime describes: a compiled frame of known size.
    if module.is_none()
        && let Some(size) = u.jit.and_then(|j| j.frame_size(pc, exact, memory))
        && size >= 16
    {
        let cfa = sp.wrapping_add(size);
        if let (Some(ret), Some(bp)) = (memory.read_u64(cfa - 8), memory.read_u64(cfa - 16))
            && (looks_like_return(ret, modules, memory)
                || (modules.is_jit(ret)
                    && (jit_after_call(ret, memory) || u.jit.is_some_and(|j| j.knows_code(ret, memory)))))
        {
            let mut regs: Regs = [None; N_REGS];
            regs[RBP] = Some(bp);
            regs[RSP] = Some(cfa);
            regs[RIP] = Some(ret);
            return Outcome::Caller(Step::new(regs, Trust::Cfi));
        }
    }

    // No usable CFI. The function the process started at (musl's `_start`, which
    // has none) was called by nothing: what a scan would find above it is debris.
    if modules.in_entry_function(if exact { pc } else { pc.wrapping_sub(1) }) {
        return Outcome::End;
    }

    // 1) At a function's first instruction or in a PLT stub nothing has
    // been pushed yet: the return address is at [rsp]. Also used for frame 0 when pc
    // is outside every module (a call through a bad function pointer).
    let at_entry = !resumed
        && module.is_some_and(|idx| {
            let e = modules.entry(idx);
            let in_plt = modules.image(idx).is_some_and(|img| img.in_plt(pc.wrapping_sub(e.record.load_bias)));
            in_plt || (exact && modules.symbol_start(pc) == Some(pc))
        });
    if (at_entry || (first && module.is_none()))
        && let Some(ret) = memory.read_u64(sp)
        && looks_like_return(ret, modules, memory)
    {
        let mut regs = keep_callee_saved(cur);
        regs[RSP] = Some(sp.wrapping_add(8));
        regs[RIP] = Some(ret);
        let trust = if at_entry { Trust::Cfi } else { Trust::Scan };
        return Outcome::Caller(Step { carried: CALLEE_SAVED_MASK, ..Step::new(regs, trust) });
    }

    // 2) A function known (from its code up to the pc) not to set up a frame pointer:
    // a leaf written in assembly, usually. Where it faulted nothing is pushed in the
    // common case, so try [rsp] before trusting an rbp that belongs to the caller.
    let prologue = match module {
        _ if resumed => Prologue::FramePointer,
        None => Prologue::Unknown,
        Some(_) => prologue_of(if exact { pc } else { pc.wrapping_sub(1) }, modules),
    };
    if prologue == Prologue::Frameless
        && let Some(ret) = memory.read_u64(sp).filter(|r| looks_like_return(*r, modules, memory))
    {
        let mut regs = keep_callee_saved(cur);
        regs[RSP] = Some(sp.wrapping_add(8));
        regs[RIP] = Some(ret);
        return Outcome::Caller(Step { carried: CALLEE_SAVED_MASK, ..Step::new(regs, Trust::Scan) });
    }

    // 3) Frame-pointer chain: [rbp] = caller's rbp, [rbp+8] = return address.
    if let Some(rbp) = cur[RBP].filter(|_| prologue != Prologue::Frameless)
        && rbp >= sp
        && rbp - sp < (64 << 20)
        && rbp % 8 == 0
        && let (Some(next_rbp), Some(ret)) = (memory.read_u64(rbp), memory.read_u64(rbp.wrapping_add(8)))
    {
        // A frame its runtime says is interpreted knows its caller's sp (a compiled
        // caller's frame size counts from there), and returns where the runtime's code
        // is: no chain above it needs to vouch. A compiled caller keeps no frame
        // pointer (rbp may hold any value there, and the frame's saved rbp with it):
        // its own frame size walks it on; any other caller needs a frame pointer above.
        let sender = u.jit.filter(|_| module.is_none()).and_then(|j| j.sender_sp(pc, exact, rbp, memory));
        let known = sender.is_some()
            && modules.is_jit(ret)
            && u.jit.is_some_and(|j| {
                j.knows_code(ret, memory)
                    && (next_rbp == 0 || next_rbp > rbp || j.frame_size(ret, false, memory).is_some())
            });
        let resumes = if known { Some(false) } else { chain_return(ret, rbp, next_rbp, modules, memory, vouched) };
        if let Some(resumes) = resumes {
            let mut regs: Regs = [None; N_REGS];
            regs[RBP] = Some(next_rbp);
            let near = |s: &u64| *s >= rbp.wrapping_add(16) && *s - rbp < (64 << 20);
            regs[RSP] = Some(sender.filter(near).unwrap_or(rbp.wrapping_add(16)));
            regs[RIP] = Some(ret);
            return Outcome::Caller(Step { resumed: resumes, ..Step::new(regs, Trust::FramePointer) });
        }
    }

    // 4) Stack scan: the first word above sp that is a plausible return address.
    let mut buf = vec![0u8; (SCAN_WORDS * 8) as usize];
    let n = memory.read(sp, &mut buf) / 8;
    for i in 0..n {
        let mut w = [0u8; 8];
        w.copy_from_slice(&buf[i * 8..i * 8 + 8]);
        let v = u64::from_le_bytes(w);
        if v != pc && looks_like_return(v, modules, memory) {
            // rbp is kept for the walk (a frame-pointer chain may go on from it),
            // though the functions scanned past may have changed it.
            let mut regs: Regs = [None; N_REGS];
            regs[RBP] = cur[RBP];
            regs[RSP] = Some(sp.wrapping_add((i as u64 + 1) * 8));
            regs[RIP] = Some(v);
            return Outcome::Caller(Step { guessed: 1 << RBP, ..Step::new(regs, Trust::Scan) });
        }
    }

    Outcome::Stuck(match module {
        Some(idx) => format!(
            "walk stopped: no unwind info for pc {pc:#x} in {} and no frame pointer or return address found",
            modules.entry(idx).record.path
        ),
        None if n == 0 => format!("walk stopped: stack at {sp:#x} is unreadable"),
        None if modules.is_jit(pc) => {
            format!("walk stopped: no frame pointer or return address found above JIT code at pc {pc:#x}")
        }
        None => format!("walk stopped: pc {pc:#x} is not in any module"),
    })
}

/// One frame of a Go function without CFI (a stripped Go program), from Go's own
/// table: the return address is at sp + the frame size, the caller's sp just above
/// it. Go keeps no register across calls but its frame pointer, saved 16 bytes below
/// that once the prologue has run — which it has when rbp already points there.
/// Where Go's own traceback stops, so does this: at the outermost function of a
/// stack, and at a stack switch above the innermost frame — except that the
/// outermost function of a signal handler's stack (`runtime.sigtramp`) returns to
/// the signal trampoline, through which the walk goes on to the interrupted code.
fn go_step(cur: &Regs, first: bool, go: &crate::symbols::GoFrame, memory: &dyn Memory, modules: &ModuleSet) -> Outcome {
    if go.switches_stack && !first {
        return Outcome::End;
    }
    let (Some(sp), Some(delta)) = (cur[RSP], go.sp_delta) else {
        return if go.top {
            Outcome::End
        } else {
            Outcome::Stuck("walk stopped: Go's table has no frame size at this pc".into())
        };
    };
    let cfa = sp.wrapping_add(delta).wrapping_add(8);
    let ret = memory.read_u64(cfa.wrapping_sub(8));
    if go.top {
        let mut code = [0u8; sigframe::RESTORE_RT.len()];
        let to_trampoline = ret.is_some_and(|r| {
            (modules.read_code(r, &mut code) == code.len() || memory.read_exact(r, &mut code))
                && sigframe::is_restore_rt(&code)
        });
        if !to_trampoline {
            return Outcome::End;
        }
    }
    let Some(ret) = ret else {
        return Outcome::Stuck(format!("walk stopped: return address at {:#x} unreadable", cfa.wrapping_sub(8)));
    };
    // Go's traceback stops at a return address outside the program's code ("unexpected
    // return pc"), and so does this, without a frame of garbage: a thread the runtime
    // has just created, still in `runtime.clone` on its new stack, has nothing above.
    if ret != 0 && !modules.is_code(ret) {
        return Outcome::Stuck(format!("walk stopped: the Go frame's return address {ret:#x} is not code"));
    }
    let mut regs: Regs = [None; N_REGS];
    let saved_bp = cfa.wrapping_sub(16);
    let saved = delta >= 16 && cur[RBP] == Some(saved_bp);
    regs[RBP] = if saved { memory.read_u64(saved_bp) } else { cur[RBP] };
    regs[RSP] = Some(cfa);
    regs[RIP] = Some(ret);
    let carried = if saved { 0 } else { 1 << RBP };
    Outcome::Caller(Step { interrupted: go.trap, carried, ..Step::new(regs, Trust::Cfi) })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Prologue {
    Unknown,
    /// Sets up a frame pointer (`push %rbp; mov %rsp,%rbp`) before the pc.
    FramePointer,
    /// Does not, up to the pc: it keeps no frame pointer of its own there.
    Frameless,
}

/// How far into a function the frame-pointer setup is looked for.
const PROLOGUE_SEARCH: u64 = 4096;

/// Classifies the function containing `pc` by its code (from the file) between its
/// first instruction and `pc`: whether `push %rbp; mov %rsp,%rbp` comes first (after
/// an optional `endbr64`) or anywhere before the pc. Code that sets its frame up after
/// a fast path is common where there is no CFI: V8's builtins
/// (`Builtins_InterpreterEntryTrampoline` pushes rbp 110 bytes in) and hand-written
/// assembly. Only a function with no such sequence before the pc is frameless.
fn prologue_of(pc: u64, modules: &ModuleSet) -> Prologue {
    let Some(start) = modules.symbol_start(pc) else { return Prologue::Unknown };
    let before_pc = pc.saturating_sub(start).min(PROLOGUE_SEARCH) as usize;
    let mut code = vec![0u8; before_pc.max(8)];
    let n = modules.read_code(start, &mut code);
    if n < 8 {
        return Prologue::Unknown;
    }
    let body = if code[..4] == [0xf3, 0x0f, 0x1e, 0xfa] { &code[4..] } else { &code[..] };
    let sets_up = |c: &[u8]| c.windows(FRAME_SETUP.len()).any(|w| w == FRAME_SETUP);
    if body[..4] == FRAME_SETUP || sets_up(&code[..n.min(before_pc)]) {
        Prologue::FramePointer
    } else {
        Prologue::Frameless
    }
}

/// `push %rbp; mov %rsp,%rbp`.
const FRAME_SETUP: [u8; 4] = [0x55, 0x48, 0x89, 0xe5];

fn keep_callee_saved(cur: &Regs) -> Regs {
    let mut regs: Regs = [None; N_REGS];
    for r in cfi::CALLEE_SAVED {
        regs[r] = cur[r];
    }
    regs
}

/// A plausible return address: inside executable code of a module and, when the code
/// is readable, right after a `call` instruction.
fn looks_like_return(addr: u64, modules: &ModuleSet, memory: &dyn Memory) -> bool {
    if addr < 8 || !modules.is_code(addr) {
        return false;
    }
    let mut before = [0u8; 8];
    if modules.read_code(addr - 8, &mut before) == 8 || memory.read_exact(addr - 8, &mut before) {
        heuristics::ends_with_call(&before)
    } else {
        true
    }
}

/// Whether a frame-pointer chain's return address `ret` (at `rbp + 8`, the caller's
/// frame pointer `next_rbp` at `rbp`) is believable: Some(false) for a return after a
/// call, Some(true) for a frame that resumes at a function's first instruction, None
/// when it is neither.
///
/// A return after a call in a module's code is always taken. Two more are taken only
/// when the chain goes on up the stack (the caller's frame pointer above this one's,
/// or 0 at the chain's end): a return after a call into JIT code (anonymous executable
/// memory: V8, a JVM, .NET), which no module vouches for; and a return to a function's
/// very first instruction in a module, after no call — V8 sends a frame whose code
/// changed tier back through an entry builtin so (`Builtins_InterpreterEnterAtNextBytecode`
/// is the saved return address of the function it re-enters), and that frame goes on
/// by its frame pointer.
///
/// A return into JIT code after no call is taken too when the chain above it is
/// vouched for (see [`jit_chain_vouched`]): a JVM's interpreter pushes its own return
/// address and jumps to the method it invokes, so an interpreted Java frame's return
/// address follows a dispatch `jmp`, not a call.
fn chain_return(
    ret: u64,
    rbp: u64,
    next_rbp: u64,
    modules: &ModuleSet,
    memory: &dyn Memory,
    vouched: &mut JitVouched,
) -> Option<bool> {
    if looks_like_return(ret, modules, memory) {
        return Some(false);
    }
    if !(next_rbp == 0 || (next_rbp > rbp && next_rbp - rbp < (64 << 20))) {
        return None;
    }
    if modules.is_jit(ret) && (jit_after_call(ret, memory) || vouched.vouch(next_rbp, modules, memory)) {
        return Some(false);
    }
    (modules.is_code(ret) && modules.symbol_start(ret) == Some(ret)).then_some(true)
}

/// The frame pointers, lowest and highest, of the links of a chain through JIT code
/// that [`jit_chain_vouched`] followed to a return after a call: the walk meets them
/// next, and takes them without looking ahead again (a run of interpreted frames costs
/// one lookahead, not one per frame). The walk follows the very links the lookahead
/// did, so a frame pointer in that range is one of them.
#[derive(Default)]
struct JitVouched(Option<(u64, u64)>);

impl JitVouched {
    /// Whether the chain from `rbp` is vouched for: one already followed, or found so now.
    fn vouch(&mut self, rbp: u64, modules: &ModuleSet, memory: &dyn Memory) -> bool {
        if self.0.is_some_and(|(lo, hi)| (lo..=hi).contains(&rbp)) {
            return true;
        }
        self.0 = jit_chain_vouched(rbp, modules, memory).map(|top| (rbp, top));
        self.0.is_some()
    }
}

/// Whether `ret`, in JIT code, follows a call instruction.
fn jit_after_call(ret: u64, memory: &dyn Memory) -> bool {
    let mut before = [0u8; 8];
    memory.read_exact(ret.wrapping_sub(8), &mut before) && heuristics::ends_with_call(&before)
}

/// How many links of a frame-pointer chain through JIT code are followed to vouch
/// for its start: the longest run of interpreted frames walked (a deeper one ends in
/// a scan).
const JIT_LOOKAHEAD: usize = 4096;

/// Whether the frame-pointer chain from `rbp` (a JIT frame's caller's frame pointer)
/// climbs, link by link, through JIT return addresses to a return after a call (in a
/// module's code or in JIT code) within [`JIT_LOOKAHEAD`] links: a chain of stack
/// words that happen to point into JIT code does not, nor one that ends in JIT code
/// (a runtime's JIT code is entered from its own, through a call). Some(the frame
/// pointer of the link where the call was found) when it does.
fn jit_chain_vouched(mut rbp: u64, modules: &ModuleSet, memory: &dyn Memory) -> Option<u64> {
    for _ in 0..JIT_LOOKAHEAD {
        if rbp == 0 {
            return None;
        }
        let (Some(next), Some(ret)) = (memory.read_u64(rbp), memory.read_u64(rbp.wrapping_add(8))) else {
            return None;
        };
        if looks_like_return(ret, modules, memory) || (modules.is_jit(ret) && jit_after_call(ret, memory)) {
            return Some(rbp);
        }
        if !modules.is_jit(ret) || !(next == 0 || (next > rbp && next - rbp < (64 << 20))) {
            return None;
        }
        rbp = next;
    }
    None
}

/// Folklore: at `__restore_rt`, %rsp points at the `ucontext_t` the kernel saved
/// (the handler's `ret` popped `pretcode`); `uc_mcontext.gregs` holds every register of
/// the interrupted code, whose pc is exact (it did not call anything).
fn restore_from_ucontext(sp: u64, memory: &dyn Memory) -> Outcome {
    let mut b = [0u8; sigframe::GREGS_BYTES];
    if !memory.read_exact(sp.wrapping_add(sigframe::GREGS_OFFSET), &mut b) {
        return Outcome::Stuck(format!("walk stopped: signal frame context at {sp:#x} is unreadable"));
    }
    let mut regs: Regs = [None; N_REGS];
    for (r, v) in sigframe::decode_gregs(&b) {
        regs[r as usize] = Some(v);
    }
    Outcome::Caller(Step { interrupted: true, callee_is_trampoline: true, ..Step::new(regs, Trust::Cfi) })
}
