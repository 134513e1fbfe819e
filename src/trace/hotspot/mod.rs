//! HotSpot (OpenJDK's JVM): the Java method each frame runs, with its source file and
//! line, as the JVM's own crash report (`hs_err_pid*.log`) and `jstack` name them, and
//! the size of each compiled frame, which keeps no frame pointer, for the unwinder. gdb
//! shows such a frame as `?? ()`; a perf map, when the JVM writes one, says only
//! `Interpreter` for an interpreted one.
//!
//! Compiled code lives in the code cache: heaps of blocks, found by pc through each
//! heap's segment map, each block a code blob (an nmethod for a compiled method or a
//! native method's wrapper, else a stub) with its frame size. An nmethod's `PcDesc`
//! at a return address leads to its scopes: the methods inlined there, innermost
//! first, each with its bytecode index.
//!
//! The JVM describes its own structures for debuggers (its Serviceability Agent reads
//! cores the same way): `libjvm.so` exports `gHotSpotVMStructs` (type, field, offset),
//! `gHotSpotVMTypes` (type sizes) and `gHotSpotVMIntConstants`, each a table whose
//! entry layout is exported too. Every offset used here comes from those tables, so no
//! JDK version's layout is written down in bt, with one exception: the slots of an
//! interpreted frame below its frame pointer, which the tables give only in part
//! (`frame::interpreter_frame_last_sp_offset`; the method's slot is the next one down
//! and the bytecode pointer's five below that, in every x86-64 JDK from 8 to 21).
//! What those slots hold is checked before it is believed: the method must lead,
//! through its constant pool, back to a class and to two symbols that read as a Java
//! name and a method descriptor, and the bytecode pointer must lie inside the method's
//! bytecodes, or the frame keeps no name, or no line.

mod metadata;
mod tables;

use crate::capture::Memory;
use crate::snapshot::{Frame, Problem, Registers, Scope};
use crate::symbols::ModuleSet;
use std::collections::HashMap;
use tables::Vm;

/// A Java frame's method, as the JVM's crash report names it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct JavaFrame {
    /// `Crash.poke(Lsun/misc/Unsafe;I)V`: class, method and descriptor.
    pub function: String,
    pub file: Option<String>,
    pub line: Option<u32>,
}

/// Java frames by thread (in the order of `raw`) and by (pc, sp) of the physical
/// frame: innermost first, the methods compiled code inlined there, then its own.
pub(crate) type Names = Vec<HashMap<(u64, u64), Vec<JavaFrame>>>;

/// A process's HotSpot: its description of itself, and the modules to read its
/// names from (a core leaves `libjvm.so`'s read-only data out).
pub(crate) struct HotSpot<'m> {
    vm: Vm,
    modules: &'m ModuleSet,
}

impl<'m> HotSpot<'m> {
    /// The JVM of the process, when it runs one (None: no `libjvm.so`). A JVM whose
    /// tables cannot be read is the problem returned: its frames keep what they had.
    pub(crate) fn find(modules: &'m ModuleSet, memory: &dyn Memory) -> Option<Result<HotSpot<'m>, Problem>> {
        let tables = modules.module_symbol("libjvm.so", "gHotSpotVMStructs")?;
        let mem = super::memory::Layered(memory, &super::memory::ModuleFiles(modules));
        Some(match Vm::read(modules, &mem, tables) {
            Ok(vm) => Ok(HotSpot { vm, modules }),
            Err(e) => {
                Err(Problem::new(Scope::Snapshot, format!("HotSpot's description of itself: {e}; Java frames unnamed")))
            }
        })
    }

    /// The name of every JIT frame among `raw` (each thread's registers and walked
    /// frames) that the JVM describes: an interpreted frame's method, file and line; a
    /// compiled one's methods (those inlined into it first) and lines; a stub's name.
    pub(crate) fn name_frames(&self, memory: &dyn Memory, raw: &[(&Registers, &[Frame])]) -> Names {
        let mem = super::memory::Layered(memory, &super::memory::ModuleFiles(self.modules));
        let vm = &self.vm;
        // Compiled code by pc: a JVM's threads stop at the same call sites, and an
        // nmethod's tables are read once for each.
        let mut compiled: HashMap<(u64, bool), Option<Vec<JavaFrame>>> = HashMap::new();
        raw.iter()
            .map(|(regs, frames)| {
                let mut out = HashMap::new();
                for (k, f) in frames.iter().enumerate() {
                    if !self.modules.is_jit(f.pc) {
                        continue;
                    }
                    let exact = k == 0 || f.signal_frame;
                    let named = if Some(f.pc) == vm.call_stub_return {
                        Some(vec![JavaFrame { function: "StubRoutines::call_stub".into(), file: None, line: None }])
                    } else if vm.interpreted(f.pc, exact) {
                        let fp =
                            if k == 0 { Some(regs.rbp) } else { f.registers.iter().find(|r| r.0 == 6).map(|r| r.1) };
                        fp.and_then(|fp| vm.frame(&mem, fp)).map(|j| vec![j])
                    } else {
                        let blob = || {
                            vm.blob(&mem, if exact { f.pc } else { f.pc.wrapping_sub(1) }).and_then(|b| {
                                match b.method {
                                    // Its scopes at the pc, or at least its own method.
                                    Some(m) => vm
                                        .compiled(&mem, &b, f.pc, exact)
                                        .filter(|v| !v.is_empty())
                                        .or_else(|| vm.method(&mem, m, None).map(|j| vec![j])),
                                    None => Some(vec![JavaFrame { function: b.name, file: None, line: None }]),
                                }
                            })
                        };
                        compiled.entry((f.pc, exact)).or_insert_with(blob).clone()
                    };
                    if let Some(j) = named {
                        out.insert((f.pc, f.sp), j);
                    }
                }
                out
            })
            .collect()
    }
}

impl crate::unwind::JitFrames for HotSpot<'_> {
    fn frame_size(&self, pc: u64, exact: bool, memory: &dyn Memory) -> Option<u64> {
        let vm = &self.vm;
        if vm.interpreted(pc, exact) || Some(pc) == vm.call_stub_return {
            return None;
        }
        let mem = super::memory::Layered(memory, &super::memory::ModuleFiles(self.modules));
        let probe = if exact { pc } else { pc.wrapping_sub(1) };
        let b = vm.blob(&mem, probe);
        let b = b?;
        // The interpreter's and the stubs' frames are linked by rbp; a frame still in
        // its prologue has not its full size yet.
        if b.frame_size == 0 || b.name.starts_with("StubRoutines") || b.name == "Interpreter" {
            return None;
        }
        if exact && probe - b.code_begin < b.frame_complete {
            return None;
        }
        Some(b.frame_size * 8)
    }

    fn knows_code(&self, addr: u64, memory: &dyn Memory) -> bool {
        let vm = &self.vm;
        if vm.interpreted(addr, false) || Some(addr) == vm.call_stub_return {
            return true;
        }
        let mem = super::memory::Layered(memory, &super::memory::ModuleFiles(self.modules));
        vm.blob(&mem, addr.wrapping_sub(1)).is_some()
    }

    fn sender_sp(&self, pc: u64, exact: bool, fp: u64, memory: &dyn Memory) -> Option<u64> {
        if !self.vm.interpreted(pc, exact) {
            return None;
        }
        memory.read_u64(fp.checked_add_signed(self.vm.frame_sender_sp.checked_mul(8)?)?)
    }
}

/// Applies `names` to the symbolized frames of each thread (a Java frame's pc and sp
/// are those of the walked frame: JIT code has no inlined frames).
pub(crate) fn apply(threads: &mut [crate::snapshot::Thread], names: &Names) {
    for (t, names) in threads.iter_mut().zip(names) {
        if names.is_empty() {
            continue;
        }
        let mut frames = Vec::with_capacity(t.frames.len());
        for mut f in std::mem::take(&mut t.frames) {
            let Some(java) = names.get(&(f.pc, f.sp)) else {
                frames.push(f);
                continue;
            };
            let last = java.len().saturating_sub(1);
            for (i, j) in java.iter().enumerate() {
                let mut named = if i == last { std::mem::take(&mut f) } else { f.inlined_here() };
                named.function = Some(j.function.clone());
                named.function_offset = None;
                named.file = j.file.clone();
                named.line = j.line;
                frames.push(named);
            }
        }
        t.frames = frames;
    }
}
