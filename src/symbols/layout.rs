//! Lookups by name for readers of a language runtime's own data (the Go runtime's
//! goroutine list): where a symbol is, and the member offsets of a struct type as
//! DWARF describes it, so no runtime version's layout is written down in bt.

use super::ModuleSet;
use super::scopes::read_string;
use gimli::Reader as _;
use std::collections::HashMap;

/// Most DIEs visited looking for one struct (corrupt DWARF must not run forever).
const MAX_DIES: usize = 20_000_000;

impl ModuleSet {
    /// The runtime address and size of the symbol-table entry named exactly `name`, in
    /// the first module that defines it.
    pub fn symbol_address(&self, name: &str) -> Option<(u64, u64)> {
        use object::{Object, ObjectSymbol};
        (0..self.len()).find_map(|idx| {
            let bias = self.entries[idx].record.load_bias;
            self.symbol_images(idx).into_iter().find_map(|img| {
                let f = object::File::parse(&*img.bytes).ok()?;
                let s = f.symbols().find(|s| s.is_definition() && s.name_bytes().ok() == Some(name.as_bytes()))?;
                Some((s.address().wrapping_add(bias), s.size()))
            })
        })
    }

    /// The data symbol at or around a runtime address (`type.runtime.errorString`).
    pub fn data_symbol(&self, addr: u64) -> Option<String> {
        self.data_name(addr)
    }

    /// Member name → byte offset of the struct type named `name` (the first
    /// definition found in any module's DWARF), e.g. `runtime.g` → `goid`, `sched` ….
    pub fn struct_members(&self, name: &str) -> Option<HashMap<String, u64>> {
        (0..self.len()).find_map(|idx| {
            let ctx = self.dwarf(idx)?;
            let guard = ctx.lock().ok()?;
            let dwarf = guard.1.dwarf.clone()?;
            let mut units = dwarf.units();
            let mut seen = 0usize;
            while let Ok(Some(header)) = units.next() {
                let Ok(unit) = dwarf.unit(header) else { continue };
                let uref = unit.unit_ref(&dwarf);
                let mut cursor = uref.entries();
                while let Ok(Some(e)) = cursor.next_dfs() {
                    seen += 1;
                    if seen > MAX_DIES {
                        return None;
                    }
                    if e.tag() != gimli::DW_TAG_structure_type
                        || e.attr_value(gimli::DW_AT_declaration).is_some()
                        || e.attr_value(gimli::DW_AT_name).and_then(|v| read_string(uref, v)).as_deref() != Some(name)
                    {
                        continue;
                    }
                    let mut out = HashMap::new();
                    let mut tree = uref.entries_tree(Some(e.offset())).ok()?;
                    let root = tree.root().ok()?;
                    let mut children = root.children();
                    while let Ok(Some(child)) = children.next() {
                        let c = child.entry();
                        if c.tag() != gimli::DW_TAG_member {
                            continue;
                        }
                        let Some(member) = c.attr_value(gimli::DW_AT_name).and_then(|v| read_string(uref, v)) else {
                            continue;
                        };
                        let offset = match c.attr_value(gimli::DW_AT_data_member_location) {
                            Some(gimli::AttributeValue::Exprloc(x)) => {
                                // DWARF 2: DW_OP_plus_uconst N.
                                let mut r = x.0.clone();
                                match (r.read_u8(), r.read_uleb128()) {
                                    (Ok(0x23), Ok(n)) => n,
                                    _ => continue,
                                }
                            }
                            Some(v) => match v.udata_value() {
                                Some(n) => n,
                                None => continue,
                            },
                            None => 0,
                        };
                        out.insert(member, offset);
                    }
                    return Some(out);
                }
            }
            None
        })
    }
}
