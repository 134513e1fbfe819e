//! Where process state comes from: a live process frozen with ptrace ([`live`]) or an
//! ELF core file ([`corefile`]). Both produce a [`Capture`]; the unwinder and symbolizer
//! read memory through the one [`Memory`] trait and never know which it was.
//!
//! What the two sources hold differs, and consumers should know it:
//! - a core's memory is every PT_LOAD segment the kernel dumped (anonymous memory,
//!   the first page of each ELF mapping, the vDSO); file-backed text is usually not
//!   dumped, so code bytes come from the files, not from [`Memory`];
//! - a live capture's memory is only what was copied while the threads were
//!   stopped: each thread's stack from `rsp - 128` to the end of its mapping
//!   (capped), the stack interrupted by a handler running on a sigaltstack, and
//!   the vDSO. Anything else reads short.
//!
//! A [`Capture`] is never all-or-nothing: what could not be read is a [`Problem`];
//! errors ([`CaptureError`]) are for "there is no target to speak of".

pub mod corefile;
pub mod linkmap;
pub mod live;
pub mod minidump;
pub mod procfs;
pub mod signals;

use crate::snapshot::{Environment, Mapping, Problem, Process, Registers, Signal, Source};

pub use crate::snapshot::Memory;

/// Opens a file named by a target (a core's file list, a mapping, a debug link)
/// for reading, only if it is a regular file. Folklore: a core's `NT_FILE` list
/// can name a FIFO or a device (an attacker's core, or a process that mapped
/// one); a plain `open` of a FIFO blocks until a writer appears, for ever. Opened
/// with `O_NONBLOCK`, then checked with `fstat` on the open descriptor (no race
/// between a check and the open).
pub fn open_regular(path: &std::path::Path) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    let file = std::fs::OpenOptions::new().read(true).custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC).open(path)?;
    if !file.metadata()?.is_file() {
        return Err(std::io::Error::new(std::io::ErrorKind::InvalidInput, "not a regular file"));
    }
    Ok(file)
}

/// One thread as captured, before unwinding.
#[derive(Debug, Clone, Default)]
pub struct ThreadState {
    pub tid: i32,
    pub name: String,
    pub state: String,
    pub registers: Registers,
    /// The thread the fatal signal was delivered to.
    pub faulted: bool,
    /// Only `rsp` and `rip` are known (a live thread that never stopped: see
    /// `live::unstopped`); every other register reads 0 and means nothing.
    pub partial: bool,
}

/// Everything a producer captured from the target, before unwinding and symbolization.
pub struct Capture {
    pub source: Source,
    pub process: Process,
    pub signal: Option<Signal>,
    /// All threads, faulting thread first.
    pub threads: Vec<ThreadState>,
    /// Memory map, sorted by start address. For cores: PT_LOAD segments with
    /// file names from NT_FILE.
    pub maps: Vec<Mapping>,
    /// The auxiliary vector (AT_* key, value).
    pub auxv: Vec<(u64, u64)>,
    /// The dynamic linker's list of loaded objects (empty: none, or unreadable, which
    /// is then a problem); the module list is built from it, the maps only fill in.
    pub link_map: Vec<linkmap::Loaded>,
    /// The target's memory: stack copies for a live process, segments for a core.
    pub memory: Box<dyn Memory>,
    pub environment: Environment,
    pub problems: Vec<Problem>,
    /// For a live target held stopped (`LiveOptions::hold`): lets it run again and
    /// returns the problems of detaching. Must be called on the thread that captured
    /// (ptrace requests belong to the attaching thread); dropping it also detaches.
    pub hold: Option<Release>,
}

/// Lets a held live target run again; returns the problems met detaching.
pub type Release = Box<dyn FnOnce() -> Vec<Problem>>;

impl Capture {
    pub fn auxv_value(&self, key: u64) -> Option<u64> {
        self.auxv.iter().find(|(k, _)| *k == key).map(|(_, v)| *v)
    }
}

/// Memory made of copied regions (live stacks, the vDSO), sorted and non-overlapping.
#[derive(Debug, Default, Clone)]
pub struct CopiedMemory {
    regions: Vec<(u64, Vec<u8>)>,
}

impl CopiedMemory {
    /// Adds a region; later regions win where they overlap earlier ones is NOT
    /// supported: callers add disjoint regions.
    pub fn add(&mut self, addr: u64, bytes: Vec<u8>) {
        if bytes.is_empty() {
            return;
        }
        let idx = self.regions.partition_point(|(a, _)| *a < addr);
        self.regions.insert(idx, (addr, bytes));
    }

    pub fn regions(&self) -> impl Iterator<Item = (u64, &[u8])> {
        self.regions.iter().map(|(a, b)| (*a, b.as_slice()))
    }

    /// The regions, by value (to move them into another `CopiedMemory`).
    pub fn into_regions(self) -> Vec<(u64, Vec<u8>)> {
        self.regions
    }

    pub fn total_bytes(&self) -> usize {
        self.regions.iter().map(|(_, b)| b.len()).sum()
    }
}

impl Memory for CopiedMemory {
    fn read(&self, addr: u64, buf: &mut [u8]) -> usize {
        let mut done = 0;
        while done < buf.len() {
            let at = addr.wrapping_add(done as u64);
            // Last region starting at or before `at`.
            let idx = self.regions.partition_point(|(a, _)| *a <= at);
            if idx == 0 {
                break;
            }
            let (start, bytes) = &self.regions[idx - 1];
            let off = (at - start) as usize;
            if off >= bytes.len() {
                break;
            }
            let n = (bytes.len() - off).min(buf.len() - done);
            buf[done..done + n].copy_from_slice(&bytes[off..off + n]);
            done += n;
        }
        done
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CaptureError {
    #[error("no such process: {pid}")]
    NoSuchProcess { pid: i32 },
    #[error(
        "attaching to pid {pid}: permission denied (need root or CAP_SYS_PTRACE; check /proc/sys/kernel/yama/ptrace_scope)"
    )]
    PermissionDenied { pid: i32 },
    #[error("attaching to pid {pid}: already traced by pid {tracer} (a debugger or strace?); detach it first")]
    AlreadyTraced { pid: i32, tracer: i32 },
    #[error("attaching to pid {pid}: {source}")]
    Attach { pid: i32, source: nix::Error },
    #[error("process {pid} has exited (a zombie waiting for its parent to reap it)")]
    Exited { pid: i32 },
    #[error("pid {pid} is a kernel thread: it has no user space to trace")]
    KernelThread { pid: i32 },
    #[error("pid {pid} is bt itself")]
    SelfAttach { pid: i32 },
    #[error("reading {path}: {source}")]
    Io { path: String, source: std::io::Error },
    #[error("{path}: not an ELF core file: {reason}")]
    NotACore { path: String, reason: String },
    #[error("{path}: truncated core: {reason}")]
    TruncatedCore { path: String, reason: String },
    #[error("core {core} was not dumped by {exe}: {reason}")]
    ExeMismatch { core: String, exe: String, reason: String },
    #[error("minidump: {0}")]
    Minidump(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copied_memory_reads_across_and_stops_at_gaps() {
        let mut m = CopiedMemory::default();
        m.add(0x1000, vec![1; 16]);
        m.add(0x1010, vec![2; 16]);
        m.add(0x2000, vec![3; 4]);
        let mut buf = [0u8; 24];
        assert_eq!(m.read(0x1008, &mut buf), 24);
        assert_eq!(&buf[..8], &[1; 8]);
        assert_eq!(&buf[8..], &[2; 16]);
        assert_eq!(m.read(0x1018, &mut buf), 8);
        assert_eq!(m.read(0xfff, &mut buf), 0);
        assert_eq!(m.read(0x2002, &mut buf), 2);
        assert_eq!(m.read_u64(0x1000), Some(0x0101010101010101));
        assert_eq!(m.read_u64(0x2000), None);
    }
}
