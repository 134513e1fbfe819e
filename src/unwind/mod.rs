//! Stack walking: DWARF CFI (.eh_frame via .eh_frame_hdr, .debug_frame), signal
//! frames, frame pointers, and stack scanning as a last resort. Every walk terminates.
//! (Being written; see issue 2.)

use crate::snapshot::{Frame, Problem, Registers, Trust};
use crate::symbols::ModuleSet;
use crate::target::Memory;

#[derive(Debug, Clone)]
pub struct WalkOptions {
    pub max_frames: usize,
}

impl Default for WalkOptions {
    fn default() -> Self {
        WalkOptions { max_frames: 1024 }
    }
}

/// Walks one thread's stack from its registers. Returns physical frames
/// (pc, sp, trust, signal_frame, registers filled; names not yet) and problems met.
pub fn walk(regs: &Registers, _memory: &dyn Memory, _modules: &ModuleSet, _opts: &WalkOptions) -> (Vec<Frame>, Vec<Problem>) {
    let frame0 = Frame { pc: regs.rip, sp: regs.rsp, trust: Trust::Context, ..Default::default() };
    (vec![frame0], Vec::new())
}
