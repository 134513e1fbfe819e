//! A value of a type the program's DWARF names, read at an address: how a Go
//! interface's dynamic value is shown when it is a struct (`interface {}(main.Point)
//! {X = 1, Y = 2}`) or a pointer to one. The type is found by its `DW_AT_name` in the
//! executable's units (a bounded walk), then rendered like a variable in memory.

use super::ModuleSet;
use super::elf::Reader;
use super::types::{DwarfTypes, TypeRef, TypeTable};
use super::variables::{RenderCtx, value_at};
use crate::capture::Memory;
use crate::snapshot::values::{FRAME_READ_BUDGET, VariableOptions, follow_share};
use gimli::{Reader as _, UnitRef};

/// Most DIEs looked at for one name, over all units.
const MAX_DIES: usize = 20_000_000;
/// Most names searched per module: a corrupt heap can make every interface name a
/// different garbage type, and each search may walk the whole DWARF.
const MAX_NAMES: usize = 256;

impl ModuleSet {
    /// The text of the value of the type named `name` at `addr`, or None when the
    /// executable's DWARF has no such type.
    pub fn render_named_type(&self, name: &str, addr: u64, memory: &dyn Memory) -> Option<String> {
        let idx = (0..self.len()).find(|&i| self.entry(i).record.is_executable)?;
        let ctx = self.dwarf(idx)?;
        let mut guard = ctx.lock().ok()?;
        let (_, names) = &mut *guard;
        let dwarf = names.dwarf.clone()?;
        let known = self.entry(idx).named_types.lock().ok()?.get(name).cloned();
        let (unit_off, die) = match known {
            Some(found) => found?,
            None => {
                if self.entry(idx).named_types.lock().ok()?.len() >= MAX_NAMES {
                    return None;
                }
                let found = find_in_units(&dwarf, name);
                self.entry(idx).named_types.lock().ok()?.insert(name.to_string(), found);
                found?
            }
        };
        let unit = self.unit_at(idx, &dwarf, unit_off)?;
        let unit_ref = unit.unit_ref(&dwarf);
        let table = TypeTable::default();
        let symbolize = |a: u64| self.function_name(a);
        let data_symbol = |a: u64| self.data_name(a);
        let (types_cache, scopes) = names.types_and_scopes();
        let types = types_cache.units.entry(unit_off).or_default();
        let mut scoped = |o: TypeRef, n: String| super::dwarf::scoped_name(unit_ref, o, n, scopes);
        let foreign = |o| self.foreign_unit(idx, &dwarf, o);
        let mut dt =
            DwarfTypes { module: idx, unit: unit_ref, types, scoped: &mut scoped, table: &table, foreign: &foreign };
        let opts = VariableOptions::default();
        let mut rc = RenderCtx {
            opts: &opts,
            symbol: &symbolize,
            data_symbol: &data_symbol,
            budget: FRAME_READ_BUDGET,
            follow: follow_share(1),
        };
        Some(value_at(die.0, addr, memory, &mut dt, &mut rc).text)
    }
}

/// The unit (its `.debug_info` offset) and DIE of the type named `name`.
fn find_in_units(dwarf: &gimli::Dwarf<Reader>, name: &str) -> Option<(usize, gimli::UnitOffset)> {
    let mut units = dwarf.units();
    let mut seen = 0usize;
    while let Ok(Some(header)) = units.next() {
        let Ok(unit) = dwarf.unit(header) else { continue };
        if let Some(off) = find_type(unit.unit_ref(dwarf), name, &mut seen) {
            return Some((unit.header.offset().0, off));
        }
        if seen > MAX_DIES {
            return None;
        }
    }
    None
}

/// A type DIE (struct, typedef, base, array) named `name` in `unit`.
fn find_type(unit: UnitRef<'_, Reader>, name: &str, seen: &mut usize) -> Option<gimli::UnitOffset> {
    let mut cursor = unit.entries();
    while let Ok(Some(e)) = cursor.next_dfs() {
        *seen += 1;
        if *seen > MAX_DIES {
            return None;
        }
        if !matches!(
            e.tag(),
            gimli::DW_TAG_structure_type | gimli::DW_TAG_typedef | gimli::DW_TAG_base_type | gimli::DW_TAG_array_type
        ) || e.attr_value(gimli::DW_AT_declaration).is_some()
        {
            continue;
        }
        let Some(v) = e.attr_value(gimli::DW_AT_name) else { continue };
        if unit.attr_string(v).ok().is_some_and(|s| s.to_slice().is_ok_and(|b| *b == *name.as_bytes())) {
            return Some(e.offset());
        }
    }
    None
}
