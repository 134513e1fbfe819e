//! Constraint checks of well-known calls on the faulting stack (the memcpy family
//! with a null, unreadable, overlapping or absurd argument; strcpy/stpcpy with
//! overlapping ranges or an unterminated source; free/realloc of a pointer
//! whose glibc chunk header is not sane, named) and the glibc chunk reading they share
//! with aliases; a fault inside an allocator's own code (heap corruption).

use super::calls::{self, Call};
use super::decode::{self, Access};
use super::facts::{MemoryFault, NULL_LIMIT, base_name, mapping_of};
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
pub fn call_constraints(snap: &Snapshot, t: &Thread, fault: &MemoryFault, reader: &Reader, f: &mut Findings) {
    let Some(sig) = &snap.signal else { return };
    if sig.signo != 11 && sig.signo != 7 {
        return;
    }
    // The memcpy family: the fault happens inside the (leaf) function itself.
    if let Some((i, own)) =
        t.frames.iter().take(3).enumerate().find_map(|(i, fr)| family(&base_name(fr)).map(|c| (i, c)))
    {
        let call = calls::call_into(t, i, reader);
        // The caller's name for the call wins: the callee's symbol may be an alias
        // (glibc's memcpy is memmove's code, and either name may label the frame).
        let named = call.name.as_deref().and_then(family);
        let name = named.unwrap_or(own);
        let arg = match (name, fault.access) {
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
        f.annotate(Scope::Frame(t.tid, i as u32), Severity::Error, SOURCE, format!("{name}() called with {what}"));
        let scope = Scope::Frame(t.tid, i as u32);
        let known = copy_arguments(snap, name, named.is_some(), &call, scope.clone(), f);
        // Arguments of a call the caller named as something else belong to another callee.
        if matches!(name, "strcpy" | "stpcpy") && (call.name.is_none() || named.is_some()) {
            string_copy(snap, name, &call, fault, reader, scope.clone(), f);
        }
        if !known.all && i == 0 {
            copy_registers(t, name, named.is_some(), !known.size, reader, scope, f);
        }
        return;
    }
    // free/realloc faulting while reading the chunk header of their argument.
    if let Some(i) = t.frames.iter().take(4).position(|fr| is_free(&base_name(fr))) {
        let target = fault.target.unwrap_or(0);
        let outer = t.frames[i..].iter().take_while(|fr| is_free(&base_name(fr))).count() + i - 1;
        let call = free_call_name(&base_name(&t.frames[outer]));
        let call_info = calls::call_into(t, outer, reader);
        let passed = call_info.arg(0);
        let pointer = match passed {
            Some(p) => format!("{p:#x}, from {}", call_info.source),
            None => format!("about {:#x}", target.wrapping_add(8)),
        };
        f.classify(names::CONSTRAINT_VIOLATION);
        f.annotate(
            Scope::Frame(t.tid, i as u32),
            Severity::Error,
            SOURCE,
            format!(
                "{call}() of a bad pointer: reading its chunk header at {target:#x} faulted (the pointer was {pointer})"
            ),
        );
    }
}

/// free, realloc and their glibc internals, under any of their symbol aliases
/// (`__libc_free`, `__free` in a static executable, `_int_free`).
fn is_free(n: &str) -> bool {
    let n = n.trim_start_matches('_');
    let n = n.strip_prefix("libc_").or_else(|| n.strip_prefix("int_")).unwrap_or(n);
    matches!(n, "free" | "cfree" | "realloc" | "munmap_chunk")
}

/// The public name of a free/realloc frame (`__libc_free` → `free`).
fn free_call_name(n: &str) -> &'static str {
    if n.contains("realloc") { "realloc" } else { "free" }
}

/// The run of contiguous mappings `[start, end)` that holds `addr`.
fn mapped_run(snap: &Snapshot, addr: u64) -> Option<(u64, u64)> {
    let m = mapping_of(&snap.maps, addr)?;
    let (mut start, mut end) = (m.start, m.end);
    // Strictly growing, so a malformed map (an empty mapping) cannot loop.
    while let Some(next) = snap.maps.iter().find(|m| m.start == end && m.end > end) {
        end = next.end;
    }
    while let Some(prev) = snap.maps.iter().find(|m| m.end == start && m.start < start) {
        start = prev.start;
    }
    Some((start, end))
}

/// True when a copy to `[dst, dst + n)` that faulted may have written `addr`.
///
/// A copy writes contiguously from one end of its destination (glibc also stores the
/// last vectors first), and it cannot cross an unmapped gap without faulting: it can
/// only have written the mapped runs that hold the destination's first or last byte.
fn copy_may_have_written(snap: &Snapshot, dst: u64, n: u64, addr: u64) -> bool {
    let last = dst.wrapping_add(n.max(1) - 1);
    [dst, last].into_iter().filter_map(|a| mapped_run(snap, a)).any(|(s, e)| addr >= s && addr < e)
}

/// Checks the arguments recovered for a memcpy-family call: an absurd or negative
/// size, a size beyond the mapping of a range, and overlapping ranges where the
/// function forbids them (`named`: the caller's own name for the call is known, so
/// memcpy is not memmove under another name).
fn copy_arguments(snap: &Snapshot, name: &str, named: bool, call: &Call, scope: Scope, f: &mut Findings) -> Known {
    // (destination, source, size) positions; memset's value is no pointer.
    let (dst, src, size) = match name {
        "memcpy" | "memmove" | "mempcpy" | "strncpy" | "memcmp" => (call.arg(0), call.arg(1), call.arg(2)),
        "memset" | "wmemset" => (call.arg(0), None, call.arg(2)),
        "strcpy" | "stpcpy" | "strcat" => (call.arg(0), call.arg(1), None),
        _ => return Known::default(),
    };
    if dst.is_none() && src.is_none() && size.is_none() {
        return Known::default();
    }
    // Arguments read from the caller's stack slots are stale if the copy wrote there.
    if let (Some(d), Some(n)) = (dst, size)
        && call.reads.iter().any(|&a| copy_may_have_written(snap, d, n, a))
    {
        return Known::default();
    }
    let needs_src = !matches!(name, "memset" | "wmemset");
    let known = Known { all: dst.is_some() && (src.is_some() || !needs_src) && size.is_some(), size: size.is_some() };
    let shown = |v: Option<u64>| v.map(|v| format!("{v:#x}")).unwrap_or_else(|| "?".into());
    let args = match name {
        "memset" | "wmemset" => format!("{}, c, {}", shown(dst), shown(size)),
        "strcpy" | "stpcpy" | "strcat" => format!("{}, {}", shown(dst), shown(src)),
        _ => format!("{}, {}, {}", shown(dst), shown(src), shown(size)),
    };
    f.annotate(scope.clone(), Severity::Info, SOURCE, format!("{name}({args}): the arguments, from {}", call.source));
    let Some(count) = size else { return known };
    // wmemset counts wide characters; everything below is in bytes.
    let n = if name == "wmemset" { count.saturating_mul(4) } else { count };
    if n >= ABSURD_SIZE {
        let signed = count as i64;
        let negative = if signed < 0 { format!(" ({signed} as a signed length)") } else { String::new() };
        f.annotate(
            scope.clone(),
            Severity::Error,
            SOURCE,
            format!("{name}() called with an absurd size {count:#x}{negative}"),
        );
        return known;
    }
    for (role, p) in [("destination", dst), ("source", src)] {
        let Some(p) = p else { continue };
        if let Some((_, end)) = mapped_run(snap, p)
            && n > end - p
        {
            f.annotate(
                scope.clone(),
                Severity::Error,
                SOURCE,
                format!(
                    "{name}() called with size {n:#x}, larger than the {role}'s mapping allows ({:#x} bytes from {p:#x})",
                    end - p
                ),
            );
        }
    }
    let forbids_overlap = matches!(name, "memcpy" | "mempcpy" | "strncpy");
    if let (true, true, Some(d), Some(s)) = (named, forbids_overlap, dst, src)
        && n > 0
        && d.abs_diff(s) < n
    {
        f.annotate(
            scope,
            Severity::Error,
            SOURCE,
            format!(
                "{name}() called with overlapping ranges: destination {d:#x} and source {s:#x} are {:#x} bytes apart, less than the size {n:#x} (use memmove)",
                d.abs_diff(s)
            ),
        );
    }
    known
}

/// Longest source string scanned for its NUL (a lower bound beyond it is still one).
const MAX_STRING_SCAN: u64 = 1 << 20;

/// Where a scan for a string's NUL stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum StringEnd {
    /// Its NUL.
    Nul,
    /// This address, which no readable mapping holds.
    Unreadable(u64),
    /// Memory the snapshot lacks, or the scan limit: the length is a lower bound.
    Unknown,
}

/// The length of the string at `s` as memory stands in the snapshot: the bytes before
/// its NUL, or before the scan had to stop (then a lower bound).
fn string_extent(snap: &Snapshot, reader: &Reader, s: u64) -> (u64, StringEnd) {
    let mut len = 0u64;
    let mut chunk = [0u8; 4096];
    while len < MAX_STRING_SCAN {
        let at = s.wrapping_add(len);
        // Folklore: a core holds PROT_NONE pages too (as zeros): only the maps say
        // what the process could read.
        // No maps at all proves nothing unreadable.
        if !snap.maps.is_empty() && !mapping_of(&snap.maps, at).is_some_and(|m| m.perms.starts_with('r')) {
            return (len, StringEnd::Unreadable(at));
        }
        // Up to the next page boundary, so that a short read stops at a page.
        let want = (4096 - (at % 4096)) as usize;
        let n = reader.read(at, &mut chunk[..want]);
        if let Some(z) = chunk[..n].iter().position(|b| *b == 0) {
            return (len + z as u64, StringEnd::Nul);
        }
        len += n as u64;
        if n < want {
            return (len, StringEnd::Unknown);
        }
    }
    (len, StringEnd::Unknown)
}

/// strcpy/stpcpy with a known source: one that runs into unreadable memory before
/// any NUL; with the destination known too, overlapping ranges.
///
/// The overlap is proven by contradiction: were the ranges apart, the copy would not
/// have touched the source, so the string there now is the one it copied, and the
/// copy spans at least its length (plus the NUL, when one was found) at both ends; a
/// destination closer to the source than that overlaps it. The string found now is
/// only a lower bound for a copy whose overlap changed it, which does not matter:
/// the overlap is already what is claimed.
fn string_copy(
    snap: &Snapshot,
    name: &str,
    call: &Call,
    fault: &MemoryFault,
    reader: &Reader,
    scope: Scope,
    f: &mut Findings,
) {
    let Some(s) = call.arg(1).filter(|&s| s >= NULL_LIMIT) else { return };
    let d = call.arg(0).filter(|&d| d >= NULL_LIMIT);
    let (len, end) = string_extent(snap, reader, s);
    let copied = if end == StringEnd::Nul { len + 1 } else { len };
    // Arguments read from the caller's stack slots are stale if the copy wrote there
    // (anywhere, when the destination is unknown).
    let stale = |a: u64| d.is_none_or(|d| copy_may_have_written(snap, d, copied.max(1), a));
    if call.reads.iter().any(|&a| stale(a)) {
        return;
    }
    let until = match end {
        StringEnd::Nul => format!("{copied:#x} bytes with its NUL"),
        StringEnd::Unreadable(x) => format!("no NUL in the {len:#x} bytes before unreadable address {x:#x}"),
        StringEnd::Unknown => format!("no NUL in the {len:#x} bytes readable"),
    };
    if let StringEnd::Unreadable(x) = end
        && fault.access == Some(Access::Read)
        && fault.target.is_some_and(|t| t >= x && t - x < 4096)
    {
        f.annotate(
            scope.clone(),
            Severity::Error,
            SOURCE,
            format!(
                "{name}() called with a source not NUL-terminated before unreadable address {x:#x}: no NUL in the {len:#x} bytes from {s:#x} (memory at the crash)"
            ),
        );
    }
    if let Some(d) = d
        && copied > 0
        && d.abs_diff(s) < copied
    {
        f.annotate(
            scope,
            Severity::Error,
            SOURCE,
            format!(
                "{name}() called with overlapping ranges: destination {d:#x} and source {s:#x} are {:#x} bytes apart, less than the string copied ({until})",
                d.abs_diff(s)
            ),
        );
    }
}

/// Which memcpy-family arguments were known.
#[derive(Debug, Default, Clone, Copy)]
struct Known {
    /// Every argument the checks need.
    all: bool,
    size: bool,
}

/// What the registers prove at a fault inside a copy, when the arguments are not
/// known: during `rep movs`, rdi − rsi is still the destination − source distance and
/// rcx the elements left, so a distance below the bytes left proves the ranges
/// overlap; a count left beyond any buffer proves an absurd size. Vector loops prove
/// nothing about the arguments, so nothing is claimed for them.
fn copy_registers(
    t: &Thread,
    name: &str,
    named: bool,
    check_size: bool,
    reader: &Reader,
    scope: Scope,
    f: &mut Findings,
) {
    let r = &t.registers;
    let Some(d) = decode::decode_at(reader, r) else { return };
    let width = match d.mnemonic.as_str() {
        "rep movsb" => 1,
        "rep movsw" => 2,
        "rep movsd" => 4,
        "rep movsq" => 8,
        _ => return,
    };
    // EFLAGS.DF set: a backward copy, whose overlap rules differ; say nothing.
    if r.eflags & (1 << 10) != 0 {
        return;
    }
    let left = r.rcx.saturating_mul(width);
    if left >= ABSURD_SIZE && check_size {
        f.annotate(
            scope,
            Severity::Error,
            SOURCE,
            format!(
                "{name}() called with an absurd size: `{}` still has {left:#x} bytes to copy (rcx = {:#x})",
                d.mnemonic, r.rcx
            ),
        );
        return;
    }
    if named && matches!(name, "memcpy" | "mempcpy") && r.rdi.abs_diff(r.rsi) < left {
        f.annotate(
            scope,
            Severity::Error,
            SOURCE,
            format!(
                "{name}() called with overlapping ranges: `{}` copies {left:#x} more bytes from {:#x} to {:#x}, {:#x} bytes apart (use memmove)",
                d.mnemonic,
                r.rsi,
                r.rdi,
                r.rdi.abs_diff(r.rsi)
            ),
        );
    }
}

/// The frame of the user's code that called free/realloc (the first frame above
/// `malloc_printerr` that is not glibc's), and the pointer it passed, when the
/// caller's call-site records or its code say so.
fn freed_pointer(t: &Thread, printerr_frame: usize, reader: &Reader) -> (Option<usize>, Option<u64>) {
    let user = t.frames.iter().enumerate().skip(printerr_frame).find(|(_, fr)| {
        let n = base_name(fr);
        !(n.starts_with('_') || n == "malloc_printerr" || n == "free" || n == "realloc" || n.starts_with("munmap"))
    });
    let k = user.map(|(k, _)| k);
    let ptr = k.filter(|k| *k > printerr_frame).and_then(|k| calls::call_into(t, k - 1, reader).arg(0));
    (k, ptr)
}

/// glibc's `double free or corruption (out|!prev|fasttop)` says one of two things;
/// the chunk tells which. `Some((true, why))`: the chunk and its neighbour look
/// intact and the neighbour says the chunk is already free (a double free);
/// `Some((false, why))`: a header is not sane (overwritten: heap corruption);
/// `None`: the pointer or the chunk could not be read.
///
/// Folklore: glibc keeps `size | PREV_INUSE | IS_MMAPPED | NON_MAIN_ARENA` 8 bytes
/// before the user pointer; the next chunk starts `size` bytes after this chunk's
/// start (the user pointer minus 16) and its PREV_INUSE bit says whether this
/// chunk is in use. A write just before a block overwrites the size, so the
/// "next chunk" lands anywhere: glibc then reports (out) or (!prev), the same
/// words it uses for a real double free of a chunk too big for the tcache.
pub fn double_free_or_corruption(t: &Thread, printerr_frame: usize, reader: &Reader) -> Option<(bool, String)> {
    let (_, ptr) = freed_pointer(t, printerr_frame, reader);
    let ptr = ptr?;
    let raw = reader.u64(ptr.checked_sub(8)?)?;
    let size = raw & !7;
    if raw & 2 != 0 {
        return None; // mmapped chunks are not in the arena's lists; glibc checks them elsewhere
    }
    let sane = |sz: u64| (32..(1u64 << 40)).contains(&sz) && sz % 16 == 0;
    if !sane(size) {
        return Some((
            false,
            format!(
                "the chunk at {ptr:#x} has size field {raw:#x}, which no allocation has: its header was overwritten"
            ),
        ));
    }
    let next = (ptr - 16).checked_add(size)?;
    let Some(next_raw) = reader.u64(next + 8) else {
        return Some((
            false,
            format!(
                "the chunk at {ptr:#x} claims {size} bytes, but no memory follows it at {:#x}: its size field was overwritten",
                next + 8
            ),
        ));
    };
    if !sane(next_raw & !7) {
        return Some((
            false,
            format!(
                "the chunk after {ptr:#x} (at {:#x}) has size field {next_raw:#x}: a write past the end of the block, or an overwritten size",
                next + 16
            ),
        ));
    }
    if next_raw & 1 == 0 {
        return Some((
            true,
            format!(
                "the chunk at {ptr:#x} ({size} bytes) and its neighbour look intact, and the neighbour marks it free: it was freed before"
            ),
        ));
    }
    Some((
        false,
        format!("the chunk at {ptr:#x} and its neighbour look intact and in use: the arena's lists were corrupted"),
    ))
}

/// glibc's malloc error messages that mean "free/realloc got a pointer it never
/// handed out": a constraint violation of the call as well as a heap problem.
pub fn malloc_error_constraint(t: &Thread, printerr_frame: usize, msg: &str, reader: &Reader, f: &mut Findings) {
    let bad_pointer = ["invalid pointer", "invalid size", "misaligned"];
    let Some((call, _)) = msg.split_once("():") else { return };
    if !matches!(call, "free" | "realloc" | "munmap_chunk" | "free_check" | "realloc_check")
        || !bad_pointer.iter().any(|b| msg.contains(b))
    {
        return;
    }
    let (user, ptr) = freed_pointer(t, printerr_frame, reader);
    let at = user.map(|k| k as u32).unwrap_or(printerr_frame as u32);
    let caller = user.and_then(|k| t.frames[k].function.clone()).unwrap_or_else(|| "??".into());
    // What the user called (glibc may report an internal, e.g. munmap_chunk()).
    let called = user
        .and_then(|k| t.frames.get(k.checked_sub(1)?))
        .map(base_name)
        .filter(|n| is_free(n))
        .map(|n| free_call_name(&n))
        .unwrap_or(call);
    // The pointer itself, from the call-site records of the caller of free/realloc.
    let passed = ptr.map(|p| format!(" {p:#x}")).unwrap_or_default();
    f.classify(names::CONSTRAINT_VIOLATION);
    f.annotate(
        Scope::Frame(t.tid, at),
        Severity::Error,
        SOURCE,
        format!("{called}() in {caller} was passed a pointer{passed} whose chunk header is not sane ({msg})"),
    );
}

/// The allocator a frame belongs to: a library allocator by its module, glibc's
/// malloc by its function names, allocators built into a program by their prefixes.
fn allocator_of(fr: &crate::snapshot::Frame) -> Option<&'static str> {
    let module = fr.module.as_deref().map(|m| m.rsplit('/').next().unwrap_or(m)).unwrap_or("");
    for (prefix, name) in [
        ("libjemalloc.so", "jemalloc"),
        ("libtcmalloc", "tcmalloc"),
        ("libmimalloc", "mimalloc"),
        ("libgc.so", "Boehm GC"),
    ] {
        if module.starts_with(prefix) {
            return Some(name);
        }
    }
    let n = base_name(fr);
    let glibc = matches!(
        n.as_str(),
        "malloc"
            | "free"
            | "realloc"
            | "calloc"
            | "cfree"
            | "__libc_malloc"
            | "__libc_free"
            | "__libc_realloc"
            | "__libc_calloc"
            | "_int_malloc"
            | "_int_free"
            | "_int_realloc"
            | "_int_memalign"
            | "_int_free_merge_chunk"
            | "_int_free_create_chunk"
            | "_int_free_maybe_consolidate"
            | "malloc_consolidate"
            | "unlink_chunk"
            | "sysmalloc"
            | "munmap_chunk"
    ) || n.starts_with("tcache_");
    if glibc && module.starts_with("libc.so") {
        return Some("glibc malloc");
    }
    if n.starts_with("GC_") {
        return Some("Boehm GC");
    }
    if n.starts_with("je_") || n.starts_with("_rjem_") {
        return Some("jemalloc");
    }
    if n.starts_with("mi_") || n.starts_with("_mi_") {
        return Some("mimalloc");
    }
    if n.starts_with("tcmalloc::") {
        return Some("tcmalloc");
    }
    None
}

/// A memory fault inside the allocator's own code: the allocator read its metadata
/// (free lists, chunk headers, page maps) and found garbage, because the heap was
/// overwritten or because it was handed a pointer it never returned.
pub fn allocator_fault(t: &Thread, f: &mut Findings) {
    let Some(first) = t.frames.first() else { return };
    let Some(allocator) = allocator_of(first) else { return };
    let outside = t.frames.iter().position(|fr| allocator_of(fr).is_none());
    let (entry, caller) = match outside {
        Some(k) if k > 0 => (t.frames.get(k - 1), t.frames.get(k)),
        _ => (t.frames.last(), None),
    };
    let entry = entry.and_then(|fr| fr.function.clone()).unwrap_or_else(|| "its code".into());
    let caller =
        caller.map(|fr| format!(", called from {}", fr.function.as_deref().unwrap_or("??"))).unwrap_or_default();
    f.classify(names::HEAP_CORRUPTION);
    f.annotate(
        Scope::Frame(t.tid, outside.unwrap_or(0) as u32),
        Severity::Error,
        SOURCE,
        format!(
            "the fault is inside the allocator ({allocator}: {entry}{caller}): its heap was overwritten, or it was handed a pointer it never returned"
        ),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Where the scan for a string's NUL stops: its NUL, the first page no readable
    /// mapping holds (whatever bytes the core has there), or memory the core lacks.
    #[test]
    fn string_extents() {
        use crate::capture::CopiedMemory;
        use crate::snapshot::Mapping;
        use crate::symbols::{ModuleSet, SymbolOptions};
        use std::sync::Arc;
        let map =
            |start: u64, perms: &str| Mapping { start, end: start + 0x1000, perms: perms.into(), ..Default::default() };
        let mut mem = CopiedMemory::default();
        let mut page = vec![b'A'; 0x1000];
        page[0x800] = 0;
        mem.add(0x10000, page);
        mem.add(0x11000, vec![b'A'; 0x1000]);
        // A PROT_NONE page, dumped as zeros.
        mem.add(0x12000, vec![0; 0x1000]);
        mem.add(0x20000, vec![b'B'; 0x1000]);
        let (modules, _) = ModuleSet::load(&[], &[], &[], &mem, &SymbolOptions::default());
        let reader = Reader::new(Arc::new(mem), Arc::new(modules));
        let snap = Snapshot {
            maps: vec![
                map(0x10000, "rw-p"),
                map(0x11000, "rw-p"),
                map(0x12000, "---p"),
                map(0x20000, "rw-p"),
                map(0x21000, "rw-p"),
            ],
            ..Default::default()
        };
        let cases = [
            (0x10000, (0x800, StringEnd::Nul)),
            (0x10801, (0x17ff, StringEnd::Unreadable(0x12000))),
            (0x11fff, (1, StringEnd::Unreadable(0x12000))),
            (0x12000, (0, StringEnd::Unreadable(0x12000))),
            // Mapped and readable, but not in the core: a lower bound only.
            (0x20010, (0xff0, StringEnd::Unknown)),
        ];
        for (s, want) in cases {
            assert_eq!(string_extent(&snap, &reader, s), want, "{s:#x}");
        }
        // No maps at all: nothing is proven unreadable.
        let bare = Snapshot::default();
        assert_eq!(string_extent(&bare, &reader, 0x11fff).1, StringEnd::Nul);
    }

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
