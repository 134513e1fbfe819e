//! DWARF symbolization through addr2line: a lazily built `Context` per module over
//! mmap'ed (or, when SHF_COMPRESSED, decompressed) sections. Only the sections that
//! line and function lookups need are loaded; location lists, macros, type units and
//! name indexes are never touched, so never decompressed.

use super::elf::{Image, Reader, SharedBytes};
use gimli::Reader as _;
use std::collections::HashMap;
use std::sync::Arc;

pub(crate) use super::SourceFrame;

pub(crate) type Context = addr2line::Context<Reader>;

fn needed(id: gimli::SectionId) -> bool {
    use gimli::SectionId::*;
    matches!(
        id,
        DebugAbbrev
            | DebugAddr
            | DebugAranges
            | DebugInfo
            | DebugLine
            | DebugLineStr
            | DebugRanges
            | DebugRngLists
            | DebugStr
            | DebugStrOffsets
    )
}

/// Loads the DWARF sections of `image` (the module or its debug file) for a module's
/// lookups; the addr2line context over them is built only when a lookup needs it.
pub(crate) fn context(
    image: &Image,
    sup: Option<&Image>,
    outlines: Arc<super::lookup::OutlineStore>,
) -> Result<(LazyContext, NameCache), String> {
    let mut dwarf = load_dwarf(image)?;
    if let Some(sup) = sup {
        // dwz: DIEs and strings shared between binaries live in a supplementary file.
        dwarf.set_sup(load_dwarf(sup)?);
    }
    let dwarf = std::sync::Arc::new(dwarf);
    let scopes = ScopeCache { store: Some(outlines), ..Default::default() };
    Ok((LazyContext::default(), NameCache { dwarf: Some(dwarf), scopes, ..Default::default() }))
}

/// A module's addr2line context, built on first use. Building it parses the header
/// and root DIE of every unit (tens of milliseconds for libc), which the point
/// lookups that answer most frames never need; only their fallbacks do.
/// Why it could not be built is kept until the module set collects its problems.
#[derive(Default)]
pub(crate) struct LazyContext {
    ctx: Option<Option<Context>>,
    failure: Option<String>,
}

impl LazyContext {
    /// The context over `names`' sections; None when they do not make one.
    pub(crate) fn get(&mut self, names: &NameCache) -> Option<&Context> {
        let failure = &mut self.failure;
        self.ctx
            .get_or_insert_with(|| {
                let d = names.dwarf.as_ref()?;
                Context::from_arc_dwarf(d.clone()).map_err(|e| *failure = Some(e.to_string())).ok()
            })
            .as_ref()
    }

    /// Why the context could not be built, once.
    pub(crate) fn take_failure(&mut self) -> Option<String> {
        self.failure.take()
    }
}

pub(crate) fn load_dwarf(image: &Image) -> Result<gimli::Dwarf<Reader>, String> {
    use gimli::SectionId::*;
    let ids = [
        DebugAbbrev,
        DebugAddr,
        DebugAranges,
        DebugInfo,
        DebugLine,
        DebugLineStr,
        DebugRanges,
        DebugRngLists,
        DebugStr,
        DebugStrOffsets,
    ];
    debug_assert!(ids.iter().all(|id| needed(*id)));
    // Compressed sections (distribution debug files are zlib-compressed) are inflated in
    // parallel: inflating .debug_info dominates the cost of a first lookup in libc.
    let names: Vec<&str> = ids.iter().map(|id| id.name()).collect();
    let compressed = image.compressed(&names);
    let loaded: Vec<(gimli::SectionId, Option<SharedBytes>)> = std::thread::scope(|s| {
        let handles: Vec<_> = ids
            .iter()
            .filter(|id| compressed.contains(&id.name()))
            .map(|&id| (id, s.spawn(move || super::seccache::section_data(image, id.name()))))
            .collect();
        let mut out: Vec<_> = ids
            .iter()
            .filter(|id| !compressed.contains(&id.name()))
            .map(|&id| (id, super::seccache::section_data(image, id.name())))
            .collect();
        out.extend(handles.into_iter().map(|(id, h)| (id, h.join().ok().flatten())));
        out
    });
    let empty = SharedBytes::owned(Vec::new());
    let load = |id: gimli::SectionId| -> Result<Reader, gimli::Error> {
        let bytes = loaded.iter().find(|(i, _)| *i == id).and_then(|(_, b)| b.clone());
        Ok(Reader::new(bytes.unwrap_or_else(|| empty.clone()), gimli::LittleEndian))
    };
    let mut dwarf = gimli::Dwarf::load(load).map_err(|e| e.to_string())?;
    // Units that share an abbreviation table (common with dwz and some linkers) parse it once.
    dwarf.populate_abbreviations_cache(gimli::AbbreviationsCacheStrategy::Duplicates);
    Ok(dwarf)
}

/// The source frames at link-time address `probe`; empty when DWARF has nothing.
///
/// Function names are gdb's: the DIE's `DW_AT_name` qualified by its enclosing
/// namespaces and classes (`pipeline::reduce<long int, …>`, `std::panicking::panic_handler`),
/// not the demangled linkage name (which adds return types and parameter lists, and
/// for Rust may name an export alias such as `rust_begin_unwind`). The linkage name
/// (demangled) is the fallback when the DIE tree cannot be followed.
pub(crate) fn frames(ctx: &Context, names: &mut NameCache, probe: u64) -> Vec<SourceFrame> {
    let mut out = Vec::new();
    let unit = ctx.find_dwarf_and_unit(probe).skip_all_loads();
    let Ok(mut iter) = ctx.find_frames(probe).skip_all_loads() else { return out };
    while let Ok(Some(f)) = iter.next() {
        let qualified = match (unit, f.dw_die_offset) {
            (Some(u), Some(off)) => {
                let key = (u.unit.header.offset().0, off.0);
                match names.names.get(&key) {
                    Some(n) => n.clone(),
                    None => {
                        let n = super::lookup::qualified_name(u, off, |t| Some(names.scopes.scopes(u, t)));
                        names.names.insert(key, n.clone());
                        n
                    }
                }
            }
            _ => None,
        };
        let function = qualified
            .or_else(|| f.function.as_ref().and_then(|n| n.raw_name().ok()).map(|n| super::names::function_name(&n)));
        let (file, line, column) = match &f.location {
            Some(l) => (l.file.map(str::to_string), l.line, l.column.filter(|c| *c > 0)),
            None => (None, None, None),
        };
        let mut sf = SourceFrame { function, file, line, column };
        if out.is_empty() {
            // The innermost location comes from the line table: use gdb's choice of row.
            if let Some(u) = unit {
                let key = u.unit.header.offset().0;
                let lines = names.lines.entry(key).or_insert_with(|| super::lines::UnitLines::build(u));
                if let Some((file, line)) = lines.lookup(probe) {
                    if sf.file.as_deref() != Some(file) || sf.line != Some(line) {
                        sf.column = None;
                    }
                    sf.file = Some(file.to_string());
                    sf.line = Some(line);
                }
            }
        }
        out.push(sf);
        // A corrupt DIE tree must not make us loop: the inline depth is tiny in practice.
        if out.len() >= 256 {
            break;
        }
    }
    out
}

/// Qualified names already computed, by (unit offset, DIE offset), and the scope
/// outline of each unit that needed one.
#[derive(Default)]
pub(crate) struct NameCache {
    names: HashMap<(usize, usize), Option<String>>,
    scopes: ScopeCache,
    /// gdb-style line tables of the units looked up so far.
    lines: HashMap<usize, super::lines::UnitLines>,
    /// Types parsed for variable values, per unit.
    types: super::types::TypeCache,
    /// The sections the context reads (for walking units when looking up globals).
    pub(crate) dwarf: Option<std::sync::Arc<gimli::Dwarf<Reader>>>,
    /// DW_AT_frame_base of functions, by (unit offset, function DIE offset).
    pub(crate) frame_bases: HashMap<(usize, usize), Option<gimli::Expression<Reader>>>,
}

impl NameCache {
    /// The scope outlines, for qualified names.
    pub(crate) fn scopes_mut(&mut self) -> &mut ScopeCache {
        &mut self.scopes
    }

    /// The type cache and the scope cache, borrowed together.
    pub(crate) fn types_and_scopes(&mut self) -> (&mut super::types::TypeCache, &mut ScopeCache) {
        (&mut self.types, &mut self.scopes)
    }
}

/// `name` (of the DIE at `off`) prefixed with its enclosing namespaces and classes.
pub(crate) fn scoped_name(
    unit: gimli::UnitRef<'_, Reader>,
    off: usize,
    name: String,
    scopes: &mut ScopeCache,
) -> String {
    let parts = scopes.names(unit, gimli::UnitOffset(off));
    if parts.is_empty() {
        return name;
    }
    format!("{}::{name}", parts.join("::"))
}

/// Per unit (by `.debug_info` offset), what qualifying names needs: the unit's
/// outline (`lookup::Outline`: the namespace level, read with sibling jumps), and —
/// only if a path walk ever fails on malformed DWARF — the full scope index, whose
/// answer is then used so that names stay what the whole-unit scan gave.
#[derive(Default)]
pub(crate) struct ScopeCache {
    units: HashMap<usize, UnitScopes>,
    /// The module's outlines, shared with its point-lookup index.
    store: Option<Arc<super::lookup::OutlineStore>>,
}

#[derive(Default)]
struct UnitScopes {
    /// Built at the first name of the unit; `Some(None)` when the outline pass failed
    /// (then every name of the unit comes from the scope index).
    outline: Option<Option<Arc<super::lookup::Outline>>>,
    index: Option<ScopeIndex>,
}

impl ScopeCache {
    /// Names of the scope DIEs (namespaces, classes, structs, unions) that strictly
    /// enclose the DIE at `off`, outermost first. The DIE itself is never included,
    /// even when it is a scope.
    fn names(&mut self, unit: gimli::UnitRef<'_, Reader>, off: gimli::UnitOffset<usize>) -> Vec<String> {
        self.scopes(unit, off).names
    }

    /// The scopes enclosing the DIE at `off` (see `lookup::Scopes`).
    fn scopes(&mut self, unit: gimli::UnitRef<'_, Reader>, off: gimli::UnitOffset<usize>) -> super::lookup::Scopes {
        let key = unit.unit.header.offset().0;
        let entry = self.units.entry(key).or_default();
        if entry.index.is_none() {
            let store = &self.store;
            let outline = entry.outline.get_or_insert_with(|| match store {
                Some(s) => s.get(unit),
                None => super::lookup::Outline::build(unit).map(Arc::new),
            });
            if let Some(scopes) = outline.as_ref().and_then(|o| o.scope_names(unit, off)) {
                return scopes;
            }
        }
        // No outline, or the DIE path could not be followed (the offset is not a DIE
        // of this unit's tree, or the tree is malformed): use the whole-unit scan, once per unit.
        let index = entry.index.get_or_insert_with(|| scope_index(unit).unwrap_or_default());
        // Ranges are sorted by start and nested, so the enclosing ones come outermost first.
        let mut scopes = super::lookup::Scopes::default();
        for (_, _, name) in index.iter().take_while(|r| r.0 < off.0).filter(|r| off.0 < r.1) {
            match name {
                Some(n) => scopes.names.push(n.clone()),
                None => scopes.local = true,
            }
        }
        scopes
    }
}

/// Variable DIEs (and whether each is a parameter or a local) in scope at a pc.
pub(crate) type ScopeVars = std::sync::Arc<Vec<super::location::VarPlan>>;

/// The scope DIEs (namespaces, classes, structs, unions) of one unit as offset
/// ranges `[start, end)` covering their subtrees, with their names; None marks a
/// DIE that makes what it holds local (a function, an unnamed class).
pub(crate) type ScopeIndex = Vec<(usize, usize, Option<String>)>;

/// One raw pass over a unit's DIEs (attributes skipped except scope names): the
/// fallback of `ScopeCache::names` when the outline's DIE path cannot be followed.
/// Gives the same scopes as the path walk on a well-formed tree (same tags, same
/// anonymous-namespace and local rules; scopes without children enclose nothing).
fn scope_index(unit: gimli::UnitRef<'_, Reader>) -> gimli::Result<ScopeIndex> {
    let mut raw = unit.entries_raw(None)?;
    let mut open: Vec<(isize, usize, Option<String>)> = Vec::new();
    let mut out = Vec::new();
    while !raw.is_empty() {
        let depth = raw.next_depth();
        let off = raw.next_offset().0;
        while open.last().is_some_and(|top| top.0 >= depth) {
            if let Some((_, start, name)) = open.pop() {
                out.push((start, off, name));
            }
        }
        let Some(abbrev) = raw.read_abbreviation()? else { continue };
        let tag = abbrev.tag();
        let is_scope = matches!(
            tag,
            gimli::DW_TAG_namespace
                | gimli::DW_TAG_class_type
                | gimli::DW_TAG_structure_type
                | gimli::DW_TAG_union_type
        );
        if tag == gimli::DW_TAG_subprogram && abbrev.has_children() {
            // A function: what it holds is local (None), its name is no scope.
            raw.skip_attributes(abbrev.attributes())?;
            open.push((depth, off, None));
        } else if is_scope && abbrev.has_children() {
            let mut name = None;
            for spec in abbrev.attributes() {
                let attr = raw.read_attribute(*spec)?;
                if attr.name() == gimli::DW_AT_name {
                    name = unit
                        .attr_string(attr.value())
                        .ok()
                        .and_then(|r| r.to_string_lossy().ok().map(|c| c.into_owned()));
                }
            }
            if name.is_none() && tag == gimli::DW_TAG_namespace {
                name = Some("(anonymous namespace)".into());
            }
            open.push((depth, off, name));
        } else {
            raw.skip_attributes(abbrev.attributes())?;
        }
    }
    for (_, start, name) in open {
        out.push((start, usize::MAX, name));
    }
    out.sort_by_key(|r| r.0);
    Ok(out)
}

/// True when DWARF describes a tail call whose return pc would be `after` (the address
/// right after a `jmp`): a `DW_TAG_call_site` (or GNU's pre-DWARF-5 tag) with the
/// tail-call flag, inside the function containing `after - 1`. gdb builds tail-call
/// frames only from this information, so the unwinder asks before adding one.
/// True when a call site (a tail call when `tail`) returns to `after`.
pub(crate) fn is_call_site(ctx: &Context, after: u64, tail: bool) -> bool {
    let probe = after.wrapping_sub(1);
    let Some(unit) = ctx.find_dwarf_and_unit(probe).skip_all_loads() else { return false };
    let Ok(mut iter) = ctx.find_frames(probe).skip_all_loads() else { return false };
    let mut function = None;
    while let Ok(Some(f)) = iter.next() {
        function = f.dw_die_offset.or(function);
    }
    let Some(function) = function else { return false };
    super::lookup::has_call_site(unit, function, after, tail, &|o| super::lookup::other_unit(unit, o))
}
