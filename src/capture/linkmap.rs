//! The dynamic linker's list of loaded objects, as gdb reads it: the executable's
//! program headers (`AT_PHDR`, `AT_PHNUM` in the auxv) give its load bias and its
//! `PT_DYNAMIC`; `DT_DEBUG` there points at `r_debug`, whose `r_map` chain of
//! `link_map` nodes (`l_addr`, `l_name`, `l_ld`, `l_next`) names every object the
//! process loaded and where, namespace by namespace (glibc's `r_debug` version 2
//! links `dlmopen` namespaces through `r_next`).
//!
//! Folklore: the memory map alone cannot say which mappings of a file are the
//! loaded image. A debugger, a language runtime or a symbolizer maps ELF files as
//! data while it reads them (gdb maps libc, libz and libstdc++ that way), so the
//! same path appears at addresses that hold no code; taking a module's extent as
//! min..max of its path's mappings made ranges overlap, and the wrong module won
//! every lookup in a core of gdb. The link map says where each image is; its
//! extent then comes from its own `PT_LOAD` segments.

use super::Memory;

/// One object of the link map.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Loaded {
    /// `l_addr`: the difference between its addresses in memory and in the file.
    pub bias: u64,
    /// `l_name`: the path it was loaded from; empty for the executable.
    pub name: String,
    /// `l_ld`: the address of its dynamic section (inside the image).
    pub dynamic: u64,
    /// The link-map namespace (0: the default; others from `dlmopen`).
    pub namespace: u32,
}

const AT_PHDR: u64 = 3;
const AT_PHENT: u64 = 4;
const AT_PHNUM: u64 = 5;
const PT_DYNAMIC: u32 = 2;
const PT_PHDR: u32 = 6;
const PT_LOAD: u32 = 1;
const DT_NULL: u64 = 0;
const DT_DEBUG: u64 = 21;
/// Bounds on what a corrupt or hostile memory image can make this walk do.
const MAX_OBJECTS: usize = 4096;
const MAX_NAMESPACES: u32 = 64;
const MAX_NAME: usize = 4096;

fn u64_at(memory: &dyn Memory, addr: u64) -> Option<u64> {
    let mut b = [0u8; 8];
    (memory.read(addr, &mut b) == 8).then(|| u64::from_le_bytes(b))
}

fn c_string(memory: &dyn Memory, addr: u64) -> Option<String> {
    let mut out = Vec::new();
    let mut at = addr;
    while out.len() < MAX_NAME {
        let mut chunk = [0u8; 256];
        // Never read across a page boundary in one go: the next page may be absent.
        let n = (4096 - (at % 4096) as usize).min(chunk.len());
        let got = memory.read(at, &mut chunk[..n]);
        if got == 0 {
            return None;
        }
        if let Some(nul) = chunk[..got].iter().position(|&b| b == 0) {
            out.extend_from_slice(&chunk[..nul]);
            return Some(String::from_utf8_lossy(&out).into_owned());
        }
        out.extend_from_slice(&chunk[..got]);
        at = at.wrapping_add(got as u64);
    }
    None
}

/// The address of `r_debug`, through the executable's `DT_DEBUG`; `Ok(None)` for an
/// executable without a dynamic section (static) or whose linker has not set it.
pub fn r_debug(memory: &dyn Memory, auxv: &[(u64, u64)]) -> Result<Option<u64>, String> {
    let get = |k: u64| auxv.iter().find(|(key, _)| *key == k).map(|(_, v)| *v);
    // No auxiliary vector (a core without NT_AUXV, said elsewhere): no link map to find.
    let (Some(phdr), Some(phnum)) = (get(AT_PHDR), get(AT_PHNUM)) else { return Ok(None) };
    let phent = get(AT_PHENT).unwrap_or(56);
    let phnum = phnum.min(512);
    if phent < 56 {
        return Err(format!("AT_PHENT {phent} is too small"));
    }
    let mut headers = Vec::new();
    for i in 0..phnum {
        let at = phdr.wrapping_add(i * phent);
        let mut p = [0u8; 56];
        if memory.read(at, &mut p) != 56 {
            return Err(format!("cannot read the executable's program headers at {at:#x}"));
        }
        let u64_of = |o: usize| u64::from_le_bytes(p[o..o + 8].try_into().expect("8 bytes"));
        headers.push((u32::from_le_bytes(p[0..4].try_into().expect("4 bytes")), u64_of(16), u64_of(40)));
    }
    // The bias: AT_PHDR is where PT_PHDR's vaddr was loaded; without PT_PHDR, the
    // headers follow the ELF header (64 bytes) at the start of the first PT_LOAD.
    let bias = match headers.iter().find(|h| h.0 == PT_PHDR) {
        Some(&(_, vaddr, _)) => phdr.wrapping_sub(vaddr),
        None => match headers.iter().find(|h| h.0 == PT_LOAD) {
            Some(&(_, vaddr, _)) => phdr.wrapping_sub(64).wrapping_sub(vaddr),
            None => return Ok(None),
        },
    };
    let Some(&(_, dyn_vaddr, dyn_size)) = headers.iter().find(|h| h.0 == PT_DYNAMIC) else { return Ok(None) };
    let start = bias.wrapping_add(dyn_vaddr);
    for i in 0..(dyn_size / 16).clamp(1, 4096) {
        let at = start.wrapping_add(i * 16);
        let (Some(tag), Some(val)) = (u64_at(memory, at), u64_at(memory, at.wrapping_add(8))) else {
            return Err(format!("cannot read the executable's dynamic section at {at:#x}"));
        };
        match tag {
            DT_NULL => break,
            DT_DEBUG => return Ok((val != 0).then_some(val)),
            _ => {}
        }
    }
    Ok(None)
}

/// Every object of the link map, namespace by namespace, in load order. `Ok` and
/// empty when there is no link map (a static executable, a process before its
/// dynamic linker ran); `Err` says why a link map that exists could not be read.
pub fn read(memory: &dyn Memory, auxv: &[(u64, u64)]) -> Result<Vec<Loaded>, String> {
    let Some(r_debug) = r_debug(memory, auxv)? else { return Ok(Vec::new()) };
    let mut out = Vec::new();
    let mut seen = std::collections::HashSet::new();
    let mut r = r_debug;
    for namespace in 0..MAX_NAMESPACES {
        let version = u64_at(memory, r).ok_or_else(|| format!("cannot read r_debug at {r:#x}"))? as u32;
        let mut map = u64_at(memory, r.wrapping_add(8)).ok_or("cannot read r_debug.r_map")?;
        while map != 0 {
            if out.len() >= MAX_OBJECTS || !seen.insert(map) {
                return Err(format!("the link map loops or holds more than {MAX_OBJECTS} objects"));
            }
            let field = |o: u64, what: &str| {
                u64_at(memory, map.wrapping_add(o)).ok_or_else(|| format!("cannot read link_map.{what} at {map:#x}"))
            };
            let bias = field(0, "l_addr")?;
            let name_at = field(8, "l_name")?;
            let dynamic = field(16, "l_ld")?;
            let name = if name_at == 0 { String::new() } else { c_string(memory, name_at).unwrap_or_default() };
            out.push(Loaded { bias, name, dynamic, namespace });
            map = field(24, "l_next")?;
        }
        // glibc ≥ 2.35: r_debug_extended.r_next (version 2) chains the namespaces.
        if version < 2 {
            break;
        }
        match u64_at(memory, r.wrapping_add(40)) {
            Some(next) if next != 0 && seen.insert(next) => r = next,
            _ => break,
        }
    }
    Ok(out)
}

/// [`read`], with a link map that exists but cannot be read recorded as a problem
/// (the modules then come from the file mappings alone).
pub fn read_or_note(
    memory: &dyn Memory,
    auxv: &[(u64, u64)],
    problems: &mut Vec<crate::snapshot::Problem>,
) -> Vec<Loaded> {
    read(memory, auxv).unwrap_or_else(|e| {
        problems.push(crate::snapshot::Problem::new(
            crate::snapshot::Scope::Snapshot,
            format!("the dynamic linker's link map: {e}; modules come from the file mappings alone"),
        ));
        Vec::new()
    })
}
