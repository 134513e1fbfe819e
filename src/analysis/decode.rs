//! The faulting instruction: decoded with iced-x86, its memory operands evaluated
//! against the thread's registers, and the operand that faulted chosen.

use super::Reader;
use crate::snapshot::Registers;
use iced_x86::{
    Code, Decoder, DecoderOptions, EncodingKind, FlowControl, Instruction, InstructionInfoFactory, Mnemonic, OpAccess,
    OpKind, Register,
};

/// How an instruction touches a memory operand.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    Read,
    Write,
    /// Read, then written back (`add [rax], 1`, `xchg`, `lock cmpxchg`).
    ReadWrite,
}

impl Access {
    pub fn describe(self) -> &'static str {
        match self {
            Access::Read => "read",
            Access::Write => "write",
            Access::ReadWrite => "read-modify-write",
        }
    }
    pub fn writes(self) -> bool {
        matches!(self, Access::Write | Access::ReadWrite)
    }
}

/// One memory operand of the decoded instruction.
#[derive(Debug, Clone)]
pub struct MemOperand {
    /// The effective address, when every register it uses is known.
    pub address: Option<u64>,
    /// Bytes accessed.
    pub size: usize,
    pub access: Access,
    /// `qword [rax+0x8]` style text.
    pub text: String,
    /// Registers forming the address, with their values.
    pub registers: Vec<(String, u64)>,
    /// Implicit stack access (push, call, ret, pop).
    pub stack: bool,
}

impl MemOperand {
    pub fn contains(&self, addr: u64) -> bool {
        self.address.is_some_and(|a| addr >= a && addr - a < self.size.max(1) as u64)
    }
}

/// The instruction at a thread's pc.
#[derive(Debug, Clone)]
pub struct Decoded {
    pub pc: u64,
    pub bytes: Vec<u8>,
    /// Lowercase mnemonic with prefixes (`rep movsb`, `mov`, `call`).
    pub mnemonic: String,
    pub operands: Vec<MemOperand>,
    /// An SSE/AVX instruction that requires its memory operand aligned to its size.
    pub aligned_only: bool,
    /// `div`/`idiv`.
    pub divides: bool,
    /// An indirect call or jump (through a register or memory).
    pub indirect_branch: bool,
    /// `ud2`, `ud0`, `ud1`: an intentional trap.
    pub undefined: bool,
}

impl Decoded {
    /// The operand that faulted at `fault`: the one containing the address, else (a
    /// #GP, where the kernel reports address 0) the one with a non-canonical address,
    /// else the only explicit operand.
    pub fn faulting_operand(&self, fault: Option<u64>) -> Option<&MemOperand> {
        if let Some(f) = fault {
            if let Some(op) = self.operands.iter().find(|o| o.contains(f)) {
                return Some(op);
            }
            // A fault inside the same page as an operand (accesses that cross pages).
            if let Some(op) = self.operands.iter().find(|o| o.address.is_some_and(|a| a >> 12 == f >> 12)) {
                return Some(op);
            }
        }
        if let Some(op) = self.operands.iter().find(|o| o.address.is_some_and(|a| !is_canonical(a))) {
            return Some(op);
        }
        let explicit: Vec<&MemOperand> = self.operands.iter().filter(|o| !o.stack).collect();
        if fault.is_none_or(|f| f == 0) && explicit.len() == 1 {
            return explicit.first().copied();
        }
        None
    }

    pub fn bytes_hex(&self) -> String {
        self.bytes.iter().map(|b| format!("{b:02x}")).collect::<Vec<_>>().join(" ")
    }
}

/// True for an address the CPU accepts (bits 63..47 all equal).
/// The DWARF number (0–15) of a general-purpose register or any of its parts.
pub fn dwarf_register(r: iced_x86::Register) -> Option<usize> {
    use iced_x86::Register as R;
    const ORDER: [R; 16] = [
        R::RAX,
        R::RDX,
        R::RCX,
        R::RBX,
        R::RSI,
        R::RDI,
        R::RBP,
        R::RSP,
        R::R8,
        R::R9,
        R::R10,
        R::R11,
        R::R12,
        R::R13,
        R::R14,
        R::R15,
    ];
    ORDER.iter().position(|x| *x == r.full_register())
}

/// True for an operand or register access that writes.
pub fn writes(access: iced_x86::OpAccess) -> bool {
    use iced_x86::OpAccess as A;
    matches!(access, A::Write | A::CondWrite | A::ReadWrite | A::ReadCondWrite)
}

pub fn is_canonical(addr: u64) -> bool {
    let top = addr >> 47;
    top == 0 || top == (1 << 17) - 1
}

/// Decodes the instruction at `regs.rip`. None when its bytes cannot be read (a
/// wild pc) or do not decode.
pub fn decode_at(reader: &Reader, regs: &Registers) -> Option<Decoded> {
    let mut buf = [0u8; 15];
    let n = reader.read(regs.rip, &mut buf);
    decode_bytes(&buf[..n], regs)
}

/// Decodes one instruction from `bytes` located at `regs.rip`.
pub fn decode_bytes(bytes: &[u8], regs: &Registers) -> Option<Decoded> {
    if bytes.is_empty() {
        return None;
    }
    let mut decoder = Decoder::with_ip(64, bytes, regs.rip, DecoderOptions::NONE);
    let instr = decoder.decode();
    if instr.is_invalid() {
        return None;
    }
    let mut factory = InstructionInfoFactory::new();
    let info = factory.info(&instr);
    let operands = info
        .used_memory()
        .iter()
        .filter_map(|m| {
            let access = match m.access() {
                OpAccess::Read | OpAccess::CondRead => Access::Read,
                OpAccess::Write | OpAccess::CondWrite => Access::Write,
                OpAccess::ReadWrite | OpAccess::ReadCondWrite => Access::ReadWrite,
                _ => return None, // lea, nop [mem]: no access
            };
            let address = m.virtual_address(0, |r, _, _| register_value(regs, r, instr.next_ip()));
            let mut registers = Vec::new();
            for r in [m.base(), m.index()] {
                if r != Register::None
                    && r != Register::RIP
                    && r != Register::EIP
                    && let Some(v) = register_value(regs, r, instr.next_ip())
                {
                    registers.push((reg_name(r), v));
                }
            }
            let stack = matches!(m.base(), Register::RSP | Register::ESP) && instr.is_stack_instruction();
            let mut size = m.memory_size().size();
            if size == 0 && instr.is_string_instruction() {
                // rep string operands have no fixed size; one element is what faults.
                size = match format!("{:?}", instr.mnemonic()).chars().last() {
                    Some('b') => 1,
                    Some('w') => 2,
                    Some('d') => 4,
                    _ => 8,
                };
            }
            Some(MemOperand {
                address,
                size,
                access,
                text: operand_text(size, m.segment(), m.base(), m.index(), m.scale(), m.displacement()),
                registers,
                stack,
            })
        })
        .collect();
    let mut mnemonic = String::new();
    if instr.has_rep_prefix() && instr.is_string_instruction() {
        mnemonic.push_str(
            if matches!(
                instr.mnemonic(),
                Mnemonic::Cmpsb
                    | Mnemonic::Cmpsw
                    | Mnemonic::Cmpsd
                    | Mnemonic::Cmpsq
                    | Mnemonic::Scasb
                    | Mnemonic::Scasw
                    | Mnemonic::Scasd
                    | Mnemonic::Scasq
            ) {
                "repe "
            } else {
                "rep "
            },
        );
    } else if instr.has_repne_prefix() && instr.is_string_instruction() {
        mnemonic.push_str("repne ");
    }
    if instr.has_lock_prefix() {
        mnemonic.push_str("lock ");
    }
    mnemonic.push_str(&format!("{:?}", instr.mnemonic()).to_lowercase());
    Some(Decoded {
        pc: regs.rip,
        bytes: bytes[..instr.len().min(bytes.len())].to_vec(),
        mnemonic,
        operands,
        aligned_only: requires_alignment(&instr),
        divides: matches!(instr.mnemonic(), Mnemonic::Div | Mnemonic::Idiv),
        indirect_branch: matches!(instr.flow_control(), FlowControl::IndirectBranch | FlowControl::IndirectCall),
        undefined: matches!(
            instr.code(),
            Code::Ud2
                | Code::Ud0
                | Code::Ud0_r16_rm16
                | Code::Ud0_r32_rm32
                | Code::Ud0_r64_rm64
                | Code::Ud1_r16_rm16
                | Code::Ud1_r32_rm32
                | Code::Ud1_r64_rm64
        ),
    })
}

/// Folklore: legacy-encoded (non-VEX) SSE instructions with a 16-byte memory operand
/// fault with #GP when it is not 16-byte aligned, except the explicitly unaligned
/// moves; VEX/EVEX encodings relax that except for the aligned moves (`vmovaps`,
/// `vmovdqa`, non-temporal stores). The kernel reports #GP as SIGSEGV with si_code
/// SI_KERNEL and address 0, so only the instruction tells it was misalignment.
fn requires_alignment(instr: &Instruction) -> bool {
    let has_mem = (0..instr.op_count()).any(|i| instr.op_kind(i) == OpKind::Memory);
    if !has_mem {
        return false;
    }
    use Mnemonic::*;
    let m = instr.mnemonic();
    let always = matches!(
        m,
        Movaps
            | Movapd
            | Movdqa
            | Movntps
            | Movntpd
            | Movntdq
            | Movntdqa
            | Vmovaps
            | Vmovapd
            | Vmovdqa
            | Vmovdqa32
            | Vmovdqa64
            | Vmovntps
            | Vmovntpd
            | Vmovntdq
            | Vmovntdqa
            | Fxsave
            | Fxrstor
            | Fxsave64
            | Fxrstor64
    );
    if always {
        return true;
    }
    let unaligned_ok = matches!(
        m,
        Movups | Movupd | Movdqu | Lddqu | Movq | Movd | Movss | Movsd | Movlps | Movhps | Movlpd | Movhpd | Maskmovdqu
    );
    instr.encoding() == EncodingKind::Legacy && instr.memory_size().size() == 16 && !unaligned_ok
}

fn register_value(regs: &Registers, r: Register, next_ip: u64) -> Option<u64> {
    match r {
        Register::RIP | Register::EIP => return Some(0),
        Register::FS => return Some(regs.fs_base),
        Register::GS => return Some(regs.gs_base),
        Register::ES | Register::CS | Register::SS | Register::DS => return Some(0),
        _ => {}
    }
    let _ = next_ip;
    if !r.is_gpr() {
        return None;
    }
    let full = r.full_register();
    let v = match full {
        Register::RAX => regs.rax,
        Register::RBX => regs.rbx,
        Register::RCX => regs.rcx,
        Register::RDX => regs.rdx,
        Register::RSI => regs.rsi,
        Register::RDI => regs.rdi,
        Register::RBP => regs.rbp,
        Register::RSP => regs.rsp,
        Register::R8 => regs.r8,
        Register::R9 => regs.r9,
        Register::R10 => regs.r10,
        Register::R11 => regs.r11,
        Register::R12 => regs.r12,
        Register::R13 => regs.r13,
        Register::R14 => regs.r14,
        Register::R15 => regs.r15,
        _ => return None,
    };
    Some(match r.size() {
        1 => v & 0xff,
        2 => v & 0xffff,
        4 => v & 0xffff_ffff,
        _ => v,
    })
}

fn reg_name(r: Register) -> String {
    format!("{r:?}").to_lowercase()
}

fn operand_text(size: usize, seg: Register, base: Register, index: Register, scale: u32, disp: u64) -> String {
    let width = match size {
        1 => "byte ",
        2 => "word ",
        4 => "dword ",
        8 => "qword ",
        10 => "tbyte ",
        16 => "xmmword ",
        32 => "ymmword ",
        64 => "zmmword ",
        _ => "",
    };
    let mut s = String::from(width);
    if matches!(seg, Register::FS | Register::GS) {
        s.push_str(&reg_name(seg));
        s.push(':');
    }
    s.push('[');
    let mut any = false;
    if base != Register::None && base != Register::RIP && base != Register::EIP {
        s.push_str(&reg_name(base));
        any = true;
    }
    if index != Register::None {
        if any {
            s.push('+');
        }
        s.push_str(&reg_name(index));
        if scale > 1 {
            s.push_str(&format!("*{scale}"));
        }
        any = true;
    }
    let d = disp as i64;
    if !any {
        s.push_str(&format!("{disp:#x}"));
    } else if d > 0 {
        s.push_str(&format!("+{d:#x}"));
    } else if d < 0 {
        s.push_str(&format!("-{:#x}", d.unsigned_abs()));
    }
    s.push(']');
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn regs(rip: u64) -> Registers {
        Registers { rip, rax: 0x10, rdi: 0x2000, rsi: 0x3000, rsp: 0x7ffd_0000, rcx: 4, ..Default::default() }
    }

    #[test]
    fn directions() {
        // bytes, mnemonic, access of the first non-stack operand, its address
        type Case<'a> = (&'a [u8], &'a str, Option<Access>, Option<u64>);
        let cases: &[Case] = &[
            (&[0x48, 0x8b, 0x00], "mov", Some(Access::Read), Some(0x10)), // mov rax, [rax]
            (&[0x48, 0x89, 0x07], "mov", Some(Access::Write), Some(0x2000)), // mov [rdi], rax
            (&[0x83, 0x00, 0x01], "add", Some(Access::ReadWrite), Some(0x10)), // add dword [rax], 1
            (&[0xf3, 0xa4], "rep movsb", Some(Access::Write), Some(0x2000)), // rep movsb: [rdi] listed first
            (&[0xf3, 0x48, 0xab], "rep stosq", Some(Access::Write), Some(0x2000)),
            (&[0xff, 0x50, 0x08], "call", Some(Access::Read), Some(0x18)), // call [rax+8]
            (&[0xff, 0xd0], "call", None, None),                           // call rax: only the push
            (&[0x0f, 0x28, 0x07], "movaps", Some(Access::Read), Some(0x2000)),
            (&[0x48, 0xf7, 0xf1], "div", None, None),
        ];
        for (bytes, mnem, access, addr) in cases {
            let d = decode_bytes(bytes, &regs(0x1000)).unwrap_or_else(|| panic!("{bytes:x?} did not decode"));
            assert_eq!(&d.mnemonic, mnem, "{bytes:x?}");
            let first = d.operands.iter().find(|o| !o.stack);
            assert_eq!(first.map(|o| o.access), *access, "{bytes:x?}: {:?}", d.operands);
            assert_eq!(first.and_then(|o| o.address), *addr, "{bytes:x?}");
        }
    }

    #[test]
    fn string_move_has_both_operands_and_picks_by_address() {
        let d = decode_bytes(&[0xf3, 0xa4], &regs(0x1000)).expect("decodes");
        let w = d.faulting_operand(Some(0x2000)).expect("dest");
        assert_eq!(w.access, Access::Write);
        let r = d.faulting_operand(Some(0x3000)).expect("src");
        assert_eq!(r.access, Access::Read);
    }

    #[test]
    fn call_pushes_to_the_stack() {
        let d = decode_bytes(&[0xff, 0xd0], &regs(0x1000)).expect("decodes");
        assert!(d.indirect_branch);
        let push = d.faulting_operand(Some(0x7ffd_0000 - 8)).expect("push");
        assert!(push.stack && push.access == Access::Write);
    }

    #[test]
    fn alignment_and_misc() {
        assert!(decode_bytes(&[0x0f, 0x28, 0x07], &regs(0)).is_some_and(|d| d.aligned_only)); // movaps
        assert!(decode_bytes(&[0x0f, 0x10, 0x07], &regs(0)).is_some_and(|d| !d.aligned_only)); // movups
        assert!(decode_bytes(&[0x66, 0x0f, 0xfe, 0x07], &regs(0)).is_some_and(|d| d.aligned_only)); // paddd xmm0, [rdi]
        assert!(decode_bytes(&[0x0f, 0x0b], &regs(0)).is_some_and(|d| d.undefined));
        assert!(decode_bytes(&[0x48, 0xf7, 0xf1], &regs(0)).is_some_and(|d| d.divides));
        assert!(!is_canonical(0x8000_0000_0000_0000));
        assert!(is_canonical(0xffff_8000_0000_0000));
        assert!(decode_bytes(&[], &regs(0)).is_none());
    }

    #[test]
    fn gp_fault_picks_the_non_canonical_operand() {
        let mut r = regs(0);
        r.rax = 0xdead_0000_0000_beef;
        let d = decode_bytes(&[0x48, 0x8b, 0x00], &r).expect("decodes");
        let op = d.faulting_operand(Some(0)).expect("operand");
        assert_eq!(op.address, Some(0xdead_0000_0000_beef));
        assert_eq!(op.text, "qword [rax]");
        assert_eq!(op.registers, vec![("rax".to_string(), 0xdead_0000_0000_beef)]);
    }
}
