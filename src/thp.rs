//! Transparent huge pages for bt's own heap: off for the process, on for one big trace.
//!
//! mimalloc asks the kernel for huge pages on its arenas (`madvise(MADV_HUGEPAGE)`),
//! and whether the kernel gives them is the process's `PR_SET_THP_DISABLE` flag, read
//! at every page fault. Off by default (set from bt's `.preinit_array`, before anything
//! allocates): a trace of
//! one big program touches a few MiB here and there in 2 MiB pages, each zeroed whole
//! (the big-DWARF core: 37 → 57 ms and 80 → 121 MB with them). On for a trace of many
//! threads with variables, whose heap is ~100 MB of small values written once, where a
//! 4 KiB page fault each is a large share of the work (1,000 threads: ~18,000 faults,
//! ~3,300 with huge pages). The flag is the whole process's and is inherited by children: only
//! a one-shot applet turns it on (`TraceOptions::huge_pages_from`).

/// Threads with variables from which a one-shot trace turns huge pages on.
pub const MANY_THREADS: usize = 256;

/// Lets the kernel back bt's heap with huge pages (where mimalloc asked for them), or not.
/// Returns false when the kernel refused (no THP support): nothing else changes.
pub fn allow(allowed: bool) -> bool {
    // SAFETY: PR_SET_THP_DISABLE takes an integer flag and touches no memory of ours.
    unsafe { libc::prctl(libc::PR_SET_THP_DISABLE, libc::c_ulong::from(!allowed), 0, 0, 0) == 0 }
}

#[cfg(test)]
mod tests {
    /// Whether the kernel may back the heap with huge pages now.
    fn allowed() -> bool {
        // SAFETY: PR_GET_THP_DISABLE reads a flag and touches no memory of ours.
        unsafe { libc::prctl(libc::PR_GET_THP_DISABLE, 0, 0, 0, 0) == 0 }
    }

    /// In a child process: the flag is the whole process's, and other tests run beside
    /// this one (the child makes system calls only, safe after a fork).
    #[test]
    fn the_flag_follows() {
        // SAFETY: the child calls prctl and _exit only; the parent waits for it.
        match unsafe { libc::fork() } {
            0 => {
                let ok = super::allow(false) && !allowed() && super::allow(true) && allowed();
                // SAFETY: ends the forked child without running the parent's destructors.
                unsafe { libc::_exit(if ok { 0 } else { 1 }) }
            }
            pid => {
                assert!(pid > 0, "fork failed");
                let mut status = 0;
                // SAFETY: status is a valid out-pointer; pid is our child.
                assert_eq!(unsafe { libc::waitpid(pid, &mut status, 0) }, pid);
                assert!(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0, "status {status:#x}");
            }
        }
    }
}
