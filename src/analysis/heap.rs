//! Constraint checks of well-known calls on the faulting stack (the memcpy family
//! with a null, unreadable or absurd argument; free/realloc of a pointer whose glibc
//! chunk header is not sane) and the glibc chunk reading they share with aliases.

use super::classify::{MemoryFault, NULL_LIMIT, base_name};
use super::decode::Access;
use super::{Findings, Reader, names};
use crate::snapshot::{Scope, Severity, Snapshot, Thread};

const SOURCE: &str = "bt";
/// Sizes above this are no real buffer (128 TiB is the whole user address space).
const ABSURD_SIZE: u64 = 1 << 47;

/// The user size of the glibc malloc chunk starting at `ptr` (the pointer malloc
/// returned), when its header looks sane.
///
/// Folklore: glibc keeps `size | flags` in the 8 bytes before the user pointer; the
/// low three bits are flags (PREV_INUSE, IS_MMAPPED, NON_MAIN_ARENA), chunks are
/// 16-byte aligned and at least 32 bytes; mmapped chunks are page-multiples.
pub fn chunk_size(reader: &Reader, ptr: u64) -> Option<u64> {
    if ptr < NULL_LIMIT || !ptr.is_multiple_of(16) {
        return None;
    }
    let raw = reader.u64(ptr - 8)?;
    let size = raw & !7;
    let mmapped = raw & 2 != 0;
    let sane = size >= 32 && size % 16 == 0 && size < (1 << 40) && (!mmapped || size % 4096 == 0);
    sane.then(|| size - 8)
}

/// Which argument of a memory/string function the faulting access went through.
fn family(name: &str) -> Option<&'static str> {
    let n = name.trim_start_matches('_');
    for f in [
        "memcpy", "memmove", "memset", "strcpy", "stpcpy", "strncpy", "strcat", "strlen", "memcmp", "strcmp",
        "mempcpy", "wmemset",
    ] {
        if n == f || n.starts_with(&format!("{f}_")) || n.starts_with(&format!("{f}@")) {
            return Some(f);
        }
    }
    None
}

/// Checks the calls on the faulting thread's stack against their contracts.
pub fn call_constraints(snap: &Snapshot, t: &Thread, fault: &MemoryFault, f: &mut Findings) {
    let Some(sig) = &snap.signal else { return };
    if sig.signo != 11 && sig.signo != 7 {
        return;
    }
    // The memcpy family: the fault happens inside the (leaf) function itself.
    if let Some((i, call)) =
        t.frames.iter().take(3).enumerate().find_map(|(i, fr)| family(&base_name(fr)).map(|c| (i, c)))
    {
        let arg = match (call, fault.access) {
            ("memset" | "wmemset", _) => "destination",
            ("strlen" | "memcmp" | "strcmp", _) => "argument",
            (_, Some(Access::Read)) => "source",
            (_, Some(_)) => "destination",
            (_, None) => "pointer argument",
        };
        let target = fault.target.unwrap_or(0);
        let what = if target < NULL_LIMIT {
            format!("a null {arg} ({target:#x})")
        } else {
            let verb = if fault.access.is_some_and(|a| a.writes()) { "unwritable" } else { "unreadable" };
            format!("an {verb} {arg} (fault at {target:#x})")
        };
        f.classify(names::CONSTRAINT_VIOLATION);
        f.annotate(Scope::Frame(t.tid, i as u32), Severity::Error, SOURCE, format!("{call}() called with {what}"));
        if i == 0 {
            // At the fault, rdx still holds the length in glibc's mem* (the string
            // variants count in rcx); only an absurd value is worth saying.
            let r = &t.registers;
            for (reg, v) in [("rdx", r.rdx), ("rcx", r.rcx)] {
                if (ABSURD_SIZE..u64::MAX - 4096).contains(&v) {
                    f.annotate(
                        Scope::Frame(t.tid, 0),
                        Severity::Warning,
                        SOURCE,
                        format!("{call}() is running with an absurd size in {reg}: {v:#x} (a negative length?)"),
                    );
                    break;
                }
            }
        }
        return;
    }
    // free/realloc faulting while reading the chunk header of their argument.
    let is_free = |n: &str| {
        matches!(
            n,
            "free"
                | "__libc_free"
                | "cfree"
                | "realloc"
                | "__libc_realloc"
                | "_int_free"
                | "_int_realloc"
                | "munmap_chunk"
        )
    };
    if let Some(i) = t.frames.iter().take(4).position(|fr| is_free(&base_name(fr))) {
        let call = if t.frames.iter().any(|fr| base_name(fr).contains("realloc")) { "realloc" } else { "free" };
        let target = fault.target.unwrap_or(0);
        f.classify(names::CONSTRAINT_VIOLATION);
        f.annotate(
            Scope::Frame(t.tid, i as u32),
            Severity::Error,
            SOURCE,
            format!(
                "{call}() of a bad pointer: reading its chunk header at {target:#x} faulted (the pointer was about {:#x})",
                target.wrapping_add(8)
            ),
        );
    }
}

/// glibc's malloc error messages that mean "free/realloc got a pointer it never
/// handed out": a constraint violation of the call as well as a heap problem.
pub fn malloc_error_constraint(t: &Thread, printerr_frame: usize, msg: &str, f: &mut Findings) {
    let bad_pointer = ["invalid pointer", "invalid size", "misaligned"];
    let Some((call, _)) = msg.split_once("():") else { return };
    if !matches!(call, "free" | "realloc" | "munmap_chunk" | "free_check" | "realloc_check")
        || !bad_pointer.iter().any(|b| msg.contains(b))
    {
        return;
    }
    let user = t.frames.iter().enumerate().skip(printerr_frame).find(|(_, fr)| {
        let n = base_name(fr);
        !(n.starts_with('_') || n == "malloc_printerr" || n == "free" || n == "realloc" || n.starts_with("munmap"))
    });
    let at = user.map(|(k, _)| k as u32).unwrap_or(printerr_frame as u32);
    let caller = user.and_then(|(_, fr)| fr.function.clone()).unwrap_or_else(|| "??".into());
    f.classify(names::CONSTRAINT_VIOLATION);
    f.annotate(
        Scope::Frame(t.tid, at),
        Severity::Error,
        SOURCE,
        format!("{call}() in {caller} was passed a pointer whose chunk header is not sane ({msg})"),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn families() {
        let cases = [
            ("__memcpy_avx_unaligned_erms", Some("memcpy")),
            ("__memmove_avx_unaligned_erms", Some("memmove")),
            ("memset", Some("memset")),
            ("__strcpy_avx2", Some("strcpy")),
            ("__strlen_sse2", Some("strlen")),
            ("main", None),
            ("memcpyish", None),
        ];
        for (name, want) in cases {
            assert_eq!(family(name), want, "{name}");
        }
    }
}
