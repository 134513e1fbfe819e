//! HotSpot's description of itself: the offsets, sizes and constants this reader
//! needs, read from the tables `libjvm.so` exports for debuggers, and where the
//! interpreter's and the code cache's code is.

use super::metadata::{aligned, read_u32};
use crate::capture::Memory;
use crate::symbols::ModuleSet;
use std::collections::HashMap;

/// Most entries read from one of the JVM's description tables (JDK 17 has ~2,500).
const MAX_ENTRIES: usize = 100_000;

/// The offsets this reader needs, from the JVM's tables.
#[derive(Debug, Clone)]
pub(crate) struct Vm {
    pub(super) method_const_method: u64,
    pub(super) const_method_constants: u64,
    pub(super) const_method_flags: u64,
    pub(super) const_method_code_size: u64,
    pub(super) const_method_name_index: u64,
    pub(super) const_method_signature_index: u64,
    pub(super) const_method_size: u64,
    pub(super) has_line_table: u16,
    pub(super) pool_holder: u64,
    pub(super) pool_length: u64,
    pub(super) pool_source_file: u64,
    pub(super) pool_size: u64,
    pub(super) klass_name: u64,
    pub(super) symbol_length: u64,
    pub(super) symbol_body: u64,
    /// Slots below the frame pointer, in words: the method and the bytecode pointer.
    pub(super) frame_method: i64,
    pub(super) frame_bcp: i64,
    /// The interpreter's code, [start, end): a frame whose pc is there is interpreted.
    pub(super) interpreter: (u64, u64),
    /// Where Java code returns to the VM's call stub (`StubRoutines::call_stub`).
    pub(super) call_stub_return: Option<u64>,
    /// The slot of an interpreted frame that holds its caller's sp, in words.
    pub(super) frame_sender_sp: i64,
    /// The code cache's heaps, and where in a code blob its fields are.
    pub(super) heaps: Vec<CodeHeap>,
    pub(super) blob: BlobLayout,
}

/// One heap of the code cache: its memory, cut in segments of 2^`log2_segment` bytes,
/// and its segment map (per segment, how many segments back its block starts; 0 at a
/// block's first, 0xFF where free).
#[derive(Debug, Clone)]
pub(super) struct CodeHeap {
    pub(super) low: u64,
    pub(super) high: u64,
    pub(super) segmap: u64,
    pub(super) log2_segment: u32,
}

/// Offsets in a code blob (`CodeBlob`, and `CompiledMethod` for an nmethod's method).
#[derive(Debug, Clone)]
pub(super) struct BlobLayout {
    /// The block header before the blob (`HeapBlock`): its size, and its used flag.
    pub(super) header_size: u64,
    pub(super) header_used: u64,
    pub(super) name: u64,
    pub(super) frame_size: u64,
    pub(super) frame_complete: u64,
    pub(super) code_begin: u64,
    pub(super) code_end: u64,
    pub(super) method: u64,
    /// An nmethod's tables: where its `PcDesc`s start and end (from its header), its
    /// metadata (the methods its scopes name), and its scopes' data (an address).
    pub(super) scopes_pcs: u64,
    pub(super) dependencies: u64,
    pub(super) metadata: u64,
    pub(super) scopes_data: u64,
    pub(super) pc_desc_size: u64,
    pub(super) pc_desc_pc: u64,
    pub(super) pc_desc_scope: u64,
    /// What a scope's stored bytecode index is offset by (`InvocationEntryBci`).
    pub(super) entry_bci: i64,
}

/// A code blob found by pc: an nmethod's method, or the blob's own name.
pub(super) struct Blob {
    pub(super) name: String,
    /// Words, with the return address and the saved rbp.
    pub(super) frame_size: u64,
    /// From `code_begin`: where its prologue is done.
    pub(super) frame_complete: u64,
    pub(super) code_begin: u64,
    pub(super) method: Option<u64>,
    /// The blob's own address (an nmethod's header, from which its tables are found).
    pub(super) at: u64,
}

/// One of the JVM's tables: where it starts, its stride, and where in an entry the
/// fields are (each from the `gHotSpot…Offset` symbol of that name).
struct Table {
    start: u64,
    stride: u64,
}

impl Vm {
    pub(super) fn read(modules: &ModuleSet, mem: &dyn Memory, structs_var: u64) -> Result<Vm, String> {
        let sym = |name: &str| -> Result<u64, String> {
            let at = sym_addr(modules, name)?;
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
pub(super) fn cstring(mem: &dyn Memory, at: u64) -> Option<String> {
    let mut buf = [0u8; 128];
    let n = mem.read(at, &mut buf);
    let end = buf[..n].iter().position(|b| *b == 0)?;
    String::from_utf8(buf[..end].to_vec()).ok()
}
