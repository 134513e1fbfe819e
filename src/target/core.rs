//! ELF core files: threads from NT_PRSTATUS, process from NT_PRPSINFO, the signal from
//! NT_SIGINFO, modules from NT_FILE, memory from PT_LOAD segments (mmap). (Being written.)

use super::{Capture, TargetError};
use std::path::Path;

pub fn open(path: &Path, _exe: Option<&Path>) -> Result<Capture, TargetError> {
    Err(TargetError::NotACore { path: path.display().to_string(), reason: "not implemented yet".into() })
}
