//! Live processes: freeze every thread with PTRACE_SEIZE + PTRACE_INTERRUPT, copy
//! registers, stacks and the vDSO in a few batched reads, detach — all before any
//! slow work (unwinding, symbolization) begins.
//!
//! Invariants:
//! - Every thread we seize is detached before [`capture`] returns, on every path
//!   (errors and panics included): the `Attachment` guard detaches in `Drop`.
//! - We never group-stop the process (no SIGSTOP), so detaching — or the kernel
//!   detaching for us when bt dies (folklore: exit_ptrace() releases every tracee
//!   of a dying tracer) — always lets the target run on.
//! - ptrace requests are only valid from the thread that attached, so the whole
//!   capture runs on the calling thread.
//! - A signal that arrives while we hold a thread (a signal-delivery-stop) is
//!   handed back with PTRACE_DETACH, so the target loses no signal.

use super::{Capture, CopiedMemory, TargetError, ThreadState, procfs, signals};
use crate::snapshot::{Mapping, Problem, Registers, Scope, Signal, Source};
use nix::errno::Errno;
use std::collections::HashSet;
use std::os::unix::fs::FileExt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// Options for a live capture.
#[derive(Debug, Clone)]
pub struct LiveOptions {
    /// Upper bound of stack bytes copied per thread (from the stack pointer up).
    pub max_stack_bytes: usize,
    /// How long to wait for the threads to stop after PTRACE_INTERRUPT. A thread
    /// in uninterruptible sleep (D state, e.g. stuck NFS I/O) stops only when the
    /// kernel lets it go; past this it is reported and left out.
    pub stop_timeout: Duration,
    /// Keep the threads stopped after the copy and hand a memory that reads the live
    /// process (copied stacks first), released through `Capture::hold`: variable
    /// capture reads heap objects the stack copies do not hold.
    pub hold: bool,
}

impl Default for LiveOptions {
    fn default() -> Self {
        LiveOptions { max_stack_bytes: 8 << 20, stop_timeout: Duration::from_secs(5), hold: false }
    }
}

/// The x86-64 red zone: leaf functions may keep data this far below rsp.
const RED_ZONE: u64 = 128;
/// Most iovecs the kernel accepts in one process_vm_readv (UIO_MAXIOV).
const IOV_MAX: usize = 1024;
/// Keep one process_vm_readv under the kernel's per-call byte limit (MAX_RW_COUNT, ~2 GiB).
const MAX_BATCH_BYTES: usize = 1 << 30;
/// The code segment selector of 32-bit (compat) user code; 64-bit code runs with 0x33.
const USER32_CS: u64 = 0x23;
/// `task_struct::flags` bit of kernel threads (include/linux/sched.h).
const PF_KTHREAD: u64 = 0x0020_0000;
/// Rounds of "list threads, attach the new ones"; once every known thread is
/// stopped no new one can appear, so more rounds mean a thread storm.
const MAX_ROUNDS: usize = 64;

/// One seized thread.
#[derive(Debug)]
struct Tracee {
    tid: i32,
    name: String,
    /// The state letter read before we interrupted it.
    state: String,
    /// Possibly still traced by us (false once detached).
    attached: bool,
    /// In a ptrace-stop (registers readable, detachable).
    stopped: bool,
    /// Signal to re-inject on detach (a signal-delivery-stop), 0 for none.
    inject: i32,
}

/// The seized threads of one process; detaches them all when dropped.
#[derive(Default)]
struct Attachment {
    threads: Vec<Tracee>,
    /// When the first thread was asked to stop (for `BT_TIMING`).
    since: Option<Instant>,
}

impl Attachment {
    /// Detaches every thread still attached; returns what went wrong.
    fn detach_all(&mut self) -> Vec<Problem> {
        if let Some(since) = self.since.take()
            && std::env::var_os("BT_TIMING").is_some()
        {
            // Debugging aid: how long the target was kept from running.
            eprintln!("bt: timing: threads stopped for {:.1} ms", since.elapsed().as_secs_f64() * 1e3);
        }
        let mut problems = Vec::new();
        let mut late = Vec::new();
        for t in self.threads.iter_mut().filter(|t| t.attached) {
            match ptrace(libc::PTRACE_DETACH as _, t.tid, 0, t.inject as usize) {
                Ok(_) | Err(Errno::ESRCH) if t.stopped => t.attached = false,
                Ok(_) => t.attached = false,
                // Not in a ptrace-stop yet (it never reached the stop): wait for it below.
                Err(_) => late.push(t.tid),
            }
        }
        // Threads that had not stopped yet still carry our PTRACE_INTERRUPT: give
        // them a moment to reach the stop, then detach. A thread that stays in D
        // state longer stays traced until it stops or bt exits (the kernel then
        // detaches it, see the module comment).
        let deadline = Instant::now() + Duration::from_millis(200);
        while !late.is_empty() && Instant::now() < deadline {
            late.retain(|&tid| match wait_nohang(tid) {
                WaitResult::Stopped(sig) => {
                    if let Some(t) = self.threads.iter_mut().find(|t| t.tid == tid) {
                        t.inject = sig;
                    }
                    ptrace(libc::PTRACE_DETACH as _, tid, 0, sig as usize).is_err()
                }
                WaitResult::Gone => false,
                WaitResult::NotYet => true,
            });
            std::thread::sleep(Duration::from_millis(1));
        }
        for tid in late {
            problems
                .push(Problem::new(Scope::Thread(tid), format!("thread {tid} could not be detached (never stopped)")));
        }
        for t in self.threads.iter_mut() {
            t.attached = false;
        }
        problems
    }
}

impl Drop for Attachment {
    fn drop(&mut self) {
        if self.threads.iter().any(|t| t.attached) {
            self.detach_all();
        }
    }
}

/// `ptrace(2)` with errno.
fn ptrace(req: libc::c_uint, tid: i32, addr: usize, data: usize) -> Result<libc::c_long, Errno> {
    Errno::clear();
    // SAFETY: every request used here either ignores addr/data or (GETREGS,
    // GETSIGINFO) receives a pointer to a live buffer of the size the kernel writes.
    let r = unsafe { libc::ptrace(req as _, tid, addr as *mut libc::c_void, data as *mut libc::c_void) };
    if r == -1 { Err(Errno::last()) } else { Ok(r) }
}

enum WaitResult {
    /// In a ptrace-stop; the signal to re-inject (0 for an interrupt or group stop).
    Stopped(i32),
    /// Exited (or no longer ours to wait for).
    Gone,
    NotYet,
}

/// One non-blocking `waitpid(tid, __WALL)`.
///
/// Folklore: we use the raw status, not nix's `WaitStatus`: nix cannot represent a
/// real-time signal in a signal-delivery-stop and would report an error after the
/// kernel had already consumed the event.
fn wait_nohang(tid: i32) -> WaitResult {
    let mut status = 0;
    // SAFETY: status is a valid out-pointer.
    let r = unsafe { libc::waitpid(tid, &mut status, libc::__WALL | libc::WNOHANG) };
    if r == 0 {
        return WaitResult::NotYet;
    }
    if r < 0 {
        return if Errno::last() == Errno::EINTR { WaitResult::NotYet } else { WaitResult::Gone };
    }
    if libc::WIFSTOPPED(status) {
        let sig = libc::WSTOPSIG(status);
        let event = (status >> 16) & 0xff;
        // event 0: signal-delivery-stop, the signal must go back on detach.
        // PTRACE_EVENT_STOP (the only event without options): our interrupt, or a
        // group-stop (WSTOPSIG = the stop signal) the kernel restores on detach.
        return WaitResult::Stopped(if event == 0 { sig } else { 0 });
    }
    WaitResult::Gone
}

/// Snapshots the threads, stacks, vDSO, memory map and auxv of a live process.
/// The process runs again when this returns, whatever the outcome.
pub fn capture(pid: i32, opts: &LiveOptions) -> Result<Capture, TargetError> {
    let mut problems = Vec::new();
    let pid = resolve_pid(pid, &mut problems)?;

    // Found before the threads stop: parsing libc's symbols takes milliseconds.
    let abort_msg_var = abort_msg_address(pid);

    let mut att = Attachment::default();
    let deadline = Instant::now() + opts.stop_timeout;
    freeze(pid, &mut att, deadline, &mut problems)?;

    // Everything below runs while the threads are stopped: keep it short.
    let mut threads = Vec::with_capacity(att.threads.len());
    let mut signal = None;
    for t in att.threads.iter().filter(|t| t.stopped && t.attached) {
        let mut regs = std::mem::MaybeUninit::<libc::user_regs_struct>::zeroed();
        if let Err(e) = ptrace(libc::PTRACE_GETREGS as _, t.tid, 0, regs.as_mut_ptr() as usize) {
            problems.push(Problem::new(Scope::Thread(t.tid), format!("reading registers of thread {}: {e}", t.tid)));
            continue;
        }
        // SAFETY: zero-initialised plain-old-data, filled by the kernel on success.
        let regs = unsafe { regs.assume_init() };
        let mut faulted = false;
        if t.inject != 0 && signal.is_none() {
            // The thread was about to receive a signal; a fatal one is worth reporting.
            if let Some(s) = pending_signal(t.tid).filter(|s| is_crash_signal(s.signo)) {
                faulted = true;
                signal = Some(s);
            }
        }
        if regs.cs == USER32_CS {
            problems.push(Problem::new(
                Scope::Thread(t.tid),
                format!("thread {} runs 32-bit code (cs {:#x}); only x86-64 is unwound", t.tid, regs.cs),
            ));
        }
        threads.push(ThreadState {
            tid: t.tid,
            name: t.name.clone(),
            state: t.state.clone(),
            registers: registers_from_libc(&regs),
            faulted,
        });
    }

    let maps = match procfs::read_maps(pid) {
        Ok((maps, bad)) => {
            for line in bad {
                problems.push(Problem::new(Scope::Snapshot, format!("unparsed /proc/{pid}/maps line: {line:?}")));
            }
            maps
        }
        Err(e) => {
            problems.push(Problem::new(Scope::Snapshot, format!("reading /proc/{pid}/maps: {e}")));
            Vec::new()
        }
    };
    let auxv = match std::fs::read(format!("/proc/{pid}/auxv")) {
        Ok(b) => procfs::parse_auxv(&b),
        Err(e) => {
            problems.push(Problem::new(Scope::Snapshot, format!("reading /proc/{pid}/auxv: {e}")));
            Vec::new()
        }
    };
    let ranges = copy_plan(&threads, &maps, opts.max_stack_bytes, &mut problems);
    let mut memory = copy_ranges(pid, &ranges, &mut problems);
    let more = subtract_ranges(&interrupted_stacks(&threads, &maps, &memory, opts.max_stack_bytes), &ranges);
    if !more.is_empty() {
        for (addr, bytes) in copy_ranges(pid, &more, &mut problems).into_regions() {
            memory.add(addr, bytes);
        }
    }
    // For the analysis: the code at the faulting pc (JIT code has no file) and the
    // memory around the fault address (heap chunk headers, aliases).
    let have = merge_ranges(ranges.iter().chain(more.iter()).copied().collect());
    let near_fault = subtract_ranges(&fault_ranges(&threads, signal.as_ref(), &maps), &have);
    if !near_fault.is_empty() {
        for (addr, bytes) in copy_ranges(pid, &near_fault, &mut problems).into_regions() {
            memory.add(addr, bytes);
        }
    }
    if let Some(var) = abort_msg_var {
        let have = merge_ranges(have.iter().chain(near_fault.iter()).copied().collect());
        copy_abort_msg(pid, var, &maps, have, &mut memory, &mut problems);
    }

    let (memory, hold): (Box<dyn super::Memory>, Option<super::Release>) = if opts.hold {
        let mem = std::fs::File::open(format!("/proc/{pid}/mem")).ok();
        let released = Arc::new(AtomicBool::new(false));
        let flag = released.clone();
        let release = move || {
            // From here on the memory is the copies only: the process changes it again.
            flag.store(true, Ordering::SeqCst);
            let mut att = att;
            att.detach_all()
        };
        (Box::new(HeldMemory { copies: memory, mem, released }), Some(Box::new(release)))
    } else {
        problems.extend(att.detach_all());
        drop(att);
        (Box::new(memory), None)
    };

    // The process runs again (unless held); the rest reads /proc at leisure.
    let (process, p) = procfs::process_info(pid);
    problems.extend(p);
    let (environment, p) = procfs::process_environment(pid);
    problems.extend(p);
    threads.sort_by_key(|t| (!t.faulted, t.tid));

    Ok(Capture { source: Source::Live, process, signal, threads, maps, auxv, memory, environment, problems, hold })
}

/// The memory of a process held stopped: the stack copies first, then the live
/// address space through /proc/PID/mem (which also reads PROT_NONE-free pages that
/// process_vm_readv would refuse mid-range). Once released, only the copies: what
/// is read after the process runs again would not belong to the snapshot.
struct HeldMemory {
    copies: CopiedMemory,
    mem: Option<std::fs::File>,
    released: Arc<AtomicBool>,
}

impl super::Memory for HeldMemory {
    fn read(&self, addr: u64, buf: &mut [u8]) -> usize {
        let n = self.copies.read(addr, buf);
        if n == buf.len() {
            return n;
        }
        let Some(f) = self.mem.as_ref().filter(|_| !self.released.load(Ordering::SeqCst)) else { return n };
        let mut done = n;
        while done < buf.len() {
            match f.read_at(&mut buf[done..], addr.wrapping_add(done as u64)) {
                Ok(0) | Err(_) => break,
                Ok(k) => done += k,
            }
        }
        done
    }
}

/// Refuses ourselves, maps a missing process to NoSuchProcess, and turns a thread id
/// into its process id.
fn resolve_pid(pid: i32, problems: &mut Vec<Problem>) -> Result<i32, TargetError> {
    let me = std::process::id() as i32;
    let is_self = |p: i32| p == me || std::path::Path::new(&format!("/proc/self/task/{p}")).exists();
    if pid <= 0 {
        return Err(TargetError::NoSuchProcess { pid });
    }
    if is_self(pid) {
        return Err(TargetError::SelfAttach { pid });
    }
    let status = match std::fs::read_to_string(format!("/proc/{pid}/status")) {
        Ok(s) => s,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(TargetError::NoSuchProcess { pid }),
        Err(e) => return Err(TargetError::Io { path: format!("/proc/{pid}/status"), source: e }),
    };
    if procfs::read_small(&format!("/proc/{pid}/stat"))
        .ok()
        .as_deref()
        .and_then(procfs::parse_stat_flags)
        .is_some_and(|flags| flags & PF_KTHREAD != 0)
    {
        return Err(TargetError::KernelThread { pid });
    }
    let tgid = procfs::parse_status(&status, &["Tgid"]).first().and_then(|(_, v)| v.parse::<i32>().ok()).unwrap_or(pid);
    if tgid != pid {
        // Folklore: /proc/TID exists (hidden from readdir) for every thread, so a
        // thread id "works" as a pid; we capture its whole process.
        if is_self(tgid) {
            return Err(TargetError::SelfAttach { pid });
        }
        problems
            .push(Problem::new(Scope::Snapshot, format!("{pid} is a thread of process {tgid}; capturing the process")));
    }
    Ok(tgid)
}

/// The pid of the process tracing `pid`, if any (TracerPid in /proc/PID/status).
fn tracer_of(pid: i32) -> Option<i32> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    procfs::parse_status(&status, &["TracerPid"]).first()?.1.parse().ok().filter(|t| *t != 0)
}

/// Seizes and interrupts every thread, re-listing /proc/PID/task until no new thread
/// appears, and waits until each is in a ptrace-stop.
fn freeze(pid: i32, att: &mut Attachment, deadline: Instant, problems: &mut Vec<Problem>) -> Result<(), TargetError> {
    let mut known: HashSet<i32> = HashSet::new();
    att.since = Some(Instant::now());
    for round in 0.. {
        let tids = match procfs::task_ids(pid) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(TargetError::NoSuchProcess { pid }),
            Err(e) => return Err(TargetError::Io { path: format!("/proc/{pid}/task"), source: e }),
        };
        let mut new: Vec<i32> = tids.into_iter().filter(|t| known.insert(*t)).collect();
        if new.is_empty() {
            break;
        }
        if round >= MAX_ROUNDS {
            problems.push(Problem::new(
                Scope::Snapshot,
                format!("threads kept appearing after {MAX_ROUNDS} rounds; {} new threads not captured", new.len()),
            ));
            break;
        }
        new.sort_unstable();
        // State and name BEFORE interrupting, so we see S/R/D rather than 't'; all
        // read before the first interrupt, so this reading does not lengthen the
        // time the threads stay stopped.
        let stats = read_task_stats(pid, &new);
        let first_new = att.threads.len();
        for (tid, stat) in new.into_iter().zip(stats) {
            let Some((name, state)) = stat else {
                problems.push(Problem::new(Scope::Thread(tid), format!("thread {tid} exited during attach")));
                continue;
            };
            if state == "Z" || state == "X" {
                // Folklore: a main thread that called pthread_exit stays a zombie while
                // the others run; PTRACE_SEIZE on it fails with EPERM and it has no
                // user state left to show.
                problems
                    .push(Problem::new(Scope::Thread(tid), format!("thread {tid} has exited (zombie); not captured")));
                continue;
            }
            match ptrace(libc::PTRACE_SEIZE as _, tid, 0, 0) {
                Ok(_) => {}
                Err(Errno::ESRCH) => {
                    problems.push(Problem::new(Scope::Thread(tid), format!("thread {tid} exited during attach")));
                    continue;
                }
                Err(e) if att.threads.is_empty() => {
                    return Err(match e {
                        Errno::EPERM => match tracer_of(pid) {
                            Some(tracer) => TargetError::AlreadyTraced { pid, tracer },
                            None => TargetError::PermissionDenied { pid },
                        },
                        e => TargetError::Attach { pid, source: e },
                    });
                }
                Err(e) => {
                    problems.push(Problem::new(Scope::Thread(tid), format!("attaching to thread {tid}: {e}")));
                    continue;
                }
            }
            att.threads.push(Tracee { tid, name, state, attached: true, stopped: false, inject: 0 });
            // ESRCH here means it is exiting; waitpid reports that below.
            let _ = ptrace(libc::PTRACE_INTERRUPT as _, tid, 0, 0);
        }
        wait_for_stops(&mut att.threads[first_new..], deadline, problems);
    }
    if !att.threads.iter().any(|t| t.stopped) {
        let zombie = procfs::read_small(&format!("/proc/{pid}/stat"))
            .ok()
            .and_then(|s| procfs::parse_task_stat(&s))
            .is_some_and(|(_, state)| state == "Z");
        return Err(if zombie { TargetError::Exited { pid } } else { TargetError::NoSuchProcess { pid } });
    }
    Ok(())
}

/// (comm, state letter) of each thread, None for those gone. Spread over a few
/// threads when there are many (reading /proc needs no ptrace rights, so any of
/// our threads may do it).
/// Folklore: /proc/PID/task/TID/stat carries comm too, so one read gives both.
fn read_task_stats(pid: i32, tids: &[i32]) -> Vec<Option<(String, String)>> {
    let one = |tid: &i32| {
        let stat = procfs::read_small(&format!("/proc/{pid}/task/{tid}/stat")).ok()?;
        procfs::parse_task_stat(&stat)
    };
    let workers = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1).min(8);
    if tids.len() < 128 || workers < 2 {
        return tids.iter().map(one).collect();
    }
    let chunk = tids.len().div_ceil(workers);
    std::thread::scope(|s| {
        let handles: Vec<_> =
            tids.chunks(chunk).map(|c| s.spawn(move || c.iter().map(one).collect::<Vec<_>>())).collect();
        // A worker only reads files; if one panicked anyway, its threads read as gone.
        handles
            .into_iter()
            .zip(tids.chunks(chunk))
            .flat_map(|(h, c)| h.join().unwrap_or_else(|_| vec![None; c.len()]))
            .collect()
    })
}

/// Polls the threads until each is stopped or gone, or the deadline passes.
/// Polling (WNOHANG) rather than blocking keeps one stuck thread from hanging bt.
fn wait_for_stops(threads: &mut [Tracee], deadline: Instant, problems: &mut Vec<Problem>) {
    let mut pending: Vec<usize> = (0..threads.len()).collect();
    let mut nap = Duration::from_micros(20);
    loop {
        pending.retain(|&i| {
            let t = &mut threads[i];
            match wait_nohang(t.tid) {
                WaitResult::Stopped(sig) => {
                    t.stopped = true;
                    t.inject = sig;
                    false
                }
                WaitResult::Gone => {
                    // Left `attached`: detach_all tries it anyway. Folklore: when another
                    // thread execs, the exec'ing thread takes over the leader's tid, and
                    // a tid we saw die may be a live tracee again.
                    problems.push(Problem::new(Scope::Thread(t.tid), format!("thread {} exited during attach", t.tid)));
                    false
                }
                WaitResult::NotYet => true,
            }
        });
        if pending.is_empty() {
            return;
        }
        if Instant::now() >= deadline {
            for &i in &pending {
                let t = &threads[i];
                problems.push(Problem::new(
                    Scope::Thread(t.tid),
                    format!("thread {} (state {}) did not stop in time; not captured", t.tid, t.state),
                ));
            }
            return;
        }
        std::thread::sleep(nap);
        nap = (nap * 2).min(Duration::from_millis(1));
    }
}

/// The siginfo of a thread in a signal-delivery-stop.
fn pending_signal(tid: i32) -> Option<Signal> {
    let mut buf = [0u8; 128];
    ptrace(libc::PTRACE_GETSIGINFO as _, tid, 0, buf.as_mut_ptr() as usize).ok()?;
    signals::from_siginfo(&buf, tid)
}

fn is_crash_signal(signo: i32) -> bool {
    signals::FAULT_SIGNALS.contains(&signo) || signo == libc::SIGABRT || signo == libc::SIGSYS
}

fn registers_from_libc(r: &libc::user_regs_struct) -> Registers {
    Registers {
        rax: r.rax,
        rbx: r.rbx,
        rcx: r.rcx,
        rdx: r.rdx,
        rsi: r.rsi,
        rdi: r.rdi,
        rbp: r.rbp,
        rsp: r.rsp,
        r8: r.r8,
        r9: r.r9,
        r10: r.r10,
        r11: r.r11,
        r12: r.r12,
        r13: r.r13,
        r14: r.r14,
        r15: r.r15,
        rip: r.rip,
        eflags: r.eflags,
        cs: r.cs,
        ss: r.ss,
        ds: r.ds,
        es: r.es,
        fs: r.fs,
        gs: r.gs,
        fs_base: r.fs_base,
        gs_base: r.gs_base,
        orig_rax: r.orig_rax,
    }
}

/// The stack range to copy for a stack pointer: `sp - 128` to the end of its
/// mapping, capped at `max_stack` bytes. None when `sp` is in no mapping.
fn stack_range(sp: u64, maps: &[Mapping], max_stack: usize) -> Option<(u64, u64)> {
    let idx = maps.partition_point(|m| m.start <= sp);
    match idx.checked_sub(1).map(|i| &maps[i]).filter(|m| sp < m.end) {
        Some(m) => {
            let lo = sp.saturating_sub(RED_ZONE).max(m.start);
            Some((lo, m.end.min(lo.saturating_add(max_stack as u64))))
        }
        None if maps.is_empty() => {
            // No map to bound it: read up to the cap; the copy stops at the first hole.
            let lo = sp.saturating_sub(RED_ZONE);
            Some((lo, lo.saturating_add(max_stack as u64)))
        }
        None => None,
    }
}

/// The address ranges to copy: each thread's stack from `rsp - 128` to the end of
/// its mapping (capped), and the whole vDSO; sorted, overlapping and touching
/// ranges merged (threads can share a mapping, e.g. on a sigaltstack).
fn copy_plan(
    threads: &[ThreadState],
    maps: &[Mapping],
    max_stack: usize,
    problems: &mut Vec<Problem>,
) -> Vec<(u64, u64)> {
    let mut ranges = Vec::with_capacity(threads.len() + 1);
    for t in threads {
        let sp = t.registers.rsp;
        match stack_range(sp, maps, max_stack) {
            Some(r) => ranges.push(r),
            None => problems.push(Problem::new(
                Scope::Thread(t.tid),
                format!("stack pointer {sp:#x} of thread {} is in no mapping; stack not copied", t.tid),
            )),
        }
    }
    ranges.extend(maps.iter().filter(|m| m.path == "[vdso]").map(|m| (m.start, m.end)));
    merge_ranges(ranges)
}

/// How far above rsp to look for a signal frame.
const SIGFRAME_SCAN_BYTES: usize = 256 << 10;

/// Stacks of code interrupted by a signal whose handler runs on an alternate stack.
///
/// Folklore: a handler installed with SA_ONSTACK (crash handlers are) runs on the
/// sigaltstack, so the thread's rsp is there and the interrupted code's stack —
/// which the unwinder reaches through `__restore_rt` — is elsewhere and was not in
/// the first copy. The kernel's rt_sigframe on the altstack holds
/// `pretcode; ucontext { uc_flags; uc_link; uc_stack { ss_sp; ss_flags; ss_size };
/// uc_mcontext { r8 … rsp (+120), rip (+128) … } }`, where uc_stack describes the
/// altstack itself. We look for that shape above rsp: uc_stack containing rsp,
/// ss_flags 0 or SS_ONSTACK (maybe with SS_AUTODISARM), pretcode in executable
/// memory; the saved rsp then names the stack to copy too.
fn interrupted_stacks(
    threads: &[ThreadState],
    maps: &[Mapping],
    copied: &CopiedMemory,
    max_stack: usize,
) -> Vec<(u64, u64)> {
    let executable = |addr: u64| {
        let idx = maps.partition_point(|m| m.start <= addr);
        idx.checked_sub(1).map(|i| &maps[i]).is_some_and(|m| addr < m.end && m.perms.as_bytes().get(2) == Some(&b'x'))
    };
    let mut out = Vec::new();
    let mut buf = vec![0u8; SIGFRAME_SCAN_BYTES];
    for t in threads {
        let sp = t.registers.rsp & !7;
        let n = crate::target::Memory::read(copied, sp, &mut buf);
        let word = |o: usize| buf.get(o..o + 8).map(|b| u64::from_le_bytes(b.try_into().expect("8 bytes")));
        // `o` is the offset of uc_stack; pretcode is 24 bytes before it.
        for o in (24..n.saturating_sub(160)).step_by(8) {
            let (Some(ss_sp), Some(flags), Some(ss_size)) = (word(o), word(o + 8), word(o + 16)) else { break };
            let ss_flags = flags as u32;
            // ss_flags: 0 or SS_ONSTACK, possibly with SS_AUTODISARM (1 << 31).
            if ss_flags & !(1 | 1 << 31) != 0
                || !(2048..=1 << 28).contains(&ss_size)
                || !(ss_sp <= sp && sp - ss_sp < ss_size)
            {
                continue;
            }
            let (Some(pretcode), Some(saved_sp)) = (word(o - 24), word(o + 144)) else { continue };
            if !executable(pretcode) || (ss_sp <= saved_sp && saved_sp - ss_sp < ss_size) {
                continue;
            }
            if let Some(r) = stack_range(saved_sp, maps, max_stack) {
                out.push(r);
            }
        }
    }
    merge_ranges(out)
}

/// Bytes the analysis reads besides the stacks: around the faulted threads' pc and
/// the signal's fault address, clipped to readable mappings (an unreadable fault
/// address is the usual case and no problem), sorted and merged.
fn fault_ranges(threads: &[ThreadState], signal: Option<&Signal>, maps: &[Mapping]) -> Vec<(u64, u64)> {
    const AROUND: u64 = 256;
    let mut wanted = Vec::new();
    for t in threads.iter().filter(|t| t.faulted) {
        wanted.push(t.registers.rip);
    }
    if let Some(addr) = signal.and_then(|s| s.fault_address) {
        wanted.push(addr);
    }
    let mut out = Vec::new();
    for a in wanted {
        if let Some(m) = maps.iter().find(|m| a >= m.start && a < m.end && m.perms.starts_with('r')) {
            out.push((a.saturating_sub(AROUND).max(m.start), a.saturating_add(AROUND).min(m.end)));
        }
    }
    merge_ranges(out)
}

/// Longest glibc abort message copied from a live process (plus its 4-byte header).
const MAX_ABORT_MSG: u64 = 4096 + 4;

/// The runtime address of glibc's `__abort_msg` in process `pid`, from libc's
/// dynamic symbol table (it is exported as GLIBC_PRIVATE), or from a static
/// executable's symbol table. None without either.
///
/// Folklore: libc.so's first PT_LOAD has p_vaddr 0 and file offset 0, so the load
/// bias is the start of its offset-0 mapping; we still subtract the segment's
/// page-rounded vaddr rather than assume it.
fn abort_msg_address(pid: i32) -> Option<u64> {
    use object::{Object, ObjectSegment, ObjectSymbol};
    let (maps, _) = procfs::read_maps(pid).ok()?;
    let libc = maps.iter().find(|m| {
        let file = m.path.rsplit('/').next().unwrap_or(&m.path);
        m.offset == 0 && (file.starts_with("libc.so") || file.starts_with("libc-"))
    });
    // A static executable has glibc (and `__abort_msg`) inside itself.
    let exe = std::fs::read_link(format!("/proc/{pid}/exe")).ok();
    let m = libc.or_else(|| {
        maps.iter().find(|m| m.offset == 0 && exe.as_deref().is_some_and(|e| std::path::Path::new(&m.path) == e))
    })?;
    // The process may live in another mount namespace (a container).
    let file =
        std::fs::File::open(format!("/proc/{pid}/root{}", m.path)).or_else(|_| std::fs::File::open(&m.path)).ok()?;
    // Mapped, not read: only the headers and the symbol tables are touched (libc is
    // megabytes, and this runs before the threads stop, so every trace waits for it).
    // SAFETY: read-only private mapping of a shared library; a concurrent truncation
    // (a package upgrade rewriting it in place) could SIGBUS, the risk every
    // debugger mapping ELF files takes.
    let bytes = unsafe { memmap2::Mmap::map(&file) }.ok()?;
    let elf = object::read::elf::ElfFile64::<object::LittleEndian>::parse(&*bytes).ok()?;
    let first = elf.segments().map(|s| s.address()).min()? & !0xfff;
    let sym = elf
        .dynamic_symbols()
        .chain(elf.symbols())
        .find(|s| s.name().is_ok_and(|n| n == "__abort_msg") && s.address() != 0)?;
    Some(sym.address().wrapping_sub(first).wrapping_add(m.start))
}

/// Copies glibc's `__abort_msg` pointer (at `var`) and the message it points to, so
/// that the analysis can tell an assert or a malloc check from a plain abort.
/// `have` (sorted, merged) is what `memory` already holds; regions stay disjoint.
///
/// Folklore: the pointer is NULL until `__libc_message`/`__assert_fail` run; then it
/// points to an anonymous mapping of its own, `{u32 size; char msg[]}` with `size`
/// the mapping's length. We copy at most a few KiB, clipped to that mapping.
fn copy_abort_msg(
    pid: i32,
    var: u64,
    maps: &[Mapping],
    mut have: Vec<(u64, u64)>,
    memory: &mut CopiedMemory,
    problems: &mut Vec<Problem>,
) {
    let readable = |a: u64| maps.iter().find(|m| a >= m.start && a < m.end && m.perms.starts_with('r'));
    if readable(var).is_none_or(|m| var.saturating_add(8) > m.end) {
        return;
    }
    let want = subtract_ranges(&[(var, var + 8)], &have);
    for (addr, bytes) in copy_ranges(pid, &want, problems).into_regions() {
        memory.add(addr, bytes);
    }
    have = merge_ranges(have.into_iter().chain(want).collect());
    let mut word = [0u8; 8];
    if super::Memory::read(memory, var, &mut word) != 8 {
        return;
    }
    let ptr = u64::from_le_bytes(word);
    let Some(m) = readable(ptr).filter(|_| ptr != 0) else { return };
    let want = subtract_ranges(&[(ptr, ptr.saturating_add(MAX_ABORT_MSG).min(m.end))], &have);
    for (addr, bytes) in copy_ranges(pid, &want, problems).into_regions() {
        memory.add(addr, bytes);
    }
}

/// The parts of `wanted` not covered by `have` (both sorted and merged).
fn subtract_ranges(wanted: &[(u64, u64)], have: &[(u64, u64)]) -> Vec<(u64, u64)> {
    let mut out = Vec::new();
    for &(mut a, b) in wanted {
        let first = have.partition_point(|h| h.1 <= a);
        for &(ha, hb) in &have[first..] {
            if ha >= b {
                break;
            }
            if ha > a {
                out.push((a, ha));
            }
            a = a.max(hb);
            if a >= b {
                break;
            }
        }
        if a < b {
            out.push((a, b));
        }
    }
    out
}

/// Sorts and merges overlapping or touching half-open ranges.
fn merge_ranges(mut ranges: Vec<(u64, u64)>) -> Vec<(u64, u64)> {
    ranges.retain(|(a, b)| a < b);
    ranges.sort_unstable();
    let mut out: Vec<(u64, u64)> = Vec::with_capacity(ranges.len());
    for (a, b) in ranges {
        match out.last_mut() {
            Some(last) if a <= last.1 => last.1 = last.1.max(b),
            _ => out.push((a, b)),
        }
    }
    out
}

/// Copies `ranges` (sorted, disjoint) out of the stopped process with as few
/// process_vm_readv calls as the kernel allows (IOV_MAX iovecs each). Where one
/// stops short, the rest of that range is read through /proc/PID/mem, which also
/// reads pages process_vm_readv refuses (PROT_NONE: /proc/PID/mem uses FOLL_FORCE);
/// a page neither can read ends that range.
fn copy_ranges(pid: i32, ranges: &[(u64, u64)], problems: &mut Vec<Problem>) -> CopiedMemory {
    let mut bufs: Vec<Vec<u8>> = ranges.iter().map(|(a, b)| vec![0u8; (b - a) as usize]).collect();
    // Bytes of each range copied so far (always a prefix).
    let mut done = vec![0usize; ranges.len()];
    let mut mem: Option<std::fs::File> = None;
    let mut mem_failed = false;
    let mut vm_readv_works = true;
    let mut next = 0;
    while next < ranges.len() {
        let mut batch = Vec::with_capacity(IOV_MAX.min(ranges.len() - next));
        let mut bytes = 0usize;
        for i in next..ranges.len() {
            let len = bufs[i].len() - done[i];
            if batch.len() == IOV_MAX || (!batch.is_empty() && bytes + len > MAX_BATCH_BYTES) {
                break;
            }
            batch.push(i);
            bytes += len;
        }
        let mut got = if vm_readv_works { vm_readv(pid, &batch, ranges, &mut bufs, &done) } else { Ok(0) };
        if let Err(e) = got {
            if e == Errno::ESRCH {
                problems.push(Problem::new(Scope::Snapshot, "process exited while its memory was being copied"));
                break;
            }
            // EPERM/ENOSYS (seccomp, old kernel) and the like: use /proc/PID/mem for the rest.
            if e != Errno::EFAULT {
                vm_readv_works = false;
            }
            got = Ok(0);
        }
        let mut got = got.unwrap_or(0);
        let mut consumed = batch.len();
        for (k, &i) in batch.iter().enumerate() {
            let want = bufs[i].len() - done[i];
            if got >= want {
                done[i] += want;
                got -= want;
                continue;
            }
            // This iovec stopped short; the ones after it were not attempted.
            done[i] += got;
            consumed = k + 1;
            if mem.is_none() && !mem_failed {
                match std::fs::File::open(format!("/proc/{pid}/mem")) {
                    Ok(f) => mem = Some(f),
                    Err(e) => {
                        mem_failed = true;
                        problems.push(Problem::new(Scope::Snapshot, format!("opening /proc/{pid}/mem: {e}")));
                    }
                }
            }
            if let Some(f) = &mem {
                done[i] += pread_all(f, ranges[i].0 + done[i] as u64, &mut bufs[i][done[i]..]);
            }
            if done[i] < bufs[i].len() {
                problems.push(Problem::new(
                    Scope::Snapshot,
                    format!(
                        "memory at {:#x} unreadable; copied {} of {} bytes from {:#x}",
                        ranges[i].0 + done[i] as u64,
                        done[i],
                        bufs[i].len(),
                        ranges[i].0
                    ),
                ));
            }
            break;
        }
        next += consumed;
    }
    let mut memory = CopiedMemory::default();
    for ((addr, _), (mut buf, n)) in ranges.iter().zip(bufs.into_iter().zip(done)) {
        buf.truncate(n);
        memory.add(*addr, buf);
    }
    memory
}

/// One process_vm_readv over the remaining part of each range in `batch`.
fn vm_readv(
    pid: i32,
    batch: &[usize],
    ranges: &[(u64, u64)],
    bufs: &mut [Vec<u8>],
    done: &[usize],
) -> Result<usize, Errno> {
    let mut local = Vec::with_capacity(batch.len());
    let mut remote = Vec::with_capacity(batch.len());
    for &i in batch {
        let rest = &mut bufs[i][done[i]..];
        local.push(libc::iovec { iov_base: rest.as_mut_ptr().cast(), iov_len: rest.len() });
        remote.push(libc::iovec { iov_base: (ranges[i].0 + done[i] as u64) as *mut libc::c_void, iov_len: rest.len() });
    }
    // SAFETY: each local iovec points into a distinct live buffer of exactly
    // iov_len bytes; remote iovecs are only addresses in the target.
    let n =
        unsafe { libc::process_vm_readv(pid, local.as_ptr(), local.len() as _, remote.as_ptr(), remote.len() as _, 0) };
    if n < 0 { Err(Errno::last()) } else { Ok(n as usize) }
}

/// Reads as much of `buf` as possible from /proc/PID/mem at `addr`.
fn pread_all(f: &std::fs::File, addr: u64, buf: &mut [u8]) -> usize {
    let mut n = 0;
    while n < buf.len() {
        match f.read_at(&mut buf[n..], addr + n as u64) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => break,
        }
    }
    n
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merging() {
        type Ranges = &'static [(u64, u64)];
        let cases: &[(Ranges, Ranges)] = &[
            (&[], &[]),
            (&[(5, 5)], &[]),
            (&[(10, 20), (0, 5)], &[(0, 5), (10, 20)]),
            (&[(0, 10), (5, 20)], &[(0, 20)]),
            (&[(0, 10), (10, 20)], &[(0, 20)]),
            (&[(0, 30), (5, 20), (25, 40), (50, 60)], &[(0, 40), (50, 60)]),
        ];
        for (input, want) in cases {
            assert_eq!(merge_ranges(input.to_vec()), want.to_vec(), "{input:?}");
        }
    }

    #[test]
    fn subtracting() {
        type Ranges = &'static [(u64, u64)];
        let cases: &[(Ranges, Ranges, Ranges)] = &[
            (&[(0, 10)], &[], &[(0, 10)]),
            (&[(0, 10)], &[(0, 10)], &[]),
            (&[(0, 10)], &[(2, 4), (6, 8)], &[(0, 2), (4, 6), (8, 10)]),
            (&[(5, 15)], &[(0, 7), (12, 20)], &[(7, 12)]),
            (&[(0, 5), (20, 30)], &[(5, 20)], &[(0, 5), (20, 30)]),
            (&[(10, 20)], &[(0, 5), (30, 40)], &[(10, 20)]),
        ];
        for (wanted, have, want) in cases {
            assert_eq!(subtract_ranges(wanted, have), want.to_vec(), "{wanted:?} - {have:?}");
        }
    }

    #[test]
    fn plan_stacks_and_vdso() {
        let map = |s: u64, e: u64, path: &str| Mapping {
            start: s,
            end: e,
            perms: "rw-p".into(),
            offset: 0,
            path: path.into(),
        };
        let maps = vec![map(0x1000, 0x9000, ""), map(0x10000, 0x20000, "[stack]"), map(0x30000, 0x32000, "[vdso]")];
        let th = |tid: i32, rsp: u64| ThreadState {
            tid,
            registers: Registers { rsp, ..Default::default() },
            ..Default::default()
        };
        let mut problems = Vec::new();
        let threads = [th(1, 0x1f000), th(2, 0x1040), th(3, 0x8000), th(4, 0x50000)];
        let plan = copy_plan(&threads, &maps, 0x800, &mut problems);
        assert_eq!(plan, [(0x1000, 0x1800), (0x7f80, 0x8780), (0x1ef80, 0x1f780), (0x30000, 0x32000)]);
        assert_eq!(problems.len(), 1, "thread 4's rsp is in no mapping");
        let plan = copy_plan(&threads[..1], &maps, 8 << 20, &mut problems);
        assert_eq!(plan, [(0x1ef80, 0x20000), (0x30000, 0x32000)]);
    }

    #[test]
    fn fault_ranges_are_clipped_to_readable_mappings() {
        let map = |s: u64, e: u64, perms: &str| Mapping {
            start: s,
            end: e,
            perms: perms.into(),
            offset: 0,
            path: String::new(),
        };
        let maps = vec![map(0x1000, 0x2000, "r-xp"), map(0x5000, 0x9000, "rw-p"), map(0x9000, 0xa000, "---p")];
        let th = |rip: u64, faulted: bool| ThreadState {
            registers: Registers { rip, ..Default::default() },
            faulted,
            ..Default::default()
        };
        let sig = |addr: u64| Signal { fault_address: Some(addr), ..Default::default() };
        // (threads, fault address, expected ranges)
        type Case = (Vec<ThreadState>, Option<u64>, Vec<(u64, u64)>);
        let cases: Vec<Case> = vec![
            (vec![th(0x1010, true)], None, vec![(0x1000, 0x1110)]),
            (vec![th(0x1010, false)], None, vec![]),
            (vec![th(0x1800, true)], Some(0x5080), vec![(0x1700, 0x1900), (0x5000, 0x5180)]),
            (vec![th(0x1800, true)], Some(0x9100), vec![(0x1700, 0x1900)]), // guard page: unreadable
            (vec![th(0x0, true)], Some(0x0), vec![]),                       // null pc, null address
        ];
        for (threads, addr, want) in cases {
            let s = addr.map(sig);
            assert_eq!(fault_ranges(&threads, s.as_ref(), &maps), want, "{addr:?}");
        }
    }

    #[test]
    fn refuses_self_and_missing() {
        let me = std::process::id() as i32;
        assert!(matches!(capture(me, &LiveOptions::default()), Err(TargetError::SelfAttach { .. })));
        // Another thread of ours is still ourselves.
        let (tx, rx) = std::sync::mpsc::channel();
        let h = std::thread::spawn(move || {
            // SAFETY: gettid has no preconditions.
            tx.send(unsafe { libc::gettid() }).expect("send");
            std::thread::sleep(Duration::from_millis(200));
        });
        let tid = rx.recv().expect("tid");
        assert!(matches!(capture(tid, &LiveOptions::default()), Err(TargetError::SelfAttach { .. })));
        h.join().expect("join");
        assert!(matches!(capture(0, &LiveOptions::default()), Err(TargetError::NoSuchProcess { .. })));
        assert!(matches!(capture(i32::MAX, &LiveOptions::default()), Err(TargetError::NoSuchProcess { .. })));
        // A child that exited and was not reaped yet.
        let mut child = std::process::Command::new("true").spawn().expect("spawn true");
        let pid = child.id() as i32;
        let deadline = Instant::now() + Duration::from_secs(5);
        while procfs::read_small(&format!("/proc/{pid}/stat"))
            .ok()
            .and_then(|s| procfs::parse_task_stat(&s))
            .map(|x| x.1)
            != Some("Z".into())
        {
            assert!(Instant::now() < deadline, "true did not exit");
            std::thread::sleep(Duration::from_millis(5));
        }
        let err = capture(pid, &LiveOptions::default()).err().expect("a zombie cannot be captured");
        assert!(matches!(err, TargetError::Exited { .. }), "{err}");
        child.wait().expect("reap");
        // kthreadd is pid 2 when we see the host's pid namespace.
        if procfs::read_small("/proc/2/comm").is_ok_and(|c| c.trim() == "kthreadd") {
            assert!(matches!(capture(2, &LiveOptions::default()), Err(TargetError::KernelThread { pid: 2 })));
        }
    }

    fn spawn_sleep() -> std::process::Child {
        let child = std::process::Command::new("sleep").arg("100").spawn().expect("spawn sleep");
        // Let it reach its nanosleep.
        std::thread::sleep(Duration::from_millis(50));
        child
    }

    #[test]
    fn signal_delivery_stop_is_reinjected_on_detach() {
        use std::os::unix::process::ExitStatusExt;
        let mut child = spawn_sleep();
        let pid = child.id() as i32;
        let mut att = Attachment::default();
        ptrace(libc::PTRACE_SEIZE as _, pid, 0, 0).expect("seize");
        att.threads.push(Tracee {
            tid: pid,
            name: "sleep".into(),
            state: "S".into(),
            attached: true,
            stopped: false,
            inject: 0,
        });
        // A signal to a seized (not yet interrupted) thread: a signal-delivery-stop.
        // SAFETY: kill has no memory-safety preconditions.
        assert_eq!(unsafe { libc::kill(pid, libc::SIGUSR1) }, 0);
        let mut problems = Vec::new();
        wait_for_stops(&mut att.threads, Instant::now() + Duration::from_secs(5), &mut problems);
        assert!(problems.is_empty(), "{problems:?}");
        assert!(att.threads[0].stopped);
        assert_eq!(att.threads[0].inject, libc::SIGUSR1);
        assert_eq!(pending_signal(pid).map(|s| (s.signo, s.code_name)), Some((libc::SIGUSR1, "SI_USER".to_string())));
        assert!(att.detach_all().is_empty());
        // Re-injected: SIGUSR1's default action kills sleep.
        let status = child.wait().expect("wait");
        assert_eq!(status.signal(), Some(libc::SIGUSR1), "the signal was lost: {status:?}");
    }

    #[test]
    fn guard_detaches_on_panic() {
        let mut child = spawn_sleep();
        let pid = child.id() as i32;
        let r = std::panic::catch_unwind(|| {
            let mut att = Attachment::default();
            ptrace(libc::PTRACE_SEIZE as _, pid, 0, 0).expect("seize");
            att.threads.push(Tracee {
                tid: pid,
                name: String::new(),
                state: String::new(),
                attached: true,
                stopped: false,
                inject: 0,
            });
            ptrace(libc::PTRACE_INTERRUPT as _, pid, 0, 0).expect("interrupt");
            wait_for_stops(&mut att.threads, Instant::now() + Duration::from_secs(5), &mut Vec::new());
            assert!(att.threads[0].stopped);
            panic!("boom while attached");
        });
        assert!(r.is_err());
        let stat = procfs::read_small(&format!("/proc/{pid}/stat")).expect("stat");
        let (_, state) = procfs::parse_task_stat(&stat).expect("parse");
        assert!(state == "S" || state == "R", "sleep runs on, not traced-stopped: {state}");
        assert_eq!(
            procfs::parse_status(
                &std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status"),
                &["TracerPid"]
            )[0]
            .1,
            "0"
        );
        let _ = child.kill();
        let _ = child.wait();
    }

    #[test]
    fn copies_across_a_prot_none_page() {
        // Our own child, with a PROT_NONE page in the middle of a mapping we read:
        // process_vm_readv stops there, /proc/PID/mem reads it.
        let page = 4096usize;
        // SAFETY: a fresh anonymous mapping, written then protected.
        let base = unsafe {
            let p = libc::mmap(
                std::ptr::null_mut(),
                3 * page,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            );
            assert_ne!(p, libc::MAP_FAILED);
            std::ptr::write_bytes(p.cast::<u8>(), 0xab, 3 * page);
            libc::mprotect(p.cast::<u8>().add(page).cast(), page, libc::PROT_NONE);
            p as u64
        };
        // Read our own memory: process_vm_readv on ourselves needs no ptrace.
        let pid = std::process::id() as i32;
        let mut problems = Vec::new();
        let mem = copy_ranges(pid, &[(base, base + 3 * page as u64)], &mut problems);
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(mem.total_bytes(), 3 * page);
        let mut buf = vec![0u8; 3 * page];
        assert_eq!(crate::target::Memory::read(&mem, base, &mut buf), 3 * page);
        assert!(buf.iter().all(|b| *b == 0xab));
        // SAFETY: unmapping what we mapped.
        unsafe { libc::munmap(base as *mut libc::c_void, 3 * page) };
    }
}
