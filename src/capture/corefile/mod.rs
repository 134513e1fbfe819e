//! ELF core files: threads from NT_PRSTATUS, process from NT_PRPSINFO, the signal from
//! NT_SIGINFO, file names from NT_FILE, memory from PT_LOAD segments (mmap).
//!
//! Parsing is by hand over byte slices with a bounds check on every read: a core is
//! untrusted input (truncated by a full disk, cut by a core_pattern pipe, or plain
//! garbage) and every outcome is a value, never a panic. A core whose segments run
//! past the end of the file is served as far as it goes, with a [`Problem`].

use super::{Capture, CaptureError, Memory, ThreadState, procfs, signals};
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

    /// Whether the `len` bytes at `addr` are in the file, without reading them (a
    /// read would fault in a page of the mapped core per thread before the
    /// unwinders, which read those pages in parallel, start).
    fn holds(&self, addr: u64, len: u64) -> bool {
        let idx = self.segments.partition_point(|s| s.0 <= addr);
        let Some(&(vaddr, _, present)) = idx.checked_sub(1).and_then(|i| self.segments.get(i)) else {
            return false;
        };
        (addr - vaddr).checked_add(len).is_some_and(|end| end <= present)
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
pub fn open(path: &Path, exe: Option<&Path>) -> Result<Capture, CaptureError> {
    let name = path.display().to_string();
    let io = |source| CaptureError::Io { path: name.clone(), source };
    // Opened without blocking: opening a FIFO would block.
    let file = match super::open_regular(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::InvalidInput => {
            return Err(CaptureError::NotACore { path: name, reason: "not a regular file".into() });
        }
        Err(e) => return Err(io(e)),
    };
    let mut head = [0u8; 8];
    let got = std::os::unix::fs::FileExt::read_at(&file, &mut head, 0).map_err(io)?;
    match compressed::compression(&head[..got]) {
        Some(compressed::Compression::Zstd) => {
            let (inflated, problem) = compressed::inflate(&file, &name)?;
            let mut cap = from_bytes(&name, Box::new(inflated), exe)?;
            cap.problems.extend(problem.map(|p| Problem::new(Scope::Snapshot, p)));
            let (env, problems) = procfs::host_environment();
            cap.environment = env;
            cap.problems.extend(problems);
            return Ok(cap);
        }
        Some(compressed::Compression::Other(tool)) => {
            return Err(CaptureError::NotACore {
                path: name,
                reason: format!("compressed with {tool}; inflate it first (`{tool} -dk FILE`)"),
            });
        }
        None => {}
    }
    let len = file.metadata().map_err(io)?.len();
    if len < EHDR_SIZE as u64 {
        return Err(CaptureError::NotACore { path: name, reason: format!("{len} bytes, shorter than an ELF header") });
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
) -> Result<Capture, CaptureError> {
    let not_core = |reason: String| CaptureError::NotACore { path: name.to_string(), reason };
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
    let phoff =
        usize::try_from(phoff).ok().filter(|&o| o < bytes.len()).ok_or_else(|| CaptureError::TruncatedCore {
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
            CaptureError::TruncatedCore { path: name.to_string(), reason: "no thread could be read".into() }
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
            partial: false,
            tid: t.tid,
            name: psinfo.fname.clone(),
            state: String::new(),
            registers: t.registers,
            faulted: any_signal && i == faulted_idx,
        });
    }

    for t in &threads {
        if !memory.holds(t.registers.rsp, 8) {
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

    let link_map = super::linkmap::read_or_note(&memory, &auxv, &mut problems);
    Ok(Capture {
        source: Source::Core(name.to_string()),
        process,
        signal,
        threads,
        maps,
        auxv,
        link_map,
        memory: Box::new(memory),
        environment: Default::default(),
        problems,
        hold: None,
    })
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
) -> Result<(), CaptureError> {
    let mismatch =
        |reason: String| CaptureError::ExeMismatch { core: core.to_string(), exe: exe.display().to_string(), reason };
    let io = |source| CaptureError::Io { path: exe.display().to_string(), source };
    let file = super::open_regular(exe).map_err(io)?;
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

mod compressed;
mod notes;
#[cfg(test)]
mod tests;

pub use notes::registers_from_user_regs;
use notes::*;
