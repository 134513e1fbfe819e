//! A Linux x86-64 minidump (Breakpad's, Crashpad's) as a [`Capture`], so that it
//! goes through the same unwinder, symbolizer, analysis and dedup rules as a core:
//! threads and their contexts, the memory the dump holds (thread stacks, and
//! whatever else the writer kept), the memory map (the `/proc/PID/maps` stream
//! Breakpad and Crashpad write, else the module list), auxv, the command line and
//! the exception (signal, `si_code`, address, crashing thread; for a dump without
//! an exception, the thread that asked for it).
//!
//! Parsing is the `minidump` crate's (rust-minidump). Everything a dump claims is
//! bounded before use: a stream may lie about its sizes, and the crate reads only
//! within the bytes it was given.

use std::collections::BTreeMap;

use minidump::{
    Minidump, MinidumpException, MinidumpLinuxMaps, MinidumpMemoryList, MinidumpMiscInfo, MinidumpModuleList,
    MinidumpRawContext, MinidumpSystemInfo, MinidumpThreadList, Module,
};

use super::{Capture, CaptureError, CopiedMemory, ThreadState, signals};
use crate::snapshot::{Mapping, Problem, Process, Registers, Scope, Signal, Source};

/// Most threads and memory regions taken from one dump.
const MAX_THREADS: usize = 20_000;
const MAX_REGIONS: usize = 100_000;
/// Most bytes of memory taken from one dump (a full dump may hold gigabytes).
const MAX_MEMORY: usize = 512 << 20;

/// Minidump stream types of the Linux extensions (Breakpad's `MD_LINUX_*`).
const MD_LINUX_CMD_LINE: u32 = 0x4767_0004;
const MD_LINUX_AUXV: u32 = 0x4767_0008;

/// Whether `bytes` start like a minidump (`MDMP`).
pub fn looks_like_minidump(bytes: &[u8]) -> bool {
    bytes.starts_with(b"MDMP")
}

/// Whether a minidump is of Linux on x86-64 (what bt's tracer reads); an error for
/// bytes that are not a readable minidump.
pub fn is_linux_x86_64(bytes: &[u8]) -> Result<bool, CaptureError> {
    let dump = Minidump::read(bytes).map_err(|e| bad(format!("unreadable minidump: {e}")))?;
    let system: MinidumpSystemInfo =
        dump.get_stream().map_err(|e| bad(format!("minidump without system information: {e}")))?;
    Ok(system.os == minidump::system_info::Os::Linux && system.cpu == minidump::system_info::Cpu::X86_64)
}

fn bad(why: impl Into<String>) -> CaptureError {
    CaptureError::Minidump(why.into())
}

fn registers(ctx: &MinidumpRawContext) -> Option<Registers> {
    let MinidumpRawContext::Amd64(c) = ctx else { return None };
    Some(Registers {
        rax: c.rax,
        rbx: c.rbx,
        rcx: c.rcx,
        rdx: c.rdx,
        rsi: c.rsi,
        rdi: c.rdi,
        rbp: c.rbp,
        rsp: c.rsp,
        r8: c.r8,
        r9: c.r9,
        r10: c.r10,
        r11: c.r11,
        r12: c.r12,
        r13: c.r13,
        r14: c.r14,
        r15: c.r15,
        rip: c.rip,
        eflags: u64::from(c.eflags),
        cs: u64::from(c.cs),
        ss: u64::from(c.ss),
        ds: u64::from(c.ds),
        es: u64::from(c.es),
        fs: u64::from(c.fs),
        gs: u64::from(c.gs),
        ..Default::default()
    })
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Where the libraries of a Linux system live (searched by file name, then checked by build id).
const LIB_DIRS: &[&str] = &[
    "/lib/x86_64-linux-gnu",
    "/usr/lib/x86_64-linux-gnu",
    "/lib64",
    "/usr/lib64",
    "/lib",
    "/usr/lib",
    "/usr/local/lib",
];

/// The GNU build id of an ELF file, read from its notes.
fn file_build_id(path: &std::path::Path) -> Option<Vec<u8>> {
    let f = std::fs::File::open(path).ok()?;
    // SAFETY: a read-only private map of a file we only read; a file changed under us
    // gives wrong bytes (a failed parse or a mismatch), not undefined behaviour in safe code.
    let map = unsafe { memmap2::Mmap::map(&f) }.ok()?;
    let obj = object::File::parse(&*map).ok()?;
    object::Object::build_id(&obj).ok().flatten().map(<[u8]>::to_vec)
}

/// A file for a module of the dump: its path as written when it exists and has the
/// build id, else a file of that name in the system's library directories, else
/// `roots` (uploaded symbols: `ROOT/.build-id/xx/rest[.debug]`, `ROOT/NAME`), each
/// checked by build id. Without a build id in the dump, only the path as written.
pub fn find_by_build_id(
    name: &str,
    build_id: Option<&[u8]>,
    roots: &[std::path::PathBuf],
) -> Option<std::path::PathBuf> {
    use std::path::{Path, PathBuf};
    let written = Path::new(name);
    let Some(want) = build_id.filter(|b| !b.is_empty()) else {
        return (written.is_absolute() && written.is_file()).then(|| written.to_path_buf());
    };
    let base = written.file_name()?;
    let hexid = hex(want);
    let mut candidates: Vec<PathBuf> = Vec::new();
    if written.is_absolute() {
        candidates.push(written.to_path_buf());
    }
    for root in roots {
        if hexid.len() > 2 {
            let by_id = root.join(".build-id").join(&hexid[..2]);
            candidates.push(by_id.join(&hexid[2..]));
            candidates.push(by_id.join(format!("{}.debug", &hexid[2..])));
        }
        candidates.push(root.join(base));
    }
    candidates.extend(LIB_DIRS.iter().map(|d| Path::new(d).join(base)));
    candidates.into_iter().find(|c| c.is_file() && file_build_id(c).as_deref() == Some(want))
}

/// Parses a minidump into a capture. `name` names it in problems and the source;
/// `roots` are directories of uploaded symbols searched by build id.
pub fn open(name: &str, bytes: &[u8], roots: &[std::path::PathBuf]) -> Result<Capture, CaptureError> {
    if !looks_like_minidump(bytes) {
        return Err(bad("not a minidump (no MDMP header)"));
    }
    let dump = Minidump::read(bytes).map_err(|e| bad(format!("unreadable minidump: {e}")))?;
    let mut problems = Vec::new();
    let system: MinidumpSystemInfo =
        dump.get_stream().map_err(|e| bad(format!("minidump without system information: {e}")))?;
    if system.os != minidump::system_info::Os::Linux || system.cpu != minidump::system_info::Cpu::X86_64 {
        return Err(CaptureError::Minidump(format!(
            "a minidump of {:?} on {:?}: bt analyses Linux x86-64 dumps",
            system.os, system.cpu
        )));
    }
    let misc: Option<MinidumpMiscInfo> = dump.get_stream().ok();
    let thread_list: MinidumpThreadList =
        dump.get_stream().map_err(|e| bad(format!("minidump without a thread list: {e}")))?;
    if thread_list.threads.len() > MAX_THREADS {
        return Err(bad(format!("{} threads (at most {MAX_THREADS})", thread_list.threads.len())));
    }
    let exception: Option<MinidumpException> = dump.get_stream().ok();

    // Memory: every region the dump holds (stacks first: they matter most), bounded.
    let mut memory = CopiedMemory::default();
    let mut taken = 0usize;
    let mut regions = 0usize;
    let mut take = |base: u64, b: &[u8], memory: &mut CopiedMemory, problems: &mut Vec<Problem>| {
        if regions >= MAX_REGIONS || taken.saturating_add(b.len()) > MAX_MEMORY {
            if regions == MAX_REGIONS || taken <= MAX_MEMORY {
                problems.push(Problem::new(Scope::Snapshot, "minidump memory beyond bt's bounds left out"));
                regions = MAX_REGIONS + 1;
                taken = MAX_MEMORY + 1;
            }
            return;
        }
        regions += 1;
        taken += b.len();
        memory.add(base, b.to_vec());
    };
    let mut seen: BTreeMap<u64, usize> = BTreeMap::new();
    for t in &thread_list.threads {
        let s = &t.raw.stack;
        let rva = s.memory.rva as usize;
        let len = s.memory.data_size as usize;
        if let Some(b) = bytes.get(rva..rva.saturating_add(len))
            && !b.is_empty()
        {
            seen.insert(s.start_of_memory_range, b.len());
            take(s.start_of_memory_range, b, &mut memory, &mut problems);
        }
    }
    if let Ok(list) = dump.get_stream::<MinidumpMemoryList>() {
        for m in list.iter() {
            if seen.get(&m.base_address) != Some(&m.bytes.len()) {
                take(m.base_address, m.bytes, &mut memory, &mut problems);
            }
        }
    }
    if let Ok(list) = dump.get_stream::<minidump::MinidumpMemory64List>() {
        for m in list.iter() {
            take(m.base_address, m.bytes, &mut memory, &mut problems);
        }
    }

    // The exception: Breakpad and Crashpad write the signal as the exception code,
    // si_code as the flags, the fault address as the address.
    let crash_tid = exception.as_ref().map(|e| e.get_crashing_thread_id() as i32);
    let signal = exception.as_ref().and_then(|e| {
        let r = &e.raw.exception_record;
        let signo = r.exception_code as i32;
        // A dump requested without a crash (Crashpad's DumpWithoutCrash) has no signal.
        (signo > 0 && signo < 65).then(|| Signal {
            signo,
            name: signals::signal_name(signo),
            code: r.exception_flags as i32,
            code_name: signals::code_name(signo, r.exception_flags as i32),
            fault_address: Some(r.exception_address),
            tid: e.get_crashing_thread_id() as i32,
            sender_pid: None,
        })
    });
    let exception_context = exception.as_ref().and_then(|e| e.context(&system, misc.as_ref()));

    let mut threads = Vec::with_capacity(thread_list.threads.len());
    for t in &thread_list.threads {
        let tid = t.raw.thread_id as i32;
        let faulted = Some(tid) == crash_tid && signal.is_some();
        // The crashing thread's context at the fault, not inside the handler that wrote the dump.
        let ctx = if Some(tid) == crash_tid { exception_context.clone() } else { None }
            .or_else(|| t.context(&system, misc.as_ref()));
        let Some(regs) = ctx.as_ref().and_then(|c| registers(&c.raw)) else {
            problems.push(Problem::new(Scope::Thread(tid), format!("thread {tid} has no x86-64 context in the dump")));
            continue;
        };
        threads.push(ThreadState {
            tid,
            name: String::new(),
            state: String::new(),
            registers: regs,
            faulted,
            partial: false,
        });
    }
    if let Some(i) = threads.iter().position(|t| Some(t.tid) == crash_tid) {
        let t = threads.remove(i);
        threads.insert(0, t);
    }

    // The memory map: /proc/PID/maps as the writer saw it, else the module list.
    let modules: Option<MinidumpModuleList> = dump.get_stream().ok();
    let mut maps: Vec<Mapping> = Vec::new();
    if let Ok(linux_maps) = dump.get_stream::<MinidumpLinuxMaps>() {
        for m in linux_maps.iter() {
            let map = &m.map;
            let path = match &map.pathname {
                procfs_core::process::MMapPath::Path(p) => p.display().to_string(),
                procfs_core::process::MMapPath::Heap => "[heap]".into(),
                procfs_core::process::MMapPath::Stack => "[stack]".into(),
                procfs_core::process::MMapPath::TStack(t) => format!("[stack:{t}]"),
                procfs_core::process::MMapPath::Vdso => "[vdso]".into(),
                procfs_core::process::MMapPath::Vvar => "[vvar]".into(),
                procfs_core::process::MMapPath::Vsyscall => "[vsyscall]".into(),
                procfs_core::process::MMapPath::Other(s) => s.clone(),
                _ => String::new(),
            };
            maps.push(Mapping {
                start: map.address.0,
                end: map.address.1,
                perms: map.perms.as_str(),
                offset: map.offset,
                path,
            });
        }
    } else if let Some(list) = &modules {
        // Crashpad writes no maps: one mapping per module, its file found by build id
        // (Crashpad names libraries by soname, e.g. `libc.so.6`).
        for m in list.iter() {
            let name = m.code_file().to_string();
            let build_id = match &m.codeview_info {
                Some(minidump::CodeView::Elf(cv)) => Some(cv.build_id.clone()),
                _ => None,
            };
            let path = if name.starts_with("linux-vdso") || name == "[vdso]" {
                "[vdso]".to_string()
            } else {
                match find_by_build_id(&name, build_id.as_deref(), roots) {
                    Some(p) => p.display().to_string(),
                    None => {
                        problems.push(Problem::new(
                            Scope::Module(name.clone()),
                            format!(
                                "no file of {name} with build id {} on this machine or among the symbols",
                                build_id.as_deref().map(hex).unwrap_or_else(|| "(none)".into())
                            ),
                        ));
                        name
                    }
                }
            };
            maps.push(Mapping {
                start: m.base_address(),
                end: m.base_address().saturating_add(m.size()),
                perms: "r-xp".into(),
                offset: 0,
                path,
            });
        }
    }
    maps.sort_by_key(|m| m.start);

    let auxv: Vec<(u64, u64)> = dump
        .get_raw_stream(MD_LINUX_AUXV)
        .map(|b| {
            b.chunks_exact(16)
                .take(256)
                .map(|c| {
                    let k = u64::from_le_bytes(c[..8].try_into().unwrap_or([0; 8]));
                    let v = u64::from_le_bytes(c[8..].try_into().unwrap_or([0; 8]));
                    (k, v)
                })
                .take_while(|(k, _)| *k != 0)
                .collect()
        })
        .unwrap_or_default();
    let cmdline: Vec<String> = dump
        .get_raw_stream(MD_LINUX_CMD_LINE)
        .map(|b| {
            b.split(|&c| c == 0).filter(|a| !a.is_empty()).map(|a| String::from_utf8_lossy(a).into_owned()).collect()
        })
        .unwrap_or_default();
    let exe = modules.as_ref().and_then(|l| l.main_module().map(|m| m.code_file().to_string())).unwrap_or_default();
    let pid = misc.as_ref().and_then(|m| m.raw.process_id().copied()).unwrap_or(0) as i32;
    let comm = std::path::Path::new(&exe).file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    if threads.is_empty() {
        return Err(bad("the minidump has no thread with an x86-64 context"));
    }
    Ok(Capture {
        source: Source::Core(format!("minidump {name}")),
        process: Process { pid, exe, comm, cmdline, ..Default::default() },
        signal,
        threads,
        maps,
        auxv,
        link_map: Vec::new(),
        memory: Box::new(memory),
        environment: Default::default(),
        problems,
        hold: None,
    })
}
