//! DIE-level helpers that both the unit outlines (`outline`) and the point lookups
//! (`lookup`) read: a subprogram's address ranges, and the scopes and names gdb
//! gives a function DIE. Neither of those modules owns them, so they depend one way.

use super::elf::Reader;
use gimli::Reader as _;

pub(crate) type Off = gimli::UnitOffset<usize>;

/// Deepest DIE nesting followed (corrupt DWARF must not recurse without end).
pub(crate) const MAX_DEPTH: usize = 128;

pub(crate) fn read_string(unit: gimli::UnitRef<'_, Reader>, v: gimli::AttributeValue<Reader>) -> Option<String> {
    Some(unit.attr_string(v).ok()?.to_string_lossy().ok()?.into_owned())
}

pub(crate) fn language(uref: gimli::UnitRef<'_, Reader>) -> Option<gimli::DwLang> {
    let mut cursor = uref.entries();
    let root = cursor.next_dfs().ok()??;
    match root.attr_value(gimli::DW_AT_language)? {
        gimli::AttributeValue::Language(l) => Some(l),
        _ => None,
    }
}

pub(crate) fn sorted(mut v: Vec<(u64, u64, Off)>) -> Vec<(u64, u64, Off)> {
    // Stable: functions sharing a start keep DIE order (the last one wins a lookup).
    v.sort_by_key(|f| f.0);
    v
}

/// Appends a subprogram's ranges (DW_AT_ranges, else low_pc with high_pc or size).
pub(crate) fn push_ranges(
    uref: gimli::UnitRef<'_, Reader>,
    out: &mut Vec<(u64, u64, Off)>,
    off: Off,
    low: Option<u64>,
    high: Option<u64>,
    size: Option<u64>,
    ranges: Option<gimli::AttributeValue<Reader>>,
) {
    if let Some(v) = ranges {
        if let Ok(Some(mut list)) = uref.attr_ranges(v) {
            while let Ok(Some(r)) = list.next() {
                if r.begin < r.end {
                    out.push((r.begin, r.end, off));
                }
            }
        }
    } else if let Some(begin) = low
        && let Some(end) = size.map(|s| begin.wrapping_add(s)).or(high)
        && begin < end
    {
        out.push((begin, end, off));
    }
}

/// The scopes enclosing a DIE, outermost first, as gdb names them: namespaces,
/// classes, structs and unions.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct Scopes {
    pub names: Vec<String>,
    /// A function or an unnamed class (a lambda's closure type) encloses the DIE:
    /// its name is local to a function, and DWARF names do not say which one.
    pub local: bool,
}

/// gdb's name for the function DIE at `off`: its `DW_AT_name` (following abstract
/// origin and specification links within the unit) prefixed with the scopes that
/// `scopes` finds around the final DIE. The one naming rule of both lookup paths
/// (this module's point lookups and the addr2line path in `dwarf.rs`).
///
/// Folklore: a C++ function is named from its demangled linkage name when DWARF has
/// one (also a function local to another one, Clang: `main::$_2::operator()`); GCC
/// gives a lambda's `operator()` no linkage name and gdb, like us, falls back to the
/// bare DWARF scopes (`operator()`).
pub(crate) fn qualified_name(
    uref: gimli::UnitRef<'_, Reader>,
    off: Off,
    scopes: impl FnOnce(Off) -> Option<Scopes>,
) -> Option<String> {
    let mut target = off;
    let mut name = None;
    let mut mangled = None;
    for _ in 0..8 {
        let e = uref.entry(target).ok()?;
        // An unmangled linkage name (a C asm label such as `__GI_raise`) is what gdb shows.
        if let Some(v) =
            e.attr_value(gimli::DW_AT_linkage_name).or_else(|| e.attr_value(gimli::DW_AT_MIPS_linkage_name))
        {
            let l = read_string(uref, v)?;
            if !l.starts_with("_Z") && !l.starts_with("_R") {
                return Some(l);
            }
            mangled.get_or_insert(l);
        }
        if name.is_none() {
            name = e.attr_value(gimli::DW_AT_name).and_then(|v| read_string(uref, v));
        }
        let link = e.attr_value(gimli::DW_AT_abstract_origin).or_else(|| e.attr_value(gimli::DW_AT_specification));
        match link {
            Some(gimli::AttributeValue::UnitRef(o)) => target = o,
            Some(_) => return None, // another unit: leave it to the plain name
            None => break,
        }
    }
    // C++: gdb names a function from its demangled linkage name (libiberty's
    // rendering: `std::vector<int, std::allocator<int> >`, `{lambda(int)#1}`, `long`),
    // not from GCC's DW_AT_name (`vector<int>`, `<lambda(int)>`, `long int`), so the
    // name is the same with or without DWARF and across compilers.
    if let Some(m) = mangled.filter(|m| m.starts_with("_Z"))
        && is_cplus(uref)
    {
        return Some(super::names::function_name(&m));
    }
    let name = name?;
    // `target` is a function DIE, never a scope tag, so the enclosing scopes are all
    // its scopes.
    let Scopes { mut names, .. } = scopes(target)?;
    names.push(name);
    let joined = names.join("::");
    Some(if is_cplus(uref) { super::names::gdb_canonical_name(&joined) } else { joined })
}

pub(crate) fn is_cplus(uref: gimli::UnitRef<'_, Reader>) -> bool {
    matches!(
        language(uref),
        Some(
            gimli::DW_LANG_C_plus_plus
                | gimli::DW_LANG_C_plus_plus_03
                | gimli::DW_LANG_C_plus_plus_11
                | gimli::DW_LANG_C_plus_plus_14
                | gimli::DW_LANG_C_plus_plus_17
                | gimli::DW_LANG_C_plus_plus_20
        )
    )
}

/// Scopes of the DIE `target`, outermost first: the path from the unit root (or from
/// `from`, with `scopes` holding what lies above it), descending at each level into
/// the last child that starts at or before the target (DIE offsets grow in pre-order,
/// so that child's subtree holds it).
pub(crate) fn scope_names(
    uref: gimli::UnitRef<'_, Reader>,
    mut scopes: Scopes,
    from: Option<Off>,
    target: Off,
) -> Option<Scopes> {
    let mut node_off = match from {
        Some(off) => off,
        None => uref.entries_tree(None).ok()?.root().ok()?.entry().offset(),
    };
    for _ in 0..MAX_DEPTH {
        let mut tree = uref.entries_tree(Some(node_off)).ok()?;
        let mut children = tree.root().ok()?.children();
        let mut ancestor: Option<(Off, gimli::DwTag, bool)> = None;
        while let Ok(Some(child)) = children.next() {
            let e = child.entry();
            if e.offset() == target {
                return Some(scopes);
            }
            if e.offset() > target {
                break;
            }
            ancestor = Some((e.offset(), e.tag(), e.has_children()));
        }
        let (off, tag, has_children) = ancestor?;
        if !has_children {
            return None; // the target is not a DIE of this unit's tree
        }
        push_scope(uref, &mut scopes, off, tag);
        node_off = off;
    }
    None
}

/// Adds the DIE at `off`, an ancestor of the DIE being named, to `scopes`: its name
/// when it is a scope that gdb names; a function or an unnamed class marks the name
/// local.
pub(crate) fn push_scope(uref: gimli::UnitRef<'_, Reader>, scopes: &mut Scopes, off: Off, tag: gimli::DwTag) {
    if tag == gimli::DW_TAG_subprogram {
        scopes.local = true;
        return;
    }
    let is_scope = matches!(
        tag,
        gimli::DW_TAG_namespace | gimli::DW_TAG_class_type | gimli::DW_TAG_structure_type | gimli::DW_TAG_union_type
    );
    if !is_scope {
        return;
    }
    let name = uref.entry(off).ok().and_then(|e| e.attr_value(gimli::DW_AT_name)).and_then(|v| read_string(uref, v));
    match name {
        Some(n) => scopes.names.push(n),
        None if tag == gimli::DW_TAG_namespace => scopes.names.push("(anonymous namespace)".into()),
        None => scopes.local = true,
    }
}
