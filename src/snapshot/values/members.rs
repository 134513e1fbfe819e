//! Structs, unions and Rust enums: each member rendered (bitfields, scalars straight
//! from the struct's bytes), gdb's `{a = 1, b = …}` and Rust's `Name {a: 1}` text, and
//! the member lookups the library types use (a member by name, a path of members, the
//! first pointer inside).

use super::*;

impl Renderer<'_> {
    pub(super) fn member_value(&mut self, m: &Member, data: &Data, depth: u32) -> (Value, String) {
        if let Some((bit, width)) = m.bits {
            let nbytes = ((bit + width).div_ceil(8)).min(8);
            let Some(d) = data.slice(m.offset, nbytes) else { return (Value::OptimizedOut, OPT_OUT.into()) };
            let Some(raw) = d.uint(nbytes as usize) else { return (Value::OptimizedOut, OPT_OUT.into()) };
            let mask = if width >= 64 { u64::MAX } else { (1u64 << width) - 1 };
            let v = (raw >> bit) & mask;
            let signed = self.strip(m.type_id).is_some_and(|(_, t)| match &t.kind {
                TypeKind::Base { encoding, .. } => {
                    matches!(encoding, Encoding::Signed | Encoding::SignedChar)
                }
                TypeKind::Enum { signed, .. } => *signed,
                _ => false,
            });
            let is_enum_or_bool = self.strip(m.type_id).is_some_and(|(_, t)| {
                matches!(&t.kind, TypeKind::Enum { .. } | TypeKind::Base { encoding: Encoding::Boolean, .. })
            });
            if is_enum_or_bool {
                let size = self.size(m.type_id).unwrap_or(4) as usize;
                let v = if signed && width < 64 && (v >> (width - 1)) & 1 == 1 { v | !mask } else { v };
                return self.render(m.type_id, &Data::known(v.to_le_bytes()[..size.min(8)].to_vec(), None), depth);
            }
            if signed && width > 0 && width < 64 && (v >> (width - 1)) & 1 == 1 {
                let s = (v | !mask) as i64;
                return (Value::Int(s), s.to_string());
            }
            return if signed { (Value::Int(v as i64), v.to_string()) } else { (Value::UInt(v), v.to_string()) };
        }
        // A scalar member straight from the struct's bytes, without a copy of them.
        if let Some((size, encoding)) = self.scalar(m.type_id)
            && let Some(range) = usize::try_from(m.offset).ok().and_then(|o| Some(o..o.checked_add(size)?))
            && data.valid.get(range.clone()).is_some_and(|v| v.iter().all(|v| *v))
            && let Some(bytes) = data.bytes.get(range)
        {
            self.nodes -= 1;
            return self.base(bytes, encoding, self.lang);
        }
        let size = self.size(m.type_id).unwrap_or(0);
        match data.slice(m.offset, size) {
            Some(d) => self.render(m.type_id, &d, depth),
            None => {
                let missing = data.address.map(|a| a.wrapping_add(m.offset)).unwrap_or(0);
                (Value::Unreadable { address: missing }, unreadable_text(missing))
            }
        }
    }

    pub(super) fn aggregate(&mut self, off: TypeId, t: &Type, data: &Data, depth: u32, lang: Lang) -> (Value, String) {
        let TypeKind::Struct { kind, tag: name, members, variants, declaration, params, .. } = &t.kind else {
            return (Value::Unavailable("not a struct".into()), "<not a struct>".into());
        };
        if *declaration {
            return (Value::Unavailable("incomplete type".into()), "<incomplete type>".into());
        }
        if let Some(r) = self.library_type(off, name.as_deref(), members, params, data, depth, lang) {
            return r;
        }
        if let Some(vs) = variants {
            let full = self.type_name(Some(off));
            return self.rust_enum(&full, members, vs, data, depth);
        }
        let _ = kind;
        let rust = lang == Lang::Rust;
        let mut fields = Vec::with_capacity(members.len().min(10_000));
        // Rust's syntax is decided once every member is known; C and C++ text is
        // written as the members come (no string per member: a thousand threads'
        // structs are hundreds of thousands of them).
        let mut parts = Vec::new();
        let mut c_text = String::with_capacity(if rust { 0 } else { 2 + 24 * members.len().min(64) });
        c_text.push('{');
        let c_part = |c_text: &mut String, later: bool, fname: &str, text: &str| {
            if later {
                c_text.push_str(", ");
            }
            if !fname.is_empty() {
                c_text.push_str(fname);
                c_text.push_str(" = ");
            }
            c_text.push_str(text);
        };
        for m in members.iter().take(10_000) {
            // gdb hides the vtable pointer of C++ classes only when it is artificial and named _vptr.
            let (v, text) = self.member_value(m, data, depth);
            let fname = if m.base {
                let bn = self.type_name(m.type_id);
                format!("<{bn}>")
            } else {
                m.name.clone().unwrap_or_default()
            };
            if rust {
                parts.push(if fname.is_empty() { text } else { format!("{fname} = {text}") });
            } else {
                c_part(&mut c_text, !fields.is_empty(), &fname, &text);
            }
            fields.push(Field { name: fname, value: v });
        }
        // gdb: a C or C++ struct without data members (an empty class, or one made only
        // of bases) says so after its bases: `{<No data fields>}`.
        if !rust && members.iter().all(|m| m.base) {
            c_part(&mut c_text, !fields.is_empty(), "", "<No data fields>");
        }
        let text = if rust {
            // gdb's Rust syntax: `path::Name {field: value}`, tuples as `Name(a, b)`.
            let full = self.type_name(Some(off));
            let rust_parts: Vec<String> = parts.iter().map(|p| p.replacen(" = ", ": ", 1)).collect();
            if fields.iter().all(|f| f.name.starts_with("__")) && !fields.is_empty() {
                let items: Vec<&str> = parts.iter().map(|p| p.split_once(" = ").map(|x| x.1).unwrap_or(p)).collect();
                format!("{full}({})", items.join(", "))
            } else {
                format!("{full} {{{}}}", rust_parts.join(", "))
            }
        } else {
            c_text.push('}');
            c_text
        };
        (Value::Struct(fields), text)
    }

    /// Rust enums (DW_TAG_variant_part): the active variant by discriminant.
    pub(super) fn rust_enum(
        &mut self,
        full: &str,
        members: &[Member],
        vs: &Variants,
        data: &Data,
        depth: u32,
    ) -> (Value, String) {
        let discr = match &vs.discr {
            Some(d) => {
                let size = self.size(d.type_id).unwrap_or(0) as usize;
                match data.slice(d.offset, size as u64).and_then(|x| x.uint(size)) {
                    Some(v) => Some(v),
                    None => return (Value::OptimizedOut, OPT_OUT.into()),
                }
            }
            None => None,
        };
        let chosen = vs
            .variants
            .iter()
            .find(|(v, _)| v.is_some() && *v == discr)
            .or_else(|| vs.variants.iter().find(|(v, _)| v.is_none()))
            .or_else(|| if vs.discr.is_none() { vs.variants.first() } else { None });
        let _ = members;
        let Some((_, m)) = chosen else {
            return (Value::Unavailable("no variant matches the discriminant".into()), "<invalid enum>".into());
        };
        let vname = m.name.clone().unwrap_or_default();
        let (v, text) = self.member_value(m, data, depth);
        // The variant's own struct: show its fields tuple-style for tuple variants (__0, __1).
        // The variant's struct renders as `path::Enum::Variant(…)` (gdb's Rust syntax);
        // a field-less variant is just its path.
        let variant_text = match &v {
            Value::Struct(fields) if fields.is_empty() => String::new(),
            _ => {
                text.split_once(['(', ' '])
                    .map(|(_, rest)| {
                        if text.contains('(') && !text.contains(" {") { format!("({rest}") } else { format!(" {rest}") }
                    })
                    .unwrap_or_default()
            }
        };
        let inner = format!("{full}::{vname}{variant_text}");
        (Value::Struct(vec![Field { name: vname, value: v }]), inner)
    }

    pub(super) fn find_member<'m>(&mut self, members: &'m [Member], name: &str) -> Option<&'m Member> {
        members.iter().find(|m| m.name.as_deref() == Some(name))
    }

    /// The struct members of type `ty` (after typedefs), for walking library layouts.
    pub(super) fn members_of(&mut self, ty: Option<TypeId>) -> Option<Vec<Member>> {
        let (_, t) = self.strip(ty)?;
        match &t.kind {
            TypeKind::Struct { members, .. } => Some(members.clone()),
            _ => None,
        }
    }

    /// Follows a path of member names (searching base classes too) from a struct at
    /// `data`; returns the final member's data and type.
    pub(super) fn path(&mut self, members: &[Member], data: &Data, path: &[&str]) -> Option<(Data, Option<TypeId>)> {
        let mut cur_members = members.to_vec();
        let mut cur = data.clone();
        let mut ty = None;
        for (i, name) in path.iter().enumerate() {
            let m = self.find_member(&cur_members, name).cloned().or_else(|| {
                // Look one or two levels into base classes (libstdc++ _Vector_impl_data).
                for b in cur_members.iter().filter(|m| m.base) {
                    if let Some(bm) = self.members_of(b.type_id) {
                        if let Some(found) = bm.iter().find(|m| m.name.as_deref() == Some(name)) {
                            let mut f = found.clone();
                            f.offset += b.offset;
                            return Some(f);
                        }
                        for bb in bm.iter().filter(|m| m.base) {
                            if let Some(bbm) = self.members_of(bb.type_id)
                                && let Some(found) = bbm.iter().find(|m| m.name.as_deref() == Some(name))
                            {
                                let mut f = found.clone();
                                f.offset += b.offset + bb.offset;
                                return Some(f);
                            }
                        }
                    }
                }
                None
            })?;
            let size = self.size(m.type_id)?;
            cur = cur.slice(m.offset, size)?;
            ty = m.type_id;
            if i + 1 < path.len() {
                cur_members = self.members_of(m.type_id)?;
            }
        }
        Some((cur, ty))
    }

    /// The first pointer found depth-first under `data` of type `ty` (Rust's
    /// RawVec → Unique → NonNull → *const T nesting changes between releases).
    pub(super) fn first_pointer(&mut self, ty: Option<TypeId>, data: &Data, depth: u32) -> Option<u64> {
        if depth > 8 {
            return None;
        }
        let (_, t) = self.strip(ty)?;
        match &t.kind {
            TypeKind::Pointer { .. } => data.uint(8),
            TypeKind::Struct { members, .. } => {
                for m in members.clone().iter().filter(|m| m.bits.is_none()) {
                    let size = self.size(m.type_id).unwrap_or(0);
                    if size == 0 {
                        continue;
                    }
                    let d = data.slice(m.offset, size)?;
                    if let Some(p) = self.first_pointer(m.type_id, &d, depth + 1) {
                        return Some(p);
                    }
                }
                None
            }
            _ => None,
        }
    }
}
