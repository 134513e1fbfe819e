//! DWARF types resolved on demand (one DIE at a time, cached per unit) and the
//! gdb-style names of types (`struct node *`, `int [10]`, `void (*)(int)`).
//!
//! Types refer to each other by unit offset, so self-referential structs (linked
//! lists) and long chains cost nothing until a value actually follows them.

use super::elf::Reader;
use gimli::{AttributeValue, Reader as _, UnitRef};
use std::collections::HashMap;
use std::sync::Arc;

/// The hasher of the tracer's type caches: keys are DIE offsets and addresses, looked
/// up for every value rendered; SipHash showed in profiles of 1,000-thread traces.
type Fast = foldhash::fast::RandomState;

/// Offset of a type DIE inside its unit.
pub(crate) type TypeRef = usize;

/// The source language of a unit, for naming and readable library types.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Lang {
    C,
    Cpp,
    Rust,
    Other,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Aggregate {
    Struct,
    Class,
    Union,
}

#[derive(Debug, Clone)]
pub(crate) struct Member {
    pub name: Option<String>,
    pub ty: Option<TypeRef>,
    /// Byte offset of the member (of its storage unit for bitfields).
    pub offset: u64,
    /// Bitfields: (bit offset from `offset`, little-endian numbering, bit size).
    pub bits: Option<(u64, u64)>,
    /// A base class (DW_TAG_inheritance).
    pub base: bool,
}

/// A Rust enum (or other DW_TAG_variant_part): the discriminant and the variants.
#[derive(Debug, Clone)]
pub(crate) struct Variants {
    /// The discriminant member (offset, type); None for single-variant layouts.
    pub discr: Option<Member>,
    /// (discriminant value, None for the default variant) → the variant's member.
    pub variants: Vec<(Option<u64>, Member)>,
}

#[derive(Debug, Clone)]
pub(crate) enum Ty {
    Void,
    Base {
        name: String,
        size: u64,
        encoding: gimli::DwAte,
    },
    Enum {
        name: Option<String>,
        size: u64,
        signed: bool,
        values: Vec<(i64, String)>,
        /// A C++ `enum class` (DW_AT_enum_class): its enumerators are in its scope.
        class: bool,
    },
    /// Pointers and references (`reference`: C++ `&`/`&&`, printed with `@`).
    Pointer {
        target: Option<TypeRef>,
        reference: bool,
        rvalue: bool,
    },
    Struct {
        kind: Aggregate,
        name: Option<String>,
        size: Option<u64>,
        members: Vec<Member>,
        variants: Option<Variants>,
        declaration: bool,
        /// Template type parameters by name (`T` of `Vec<T>`).
        params: Vec<(String, Option<TypeRef>)>,
    },
    /// Element type and the count of each dimension (None: unknown, flexible).
    Array {
        elem: Option<TypeRef>,
        dims: Vec<Option<u64>>,
    },
    Typedef {
        name: String,
        target: Option<TypeRef>,
    },
    Qualified {
        qualifier: &'static str,
        target: Option<TypeRef>,
    },
    Function {
        ret: Option<TypeRef>,
        params: Vec<Option<TypeRef>>,
        variadic: bool,
    },
    /// A type bt does not interpret (named by its tag).
    Unknown(String),
}

/// The types of one unit seen so far.
#[derive(Default)]
pub(crate) struct UnitTypes {
    types: HashMap<TypeRef, Arc<Ty>, Fast>,
    names: HashMap<TypeRef, String, Fast>,
    /// What this worker already took from one type table.
    local: Local,
    pub lang: Option<Lang>,
    /// The types of other units that this unit's variables have (a Go function's
    /// `*runtime.g`), by unit offset, named without scopes as `planned` names them:
    /// kept, or each such variable converted and copied its types again.
    pub foreign: HashMap<usize, UnitTypes>,
}

/// A worker's copies from one [`TypeTable`] (its [`TypeTable::id`]): ids (which never
/// change) and converted types (which change only when a deferred table is named,
/// after the last rendering with it), so that rendering does not take the shared
/// table's lock for each. A cache of parsed types outlives a table (each trace has
/// its own): another table's id empties it.
#[derive(Default)]
struct Local {
    table: u64,
    ids: HashMap<TypeRef, snap::TypeId, Fast>,
    /// A map, not a vector by id: a unit sees few of a table's many ids.
    types: HashMap<snap::TypeId, Arc<snap::Type>, Fast>,
}

impl Local {
    fn of(&mut self, table: u64) -> &mut Local {
        if self.table != table {
            *self = Local { table, ..Default::default() };
        }
        self
    }
}

/// Per-unit type caches, keyed by unit header offset.
#[derive(Default)]
pub(crate) struct TypeCache {
    pub units: HashMap<usize, UnitTypes>,
}

/// Longest typedef / qualifier chain followed; deeper means corrupt DWARF.
const MAX_CHAIN: usize = 32;

fn string_attr(
    unit: UnitRef<'_, Reader>,
    e: &gimli::DebuggingInformationEntry<Reader>,
    at: gimli::DwAt,
) -> Option<String> {
    let v = e.attr_value(at)?;
    Some(unit.attr_string(v).ok()?.to_string_lossy().ok()?.into_owned())
}

/// The DIE's type, by offset in its unit: a unit reference, or a section reference
/// that lands in the same unit (Go writes every type reference as `DW_FORM_ref_addr`).
pub(crate) fn type_attr(unit: UnitRef<'_, Reader>, e: &gimli::DebuggingInformationEntry<Reader>) -> Option<TypeRef> {
    match e.attr_value(gimli::DW_AT_type)? {
        AttributeValue::UnitRef(o) => Some(o.0),
        AttributeValue::DebugInfoRef(o) => o.to_unit_offset(&unit.unit.header).map(|u| u.0),
        _ => None,
    }
}

fn udata(e: &gimli::DebuggingInformationEntry<Reader>, at: gimli::DwAt) -> Option<u64> {
    e.attr_value(at)?.udata_value()
}

/// `DW_AT_data_member_location`: a constant, or (DWARF 2) `DW_OP_plus_uconst N`.
fn member_offset(unit: UnitRef<'_, Reader>, e: &gimli::DebuggingInformationEntry<Reader>) -> u64 {
    match e.attr_value(gimli::DW_AT_data_member_location) {
        Some(AttributeValue::Exprloc(expr)) => {
            let mut eval = expr.evaluation(unit.encoding());
            eval.set_initial_value(0);
            eval.set_max_iterations(64);
            if let Ok(gimli::EvaluationResult::Complete) = eval.evaluate()
                && let Some(gimli::Piece { location: gimli::Location::Address { address }, .. }) = eval.result().first()
            {
                return *address;
            }
            0
        }
        Some(v) => v.udata_value().unwrap_or(0),
        None => 0,
    }
}

fn parse_member(
    unit: UnitRef<'_, Reader>,
    e: &gimli::DebuggingInformationEntry<Reader>,
    size_of: impl Fn(TypeRef) -> Option<u64>,
) -> Member {
    let ty = type_attr(unit, e);
    let mut offset = member_offset(unit, e);
    let mut bits = None;
    if let Some(bit_size) = udata(e, gimli::DW_AT_bit_size) {
        if let Some(dbo) = udata(e, gimli::DW_AT_data_bit_offset) {
            // DWARF 4+: bits from the start of the containing struct.
            offset = dbo / 8;
            bits = Some((dbo % 8, bit_size));
        } else if let Some(bo) = udata(e, gimli::DW_AT_bit_offset) {
            // DWARF 2/3: bit_offset counts from the most significant bit of the
            // storage unit (byte_size, or the member type's size) at `offset`.
            let storage = udata(e, gimli::DW_AT_byte_size).or_else(|| ty.and_then(&size_of)).unwrap_or(4);
            let lsb = (storage * 8).saturating_sub(bo + bit_size);
            offset += lsb / 8;
            bits = Some((lsb % 8, bit_size));
        } else {
            bits = Some((0, bit_size));
        }
    }
    Member {
        name: string_attr(unit, e, gimli::DW_AT_name),
        ty,
        offset,
        bits,
        base: e.tag() == gimli::DW_TAG_inheritance,
    }
}

impl UnitTypes {
    pub(crate) fn lang(&mut self, unit: UnitRef<'_, Reader>) -> Lang {
        if let Some(l) = self.lang {
            return l;
        }
        let lang = unit
            .entry(unit.unit.header.root_offset())
            .ok()
            .and_then(|e| match e.attr_value(gimli::DW_AT_language) {
                Some(AttributeValue::Language(l)) => Some(l),
                _ => None,
            })
            .map(|l| match l {
                gimli::DW_LANG_Rust => Lang::Rust,
                gimli::DW_LANG_C_plus_plus
                | gimli::DW_LANG_C_plus_plus_03
                | gimli::DW_LANG_C_plus_plus_11
                | gimli::DW_LANG_C_plus_plus_14 => Lang::Cpp,
                gimli::DW_LANG_C
                | gimli::DW_LANG_C89
                | gimli::DW_LANG_C99
                | gimli::DW_LANG_C11
                | gimli::DW_LANG_C17 => Lang::C,
                _ => Lang::Other,
            })
            .unwrap_or(Lang::Other);
        self.lang = Some(lang);
        lang
    }

    /// The type at `off`, parsed on first use. Corrupt or foreign DIEs become `Unknown`.
    pub(crate) fn get(&mut self, unit: UnitRef<'_, Reader>, off: TypeRef) -> Arc<Ty> {
        if let Some(t) = self.types.get(&off) {
            return t.clone();
        }
        let t = Arc::new(self.parse(unit, off).unwrap_or_else(|| Ty::Unknown("<bad type DIE>".into())));
        self.types.insert(off, t.clone());
        t
    }

    fn parse(&mut self, unit: UnitRef<'_, Reader>, off: TypeRef) -> Option<Ty> {
        let e = unit.entry(gimli::UnitOffset(off)).ok()?;
        let name = string_attr(unit, &e, gimli::DW_AT_name);
        Some(match e.tag() {
            gimli::DW_TAG_base_type => Ty::Base {
                name: name.unwrap_or_else(|| "?".into()),
                size: udata(&e, gimli::DW_AT_byte_size).unwrap_or(0),
                encoding: match e.attr_value(gimli::DW_AT_encoding) {
                    Some(AttributeValue::Encoding(enc)) => enc,
                    _ => gimli::DW_ATE_signed,
                },
            },
            gimli::DW_TAG_unspecified_type => match name {
                Some(n) if n != "void" => Ty::Unknown(n),
                _ => Ty::Void,
            },
            gimli::DW_TAG_enumeration_type => {
                let under = type_attr(unit, &e).map(|t| self.get(unit, t));
                let signed = match under.as_deref() {
                    Some(Ty::Base { encoding, .. }) => {
                        *encoding == gimli::DW_ATE_signed || *encoding == gimli::DW_ATE_signed_char
                    }
                    _ => false,
                };
                let mut values = Vec::new();
                let mut tree = unit.entries_tree(Some(e.offset())).ok()?;
                let root = tree.root().ok()?;
                let mut children = root.children();
                while let Ok(Some(child)) = children.next() {
                    let c = child.entry();
                    if c.tag() != gimli::DW_TAG_enumerator || values.len() > 100_000 {
                        continue;
                    }
                    let v = match c.attr_value(gimli::DW_AT_const_value) {
                        Some(AttributeValue::Sdata(v)) => v,
                        Some(AttributeValue::Udata(v)) => v as i64,
                        Some(v) => v.sdata_value().or(v.udata_value().map(|u| u as i64)).unwrap_or(0),
                        None => continue,
                    };
                    values.push((v, string_attr(unit, c, gimli::DW_AT_name).unwrap_or_default()));
                }
                let class = matches!(e.attr_value(gimli::DW_AT_enum_class), Some(AttributeValue::Flag(true)));
                Ty::Enum { name, size: udata(&e, gimli::DW_AT_byte_size).unwrap_or(4), signed, values, class }
            }
            gimli::DW_TAG_pointer_type | gimli::DW_TAG_ptr_to_member_type => {
                Ty::Pointer { target: type_attr(unit, &e), reference: false, rvalue: false }
            }
            gimli::DW_TAG_reference_type => Ty::Pointer { target: type_attr(unit, &e), reference: true, rvalue: false },
            gimli::DW_TAG_rvalue_reference_type => {
                Ty::Pointer { target: type_attr(unit, &e), reference: true, rvalue: true }
            }
            gimli::DW_TAG_structure_type | gimli::DW_TAG_class_type | gimli::DW_TAG_union_type => {
                let kind = match e.tag() {
                    gimli::DW_TAG_class_type => Aggregate::Class,
                    gimli::DW_TAG_union_type => Aggregate::Union,
                    _ => Aggregate::Struct,
                };
                let declaration = matches!(e.attr_value(gimli::DW_AT_declaration), Some(AttributeValue::Flag(true)));
                let mut members = Vec::new();
                let mut variants = None;
                let mut params = Vec::new();
                let mut tree = unit.entries_tree(Some(e.offset())).ok()?;
                let root = tree.root().ok()?;
                let mut children = root.children();
                let mut n = 0usize;
                while let Ok(Some(child)) = children.next() {
                    n += 1;
                    if n > 100_000 {
                        break;
                    }
                    let c = child.entry();
                    match c.tag() {
                        gimli::DW_TAG_member | gimli::DW_TAG_inheritance => {
                            // Static members are declarations without a location in the object.
                            let is_static =
                                matches!(c.attr_value(gimli::DW_AT_external), Some(AttributeValue::Flag(true)))
                                    || matches!(
                                        c.attr_value(gimli::DW_AT_declaration),
                                        Some(AttributeValue::Flag(true))
                                    );
                            if !is_static {
                                let m = parse_member(unit, c, |_| None);
                                members.push(m);
                            }
                        }
                        gimli::DW_TAG_template_type_parameter => {
                            params.push((
                                string_attr(unit, c, gimli::DW_AT_name).unwrap_or_default(),
                                type_attr(unit, c),
                            ));
                        }
                        gimli::DW_TAG_variant_part => {
                            let discr = match c.attr_value(gimli::DW_AT_discr) {
                                Some(AttributeValue::UnitRef(o)) => {
                                    unit.entry(o).ok().map(|d| parse_member(unit, &d, |_| None))
                                }
                                _ => None,
                            };
                            let mut vs = Vec::new();
                            let mut vi = child.children();
                            while let Ok(Some(v)) = vi.next() {
                                if v.entry().tag() != gimli::DW_TAG_variant {
                                    continue;
                                }
                                let value = v
                                    .entry()
                                    .attr_value(gimli::DW_AT_discr_value)
                                    .and_then(|x| x.udata_value().or(x.sdata_value().map(|s| s as u64)));
                                let mut mi = v.children();
                                while let Ok(Some(m)) = mi.next() {
                                    if m.entry().tag() == gimli::DW_TAG_member {
                                        vs.push((value, parse_member(unit, m.entry(), |_| None)));
                                        break;
                                    }
                                }
                                if vs.len() > 10_000 {
                                    break;
                                }
                            }
                            variants = Some(Variants { discr, variants: vs });
                        }
                        _ => {}
                    }
                }
                Ty::Struct {
                    kind,
                    name,
                    size: udata(&e, gimli::DW_AT_byte_size),
                    members,
                    variants,
                    declaration,
                    params,
                }
            }
            gimli::DW_TAG_array_type => {
                let mut dims = Vec::new();
                let mut tree = unit.entries_tree(Some(e.offset())).ok()?;
                let root = tree.root().ok()?;
                let mut children = root.children();
                while let Ok(Some(child)) = children.next() {
                    let c = child.entry();
                    if c.tag() != gimli::DW_TAG_subrange_type || dims.len() >= 16 {
                        continue;
                    }
                    let count = udata(c, gimli::DW_AT_count).or_else(|| {
                        let lower = udata(c, gimli::DW_AT_lower_bound).unwrap_or(0);
                        match c.attr_value(gimli::DW_AT_upper_bound)? {
                            AttributeValue::Sdata(v) if v < 0 => Some(0),
                            v => v.udata_value().map(|u| u.wrapping_sub(lower).wrapping_add(1)),
                        }
                    });
                    dims.push(count);
                }
                if dims.is_empty() {
                    dims.push(None);
                }
                Ty::Array { elem: type_attr(unit, &e), dims }
            }
            gimli::DW_TAG_typedef => Ty::Typedef { name: name.unwrap_or_default(), target: type_attr(unit, &e) },
            gimli::DW_TAG_const_type => Ty::Qualified { qualifier: "const", target: type_attr(unit, &e) },
            gimli::DW_TAG_volatile_type => Ty::Qualified { qualifier: "volatile", target: type_attr(unit, &e) },
            gimli::DW_TAG_restrict_type => Ty::Qualified { qualifier: "restrict", target: type_attr(unit, &e) },
            gimli::DW_TAG_atomic_type => Ty::Qualified { qualifier: "_Atomic", target: type_attr(unit, &e) },
            gimli::DW_TAG_subroutine_type => {
                let mut params = Vec::new();
                let mut variadic = false;
                let mut tree = unit.entries_tree(Some(e.offset())).ok()?;
                let root = tree.root().ok()?;
                let mut children = root.children();
                while let Ok(Some(child)) = children.next() {
                    match child.entry().tag() {
                        gimli::DW_TAG_formal_parameter if params.len() < 256 => {
                            params.push(type_attr(unit, child.entry()))
                        }
                        gimli::DW_TAG_unspecified_parameters => variadic = true,
                        _ => {}
                    }
                }
                Ty::Function { ret: type_attr(unit, &e), params, variadic }
            }
            other => Ty::Unknown(name.unwrap_or_else(|| other.static_string().unwrap_or("?").to_string())),
        })
    }

    /// Strips typedefs and qualifiers.
    pub(crate) fn strip(&mut self, unit: UnitRef<'_, Reader>, mut off: Option<TypeRef>) -> Option<(TypeRef, Arc<Ty>)> {
        for _ in 0..MAX_CHAIN {
            let o = off?;
            let t = self.get(unit, o);
            match &*t {
                Ty::Typedef { target, .. } | Ty::Qualified { target, .. } => off = *target,
                _ => return Some((o, t)),
            }
        }
        None
    }

    /// The type's name as gdb prints it (`struct node *`, `const char *`, `int [4]`).
    pub(crate) fn name(
        &mut self,
        unit: UnitRef<'_, Reader>,
        off: Option<TypeRef>,
        scoped: &mut dyn FnMut(TypeRef, String) -> String,
    ) -> String {
        let Some(o) = off else { return "void".into() };
        if let Some(n) = self.names.get(&o) {
            return n.clone();
        }
        let n = self.declarator(unit, off, String::new(), scoped, 0);
        self.names.insert(o, n.clone());
        n
    }

    /// C declarator syntax: `inner` is what the type applies to (`*`, `(*)`, `[3]`).
    fn declarator(
        &mut self,
        unit: UnitRef<'_, Reader>,
        off: Option<TypeRef>,
        inner: String,
        scoped: &mut dyn FnMut(TypeRef, String) -> String,
        depth: usize,
    ) -> String {
        let join = |base: String, inner: &str| if inner.is_empty() { base } else { format!("{base} {inner}") };
        if depth > MAX_CHAIN {
            return join("?".into(), &inner);
        }
        let Some(o) = off else { return join("void".into(), &inner) };
        let lang = self.lang(unit);
        let t = self.get(unit, o);
        match &*t {
            Ty::Void => join("void".into(), &inner),
            Ty::Base { name, .. } | Ty::Typedef { name, .. } => {
                let n = if matches!(&*t, Ty::Typedef { .. }) { scoped(o, name.clone()) } else { name.clone() };
                join(n, &inner)
            }
            Ty::Unknown(n) => join(n.clone(), &inner),
            Ty::Enum { name, .. } => {
                let n = name.clone().map(|n| scoped(o, n)).unwrap_or_else(|| "{...}".into());
                join(if lang == Lang::C { format!("enum {n}") } else { n }, &inner)
            }
            Ty::Struct { kind, name, .. } => {
                let n = name.clone().map(|n| scoped(o, n)).unwrap_or_else(|| "{...}".into());
                let kw = match kind {
                    Aggregate::Union => "union",
                    _ => "struct",
                };
                join(if lang == Lang::C { format!("{kw} {n}") } else { n }, &inner)
            }
            Ty::Pointer { target, reference, rvalue } => {
                let sym = if *rvalue {
                    "&&"
                } else if *reference {
                    "&"
                } else {
                    "*"
                };
                let target = *target;
                let wrapped = match self.strip(unit, target).map(|(_, t)| t) {
                    Some(t) if matches!(&*t, Ty::Array { .. } | Ty::Function { .. }) => {
                        // Only arrays/functions reached directly (not through a typedef) need parens.
                        let direct = target
                            .map(|x| self.get(unit, x))
                            .is_some_and(|d| matches!(&*d, Ty::Array { .. } | Ty::Function { .. }));
                        if direct { format!("({sym}{inner})") } else { format!("{sym}{inner}") }
                    }
                    _ => format!("{sym}{inner}"),
                };
                self.declarator(unit, target, wrapped, scoped, depth + 1)
            }
            Ty::Array { elem, dims } => {
                let d: String = dims
                    .iter()
                    .map(|d| match d {
                        Some(n) => format!("[{n}]"),
                        None => "[]".into(),
                    })
                    .collect();
                self.declarator(unit, *elem, format!("{inner}{d}"), scoped, depth + 1)
            }
            Ty::Qualified { qualifier, target } => {
                let is_ptr = target.map(|x| self.get(unit, x)).is_some_and(|d| matches!(&*d, Ty::Pointer { .. }));
                if is_ptr {
                    let inner =
                        if inner.is_empty() { (*qualifier).to_string() } else { format!("{qualifier} {inner}") };
                    // `char * const`: the qualifier follows the star.
                    let target = *target;
                    let t2 = target.map(|x| self.get(unit, x));
                    if let Some(Ty::Pointer { target: pt, .. }) = t2.as_deref() {
                        return self.declarator(unit, *pt, format!("* {inner}"), scoped, depth + 1);
                    }
                    self.declarator(unit, target, inner, scoped, depth + 1)
                } else {
                    let base = self.declarator(unit, *target, String::new(), scoped, depth + 1);
                    join(format!("{qualifier} {base}"), &inner)
                }
            }
            Ty::Function { ret, params, variadic } => {
                let (ret, params, variadic) = (*ret, params.clone(), *variadic);
                let mut ps: Vec<String> =
                    params.iter().map(|p| self.declarator(unit, *p, String::new(), scoped, depth + 1)).collect();
                if variadic {
                    ps.push("...".into());
                }
                if ps.is_empty() && lang != Lang::Cpp {
                    ps.push("void".into());
                }
                self.declarator(unit, ret, format!("{inner}({})", ps.join(", ")), scoped, depth + 1)
            }
        }
    }
}

/// The snapshot's type table as capture builds it, shared by the threads capturing
/// variables: a DWARF type gets its `TypeId` when something refers to it, and its
/// content when rendering first asks for it (so the table holds what rendering used
/// plus the ids it saw). Also caches the symbol names rendering asked for.
pub struct TypeTable {
    /// Unique in the process (never 0): which table a unit's cached ids belong to.
    id: u64,
    /// Read far more often than written (every type a rendering looks at): a read
    /// lock lets the threads capturing variables in parallel share it.
    inner: std::sync::RwLock<TableInner>,
    /// Names (of types, and symbols of addresses) are left for [`TypeTable::resolve`]:
    /// a held live target. Naming needs no target memory, only DWARF and symbol
    /// tables, so it waits until the target runs again.
    deferred: bool,
}

impl Default for TypeTable {
    fn default() -> Self {
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
        TypeTable {
            id: NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
            inner: Default::default(),
            deferred: false,
        }
    }
}

#[derive(Default)]
struct TableInner {
    /// None: referenced, not converted yet.
    types: Vec<Option<Arc<snap::Type>>>,
    /// (module index, unit offset, DIE offset) of each id, and the way back.
    origin: Vec<(usize, usize, TypeRef)>,
    ids: HashMap<(usize, usize, TypeRef), snap::TypeId, Fast>,
    /// (address, code?) → name, hits and misses.
    symbols: HashMap<(u64, bool), Option<String>, Fast>,
}

use crate::snapshot as snap;

impl TypeTable {
    fn read(&self) -> std::sync::RwLockReadGuard<'_, TableInner> {
        self.inner.read().unwrap_or_else(|e| e.into_inner())
    }

    fn lock(&self) -> std::sync::RwLockWriteGuard<'_, TableInner> {
        // A panic while holding the lock leaves consistent data (every write is one push or insert).
        self.inner.write().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn intern(&self, module: usize, unit: usize, off: TypeRef) -> snap::TypeId {
        if let Some(id) = self.read().ids.get(&(module, unit, off)) {
            return *id;
        }
        let mut t = self.lock();
        if let Some(id) = t.ids.get(&(module, unit, off)) {
            return *id;
        }
        let id = t.types.len() as snap::TypeId;
        t.types.push(None);
        t.origin.push((module, unit, off));
        t.ids.insert((module, unit, off), id);
        id
    }

    /// A table whose names wait for [`TypeTable::resolve`].
    pub fn deferred() -> TypeTable {
        TypeTable { deferred: true, ..Default::default() }
    }

    /// Names what was left unnamed while deferring (types, then symbols of the
    /// addresses rendering asked about), and stops deferring.
    pub fn resolve(&mut self, modules: &super::ModuleSet) {
        if !std::mem::take(&mut self.deferred) {
            return;
        }
        let inner = self.inner.get_mut().unwrap_or_else(|e| e.into_inner());
        // Types by unit: one lock of the module's DWARF per unit.
        let mut by_unit: HashMap<(usize, usize), Vec<usize>> = HashMap::new();
        for (id, t) in inner.types.iter().enumerate() {
            if t.is_some() {
                let (module, unit, _) = inner.origin[id];
                by_unit.entry((module, unit)).or_default().push(id);
            }
        }
        for ((module, unit), ids) in by_unit {
            let offs: Vec<TypeRef> = ids.iter().map(|&id| inner.origin[id].2).collect();
            let Some(names) = modules.type_names(module, unit, &offs) else { continue };
            for (id, name) in ids.into_iter().zip(names) {
                if let Some(t) = inner.types[id].as_mut() {
                    Arc::make_mut(t).name = name;
                }
            }
        }
        for ((addr, code), name) in inner.symbols.iter_mut() {
            *name = if *code { modules.function_name(*addr) } else { modules.data_name(*addr) };
        }
    }

    /// A symbol name, looked up once per (address, kind).
    pub(crate) fn symbol(&self, addr: u64, code: bool, lookup: impl FnOnce(u64) -> Option<String>) -> Option<String> {
        if let Some(hit) = self.read().symbols.get(&(addr, code)) {
            return hit.clone();
        }
        let name = if self.deferred { None } else { lookup(addr) };
        self.lock().symbols.insert((addr, code), name.clone());
        name
    }

    /// The finished table: types never converted become `NotCaptured`; symbols that
    /// named something, sorted by address.
    pub fn finish(self) -> (Vec<snap::Type>, Vec<snap::SymbolName>) {
        let inner = self.inner.into_inner().unwrap_or_else(|e| e.into_inner());
        let types = inner
            .types
            .into_iter()
            .map(|t| {
                t.map(|t| (*t).clone())
                    .unwrap_or(snap::Type { kind: snap::TypeKind::NotCaptured, ..Default::default() })
            })
            .collect();
        let mut symbols: Vec<snap::SymbolName> = inner
            .symbols
            .into_iter()
            .filter_map(|((address, code), name)| Some(snap::SymbolName { address, code, name: name? }))
            .collect();
        symbols.sort_by_key(|s| (s.address, s.code));
        (types, symbols)
    }
}

/// One unit's DWARF types seen through the table: what the renderer reads at capture.
pub(crate) struct DwarfTypes<'a> {
    pub module: usize,
    pub unit: UnitRef<'a, Reader>,
    pub types: &'a mut UnitTypes,
    pub scoped: &'a mut dyn FnMut(TypeRef, String) -> String,
    pub table: &'a TypeTable,
    /// The unit (and offset in it) of a `.debug_info` offset in another unit.
    pub foreign: &'a dyn Fn(gimli::DebugInfoOffset) -> Option<(Arc<gimli::Unit<Reader>>, gimli::UnitOffset)>,
}

impl DwarfTypes<'_> {
    fn unit_key(&self) -> usize {
        self.unit.unit.header.offset().0
    }

    pub(crate) fn intern(&mut self, off: Option<TypeRef>) -> Option<snap::TypeId> {
        let o = off?;
        let local = self.types.local.of(self.table.id);
        if let Some(id) = local.ids.get(&o) {
            return Some(*id);
        }
        let id = self.table.intern(self.module, self.unit_key(), o);
        self.types.local.ids.insert(o, id);
        Some(id)
    }

    pub(crate) fn lang(&mut self) -> snap::Lang {
        match self.types.lang(self.unit) {
            Lang::C => snap::Lang::C,
            Lang::Cpp => snap::Lang::Cpp,
            Lang::Rust => snap::Lang::Rust,
            Lang::Other => snap::Lang::Other,
        }
    }

    fn member(&mut self, m: &Member) -> snap::Member {
        snap::Member { name: m.name.clone(), type_id: self.intern(m.ty), offset: m.offset, bits: m.bits, base: m.base }
    }

    /// The table form of the DWARF type at `off`.
    fn convert(&mut self, off: TypeRef) -> snap::Type {
        let t = self.types.get(self.unit, off);
        // Deferred: named by `TypeTable::resolve` (qualified names read the unit's scopes).
        let name = if self.table.deferred { String::new() } else { self.types.name(self.unit, Some(off), self.scoped) };
        let lang = self.lang();
        let kind = match &*t {
            Ty::Void => snap::TypeKind::Void,
            Ty::Base { size, encoding, .. } => snap::TypeKind::Base { size: *size, encoding: encoding_of(*encoding) },
            Ty::Enum { size, signed, values, class, name: enum_name } => {
                // gdb names a C++ enumerator with its scope: the enum's namespaces and
                // classes (`std::regex_constants::_S_ECMAScript`), and the enum itself
                // for an `enum class` (`Color::Green`).
                let prefix = match (lang, enum_name) {
                    (snap::Lang::Cpp, _) if self.table.deferred => String::new(),
                    (snap::Lang::Cpp, Some(n)) if *class => (self.scoped)(off, format!("{n}::")),
                    (snap::Lang::Cpp, _) => (self.scoped)(off, String::new()),
                    _ => String::new(),
                };
                let values = if prefix.is_empty() {
                    values.clone()
                } else {
                    values.iter().map(|(v, n)| (*v, format!("{prefix}{n}"))).collect()
                };
                snap::TypeKind::Enum { size: *size, signed: *signed, values }
            }
            Ty::Pointer { target, reference, rvalue } => {
                snap::TypeKind::Pointer { target: self.intern(*target), reference: *reference, rvalue: *rvalue }
            }
            Ty::Struct { kind, name, size, members, variants, declaration, params } => snap::TypeKind::Struct {
                kind: match kind {
                    Aggregate::Struct => snap::Aggregate::Struct,
                    Aggregate::Class => snap::Aggregate::Class,
                    Aggregate::Union => snap::Aggregate::Union,
                },
                tag: name.clone(),
                size: *size,
                members: members.iter().map(|m| self.member(m)).collect(),
                variants: variants.as_ref().map(|v| snap::Variants {
                    discr: v.discr.as_ref().map(|d| self.member(d)),
                    variants: v.variants.iter().map(|(x, m)| (*x, self.member(m))).collect(),
                }),
                declaration: *declaration,
                params: params.iter().map(|(n, t)| (n.clone(), self.intern(*t))).collect(),
            },
            Ty::Array { elem, dims } => snap::TypeKind::Array { elem: self.intern(*elem), dims: dims.clone() },
            Ty::Typedef { target, .. } => snap::TypeKind::Typedef { target: self.intern(*target) },
            Ty::Qualified { qualifier, target } => {
                snap::TypeKind::Qualified { qualifier: (*qualifier).to_string(), target: self.intern(*target) }
            }
            Ty::Function { ret, params, variadic } => snap::TypeKind::Function {
                ret: self.intern(*ret),
                params: params.iter().map(|p| self.intern(*p)).collect(),
                variadic: *variadic,
            },
            Ty::Unknown(n) => snap::TypeKind::Unknown(n.clone()),
        };
        snap::Type { name, lang, kind }
    }
}

fn encoding_of(e: gimli::DwAte) -> snap::Encoding {
    match e {
        gimli::DW_ATE_signed => snap::Encoding::Signed,
        gimli::DW_ATE_unsigned => snap::Encoding::Unsigned,
        gimli::DW_ATE_signed_char => snap::Encoding::SignedChar,
        gimli::DW_ATE_unsigned_char => snap::Encoding::UnsignedChar,
        gimli::DW_ATE_float => snap::Encoding::Float,
        gimli::DW_ATE_boolean => snap::Encoding::Boolean,
        gimli::DW_ATE_UTF => snap::Encoding::Utf,
        other => snap::Encoding::Other(other.0),
    }
}

impl DwarfTypes<'_> {
    /// `ty`, the table's type `id`, remembered by this worker. The worker keeps a
    /// copy of its own: workers that cloned one shared `Arc` for every value they
    /// render bounced its reference count's cache line between cores (a quarter of
    /// the lookup's time with two workers on a thousand threads' variables).
    fn keep(&mut self, id: snap::TypeId, ty: Arc<snap::Type>) -> Arc<snap::Type> {
        let own = Arc::new((*ty).clone());
        self.types.local.of(self.table.id).types.insert(id, own.clone());
        own
    }
}

impl crate::snapshot::values::TypeSource for DwarfTypes<'_> {
    fn get(&mut self, id: snap::TypeId) -> Option<Arc<snap::Type>> {
        let local = self.types.local.of(self.table.id);
        if let Some(ty) = local.types.get(&id) {
            return Some(ty.clone());
        }
        let (module, unit, off) = {
            let t = self.table.read();
            if let Some(Some(ty)) = t.types.get(id as usize) {
                let ty = ty.clone();
                drop(t);
                return Some(self.keep(id, ty));
            }
            *t.origin.get(id as usize)?
        };
        // Ids handed out while rendering this unit refer to this unit's DIEs.
        if module != self.module || unit != self.unit_key() {
            return None;
        }
        let ty = Arc::new(self.convert(off));
        let ty = {
            let mut t = self.table.lock();
            let slot = t.types.get_mut(id as usize)?;
            slot.get_or_insert(ty).clone()
        };
        Some(self.keep(id, ty))
    }
}
