//! Live processes: freeze every thread with PTRACE_SEIZE + PTRACE_INTERRUPT, copy
//! registers and stacks, detach. (Being written; see issue 2.)

use super::{Capture, TargetError};

/// Options for a live capture.
#[derive(Debug, Clone)]
pub struct LiveOptions {
    /// Upper bound of stack bytes copied per thread (from the stack pointer up).
    pub max_stack_bytes: usize,
}

impl Default for LiveOptions {
    fn default() -> Self {
        LiveOptions { max_stack_bytes: 8 << 20 }
    }
}

pub fn capture(pid: i32, _opts: &LiveOptions) -> Result<Capture, TargetError> {
    Err(TargetError::NoSuchProcess { pid })
}
