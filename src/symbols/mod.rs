//! Modules, build ids, debug-file lookup and symbolization (functions, inlined
//! frames, file:line, demangling). Lazy: a module's ELF is opened, its debug file
//! searched and its DWARF indexed only when an address inside it is looked up (or
//! when the module list is reported); compile units are parsed only for looked-up PCs.
//!
//! Address spaces: everything inside a module (CFI, DWARF, symbols) is in link-time
//! addresses; `vaddr = pc - load_bias` converts at the boundary.

mod callsite;
mod code;
mod debugfile;
mod dwarf;
pub(crate) mod elf;
mod globals;
mod gopclntab;
mod indexcache;
mod jit;
mod layout;
mod lines;
mod linetable;
mod location;
mod lookup;
mod names;
mod outline;
mod scopes;
mod seccache;
mod sharded;
mod split;
mod typed;
mod types;
mod variables;

pub use crate::snapshot::values::VariableOptions;
pub use gopclntab::GoFrame;
pub use types::TypeTable;

use crate::capture::Memory;
use crate::snapshot::{DebugInfo, Frame, Mapping, Module, Problem, Scope, Trust};
use elf::{Headers, Image, SharedBytes};
pub(crate) use sharded::ShardedCache;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

/// Demangles a C++ or Rust (legacy and v0) linkage name; other names come back unchanged.
pub fn demangle(name: &str) -> String {
    names::demangle(name)
}

const AT_ENTRY: u64 = 9;
const AT_SYSINFO_EHDR: u64 = 33;
const CACHE_SHARDS: usize = 16;
/// Type caches per module for variable rendering (see `Entry::type_shards`).
const TYPE_SHARDS: usize = 8;

/// A small number for this thread, handed out in turn at first use: which of a
/// sharded cache's parts it uses.
pub(crate) fn worker_slot() -> usize {
    use std::sync::atomic::AtomicUsize;
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    thread_local! {
        static MINE: usize = NEXT.fetch_add(1, Ordering::Relaxed);
    }
    MINE.with(|m| *m)
}

/// Where to look for separate debug files, besides the defaults.
#[derive(Debug, Clone, Default)]
pub struct SymbolOptions {
    /// Extra roots searched like /usr/lib/debug (`.build-id/xx/yyyy.debug`, debuglink).
    pub debug_dirs: Vec<PathBuf>,
    /// Prefix prepended to module paths (a sysroot, or /proc/PID/root for live targets).
    pub sysroot: Option<PathBuf>,
    /// The executable given on the command line, overriding the path recorded in a core.
    pub exe: Option<PathBuf>,
    /// The perf map naming the process's JIT code (`/tmp/perf-PID.map`; see `jit.rs`).
    pub jit_map: Option<PathBuf>,
}

/// One module and its lazily opened files. Invariant: `record.start..record.end`
/// covers all mappings of the module; entries in a set do not share a start.
pub(crate) struct Entry {
    pub(crate) record: Module,
    /// The file to open (sysroot and `--exe` applied); None for the vDSO.
    open_path: Option<PathBuf>,
    /// The vDSO image copied from target memory.
    vdso: Option<SharedBytes>,
    /// Build id as the target had it in memory (from the mapped ELF headers).
    target_build_id: Option<Vec<u8>>,
    /// Program headers (from memory or the file), when they could be read at load.
    headers: Option<Headers>,
    image: OnceLock<Option<Image>>,
    debug_file: OnceLock<Option<Image>>,
    dwarf: OnceLock<Option<Mutex<(dwarf::LazyContext, dwarf::NameCache)>>>,
    /// Point lookups that read only what a pc needs; `dwarf` is the exact fallback.
    lookup: OnceLock<Option<Mutex<lookup::Index>>>,
    /// Unit outlines and line spans, shared by `lookup` and `dwarf` (each built once).
    outlines: OnceLock<Arc<lookup::OutlineStore>>,
    /// The `.dwo`/`.dwp` files of a split DWARF build, shared by `lookup` and variables.
    split: OnceLock<Arc<split::SplitFiles>>,
    symbols: OnceLock<names::SymbolIndex>,
    /// Data-object symbols, indexed when a pointer value first needs a name.
    data_symbols: OnceLock<names::SymbolIndex>,
    /// Location lists, loaded when a variable first needs them.
    locs: OnceLock<Option<gimli::LocationLists<elf::Reader>>>,
    /// Units variables were read in, parsed once (abbreviations, line program
    /// header): threads share pcs, so they share units. By unit offset.
    pub(crate) units: Mutex<HashMap<usize, Arc<split::Parsed>>>,
    /// Start offsets of the DWARF units, in order (for references between units).
    pub(crate) unit_starts: OnceLock<Vec<usize>>,
    /// `frame_dies` answers for variables, by probe (threads share pcs).
    pub(crate) frame_dies: Mutex<HashMap<u64, FrameDies>>,
    /// What variables need at each pc, in parts by probe (see `variables::FramePlan`).
    pub(crate) frame_plans: ShardedCache<(u64, bool), Option<Arc<variables::FramePlan>>>,
    /// What call-site values need at each return address (see `callsite::CallPlan`).
    pub(crate) call_plans: ShardedCache<u64, Option<Arc<callsite::CallPlan>>>,
    /// Type DIEs found by name (unit offset, DIE offset), or not found: each name is
    /// searched once (a Go program names many interfaces' dynamic types).
    pub(crate) named_types: Mutex<HashMap<String, Option<(usize, gimli::UnitOffset)>>>,
    /// Types parsed for rendering frame variables, one cache per tracing worker
    /// (`worker_slot`), so that workers rendering values of the same module do not
    /// wait for each other; each parses the types it meets.
    pub(crate) type_shards: Vec<Mutex<types::TypeCache>>,
    /// Go's function table (`.gopclntab`), for a Go program without DWARF.
    go_table: OnceLock<Option<gopclntab::GoTable>>,
    /// The "no debug info" problem is reported once.
    no_debug_reported: AtomicBool,
}

/// The unit offset and the frame DIEs at a probe (see `ModuleSet::frame_dies`).
pub(crate) type FrameDies = Option<Option<(usize, Vec<gimli::UnitOffset>)>>;

/// One source-level frame for an address: innermost inlined call first, the
/// physical function last. Both lookup paths (`lookup`, and `dwarf` on addr2line)
/// produce it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct SourceFrame {
    pub function: Option<String>,
    pub file: Option<String>,
    pub line: Option<u32>,
    pub column: Option<u32>,
}

/// What one lookup pc resolves to (cached; shared by every thread with that pc).
#[derive(Debug, Default)]
struct Resolved {
    frames: Vec<SourceFrame>,
    /// Symbol-table name and start (link-time) when DWARF gave no function name.
    symbol: Option<(String, u64)>,
}

type Cache = Mutex<HashMap<(u32, u64), Arc<Resolved>>>;

/// The modules of one target.
pub struct ModuleSet {
    entries: Vec<Entry>,
    /// Debug roots: /usr/lib/debug, then `SymbolOptions::debug_dirs`.
    roots: Vec<PathBuf>,
    /// `SymbolOptions::sysroot` (split DWARF files are looked for under it too).
    sysroot: Option<PathBuf>,
    /// The program's entry point (`AT_ENTRY`): the first instruction the process ran.
    entry_point: Option<u64>,
    /// Code generated at run time, and its names (see `jit.rs`).
    jit: jit::Jit,
    /// Problems found lazily (opening files, debug lookup); see [`ModuleSet::take_problems`].
    problems: Mutex<Vec<Problem>>,
    cache: Vec<Cache>,
    /// The function each PLT stub binds to, by stub address (a search of every other
    /// module's `.dynsym`, done once per stub).
    plt_targets: Mutex<HashMap<u64, Option<u64>>>,
}

fn is_file_mapping(path: &str) -> bool {
    path.starts_with('/') && !path.starts_with("/dev/") && !path.starts_with("/memfd:") && !path.starts_with("/SYSV")
}

fn file_name(path: &str) -> String {
    Path::new(path).file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| path.to_string())
}

/// Reads up to `len` bytes from the start of a file without mapping it.
fn read_file_head(path: &Path, len: usize) -> Option<Vec<u8>> {
    use std::io::Read;
    let f = crate::capture::open_regular(path).ok()?;
    let mut buf = Vec::with_capacity(len);
    f.take(len as u64).read_to_end(&mut buf).ok()?;
    Some(buf)
}

/// One module from a link-map entry: the file from the mapping that holds its
/// dynamic section (so a replaced file keeps its ` (deleted)` mark), the headers
/// from memory where the image starts (else the file), the extent from its
/// `PT_LOAD` segments at `l_addr`.
fn image_from_link_map(
    l: &crate::capture::linkmap::Loaded,
    maps: &[Mapping],
    entry_point: Option<u64>,
    memory: &dyn Memory,
    opts: &SymbolOptions,
) -> Result<Entry, String> {
    let holder = maps.iter().find(|m| m.start <= l.dynamic && l.dynamic < m.end && is_file_mapping(&m.path));
    let path = match holder {
        Some(m) => m.path.clone(),
        None if l.name.starts_with('/') => l.name.clone(),
        None => return Err(format!("no file mapping holds its dynamic section at {:#x}", l.dynamic)),
    };
    let clean = path.strip_suffix(" (deleted)").unwrap_or(&path).to_string();
    // Where its headers are: the offset-0 mapping of the same file nearest below
    // the dynamic section, at or above l_addr.
    let head_at = maps
        .iter()
        .filter(|m| m.path == path && m.offset == 0 && m.start >= l.bias && m.start <= l.dynamic)
        .map(|m| m.start)
        .max();
    let mem_headers = head_at.and_then(|a| elf::parse_headers(&read_memory(memory, a, 4096)));
    let is_exe_guess = l.name.is_empty();
    let open_path = match (&opts.exe, is_exe_guess) {
        (Some(exe), true) => exe.clone(),
        _ => resolve_under(opts.sysroot.as_deref(), &clean),
    };
    let headers = mem_headers
        .or_else(|| read_file_head(&open_path, 16384).and_then(|h| elf::parse_headers(&h)))
        .ok_or_else(|| format!("cannot read the ELF headers of {clean} (from memory or {})", open_path.display()))?;
    let lo = headers.loads.iter().map(|s| s.vaddr).min().ok_or("no PT_LOAD segment")?;
    let hi = headers.loads.iter().map(|s| s.vaddr.saturating_add(s.memsz)).max().ok_or("no PT_LOAD segment")?;
    let start = l.bias.wrapping_add(lo) & !0xfff;
    let end = l.bias.wrapping_add(hi).wrapping_add(0xfff) & !0xfff;
    if !(start <= l.dynamic && l.dynamic < end) || end <= start {
        return Err(format!("its segments at {start:#x}..{end:#x} do not hold its dynamic section {:#x}", l.dynamic));
    }
    let is_exe = entry_point.is_some_and(|e| start <= e && e < end);
    let build_id = build_id_in_memory(memory, &headers, l.bias);
    let record = Module {
        path,
        build_id: build_id.as_deref().map(elf::hex),
        load_bias: l.bias,
        start,
        end,
        is_executable: is_exe,
        debug: DebugInfo::default(),
    };
    Ok(Entry::new(record, Some(open_path), None, build_id, Some(headers)))
}

fn read_memory(memory: &dyn Memory, addr: u64, len: usize) -> Vec<u8> {
    let mut buf = vec![0u8; len];
    let n = memory.read(addr, &mut buf);
    buf.truncate(n);
    buf
}

/// The target's build id, read from its mapped PT_NOTE segments.
fn build_id_in_memory(memory: &dyn Memory, headers: &Headers, bias: u64) -> Option<Vec<u8>> {
    headers.notes.iter().find_map(|&(vaddr, _, size)| {
        let bytes = read_memory(memory, bias.wrapping_add(vaddr), size.min(4096) as usize);
        elf::build_id_from_notes(&bytes)
    })
}

impl ModuleSet {
    /// Builds the module list: from the dynamic linker's link map when the capture
    /// has one (each image where `l_addr` says, its extent from its own `PT_LOAD`
    /// segments), then from the file mappings the link map does not cover (a static
    /// executable, code mapped by hand); the vDSO comes from memory
    /// (`AT_SYSINFO_EHDR`). Only ELF headers are read here (from target memory when
    /// it has them, else the first page of the file); files are mapped on first use.
    pub fn load(
        maps: &[Mapping],
        auxv: &[(u64, u64)],
        link_map: &[crate::capture::linkmap::Loaded],
        memory: &dyn Memory,
        opts: &SymbolOptions,
    ) -> (ModuleSet, Vec<Problem>) {
        let mut problems = Vec::new();
        let entry_point = auxv.iter().find(|(k, _)| *k == AT_ENTRY).map(|(_, v)| *v);
        let vdso_base = auxv.iter().find(|(k, _)| *k == AT_SYSINFO_EHDR).map(|(_, v)| *v).filter(|v| *v != 0);
        let vdso_range =
            vdso_base.and_then(|b| maps.iter().find(|m| m.start <= b && b < m.end)).map(|m| (m.start, m.end));

        let mut entries = Vec::new();
        let mut covered: Vec<(u64, u64)> = Vec::new();
        for l in link_map {
            let in_vdso = vdso_range.is_some_and(|(s, e)| s <= l.dynamic && l.dynamic < e);
            if in_vdso || l.name.starts_with("linux-vdso") || l.name.starts_with("linux-gate") {
                continue;
            }
            match image_from_link_map(l, maps, entry_point, memory, opts) {
                Ok(e) => {
                    if !covered.iter().any(|&(s, end)| s < e.record.end && e.record.start < end) {
                        covered.push((e.record.start, e.record.end));
                        entries.push(e);
                    }
                }
                Err(msg) => {
                    let name = if l.name.is_empty() { "the executable".to_string() } else { l.name.clone() };
                    problems.push(Problem::new(Scope::Module(name), msg));
                }
            }
        }

        // Group the mappings the link map does not cover by path, keeping first-seen
        // order. With a link map, only groups code runs from are modules: the rest are
        // files mapped as data (a debugger reading an ELF file, a font, a locale archive).
        let uncovered = |m: &Mapping| !covered.iter().any(|&(s, e)| s < m.end && m.start < e);
        let mut groups: Vec<(&str, Vec<&Mapping>)> = Vec::new();
        let mut by_path: HashMap<&str, usize> = HashMap::new();
        for m in maps.iter().filter(|m| is_file_mapping(&m.path) && uncovered(m)) {
            let i = *by_path.entry(m.path.as_str()).or_insert_with(|| {
                groups.push((m.path.as_str(), Vec::new()));
                groups.len() - 1
            });
            groups[i].1.push(m);
        }

        for (path, group) in groups {
            let start = group.iter().map(|m| m.start).min().unwrap_or(0);
            let end = group.iter().map(|m| m.end).max().unwrap_or(0);
            let any_exec = group.iter().any(|m| m.perms.contains('x'));
            if !link_map.is_empty() && !any_exec {
                continue;
            }
            let is_exe = entry_point.is_some_and(|e| e >= start && e < end);
            // The mapping whose file offset is lowest anchors the bias (usually offset 0).
            let Some(anchor) = group.iter().min_by_key(|m| (m.offset, m.start)) else { continue };

            let (clean, deleted) = match path.strip_suffix(" (deleted)") {
                Some(p) => (p, true),
                None => (path, false),
            };
            let scope = Scope::Module(path.to_string());
            if deleted {
                problems.push(Problem::new(
                    scope.clone(),
                    format!("{clean} was deleted or replaced after the process mapped it; symbols come from the file now at that path, if its build id matches"),
                ));
            }
            let open_path = match (&opts.exe, is_exe) {
                (Some(exe), true) => exe.clone(),
                _ => resolve_under(opts.sysroot.as_deref(), clean),
            };

            let mem_head = read_memory(memory, anchor.start, 4096);
            let mem_headers = if anchor.offset == 0 { elf::parse_headers(&mem_head) } else { None };
            let headers =
                mem_headers.clone().or_else(|| read_file_head(&open_path, 16384).and_then(|h| elf::parse_headers(&h)));
            let Some(headers) = headers else {
                // Not an ELF (locale archives, fonts, data files) unless code runs from it.
                if any_exec {
                    problems.push(Problem::new(
                        scope,
                        format!("cannot read the ELF headers of {clean} (from memory or {})", open_path.display()),
                    ));
                    entries.push(Entry::new(
                        Module { path: path.to_string(), start, end, is_executable: is_exe, ..Default::default() },
                        Some(open_path),
                        None,
                        None,
                        None,
                    ));
                }
                continue;
            };
            let bias = headers.bias(anchor.start, anchor.offset).unwrap_or(0);
            let target_build_id = build_id_in_memory(memory, &headers, bias);
            let record = Module {
                path: path.to_string(),
                build_id: target_build_id.as_deref().map(elf::hex),
                load_bias: bias,
                start,
                end,
                is_executable: is_exe,
                debug: DebugInfo::default(),
            };
            entries.push(Entry::new(record, Some(open_path), None, target_build_id, Some(headers)));
        }

        if let Some(base) = vdso_base {
            match load_vdso(maps, memory, base) {
                Ok(e) => entries.push(e),
                Err(msg) => problems.push(Problem::new(Scope::Module("[vdso]".into()), msg)),
            }
        }

        entries.sort_by_key(|e| e.record.start);
        entries.dedup_by_key(|e| e.record.start);
        let mut roots = vec![PathBuf::from(debugfile::DEFAULT_DEBUG_ROOT)];
        // A target in another mount namespace (a container) may carry its own debug files.
        if let Some(root) = &opts.sysroot {
            let inner = root.join(debugfile::DEFAULT_DEBUG_ROOT.trim_start_matches('/'));
            if inner.is_dir() && std::fs::canonicalize(&inner).ok() != std::fs::canonicalize(&roots[0]).ok() {
                roots.push(inner);
            }
        }
        roots.extend(opts.debug_dirs.iter().cloned());
        let (jit, note) = jit::Jit::new(maps, opts.jit_map.as_deref());
        problems.extend(note.map(|n| Problem::new(Scope::Snapshot, n)));
        let set = ModuleSet {
            entries,
            roots,
            sysroot: opts.sysroot.clone(),
            entry_point,
            jit,
            problems: Mutex::new(Vec::new()),
            cache: (0..CACHE_SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
            plt_targets: Mutex::new(HashMap::new()),
        };
        (set, problems)
    }

    /// Fills `module`, `module_offset`, `function`, `file`, `line` of a physical
    /// frame and returns it preceded by its inlined frames (innermost first).
    ///
    /// The lookup address is `pc - 1` for return addresses, and `pc` itself for
    /// frame 0 (`Trust::Context`) and for signal frames (`signal_frame`: the
    /// trampoline and the frame a signal interrupted), whose pcs are exact.
    pub fn symbolize(&self, frame: Frame) -> Vec<Frame> {
        let mut out = Vec::new();
        self.symbolize_into(frame, &mut out);
        out
    }

    /// [`symbolize`](Self::symbolize) appending to `out` (a thread's frames, without
    /// a vector per frame).
    pub fn symbolize_into(&self, mut frame: Frame, out: &mut Vec<Frame>) {
        let Some(idx) = self.find(frame.pc) else {
            self.symbolize_jit(&mut frame);
            return out.push(frame);
        };
        let e = &self.entries[idx];
        let vaddr = frame.pc.wrapping_sub(e.record.load_bias);
        frame.module = Some(if e.vdso.is_some() { "[vdso]".to_string() } else { file_name(&e.record.path) });
        frame.module_offset = vaddr;
        let exact = frame.trust == Trust::Context || frame.signal_frame;
        // A pc inside a PLT stub (no symbol covers one): named as gdb names it. Only
        // an exact pc can be there: stubs jump, they never call.
        if exact
            && self.image(idx).is_some_and(|img| img.in_plt(vaddr))
            && let Some(name) = self.plt_name(frame.pc)
        {
            frame.function = Some(format!("{name}@plt"));
            return out.push(frame);
        }
        let probe = if exact { vaddr } else { vaddr.wrapping_sub(1) };
        let res = self.resolve(idx, probe);

        if let Some((name, start)) = &res.symbol {
            frame.function_offset = Some(vaddr.wrapping_sub(*start));
            if res.frames.is_empty() {
                frame.function = Some(name.clone());
                return out.push(frame);
            }
        }
        // A tail-call frame (reconstructed by the unwinder: a caller frame with no
        // recovered registers) shows only its innermost function, as gdb does.
        let tail_call = frame.trust != Trust::Context && frame.registers.is_empty() && !frame.inlined;
        let n = if tail_call { res.frames.len().min(1) } else { res.frames.len() };
        if n == 0 {
            return out.push(frame);
        }
        out.reserve(n);
        for (i, sf) in res.frames.iter().take(n).enumerate() {
            let mut f = if i + 1 == n { std::mem::take(&mut frame) } else { frame.inlined_here() };
            f.function =
                sf.function.clone().or_else(|| res.symbol.as_ref().filter(|_| i + 1 == n).map(|s| s.0.clone()));
            f.file = sf.file.clone();
            f.line = sf.line;
            f.column = sf.column;
            out.push(f);
        }
    }

    /// The modules as recorded in the snapshot (with debug-info status). Opens each
    /// module's file and looks for its debug file (cheap: headers and a few stats),
    /// but does not index any DWARF.
    pub fn modules(&self) -> Vec<Module> {
        (0..self.entries.len())
            .map(|i| {
                let e = &self.entries[i];
                let mut m = e.record.clone();
                let Some(img) = self.image(i) else { return m };
                if m.build_id.is_none() {
                    m.build_id = img.build_id.as_deref().map(elf::hex);
                }
                let dbg = self.debug_file(i);
                let dwarf_from = if img.has_debug_info { Some(img) } else { dbg.filter(|d| d.has_debug_info) };
                let go = self.go_table(i).is_some();
                if m.is_executable && dwarf_from.is_none() && !e.no_debug_reported.swap(true, Ordering::Relaxed) {
                    self.problem(
                        i,
                        if go {
                            format!(
                                "no debug info for the Go executable {}: functions, inlined calls, files, lines and frames come from Go's function table (.gopclntab); no variables",
                                e.record.path
                            )
                        } else {
                            format!(
                                "no debug info for the executable {} (nor a separate debug file): functions come from the symbol table, without files and lines",
                                e.record.path
                            )
                        },
                    );
                }
                m.debug = DebugInfo {
                    found: dwarf_from.is_some(),
                    path: dwarf_from.map(|d| d.path.display().to_string()),
                    symbols: img.has_symtab || img.has_dynsym || dbg.is_some_and(|d| d.has_symtab) || go,
                    unwind: img.eh_frame.is_some()
                        || img.debug_frame.is_some()
                        || dbg.is_some_and(|d| d.debug_frame.is_some())
                        || go,
                };
                m
            })
            .collect()
    }

    /// Problems met lazily since [`ModuleSet::load`] (files that could not be opened,
    /// build-id mismatches, rejected debug files). Drains the list.
    pub fn take_problems(&self) -> Vec<Problem> {
        // The addr2line context is built only when a lookup needs it; its failure is
        // collected here rather than on the hot path.
        for idx in 0..self.entries.len() {
            let Some(Some(m)) = self.entries[idx].dwarf.get() else { continue };
            let failure = m.lock().ok().and_then(|mut g| g.0.take_failure());
            if let Some(err) = failure {
                self.problem(idx, format!("DWARF units: {err}: some inlined frames and variables may be missing"));
            }
            if let Some(split) = self.entries[idx].split.get() {
                for note in split.take_notes() {
                    self.problem(idx, note);
                }
            }
        }
        self.problems.lock().map(|mut p| std::mem::take(&mut *p)).unwrap_or_default()
    }

    fn problem(&self, idx: usize, msg: String) {
        if let Ok(mut p) = self.problems.lock() {
            p.push(Problem::new(Scope::Module(self.entries[idx].record.path.clone()), msg));
        }
    }

    // ---- accessors for the unwinder (and the symbolizer itself) ----

    /// How many modules the set holds (indexes are `0..len`).
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Index of the module whose mapped range holds `addr`.
    pub(crate) fn find(&self, addr: u64) -> Option<usize> {
        let idx = self.entries.partition_point(|e| e.record.start <= addr).checked_sub(1)?;
        (addr < self.entries[idx].record.end).then_some(idx)
    }

    pub(crate) fn entry(&self, idx: usize) -> &Entry {
        &self.entries[idx]
    }

    /// The module's own ELF image, opened (mmap) on first use. A file whose build id
    /// differs from the one the target had loaded is refused with a problem.
    pub(crate) fn image(&self, idx: usize) -> Option<&Image> {
        let e = &self.entries[idx];
        e.image
            .get_or_init(|| {
                if let Some(bytes) = &e.vdso {
                    return match Image::parse(bytes.clone(), PathBuf::from("[vdso]")) {
                        Ok(i) => Some(i),
                        Err(err) => {
                            self.problem(idx, format!("vDSO image from memory: {err}"));
                            None
                        }
                    };
                }
                let path = e.open_path.as_ref()?;
                let img = match Image::open(path) {
                    Ok(i) => i,
                    Err(err) => {
                        self.problem(idx, format!("cannot open module: {err}"));
                        return None;
                    }
                };
                if let (Some(want), Some(have)) = (&e.target_build_id, &img.build_id)
                    && want != have
                {
                    self.problem(
                        idx,
                        format!(
                            "{} has build id {} but the process had {} loaded: wrong file, not used",
                            path.display(),
                            elf::hex(have),
                            elf::hex(want)
                        ),
                    );
                    return None;
                }
                Some(img)
            })
            .as_ref()
    }

    /// The separate debug file, when the module itself has no DWARF.
    pub(crate) fn debug_file(&self, idx: usize) -> Option<&Image> {
        self.entries[idx]
            .debug_file
            .get_or_init(|| {
                let img = self.image(idx)?;
                if img.has_debug_info || self.entries[idx].vdso.is_some() {
                    return None;
                }
                let (found, rejected) = debugfile::find(img, &self.roots);
                for r in rejected {
                    let msg = match r {
                        debugfile::Rejected::BuildId(p) => {
                            format!("debug file {} has another build id; ignored", p.display())
                        }
                        debugfile::Rejected::Crc(p) => {
                            format!("debug file {} fails the .gnu_debuglink CRC; ignored", p.display())
                        }
                    };
                    self.problem(idx, msg);
                }
                found
            })
            .as_ref()
    }

    fn dwarf(&self, idx: usize) -> Option<&Mutex<(dwarf::LazyContext, dwarf::NameCache)>> {
        self.entries[idx]
            .dwarf
            .get_or_init(|| {
                let img = self.image(idx)?;
                let src = if img.has_debug_info { img } else { self.debug_file(idx).filter(|d| d.has_debug_info)? };
                let sup = match &src.altlink {
                    Some((path, _)) => {
                        let found = debugfile::find_alt(src, &self.roots);
                        if found.is_none() {
                            self.problem(
                                idx,
                                format!(
                                    "dwz supplementary file {path} of {} not found: some names may be missing",
                                    src.path.display()
                                ),
                            );
                        }
                        found
                    }
                    None => None,
                };
                match dwarf::context(src, sup.as_ref(), self.outline_store(idx, src)) {
                    Ok(pair) => Some(Mutex::new(pair)),
                    Err(err) => {
                        self.problem(idx, format!("DWARF of {}: {err}", src.path.display()));
                        None
                    }
                }
            })
            .as_ref()
    }

    /// The frame DIEs at link-time `probe` of module `idx` from the point-lookup index:
    /// the unit's `.debug_info` offset and the DIEs, innermost first (see
    /// `lookup::Index::frame_dies`). The outer None means: ask addr2line.
    pub(crate) fn frame_dies(&self, idx: usize, probe: u64) -> Option<Option<(usize, Vec<gimli::UnitOffset>)>> {
        self.lookup(idx)?.lock().ok()?.frame_dies(probe).ok()
    }

    /// The point-lookup index over the module's DWARF, built on first use. None (and
    /// the addr2line path, which reports the problem) when the DWARF cannot be loaded
    /// or a dwz supplementary file is named but missing.
    fn lookup(&self, idx: usize) -> Option<&Mutex<lookup::Index>> {
        self.entries[idx]
            .lookup
            .get_or_init(|| {
                let img = self.image(idx)?;
                let src = if img.has_debug_info { img } else { self.debug_file(idx).filter(|d| d.has_debug_info)? };
                let mut dwarf = dwarf::load_dwarf(src).ok()?;
                if src.altlink.is_some() {
                    let sup = debugfile::find_alt(src, &self.roots)?;
                    dwarf.set_sup(dwarf::load_dwarf(&sup).ok()?);
                }
                Some(Mutex::new(lookup::Index::new(dwarf, self.outline_store(idx, src), self.split_files(idx))))
            })
            .as_ref()
    }

    /// The module's split DWARF files (opened when a skeleton unit is first read).
    pub(crate) fn split_files(&self, idx: usize) -> Arc<split::SplitFiles> {
        let e = &self.entries[idx];
        e.split
            .get_or_init(|| {
                let dirs = self.roots.iter().skip(1).cloned().collect();
                Arc::new(split::SplitFiles::new(e.open_path.clone(), self.sysroot.clone(), dirs))
            })
            .clone()
    }

    /// The module's outline store; `src` is the file holding its DWARF (the module or
    /// its debug file), whose build id keys the disk cache.
    fn outline_store(&self, idx: usize, src: &Image) -> Arc<lookup::OutlineStore> {
        let key = || indexcache::Key::new(src.build_id.as_deref(), src.bytes.len());
        self.entries[idx].outlines.get_or_init(|| Arc::new(lookup::OutlineStore::new(key()))).clone()
    }

    fn symbol_images(&self, idx: usize) -> Vec<&Image> {
        let mut v = Vec::with_capacity(2);
        if let Some(img) = self.image(idx) {
            v.push(img);
            if let Some(d) = self.debug_file(idx) {
                v.push(d);
            }
        }
        v
    }

    fn symbols(&self, idx: usize, images: &[&Image]) -> &names::SymbolIndex {
        self.entries[idx].symbols.get_or_init(|| names::SymbolIndex::build(images))
    }

    /// Resolves a link-time probe address of module `idx`, through the shared cache.
    fn resolve(&self, idx: usize, probe: u64) -> Arc<Resolved> {
        let key = (idx as u32, probe);
        let shard = &self.cache[(probe as usize ^ (probe as usize >> 12) ^ idx) % CACHE_SHARDS];
        if let Some(r) = shard.lock().ok().and_then(|c| c.get(&key).cloned()) {
            return r;
        }
        let mut res = Resolved::default();
        let fast = self.lookup(idx).and_then(|ix| ix.lock().ok().and_then(|mut g| g.frames(probe).ok()));
        if let Some(frames) = fast {
            res.frames = frames;
        } else if let Some(ctx) = self.dwarf(idx)
            && let Ok(mut guard) = ctx.lock()
        {
            let (lazy, names) = &mut *guard;
            if let Some(ctx) = lazy.get(names) {
                res.frames = dwarf::frames(ctx, names, probe);
            }
        }
        let mut has_name = res.frames.last().is_some_and(|f| f.function.is_some());
        if !has_name && let Some((frames, entry)) = self.go_frame(idx, probe) {
            // A Go program without DWARF: Go's own table names it and what was inlined
            // there, with their lines.
            res.symbol = frames.last().and_then(|f| f.function.clone()).map(|name| (name, entry));
            res.frames = frames;
            has_name = true;
        }
        if !has_name {
            let images = self.symbol_images(idx);
            let index = self.symbols(idx, &images);
            if let Some(hit) = index.lookup(probe, &images) {
                // Offsets are reported from the frame's pc, so keep the symbol start.
                res.symbol = Some((hit.name, probe - hit.offset));
            }
        }
        let res = Arc::new(res);
        if let Ok(mut c) = shard.lock() {
            c.insert(key, res.clone());
        }
        res
    }
}

impl Entry {
    fn new(
        record: Module,
        open_path: Option<PathBuf>,
        vdso: Option<SharedBytes>,
        target_build_id: Option<Vec<u8>>,
        headers: Option<Headers>,
    ) -> Entry {
        Entry {
            record,
            open_path,
            vdso,
            target_build_id,
            headers,
            image: OnceLock::new(),
            debug_file: OnceLock::new(),
            dwarf: OnceLock::new(),
            lookup: OnceLock::new(),
            outlines: OnceLock::new(),
            split: OnceLock::new(),
            symbols: OnceLock::new(),
            locs: OnceLock::new(),
            data_symbols: OnceLock::new(),
            units: Mutex::default(),
            unit_starts: OnceLock::new(),
            frame_dies: Mutex::default(),
            frame_plans: ShardedCache::default(),
            call_plans: ShardedCache::default(),
            named_types: Mutex::default(),
            type_shards: (0..TYPE_SHARDS).map(|_| Mutex::default()).collect(),
            go_table: OnceLock::new(),
            no_debug_reported: AtomicBool::new(false),
        }
    }
}

/// `path` under `sysroot` when that file exists there, else `path` itself.
fn resolve_under(sysroot: Option<&Path>, path: &str) -> PathBuf {
    if let Some(root) = sysroot {
        let p = root.join(path.trim_start_matches('/'));
        if p.exists() {
            return p;
        }
    }
    PathBuf::from(path)
}

/// Copies the vDSO image out of target memory and records it as a module.
/// Folklore: the vDSO has no file on disk; the kernel maps one ELF image (about two
/// pages, headers included) at AT_SYSINFO_EHDR, linked at 0, so bias = its base.
fn load_vdso(maps: &[Mapping], memory: &dyn Memory, base: u64) -> Result<Entry, String> {
    let head = read_memory(memory, base, 4096);
    let headers =
        elf::parse_headers(&head).ok_or_else(|| format!("vDSO at {base:#x} is not readable in the target's memory"))?;
    let end = match maps.iter().find(|m| m.start <= base && base < m.end) {
        Some(m) => m.end,
        None => {
            let size = headers.loads.iter().map(|s| s.offset + s.filesz).max().unwrap_or(4096);
            base + size.div_ceil(elf::PAGE) * elf::PAGE
        }
    };
    let bytes = read_memory(memory, base, (end - base).min(1 << 20) as usize);
    let bias = headers.bias(base, 0).unwrap_or(base);
    let build_id = build_id_in_memory(memory, &headers, bias);
    let record = Module {
        path: "[vdso]".into(),
        build_id: build_id.as_deref().map(elf::hex),
        load_bias: bias,
        start: base,
        end,
        is_executable: false,
        debug: DebugInfo::default(),
    };
    Ok(Entry::new(record, None, Some(SharedBytes::owned(bytes)), build_id, Some(headers)))
}
