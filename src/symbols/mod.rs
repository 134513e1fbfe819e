//! Modules, build ids, debug-file lookup and symbolization (functions, inlined
//! frames, file:line, demangling). Lazy: a module's ELF and DWARF are opened only
//! when an address inside it is looked up. (Being written; see issue 2.)

use crate::snapshot::{Frame, Mapping, Module, Problem};
use crate::target::Memory;
use std::path::PathBuf;

/// Where to look for separate debug files, besides the defaults.
#[derive(Debug, Clone, Default)]
pub struct SymbolOptions {
    /// Extra roots searched like /usr/lib/debug (`.build-id/xx/yyyy.debug`, debuglink).
    pub debug_dirs: Vec<PathBuf>,
    /// Prefix prepended to module paths (a sysroot, or /proc/PID/root for live targets).
    pub sysroot: Option<PathBuf>,
    /// The executable given on the command line, overriding the path recorded in a core.
    pub exe: Option<PathBuf>,
}

/// The modules of one target.
pub struct ModuleSet {
    modules: Vec<Module>,
}

impl ModuleSet {
    /// Builds the module list from the memory map; the vDSO comes from memory
    /// (`AT_SYSINFO_EHDR`). Files are not opened until needed.
    pub fn load(
        _maps: &[Mapping],
        _auxv: &[(u64, u64)],
        _memory: &dyn Memory,
        _opts: &SymbolOptions,
    ) -> (ModuleSet, Vec<Problem>) {
        (ModuleSet { modules: Vec::new() }, Vec::new())
    }

    /// Fills `module`, `module_offset`, `function`, `file`, `line` of a physical
    /// frame and returns it preceded by its inlined frames (innermost first).
    pub fn symbolize(&self, frame: Frame) -> Vec<Frame> {
        vec![frame]
    }

    /// The modules as recorded in the snapshot (with debug-info status).
    pub fn modules(&self) -> Vec<Module> {
        self.modules.clone()
    }
}
