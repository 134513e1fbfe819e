//! The PT_NOTE side of a core: NT_PRSTATUS, NT_PRPSINFO, NT_SIGINFO, NT_AUXV and NT_FILE
//! records parsed into threads, process info and file mappings, and the memory map built
//! from them.

use super::*;

/// Index of the thread that took the fatal signal.
///
/// Folklore: the kernel writes the dumping thread's NT_PRSTATUS first, and the
/// dumping thread is the one that dequeued the fatal signal; NT_SIGINFO belongs to
/// it. Recent kernels put the same pr_cursig in every thread's note, so pr_cursig
/// only decides when exactly one thread has it set (older kernels, other writers).
pub(super) fn faulting_thread(threads: &[RawThread]) -> usize {
    let mut with_sig = threads.iter().enumerate().filter(|(_, t)| t.cursig != 0);
    match (with_sig.next(), with_sig.next()) {
        (Some((i, _)), None) => i,
        _ => 0,
    }
}

pub(super) fn align4(n: usize) -> Option<usize> {
    n.checked_add(3).map(|n| n & !3)
}

/// Iterates the notes of one PT_NOTE segment: (name without NUL, type, desc).
/// Stops at the first note that does not fit, reporting it.
pub(super) fn for_each_note<'a>(seg: &'a [u8], mut f: impl FnMut(&'a [u8], u32, &'a [u8])) -> Result<(), String> {
    let mut pos = 0usize;
    while pos < seg.len() {
        let (Some(namesz), Some(descsz), Some(ntype)) = (u32_at(seg, pos), u32_at(seg, pos + 4), u32_at(seg, pos + 8))
        else {
            return Err(format!("note header at offset {pos} cut short"));
        };
        let name_start = pos + 12;
        let desc_start = name_start.checked_add(namesz as usize).and_then(align4);
        let desc_end = desc_start.and_then(|d| d.checked_add(descsz as usize));
        let (Some(desc_start), Some(desc_end)) = (desc_start, desc_end) else {
            return Err(format!("note at offset {pos} has impossible sizes"));
        };
        if desc_end > seg.len() {
            return Err(format!("note type {ntype:#x} at offset {pos} needs {desc_end} bytes, {} present", seg.len()));
        }
        let name = &seg[name_start..name_start + namesz as usize];
        let name = name.strip_suffix(&[0]).unwrap_or(name);
        f(name, ntype, &seg[desc_start..desc_end]);
        match align4(desc_end) {
            Some(next) => pos = next,
            None => break,
        }
    }
    Ok(())
}

pub(super) fn parse_notes(seg: &[u8], notes: &mut Notes, problems: &mut Vec<Problem>) {
    let result = for_each_note(seg, |name, ntype, desc| {
        if name != b"CORE" {
            return;
        }
        match ntype {
            NT_PRSTATUS => match parse_prstatus(desc) {
                Some(t) => notes.threads.push(t),
                None => problems.push(Problem::new(
                    Scope::Snapshot,
                    format!("NT_PRSTATUS note of {} bytes is too short; thread skipped", desc.len()),
                )),
            },
            NT_PRPSINFO if desc.len() >= PRPSINFO_SIZE => {
                notes.psinfo = Some(PsInfo {
                    uid: u32_at(desc, 16).unwrap_or(0),
                    gid: u32_at(desc, 20).unwrap_or(0),
                    pid: i32_at(desc, 24).unwrap_or(0),
                    ppid: i32_at(desc, 28).unwrap_or(0),
                    fname: cstr(&desc[40..56]),
                    psargs: cstr(&desc[56..56 + PRARGSZ]).trim_end().to_string(),
                })
            }
            NT_SIGINFO => notes.siginfos.push((notes.threads.len().checked_sub(1), desc.to_vec())),
            NT_AUXV => notes.auxv = procfs::parse_auxv(desc),
            NT_FILE => match parse_nt_file(desc) {
                Ok(files) => notes.files = files,
                Err(e) => problems.push(Problem::new(Scope::Snapshot, format!("NT_FILE note: {e}"))),
            },
            _ => {}
        }
    });
    if let Err(e) = result {
        problems.push(Problem::new(Scope::Snapshot, format!("core notes: {e}")));
    }
}

/// x86-64 `struct elf_prstatus`: pr_cursig (short) @12, pr_pid @32, pr_reg @112.
pub(super) fn parse_prstatus(desc: &[u8]) -> Option<RawThread> {
    let reg_bytes = desc.get(PRSTATUS_REG_OFFSET..PRSTATUS_REG_OFFSET + USER_REGS_SIZE)?;
    let mut w = [0u64; 27];
    for (i, c) in reg_bytes.chunks_exact(8).enumerate() {
        w[i] = u64::from_le_bytes(c.try_into().expect("chunks_exact(8)"));
    }
    Some(RawThread {
        tid: i32_at(desc, 32)?,
        cursig: i32::from(u16_at(desc, 12)? as i16),
        registers: registers_from_user_regs(&w),
    })
}

/// `struct user_regs_struct` word order (the kernel's, also PTRACE_GETREGS').
pub fn registers_from_user_regs(w: &[u64; 27]) -> Registers {
    Registers {
        r15: w[0],
        r14: w[1],
        r13: w[2],
        r12: w[3],
        rbp: w[4],
        rbx: w[5],
        r11: w[6],
        r10: w[7],
        r9: w[8],
        r8: w[9],
        rax: w[10],
        rcx: w[11],
        rdx: w[12],
        rsi: w[13],
        rdi: w[14],
        orig_rax: w[15],
        rip: w[16],
        cs: w[17],
        eflags: w[18],
        rsp: w[19],
        ss: w[20],
        fs_base: w[21],
        gs_base: w[22],
        ds: w[23],
        es: w[24],
        fs: w[25],
        gs: w[26],
    }
}

/// NT_FILE: count, page size, count × (start, end, offset in pages), then count
/// NUL-terminated names.
pub(super) fn parse_nt_file(desc: &[u8]) -> Result<Vec<FileEntry>, String> {
    let count = u64_at(desc, 0).ok_or("shorter than its header")?;
    let page_size = u64_at(desc, 8).ok_or("shorter than its header")?;
    let table_end = count
        .checked_mul(24)
        .and_then(|n| n.checked_add(16))
        .filter(|&n| n <= desc.len() as u64)
        .ok_or_else(|| format!("{count} entries do not fit in {} bytes", desc.len()))? as usize;
    let mut names = &desc[table_end..];
    let mut out = Vec::with_capacity(count as usize);
    for i in 0..count as usize {
        let e = 16 + i * 24;
        let (start, end, pgoff) = (
            u64_at(desc, e).expect("table bounds checked"),
            u64_at(desc, e + 8).expect("table bounds checked"),
            u64_at(desc, e + 16).expect("table bounds checked"),
        );
        let Some(nul) = names.iter().position(|b| *b == 0) else {
            return Err(format!("{count} entries but only {i} names"));
        };
        let name = &names[..nul];
        names = &names[nul + 1..];
        out.push(FileEntry {
            start,
            end,
            offset: pgoff.saturating_mul(page_size),
            path: String::from_utf8_lossy(name).into_owned(),
        });
    }
    Ok(out)
}

/// The memory map: one mapping per PT_LOAD (every VMA the kernel saw, dumped or
/// not), named from NT_FILE; the vDSO, vsyscall page and main stack labeled as
/// /proc/PID/maps labels them.
pub(super) fn build_maps(
    loads: &[Segment],
    files: &[FileEntry],
    auxv: &[(u64, u64)],
    main_rsp: Option<u64>,
) -> Vec<Mapping> {
    let vdso = auxv.iter().find(|(k, _)| *k == AT_SYSINFO_EHDR).map(|(_, v)| *v);
    let mut by_start: std::collections::HashMap<u64, &FileEntry> = files.iter().map(|f| (f.start, f)).collect();
    let mut maps: Vec<Mapping> = loads
        .iter()
        .map(|s| {
            let mut perms = String::with_capacity(4);
            perms.push(if s.flags & PF_R != 0 { 'r' } else { '-' });
            perms.push(if s.flags & PF_W != 0 { 'w' } else { '-' });
            perms.push(if s.flags & PF_X != 0 { 'x' } else { '-' });
            // The core does not say shared or private.
            perms.push('p');
            let end = s.vaddr.saturating_add(s.memsz);
            let (offset, path) = match by_start.remove(&s.vaddr) {
                Some(f) => (f.offset, f.path.clone()),
                None if Some(s.vaddr) == vdso => (0, "[vdso]".to_string()),
                None if s.vaddr == VSYSCALL_START => (0, "[vsyscall]".to_string()),
                None if main_rsp.is_some_and(|sp| s.vaddr <= sp && sp < end) => (0, "[stack]".to_string()),
                None => (0, String::new()),
            };
            Mapping { start: s.vaddr, end, perms, offset, path }
        })
        .collect();
    // NT_FILE entries without a PT_LOAD (not written by Linux, but cheap to keep):
    // protection unknown.
    maps.extend(by_start.into_values().map(|f| Mapping {
        start: f.start,
        end: f.end,
        perms: "---p".into(),
        offset: f.offset,
        path: f.path.clone(),
    }));
    maps.sort_by_key(|m| (m.start, m.end));
    maps
}
