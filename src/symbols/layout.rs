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
    /// The runtime address and size of the symbol-table entry named exactly `name` in
    /// the executable (a language runtime linked into it: Go's). Libraries are not
    /// searched: this runs on every trace, and reading every library's symbol table
    /// would cost each one.
    pub fn symbol_address(&self, name: &str) -> Option<(u64, u64)> {
        use object::{Object, ObjectSymbol};
        (0..self.len()).filter(|&i| self.entries[i].record.is_executable).find_map(|idx| {
            let bias = self.entries[idx].record.load_bias;
            self.symbol_images(idx).into_iter().find_map(|img| {
                let f = object::File::parse(&*img.bytes).ok()?;
                let s = f.symbols().find(|s| s.is_definition() && s.name_bytes().ok() == Some(name.as_bytes()))?;
                Some((s.address().wrapping_add(bias), s.size()))
            })
        })
    }

    /// The runtime address of the symbol `name` of the first module whose file name
    /// starts with `module_prefix` and defines it (dynamic symbols first, then the
    /// symbol table): a library's exported data, such as glibc's `__abort_msg` or
    /// HotSpot's `gHotSpotVMStructs`.
    pub fn module_symbol(&self, module_prefix: &str, name: &str) -> Option<u64> {
        use object::{Object, ObjectSymbol};
        (0..self.len()).find_map(|idx| {
            let record = &self.entries[idx].record;
            let file = record.path.rsplit('/').next().unwrap_or(&record.path);
            if !file.starts_with(module_prefix) {
                return None;
            }
            let img = self.image(idx)?;
            let elf = object::read::elf::ElfFile64::<object::LittleEndian>::parse(&*img.bytes).ok()?;
            let hit = elf
                .dynamic_symbols()
                .chain(elf.symbols())
                .find(|s| s.name().is_ok_and(|n| n == name) && s.address() != 0)?;
            Some(hit.address().wrapping_add(record.load_bias))
        })
    }

    /// For each struct type named in `names`: member name → byte offset (the first
    /// definition in the executable's DWARF), e.g. `runtime.g` → `goid`, `sched` ….
    /// One pass over the DWARF for all of them.
    pub fn struct_members(&self, names: &[&str]) -> HashMap<String, HashMap<String, u64>> {
        let mut found = HashMap::new();
        for idx in (0..self.len()).filter(|&i| self.entries[i].record.is_executable) {
            self.structs_of(idx, names, &mut found);
        }
        found
    }

    fn structs_of(&self, idx: usize, names: &[&str], found: &mut HashMap<String, HashMap<String, u64>>) -> Option<()> {
        {
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
                    if e.tag() != gimli::DW_TAG_structure_type || e.attr_value(gimli::DW_AT_declaration).is_some() {
                        continue;
                    }
                    let Some(name) = e.attr_value(gimli::DW_AT_name).and_then(|v| read_string(uref, v)) else {
                        continue;
                    };
                    if !names.contains(&name.as_str()) || found.contains_key(&name) {
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
                    found.insert(name, out);
                    if found.len() == names.len() {
                        return Some(());
                    }
                }
            }
            Some(())
        }
    }
}
