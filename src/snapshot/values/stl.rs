//! libstdc++'s smart pointers, `std::optional`, `std::variant`, `std::tuple` and
//! node-based containers (`std::map`, `std::set`, `std::unordered_map`, `std::list`,
//! their multi- variants, `std::deque`) rendered
//! as gdb's libstdc++ pretty printers print them: `std::map with 2 elements = {[1] =
//! 10, [2] = 20}`, `std::shared_ptr<int> (use count 2, weak count 1) = {get() = 0x…}`.
//! Nodes are walked from the snapshot's memory, never more than `max_elements`.

use super::*;

/// Folklore: libstdc++'s `_Rb_tree_node_base` is {int _M_color; 4 bytes of padding;
/// _M_parent, _M_left, _M_right}; a node's value follows it.
const RB_PARENT: u64 = 8;
const RB_LEFT: u64 = 16;
const RB_RIGHT: u64 = 24;
const RB_VALUE: u64 = 32;
/// `_List_node_base` is {_M_next, _M_prev}; a list node's value follows it.
const LIST_VALUE: u64 = 16;
/// A hash-table node (`_Hash_node_base`) is {_M_nxt}; its value follows it.
const HASH_VALUE: u64 = 8;
/// `_Sp_counted_base` is {vptr; _Atomic_word _M_use_count; _Atomic_word _M_weak_count}.
const SP_USE_COUNT: u64 = 8;

/// gdb's count of a container's elements: `1 element`, `3 elements`.
fn elements(count: u64) -> String {
    if count == 1 { "1 element".into() } else { format!("{count} elements") }
}

/// The container families by the tag's name (unqualified, template arguments cut).
#[derive(Clone, Copy, PartialEq)]
enum Family {
    Tree { pairs: bool },
    Hash { pairs: bool },
    List,
}

/// The libstdc++ class templates gdb's printers know and bt renders their way (here
/// and in `library.rs`).
const PRINTED: &[&str] = &[
    "basic_string",
    "vector",
    "unique_ptr",
    "shared_ptr",
    "weak_ptr",
    "optional",
    "map",
    "multimap",
    "set",
    "multiset",
    "unordered_map",
    "unordered_multimap",
    "unordered_set",
    "unordered_multiset",
    "list",
    "deque",
    "tuple",
    "pair",
    "__normal_iterator",
    "variant",
];

/// The printed templates whose gdb printer has no children: their text is the whole
/// value (a variant holding one shows `= {"text"}`, holding a container `containing …`).
const CHILDLESS: &[&str] = &["basic_string", "pair", "__normal_iterator"];

/// Class templates whose defaulted arguments gdb's libstdc++ type printers hide
/// (`std::vector<int>`, `std::map<int, long>`), with the defaults: `{0}`, `{1}` stand
/// for the first arguments as DWARF names them.
const DEFAULTED: &[(&str, &[Option<&str>])] = &[
    ("std::vector", &[None, Some("std::allocator<{0}>")]),
    ("std::list", &[None, Some("std::allocator<{0}>")]),
    ("std::deque", &[None, Some("std::allocator<{0}>")]),
    ("std::forward_list", &[None, Some("std::allocator<{0}>")]),
    ("std::unique_ptr", &[None, Some("std::default_delete<{0}>")]),
    ("std::basic_string", &[None, Some("std::char_traits<{0}>"), Some("std::allocator<{0}>")]),
    ("std::map", &[None, None, Some("std::less<{0}>"), Some("std::allocator<std::pair<{0} const, {1}>>")]),
    ("std::multimap", &[None, None, Some("std::less<{0}>"), Some("std::allocator<std::pair<{0} const, {1}>>")]),
    ("std::set", &[None, Some("std::less<{0}>"), Some("std::allocator<{0}>")]),
    ("std::multiset", &[None, Some("std::less<{0}>"), Some("std::allocator<{0}>")]),
    (
        "std::unordered_map",
        &[
            None,
            None,
            Some("std::hash<{0}>"),
            Some("std::equal_to<{0}>"),
            Some("std::allocator<std::pair<{0} const, {1}>>"),
        ],
    ),
    (
        "std::unordered_multimap",
        &[
            None,
            None,
            Some("std::hash<{0}>"),
            Some("std::equal_to<{0}>"),
            Some("std::allocator<std::pair<{0} const, {1}>>"),
        ],
    ),
    ("std::unordered_set", &[None, Some("std::hash<{0}>"), Some("std::equal_to<{0}>"), Some("std::allocator<{0}>")]),
    (
        "std::unordered_multiset",
        &[None, Some("std::hash<{0}>"), Some("std::equal_to<{0}>"), Some("std::allocator<{0}>")],
    ),
];

/// The strings gdb's type printers name outright, by character type.
const STRINGS: &[(&str, &str)] = &[
    ("char", "std::string"),
    ("wchar_t", "std::wstring"),
    ("char8_t", "std::u8string"),
    ("char16_t", "std::u16string"),
    ("char32_t", "std::u32string"),
];

/// A type name compared as text: gdb's spelling, no space between closing brackets.
fn comparable(name: &str) -> String {
    gdb_spelling(name).replace(" >", ">")
}

impl Renderer<'_> {
    /// Whether a C++ value of type `ty` is one a libstdc++ pretty printer shows.
    pub(super) fn has_printer(&mut self, ty: Option<TypeId>) -> bool {
        if self.lang != Lang::Cpp {
            return false;
        }
        match self.strip(ty) {
            Some((_, t)) => match &t.kind {
                TypeKind::Struct { tag: Some(tag), .. } => PRINTED.contains(&tag.split('<').next().unwrap_or(tag)),
                _ => false,
            },
            None => false,
        }
    }

    /// libstdc++ smart pointers, optional and node containers; None for any other type
    /// or a layout that does not match.
    pub(super) fn libstdcxx(
        &mut self,
        off: TypeId,
        name: &str,
        members: &[Member],
        params: &[(String, Option<TypeId>)],
        data: &Data,
        depth: u32,
    ) -> Option<(Value, String)> {
        let base = name.split('<').next().unwrap_or(name);
        if !PRINTED.contains(&base) {
            return None;
        }
        // gdb names the container by its qualified name without template arguments
        // (`std::map`, `std::__cxx11::list`).
        let full = self.type_name(Some(off));
        let qualified = full.split('<').next().unwrap_or(&full).to_string();
        let param = |n: &str| params.iter().find(|(p, _)| p == n).and_then(|p| p.1);
        match base {
            "unique_ptr" => {
                let ptr = self.first_pointer(Some(off), data, 0)?;
                let tp = self.type_name(param("_Tp"));
                Some((
                    Value::Pointer { address: ptr, symbol: None, target: None },
                    format!("std::unique_ptr<{tp}> = {{get() = {ptr:#x}}}"),
                ))
            }
            "shared_ptr" | "weak_ptr" => {
                let (p, _) = self.path(members, data, &["_M_ptr"])?;
                let (pi, _) = self.path(members, data, &["_M_refcount", "_M_pi"])?;
                let (ptr, pi) = (p.uint(8)?, pi.uint(8)?);
                let tp = self.type_name(param("_Tp"));
                let state = if pi == 0 {
                    "(empty)".to_string()
                } else {
                    match self.read(pi.wrapping_add(SP_USE_COUNT), 8) {
                        Some(b) if b.len() == 8 => {
                            let used = u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as i32;
                            let weak = u32::from_le_bytes([b[4], b[5], b[6], b[7]]) as i32;
                            // The weak count holds one more while any owner lives.
                            if used == 0 {
                                format!("(expired, weak count {weak})")
                            } else {
                                format!("(use count {used}, weak count {})", weak - 1)
                            }
                        }
                        _ => format!("(control block {})", unreadable_text(pi)),
                    }
                };
                let text = format!("std::{base}<{tp}> {state} = {{get() = {ptr:#x}}}");
                Some((Value::Pointer { address: ptr, symbol: None, target: None }, text))
            }
            "optional" => {
                let (engaged, _) = self.path(members, data, &["_M_payload", "_M_engaged"])?;
                let tp = self.recognize(param("_Tp"), 0);
                if engaged.uint(1)? == 0 {
                    return Some((Value::Struct(vec![]), format!("std::optional<{tp}> [no contained value]")));
                }
                let (v, vty) = self.path(members, data, &["_M_payload", "_M_payload", "_M_value"])?;
                let (value, text) = self.render(vty, &v, depth);
                let field = Field { name: "contained value".into(), value };
                Some((Value::Struct(vec![field]), format!("std::optional<{tp}> = {{[contained value] = {text}}}")))
            }
            "map" | "multimap" => {
                self.container(Family::Tree { pairs: true }, &qualified, members, params, data, depth)
            }
            "set" | "multiset" => {
                self.container(Family::Tree { pairs: false }, &qualified, members, params, data, depth)
            }
            "unordered_map" | "unordered_multimap" => {
                self.container(Family::Hash { pairs: true }, &qualified, members, params, data, depth)
            }
            "unordered_set" | "unordered_multiset" => {
                self.container(Family::Hash { pairs: false }, &qualified, members, params, data, depth)
            }
            "list" => self.container(Family::List, &qualified, members, params, data, depth),
            "deque" => self.deque(&qualified, members, param("_Tp"), data, depth),
            // A vector's or string's iterator: the element it points at.
            "__normal_iterator" => {
                let (p, pty) = self.path(members, data, &["_M_current"])?;
                let ptr = p.uint(8)?;
                if ptr == 0 {
                    return Some((
                        Value::Pointer { address: 0, symbol: None, target: None },
                        "non-dereferenceable iterator for std::vector".into(),
                    ));
                }
                let target = match &self.strip(pty)?.1.kind {
                    TypeKind::Pointer { target, .. } => *target,
                    _ => return None,
                };
                Some(self.value_at(target, ptr, depth))
            }
            // Its `first` and `second`, without the empty `__pair_base`.
            "pair" => {
                let mut fields = Vec::new();
                let mut parts = Vec::new();
                for m in members.iter().filter(|m| !m.base) {
                    let fname = m.name.clone()?;
                    let (value, text) = self.member_value(m, data, depth);
                    parts.push(format!("{fname} = {text}"));
                    fields.push(Field { name: fname, value });
                }
                Some((Value::Struct(fields), format!("{{{}}}", parts.join(", "))))
            }
            "variant" => self.variant(&qualified, members, data, depth),
            "tuple" => {
                let mut items = Vec::new();
                let mut parts = Vec::new();
                self.tuple_elements(members, data, depth, &mut items, &mut parts, 0)?;
                if items.is_empty() {
                    return Some((Value::Struct(vec![]), "empty std::tuple".into()));
                }
                let text: Vec<String> = parts.iter().enumerate().map(|(i, t)| format!("[{}] = {t}", i + 1)).collect();
                let fields =
                    items.into_iter().enumerate().map(|(i, value)| Field { name: format!("{}", i + 1), value });
                Some((Value::Struct(fields.collect()), format!("std::tuple containing = {{{}}}", text.join(", "))))
            }
            _ => None,
        }
    }

    /// `std::variant`: gdb's `std::variant<int, std::string> [index 1] = {"text"}`.
    /// The alternatives are read from the union's chain (`_M_u` is a
    /// `_Variadic_union<T, Rest…>` of `_M_first`, an `_Uninitialized<T>`, and
    /// `_M_rest`); the held one starts the union.
    fn variant(&mut self, qualified: &str, members: &[Member], data: &Data, depth: u32) -> Option<(Value, String)> {
        let (u, uty) = self.deep_member(members, data, "_M_u", 0, &mut 256)?;
        let (ix, ixty) = self.deep_member(members, data, "_M_index", 0, &mut 256)?;
        let index = ix.uint(usize::try_from(self.size(ixty)?).ok()?)?;
        let mut alternatives = Vec::new();
        let mut cur = uty;
        while alternatives.len() < 256 {
            let ms = self.members_of(cur)?;
            let Some(first) = ms.iter().find(|m| m.name.as_deref() == Some("_M_first")) else { break };
            let (_, t) = self.strip(first.type_id)?;
            let TypeKind::Struct { params, .. } = &t.kind else { return None };
            alternatives.push(params.first()?.1);
            cur = ms.iter().find(|m| m.name.as_deref() == Some("_M_rest"))?.type_id;
        }
        let names: Vec<String> = alternatives.iter().map(|a| self.recognize(*a, 0)).collect();
        let name = format!("{qualified}<{}>", names.join(", "));
        let Some(&alt) = usize::try_from(index).ok().and_then(|i| alternatives.get(i)) else {
            return Some((Value::Struct(vec![]), format!("{name} [no contained value]")));
        };
        let held = u.slice(0, self.size(alt)?)?;
        let (value, text) = self.render(alt, &held, depth);
        let children = self.has_printer(alt)
            && self.strip(alt).is_some_and(|(_, t)| match &t.kind {
                TypeKind::Struct { tag: Some(tag), .. } => !CHILDLESS.contains(&tag.split('<').next().unwrap_or(tag)),
                _ => false,
            });
        let text = if children {
            format!("{name} [index {index}] containing {text}")
        } else {
            format!("{name} [index {index}] = {{{text}}}")
        };
        Some((Value::Struct(vec![Field { name: "contained value".into(), value }]), text))
    }

    /// A member by name, searched through base classes at any depth (a variant's
    /// storage is six bases down). `budget` bounds the bases visited: hostile DWARF may
    /// give every class many bases.
    fn deep_member(
        &mut self,
        members: &[Member],
        data: &Data,
        name: &str,
        depth: u32,
        budget: &mut usize,
    ) -> Option<(Data, Option<TypeId>)> {
        if let Some(m) = members.iter().find(|m| !m.base && m.name.as_deref() == Some(name)) {
            let size = self.size(m.type_id)?;
            return Some((data.slice(m.offset, size)?, m.type_id));
        }
        if depth >= 16 {
            return None;
        }
        for b in members.iter().filter(|m| m.base) {
            if *budget == 0 {
                return None;
            }
            *budget -= 1;
            let (Some(bm), Some(size)) = (self.members_of(b.type_id), self.size(b.type_id)) else { continue };
            let Some(bd) = data.slice(b.offset, size) else { continue };
            if let Some(found) = self.deep_member(&bm, &bd, name, depth + 1, budget) {
                return Some(found);
            }
        }
        None
    }

    /// A type's name as gdb's libstdc++ type printers show it inside a printer's text:
    /// `std::string`, `std::vector<int>`, `std::map<int, long>`, `std::list<…>`
    /// (inline namespaces dropped); defaulted template arguments hidden only where
    /// they are the defaults; anything else as gdb spells it.
    fn recognize(&mut self, ty: Option<TypeId>, depth: u32) -> String {
        let name = self.type_name(ty);
        let params = match ty.and_then(|id| self.types.get(id)) {
            Some(t) => match &t.kind {
                TypeKind::Struct { tag: Some(_), params, .. } => params.clone(),
                _ => return gdb_spelling(&name),
            },
            None => return gdb_spelling(&name),
        };
        let template = name.split('<').next().unwrap_or(&name).replace("::__cxx11::", "::");
        let Some((_, defaults)) = DEFAULTED.iter().find(|(t, _)| *t == template) else { return gdb_spelling(&name) };
        if depth > 8 || params.len() != defaults.len() {
            return gdb_spelling(&name);
        }
        let raw: Vec<String> = params.iter().map(|(_, t)| self.type_name(*t)).collect();
        if template == "std::basic_string" {
            let same = comparable(&raw[1]) == comparable(&format!("std::char_traits<{}>", raw[0]))
                && comparable(&raw[2]) == comparable(&format!("std::allocator<{}>", raw[0]));
            if let Some((_, s)) = STRINGS.iter().find(|(c, _)| same && *c == raw[0]) {
                return s.to_string();
            }
        }
        let mut shown = Vec::new();
        for (i, d) in defaults.iter().enumerate() {
            match d {
                Some(d) => {
                    let want = d.replace("{0}", &raw[0]).replace("{1}", raw.get(1).map_or("", |s| s.as_str()));
                    if comparable(&raw[i]) != comparable(&want) {
                        return gdb_spelling(&name);
                    }
                }
                None => shown.push(self.recognize(params[i].1, depth + 1)),
            }
        }
        format!("{template}<{}>", shown.join(", "))
    }

    /// A tuple's elements in order: each `_Tuple_impl<N, …>` holds its element in its
    /// `_Head_base<N, …>` base (`_M_head_impl`) and the rest in its `_Tuple_impl<N+1, …>` base.
    fn tuple_elements(
        &mut self,
        members: &[Member],
        data: &Data,
        depth: u32,
        items: &mut Vec<Value>,
        parts: &mut Vec<String>,
        level: usize,
    ) -> Option<()> {
        if level > 64 {
            return None;
        }
        let mut tail = None;
        for m in members.iter().filter(|m| m.base) {
            let bname = self.type_name(m.type_id);
            let size = self.size(m.type_id).unwrap_or(0);
            // An empty base (a stateless element) may have size 0 or 1.
            let Some(d) = data.slice(m.offset, size).or_else(|| data.slice(m.offset, 0)) else { continue };
            if bname.starts_with("std::_Head_base<") {
                let hm = self.members_of(m.type_id)?;
                match self.path(&hm, &d, &["_M_head_impl"]) {
                    Some((v, vty)) => {
                        let (value, text) = self.render(vty, &v, depth);
                        items.push(value);
                        parts.push(text);
                    }
                    None => return None,
                }
            } else if bname.starts_with("std::_Tuple_impl<") {
                tail = Some((m.type_id, d));
            }
        }
        if let Some((ty, d)) = tail {
            let tm = self.members_of(ty)?;
            self.tuple_elements(&tm, &d, depth, items, parts, level + 1)?;
        }
        Some(())
    }

    /// A deque: its elements in order, buffer after buffer through its map of nodes
    /// (`_M_start` and `_M_finish` iterators: {_M_cur, _M_first, _M_last, _M_node}).
    fn deque(
        &mut self,
        qualified: &str,
        members: &[Member],
        elem: Option<TypeId>,
        data: &Data,
        depth: u32,
    ) -> Option<(Value, String)> {
        let esize = self.size(elem).filter(|s| *s > 0)?;
        let word = |d: &Data, i: u64| d.slice(i * 8, 8).and_then(|w| w.uint(8));
        let (start, _) = self.path(members, data, &["_M_impl", "_M_start"])?;
        let (finish, _) = self.path(members, data, &["_M_impl", "_M_finish"])?;
        let (s_cur, s_last, s_node) = (word(&start, 0)?, word(&start, 2)?, word(&start, 3)?);
        let (f_cur, f_first, f_node) = (word(&finish, 0)?, word(&finish, 1)?, word(&finish, 3)?);
        // Folklore: libstdc++'s __deque_buf_size: 512 bytes of elements per buffer.
        let per_buffer = if esize < 512 { 512 / esize } else { 1 };
        let nodes = (f_node.wrapping_sub(s_node) as i64) / 8;
        let count = (per_buffer as i64)
            .saturating_mul(nodes - 1)
            .saturating_add((f_cur.wrapping_sub(f_first) / esize) as i64)
            .saturating_add((s_last.wrapping_sub(s_cur) / esize) as i64);
        if !(0..1 << 40).contains(&count) {
            return Some((Value::Unavailable("corrupt deque".into()), format!("<corrupt {qualified}>")));
        }
        let count = count as u64;
        if count == 0 {
            return Some((Value::Array { length: 0, items: vec![] }, format!("{qualified} with 0 elements")));
        }
        let shown = (count as usize).min(self.opts.max_elements);
        let (mut cur, mut last, mut node) = (s_cur, s_last, s_node);
        let mut items = Vec::with_capacity(shown);
        let mut parts = Vec::with_capacity(shown);
        let mut complete = true;
        for i in 0..shown {
            let (v, t) = self.value_at(elem, cur, depth);
            items.push(v);
            parts.push(t);
            cur = cur.wrapping_add(esize);
            if cur == last && i + 1 < shown {
                node = node.wrapping_add(8);
                match self.read(node, 8) {
                    Some(b) if b.len() == 8 => {
                        cur = u64::from_le_bytes(b[..8].try_into().unwrap_or([0; 8]));
                        last = cur.wrapping_add(per_buffer * esize);
                    }
                    _ => {
                        parts.push(unreadable_text(node));
                        complete = false;
                        break;
                    }
                }
            }
        }
        let more = if complete && (count as usize) > shown { "..." } else { "" };
        let text = format!("{qualified} with {} = {{{}{more}}}", elements(count), parts.join(", "));
        Some((Value::Array { length: count, items }, text))
    }

    /// A node container: its count, then its first `max_elements` nodes in iteration
    /// order, each `[key] = value` (maps) or `[i] = value`.
    #[allow(clippy::too_many_arguments)]
    fn container(
        &mut self,
        family: Family,
        qualified: &str,
        members: &[Member],
        params: &[(String, Option<TypeId>)],
        data: &Data,
        depth: u32,
    ) -> Option<(Value, String)> {
        let param = |n: &str| params.iter().find(|(p, _)| p == n).and_then(|p| p.1);
        let (key, mapped) = match family {
            Family::Tree { pairs: true } | Family::Hash { pairs: true } => (param("_Key")?, param("_Tp")),
            Family::Tree { pairs: false } => (param("_Key")?, None),
            // std::unordered_set<_Value, …>.
            Family::Hash { pairs: false } => (param("_Value").or_else(|| param("_Key"))?, None),
            Family::List => (param("_Tp")?, None),
        };
        let (count, first, value_at) = match family {
            Family::Tree { .. } => {
                let (n, _) = self.path(members, data, &["_M_t", "_M_impl", "_M_node_count"])?;
                let (h, _) = self.path(members, data, &["_M_t", "_M_impl", "_M_header"])?;
                (n.uint(8)?, h.slice(RB_LEFT, 8)?.uint(8)?, RB_VALUE)
            }
            Family::Hash { .. } => {
                let (n, _) = self.path(members, data, &["_M_h", "_M_element_count"])?;
                let (b, _) = self.path(members, data, &["_M_h", "_M_before_begin", "_M_nxt"])?;
                let align = self.align_of(Some(key))?.max(match mapped {
                    Some(v) => self.align_of(Some(v))?,
                    None => 1,
                });
                (n.uint(8)?, b.uint(8)?, HASH_VALUE.next_multiple_of(align))
            }
            Family::List => {
                let (n, _) = self.path(members, data, &["_M_impl", "_M_node", "_M_size"])?;
                let (h, _) = self.path(members, data, &["_M_impl", "_M_node", "_M_next"])?;
                (n.uint(8)?, h.uint(8)?, LIST_VALUE)
            }
        };
        // The mapped value of a pair<const K, V> sits after the key, at V's alignment.
        let mapped_at = match mapped {
            Some(v) => Some(self.size(Some(key))?.next_multiple_of(self.align_of(Some(v))?)),
            None => None,
        };
        let noun = match family {
            Family::List if count == 0 => {
                return Some((Value::Array { length: 0, items: vec![] }, format!("empty {qualified}")));
            }
            Family::List => String::new(),
            _ => format!(" with {}", elements(count)),
        };
        if count == 0 {
            return Some((Value::Array { length: 0, items: vec![] }, format!("{qualified}{noun}")));
        }
        let shown = (count as usize).min(self.opts.max_elements);
        let mut items = Vec::with_capacity(shown);
        let mut parts = Vec::with_capacity(shown);
        let mut node = first;
        let mut complete = true;
        for i in 0..shown {
            if node == 0 {
                parts.push(unreadable_text(node));
                complete = false;
                break;
            }
            let at = node.wrapping_add(value_at);
            let (kv, kt) = self.value_at(Some(key), at, depth);
            match (mapped, mapped_at) {
                (Some(v), Some(off)) => {
                    let (vv, vt) = self.value_at(Some(v), at.wrapping_add(off), depth);
                    parts.push(format!("[{kt}] = {vt}"));
                    items.push(Value::Struct(vec![
                        Field { name: "key".into(), value: kv },
                        Field { name: "value".into(), value: vv },
                    ]));
                }
                _ => {
                    parts.push(format!("[{i}] = {kt}"));
                    items.push(kv);
                }
            }
            if i + 1 == shown {
                break;
            }
            match self.next_node(family, node) {
                Some(n) => node = n,
                None => {
                    parts.push(unreadable_text(node));
                    complete = false;
                    break;
                }
            }
        }
        let more = if complete && (count as usize) > shown { "..." } else { "" };
        let text = format!("{qualified}{noun} = {{{}{more}}}", parts.join(", "));
        Some((Value::Array { length: count, items }, text))
    }

    /// The node after `node` in iteration order: a tree's in-order successor
    /// (`_Rb_tree_increment`), a list's or hash table's next link.
    fn next_node(&mut self, family: Family, node: u64) -> Option<u64> {
        let word = |r: &mut Self, addr: u64| -> Option<u64> {
            let b = r.read(addr, 8)?;
            Some(u64::from_le_bytes(b.get(..8)?.try_into().ok()?))
        };
        match family {
            Family::List | Family::Hash { .. } => word(self, node),
            Family::Tree { .. } => {
                let right = word(self, node.wrapping_add(RB_RIGHT))?;
                if right != 0 {
                    let mut n = right;
                    // A corrupt tree must not make this loop forever.
                    for _ in 0..64 {
                        let left = word(self, n.wrapping_add(RB_LEFT))?;
                        if left == 0 {
                            return Some(n);
                        }
                        n = left;
                    }
                    return None;
                }
                let mut n = node;
                let mut parent = word(self, n.wrapping_add(RB_PARENT))?;
                for _ in 0..64 {
                    if word(self, parent.wrapping_add(RB_RIGHT))? != n {
                        return Some(parent);
                    }
                    n = parent;
                    parent = word(self, n.wrapping_add(RB_PARENT))?;
                }
                None
            }
        }
    }

    /// The value of type `ty` stored at `addr`, rendered.
    fn value_at(&mut self, ty: Option<TypeId>, addr: u64, depth: u32) -> (Value, String) {
        match self.read_value(ty, addr) {
            Ok(d) => self.render(ty, &d, depth),
            Err(a) => (Value::Unreadable { address: a }, unreadable_text(a)),
        }
    }

    /// A type's alignment, from its base types (None when a part is unknown).
    fn align_of(&mut self, ty: Option<TypeId>) -> Option<u64> {
        // A budget of types looked at: DWARF from a hostile binary may nest wide
        // structs deeply, and depth alone would not bound the walk.
        self.align_depth(ty, 0, &mut 4096)
    }

    fn align_depth(&mut self, ty: Option<TypeId>, depth: usize, budget: &mut usize) -> Option<u64> {
        if depth > MAX_CHAIN || *budget == 0 {
            return None;
        }
        *budget -= 1;
        let (_, t) = self.strip(ty)?;
        match &t.kind {
            TypeKind::Base { size, .. } | TypeKind::Enum { size, .. } => Some((*size).clamp(1, 16)),
            TypeKind::Pointer { .. } => Some(8),
            TypeKind::Array { elem, .. } => self.align_depth(*elem, depth + 1, budget),
            TypeKind::Struct { members, .. } => {
                // Members of no known alignment (a type the snapshot lacks) are passed
                // over; an empty class aligns to 1.
                let mut align = 1;
                for m in members.iter().filter(|m| m.bits.is_none()) {
                    if let Some(a) = self.align_depth(m.type_id, depth + 1, budget) {
                        align = align.max(a);
                    }
                    if align >= 16 {
                        break;
                    }
                }
                // Out of budget: unknown, and the container is shown raw.
                (*budget > 0 || align >= 16).then_some(align)
            }
            _ => None,
        }
    }
}
