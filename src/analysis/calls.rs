//! What a frame was called with: the function its caller named (through the PLT) and
//! the register arguments it passed, recovered after the fact from the caller's DWARF
//! call-site records, else by replaying the caller's set-up code. The memcpy-family,
//! free/realloc and assert checks build on it.

use super::Reader;
use crate::capture::Memory;
use crate::snapshot::Thread;
use object::{Object, ObjectSection, ObjectSymbol, ObjectSymbolTable};

/// The System V integer argument registers in order, by DWARF number (rdi, rsi, rdx,
/// rcx, r8, r9).
const ARGUMENT_REGISTERS: [u16; 6] = [5, 4, 1, 2, 8, 9];

/// A call as the caller made it.
#[derive(Debug, Default, Clone)]
pub struct Call {
    /// The function the caller called (`memcpy`), when the call instruction and the
    /// PLT name it; the callee's own symbol may be an alias (`__memmove_avx_unaligned_erms`).
    pub name: Option<String>,
    /// Integer arguments by position, where the call-site records or the caller's
    /// code prove them.
    pub args: [Option<u64>; 6],
    /// Where the arguments came from (for the annotations).
    pub source: &'static str,
    /// Caller memory the arguments were read from at analysis time (the caller's
    /// code path): a callee that wrote there makes them stale.
    pub reads: Vec<u64>,
}

impl Call {
    pub fn arg(&self, k: usize) -> Option<u64> {
        self.args.get(k).copied().flatten()
    }
}

/// The call that entered the physical frame at or after `frame_idx` of `t`.
pub fn call_into(t: &Thread, frame_idx: usize, reader: &Reader) -> Call {
    let mut out = Call::default();
    let Some(callee) = t.frames.iter().enumerate().skip(frame_idx).find(|(_, f)| !f.inlined).map(|(i, _)| i) else {
        return out;
    };
    let found = reader.modules().call_arguments(&t.registers, &t.frames, callee, reader.memory());
    for (k, reg) in ARGUMENT_REGISTERS.iter().enumerate() {
        out.args[k] = found.iter().find(|(r, _)| r == reg).map(|(_, v)| *v);
    }
    out.source = "the caller's call-site records";
    let caller = t.frames.iter().skip(callee + 1).find(|f| !f.inlined);
    let Some(caller) = caller.filter(|_| !t.frames[callee].signal_frame) else { return out };
    out.name = called_name(reader, caller.pc);
    if found.is_empty()
        && let Some((regs, reads)) = replay_caller(caller, reader)
    {
        for (k, reg) in ARGUMENT_REGISTERS.iter().enumerate() {
            out.args[k] = regs[*reg as usize];
        }
        out.source = "the caller's code";
        out.reads = reads;
    }
    out
}

/// Longest caller function decoded to find the block that sets up a call.
const MAX_FUNCTION: u64 = 64 * 1024;

/// A register's value while replaying: a number, its unknown value at the block's
/// start plus an offset, or unknown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Sym {
    Known(u64),
    Start(usize, u64),
    Unknown,
}

impl Sym {
    fn plus(self, d: u64) -> Sym {
        match self {
            Sym::Known(v) => Sym::Known(v.wrapping_add(d)),
            Sym::Start(r, c) => Sym::Start(r, c.wrapping_add(d)),
            Sym::Unknown => Sym::Unknown,
        }
    }
    fn known(self) -> Option<u64> {
        match self {
            Sym::Known(v) => Some(v),
            _ => None,
        }
    }
}

/// The argument registers at the call that returns to `caller.pc`, recovered by
/// replaying the caller's straight-line code that set them up, starting from the
/// registers the unwinder recovered for the caller.
///
/// Folklore: at -O0 (and in code without call-site records) arguments are loaded from
/// the caller's stack slots or copied from callee-saved registers just before the
/// call. The block that ends in the call is found by decoding the caller's function
/// from its symbol's start (every branch target and every instruction after a branch
/// or call starts a block). It is replayed twice: first symbolically, to learn the
/// block-start values of registers whose final values the unwinder recovered
/// (callee-saved ones and rsp), then concretely, reading stack slots from memory,
/// with the block's own stores forwarded. The result must agree with every recovered
/// register, or nothing is claimed. Stack slots are read now, not at the call: the
/// caller of the returned `reads` must rule out that the callee wrote there.
fn replay_caller(caller: &crate::snapshot::Frame, reader: &Reader) -> Option<([Option<u64>; 16], Vec<u64>)> {
    use iced_x86::{Decoder, DecoderOptions, FlowControl};
    let ret = caller.pc;
    let start = reader.modules().symbol_start(ret.wrapping_sub(1))?;
    if ret <= start || ret - start > MAX_FUNCTION {
        return None;
    }
    let code = reader.bytes(start, (ret - start) as usize);
    if code.len() as u64 != ret - start {
        return None;
    }
    let mut decoder = Decoder::with_ip(64, &code, start, DecoderOptions::NONE);
    let mut list = Vec::new();
    let mut leaders = vec![start];
    while decoder.can_decode() {
        let ins = decoder.decode();
        if ins.is_invalid() {
            return None;
        }
        match ins.flow_control() {
            FlowControl::Next => {}
            FlowControl::UnconditionalBranch | FlowControl::ConditionalBranch => {
                leaders.push(ins.next_ip());
                let target = ins.near_branch_target();
                if target > start && target < ret {
                    leaders.push(target);
                }
            }
            _ => leaders.push(ins.next_ip()),
        }
        list.push(ins);
    }
    // The last instruction must be the call that returns to `ret`.
    let call = list.pop()?;
    if call.next_ip() != ret || !matches!(call.flow_control(), FlowControl::Call | FlowControl::IndirectCall) {
        return None;
    }
    let block_start = leaders.into_iter().filter(|&l| l <= call.ip()).max()?;
    let block: Vec<_> = list.into_iter().filter(|i| i.ip() >= block_start).collect();

    // What the unwinder recovered for the caller, at the call.
    let mut recovered: [Option<u64>; 16] = [None; 16];
    for (r, v) in &caller.registers {
        if let Some(slot) = recovered.get_mut(*r as usize) {
            *slot = Some(*v);
        }
    }
    recovered[7] = Some(caller.sp);
    arguments_from_block(&block, &recovered, reader.memory())
}

/// The registers at the end of `block` (the call's set-up), given the registers the
/// unwinder recovered at its end; see `replay_caller`.
fn arguments_from_block(
    block: &[iced_x86::Instruction],
    recovered: &[Option<u64>; 16],
    memory: &dyn Memory,
) -> Option<([Option<u64>; 16], Vec<u64>)> {
    // Pass 1: which block-start values the recovered registers pin down.
    let symbolic: [Sym; 16] = std::array::from_fn(|r| Sym::Start(r, 0));
    let (end, _) = replay(block, symbolic, None)?;
    let mut start_regs: [Sym; 16] = std::array::from_fn(|r| Sym::Start(r, 0));
    for (r, fin) in recovered.iter().enumerate() {
        if let (Some(v), Sym::Start(x, c)) = (fin, end[r]) {
            let at_start = v.wrapping_sub(c);
            match start_regs[x] {
                Sym::Known(old) if old != at_start => return None,
                _ => start_regs[x] = Sym::Known(at_start),
            }
        }
    }
    // Pass 2: concrete values, stack slots read from memory.
    let (end, reads) = replay(block, start_regs, Some(memory))?;
    for (r, fin) in recovered.iter().enumerate() {
        if let (Some(v), Sym::Known(got)) = (fin, end[r])
            && *v != got
        {
            return None;
        }
    }
    Some((end.map(Sym::known), reads))
}

/// Replays `block` from `regs`; with `memory`, loads from known addresses read the
/// target (after the block's own stores; none after a store to an unknown address).
/// Returns the registers at the end and the addresses read.
fn replay(
    block: &[iced_x86::Instruction],
    mut regs: [Sym; 16],
    memory: Option<&dyn Memory>,
) -> Option<([Sym; 16], Vec<u64>)> {
    use super::decode::{dwarf_register as dwarf, writes};
    use iced_x86::{InstructionInfoFactory, Mnemonic, OpKind, Register};
    let mut stores: Vec<(u64, usize, Sym)> = Vec::new();
    let mut wild_store = false;
    let mut reads = Vec::new();
    let mut info = InstructionInfoFactory::new();
    for ins in block {
        let address = |regs: &[Sym; 16]| -> Sym {
            if ins.is_ip_rel_memory_operand() {
                return Sym::Known(ins.ip_rel_memory_address());
            }
            let disp = ins.memory_displacement64();
            let base = match ins.memory_base() {
                Register::None => Sym::Known(0),
                b => dwarf(b).filter(|_| b.size() == 8).map(|d| regs[d]).unwrap_or(Sym::Unknown),
            };
            match ins.memory_index() {
                Register::None => base.plus(disp),
                i => match (base, dwarf(i).map(|d| regs[d])) {
                    (Sym::Known(b), Some(Sym::Known(x))) if i.size() == 8 => {
                        Sym::Known(b.wrapping_add(x.wrapping_mul(ins.memory_index_scale() as u64)).wrapping_add(disp))
                    }
                    _ => Sym::Unknown,
                },
            }
        };
        let mut load = |addr: Sym, size: usize, reads: &mut Vec<u64>| -> Sym {
            let Sym::Known(a) = addr else { return Sym::Unknown };
            // A value the block stored and we know; a stored value we do not know is
            // what memory still holds (the block's later stores would be found first).
            // The latest store that touches these bytes decides: the same bytes, or none
            // of them, or we do not know what they held.
            let latest = stores.iter().rev().find(|(s, n, _)| a < s + *n as u64 && *s < a + size as u64);
            let exact = match latest {
                Some((s, n, v)) if *s == a && *n == size => Some(*v),
                Some(_) => return Sym::Unknown,
                None => None,
            };
            if let Some(v @ Sym::Known(_)) = exact {
                return v;
            }
            let Some(memory) = memory.filter(|_| !wild_store) else { return Sym::Unknown };
            reads.push(a);
            let mut b = [0u8; 8];
            if size > 8 || memory.read(a, &mut b[..size]) != size {
                return Sym::Unknown;
            }
            Sym::Known(u64::from_le_bytes(b))
        };
        let reg_of = |k: u32| dwarf(ins.op_register(k)).filter(|_| ins.op_kind(k) == OpKind::Register);
        let width = |k: u32| ins.op_register(k).size();
        let truncate = |v: Sym, bytes: usize| match (v, bytes) {
            (_, 8) => v,
            (Sym::Known(x), 4) => Sym::Known(x & 0xffff_ffff),
            _ => Sym::Unknown,
        };
        let op1 =
            |regs: &[Sym; 16], reads: &mut Vec<u64>, load: &mut dyn FnMut(Sym, usize, &mut Vec<u64>) -> Sym| match ins
                .op1_kind()
            {
                OpKind::Register => reg_of(1).map(|r| regs[r]).unwrap_or(Sym::Unknown),
                OpKind::Memory => load(address(regs), ins.memory_size().size(), reads),
                OpKind::Immediate8to64 | OpKind::Immediate32to64 | OpKind::Immediate32 | OpKind::Immediate64 => {
                    Sym::Known(ins.immediate(1))
                }
                _ => Sym::Unknown,
            };
        let dst = reg_of(0);
        let handled = match (ins.mnemonic(), dst) {
            (Mnemonic::Mov, Some(d)) if matches!(width(0), 4 | 8) => {
                let v = op1(&regs, &mut reads, &mut load);
                regs[d] = truncate(v, width(0));
                true
            }
            (Mnemonic::Lea, Some(d)) if width(0) == 8 => {
                regs[d] = address(&regs);
                true
            }
            (Mnemonic::Add | Mnemonic::Sub, Some(d)) if width(0) == 8 => {
                let v = op1(&regs, &mut reads, &mut load);
                regs[d] = match (regs[d], v, ins.mnemonic()) {
                    (a, Sym::Known(x), Mnemonic::Add) => a.plus(x),
                    (a, Sym::Known(x), _) => a.plus(x.wrapping_neg()),
                    _ => Sym::Unknown,
                };
                true
            }
            (Mnemonic::Movsxd, Some(d)) if width(0) == 8 => {
                let v = match ins.op1_kind() {
                    OpKind::Register => reg_of(1).map(|r| regs[r]).unwrap_or(Sym::Unknown),
                    _ => load(address(&regs), 4, &mut reads),
                };
                regs[d] = match v {
                    Sym::Known(x) => Sym::Known(x as u32 as i32 as i64 as u64),
                    _ => Sym::Unknown,
                };
                true
            }
            (Mnemonic::Cdqe, _) => {
                regs[0] = match regs[0] {
                    Sym::Known(x) => Sym::Known(x as u32 as i32 as i64 as u64),
                    _ => Sym::Unknown,
                };
                true
            }
            (Mnemonic::Xor, Some(d)) if reg_of(1) == Some(d) && matches!(width(0), 4 | 8) => {
                regs[d] = Sym::Known(0);
                true
            }
            (Mnemonic::Mov, None) if ins.op0_kind() == OpKind::Memory => {
                let v = op1(&regs, &mut reads, &mut load);
                match address(&regs) {
                    Sym::Known(a) => stores.push((a, ins.memory_size().size(), v)),
                    _ => wild_store = true,
                }
                true
            }
            (Mnemonic::Push, _) => {
                let v = op1_or_reg0(ins, &regs);
                regs[7] = regs[7].plus(8u64.wrapping_neg());
                match regs[7] {
                    Sym::Known(a) => stores.push((a, 8, v)),
                    _ => wild_store = true,
                }
                true
            }
            _ => false,
        };
        if handled {
            continue;
        }
        // Anything else: what it writes becomes unknown.
        let used = info.info(ins);
        for u in used.used_registers() {
            if writes(u.access())
                && let Some(d) = dwarf(u.register())
            {
                regs[d] = Sym::Unknown;
            }
        }
        if used.used_memory().iter().any(|m| writes(m.access())) {
            wild_store = true;
        }
    }
    Some((regs, reads))
}

/// The value a `push` stores: its register or immediate operand.
fn op1_or_reg0(ins: &iced_x86::Instruction, regs: &[Sym; 16]) -> Sym {
    use iced_x86::OpKind;
    match ins.op0_kind() {
        OpKind::Register => super::decode::dwarf_register(ins.op0_register())
            .filter(|_| ins.op0_register().size() == 8)
            .map(|r| regs[r])
            .unwrap_or(Sym::Unknown),
        OpKind::Immediate8to64 | OpKind::Immediate32to64 => Sym::Known(ins.immediate(0)),
        _ => Sym::Unknown,
    }
}

/// The name of the function called by the call instruction that returns to `ret`.
///
/// Folklore: a call to a shared library's function goes to a PLT stub (`call
/// memcpy@plt`), a `jmp *slot(%rip)` (after an `endbr64` with IBT, with a `bnd`
/// prefix with MPX) through a GOT slot whose dynamic relocation names the symbol.
/// With -fno-plt the call itself is `call *slot(%rip)`. The symbol the callee's
/// code carries can be any of several aliases at that address (glibc's memcpy and
/// memmove are one function), so only the caller's side says which one was meant.
pub fn called_name(reader: &Reader, ret: u64) -> Option<String> {
    use iced_x86::{Decoder, DecoderOptions, FlowControl};
    // `call rel32` is 5 bytes, `call *disp32(%rip)` 6.
    for len in [5u64, 6] {
        let start = ret.checked_sub(len)?;
        let bytes = reader.bytes(start, len as usize);
        let ins = Decoder::with_ip(64, &bytes, start, DecoderOptions::NONE).decode();
        if ins.is_invalid() || ins.len() as u64 != len || ins.flow_control() != FlowControl::Call {
            if ins.flow_control() != FlowControl::IndirectCall || ins.len() as u64 != len {
                continue;
            }
        }
        if ins.flow_control() == FlowControl::IndirectCall {
            if !ins.is_ip_rel_memory_operand() {
                return None;
            }
            return relocated_symbol(reader, ins.ip_rel_memory_address());
        }
        let target = ins.near_branch_target();
        // PLT entries are 16 bytes (8 in .plt.got): a "call" into the middle of one was no call.
        if reader.modules().in_plt(target) && target.is_multiple_of(8) {
            let code = reader.bytes(target, 16);
            let mut d = Decoder::with_ip(64, &code, target, DecoderOptions::NONE);
            for _ in 0..3 {
                let ins = d.decode();
                if ins.is_invalid() {
                    return None;
                }
                if ins.flow_control() == FlowControl::IndirectBranch && ins.is_ip_rel_memory_operand() {
                    return relocated_symbol(reader, ins.ip_rel_memory_address());
                }
            }
            return None;
        }
        return symbol_named_at(reader, target);
    }
    None
}

/// Runs `f` on the ELF file of the module holding runtime address `addr`, with the
/// address in link-time terms.
fn with_module_elf<T>(
    reader: &Reader,
    addr: u64,
    f: impl FnOnce(&object::read::elf::ElfFile64<'_, object::LittleEndian>, u64) -> Option<T>,
) -> Option<T> {
    let modules = reader.modules();
    let idx = modules.find(addr)?;
    let vaddr = addr.wrapping_sub(modules.entry(idx).record.load_bias);
    let img = modules.image(idx)?;
    let elf = object::read::elf::ElfFile64::<object::LittleEndian>::parse(&*img.bytes).ok()?;
    f(&elf, vaddr)
}

/// The function the relocation of the GOT slot at runtime address `slot` binds.
///
/// Folklore: `.rela.plt` holds `Elf64_Rela {offset, info, addend}` records. A
/// dynamic executable's are `R_X86_64_JUMP_SLOT`s naming a dynamic symbol; a static
/// executable's are `R_X86_64_IRELATIVE`s for IFUNCs (memcpy & co), whose addend is
/// the resolver, which carries the function's own name in the symbol table.
fn relocated_symbol(reader: &Reader, slot: u64) -> Option<String> {
    const R_X86_64_JUMP_SLOT: u64 = 7;
    const R_X86_64_IRELATIVE: u64 = 37;
    let (kind, sym, addend) = with_module_elf(reader, slot, |elf, vaddr| {
        let data = elf.section_by_name(".rela.plt")?.data().ok()?;
        data.chunks_exact(24).find_map(|r| {
            let word = |k: usize| u64::from_le_bytes(r[k * 8..k * 8 + 8].try_into().unwrap_or([0; 8]));
            (word(0) == vaddr).then(|| (word(1) & 0xffff_ffff, word(1) >> 32, word(2)))
        })
    })?;
    match kind {
        R_X86_64_JUMP_SLOT => with_module_elf(reader, slot, |elf, _| {
            let name =
                elf.dynamic_symbol_table()?.symbol_by_index(object::SymbolIndex(sym as usize)).ok()?.name().ok()?;
            (!name.is_empty()).then(|| name.to_string())
        }),
        R_X86_64_IRELATIVE => {
            let bias = reader.modules().find(slot).map(|idx| reader.modules().entry(idx).record.load_bias)?;
            symbol_named_at(reader, addend.wrapping_add(bias))
        }
        _ => None,
    }
}

/// The name of a function symbol starting exactly at runtime address `addr`; of
/// several aliases, the public one (fewest leading underscores: `memcpy`, not
/// `__new_memcpy`).
fn symbol_named_at(reader: &Reader, addr: u64) -> Option<String> {
    with_module_elf(reader, addr, |elf, vaddr| {
        elf.symbols()
            .chain(elf.dynamic_symbols())
            .filter(|s| s.address() == vaddr && s.size() > 0)
            .filter_map(|s| s.name().ok().filter(|n| !n.is_empty()).map(String::from))
            .min_by_key(|n| (n.len() - n.trim_start_matches('_').len(), n.len()))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::capture::CopiedMemory;

    fn decode(code: &[u8], ip: u64) -> Vec<iced_x86::Instruction> {
        iced_x86::Decoder::with_ip(64, code, ip, iced_x86::DecoderOptions::NONE).into_iter().collect()
    }

    /// gcc -O0's set-up of `memcpy(dst, src, n)` in `copy(dst, src, n)`, up to the call.
    const O0_COPY: &[u8] = &[
        0x55, // push rbp
        0x48, 0x89, 0xe5, // mov rbp, rsp
        0x48, 0x83, 0xec, 0x20, // sub rsp, 0x20
        0x48, 0x89, 0x7d, 0xf8, // mov [rbp-0x8], rdi
        0x48, 0x89, 0x75, 0xf0, // mov [rbp-0x10], rsi
        0x48, 0x89, 0x55, 0xe8, // mov [rbp-0x18], rdx
        0x48, 0x8b, 0x55, 0xe8, // mov rdx, [rbp-0x18]
        0x48, 0x8b, 0x4d, 0xf0, // mov rcx, [rbp-0x10]
        0x48, 0x8b, 0x45, 0xf8, // mov rax, [rbp-0x8]
        0x48, 0x89, 0xce, // mov rsi, rcx
        0x48, 0x89, 0xc7, // mov rdi, rax
    ];

    #[test]
    fn o0_arguments_come_from_the_stack_slots() {
        let rbp = 0x7ffc_0000_1000u64;
        let mut mem = CopiedMemory::default();
        let mut slots = Vec::new();
        for v in [0x2000u64, 0x5000, 0x6000] {
            slots.extend_from_slice(&v.to_le_bytes()); // [rbp-0x18] n, [rbp-0x10] src, [rbp-0x8] dst
        }
        mem.add(rbp - 0x18, slots);
        let mut recovered = [None; 16];
        recovered[6] = Some(rbp);
        recovered[7] = Some(rbp - 0x20);
        let (regs, reads) = arguments_from_block(&decode(O0_COPY, 0x1000), &recovered, &mem).expect("consistent");
        assert_eq!((regs[5], regs[4], regs[1]), (Some(0x6000), Some(0x5000), Some(0x2000)));
        assert_eq!(reads.len(), 3);
    }

    #[test]
    fn o2_arguments_come_from_callee_saved_copies() {
        // push rbp; mov rbp, rsi; push rbx; mov rbx, rdx; sub rsp, 8 (the call follows)
        let code = [0x55, 0x48, 0x89, 0xf5, 0x53, 0x48, 0x89, 0xd3, 0x48, 0x83, 0xec, 0x08];
        let mut recovered = [None; 16];
        recovered[6] = Some(0x5000); // rbp = src
        recovered[3] = Some(0x2000); // rbx = n
        recovered[7] = Some(0x7ffc_0000_0f00);
        let mem = CopiedMemory::default();
        let (regs, _) = arguments_from_block(&decode(&code, 0x1000), &recovered, &mem).expect("consistent");
        // rdi was never copied: unknown, not guessed.
        assert_eq!((regs[5], regs[4], regs[1]), (None, Some(0x5000), Some(0x2000)));
    }

    #[test]
    fn contradicting_the_unwinder_claims_nothing() {
        // mov ebx, 7: the recovered rbx says otherwise.
        let code = [0xbb, 0x07, 0x00, 0x00, 0x00];
        let mut recovered = [None; 16];
        recovered[3] = Some(8);
        assert!(arguments_from_block(&decode(&code, 0x1000), &recovered, &CopiedMemory::default()).is_none());
    }

    #[test]
    fn a_store_through_an_unknown_pointer_hides_later_loads() {
        // mov [rax], rcx; mov rdi, [rbp-8]
        let code = [0x48, 0x89, 0x08, 0x48, 0x8b, 0x7d, 0xf8];
        let mut mem = CopiedMemory::default();
        mem.add(0x1000 - 8, 0x4242u64.to_le_bytes().to_vec());
        let mut recovered = [None; 16];
        recovered[6] = Some(0x1000);
        let (regs, _) = arguments_from_block(&decode(&code, 0x1000), &recovered, &mem).expect("consistent");
        assert_eq!(regs[5], None);
    }
}
