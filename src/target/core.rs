//! ELF core files: threads from NT_PRSTATUS, process from NT_PRPSINFO, the signal from
//! NT_SIGINFO, file names from NT_FILE, memory from PT_LOAD segments (mmap).
//!
//! Parsing is by hand over byte slices with a bounds check on every read: a core is
//! untrusted input (truncated by a full disk, cut by a core_pattern pipe, or plain
//! garbage) and every outcome is a value, never a panic. A core whose segments run
//! past the end of the file is served as far as it goes, with a [`Problem`].

use super::{Capture, Memory, TargetError, ThreadState, procfs, signals};
use crate::snapshot::{Mapping, Problem, Process, Registers, Scope, Signal, Source};
use std::path::Path;

const PT_LOAD: u32 = 1;
const PT_NOTE: u32 = 4;
const PF_X: u32 = 1;
const PF_W: u32 = 2;
const PF_R: u32 = 4;
const ET_CORE: u16 = 4;
const EM_X86_64: u16 = 62;
/// e_phnum value meaning "the real count is in section header 0's sh_info".
const PN_XNUM: u16 = 0xffff;
const EHDR_SIZE: usize = 64;
const PHDR_SIZE: usize = 56;
const SHDR_SIZE: usize = 64;

const NT_PRSTATUS: u32 = 1;
const NT_PRPSINFO: u32 = 3;
const NT_AUXV: u32 = 6;
const NT_SIGINFO: u32 = 0x5349_4749;
const NT_FILE: u32 = 0x4649_4c45;
const NT_GNU_BUILD_ID: u32 = 3;

pub const AT_PHDR: u64 = 3;
pub const AT_ENTRY: u64 = 9;
pub const AT_SYSINFO_EHDR: u64 = 33;

/// Offset of `pr_reg` (a `user_regs_struct`) inside x86-64 `struct elf_prstatus`.
const PRSTATUS_REG_OFFSET: usize = 112;
/// 27 registers of 8 bytes.
const USER_REGS_SIZE: usize = 27 * 8;
/// Size of x86-64 `struct elf_prpsinfo`.
const PRPSINFO_SIZE: usize = 136;
/// The kernel copies at most this many bytes of the command line into pr_psargs.
const PRARGSZ: usize = 80;

const VSYSCALL_START: u64 = 0xffff_ffff_ff60_0000;

fn u16_at(b: &[u8], o: usize) -> Option<u16> {
    Some(u16::from_le_bytes(b.get(o..o.checked_add(2)?)?.try_into().ok()?))
}
fn u32_at(b: &[u8], o: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(o..o.checked_add(4)?)?.try_into().ok()?))
}
fn i32_at(b: &[u8], o: usize) -> Option<i32> {
    u32_at(b, o).map(|v| v as i32)
}
fn u64_at(b: &[u8], o: usize) -> Option<u64> {
    Some(u64::from_le_bytes(b.get(o..o.checked_add(8)?)?.try_into().ok()?))
}
/// A C string from a fixed-size field: up to the first NUL.
fn cstr(b: &[u8]) -> String {
    let end = b.iter().position(|c| *c == 0).unwrap_or(b.len());
    String::from_utf8_lossy(&b[..end]).into_owned()
}
fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// One PT_LOAD segment.
#[derive(Debug, Clone, Copy)]
struct Segment {
    vaddr: u64,
    memsz: u64,
    offset: u64,
    filesz: u64,
    /// Bytes of the segment actually in the file (less than filesz when truncated).
    present: u64,
    flags: u32,
}

/// The core's memory: PT_LOAD segments read straight from the mapped file.
/// Bytes the kernel did not dump (p_filesz < p_memsz) or that the truncated file
/// lacks are unreadable (short reads), never zeros.
pub struct CoreMemory {
    data: Box<dyn AsRef<[u8]> + Send + Sync>,
    /// (vaddr, file offset, present bytes), sorted by vaddr, present > 0.
    segments: Vec<(u64, u64, u64)>,
}

impl CoreMemory {
    fn new(data: Box<dyn AsRef<[u8]> + Send + Sync>, loads: &[Segment]) -> CoreMemory {
        let mut segments: Vec<_> =
            loads.iter().filter(|s| s.present > 0).map(|s| (s.vaddr, s.offset, s.present)).collect();
        segments.sort_by_key(|s| s.0);
        CoreMemory { data, segments }
    }
}

impl Memory for CoreMemory {
    fn read(&self, addr: u64, buf: &mut [u8]) -> usize {
        let data = (*self.data).as_ref();
        let mut done = 0;
        while done < buf.len() {
            let Some(at) = addr.checked_add(done as u64) else { break };
            let idx = self.segments.partition_point(|s| s.0 <= at);
            if idx == 0 {
                break;
            }
            let (vaddr, offset, present) = self.segments[idx - 1];
            let off = at - vaddr;
            if off >= present {
                break;
            }
            let n = (present - off).min((buf.len() - done) as u64) as usize;
            // `present` was clamped to the file length when the segment was built.
            let Some(src) = offset.checked_add(off).and_then(|s| data.get(s as usize..s as usize + n)) else { break };
            buf[done..done + n].copy_from_slice(src);
            done += n;
        }
        done
    }
}

/// One NT_FILE entry.
#[derive(Debug, Clone)]
struct FileEntry {
    start: u64,
    end: u64,
    /// File offset in bytes (the note stores pages).
    offset: u64,
    path: String,
}

#[derive(Debug, Default)]
struct PsInfo {
    pid: i32,
    ppid: i32,
    uid: u32,
    gid: u32,
    fname: String,
    psargs: String,
}

struct RawThread {
    tid: i32,
    cursig: i32,
    registers: Registers,
}

/// What the notes say.
#[derive(Default)]
struct Notes {
    threads: Vec<RawThread>,
    psinfo: Option<PsInfo>,
    /// NT_SIGINFO notes with the index of the NT_PRSTATUS thread they follow.
    /// Folklore: the kernel writes one, after the dumping thread's NT_PRSTATUS;
    /// gdb's gcore writes one after every thread's.
    siginfos: Vec<(Option<usize>, Vec<u8>)>,
    auxv: Vec<(u64, u64)>,
    files: Vec<FileEntry>,
}

/// Opens an ELF core file. When `exe` is given, checks that the core was dumped by
/// it (GNU build id, else file name) and records it as the process's executable.
/// The environment is the host's: the tracer usually runs where the crash happened.
pub fn open(path: &Path, exe: Option<&Path>) -> Result<Capture, TargetError> {
    let name = path.display().to_string();
    let io = |source| TargetError::Io { path: name.clone(), source };
    // Checked before open(): opening a FIFO would block.
    if !std::fs::metadata(path).map_err(io)?.is_file() {
        return Err(TargetError::NotACore { path: name, reason: "not a regular file".into() });
    }
    let file = std::fs::File::open(path).map_err(io)?;
    let len = file.metadata().map_err(io)?.len();
    if len < EHDR_SIZE as u64 {
        return Err(TargetError::NotACore { path: name, reason: format!("{len} bytes, shorter than an ELF header") });
    }
    // SAFETY: the map is read-only. Folklore: if another process truncates the file
    // while we read it, touching the lost pages raises SIGBUS; cores are written once
    // and left alone, which is the same assumption every debugger makes.
    let map = unsafe { memmap2::Mmap::map(&file) }.map_err(io)?;
    let mut cap = from_bytes(&name, Box::new(map), exe)?;
    let (env, problems) = procfs::host_environment();
    cap.environment = env;
    cap.problems.extend(problems);
    Ok(cap)
}

/// Parses a core held in memory (`name` is used in errors and `Source::Core`).
/// Everything but the environment is filled.
pub fn from_bytes(
    name: &str,
    data: Box<dyn AsRef<[u8]> + Send + Sync>,
    exe: Option<&Path>,
) -> Result<Capture, TargetError> {
    let not_core = |reason: String| TargetError::NotACore { path: name.to_string(), reason };
    let bytes: &[u8] = (*data).as_ref();
    let mut problems = Vec::new();
    let mut truncated = false;

    // ELF header.
    if bytes.len() < EHDR_SIZE {
        return Err(not_core(format!("{} bytes, shorter than an ELF header", bytes.len())));
    }
    if &bytes[..4] != b"\x7fELF" {
        return Err(not_core("no ELF magic".into()));
    }
    if bytes[4] != 2 {
        return Err(not_core(format!("ELF class {} (only 64-bit cores are supported)", bytes[4])));
    }
    if bytes[5] != 1 {
        return Err(not_core(format!("ELF data encoding {} (only little endian is supported)", bytes[5])));
    }
    let e_type = u16_at(bytes, 16).expect("header length checked");
    let e_machine = u16_at(bytes, 18).expect("header length checked");
    if e_type != ET_CORE {
        let what = match e_type {
            2 => "an executable",
            3 => "a shared object or PIE executable",
            1 => "a relocatable object",
            _ => "an unknown ELF type",
        };
        return Err(not_core(format!("e_type {e_type} ({what}), expected ET_CORE")));
    }
    if e_machine != EM_X86_64 {
        return Err(not_core(format!("e_machine {e_machine}, expected EM_X86_64 (62)")));
    }
    let phoff = u64_at(bytes, 32).expect("header length checked");
    let shoff = u64_at(bytes, 40).expect("header length checked");
    let phentsize = u16_at(bytes, 54).expect("header length checked");
    let mut phnum = u64::from(u16_at(bytes, 56).expect("header length checked"));
    if phnum == u64::from(PN_XNUM) {
        // Folklore: a core with 65535+ segments (a process with that many mappings)
        // stores the real count in sh_info of section header 0.
        phnum = usize::try_from(shoff)
            .ok()
            .and_then(|o| o.checked_add(SHDR_SIZE))
            .filter(|&end| end <= bytes.len())
            .and_then(|end| u32_at(bytes, end - SHDR_SIZE + 44))
            .map(u64::from)
            .ok_or_else(|| not_core("e_phnum is PN_XNUM but section header 0 is missing".into()))?;
    }
    if phnum == 0 {
        return Err(not_core("no program headers".into()));
    }
    if usize::from(phentsize) != PHDR_SIZE {
        return Err(not_core(format!("e_phentsize {phentsize}, expected {PHDR_SIZE}")));
    }
    let phoff = usize::try_from(phoff).ok().filter(|&o| o < bytes.len()).ok_or_else(|| TargetError::TruncatedCore {
        path: name.to_string(),
        reason: format!("program headers at offset {phoff} lie past the end of the {}-byte file", bytes.len()),
    })?;
    let fit = ((bytes.len() - phoff) / PHDR_SIZE) as u64;
    if fit < phnum {
        truncated = true;
        problems
            .push(Problem::new(Scope::Snapshot, format!("core truncated: {fit} of {phnum} program headers present")));
    }
    let phnum = phnum.min(fit) as usize;

    // Program headers.
    let mut loads = Vec::new();
    let mut note_ranges = Vec::new();
    for i in 0..phnum {
        let ph = &bytes[phoff + i * PHDR_SIZE..phoff + (i + 1) * PHDR_SIZE];
        let p_type = u32_at(ph, 0).expect("phdr length checked");
        let flags = u32_at(ph, 4).expect("phdr length checked");
        let offset = u64_at(ph, 8).expect("phdr length checked");
        let vaddr = u64_at(ph, 16).expect("phdr length checked");
        let filesz = u64_at(ph, 32).expect("phdr length checked");
        let memsz = u64_at(ph, 40).expect("phdr length checked");
        let present = (bytes.len() as u64).saturating_sub(offset).min(filesz);
        match p_type {
            PT_LOAD => loads.push(Segment { vaddr, memsz: memsz.max(filesz), offset, filesz, present, flags }),
            PT_NOTE => {
                if present < filesz {
                    truncated = true;
                    problems.push(Problem::new(
                        Scope::Snapshot,
                        format!("core truncated inside the notes: {present} of {filesz} bytes present"),
                    ));
                }
                // `present` bytes from `offset` are inside the file by construction
                // (and `offset` itself is, whenever present > 0).
                if present > 0 {
                    note_ranges.push((offset as usize, present as usize));
                }
            }
            _ => {}
        }
    }
    let declared: u64 = loads.iter().map(|s| s.filesz).fold(0, u64::saturating_add);
    let present: u64 = loads.iter().map(|s| s.present).fold(0, u64::saturating_add);
    if present < declared {
        truncated = true;
        problems.push(Problem::new(
            Scope::Snapshot,
            format!("core truncated: {present} of {declared} bytes of segments present"),
        ));
    }

    // Notes.
    let mut notes = Notes::default();
    for (off, len) in note_ranges {
        parse_notes(&bytes[off..off + len], &mut notes, &mut problems);
    }
    if notes.threads.is_empty() {
        return Err(if truncated {
            TargetError::TruncatedCore { path: name.to_string(), reason: "no thread could be read".into() }
        } else {
            not_core("no NT_PRSTATUS note (no thread)".into())
        });
    }

    let auxv = std::mem::take(&mut notes.auxv);
    let memory = CoreMemory::new(data, &loads);
    let faulted_idx = faulting_thread(&notes.threads);
    let siginfo = notes
        .siginfos
        .iter()
        .find(|(t, _)| *t == Some(faulted_idx))
        .or(notes.siginfos.first())
        .map(|(_, raw)| raw.as_slice());
    let any_signal = siginfo.is_some() || notes.threads.iter().any(|t| t.cursig != 0);
    let faulted_tid = notes.threads[faulted_idx].tid;

    let signal = match siginfo {
        Some(raw) => signals::from_siginfo(raw, faulted_tid),
        None => {
            let cursig = notes.threads[faulted_idx].cursig;
            if cursig != 0 {
                problems.push(Problem::new(
                    Scope::Snapshot,
                    "core has no NT_SIGINFO (kernel before 3.7?): signal number from pr_cursig, code unknown",
                ));
                Some(Signal {
                    signo: cursig,
                    name: signals::signal_name(cursig),
                    code: 0,
                    code_name: String::new(),
                    fault_address: None,
                    tid: faulted_tid,
                    sender_pid: None,
                })
            } else {
                None
            }
        }
    };

    let psinfo = notes.psinfo.take();
    if psinfo.is_none() {
        problems.push(Problem::new(
            Scope::Snapshot,
            "core has no NT_PRPSINFO: pid guessed as the lowest tid, no command line",
        ));
    }
    let psinfo = psinfo.unwrap_or_else(|| PsInfo {
        // The main thread's tid is the pid, and is normally the lowest.
        pid: notes.threads.iter().map(|t| t.tid).min().unwrap_or(0),
        ..Default::default()
    });

    // Threads: the faulting one first, then in note order. Folklore: cores carry no
    // per-thread names; every thread gets the process's pr_fname.
    let mut threads = Vec::with_capacity(notes.threads.len());
    let order = std::iter::once(faulted_idx).chain((0..notes.threads.len()).filter(|&i| i != faulted_idx));
    for i in order {
        let t = &notes.threads[i];
        threads.push(ThreadState {
            tid: t.tid,
            name: psinfo.fname.clone(),
            state: String::new(),
            registers: t.registers,
            faulted: any_signal && i == faulted_idx,
        });
    }

    for t in &threads {
        if memory.read_u64(t.registers.rsp).is_none() {
            problems.push(Problem::new(
                Scope::Thread(t.tid),
                format!(
                    "stack of thread {} at {:#x} is not in the core (truncated, or left out by coredump_filter)",
                    t.tid, t.registers.rsp
                ),
            ));
        }
    }
    let main_rsp = notes.threads.iter().find(|t| t.tid == psinfo.pid).map(|t| t.registers.rsp);
    let maps = build_maps(&loads, &notes.files, &auxv, main_rsp);

    let exe_entry = [AT_ENTRY, AT_PHDR].iter().find_map(|k| {
        let v = auxv.iter().find(|(key, _)| key == k)?.1;
        notes.files.iter().find(|f| f.start <= v && v < f.end)
    });
    let core_exe = exe_entry.map(|f| f.path.clone());
    if core_exe.is_none() {
        problems
            .push(Problem::new(Scope::Snapshot, "executable not found in the core (no NT_FILE entry holds AT_ENTRY)"));
    }

    let mut process = Process {
        pid: psinfo.pid,
        ppid: psinfo.ppid,
        exe: core_exe.clone().unwrap_or_default(),
        comm: psinfo.fname.clone(),
        // Folklore: pr_psargs is the start of the argument area with NULs turned into
        // spaces, cut at 80 bytes: arguments containing spaces cannot be told apart.
        cmdline: psinfo.psargs.split(' ').filter(|s| !s.is_empty()).map(str::to_string).collect(),
        uid: psinfo.uid,
        gid: psinfo.gid,
    };
    if psinfo.psargs.len() >= PRARGSZ - 1 {
        problems.push(Problem::new(Scope::Snapshot, "command line truncated to 80 bytes by the kernel"));
    }

    if let Some(exe) = exe {
        let core_build_id = core_exe.as_deref().and_then(|p| exe_build_id_in_core(&memory, &notes.files, p));
        check_exe(name, exe, core_build_id.as_deref(), core_exe.as_deref(), &psinfo.fname, &mut problems)?;
        process.exe = std::fs::canonicalize(exe).unwrap_or_else(|_| exe.to_path_buf()).display().to_string();
    }

    Ok(Capture {
        source: Source::Core(name.to_string()),
        process,
        signal,
        threads,
        maps,
        auxv,
        memory: Box::new(memory),
        environment: Default::default(),
        problems,
        hold: None,
    })
}

/// Index of the thread that took the fatal signal.
///
/// Folklore: the kernel writes the dumping thread's NT_PRSTATUS first, and the
/// dumping thread is the one that dequeued the fatal signal; NT_SIGINFO belongs to
/// it. Recent kernels put the same pr_cursig in every thread's note, so pr_cursig
/// only decides when exactly one thread has it set (older kernels, other writers).
fn faulting_thread(threads: &[RawThread]) -> usize {
    let mut with_sig = threads.iter().enumerate().filter(|(_, t)| t.cursig != 0);
    match (with_sig.next(), with_sig.next()) {
        (Some((i, _)), None) => i,
        _ => 0,
    }
}

fn align4(n: usize) -> Option<usize> {
    n.checked_add(3).map(|n| n & !3)
}

/// Iterates the notes of one PT_NOTE segment: (name without NUL, type, desc).
/// Stops at the first note that does not fit, reporting it.
fn for_each_note<'a>(seg: &'a [u8], mut f: impl FnMut(&'a [u8], u32, &'a [u8])) -> Result<(), String> {
    let mut pos = 0usize;
    while pos < seg.len() {
        let (Some(namesz), Some(descsz), Some(ntype)) = (u32_at(seg, pos), u32_at(seg, pos + 4), u32_at(seg, pos + 8))
        else {
            return Err(format!("note header at offset {pos} cut short"));
        };
        let name_start = pos + 12;
        let desc_start = name_start.checked_add(namesz as usize).and_then(align4);
        let desc_end = desc_start.and_then(|d| d.checked_add(descsz as usize));
        let (Some(desc_start), Some(desc_end)) = (desc_start, desc_end) else {
            return Err(format!("note at offset {pos} has impossible sizes"));
        };
        if desc_end > seg.len() {
            return Err(format!("note type {ntype:#x} at offset {pos} needs {desc_end} bytes, {} present", seg.len()));
        }
        let name = &seg[name_start..name_start + namesz as usize];
        let name = name.strip_suffix(&[0]).unwrap_or(name);
        f(name, ntype, &seg[desc_start..desc_end]);
        match align4(desc_end) {
            Some(next) => pos = next,
            None => break,
        }
    }
    Ok(())
}

fn parse_notes(seg: &[u8], notes: &mut Notes, problems: &mut Vec<Problem>) {
    let result = for_each_note(seg, |name, ntype, desc| {
        if name != b"CORE" {
            return;
        }
        match ntype {
            NT_PRSTATUS => match parse_prstatus(desc) {
                Some(t) => notes.threads.push(t),
                None => problems.push(Problem::new(
                    Scope::Snapshot,
                    format!("NT_PRSTATUS note of {} bytes is too short; thread skipped", desc.len()),
                )),
            },
            NT_PRPSINFO if desc.len() >= PRPSINFO_SIZE => {
                notes.psinfo = Some(PsInfo {
                    uid: u32_at(desc, 16).unwrap_or(0),
                    gid: u32_at(desc, 20).unwrap_or(0),
                    pid: i32_at(desc, 24).unwrap_or(0),
                    ppid: i32_at(desc, 28).unwrap_or(0),
                    fname: cstr(&desc[40..56]),
                    psargs: cstr(&desc[56..56 + PRARGSZ]).trim_end().to_string(),
                })
            }
            NT_SIGINFO => notes.siginfos.push((notes.threads.len().checked_sub(1), desc.to_vec())),
            NT_AUXV => notes.auxv = procfs::parse_auxv(desc),
            NT_FILE => match parse_nt_file(desc) {
                Ok(files) => notes.files = files,
                Err(e) => problems.push(Problem::new(Scope::Snapshot, format!("NT_FILE note: {e}"))),
            },
            _ => {}
        }
    });
    if let Err(e) = result {
        problems.push(Problem::new(Scope::Snapshot, format!("core notes: {e}")));
    }
}

/// x86-64 `struct elf_prstatus`: pr_cursig (short) @12, pr_pid @32, pr_reg @112.
fn parse_prstatus(desc: &[u8]) -> Option<RawThread> {
    let reg_bytes = desc.get(PRSTATUS_REG_OFFSET..PRSTATUS_REG_OFFSET + USER_REGS_SIZE)?;
    let mut w = [0u64; 27];
    for (i, c) in reg_bytes.chunks_exact(8).enumerate() {
        w[i] = u64::from_le_bytes(c.try_into().expect("chunks_exact(8)"));
    }
    Some(RawThread {
        tid: i32_at(desc, 32)?,
        cursig: i32::from(u16_at(desc, 12)? as i16),
        registers: registers_from_user_regs(&w),
    })
}

/// `struct user_regs_struct` word order (the kernel's, also PTRACE_GETREGS').
pub fn registers_from_user_regs(w: &[u64; 27]) -> Registers {
    Registers {
        r15: w[0],
        r14: w[1],
        r13: w[2],
        r12: w[3],
        rbp: w[4],
        rbx: w[5],
        r11: w[6],
        r10: w[7],
        r9: w[8],
        r8: w[9],
        rax: w[10],
        rcx: w[11],
        rdx: w[12],
        rsi: w[13],
        rdi: w[14],
        orig_rax: w[15],
        rip: w[16],
        cs: w[17],
        eflags: w[18],
        rsp: w[19],
        ss: w[20],
        fs_base: w[21],
        gs_base: w[22],
        ds: w[23],
        es: w[24],
        fs: w[25],
        gs: w[26],
    }
}

/// NT_FILE: count, page size, count × (start, end, offset in pages), then count
/// NUL-terminated names.
fn parse_nt_file(desc: &[u8]) -> Result<Vec<FileEntry>, String> {
    let count = u64_at(desc, 0).ok_or("shorter than its header")?;
    let page_size = u64_at(desc, 8).ok_or("shorter than its header")?;
    let table_end = count
        .checked_mul(24)
        .and_then(|n| n.checked_add(16))
        .filter(|&n| n <= desc.len() as u64)
        .ok_or_else(|| format!("{count} entries do not fit in {} bytes", desc.len()))? as usize;
    let mut names = &desc[table_end..];
    let mut out = Vec::with_capacity(count as usize);
    for i in 0..count as usize {
        let e = 16 + i * 24;
        let (start, end, pgoff) = (
            u64_at(desc, e).expect("table bounds checked"),
            u64_at(desc, e + 8).expect("table bounds checked"),
            u64_at(desc, e + 16).expect("table bounds checked"),
        );
        let Some(nul) = names.iter().position(|b| *b == 0) else {
            return Err(format!("{count} entries but only {i} names"));
        };
        let name = &names[..nul];
        names = &names[nul + 1..];
        out.push(FileEntry {
            start,
            end,
            offset: pgoff.saturating_mul(page_size),
            path: String::from_utf8_lossy(name).into_owned(),
        });
    }
    Ok(out)
}

/// The memory map: one mapping per PT_LOAD (every VMA the kernel saw, dumped or
/// not), named from NT_FILE; the vDSO, vsyscall page and main stack labeled as
/// /proc/PID/maps labels them.
fn build_maps(loads: &[Segment], files: &[FileEntry], auxv: &[(u64, u64)], main_rsp: Option<u64>) -> Vec<Mapping> {
    let vdso = auxv.iter().find(|(k, _)| *k == AT_SYSINFO_EHDR).map(|(_, v)| *v);
    let mut by_start: std::collections::HashMap<u64, &FileEntry> = files.iter().map(|f| (f.start, f)).collect();
    let mut maps: Vec<Mapping> = loads
        .iter()
        .map(|s| {
            let mut perms = String::with_capacity(4);
            perms.push(if s.flags & PF_R != 0 { 'r' } else { '-' });
            perms.push(if s.flags & PF_W != 0 { 'w' } else { '-' });
            perms.push(if s.flags & PF_X != 0 { 'x' } else { '-' });
            // The core does not say shared or private.
            perms.push('p');
            let end = s.vaddr.saturating_add(s.memsz);
            let (offset, path) = match by_start.remove(&s.vaddr) {
                Some(f) => (f.offset, f.path.clone()),
                None if Some(s.vaddr) == vdso => (0, "[vdso]".to_string()),
                None if s.vaddr == VSYSCALL_START => (0, "[vsyscall]".to_string()),
                None if main_rsp.is_some_and(|sp| s.vaddr <= sp && sp < end) => (0, "[stack]".to_string()),
                None => (0, String::new()),
            };
            Mapping { start: s.vaddr, end, perms, offset, path }
        })
        .collect();
    // NT_FILE entries without a PT_LOAD (not written by Linux, but cheap to keep):
    // protection unknown.
    maps.extend(by_start.into_values().map(|f| Mapping {
        start: f.start,
        end: f.end,
        perms: "---p".into(),
        offset: f.offset,
        path: f.path.clone(),
    }));
    maps.sort_by_key(|m| (m.start, m.end));
    maps
}

/// The GNU build id of the executable as the core holds it: the first page of its
/// first mapping (the kernel dumps the first page of ELF file mappings, see
/// coredump_filter bit 4), where the ELF and program headers and usually the
/// .note.gnu.build-id live.
fn exe_build_id_in_core(mem: &CoreMemory, files: &[FileEntry], exe_path: &str) -> Option<Vec<u8>> {
    let first = files.iter().filter(|f| f.path == exe_path && f.offset == 0).min_by_key(|f| f.start)?;
    build_id_in_memory(mem, first.start, first.end)
}

/// Reads the GNU build id of the ELF image mapped (from file offset 0) at `start..end`.
pub fn build_id_in_memory(mem: &dyn Memory, start: u64, end: u64) -> Option<Vec<u8>> {
    let mut eh = [0u8; EHDR_SIZE];
    if !mem.read_exact(start, &mut eh) || &eh[..4] != b"\x7fELF" || eh[4] != 2 || eh[5] != 1 {
        return None;
    }
    let phoff = u64_at(&eh, 32)?;
    let phnum = usize::from(u16_at(&eh, 56)?).min(512);
    if usize::from(u16_at(&eh, 54)?) != PHDR_SIZE {
        return None;
    }
    let mut ph = vec![0u8; phnum * PHDR_SIZE];
    let n = mem.read(start.checked_add(phoff)?, &mut ph);
    for p in ph[..n - n % PHDR_SIZE].chunks_exact(PHDR_SIZE) {
        if u32_at(p, 0)? != PT_NOTE {
            continue;
        }
        // The mapping maps the file from offset 0, so file offset = address - start.
        let (off, size) = (u64_at(p, 8)?, u64_at(p, 32)?.min(64 << 10));
        let addr = start.checked_add(off)?;
        if addr >= end {
            continue;
        }
        let mut buf = vec![0u8; size as usize];
        let got = mem.read(addr, &mut buf);
        let mut found = None;
        // A note cut short by the dump simply ends the walk.
        let _ = for_each_note(&buf[..got], |name, ntype, desc| {
            if found.is_none() && name == b"GNU" && ntype == NT_GNU_BUILD_ID {
                found = Some(desc.to_vec());
            }
        });
        if found.is_some() {
            return found;
        }
    }
    None
}

/// Checks that `exe` is the program that dumped the core.
fn check_exe(
    core: &str,
    exe: &Path,
    core_build_id: Option<&[u8]>,
    core_exe: Option<&str>,
    fname: &str,
    problems: &mut Vec<Problem>,
) -> Result<(), TargetError> {
    let mismatch =
        |reason: String| TargetError::ExeMismatch { core: core.to_string(), exe: exe.display().to_string(), reason };
    let io = |source| TargetError::Io { path: exe.display().to_string(), source };
    let file = std::fs::File::open(exe).map_err(io)?;
    // SAFETY: read-only map of a file we only parse; see `open` about truncation.
    let map = unsafe { memmap2::Mmap::map(&file) }.map_err(io)?;
    let obj = object::File::parse(&*map).map_err(|e| mismatch(format!("not an ELF file ({e})")))?;
    let file_build_id = object::Object::build_id(&obj).ok().flatten();
    if let (Some(f), Some(c)) = (file_build_id, core_build_id) {
        return if f == c { Ok(()) } else { Err(mismatch(format!("build id {}, core has {}", hex(f), hex(c)))) };
    }
    // No build id on one side: fall back to names. pr_fname is the first 15 bytes
    // of the executable's file name (unless the program renamed itself).
    let exe_name = exe.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let core_name = core_exe.and_then(|p| Path::new(p).file_name()).map(|n| n.to_string_lossy().into_owned());
    let short: String = exe_name.bytes().take(15).map(char::from).collect();
    let by_path = core_name.as_deref() == Some(exe_name.as_str());
    let by_fname = !fname.is_empty() && fname == short;
    if core_name.is_none() && fname.is_empty() {
        problems.push(Problem::new(
            Scope::Snapshot,
            format!("cannot check that {} dumped this core: no build id, no name", exe.display()),
        ));
        return Ok(());
    }
    if by_path || by_fname {
        problems.push(Problem::new(
            Scope::Snapshot,
            format!("{} matched to the core by file name only (no build id on both sides)", exe.display()),
        ));
        return Ok(());
    }
    let has = core_name.unwrap_or_else(|| fname.to_string());
    Err(mismatch(format!("file name {exe_name:?}, core has {has:?} (no build id to compare)")))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A minimal core builder for unit tests: ELF header, program headers, notes.
    struct Builder {
        notes: Vec<u8>,
        loads: Vec<(u64, u32, Vec<u8>, u64)>,
    }

    impl Builder {
        fn new() -> Builder {
            Builder { notes: Vec::new(), loads: Vec::new() }
        }
        fn note(mut self, name: &[u8], ntype: u32, desc: &[u8]) -> Builder {
            let n = &mut self.notes;
            n.extend_from_slice(&(name.len() as u32 + 1).to_le_bytes());
            n.extend_from_slice(&(desc.len() as u32).to_le_bytes());
            n.extend_from_slice(&ntype.to_le_bytes());
            n.extend_from_slice(name);
            n.push(0);
            while !n.len().is_multiple_of(4) {
                n.push(0);
            }
            n.extend_from_slice(desc);
            while !n.len().is_multiple_of(4) {
                n.push(0);
            }
            self
        }
        fn prstatus(self, tid: i32, cursig: i16, rip: u64, rsp: u64) -> Builder {
            let mut d = vec![0u8; 336];
            d[12..14].copy_from_slice(&cursig.to_le_bytes());
            d[32..36].copy_from_slice(&tid.to_le_bytes());
            d[112 + 16 * 8..112 + 17 * 8].copy_from_slice(&rip.to_le_bytes());
            d[112 + 19 * 8..112 + 20 * 8].copy_from_slice(&rsp.to_le_bytes());
            self.note(b"CORE", NT_PRSTATUS, &d)
        }
        fn load(mut self, vaddr: u64, flags: u32, bytes: &[u8], memsz: u64) -> Builder {
            self.loads.push((vaddr, flags, bytes.to_vec(), memsz));
            self
        }
        fn build(&self) -> Vec<u8> {
            let phnum = 1 + self.loads.len();
            let mut out = vec![0u8; EHDR_SIZE];
            out[..4].copy_from_slice(b"\x7fELF");
            out[4] = 2;
            out[5] = 1;
            out[6] = 1;
            out[16..18].copy_from_slice(&ET_CORE.to_le_bytes());
            out[18..20].copy_from_slice(&EM_X86_64.to_le_bytes());
            out[32..40].copy_from_slice(&(EHDR_SIZE as u64).to_le_bytes());
            out[54..56].copy_from_slice(&(PHDR_SIZE as u16).to_le_bytes());
            out[56..58].copy_from_slice(&(phnum as u16).to_le_bytes());
            let mut data_off = (EHDR_SIZE + phnum * PHDR_SIZE) as u64;
            let mut ph = |t: u32, f: u32, off: u64, vaddr: u64, filesz: u64, memsz: u64| {
                let mut p = vec![0u8; PHDR_SIZE];
                p[0..4].copy_from_slice(&t.to_le_bytes());
                p[4..8].copy_from_slice(&f.to_le_bytes());
                p[8..16].copy_from_slice(&off.to_le_bytes());
                p[16..24].copy_from_slice(&vaddr.to_le_bytes());
                p[32..40].copy_from_slice(&filesz.to_le_bytes());
                p[40..48].copy_from_slice(&memsz.to_le_bytes());
                out.extend_from_slice(&p);
            };
            ph(PT_NOTE, 0, data_off, 0, self.notes.len() as u64, 0);
            data_off += self.notes.len() as u64;
            for (vaddr, flags, bytes, memsz) in &self.loads {
                ph(PT_LOAD, *flags, data_off, *vaddr, bytes.len() as u64, *memsz);
                data_off += bytes.len() as u64;
            }
            out.extend_from_slice(&self.notes);
            for (_, _, bytes, _) in &self.loads {
                out.extend_from_slice(bytes);
            }
            out
        }
    }

    fn parse(bytes: Vec<u8>) -> Result<Capture, TargetError> {
        from_bytes("test.core", Box::new(bytes), None)
    }

    fn siginfo(signo: i32, code: i32, addr: u64) -> Vec<u8> {
        let mut b = vec![0u8; 128];
        b[0..4].copy_from_slice(&signo.to_le_bytes());
        b[8..12].copy_from_slice(&code.to_le_bytes());
        b[16..24].copy_from_slice(&addr.to_le_bytes());
        b
    }

    fn nt_file(entries: &[(u64, u64, u64, &str)]) -> Vec<u8> {
        let mut d = Vec::new();
        d.extend_from_slice(&(entries.len() as u64).to_le_bytes());
        d.extend_from_slice(&4096u64.to_le_bytes());
        for (s, e, pg, _) in entries {
            for v in [s, e, pg] {
                d.extend_from_slice(&v.to_le_bytes());
            }
        }
        for (_, _, _, name) in entries {
            d.extend_from_slice(name.as_bytes());
            d.push(0);
        }
        d
    }

    fn psinfo(pid: i32, fname: &str, args: &str) -> Vec<u8> {
        let mut d = vec![0u8; PRPSINFO_SIZE];
        d[16..20].copy_from_slice(&1000u32.to_le_bytes());
        d[24..28].copy_from_slice(&pid.to_le_bytes());
        d[28..32].copy_from_slice(&1i32.to_le_bytes());
        d[40..40 + fname.len()].copy_from_slice(fname.as_bytes());
        d[56..56 + args.len()].copy_from_slice(args.as_bytes());
        d
    }

    fn sample() -> Builder {
        let mut auxv = Vec::new();
        for v in [AT_SYSINFO_EHDR, 0x7fff_f000, AT_ENTRY, 0x40_1040, 0, 0] {
            auxv.extend_from_slice(&v.to_le_bytes());
        }
        Builder::new()
            .prstatus(100, 11, 0x40_1100, 0x7ffe_0100)
            .note(b"CORE", NT_PRPSINFO, &psinfo(100, "crashy", "./crashy a b"))
            .note(b"CORE", NT_SIGINFO, &siginfo(11, 1, 0x10))
            .note(b"CORE", NT_AUXV, &auxv)
            .note(
                b"CORE",
                NT_FILE,
                &nt_file(&[(0x40_0000, 0x40_1000, 0, "/bin/crashy"), (0x40_1000, 0x40_2000, 1, "/bin/crashy")]),
            )
            .note(b"LINUX", 0x202, &[0; 64])
            .prstatus(101, 11, 0x40_1200, 0x7ffe_0180)
            .load(0x40_0000, PF_R, &[0x7f; 16], 0x1000)
            .load(0x40_1000, PF_R | PF_X, &[], 0x1000)
            .load(0x7ffe_0000, PF_R | PF_W, &[0xaa; 0x200], 0x200)
            .load(0x7fff_f000, PF_R | PF_X, &[0xcc; 0x40], 0x40)
    }

    #[test]
    fn parses_a_built_core() {
        let cap = parse(sample().build()).expect("core parses");
        assert_eq!(cap.threads.len(), 2);
        assert_eq!((cap.threads[0].tid, cap.threads[0].faulted), (100, true));
        assert_eq!((cap.threads[1].tid, cap.threads[1].faulted), (101, false));
        assert_eq!(cap.threads[0].registers.rip, 0x40_1100);
        assert_eq!(cap.threads[1].name, "crashy");
        let sig = cap.signal.expect("signal");
        assert_eq!(
            (sig.name.as_str(), sig.code_name.as_str(), sig.fault_address, sig.tid),
            ("SIGSEGV", "SEGV_MAPERR", Some(0x10), 100)
        );
        assert_eq!(cap.process.pid, 100);
        assert_eq!(cap.process.exe, "/bin/crashy");
        assert_eq!(cap.process.cmdline, ["./crashy", "a", "b"]);
        assert_eq!(cap.process.uid, 1000);
        let maps: Vec<_> = cap.maps.iter().map(|m| (m.start, m.perms.as_str(), m.offset, m.path.as_str())).collect();
        assert_eq!(
            maps,
            [
                (0x40_0000, "r--p", 0, "/bin/crashy"),
                (0x40_1000, "r-xp", 0x1000, "/bin/crashy"),
                (0x7ffe_0000, "rw-p", 0, "[stack]"),
                (0x7fff_f000, "r-xp", 0, "[vdso]"),
            ]
        );
        assert_eq!(cap.memory.read_u64(0x7ffe_0100), Some(0xaaaa_aaaa_aaaa_aaaa));
        let mut buf = [0u8; 32];
        assert_eq!(cap.memory.read(0x7ffe_01f0, &mut buf), 16, "short read at segment end");
        assert_eq!(cap.memory.read(0x40_1000, &mut buf), 0, "undumped text is unreadable, not zeros");
        assert!(cap.problems.is_empty(), "{:?}", cap.problems);
    }

    #[test]
    fn siginfo_belongs_to_the_thread_it_follows() {
        // gcore style: one NT_SIGINFO after each thread's NT_PRSTATUS.
        let core = Builder::new()
            .prstatus(10, 0, 1, 2)
            .note(b"CORE", NT_SIGINFO, &siginfo(0, 0, 0))
            .prstatus(11, 11, 3, 4)
            .note(b"CORE", NT_SIGINFO, &siginfo(11, 2, 0x20))
            .prstatus(12, 0, 5, 6)
            .note(b"CORE", NT_SIGINFO, &siginfo(0, 0, 0))
            .build();
        let cap = parse(core).expect("core parses");
        let sig = cap.signal.expect("signal");
        assert_eq!((sig.tid, sig.code_name.as_str(), sig.fault_address), (11, "SEGV_ACCERR", Some(0x20)));
        assert_eq!((cap.threads[0].tid, cap.threads[0].faulted), (11, true));
    }

    #[test]
    fn faulting_thread_from_cursig_when_unique() {
        let core = Builder::new().prstatus(10, 0, 1, 2).prstatus(11, 6, 3, 4).prstatus(12, 0, 5, 6).build();
        let cap = parse(core).expect("core parses");
        assert_eq!((cap.threads[0].tid, cap.threads[0].faulted), (11, true));
        let sig = cap.signal.expect("signal from cursig");
        assert_eq!((sig.name.as_str(), sig.tid), ("SIGABRT", 11));
        assert!(cap.problems.iter().any(|p| p.message.contains("NT_SIGINFO")));
        // No signal anywhere: nobody is marked.
        let cap = parse(Builder::new().prstatus(10, 0, 1, 2).prstatus(11, 0, 3, 4).build()).expect("core parses");
        assert!(cap.signal.is_none() && cap.threads.iter().all(|t| !t.faulted));
        assert_eq!(cap.problems.iter().filter(|p| p.message.contains("not in the core")).count(), 2, "no stack memory");
    }

    #[test]
    fn rejects_non_cores() {
        let mut exec = sample().build();
        exec[16] = 2;
        let mut arm = sample().build();
        arm[18] = 183;
        let mut be = sample().build();
        be[5] = 2;
        let mut bad_phent = sample().build();
        bad_phent[54] = 32;
        let cases: Vec<(&str, Vec<u8>, &str)> = vec![
            ("empty", vec![], "shorter than an ELF header"),
            ("text", b"hello world, this is not an ELF file at all, not even close to it!!".to_vec(), "no ELF magic"),
            ("executable", exec, "ET_CORE"),
            ("arm", arm, "EM_X86_64"),
            ("big endian", be, "little endian"),
            ("phentsize", bad_phent, "e_phentsize"),
            ("no threads", Builder::new().note(b"CORE", NT_AUXV, &[0; 16]).build(), "no NT_PRSTATUS"),
        ];
        for (what, bytes, want) in cases {
            match parse(bytes) {
                Err(e @ TargetError::NotACore { .. }) => assert!(e.to_string().contains(want), "{what}: {e}"),
                Err(e) => panic!("{what}: wrong error {e}"),
                Ok(_) => panic!("{what}: parsed"),
            }
        }
    }

    #[test]
    fn truncated_segments_are_a_problem_not_an_error() {
        let full = sample().build();
        let cut = full[..full.len() - 0x40 - 0x100].to_vec();
        let cap = parse(cut).expect("truncated core still parses");
        assert!(cap.problems.iter().any(|p| p.message.contains("core truncated")), "{:?}", cap.problems);
        assert_eq!(cap.memory.read_u64(0x7ffe_0000), Some(0xaaaa_aaaa_aaaa_aaaa));
        assert_eq!(cap.memory.read_u64(0x7ffe_0100), None);
    }

    #[test]
    fn every_truncation_and_corruption_is_a_value() {
        let full = sample().build();
        for cut in 0..full.len() {
            let r = parse(full[..cut].to_vec());
            if cut < 64 {
                assert!(matches!(r, Err(TargetError::NotACore { .. })), "cut {cut}");
            }
        }
        // Flip every byte of the headers and notes to a few nasty values.
        let notes_end = full.len() - 16 - 0x200 - 0x40;
        for i in 0..notes_end {
            for v in [0x00, 0xff, 0x7f, 0x80] {
                let mut b = full.clone();
                b[i] = v;
                let _ = parse(b);
            }
        }
        // Huge counts: e_phnum = PN_XNUM without sections, NT_FILE count = u64::MAX.
        let mut b = full.clone();
        b[56..58].copy_from_slice(&PN_XNUM.to_le_bytes());
        assert!(parse(b).is_err());
        let huge = Builder::new().prstatus(1, 0, 0, 0).note(b"CORE", NT_FILE, &[0xff; 40]).build();
        let cap = parse(huge).expect("bad NT_FILE is a problem");
        assert!(cap.problems.iter().any(|p| p.message.contains("NT_FILE")));
    }

    #[test]
    fn pn_xnum_count_from_section_header() {
        let mut b = sample().build();
        let phnum = u16_at(&b, 56).expect("e_phnum");
        let shoff = b.len() as u64;
        let mut sh = vec![0u8; SHDR_SIZE];
        sh[44..48].copy_from_slice(&u32::from(phnum).to_le_bytes());
        b.extend_from_slice(&sh);
        b[40..48].copy_from_slice(&shoff.to_le_bytes());
        b[56..58].copy_from_slice(&PN_XNUM.to_le_bytes());
        let cap = parse(b).expect("PN_XNUM core parses");
        assert_eq!((cap.threads.len(), cap.maps.len()), (2, 4));
    }

    #[test]
    fn nt_file_parsing() {
        let d = nt_file(&[(0x1000, 0x2000, 3, "/a b"), (0x3000, 0x4000, 0, "/c")]);
        let f = parse_nt_file(&d).expect("parses");
        assert_eq!((f[0].offset, f[0].path.as_str(), f[1].path.as_str()), (3 * 4096, "/a b", "/c"));
        assert!(parse_nt_file(&d[..d.len() - 3]).is_err(), "missing name");
        assert!(parse_nt_file(&d[..30]).is_err(), "table cut");
        assert!(parse_nt_file(&[]).is_err());
    }

    #[test]
    fn build_id_from_memory() {
        // An ELF header + one PT_NOTE phdr + a GNU build-id note, all in one page.
        let mut img = vec![0u8; 0x200];
        img[..4].copy_from_slice(b"\x7fELF");
        img[4] = 2;
        img[5] = 1;
        img[32..40].copy_from_slice(&64u64.to_le_bytes());
        img[54..56].copy_from_slice(&56u16.to_le_bytes());
        img[56..58].copy_from_slice(&1u16.to_le_bytes());
        img[64..68].copy_from_slice(&PT_NOTE.to_le_bytes());
        img[72..80].copy_from_slice(&0x100u64.to_le_bytes());
        img[96..104].copy_from_slice(&24u64.to_le_bytes());
        let note: &[u8] = &[4, 0, 0, 0, 8, 0, 0, 0, 3, 0, 0, 0, b'G', b'N', b'U', 0, 1, 2, 3, 4, 5, 6, 7, 8];
        img[0x100..0x100 + note.len()].copy_from_slice(note);
        let mut m = super::super::CopiedMemory::default();
        m.add(0x5000, img);
        assert_eq!(build_id_in_memory(&m, 0x5000, 0x6000), Some(vec![1, 2, 3, 4, 5, 6, 7, 8]));
        assert_eq!(build_id_in_memory(&m, 0x5001, 0x6000), None);
    }
}
