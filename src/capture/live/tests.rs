//! Tests of the live target: range planning and copying, and real attaches to child
//! processes (refusals, re-injected signals, the detach guard, PROT_NONE pages).

use super::*;

#[test]
fn merging() {
    type Ranges = &'static [(u64, u64)];
    let cases: &[(Ranges, Ranges)] = &[
        (&[], &[]),
        (&[(5, 5)], &[]),
        (&[(10, 20), (0, 5)], &[(0, 5), (10, 20)]),
        (&[(0, 10), (5, 20)], &[(0, 20)]),
        (&[(0, 10), (10, 20)], &[(0, 20)]),
        (&[(0, 30), (5, 20), (25, 40), (50, 60)], &[(0, 40), (50, 60)]),
    ];
    for (input, want) in cases {
        assert_eq!(merge_ranges(input.to_vec()), want.to_vec(), "{input:?}");
    }
}

#[test]
fn subtracting() {
    type Ranges = &'static [(u64, u64)];
    let cases: &[(Ranges, Ranges, Ranges)] = &[
        (&[(0, 10)], &[], &[(0, 10)]),
        (&[(0, 10)], &[(0, 10)], &[]),
        (&[(0, 10)], &[(2, 4), (6, 8)], &[(0, 2), (4, 6), (8, 10)]),
        (&[(5, 15)], &[(0, 7), (12, 20)], &[(7, 12)]),
        (&[(0, 5), (20, 30)], &[(5, 20)], &[(0, 5), (20, 30)]),
        (&[(10, 20)], &[(0, 5), (30, 40)], &[(10, 20)]),
    ];
    for (wanted, have, want) in cases {
        assert_eq!(subtract_ranges(wanted, have), want.to_vec(), "{wanted:?} - {have:?}");
    }
}

#[test]
fn plan_stacks_and_vdso() {
    let map =
        |s: u64, e: u64, path: &str| Mapping { start: s, end: e, perms: "rw-p".into(), offset: 0, path: path.into() };
    let maps = vec![map(0x1000, 0x9000, ""), map(0x10000, 0x20000, "[stack]"), map(0x30000, 0x32000, "[vdso]")];
    let th = |tid: i32, rsp: u64| ThreadState {
        tid,
        registers: Registers { rsp, ..Default::default() },
        ..Default::default()
    };
    let mut problems = Vec::new();
    let threads = [th(1, 0x1f000), th(2, 0x1040), th(3, 0x8000), th(4, 0x50000)];
    let plan = copy_plan(&threads, &maps, 0x800, &mut problems);
    assert_eq!(plan, [(0x1000, 0x1800), (0x7f80, 0x8780), (0x1ef80, 0x1f780), (0x30000, 0x32000)]);
    assert_eq!(problems.len(), 1, "thread 4's rsp is in no mapping");
    let plan = copy_plan(&threads[..1], &maps, 8 << 20, &mut problems);
    assert_eq!(plan, [(0x1ef80, 0x20000), (0x30000, 0x32000)]);
}

#[test]
fn fault_ranges_are_clipped_to_readable_mappings() {
    let map =
        |s: u64, e: u64, perms: &str| Mapping { start: s, end: e, perms: perms.into(), offset: 0, path: String::new() };
    let maps = vec![map(0x1000, 0x2000, "r-xp"), map(0x5000, 0x9000, "rw-p"), map(0x9000, 0xa000, "---p")];
    let th = |rip: u64, faulted: bool| ThreadState {
        registers: Registers { rip, ..Default::default() },
        faulted,
        ..Default::default()
    };
    let sig = |addr: u64| Signal { fault_address: Some(addr), ..Default::default() };
    // (threads, fault address, expected ranges)
    type Case = (Vec<ThreadState>, Option<u64>, Vec<(u64, u64)>);
    let cases: Vec<Case> = vec![
        (vec![th(0x1010, true)], None, vec![(0x1000, 0x1110)]),
        (vec![th(0x1010, false)], None, vec![]),
        (vec![th(0x1800, true)], Some(0x5080), vec![(0x1700, 0x1900), (0x5000, 0x5180)]),
        (vec![th(0x1800, true)], Some(0x9100), vec![(0x1700, 0x1900)]), // guard page: unreadable
        (vec![th(0x0, true)], Some(0x0), vec![]),                       // null pc, null address
    ];
    for (threads, addr, want) in cases {
        let s = addr.map(sig);
        assert_eq!(fault_ranges(&threads, s.as_ref(), &maps), want, "{addr:?}");
    }
}

#[test]
fn refuses_self_and_missing() {
    let me = std::process::id() as i32;
    assert!(matches!(capture(me, &LiveOptions::default()), Err(CaptureError::SelfAttach { .. })));
    // Another thread of ours is still ourselves.
    let (tx, rx) = std::sync::mpsc::channel();
    let h = std::thread::spawn(move || {
        // SAFETY: gettid has no preconditions.
        tx.send(unsafe { libc::gettid() }).expect("send");
        std::thread::sleep(Duration::from_millis(200));
    });
    let tid = rx.recv().expect("tid");
    assert!(matches!(capture(tid, &LiveOptions::default()), Err(CaptureError::SelfAttach { .. })));
    h.join().expect("join");
    assert!(matches!(capture(0, &LiveOptions::default()), Err(CaptureError::NoSuchProcess { .. })));
    assert!(matches!(capture(i32::MAX, &LiveOptions::default()), Err(CaptureError::NoSuchProcess { .. })));
    // A child that exited and was not reaped yet.
    let mut child = std::process::Command::new("true").spawn().expect("spawn true");
    let pid = child.id() as i32;
    let deadline = Instant::now() + Duration::from_secs(5);
    while procfs::read_small(&format!("/proc/{pid}/stat")).ok().and_then(|s| procfs::parse_task_stat(&s)).map(|x| x.1)
        != Some("Z".into())
    {
        assert!(Instant::now() < deadline, "true did not exit");
        std::thread::sleep(Duration::from_millis(5));
    }
    let err = capture(pid, &LiveOptions::default()).err().expect("a zombie cannot be captured");
    assert!(matches!(err, CaptureError::Exited { .. }), "{err}");
    child.wait().expect("reap");
    // kthreadd is pid 2 when we see the host's pid namespace.
    if procfs::read_small("/proc/2/comm").is_ok_and(|c| c.trim() == "kthreadd") {
        assert!(matches!(capture(2, &LiveOptions::default()), Err(CaptureError::KernelThread { pid: 2 })));
    }
}

fn spawn_sleep() -> std::process::Child {
    let child = std::process::Command::new("sleep").arg("100").spawn().expect("spawn sleep");
    // Let it reach its nanosleep.
    std::thread::sleep(Duration::from_millis(50));
    child
}

#[test]
fn signal_delivery_stop_is_reinjected_on_detach() {
    use std::os::unix::process::ExitStatusExt;
    let mut child = spawn_sleep();
    let pid = child.id() as i32;
    let mut att = Attachment::default();
    ptrace(libc::PTRACE_SEIZE as _, pid, 0, 0).expect("seize");
    att.threads.push(Tracee {
        tid: pid,
        name: "sleep".into(),
        state: "S".into(),
        attached: true,
        stopped: false,
        inject: 0,
    });
    // A signal to a seized (not yet interrupted) thread: a signal-delivery-stop.
    // SAFETY: kill has no memory-safety preconditions.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGUSR1) }, 0);
    let mut problems = Vec::new();
    wait_for_stops(&mut att.threads, Instant::now() + Duration::from_secs(5), &mut problems);
    assert!(problems.is_empty(), "{problems:?}");
    assert!(att.threads[0].stopped);
    assert_eq!(att.threads[0].inject, libc::SIGUSR1);
    assert_eq!(pending_signal(pid).map(|s| (s.signo, s.code_name)), Some((libc::SIGUSR1, "SI_USER".to_string())));
    assert!(att.detach_all().is_empty());
    // Re-injected: SIGUSR1's default action kills sleep.
    let status = child.wait().expect("wait");
    assert_eq!(status.signal(), Some(libc::SIGUSR1), "the signal was lost: {status:?}");
}

#[test]
fn guard_detaches_on_panic() {
    let mut child = spawn_sleep();
    let pid = child.id() as i32;
    let r = std::panic::catch_unwind(|| {
        let mut att = Attachment::default();
        ptrace(libc::PTRACE_SEIZE as _, pid, 0, 0).expect("seize");
        att.threads.push(Tracee {
            tid: pid,
            name: String::new(),
            state: String::new(),
            attached: true,
            stopped: false,
            inject: 0,
        });
        ptrace(libc::PTRACE_INTERRUPT as _, pid, 0, 0).expect("interrupt");
        wait_for_stops(&mut att.threads, Instant::now() + Duration::from_secs(5), &mut Vec::new());
        assert!(att.threads[0].stopped);
        panic!("boom while attached");
    });
    assert!(r.is_err());
    let stat = procfs::read_small(&format!("/proc/{pid}/stat")).expect("stat");
    let (_, state) = procfs::parse_task_stat(&stat).expect("parse");
    assert!(state == "S" || state == "R", "sleep runs on, not traced-stopped: {state}");
    assert_eq!(
        procfs::parse_status(&std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status"), &["TracerPid"])
            [0]
        .1,
        "0"
    );
    let _ = child.kill();
    let _ = child.wait();
}

#[test]
fn copies_across_a_prot_none_page() {
    // Our own child, with a PROT_NONE page in the middle of a mapping we read:
    // process_vm_readv stops there, /proc/PID/mem reads it.
    let page = 4096usize;
    // SAFETY: a fresh anonymous mapping, written then protected.
    let base = unsafe {
        let p = libc::mmap(
            std::ptr::null_mut(),
            3 * page,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        );
        assert_ne!(p, libc::MAP_FAILED);
        std::ptr::write_bytes(p.cast::<u8>(), 0xab, 3 * page);
        libc::mprotect(p.cast::<u8>().add(page).cast(), page, libc::PROT_NONE);
        p as u64
    };
    // Read our own memory: process_vm_readv on ourselves needs no ptrace.
    let pid = std::process::id() as i32;
    let mut problems = Vec::new();
    let mem = copy_ranges(pid, &[(base, base + 3 * page as u64)], &mut problems);
    assert!(problems.is_empty(), "{problems:?}");
    assert_eq!(mem.total_bytes(), 3 * page);
    let mut buf = vec![0u8; 3 * page];
    assert_eq!(crate::capture::Memory::read(&mem, base, &mut buf), 3 * page);
    assert!(buf.iter().all(|b| *b == 0xab));
    // SAFETY: unmapping what we mapped.
    unsafe { libc::munmap(base as *mut libc::c_void, 3 * page) };
}

#[test]
fn held_memory_pages_stop_where_memory_ends() {
    use crate::capture::Memory;
    use std::os::fd::AsRawFd;
    // A one-page file mapped two pages long: its second page (past the end of the
    // file) cannot be read, not even through /proc/self/mem, which this reads as a
    // held target's memory is read (PROT_NONE would not stop it, and a hole could be
    // filled by another test's mapping).
    let page = PAGE as usize;
    let path = std::env::temp_dir().join(format!("bt-held-{}", std::process::id()));
    let data: Vec<u8> = (0..page).map(|i| (i % 251) as u8).collect();
    std::fs::write(&path, &data).unwrap();
    let file = std::fs::File::open(&path).unwrap();
    let _ = std::fs::remove_file(&path);
    // SAFETY: a fresh private read-only mapping of the file, unmapped below; the page
    // past the end is never touched from here, only read through /proc/self/mem.
    let base =
        unsafe { libc::mmap(std::ptr::null_mut(), 2 * page, libc::PROT_READ, libc::MAP_PRIVATE, file.as_raw_fd(), 0) };
    assert_ne!(base, libc::MAP_FAILED);
    let mem = std::fs::File::open("/proc/self/mem").ok();
    let held = HeldMemory::new(CopiedMemory::default(), mem, Arc::new(AtomicBool::new(false)));
    let a = base as u64;
    let mut small = [0u8; 8];
    assert_eq!(held.read(a + 100, &mut small), 8);
    assert_eq!(small[..], data[100..108]);
    // Across the end of the file: the readable part only.
    let mut across = [0u8; 16];
    assert_eq!(held.read(a + PAGE - 8, &mut across), 8);
    assert_eq!(across[..8], data[page - 8..]);
    assert_eq!(held.read(a + PAGE, &mut small), 0);
    // Once released, nothing but the copies (here none) is read.
    held.released.store(true, Ordering::SeqCst);
    assert_eq!(held.read(a + 100, &mut small), 0);
    // SAFETY: the mapping made above, no longer used.
    unsafe { libc::munmap(base, 2 * page) };
}

#[test]
fn a_blocked_threads_syscall_file_gives_its_stack_and_instruction_pointers() {
    // In a system call (wait4 of a vfork parent), outside one, running, and garbage.
    let inside = "61 0xffffffff 0x7ffc1 0x0 0x0 0x0 0x0 0x7ffd3c1a9e48 0x7f2b8c8d1a3c\n";
    assert_eq!(parse_syscall(inside), Some((Some(61), 0x7ffd3c1a9e48, 0x7f2b8c8d1a3c)));
    assert_eq!(parse_syscall("-1 0x7ffd3c1a9e48 0x55d1c0a01234\n"), Some((None, 0x7ffd3c1a9e48, 0x55d1c0a01234)));
    for bad in ["running\n", "", "61 0x1 0x2", "-1 0x0 0x0", "-1 zz 0x1", "12 0x1 0x2 0x3 0x4 0x5 0x6 0x7 0x8 0x9"] {
        assert_eq!(parse_syscall(bad), None, "{bad:?}");
    }
}
