//! Variables of frames and globals: the DWARF scopes at a pc (parameters, locals of
//! the lexical blocks holding the pc, one inlined call per frame), location
//! expressions and lists evaluated with the frame's recovered registers, frame base
//! and CFA, TLS through the thread pointer, then values rendered by `values`.
//!
//! Only the DIE subtree of the function at hand is read; types are parsed when a
//! value needs them and cached per unit.

use super::elf::Reader;
use super::types::{DwarfTypes, TypeRef, TypeTable};
use super::{ModuleSet, names};
use crate::capture::Memory;
use crate::snapshot::values::{Data, FRAME_READ_BUDGET, Renderer, VariableOptions};
use crate::snapshot::{Frame, Location, Registers, Trust, Value, Variable, VariableKind};
use gimli::{AttributeValue, Reader as _, UnitRef};
use std::sync::Arc;

pub(crate) use super::location::*;

const MAX_VARIABLES: usize = 4096;

/// Follows DW_AT_abstract_origin / DW_AT_specification (same unit) to find an attribute.
fn inherited<'a>(
    unit: UnitRef<'a, Reader>,
    e: &gimli::DebuggingInformationEntry<Reader>,
    at: gimli::DwAt,
) -> Option<AttributeValue<Reader>> {
    if let Some(v) = e.attr_value(at) {
        return Some(v);
    }
    let mut cur = e.clone();
    for _ in 0..8 {
        let link =
            cur.attr_value(gimli::DW_AT_abstract_origin).or_else(|| cur.attr_value(gimli::DW_AT_specification))?;
        let AttributeValue::UnitRef(o) = link else { return None };
        cur = unit.entry(o).ok()?;
        if let Some(v) = cur.attr_value(at) {
            return Some(v);
        }
    }
    None
}

fn name_of(unit: UnitRef<'_, Reader>, e: &gimli::DebuggingInformationEntry<Reader>) -> Option<String> {
    let v = inherited(unit, e, gimli::DW_AT_name)?;
    Some(unit.attr_string(v).ok()?.to_string_lossy().ok()?.into_owned())
}

fn type_of(unit: UnitRef<'_, Reader>, e: &gimli::DebuggingInformationEntry<Reader>) -> Option<TypeRef> {
    match inherited(unit, e, gimli::DW_AT_type)? {
        AttributeValue::UnitRef(o) => Some(o.0),
        AttributeValue::DebugInfoRef(o) => o.to_unit_offset(&unit.unit.header).map(|u| u.0),
        _ => None,
    }
}

/// A type in another unit (Go keeps all types in one unit of their own).
fn foreign_type_of(
    unit: UnitRef<'_, Reader>,
    e: &gimli::DebuggingInformationEntry<Reader>,
) -> Option<gimli::DebugInfoOffset> {
    match inherited(unit, e, gimli::DW_AT_type)? {
        AttributeValue::DebugInfoRef(o) if o.to_unit_offset(&unit.unit.header).is_none() => Some(o),
        _ => None,
    }
}

fn in_ranges(unit: UnitRef<'_, Reader>, e: &gimli::DebuggingInformationEntry<Reader>, probe: u64) -> bool {
    let Ok(mut ranges) = unit.die_ranges(e) else { return false };
    let mut any = false;
    let mut n = 0;
    while let Ok(Some(r)) = ranges.next() {
        any = true;
        n += 1;
        if r.begin <= probe && probe < r.end {
            return true;
        }
        if n > 10_000 {
            break;
        }
    }
    // A block without ranges (abstract) holds whatever its parent holds.
    !any
}

/// The variable DIEs in scope at `probe` under the function or inlined call `scope`:
/// parameters (declaration order) then locals, innermost block first, as gdb lists them.
/// Variables of the abstract origin with no concrete instance are included (they were
/// optimized out entirely).
fn scope_variables(
    unit: UnitRef<'_, Reader>,
    scope: gimli::UnitOffset,
    probe: u64,
) -> Vec<(gimli::UnitOffset, VariableKind)> {
    let mut params = Vec::new();
    let mut levels: Vec<Vec<gimli::UnitOffset>> = Vec::new();
    let mut origins = std::collections::HashSet::new();
    let Ok(mut tree) = unit.entries_tree(Some(scope)) else { return vec![] };
    let Ok(root) = tree.root() else { return vec![] };
    let origin_of_scope = match root.entry().attr_value(gimli::DW_AT_abstract_origin) {
        Some(AttributeValue::UnitRef(o)) => Some(o),
        _ => None,
    };
    let Ok(mut cursor) = unit.entries_at_offset(scope) else { return vec![] };
    let mut seen = 0usize;
    let mut base: Option<isize> = None;
    // Entries deeper than this are inside a block that does not hold the pc (or an
    // inlined call, which is a frame of its own): skipped.
    let mut skip_below: Option<isize> = None;
    // Depth-first through lexical blocks containing the pc.
    while let Ok(Some(e)) = cursor.next_dfs() {
        let depth = e.depth();
        let base = *base.get_or_insert(depth);
        seen += 1;
        if (depth <= base && seen > 1)
            || seen > 200_000
            || params.len() + levels.iter().map(Vec::len).sum::<usize>() > MAX_VARIABLES
        {
            break;
        }
        if seen == 1 {
            continue;
        }
        if let Some(s) = skip_below {
            if depth > s {
                continue;
            }
            skip_below = None;
        }
        let rel = (depth - base) as usize; // 1 for direct children
        if let Some(AttributeValue::UnitRef(o)) = e.attr_value(gimli::DW_AT_abstract_origin) {
            origins.insert(o);
        }
        match e.tag() {
            gimli::DW_TAG_formal_parameter if rel == 1 => params.push(e.offset()),
            gimli::DW_TAG_variable => {
                let decl = matches!(e.attr_value(gimli::DW_AT_declaration), Some(AttributeValue::Flag(true)));
                if !decl {
                    levels.truncate(rel);
                    while levels.len() < rel {
                        levels.push(Vec::new());
                    }
                    levels[rel - 1].push(e.offset());
                }
            }
            gimli::DW_TAG_lexical_block if rel < 64 && in_ranges(unit, e, probe) => {
                levels.truncate(rel);
                while levels.len() < rel {
                    levels.push(Vec::new());
                }
            }
            _ => {
                if e.has_children() {
                    skip_below = Some(depth);
                }
            }
        }
    }
    let mut out: Vec<(gimli::UnitOffset, VariableKind)> =
        params.into_iter().map(|o| (o, VariableKind::Parameter)).collect();
    for level in levels.into_iter().rev() {
        out.extend(level.into_iter().map(|o| (o, VariableKind::Local)));
    }
    // Inherit the abstract origin's parameters and locals that have no concrete DIE
    // here (gdb's inherit_abstract_dies). Abstract lexical blocks have no ranges, and
    // gdb folds the variables of unreferenced ones into the enclosing scope.
    if let Some(origin) = origin_of_scope
        && let Ok(mut cursor) = unit.entries_at_offset(origin)
    {
        let (mut seen, mut base, mut skip_below) = (0usize, None, None::<isize>);
        while let Ok(Some(e)) = cursor.next_dfs() {
            let depth = e.depth();
            let b = *base.get_or_insert(depth);
            seen += 1;
            if (depth <= b && seen > 1) || seen > 200_000 || out.len() > MAX_VARIABLES {
                break;
            }
            if seen == 1 {
                continue;
            }
            if let Some(s) = skip_below {
                if depth > s {
                    continue;
                }
                skip_below = None;
            }
            let referenced = origins.contains(&e.offset());
            match e.tag() {
                gimli::DW_TAG_formal_parameter if depth - b == 1 => {
                    if !referenced {
                        let pos = out.iter().filter(|v| v.1 == VariableKind::Parameter).count();
                        out.insert(pos, (e.offset(), VariableKind::Parameter));
                    }
                }
                gimli::DW_TAG_variable => {
                    if !referenced {
                        out.push((e.offset(), VariableKind::Local));
                    }
                }
                gimli::DW_TAG_lexical_block if !referenced => {}
                _ => {
                    if e.has_children() {
                        skip_below = Some(depth);
                    }
                }
            }
        }
    }
    out
}

/// What rendering a frame's (or a global's) variables shares: bounds, symbol
/// lookups, and the bytes the frame may still read.
pub(crate) struct RenderCtx<'a> {
    pub opts: &'a VariableOptions,
    pub symbol: &'a dyn Fn(u64) -> Option<String>,
    pub data_symbol: &'a dyn Fn(u64) -> Option<String>,
    pub budget: usize,
    /// Values the stack's objects behind pointers may still add
    /// (`values::follow_share`).
    pub follow: usize,
}

impl RenderCtx<'_> {
    /// A renderer of values of `types`' unit reading `memory`, with this context's
    /// bounds and symbol lookups.
    fn renderer<'r>(&'r self, types: &'r mut DwarfTypes<'_>, memory: &'r dyn Memory) -> Renderer<'r> {
        let lang = types.lang();
        Renderer {
            types,
            lang,
            memory,
            opts: self.opts,
            symbol: self.symbol,
            data_symbol: self.data_symbol,
            budget: self.budget,
            nesting: 0,
            nodes: crate::snapshot::values::MAX_NODES_PER_VALUE,
            follow: self.follow,
            follow_from: None,
        }
    }
}

impl VarPlan {
    /// Reads the variable DIE at `off` for link-time pc `probe`.
    pub(crate) fn read(
        unit: UnitRef<'_, Reader>,
        off: gimli::UnitOffset,
        kind: VariableKind,
        probe: u64,
        locs: Option<&gimli::LocationLists<Reader>>,
    ) -> VarPlan {
        let Ok(e) = unit.entry(off) else {
            return VarPlan { kind, name: None, ty: None, foreign: None, location: Ok(None), const_value: None };
        };
        let location = location_expr(unit, &e, probe, locs);
        VarPlan {
            kind,
            name: Some(name_of(unit, &e).unwrap_or_else(|| "<anonymous>".into())),
            ty: type_of(unit, &e),
            foreign: foreign_type_of(unit, &e),
            const_value: match location {
                Ok(None) => inherited(unit, &e, gimli::DW_AT_const_value),
                _ => None,
            },
            location,
        }
    }
}

/// Evaluates one variable DIE to its type and location, then renders it through the
/// snapshot's renderer (the one that re-renders saved snapshots).
#[allow(clippy::too_many_arguments)]
pub(crate) fn variable(
    unit: UnitRef<'_, Reader>,
    off: gimli::UnitOffset,
    kind: VariableKind,
    probe: u64,
    env: &FrameEnv<'_>,
    locs: Option<&gimli::LocationLists<Reader>>,
    types: &mut DwarfTypes<'_>,
    ctx: &mut RenderCtx<'_>,
) -> Variable {
    planned(unit, &VarPlan::read(unit, off, kind, probe, locs), env, types, ctx)
}

/// Renders a variable as `plan` describes it, in the frame `env`.
pub(crate) fn planned(
    unit: UnitRef<'_, Reader>,
    plan: &VarPlan,
    env: &FrameEnv<'_>,
    types: &mut DwarfTypes<'_>,
    ctx: &mut RenderCtx<'_>,
) -> Variable {
    let Some(name) = plan.name.clone() else {
        return Variable {
            name: "?".into(),
            kind: plan.kind,
            text: "<bad DIE>".into(),
            value: Value::Unavailable("bad DIE".into()),
            ..Default::default()
        };
    };
    // A type in another unit is rendered with that unit's types.
    if let Some(o) = plan.foreign
        && let Some((other, off)) = (types.foreign)(o)
    {
        let other = UnitRef::new(unit.dwarf, &other);
        let cached = types.types.foreign.entry(other.unit.header.offset().0).or_default();
        let mut plain = |_: TypeRef, n: String| n;
        let mut dt = DwarfTypes {
            module: types.module,
            unit: other,
            types: cached,
            scoped: &mut plain,
            table: types.table,
            foreign: types.foreign,
        };
        return render_variable(unit, plan, name, Some(off.0), env, &mut dt, ctx);
    }
    render_variable(unit, plan, name, plan.ty, env, types, ctx)
}

/// Renders the variable of `plan`, whose type is `ty` in `types`' unit.
fn render_variable(
    unit: UnitRef<'_, Reader>,
    plan: &VarPlan,
    name: String,
    ty: Option<TypeRef>,
    env: &FrameEnv<'_>,
    types: &mut DwarfTypes<'_>,
    ctx: &mut RenderCtx<'_>,
) -> Variable {
    let type_id = types.intern(ty);
    let mut r = ctx.renderer(types, env.memory);
    let type_name = r.type_name(type_id);
    let size = r.size(type_id).unwrap_or(8);
    let mut var = Variable { name, kind: plan.kind, type_name, type_id, ..Default::default() };

    let place: Result<Place, EvalError> = match &plan.location {
        Ok(Some(expr)) => match simple_place(expr, env) {
            Some(place) => Ok(place),
            None => eval_expr(expr.clone(), unit, env).and_then(|p| place_of(p, size, env)),
        },
        Ok(None) => match plan.const_value.clone() {
            Some(AttributeValue::Block(b)) => {
                Ok(Place::Data(Data::known(b.to_slice().map(|c| c.into_owned()).unwrap_or_default(), None)))
            }
            Some(AttributeValue::Sdata(v)) => {
                Ok(Place::Data(Data::known(v.to_le_bytes()[..(size.min(8) as usize)].to_vec(), None)))
            }
            Some(v) => match v.udata_value() {
                Some(u) => Ok(Place::Data(Data::known(u.to_le_bytes()[..(size.min(8) as usize)].to_vec(), None))),
                None => match unit.attr_string(v) {
                    Ok(s) => {
                        Ok(Place::Data(Data::known(s.to_slice().map(|c| c.into_owned()).unwrap_or_default(), None)))
                    }
                    Err(_) => Err(EvalError::Unavailable("unsupported DW_AT_const_value form".into())),
                },
            },
            None => Err(EvalError::OptimizedOut),
        },
        Err(e) => Err(e.clone()),
    };
    match place {
        Ok(Place::Memory(addr)) => {
            var.address = Some(addr);
            var.location = Location::Memory(addr);
        }
        Ok(Place::Data(mut d)) => {
            // A register holds 8 bytes; the type may be smaller.
            let n = size as usize;
            d.bytes.resize(n, 0);
            d.valid.resize(n, false);
            var.location = Location::Bytes { bytes: d.bytes, valid: d.valid };
        }
        Err(EvalError::OptimizedOut) => {
            var.text = "<optimized out>".into();
        }
        Err(EvalError::Unavailable(why)) => {
            var.text = format!("<unavailable: {why}>");
            var.value = Value::Unavailable(why);
        }
    };
    r.variable(&mut var);
    let (budget, follow) = (r.budget, r.follow);
    ctx.budget = budget;
    ctx.follow = follow;
    var
}

/// The value of type `ty` (of `types`' unit) at `addr`, rendered like a variable
/// in memory there (how a Go interface's dynamic value is shown).
pub(crate) fn value_at(
    ty: TypeRef,
    addr: u64,
    memory: &dyn Memory,
    types: &mut DwarfTypes<'_>,
    ctx: &mut RenderCtx<'_>,
) -> Variable {
    let type_id = types.intern(Some(ty));
    let mut r = ctx.renderer(types, memory);
    let type_name = r.type_name(type_id);
    let mut var = Variable {
        type_name,
        type_id,
        address: Some(addr),
        location: Location::Memory(addr),
        kind: VariableKind::Local,
        ..Default::default()
    };
    r.variable(&mut var);
    let (budget, follow) = (r.budget, r.follow);
    ctx.budget = budget;
    ctx.follow = follow;
    var
}

/// DW_AT_frame_base of the physical function `func`, read once per function
/// (`known`, by unit and DIE): threads share functions.
pub(super) fn frame_base_expr(
    unit: UnitRef<'_, Reader>,
    func: gimli::UnitOffset,
    known: &mut std::collections::HashMap<(usize, usize), Option<gimli::Expression<Reader>>>,
) -> Option<gimli::Expression<Reader>> {
    let key = (unit.unit.header.offset().0, func.0);
    known
        .entry(key)
        .or_insert_with(|| match unit.entry(func).ok()?.attr_value(gimli::DW_AT_frame_base)? {
            AttributeValue::Exprloc(expr) => Some(expr),
            _ => None,
        })
        .clone()
}

/// A frame base expression evaluated in its frame; most are just the CFA.
pub(super) fn eval_frame_base(
    expr: gimli::Expression<Reader>,
    unit: UnitRef<'_, Reader>,
    env: &FrameEnv<'_>,
) -> Option<u64> {
    if matches!(expr.0.to_slice().ok().as_deref(), Some(&[op]) if op == gimli::constants::DW_OP_call_frame_cfa.0) {
        return env.cfa;
    }
    let pieces = eval_expr(expr, unit, env).ok()?;
    match pieces.first()?.location {
        gimli::Location::Address { address } => Some(address),
        gimli::Location::Register { register } => env.regs.get(register.0 as usize).copied().flatten(),
        _ => None,
    }
}

/// What DWARF says about the variables at one pc of a module: its unit, the
/// variables in scope of each function of the inline chain there (innermost first,
/// as `symbolize` lists the frames), and the physical function's frame base. Threads of a
/// pool stop at the same pcs: one lookup serves them all.
pub(crate) struct FramePlan {
    sections: Arc<gimli::Dwarf<Reader>>,
    unit: Arc<super::split::Parsed>,
    lists: Vec<Option<super::dwarf::ScopeVars>>,
    base_expr: Option<gimli::Expression<Reader>>,
}

/// The unit offset and the DIEs of the inline chain at `probe` (innermost first;
/// None for a function without one): `fast`, the point lookup, when it could answer
/// (it reads only the DIE path to the pc), else addr2line (which parses the unit's
/// functions and lines). Called under the module's DWARF lock.
pub(super) fn die_path(
    fast: super::FrameDies,
    probe: u64,
    lazy: &mut super::dwarf::LazyContext,
    names: &super::dwarf::NameCache,
) -> Option<(usize, Vec<Option<gimli::UnitOffset>>)> {
    match fast {
        Some(None) => None,
        Some(Some((off, dies))) => Some((off, dies.into_iter().map(Some).collect())),
        None => {
            let ctx = lazy.get(names)?;
            let unit = ctx.find_dwarf_and_unit(probe).skip_all_loads()?;
            let mut iter = ctx.find_frames(probe).skip_all_loads().ok()?;
            let mut dies = Vec::new();
            while let Ok(Some(f)) = iter.next() {
                dies.push(f.dw_die_offset);
                if dies.len() > 256 {
                    break;
                }
            }
            Some((unit.unit.header.offset().0, dies))
        }
    }
}

/// Registers of a frame by DWARF number: the thread's for frame 0, the recovered
/// ones for callers (callee-saved ones, rsp and rip).
pub(super) fn frame_regs(thread: &Registers, physical: &Frame) -> [Option<u64>; N_DWARF_REGS] {
    let mut regs = [None; N_DWARF_REGS];
    if physical.trust == Trust::Context {
        for (i, slot) in regs.iter_mut().enumerate() {
            *slot = thread.by_dwarf(i as u16);
        }
    } else {
        for (r, v) in &physical.registers {
            if let Some(slot) = regs.get_mut(*r as usize) {
                *slot = Some(*v);
            }
        }
        // fs_base does not change between frames.
        regs[58] = Some(thread.fs_base);
    }
    regs
}

impl ModuleSet {
    /// The unit holding `.debug_info` offset `o`, and `o` within it.
    pub(crate) fn foreign_unit(
        &self,
        idx: usize,
        sections: &gimli::Dwarf<Reader>,
        o: gimli::DebugInfoOffset,
    ) -> Option<(Arc<gimli::Unit<Reader>>, gimli::UnitOffset)> {
        // A split unit's references stay in it (see `split`).
        if sections.file_type == gimli::DwarfFileType::Dwo {
            return None;
        }
        let starts = self.entry(idx).unit_starts.get_or_init(|| {
            let mut v = Vec::new();
            let mut units = sections.units();
            while let Ok(Some(h)) = units.next() {
                v.push(h.offset().0);
            }
            v
        });
        let i = starts.partition_point(|s| *s <= o.0).checked_sub(1)?;
        let parsed = self.unit_at(idx, sections, starts[i])?;
        if parsed.split.is_some() {
            return None;
        }
        let off = o.to_unit_offset(&parsed.unit.header)?;
        Some((parsed.unit.clone(), off))
    }

    /// The unit whose header is at `.debug_info` offset `off` of module `idx`, parsed
    /// once; a skeleton's split unit in its place (see `split`).
    pub(crate) fn unit_at(
        &self,
        idx: usize,
        sections: &gimli::Dwarf<Reader>,
        off: usize,
    ) -> Option<Arc<super::split::Parsed>> {
        let cache = &self.entry(idx).units;
        if let Some(u) = cache.lock().ok()?.get(&off) {
            return Some(u.clone());
        }
        let header = sections.debug_info.header_from_offset(gimli::DebugInfoOffset(off)).ok()?;
        let unit = Arc::new(self.split_files(idx).parse(sections, header)?);
        cache.lock().ok()?.insert(off, unit.clone());
        Some(unit)
    }

    /// `frame_dies`, remembered per module and probe.
    pub(super) fn frame_dies_cached(&self, idx: usize, probe: u64) -> super::FrameDies {
        let cache = &self.entry(idx).frame_dies;
        if let Some(hit) = cache.lock().ok().and_then(|c| c.get(&probe).cloned()) {
            return hit;
        }
        let dies = self.frame_dies(idx, probe);
        if let Ok(mut c) = cache.lock() {
            c.insert(probe, dies.clone());
        }
        dies
    }

    /// Variables of one thread's frames as the unwinder found them (physical frames,
    /// not yet symbolized): for each frame, one list per function of the inline chain
    /// at its pc, innermost first, the order in which `symbolize` lists the frames it
    /// makes of it. Only the DIE path to each pc is looked up (no line tables), so a
    /// held live target runs again sooner. Values never fail wholesale: what cannot be
    /// read says so in the variable. `follow` bounds the values of the objects its
    /// variables point to (the stack's `values::follow_share`).
    #[allow(clippy::too_many_arguments)]
    pub fn capture_variables(
        &self,
        thread: &Registers,
        frames: &[Frame],
        memory: &dyn Memory,
        opts: &VariableOptions,
        table: &TypeTable,
        mut follow: usize,
    ) -> Vec<Vec<Vec<Variable>>> {
        let mut out = Vec::with_capacity(frames.len());
        // A tail-call frame (reconstructed by the unwinder: a caller frame with no
        // recovered registers) carries its callee's sp, not a CFA.
        let is_tail_call = |f: &Frame| f.trust != Trust::Context && f.registers.is_empty();
        let physical_after = |k: usize| frames.iter().skip(k).find(|n| !is_tail_call(n));
        // Each frame's entry values: its caller's call-site parameters, evaluated in the
        // caller's frame with the caller's own entry values (a call value may be the
        // caller's `DW_OP_entry_value(rdi)`), so outermost first. Through a tail call
        // the call site is the jump, and the registers at the jump are those the next
        // physical frame holds: callee-saved ones survive, as do constants and the CFA.
        let mut entries = vec![Vec::new(); frames.len()];
        for k in (0..frames.len().saturating_sub(1)).rev() {
            let (frame, caller) = (&frames[k], &frames[k + 1]);
            if frame.signal_frame {
                continue;
            }
            let Some(regs) = physical_after(k + 1) else { continue };
            let caller_cfa = physical_after(k + 2).map(|n| n.sp);
            let outer = std::mem::take(&mut entries[k + 1]);
            let inside = if frame.trust == Trust::Context { frame.pc } else { frame.pc.wrapping_sub(1) };
            entries[k] = self.call_site_values(thread, caller, Some(inside), regs, caller_cfa, memory, outer.clone());
            entries[k + 1] = outer;
        }
        for (k, (frame, entry)) in frames.iter().zip(entries).enumerate() {
            // The CFA is the sp of the next physical frame: past any tail-call frames
            // (sem_wait's futex wait, entered by jumps, has its frame base there).
            let cfa = physical_after(k + 1).map(|n| n.sp);
            // A tail-call frame is only its innermost function, as `symbolize` shows it.
            let tail_call = is_tail_call(frame);
            out.push(self.frame_variables(thread, frame, tail_call, cfa, entry, memory, opts, table, &mut follow));
        }
        out
    }

    /// What location expressions of module `idx` may ask for in one frame (its frame
    /// base is set by the caller, once the function is known).
    #[allow(clippy::too_many_arguments)]
    pub(super) fn frame_env<'a>(
        &'a self,
        idx: usize,
        thread: &Registers,
        regs: [Option<u64>; N_DWARF_REGS],
        innermost: bool,
        cfa: Option<u64>,
        memory: &'a dyn Memory,
        entry: Vec<(EntryKey, u64)>,
    ) -> FrameEnv<'a> {
        FrameEnv {
            regs,
            innermost,
            cfa,
            frame_base: None,
            bias: self.entry(idx).record.load_bias,
            tls_block: Default::default(),
            tls_of: (self, idx, thread.fs_base),
            memory,
            entry,
        }
    }

    /// The variables of each function of the inline chain at a physical frame's pc.
    #[allow(clippy::too_many_arguments)]
    fn frame_variables(
        &self,
        thread: &Registers,
        physical: &Frame,
        tail_call: bool,
        cfa: Option<u64>,
        entry: Vec<(EntryKey, u64)>,
        memory: &dyn Memory,
        opts: &VariableOptions,
        table: &TypeTable,
        follow: &mut usize,
    ) -> Vec<Vec<Variable>> {
        let none = Vec::new;
        let Some(idx) = self.find(physical.pc) else { return none() };
        let e = self.entry(idx);
        let bias = e.record.load_bias;
        let exact = physical.trust == Trust::Context || physical.signal_frame;
        let vaddr = physical.pc.wrapping_sub(bias);
        let probe = if exact { vaddr } else { vaddr.wrapping_sub(1) };
        let Some(ctx) = self.dwarf(idx) else { return none() };
        let regs = frame_regs(thread, physical);
        let innermost = physical.trust == Trust::Context;
        let Some(plan) = self.frame_plan(idx, probe, tail_call) else { return none() };
        let FramePlan { sections, unit: parsed, lists, base_expr } = &*plan;
        let unit = parsed.unit_ref(sections);
        let mut env = self.frame_env(idx, thread, regs, innermost, cfa, memory, entry);
        env.frame_base = base_expr.clone().and_then(|expr| eval_frame_base(expr, unit, &env));
        let unit_key = unit.unit.header.offset().0;
        let symbolize = |a: u64| table.symbol(a, true, |a| self.function_name(a));
        let data_symbol = |a: u64| table.symbol(a, false, |a| self.data_name(a));
        // Parsed types: this worker's own cache of the module (see `Entry::type_shards`).
        let Ok(mut shard) = e.type_shards[super::worker_slot() % e.type_shards.len()].lock() else { return none() };
        let types = shard.units.entry(unit_key).or_default();
        // Qualified type names read the unit's scopes, kept under the module's lock.
        let mut scoped = |off: TypeRef, name: String| match ctx.lock() {
            Ok(mut g) => super::dwarf::scoped_name(unit, off, name, g.1.scopes_mut()),
            Err(_) => name,
        };
        let foreign = |o| self.foreign_unit(idx, unit.dwarf, o);
        let mut dt = DwarfTypes { module: idx, unit, types, scoped: &mut scoped, table, foreign: &foreign };
        let mut rc = RenderCtx {
            opts,
            symbol: &symbolize,
            data_symbol: &data_symbol,
            budget: FRAME_READ_BUDGET,
            follow: *follow,
        };
        let mut out = Vec::with_capacity(lists.len());
        for vars in lists {
            let Some(vars) = vars else {
                out.push(Vec::new());
                continue;
            };
            // Unnamed parameters (C++ `int main(int, char **)`, Rust closures) are not shown, as in gdb.
            // Sized once: a variable is 200 bytes, and growing the list from 4 reallocated
            // most frames' lists twice (a thousand threads: 3 % of the trace in malloc).
            let mut list = Vec::with_capacity(vars.len());
            for plan in vars.iter() {
                let v = planned(unit, plan, &env, &mut dt, &mut rc);
                if v.name != "<anonymous>" {
                    list.push(v);
                }
            }
            out.push(list);
        }
        *follow = rc.follow;
        out
    }

    /// The [`FramePlan`] of module `idx` at `probe` (None: nothing to show there),
    /// worked out once per pc and shared by every thread stopped there.
    fn frame_plan(&self, idx: usize, probe: u64, tail_call: bool) -> Option<Arc<FramePlan>> {
        let make = || self.make_frame_plan(idx, probe, tail_call).map(Arc::new);
        self.entry(idx).frame_plans.get_or_make((probe, tail_call), make)
    }

    fn make_frame_plan(&self, idx: usize, probe: u64, tail_call: bool) -> Option<FramePlan> {
        let ctx = self.dwarf(idx)?;
        let locs = self.loclists(idx);
        let fast = self.frame_dies_cached(idx, probe);
        // Under the module's lock: the DIEs of the inline chain at this pc and the
        // variables in scope of each.
        let mut guard = ctx.lock().ok()?;
        let (lazy, names) = &mut *guard;
        let sections = names.dwarf.clone()?;
        let (unit_off, mut dies) = die_path(fast, probe, lazy, names)?;
        let parsed = self.unit_at(idx, &sections, unit_off)?;
        let unit = parsed.unit_ref(&sections);
        if tail_call {
            dies.truncate(1);
        }
        let func = dies.last().copied()??;
        // The frame base belongs to the physical function (the outermost DIE).
        let base_expr = frame_base_expr(unit, func, &mut names.frame_bases);
        // The variable DIEs in scope of each function of the chain.
        let lists = dies
            .iter()
            .map(|die| {
                let offs = scope_variables(unit, (*die)?, probe);
                Some(Arc::new(
                    offs.into_iter().map(|(off, kind)| VarPlan::read(unit, off, kind, probe, locs)).collect(),
                ))
            })
            .collect();
        drop(guard);
        Some(FramePlan { sections, unit: parsed, lists, base_expr })
    }

    /// gdb's names of the types at `offs` in the unit at `unit_off` of module `idx`.
    pub(crate) fn type_names(&self, idx: usize, unit_off: usize, offs: &[TypeRef]) -> Option<Vec<String>> {
        let ctx = self.dwarf(idx)?;
        let mut guard = ctx.lock().ok()?;
        let (_, names) = &mut *guard;
        let sections = names.dwarf.clone()?;
        let parsed = self.unit_at(idx, &sections, unit_off)?;
        let unit = parsed.unit_ref(&sections);
        let (types_cache, scopes) = names.types_and_scopes();
        let types = types_cache.units.entry(unit_off).or_default();
        let mut scoped = |o: TypeRef, n: String| super::dwarf::scoped_name(unit, o, n, scopes);
        Some(offs.iter().map(|o| types.name(unit, Some(*o), &mut scoped)).collect())
    }

    /// The function (symbol) containing a runtime address, with `+offset` when not at its start;
    /// an address in a PLT stub is `NAME@plt`, as gdb names it.
    pub(crate) fn function_name(&self, addr: u64) -> Option<String> {
        if let Some((name, off)) = self.plt_symbol(addr) {
            return Some(if off == 0 { format!("{name}@plt") } else { format!("{name}@plt+{off}") });
        }
        let idx = self.find(addr)?;
        let bias = self.entries[idx].record.load_bias;
        let images = self.symbol_images(idx);
        let hit = self.symbols(idx, &images).lookup(addr.wrapping_sub(bias), &images)?;
        Some(if hit.offset == 0 { hit.name } else { format!("{}+{}", hit.name, hit.offset) })
    }

    /// The object containing a runtime address: `name` or `name+offset`. A data
    /// pointer into code is named as gdb names it, after the function (`<main+4>`,
    /// `<puts@plt>`).
    pub(crate) fn data_name(&self, addr: u64) -> Option<String> {
        let idx = self.find(addr)?;
        let e = &self.entries[idx];
        // Only addresses in the module's file-backed segments can be its objects.
        let vaddr = addr.wrapping_sub(e.record.load_bias);
        if e.headers.as_ref()?.segment_for(vaddr)?.executable {
            // Only inside a stub or a sized function: read-only data may share the
            // code's segment (binaries linked without `-z separate-code`), and gdb
            // names nothing there, where the last unsized symbol would match.
            if self.plt_symbol(addr).is_none() {
                let images = self.symbol_images(idx);
                self.symbols(idx, &images).range_of(vaddr)?;
            }
            return self.function_name(addr);
        }
        let images = self.symbol_images(idx);
        let hit = e.data_symbols.get_or_init(|| names::SymbolIndex::build_data(&images)).lookup(vaddr, &images)?;
        Some(if hit.offset == 0 { hit.name } else { format!("{}+{}", hit.name, hit.offset) })
    }

    /// .debug_loc / .debug_loclists of a module, loaded on first use (symbolization
    /// never needs them, so they are not part of the addr2line context), through the
    /// section cache: libc's debug file compresses them, and inflating its location
    /// lists on every trace stalled the other workers waiting for them.
    pub(super) fn loclists(&self, idx: usize) -> Option<&gimli::LocationLists<Reader>> {
        self.entries[idx]
            .locs
            .get_or_init(|| {
                let img = self.image(idx)?;
                let src = if img.has_debug_info { img } else { self.debug_file(idx).filter(|d| d.has_debug_info)? };
                let empty = super::elf::SharedBytes::owned(Vec::new());
                let sect = |name: &str| {
                    let data = super::seccache::section_data(src, name);
                    Reader::new(data.unwrap_or_else(|| empty.clone()), gimli::LittleEndian)
                };
                Some(gimli::LocationLists::new(
                    gimli::DebugLoc::from(sect(".debug_loc")),
                    gimli::DebugLocLists::from(sect(".debug_loclists")),
                ))
            })
            .as_ref()
    }
}
