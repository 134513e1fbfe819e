//! What HotSpot's metadata says of a frame: an interpreted frame's method and line, a
//! code blob found by pc in the code cache, and the methods compiled code inlined at a
//! pc (its `PcDesc` and scopes), each read from the target and checked.

use super::JavaFrame;
use super::tables::{Blob, Vm, cstring};
use crate::capture::Memory;

/// The longest Java name or descriptor read (the class file format's limit).
const MAX_SYMBOL: usize = 65_535;
/// Longest line number table decoded, in pairs.
const MAX_LINE_PAIRS: usize = 65_536;
/// Most `PcDesc`s of one nmethod searched, and most hops back in a segment map: a
/// corrupt table costs this many reads, not millions.
const MAX_PC_DESCS: u64 = 65_536;
const MAX_HOPS: usize = 65_536;

impl Vm {
    /// The Java method of the interpreted frame whose frame pointer is `fp`, if the
    /// frame is one (see the module's comment for what is checked).
    pub(super) fn frame(&self, mem: &dyn Memory, fp: u64) -> Option<JavaFrame> {
        let slot = |words: i64| fp.checked_add_signed(words.checked_mul(8)?);
        let method = aligned(mem.read_u64(slot(self.frame_method)?)?)?;
        let bcp = slot(self.frame_bcp).and_then(|s| mem.read_u64(s));
        self.method(mem, method, bcp)
    }

    /// The name, file, and (for a bytecode pointer) line of the `Method` at `method`,
    /// after the checks the module's comment describes.
    pub(super) fn method(&self, mem: &dyn Memory, method: u64, bcp: Option<u64>) -> Option<JavaFrame> {
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
    pub(super) fn compiled(&self, mem: &dyn Memory, b: &Blob, pc: u64, exact: bool) -> Option<Vec<JavaFrame>> {
        let l = &self.blob;
        let header_int = |off: u64| read_u32(mem, b.at + off).map(u64::from);
        let (pcs, end) = (b.at + header_int(l.scopes_pcs)?, b.at + header_int(l.dependencies)?);
        let metadata = b.at + header_int(l.metadata)?;
        let data = mem.read_u64(b.at + l.scopes_data)?;
        let off = pc.checked_sub(b.code_begin)?;
        // A `PcDesc` is a few ints: a size the target's tables make absurd would size
        // the table read below.
        if !(8..=64).contains(&l.pc_desc_size) || end <= pcs || (end - pcs) / l.pc_desc_size > MAX_PC_DESCS {
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
    pub(super) fn blob(&self, mem: &dyn Memory, pc: u64) -> Option<Blob> {
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
    pub(super) fn interpreted(&self, pc: u64, exact: bool) -> bool {
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

pub(super) fn read_u32(mem: &dyn Memory, at: u64) -> Option<u32> {
    let mut b = [0u8; 4];
    mem.read_exact(at, &mut b).then(|| u32::from_le_bytes(b))
}

pub(super) fn read_u16(mem: &dyn Memory, at: u64) -> Option<u16> {
    let mut b = [0u8; 2];
    mem.read_exact(at, &mut b).then(|| u16::from_le_bytes(b))
}

/// A metadata pointer: non-null and word-aligned.
pub(super) fn aligned(p: u64) -> Option<u64> {
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
    use crate::trace::hotspot::tables::{BlobLayout, CodeHeap};

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
