//! What a frame was called with: the function its caller named (through the PLT) and
//! the register arguments it passed, recovered after the fact from the caller's DWARF
//! call-site records. The memcpy-family and free/realloc checks build on it.

use super::Reader;
use crate::snapshot::Thread;
use object::{Object, ObjectSymbol, ObjectSymbolTable};

/// The System V integer argument registers in order, by DWARF number (rdi, rsi, rdx,
/// rcx, r8, r9).
const ARGUMENT_REGISTERS: [u16; 6] = [5, 4, 1, 2, 8, 9];

/// A call as the caller made it.
#[derive(Debug, Default, Clone)]
pub struct Call {
    /// The function the caller called (`memcpy`), when the call instruction and the
    /// PLT name it; the callee's own symbol may be an alias (`__memmove_avx_unaligned_erms`).
    pub name: Option<String>,
    /// Integer arguments by position, where the call-site records prove them.
    pub args: [Option<u64>; 6],
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
    let caller = t.frames.iter().skip(callee + 1).find(|f| !f.inlined);
    if let Some(caller) = caller.filter(|_| !t.frames[callee].signal_frame) {
        out.name = called_name(reader, caller.pc);
    }
    out
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
        if reader.modules().in_plt(target) {
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

/// The symbol a dynamic relocation of the GOT slot at runtime address `slot` binds.
fn relocated_symbol(reader: &Reader, slot: u64) -> Option<String> {
    let modules = reader.modules();
    let idx = modules.find(slot)?;
    let vaddr = slot.wrapping_sub(modules.entry(idx).record.load_bias);
    let img = modules.image(idx)?;
    let elf = object::read::elf::ElfFile64::<object::LittleEndian>::parse(&*img.bytes).ok()?;
    let (_, rel) = elf.dynamic_relocations()?.find(|(off, _)| *off == vaddr)?;
    let object::RelocationTarget::Symbol(sym) = rel.target() else { return None };
    let name = elf.dynamic_symbol_table()?.symbol_by_index(sym).ok()?.name().ok()?.to_string();
    (!name.is_empty()).then_some(name)
}

/// The name of a function symbol starting exactly at runtime address `addr`.
fn symbol_named_at(reader: &Reader, addr: u64) -> Option<String> {
    let modules = reader.modules();
    let idx = modules.find(addr)?;
    let vaddr = addr.wrapping_sub(modules.entry(idx).record.load_bias);
    let img = modules.image(idx)?;
    let elf = object::read::elf::ElfFile64::<object::LittleEndian>::parse(&*img.bytes).ok()?;
    let hit = elf.symbols().chain(elf.dynamic_symbols()).find(|s| s.address() == vaddr && s.size() > 0)?;
    hit.name().ok().filter(|n| !n.is_empty()).map(String::from)
}
