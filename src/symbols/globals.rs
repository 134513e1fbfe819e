//! Globals and thread-locals: `--global NAME` looked up in every module's DWARF
//! (unit level, namespaces, static members), evaluated with the thread pointer for
//! TLS (the executable's static block, shared libraries' through the DTV), then
//! rendered like frame variables.

use super::ModuleSet;
use super::elf::Reader;
use super::location::N_DWARF_REGS;
use super::types::{DwarfTypes, TypeRef, TypeTable};
use super::variables::{RenderCtx, variable};
use crate::capture::Memory;
use crate::snapshot::values::{FRAME_READ_BUDGET, VariableOptions};
use crate::snapshot::{Problem, Registers, Scope, Variable, VariableKind};
use gimli::{AttributeValue, Reader as _, UnitRef};

impl ModuleSet {
    /// Folklore: x86-64 uses TLS variant II. The thread pointer (fs_base) points at
    /// the TCB, and the static TLS blocks sit just below it; the executable's block
    /// (module 1) comes first, ending at the thread pointer: its start is
    /// `fs_base - round_up(PT_TLS memsz, PT_TLS align)`.
    ///
    /// Shared libraries: their offsets in the static block are private to glibc
    /// (link_map::l_tls_offset), so bt goes through the DTV instead, whose layout is
    /// ABI: `*(fs_base + 8)` is the thread's `dtv_t *` (tcbhead_t {tcb, dtv, self}),
    /// 16-byte slots, slot N holding the block address of module id N (-1 while a
    /// dynamic block is still unallocated). Module ids are handed out in load order to
    /// the modules that have PT_TLS, the executable first; the load order is the
    /// r_debug link-map chain (public fields: l_addr, l_name, l_ld, l_next), found
    /// through the executable's DT_DEBUG. dlopen can reuse freed ids, so a library
    /// loaded after an unload may be misplaced; startup libraries are exact.
    pub(crate) fn tls_block(&self, idx: usize, fs_base: u64, memory: &dyn Memory) -> Result<u64, String> {
        let e = self.entry(idx);
        let Some((memsz, align)) = e.headers.as_ref().and_then(|h| h.tls) else {
            return Err("module has no PT_TLS segment".into());
        };
        if fs_base == 0 {
            return Err("thread pointer (fs_base) is 0".into());
        }
        if e.record.is_executable {
            let align = align.max(1);
            let size = memsz.div_ceil(align).saturating_mul(align);
            return Ok(fs_base.wrapping_sub(size));
        }
        let modid = self.tls_module_id(idx, memory)?;
        let dtv = memory.read_u64(fs_base.wrapping_add(8)).ok_or("cannot read the thread's DTV pointer")?;
        let block = memory
            .read_u64(dtv.wrapping_add(16 * modid))
            .ok_or_else(|| format!("cannot read DTV slot {modid} at {:#x}", dtv.wrapping_add(16 * modid)))?;
        if block == u64::MAX || block == 0 {
            return Err(format!("TLS block of module {modid} not allocated in this thread"));
        }
        Ok(block)
    }

    /// The TLS module id of module `idx`: its rank among the PT_TLS modules of the
    /// link-map chain (see [`ModuleSet::tls_block`]).
    fn tls_module_id(&self, idx: usize, memory: &dyn Memory) -> Result<u64, String> {
        const DT_NULL: u64 = 0;
        const DT_DEBUG: u64 = 21;
        let exe = self.entries.iter().find(|e| e.record.is_executable).ok_or("no executable module")?;
        let dynamic = exe.headers.as_ref().and_then(|h| h.dynamic).ok_or("the executable has no PT_DYNAMIC")?;
        let mut at = exe.record.load_bias.wrapping_add(dynamic);
        let mut r_debug = None;
        for _ in 0..512 {
            let (Some(tag), Some(val)) = (memory.read_u64(at), memory.read_u64(at.wrapping_add(8))) else { break };
            if tag == DT_NULL {
                break;
            }
            if tag == DT_DEBUG {
                r_debug = Some(val);
                break;
            }
            at = at.wrapping_add(16);
        }
        let r_debug = r_debug.filter(|r| *r != 0).ok_or("no DT_DEBUG in the executable (static or not started)")?;
        let mut map = memory.read_u64(r_debug.wrapping_add(8)).ok_or("cannot read r_debug.r_map")?;
        let mut modid = 0u64;
        for _ in 0..4096 {
            if map == 0 {
                break;
            }
            let l_ld = memory.read_u64(map.wrapping_add(16)).ok_or("cannot read link_map.l_ld")?;
            if let Some(m) = self.find(l_ld) {
                if self.entries[m].headers.as_ref().is_some_and(|h| h.tls.is_some()) {
                    modid += 1;
                }
                if m == idx {
                    return Ok(modid);
                }
            }
            map = memory.read_u64(map.wrapping_add(24)).ok_or("cannot read link_map.l_next")?;
        }
        Err("module not found in the dynamic linker's link map".into())
    }

    /// Captures named globals, statics and thread-locals (`ns::name` or `name`). TLS
    /// variables are evaluated with the given thread's registers. Searches modules
    /// with debug info, the executable first; the first definition found wins.
    pub fn capture_globals(
        &self,
        names: &[String],
        thread: &Registers,
        memory: &dyn Memory,
        opts: &VariableOptions,
        table: &TypeTable,
    ) -> (Vec<Variable>, Vec<Problem>) {
        let mut out = Vec::new();
        let mut problems = Vec::new();
        let mut order: Vec<usize> = (0..self.entries.len()).collect();
        order.sort_by_key(|i| !self.entries[*i].record.is_executable);
        'names: for want in names {
            for &idx in &order {
                if let Some(v) = self.global_in(idx, want, thread, memory, opts, table) {
                    out.push(v);
                    continue 'names;
                }
            }
            problems.push(Problem::new(
                Scope::Snapshot,
                format!("global {want:?} not found in the debug info of any module"),
            ));
        }
        (out, problems)
    }

    fn global_in(
        &self,
        idx: usize,
        want: &str,
        thread: &Registers,
        memory: &dyn Memory,
        opts: &VariableOptions,
        table: &TypeTable,
    ) -> Option<Variable> {
        self.image(idx)?;
        let ctx = self.dwarf(idx)?;
        let locs = self.loclists(idx);
        let mut guard = ctx.lock().ok()?;
        let (_, names) = &mut *guard;
        let (short, qual) = match want.rsplit_once("::") {
            Some((q, s)) => (s, Some(q)),
            None => (want, None),
        };
        let dwarf = names.dwarf.clone()?;
        let mut units = dwarf.units();
        while let Ok(Some(header)) = units.next() {
            let Ok(unit) = dwarf.unit(header) else { continue };
            let unit_ref = unit.unit_ref(&dwarf);
            let Some(off) = find_global(unit_ref, short, qual) else { continue };
            let mut regs = [None; N_DWARF_REGS];
            for (i, slot) in regs.iter_mut().enumerate() {
                *slot = thread.by_dwarf(i as u16);
            }
            let env = self.frame_env(idx, thread, regs, true, None, memory, Vec::new());
            let unit_key = unit.header.offset().0;
            let symbolize = |a: u64| table.symbol(a, true, |a| self.function_name(a));
            let data_symbol = |a: u64| table.symbol(a, false, |a| self.data_name(a));
            let (types_cache, scopes) = names.types_and_scopes();
            let types = types_cache.units.entry(unit_key).or_default();
            let mut scoped = |o: TypeRef, n: String| super::dwarf::scoped_name(unit_ref, o, n, scopes);
            let foreign = |o| self.foreign_unit(idx, &dwarf, o);
            let mut dt =
                DwarfTypes { module: idx, unit: unit_ref, types, scoped: &mut scoped, table, foreign: &foreign };
            // Each global alone, as the rendering from a snapshot gives it.
            let mut rc = RenderCtx {
                opts,
                symbol: &symbolize,
                data_symbol: &data_symbol,
                budget: FRAME_READ_BUDGET,
                follow: crate::snapshot::values::FOLLOW_NODES_PER_SNAPSHOT,
            };
            let e = unit_ref.entry(off).ok()?;
            let is_tls = matches!(e.attr_value(gimli::DW_AT_location), Some(AttributeValue::Exprloc(x)) if x.0.to_slice().is_ok_and(|b| b.iter().any(|op| *op == 0x9b || *op == 0xe0)));
            let kind = if is_tls { VariableKind::ThreadLocal } else { VariableKind::Global };
            let mut v = variable(unit_ref, off, kind, 0, &env, locs, &mut dt, &mut rc);
            v.name = want.to_string();
            return Some(v);
        }
        None
    }
}

/// A DW_TAG_variable with a location (or constant) named `short` at unit level or
/// inside namespaces/structs (static members) whose names match `qual`.
fn find_global(unit: UnitRef<'_, Reader>, short: &str, qual: Option<&str>) -> Option<gimli::UnitOffset> {
    let mut cursor = unit.entries();
    let mut path: Vec<Option<String>> = Vec::new();
    let mut depth: isize = 0;
    let mut n = 0usize;
    let mut decl_hit: Option<gimli::UnitOffset> = None;
    while let Ok(Some(e)) = cursor.next_dfs() {
        n += 1;
        if n > 50_000_000 {
            break;
        }
        depth += e.depth() - depth;
        let d = depth as usize;
        path.truncate(d);
        let tag = e.tag();
        let name = match e.attr_value(gimli::DW_AT_name) {
            Some(v) => unit.attr_string(v).ok().and_then(|s| s.to_string_lossy().ok().map(|c| c.into_owned())),
            None => None,
        };
        if tag == gimli::DW_TAG_variable && name.as_deref() == Some(short) {
            let scope: Vec<&str> = path.iter().skip(1).filter_map(|p| p.as_deref()).collect();
            let q = scope.join("::");
            let scope_ok = match qual {
                Some(want) => q == want || q.ends_with(&format!("::{want}")),
                None => true,
            };
            // Only unit-level or namespace-level variables (function statics need a qualifier match).
            let top = path.iter().skip(1).all(|p| p.is_some());
            if scope_ok && top {
                let has_loc =
                    e.attr_value(gimli::DW_AT_location).is_some() || e.attr_value(gimli::DW_AT_const_value).is_some();
                if has_loc {
                    return Some(e.offset());
                }
                decl_hit.get_or_insert(e.offset());
            }
        }
        if tag == gimli::DW_TAG_variable
            && e.attr_value(gimli::DW_AT_location).is_some()
            && let Some(AttributeValue::UnitRef(spec)) = e.attr_value(gimli::DW_AT_specification)
            && decl_hit == Some(spec)
        {
            return Some(e.offset());
        }
        let scope_name = match tag {
            gimli::DW_TAG_compile_unit | gimli::DW_TAG_partial_unit => Some(String::new()),
            gimli::DW_TAG_namespace => Some(name.unwrap_or_else(|| "(anonymous namespace)".into())),
            gimli::DW_TAG_structure_type | gimli::DW_TAG_class_type => name,
            gimli::DW_TAG_subprogram | gimli::DW_TAG_lexical_block => name.or(Some(String::new())).filter(|_| false),
            _ => None,
        };
        path.resize(d, None);
        path.push(scope_name);
    }
    // A variable with neither location nor constant (and not a mere declaration) was
    // optimized out; it is reported as such, like gdb does.
    decl_hit.filter(|o| {
        unit.entry(*o)
            .is_ok_and(|e| !matches!(e.attr_value(gimli::DW_AT_declaration), Some(AttributeValue::Flag(true))))
    })
}
