//! The facts the classifiers share (what a fault was, names reduced for matching,
//! where an address lies), in one module that `classify`, `heap`, `messages` and
//! `aliases` all read and none of them owns, so they depend one way.

use super::decode::Access;
use crate::snapshot::{Frame, Mapping};

/// Addresses below this are a null pointer plus an offset (the kernel's
/// mmap_min_addr is 64 KiB on most distributions, so nothing is ever mapped there).
pub const NULL_LIMIT: u64 = 64 * 1024;

/// A function name reduced for matching: no `__GI_` prefix, no parameter list, no
/// Rust hash.
pub fn base_name(f: &Frame) -> String {
    let Some(name) = f.function.as_deref() else { return String::new() };
    let mut s = name.trim();
    if let Some(i) = s.find('@') {
        s = &s[..i];
    }
    let s = s.strip_prefix("__GI_").unwrap_or(s);
    // `std::terminate()` → `std::terminate`; keep `operator()`.
    let mut out = s.to_string();
    if out.ends_with(')') && !out.ends_with("operator()") {
        let mut depth = 0;
        for (i, c) in out.char_indices().rev() {
            match c {
                ')' => depth += 1,
                '(' => {
                    depth -= 1;
                    if depth == 0 {
                        out.truncate(i);
                        break;
                    }
                }
                _ => {}
            }
        }
    }
    if let Some((head, hash)) = out.rsplit_once("::h")
        && hash.len() == 16
        && hash.chars().all(|c| c.is_ascii_hexdigit())
    {
        out = head.to_string();
    }
    out
}

pub fn mapping_of(maps: &[Mapping], addr: u64) -> Option<&Mapping> {
    maps.iter().find(|m| addr >= m.start && addr < m.end)
}

/// What the memory-fault analysis found, for the later checks.
#[derive(Debug, Default, Clone)]
pub struct MemoryFault {
    /// The address the faulting access aimed at (the operand's, else si_addr).
    pub target: Option<u64>,
    pub access: Option<Access>,
    pub execute: bool,
}
