//! Symbol tables (.symtab, .dynsym) as a sorted address index, and demangling of
//! C++ (`_Z…`) and Rust (legacy `_ZN…17h<hash>E`, v0 `_R…`) names.

use super::elf::Image;
use object::{Object, ObjectSection, ObjectSymbol, SectionKind, SymbolKind};

/// Demangles a linkage name; returns it unchanged when it is not mangled (C).
pub(crate) fn demangle(name: &str) -> String {
    // Folklore: symbol versions may be glued on (`memcpy@GLIBC_2.14`, `foo@@V2`); keep them
    // out of the demangler and drop them, as gdb prints the plain name.
    let base = name.split('@').next().unwrap_or(name);
    if (base.starts_with("_R") || (base.starts_with("_ZN") && is_rust_legacy(base)))
        && let Ok(d) = rustc_demangle::try_demangle(base)
    {
        return format!("{d:#}");
    }
    if base.starts_with("_Z")
        && let Ok(sym) = cpp_demangle::Symbol::new(base)
        && let Ok(d) = sym.demangle()
    {
        return d;
    }
    base.to_string()
}

/// gdb's frame name for a linkage name: C++ demangled without the return type, then
/// without the parameter list as gdb's `cp_remove_params` does it ([`gdb_frame_name`]);
/// Rust and C as [`demangle`] gives them.
pub(crate) fn function_name(linkage: &str) -> String {
    let base = linkage.split('@').next().unwrap_or(linkage);
    if base.starts_with("_Z")
        && !is_rust_legacy(base)
        && let Ok(sym) = cpp_demangle::Symbol::new(base)
        && let Ok(d) = sym.demangle_with_options(&cpp_demangle::DemangleOptions::new().no_return_type())
    {
        return gdb_frame_name(&d);
    }
    demangle(linkage)
}

/// What gdb prints for a C++ function whose symbol is the demangled `name`: the name
/// without its parameter list and qualifiers — unless an earlier parameter list (a
/// function-local entity: `app::Scope::fn(int)::$_0::operator()(int) const`) makes
/// gdb's name parser give up, and then the whole name.
pub(crate) fn gdb_frame_name(name: &str) -> String {
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
        Some(prefix) if !prefix.is_empty() && !prefix.replace("operator()", "").contains(['(', ')']) => {
            prefix.to_string()
        }
        _ => name.to_string(),
    }
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
        // Sort by address; for equal addresses prefer sized, then global, then earlier source.
        syms.sort_by(|a, b| {
            a.addr.cmp(&b.addr).then(b.size.cmp(&a.size)).then(b.global.cmp(&a.global)).then(a.source.cmp(&b.source))
        });
        syms.dedup_by_key(|s| s.addr);
        SymbolIndex { syms }
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
            ("memcpy@GLIBC_2.14", "memcpy"),
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
        ];
        for (input, want) in frames {
            assert_eq!(function_name(input), want, "function_name({input})");
        }
    }
}
