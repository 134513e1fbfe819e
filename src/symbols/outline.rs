//! Unit outlines: the namespace level of a unit (its subprograms' ranges and the extent
//! of each DIE with children) from one pass that jumps over every other subtree, built
//! once per module and unit (`OutlineStore`) and kept on disk by build id (`indexcache`).

use super::elf::Reader;
use super::indexcache;
use super::linetable::Program;
use super::scopes::{Off, Scopes, push_ranges, push_scope, scope_names, sorted};

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// The namespace level of one unit, from one pass that reads the DIEs of the unit
/// root and of namespaces and jumps over every other subtree (types, function
/// bodies) by DW_AT_sibling: the address ranges of the subprograms found there, and
/// the extent of each DIE with children. Function bodies are never read here.
#[derive(Default)]
pub(crate) struct Outline {
    /// (begin, end, subprogram) sorted by begin; ties keep DIE order.
    pub(crate) functions: Vec<(u64, u64, Off)>,
    /// (start, end, tag, entered) of every DIE with children met at namespace level,
    /// sorted by start; `entered` marks the root and namespaces, whose children are
    /// themselves listed.
    pub(crate) nodes: Vec<(usize, usize, gimli::DwTag, bool)>,
}

/// The outlines and line-program spans of one module's units, each built once and
/// shared by the point lookups and the addr2line path's name cache, and kept on disk
/// by build id (`indexcache`) so that the next trace of the same file skips the pass.
pub(crate) struct OutlineStore {
    cache: Option<indexcache::Key>,
    /// By the unit's `.debug_info` offset; None when the outline pass failed.
    units: Mutex<HashMap<usize, Option<Arc<Outline>>>>,
}

impl OutlineStore {
    pub(crate) fn new(cache: Option<indexcache::Key>) -> OutlineStore {
        OutlineStore { cache, units: Mutex::new(HashMap::new()) }
    }

    /// The outline of `uref`'s unit: from memory, else from the disk cache, else built
    /// (and stored). None when the outline pass fails on malformed DWARF.
    pub(crate) fn get(&self, uref: gimli::UnitRef<'_, Reader>) -> Option<Arc<Outline>> {
        // A split unit's DIEs are its `.dwo`'s, a skeleton's (the same offset, when the
        // `.dwo` could not be had) its own: two outlines, kept apart on disk.
        let split = uref.dwarf.file_type == gimli::DwarfFileType::Dwo;
        let unit = uref.header.offset().0 | if split { 1 << 62 } else { 0 };
        // A panic while building cannot leave a half-made entry: insertion comes last.
        let mut units = self.units.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(o) = units.get(&unit) {
            return o.clone();
        }
        let cached = self.cache.as_ref().and_then(|k| {
            let functions = k.load(indexcache::Kind::Functions, unit)?;
            Outline::decode(uref, &functions, &k.load(indexcache::Kind::Nodes, unit)?)
        });
        let outline = cached.or_else(|| {
            let o = Outline::build(uref)?;
            if let Some(k) = &self.cache {
                let (functions, nodes) = o.encode();
                k.store(indexcache::Kind::Functions, unit, &functions);
                k.store(indexcache::Kind::Nodes, unit, &nodes);
            }
            Some(o)
        });
        let outline = outline.map(Arc::new);
        units.insert(unit, outline.clone());
        outline
    }

    /// The line program of `uref`'s unit split into sequences, the split read from
    /// the disk cache when it holds this unit's.
    pub(crate) fn program(&self, uref: gimli::UnitRef<'_, Reader>) -> Option<Program> {
        let unit = uref.header.offset().0;
        let Some(k) = &self.cache else { return Program::new(uref, None) };
        if let Some(spans) = k.load(indexcache::Kind::LineSpans, unit)
            && let Some(p) = Program::new(uref, Some(&spans))
        {
            return Some(p);
        }
        let p = Program::new(uref, None)?;
        if let Some(spans) = p.encode_spans() {
            k.store(indexcache::Kind::LineSpans, unit, &spans);
        }
        Some(p)
    }
}

/// Reads through the children of the DIE at absolute `depth` whose attributes were
/// just consumed, leaving `raw` at its next sibling (or its parent's end). A
/// malformed entry empties the reader, which ends the outline pass.
fn skip_subtree(raw: &mut gimli::EntriesRaw<'_, Reader>, base: isize, depth: isize, n: &mut usize) {
    while !raw.is_empty() && base + raw.next_depth() > depth && *n < MAX_OUTLINE_DIES {
        *n += 1;
        let ok = match raw.read_abbreviation() {
            Ok(Some(a)) => raw.skip_attributes(a.attributes()).is_ok(),
            Ok(None) => true,
            Err(_) => false,
        };
        if !ok {
            *n = MAX_OUTLINE_DIES;
        }
    }
}

/// Upper bound on DIEs read by one outline pass (corrupt DWARF).
pub(crate) const MAX_OUTLINE_DIES: usize = 50_000_000;

impl Outline {
    pub(crate) fn build(uref: gimli::UnitRef<'_, Reader>) -> Option<Outline> {
        // Reserved up front from the unit's size (about one namespace-level function
        // or node per 128 bytes in template-heavy C++): growing vectors of 100k entries
        // by copying cost more than the reservation, whose untouched pages stay unmapped.
        let guess = uref.header.length_including_self() / 128;
        let mut out = Outline { functions: Vec::with_capacity(guess), nodes: Vec::with_capacity(guess) };
        let mut raw = uref.entries_raw(None).ok()?;
        // EntriesRaw depths are relative to where it started; `base` makes them absolute
        // across the restarts at DW_AT_sibling targets.
        let mut base = 0isize;
        let mut open: Vec<(isize, usize, gimli::DwTag)> = Vec::new();
        let mut n = 0usize;
        while !raw.is_empty() && n < MAX_OUTLINE_DIES {
            let depth = base + raw.next_depth();
            let off = raw.next_offset();
            while open.last().is_some_and(|t| t.0 >= depth) {
                let (_, start, tag) = open.pop()?;
                out.nodes.push((start, off.0, tag, true));
            }
            let Some(abbrev) = raw.read_abbreviation().ok()? else { continue };
            n += 1;
            let tag = abbrev.tag();
            // Declarations (no low_pc, no ranges) are handled like types.
            let is_function = tag == gimli::DW_TAG_subprogram
                && abbrev.attributes().iter().any(|a| matches!(a.name(), gimli::DW_AT_low_pc | gimli::DW_AT_ranges));
            if !is_function && !abbrev.has_children() {
                raw.skip_attributes(abbrev.attributes()).ok()?;
                continue;
            }
            let entered = depth == 0 || matches!(tag, gimli::DW_TAG_namespace | gimli::DW_TAG_module);
            if !is_function && !entered {
                // The common case (a type): skip to DW_AT_sibling in one go and jump.
                let specs = abbrev.attributes();
                let at = specs.iter().position(|a| a.name() == gimli::DW_AT_sibling);
                let sibling = match at {
                    Some(i) => {
                        raw.skip_attributes(&specs[..i]).ok()?;
                        match raw.read_attribute(specs[i]).ok()?.value() {
                            gimli::AttributeValue::UnitRef(o) if o.0 > off.0 => Some(o),
                            _ => None,
                        }
                    }
                    None => None,
                };
                if let Some(s) = sibling {
                    raw = uref.entries_raw(Some(s)).ok()?;
                    base = depth;
                    out.nodes.push((off.0, s.0, tag, false));
                    continue;
                }
                // No usable sibling: finish this DIE's attributes, then read through
                // its subtree below.
                raw.skip_attributes(&specs[at.map_or(0, |i| i + 1)..]).ok()?;
                skip_subtree(&mut raw, base, depth, &mut n);
                out.nodes.push((off.0, raw.next_offset().0, tag, false));
                continue;
            }
            let mut sibling = None;
            let (mut low, mut high, mut size, mut ranges) = (None, None, None, None);
            let specs = abbrev.attributes();
            // Runs of unwanted attributes are skipped in one call (gimli sums fixed sizes).
            let mut skip_from = 0;
            for (i, spec) in specs.iter().enumerate() {
                let wanted = match spec.name() {
                    gimli::DW_AT_sibling => true,
                    gimli::DW_AT_low_pc | gimli::DW_AT_high_pc | gimli::DW_AT_ranges => is_function,
                    _ => false,
                };
                if !wanted {
                    continue;
                }
                raw.skip_attributes(&specs[skip_from..i]).ok()?;
                skip_from = i + 1;
                let attr = raw.read_attribute(*spec).ok()?;
                match (attr.name(), attr.value()) {
                    (gimli::DW_AT_sibling, gimli::AttributeValue::UnitRef(o)) => sibling = Some(o),
                    (gimli::DW_AT_low_pc, v) if tag == gimli::DW_TAG_subprogram => {
                        low = uref.attr_address(v).ok().flatten()
                    }
                    (gimli::DW_AT_high_pc, gimli::AttributeValue::Udata(v)) => size = Some(v),
                    (gimli::DW_AT_high_pc, v) if tag == gimli::DW_TAG_subprogram => {
                        high = uref.attr_address(v).ok().flatten()
                    }
                    (gimli::DW_AT_ranges, v) if tag == gimli::DW_TAG_subprogram => ranges = Some(v),
                    _ => {}
                }
            }
            raw.skip_attributes(&specs[skip_from..]).ok()?;
            if is_function {
                push_ranges(uref, &mut out.functions, off, low, high, size, ranges);
            }
            if !abbrev.has_children() {
                continue;
            }
            if entered {
                open.push((depth, off.0, tag));
                continue;
            }
            // Skip the subtree: jump to the sibling, else read through it.
            match sibling.filter(|s| s.0 > off.0) {
                Some(s) => {
                    raw = uref.entries_raw(Some(s)).ok()?;
                    base = depth;
                    out.nodes.push((off.0, s.0, tag, false));
                }
                None => {
                    skip_subtree(&mut raw, base, depth, &mut n);
                    out.nodes.push((off.0, raw.next_offset().0, tag, false));
                }
            }
        }
        let end = raw.next_offset().0;
        while let Some((_, start, tag)) = open.pop() {
            out.nodes.push((start, end, tag, true));
        }
        out.functions = sorted(out.functions);
        out.nodes.sort_by_key(|n| n.0);
        Some(out)
    }

    /// The outline for `indexcache`: the functions as (begin, length, DIE), then the
    /// nodes as (start, length, `tag | entered << 16`), each list sorted by its first.
    fn encode(&self) -> (indexcache::Writer, indexcache::Writer) {
        let functions = self.functions.iter().map(|&(b, e, off)| [b, e - b, off.0 as u64]);
        let nodes = self
            .nodes
            .iter()
            .map(|&(s, e, tag, entered)| [s as u64, (e - s) as u64, u64::from(tag.0) | u64::from(entered) << 16]);
        (indexcache::Writer::sorted_triples(functions), indexcache::Writer::sorted_triples(nodes))
    }

    /// `encode`'s inverse, checked against the unit: every DIE offset and extent
    /// inside it, every range non-empty. None (the caller rebuilds) on any mismatch.
    fn decode(
        uref: gimli::UnitRef<'_, Reader>,
        functions: &indexcache::Payload,
        nodes: &indexcache::Payload,
    ) -> Option<Outline> {
        let size = uref.header.length_including_self() as u64;
        let functions = functions
            .reader()
            .sorted_triples()?
            .into_iter()
            .map(|[begin, len, off]| {
                let ok = len > 0 && off < size;
                ok.then_some((begin, begin.checked_add(len)?, gimli::UnitOffset(usize::try_from(off).ok()?)))
            })
            .collect::<Option<Vec<_>>>()?;
        let nodes = nodes
            .reader()
            .sorted_triples()?
            .into_iter()
            .map(|[start, len, tag]| {
                let end = start.checked_add(len)?;
                let ok = len > 0 && end <= size && tag >> 17 == 0;
                ok.then_some((start as usize, end as usize, gimli::DwTag(tag as u16), tag >> 16 == 1))
            })
            .collect::<Option<Vec<_>>>()?;
        Some(Outline { functions, nodes })
    }

    /// `scope_names` with the namespace level read from the outline: the path walk
    /// only runs inside the innermost skipped DIE holding the target, if any.
    pub(crate) fn scope_names(&self, uref: gimli::UnitRef<'_, Reader>, target: Off) -> Option<Scopes> {
        let upper = self.nodes.partition_point(|n| n.0 < target.0);
        // Nested extents: those holding the target, outermost first.
        let holding: Vec<_> = self.nodes[..upper].iter().filter(|n| target.0 < n.1).collect();
        let mut scopes = Scopes::default();
        for n in &holding {
            push_scope(uref, &mut scopes, gimli::UnitOffset(n.0), n.2);
        }
        match holding.last() {
            Some(n) if !n.3 => scope_names(uref, scopes, Some(gimli::UnitOffset(n.0)), target),
            _ => Some(scopes),
        }
    }
}
