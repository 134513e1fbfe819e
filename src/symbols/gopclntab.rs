//! Go's own function table (`.gopclntab`), which every Go executable carries for the
//! runtime's tracebacks and garbage collector, stripped or not: each function's
//! entry, name, source file and line at each pc, and its frame size at each pc.
//! A Go program built with `-ldflags=-s -w` (Debian's Go packages, most container
//! images) has neither a symbol table nor DWARF nor CFI; from this table bt still
//! names its frames with files and lines, the calls inlined there included (each
//! function's inline tree, among its function data), and unwinds them exactly
//! (`unwind`: the return address sits at sp + frame size), where gdb shows `??`
//! and guesses.
//!
//! Layouts read (the header's magic): Go 1.16–1.17 (`0xfffffffa`), 1.18–1.19
//! (`0xfffffff0`) and 1.20 onwards (`0xfffffff1`); older ones are ignored. Every
//! offset read from the file is checked against the section: a corrupt table gives
//! fewer answers, never a panic.

use super::elf::SharedBytes;

/// The table of one module, parsed lazily: only the header is read up front.
pub(crate) struct GoTable {
    data: SharedBytes,
    version: Version,
    nfunc: usize,
    /// Entries of 1.18+ are offsets from here (link-time address).
    text_start: u64,
    funcnames: usize,
    cutab: usize,
    filetab: usize,
    pctab: usize,
    /// `pclntable`: the function index, then the `_func` records.
    funcs: usize,
    /// Where function data (`funcdata`, the inline trees among it) is counted from:
    /// the runtime's `moduledata.gofunc`; None when it could not be found (no inlined
    /// frames then).
    gofunc: Option<u64>,
}

/// `_PCDATA_InlTreeIndex` and `_FUNCDATA_InlTree` in the runtime's tables.
const PCDATA_INLINE_INDEX: usize = 2;
const FUNCDATA_INLINE_TREE: usize = 3;
/// Inlined calls followed outward from one pc, at most.
const MAX_INLINE_DEPTH: usize = 64;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Version {
    Go116,
    Go118,
    Go120,
}

/// One function of the table.
#[derive(Debug, Clone, Copy)]
pub(crate) struct GoFunc {
    /// Link-time address of its first instruction.
    pub entry: u64,
    /// Where its `_func` record starts in the section.
    record: usize,
}

/// `_func.flag` bits (Go 1.17+): the outermost function of a stack, and one that
/// writes sp arbitrarily (a stack switch: `mcall`, `systemstack`, `morestack`),
/// through which Go's own traceback does not unwind either.
const FLAG_TOPFRAME: u8 = 1;
const FLAG_SPWRITE: u8 = 2;

/// The functions the runtime's signal handler makes an interrupted function seem to
/// call: `sigpanic` after a fault, `asyncPreempt` to preempt a goroutine in a loop,
/// `debugCallV2` for a debugger's call. Their caller's pc is the interrupted
/// instruction itself, not a return address (Go's traceback treats them alike).
const TRAPS: [&str; 3] = ["runtime.sigpanic", "runtime.asyncPreempt", "runtime.debugCallV2"];

/// Go 1.16 had no `flag` byte: the functions its traceback stopped at, by name.
const TOP_116: [&str; 3] = ["runtime.goexit", "runtime.mstart", "runtime.rt0_go"];
const SPWRITE_116: [&str; 4] = ["runtime.mcall", "runtime.systemstack", "runtime.morestack", "runtime.gogo"];

impl GoTable {
    /// The table in `data` (the section's bytes), or None when it is not one this
    /// reader knows (a pre-1.16 layout, another pointer size) or its header points
    /// outside the section. `text` is the address of `.text`: newer linkers leave
    /// the header's text start 0 and Go's runtime counts entries from its own
    /// `runtime.text`, which is where `.text` begins.
    pub(crate) fn parse(data: SharedBytes, text: Option<u64>) -> Option<GoTable> {
        let b: &[u8] = &data;
        let magic = u32::from_le_bytes(b.get(0..4)?.try_into().ok()?);
        let version = match magic {
            0xffff_fffa => Version::Go116,
            0xffff_fff0 => Version::Go118,
            0xffff_fff1 => Version::Go120,
            _ => return None,
        };
        // pad, pad, instruction size quantum (1 on x86), pointer size.
        if b.get(4..8)? != [0, 0, 1, 8] {
            return None;
        }
        let word =
            |k: usize| -> Option<u64> { Some(u64::from_le_bytes(b.get(8 + 8 * k..16 + 8 * k)?.try_into().ok()?)) };
        let at = |k: usize| -> Option<usize> { usize::try_from(word(k)?).ok().filter(|&o| o < b.len()) };
        let nfunc = usize::try_from(word(0)?).ok()?;
        let (text_start, first) = match version {
            Version::Go116 => (0, 2),
            _ => (Some(word(2)?).filter(|&t| t != 0).or(text)?, 3),
        };
        let table = GoTable {
            version,
            nfunc,
            text_start,
            funcnames: at(first)?,
            cutab: at(first + 1)?,
            filetab: at(first + 2)?,
            pctab: at(first + 3)?,
            funcs: at(first + 4)?,
            data: data.clone(),
            gofunc: None,
        };
        // The function index (nfunc + 1 entries, the last one the end of the text)
        // must fit.
        let index_end = nfunc.checked_add(1)?.checked_mul(table.index_entry())?.checked_add(table.funcs)?;
        (index_end <= b.len() && nfunc > 0).then_some(table)
    }

    fn index_entry(&self) -> usize {
        if self.version == Version::Go116 { 16 } else { 8 }
    }

    fn u32_at(&self, off: usize) -> Option<u32> {
        Some(u32::from_le_bytes(self.data.get(off..off.checked_add(4)?)?.try_into().ok()?))
    }

    fn u64_at(&self, off: usize) -> Option<u64> {
        Some(u64::from_le_bytes(self.data.get(off..off.checked_add(8)?)?.try_into().ok()?))
    }

    /// Entry `i` of the function index: (entry address, record offset in the section).
    fn index(&self, i: usize) -> Option<(u64, usize)> {
        let at = self.funcs + i * self.index_entry();
        let (entry, off) = match self.version {
            Version::Go116 => (self.u64_at(at)?, self.u64_at(at + 8)?),
            _ => (self.text_start.checked_add(u64::from(self.u32_at(at)?))?, u64::from(self.u32_at(at + 4)?)),
        };
        Some((entry, self.funcs.checked_add(usize::try_from(off).ok()?)?))
    }

    /// The function holding link-time address `pc`, if Go's tables cover it.
    pub(crate) fn func(&self, pc: u64) -> Option<GoFunc> {
        let f = self.func_by_index(pc)?;
        // Past the end of the function's own tables the pc is not its code: C code
        // linked in between Go functions (cgo), or padding.
        self.sp_delta(&f, pc).map(|_| f)
    }

    /// The last function of the index starting at or before `pc` (within the text).
    fn func_by_index(&self, pc: u64) -> Option<GoFunc> {
        let (first, _) = self.index(0)?;
        let (end, _) = self.index(self.nfunc)?;
        if pc < first || pc >= end {
            return None;
        }
        // The last entry whose start is <= pc (the index is sorted by address).
        let (mut lo, mut hi) = (0, self.nfunc);
        while hi - lo > 1 {
            let mid = lo + (hi - lo) / 2;
            if self.index(mid)?.0 <= pc {
                lo = mid;
            } else {
                hi = mid;
            }
        }
        let (entry, record) = self.index(lo)?;
        Some(GoFunc { entry, record })
    }

    /// A `u32` field of a function's record, by its index after the entry field.
    fn field(&self, f: &GoFunc, k: usize) -> Option<u32> {
        let entry_size = if self.version == Version::Go116 { 8 } else { 4 };
        self.u32_at(f.record + entry_size + 4 * k)
    }

    /// A NUL-terminated string at `off` (at most 4 KiB; a Go name longer than that is
    /// cut).
    fn string_at(&self, off: usize) -> Option<&str> {
        let rest = self.data.get(off..)?;
        let rest = &rest[..rest.len().min(4096)];
        let n = rest.iter().position(|&c| c == 0).unwrap_or(rest.len());
        std::str::from_utf8(&rest[..n]).ok().filter(|s| !s.is_empty())
    }

    /// The function's name as Go prints it (`main.(*Server).handle`).
    pub(crate) fn name(&self, f: &GoFunc) -> Option<&str> {
        // nameOff (int32), then args, deferreturn, pcsp, pcfile, pcln, npcdata, cuOffset.
        let off = usize::try_from(self.field(f, 0)? as i32).ok()?;
        self.string_at(self.funcnames.checked_add(off)?)
    }

    /// Where a 1.18+ record's fixed part ends: its `funcID`, `flag`, a pad byte and
    /// `nfuncdata`, then the pc-data offsets (`npcdata` of them), then the function
    /// data offsets (1.20 added `startLine` before them).
    fn tail(&self, f: &GoFunc) -> usize {
        f.record + 4 + 4 * if self.version == Version::Go120 { 9 } else { 8 }
    }

    /// `_func.flag` (1.17+), or its equivalent from the name in a 1.16 table.
    fn flag(&self, f: &GoFunc) -> Option<u8> {
        if self.version == Version::Go116 {
            let name = self.name(f)?;
            return Some(if TOP_116.contains(&name) {
                FLAG_TOPFRAME
            } else if SPWRITE_116.contains(&name) {
                FLAG_SPWRITE
            } else {
                0
            });
        }
        self.data.get(self.tail(f) + 1).copied()
    }

    /// The outermost function of a stack (`runtime.goexit`, `runtime.mstart`,
    /// `runtime.rt0_go`): nothing called it.
    pub(crate) fn is_top(&self, f: &GoFunc) -> bool {
        self.flag(f).is_some_and(|fl| fl & FLAG_TOPFRAME != 0)
    }

    /// A function that moves sp to another stack; the frames above it are not on
    /// this one.
    pub(crate) fn switches_stack(&self, f: &GoFunc) -> bool {
        self.flag(f).is_some_and(|fl| fl & FLAG_SPWRITE != 0)
    }

    /// How far sp is below the function's entry sp at `pc` (the frame size there).
    pub(crate) fn sp_delta(&self, f: &GoFunc, pc: u64) -> Option<i64> {
        self.pc_value(f, self.field(f, 3)?, pc).map(i64::from)
    }

    /// The source file and line of `pc`.
    pub(crate) fn line(&self, f: &GoFunc, pc: u64) -> Option<(&str, u32)> {
        let file = self.pc_value(f, self.field(f, 4)?, pc)?;
        let line = self.pc_value(f, self.field(f, 5)?, pc)?;
        // The file number is an index into the function's compilation unit's part of
        // the file-name table.
        let cu = self.field(f, 7)?;
        let slot = usize::try_from(cu).ok()?.checked_add(usize::try_from(file).ok()?)?;
        let name_off = self.u32_at(self.cutab.checked_add(slot.checked_mul(4)?)?)?;
        if name_off == u32::MAX {
            return None;
        }
        let name = self.string_at(self.filetab.checked_add(usize::try_from(name_off).ok()?)?)?;
        Some((name, u32::try_from(line).ok()?))
    }

    /// The value a pc-value table (at `table` in the pc-value area) gives `pc`: pairs
    /// of (value delta, pc delta), varint-encoded, the value delta zig-zag; each
    /// value holds from the previous pc up to (not including) the new one.
    fn pc_value(&self, f: &GoFunc, table: u32, pc: u64) -> Option<i32> {
        if table == 0 {
            return None;
        }
        let mut p = self.pctab.checked_add(usize::try_from(table).ok()?)?;
        let mut at = f.entry;
        let mut value: i32 = -1;
        let mut first = true;
        // A function's table ends well before this many steps (one per change of
        // value); a corrupt one ends here.
        for _ in 0..65_536 {
            let (delta, n) = self.uvarint(p)?;
            if delta == 0 && !first {
                return None;
            }
            p += n;
            let zig = (delta >> 1) as i32 ^ -((delta & 1) as i32);
            value = value.wrapping_add(zig);
            let (pc_delta, n) = self.uvarint(p)?;
            p += n;
            at = at.checked_add(u64::from(pc_delta))?;
            first = false;
            if pc < at {
                return Some(value);
            }
        }
        None
    }

    /// Finds `moduledata.gofunc` without symbols: among the words of the runtime's
    /// `moduledata` (in `.go.module`, or found in `.noptrdata` by its first two words:
    /// this table's address and its name table's) and the starts of `.go.func` and
    /// `.rodata`, the one from which the inline trees of a sample of functions read
    /// as inline trees (each first entry names a function and points inside its
    /// caller). Its place in `moduledata` moves between Go versions; this finds it in
    /// each. `section` gives a section's address and stored bytes, `read` reads the
    /// binary by link-time address; `table_addr` is this table's address.
    pub(crate) fn find_gofunc(
        &mut self,
        table_addr: u64,
        section: &dyn Fn(&str) -> Option<(u64, SharedBytes)>,
        read: &dyn Fn(u64, &mut [u8]) -> usize,
    ) {
        if self.version == Version::Go116 {
            return;
        }
        let names = table_addr.wrapping_add(self.funcnames as u64);
        let word =
            |b: &SharedBytes, k: usize| b.get(k * 8..k * 8 + 8).and_then(|w| w.try_into().ok()).map(u64::from_le_bytes);
        let module = section(".go.module").map(|(_, b)| b).or_else(|| {
            let (_, b) = section(".noptrdata")?;
            let at = (0..b.len() / 8).find(|&k| word(&b, k) == Some(table_addr) && word(&b, k + 1) == Some(names))?;
            Some(b.slice(at * 8, b.len() - at * 8))
        });
        let mut candidates: Vec<u64> =
            module.iter().flat_map(|m| (0..64).filter_map(|k| word(m, k))).filter(|&w| w != 0).collect();
        candidates.extend([".go.func", ".rodata"].iter().filter_map(|n| Some(section(n)?.0)));
        // Up to 16 functions with an inline tree, spread over the table.
        let step = (self.nfunc / 256).max(1);
        // (the function's size, its tree's offset)
        let samples: Vec<(u64, u32)> = (0..self.nfunc)
            .step_by(step)
            .filter_map(|i| {
                let (entry, record) = self.index(i)?;
                let (next, _) = self.index(i + 1)?;
                Some((next.checked_sub(entry)?, self.inline_tree_offset(&GoFunc { entry, record })?))
            })
            .take(16)
            .collect();
        if samples.len() < 4 {
            return;
        }
        let (size, name_at, parent_at) = self.inline_entry_layout();
        self.gofunc = candidates.into_iter().find(|&base| {
            samples.iter().all(|&(len, off)| {
                let mut entry = [0u8; 20];
                if read(base.wrapping_add(u64::from(off)), &mut entry[..size]) != size {
                    return false;
                }
                let field = |k: usize| i32::from_le_bytes([entry[k], entry[k + 1], entry[k + 2], entry[k + 3]]);
                let named = usize::try_from(field(name_at))
                    .ok()
                    .and_then(|o| self.string_at(self.funcnames.checked_add(o)?))
                    .is_some_and(|n| n.contains('.'));
                named && u64::try_from(field(parent_at)).is_ok_and(|p| p < len)
            })
        });
    }

    /// An inline tree entry: its size, and where its name offset and its parent pc
    /// (from the function's entry) are.
    fn inline_entry_layout(&self) -> (usize, usize, usize) {
        // 1.18–1.19: parent, funcID, pad, file, line, name, parentPc; 1.20: funcID,
        // pad, name, parentPc, startLine.
        if self.version == Version::Go118 { (20, 12, 16) } else { (16, 4, 8) }
    }

    /// The functions inlined at `pc` into `f`, innermost first, each with the pc
    /// whose file and line are its own (the innermost: `pc`; each outer one: its call
    /// of the next); and the pc whose line is `f`'s own (its call of the outermost).
    /// `read` reads the binary by link-time address.
    pub(crate) fn inlined_at(
        &self,
        f: &GoFunc,
        pc: u64,
        read: &dyn Fn(u64, &mut [u8]) -> usize,
    ) -> (Vec<(&str, u64)>, u64) {
        let mut out = Vec::new();
        let (Some(tree), Some(index_table)) = (self.inline_tree(f), self.pcdata(f, PCDATA_INLINE_INDEX)) else {
            return (out, pc);
        };
        let (size, name_at, parent_at) = self.inline_entry_layout();
        let size = size as u64;
        let mut at = pc;
        for _ in 0..MAX_INLINE_DEPTH {
            let Some(ix) = self.pc_value(f, index_table, at).and_then(|i| u64::try_from(i).ok()) else { break };
            let mut entry = [0u8; 20];
            let Some(addr) = ix.checked_mul(size).and_then(|o| tree.checked_add(o)) else { break };
            if read(addr, &mut entry[..size as usize]) != size as usize {
                break;
            }
            let field = |k: usize| i32::from_le_bytes([entry[k], entry[k + 1], entry[k + 2], entry[k + 3]]);
            let name = usize::try_from(field(name_at))
                .ok()
                .and_then(|o| self.funcnames.checked_add(o))
                .and_then(|o| self.string_at(o));
            let Some(name) = name else { break };
            let Ok(parent) = u64::try_from(field(parent_at)) else { break };
            out.push((name, at));
            at = f.entry.wrapping_add(parent);
        }
        (out, at)
    }

    /// The link-time address of `f`'s inline tree, if it has one.
    fn inline_tree(&self, f: &GoFunc) -> Option<u64> {
        Some(self.gofunc?.wrapping_add(u64::from(self.inline_tree_offset(f)?)))
    }

    /// Where `f`'s inline tree is from `gofunc`, if it has one.
    fn inline_tree_offset(&self, f: &GoFunc) -> Option<u32> {
        let after = self.tail(f);
        let nfuncdata = usize::from(*self.data.get(after + 3)?);
        let npcdata = usize::try_from(self.field(f, 6)?).ok()?;
        if FUNCDATA_INLINE_TREE >= nfuncdata {
            return None;
        }
        let off = self.u32_at(after + 4 + 4 * npcdata + 4 * FUNCDATA_INLINE_TREE)?;
        (off != u32::MAX).then_some(off)
    }

    /// The offset of `f`'s pc-data table `k` in the pc-value area, if it has one.
    fn pcdata(&self, f: &GoFunc, k: usize) -> Option<u32> {
        let after = self.tail(f);
        let npcdata = usize::try_from(self.field(f, 6)?).ok()?;
        (k < npcdata).then(|| self.u32_at(after + 4 + 4 * k)).flatten().filter(|&o| o != 0)
    }

    /// An unsigned LEB128 varint (at most 32 bits) at `off`, and its length.
    fn uvarint(&self, off: usize) -> Option<(u32, usize)> {
        let mut v: u32 = 0;
        for k in 0..5 {
            let b = *self.data.get(off + k)?;
            v |= u32::from(b & 0x7f) << (7 * k);
            if b & 0x80 == 0 {
                return Some((v, k + 1));
            }
        }
        None
    }
}

/// What the unwinder needs of a Go function at a pc (see [`GoTable`]).
#[derive(Debug, Clone, Copy)]
pub struct GoFrame {
    /// The frame's size there: its return address is at sp + this.
    pub sp_delta: Option<u64>,
    /// Nothing called it (`runtime.goexit`, `runtime.mstart`): the stack ends here.
    pub top: bool,
    /// It moved sp to another stack (`runtime.mcall`, `runtime.systemstack`).
    pub switches_stack: bool,
    /// One the runtime's signal handler made the interrupted function seem to call
    /// (`runtime.sigpanic`, `runtime.asyncPreempt`): that caller's pc is the
    /// interrupted instruction itself, not a return address.
    pub trap: bool,
}

impl super::ModuleSet {
    /// The module's Go function table, read on first use.
    pub(crate) fn go_table(&self, idx: usize) -> Option<&GoTable> {
        self.entries[idx]
            .go_table
            .get_or_init(|| {
                let img = self.image(idx)?;
                // A position-independent build keeps it among its relocated data.
                let (addr, data) =
                    [".gopclntab", ".data.rel.ro.gopclntab"].into_iter().find_map(|n| img.stored_section(n))?;
                let mut table = GoTable::parse(data, img.text.map(|t| t.addr))?;
                table.find_gofunc(addr, &|n| img.stored_section(n), &|at, buf| img.read_vaddr(at, buf));
                Some(table)
            })
            .as_ref()
    }

    /// The function at link-time address `probe` of module `idx` from its Go table:
    /// its name, file and line, and its entry.
    pub(crate) fn go_frame(&self, idx: usize, probe: u64) -> Option<(Vec<super::SourceFrame>, u64)> {
        let t = self.go_table(idx)?;
        let f = t.func(probe)?;
        let at = |name: Option<&str>, pc: u64| {
            let (file, line) = t.line(&f, pc).map_or((None, None), |(file, line)| (Some(file.to_string()), Some(line)));
            super::SourceFrame { function: name.map(str::to_string), file, line, column: None }
        };
        let img = self.image(idx)?;
        let (inlined, outer_pc) = t.inlined_at(&f, probe, &|addr, buf| img.read_vaddr(addr, buf));
        // Innermost first, as the DWARF lookups list an inline chain; the function
        // itself last, at its call of the outermost inlined one.
        let mut frames: Vec<_> = inlined.iter().map(|&(name, pc)| at(Some(name), pc)).collect();
        frames.push(at(t.name(&f), outer_pc));
        Some((frames, f.entry))
    }

    /// Whether link-time address `probe` of module `idx` is in one of Go's trap
    /// functions (see [`TRAPS`]; asked of every frame with CFI: a search of the
    /// index, no table walked).
    pub fn in_go_trap(&self, idx: usize, probe: u64) -> bool {
        self.go_table(idx).and_then(|t| t.name(&t.func_by_index(probe)?)).is_some_and(|n| TRAPS.contains(&n))
    }

    /// How to unwind the Go function at link-time address `probe` of module `idx`.
    pub fn go_unwind(&self, idx: usize, probe: u64) -> Option<GoFrame> {
        let t = self.go_table(idx)?;
        let f = t.func(probe)?;
        Some(GoFrame {
            sp_delta: t.sp_delta(&f, probe).and_then(|d| u64::try_from(d).ok()),
            top: t.is_top(&f),
            switches_stack: t.switches_stack(&f),
            trap: t.name(&f).is_some_and(|n| TRAPS.contains(&n)),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A 1.18-layout table with one function at 0x1000..0x1040 named `main.f`, whose
    /// frame is 0 at entry and 0x28 from 0x1004, in `a.go`, lines 10 then 11 from 0x1010.
    fn table() -> Vec<u8> {
        let mut b = vec![0xf0, 0xff, 0xff, 0xff, 0, 0, 1, 8];
        let header_end = 8 + 8 * 8;
        let funcnames = header_end;
        let names = b"main.f\0".to_vec();
        let cutab = funcnames + names.len();
        let cu = 0u32.to_le_bytes().to_vec();
        let filetab = cutab + cu.len();
        let files = b"a.go\0".to_vec();
        let pctab = filetab + files.len();
        // pcsp: value 0 (delta +1 from -1) for 4 bytes, then 0x28 (delta +0x28) for 0x3c.
        // pcfile: value 0 for 0x40. pcln: 10 for 0x10, then 11 for 0x30.
        let mut pcs = vec![0u8]; // offset 0 means "no table"
        let sp_at = pcs.len();
        pcs.extend([2, 4, 0x50, 0x3c, 0]);
        let file_at = pcs.len();
        pcs.extend([2, 0x40, 0]);
        let line_at = pcs.len();
        pcs.extend([22, 0x10, 2, 0x30, 0]);
        let funcs = pctab + pcs.len();
        b.extend(1u64.to_le_bytes()); // nfunc
        b.extend(1u64.to_le_bytes()); // nfiles
        b.extend(0x1000u64.to_le_bytes()); // textStart
        for off in [funcnames, cutab, filetab, pctab, funcs] {
            b.extend((off as u64).to_le_bytes());
        }
        assert_eq!(b.len(), header_end);
        b.extend(names);
        b.extend(cu);
        b.extend(files);
        b.extend(pcs);
        // index: (0, record at 16), (0x40, end)
        b.extend(0u32.to_le_bytes());
        b.extend(16u32.to_le_bytes());
        b.extend(0x40u32.to_le_bytes());
        b.extend(0u32.to_le_bytes());
        // _func: entryOff, nameOff, args, deferreturn, pcsp, pcfile, pcln, npcdata, cuOffset, funcID, flag, pad, nfuncdata
        for v in [0u32, 0, 0, 0, sp_at as u32, file_at as u32, line_at as u32, 0, 0] {
            b.extend(v.to_le_bytes());
        }
        b.extend([0, 0, 0, 0]);
        b
    }

    #[test]
    fn a_function_is_found_named_and_its_frame_and_lines_read() {
        let t = GoTable::parse(SharedBytes::owned(table()), None).expect("a 1.18 table");
        assert!(t.func(0xfff).is_none() && t.func(0x1040).is_none());
        let mut short = table();
        // pcsp covering only 0x1000..0x1004 and 0x1004..0x1010: 0x1010.. is not main.f's.
        let at = short.windows(5).position(|w| w == [2, 4, 0x50, 0x3c, 0]).expect("pcsp");
        short[at + 3] = 0x0c;
        let t2 = GoTable::parse(SharedBytes::owned(short), None).expect("a table");
        assert!(t2.func(0x100f).is_some() && t2.func(0x1010).is_none(), "past the function's tables");
        let f = t.func(0x1020).expect("inside main.f");
        assert_eq!((f.entry, t.name(&f)), (0x1000, Some("main.f")));
        assert_eq!(t.sp_delta(&f, 0x1000), Some(0));
        assert_eq!(t.sp_delta(&f, 0x1004), Some(0x28));
        assert_eq!(t.line(&f, 0x100f), Some(("a.go", 10)));
        assert_eq!(t.line(&f, 0x1010), Some(("a.go", 11)));
        assert!(!t.is_top(&f) && !t.switches_stack(&f));
    }

    #[test]
    fn a_corrupt_table_gives_no_answers_and_no_panic() {
        let good = table();
        assert!(GoTable::parse(SharedBytes::owned(good[..40].to_vec()), None).is_none());
        let mut wrong_magic = good.clone();
        wrong_magic[0] = 0xfb;
        assert!(GoTable::parse(SharedBytes::owned(wrong_magic), None).is_none());
        // Every single byte flipped: parsing and every lookup stay within bounds.
        for i in 0..good.len() {
            let mut bad = good.clone();
            bad[i] ^= 0xff;
            if let Some(t) = GoTable::parse(SharedBytes::owned(bad), None) {
                for pc in [0x1000, 0x1020, 0x103f] {
                    if let Some(f) = t.func(pc) {
                        let _ = (t.name(&f), t.sp_delta(&f, pc), t.line(&f, pc), t.is_top(&f));
                    }
                }
            }
        }
    }
}
