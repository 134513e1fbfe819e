//! `bt::capture::corefile` against real cores: a small multithreaded C program is built
//! with gcc and crashed in a worker thread, so the kernel writes the core.

use bt::capture::{CaptureError, corefile};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, OnceLock};

const CRASHY: &str = r#"
#define _GNU_SOURCE
#include <pthread.h>
#include <stdio.h>
#include <unistd.h>
#include <sys/syscall.h>

static pthread_barrier_t bar;

static void *idle(void *arg) {
    (void)arg;
    pthread_barrier_wait(&bar);
    for (;;) pause();
    return 0;
}

static void *crash(void *arg) {
    (void)arg;
    pthread_barrier_wait(&bar);
    printf("crash %ld\n", (long)syscall(SYS_gettid));
    fflush(stdout);
    usleep(20000);
    *(volatile int *)0x10 = 1;
    return 0;
}

int main(void) {
    pthread_t t[4];
    pthread_barrier_init(&bar, 0, 5);
    printf("pid %d\n", getpid());
    fflush(stdout);
    for (int i = 0; i < 3; i++) pthread_create(&t[i], 0, idle, 0);
    pthread_create(&t[3], 0, crash, 0);
    pthread_barrier_wait(&bar);
    for (;;) pause();
}
"#;

struct Fixture {
    dir: PathBuf,
    exe: PathBuf,
    core: PathBuf,
    pid: i32,
    crash_tid: i32,
}

/// Removes the temp dirs `bt-{tag}-PID` left by earlier test runs whose PID is gone.
fn remove_stale(tag: &str) {
    let prefix = format!("bt-{tag}-");
    for e in std::fs::read_dir(std::env::temp_dir()).into_iter().flatten().flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if let Some(pid) = name.strip_prefix(&prefix).and_then(|p| p.parse::<u32>().ok())
            && pid != std::process::id()
            && !Path::new(&format!("/proc/{pid}")).exists()
        {
            let _ = std::fs::remove_dir_all(e.path());
        }
    }
}

fn temp_dir(tag: &str) -> PathBuf {
    remove_stale(tag);
    let dir = std::env::temp_dir().join(format!("bt-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create temp dir");
    dir
}

fn gcc(dir: &Path, name: &str, source: &str, extra: &[&str]) -> PathBuf {
    let src = dir.join(format!("{name}.c"));
    std::fs::write(&src, source).expect("write C source");
    let exe = dir.join(name);
    let out = Command::new("gcc")
        .args(["-g", "-O0", "-pthread", "-o"])
        .arg(&exe)
        .arg(&src)
        .args(extra)
        .output()
        .expect("gcc must be installed to build the test program");
    assert!(out.status.success(), "gcc failed: {}", String::from_utf8_lossy(&out.stderr));
    exe
}

/// Finds the core the kernel wrote for `pid` in `dir` (core_pattern `core`, with or
/// without core_uses_pid), or where a file core_pattern points.
fn find_core(dir: &Path, pid: i32) -> PathBuf {
    let pattern = std::fs::read_to_string("/proc/sys/kernel/core_pattern").unwrap_or_default();
    let pattern = pattern.trim();
    assert!(
        !pattern.starts_with('|'),
        "core_pattern is a pipe ({pattern:?}); this test needs the kernel to write a core file"
    );
    let pat = Path::new(pattern);
    let search = match pat.parent() {
        Some(p) if pat.is_absolute() => p.to_path_buf(),
        _ => dir.to_path_buf(),
    };
    let file_pat = pat.file_name().map(|f| f.to_string_lossy().into_owned()).unwrap_or_else(|| "core".into());
    let prefix = file_pat.split('%').next().unwrap_or("core").to_string();
    let pid_s = pid.to_string();
    for _ in 0..50 {
        if let Ok(rd) = std::fs::read_dir(&search) {
            for e in rd.flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                let ok = if search == dir {
                    name == "core" || name == format!("core.{pid}")
                } else {
                    name.starts_with(&prefix) && name.contains(&pid_s)
                };
                if ok {
                    return e.path();
                }
            }
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    panic!("no core file for pid {pid} in {} (core_pattern {pattern:?})", search.display());
}

/// The shared test fixtures (tests/common) change core_pattern while holding an
/// flock on this file; holding it while we crash keeps the pattern still.
fn core_pattern_lock() -> std::fs::File {
    use std::os::fd::AsRawFd;
    let f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open("/tmp/bt-tests-core_pattern.lock")
        .expect("open core_pattern lock");
    // SAFETY: flock on a descriptor we own.
    assert_eq!(unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX) }, 0, "flock core_pattern lock");
    f
}

/// Runs `script` (a shell line that ends by exec'ing ./crashy) in `dir` with
/// RLIMIT_CORE unlimited; returns (pid, crashing tid, core path).
fn crash(dir: &Path, script: &str) -> (i32, i32, PathBuf) {
    let _lock = core_pattern_lock();
    let out = Command::new("sh")
        .arg("-c")
        .arg(format!("ulimit -c unlimited && {script}"))
        .current_dir(dir)
        .output()
        .expect("run sh");
    assert_eq!(out.status.signal(), Some(libc::SIGSEGV), "crashy should die of SIGSEGV: {:?}", out.status);
    assert!(out.status.core_dumped(), "the kernel did not dump a core (RLIMIT_CORE? core_pattern?)");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let field = |key: &str| -> i32 {
        stdout
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or_else(|| panic!("no {key:?} in output {stdout:?}"))
    };
    let (pid, crash_tid) = (field("pid "), field("crash "));
    let mut core = find_core(dir, pid);
    if core.parent() != Some(dir) {
        // core_pattern points elsewhere (another fixture's directory): take our core home.
        let home = dir.join(format!("core.{pid}"));
        if std::fs::rename(&core, &home).is_ok() {
            core = home;
        }
    }
    (pid, crash_tid, core)
}

fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let dir = temp_dir("target-core");
        let exe = gcc(&dir, "crashy", CRASHY, &[]);
        let (pid, crash_tid, core) = crash(&dir, "exec ./crashy");
        Fixture { dir, exe, core, pid, crash_tid }
    })
}

#[test]
fn core_without_memory_still_has_threads() {
    // coredump_filter 0: no anonymous memory, no ELF headers; only notes (and the vDSO).
    let f = fixture();
    let dir = f.dir.join("nomem");
    std::fs::create_dir_all(&dir).expect("mkdir");
    std::fs::copy(&f.exe, dir.join("crashy")).expect("copy exe");
    let (pid, crash_tid, core) = crash(&dir, "echo 0 > /proc/self/coredump_filter && exec ./crashy");
    let cap = corefile::open(&core, None).expect("open core");
    assert_eq!((cap.process.pid, cap.threads.len(), cap.threads[0].tid), (pid, 5, crash_tid));
    let missing = cap.problems.iter().filter(|p| p.message.contains("is not in the core")).count();
    assert_eq!(missing, 5, "every stack is reported missing: {:?}", cap.problems);
    // No ELF header in memory, so no build id: the executable is matched by name.
    let cap = corefile::open(&core, Some(&dir.join("crashy"))).expect("matched by name");
    assert!(cap.problems.iter().any(|p| p.message.contains("file name only")), "{:?}", cap.problems);
}

#[test]
fn real_core_threads_signal_process_maps() {
    let f = fixture();
    let cap = corefile::open(&f.core, None).expect("open core");
    assert_eq!(cap.threads.len(), 5, "main + 3 idle + 1 crashing");
    let t0 = &cap.threads[0];
    assert_eq!((t0.tid, t0.faulted), (f.crash_tid, true), "the crashing worker is the faulting thread, not thread 0");
    assert_eq!(cap.threads.iter().filter(|t| t.faulted).count(), 1);
    assert!(cap.threads.iter().any(|t| t.tid == f.pid), "main thread present");
    assert!(cap.threads.iter().all(|t| t.name == "crashy"));

    let sig = cap.signal.as_ref().expect("signal");
    assert_eq!(
        (sig.signo, sig.name.as_str(), sig.code_name.as_str(), sig.fault_address, sig.tid),
        (11, "SIGSEGV", "SEGV_MAPERR", Some(0x10), f.crash_tid)
    );

    assert_eq!(cap.process.pid, f.pid);
    assert_eq!(cap.process.comm, "crashy");
    assert_eq!(cap.process.cmdline, ["./crashy"]);
    assert_eq!(Path::new(&cap.process.exe), f.exe.canonicalize().expect("canonical exe"));
    assert!(cap.process.ppid > 0);

    // Maps: sorted, the vDSO named, the executable's text present (not dumped, still mapped).
    assert!(cap.maps.windows(2).all(|w| w[0].start <= w[1].start));
    let vdso = cap.maps.iter().find(|m| m.path == "[vdso]").expect("[vdso] mapping");
    assert_eq!(Some(vdso.start), cap.auxv_value(corefile::AT_SYSINFO_EHDR));
    let mut magic = [0u8; 4];
    assert!(cap.memory.read_exact(vdso.start, &mut magic), "vDSO dumped");
    assert_eq!(&magic, b"\x7fELF");
    let rip = t0.registers.rip;
    let text = cap.maps.iter().find(|m| m.start <= rip && rip < m.end).expect("mapping holds rip");
    assert_eq!((text.path.as_str(), &text.perms[2..3]), (cap.process.exe.as_str(), "x"));
    assert!(cap.maps.iter().any(|m| m.path.contains("libc")), "libc named from NT_FILE");

    // Every thread's stack is readable at rsp.
    for t in &cap.threads {
        assert!(cap.memory.read_u64(t.registers.rsp).is_some(), "stack of {} at {:#x}", t.tid, t.registers.rsp);
        assert_ne!(t.registers.fs_base, 0, "fs_base of {}", t.tid);
    }
    assert!(!cap.environment.uname.release.is_empty());
    assert!(cap.problems.is_empty(), "{:?}", cap.problems);
}

#[test]
fn exe_check_by_build_id_and_name() {
    let f = fixture();
    let cap = corefile::open(&f.core, Some(&f.exe)).expect("the right executable matches");
    assert!(cap.problems.is_empty(), "matched by build id, no problem: {:?}", cap.problems);

    let dir = f.dir.join("other");
    std::fs::create_dir_all(&dir).expect("mkdir");
    let other = gcc(&dir, "other", "int main(void) { return 0; }\n", &[]);
    match corefile::open(&f.core, Some(&other)) {
        Err(e @ CaptureError::ExeMismatch { .. }) => {
            let msg = e.to_string();
            assert!(msg.contains("was not dumped by") && msg.contains("build id"), "{msg}");
        }
        Err(e) => panic!("wrong error: {e}"),
        Ok(_) => panic!("another program's executable was accepted"),
    }

    // Without a build id in the file, names decide.
    let nobid = gcc(&dir, "nobid", "int main(void) { return 0; }\n", &["-Wl,--build-id=none"]);
    assert!(matches!(corefile::open(&f.core, Some(&nobid)), Err(CaptureError::ExeMismatch { .. })));
    let renamed = dir.join("crashy");
    std::fs::copy(&nobid, &renamed).expect("copy");
    let cap = corefile::open(&f.core, Some(&renamed)).expect("same file name is accepted");
    assert!(cap.problems.iter().any(|p| p.message.contains("file name only")), "{:?}", cap.problems);
    assert_eq!(Path::new(&cap.process.exe), renamed.canonicalize().expect("canonical"));

    assert!(matches!(corefile::open(&f.core, Some(Path::new("/nonexistent/exe"))), Err(CaptureError::Io { .. })));
    assert!(matches!(corefile::open(&f.exe, None), Err(CaptureError::NotACore { .. })), "an executable is not a core");
}

/// A prefix of a shared buffer, so that thousands of truncations cost no copies.
struct Prefix(Arc<Vec<u8>>, usize);
impl AsRef<[u8]> for Prefix {
    fn as_ref(&self) -> &[u8] {
        &self.0[..self.1]
    }
}

#[test]
fn truncated_real_core_never_panics() {
    let f = fixture();
    let full = Arc::new(std::fs::read(&f.core).expect("read core"));
    let notes_end = {
        // End of the PT_NOTE segment (the first program header on Linux cores).
        let phoff = u64::from_le_bytes(full[32..40].try_into().expect("8 bytes")) as usize;
        let off = u64::from_le_bytes(full[phoff + 8..phoff + 16].try_into().expect("8 bytes")) as usize;
        let size = u64::from_le_bytes(full[phoff + 32..phoff + 40].try_into().expect("8 bytes")) as usize;
        off + size
    };
    assert!(notes_end < full.len());
    let mut cuts: Vec<usize> = (0..notes_end + 64).collect();
    cuts.extend((notes_end..full.len()).step_by((full.len() / 300).max(1)));
    for cut in cuts {
        let r = corefile::from_bytes("cut", Box::new(Prefix(full.clone(), cut)), None);
        match r {
            Ok(cap) => {
                assert!(!cap.threads.is_empty());
                assert!(cap.problems.iter().any(|p| p.message.contains("truncated")), "cut {cut}: {:?}", cap.problems);
                // Reads through the truncated memory are short, never out of bounds.
                for t in &cap.threads {
                    let mut buf = vec![0u8; 4096];
                    cap.memory.read(t.registers.rsp, &mut buf);
                }
                if cut >= notes_end {
                    assert_eq!(cap.threads.len(), 5, "cut {cut}: all threads survive a cut after the notes");
                    assert_eq!(cap.threads[0].tid, f.crash_tid);
                }
            }
            Err(CaptureError::TruncatedCore { .. } | CaptureError::NotACore { .. }) => {
                assert!(cut < notes_end, "cut {cut} after the notes must still parse");
            }
            Err(e) => panic!("cut {cut}: unexpected error {e}"),
        }
    }
    // Random mutations of the headers and notes (a corrupt core, not only a short one).
    let head = full[..notes_end].to_vec();
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    for _ in 0..3000 {
        let mut b = head.clone();
        for _ in 0..1 + next() % 8 {
            let i = (next() % b.len() as u64) as usize;
            b[i] = next() as u8;
        }
        if let Ok(cap) = corefile::from_bytes("mutated", Box::new(b), None) {
            for t in &cap.threads {
                let mut buf = [0u8; 64];
                cap.memory.read(t.registers.rsp, &mut buf);
            }
        }
    }
    // Truncated on disk, opened through the file path.
    let cut_path = f.dir.join("core.cut");
    std::fs::write(&cut_path, &full[..notes_end + (full.len() - notes_end) / 2]).expect("write");
    let cap = corefile::open(&cut_path, None).expect("half a core opens");
    let msg = cap.problems.iter().find(|p| p.message.starts_with("core truncated:")).expect("truncation problem");
    assert!(msg.message.contains(" of ") && msg.message.contains("bytes of segments present"), "{}", msg.message);
}

#[test]
fn garbage_files_are_errors() {
    let dir = temp_dir("target-core-garbage");
    let mut seed = 0x1234_5678_9abc_def0u64;
    for (i, len) in [0usize, 1, 63, 64, 65, 1000, 100_000].into_iter().enumerate() {
        let mut bytes: Vec<u8> = (0..len)
            .map(|_| {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                seed as u8
            })
            .collect();
        if i % 2 == 1 && len >= 64 {
            // A valid-looking x86-64 core header over random program headers.
            bytes[..8].copy_from_slice(b"\x7fELF\x02\x01\x01\x00");
            bytes[16..20].copy_from_slice(&[4, 0, 62, 0]);
        }
        let p = dir.join(format!("garbage{i}"));
        std::fs::write(&p, &bytes).expect("write");
        assert!(corefile::open(&p, None).is_err(), "garbage of {len} bytes parsed as a core");
    }
    for special in ["/dev/null", "/proc/self/stat", "/"] {
        assert!(matches!(corefile::open(Path::new(special), None), Err(CaptureError::NotACore { .. })), "{special}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// Regression (hostile input): a core whose file list names a FIFO (here the
/// executable, replaced by one after the crash) made `bt ptrace --core` block
/// for ever in open(); it must finish, with the frames it can still give.
#[test]
fn a_fifo_in_the_file_list_does_not_hang_the_tracer() {
    let f = fixture();
    let dir = f.dir.join("fifo");
    std::fs::create_dir_all(&dir).expect("mkdir");
    std::fs::copy(&f.exe, dir.join("crashy")).expect("copy exe");
    let (_, _, core) = crash(&dir, "exec ./crashy");
    std::fs::remove_file(dir.join("crashy")).expect("rm exe");
    let fifo = std::ffi::CString::new(dir.join("crashy").to_string_lossy().as_bytes()).expect("path");
    // SAFETY: a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o644) }, 0, "mkfifo");
    let bt = std::env::var_os("BT_BIN").map(PathBuf::from).unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_bt")));
    let mut child = Command::new(bt)
        .args(["ptrace", "--core"])
        .arg(&core)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn bt");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let status = loop {
        if let Some(s) = child.try_wait().expect("wait") {
            break s;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("bt ptrace --core blocked on a FIFO named by the core");
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    let out = child.wait_with_output().expect("output");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(status.success(), "{}{}", text, String::from_utf8_lossy(&out.stderr));
    assert!(text.contains("Thread"), "threads still listed: {text}");
}

/// Cores as systemd-coredump keeps them (zstd, streamed without a content size): read
/// as the core they inflate to; a stream cut short gives the core as far as it goes,
/// with the problem said; xz and lz4 cores, and zstd streams of something else, are
/// clear errors.
#[test]
fn zstd_compressed_cores_are_read_as_the_core_they_hold() {
    use std::io::Write;
    let f = fixture();
    let full = std::fs::read(&f.core).expect("read core");
    let mut enc = zstd::stream::Encoder::new(Vec::new(), 3).expect("zstd");
    enc.write_all(&full).expect("compress");
    let packed = enc.finish().expect("compress");
    let dir = f.dir.join("zstd");
    std::fs::create_dir_all(&dir).expect("mkdir");
    let zst = dir.join("core.crashy.zst");
    std::fs::write(&zst, &packed).expect("write");

    let plain = corefile::open(&f.core, Some(&f.exe)).expect("the core");
    let cap = corefile::open(&zst, Some(&f.exe)).expect("the compressed core");
    let regs = |c: &bt::capture::Capture| {
        c.threads.iter().map(|t| (t.tid, t.registers.rip, t.registers.rsp)).collect::<Vec<_>>()
    };
    assert_eq!(regs(&cap), regs(&plain));
    assert_eq!(cap.maps.len(), plain.maps.len());
    assert_eq!(cap.signal.as_ref().map(|s| s.fault_address), Some(Some(0x10)));
    assert!(cap.problems.is_empty(), "{:?}", cap.problems);
    for t in &plain.threads {
        let (mut a, mut b) = ([0u8; 256], [0u8; 256]);
        assert_eq!(cap.memory.read(t.registers.rsp, &mut a), plain.memory.read(t.registers.rsp, &mut b));
        assert_eq!(a, b, "stack of {}", t.tid);
    }

    // Cut short, as a disk that filled up while systemd-coredump wrote it.
    let cut = dir.join("core.cut.zst");
    std::fs::write(&cut, &packed[..packed.len() / 2]).expect("write");
    let cap = corefile::open(&cut, None).expect("half a compressed core opens");
    assert_eq!(cap.threads.len(), 5);
    assert!(
        cap.problems.iter().any(|p| p.message.contains("zstd stream") && p.message.contains("breaks")),
        "{:?}",
        cap.problems
    );

    // Other compressions, and a zstd stream of something that is no core.
    for (name, bytes, want) in [
        ("core.xz", b"\xfd7zXZ\x00\x00\x04garbage".to_vec(), "compressed with xz"),
        ("core.lz4", b"\x04\x22\x4d\x18garbage".to_vec(), "compressed with lz4"),
        ("junk.zst", zstd::encode_all(&b"not a core at all ".repeat(8)[..], 3).expect("zstd"), "no ELF magic"),
        ("bad.zst", b"\x28\xb5\x2f\xfd\xff\xff\xff\xff".to_vec(), "zstd stream"),
    ] {
        let p = dir.join(name);
        std::fs::write(&p, &bytes).expect("write");
        match corefile::open(&p, None) {
            Err(e @ CaptureError::NotACore { .. }) => assert!(e.to_string().contains(want), "{name}: {e}"),
            other => panic!("{name}: {:?}", other.map(|c| c.threads.len())),
        }
    }
}
