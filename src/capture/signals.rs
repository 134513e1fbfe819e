//! Signal numbers and `si_code` values to names, and `siginfo_t` bytes to [`Signal`].
//!
//! x86-64 Linux numbering. The tables are the kernel's uapi `asm-generic/siginfo.h`.

use crate::snapshot::Signal;

/// Signals whose `si_addr` is the faulting address (when `si_code` > 0).
pub const FAULT_SIGNALS: &[i32] = &[libc::SIGSEGV, libc::SIGBUS, libc::SIGILL, libc::SIGFPE, libc::SIGTRAP];

const SI_USER: i32 = 0;
const SI_KERNEL: i32 = 0x80;
const SI_QUEUE: i32 = -1;
const SI_TKILL: i32 = -6;

/// `SIGSEGV`, `SIGRTMIN+3`, or `SIG42` for numbers Linux does not define.
pub fn signal_name(signo: i32) -> String {
    let name = match signo {
        1 => "SIGHUP",
        2 => "SIGINT",
        3 => "SIGQUIT",
        4 => "SIGILL",
        5 => "SIGTRAP",
        6 => "SIGABRT",
        7 => "SIGBUS",
        8 => "SIGFPE",
        9 => "SIGKILL",
        10 => "SIGUSR1",
        11 => "SIGSEGV",
        12 => "SIGUSR2",
        13 => "SIGPIPE",
        14 => "SIGALRM",
        15 => "SIGTERM",
        16 => "SIGSTKFLT",
        17 => "SIGCHLD",
        18 => "SIGCONT",
        19 => "SIGSTOP",
        20 => "SIGTSTP",
        21 => "SIGTTIN",
        22 => "SIGTTOU",
        23 => "SIGURG",
        24 => "SIGXCPU",
        25 => "SIGXFSZ",
        26 => "SIGVTALRM",
        27 => "SIGPROF",
        28 => "SIGWINCH",
        29 => "SIGIO",
        30 => "SIGPWR",
        31 => "SIGSYS",
        // The kernel's SIGRTMIN is 32; glibc reserves 32 and 33 and calls 34 SIGRTMIN.
        32..=64 => return format!("SIGRTMIN+{}", signo - 32),
        _ => return format!("SIG{signo}"),
    };
    name.to_string()
}

/// The name of `si_code` for `signo`: the generic codes (`SI_USER`, `SI_TKILL`, ...)
/// for any signal, the per-signal codes (`SEGV_MAPERR`, ...) for the signal they
/// belong to; the number in decimal when unknown.
pub fn code_name(signo: i32, code: i32) -> String {
    let generic = match code {
        SI_USER => Some("SI_USER"),
        SI_KERNEL => Some("SI_KERNEL"),
        SI_QUEUE => Some("SI_QUEUE"),
        -2 => Some("SI_TIMER"),
        -3 => Some("SI_MESGQ"),
        -4 => Some("SI_ASYNCIO"),
        -5 => Some("SI_SIGIO"),
        SI_TKILL => Some("SI_TKILL"),
        -7 => Some("SI_DETHREAD"),
        -60 => Some("SI_ASYNCNL"),
        _ => None,
    };
    if let Some(g) = generic {
        return g.to_string();
    }
    let table: &[&str] = match signo {
        libc::SIGILL => &[
            "ILL_ILLOPC",
            "ILL_ILLOPN",
            "ILL_ILLADR",
            "ILL_ILLTRP",
            "ILL_PRVOPC",
            "ILL_PRVREG",
            "ILL_COPROC",
            "ILL_BADSTK",
            "ILL_BADIADDR",
        ],
        libc::SIGFPE => &[
            "FPE_INTDIV",
            "FPE_INTOVF",
            "FPE_FLTDIV",
            "FPE_FLTOVF",
            "FPE_FLTUND",
            "FPE_FLTRES",
            "FPE_FLTINV",
            "FPE_FLTSUB",
            "",
            "",
            "",
            "",
            "",
            "FPE_FLTUNK",
            "FPE_CONDTRAP",
        ],
        libc::SIGSEGV => &[
            "SEGV_MAPERR",
            "SEGV_ACCERR",
            "SEGV_BNDERR",
            "SEGV_PKUERR",
            "SEGV_ACCADI",
            "SEGV_ADIDERR",
            "SEGV_ADIPERR",
            "SEGV_MTEAERR",
            "SEGV_MTESERR",
            "SEGV_CPERR",
        ],
        libc::SIGBUS => &["BUS_ADRALN", "BUS_ADRERR", "BUS_OBJERR", "BUS_MCEERR_AR", "BUS_MCEERR_AO"],
        libc::SIGTRAP => &["TRAP_BRKPT", "TRAP_TRACE", "TRAP_BRANCH", "TRAP_HWBKPT", "TRAP_UNK", "TRAP_PERF"],
        libc::SIGCHLD => &["CLD_EXITED", "CLD_KILLED", "CLD_DUMPED", "CLD_TRAPPED", "CLD_STOPPED", "CLD_CONTINUED"],
        libc::SIGIO => &["POLL_IN", "POLL_OUT", "POLL_MSG", "POLL_ERR", "POLL_PRI", "POLL_HUP"],
        libc::SIGSYS => &["SYS_SECCOMP", "SYS_USER_DISPATCH"],
        _ => &[],
    };
    usize::try_from(code)
        .ok()
        .and_then(|c| c.checked_sub(1))
        .and_then(|i| table.get(i))
        .filter(|n| !n.is_empty())
        .map(|n| n.to_string())
        .unwrap_or_else(|| code.to_string())
}

/// Builds a [`Signal`] from the raw bytes of a `siginfo_t` (128 bytes; at least
/// the first 24 are needed). Returns None when the bytes are too short or the
/// signal number is 0.
///
/// Layout (x86-64): si_signo @0, si_errno @4, si_code @8, union @16. In the union,
/// `si_addr` (fault signals) and `si_pid` (kill/tgkill/sigqueue) both start at 16.
pub fn from_siginfo(bytes: &[u8], tid: i32) -> Option<Signal> {
    let i32_at = |o: usize| bytes.get(o..o + 4).map(|b| i32::from_le_bytes(b.try_into().expect("4-byte slice")));
    let signo = i32_at(0)?;
    let code = i32_at(8)?;
    let addr = bytes.get(16..24).map(|b| u64::from_le_bytes(b.try_into().expect("8-byte slice")))?;
    if signo == 0 {
        return None;
    }
    // Folklore: SI_KERNEL faults (e.g. a general protection fault on a non-canonical
    // address) carry si_addr = 0, which means "unknown", not "null pointer".
    let fault_address = (FAULT_SIGNALS.contains(&signo) && code > 0 && code != SI_KERNEL).then_some(addr);
    let sender_pid = matches!(code, SI_USER | SI_QUEUE | SI_TKILL).then(|| addr as u32 as i32);
    Some(Signal {
        signo,
        name: signal_name(signo),
        code,
        code_name: code_name(signo, code),
        fault_address,
        tid,
        sender_pid,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        let cases: &[(i32, i32, &str, &str)] = &[
            (11, 1, "SIGSEGV", "SEGV_MAPERR"),
            (11, 2, "SIGSEGV", "SEGV_ACCERR"),
            (11, 0x80, "SIGSEGV", "SI_KERNEL"),
            (7, 1, "SIGBUS", "BUS_ADRALN"),
            (7, 2, "SIGBUS", "BUS_ADRERR"),
            (8, 1, "SIGFPE", "FPE_INTDIV"),
            (8, 14, "SIGFPE", "FPE_FLTUNK"),
            (8, 9, "SIGFPE", "9"),
            (4, 2, "SIGILL", "ILL_ILLOPN"),
            (5, 1, "SIGTRAP", "TRAP_BRKPT"),
            (6, -6, "SIGABRT", "SI_TKILL"),
            (6, 0, "SIGABRT", "SI_USER"),
            (15, -1, "SIGTERM", "SI_QUEUE"),
            (6, 1, "SIGABRT", "1"),
            (34, -6, "SIGRTMIN+2", "SI_TKILL"),
            (99, 3, "SIG99", "3"),
            (31, 1, "SIGSYS", "SYS_SECCOMP"),
        ];
        for &(signo, code, name, cname) in cases {
            assert_eq!(signal_name(signo), name, "signo {signo}");
            assert_eq!(code_name(signo, code), cname, "signo {signo} code {code}");
        }
    }

    fn siginfo(signo: i32, code: i32, word: u64) -> Vec<u8> {
        let mut b = vec![0u8; 128];
        b[0..4].copy_from_slice(&signo.to_le_bytes());
        b[8..12].copy_from_slice(&code.to_le_bytes());
        b[16..24].copy_from_slice(&word.to_le_bytes());
        b
    }

    #[test]
    fn siginfo_bytes() {
        let s = from_siginfo(&siginfo(11, 1, 0x10), 7).expect("signal");
        assert_eq!((s.fault_address, s.sender_pid, s.tid, s.code_name.as_str()), (Some(0x10), None, 7, "SEGV_MAPERR"));
        let s = from_siginfo(&siginfo(11, 0x80, 0), 7).expect("signal");
        assert_eq!((s.fault_address, s.sender_pid), (None, None));
        let s = from_siginfo(&siginfo(6, -6, 0x0000_03e8_0000_1234), 7).expect("signal");
        assert_eq!((s.fault_address, s.sender_pid), (None, Some(0x1234)));
        let s = from_siginfo(&siginfo(11, 0, 4321), 7).expect("signal");
        assert_eq!((s.fault_address, s.sender_pid, s.code_name.as_str()), (None, Some(4321), "SI_USER"));
        assert!(from_siginfo(&siginfo(0, 0, 0), 7).is_none());
        assert!(from_siginfo(&siginfo(11, 1, 0)[..23], 7).is_none());
    }
}
