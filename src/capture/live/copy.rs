//! What a live capture copies while the threads are stopped: the ranges to read
//! (stacks, the vDSO, interrupted sigaltstacks, the fault's neighbourhood, glibc's
//! `__abort_msg`) and the batched `process_vm_readv` copy with its `/proc/PID/mem` fallback.

use super::*;

/// The stack range to copy for a stack pointer: `sp - 128` to the end of its
/// mapping, capped at `max_stack` bytes. None when `sp` is in no mapping.
pub(super) fn stack_range(sp: u64, maps: &[Mapping], max_stack: usize) -> Option<(u64, u64)> {
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
pub(super) fn copy_plan(
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
pub(super) fn interrupted_stacks(
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
        let n = crate::capture::Memory::read(copied, sp, &mut buf);
        let word = |o: usize| buf.get(o..o + 8).map(|b| u64::from_le_bytes(b.try_into().expect("8 bytes")));
        // `o` is the offset of uc_stack; pretcode is 24 bytes before it.
        for o in (24..n.saturating_sub(160)).step_by(8) {
            // Almost every word is no pointer to just below rsp: rejected on one load
            // (a thousand stacks are scanned while their threads are stopped).
            let Some(ss_sp) = word(o) else { break };
            if ss_sp > sp || sp - ss_sp >= 1 << 28 {
                continue;
            }
            let (Some(flags), Some(ss_size)) = (word(o + 8), word(o + 16)) else { break };
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
pub(super) fn fault_ranges(threads: &[ThreadState], signal: Option<&Signal>, maps: &[Mapping]) -> Vec<(u64, u64)> {
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
pub(super) fn abort_msg_address(pid: i32) -> Option<u64> {
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
pub(super) fn copy_abort_msg(
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
    if crate::capture::Memory::read(memory, var, &mut word) != 8 {
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
pub(super) fn subtract_ranges(wanted: &[(u64, u64)], have: &[(u64, u64)]) -> Vec<(u64, u64)> {
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
pub(super) fn merge_ranges(mut ranges: Vec<(u64, u64)>) -> Vec<(u64, u64)> {
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
pub(super) fn copy_ranges(pid: i32, ranges: &[(u64, u64)], problems: &mut Vec<Problem>) -> CopiedMemory {
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
pub(super) fn vm_readv(
    pid: i32,
    batch: &[usize],
    ranges: &[(u64, u64)],
    bufs: &mut [Vec<u8>],
    done: &[usize],
) -> Result<usize, Errno> {
    // Distinct mutable borrows of the batch's buffers (an index listed twice is
    // read once).
    let mut slots: Vec<Option<&mut Vec<u8>>> = bufs.iter_mut().map(Some).collect();
    let mut local = Vec::with_capacity(batch.len());
    let mut remote = Vec::with_capacity(batch.len());
    for &i in batch {
        let Some(buf) = slots.get_mut(i).and_then(Option::take) else { continue };
        let rest = &mut buf[done[i]..];
        remote.push(nix::sys::uio::RemoteIoVec { base: (ranges[i].0 + done[i] as u64) as usize, len: rest.len() });
        local.push(std::io::IoSliceMut::new(rest));
    }
    nix::sys::uio::process_vm_readv(nix::unistd::Pid::from_raw(pid), &mut local, &remote)
}

/// Reads as much of `buf` as possible from /proc/PID/mem at `addr`.
pub(super) fn pread_all(f: &std::fs::File, addr: u64, buf: &mut [u8]) -> usize {
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
