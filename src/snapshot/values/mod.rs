//! Values: the bytes of a variable rendered through its type (from the snapshot's
//! type table) into a structured [`Value`] and gdb's text for it. The one renderer:
//! capture renders through it (types converted from DWARF on demand, the target's
//! memory) and so does re-rendering a saved snapshot (its type table, its kept
//! memory), so both give the same text for the same bytes.
//!
//! Everything is bounded: pointer depth, array elements, string length, bytes read
//! per value and per frame. Missing bytes are said (`<optimized out>`,
//! `<error: Cannot access memory at address 0x…>`), never invented.

use super::{Encoding, Field, Lang, Location, Member, Memory, Type, TypeId, TypeKind, Value, Variable, Variants};
use std::fmt::Write;
use std::sync::Arc;

/// Where the renderer finds types: the snapshot's table, or (at capture) DWARF
/// converted into the table on first use.
pub trait TypeSource {
    /// The type `id`; None when there is no such type.
    fn get(&mut self, id: TypeId) -> Option<Arc<Type>>;
}

/// A finished type table (`Snapshot::types`) as a [`TypeSource`].
pub struct Table(Vec<Arc<Type>>);

impl Table {
    pub fn new(types: &[Type]) -> Table {
        Table(types.iter().cloned().map(Arc::new).collect())
    }
}

impl TypeSource for Table {
    fn get(&mut self, id: TypeId) -> Option<Arc<Type>> {
        self.0.get(id as usize).cloned()
    }
}

/// Longest typedef / qualifier chain followed; deeper means a corrupt table.
const MAX_CHAIN: usize = 32;
/// Bytes one frame's variables may read (pointers followed, strings, arrays). A frame
/// is an inlined chain and its physical frame: they share the budget, in order.
pub const FRAME_READ_BUDGET: usize = 1 << 20;
/// Deepest nesting of values rendered (struct in array in struct …).
const MAX_NESTING: u32 = 200;
/// Values (nodes of the structured value) one variable may render. Depth alone
/// does not bound a rendering: a corrupt table whose struct holds itself twice
/// is 2^200 nodes deep 200 levels. gdb's 200 elements of 200 elements fit.
pub const MAX_NODES_PER_VALUE: usize = 100_000;
/// Values all the variables of one snapshot may render (shared evenly by the
/// threads that render a snapshot with many stacks).
pub const MAX_NODES_PER_SNAPSHOT: usize = 4_000_000;

/// Nodes that objects reached only through pointers (the structured value; text never
/// follows a pointer) may add to one snapshot's stacks: its threads share one such
/// bound, a Go program's goroutines another, evenly. Without it the cost grew with
/// the stacks: each of a thousand goroutines followed its `*g`, `*sudog` and `*hchan`
/// three deep into the runtime's structures, four million values and half a second
/// while the target was held.
pub const FOLLOW_NODES_PER_SNAPSHOT: usize = 200_000;

/// One stack's share of [`FOLLOW_NODES_PER_SNAPSHOT`] among `stacks` (capture and
/// the rendering from a snapshot use the same, so they follow the same pointers).
pub fn follow_share(stacks: usize) -> usize {
    FOLLOW_NODES_PER_SNAPSHOT / stacks.max(1)
}

/// Bounds of variable capture.
#[derive(Debug, Clone)]
pub struct VariableOptions {
    /// How many pointers deep the structured value follows (text never follows, like gdb).
    pub max_depth: u32,
    /// How many pointers deep the bytes of pointed-to objects are read (and so kept in
    /// the snapshot), at least `max_depth`: one level more than is shown lets a viewer
    /// open the next object of a list or tree from the snapshot alone.
    pub keep_depth: u32,
    /// Array elements rendered (gdb's `print elements`, 200).
    pub max_elements: usize,
    /// Characters of a C string read (also 200 in gdb).
    pub max_string: usize,
    /// Largest single value read, in bytes.
    pub max_value_bytes: usize,
    /// gdb's `repeats` threshold: runs this long print as `<repeats N times>`.
    pub repeats: usize,
}

impl Default for VariableOptions {
    fn default() -> Self {
        VariableOptions {
            max_depth: 3,
            keep_depth: 4,
            max_elements: 200,
            max_string: 200,
            max_value_bytes: 1 << 16,
            repeats: 10,
        }
    }
}

/// Bytes of a value with a validity mask (false: optimized out / not available).
#[derive(Debug, Clone, Default)]
pub struct Data {
    pub bytes: Vec<u8>,
    pub valid: Vec<bool>,
    /// Address of byte 0 when the value lives in memory.
    pub address: Option<u64>,
}

impl Data {
    pub fn known(bytes: Vec<u8>, address: Option<u64>) -> Data {
        let valid = vec![true; bytes.len()];
        Data { bytes, valid, address }
    }

    pub fn slice(&self, off: u64, len: u64) -> Option<Data> {
        let off = usize::try_from(off).ok()?;
        let end = off.checked_add(usize::try_from(len).ok()?)?;
        if end > self.bytes.len() {
            return None;
        }
        Some(Data {
            bytes: self.bytes[off..end].to_vec(),
            valid: self.valid[off..end].to_vec(),
            address: self.address.map(|a| a.wrapping_add(off as u64)),
        })
    }

    fn all_valid(&self) -> bool {
        self.valid.iter().all(|v| *v)
    }

    pub fn uint(&self, len: usize) -> Option<u64> {
        if self.bytes.len() < len || len > 8 || !self.valid[..len].iter().all(|v| *v) {
            return None;
        }
        let mut b = [0u8; 8];
        b[..len].copy_from_slice(&self.bytes[..len]);
        Some(u64::from_le_bytes(b))
    }
}

/// Everything a rendering needs: the types, the language of the unit they come
/// from, the memory.
pub struct Renderer<'a> {
    pub types: &'a mut dyn TypeSource,
    pub lang: Lang,
    pub memory: &'a dyn Memory,
    pub opts: &'a VariableOptions,
    /// Names a code address (function pointers): `callback`, `main+4`.
    pub symbol: &'a dyn Fn(u64) -> Option<String>,
    /// Names a data address (`global_counter`, `table+8`).
    pub data_symbol: &'a dyn Fn(u64) -> Option<String>,
    /// Bytes this frame may still read.
    pub budget: usize,
    /// Levels of `render` entered and not left yet (start at 0).
    pub nesting: u32,
    /// Values this rendering may still produce (start at [`MAX_NODES_PER_VALUE`]).
    pub nodes: usize,
    /// Values that objects reached through pointers may still add (the stack's share
    /// of [`FOLLOW_NODES_PER_SNAPSHOT`]); at 0 pointers are no longer followed.
    pub follow: usize,
    /// `nodes` when the outermost pointer being followed was entered.
    pub follow_from: Option<usize>,
}

const OPT_OUT: &str = "<optimized out>";

impl Renderer<'_> {
    /// Strips typedefs and qualifiers.
    pub fn strip(&mut self, mut ty: Option<TypeId>) -> Option<(TypeId, Arc<Type>)> {
        for _ in 0..MAX_CHAIN {
            let id = ty?;
            let t = self.types.get(id)?;
            match &t.kind {
                TypeKind::Typedef { target } | TypeKind::Qualified { target, .. } => ty = *target,
                _ => return Some((id, t)),
            }
        }
        None
    }

    /// Size in bytes of a type (None: unknown or unsized).
    pub fn size(&mut self, ty: Option<TypeId>) -> Option<u64> {
        self.size_depth(ty, 0)
    }

    fn size_depth(&mut self, ty: Option<TypeId>, depth: usize) -> Option<u64> {
        if depth > MAX_CHAIN {
            return None;
        }
        let (_, t) = self.strip(ty)?;
        match &t.kind {
            TypeKind::Base { size, .. } | TypeKind::Enum { size, .. } => Some(*size),
            TypeKind::Pointer { .. } => Some(8),
            TypeKind::Struct { size, .. } => *size,
            TypeKind::Array { elem, dims } => {
                let es = self.size_depth(*elem, depth + 1)?;
                dims.iter().try_fold(es, |acc, d| acc.checked_mul((*d)?))
            }
            _ => None,
        }
    }

    fn read(&mut self, addr: u64, len: usize) -> Option<Vec<u8>> {
        let len = len.min(self.budget);
        if len == 0 {
            return Some(Vec::new());
        }
        let mut buf = vec![0u8; len];
        let n = self.memory.read(addr, &mut buf);
        self.budget = self.budget.saturating_sub(n);
        if n == 0 {
            return None;
        }
        buf.truncate(n);
        Some(buf)
    }

    /// Reads a value of type `ty` at `addr` (bounded by `max_value_bytes`).
    pub fn read_value(&mut self, ty: Option<TypeId>, addr: u64) -> Result<Data, u64> {
        let size = self.size(ty).unwrap_or(8).min(self.opts.max_value_bytes as u64) as usize;
        match self.read(addr, size) {
            Some(b) if b.len() == size => Ok(Data::known(b, Some(addr))),
            Some(b) if !b.is_empty() => {
                // Partially readable: the unreadable tail is marked, not zero-filled.
                let mut d = Data::known(b, Some(addr));
                d.valid.resize(size, false);
                d.bytes.resize(size, 0);
                Ok(d)
            }
            _ => Err(addr),
        }
    }

    pub fn type_name(&mut self, ty: Option<TypeId>) -> String {
        match ty {
            None => "void".into(),
            Some(id) => self.types.get(id).map(|t| t.name.clone()).unwrap_or_else(|| "?".into()),
        }
    }

    /// Renders a variable from its `type_id` and `location` into `text` and `value`;
    /// one without a location keeps what its evaluation said (`<optimized out>`, …).
    pub fn variable(&mut self, var: &mut Variable) {
        if let Location::Memory(addr) = var.location
            && let Some((value, text)) = self.base_in_memory(var.type_id, addr)
        {
            var.value = value;
            var.text = text;
            return;
        }
        let data = match &var.location {
            Location::None => return,
            Location::Memory(addr) => match self.read_value(var.type_id, *addr) {
                Ok(d) => d,
                Err(a) => {
                    var.value = Value::Unreadable { address: a };
                    var.text = unreadable_text(a);
                    return;
                }
            },
            Location::Bytes { bytes, valid } => {
                let mut valid = valid.clone();
                valid.resize(bytes.len(), false);
                Data { bytes: bytes.clone(), valid, address: None }
            }
        };
        let (value, text) = self.render(var.type_id, &data, 0);
        var.value = value;
        var.text = text;
    }

    /// A scalar of a base type (`int`, `char`, `double`) wholly readable at `addr`,
    /// rendered from a buffer on the stack: most variables are one, and the general
    /// path's two vectors per value were a tenth of a thousand threads' capture.
    /// None: another type, or memory not all readable (the general path says how).
    fn base_in_memory(&mut self, ty: Option<TypeId>, addr: u64) -> Option<(Value, String)> {
        let (size, encoding) = self.scalar(ty).filter(|(s, _)| *s <= self.budget)?;
        let mut buf = [0u8; 8];
        if self.memory.read(addr, &mut buf[..size]) != size {
            return None;
        }
        self.budget -= size;
        self.nodes -= 1;
        Some(self.base(&buf[..size], encoding, self.lang))
    }

    /// The size (1 to 8 bytes) and encoding of `ty` when it is a base type that the
    /// fast paths may render as `render` would: a node left to spend, nesting to
    /// spare, and not Go (whose maps are typedefs `render` looks at first).
    fn scalar(&mut self, ty: Option<TypeId>) -> Option<(usize, Encoding)> {
        if self.nodes == 0 || self.nesting >= MAX_NESTING || self.lang == Lang::Other {
            return None;
        }
        let (_, t) = self.strip(ty)?;
        let TypeKind::Base { size, encoding, .. } = t.kind else { return None };
        usize::try_from(size).ok().filter(|s| (1..=8).contains(s)).map(|s| (s, encoding))
    }

    /// Renders `data` as type `ty`: the structured value and gdb's text.
    pub fn render(&mut self, ty: Option<TypeId>, data: &Data, depth: u32) -> (Value, String) {
        // `depth` counts pointers followed; `nesting` counts every level (members,
        // elements), so a corrupt type that contains itself ends here too.
        if depth > 64 || self.nesting > MAX_NESTING {
            return (Value::Unavailable("nesting too deep".into()), "<nesting too deep>".into());
        }
        if self.nodes == 0 {
            return (Value::Unavailable("too many values".into()), "<too many values>".into());
        }
        self.nodes -= 1;
        self.nesting += 1;
        let r = self.render_nested(ty, data, depth);
        self.nesting -= 1;
        r
    }

    fn render_nested(&mut self, ty: Option<TypeId>, data: &Data, depth: u32) -> (Value, String) {
        if self.lang == Lang::Other
            && let Some(r) = self.go_map(ty, data)
        {
            return r;
        }
        let Some((off, t)) = self.strip(ty) else {
            return match ty {
                None => (Value::Unavailable("void".into()), "void".into()),
                Some(_) => (Value::Unavailable("type chain too long".into()), "<unknown type>".into()),
            };
        };
        let lang = self.lang;
        match &t.kind {
            TypeKind::Void => (Value::Unavailable("void".into()), "void".into()),
            TypeKind::Unknown(n) => (Value::Bytes(data.bytes.clone()), format!("<unknown type {n}>")),
            TypeKind::Base { size, encoding, .. } => {
                let size = *size as usize;
                if size > data.bytes.len() || !data.valid[..size].iter().all(|v| *v) {
                    return (Value::OptimizedOut, OPT_OUT.into());
                }
                self.base(&data.bytes[..size], *encoding, lang)
            }
            TypeKind::Enum { size, signed, values, .. } => {
                let Some(raw) = data.uint(*size as usize) else { return (Value::OptimizedOut, OPT_OUT.into()) };
                let v = if *signed { sign_extend(raw, *size as usize) } else { raw as i64 };
                match values.iter().find(|(x, _)| *x == v) {
                    Some((_, name)) => (Value::Enum { value: v, name: Some(name.clone()) }, name.clone()),
                    None => (Value::Enum { value: v, name: None }, flags_text(v, values)),
                }
            }
            TypeKind::Pointer { target, reference, .. } => {
                let Some(addr) = data.uint(8) else { return (Value::OptimizedOut, OPT_OUT.into()) };
                self.pointer(addr, *target, *reference, depth)
            }
            TypeKind::Struct { .. } => self.aggregate(off, &t, data, depth, lang),
            TypeKind::Array { elem, dims } => self.array(*elem, dims, data, depth),
            TypeKind::Function { .. } => {
                let a = data.address.unwrap_or(0);
                let sym = (self.symbol)(a);
                let text = format!(
                    "{{{}}} {a:#x}{}",
                    self.type_name(ty),
                    sym.as_ref().map(|s| format!(" <{s}>")).unwrap_or_default()
                );
                (Value::Pointer { address: a, symbol: sym, target: None }, text)
            }
            TypeKind::Typedef { .. } | TypeKind::Qualified { .. } => {
                (Value::Unavailable("type chain".into()), "<unknown type>".into())
            }
            TypeKind::NotCaptured => {
                (Value::Unavailable("type not in the snapshot".into()), "<type not in the snapshot>".into())
            }
        }
    }

    /// A Go map (`map[K]V`, a typedef of a pointer to the runtime's hash table) as
    /// Delve shows it: its type and length (the table's element count), or `nil`.
    fn go_map(&mut self, ty: Option<TypeId>, data: &Data) -> Option<(Value, String)> {
        let name = self.types.get(ty?)?.name.clone();
        if !name.starts_with("map[") {
            return None;
        }
        let (_, t) = self.strip(ty)?;
        let TypeKind::Pointer { target, .. } = &t.kind else { return None };
        let Some(addr) = data.uint(8) else { return Some((Value::OptimizedOut, OPT_OUT.into())) };
        let value = Value::Pointer { address: addr, symbol: None, target: None };
        if addr == 0 {
            return Some((value, format!("{name} nil")));
        }
        let (_, hash) = self.strip(*target)?;
        let TypeKind::Struct { members, .. } = &hash.kind else { return None };
        // `runtime.hmap.count`; `used` of the Swiss table `internal/runtime/maps.Map` (Go ≥ 1.24).
        let count = members.iter().find(|m| matches!(m.name.as_deref(), Some("count" | "used")))?.offset;
        let text = match self.read(addr.wrapping_add(count), 8) {
            Some(b) if b.len() == 8 => {
                format!("{name} len: {}", u64::from_le_bytes(b[..8].try_into().unwrap_or([0; 8])))
            }
            _ => format!("{name} {}", unreadable_text(addr)),
        };
        Some((value, text))
    }

    fn base(&mut self, b: &[u8], enc: Encoding, lang: Lang) -> (Value, String) {
        let mut raw = [0u8; 8];
        let n = b.len().min(8);
        raw[..n].copy_from_slice(&b[..n]);
        let u = u64::from_le_bytes(raw);
        let size = b.len();
        match enc {
            Encoding::Boolean => {
                let text = match u {
                    0 => "false".to_string(),
                    1 => "true".to_string(),
                    v => v.to_string(),
                };
                (Value::Bool(u != 0), text)
            }
            Encoding::Float if size == 4 => {
                let f = f32::from_le_bytes([b[0], b[1], b[2], b[3]]) as f64;
                (Value::Float(f), fmt_g(f, 9))
            }
            Encoding::Float if size == 8 => {
                let f = f64::from_bits(u);
                (Value::Float(f), fmt_g(f, 17))
            }
            Encoding::Float => (Value::Bytes(b.to_vec()), format!("<{size}-byte float>")),
            Encoding::SignedChar | Encoding::UnsignedChar if size == 1 => {
                if lang == Lang::Rust && enc == Encoding::UnsignedChar {
                    // Rust u8 is a number, not a character.
                    return (Value::UInt(u), u.to_string());
                }
                let v = if enc == Encoding::SignedChar { b[0] as i8 as i64 } else { b[0] as i64 };
                (Value::Char(b[0] as u32), char_text(v, b[0]))
            }
            Encoding::Utf if lang == Lang::Rust && size == 4 => {
                let c = char::from_u32(u as u32);
                let text = match c {
                    Some(c) if !c.is_control() => format!("{} '{c}'", u),
                    _ => format!("{u} '\\u{{{u:x}}}'"),
                };
                (Value::Char(u as u32), text)
            }
            Encoding::Signed | Encoding::SignedChar => {
                if size > 8 {
                    return (
                        Value::Bytes(b.to_vec()),
                        format!("0x{}", b.iter().rev().map(|x| format!("{x:02x}")).collect::<String>()),
                    );
                }
                let v = sign_extend(u, size);
                (Value::Int(v), v.to_string())
            }
            _ => {
                if size > 8 {
                    return (
                        Value::Bytes(b.to_vec()),
                        format!("0x{}", b.iter().rev().map(|x| format!("{x:02x}")).collect::<String>()),
                    );
                }
                (Value::UInt(u), u.to_string())
            }
        }
    }

    fn pointer(&mut self, addr: u64, target: Option<TypeId>, reference: bool, depth: u32) -> (Value, String) {
        let pointee = self.strip(target);
        // char pointers: the C string (bounded), as gdb prints it.
        if !reference
            && let Some((_, t)) = &pointee
            && is_char_type(t)
            && self.lang != Lang::Rust
        {
            if addr == 0 {
                return (Value::Pointer { address: 0, symbol: None, target: None }, "0x0".into());
            }
            let (bytes, terminated, readable) = self.c_string(addr);
            let sym = (self.data_symbol)(addr).map(|s| format!(" <{s}>")).unwrap_or_default();
            let text = if !readable {
                format!("{addr:#x}{sym} {}", unreadable_text(addr))
            } else {
                format!("{addr:#x}{sym} {}", chars_text(&bytes, self.opts.repeats, !terminated))
            };
            let value = if readable {
                Value::Str { address: addr, text: String::from_utf8_lossy(&bytes).into_owned(), truncated: !terminated }
            } else {
                Value::Unreadable { address: addr }
            };
            return (value, text);
        }
        if let Some((_, t)) = &pointee
            && matches!(&t.kind, TypeKind::Function { .. })
        {
            let sym = (self.symbol)(addr);
            let text = match &sym {
                Some(s) if addr != 0 => format!("{addr:#x} <{s}>"),
                _ => format!("{addr:#x}"),
            };
            return (Value::Pointer { address: addr, symbol: sym, target: None }, text);
        }
        let followable =
            pointee.as_ref().is_some_and(|(_, t)| !matches!(&t.kind, TypeKind::Void | TypeKind::Unknown(_)));
        if reference {
            // gdb prints a reference as `@0xADDR: value`; inside a struct as `@0xADDR`
            // alone; and a reference to a type a pretty printer knows (std::string,
            // the containers) as the printer's text alone.
            if !followable {
                return (Value::Pointer { address: addr, symbol: None, target: None }, format!("@{addr:#x}"));
            }
            let printed = self.has_printer(target);
            let (v, text) = match self.read_value(target, addr) {
                Ok(d) => self.render(target, &d, depth + 1),
                Err(a) => (Value::Unreadable { address: a }, unreadable_text(a)),
            };
            let text = match (printed, self.nesting > 1) {
                (true, _) => text,
                (false, true) => format!("@{addr:#x}"),
                (false, false) => format!("@{addr:#x}: {text}"),
            };
            return (Value::Pointer { address: addr, symbol: None, target: Some(Box::new(v)) }, text);
        }
        let mut followed = None;
        // What the objects being followed have spent already counts against the share.
        let spent = self.follow_from.map_or(0, |from| from.saturating_sub(self.nodes));
        let within = depth < self.opts.max_depth.max(self.opts.keep_depth);
        if followable && addr != 0 && within && self.follow <= spent {
            // Not rendered, but read: what is rendered again from the bytes read (a
            // held Go program's values, once it runs again) may look inside it (a
            // map's length, by its type's name, which the first rendering lacks).
            let _ = self.read_value(target, addr);
        } else if followable && addr != 0 && within {
            let outermost = self.follow_from.is_none();
            if outermost {
                self.follow_from = Some(self.nodes);
            }
            let v = match self.read_value(target, addr) {
                Ok(d) => self.render(target, &d, depth + 1).0,
                Err(a) => Value::Unreadable { address: a },
            };
            if outermost && let Some(from) = self.follow_from.take() {
                self.follow = self.follow.saturating_sub(from.saturating_sub(self.nodes));
            }
            // Past `max_depth` the object is read (and kept) but not shown.
            followed = (depth < self.opts.max_depth).then(|| Box::new(v));
        }
        let sym = if addr != 0 { (self.data_symbol)(addr).or_else(|| (self.symbol)(addr)) } else { None };
        let text = match &sym {
            Some(s) => format!("{addr:#x} <{s}>"),
            None => format!("{addr:#x}"),
        };
        (Value::Pointer { address: addr, symbol: sym, target: followed }, text)
    }

    /// A NUL-terminated string at `addr`: (bytes, terminated within the bound, readable).
    fn c_string(&mut self, addr: u64) -> (Vec<u8>, bool, bool) {
        let max = self.opts.max_string;
        let mut out = Vec::new();
        let mut at = addr;
        while out.len() < max {
            // Read in small chunks so a string near the end of a mapping still reads.
            let chunk = (64 - (at % 64) as usize).min(max - out.len());
            let Some(b) = self.read(at, chunk) else { return (out.clone(), false, !out.is_empty()) };
            if let Some(nul) = b.iter().position(|c| *c == 0) {
                out.extend_from_slice(&b[..nul]);
                return (out, true, true);
            }
            let n = b.len();
            out.extend_from_slice(&b);
            if n < chunk {
                return (out, false, true);
            }
            at = at.wrapping_add(n as u64);
        }
        (out, false, true)
    }

    fn array(&mut self, elem: Option<TypeId>, dims: &[Option<u64>], data: &Data, depth: u32) -> (Value, String) {
        // Each dimension is a level: 50,000 dimensions in a corrupt table must end
        // here, not recurse once per dimension.
        if self.nesting > MAX_NESTING || dims.len() > MAX_NESTING as usize {
            return (Value::Unavailable("nesting too deep".into()), "<nesting too deep>".into());
        }
        if self.nodes == 0 {
            return (Value::Unavailable("too many values".into()), "<too many values>".into());
        }
        self.nesting += 1;
        let r = self.array_nested(elem, dims, data, depth);
        self.nesting -= 1;
        r
    }

    fn array_nested(&mut self, elem: Option<TypeId>, dims: &[Option<u64>], data: &Data, depth: u32) -> (Value, String) {
        let Some(&first) = dims.first() else { return (Value::Array { length: 0, items: vec![] }, "{}".into()) };
        let rest = &dims[1..];
        let esize = {
            let base = self.size(elem).unwrap_or(0);
            rest.iter().try_fold(base, |acc, d| acc.checked_mul((*d)?)).unwrap_or(0)
        };
        let length = first.unwrap_or(0);
        let elem_is_char =
            rest.is_empty() && self.strip(elem).is_some_and(|(_, t)| is_char_type(&t)) && self.lang != Lang::Rust;
        if elem_is_char && data.all_valid() {
            let n = (length as usize).min(data.bytes.len());
            let mut bytes = &data.bytes[..n];
            // gdb drops one trailing NUL (print null-stop off treats it as the terminator).
            if bytes.last() == Some(&0) {
                bytes = &bytes[..bytes.len() - 1];
            }
            let (text, cut) = chars_limited(bytes, self.opts.repeats, self.opts.max_elements);
            let s =
                String::from_utf8_lossy(&bytes[..bytes.len().min(self.opts.max_string.max(self.opts.max_elements))])
                    .into_owned();
            return (Value::Str { address: data.address.unwrap_or(0), text: s, truncated: cut }, text);
        }
        if esize == 0 {
            return (
                Value::Array { length, items: vec![] },
                if length == 0 { "{}".into() } else { "<array of unsized elements>".into() },
            );
        }
        // gdb's loop: up to `print elements` things, a run longer than the repeat
        // threshold printed once and counted as `repeats` things. Runs are found by
        // comparing raw bytes (bounded), so a long zeroed array costs one rendering.
        let len = length as usize;
        let mut items = Vec::new();
        let mut parts: Vec<String> = Vec::new();
        let mut things = 0usize;
        let mut i = 0usize;
        let elem_at = |j: usize| data.slice(j as u64 * esize, esize);
        while i < len && things < self.opts.max_elements {
            // Past the bytes read (values are read up to `max_value_bytes`): stop with `...`.
            let Some(d) = elem_at(i) else { break };
            let mut run = 1usize;
            while i + run < len && run < 1_000_000 {
                match elem_at(i + run) {
                    Some(n) if n.bytes == d.bytes && n.valid == d.valid => run += 1,
                    _ => break,
                }
            }
            let (v, t) = if rest.is_empty() { self.render(elem, &d, depth) } else { self.array(elem, rest, &d, depth) };
            if run > self.opts.repeats {
                parts.push(format!("{t} <repeats {run} times>"));
                // The structured value lists elements one by one, up to the element bound.
                for _ in 0..run.min(self.opts.max_elements.saturating_sub(items.len())) {
                    items.push(v.clone());
                }
                i += run;
                things += self.opts.repeats;
            } else {
                parts.push(t);
                items.push(v);
                i += 1;
                things += 1;
            }
        }
        let mut text = format!("{{{}", parts.join(", "));
        if i < len {
            text.push_str("...");
        }
        text.push('}');
        (Value::Array { length, items }, text)
    }

    /// Elements `[0, len)` of type `elem` at `addr`, rendered gdb-style.
    fn elements(&mut self, elem: Option<TypeId>, addr: u64, len: u64, depth: u32) -> (Vec<Value>, Vec<String>, bool) {
        let esize = self.size(elem).unwrap_or(0);
        let shown = (len as usize).min(self.opts.max_elements);
        if esize == 0 || shown == 0 {
            return (vec![], vec![], true);
        }
        let total = (esize as usize).saturating_mul(shown).min(self.opts.max_value_bytes);
        let Some(bytes) = self.read(addr, total) else { return (vec![], vec![unreadable_text(addr)], false) };
        let data = Data::known(bytes, Some(addr));
        let mut items = Vec::new();
        let mut texts = Vec::new();
        for i in 0..shown as u64 {
            let Some(d) = data.slice(i * esize, esize) else {
                texts.push(unreadable_text(addr.wrapping_add(i * esize)));
                return (items, texts, false);
            };
            let (v, t) = self.render(elem, &d, depth);
            items.push(v);
            texts.push(t);
        }
        (items, texts, true)
    }
}

mod library;
mod members;
mod snapshot;
mod stl;
#[cfg(test)]
mod tests;
mod text;

pub use snapshot::{render_snapshot, render_snapshot_from, render_stacks};
use text::*;
pub use text::{fmt_g, gdb_spelling};
