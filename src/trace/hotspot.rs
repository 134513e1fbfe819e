//! HotSpot (OpenJDK's JVM): the Java method each interpreted frame runs, with its
//! source file and line, as the JVM's own crash report (`hs_err_pid*.log`) and `jstack`
//! name them. gdb shows such a frame as `?? ()`; a perf map, when the JVM writes one,
//! says only `Interpreter`.
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
}

/// A Java frame's method, as the JVM's crash report names it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct JavaFrame {
    /// `Crash.poke(Lsun/misc/Unsafe;I)V`: class, method and descriptor.
    pub function: String,
    pub file: Option<String>,
    pub line: Option<u32>,
}

/// Java frames by thread (in the order of `raw`) and by (pc, sp) of the frame.
pub(crate) type Names = Vec<HashMap<(u64, u64), JavaFrame>>;

/// The method of every interpreted frame among `raw` (each thread's registers and
/// walked frames), when the process runs HotSpot. None: no `libjvm.so`. A JVM whose
/// tables cannot be read costs one problem, and its frames keep the names they had.
pub(crate) fn name_frames(
    modules: &ModuleSet,
    memory: &dyn Memory,
    raw: &[(&Registers, &[Frame])],
) -> Option<(Names, Vec<Problem>)> {
    let tables = modules.module_symbol("libjvm.so", "gHotSpotVMStructs")?;
    let mem = super::memory::Layered(memory, &super::memory::ModuleFiles(modules));
    let vm = match Vm::read(modules, &mem, tables) {
        Ok(vm) => vm,
        Err(e) => {
            let p = Problem::new(Scope::Snapshot, format!("HotSpot's description of itself: {e}; Java frames unnamed"));
            return Some((Vec::new(), vec![p]));
        }
    };
    let names = raw
        .iter()
        .map(|(regs, frames)| {
            let mut out = HashMap::new();
            for (k, f) in frames.iter().enumerate() {
                if !modules.is_jit(f.pc) {
                    continue;
                }
                if Some(f.pc) == vm.call_stub_return {
                    let stub = JavaFrame { function: "StubRoutines::call_stub".into(), file: None, line: None };
                    out.insert((f.pc, f.sp), stub);
                    continue;
                }
                // An exact pc (the frame that stopped) is in its code; a return address
                // may be just past it.
                let probe = if k == 0 || f.signal_frame { f.pc } else { f.pc.wrapping_sub(1) };
                if !(vm.interpreter.0..vm.interpreter.1).contains(&probe) {
                    continue;
                }
                let fp = if k == 0 { Some(regs.rbp) } else { f.registers.iter().find(|r| r.0 == 6).map(|r| r.1) };
                if let Some(j) = fp.and_then(|fp| vm.frame(&mem, fp)) {
                    out.insert((f.pc, f.sp), j);
                }
            }
            out
        })
        .collect();
    Some((names, Vec::new()))
}

/// Applies `names` to the symbolized frames of each thread (a Java frame's pc and sp
/// are those of the walked frame: JIT code has no inlined frames).
pub(crate) fn apply(threads: &mut [crate::snapshot::Thread], names: &Names) {
    for (t, names) in threads.iter_mut().zip(names) {
        for f in t.frames.iter_mut() {
            if let Some(j) = names.get(&(f.pc, f.sp)) {
                f.function = Some(j.function.clone());
                f.function_offset = None;
                f.file = j.file.clone();
                f.line = j.line;
            }
        }
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
        ];
        // Static fields: (type, field) → the variable's address.
        const STATICS: &[(&str, &str)] =
            &[("AbstractInterpreter", "_code"), ("StubRoutines", "_call_stub_return_address")];
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
            if matches!(type_name, "ConstMethod" | "ConstantPool") {
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
            if matches!(name, "frame::interpreter_frame_last_sp_offset" | "ConstMethod::_has_linenumber_table") {
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

        Ok(Vm {
            interpreter,
            call_stub_return,
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
        let line = self.line(mem, cm, slot(self.frame_bcp).and_then(|s| mem.read_u64(s)));
        Some(JavaFrame { function: format!("{}.{name}{descriptor}", external_name(&class)), file, line })
    }

    /// The source line of the bytecode at `bcp` in the method whose `ConstMethod` is at
    /// `cm`, from its compressed line number table (after the bytecodes): pairs of
    /// deltas (bytecode index, line), one byte when they fit 5 and 3 bits, else 0xFF
    /// and two signed UNSIGNED5 numbers; a 0 byte ends it. The line of the last entry
    /// at or before the bytecode, as the JVM picks it.
    fn line(&self, mem: &dyn Memory, cm: u64, bcp: Option<u64>) -> Option<u32> {
        let flags = read_u16(mem, cm + self.const_method_flags)?;
        if flags & self.has_line_table == 0 {
            return None;
        }
        let code = cm + self.const_method_size;
        let code_size = u64::from(read_u16(mem, cm + self.const_method_code_size)?);
        let bci = bcp?.checked_sub(code).filter(|b| *b < code_size)?;
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

/// A cursor in the line number table.
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

    /// An UNSIGNED5 number (1 to 5 bytes: a byte below 192 ends it, each further byte
    /// weighs 64 times the one before), sign-folded (zigzag) as HotSpot writes it.
    fn signed(&mut self) -> Option<i64> {
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
            let Some(off) = addr.checked_sub(self.0).map(|o| o as usize) else { return 0 };
            let n = buf.len().min(self.1.len().saturating_sub(off));
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

    #[test]
    fn class_names_read_as_java_prints_them() {
        assert_eq!(external_name("java/lang/String"), "java.lang.String");
        assert_eq!(external_name("Sleepy$$Lambda$220+0x00007f6eac14c208"), "Sleepy$$Lambda$220/0x00007f6eac14c208");
        assert_eq!(external_name("a/b+c"), "a.b+c");
    }
}
