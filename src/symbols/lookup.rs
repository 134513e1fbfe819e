//! Point lookups in one module's DWARF that touch only what a pc needs: the unit from
//! `.debug_aranges` (or the unit's own ranges), then the DIE path to the pc — children
//! that cannot hold it are skipped by `DW_AT_sibling` — giving the subprogram and its
//! chain of inlined subroutines; the line from the one line-program sequence holding
//! the pc (`linetable`). No per-unit function table and no whole line table is built.
//!
//! Output is the same as `dwarf::frames` (addr2line's frames with gdb's names and rows).
//! Where this reader cannot be sure of giving the same answer (a unit without known
//! ranges, a name that lives in a dwz supplementary file), it answers
//! [`Fallback`] and the caller asks addr2line, which is exact but reads whole units.

use super::SourceFrame;
use super::elf::Reader;

use super::linetable::Program;
pub(crate) use super::outline::{MAX_OUTLINE_DIES, Outline, OutlineStore};
use super::split::{Parsed, SplitFiles};
use std::collections::HashMap;
use std::sync::Arc;

/// This reader cannot answer exactly; use the addr2line path.
#[derive(Debug)]
pub(crate) struct Fallback;

pub(crate) use super::scopes::{MAX_DEPTH, Off, Scopes, push_ranges, qualified_name, read_string, scope_names, sorted};

/// Bounds that keep corrupt DWARF from making a lookup spin or recurse without end.
const MAX_UNITS: usize = 4_000_000;
const MAX_LINKS: usize = 16;

/// The lookup state of one module: section readers, the unit index, and what
/// earlier lookups parsed (units, line-program sequences, names).
pub(crate) struct Index {
    dwarf: Arc<gimli::Dwarf<Reader>>,
    /// Unit headers in section order (so sorted by offset).
    headers: Vec<gimli::UnitHeader<Reader>>,
    /// Parsed units (abbreviations, root attributes, line-program header), by index;
    /// a skeleton's split unit in its place (`split`).
    units: Vec<Option<Arc<Parsed>>>,
    split: Arc<SplitFiles>,
    /// Unit address ranges `[begin, end)` sorted by begin, with the unit index.
    ranges: Vec<(u64, u64, usize)>,
    /// Some compile unit has no known ranges: a pc outside `ranges` may still be in it.
    incomplete: bool,
    programs: HashMap<usize, Option<Program>>,
    /// Namespace-level outlines, shared with the addr2line path's name cache.
    store: Arc<OutlineStore>,
    /// The outlines of the units looked up so far, by unit index (empty when the
    /// outline pass failed).
    outlines: HashMap<usize, Arc<Outline>>,
    /// Every subprogram of a unit at any depth (see `all_functions`), by unit index,
    /// built when the outline had no function for a pc.
    nested: HashMap<usize, Vec<(u64, u64, Off)>>,
    /// Function names by (unit index, DIE offset).
    names: HashMap<(usize, usize), Option<String>>,
}

/// One inlined subroutine on the path to a pc, with its call site.
struct Inlined {
    die: Off,
    call_file: Option<u64>,
    call_line: u32,
    call_column: u32,
}

pub(crate) fn contains(
    unit: gimli::UnitRef<'_, Reader>,
    e: &gimli::DebuggingInformationEntry<Reader>,
    probe: u64,
) -> bool {
    let Ok(mut ranges) = unit.die_ranges(e) else { return false };
    while let Ok(Some(r)) = ranges.next() {
        if r.begin <= probe && probe < r.end {
            return true;
        }
    }
    false
}

impl Index {
    /// Loads the sections (inflating compressed ones) and indexes unit ranges:
    /// `.debug_aranges` where it covers a unit, else the unit's root DIE ranges.
    pub(crate) fn new(dwarf: gimli::Dwarf<Reader>, store: Arc<OutlineStore>, split: Arc<SplitFiles>) -> Index {
        let mut headers = Vec::new();
        let mut iter = dwarf.units();
        while let Ok(Some(h)) = iter.next() {
            headers.push(h);
            if headers.len() >= MAX_UNITS {
                break;
            }
        }
        let mut ix = Index {
            units: vec![None; headers.len()],
            headers,
            dwarf: Arc::new(dwarf),
            ranges: Vec::new(),
            incomplete: false,
            programs: HashMap::new(),
            store,
            outlines: HashMap::new(),
            nested: HashMap::new(),
            names: HashMap::new(),
            split,
        };
        let mut covered = vec![false; ix.headers.len()];
        let mut aranges = ix.dwarf.debug_aranges.headers();
        while let Ok(Some(h)) = aranges.next() {
            let Some(ui) = ix.unit_at(h.debug_info_offset().0) else { continue };
            let mut entries = h.entries();
            while let Ok(Some(e)) = entries.next() {
                let r = e.range();
                if r.begin < r.end {
                    ix.ranges.push((r.begin, r.end, ui));
                    covered[ui] = true;
                }
            }
        }
        for ui in (0..ix.headers.len()).filter(|&ui| !covered[ui]) {
            // A skeleton's ranges are its split unit's: no `.dwo` is opened here.
            let Ok(unit) = ix.dwarf.unit(ix.headers[ui].clone()) else { continue };
            let uref = unit.unit_ref(&ix.dwarf);
            let before = ix.ranges.len();
            if let Ok(mut rs) = uref.unit_ranges() {
                while let Ok(Some(r)) = rs.next() {
                    if r.begin < r.end {
                        ix.ranges.push((r.begin, r.end, ui));
                    }
                }
            }
            if ix.ranges.len() == before {
                // A compile unit with children but no ranges may still hold code
                // (addr2line then scans its functions); partial and type units do not.
                let mut cursor = uref.entries();
                if let Ok(Some(root)) = cursor.next_dfs()
                    && root.tag() == gimli::DW_TAG_compile_unit
                    && root.has_children()
                {
                    ix.incomplete = true;
                }
            }
        }
        ix.ranges.sort_unstable();
        ix
    }

    /// Index of the unit whose header starts at `.debug_info` offset `off`.
    fn unit_at(&self, off: usize) -> Option<usize> {
        let i = self.headers.partition_point(|h| h.offset().0 < off);
        (self.headers.get(i)?.offset().0 == off).then_some(i)
    }

    /// Index of the unit whose bytes contain `.debug_info` offset `off`.
    fn unit_containing(&self, off: usize) -> Option<usize> {
        let i = self.headers.partition_point(|h| h.offset().0 <= off);
        i.checked_sub(1)
    }

    /// The unit holding `.debug_info` offset `o`, and `o` within it.
    fn die_at(&self, o: gimli::DebugInfoOffset) -> Option<(usize, Off)> {
        let ui = self.unit_containing(o.0)?;
        Some((ui, gimli::UnitOffset(o.0 - self.headers[ui].offset().0)))
    }

    fn unit(&mut self, ui: usize) -> Option<Arc<Parsed>> {
        if self.units[ui].is_none() {
            let unit = self.split.parse(&self.dwarf, self.headers[ui].clone())?;
            self.units[ui] = Some(Arc::new(unit));
        }
        self.units[ui].clone()
    }

    /// Units whose ranges hold `probe`, in unit order (as addr2line tries them).
    fn candidates(&self, probe: u64) -> Vec<usize> {
        let upper = self.ranges.partition_point(|r| r.0 <= probe);
        let mut out: Vec<usize> = self.ranges[..upper].iter().filter(|r| probe < r.1).map(|r| r.2).collect();
        out.sort_unstable();
        out.dedup();
        out
    }

    /// The source frames at link-time address `probe`, innermost first (empty when no
    /// unit holds it), as `dwarf::frames` gives them.
    pub(crate) fn frames(&mut self, probe: u64) -> Result<Vec<SourceFrame>, Fallback> {
        let cands = self.candidates(probe);
        if cands.is_empty() {
            return if self.incomplete { Err(Fallback) } else { Ok(Vec::new()) };
        }
        // addr2line takes the first unit holding a function for the pc, else the first
        // unit with a line row for it.
        let mut location_only = None;
        for &ui in &cands {
            let Some(unit) = self.unit(ui) else { continue };
            let dwarf = self.dwarf.clone();
            let uref = unit.unit_ref(&dwarf);
            let Some(function) = self.function_at(ui, uref, probe) else {
                if location_only.is_none()
                    && let Some(loc) = self.location(ui, uref, probe)
                {
                    location_only = Some(loc);
                }
                continue;
            };
            let chain = inline_chain(uref, function, probe);
            let mut out = Vec::with_capacity(chain.len() + 1);
            // Innermost first: its location is the line row; each outer frame's is the
            // call site of the frame inside it.
            let mut dies: Vec<Off> = chain.iter().rev().map(|i| i.die).collect();
            dies.push(function);
            let inner = self.location(ui, uref, probe);
            for (k, die) in dies.iter().enumerate() {
                let function = self.function_name(ui, uref, *die)?;
                let mut sf = SourceFrame { function, ..Default::default() };
                if k == 0 {
                    if let Some(loc) = &inner {
                        sf.file = loc.file.clone();
                        sf.line = loc.line;
                        sf.column = loc.column;
                    }
                } else {
                    let site = &chain[chain.len() - k];
                    sf.line = (site.call_line != 0).then_some(site.call_line);
                    sf.column = (site.call_column != 0).then_some(site.call_column);
                    sf.file = site.call_file.and_then(|f| {
                        let header = uref.line_program.as_ref()?.header();
                        super::lines::file_path(uref, header, f)
                    });
                }
                out.push(sf);
            }
            return Ok(out);
        }
        Ok(location_only.map(|sf| vec![sf]).unwrap_or_default())
    }

    /// The subprogram DIE whose ranges hold `probe`: from the unit's outline, else
    /// (nested functions such as lambdas, definitions inside types) from the list of
    /// all its functions, built on the first such miss.
    fn function_at(&mut self, ui: usize, uref: gimli::UnitRef<'_, Reader>, probe: u64) -> Option<Off> {
        let store = &self.store;
        let outline = self.outlines.entry(ui).or_insert_with(|| store.get(uref).unwrap_or_default());
        if let Some(f) = pick(&outline.functions, probe) {
            return Some(f);
        }
        let all = self.nested.entry(ui).or_insert_with(|| all_functions(uref));
        pick(all, probe)
    }

    /// The innermost frame's location: the raw row, replaced by gdb's choice of row
    /// when it has one (the column is dropped when gdb's row differs).
    fn location(&mut self, ui: usize, uref: gimli::UnitRef<'_, Reader>, probe: u64) -> Option<SourceFrame> {
        let store = &self.store;
        let program = self.programs.entry(ui).or_insert_with(|| store.program(uref)).as_mut()?;
        let loc = program.lookup(uref, probe)?;
        let mut sf = SourceFrame { function: None, file: loc.file, line: loc.line, column: loc.column };
        if let Some((file, line)) = loc.gdb {
            if sf.file.as_deref() != Some(file.as_str()) || sf.line != Some(line) {
                sf.column = None;
            }
            sf.file = Some(file);
            sf.line = Some(line);
        }
        Some(sf)
    }

    /// gdb's name for the function DIE at `die` (see `dwarf::frames`): the qualified
    /// `DW_AT_name`, else addr2line's (demangled linkage name or plain name).
    fn function_name(
        &mut self,
        ui: usize,
        uref: gimli::UnitRef<'_, Reader>,
        die: Off,
    ) -> Result<Option<String>, Fallback> {
        self.function_name_within(ui, uref, die, MAX_LINKS)
    }

    /// [`Self::function_name`], following at most `budget` links into other units.
    fn function_name_within(
        &mut self,
        ui: usize,
        uref: gimli::UnitRef<'_, Reader>,
        die: Off,
        budget: usize,
    ) -> Result<Option<String>, Fallback> {
        if let Some(n) = self.names.get(&(ui, die.0)) {
            return Ok(n.clone());
        }
        let outline = self.outlines.get(&ui);
        let scopes = |target| match outline {
            // An empty outline is a failed pass: walk the DIE path from the root.
            Some(o) if !o.nodes.is_empty() => o.scope_names(uref, target),
            _ => scope_names(uref, Scopes::default(), None, target),
        };
        let name = match qualified_name(uref, die, scopes) {
            Some(n) => Some(n),
            None => {
                // An inlined function whose abstract DIE is in another unit (Rust's
                // codegen units, LTO): named there as gdb names it, from its scopes.
                let there = match self.origin_in_other_unit(uref, die).filter(|_| budget > 0) {
                    Some((other, off)) => match self.unit(other) {
                        Some(unit) => {
                            let dwarf = self.dwarf.clone();
                            self.function_name_within(other, unit.unit_ref(&dwarf), off, budget - 1)?
                        }
                        None => None,
                    },
                    None => None,
                };
                match there {
                    Some(n) => Some(n),
                    None => self.plain_name(ui, die, MAX_LINKS)?.map(|raw| super::names::function_name(&raw)),
                }
            }
        };
        self.names.insert((ui, die.0), name.clone());
        Ok(name)
    }

    /// The DIE in another unit that `die`'s abstract origin or specification chain
    /// reaches (as unit index and offset in it), when it leaves this unit before any
    /// linkage name (one here is what gdb names the function from, as `plain_name`).
    fn origin_in_other_unit(&self, uref: gimli::UnitRef<'_, Reader>, die: Off) -> Option<(usize, Off)> {
        if is_split(uref) {
            return None;
        }
        let mut target = die;
        for _ in 0..MAX_LINKS {
            let e = uref.entry(target).ok()?;
            if e.attr_value(gimli::DW_AT_linkage_name)
                .or_else(|| e.attr_value(gimli::DW_AT_MIPS_linkage_name))
                .is_some()
            {
                return None;
            }
            match e.attr_value(gimli::DW_AT_abstract_origin).or_else(|| e.attr_value(gimli::DW_AT_specification))? {
                gimli::AttributeValue::UnitRef(o) => target = o,
                gimli::AttributeValue::DebugInfoRef(o) => return self.die_at(o),
                _ => return None,
            }
        }
        None
    }

    /// addr2line's name of a DIE: its linkage name, else its name, else those of the
    /// DIE its abstract origin or specification names (also in another unit).
    fn plain_name(&mut self, ui: usize, die: Off, budget: usize) -> Result<Option<String>, Fallback> {
        if budget == 0 {
            return Ok(None);
        }
        let Some(unit) = self.unit(ui) else { return Ok(None) };
        let dwarf = self.dwarf.clone();
        let uref = unit.unit_ref(&dwarf);
        let Ok(e) = uref.entry(die) else { return Ok(None) };
        for at in [gimli::DW_AT_linkage_name, gimli::DW_AT_MIPS_linkage_name, gimli::DW_AT_name] {
            if let Some(n) = e.attr_value(at).and_then(|v| read_string(uref, v)) {
                return Ok(Some(n));
            }
        }
        let link = e.attr_value(gimli::DW_AT_abstract_origin).or_else(|| e.attr_value(gimli::DW_AT_specification));
        match link {
            Some(gimli::AttributeValue::UnitRef(o)) => self.plain_name(ui, o, budget - 1),
            // A split unit's offsets are not the module's (see `split`).
            Some(gimli::AttributeValue::DebugInfoRef(_)) if is_split(uref) => Ok(None),
            Some(gimli::AttributeValue::DebugInfoRef(o)) => match self.die_at(o) {
                Some((other, off)) => self.plain_name(other, off, budget - 1),
                None => Ok(None),
            },
            // The name lives in the dwz supplementary file: addr2line reads it there.
            Some(gimli::AttributeValue::DebugInfoRefSup(_)) => Err(Fallback),
            _ => Ok(None),
        }
    }

    /// The unit and subprogram holding `probe`: the first candidate unit whose outline
    /// has a function there.
    fn function_unit(&mut self, probe: u64) -> Result<Option<(usize, Arc<Parsed>, Off)>, Fallback> {
        let cands = self.candidates(probe);
        if cands.is_empty() && self.incomplete {
            return Err(Fallback);
        }
        for ui in cands {
            let Some(unit) = self.unit(ui) else { continue };
            let dwarf = self.dwarf.clone();
            let Some(function) = self.function_at(ui, unit.unit_ref(&dwarf), probe) else { continue };
            return Ok(Some((ui, unit, function)));
        }
        Ok(None)
    }

    /// The DIEs of the frames at `probe`, innermost first (the subprogram last), with
    /// the `.debug_info` offset of their unit — what variable capture walks. None when
    /// no function holds the probe.
    pub(crate) fn frame_dies(&mut self, probe: u64) -> Result<Option<(usize, Vec<Off>)>, Fallback> {
        let Some((ui, unit, function)) = self.function_unit(probe)? else { return Ok(None) };
        let uref = unit.unit_ref(&self.dwarf);
        let mut dies: Vec<Off> = inline_chain(uref, function, probe).iter().rev().map(|i| i.die).collect();
        dies.push(function);
        Ok(Some((self.headers[ui].offset().0, dies)))
    }

    /// True when a `DW_TAG_call_site` (a tail call when `tail`) returns to `after`
    /// inside the function holding `after - 1`.
    pub(crate) fn is_call_site(&mut self, after: u64, tail: bool) -> Result<bool, Fallback> {
        let Some((_, unit, function)) = self.function_unit(after.wrapping_sub(1))? else { return Ok(false) };
        let uref = unit.unit_ref(&self.dwarf);
        Ok(has_call_site(uref, function, after, tail, &|o| self.unit_holding(uref, o)))
    }

    /// The unit holding `.debug_info` offset `o` (parsed) and `o` inside it, found by
    /// its header among the sorted ones (an LTO build's call sites name DIEs of other
    /// units, and big programs have thousands of units).
    fn unit_holding(
        &self,
        uref: gimli::UnitRef<'_, Reader>,
        o: gimli::DebugInfoOffset<usize>,
    ) -> Option<(gimli::Unit<Reader>, Off)> {
        if is_split(uref) {
            return other_unit(uref, o);
        }
        let i = self.headers.partition_point(|h| h.offset().0 <= o.0).checked_sub(1);
        match i.map(|i| &self.headers[i]) {
            Some(h) if o.0 < h.offset().0 + h.length_including_self() => {
                Some((self.dwarf.unit(h.clone()).ok()?, gimli::UnitOffset(o.0 - h.offset().0)))
            }
            // Past the units indexed (see MAX_UNITS): the headers one by one.
            _ => other_unit(uref, o),
        }
    }
}

/// Whether `uref` is a split unit, read from a `.dwo` (see `split`).
fn is_split(uref: gimli::UnitRef<'_, Reader>) -> bool {
    uref.dwarf.file_type == gimli::DwarfFileType::Dwo
}

/// Every subprogram of the unit with its address ranges, at any depth (inside types
/// and inside other functions: GCC nests a lambda's `operator()` in its enclosing
/// function), as addr2line lists them: one raw pass over the whole unit. Only used
/// when the namespace-level outline has no function for a pc.
fn all_functions(uref: gimli::UnitRef<'_, Reader>) -> Vec<(u64, u64, Off)> {
    let mut out = Vec::new();
    let Ok(mut raw) = uref.entries_raw(None) else { return out };
    let mut n = 0usize;
    while !raw.is_empty() && n < MAX_OUTLINE_DIES {
        n += 1;
        let off = raw.next_offset();
        let abbrev = match raw.read_abbreviation() {
            Ok(Some(a)) => a,
            Ok(None) => continue,
            Err(_) => break,
        };
        if abbrev.tag() != gimli::DW_TAG_subprogram {
            if raw.skip_attributes(abbrev.attributes()).is_err() {
                break;
            }
            continue;
        }
        let (mut low, mut high, mut size, mut ranges) = (None, None, None, None);
        for spec in abbrev.attributes() {
            let Ok(attr) = raw.read_attribute(*spec) else { return sorted(out) };
            match (attr.name(), attr.value()) {
                (gimli::DW_AT_low_pc, v) => low = uref.attr_address(v).ok().flatten(),
                (gimli::DW_AT_high_pc, gimli::AttributeValue::Udata(v)) => size = Some(v),
                (gimli::DW_AT_high_pc, v) => high = uref.attr_address(v).ok().flatten(),
                (gimli::DW_AT_ranges, v) => ranges = Some(v),
                _ => {}
            }
        }
        push_ranges(uref, &mut out, off, low, high, size, ranges);
    }
    sorted(out)
}

/// addr2line's choice among `functions` (sorted by start): the last one starting at
/// or before the probe, if its range holds the probe. Several DIEs can share one range
/// (an assembler entry point and its aliases); the last one in DIE order wins.
fn pick(functions: &[(u64, u64, Off)], probe: u64) -> Option<Off> {
    let i = functions.partition_point(|f| f.0 <= probe).checked_sub(1)?;
    let (_, end, off) = functions[i];
    (probe < end).then_some(off)
}

/// The inlined subroutines holding `probe` inside `function`, outermost first. Like
/// addr2line, every non-function child (lexical blocks and the like) is searched,
/// and nested subprograms are not part of the chain.
fn inline_chain(uref: gimli::UnitRef<'_, Reader>, function: Off, probe: u64) -> Vec<Inlined> {
    let mut out = Vec::new();
    let Ok(mut tree) = uref.entries_tree(Some(function)) else { return out };
    let Ok(root) = tree.root() else { return out };
    walk_inlined(uref, root, probe, &mut out, 0);
    out
}

/// Returns true when it found an inlined subroutine below `node` (the search stops).
fn walk_inlined(
    uref: gimli::UnitRef<'_, Reader>,
    node: gimli::EntriesTreeNode<'_, '_, Reader>,
    probe: u64,
    out: &mut Vec<Inlined>,
    depth: usize,
) -> bool {
    if depth > MAX_DEPTH {
        return false;
    }
    let mut children = node.children();
    while let Ok(Some(child)) = children.next() {
        let e = child.entry();
        match e.tag() {
            gimli::DW_TAG_subprogram => {}
            gimli::DW_TAG_inlined_subroutine => {
                if contains(uref, e, probe) {
                    let udata = |at| e.attr(at).and_then(|a| a.udata_value()).unwrap_or(0) as u32;
                    let call_file = match e.attr_value(gimli::DW_AT_call_file) {
                        Some(gimli::AttributeValue::FileIndex(fi)) if fi > 0 || uref.header.version() >= 5 => Some(fi),
                        _ => None,
                    };
                    out.push(Inlined {
                        die: e.offset(),
                        call_file,
                        call_line: udata(gimli::DW_AT_call_line),
                        call_column: udata(gimli::DW_AT_call_column),
                    });
                    walk_inlined(uref, child, probe, out, depth + 1);
                    return true;
                }
            }
            _ => {
                if e.has_children() && walk_inlined(uref, child, probe, out, depth + 1) {
                    return true;
                }
            }
        }
    }
    false
}

/// Finds the unit holding a `.debug_info` offset, parsed, and the offset inside it.
pub(crate) type UnitFinder<'f> = dyn Fn(gimli::DebugInfoOffset<usize>) -> Option<(gimli::Unit<Reader>, Off)> + 'f;

/// Scans the subtree of `function` for a call site (a tail call when `tail`)
/// returning to `after`; `units` finds the units its references lead to.
pub(crate) fn has_call_site(
    uref: gimli::UnitRef<'_, Reader>,
    function: Off,
    after: u64,
    tail: bool,
    units: &UnitFinder<'_>,
) -> bool {
    call_site_at(uref, function, after, |e| {
        let is_tail = e.attr_value(gimli::DW_AT_call_tail_call).or_else(|| e.attr_value(gimli::DW_AT_GNU_tail_call));
        (!tail || matches!(is_tail, Some(gimli::AttributeValue::Flag(true))))
            .then(|| target_known(uref, e, tail, units))
    })
    .unwrap_or(false)
}

/// What `accept` makes of the first `DW_TAG_call_site` (or GNU's pre-DWARF-5 tag) in
/// the subtree of `function` that returns to `after` and that it takes (Some).
pub(crate) fn call_site_at<T>(
    uref: gimli::UnitRef<'_, Reader>,
    function: Off,
    after: u64,
    mut accept: impl FnMut(&gimli::DebuggingInformationEntry<Reader>) -> Option<T>,
) -> Option<T> {
    let mut cursor = uref.entries_at_offset(function).ok()?;
    let mut seen = 0usize;
    let mut base = None;
    while let Ok(Some(e)) = cursor.next_dfs() {
        // Depths are relative to the cursor's start; leaving the function's subtree ends it.
        let depth = e.depth();
        let base = *base.get_or_insert(depth);
        seen += 1;
        if (depth <= base && seen > 1) || seen > 200_000 {
            break;
        }
        let tag = e.tag();
        if tag != gimli::DW_TAG_call_site && tag != gimli::DW_TAG_GNU_call_site {
            continue;
        }
        let pc = e
            .attr_value(gimli::DW_AT_call_return_pc)
            .or_else(|| e.attr_value(gimli::DW_AT_low_pc))
            .and_then(|v| uref.attr_address(v).ok().flatten());
        if pc == Some(after)
            && let Some(t) = accept(e)
        {
            return Some(t);
        }
    }
    None
}

/// gdb follows a call site only when DWARF names where it goes: an expression
/// (`DW_AT_call_target`; evaluated in the caller's frame, so unknown for the jumps of a
/// tail-call chain, which have no frame yet), or a reference (`DW_AT_call_origin`) to a
/// declaration (found by name) or to a DIE with an address (its own `DW_AT_ranges`,
/// or a `DW_AT_low_pc` here or through its origins). GCC's LTO refers to an abstract
/// DIE with none of these (Python's `pymain_main` jumping to `Py_RunMain`); gdb shows
/// no tail-call frame there, and neither does bt.
fn target_known(
    uref: gimli::UnitRef<'_, Reader>,
    e: &gimli::DebuggingInformationEntry<Reader>,
    tail: bool,
    units: &UnitFinder<'_>,
) -> bool {
    use gimli::AttributeValue as V;
    let attr = [
        gimli::DW_AT_call_target,
        gimli::DW_AT_GNU_call_site_target,
        gimli::DW_AT_call_origin,
        gimli::DW_AT_abstract_origin,
    ]
    .into_iter()
    .find_map(|at| e.attr_value(at));
    match attr {
        Some(V::Exprloc(x)) => !tail && !x.0.is_empty(),
        Some(V::Block(b)) => !tail && !b.is_empty(),
        Some(V::UnitRef(o)) => die_has_target(uref, o, &mut { MAX_LINKS }, units),
        Some(V::DebugInfoRef(o)) => units(o).is_some_and(|(unit, off)| {
            die_has_target(gimli::UnitRef::new(uref.dwarf, &unit), off, &mut { MAX_LINKS }, units)
        }),
        // In a dwz supplementary file, which this check does not open: as before.
        Some(V::DebugInfoRefSup(_)) => true,
        _ => false,
    }
}

/// The unit holding `.debug_info` offset `o`, parsed, and `o` inside it, by reading
/// the unit headers from the start (where no sorted list of them is at hand).
pub(crate) fn other_unit(
    uref: gimli::UnitRef<'_, Reader>,
    o: gimli::DebugInfoOffset<usize>,
) -> Option<(gimli::Unit<Reader>, Off)> {
    let mut headers = uref.dwarf.units();
    while let Ok(Some(h)) = headers.next() {
        let start = h.offset().0;
        if (start..start + h.length_including_self()).contains(&o.0) {
            let unit = uref.dwarf.unit(h).ok()?;
            return Some((unit, gimli::UnitOffset(o.0 - start)));
        }
    }
    None
}

/// A call site's target DIE gives gdb an address (see [`target_known`]). `links`
/// bounds the origins followed, across units too (hostile DWARF may make them a cycle).
fn die_has_target(uref: gimli::UnitRef<'_, Reader>, die: Off, links: &mut usize, units: &UnitFinder<'_>) -> bool {
    let Ok(e) = uref.entry(die) else { return false };
    let own_spec = e.attr_value(gimli::DW_AT_specification).is_some();
    if e.attr_value(gimli::DW_AT_ranges).is_some() {
        return true;
    }
    // Attributes gdb reads through DW_AT_abstract_origin / DW_AT_specification.
    let mut cur = die;
    while *links > 0 {
        *links -= 1;
        let Ok(c) = uref.entry(cur) else { return false };
        if c.attr_value(gimli::DW_AT_low_pc).is_some() || c.attr_value(gimli::DW_AT_ranges).is_some() {
            return true;
        }
        if !own_spec && matches!(c.attr_value(gimli::DW_AT_declaration), Some(gimli::AttributeValue::Flag(true))) {
            return true;
        }
        match c.attr_value(gimli::DW_AT_abstract_origin).or_else(|| c.attr_value(gimli::DW_AT_specification)) {
            Some(gimli::AttributeValue::UnitRef(o)) => cur = o,
            Some(gimli::AttributeValue::DebugInfoRef(o)) => {
                return units(o).is_some_and(|(unit, off)| {
                    die_has_target(gimli::UnitRef::new(uref.dwarf, &unit), off, links, units)
                });
            }
            // Across to a dwz file: as before, trusted.
            Some(gimli::AttributeValue::DebugInfoRefSup(_)) => return true,
            _ => return false,
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use crate::symbols::names::gdb_frame_name;

    #[test]
    fn frame_names_drop_the_last_parameter_list_as_gdb_does() {
        let cases = [
            ("main::$_2::operator()(int) const", "main::$_2::operator()"),
            ("app::Scope::fn(int)", "app::Scope::fn"),
            ("ns::f<int>(int, char const*) &&", "ns::f<int>"),
            // An earlier parameter list: gdb's parser gives up and prints it whole.
            ("app::Scope::fn(int)::$_0::operator()(int) const", "app::Scope::fn(int)::$_0::operator()(int) const"),
            ("main::$_2::operator()(int) const::Inner::go(int)", "main::$_2::operator()(int) const::Inner::go(int)"),
            ("main::{lambda(int)#1}::operator()(int) const", "main::{lambda(int)#1}::operator()(int) const"),
            ("no_params", "no_params"),
            ("unbalanced)", "unbalanced)"),
            // Casts and function types in template arguments, operators, anonymous
            // namespaces: gdb's parser takes them (seen with gdb 13 on GCC and Clang).
            (
                "outer::(anonymous namespace)::Holder<long, 3, true, (Color)1>::operator<<(int)",
                "outer::(anonymous namespace)::Holder<long, 3, true, (Color)1>::operator<<",
            ),
            ("K<7ul, (char)120>::operator<(K<7ul, (char)120> const&) const", "K<7ul, (char)120>::operator<"),
            ("K<7ul, (char)120>::operator->()", "K<7ul, (char)120>::operator->"),
            ("K<7ul, (char)120>::operator long() const", "K<7ul, (char)120>::operator long"),
            ("Cmp::operator()(int, int) const", "Cmp::operator()"),
            ("V::operator[](unsigned long)", "V::operator[]"),
            ("viafp<&(f(int)), long>(long)", "viafp<&(f(int)), long>"),
            ("std::function<void (int)>::operator()(int) const", "std::function<void (int)>::operator()(int) const"),
            ("S<int (*)(long, ...), 22>::run(int)", "S<int (*)(long, ...), 22>::run"),
            ("S<int>::operator>><char>(char)", "S<int>::operator>><char>"),
            // ABI tags and function-local classes: whole.
            ("tagged[abi:cxx11](short)", "tagged[abi:cxx11](short)"),
            ("Inner<char>::run(int const (&) [2], char*)", "Inner<char>::run"),
            (
                "tagged(short)::Local::m(unsigned short, long long)",
                "tagged(short)::Local::m(unsigned short, long long)",
            ),
        ];
        for (input, want) in cases {
            assert_eq!(gdb_frame_name(input), want, "{input}");
        }
    }

    #[test]
    fn names_from_dwarf_take_gdbs_spelling_of_integer_types() {
        use crate::symbols::names::gdb_canonical_name;
        let cases = [
            ("(anonymous namespace)::S<long int, 0>::run", "(anonymous namespace)::S<long, 0>::run"),
            ("S<long unsigned int, 1>::run", "S<unsigned long, 1>::run"),
            ("S<long long unsigned int, 6>::run", "S<unsigned long long, 6>::run"),
            ("S<long long int, 5>::run", "S<long long, 5>::run"),
            ("S<short unsigned int, 4>::run", "S<unsigned short, 4>::run"),
            ("S<short int, 3>::run", "S<short, 3>::run"),
            ("S<int (*)(long int, ...), 22>::run", "S<int (*)(long, ...), 22>::run"),
            ("S<long int&, 17>::run", "S<long&, 17>::run"),
            ("S<std::map<int, long int, std::less<int> >, 8>::run", "S<std::map<int, long, std::less<int> >, 8>::run"),
            ("V1<-5, 7, 3, true, 'a'>::run", "V1<-5, 7, 3, true, (char)'a'>::run"),
            // Unchanged: already gdb's, or a name gdb's parser rejects.
            ("S<unsigned int, 19>::run", "S<unsigned int, 19>::run"),
            ("S<signed char, 10>::run", "S<signed char, 10>::run"),
            ("S<unsigned char, 12>::run", "S<unsigned char, 12>::run"),
            ("S<long double, 20>::run", "S<long double, 20>::run"),
            ("S<char const*, 2>::run", "S<char const*, 2>::run"),
            ("internal_long_intern::longer", "internal_long_intern::longer"),
            ("f<long int, 3>::operator()(int)::<lambda(int)>", "f<long int, 3>::operator()(int)::<lambda(int)>"),
        ];
        for (input, want) in cases {
            assert_eq!(gdb_canonical_name(input), want, "{input}");
        }
    }

    #[test]
    fn demangled_integer_literals_take_libiberty_suffixes() {
        use crate::symbols::names::{demangle, function_name};
        // K<7ul, 'x'>::operator->() and f<-5l, 3u, 9ull>(), as c++filt prints them.
        assert_eq!(function_name("_ZN1KILm7ELc120EEptEv"), "K<7ul, (char)120>::operator->");
        assert_eq!(demangle("_Z1fILln5ELj3ELy9EEvv"), "void f<-5l, 3u, 9ull>()");
        // viafp<&f, long>(long) and g<&var>(): a function's address is parenthesized.
        assert_eq!(function_name("_Z5viafpIXadL_Z1fiEElEvT0_"), "viafp<&(f(int)), long>");
        assert_eq!(demangle("_Z1gIXadL_Z3varEEEvv"), "void g<&var>()");
    }
}
