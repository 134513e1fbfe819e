//! Readable forms of common library types: libstdc++ `std::string` / `std::vector`
//! (the node containers and smart pointers in `stl.rs`),
//! Rust `&str`, `String`, `Vec`, Go `string` and slices — recognised by language, name
//! and members.

use super::*;

impl Renderer<'_> {
    /// Readable forms of common library types: libstdc++ std::string / std::vector,
    /// Rust &str, String, Vec. None when the layout is not recognised.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn library_type(
        &mut self,
        off: TypeId,
        name: Option<&str>,
        members: &[Member],
        params: &[(String, Option<TypeId>)],
        data: &Data,
        depth: u32,
        lang: Lang,
    ) -> Option<(Value, String)> {
        let name = name?;
        match lang {
            Lang::Cpp => {
                if let Some(r) = self.libstdcxx(off, name, members, params, data, depth) {
                    return Some(r);
                }
                // Folklore: libstdc++'s (C++11 ABI) basic_string is {_M_dataplus {_M_p},
                // _M_string_length, union {_M_local_buf[16], _M_allocated_capacity}}.
                if name.starts_with("basic_string<char") {
                    let (p, _) = self.path(members, data, &["_M_dataplus", "_M_p"])?;
                    let (l, _) = self.path(members, data, &["_M_string_length"])?;
                    let (Some(ptr), Some(len)) = (p.uint(8), l.uint(8)) else {
                        return Some((Value::OptimizedOut, OPT_OUT.into()));
                    };
                    return Some(self.counted_string(ptr, len));
                }
                // Folklore: std::vector<T> is _Vector_base<T>::_M_impl, whose base
                // _Vector_impl_data holds _M_start, _M_finish, _M_end_of_storage.
                if name.starts_with("vector<") {
                    let (s, sty) = self.path(members, data, &["_M_impl", "_M_start"])?;
                    let (f, _) = self.path(members, data, &["_M_impl", "_M_finish"])?;
                    let (e, _) = self.path(members, data, &["_M_impl", "_M_end_of_storage"])?;
                    let (start, finish, end) = (s.uint(8)?, f.uint(8)?, e.uint(8)?);
                    let elem = match self.strip(sty).map(|x| x.1) {
                        Some(t) => match &t.kind {
                            TypeKind::Pointer { target, .. } => *target,
                            _ => None,
                        },
                        None => None,
                    };
                    let esize = self.size(elem).filter(|s| *s > 0)?;
                    if finish < start || end < finish {
                        return Some((
                            Value::Unavailable("corrupt vector".into()),
                            format!("<corrupt std::vector: start {start:#x} finish {finish:#x}>"),
                        ));
                    }
                    let len = (finish - start) / esize;
                    let cap = (end - start) / esize;
                    let (items, texts, complete) = self.elements(elem, start, len, depth);
                    let mut text = format!("std::vector of length {len}, capacity {cap}");
                    if len > 0 {
                        let _ = write!(
                            text,
                            " = {{{}{}}}",
                            texts.join(", "),
                            if complete && (len as usize) > texts.len() { "..." } else { "" }
                        );
                    }
                    return Some((Value::Array { length: len, items }, text));
                }
                None
            }
            Lang::Rust => {
                if name == "&str" || name == "&mut str" {
                    let (p, _) = self.path(members, data, &["data_ptr"])?;
                    let (l, _) = self.path(members, data, &["length"])?;
                    let (Some(ptr), Some(len)) = (p.uint(8), l.uint(8)) else {
                        return Some((Value::OptimizedOut, OPT_OUT.into()));
                    };
                    return Some(self.counted_string(ptr, len));
                }
                if name == "String" {
                    let (v, vty) = self.path(members, data, &["vec"])?;
                    let vm = self.members_of(vty)?;
                    let (l, _) = self.path(&vm, &v, &["len"])?;
                    let (b, bty) = self.path(&vm, &v, &["buf"])?;
                    let ptr = self.first_pointer(bty, &b, 0)?;
                    return Some(self.counted_string(ptr, l.uint(8)?));
                }
                if name.starts_with("Vec<") {
                    let (l, _) = self.path(members, data, &["len"])?;
                    let (b, bty) = self.path(members, data, &["buf"])?;
                    let ptr = self.first_pointer(bty, &b, 0)?;
                    let elem = params.iter().find(|(n, _)| n == "T").and_then(|p| p.1)?;
                    let len = l.uint(8)?;
                    let (items, texts, _) = self.elements(Some(elem), ptr, len, depth);
                    let text = format!("vec![{}]", texts.join(", "));
                    return Some((Value::Array { length: len, items }, text));
                }
                None
            }
            // Go (its units carry no language bt has a name for): `string` is
            // {str *uint8, len int}; a slice `[]T` is {array *T, len int, cap int}.
            // Shown as Delve shows them.
            Lang::Other => {
                if name == "string" {
                    let (p, _) = self.path(members, data, &["str"])?;
                    let (l, _) = self.path(members, data, &["len"])?;
                    let (Some(ptr), Some(len)) = (p.uint(8), l.uint(8)) else {
                        return Some((Value::OptimizedOut, OPT_OUT.into()));
                    };
                    return Some(self.counted_string(ptr, len));
                }
                if name.starts_with("[]") {
                    let (a, aty) = self.path(members, data, &["array"])?;
                    let (l, _) = self.path(members, data, &["len"])?;
                    let (c, _) = self.path(members, data, &["cap"])?;
                    let (Some(ptr), Some(len), Some(cap)) = (a.uint(8), l.uint(8), c.uint(8)) else {
                        return Some((Value::OptimizedOut, OPT_OUT.into()));
                    };
                    let elem = match self.strip(aty).map(|x| x.1) {
                        Some(t) => match &t.kind {
                            TypeKind::Pointer { target, .. } => *target,
                            _ => None,
                        },
                        None => None,
                    };
                    if len > cap {
                        return Some((
                            Value::Unavailable("corrupt slice".into()),
                            format!("<corrupt slice: len {len} > cap {cap}>"),
                        ));
                    }
                    let (items, texts, complete) = self.elements(elem, ptr, len, depth);
                    let more = if complete && (len as usize) > texts.len() { "..." } else { "" };
                    let text = format!("{name} len: {len}, cap: {cap}, [{}{more}]", texts.join(","));
                    return Some((Value::Array { length: len, items }, text));
                }
                None
            }
            _ => None,
        }
    }

    pub(super) fn counted_string(&mut self, ptr: u64, len: u64) -> (Value, String) {
        let shown = (len as usize).min(self.opts.max_string);
        match self.read(ptr, shown) {
            Some(b) if b.len() == shown => {
                let truncated = shown < len as usize;
                let text = chars_text(&b, self.opts.repeats, truncated);
                (Value::Str { address: ptr, text: String::from_utf8_lossy(&b).into_owned(), truncated }, text)
            }
            _ if shown == 0 => (Value::Str { address: ptr, text: String::new(), truncated: false }, "\"\"".into()),
            _ => (Value::Unreadable { address: ptr }, unreadable_text(ptr)),
        }
    }
}
