//! Symbol tables (.symtab, .dynsym) as a sorted address index, and demangling of
//! C++ (`_Z…`) and Rust (legacy `_ZN…17h<hash>E`, v0 `_R…`) names.

use super::elf::Image;
use object::{Object, ObjectSection, ObjectSymbol, SectionKind, SymbolKind};

/// Demangles a linkage name; returns it unchanged when it is not mangled (C).
pub(crate) fn demangle(name: &str) -> String {
    let (base, version) = split_version(name);
    let mut out = demangle_base(base);
    out.push_str(version);
    out
}

/// Folklore: symbol versions may be glued on a symbol-table name. A default version
/// (`foo@@V2`) is dropped, as gdb shows the plain name; a non-default one is kept, as
/// gdb and c++filt print it: an executable's copy of `std::cout` is
/// `_ZSt4cout@GLIBCXX_3.4`, shown `std::cout@GLIBCXX_3.4`. Returns (name, kept suffix).
fn split_version(name: &str) -> (&str, &str) {
    match name.find('@') {
        Some(at) if at > 0 && !name[at..].starts_with("@@") => (&name[..at], &name[at..]),
        Some(at) if at > 0 => (&name[..at], ""),
        _ => (name, ""),
    }
}

fn demangle_base(base: &str) -> String {
    if (base.starts_with("_R") || (base.starts_with("_ZN") && is_rust_legacy(base)))
        && let Ok(d) = rustc_demangle::try_demangle(base)
    {
        return format!("{d:#}");
    }
    if base.starts_with("_Z")
        && let Ok(sym) = cpp_demangle::Symbol::new(base)
        && let Ok(d) = sym.demangle()
    {
        return libiberty_literals(d);
    }
    base.to_string()
}

/// gdb's frame name for a linkage name: C++ demangled without the return type, then
/// without the parameter list as gdb's `cp_remove_params` does it ([`gdb_frame_name`]);
/// Rust and C as [`demangle`] gives them.
pub(crate) fn function_name(linkage: &str) -> String {
    let (base, version) = split_version(linkage);
    if base.starts_with("_Z")
        && !is_rust_legacy(base)
        && let Ok(sym) = cpp_demangle::Symbol::new(base)
        && let Ok(d) = sym.demangle_with_options(&cpp_demangle::DemangleOptions::new().no_return_type())
    {
        return gdb_frame_name(&libiberty_literals(d)) + version;
    }
    demangle(linkage)
}

/// Integer literals of template arguments as libiberty (gdb, c++filt) prints them:
/// `7ul`, `-5l`, `3u`, where cpp_demangle writes `(unsigned long)7`. Other types keep
/// the cast in both (`(char)120`, `(Color)1`).
fn libiberty_literals(name: String) -> String {
    const SUFFIXES: [(&str, &str); 5] = [
        ("(unsigned long long)", "ull"),
        ("(unsigned long)", "ul"),
        ("(unsigned int)", "u"),
        ("(long long)", "ll"),
        ("(long)", "l"),
    ];
    let name = wrap_function_addresses(name);
    if !name.contains(")") || !SUFFIXES.iter().any(|(cast, _)| name.contains(cast)) {
        return name;
    }
    let mut out = String::with_capacity(name.len());
    let mut rest = name.as_str();
    'scan: while !rest.is_empty() {
        for (cast, suffix) in SUFFIXES {
            if let Some(after) = rest.strip_prefix(cast) {
                let digits = after.strip_prefix('-').unwrap_or(after);
                let n = digits.bytes().take_while(u8::is_ascii_digit).count();
                if n > 0 {
                    let len = after.len() - digits.len() + n;
                    out.push_str(&after[..len]);
                    out.push_str(suffix);
                    rest = &after[len..];
                    continue 'scan;
                }
            }
        }
        let c = rest.chars().next().expect("rest is not empty");
        out.push(c);
        rest = &rest[c.len_utf8()..];
    }
    out
}

/// The address of a function as a template argument, as libiberty prints it:
/// `viafp<&(f(int))>`, where cpp_demangle writes `viafp<&f(int)>`.
fn wrap_function_addresses(name: String) -> String {
    if !name.contains("<&") && !name.contains(", &") {
        return name;
    }
    let b = name.as_bytes();
    let mut out = String::with_capacity(name.len() + 8);
    let mut i = 0;
    while i < b.len() {
        let arg_start = b[i] == b'&' && (out.ends_with('<') || out.ends_with(", "));
        if arg_start {
            // The operand: a name (with its own template arguments) then a parameter list.
            let (mut j, mut angle) = (i + 1, 0usize);
            while j < b.len() && (angle > 0 || !matches!(b[j], b'(' | b',' | b'>')) {
                match b[j] {
                    b'<' => angle += 1,
                    b'>' => angle -= 1,
                    _ => {}
                }
                j += 1;
            }
            if b.get(j) == Some(&b'(') {
                let mut depth = 0usize;
                let mut k = j;
                while k < b.len() {
                    match b[k] {
                        b'(' => depth += 1,
                        b')' => {
                            depth -= 1;
                            if depth == 0 {
                                break;
                            }
                        }
                        _ => {}
                    }
                    k += 1;
                }
                if k < b.len() && matches!(b.get(k + 1), Some(b',' | b'>')) {
                    out.push_str("&(");
                    out.push_str(&name[i + 1..=k]);
                    out.push(')');
                    i = k + 1;
                    continue;
                }
            }
        }
        let c = name[i..].chars().next().expect("i is inside the name");
        out.push(c);
        i += c.len_utf8();
    }
    out
}

/// What gdb prints for a C++ function whose symbol is the demangled `name`: the name
/// without its parameter list and qualifiers, as gdb's `cp_remove_params` gives it —
/// or the whole name where gdb's C++ name parser gives up: on a lambda
/// (`{lambda(int)#1}`), an ABI tag (`[abi:cxx11]`), a function type as a template
/// argument (`std::function<void (int)>`), and a function-local entity
/// (`app::Scope::fn(int)::Local::go(int)`: a parameter list outside the template
/// arguments). Casts, function pointers and addresses in template arguments
/// (`(Color)1`, `int (*)(long)`, `&(f(int))`), Clang's closure names (`$_0`),
/// `(anonymous namespace)` and the operators (`operator<<`, `operator()`,
/// `operator->`) parse.
pub(crate) fn gdb_frame_name(name: &str) -> String {
    if name.contains('{') || name.contains("[abi:") {
        return name.to_string();
    }
    let mut s = name.trim_end();
    while let Some(rest) = [" const", " volatile", " &&", " &"].iter().find_map(|q| s.strip_suffix(q)) {
        s = rest.trim_end();
    }
    if !s.ends_with(')') {
        return name.to_string();
    }
    let mut depth = 0usize;
    let mut open = None;
    for (i, c) in s.char_indices().rev() {
        match c {
            ')' => depth += 1,
            '(' => {
                depth = depth.saturating_sub(1);
                if depth == 0 {
                    open = Some(i);
                    break;
                }
            }
            _ => {}
        }
    }
    match open.map(|i| &s[..i]) {
        Some(prefix)
            if !prefix.is_empty() && !has_outer_parameter_list(prefix) && !has_function_type_argument(prefix) =>
        {
            prefix.to_string()
        }
        _ => name.to_string(),
    }
}

/// Whether a C++ name has a `(` outside its template arguments that is not
/// `(anonymous namespace)` or part of an operator's name: the parameter list of an
/// enclosing function (a local entity).
fn has_outer_parameter_list(name: &str) -> bool {
    scan_parens(name).0
}

/// Whether a template argument of a C++ name is a function type, `void (int)`: a
/// parenthesis after a type and a space (not after `, `: a cast, `(Color)1`) that
/// opens no declarator such as `(*)`, `(&)` or `(Class::*)`.
fn has_function_type_argument(name: &str) -> bool {
    scan_parens(name).1
}

/// One pass over a C++ name, operators' symbols skipped (`operator<<`, `operator()`
/// are no brackets): (a parameter list outside the template arguments, a function
/// type inside them).
fn scan_parens(name: &str) -> (bool, bool) {
    let b = name.as_bytes();
    let (mut outer, mut function_type) = (false, false);
    let mut angle = 0usize;
    let mut paren = 0usize;
    let mut i = 0;
    while i < b.len() {
        let ident_start = i == 0 || !(b[i - 1].is_ascii_alphanumeric() || b[i - 1] == b'_');
        if ident_start && name[i..].starts_with("operator") {
            let after = i + "operator".len();
            if b.get(after).is_none_or(|c| !(c.is_ascii_alphanumeric() || *c == b'_')) {
                i = after;
                while i < b.len() && b[i] == b' ' {
                    i += 1;
                }
                if name[i..].starts_with("()") {
                    i += 2;
                } else {
                    while i < b.len() && b"<>=!+-*/%^&|~,".contains(&b[i]) {
                        i += 1;
                    }
                }
                continue;
            }
        }
        match b[i] {
            b'<' => angle += 1,
            b'>' => angle = angle.saturating_sub(1),
            b'(' if angle == 0 && paren == 0 => {
                if name[i..].starts_with("(anonymous namespace)") {
                    i += "(anonymous namespace)".len();
                    continue;
                }
                outer = true;
                paren += 1;
            }
            b'(' => {
                if paren == 0 && i >= 2 && b[i - 1] == b' ' && b[i - 2] != b',' {
                    let inner = &name[i + 1..];
                    let close = inner.find(')').unwrap_or(inner.len());
                    if !(inner.starts_with(['*', '&']) || inner[..close].ends_with("::*")) {
                        function_type = true;
                    }
                }
                paren += 1;
            }
            b')' => paren = paren.saturating_sub(1),
            _ => {}
        }
        i += 1;
    }
    (outer, function_type)
}

/// gdb's spelling of a C++ name built from DWARF names (`DW_AT_name` of a function and
/// its scopes, for a function without a linkage name: a lambda, a member of a class in
/// an anonymous namespace). gdb re-prints every such name its C++ parser accepts, so
/// GCC's `long int`, `short unsigned int`, `long long unsigned int` become `long`,
/// `unsigned short`, `unsigned long long`, and a `char` template argument `'a'`
/// becomes `(char)'a'`. Names the parser rejects (GCC's `<lambda(int)>`, `{…}`) stay.
pub(crate) fn gdb_canonical_name(name: &str) -> String {
    if name.contains("<lambda") || name.contains('{') || name.contains("[abi:") || has_function_type_argument(name) {
        return name.to_string();
    }
    crate::snapshot::values::gdb_spelling(name)
}

/// Rust legacy mangling ends with a `17h<16 hex digits>E` hash path element,
/// possibly followed by an LLVM `.llvm.NNN` suffix.
fn is_rust_legacy(name: &str) -> bool {
    let core = name.split('.').next().unwrap_or(name);
    core.len() > 20 && {
        let tail = &core[core.len() - 20..];
        tail.starts_with("17h") && tail.ends_with('E') && tail[3..19].bytes().all(|b| b.is_ascii_hexdigit())
    }
}

#[derive(Debug, Clone, Copy)]
struct Sym {
    addr: u64,
    size: u64,
    /// Which image holds the name: 0 the module, 1 its debug file.
    source: u8,
    global: bool,
    /// Byte range of the name inside that image's mapped bytes.
    name_off: usize,
    name_len: u32,
}

/// Function symbols of a module sorted by link-time address.
#[derive(Default)]
pub(crate) struct SymbolIndex {
    syms: Vec<Sym>,
}

/// A symbol-table hit: demangled name and the offset of the address into it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SymbolHit {
    pub name: String,
    pub offset: u64,
}

impl SymbolIndex {
    /// Builds the index from the module's .symtab, its debug file's .symtab, and the
    /// module's .dynsym (in that order of preference for equal addresses).
    pub(crate) fn build(images: &[&Image]) -> SymbolIndex {
        Self::build_kind(images, false)
    }

    /// The same index over sized data objects (STT_OBJECT), for naming what a pointer
    /// points at (`0x4c6f00 <global_counter>`, as gdb prints it).
    pub(crate) fn build_data(images: &[&Image]) -> SymbolIndex {
        Self::build_kind(images, true)
    }

    fn build_kind(images: &[&Image], data: bool) -> SymbolIndex {
        let mut syms = Vec::new();
        for (source, img) in images.iter().enumerate() {
            let Ok(file) = object::read::elf::ElfFile64::<object::LittleEndian>::parse(&*img.bytes) else { continue };
            let base = img.bytes.as_ptr() as usize;
            let mut add = |s: object::read::elf::ElfSymbol64<'_, '_, object::LittleEndian>| {
                let interesting = match s.kind() {
                    SymbolKind::Data => data && s.size() > 0,
                    _ if data => false,
                    SymbolKind::Text => true,
                    // Hand-written assembly often leaves labels untyped (STT_NOTYPE).
                    SymbolKind::Unknown => s
                        .section_index()
                        .and_then(|i| file.section_by_index(i).ok())
                        .is_some_and(|sec| sec.kind() == SectionKind::Text),
                    _ => false,
                };
                if !interesting || !s.is_definition() || s.address() == 0 {
                    return;
                }
                let Ok(name) = s.name_bytes() else { return };
                if name.is_empty() || name.starts_with(b"$") {
                    return;
                }
                let off = (name.as_ptr() as usize).wrapping_sub(base);
                if off >= img.bytes.len() {
                    return;
                }
                syms.push(Sym {
                    addr: s.address(),
                    size: s.size(),
                    source: source as u8,
                    global: s.is_global(),
                    name_off: off,
                    name_len: name.len().min(u32::MAX as usize) as u32,
                });
            };
            for s in file.symbols() {
                add(s);
            }
            if source == 0 {
                for s in file.dynamic_symbols() {
                    add(s);
                }
            }
        }
        // Several names at one address (aliases: `__qsort_r` and `qsort_r`, `raise` and
        // `gsignal`): gdb's choice. gdb sorts a module's symbols by address and then
        // by name, and takes the last one that has a size; a file-local symbol gives
        // way to a global one of the same size just before it.
        let name = |s: &Sym| -> &[u8] {
            images
                .get(s.source as usize)
                .and_then(|img| img.bytes.get(s.name_off..s.name_off.saturating_add(s.name_len as usize)))
                .unwrap_or_default()
        };
        syms.sort_by(|a, b| {
            a.addr.cmp(&b.addr).then((b.size > 0).cmp(&(a.size > 0))).then_with(|| name(b).cmp(name(a)))
        });
        let mut chosen: Vec<Sym> = Vec::with_capacity(syms.len());
        let mut i = 0;
        while i < syms.len() {
            let end = i + syms[i..].iter().take_while(|s| s.addr == syms[i].addr).count();
            let group = &syms[i..end];
            let pick = match group {
                [first, second, ..] if !first.global && second.global && second.size == first.size => *second,
                _ => group[0],
            };
            chosen.push(pick);
            i = end;
        }
        SymbolIndex { syms: chosen }
    }

    /// The nearest symbol at or before `vaddr` that contains it (size check; a sizeless
    /// symbol is accepted as covering up to the next symbol).
    pub(crate) fn lookup(&self, vaddr: u64, images: &[&Image]) -> Option<SymbolHit> {
        let idx = self.syms.partition_point(|s| s.addr <= vaddr).checked_sub(1)?;
        let s = self.syms[idx];
        if s.size > 0 && vaddr - s.addr >= s.size {
            return None;
        }
        let img = images.get(s.source as usize)?;
        let raw = img.bytes.get(s.name_off..s.name_off.saturating_add(s.name_len as usize))?;
        Some(SymbolHit { name: demangle(&String::from_utf8_lossy(raw)), offset: vaddr - s.addr })
    }

    /// Start and size of the sized symbol containing `vaddr`.
    pub(crate) fn range_of(&self, vaddr: u64) -> Option<(u64, u64)> {
        let idx = self.syms.partition_point(|s| s.addr <= vaddr).checked_sub(1)?;
        let s = self.syms[idx];
        (s.size > 0 && vaddr - s.addr < s.size).then_some((s.addr, s.size))
    }

    /// Start address of the symbol containing `vaddr`, if any.
    pub(crate) fn start_of(&self, vaddr: u64) -> Option<u64> {
        let idx = self.syms.partition_point(|s| s.addr <= vaddr).checked_sub(1)?;
        let s = self.syms[idx];
        (s.size == 0 || vaddr - s.addr < s.size).then_some(s.addr)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn demangling() {
        let cases = [
            ("main", "main"),
            ("_Z3fooi", "foo(int)"),
            ("_ZN2ns3barIiEEvT_", "void ns::bar<int>(int)"),
            ("_ZN4core9panicking5panic17h0123456789abcdefE", "core::panicking::panic"),
            ("_ZN3std2rt10lang_start17h1234567890abcdefE.llvm.42", "std::rt::lang_start"),
            ("_RNvCs1234_7mycrate4main", "mycrate::main"),
            // A default version is dropped, another kept (as gdb and c++filt print them).
            ("memcpy@@GLIBC_2.14", "memcpy"),
            ("memcpy@GLIBC_2.2.5", "memcpy@GLIBC_2.2.5"),
            ("_ZSt4cout@GLIBCXX_3.4", "std::cout@GLIBCXX_3.4"),
            ("_ZTIi@CXXABI_1.3", "typeinfo for int@CXXABI_1.3"),
            ("_Znot-mangled", "_Znot-mangled"),
        ];
        for (input, want) in cases {
            assert_eq!(demangle(input), want, "demangle({input})");
        }
        // gdb's frame names: no return type, no parameter list unless gdb's parser
        // gives up on an earlier one (a function type inside template arguments).
        let frames = [
            ("_ZN2ns3barIiEEvT_", "ns::bar<int>"),
            ("_ZN8pipeline10run_stagesIlEET_RKSt6vectorIS1_SaIS1_EE", "pipeline::run_stages<long>"),
            (
                "_ZNKSt8functionIFlRKN8pipeline5ChainIlEEmEEclES4_m",
                "std::function<long (pipeline::Chain<long> const&, unsigned long)>::operator()(pipeline::Chain<long> const&, unsigned long) const",
            ),
            ("_ZN4core9panicking5panic17h0123456789abcdefE", "core::panicking::panic"),
            ("raise", "raise"),
            ("_ZN2ns3barIiEEvT_@V1", "ns::bar<int>@V1"),
        ];
        for (input, want) in frames {
            assert_eq!(function_name(input), want, "function_name({input})");
        }
    }
}
