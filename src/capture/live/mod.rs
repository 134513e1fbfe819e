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

use super::{Capture, CaptureError, CopiedMemory, ThreadState, procfs, signals};
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
    /// Read each thread's kernel stack before stopping it (root only; the snapshot's
    /// kernel-stacks extension, which viewers show). A thousand threads: ~15 ms.
    pub kernel_stacks: bool,
}

impl Default for LiveOptions {
    fn default() -> Self {
        LiveOptions { max_stack_bytes: 8 << 20, stop_timeout: Duration::from_secs(5), hold: false, kernel_stacks: true }
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
        if let Some(since) = self.since.take() {
            // Debugging aid: how long the target was kept from running.
            let level = if std::env::var_os("BT_TIMING").is_some() { log::Level::Info } else { log::Level::Debug };
            log::log!(level, "timing: threads stopped for {:.1} ms", since.elapsed().as_secs_f64() * 1e3);
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

/// `ptrace(2)` with errno, for the two requests nix's wrappers cannot express:
/// `PTRACE_DETACH` with a signal to re-inject (nix's `detach` takes a `Signal`,
/// which has no real-time signals, and a thread stopped on one must get it back),
/// and `PTRACE_GETSIGINFO` into the raw 128 bytes that `signals::from_siginfo`
/// decodes (nix gives libc's `siginfo_t`, whose union fields libc does not expose
/// for every signal). Seize, interrupt and registers use nix's safe wrappers.
fn ptrace(req: libc::c_uint, tid: i32, addr: usize, data: usize) -> Result<libc::c_long, Errno> {
    Errno::clear();
    // SAFETY: DETACH ignores addr and takes a signal number in data; GETSIGINFO
    // receives a pointer to a live 128-byte buffer, the size the kernel writes.
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
pub fn capture(pid: i32, opts: &LiveOptions) -> Result<Capture, CaptureError> {
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
        let regs = match nix::sys::ptrace::getregs(nix::unistd::Pid::from_raw(t.tid)) {
            Ok(r) => r,
            Err(e) => {
                problems
                    .push(Problem::new(Scope::Thread(t.tid), format!("reading registers of thread {}: {e}", t.tid)));
                continue;
            }
        };
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
            partial: false,
        });
    }
    for t in att.threads.iter().filter(|t| !t.stopped && t.attached) {
        threads.extend(unstopped(pid, t, &mut problems));
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
    // The link map, read from the stopped process (a few small reads).
    let link_map = match std::fs::File::open(format!("/proc/{pid}/mem")) {
        Ok(f) => super::linkmap::read_or_note(&ProcMemory(f), &auxv, &mut problems),
        Err(e) => {
            problems.push(Problem::new(Scope::Snapshot, format!("opening /proc/{pid}/mem: {e}")));
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
        (Box::new(HeldMemory::new(memory, mem, released)), Some(Box::new(release)))
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

    Ok(Capture {
        source: Source::Live,
        process,
        signal,
        threads,
        maps,
        auxv,
        link_map,
        memory,
        environment,
        problems,
        hold,
    })
}

/// A stopped process's memory through /proc/PID/mem (for the few reads made
/// while it is stopped, before the copies exist).
struct ProcMemory(std::fs::File);

impl super::Memory for ProcMemory {
    fn read(&self, addr: u64, buf: &mut [u8]) -> usize {
        pread_all(&self.0, addr, buf)
    }
}

/// The memory of a process held stopped: the stack copies first, then the live
/// address space through /proc/PID/mem (which also reads PROT_NONE-free pages that
/// process_vm_readv would refuse mid-range). Once released, only the copies: what
/// is read after the process runs again would not belong to the snapshot.
struct HeldMemory {
    copies: CopiedMemory,
    mem: Option<std::fs::File>,
    released: Arc<AtomicBool>,
    /// Pages small reads came from (None: unreadable), valid while the process is
    /// held: a thousand threads waiting on one mutex read that global's page a
    /// thousand times, a system call each.
    pages: std::sync::Mutex<std::collections::HashMap<u64, Option<Arc<[u8]>>>>,
}

/// Reads at most this long go through [`HeldMemory::pages`].
const SMALL_READ: usize = 256;
const PAGE: u64 = 4096;
/// Pages kept at most (16 MiB); past it, small reads go to the file as large ones do.
const MAX_PAGES: usize = 4096;

impl HeldMemory {
    fn new(copies: CopiedMemory, mem: Option<std::fs::File>, released: Arc<AtomicBool>) -> HeldMemory {
        HeldMemory { copies, mem, released, pages: Default::default() }
    }

    /// The page at `page` (page-aligned) of the held process, read once.
    fn page(&self, f: &std::fs::File, page: u64) -> Option<Arc<[u8]>> {
        if let Some(hit) = self.pages.lock().ok()?.get(&page) {
            return hit.clone();
        }
        let mut buf = vec![0u8; PAGE as usize];
        let got = (pread_all(f, page, &mut buf) == buf.len()).then(|| Arc::<[u8]>::from(buf));
        let mut pages = self.pages.lock().ok()?;
        if pages.len() < MAX_PAGES {
            pages.insert(page, got.clone());
        }
        got
    }
}

impl super::Memory for HeldMemory {
    fn read(&self, addr: u64, buf: &mut [u8]) -> usize {
        let n = self.copies.read(addr, buf);
        if n == buf.len() {
            return n;
        }
        let Some(f) = self.mem.as_ref().filter(|_| !self.released.load(Ordering::SeqCst)) else { return n };
        let mut done = n;
        if buf.len() - done <= SMALL_READ {
            // Whole pages, so a read that crosses into an unreadable one stops there.
            while done < buf.len() {
                let at = addr.wrapping_add(done as u64);
                let Some(page) = self.page(f, at & !(PAGE - 1)) else { break };
                let off = (at % PAGE) as usize;
                let k = (buf.len() - done).min(page.len() - off);
                buf[done..done + k].copy_from_slice(&page[off..off + k]);
                done += k;
            }
            // A page that would not read whole may still hold the bytes asked for.
            if done == buf.len() {
                return done;
            }
        }
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
fn resolve_pid(pid: i32, problems: &mut Vec<Problem>) -> Result<i32, CaptureError> {
    let me = std::process::id() as i32;
    let is_self = |p: i32| p == me || std::path::Path::new(&format!("/proc/self/task/{p}")).exists();
    if pid <= 0 {
        return Err(CaptureError::NoSuchProcess { pid });
    }
    if is_self(pid) {
        return Err(CaptureError::SelfAttach { pid });
    }
    let status = match std::fs::read_to_string(format!("/proc/{pid}/status")) {
        Ok(s) => s,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(CaptureError::NoSuchProcess { pid }),
        Err(e) => return Err(CaptureError::Io { path: format!("/proc/{pid}/status"), source: e }),
    };
    if procfs::read_small(&format!("/proc/{pid}/stat"))
        .ok()
        .as_deref()
        .and_then(procfs::parse_stat_flags)
        .is_some_and(|flags| flags & PF_KTHREAD != 0)
    {
        return Err(CaptureError::KernelThread { pid });
    }
    let tgid = procfs::parse_status(&status, &["Tgid"]).first().and_then(|(_, v)| v.parse::<i32>().ok()).unwrap_or(pid);
    if tgid != pid {
        // Folklore: /proc/TID exists (hidden from readdir) for every thread, so a
        // thread id "works" as a pid; we capture its whole process.
        if is_self(tgid) {
            return Err(CaptureError::SelfAttach { pid });
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
fn freeze(pid: i32, att: &mut Attachment, deadline: Instant, problems: &mut Vec<Problem>) -> Result<(), CaptureError> {
    let mut known: HashSet<i32> = HashSet::new();
    att.since = Some(Instant::now());
    for round in 0.. {
        let tids = match procfs::task_ids(pid) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(CaptureError::NoSuchProcess { pid }),
            Err(e) => return Err(CaptureError::Io { path: format!("/proc/{pid}/task"), source: e }),
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
            match nix::sys::ptrace::seize(nix::unistd::Pid::from_raw(tid), nix::sys::ptrace::Options::empty()) {
                Ok(_) => {}
                Err(Errno::ESRCH) => {
                    problems.push(Problem::new(Scope::Thread(tid), format!("thread {tid} exited during attach")));
                    continue;
                }
                Err(e) if att.threads.is_empty() => {
                    return Err(match e {
                        Errno::EPERM => match tracer_of(pid) {
                            Some(tracer) => CaptureError::AlreadyTraced { pid, tracer },
                            None => CaptureError::PermissionDenied { pid },
                        },
                        e => CaptureError::Attach { pid, source: e },
                    });
                }
                Err(e) => {
                    problems.push(Problem::new(Scope::Thread(tid), format!("attaching to thread {tid}: {e}")));
                    continue;
                }
            }
            att.threads.push(Tracee { tid, name, state, attached: true, stopped: false, inject: 0 });
            // ESRCH here means it is exiting; waitpid reports that below.
            let _ = nix::sys::ptrace::interrupt(nix::unistd::Pid::from_raw(tid));
        }
        wait_for_stops(&mut att.threads[first_new..], deadline, problems);
    }
    if !att.threads.iter().any(|t| t.stopped) {
        let zombie = procfs::read_small(&format!("/proc/{pid}/stat"))
            .ok()
            .and_then(|s| procfs::parse_task_stat(&s))
            .is_some_and(|(_, state)| state == "Z");
        return Err(if zombie { CaptureError::Exited { pid } } else { CaptureError::NoSuchProcess { pid } });
    }
    Ok(())
}

/// (comm, state letter) of each thread, None for those gone, read by a few threads
/// when there are many (reading /proc needs no ptrace rights).
/// Folklore: /proc/PID/task/TID/stat carries comm too, so one read gives both.
fn read_task_stats(pid: i32, tids: &[i32]) -> Vec<Option<(String, String)>> {
    procfs::per_task(tids, |tid| {
        let stat = procfs::read_small(&format!("/proc/{pid}/task/{tid}/stat")).ok()?;
        procfs::parse_task_stat(&stat)
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
                    format!("thread {} (state {}) did not stop in time", t.tid, t.state),
                ));
            }
            return;
        }
        std::thread::sleep(nap);
        nap = (nap * 2).min(Duration::from_millis(1));
    }
}

/// A thread that never stopped (asleep in the kernel where no signal wakes it: a
/// vfork parent, a read from a hung NFS server): where it sleeps, from the stack and
/// instruction pointers `/proc/PID/task/TID/syscall` gives for a blocked thread, so
/// that its stack can be walked as far as those two registers allow (gdb waits for
/// it for ever).
fn unstopped(pid: i32, t: &Tracee, problems: &mut Vec<Problem>) -> Option<ThreadState> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/task/{}/syscall", t.tid)).unwrap_or_default();
    let Some((nr, sp, pc)) = parse_syscall(&text) else {
        problems.push(Problem::new(Scope::Thread(t.tid), format!("thread {} not captured: it never stopped", t.tid)));
        return None;
    };
    problems.push(Problem::new(
        Scope::Thread(t.tid),
        format!(
            "thread {} never stopped: its stack is walked from the stack and instruction pointers the kernel gives for it (other registers unknown: no variables, and the walk may end early)",
            t.tid
        ),
    ));
    let registers =
        Registers { rsp: sp, rip: pc, orig_rax: nr.map(|n| n as u64).unwrap_or(u64::MAX), ..Default::default() };
    Some(ThreadState {
        tid: t.tid,
        name: t.name.clone(),
        state: t.state.clone(),
        registers,
        faulted: false,
        partial: true,
    })
}

/// `/proc/PID/task/TID/syscall` of a blocked thread: `NR ARG×6 SP PC` inside a system
/// call, `-1 SP PC` outside one (the syscall number when there is one, SP, PC); None
/// for `running` or anything else.
fn parse_syscall(text: &str) -> Option<(Option<i64>, u64, u64)> {
    let f: Vec<&str> = text.split_whitespace().collect();
    let hex = |s: &str| u64::from_str_radix(s.strip_prefix("0x")?, 16).ok();
    let nr: i64 = f.first()?.parse().ok()?;
    let (sp, pc) = match (nr, f.len()) {
        (-1, 3) => (hex(f[1])?, hex(f[2])?),
        (n, 9) if n >= 0 => (hex(f[7])?, hex(f[8])?),
        _ => return None,
    };
    (sp != 0 && pc != 0).then_some((Some(nr).filter(|n| *n >= 0), sp, pc))
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

mod copy;
#[cfg(test)]
mod tests;

use copy::*;
