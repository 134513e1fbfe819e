//! Signal frames on x86-64 Linux: recognising the `__restore_rt` trampoline and
//! restoring the interrupted registers from the `ucontext_t` the kernel pushed.

/// Folklore: glibc's (and musl's) `__restore_rt` is exactly `mov $15,%rax; syscall`
/// (rt_sigreturn). The kernel makes a handler "return" into it, with %rsp pointing at
/// the `ucontext_t` of the rt_sigframe. Matching these bytes finds the trampoline even
/// in a libc without CFI for it (musl) or when its FDE is absent.
pub(crate) const RESTORE_RT: [u8; 9] = [0x48, 0xc7, 0xc0, 0x0f, 0x00, 0x00, 0x00, 0x0f, 0x05];

/// Offset of `uc_mcontext.gregs` in `ucontext_t`: uc_flags (8) + uc_link (8) +
/// uc_stack (ss_sp 8, ss_flags 4 + pad 4, ss_size 8) = 40.
pub(crate) const GREGS_OFFSET: u64 = 40;

/// DWARF register numbers in kernel `gregs` order: r8 r9 r10 r11 r12 r13 r14 r15 rdi
/// rsi rbp rbx rdx rax rcx rsp rip.
const GREGS_DWARF: [u16; 17] = [8, 9, 10, 11, 12, 13, 14, 15, 5, 4, 6, 3, 1, 0, 2, 7, 16];

/// Bytes of the `gregs` prefix we decode.
pub(crate) const GREGS_BYTES: usize = GREGS_DWARF.len() * 8;

pub(crate) fn is_restore_rt(code: &[u8]) -> bool {
    code.len() >= RESTORE_RT.len() && code[..RESTORE_RT.len()] == RESTORE_RT
}

/// Decodes the first 17 `gregs` into (DWARF register, value) pairs.
pub(crate) fn decode_gregs(bytes: &[u8; GREGS_BYTES]) -> [(u16, u64); 17] {
    let mut out = [(0u16, 0u64); 17];
    for (i, reg) in GREGS_DWARF.iter().enumerate() {
        let mut w = [0u8; 8];
        w.copy_from_slice(&bytes[i * 8..i * 8 + 8]);
        out[i] = (*reg, u64::from_le_bytes(w));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trampoline_detection() {
        let cases: &[(&[u8], bool)] = &[
            (&RESTORE_RT, true),
            (&[0x48, 0xc7, 0xc0, 0x0f, 0x00, 0x00, 0x00, 0x0f, 0x05, 0x90], true),
            (&[0x48, 0xc7, 0xc0, 0x0e, 0x00, 0x00, 0x00, 0x0f, 0x05], false),
            (&[0x48, 0xc7, 0xc0], false),
            (&[], false),
        ];
        for (code, want) in cases {
            assert_eq!(is_restore_rt(code), *want, "{code:x?}");
        }
    }

    #[test]
    fn gregs_order() {
        let mut b = [0u8; GREGS_BYTES];
        for i in 0..17 {
            b[i * 8..i * 8 + 8].copy_from_slice(&(100 + i as u64).to_le_bytes());
        }
        let regs = decode_gregs(&b);
        let get = |r: u16| regs.iter().find(|(n, _)| *n == r).map(|(_, v)| *v);
        // (dwarf register, gregs index)
        for (reg, idx) in
            [(8, 0), (15, 7), (5, 8), (4, 9), (6, 10), (3, 11), (1, 12), (0, 13), (2, 14), (7, 15), (16, 16)]
        {
            assert_eq!(get(reg), Some(100 + idx), "dwarf register {reg}");
        }
    }
}
