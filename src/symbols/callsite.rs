//! Values from DWARF call-site records (`DW_TAG_call_site` + `DW_TAG_call_site_parameter`):
//! what a caller passed to the frame it called, evaluated in the caller's frame. The
//! variable capture uses them for `DW_OP_entry_value` (gdb's `x=x@entry=…`); the
//! analysis for the register arguments a frame was called with (what memcpy, free or
//! realloc really got when the fault happened deep inside them).

use super::ModuleSet;
use super::elf::Reader;
use super::location::{eval_expr, single_register};
use super::variables::{EntryKey, die_path, eval_frame_base, frame_base_expr, frame_regs};
use crate::capture::Memory;
use crate::snapshot::{Frame, Registers, Trust};
use gimli::{AttributeValue, Reader as _};
use std::sync::Arc;

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

impl ModuleSet {
    /// Values the caller at `caller` passed to its callee: the DW_TAG_call_site at the
    /// caller's return address, its parameters' DW_AT_call_value evaluated with the
    /// caller's registers. Only callee-saved registers and memory survive the call, so
    /// a value that needs a clobbered register is simply not found. `entry` holds the
    /// caller's own entry values (from its caller's call site), when known. `regs` is
    /// the frame whose recovered registers are the caller's: the caller itself, or for
    /// a tail-call frame (which has none) the next physical frame. `callee_pc` is a pc
    /// inside the called frame's function (its return address less one), when known.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn call_site_values(
        &self,
        thread: &Registers,
        caller: &Frame,
        callee_pc: Option<u64>,
        regs: &Frame,
        cfa: Option<u64>,
        memory: &dyn Memory,
        entry: Vec<(EntryKey, u64)>,
    ) -> Vec<(EntryKey, u64)> {
        let mut out = Vec::new();
        let Some(idx) = self.find(caller.pc) else { return out };
        let ret = caller.pc.wrapping_sub(self.entry(idx).record.load_bias);
        let Some(plan) = self.call_plan(idx, ret) else { return out };
        // As gdb, only for the function it calls: a caller that reached the callee
        // through jumps no tail-call frame stands for (an ambiguous chain) called
        // another function, and these are that function's arguments.
        if let Some(pc) = callee_pc
            && let Some(target) = self.direct_call_target(caller.pc)
            && !self.call_enters(target, pc)
        {
            return out;
        }
        let unit = plan.unit.unit_ref(&plan.sections);
        let mut env = self.frame_env(idx, thread, frame_regs(thread, regs), false, cfa, memory, entry);
        env.frame_base = plan.base_expr.clone().and_then(|x| eval_frame_base(x, unit, &env));
        for (expr, register, parameter) in &plan.params {
            let Ok(pieces) = eval_expr(expr.clone(), unit, &env) else { continue };
            let v = match pieces.first().map(|p| &p.location) {
                Some(gimli::Location::Address { address }) => *address,
                Some(gimli::Location::Value { value }) => value.to_u64(u64::MAX).unwrap_or(0),
                Some(gimli::Location::Register { register }) => {
                    match env.regs.get(register.0 as usize).copied().flatten() {
                        Some(v) => v,
                        None => continue,
                    }
                }
                _ => continue,
            };
            if let Some(r) = register {
                out.push((EntryKey::Register(*r), v));
            }
            if let Some(p) = parameter {
                out.push((EntryKey::Parameter(*p), v));
            }
        }
        out
    }

    /// The [`CallPlan`] at return address `ret` (link-time) of module `idx`, worked
    /// out once: the threads of a pool return to the same addresses. None: no call
    /// site is recorded there (most return addresses; an -O0 build has none).
    fn call_plan(&self, idx: usize, ret: u64) -> Option<Arc<CallPlan>> {
        self.entry(idx).call_plans.get_or_make(ret, || self.make_call_plan(idx, ret).map(Arc::new))
    }

    fn make_call_plan(&self, idx: usize, ret: u64) -> Option<CallPlan> {
        let probe = ret.wrapping_sub(1);
        let ctx = self.dwarf(idx)?;
        let fast = self.frame_dies_cached(idx, probe);
        let mut guard = ctx.lock().ok()?;
        let (lazy, names) = &mut *guard;
        let sections = names.dwarf.clone()?;
        // The physical function is the outermost DIE of the chain.
        let (unit_off, dies) = die_path(fast, probe, lazy, names)?;
        let func = dies.iter().rev().find_map(|d| *d)?;
        let parsed = self.unit_at(idx, &sections, unit_off)?;
        let unit = parsed.unit_ref(&sections);
        let site = super::lookup::call_site_at(unit, func, ret, |e| Some(e.offset()))?;
        let base_expr = frame_base_expr(unit, func, &mut names.frame_bases);
        drop(guard);
        let mut params = Vec::new();
        let mut tree = unit.entries_tree(Some(site)).ok()?;
        let root = tree.root().ok()?;
        let mut children = root.children();
        let mut n = 0;
        while let Ok(Some(child)) = children.next() {
            n += 1;
            if n > 1024 {
                break;
            }
            let e = child.entry();
            if e.tag() != gimli::DW_TAG_call_site_parameter && e.tag() != gimli::DW_TAG_GNU_call_site_parameter {
                continue;
            }
            let value =
                e.attr_value(gimli::DW_AT_call_value).or_else(|| e.attr_value(gimli::DW_AT_GNU_call_site_value));
            let Some(AttributeValue::Exprloc(expr)) = value else { continue };
            let register = match e.attr_value(gimli::DW_AT_location) {
                Some(AttributeValue::Exprloc(loc)) => loc.0.to_slice().ok().and_then(|b| single_register(&b)),
                _ => None,
            };
            let parameter = match e
                .attr_value(gimli::DW_AT_call_parameter)
                .or_else(|| e.attr_value(gimli::DW_AT_abstract_origin))
            {
                Some(AttributeValue::UnitRef(p)) => Some(p.0),
                _ => None,
            };
            params.push((expr, register, parameter));
        }
        Some(CallPlan { sections, unit: parsed, base_expr, params })
    }
}

/// What DWARF says about the call at one return address: the unit, the calling
/// function's frame base, and each call-site parameter's value expression with what
/// it gives the callee (the register it was passed in, the callee's parameter DIE).
pub(crate) struct CallPlan {
    sections: Arc<gimli::Dwarf<Reader>>,
    unit: Arc<super::split::Parsed>,
    base_expr: Option<gimli::Expression<Reader>>,
    params: Vec<(gimli::Expression<Reader>, Option<u16>, Option<usize>)>,
}
