//! Unit tests of core parsing over hand-built note and segment bytes.

use super::*;

/// A minimal core builder for unit tests: ELF header, program headers, notes.
struct Builder {
    notes: Vec<u8>,
    loads: Vec<(u64, u32, Vec<u8>, u64)>,
}

impl Builder {
    fn new() -> Builder {
        Builder { notes: Vec::new(), loads: Vec::new() }
    }
    fn note(mut self, name: &[u8], ntype: u32, desc: &[u8]) -> Builder {
        let n = &mut self.notes;
        n.extend_from_slice(&(name.len() as u32 + 1).to_le_bytes());
        n.extend_from_slice(&(desc.len() as u32).to_le_bytes());
        n.extend_from_slice(&ntype.to_le_bytes());
        n.extend_from_slice(name);
        n.push(0);
        while !n.len().is_multiple_of(4) {
            n.push(0);
        }
        n.extend_from_slice(desc);
        while !n.len().is_multiple_of(4) {
            n.push(0);
        }
        self
    }
    fn prstatus(self, tid: i32, cursig: i16, rip: u64, rsp: u64) -> Builder {
        let mut d = vec![0u8; 336];
        d[12..14].copy_from_slice(&cursig.to_le_bytes());
        d[32..36].copy_from_slice(&tid.to_le_bytes());
        d[112 + 16 * 8..112 + 17 * 8].copy_from_slice(&rip.to_le_bytes());
        d[112 + 19 * 8..112 + 20 * 8].copy_from_slice(&rsp.to_le_bytes());
        self.note(b"CORE", NT_PRSTATUS, &d)
    }
    fn load(mut self, vaddr: u64, flags: u32, bytes: &[u8], memsz: u64) -> Builder {
        self.loads.push((vaddr, flags, bytes.to_vec(), memsz));
        self
    }
    fn build(&self) -> Vec<u8> {
        let phnum = 1 + self.loads.len();
        let mut out = vec![0u8; EHDR_SIZE];
        out[..4].copy_from_slice(b"\x7fELF");
        out[4] = 2;
        out[5] = 1;
        out[6] = 1;
        out[16..18].copy_from_slice(&ET_CORE.to_le_bytes());
        out[18..20].copy_from_slice(&EM_X86_64.to_le_bytes());
        out[32..40].copy_from_slice(&(EHDR_SIZE as u64).to_le_bytes());
        out[54..56].copy_from_slice(&(PHDR_SIZE as u16).to_le_bytes());
        out[56..58].copy_from_slice(&(phnum as u16).to_le_bytes());
        let mut data_off = (EHDR_SIZE + phnum * PHDR_SIZE) as u64;
        let mut ph = |t: u32, f: u32, off: u64, vaddr: u64, filesz: u64, memsz: u64| {
            let mut p = vec![0u8; PHDR_SIZE];
            p[0..4].copy_from_slice(&t.to_le_bytes());
            p[4..8].copy_from_slice(&f.to_le_bytes());
            p[8..16].copy_from_slice(&off.to_le_bytes());
            p[16..24].copy_from_slice(&vaddr.to_le_bytes());
            p[32..40].copy_from_slice(&filesz.to_le_bytes());
            p[40..48].copy_from_slice(&memsz.to_le_bytes());
            out.extend_from_slice(&p);
        };
        ph(PT_NOTE, 0, data_off, 0, self.notes.len() as u64, 0);
        data_off += self.notes.len() as u64;
        for (vaddr, flags, bytes, memsz) in &self.loads {
            ph(PT_LOAD, *flags, data_off, *vaddr, bytes.len() as u64, *memsz);
            data_off += bytes.len() as u64;
        }
        out.extend_from_slice(&self.notes);
        for (_, _, bytes, _) in &self.loads {
            out.extend_from_slice(bytes);
        }
        out
    }
}

fn parse(bytes: Vec<u8>) -> Result<Capture, CaptureError> {
    from_bytes("test.core", Box::new(bytes), None)
}

fn siginfo(signo: i32, code: i32, addr: u64) -> Vec<u8> {
    let mut b = vec![0u8; 128];
    b[0..4].copy_from_slice(&signo.to_le_bytes());
    b[8..12].copy_from_slice(&code.to_le_bytes());
    b[16..24].copy_from_slice(&addr.to_le_bytes());
    b
}

fn nt_file(entries: &[(u64, u64, u64, &str)]) -> Vec<u8> {
    let mut d = Vec::new();
    d.extend_from_slice(&(entries.len() as u64).to_le_bytes());
    d.extend_from_slice(&4096u64.to_le_bytes());
    for (s, e, pg, _) in entries {
        for v in [s, e, pg] {
            d.extend_from_slice(&v.to_le_bytes());
        }
    }
    for (_, _, _, name) in entries {
        d.extend_from_slice(name.as_bytes());
        d.push(0);
    }
    d
}

fn psinfo(pid: i32, fname: &str, args: &str) -> Vec<u8> {
    let mut d = vec![0u8; PRPSINFO_SIZE];
    d[16..20].copy_from_slice(&1000u32.to_le_bytes());
    d[24..28].copy_from_slice(&pid.to_le_bytes());
    d[28..32].copy_from_slice(&1i32.to_le_bytes());
    d[40..40 + fname.len()].copy_from_slice(fname.as_bytes());
    d[56..56 + args.len()].copy_from_slice(args.as_bytes());
    d
}

fn sample() -> Builder {
    let mut auxv = Vec::new();
    for v in [AT_SYSINFO_EHDR, 0x7fff_f000, AT_ENTRY, 0x40_1040, 0, 0] {
        auxv.extend_from_slice(&v.to_le_bytes());
    }
    Builder::new()
        .prstatus(100, 11, 0x40_1100, 0x7ffe_0100)
        .note(b"CORE", NT_PRPSINFO, &psinfo(100, "crashy", "./crashy a b"))
        .note(b"CORE", NT_SIGINFO, &siginfo(11, 1, 0x10))
        .note(b"CORE", NT_AUXV, &auxv)
        .note(
            b"CORE",
            NT_FILE,
            &nt_file(&[(0x40_0000, 0x40_1000, 0, "/bin/crashy"), (0x40_1000, 0x40_2000, 1, "/bin/crashy")]),
        )
        .note(b"LINUX", 0x202, &[0; 64])
        .prstatus(101, 11, 0x40_1200, 0x7ffe_0180)
        .load(0x40_0000, PF_R, &[0x7f; 16], 0x1000)
        .load(0x40_1000, PF_R | PF_X, &[], 0x1000)
        .load(0x7ffe_0000, PF_R | PF_W, &[0xaa; 0x200], 0x200)
        .load(0x7fff_f000, PF_R | PF_X, &[0xcc; 0x40], 0x40)
}

#[test]
fn parses_a_built_core() {
    let cap = parse(sample().build()).expect("core parses");
    assert_eq!(cap.threads.len(), 2);
    assert_eq!((cap.threads[0].tid, cap.threads[0].faulted), (100, true));
    assert_eq!((cap.threads[1].tid, cap.threads[1].faulted), (101, false));
    assert_eq!(cap.threads[0].registers.rip, 0x40_1100);
    assert_eq!(cap.threads[1].name, "crashy");
    let sig = cap.signal.expect("signal");
    assert_eq!(
        (sig.name.as_str(), sig.code_name.as_str(), sig.fault_address, sig.tid),
        ("SIGSEGV", "SEGV_MAPERR", Some(0x10), 100)
    );
    assert_eq!(cap.process.pid, 100);
    assert_eq!(cap.process.exe, "/bin/crashy");
    assert_eq!(cap.process.cmdline, ["./crashy", "a", "b"]);
    assert_eq!(cap.process.uid, 1000);
    let maps: Vec<_> = cap.maps.iter().map(|m| (m.start, m.perms.as_str(), m.offset, m.path.as_str())).collect();
    assert_eq!(
        maps,
        [
            (0x40_0000, "r--p", 0, "/bin/crashy"),
            (0x40_1000, "r-xp", 0x1000, "/bin/crashy"),
            (0x7ffe_0000, "rw-p", 0, "[stack]"),
            (0x7fff_f000, "r-xp", 0, "[vdso]"),
        ]
    );
    assert_eq!(cap.memory.read_u64(0x7ffe_0100), Some(0xaaaa_aaaa_aaaa_aaaa));
    let mut buf = [0u8; 32];
    assert_eq!(cap.memory.read(0x7ffe_01f0, &mut buf), 16, "short read at segment end");
    assert_eq!(cap.memory.read(0x40_1000, &mut buf), 0, "undumped text is unreadable, not zeros");
    assert!(cap.problems.is_empty(), "{:?}", cap.problems);
}

#[test]
fn siginfo_belongs_to_the_thread_it_follows() {
    // gcore style: one NT_SIGINFO after each thread's NT_PRSTATUS.
    let core = Builder::new()
        .prstatus(10, 0, 1, 2)
        .note(b"CORE", NT_SIGINFO, &siginfo(0, 0, 0))
        .prstatus(11, 11, 3, 4)
        .note(b"CORE", NT_SIGINFO, &siginfo(11, 2, 0x20))
        .prstatus(12, 0, 5, 6)
        .note(b"CORE", NT_SIGINFO, &siginfo(0, 0, 0))
        .build();
    let cap = parse(core).expect("core parses");
    let sig = cap.signal.expect("signal");
    assert_eq!((sig.tid, sig.code_name.as_str(), sig.fault_address), (11, "SEGV_ACCERR", Some(0x20)));
    assert_eq!((cap.threads[0].tid, cap.threads[0].faulted), (11, true));
}

#[test]
fn faulting_thread_from_cursig_when_unique() {
    let core = Builder::new().prstatus(10, 0, 1, 2).prstatus(11, 6, 3, 4).prstatus(12, 0, 5, 6).build();
    let cap = parse(core).expect("core parses");
    assert_eq!((cap.threads[0].tid, cap.threads[0].faulted), (11, true));
    let sig = cap.signal.expect("signal from cursig");
    assert_eq!((sig.name.as_str(), sig.tid), ("SIGABRT", 11));
    assert!(cap.problems.iter().any(|p| p.message.contains("NT_SIGINFO")));
    // No signal anywhere: nobody is marked.
    let cap = parse(Builder::new().prstatus(10, 0, 1, 2).prstatus(11, 0, 3, 4).build()).expect("core parses");
    assert!(cap.signal.is_none() && cap.threads.iter().all(|t| !t.faulted));
    assert_eq!(cap.problems.iter().filter(|p| p.message.contains("not in the core")).count(), 2, "no stack memory");
}

#[test]
fn rejects_non_cores() {
    let mut exec = sample().build();
    exec[16] = 2;
    let mut arm = sample().build();
    arm[18] = 183;
    let mut be = sample().build();
    be[5] = 2;
    let mut bad_phent = sample().build();
    bad_phent[54] = 32;
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("empty", vec![], "shorter than an ELF header"),
        ("text", b"hello world, this is not an ELF file at all, not even close to it!!".to_vec(), "no ELF magic"),
        ("executable", exec, "ET_CORE"),
        ("arm", arm, "EM_X86_64"),
        ("big endian", be, "little endian"),
        ("phentsize", bad_phent, "e_phentsize"),
        ("no threads", Builder::new().note(b"CORE", NT_AUXV, &[0; 16]).build(), "no NT_PRSTATUS"),
    ];
    for (what, bytes, want) in cases {
        match parse(bytes) {
            Err(e @ CaptureError::NotACore { .. }) => assert!(e.to_string().contains(want), "{what}: {e}"),
            Err(e) => panic!("{what}: wrong error {e}"),
            Ok(_) => panic!("{what}: parsed"),
        }
    }
}

#[test]
fn truncated_segments_are_a_problem_not_an_error() {
    let full = sample().build();
    let cut = full[..full.len() - 0x40 - 0x100].to_vec();
    let cap = parse(cut).expect("truncated core still parses");
    assert!(cap.problems.iter().any(|p| p.message.contains("core truncated")), "{:?}", cap.problems);
    assert_eq!(cap.memory.read_u64(0x7ffe_0000), Some(0xaaaa_aaaa_aaaa_aaaa));
    assert_eq!(cap.memory.read_u64(0x7ffe_0100), None);
}

#[test]
fn every_truncation_and_corruption_is_a_value() {
    let full = sample().build();
    for cut in 0..full.len() {
        let r = parse(full[..cut].to_vec());
        if cut < 64 {
            assert!(matches!(r, Err(CaptureError::NotACore { .. })), "cut {cut}");
        }
    }
    // Flip every byte of the headers and notes to a few nasty values.
    let notes_end = full.len() - 16 - 0x200 - 0x40;
    for i in 0..notes_end {
        for v in [0x00, 0xff, 0x7f, 0x80] {
            let mut b = full.clone();
            b[i] = v;
            let _ = parse(b);
        }
    }
    // Huge counts: e_phnum = PN_XNUM without sections, NT_FILE count = u64::MAX.
    let mut b = full.clone();
    b[56..58].copy_from_slice(&PN_XNUM.to_le_bytes());
    assert!(parse(b).is_err());
    let huge = Builder::new().prstatus(1, 0, 0, 0).note(b"CORE", NT_FILE, &[0xff; 40]).build();
    let cap = parse(huge).expect("bad NT_FILE is a problem");
    assert!(cap.problems.iter().any(|p| p.message.contains("NT_FILE")));
}

#[test]
fn pn_xnum_count_from_section_header() {
    let mut b = sample().build();
    let phnum = u16_at(&b, 56).expect("e_phnum");
    let shoff = b.len() as u64;
    let mut sh = vec![0u8; SHDR_SIZE];
    sh[44..48].copy_from_slice(&u32::from(phnum).to_le_bytes());
    b.extend_from_slice(&sh);
    b[40..48].copy_from_slice(&shoff.to_le_bytes());
    b[56..58].copy_from_slice(&PN_XNUM.to_le_bytes());
    let cap = parse(b).expect("PN_XNUM core parses");
    assert_eq!((cap.threads.len(), cap.maps.len()), (2, 4));
}

#[test]
fn nt_file_parsing() {
    let d = nt_file(&[(0x1000, 0x2000, 3, "/a b"), (0x3000, 0x4000, 0, "/c")]);
    let f = parse_nt_file(&d).expect("parses");
    assert_eq!((f[0].offset, f[0].path.as_str(), f[1].path.as_str()), (3 * 4096, "/a b", "/c"));
    assert!(parse_nt_file(&d[..d.len() - 3]).is_err(), "missing name");
    assert!(parse_nt_file(&d[..30]).is_err(), "table cut");
    assert!(parse_nt_file(&[]).is_err());
}

#[test]
fn build_id_from_memory() {
    // An ELF header + one PT_NOTE phdr + a GNU build-id note, all in one page.
    let mut img = vec![0u8; 0x200];
    img[..4].copy_from_slice(b"\x7fELF");
    img[4] = 2;
    img[5] = 1;
    img[32..40].copy_from_slice(&64u64.to_le_bytes());
    img[54..56].copy_from_slice(&56u16.to_le_bytes());
    img[56..58].copy_from_slice(&1u16.to_le_bytes());
    img[64..68].copy_from_slice(&PT_NOTE.to_le_bytes());
    img[72..80].copy_from_slice(&0x100u64.to_le_bytes());
    img[96..104].copy_from_slice(&24u64.to_le_bytes());
    let note: &[u8] = &[4, 0, 0, 0, 8, 0, 0, 0, 3, 0, 0, 0, b'G', b'N', b'U', 0, 1, 2, 3, 4, 5, 6, 7, 8];
    img[0x100..0x100 + note.len()].copy_from_slice(note);
    let mut m = super::super::CopiedMemory::default();
    m.add(0x5000, img);
    assert_eq!(build_id_in_memory(&m, 0x5000, 0x6000), Some(vec![1, 2, 3, 4, 5, 6, 7, 8]));
    assert_eq!(build_id_in_memory(&m, 0x5001, 0x6000), None);
}
