//! Last-resort unwinding without CFI: recognising return addresses by the `call`
//! instruction that must precede them (used by the stack scan and to vet guesses).

/// True when the bytes just before a return address (`before[7]` is the byte at
/// `ret - 1`) end with a complete `call` instruction: `e8 rel32`, or `ff /2` with any
/// ModRM/SIB/displacement form, optionally REX-prefixed.
pub(crate) fn ends_with_call(before: &[u8; 8]) -> bool {
    if before[3] == 0xe8 {
        return true;
    }
    (2..=7).any(|len| indirect_call_of_len(&before[8 - len..]))
}

/// Does `insn` (exactly) encode `[REX] ff /2 modrm [sib] [disp]`?
fn indirect_call_of_len(insn: &[u8]) -> bool {
    let mut i = 0;
    if (0x40..=0x4f).contains(&insn[0]) {
        i = 1;
    }
    if insn.len() < i + 2 || insn[i] != 0xff {
        return false;
    }
    let modrm = insn[i + 1];
    if (modrm >> 3) & 7 != 2 {
        return false;
    }
    let md = modrm >> 6;
    let rm = modrm & 7;
    let mut n = i + 2;
    if md != 3 && rm == 4 {
        // SIB byte; base 5 with mod 0 means disp32 and no base.
        let Some(&sib) = insn.get(n) else { return false };
        n += 1;
        if md == 0 && sib & 7 == 5 {
            n += 4;
        }
    }
    n += match (md, rm) {
        (0, 5) => 4, // rip-relative disp32
        (1, _) => 1,
        (2, _) => 4,
        _ => 0,
    };
    n == insn.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pad(tail: &[u8]) -> [u8; 8] {
        let mut b = [0x90u8; 8];
        b[8 - tail.len()..].copy_from_slice(tail);
        b
    }

    #[test]
    fn call_site_forms() {
        let cases: &[(&[u8], bool)] = &[
            (&[0xe8, 1, 2, 3, 4], true),             // call rel32
            (&[0xff, 0xd0], true),                   // call *%rax
            (&[0x41, 0xff, 0xd3], true),             // call *%r11
            (&[0xff, 0x15, 1, 2, 3, 4], true),       // call *disp32(%rip)
            (&[0xff, 0x50, 0x08], true),             // call *0x8(%rax)
            (&[0xff, 0x14, 0x24], true),             // call *(%rsp)
            (&[0xff, 0x54, 0x24, 0x08], true),       // call *0x8(%rsp)
            (&[0xff, 0x94, 0x24, 1, 2, 3, 4], true), // call *disp32(%rsp)
            (&[0xff, 0x90, 1, 2, 3, 4], true),       // call *disp32(%rax)
            (&[0xff, 0xe0], false),                  // jmp *%rax
            (&[0x48, 0x89, 0xc7], false),            // mov %rax,%rdi
            (&[0xc3], false),                        // ret
        ];
        for (tail, want) in cases {
            assert_eq!(ends_with_call(&pad(tail)), *want, "{tail:x?}");
        }
    }
}
