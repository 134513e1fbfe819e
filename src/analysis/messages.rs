//! Messages the runtime left in memory before dying: glibc's `__abort_msg` (assert,
//! malloc checks, stack smashing, fortify; also in static executables), the
//! assertion from `__assert_fail`'s or `__assert_fail_base`'s arguments when that is
//! missing, the type and `what()` of an uncaught C++ exception, and a Rust panic's
//! location and message.

use super::facts::base_name;
use super::{Reader, calls};
use crate::snapshot::Thread;

/// Longest message read from the target.
const MAX_MESSAGE: usize = 4096;
/// Most stack bytes scanned for a runtime structure.
const MAX_SCAN: u64 = 64 * 1024;

/// glibc's last words: the text `__libc_message` and `__assert_fail` store in
/// `__abort_msg` before calling abort().
///
/// Folklore: `__abort_msg` (GLIBC_PRIVATE, in libc's .bss) points to a page glibc
/// mmaps for the message: `struct abort_msg_s { unsigned int size; char msg[]; }`,
/// where `size` is the mapping's size, not the text's. It lives in anonymous
/// memory, so a core holds it; the live capture copies it on purpose
/// (`capture::live::copy_abort_msg`), since it is neither stack nor near the fault.
///
/// A static executable carries its own copy of glibc: `__abort_msg` is then in the
/// executable's symbol table and .bss, and is looked up there when no libc has it.
pub fn abort_msg(reader: &Reader) -> Option<String> {
    let var = reader
        .modules()
        .module_symbol("libc.so", "__abort_msg")
        .or_else(|| reader.modules().module_symbol("libc-", "__abort_msg"))
        .or_else(|| reader.modules().module_symbol("", "__abort_msg"))?;
    if !reader.in_memory(var) {
        return None;
    }
    let ptr = reader.u64(var).filter(|p| *p != 0)?;
    let size = reader.u32(ptr)? as usize;
    let max = if size > 4 { (size - 4).min(MAX_MESSAGE) } else { MAX_MESSAGE };
    let (text, _) = reader.cstring(ptr + 4, max)?;
    let text = text.trim_end().to_string();
    (!text.is_empty()).then_some(text)
}

/// The demangled type name of the exception being thrown, found by looking for a
/// `std::type_info` among the values the throw machinery kept: the registers
/// recovered for the frames up to `__cxa_throw`, then the words of their stack.
///
/// Folklore: `__cxa_throw(obj, tinfo, dest)` gets the type in rsi, which no one
/// preserves; but libstdc++ keeps `tinfo` in a callee-saved register or stack slot
/// while it unwinds and then calls std::terminate, whose verbose handler fetches
/// it again (`__cxa_current_exception_type`). A `type_info` is `{vtable, name}`
/// with `name` a mangled type (`St13runtime_error`), checked by demangling it.
pub fn exception_type(t: &Thread, reader: &Reader) -> Option<String> {
    throw_candidates(t, reader).into_iter().find_map(|v| type_info_name(reader, v))
}

/// Values the throw machinery kept: the registers recovered for the frames up to
/// `__cxa_throw`, then the words of their stack.
fn throw_candidates(t: &Thread, reader: &Reader) -> Vec<u64> {
    let thrower = t
        .frames
        .iter()
        .position(|f| matches!(base_name(f).as_str(), "__cxa_throw" | "__cxa_rethrow" | "std::rethrow_exception"));
    let end = thrower.unwrap_or(t.frames.len().saturating_sub(1));
    let mut candidates: Vec<u64> = Vec::new();
    if let Some(th) = thrower {
        candidates.extend(t.frames[th].registers.iter().map(|(_, v)| *v));
    }
    for f in t.frames.iter().take(end + 1) {
        candidates.extend(f.registers.iter().map(|(_, v)| *v));
    }
    let top = t.frames.get(end).map(|f| f.sp).unwrap_or(t.registers.rsp);
    let lo = t.registers.rsp;
    let hi = top.max(lo).min(lo.saturating_add(MAX_SCAN)).saturating_add(256);
    let stack = reader.bytes(lo, (hi - lo) as usize);
    candidates.extend(stack.chunks_exact(8).map(|c| u64::from_le_bytes(c.try_into().unwrap_or([0; 8]))));
    candidates
}

/// libstdc++'s `_Unwind_Exception::exception_class` of a C++ exception, "GNUCC++\0".
const GNU_CXX_EXCEPTION: u64 = 0x474e_5543_432b_2b00;
/// From a thrown object back to its `__cxa_exception` header's fields (x86-64).
const UNWIND_HEADER_BEFORE_OBJECT: u64 = 32;
const EXCEPTION_TYPE_BEFORE_OBJECT: u64 = 112;

/// The message of an uncaught exception derived from `std::logic_error` or
/// `std::runtime_error` (what `what()` returns unless a subclass overrides it).
///
/// Folklore (libstdc++, checked with gdb on GCC 12): the thrown object follows its
/// `__cxa_exception` header, whose last member is the `_Unwind_Exception` (32 bytes,
/// `exception_class` = "GNUCC++\0" first) and whose first is the `type_info*`, 112
/// bytes before the object. The throw machinery keeps a pointer to the object or to
/// its unwind header. A `logic_error`/`runtime_error` is `{vptr, __cow_string}`: the
/// string is a pointer to the characters, preceded by the COW string's
/// `{length, capacity, refcount}`. Everything read is checked (magic, type,
/// length ≤ capacity, NUL at the end, printable); any doubt and nothing is said.
pub fn exception_what(t: &Thread, reader: &Reader) -> Option<String> {
    let objects = throw_candidates(t, reader).into_iter().filter_map(|v| {
        if v < 0x10000 || !v.is_multiple_of(8) {
            return None;
        }
        if reader.u64(v.wrapping_sub(UNWIND_HEADER_BEFORE_OBJECT)) == Some(GNU_CXX_EXCEPTION) {
            Some(v)
        } else if reader.u64(v) == Some(GNU_CXX_EXCEPTION) {
            Some(v + UNWIND_HEADER_BEFORE_OBJECT)
        } else {
            None
        }
    });
    for obj in objects {
        let Some(ti) = reader.u64(obj.wrapping_sub(EXCEPTION_TYPE_BEFORE_OBJECT)) else { continue };
        if !derives_from_std_error(reader, ti) {
            return None;
        }
        let chars = reader.u64(obj + 8)?;
        let len = reader.u64(chars.checked_sub(24)?)?;
        let cap = reader.u64(chars - 16)?;
        if len > cap || len > MAX_MESSAGE as u64 || reader.bytes(chars + len, 1) != [0] {
            return None;
        }
        return text_at(reader, chars, len);
    }
    None
}

/// True when the `type_info` at `ti` is `std::logic_error`, `std::runtime_error` or
/// a class singly derived from one (`__si_class_type_info` chains: the base's
/// `type_info*` follows the name).
fn derives_from_std_error(reader: &Reader, ti: u64) -> bool {
    const SI_VTABLE: &str = "_ZTVN10__cxxabiv120__si_class_type_infoE";
    let si = reader
        .modules()
        .module_symbol("libstdc++", SI_VTABLE)
        .or_else(|| reader.modules().module_symbol("", SI_VTABLE))
        .map(|v| v + 16);
    let mut ti = ti;
    for _ in 0..16 {
        match type_info_name(reader, ti).as_deref() {
            Some("std::logic_error" | "std::runtime_error") => return true,
            Some(_) => {}
            None => return false,
        }
        if si.is_none() || reader.u64(ti) != si {
            return false;
        }
        let Some(base) = reader.u64(ti + 16) else { return false };
        ti = base;
    }
    false
}

/// The demangled name of the `std::type_info` at `addr`, if that is one.
pub fn type_info_name(reader: &Reader, addr: u64) -> Option<String> {
    if addr < 0x10000 || !addr.is_multiple_of(8) {
        return None;
    }
    let vtable = reader.u64(addr)?;
    reader.modules().find(vtable)?;
    let name_ptr = reader.u64(addr + 8)?;
    let (name, truncated) = reader.cstring(name_ptr, 512)?;
    if truncated || name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'$') {
        return None;
    }
    // A mangled type starts with a length (`3foo`), a nested name, `St`/`S…`, or a builtin.
    // Builtins are one letter (`i` int, `c` char, ...); pointers start with `P`.
    let builtin = name.len() == 1 && "abcdefghijlmnstwxyz".contains(name.as_str());
    if !builtin
        && !name.as_bytes()[0].is_ascii_digit()
        && !name.starts_with('N')
        && !name.starts_with('S')
        && !name.starts_with('P')
    {
        return None;
    }
    let demangled = crate::symbols::demangle(&format!("_ZTS{name}"));
    let ty = demangled.strip_prefix("typeinfo name for ")?;
    Some(ty.to_string())
}

/// What could be read of a Rust panic.
#[derive(Debug, Default, Clone)]
pub struct RustPanic {
    /// `src/main.rs:12:5`
    pub location: Option<String>,
    pub message: Option<String>,
}

/// A Rust panic's location and message, from the stack of the panic machinery.
///
/// Folklore: `panic_fmt` receives `&fmt::Arguments` and `&Location` in registers no
/// one preserves, and the layouts of both are not stable across Rust releases. What
/// is stable enough: `Location` is `{file: &str, line: u32, col: u32}` (a pointer to
/// a path ending in `.rs`, its length, then two small integers), and std's panic
/// machinery formats the message into a `String` (or keeps a `&'static str`) that
/// stays referenced from its frames until abort: the hook's `PanicHookInfo` holds
/// both the location and the payload. We look for the location among the stack
/// words between the innermost frame and the frame that called panic, then for the
/// payload next to it; no guessing beyond that structure.
pub fn rust_panic(t: &Thread, panic_frame: usize, reader: &Reader) -> RustPanic {
    let lo = t.registers.rsp;
    let user = t
        .frames
        .iter()
        .enumerate()
        .skip(panic_frame)
        .find(|(_, f)| {
            let n = base_name(f);
            !(n.starts_with("core::") || n.starts_with("std::") || n.starts_with("rust_") || n.starts_with("__rust"))
        })
        .map(|(i, _)| i);
    let top = user.and_then(|i| t.frames.get(i)).map(|f| f.sp).unwrap_or(lo.saturating_add(MAX_SCAN));
    let hi = top.max(lo).min(lo.saturating_add(MAX_SCAN));
    let stack = reader.bytes(lo, (hi - lo) as usize);
    let words: Vec<u64> = stack.chunks_exact(8).map(|c| u64::from_le_bytes(c.try_into().unwrap_or([0; 8]))).collect();

    let mut out = RustPanic::default();
    // Location: a pointer p such that *p = (file_ptr, file_len), *(p+16) = (line, col).
    let Some((k, loc)) = words.iter().enumerate().find_map(|(k, &p)| location_at(reader, p).map(|l| (k, l))) else {
        return out;
    };
    out.location = Some(loc);
    // The hook's `PanicHookInfo { payload: &dyn Any, location: &Location, .. }` keeps
    // the payload's data pointer next to the location pointer. The payload is the
    // formatted `String` (FormatStringPayload::fill) or a `&'static str`.
    let lo_k = k.saturating_sub(4);
    let hi_k = (k + 5).min(words.len());
    let mut near: Vec<usize> = (lo_k..hi_k).filter(|&j| j != k).collect();
    near.sort_by_key(|&j| j.abs_diff(k));
    out.message = near.into_iter().find_map(|j| payload_text(reader, words[j]));
    out
}

/// The text of a panic payload at `data`: a `String` (cap, ptr, len in today's
/// layout; ptr, cap, len tried too) or a `&str` (ptr, len).
fn payload_text(reader: &Reader, data: u64) -> Option<String> {
    if data < 0x10000 || !data.is_multiple_of(8) {
        return None;
    }
    let w: Vec<u64> = (0..3).filter_map(|i| reader.u64(data + 8 * i)).collect();
    if w.len() < 2 {
        return None;
    }
    // A capacity is a small number; a pointer is not. Today's String: (cap, ptr, len).
    let small = |v: u64| v < (1 << 32);
    if w.len() == 3
        && small(w[0])
        && w[0] >= w[2]
        && let Some(t) = text_at(reader, w[1], w[2])
    {
        return Some(t);
    }
    if let Some(t) = text_at(reader, w[0], w[1]) {
        return Some(t);
    }
    if w.len() == 3 && small(w[1]) && w[1] >= w[2] {
        return text_at(reader, w[0], w[2]);
    }
    None
}

fn location_at(reader: &Reader, p: u64) -> Option<String> {
    if p < 0x10000 || !p.is_multiple_of(8) {
        return None;
    }
    let fptr = reader.u64(p)?;
    let flen = reader.u64(p + 8)?;
    let lc = reader.u64(p + 16)?;
    let (line, col) = (lc as u32, (lc >> 32) as u32);
    if line == 0 || line > 10_000_000 || col > 100_000 {
        return None;
    }
    let file = text_at(reader, fptr, flen)?;
    file.ends_with(".rs").then(|| format!("{file}:{line}:{col}"))
}

/// `len` bytes at `ptr` when they are short printable UTF-8.
fn text_at(reader: &Reader, ptr: u64, len: u64) -> Option<String> {
    if ptr < 0x10000 || len == 0 || len > MAX_MESSAGE as u64 {
        return None;
    }
    let bytes = reader.bytes(ptr, len as usize);
    if bytes.len() != len as usize {
        return None;
    }
    let s = std::str::from_utf8(&bytes).ok()?;
    if s.chars().any(|c| c.is_control() && c != '\n' && c != '\t') {
        return None;
    }
    if s.trim().len() < 2 {
        return None;
    }
    Some(s.to_string())
}

/// The arguments `__assert_fail(assertion, file, line, function)` was called with,
/// as far as the registers recovered for its frame prove them.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct AssertArgs {
    /// The assertion; for `assert_perror`, the text of the error.
    pub assertion: String,
    pub file: Option<String>,
    pub line: Option<u32>,
    pub function: Option<String>,
    /// `assert_perror(errnum)` failed: glibc words it "Unexpected error: …".
    pub perror: bool,
    /// The function whose arguments these are (`__assert_fail`).
    pub from: &'static str,
}

impl AssertArgs {
    /// glibc's wording, without the program name: `f.c:12: main: Assertion `x' failed.`
    pub fn text(&self) -> String {
        let mut s = String::new();
        if let Some(file) = &self.file {
            s.push_str(file);
            if let Some(line) = self.line {
                s.push_str(&format!(":{line}"));
            }
            s.push_str(": ");
        }
        if let Some(func) = &self.function {
            s.push_str(&format!("{func}: "));
        }
        if self.perror {
            s.push_str(&format!("Unexpected error: {}.", self.assertion));
        } else {
            s.push_str(&format!("Assertion `{}' failed.", self.assertion));
        }
        s
    }
}

/// The arguments of `__assert_fail` on `t`'s stack, recovered without `__abort_msg`.
///
/// Folklore: the arguments arrive in rdi, rsi, edx, rcx, which no one preserves, so
/// the unwinder cannot give them back for a caller frame. But glibc's `__assert_fail`
/// first copies them into callee-saved registers (2.36: rbx, rbp, r12d, r13), calls
/// `dcgettext` for the format, then passes them on to `__assert_fail_base`, whose
/// CFI restores those callee-saved registers. Which register holds which argument
/// depends on the glibc build, so we do not assume it: we decode `__assert_fail`
/// from its entry to the frame's pc (straight-line code only; any branch and we give
/// up) and follow the register-to-register copies. Only a register proven to hold an
/// argument at the pc is read, and only when the unwinder recovered it.
pub fn assert_args(t: &Thread, reader: &Reader) -> Option<AssertArgs> {
    let i = t.frames.iter().position(|f| !f.inlined && base_name(f) == "__assert_fail")?;
    let frame = &t.frames[i];
    // Names from DWARF come without a symbol offset: ask libc's symbol table then.
    let entry = match frame.function_offset {
        Some(off) => frame.pc.checked_sub(off)?,
        None => reader
            .modules()
            .module_symbol("libc.so", "__assert_fail")
            .or_else(|| reader.modules().module_symbol("libc-", "__assert_fail"))?,
    };
    if entry > frame.pc || frame.pc - entry > MAX_PROLOGUE {
        return None;
    }
    let value = |dwarf: u16| -> Option<u64> {
        if i == 0 {
            t.registers.by_dwarf(dwarf)
        } else {
            frame.registers.iter().find(|(r, _)| *r == dwarf).map(|(_, v)| *v)
        }
    };
    let code = reader.bytes(entry, (frame.pc - entry) as usize);
    if (code.len() as u64) < frame.pc - entry {
        return None;
    }
    let holders = argument_holders(&code, entry, frame.pc)?;
    let arg = |k: usize| holders[k].iter().find_map(|&r| value(r));
    let assertion = assert_string(reader, arg(0)?)?;
    Some(AssertArgs {
        assertion,
        file: arg(1).and_then(|p| assert_string(reader, p)),
        line: arg(2).map(|v| v as u32),
        // glibc accepts a NULL function (C89 has no __func__).
        function: arg(3).and_then(|p| assert_string(reader, p)),
        perror: false,
        from: "__assert_fail",
    })
}

/// A short printable NUL-terminated string (an assertion, a file or function name).
fn assert_string(reader: &Reader, p: u64) -> Option<String> {
    reader
        .cstring(p, MAX_ASSERT_STRING)
        .filter(|(s, truncated)| !truncated && !s.is_empty() && !s.chars().any(|c| c.is_control()))
        .map(|(s, _)| s)
}

/// The arguments of the call into glibc's `__assert_fail_base(format, assertion, file,
/// line, function)` on `t`'s stack, recovered through the caller (`__assert_fail` or
/// `__assert_perror_fail`, whose "assertion" is the error's text): its call-site
/// records when libc has debug info, else by replaying its set-up code (the
/// arguments are copied from callee-saved registers just before the call).
pub fn assert_base_args(t: &Thread, reader: &Reader) -> Option<AssertArgs> {
    let i = t.frames.iter().position(|f| !f.inlined && is_assert_fn(&base_name(f), "__assert_fail_base"))?;
    let call = calls::call_into(t, i, reader);
    let caller = t.frames.iter().skip(i + 1).find(|f| !f.inlined).map(base_name).unwrap_or_default();
    let perror = is_assert_fn(&caller, "__assert_perror_fail");
    let assertion = assert_string(reader, call.arg(1)?)?;
    Some(AssertArgs {
        assertion,
        file: call.arg(2).and_then(|p| assert_string(reader, p)),
        line: call.arg(3).map(|v| v as u32),
        function: call.arg(4).and_then(|p| assert_string(reader, p)),
        perror,
        from: "__assert_fail_base",
    })
}

/// True when `name` is glibc's `want`, or its `.cold` part (split off by GCC).
pub fn is_assert_fn(name: &str, want: &str) -> bool {
    name.strip_suffix(".cold").unwrap_or(name) == want
}

/// Most bytes of `__assert_fail` decoded before its call to the message formatter.
const MAX_PROLOGUE: u64 = 256;
/// Longest assertion, file or function name read.
const MAX_ASSERT_STRING: usize = 1024;

/// For each of the first four integer arguments (rdi, rsi, edx, rcx at entry), the
/// DWARF numbers of the registers that still hold it when the code in `code`
/// (starting at `entry`) reaches `pc`. None when the path to `pc` is not
/// straight-line code.
fn argument_holders(code: &[u8], entry: u64, pc: u64) -> Option<[Vec<u16>; 4]> {
    use iced_x86::{Decoder, DecoderOptions, FlowControl, InstructionInfoFactory, Mnemonic, OpKind};
    // holds[dwarf] = (argument, only its low 32 bits)
    let mut holds: [Option<(usize, bool)>; 16] = [None; 16];
    holds[5] = Some((0, false)); // rdi: assertion
    holds[4] = Some((1, false)); // rsi: file
    holds[1] = Some((2, true)); // edx: line (unsigned int)
    holds[2] = Some((3, false)); // rcx: function
    let dwarf = super::decode::dwarf_register;
    let mut decoder = Decoder::with_ip(64, code, entry, DecoderOptions::NONE);
    let mut info = InstructionInfoFactory::new();
    while decoder.can_decode() {
        let ins = decoder.decode();
        if ins.ip() >= pc {
            break;
        }
        if ins.is_invalid() {
            return None;
        }
        match ins.flow_control() {
            FlowControl::Next => {}
            FlowControl::Call | FlowControl::IndirectCall => {
                // The callee may clobber every caller-saved register.
                for r in [0, 1, 2, 4, 5, 8, 9, 10, 11] {
                    holds[r] = None;
                }
                continue;
            }
            _ => return None,
        }
        if ins.mnemonic() == Mnemonic::Mov && ins.op0_kind() == OpKind::Register && ins.op1_kind() == OpKind::Register {
            let (Some(dst), Some(src)) = (dwarf(ins.op0_register()), dwarf(ins.op1_register())) else {
                return None;
            };
            let wide = ins.op0_register().size() == 8;
            holds[dst] = match holds[src] {
                Some((a, low)) if wide => Some((a, low)),
                // A 32-bit move keeps all of a 32-bit argument (and zero-extends).
                Some((a, true)) if ins.op0_register().size() == 4 => Some((a, true)),
                _ => None,
            };
            continue;
        }
        for u in info.info(&ins).used_registers() {
            if super::decode::writes(u.access())
                && let Some(d) = dwarf(u.register())
            {
                holds[d] = None;
            }
        }
    }
    let mut out: [Vec<u16>; 4] = Default::default();
    for (r, h) in holds.iter().enumerate() {
        if let Some((a, _)) = h {
            out[*a].push(r as u16);
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// glibc 2.36's `__assert_fail` up to its call to `__assert_fail_base` (Debian 12).
    const ASSERT_FAIL_236: &[u8] = &[
        0x41, 0x55, // push r13
        0x49, 0x89, 0xcd, // mov r13, rcx
        0x41, 0x54, // push r12
        0x41, 0x89, 0xd4, // mov r12d, edx
        0xba, 0x05, 0x00, 0x00, 0x00, // mov edx, 5
        0x55, // push rbp
        0x48, 0x89, 0xf5, // mov rbp, rsi
        0x48, 0x8d, 0x35, 0xf6, 0x6b, 0x16, 0x00, // lea rsi, [rip+...]
        0x53, // push rbx
        0x48, 0x89, 0xfb, // mov rbx, rdi
        0x48, 0x8d, 0x3d, 0xcb, 0x1f, 0x16, 0x00, // lea rdi, [rip+...]
        0x48, 0x83, 0xec, 0x08, // sub rsp, 8
        0xe8, 0x02, 0x0a, 0x00, 0x00, // call dcgettext
        0x4c, 0x89, 0xe8, // mov r8, r13
        0x44, 0x89, 0xe1, // mov ecx, r12d
        0x48, 0x89, 0xea, // mov rdx, rbp
        0x48, 0x89, 0xc7, // mov rdi, rax
        0x48, 0x89, 0xde, // mov rsi, rbx
        0xe8, 0x00, 0x00, 0x00, 0x00, // call __assert_fail_base
    ];

    #[test]
    fn follows_argument_copies_of_glibc_236() {
        let entry = 0x34e80;
        let pc = entry + ASSERT_FAIL_236.len() as u64;
        let h = argument_holders(ASSERT_FAIL_236, entry, pc).expect("straight-line code");
        // Arguments survive only in callee-saved registers after the calls.
        assert_eq!(h, [vec![3], vec![6], vec![12], vec![13]]);
        // Before the first call, the copies and the untouched originals both hold them.
        let h = argument_holders(ASSERT_FAIL_236, entry, entry + 0x1e).expect("straight-line code");
        assert_eq!(h, [vec![3, 5], vec![6], vec![12], vec![2, 13]]);
    }

    #[test]
    fn gives_up_on_branches_and_narrow_pointer_copies() {
        // test edi, edi; je +0; mov rbx, rdi
        let code = [0x85, 0xff, 0x74, 0x00, 0x48, 0x89, 0xfb];
        assert_eq!(argument_holders(&code, 0x1000, 0x1007), None);
        // mov ebx, edi (truncates a pointer); mov r12d, edx (a 32-bit line is fine)
        let code = [0x89, 0xfb, 0x41, 0x89, 0xd4];
        let h = argument_holders(&code, 0x1000, 0x1005).expect("straight-line");
        assert_eq!(h[0], vec![5]);
        assert_eq!(h[2], vec![1, 12]);
    }
}
