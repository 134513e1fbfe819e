//! DWARF call frame information: find the FDE for an address (.eh_frame through the
//! .eh_frame_hdr binary-search table, else .eh_frame linearly, else .debug_frame),
//! turn its row into a compact [`Rule`], cache rules per module and address, and
//! evaluate them (all register rules, DWARF expressions included) against memory.
//!
//! All addresses here are link-time addresses of the module (`pc - load_bias`); the
//! section base addresses are the sections' own link-time addresses.

use crate::capture::Memory;
use crate::symbols::elf::SharedBytes;
use gimli::{BaseAddresses, CfaRule, EhFrame, EhFrameHdr, LittleEndian, RegisterRule, UnwindSection};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

type Slice<'a> = gimli::EndianSlice<'a, LittleEndian>;

/// Registers we track: DWARF 0..=16 (rax..r15, and 16 = return address / rip).
pub(crate) const N_REGS: usize = 17;
pub(crate) const RSP: usize = 7;
pub(crate) const RIP: usize = 16;

/// Register values of one frame; None = not recoverable.
pub(crate) type Regs = [Option<u64>; N_REGS];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Section {
    EhFrame,
    DebugFrame,
}

/// A DWARF expression inside a CFI section.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Expr {
    offset: usize,
    length: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Cfa {
    RegOffset(u16, i64),
    Expr(Expr),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Reg {
    Undefined,
    SameValue,
    Offset(i64),
    ValOffset(i64),
    Register(u16),
    Expr(Expr),
    ValExpr(Expr),
    Constant(u64),
}

/// The unwind rule for one address, owned (no borrow of the section), cacheable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Rule {
    pub section: Section,
    pub cfa: Cfa,
    /// Explicit rules for registers 0..=16; absent ones take the ABI default.
    pub regs: Vec<(u16, Reg)>,
    pub ra_register: u16,
    /// CIE augmentation 'S': this frame is a signal trampoline.
    pub signal: bool,
    /// Link-time start of the FDE (usually the function's entry).
    pub fde_start: u64,
}

const RULE_SHARDS: usize = 8;

/// Per-module unwind caches, owned by the [`super::Unwinder`] (one per module of
/// its `ModuleSet`, by index).
#[derive(Default)]
pub(crate) struct ModuleCache {
    rules: [Mutex<HashMap<u64, Option<Arc<Rule>>>>; RULE_SHARDS],
    debug_frame: OnceLock<Option<SharedBytes>>,
}

fn to_reg(r: &RegisterRule<usize>) -> Option<Reg> {
    Some(match *r {
        RegisterRule::Undefined => Reg::Undefined,
        RegisterRule::SameValue => Reg::SameValue,
        RegisterRule::Offset(o) => Reg::Offset(o),
        RegisterRule::ValOffset(o) => Reg::ValOffset(o),
        RegisterRule::Register(g) => Reg::Register(g.0),
        RegisterRule::Expression(e) => Reg::Expr(Expr { offset: e.offset, length: e.length }),
        RegisterRule::ValExpression(e) => Reg::ValExpr(Expr { offset: e.offset, length: e.length }),
        RegisterRule::Constant(c) => Reg::Constant(c),
        // Architectural rules have no meaning on x86-64.
        _ => return None,
    })
}

fn row_to_rule<S: gimli::UnwindContextStorage<usize>>(
    row: &gimli::UnwindTableRow<usize, S>,
    section: Section,
    fde: &gimli::FrameDescriptionEntry<Slice<'_>>,
) -> Rule {
    let ra_register = fde.cie().return_address_register().0;
    let signal = fde.is_signal_trampoline();
    let fde_start = fde.initial_address();
    let cfa = match row.cfa() {
        CfaRule::RegisterAndOffset { register, offset } => Cfa::RegOffset(register.0, *offset),
        CfaRule::Expression(e) => Cfa::Expr(Expr { offset: e.offset, length: e.length }),
    };
    let regs = row
        .registers()
        .filter(|(r, _)| (r.0 as usize) < N_REGS)
        .filter_map(|(r, rule)| Some((r.0, to_reg(rule)?)))
        .collect();
    Rule { section, cfa, regs, ra_register, signal, fde_start }
}

fn eh_bases(img: &crate::symbols::elf::Image) -> BaseAddresses {
    let mut b = BaseAddresses::default();
    if let Some(s) = img.eh_frame_hdr {
        b = b.set_eh_frame_hdr(s.addr);
    }
    if let Some(s) = img.eh_frame {
        b = b.set_eh_frame(s.addr);
    }
    if let Some(s) = img.text {
        b = b.set_text(s.addr);
    }
    if let Some(s) = img.got {
        b = b.set_got(s.addr);
    }
    b
}

/// Looks up the rule at link-time address `vaddr` of module `idx` (cached).
pub(crate) fn rule(u: &super::Unwinder<'_>, idx: usize, vaddr: u64) -> Option<Arc<Rule>> {
    let cache = u.cache(idx)?;
    let shard = &cache.rules[(vaddr as usize ^ (vaddr as usize >> 7)) % RULE_SHARDS];
    if let Some(hit) = shard.lock().ok().and_then(|m| m.get(&vaddr).cloned()) {
        return hit;
    }
    let r = compute_rule(u, idx, vaddr).map(Arc::new);
    if let Ok(mut m) = shard.lock() {
        m.insert(vaddr, r.clone());
    }
    r
}

fn compute_rule(u: &super::Unwinder<'_>, idx: usize, vaddr: u64) -> Option<Rule> {
    let img = u.modules.image(idx)?;
    let mut ctx: gimli::UnwindContext<usize> = gimli::UnwindContext::new();
    if let Some(eh) = img.raw(img.eh_frame) {
        let bases = eh_bases(img);
        let eh = EhFrame::new(eh, LittleEndian);
        let fde = match img.raw(img.eh_frame_hdr) {
            Some(hdr) => EhFrameHdr::new(hdr, LittleEndian).parse(&bases, 8).ok().and_then(|p| {
                p.table().and_then(|t| t.fde_for_address(&eh, &bases, vaddr, EhFrame::cie_from_offset).ok())
            }),
            None => eh.fde_for_address(&bases, vaddr, EhFrame::cie_from_offset).ok(),
        };
        if let Some(fde) = fde
            && let Ok(row) = fde.unwind_info_for_address(&eh, &bases, &mut ctx, vaddr)
        {
            return Some(row_to_rule(row, Section::EhFrame, &fde));
        }
    }
    let df = debug_frame(u, idx)?;
    let mut section = gimli::DebugFrame::new(df, LittleEndian);
    section.set_address_size(8);
    let bases = BaseAddresses::default();
    let fde = section.fde_for_address(&bases, vaddr, gimli::DebugFrame::cie_from_offset).ok()?;
    let row = fde.unwind_info_for_address(&section, &bases, &mut ctx, vaddr).ok()?;
    Some(row_to_rule(row, Section::DebugFrame, &fde))
}

/// .debug_frame of the module or of its separate debug file (decompressed if needed).
fn debug_frame<'u>(u: &'u super::Unwinder<'_>, idx: usize) -> Option<&'u SharedBytes> {
    let modules = u.modules;
    u.cache(idx)?
        .debug_frame
        .get_or_init(|| {
            let img = modules.image(idx)?;
            if img.debug_frame.is_some() {
                return img.section_data(".debug_frame");
            }
            let dbg = modules.debug_file(idx)?;
            dbg.debug_frame?;
            dbg.section_data(".debug_frame")
        })
        .as_ref()
}

fn section_bytes<'u>(u: &'u super::Unwinder<'_>, idx: usize, section: Section) -> Option<&'u [u8]> {
    match section {
        Section::EhFrame => {
            let img = u.modules.image(idx)?;
            img.raw(img.eh_frame)
        }
        Section::DebugFrame => debug_frame(u, idx).map(|b| &**b),
    }
}

/// Evaluates a CFI DWARF expression; `initial` is pushed first (the CFA, for
/// register rules). Returns the value left on the stack.
fn eval(bytes: &[u8], expr: Expr, initial: Option<u64>, regs: &Regs, memory: &dyn Memory) -> Option<u64> {
    let code = bytes.get(expr.offset..expr.offset.checked_add(expr.length)?)?;
    let encoding = gimli::Encoding { address_size: 8, format: gimli::Format::Dwarf32, version: 4 };
    let mut ev = gimli::Evaluation::new(Slice::new(code, LittleEndian), encoding);
    ev.set_max_iterations(1000);
    if let Some(v) = initial {
        ev.set_initial_value(v);
    }
    let mut state = ev.evaluate().ok()?;
    loop {
        state = match state {
            gimli::EvaluationResult::Complete => break,
            gimli::EvaluationResult::RequiresMemory { address, size, .. } => {
                let mut b = [0u8; 8];
                let n = (size as usize).min(8);
                if !memory.read_exact(address, &mut b[..n]) {
                    return None;
                }
                ev.resume_with_memory(gimli::Value::Generic(u64::from_le_bytes(b))).ok()?
            }
            gimli::EvaluationResult::RequiresRegister { register, .. } => {
                let v = (*regs.get(register.0 as usize)?)?;
                ev.resume_with_register(gimli::Value::Generic(v)).ok()?
            }
            _ => return None,
        };
    }
    let pieces = ev.result();
    match pieces.first()?.location {
        gimli::Location::Address { address } => Some(address),
        gimli::Location::Value { value } => value.to_u64(!0).ok(),
        _ => None,
    }
}

/// What applying a rule to a frame's registers yields.
pub(crate) struct Applied {
    /// The caller's registers (rsp = CFA, rip = return address when defined).
    pub regs: Regs,
    /// The return address rule is Undefined: the outermost frame (`_start`, `clone3`).
    pub outermost: bool,
    /// The registers the caller has as the callee had them (a bit per DWARF number):
    /// callee-saved ones without a rule, and those whose rule is same-value.
    pub carried: u32,
}

/// Callee-saved registers in the SysV x86-64 ABI: rbx, rbp, r12–r15. Without an
/// explicit rule they keep their value in the caller; caller-saved ones are unknown.
pub(super) const CALLEE_SAVED: [usize; 6] = [3, 6, 12, 13, 14, 15];

pub(crate) fn apply(
    u: &super::Unwinder<'_>,
    idx: usize,
    rule: &Rule,
    regs: &Regs,
    memory: &dyn Memory,
) -> Option<Applied> {
    let bytes = || section_bytes(u, idx, rule.section);
    let cfa = match rule.cfa {
        Cfa::RegOffset(r, off) => (*regs.get(r as usize)?)?.wrapping_add_signed(off),
        Cfa::Expr(e) => eval(bytes()?, e, None, regs, memory)?,
    };
    let mut out: Regs = [None; N_REGS];
    let mut carried = 0u32;
    for r in CALLEE_SAVED {
        out[r] = regs[r];
        carried |= 1 << r;
    }
    let mut ra_defined = true;
    let mut ra_explicit = false;
    for &(reg, ref r) in &rule.regs {
        let value = match *r {
            Reg::Undefined => None,
            Reg::SameValue => regs[reg as usize],
            Reg::Offset(o) => memory.read_u64(cfa.wrapping_add_signed(o)),
            Reg::ValOffset(o) => Some(cfa.wrapping_add_signed(o)),
            Reg::Register(g) => regs.get(g as usize).copied().flatten(),
            Reg::Expr(e) => eval(bytes()?, e, Some(cfa), regs, memory).and_then(|a| memory.read_u64(a)),
            Reg::ValExpr(e) => eval(bytes()?, e, Some(cfa), regs, memory),
            Reg::Constant(c) => Some(c),
        };
        if reg == rule.ra_register {
            ra_explicit = true;
            if matches!(r, Reg::Undefined) {
                ra_defined = false;
            }
        }
        out[reg as usize] = value;
        let bit = 1u32.checked_shl(u32::from(reg)).unwrap_or(0);
        carried = if matches!(r, Reg::SameValue) { carried | bit } else { carried & !bit };
    }
    if !ra_defined {
        return Some(Applied { regs: out, outermost: true, carried });
    }
    // The return address: the RA register's rule (almost always Offset(-8)).
    let ra = if ra_explicit { out.get(rule.ra_register as usize).copied().flatten() } else { None };
    let ra = ra?;
    out[RSP] = Some(cfa);
    out[RIP] = Some(ra);
    Some(Applied { regs: out, outermost: false, carried })
}
