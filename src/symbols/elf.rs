//! ELF plumbing for modules: shared mmap-backed bytes, header/program-header/build-id
//! parsing that works on a partial image (a core's first page), and the lazily opened
//! [`Image`] with the section ranges the symbolizer and the unwinder need.

use object::{Object, ObjectSection};
use std::fmt;
use std::ops::Deref;
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub(crate) const PAGE: u64 = 4096;
const PT_LOAD: u32 = 1;
const PT_NOTE: u32 = 4;
const PT_TLS: u32 = 7;
const PT_DYNAMIC: u32 = 2;
const PF_X: u32 = 1;
const NT_GNU_BUILD_ID: u32 = 3;

enum Backing {
    Map(memmap2::Mmap),
    Owned(Vec<u8>),
}

/// Cheaply clonable bytes: a window on an mmap'ed file or on an owned buffer.
/// Invariant: `start + len` is within the backing, and the backing never moves or
/// changes while any clone is alive (so it is a stable deref for gimli readers).
#[derive(Clone)]
pub(crate) struct SharedBytes {
    backing: Arc<Backing>,
    start: usize,
    len: usize,
}

impl SharedBytes {
    pub(crate) fn owned(v: Vec<u8>) -> SharedBytes {
        let len = v.len();
        SharedBytes { backing: Arc::new(Backing::Owned(v)), start: 0, len }
    }

    pub(crate) fn map_file(path: &Path) -> std::io::Result<SharedBytes> {
        let file = crate::capture::open_regular(path)?;
        // SAFETY: the file is mapped read-only and private. If another process truncates
        // it while we read we may get SIGBUS; that is the accepted risk of every mmap
        // debugger (gdb, elfutils) and the reason we never map writable.
        let map = unsafe { memmap2::Mmap::map(&file)? };
        let len = map.len();
        Ok(SharedBytes { backing: Arc::new(Backing::Map(map)), start: 0, len })
    }

    /// A sub-window; out-of-range requests are clamped to the available bytes.
    pub(crate) fn slice(&self, offset: usize, len: usize) -> SharedBytes {
        let offset = offset.min(self.len);
        let len = len.min(self.len - offset);
        SharedBytes { backing: self.backing.clone(), start: self.start + offset, len }
    }
}

impl Deref for SharedBytes {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        let all: &[u8] = match &*self.backing {
            Backing::Map(m) => m,
            Backing::Owned(v) => v,
        };
        &all[self.start..self.start + self.len]
    }
}

impl fmt::Debug for SharedBytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SharedBytes({} bytes)", self.len)
    }
}

// SAFETY: the bytes behind an Arc'd mmap or Vec never move while the Arc lives, and
// clones share the same backing, so derefs of a clone yield the same address.
unsafe impl gimli::StableDeref for SharedBytes {}
// SAFETY: as above; cloning only bumps the Arc count.
unsafe impl gimli::CloneStableDeref for SharedBytes {}

/// The gimli reader used for DWARF kept alive inside a module.
pub(crate) type Reader = gimli::EndianReader<gimli::LittleEndian, SharedBytes>;

/// One PT_LOAD segment (link-time addresses).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Segment {
    pub vaddr: u64,
    pub memsz: u64,
    pub offset: u64,
    pub filesz: u64,
    pub executable: bool,
}

/// The few header facts we need before (or without) opening the file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Headers {
    pub e_type: u16,
    pub entry: u64,
    pub loads: Vec<Segment>,
    /// PT_NOTE segments as (vaddr, offset, filesz).
    pub notes: Vec<(u64, u64, u64)>,
    /// PT_TLS as (memsz, align): the module's thread-local block template.
    pub tls: Option<(u64, u64)>,
    /// PT_DYNAMIC vaddr: where the dynamic linker's DT_DEBUG (→ r_debug) lives.
    pub dynamic: Option<u64>,
}

fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(b.get(at..at + 2)?.try_into().ok()?))
}
fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(at..at + 4)?.try_into().ok()?))
}
fn u64_at(b: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(b.get(at..at + 8)?.try_into().ok()?))
}

/// Parses the ELF64 little-endian header and program headers found at the start of
/// `head` (which may be only the first page of the image). None if not such an ELF or
/// the program headers are not within `head`.
pub(crate) fn parse_headers(head: &[u8]) -> Option<Headers> {
    if head.get(0..4)? != b"\x7fELF" || *head.get(4)? != 2 || *head.get(5)? != 1 {
        return None;
    }
    let e_type = u16_at(head, 16)?;
    let entry = u64_at(head, 24)?;
    let phoff = u64_at(head, 32)? as usize;
    let phentsize = u16_at(head, 54)? as usize;
    let phnum = u16_at(head, 56)? as usize;
    if phentsize < 56 {
        return None;
    }
    let mut h = Headers { e_type, entry, ..Default::default() };
    for i in 0..phnum {
        let p = head.get(phoff.checked_add(i * phentsize)?..)?;
        let p_type = u32_at(p, 0)?;
        let flags = u32_at(p, 4)?;
        let offset = u64_at(p, 8)?;
        let vaddr = u64_at(p, 16)?;
        let filesz = u64_at(p, 32)?;
        let memsz = u64_at(p, 40)?;
        match p_type {
            PT_LOAD => h.loads.push(Segment { vaddr, memsz, offset, filesz, executable: flags & PF_X != 0 }),
            PT_NOTE => h.notes.push((vaddr, offset, filesz)),
            PT_TLS => h.tls = Some((memsz, u64_at(p, 48)?)),
            PT_DYNAMIC => h.dynamic = Some(vaddr),
            _ => {}
        }
    }
    Some(h)
}

impl Headers {
    /// Lowest PT_LOAD address rounded down to the page.
    pub(crate) fn lowest_vaddr(&self) -> Option<u64> {
        self.loads.iter().map(|s| s.vaddr & !(PAGE - 1)).min()
    }

    /// Load bias from where the file page at `map_offset` was mapped (`map_start`).
    /// For the usual mapping at offset 0 this is `map_start - lowest PT_LOAD vaddr`
    /// (page-rounded): 0 for a non-PIE executable, the base for PIE and libraries.
    pub(crate) fn bias(&self, map_start: u64, map_offset: u64) -> Option<u64> {
        if map_offset == 0 {
            return Some(map_start.wrapping_sub(self.lowest_vaddr()?));
        }
        let seg = self.loads.iter().find(|s| s.offset & !(PAGE - 1) == map_offset)?;
        Some(map_start.wrapping_sub(seg.vaddr & !(PAGE - 1)))
    }

    /// The segment holding link-time address `vaddr`.
    pub(crate) fn segment_for(&self, vaddr: u64) -> Option<&Segment> {
        self.loads.iter().find(|s| vaddr >= s.vaddr && vaddr - s.vaddr < s.memsz.max(1))
    }
}

/// Finds an NT_GNU_BUILD_ID descriptor in a run of ELF notes.
pub(crate) fn build_id_from_notes(mut notes: &[u8]) -> Option<Vec<u8>> {
    let align4 = |n: usize| (n + 3) & !3;
    while notes.len() >= 12 {
        let namesz = u32_at(notes, 0)? as usize;
        let descsz = u32_at(notes, 4)? as usize;
        let ntype = u32_at(notes, 8)?;
        let name_end = 12usize.checked_add(align4(namesz))?;
        let desc_end = name_end.checked_add(align4(descsz))?;
        let name = notes.get(12..12 + namesz)?;
        if ntype == NT_GNU_BUILD_ID && name == b"GNU\0" {
            return Some(notes.get(name_end..name_end + descsz)?.to_vec());
        }
        notes = notes.get(desc_end..)?;
    }
    None
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A section's place in the image (link-time address, file range).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Sect {
    pub addr: u64,
    pub offset: usize,
    pub size: usize,
    pub compressed: bool,
}

/// An opened ELF file (or the vDSO image), parsed once. Sections are only located
/// here; their contents stay in the mmap until someone reads them.
pub(crate) struct Image {
    pub bytes: SharedBytes,
    pub path: PathBuf,
    pub headers: Headers,
    pub build_id: Option<Vec<u8>>,
    pub debuglink: Option<(String, u32)>,
    /// `.gnu_debugaltlink`: the dwz supplementary file's path and build id.
    pub altlink: Option<(String, Vec<u8>)>,
    /// `.debug_info` present with contents (not NOBITS as in a stripped file).
    pub has_debug_info: bool,
    pub has_symtab: bool,
    pub has_dynsym: bool,
    pub eh_frame: Option<Sect>,
    pub eh_frame_hdr: Option<Sect>,
    pub debug_frame: Option<Sect>,
    pub text: Option<Sect>,
    pub got: Option<Sect>,
    /// `.plt`, `.plt.sec`, `.plt.got` (link-time).
    pub plt: Vec<Plt>,
}

/// One PLT section: its stubs are `entsize` bytes each from `start`; `.plt` begins
/// with the lazy-binding resolver stub (PLT0), which calls no function of its own.
#[derive(Debug, Clone, Copy)]
pub struct Plt {
    pub start: u64,
    pub end: u64,
    pub entsize: u64,
    pub resolver_first: bool,
}

#[derive(Debug, thiserror::Error)]
pub(crate) enum ImageError {
    #[error("{path}: {source}")]
    Io { path: String, source: std::io::Error },
    #[error("{path}: not a readable ELF file: {reason}")]
    Parse { path: String, reason: String },
}

impl Image {
    pub(crate) fn open(path: &Path) -> Result<Image, ImageError> {
        let bytes = SharedBytes::map_file(path)
            .map_err(|source| ImageError::Io { path: path.display().to_string(), source })?;
        Image::parse(bytes, path.to_path_buf())
    }

    pub(crate) fn parse(bytes: SharedBytes, path: PathBuf) -> Result<Image, ImageError> {
        let perr = |reason: String| ImageError::Parse { path: path.display().to_string(), reason };
        let file =
            object::read::elf::ElfFile64::<object::LittleEndian>::parse(&*bytes).map_err(|e| perr(e.to_string()))?;
        let headers = parse_headers(&bytes).ok_or_else(|| perr("bad program headers".into()))?;
        let sect = |name: &str| -> Option<Sect> {
            let s = file.section_by_name(name)?;
            let (offset, size) = s.file_range()?;
            let compressed =
                s.compressed_file_range().map(|c| c.format != object::CompressionFormat::None).unwrap_or(false);
            Some(Sect { addr: s.address(), offset: offset as usize, size: size as usize, compressed })
        };
        let debuglink =
            file.gnu_debuglink().ok().flatten().map(|(name, crc)| (String::from_utf8_lossy(name).into_owned(), crc));
        let altlink = file
            .gnu_debugaltlink()
            .ok()
            .flatten()
            .map(|(path, id)| (String::from_utf8_lossy(path).into_owned(), id.to_vec()));
        let plt = [".plt", ".plt.sec", ".plt.got"]
            .iter()
            .filter_map(|&n| Some((n, file.section_by_name(n)?)))
            .map(|(n, s)| {
                use object::read::elf::SectionHeader;
                let declared = s.elf_section_header().sh_entsize(file.endian());
                // Folklore: x86-64 stubs are 16 bytes, `.plt.got`'s 8 without IBT;
                // linkers write that in sh_entsize, which is trusted when it fits.
                let default = if n == ".plt.got" { 8 } else { 16 };
                let entsize = if matches!(declared, 8 | 16 | 32) { declared } else { default };
                Plt { start: s.address(), end: s.address() + s.size(), entsize, resolver_first: n == ".plt" }
            })
            .collect();
        let has = |name: &str| sect(name).is_some_and(|s| s.size > 0);
        let img = Image {
            path: path.clone(),
            build_id: file.build_id().ok().flatten().map(<[u8]>::to_vec),
            debuglink,
            altlink,
            has_debug_info: has(".debug_info"),
            has_symtab: has(".symtab"),
            has_dynsym: has(".dynsym"),
            eh_frame: sect(".eh_frame"),
            eh_frame_hdr: sect(".eh_frame_hdr"),
            debug_frame: sect(".debug_frame"),
            text: sect(".text"),
            got: sect(".got"),
            plt,
            headers,
            bytes: bytes.clone(),
        };
        // PT_LOAD segments from object as well, in case our quick parser saw none.
        if img.headers.loads.is_empty() && file.segments().next().is_some() {
            return Err(perr("no PT_LOAD segments".into()));
        }
        Ok(img)
    }

    /// Raw (uncompressed) bytes of a section; None when compressed or absent.
    pub(crate) fn raw(&self, s: Option<Sect>) -> Option<&[u8]> {
        let s = s?;
        if s.compressed {
            return None;
        }
        self.bytes.get(s.offset..s.offset.checked_add(s.size)?)
    }

    /// A section's contents by name, decompressed when SHF_COMPRESSED (zlib or zstd).
    /// Uncompressed sections are windows on the mmap; nothing is copied.
    pub(crate) fn section_data(&self, name: &str) -> Option<SharedBytes> {
        if let Some((_, stored)) = self.stored_section(name) {
            return Some(stored);
        }
        let file = object::read::elf::ElfFile64::<object::LittleEndian>::parse(&*self.bytes).ok()?;
        let data = file.section_by_name(name)?.uncompressed_data().ok()?;
        Some(SharedBytes::owned(data.into_owned()))
    }

    /// A section's contents by name when stored as is (a window on the mmap); None
    /// when absent or SHF_COMPRESSED (for a section no toolchain compresses, so that a
    /// crafted file cannot make bt inflate it).
    /// With the section's link-time address.
    pub(crate) fn stored_section(&self, name: &str) -> Option<(u64, SharedBytes)> {
        let file = object::read::elf::ElfFile64::<object::LittleEndian>::parse(&*self.bytes).ok()?;
        let s = file.section_by_name(name)?;
        if s.compressed_file_range().ok()?.format != object::CompressionFormat::None {
            return None;
        }
        let (offset, size) = s.file_range()?;
        Some((s.address(), self.bytes.slice(offset as usize, size as usize)))
    }

    /// Names of the SHF_COMPRESSED sections among `names`.
    pub(crate) fn compressed<'n>(&self, names: &[&'n str]) -> Vec<&'n str> {
        let Ok(file) = object::read::elf::ElfFile64::<object::LittleEndian>::parse(&*self.bytes) else {
            return Vec::new();
        };
        names
            .iter()
            .copied()
            .filter(|n| {
                file.section_by_name(n)
                    .and_then(|s| s.compressed_file_range().ok())
                    .is_some_and(|c| c.format != object::CompressionFormat::None)
            })
            .collect()
    }

    /// Copies code/data bytes at link-time address `vaddr` from the file image.
    /// Returns how many leading bytes were available.
    pub(crate) fn read_vaddr(&self, vaddr: u64, buf: &mut [u8]) -> usize {
        let Some(seg) = self.headers.loads.iter().find(|s| vaddr >= s.vaddr && vaddr - s.vaddr < s.filesz) else {
            return 0;
        };
        let Some(off) = seg.offset.checked_add(vaddr - seg.vaddr).map(|o| o as usize) else { return 0 };
        let avail = (seg.filesz - (vaddr - seg.vaddr)) as usize;
        let n = buf.len().min(avail);
        match self.bytes.get(off..off.saturating_add(n)) {
            Some(src) => {
                buf[..n].copy_from_slice(src);
                n
            }
            None => 0,
        }
    }

    pub(crate) fn in_plt(&self, vaddr: u64) -> bool {
        self.plt.iter().any(|p| vaddr >= p.start && vaddr < p.end)
    }

    /// The PLT stub holding `vaddr`: its start and length (None outside the PLT and
    /// in `.plt`'s resolver stub).
    pub(crate) fn plt_stub(&self, vaddr: u64) -> Option<(u64, u64)> {
        let p = self.plt.iter().find(|p| vaddr >= p.start && vaddr < p.end)?;
        let k = (vaddr - p.start) / p.entsize;
        if k == 0 && p.resolver_first {
            return None;
        }
        Some((p.start + k * p.entsize, p.entsize))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seg(vaddr: u64, offset: u64) -> Segment {
        Segment { vaddr, memsz: 0x1000, offset, filesz: 0x1000, executable: false }
    }

    #[test]
    fn load_bias_cases() {
        // (segments, mapping start, mapping offset, expected bias)
        let cases: &[(&[Segment], u64, u64, u64)] = &[
            // non-PIE executable linked at 0x400000, mapped there: bias 0.
            (&[seg(0x400000, 0), seg(0x401000, 0x1000)], 0x400000, 0, 0),
            // PIE linked at 0, mapped at 0x5555_5555_4000.
            (&[seg(0, 0), seg(0x1000, 0x1000)], 0x5555_5555_4000, 0, 0x5555_5555_4000),
            // Library whose first PT_LOAD vaddr is not page aligned (rounded down).
            (&[seg(0x10, 0), seg(0x2010, 0x1000)], 0x7f00_0000_0000, 0, 0x7f00_0000_0000),
            // Only a later mapping known (offset 0x1000 → segment at vaddr 0x2010).
            (&[seg(0x0, 0), seg(0x2010, 0x1010)], 0x7f00_0000_2000, 0x1000, 0x7f00_0000_0000),
        ];
        for (segs, start, off, want) in cases {
            let h = Headers { loads: segs.to_vec(), ..Default::default() };
            assert_eq!(h.bias(*start, *off), Some(*want), "segments {segs:?} at {start:#x}+{off:#x}");
        }
    }

    #[test]
    fn build_id_note_parsing() {
        let mut notes = Vec::new();
        // An ABI tag note first, then the build id.
        notes.extend_from_slice(&4u32.to_le_bytes());
        notes.extend_from_slice(&16u32.to_le_bytes());
        notes.extend_from_slice(&1u32.to_le_bytes());
        notes.extend_from_slice(b"GNU\0");
        notes.extend_from_slice(&[0; 16]);
        notes.extend_from_slice(&4u32.to_le_bytes());
        notes.extend_from_slice(&5u32.to_le_bytes());
        notes.extend_from_slice(&3u32.to_le_bytes());
        notes.extend_from_slice(b"GNU\0");
        notes.extend_from_slice(&[1, 2, 3, 4, 5, 0, 0, 0]);
        assert_eq!(build_id_from_notes(&notes), Some(vec![1, 2, 3, 4, 5]));
        assert_eq!(build_id_from_notes(&notes[..30]), None);
        assert_eq!(hex(&[0xde, 0xad, 0x01]), "dead01");
    }
}
