//! Split DWARF (`-gsplit-dwarf`): a module's `.debug_info` then holds only a skeleton
//! per compile unit (its address ranges, line table and a `dwo_id`), and the unit's
//! DIEs — functions, inlined calls, variables, types — live in a `.dwo` file beside
//! the objects, or in a `.dwp` package made of them. As gdb does, a skeleton is
//! replaced by its split unit wherever DIEs are read: from `<module>.dwp` when there is
//! one, else from the `.dwo` its `DW_AT_dwo_name` names (relative to its
//! `DW_AT_comp_dir`, then to the module's directory and the debug directories). The
//! split unit takes from its skeleton what lives in the main file: its base address,
//! `.debug_addr` base, ranges base (DWARF 4), and its line table.
//!
//! bt's caches know a unit by its `.debug_info` offset in the module, and every `.dwo`
//! numbers its own units from 0, so a split unit's header carries its skeleton's
//! offset. References between units (`DW_FORM_ref_addr`), which split units do not
//! use, are not followed out of a split unit.
//!
//! A `.dwo` that is missing, unreadable or of another build (its `dwo_id` differs) is
//! said once per file; the skeleton then answers alone (function names from the symbol
//! table, lines from its line table), as before this module.

use super::elf::{Reader, SharedBytes};
use object::{Object, ObjectSection};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

type Dwarf = gimli::Dwarf<Reader>;
type Unit = gimli::Unit<Reader>;

/// A parsed unit, and for a split unit the sections of its `.dwo` (an ordinary unit
/// is read in the module's own sections, which the caller holds).
pub(crate) struct Parsed {
    pub(crate) split: Option<Arc<Dwarf>>,
    pub(crate) unit: Arc<Unit>,
}

impl Parsed {
    /// The sections the unit's DIEs are in: its `.dwo`'s, else `main`.
    pub(crate) fn sections<'a>(&'a self, main: &'a Dwarf) -> &'a Dwarf {
        self.split.as_deref().unwrap_or(main)
    }

    pub(crate) fn unit_ref<'a>(&'a self, main: &'a Dwarf) -> gimli::UnitRef<'a, Reader> {
        gimli::UnitRef::new(self.sections(main), &self.unit)
    }
}

/// The split DWARF files of one module, opened on first need and kept.
pub(crate) struct SplitFiles {
    /// The module's file as opened (its directory and `<file>.dwp` are searched).
    module: Option<PathBuf>,
    /// Prefix of the target's file system (a live process in a container).
    sysroot: Option<PathBuf>,
    /// Extra directories searched for a `.dwo` by its file name.
    debug_dirs: Vec<PathBuf>,
    dwp: OnceLock<Option<gimli::DwarfPackage<Reader>>>,
    /// Each `.dwo` by its `dwo_id`, or None when it could not be had.
    dwos: Mutex<HashMap<u64, Option<Arc<Dwarf>>>>,
    /// What could not be found or read, for the module's problems: the first
    /// `MAX_NOTES`, then how many more (a release shipped without its thousands of
    /// `.dwo` files says so in a few lines).
    notes: Mutex<(Vec<String>, usize)>,
}

/// Split DWARF problems said one by one per module (see `SplitFiles::notes`).
const MAX_NOTES: usize = 3;
/// `.dwo` files above this size are refused (a split unit is rarely above a few MB).
const MAX_DWO_BYTES: u64 = 1 << 32;

impl SplitFiles {
    pub(crate) fn new(module: Option<PathBuf>, sysroot: Option<PathBuf>, debug_dirs: Vec<PathBuf>) -> SplitFiles {
        SplitFiles {
            module,
            sysroot,
            debug_dirs,
            dwp: OnceLock::new(),
            dwos: Mutex::default(),
            notes: Mutex::default(),
        }
    }

    /// The unit of `header` in `dwarf`, replaced by its split unit when it is a skeleton
    /// whose `.dwo` can be had.
    pub(crate) fn parse(&self, dwarf: &Dwarf, header: gimli::UnitHeader<Reader>) -> Option<Parsed> {
        let unit = dwarf.unit(header).ok()?;
        let Some(id) = unit.dwo_id.filter(|_| dwarf.file_type == gimli::DwarfFileType::Main) else {
            return Some(Parsed { split: None, unit: Arc::new(unit) });
        };
        match self.split_unit(dwarf, &unit, id) {
            Some(split) => Some(split),
            None => Some(Parsed { split: None, unit: Arc::new(unit) }),
        }
    }

    /// What went wrong so far (each said once), emptied.
    pub(crate) fn take_notes(&self) -> Vec<String> {
        let Ok(mut n) = self.notes.lock() else { return Vec::new() };
        let (mut out, more) = std::mem::take(&mut *n);
        if more > 0 {
            out.push(format!("and {more} more split DWARF files not found or not readable"));
        }
        out
    }

    fn note(&self, text: String) {
        if let Ok(mut n) = self.notes.lock() {
            if n.0.len() < MAX_NOTES {
                n.0.push(text);
            } else {
                n.1 += 1;
            }
        }
    }

    fn split_unit(&self, parent: &Dwarf, skeleton: &Unit, id: gimli::DwoId) -> Option<Parsed> {
        let dwo = self.dwo(parent, skeleton, id)?;
        let h = split_header(&dwo, id)?;
        let entries = h.range_from(h.root_offset()..).ok()?;
        let renamed = gimli::UnitHeader::new(
            h.encoding(),
            h.unit_length(),
            h.type_(),
            h.debug_abbrev_offset(),
            gimli::SectionId::DebugInfo,
            skeleton.header.offset(),
            entries,
        );
        let mut unit = dwo.unit(renamed).ok()?;
        unit.copy_relocated_attributes(skeleton);
        unit.line_program = skeleton.line_program.clone();
        if unit.comp_dir.is_none() {
            unit.comp_dir = skeleton.comp_dir.clone();
        }
        if unit.name.is_none() {
            unit.name = skeleton.name.clone();
        }
        Some(Parsed { split: Some(dwo), unit: Arc::new(unit) })
    }

    /// The sections of the split unit `id`: from the module's `.dwp`, else its `.dwo`.
    fn dwo(&self, parent: &Dwarf, skeleton: &Unit, id: gimli::DwoId) -> Option<Arc<Dwarf>> {
        if let Some(known) = self.dwos.lock().ok()?.get(&id.0) {
            return known.clone();
        }
        let found = self.from_package(parent, id).or_else(|| self.from_file(parent, skeleton, id)).map(Arc::new);
        self.dwos.lock().ok()?.insert(id.0, found.clone());
        found
    }

    fn from_package(&self, parent: &Dwarf, id: gimli::DwoId) -> Option<Dwarf> {
        let dwp = self
            .dwp
            .get_or_init(|| {
                let mut path = self.module.clone()?.into_os_string();
                path.push(".dwp");
                let path = PathBuf::from(path);
                let bytes = map(&path).ok()?;
                let package = load_package(bytes);
                if package.is_none() {
                    self.note(format!("split DWARF package {} is not readable; ignored", path.display()));
                }
                package
            })
            .as_ref()?;
        let mut dwarf = dwp.find_cu(id, parent).ok()??;
        share_main_sections(&mut dwarf, parent);
        Some(dwarf)
    }

    fn from_file(&self, parent: &Dwarf, skeleton: &Unit, id: gimli::DwoId) -> Option<Dwarf> {
        let name = skeleton.dwo_name().ok()??;
        let name = parent.attr_string(skeleton, name).ok()?;
        let name = PathBuf::from(String::from_utf8_lossy(&name).into_owned());
        let comp_dir = skeleton.comp_dir.as_ref().map(|d| PathBuf::from(String::from_utf8_lossy(d).into_owned()));
        let mut tried = Vec::new();
        for path in self.candidates(&name, comp_dir.as_deref()) {
            if tried.contains(&path) {
                continue;
            }
            let Ok(bytes) = map(&path) else {
                tried.push(path);
                continue;
            };
            let mut dwarf = match load_dwo(bytes) {
                Some(d) => d,
                None => {
                    self.note(format!("split DWARF file {} is not readable; ignored", path.display()));
                    return None;
                }
            };
            dwarf.make_dwo(parent);
            share_main_sections(&mut dwarf, parent);
            if split_header(&dwarf, id).is_none() {
                self.note(format!(
                    "split DWARF file {} is of another build (no unit with dwo_id {:#x}); ignored",
                    path.display(),
                    id.0
                ));
                return None;
            }
            return Some(dwarf);
        }
        self.note(format!(
            "split DWARF file {} not found (looked in {}): functions, inlined calls and variables of its unit are missing",
            name.display(),
            tried.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ")
        ));
        None
    }

    /// Where a `.dwo` named `name` may be, in the order gdb tries.
    fn candidates(&self, name: &Path, comp_dir: Option<&Path>) -> Vec<PathBuf> {
        let mut out = Vec::new();
        let rooted = |p: PathBuf| match &self.sysroot {
            Some(root) if p.is_absolute() => vec![root.join(p.strip_prefix("/").unwrap_or(&p)), p],
            _ => vec![p],
        };
        if name.is_absolute() {
            out.extend(rooted(name.to_path_buf()));
        } else if let Some(dir) = comp_dir {
            out.extend(rooted(dir.join(name)));
        }
        let base = name.file_name().map(PathBuf::from);
        if let Some(dir) = self.module.as_deref().and_then(Path::parent) {
            if name.is_relative() {
                out.push(dir.join(name));
            }
            if let Some(b) = &base {
                out.push(dir.join(b));
            }
        }
        if let Some(b) = &base {
            out.extend(self.debug_dirs.iter().map(|d| d.join(b)));
        }
        out
    }
}

/// The header of the split compile unit `id` in `dwarf` (a `.dwo`, or a `.dwp`'s part).
fn split_header(dwarf: &Dwarf, id: gimli::DwoId) -> Option<gimli::UnitHeader<Reader>> {
    let mut headers = dwarf.units();
    for _ in 0..4096 {
        let h = headers.next().ok()??;
        let wanted = match h.type_() {
            gimli::UnitType::SplitCompilation(d) => d == id,
            // DWARF 4 (GNU): an ordinary compile unit, matched by DW_AT_GNU_dwo_id.
            gimli::UnitType::Compilation => dwarf.unit(h.clone()).is_ok_and(|u| u.dwo_id == Some(id)),
            _ => false,
        };
        if wanted {
            return Some(h);
        }
    }
    None
}

/// What a split unit reads from the main file besides `.debug_addr` (which `make_dwo`
/// shares): the skeleton's line table and the strings its header names.
fn share_main_sections(dwarf: &mut Dwarf, parent: &Dwarf) {
    dwarf.debug_line = parent.debug_line.clone();
    dwarf.debug_line_str = parent.debug_line_str.clone();
}

fn map(path: &Path) -> std::io::Result<SharedBytes> {
    let len = std::fs::metadata(path)?.len();
    if len > MAX_DWO_BYTES {
        return Err(std::io::Error::other("too big"));
    }
    SharedBytes::map_file(path)
}

/// A section of a `.dwo`/`.dwp` by name, inflated when SHF_COMPRESSED.
fn section(
    file: &object::read::elf::ElfFile64<'_, object::LittleEndian>,
    bytes: &SharedBytes,
    name: &str,
) -> Option<SharedBytes> {
    let s = file.section_by_name(name)?;
    match s.compressed_file_range().ok()?.format {
        object::CompressionFormat::None => {
            let (offset, size) = s.file_range()?;
            Some(bytes.slice(offset as usize, size as usize))
        }
        // A declared size no real section has (zlib inflates ~10×) is refused before
        // anything is allocated for it.
        _ => {
            let c = s.compressed_file_range().ok()?;
            if c.uncompressed_size > MAX_DWO_BYTES || c.uncompressed_size > 256 * c.compressed_size.max(4096) {
                return None;
            }
            Some(SharedBytes::owned(s.uncompressed_data().ok()?.into_owned()))
        }
    }
}

fn reader(bytes: Option<SharedBytes>) -> Reader {
    Reader::new(bytes.unwrap_or_else(|| SharedBytes::owned(Vec::new())), gimli::LittleEndian)
}

/// Runs a gimli loader over the `.dwo` sections of the ELF file `bytes`.
fn with_sections<T>(
    bytes: SharedBytes,
    load: impl FnOnce(&mut dyn FnMut(gimli::SectionId) -> Result<Reader, gimli::Error>) -> Result<T, gimli::Error>,
) -> Option<T> {
    let file = object::read::elf::ElfFile64::<object::LittleEndian>::parse(&*bytes).ok()?;
    load(&mut |id| Ok(reader(id.dwo_name().and_then(|n| section(&file, &bytes, n))))).ok()
}

fn load_dwo(bytes: SharedBytes) -> Option<Dwarf> {
    with_sections(bytes, |sections| gimli::Dwarf::load(sections))
}

fn load_package(bytes: SharedBytes) -> Option<gimli::DwarfPackage<Reader>> {
    with_sections(bytes, |sections| gimli::DwarfPackage::load(sections, reader(None)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_split_files_are_said_a_few_times_then_counted() {
        let files = SplitFiles::new(None, None, Vec::new());
        for i in 0..5 {
            files.note(format!("split DWARF file u{i}.dwo not found"));
        }
        let said = files.take_notes();
        assert_eq!(said.len(), MAX_NOTES + 1, "{said:?}");
        assert_eq!(said.last().map(String::as_str), Some("and 2 more split DWARF files not found or not readable"));
        assert!(files.take_notes().is_empty(), "taken once");
    }

    #[test]
    fn a_dwo_is_looked_for_where_gdb_looks() {
        let files = SplitFiles::new(Some("/opt/app/bin/app".into()), Some("/proc/7/root".into()), vec!["/dbg".into()]);
        let got = files.candidates(Path::new("obj/a.dwo"), Some(Path::new("/build")));
        let want: Vec<PathBuf> = [
            "/proc/7/root/build/obj/a.dwo",
            "/build/obj/a.dwo",
            "/opt/app/bin/obj/a.dwo",
            "/opt/app/bin/a.dwo",
            "/dbg/a.dwo",
        ]
        .iter()
        .map(PathBuf::from)
        .collect();
        assert_eq!(got, want);
    }
}
