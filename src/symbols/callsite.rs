//! The register arguments a frame was called with, from its caller's DWARF call-site
//! records (`DW_TAG_call_site` + `DW_TAG_call_site_parameter`), for the analysis:
//! what memcpy, free or realloc really got when the fault happened deep inside them.

use super::ModuleSet;
use super::variables::EntryKey;
use crate::capture::Memory;
use crate::snapshot::{Frame, Registers, Trust};

/// How many callers up a chain of entry values is followed (a call value that is the
/// caller's own `DW_OP_entry_value(rdi)` asks the caller's caller, and so on).
const MAX_ENTRY_DEPTH: usize = 3;

impl ModuleSet {
    /// The argument registers (by DWARF number: 5 rdi, 4 rsi, 1 rdx, 2 rcx, 8 r8,
    /// 9 r9) the physical frame `callee` of `frames` was called with, as far as the
    /// caller's call-site records give them, evaluated with the caller's recovered
    /// registers, CFA and memory. Empty when the caller has no such records (no debug
    /// info, -O0) or the values needed clobbered registers.
    ///
    /// Only values DWARF proves are returned: a call value that needs a register the
    /// call clobbered is missing, never guessed.
    pub fn call_arguments(
        &self,
        thread: &Registers,
        frames: &[Frame],
        callee: usize,
        memory: &dyn Memory,
    ) -> Vec<(u16, u64)> {
        let physical: Vec<usize> =
            frames.iter().enumerate().skip(callee).filter(|(_, f)| !f.inlined).map(|(i, _)| i).collect();
        let entries = self.entries_at(thread, frames, &physical, memory, 0);
        entries
            .into_iter()
            .filter_map(|(k, v)| match k {
                EntryKey::Register(r) => Some((r, v)),
                EntryKey::Parameter(_) => None,
            })
            .collect()
    }

    /// The entry values of the physical frame `physical[k]`: its caller's call-site
    /// values, evaluated with the caller's own entry values.
    fn entries_at(
        &self,
        thread: &Registers,
        frames: &[Frame],
        physical: &[usize],
        memory: &dyn Memory,
        k: usize,
    ) -> Vec<(EntryKey, u64)> {
        let (Some(&callee), Some(&caller)) = (physical.get(k), physical.get(k + 1)) else { return Vec::new() };
        // A frame interrupted by a signal was not called from the frame above it.
        if frames[callee].signal_frame || frames[caller].signal_frame {
            return Vec::new();
        }
        let outer =
            if k < MAX_ENTRY_DEPTH { self.entries_at(thread, frames, physical, memory, k + 1) } else { Vec::new() };
        // A tail-call frame has no registers: at its jump they were those of the next
        // frame that has some.
        let is_tail_call = |f: &Frame| f.trust != Trust::Context && f.registers.is_empty();
        let Some(regs) = physical[k + 1..].iter().map(|&n| &frames[n]).find(|f| !is_tail_call(f)) else {
            return Vec::new();
        };
        let caller_cfa = physical[k + 2..].iter().map(|&n| &frames[n]).find(|f| !is_tail_call(f)).map(|f| f.sp);
        let f = &frames[callee];
        let inside = if f.trust == Trust::Context { f.pc } else { f.pc.wrapping_sub(1) };
        self.call_site_values(thread, &frames[caller], Some(inside), regs, caller_cfa, memory, outer)
    }
}
