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

use crate::capture::Memory;
use crate::snapshot::{Frame, Problem, Registers, Scope};
use crate::symbols::ModuleSet;
use std::collections::HashMap;

/// Most entries read from one of the JVM's description tables (JDK 17 has ~2,500).
const MAX_ENTRIES: usize = 100_000;
/// The longest Java name or descriptor read (the class file format's limit).
const MAX_SYMBOL: usize = 65_535;
/// Longest line number table decoded, in pairs.
const MAX_LINE_PAIRS: usize = 65_536;
/// Most `PcDesc`s of one nmethod searched, and most hops back in a segment map: a
/// corrupt table costs this many reads, not millions.
const MAX_PC_DESCS: u64 = 65_536;
const MAX_HOPS: usize = 65_536;

/// The offsets this reader needs, from the JVM's tables.
#[derive(Debug, Clone)]
pub(crate) struct Vm {
    method_const_method: u64,
    const_method_constants: u64,
    const_method_flags: u64,
    const_method_code_size: u64,
    const_method_name_index: u64,
    const_method_signature_index: u64,
    const_method_size: u64,
    has_line_table: u16,
    pool_holder: u64,
    pool_length: u64,
    pool_source_file: u64,
    pool_size: u64,
    klass_name: u64,
    symbol_length: u64,
    symbol_body: u64,
    /// Slots below the frame pointer, in words: the method and the bytecode pointer.
    frame_method: i64,
    frame_bcp: i64,
    /// The interpreter's code, [start, end): a frame whose pc is there is interpreted.
    interpreter: (u64, u64),
    /// Where Java code returns to the VM's call stub (`StubRoutines::call_stub`).
    call_stub_return: Option<u64>,
    /// The slot of an interpreted frame that holds its caller's sp, in words.
    frame_sender_sp: i64,
    /// The code cache's heaps, and where in a code blob its fields are.
    heaps: Vec<CodeHeap>,
    blob: BlobLayout,
}

/// One heap of the code cache: its memory, cut in segments of 2^`log2_segment` bytes,
/// and its segment map (per segment, how many segments back its block starts; 0 at a
/// block's first, 0xFF where free).
#[derive(Debug, Clone)]
struct CodeHeap {
    low: u64,
    high: u64,
    segmap: u64,
    log2_segment: u32,
}

/// Offsets in a code blob (`CodeBlob`, and `CompiledMethod` for an nmethod's method).
#[derive(Debug, Clone)]
struct BlobLayout {
    /// The block header before the blob (`HeapBlock`): its size, and its used flag.
    header_size: u64,
    header_used: u64,
    name: u64,
    frame_size: u64,
    frame_complete: u64,
    code_begin: u64,
    code_end: u64,
    method: u64,
    /// An nmethod's tables: where its `PcDesc`s start and end (from its header), its
    /// metadata (the methods its scopes name), and its scopes' data (an address).
    scopes_pcs: u64,
    dependencies: u64,
    metadata: u64,
    scopes_data: u64,
    pc_desc_size: u64,
    pc_desc_pc: u64,
    pc_desc_scope: u64,
    /// What a scope's stored bytecode index is offset by (`InvocationEntryBci`).
    entry_bci: i64,
}

/// A code blob found by pc: an nmethod's method, or the blob's own name.
struct Blob {
    name: String,
    /// Words, with the return address and the saved rbp.
    frame_size: u64,
    /// From `code_begin`: where its prologue is done.
    frame_complete: u64,
    code_begin: u64,
    method: Option<u64>,
    /// The blob's own address (an nmethod's header, from which its tables are found).
    at: u64,
}

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
                let mut named = if i == last {
                    std::mem::take(&mut f)
                } else {
                    // An inlined method: the physical frame's place, no registers.
                    Frame {
                        pc: f.pc,
                        sp: f.sp,
                        module: f.module.clone(),
                        module_offset: f.module_offset,
                        trust: f.trust,
                        signal_frame: f.signal_frame,
                        inlined: true,
                        ..Default::default()
                    }
                };
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

/// One of the JVM's tables: where it starts, its stride, and where in an entry the
/// fields are (each from the `gHotSpot…Offset` symbol of that name).
struct Table {
    start: u64,
    stride: u64,
}

impl Vm {
    fn read(modules: &ModuleSet, mem: &dyn Memory, structs_var: u64) -> Result<Vm, String> {
        let sym = |name: &str| -> Result<u64, String> {
            let at = modules.module_symbol("libjvm.so", name).ok_or_else(|| format!("libjvm.so exports no {name}"))?;
            mem.read_u64(at).ok_or_else(|| format!("{name} at {at:#x} is unreadable"))
        };
        let table = |var: u64, stride: &str| -> Result<Table, String> {
            let start = mem.read_u64(var).ok_or_else(|| format!("the table pointer at {var:#x} is unreadable"))?;
            Ok(Table { start, stride: sym(stride)? })
        };

        // Fields: (type, field) → offset.
        let structs = table(structs_var, "gHotSpotVMStructEntryArrayStride")?;
        let (s_type, s_field, s_static, s_offset, s_address) = (
            sym("gHotSpotVMStructEntryTypeNameOffset")?,
            sym("gHotSpotVMStructEntryFieldNameOffset")?,
            sym("gHotSpotVMStructEntryIsStaticOffset")?,
            sym("gHotSpotVMStructEntryOffsetOffset")?,
            sym("gHotSpotVMStructEntryAddressOffset")?,
        );
        const FIELDS: &[(&str, &str)] = &[
            ("Method", "_constMethod"),
            ("ConstMethod", "_constants"),
            ("ConstMethod", "_flags"),
            ("ConstMethod", "_code_size"),
            ("ConstMethod", "_name_index"),
            ("ConstMethod", "_signature_index"),
            ("ConstantPool", "_pool_holder"),
            ("ConstantPool", "_length"),
            ("ConstantPool", "_source_file_name_index"),
            ("Klass", "_name"),
            ("Symbol", "_length"),
            ("Symbol", "_body"),
            ("StubQueue", "_stub_buffer"),
            ("StubQueue", "_buffer_limit"),
            ("CodeHeap", "_memory"),
            ("CodeHeap", "_segmap"),
            ("CodeHeap", "_log2_segment_size"),
            ("VirtualSpace", "_low"),
            ("VirtualSpace", "_high"),
            ("GrowableArrayBase", "_len"),
            ("HeapBlock::Header", "_used"),
            ("CodeBlob", "_name"),
            ("CodeBlob", "_frame_size"),
            ("CodeBlob", "_frame_complete_offset"),
            ("CodeBlob", "_code_begin"),
            ("CodeBlob", "_code_end"),
            ("CompiledMethod", "_method"),
            ("CompiledMethod", "_scopes_data_begin"),
            ("nmethod", "_scopes_pcs_offset"),
            ("nmethod", "_dependencies_offset"),
            ("nmethod", "_metadata_offset"),
            ("PcDesc", "_pc_offset"),
            ("PcDesc", "_scope_decode_offset"),
        ];
        // Static fields: (type, field) → the variable's address.
        const STATICS: &[(&str, &str)] =
            &[("AbstractInterpreter", "_code"), ("StubRoutines", "_call_stub_return_address"), ("CodeCache", "_heaps")];
        let mut fields: HashMap<(String, String), u64> = HashMap::new();
        let mut statics: HashMap<(String, String), u64> = HashMap::new();
        entries(mem, &structs, s_type, |e, type_name| {
            let wanted = |list: &[(&str, &str)]| list.iter().any(|(t, _)| *t == type_name);
            if !wanted(FIELDS) && !wanted(STATICS) {
                return Some(());
            }
            let field = cstring(mem, mem.read_u64(e + s_field)?)?;
            let key = (type_name, field.as_str());
            if read_u32(mem, e + s_static)? == 0 {
                if FIELDS.contains(&key) {
                    fields.insert((type_name.to_string(), field), mem.read_u64(e + s_offset)?);
                }
            } else if STATICS.contains(&key) {
                statics.insert((type_name.to_string(), field), mem.read_u64(e + s_address)?);
            }
            Some(())
        })?;
        let field = |t: &str, f: &str| {
            fields
                .get(&(t.to_string(), f.to_string()))
                .copied()
                .ok_or_else(|| format!("no {t}::{f} in gHotSpotVMStructs"))
        };

        // Sizes: type → size.
        let types = table(sym_addr(modules, "gHotSpotVMTypes")?, "gHotSpotVMTypeEntryArrayStride")?;
        let (t_type, t_size) = (sym("gHotSpotVMTypeEntryTypeNameOffset")?, sym("gHotSpotVMTypeEntrySizeOffset")?);
        let mut sizes: HashMap<String, u64> = HashMap::new();
        entries(mem, &types, t_type, |e, type_name| {
            if matches!(type_name, "ConstMethod" | "ConstantPool" | "HeapBlock" | "GrowableArrayBase" | "PcDesc") {
                sizes.insert(type_name.to_string(), mem.read_u64(e + t_size)?);
            }
            Some(())
        })?;
        let size = |t: &str| sizes.get(t).copied().ok_or_else(|| format!("no size of {t} in gHotSpotVMTypes"));

        // Constants: name → value.
        let ints = table(sym_addr(modules, "gHotSpotVMIntConstants")?, "gHotSpotVMIntConstantEntryArrayStride")?;
        let (i_name, i_value) =
            (sym("gHotSpotVMIntConstantEntryNameOffset")?, sym("gHotSpotVMIntConstantEntryValueOffset")?);
        let mut consts: HashMap<String, i32> = HashMap::new();
        entries(mem, &ints, i_name, |e, name| {
            if matches!(
                name,
                "frame::interpreter_frame_last_sp_offset"
                    | "frame::interpreter_frame_sender_sp_offset"
                    | "ConstMethod::_has_linenumber_table"
                    | "InvocationEntryBci"
            ) {
                consts.insert(name.to_string(), read_u32(mem, e + i_value)? as i32);
            }
            Some(())
        })?;
        let constant = |n: &str| consts.get(n).copied().ok_or_else(|| format!("no {n} in gHotSpotVMIntConstants"));
        let last_sp = i64::from(constant("frame::interpreter_frame_last_sp_offset")?);
        if !(-8..0).contains(&last_sp) {
            return Err(format!("an interpreted frame's last_sp slot at {last_sp} words is not one bt knows"));
        }

        // The interpreter's code: AbstractInterpreter::_code, a StubQueue whose buffer
        // holds every template.
        let static_value = |t: &str, f: &str| {
            let at = statics.get(&(t.to_string(), f.to_string())).copied();
            at.and_then(|at| mem.read_u64(at)).ok_or_else(|| format!("{t}::{f} is unreadable"))
        };
        let queue = aligned(static_value("AbstractInterpreter", "_code")?).ok_or("the interpreter has no code")?;
        let start = mem
            .read_u64(queue + field("StubQueue", "_stub_buffer")?)
            .ok_or("the interpreter's code buffer is unreadable")?;
        let limit = read_u32(mem, queue + field("StubQueue", "_buffer_limit")?)
            .ok_or("the interpreter's code size is unreadable")?;
        let interpreter = (start, start.saturating_add(u64::from(limit)));
        if !modules.is_jit(start) {
            return Err(format!("the interpreter's code at {start:#x} is not JIT memory"));
        }
        let call_stub_return =
            static_value("StubRoutines", "_call_stub_return_address").ok().filter(|a| modules.is_jit(*a));
        let blob = BlobLayout {
            header_size: size("HeapBlock")?,
            header_used: field("HeapBlock::Header", "_used")?,
            name: field("CodeBlob", "_name")?,
            frame_size: field("CodeBlob", "_frame_size")?,
            frame_complete: field("CodeBlob", "_frame_complete_offset")?,
            code_begin: field("CodeBlob", "_code_begin")?,
            code_end: field("CodeBlob", "_code_end")?,
            method: field("CompiledMethod", "_method")?,
            scopes_pcs: field("nmethod", "_scopes_pcs_offset")?,
            dependencies: field("nmethod", "_dependencies_offset")?,
            metadata: field("nmethod", "_metadata_offset")?,
            scopes_data: field("CompiledMethod", "_scopes_data_begin")?,
            pc_desc_size: size("PcDesc")?,
            pc_desc_pc: field("PcDesc", "_pc_offset")?,
            pc_desc_scope: field("PcDesc", "_scope_decode_offset")?,
            entry_bci: i64::from(constant("InvocationEntryBci")?),
        };
        // CodeCache::_heaps: a GrowableArray<CodeHeap*> (its length, then the pointer
        // to its elements right after the base's fields).
        let heaps = {
            let array = aligned(static_value("CodeCache", "_heaps")?).ok_or("the code cache has no heaps")?;
            let len =
                read_u32(mem, array + field("GrowableArrayBase", "_len")?).ok_or("CodeCache::_heaps unreadable")?;
            let data = mem.read_u64(array + size("GrowableArrayBase")?).ok_or("CodeCache::_heaps unreadable")?;
            let (memory, segmap, log2) = (
                field("CodeHeap", "_memory")?,
                field("CodeHeap", "_segmap")?,
                field("CodeHeap", "_log2_segment_size")?,
            );
            let (vs_low, vs_high) = (field("VirtualSpace", "_low")?, field("VirtualSpace", "_high")?);
            let mut heaps = Vec::new();
            for i in 0..u64::from(len.min(16)) {
                let Some(h) = mem.read_u64(data + i * 8).and_then(aligned) else { continue };
                let (Some(low), Some(high), Some(map), Some(l2)) = (
                    mem.read_u64(h + memory + vs_low),
                    mem.read_u64(h + memory + vs_high),
                    mem.read_u64(h + segmap + vs_low),
                    read_u32(mem, h + log2),
                ) else {
                    continue;
                };
                if low < high && (4..=16).contains(&l2) && modules.is_jit(low) {
                    heaps.push(CodeHeap { low, high, segmap: map, log2_segment: l2 });
                }
            }
            heaps
        };

        let sender_sp = i64::from(constant("frame::interpreter_frame_sender_sp_offset")?);
        Ok(Vm {
            interpreter,
            call_stub_return,
            frame_sender_sp: sender_sp,
            heaps,
            blob,
            method_const_method: field("Method", "_constMethod")?,
            const_method_constants: field("ConstMethod", "_constants")?,
            const_method_flags: field("ConstMethod", "_flags")?,
            const_method_code_size: field("ConstMethod", "_code_size")?,
            const_method_name_index: field("ConstMethod", "_name_index")?,
            const_method_signature_index: field("ConstMethod", "_signature_index")?,
            const_method_size: size("ConstMethod")?,
            has_line_table: u16::try_from(constant("ConstMethod::_has_linenumber_table")?).unwrap_or(0),
            pool_holder: field("ConstantPool", "_pool_holder")?,
            pool_length: field("ConstantPool", "_length")?,
            pool_source_file: field("ConstantPool", "_source_file_name_index")?,
            pool_size: size("ConstantPool")?,
            klass_name: field("Klass", "_name")?,
            symbol_length: field("Symbol", "_length")?,
            symbol_body: field("Symbol", "_body")?,
            // frame_x86.hpp: sender_sp, last_sp, method, mirror, mdp, cache, locals, bcp.
            frame_method: last_sp - 1,
            frame_bcp: last_sp - 6,
        })
    }

    /// The Java method of the interpreted frame whose frame pointer is `fp`, if the
    /// frame is one (see the module's comment for what is checked).
    pub(crate) fn frame(&self, mem: &dyn Memory, fp: u64) -> Option<JavaFrame> {
        let slot = |words: i64| fp.checked_add_signed(words.checked_mul(8)?);
        let method = aligned(mem.read_u64(slot(self.frame_method)?)?)?;
        let bcp = slot(self.frame_bcp).and_then(|s| mem.read_u64(s));
        self.method(mem, method, bcp)
    }

    /// The name, file, and (for a bytecode pointer) line of the `Method` at `method`,
    /// after the checks the module's comment describes.
    fn method(&self, mem: &dyn Memory, method: u64, bcp: Option<u64>) -> Option<JavaFrame> {
        let cm = aligned(mem.read_u64(method + self.method_const_method)?)?;
        let pool = aligned(mem.read_u64(cm + self.const_method_constants)?)?;
        let holder = aligned(mem.read_u64(pool + self.pool_holder)?)?;
        let class = self.symbol(mem, aligned(mem.read_u64(holder + self.klass_name)?)?)?;
        let length = u64::from(read_u32(mem, pool + self.pool_length)?);
        let at = |index_field: u64| -> Option<String> {
            let index = u64::from(read_u16(mem, cm + index_field)?);
            if index == 0 || index >= length {
                return None;
            }
            self.symbol(mem, aligned(mem.read_u64(pool + self.pool_size + index * 8)?)?)
        };
        let name = at(self.const_method_name_index)?;
        let descriptor = at(self.const_method_signature_index)?;
        if !is_java_name(&class) || !is_java_name(&name) || !descriptor.starts_with('(') || !descriptor.contains(')') {
            return None;
        }
        // The source file: the constant pool's entry, when the class names one.
        let file = {
            let index = u64::from(read_u16(mem, pool + self.pool_source_file)?);
            (index != 0 && index < length)
                .then(|| self.symbol(mem, aligned(mem.read_u64(pool + self.pool_size + index * 8)?)?))
                .flatten()
        };
        let line = bcp.and_then(|bcp| self.line(mem, cm, Bci::Pointer(bcp)));
        Some(JavaFrame { function: format!("{}.{name}{descriptor}", external_name(&class)), file, line })
    }

    /// The source line of the bytecode at `bcp` in the method whose `ConstMethod` is at
    /// `cm`, from its compressed line number table (after the bytecodes): pairs of
    /// deltas (bytecode index, line), one byte when they fit 5 and 3 bits, else 0xFF
    /// and two signed UNSIGNED5 numbers; a 0 byte ends it. The line of the last entry
    /// at or before the bytecode, as the JVM picks it.
    fn line(&self, mem: &dyn Memory, cm: u64, at: Bci) -> Option<u32> {
        let flags = read_u16(mem, cm + self.const_method_flags)?;
        if flags & self.has_line_table == 0 {
            return None;
        }
        let code = cm + self.const_method_size;
        let code_size = u64::from(read_u16(mem, cm + self.const_method_code_size)?);
        let bci = match at {
            Bci::Pointer(bcp) => bcp.checked_sub(code)?,
            Bci::Index(i) => i,
        };
        let bci = Some(bci).filter(|b| *b < code_size)?;
        let mut table = Stream { mem, at: code + code_size };
        let (mut b, mut l, mut best) = (0i64, 0i64, None);
        for _ in 0..MAX_LINE_PAIRS {
            let first = table.byte()?;
            if first == 0 {
                break;
            }
            if first == 0xFF {
                b += table.signed()?;
                l += table.signed()?;
            } else {
                b += i64::from(first >> 3);
                l += i64::from(first & 7);
            }
            if b == bci as i64 {
                return u32::try_from(l).ok();
            }
            if b < bci as i64 && best.is_none_or(|(bb, _)| b >= bb) {
                best = Some((b, l));
            }
        }
        best.and_then(|(_, l)| u32::try_from(l).ok())
    }

    /// The Java frames of compiled code at `pc` in the nmethod `b`, innermost first: the
    /// method inlined deepest, then each caller it was inlined into, then the nmethod's
    /// own method, each with its line. From the nmethod's `PcDesc` at the pc (a call's
    /// return address has one; an exact pc, the next one after it), whose scope is a
    /// chain in the scopes' data: per scope, its sender's offset, the index of its
    /// method in the nmethod's metadata, and its bytecode index (UNSIGNED5 numbers).
    fn compiled(&self, mem: &dyn Memory, b: &Blob, pc: u64, exact: bool) -> Option<Vec<JavaFrame>> {
        let l = &self.blob;
        let header_int = |off: u64| read_u32(mem, b.at + off).map(u64::from);
        let (pcs, end) = (b.at + header_int(l.scopes_pcs)?, b.at + header_int(l.dependencies)?);
        let metadata = b.at + header_int(l.metadata)?;
        let data = mem.read_u64(b.at + l.scopes_data)?;
        let off = pc.checked_sub(b.code_begin)?;
        if l.pc_desc_size == 0 || end <= pcs || (end - pcs) / l.pc_desc_size > MAX_PC_DESCS {
            return None;
        }
        // The whole table in one read (at most 65,536 entries of a few words).
        let mut table = vec![0u8; (end - pcs) as usize];
        let have = mem.read(pcs, &mut table) as u64;
        let field = |d: u64, at: u64| -> Option<u64> {
            let b = table.get((d + at) as usize..(d + at + 4) as usize)?;
            Some(u64::from(u32::from_le_bytes(b.try_into().ok()?)))
        };
        let mut scope = None;
        let mut next: Option<(u64, u64)> = None;
        for i in 0..have / l.pc_desc_size {
            let d = i * l.pc_desc_size;
            let at = field(d, l.pc_desc_pc)?;
            let decode = field(d, l.pc_desc_scope)?;
            if at == off {
                scope = Some(decode);
                break;
            }
            if exact && at > off && next.is_none_or(|(a, _)| at < a) {
                next = Some((at, decode));
            }
        }
        let mut decode = scope.or(next.map(|n| n.1)).filter(|d| *d != 0)?;
        let mut out = Vec::new();
        for _ in 0..64 {
            let mut stream = Stream { mem, at: data + decode };
            let sender = u64::from(stream.unsigned()?);
            let index = u64::from(stream.unsigned()?);
            let bci = i64::from(stream.unsigned()?) + l.entry_bci;
            let method = aligned(mem.read_u64(metadata + index.checked_sub(1)? * 8)?)?;
            let mut frame = self.method(mem, method, None)?;
            if let Ok(bci) = u64::try_from(bci) {
                let cm = mem.read_u64(method + self.method_const_method)?;
                frame.line = self.line(mem, cm, Bci::Index(bci));
            }
            out.push(frame);
            if sender == 0 {
                return Some(out);
            }
            decode = sender;
        }
        Some(out)
    }

    /// The code blob holding `pc`, from the code cache's segment map.
    fn blob(&self, mem: &dyn Memory, pc: u64) -> Option<Blob> {
        let heap = self.heaps.iter().find(|h| (h.low..h.high).contains(&pc))?;
        let mut seg = (pc - heap.low) >> heap.log2_segment;
        let byte = |i: u64| -> Option<u8> {
            let mut b = [0u8; 1];
            mem.read_exact(heap.segmap + i, &mut b).then_some(b[0])
        };
        // At most 254 segments back per hop, to the block's first (0).
        let mut hops = 0;
        loop {
            match byte(seg)? {
                0 => break,
                0xFF => return None,
                n => seg = seg.checked_sub(u64::from(n))?,
            }
            hops += 1;
            if hops == MAX_HOPS {
                return None;
            }
        }
        let block = heap.low + (seg << heap.log2_segment);
        let mut used = [0u8; 1];
        if !mem.read_exact(block + self.blob.header_used, &mut used) || used[0] == 0 {
            return None;
        }
        let b = block + self.blob.header_size;
        let (begin, end) = (mem.read_u64(b + self.blob.code_begin)?, mem.read_u64(b + self.blob.code_end)?);
        if !(begin..end).contains(&pc) {
            return None;
        }
        let name = cstring(mem, mem.read_u64(b + self.blob.name)?)?;
        // Compiled Java code, and the wrapper compiled for a native method.
        let nmethod = name == "nmethod" || name == "native nmethod";
        let method = if nmethod { mem.read_u64(b + self.blob.method).and_then(aligned) } else { None };
        Some(Blob {
            name,
            frame_size: u64::from(read_u32(mem, b + self.blob.frame_size)?),
            frame_complete: u64::from(read_u32(mem, b + self.blob.frame_complete)?),
            code_begin: begin,
            method,
            at: b,
        })
    }

    /// Whether `pc` (a frame's, `exact`, or a return address) is in the interpreter.
    fn interpreted(&self, pc: u64, exact: bool) -> bool {
        let probe = if exact { pc } else { pc.wrapping_sub(1) };
        (self.interpreter.0..self.interpreter.1).contains(&probe)
    }

    /// A `Symbol`'s text (modified UTF-8, read as UTF-8; Java names are).
    fn symbol(&self, mem: &dyn Memory, at: u64) -> Option<String> {
        let len = usize::from(read_u16(mem, at + self.symbol_length)?);
        if len == 0 || len > MAX_SYMBOL {
            return None;
        }
        let mut body = vec![0u8; len];
        mem.read_exact(at + self.symbol_body, &mut body).then_some(())?;
        String::from_utf8(body).ok().filter(|s| !s.contains('\0'))
    }
}

/// A class's name as Java spells it: `java.lang.String` for `java/lang/String`, and a
/// hidden class's (a lambda's) `Sleepy$$Lambda$220+0x0000…` as `…$220/0x0000…`, as the
/// JVM prints both.
fn external_name(internal: &str) -> String {
    let dotted = internal.replace('/', ".");
    match dotted.rsplit_once("+0x") {
        Some((class, addr)) if addr.chars().all(|c| c.is_ascii_hexdigit()) => format!("{class}/0x{addr}"),
        _ => dotted,
    }
}

/// The address of one of libjvm.so's exported variables.
fn sym_addr(modules: &ModuleSet, name: &str) -> Result<u64, String> {
    modules.module_symbol("libjvm.so", name).ok_or_else(|| format!("libjvm.so exports no {name}"))
}

/// Calls `each(entry address, its type or constant name)` for the entries of `table`
/// up to the one whose name pointer is null. None from `each`: an unreadable entry.
fn entries(
    mem: &dyn Memory,
    table: &Table,
    name_at: u64,
    mut each: impl FnMut(u64, &str) -> Option<()>,
) -> Result<(), String> {
    if table.stride == 0 || table.stride > 4096 {
        return Err(format!("a table's stride of {} bytes", table.stride));
    }
    for i in 0..MAX_ENTRIES as u64 {
        let e = table.start + i * table.stride;
        let name_ptr = mem.read_u64(e + name_at).ok_or_else(|| format!("entry {i} at {e:#x} is unreadable"))?;
        if name_ptr == 0 {
            return Ok(());
        }
        let name = cstring(mem, name_ptr).ok_or_else(|| format!("entry {i}'s name at {name_ptr:#x} is unreadable"))?;
        each(e, &name).ok_or_else(|| format!("entry {i} ({name}) is unreadable"))?;
    }
    Err(format!("a table of more than {MAX_ENTRIES} entries"))
}

/// A NUL-terminated name of the JVM's tables (type, field and constant names are short).
fn cstring(mem: &dyn Memory, at: u64) -> Option<String> {
    let mut buf = [0u8; 128];
    let n = mem.read(at, &mut buf);
    let end = buf[..n].iter().position(|b| *b == 0)?;
    String::from_utf8(buf[..end].to_vec()).ok()
}

fn read_u32(mem: &dyn Memory, at: u64) -> Option<u32> {
    let mut b = [0u8; 4];
    mem.read_exact(at, &mut b).then(|| u32::from_le_bytes(b))
}

fn read_u16(mem: &dyn Memory, at: u64) -> Option<u16> {
    let mut b = [0u8; 2];
    mem.read_exact(at, &mut b).then(|| u16::from_le_bytes(b))
}

/// A metadata pointer: non-null and word-aligned.
fn aligned(p: u64) -> Option<u64> {
    (p != 0 && p % 8 == 0).then_some(p)
}

/// A class name in internal form (`java/lang/String`), a method name (`<init>`,
/// `lambda$main$0`): no character a descriptor or a corrupt read would bring.
fn is_java_name(s: &str) -> bool {
    !s.is_empty() && !s.chars().any(|c| c.is_control() || matches!(c, ';' | '[' | '(' | ')'))
}

/// Where in a method's bytecodes: a frame's bytecode pointer, or an index.
#[derive(Clone, Copy)]
enum Bci {
    Pointer(u64),
    Index(u64),
}

/// A cursor in a compressed table (line numbers, an nmethod's scopes).
struct Stream<'a> {
    mem: &'a dyn Memory,
    at: u64,
}

impl Stream<'_> {
    fn byte(&mut self) -> Option<u8> {
        let mut b = [0u8; 1];
        self.mem.read_exact(self.at, &mut b).then_some(())?;
        self.at += 1;
        Some(b[0])
    }

    /// An UNSIGNED5 number: 1 to 5 bytes, a byte below 192 ends it, each further byte
    /// weighs 64 times the one before.
    fn unsigned(&mut self) -> Option<u32> {
        const L: u32 = 192;
        let mut sum = u32::from(self.byte()?);
        if sum >= L {
            let mut shift = 6;
            for i in 1..5 {
                let b = u32::from(self.byte()?);
                sum = sum.wrapping_add(b << shift);
                if b < L || i == 4 {
                    break;
                }
                shift += 6;
            }
        }
        Some(sum)
    }

    /// An UNSIGNED5 number sign-folded (zigzag), as HotSpot writes a signed one.
    fn signed(&mut self) -> Option<i64> {
        let sum = self.unsigned()?;
        Some(i64::from((sum >> 1) as i32 ^ -((sum & 1) as i32)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Bytes at an address, for the stream and the checks.
    struct Bytes(u64, Vec<u8>);

    impl Memory for Bytes {
        fn read(&self, addr: u64, buf: &mut [u8]) -> usize {
            let Some(off) = addr.checked_sub(self.0).map(|o| o as usize).filter(|o| *o < self.1.len()) else {
                return 0;
            };
            let n = buf.len().min(self.1.len() - off);
            buf[..n].copy_from_slice(&self.1[off..off + n]);
            n
        }
    }

    #[test]
    fn unsigned5_numbers_read_as_hotspot_writes_them() {
        // 0 → 0, 1 → -1, 2 → 1; 200 (≥ 192) continues: 200 + 3 * 64 = 392 → 196.
        let mem = Bytes(0x1000, vec![0, 1, 2, 200, 3]);
        let mut s = Stream { mem: &mem, at: 0x1000 };
        assert_eq!(s.signed(), Some(0));
        assert_eq!(s.signed(), Some(-1));
        assert_eq!(s.signed(), Some(1));
        assert_eq!(s.signed(), Some(196));
        assert_eq!(s.signed(), None, "past the end");
    }

    #[test]
    fn names_that_are_not_java_are_refused() {
        assert!(is_java_name("java/lang/String") && is_java_name("<init>") && is_java_name("lambda$main$0"));
        assert!(!is_java_name("") && !is_java_name("(I)V") && !is_java_name("a\u{1}b") && !is_java_name("[I"));
        assert_eq!(aligned(0), None);
        assert_eq!(aligned(0x1004), None);
        assert_eq!(aligned(0x1008), Some(0x1008));
    }

    /// A VM of made-up offsets with one code heap of 64 segments of 16 bytes at 0x10000
    /// whose map is at 0x20000.
    fn vm() -> Vm {
        let blob = BlobLayout {
            header_size: 16,
            header_used: 8,
            name: 0,
            frame_size: 8,
            frame_complete: 12,
            code_begin: 16,
            code_end: 24,
            method: 32,
            scopes_pcs: 40,
            dependencies: 44,
            metadata: 48,
            scopes_data: 56,
            pc_desc_size: 16,
            pc_desc_pc: 0,
            pc_desc_scope: 4,
            entry_bci: -1,
        };
        Vm {
            method_const_method: 8,
            const_method_constants: 8,
            const_method_flags: 28,
            const_method_code_size: 32,
            const_method_name_index: 34,
            const_method_signature_index: 36,
            const_method_size: 48,
            has_line_table: 1,
            pool_holder: 24,
            pool_length: 60,
            pool_source_file: 54,
            pool_size: 72,
            klass_name: 24,
            symbol_length: 4,
            symbol_body: 6,
            frame_method: -3,
            frame_bcp: -8,
            interpreter: (0, 0),
            call_stub_return: None,
            frame_sender_sp: -1,
            heaps: vec![CodeHeap { low: 0x10000, high: 0x10400, segmap: 0x20000, log2_segment: 4 }],
            blob,
        }
    }

    /// Memory at two places: the heap and its segment map.
    struct Two(Bytes, Bytes);

    impl Memory for Two {
        fn read(&self, addr: u64, buf: &mut [u8]) -> usize {
            self.0.read(addr, buf).max(self.1.read(addr, buf))
        }
    }

    #[test]
    fn a_blob_is_found_by_its_segment_map_and_a_corrupt_map_finds_none() {
        // A used block at segment 2 spanning 4 segments: the map reads 0, 1, 2, 3 there.
        let mut heap = vec![0u8; 0x400];
        heap[0x20 + 8] = 1; // used
        let blob = 0x10000 + 0x20 + 16;
        let put = |heap: &mut Vec<u8>, at: u64, v: &[u8]| {
            let o = (at - 0x10000) as usize;
            heap[o..o + v.len()].copy_from_slice(v);
        };
        put(&mut heap, blob + 8, &12u32.to_le_bytes()); // frame size, words
        put(&mut heap, blob + 12, &4u32.to_le_bytes()); // frame complete
        put(&mut heap, blob + 16, &(blob + 16).to_le_bytes()); // code begin
        put(&mut heap, blob + 24, &(0x10000u64 + 0x60).to_le_bytes()); // code end
        put(&mut heap, blob, &0x10380u64.to_le_bytes()); // name
        put(&mut heap, 0x10380, b"RuntimeStub\0");
        let mut map = vec![0xFFu8; 64];
        map[2..6].copy_from_slice(&[0, 1, 2, 3]);
        let mem = Two(Bytes(0x10000, heap.clone()), Bytes(0x20000, map));
        let b = vm().blob(&mem, 0x10000 + 0x50).expect("the blob");
        assert_eq!((b.name.as_str(), b.frame_size, b.method), ("RuntimeStub", 12, None));
        assert!(vm().blob(&mem, 0x10000 + 0x100).is_none(), "a free segment");
        // Every byte 1: hops back to the heap's start and below, never a block.
        let mem = Two(Bytes(0x10000, heap), Bytes(0x20000, vec![1u8; 64]));
        assert!(vm().blob(&mem, 0x10000 + 0x3f0).is_none());
    }

    #[test]
    fn class_names_read_as_java_prints_them() {
        assert_eq!(external_name("java/lang/String"), "java.lang.String");
        assert_eq!(external_name("Sleepy$$Lambda$220+0x00007f6eac14c208"), "Sleepy$$Lambda$220/0x00007f6eac14c208");
        assert_eq!(external_name("a/b+c"), "a.b+c");
    }
}
