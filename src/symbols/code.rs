//! Questions the unwinder and the variable capture ask about code addresses: is it
//! code, its bytes, the symbol around it, whether DWARF records a call site
//! returning there, and where a call or a PLT stub leads (through the default
//! version of the symbol the stub binds to, as the dynamic linker resolves it).

use super::{ModuleSet, dwarf};
use crate::snapshot::{Frame, Trust};

impl ModuleSet {
    /// True when `addr` lies in an executable PT_LOAD segment of some module.
    pub(crate) fn is_code(&self, addr: u64) -> bool {
        let Some(idx) = self.find(addr) else { return false };
        let e = &self.entries[idx];
        let vaddr = addr.wrapping_sub(e.record.load_bias);
        match &e.headers {
            Some(h) => h.segment_for(vaddr).is_some_and(|s| s.executable),
            None => false,
        }
    }

    /// Whether `addr` is in code generated at run time (anonymous executable memory).
    pub(crate) fn is_jit(&self, addr: u64) -> bool {
        self.jit.mapping_of(addr).is_some()
    }

    /// Names a frame in JIT code: module `[jit]` (its offset into the mapping), and
    /// the function the runtime's perf map gives, if any.
    pub(crate) fn symbolize_jit(&self, frame: &mut Frame) {
        let exact = frame.trust == Trust::Context || frame.signal_frame;
        let probe = if exact { frame.pc } else { frame.pc.wrapping_sub(1) };
        let Some(start) = self.jit.mapping_of(probe) else { return };
        frame.module = Some("[jit]".into());
        frame.module_offset = frame.pc - start;
        if let Some((name, at)) = self.jit.name(probe) {
            frame.function = Some(name.to_string());
            frame.function_offset = Some(frame.pc - at);
        }
    }

    /// Copies code bytes at runtime address `addr` from the module's file (the target's
    /// memory often lacks file-backed text: cores omit it, live captures copy stacks only).
    pub(crate) fn read_code(&self, addr: u64, buf: &mut [u8]) -> usize {
        let Some(idx) = self.find(addr) else { return 0 };
        let Some(img) = self.image(idx) else { return 0 };
        img.read_vaddr(addr.wrapping_sub(self.entries[idx].record.load_bias), buf)
    }

    /// Runtime [start, end) of the symbol-table function containing `addr`.
    pub(crate) fn symbol_range(&self, addr: u64) -> Option<(u64, u64)> {
        let idx = self.find(addr)?;
        let bias = self.entries[idx].record.load_bias;
        let images = self.symbol_images(idx);
        let (start, size) = self.symbols(idx, &images).range_of(addr.wrapping_sub(bias))?;
        Some((start.wrapping_add(bias), start.wrapping_add(bias).wrapping_add(size)))
    }

    /// True when the module's DWARF records a tail call returning to `after` (see
    /// `dwarf::is_tail_call_site`).
    pub(crate) fn is_tail_call_site(&self, after: u64) -> bool {
        self.is_call_site(after, true)
    }

    /// True when the module's DWARF records a call (a tail call when `tail`)
    /// returning to `after`.
    pub(crate) fn is_call_site(&self, after: u64, tail: bool) -> bool {
        let Some(idx) = self.find(after.wrapping_sub(1)) else { return false };
        let vaddr = after.wrapping_sub(self.entries[idx].record.load_bias);
        let fast = self.lookup(idx).and_then(|ix| ix.lock().ok().and_then(|mut g| g.is_call_site(vaddr, tail).ok()));
        if let Some(answer) = fast {
            return answer;
        }
        let Some(ctx) = self.dwarf(idx) else { return false };
        ctx.lock().is_ok_and(|mut g| {
            let (lazy, names) = &mut *g;
            lazy.get(names).is_some_and(|c| dwarf::is_call_site(c, vaddr, tail))
        })
    }

    /// True when `addr` is inside a PLT section of its module.
    pub(crate) fn in_plt(&self, addr: u64) -> bool {
        self.find(addr).is_some_and(|idx| {
            let bias = self.entries[idx].record.load_bias;
            self.image(idx).is_some_and(|img| img.in_plt(addr.wrapping_sub(bias)))
        })
    }

    /// The function a PLT stub at `addr` calls: the stub's `jmp *GOT(%rip)` names a
    /// GOT slot, the slot's `JUMP_SLOT`/`GLOB_DAT` relocation names the symbol, and
    /// the first other module that exports that name (in load order, as the dynamic
    /// linker binds it) gives its address. Read from the files alone: a live
    /// capture does not copy the GOT.
    pub(crate) fn plt_target(&self, addr: u64) -> Option<u64> {
        let stub = self.plt_symbol(addr).map(|(_, off)| addr.wrapping_sub(off))?;
        if let Some(hit) = self.plt_targets.lock().ok().and_then(|m| m.get(&stub).copied()) {
            return hit;
        }
        let t = self.plt_target_uncached(stub);
        if let Ok(mut m) = self.plt_targets.lock() {
            m.insert(stub, t);
        }
        t
    }

    /// The function a `call rel32` returning to `ret` calls (through a PLT stub, the
    /// function the stub binds to); None for another kind of call (indirect) or an
    /// unknown binding.
    pub(crate) fn direct_call_target(&self, ret: u64) -> Option<u64> {
        let mut call = [0u8; 5];
        if ret < 5 || self.read_code(ret - 5, &mut call) != 5 || call[0] != 0xe8 {
            return None;
        }
        let target = ret.wrapping_add_signed(i32::from_le_bytes([call[1], call[2], call[3], call[4]]) as i64);
        if self.in_plt(target) { self.plt_target(target) } else { Some(target) }
    }

    /// Whether a call to `target` entered the function holding `pc`: `pc` lies in the
    /// sized symbol starting at `target`, or in its cold part (GCC's `foo.cold`, `foo(int)
    /// [clone .cold]`). True when the symbol table cannot tell.
    pub(crate) fn call_enters(&self, target: u64, pc: u64) -> bool {
        let Some((start, _)) = self.symbol_range(pc) else { return true };
        if start == target {
            return true;
        }
        let name = |a: u64| -> Option<String> {
            let idx = self.find(a)?;
            let bias = self.entries[idx].record.load_bias;
            let images = self.symbol_images(idx);
            self.symbols(idx, &images)
                .lookup(a.wrapping_sub(bias), &images)
                .filter(|h| h.offset == 0 || a != target)
                .map(|h| h.name)
        };
        match (name(pc), name(target)) {
            (Some(callee), Some(called)) => {
                callee.strip_prefix(called.as_str()).is_some_and(|rest| rest.contains(".cold"))
            }
            _ => true,
        }
    }

    fn plt_target_uncached(&self, addr: u64) -> Option<u64> {
        use object::{Object, ObjectSymbol};
        let idx = self.find(addr)?;
        let name = self.plt_name(addr)?;
        self.entries.iter().enumerate().filter(|(j, _)| *j != idx).find_map(|(j, e)| {
            let img = self.image(j)?;
            let f = object::read::elf::ElfFile64::<object::LittleEndian>::parse(&*img.bytes).ok()?;
            // Several versions of one name (glibc's `pthread_cond_timedwait@GLIBC_2.2.5`,
            // a compat wrapper that jumps to `pthread_cond_timedwait@@GLIBC_2.3.2`): a
            // call binds to the default one, whose version index is not hidden.
            let versions = f.elf_section_table().versions(f.endian(), f.data()).ok().flatten();
            let hidden = |s: &object::read::elf::ElfSymbol64<'_, '_, object::LittleEndian>| {
                versions.as_ref().is_some_and(|v| v.version_index(f.endian(), s.index()).is_hidden())
            };
            // (An IFUNC is no "definition" to `object`; it is defined all the same.)
            let defined = |s: &object::read::elf::ElfSymbol64<'_, '_, object::LittleEndian>| {
                s.is_definition() || (!s.is_undefined() && s.elf_symbol().st_type() == object::elf::STT_GNU_IFUNC)
            };
            let mut found = f.dynamic_symbols().filter(|s| defined(s) && s.name().ok() == Some(name.as_str()));
            let first = found.next()?;
            let sym = if hidden(&first) { found.find(|s| !hidden(s)).unwrap_or(first) } else { first };
            // An IFUNC's address is its resolver's; where the call lands is chosen at
            // load time (glibc's memcpy → __memmove_avx_unaligned_erms): unknown here.
            if sym.elf_symbol().st_type() == object::elf::STT_GNU_IFUNC {
                return None;
            }
            Some(sym.address().wrapping_add(e.record.load_bias))
        })
    }

    /// The function the PLT stub holding `addr` jumps to, by name: the stub's
    /// `jmp *GOT(%rip)` names a GOT slot, and the slot's `JUMP_SLOT`/`GLOB_DAT`
    /// relocation names the symbol (what gdb shows as `NAME@plt`). None outside a
    /// PLT, in the resolver stub, and for a slot without a named relocation.
    pub(crate) fn plt_name(&self, addr: u64) -> Option<String> {
        self.plt_symbol(addr).map(|(name, _)| name)
    }

    /// Like [`Self::plt_name`], with how far `addr` lies into the stub.
    pub(crate) fn plt_symbol(&self, addr: u64) -> Option<(String, u64)> {
        use object::{Object, ObjectSymbol, ObjectSymbolTable};
        let idx = self.find(addr)?;
        let bias = self.entries[idx].record.load_bias;
        let img = self.image(idx)?;
        let (stub, len) = img.plt_stub(addr.wrapping_sub(bias))?;
        let mut code = [0u8; 32];
        let n = img.read_vaddr(stub, &mut code[..len.min(32) as usize]);
        // `ff 25 rel32` (after an optional endbr64 / bnd prefix), within the stub.
        let at = (0..n.saturating_sub(5)).find(|&o| code[o] == 0xff && code[o + 1] == 0x25)?;
        let rel = i32::from_le_bytes(code[at + 2..at + 6].try_into().ok()?);
        let got = stub.wrapping_add(at as u64 + 6).wrapping_add_signed(rel as i64);
        let file = object::File::parse(&*img.bytes).ok()?;
        let dynsym = file.dynamic_symbol_table()?;
        let name = file.dynamic_relocations()?.find_map(|(off, r)| match r.target() {
            object::RelocationTarget::Symbol(i) if off == got => {
                dynsym.symbol_by_index(i).ok().and_then(|s| s.name().ok().filter(|n| !n.is_empty()).map(str::to_string))
            }
            _ => None,
        })?;
        Some((name, addr.wrapping_sub(bias).wrapping_sub(stub)))
    }

    /// Runtime start address of the symbol-table function containing `addr`.
    /// Whether `addr` is in the function the process started at (`_start`): nothing
    /// called it, so a walk without CFI for it ends there.
    pub(crate) fn in_entry_function(&self, addr: u64) -> bool {
        self.entry_point.is_some_and(|e| self.symbol_start(addr) == Some(e))
    }

    pub(crate) fn symbol_start(&self, addr: u64) -> Option<u64> {
        let idx = self.find(addr)?;
        let bias = self.entries[idx].record.load_bias;
        let images = self.symbol_images(idx);
        let start = self.symbols(idx, &images).start_of(addr.wrapping_sub(bias))?;
        Some(start.wrapping_add(bias))
    }
}
