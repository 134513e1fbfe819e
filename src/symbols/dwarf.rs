//! DWARF symbolization through addr2line: a lazily built `Context` per module over
//! mmap'ed (or, when SHF_COMPRESSED, decompressed) sections. Only the sections that
//! line and function lookups need are loaded; location lists, macros, type units and
//! name indexes are never touched, so never decompressed.

use super::elf::{Image, Reader, SharedBytes};

/// One source-level frame for an address: innermost inlined call first, the
/// physical function last.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct SourceFrame {
    pub function: Option<String>,
    pub file: Option<String>,
    pub line: Option<u32>,
    pub column: Option<u32>,
}

pub(crate) type Context = addr2line::Context<Reader>;

fn needed(id: gimli::SectionId) -> bool {
    use gimli::SectionId::*;
    matches!(
        id,
        DebugAbbrev
            | DebugAddr
            | DebugAranges
            | DebugInfo
            | DebugLine
            | DebugLineStr
            | DebugRanges
            | DebugRngLists
            | DebugStr
            | DebugStrOffsets
    )
}

/// Builds the addr2line context for `image` (the module or its debug file). This
/// reads unit headers / aranges, not DIEs; compile units are parsed at first lookup.
pub(crate) fn context(image: &Image) -> Result<Context, String> {
    let empty = SharedBytes::owned(Vec::new());
    let load = |id: gimli::SectionId| -> Result<Reader, gimli::Error> {
        let bytes = if needed(id) { image.section_data(id.name()) } else { None };
        Ok(Reader::new(bytes.unwrap_or_else(|| empty.clone()), gimli::LittleEndian))
    };
    let dwarf = gimli::Dwarf::load(load).map_err(|e| e.to_string())?;
    Context::from_dwarf(dwarf).map_err(|e| e.to_string())
}

/// The source frames at link-time address `probe`; empty when DWARF has nothing.
pub(crate) fn frames(ctx: &Context, probe: u64) -> Vec<SourceFrame> {
    let mut out = Vec::new();
    let Ok(mut iter) = ctx.find_frames(probe).skip_all_loads() else { return out };
    // A corrupt DIE tree must not make us loop: the inline depth is tiny in practice.
    while let Ok(Some(f)) = iter.next() {
        let function = f
            .function
            .as_ref()
            .and_then(|n| n.demangle().ok())
            .map(|n| n.into_owned());
        let (file, line, column) = match &f.location {
            Some(l) => (l.file.map(str::to_string), l.line, l.column.filter(|c| *c > 0)),
            None => (None, None, None),
        };
        out.push(SourceFrame { function, file, line, column });
        if out.len() >= 256 {
            break;
        }
    }
    out
}
