//! Shared fixtures of the tracer's integration tests: the `bt` under test, the example
//! programs built and crashed for real (with a temporary core_pattern that is always
//! restored), and gdb as the oracle (running it, parsing its backtraces, comparing).
#![allow(dead_code)]

use serde_json::Value;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

// ---------------------------------------------------------------------------------
// The binary under test and scratch space

/// The `bt` under test: `BT_BIN` (the Makefile points it at the static release build),
/// else the binary cargo built for this test run.
pub fn bt_bin() -> PathBuf {
    match std::env::var_os("BT_BIN") {
        Some(p) if !p.is_empty() => PathBuf::from(p),
        _ => PathBuf::from(env!("CARGO_BIN_EXE_bt")),
    }
}

pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A fresh directory under cargo's scratch space, emptied first.
pub fn scratch_dir(name: &str) -> PathBuf {
    let base = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    // Leftovers of earlier runs (their process is gone) go first: cores are large.
    if let Ok(entries) = fs::read_dir(&base) {
        for e in entries.flatten() {
            let file_name = e.file_name().to_string_lossy().into_owned();
            if let Some(pid) = file_name.strip_prefix(&format!("{name}-")).and_then(|p| p.parse::<u32>().ok()) {
                if !Path::new(&format!("/proc/{pid}")).exists() {
                    let _ = fs::remove_dir_all(e.path());
                }
            }
        }
    }
    let dir = base.join(format!("{name}-{}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("creating {}: {e}", dir.display()));
    // The kernel writes cores as root, but keep it usable for anyone.
    let _ = fs::set_permissions(&dir, fs::Permissions::from_mode(0o777));
    dir
}

/// Runs a command under coreutils `timeout`, so a hung tracer or oracle fails the test
/// instead of hanging it. argv[0] of the program is preserved (multicall symlinks).
pub fn run_with_timeout(secs: u64, program: &Path, args: &[&str], envs: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new("timeout");
    cmd.arg("--kill-after=5").arg(secs.to_string()).arg(program).args(args);
    for (k, v) in envs {
        cmd.env(k, v);
    }
    cmd.stdin(Stdio::null());
    let out = cmd.output().unwrap_or_else(|e| panic!("running {}: {e}", program.display()));
    if out.status.code() == Some(124) || out.status.code() == Some(137) {
        panic!(
            "{} {} timed out after {secs} s\nstderr: {}",
            program.display(),
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    out
}

/// Runs `bt ARGS…` (one minute at most).
pub fn bt(args: &[&str]) -> Output {
    run_with_timeout(120, &bt_bin(), args, &[])
}

/// Runs `bt ARGS… --json`, insists on success, and parses the snapshot.
pub fn bt_json(args: &[&str]) -> Value {
    let mut all: Vec<&str> = args.to_vec();
    all.push("--json");
    let out = bt(&all);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "bt panicked on `bt {}`:\n{stderr}", all.join(" "));
    assert!(out.status.success(), "`bt {}` failed ({}):\n{stderr}", all.join(" "), out.status);
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!("`bt {}` printed invalid JSON ({e}):\n{}", all.join(" "), String::from_utf8_lossy(&out.stdout))
    })
}

// ---------------------------------------------------------------------------------
// The example programs

/// One line of examples/crashes.tsv.
#[derive(Debug, Clone)]
pub struct CrashSpec {
    pub name: String,
    pub program: String,
    pub args: Vec<String>,
    pub signal: String,
    pub what: String,
}

pub fn crash_specs() -> Vec<CrashSpec> {
    let path = repo_root().join("examples/crashes.tsv");
    let text = fs::read_to_string(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    text.lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            assert!(f.len() >= 5, "bad line in {}: {l:?}", path.display());
            CrashSpec {
                name: f[0].into(),
                program: f[1].into(),
                args: if f[2] == "-" { vec![] } else { f[2].split(' ').map(String::from).collect() },
                signal: f[3].into(),
                what: f[4].into(),
            }
        })
        .collect()
}

pub fn crash_spec(name: &str) -> CrashSpec {
    crash_specs().into_iter().find(|s| s.name == name).unwrap_or_else(|| panic!("no example {name:?} in crashes.tsv"))
}

/// Holds an exclusive flock on a file for as long as it lives.
pub struct FileLock(fs::File);

impl FileLock {
    pub fn acquire(path: &Path) -> FileLock {
        let f = fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(path)
            .unwrap_or_else(|e| panic!("opening lock {}: {e}", path.display()));
        use std::os::fd::AsRawFd;
        // SAFETY: flock on a file descriptor we own.
        let rc = unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX) };
        assert_eq!(rc, 0, "flock {}: {}", path.display(), std::io::Error::last_os_error());
        FileLock(f)
    }
}

/// Builds the examples (once per test binary; `make` is incremental and serialized
/// across test binaries by a lock) and returns the directory holding them.
pub fn examples_dir() -> &'static Path {
    static DIR: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    let r = DIR.get_or_init(|| {
        let out = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("examples");
        let _lock = FileLock::acquire(&PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("examples.lock"));
        let res = Command::new("make")
            .arg("-s")
            .arg("-C")
            .arg(repo_root().join("examples"))
            .arg(format!("OUT={}", out.display()))
            .output()
            .map_err(|e| format!("running make for the examples: {e}"))?;
        if !res.status.success() {
            return Err(format!(
                "building the examples failed:\n{}{}",
                String::from_utf8_lossy(&res.stdout),
                String::from_utf8_lossy(&res.stderr)
            ));
        }
        Ok(out)
    });
    match r {
        Ok(p) => p,
        Err(e) => panic!("{e}"),
    }
}

// ---------------------------------------------------------------------------------
// Crashing for real: core_pattern

const CORE_PATTERN: &str = "/proc/sys/kernel/core_pattern";
/// Where the previous pattern is kept while a test holds the guard, so that a run
/// killed mid-way (no Drop) is repaired by the next one.
const SAVED_PATTERN: &str = "/tmp/bt-tests-core_pattern.saved";
const PATTERN_LOCK: &str = "/tmp/bt-tests-core_pattern.lock";
const OUR_MARK: &str = "/bt-cores-";

/// Points core_pattern at a directory for as long as it lives; restores the previous
/// pattern on drop, also when the test panics. Holds a lock so that no two test
/// processes change the pattern at once.
pub struct CorePatternGuard {
    previous: String,
    _lock: FileLock,
}

impl CorePatternGuard {
    pub fn set(dir: &Path) -> CorePatternGuard {
        // SAFETY: geteuid has no preconditions.
        let euid = unsafe { libc::geteuid() };
        assert_eq!(euid, 0, "the core fixtures write {CORE_PATTERN} and must run as root (euid is {euid})");
        let lock = FileLock::acquire(Path::new(PATTERN_LOCK));
        let mut previous = fs::read_to_string(CORE_PATTERN).expect("reading core_pattern").trim_end().to_string();
        if previous.contains(OUR_MARK) {
            // A previous run died holding the pattern: repair from its saved copy.
            let saved = fs::read_to_string(SAVED_PATTERN).unwrap_or_else(|e| {
                panic!("core_pattern is a leftover test pattern {previous:?} and {SAVED_PATTERN} is unreadable: {e}")
            });
            previous = saved.trim_end().to_string();
        }
        fs::write(SAVED_PATTERN, &previous).expect("saving core_pattern");
        let dir_str = dir.to_str().expect("utf-8 scratch path");
        assert!(dir_str.contains(OUR_MARK), "core directories must be named {OUR_MARK}*: {dir_str}");
        let pattern = format!("{dir_str}/core.%p");
        if let Err(e) = fs::write(CORE_PATTERN, &pattern) {
            panic!("cannot set {CORE_PATTERN} to {pattern:?}: {e} (the core tests need root and a writable /proc/sys)");
        }
        let now = fs::read_to_string(CORE_PATTERN).expect("reading core_pattern back");
        assert_eq!(now.trim_end(), pattern, "core_pattern did not take our value");
        CorePatternGuard { previous, _lock: lock }
    }
}

impl Drop for CorePatternGuard {
    fn drop(&mut self) {
        match fs::write(CORE_PATTERN, &self.previous) {
            Ok(()) => {
                let _ = fs::remove_file(SAVED_PATTERN);
            }
            Err(e) => eprintln!("FAILED to restore core_pattern to {:?}: {e}", self.previous),
        }
    }
}

/// A real crash: the executable, the core the kernel wrote, and who it was.
#[derive(Debug, Clone)]
pub struct Crash {
    pub spec: CrashSpec,
    pub exe: PathBuf,
    pub core: PathBuf,
    pub pid: i32,
}

pub fn signal_number(name: &str) -> i32 {
    match name {
        "SIGSEGV" => libc::SIGSEGV,
        "SIGABRT" => libc::SIGABRT,
        "SIGBUS" => libc::SIGBUS,
        "SIGILL" => libc::SIGILL,
        "SIGFPE" => libc::SIGFPE,
        "SIGTRAP" => libc::SIGTRAP,
        other => panic!("unknown signal name {other:?}"),
    }
}

/// Lets the child dump core: RLIMIT_CORE unlimited.
pub fn allow_core_dumps(cmd: &mut Command) {
    // SAFETY: setrlimit is async-signal-safe; nothing else runs between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            let unlimited = libc::rlimit { rlim_cur: libc::RLIM_INFINITY, rlim_max: libc::RLIM_INFINITY };
            if libc::setrlimit(libc::RLIMIT_CORE, &unlimited) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

/// Runs `exe` (from its own directory, with RLIMIT_CORE unlimited) and waits for it
/// to die of `spec.signal` with a core. The caller holds a [`CorePatternGuard`] for `core_dir`.
pub fn crash_one(spec: &CrashSpec, exe: &Path, core_dir: &Path) -> Crash {
    let mut cmd = Command::new(exe);
    cmd.args(&spec.args).current_dir(exe.parent().expect("exe has a directory"));
    cmd.stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::null());
    allow_core_dumps(&mut cmd);
    let mut child = cmd.spawn().unwrap_or_else(|e| panic!("starting {}: {e}", exe.display()));
    let pid = child.id() as i32;
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(s) = child.try_wait().expect("waiting for the example") {
            break s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("example {} did not crash within 60 s", spec.name);
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    assert_eq!(
        status.signal(),
        Some(signal_number(&spec.signal)),
        "example {} should die of {} but ended with {status}",
        spec.name,
        spec.signal
    );
    assert!(status.core_dumped(), "example {} died of {} without a core (status {status})", spec.name, spec.signal);
    let written = core_dir.join(format!("core.{pid}"));
    let core = core_dir.join(format!("{}.core", spec.name));
    fs::rename(&written, &core).unwrap_or_else(|e| {
        panic!("the kernel reported a core for {} but {} is missing: {e}", spec.name, written.display())
    });
    Crash { spec: spec.clone(), exe: exe.to_path_buf(), core, pid }
}

/// Compiles `src` (relative to the repository) into a fresh scratch directory, runs
/// it until it dies of SIGSEGV, and returns (exe, core).
pub fn compile_and_crash(name: &str, compiler: &str, flags: &[&str], src: &str) -> (PathBuf, PathBuf) {
    let dir = scratch_dir(&format!("bt-cores-variables-{name}"));
    let c = build_and_crash(&dir, name, compiler, flags, &repo_root().join(src));
    (c.exe, c.core)
}

/// Builds `src` with `compiler FLAGS… -o DIR/NAME SRC` and crashes the program once
/// (no arguments, expecting SIGSEGV) under a core_pattern guard pointing at `dir`.
pub fn build_and_crash(dir: &Path, name: &str, compiler: &str, flags: &[&str], src: &Path) -> Crash {
    let exe = dir.join(name);
    let built = Command::new(compiler)
        .args(flags)
        .arg("-o")
        .arg(&exe)
        .arg(src)
        .output()
        .unwrap_or_else(|e| panic!("running {compiler}: {e}"));
    assert!(built.status.success(), "{compiler} {flags:?} failed:\n{}", String::from_utf8_lossy(&built.stderr));
    let spec = CrashSpec {
        name: name.into(),
        program: name.into(),
        args: vec![],
        signal: "SIGSEGV".into(),
        what: format!("{} built with {compiler} {flags:?}", src.display()),
    };
    let _guard = CorePatternGuard::set(dir);
    crash_one(&spec, &exe, dir)
}

/// Every example of crashes.tsv, crashed once per test binary.
pub fn crashes() -> &'static [Crash] {
    static CRASHES: OnceLock<Result<Vec<Crash>, String>> = OnceLock::new();
    let r = CRASHES.get_or_init(|| {
        let examples = examples_dir();
        let specs = crash_specs();
        let dir = scratch_dir(&format!("bt-cores-{}", test_binary_name()));
        std::panic::catch_unwind(|| {
            let _guard = CorePatternGuard::set(&dir);
            specs.iter().map(|s| crash_one(s, &examples.join(&s.program), &dir)).collect::<Vec<_>>()
        })
        .map_err(|e| panic_message(&e))
    });
    match r {
        Ok(v) => v,
        Err(e) => panic!("the core fixture failed: {e}"),
    }
}

pub fn crash(name: &str) -> &'static Crash {
    crashes().iter().find(|c| c.spec.name == name).unwrap_or_else(|| panic!("no example crash {name:?}"))
}

fn test_binary_name() -> String {
    std::env::current_exe()
        .ok()
        .and_then(|p| p.file_stem().map(|s| s.to_string_lossy().into_owned()))
        // `ptrace_core-f5baf3e27ba5a8d7` → `ptrace_core`
        .map(|s| s.split('-').next().unwrap_or(&s).to_string())
        .unwrap_or_else(|| "tests".into())
}

fn panic_message(e: &Box<dyn std::any::Any + Send>) -> String {
    if let Some(s) = e.downcast_ref::<String>() {
        s.clone()
    } else if let Some(s) = e.downcast_ref::<&str>() {
        s.to_string()
    } else {
        "panic".into()
    }
}

// ---------------------------------------------------------------------------------
// The oracle: gdb

#[derive(Debug, Clone, PartialEq, Default)]
pub struct GdbFrame {
    /// None for gdb's `??`.
    pub function: Option<String>,
    pub file: Option<String>,
    pub line: Option<u32>,
    /// `<signal handler called>`: the signal trampoline.
    pub signal_trampoline: bool,
    /// `from LIB`: gdb had only the symbol table of this module.
    pub from: Option<String>,
    pub raw: String,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct GdbThread {
    pub tid: i32,
    pub name: Option<String>,
    pub frames: Vec<GdbFrame>,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct GdbReport {
    pub threads: Vec<GdbThread>,
    /// `SIGSEGV` from "Program terminated with signal SIGSEGV, …".
    pub signal: Option<String>,
    /// The thread gdb selected when loading a core (the one the signal hit).
    pub current_tid: Option<i32>,
    pub raw: String,
}

impl GdbReport {
    /// The thread the signal hit: gdb's current thread, or the only thread.
    pub fn faulting_tid(&self) -> Option<i32> {
        self.current_tid.or_else(|| if self.threads.len() == 1 { Some(self.threads[0].tid) } else { None })
    }
}

/// The gdb command every oracle run shares. `past-main on` makes gdb print the frames
/// outside main too (libc start, Rust's lang_start), so whole stacks are compared.
fn gdb_args() -> Vec<&'static str> {
    vec![
        "-batch",
        "-nx",
        "-ex",
        "set pagination off",
        "-ex",
        "set width 0",
        "-ex",
        "set backtrace past-main on",
        "-ex",
        "set backtrace limit unlimited",
        "-ex",
        "thread apply all bt",
    ]
}

pub fn gdb_core(exe: &Path, core: &Path) -> GdbReport {
    let mut args = gdb_args();
    let (e, c) = (exe.to_str().expect("utf-8 path"), core.to_str().expect("utf-8 path"));
    args.push(e);
    args.push(c);
    let out = run_with_timeout(600, Path::new("gdb"), &args, &[]);
    let text = String::from_utf8_lossy(&out.stdout).into_owned() + &*String::from_utf8_lossy(&out.stderr);
    let report = parse_gdb(&text);
    assert!(!report.threads.is_empty(), "gdb printed no threads for {}:\n{text}", core.display());
    report
}

pub fn gdb_live(pid: i32) -> GdbReport {
    let mut args = gdb_args();
    let pid_s = pid.to_string();
    args.push("-p");
    args.push(&pid_s);
    let out = run_with_timeout(300, Path::new("gdb"), &args, &[]);
    let text = String::from_utf8_lossy(&out.stdout).into_owned() + &*String::from_utf8_lossy(&out.stderr);
    let report = parse_gdb(&text);
    assert!(!report.threads.is_empty(), "gdb printed no threads for pid {pid}:\n{text}");
    report
}

/// Parses the text of `thread apply all bt` (plus gdb's core banner).
pub fn parse_gdb(text: &str) -> GdbReport {
    let mut report = GdbReport { raw: text.to_string(), ..Default::default() };
    let mut current: Option<GdbThread> = None;
    for line in text.lines() {
        let line = line.trim_end();
        if let Some(rest) = line.strip_prefix("Program terminated with signal ") {
            report.signal = Some(rest.split(',').next().unwrap_or(rest).trim().to_string());
        } else if line.starts_with("[Current thread is ") {
            report.current_tid = lwp_of(line);
        } else if line.starts_with("Thread ") && line.ends_with(':') {
            if let Some(t) = current.take() {
                report.threads.push(without_null_tail(t));
            }
            let tid = lwp_of(line).unwrap_or_else(|| panic!("no LWP in gdb thread header {line:?}"));
            // `Thread 2 (Thread 0x7f… (LWP 123) "worker-0"):`
            let name = line.rfind(") \"").map(|i| {
                let s = &line[i + 3..];
                s.trim_end_matches(':').trim_end_matches(')').trim_end_matches('"').to_string()
            });
            current = Some(GdbThread { tid, name, frames: vec![] });
        } else if let Some(frame) = parse_gdb_frame(line) {
            if let Some(t) = current.as_mut() {
                t.frames.push(frame);
            }
        }
    }
    if let Some(t) = current.take() {
        report.threads.push(without_null_tail(t));
    }
    report
}

/// gdb's last frame `0x0000000000000000 in ?? ()` is no frame: gdb unwound past the
/// end of a stack, seen on a thread caught inside `clone3` before the new thread's
/// first instruction (its CFI does not yet mark the outermost frame); bt stops there.
fn without_null_tail(mut t: GdbThread) -> GdbThread {
    if t.frames.len() > 1
        && t.frames.last().is_some_and(|f| f.function.is_none() && f.raw.contains(" 0x0000000000000000 in ?? ()"))
    {
        t.frames.pop();
    }
    t
}

fn is_ident_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

fn lwp_of(line: &str) -> Option<i32> {
    let i = line.find("(LWP ")?;
    let digits: String = line[i + 5..].chars().take_while(|c| c.is_ascii_digit()).collect();
    digits.parse().ok()
}

/// Parses `#N  [0xADDR in ]FUNCTION (ARGS) [at FILE:LINE | from LIB]`.
pub fn parse_gdb_frame(line: &str) -> Option<GdbFrame> {
    let rest = line.strip_prefix('#')?;
    let n_digits = rest.chars().take_while(|c| c.is_ascii_digit()).count();
    if n_digits == 0 {
        return None;
    }
    let mut rest = rest[n_digits..].trim_start();
    let raw = line.to_string();
    if rest.starts_with("<signal handler called>") {
        return Some(GdbFrame { signal_trampoline: true, raw, ..Default::default() });
    }
    if rest.starts_with("0x") {
        let i = rest.find(" in ")?;
        rest = &rest[i + 4..];
    }
    // The name ends at the first " (" outside template brackets and parentheses.
    let bytes = rest.as_bytes();
    let (mut angle, mut paren, mut i) = (0i32, 0i32, 0usize);
    let mut name_end = None;
    while i < bytes.len() {
        if rest[i..].starts_with("operator") && (i == 0 || !is_ident_byte(bytes[i - 1])) {
            // Skip the operator's symbol so `operator<` or `operator()` do not count.
            i += "operator".len();
            if rest[i..].starts_with("()") {
                i += 2;
            } else {
                while i < bytes.len() && b"<>=!+-*/%&|^~[]".contains(&bytes[i]) {
                    i += 1;
                }
            }
            continue;
        }
        match bytes[i] {
            b'<' => angle += 1,
            b'>' => angle -= 1,
            b'(' => paren += 1,
            b')' => paren -= 1,
            b' ' if angle <= 0 && paren <= 0 && bytes.get(i + 1) == Some(&b'(') => {
                name_end = Some(i);
                break;
            }
            _ => {}
        }
        i += 1;
    }
    let name_end = name_end?;
    let function = rest[..name_end].trim();
    // Skip the argument list, honouring quoted strings and chars.
    let args = &rest[name_end + 1..];
    let mut depth = 0i32;
    let mut quote: Option<char> = None;
    let mut escaped = false;
    let mut after = None;
    for (j, c) in args.char_indices() {
        if let Some(q) = quote {
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == q {
                quote = None;
            }
            continue;
        }
        match c {
            '"' | '\'' => quote = Some(c),
            '(' => depth += 1,
            ')' => {
                depth -= 1;
                if depth == 0 {
                    after = Some(j + 1);
                    break;
                }
            }
            _ => {}
        }
    }
    let tail = after.map(|j| args[j..].trim()).unwrap_or("");
    let mut frame = GdbFrame {
        function: if function == "??" { None } else { Some(function.to_string()) },
        raw,
        ..Default::default()
    };
    if let Some(loc) = tail.strip_prefix("at ") {
        if let Some((file, line)) = loc.rsplit_once(':') {
            frame.file = Some(file.to_string());
            frame.line = line.trim().parse().ok();
        } else {
            frame.file = Some(loc.to_string());
        }
    } else if let Some(lib) = tail.strip_prefix("from ") {
        frame.from = Some(lib.to_string());
    }
    Some(frame)
}

// ---------------------------------------------------------------------------------
// Comparing bt with gdb

/// Reduces a function name to what two demanglers and two debuggers surely agree on:
/// the last component of the qualified name, without template arguments, parameter
/// lists, cv-qualifiers, clone suffixes, symbol versions, Rust hashes or glibc's
/// `__GI_` alias prefix. `std::function<long (…)>::operator()(…) const` → `operator()`.
pub fn normalize_function(name: &str) -> String {
    let mut s = name.trim();
    if let Some(i) = s.find('@') {
        s = &s[..i]; // `memcpy@@GLIBC_2.14`
    }
    let s = s.replace("(anonymous namespace)", "{anon}").replace("{{closure}}", "{closure}");
    // Drop bracketed groups, keeping operator symbols.
    let bytes = s.as_bytes();
    let mut out = String::new();
    let mut i = 0;
    let mut depth = 0i32;
    while i < bytes.len() {
        if depth == 0 && s[i..].starts_with("operator") && (i == 0 || !is_ident_byte(bytes[i - 1])) {
            let start = i;
            i += "operator".len();
            if s[i..].starts_with("()") {
                i += 2;
            } else {
                while i < bytes.len() && b"<>=!+-*/%&|^~[],".contains(&bytes[i]) {
                    i += 1;
                }
            }
            out.push_str(&s[start..i]);
            continue;
        }
        match bytes[i] {
            b'<' | b'(' | b'[' => depth += 1,
            b'>' | b')' | b']' => depth -= 1,
            c if depth == 0 => out.push(c as char),
            _ => {}
        }
        i += 1;
    }
    // Rust turbofish leftovers: `do_call::<…>` became `do_call::`.
    let mut out = out.trim().trim_end_matches("::").to_string();
    for suffix in [" const", " volatile", " &&", " &"] {
        while let Some(stripped) = out.strip_suffix(suffix) {
            out = stripped.trim_end().to_string();
        }
    }
    // Last component of the qualified name.
    let last = out.rsplit("::").next().unwrap_or(&out).trim().to_string();
    // Rust legacy hash, GCC clone suffixes.
    let mut last = last;
    if last.len() == 17 && last.starts_with('h') && last[1..].chars().all(|c| c.is_ascii_hexdigit()) {
        let prev: Vec<&str> = out.rsplit("::").collect();
        last = prev.get(1).map(|s| s.to_string()).unwrap_or(last);
    }
    for marker in [".cold", ".constprop", ".isra", ".part", ".lto_priv"] {
        if let Some(i) = last.find(marker) {
            last.truncate(i);
        }
    }
    // closures: `{closure#0}` (DWARF, v0) and `{closure}` (legacy) are the same.
    if last.starts_with("{closure") {
        last = "{closure}".into();
    }
    let last = last.strip_prefix("__GI_").map(str::to_string).unwrap_or(last);
    last.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The full name with whitespace normalized: runs of spaces become one, and a space
/// survives only between two identifier characters (`vector<int, std::allocator<int> >`
/// and `vector<int,std::allocator<int>>` read the same).
pub fn full_name(name: &str) -> String {
    let words: Vec<&str> = name.split_whitespace().collect();
    let mut out = String::new();
    for w in words {
        if let (Some(a), Some(b)) = (out.chars().last(), w.chars().next())
            && (a.is_alphanumeric() || a == '_')
            && (b.is_alphanumeric() || b == '_')
        {
            out.push(' ');
        }
        out.push_str(w);
    }
    out
}

/// Whether gdb's and bt's names of a function are the same: the full names, whitespace
/// normalized. The looser comparison of the last component is kept only where gdb's
/// own output is known to vary, each case with its reason.
pub fn same_function(gdb: &str, bt: &str) -> bool {
    if full_name(gdb) == full_name(bt) {
        return true;
    }
    let loose = normalize_function(gdb) == normalize_function(bt);
    // gdb keeps a parameter list, rendered by its own type printer, where its C++ name
    // parser gives up on a DWARF name without a linkage name (GCC's `_M_invoke` of a
    // std::function holding a lambda: `…::<lambda(…)> >::_M_invoke(const
    // std::_Any_data &, …)`); bt gives the name without the list.
    let params_only = gdb.ends_with(')') && full_name(gdb).starts_with(&full_name(bt));
    // glibc's internal aliases: gdb names a function by the alias its DWARF or symbol
    // table gives first (`__GI_raise` / `raise`, `__GI___qsort_r` / `__qsort_r`).
    let gi_alias = full_name(gdb).strip_prefix("__GI_") == Some(&full_name(bt));
    loose && (params_only || gi_alias)
}

fn basename(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}

/// A frame of bt's JSON, reduced to what is compared.
#[derive(Debug, Clone)]
pub struct BtFrame {
    pub function: Option<String>,
    pub file: Option<String>,
    pub line: Option<u32>,
    pub inlined: bool,
    pub signal_frame: bool,
    pub module: Option<String>,
    pub pc: u64,
    pub trust: String,
}

#[derive(Debug, Clone)]
pub struct BtThread {
    pub tid: i32,
    pub name: String,
    pub faulted: bool,
    pub frames: Vec<BtFrame>,
}

pub fn bt_threads(snap: &Value) -> Vec<BtThread> {
    let threads = snap["threads"].as_array().unwrap_or_else(|| panic!("snapshot has no threads array: {snap}"));
    threads
        .iter()
        .map(|t| BtThread {
            tid: t["tid"].as_i64().expect("thread tid") as i32,
            name: t["name"].as_str().unwrap_or("").to_string(),
            faulted: t["faulted"].as_bool().unwrap_or(false),
            frames: t["frames"]
                .as_array()
                .map(|fs| {
                    fs.iter()
                        .map(|f| BtFrame {
                            function: f["function"].as_str().map(String::from),
                            file: f["file"].as_str().map(String::from),
                            line: f["line"].as_u64().map(|l| l as u32),
                            inlined: f["inlined"].as_bool().unwrap_or(false),
                            signal_frame: f["signal_frame"].as_bool().unwrap_or(false),
                            module: f["module"].as_str().map(String::from),
                            pc: f["pc"].as_u64().unwrap_or(0),
                            trust: f["trust"].as_str().unwrap_or("").to_string(),
                        })
                        .collect()
                })
                .unwrap_or_default(),
        })
        .collect()
}

/// Why a bt frame does not match a gdb frame, or None when it does.
pub fn frame_mismatch(g: &GdbFrame, b: &BtFrame) -> Option<String> {
    if g.signal_trampoline {
        let is_tramp = b.function.as_deref().map(normalize_function).as_deref() == Some("__restore_rt")
            || (b.function.is_none() && b.signal_frame);
        return if is_tramp { None } else { Some("gdb has the signal trampoline here".into()) };
    }
    if let Some(gf) = &g.function {
        match &b.function {
            None => return Some(format!("function: gdb {gf:?}, bt none")),
            Some(bf) if !same_function(gf, bf) => return Some(format!("function: gdb {gf:?}, bt {bf:?}")),
            _ => {}
        }
    }
    if let Some(gfile) = &g.file {
        let want = basename(gfile);
        if b.file.as_deref().map(basename) != Some(want) {
            return Some(format!("file: gdb {want:?}, bt {:?}", b.file.as_deref().map(basename)));
        }
    }
    if let Some(gline) = g.line {
        // Folklore: gdb 13 keeps an inlined call's line in 16 bits, so call-site lines
        // above 65535 come out wrapped; bt prints the source's line.
        let wrapped = b.line.is_some_and(|l| l > 0xffff && l & 0xffff == gline);
        if b.line != Some(gline) && !wrapped {
            return Some(format!("line: gdb {gline}, bt {:?}", b.line));
        }
    }
    None
}

fn render_bt_frame(i: usize, f: &BtFrame) -> String {
    format!(
        "#{i:<3} {}{} ({}:{}) [{}] pc={:#x} {}",
        f.function.as_deref().unwrap_or("??"),
        if f.inlined { " [inlined]" } else { "" },
        f.file.as_deref().unwrap_or("?"),
        f.line.map(|l| l.to_string()).unwrap_or_else(|| "?".into()),
        f.module.as_deref().unwrap_or("?"),
        f.pc,
        f.trust,
    )
}

/// Compares one thread's stacks frame by frame. On a mismatch the error shows both
/// stacks aligned (a longest-common-subsequence diff), so a missing or extra frame
/// reads as one line instead of shifting everything after it.
pub fn compare_thread(g: &GdbThread, b: &BtThread) -> Result<(), String> {
    let positional: Vec<(usize, String)> = (0..g.frames.len().max(b.frames.len()))
        .filter_map(|i| match (g.frames.get(i), b.frames.get(i)) {
            (Some(gf), Some(bf)) => frame_mismatch(gf, bf).map(|why| (i, why)),
            (Some(_), None) => Some((i, "bt has no frame here".into())),
            (None, Some(_)) => Some((i, "gdb has no frame here".into())),
            (None, None) => None,
        })
        .collect();
    if positional.is_empty() {
        return Ok(());
    }
    let mut msg = format!(
        "thread {} ({} gdb frames, {} bt frames): first mismatch at #{}: {}\n",
        g.tid,
        g.frames.len(),
        b.frames.len(),
        positional[0].0,
        positional[0].1
    );
    msg.push_str("  aligned (= same, - gdb only, + bt only, ~ differs):\n");
    for line in aligned_diff(&g.frames, &b.frames) {
        msg.push_str("  ");
        msg.push_str(&line);
        msg.push('\n');
    }
    Err(msg)
}

/// Lines of an aligned view of two stacks. Long identical runs are elided.
fn aligned_diff(g: &[GdbFrame], b: &[BtFrame]) -> Vec<String> {
    let (n, m) = (g.len(), b.len());
    // Ops: (kind, gdb index, bt index).
    let mut ops: Vec<(char, Option<usize>, Option<usize>)> = vec![];
    if n * m <= 4_000_000 {
        let same = |i: usize, j: usize| frame_mismatch(&g[i], &b[j]).is_none();
        let mut lcs = vec![vec![0u32; m + 1]; n + 1];
        for i in (0..n).rev() {
            for j in (0..m).rev() {
                lcs[i][j] = if same(i, j) { lcs[i + 1][j + 1] + 1 } else { lcs[i + 1][j].max(lcs[i][j + 1]) };
            }
        }
        let (mut i, mut j) = (0, 0);
        while i < n || j < m {
            if i < n && j < m && same(i, j) {
                ops.push(('=', Some(i), Some(j)));
                i += 1;
                j += 1;
            } else if i < n && j < m && lcs[i + 1][j + 1] == lcs[i][j] {
                ops.push(('~', Some(i), Some(j)));
                i += 1;
                j += 1;
            } else if j < m && (i == n || lcs[i][j + 1] >= lcs[i + 1][j]) {
                ops.push(('+', None, Some(j)));
                j += 1;
            } else {
                ops.push(('-', Some(i), None));
                i += 1;
            }
        }
    } else {
        for k in 0..n.max(m) {
            let (gi, bj) = ((k < n).then_some(k), (k < m).then_some(k));
            let kind = match (gi, bj) {
                (Some(i), Some(j)) if frame_mismatch(&g[i], &b[j]).is_none() => '=',
                (Some(_), Some(_)) => '~',
                (Some(_), None) => '-',
                _ => '+',
            };
            ops.push((kind, gi, bj));
        }
    }
    let near_change = |k: usize| ops[k.saturating_sub(2)..(k + 3).min(ops.len())].iter().any(|o| o.0 != '=');
    let mut lines = vec![];
    let mut elided = 0;
    for (k, (kind, gi, bj)) in ops.iter().enumerate() {
        if *kind == '=' && !near_change(k) && k >= 6 && k + 4 < ops.len() {
            elided += 1;
            continue;
        }
        if elided > 0 {
            lines.push(format!("   … {elided} matching frames …"));
            elided = 0;
        }
        let gtext = gi.map(|i| g[i].raw.clone()).unwrap_or_default();
        let btext = bj.map(|j| render_bt_frame(j, &b[j])).unwrap_or_default();
        match kind {
            '=' => lines.push(format!("= {gtext}")),
            '-' => lines.push(format!("- gdb: {gtext}")),
            '+' => lines.push(format!("+ bt:  {btext}")),
            _ => {
                let why = frame_mismatch(&g[gi.unwrap()], &b[bj.unwrap()]).unwrap_or_default();
                lines.push(format!("~ gdb: {gtext}"));
                lines.push(format!("~ bt:  {btext}    <- {why}"));
            }
        }
    }
    if elided > 0 {
        lines.push(format!("   … {elided} matching frames …"));
    }
    lines
}

/// Compares whole processes: the same threads, and per thread the same frames.
pub fn compare_report(gdb: &GdbReport, snap: &Value) -> Result<(), String> {
    let bt = bt_threads(snap);
    let mut gdb_tids: Vec<i32> = gdb.threads.iter().map(|t| t.tid).collect();
    let mut bt_tids: Vec<i32> = bt.iter().map(|t| t.tid).collect();
    gdb_tids.sort();
    bt_tids.sort();
    let mut errors = vec![];
    if gdb_tids != bt_tids {
        errors.push(format!("threads differ: gdb {gdb_tids:?}, bt {bt_tids:?}"));
    }
    for g in &gdb.threads {
        if let Some(b) = bt.iter().find(|t| t.tid == g.tid) {
            if let Err(e) = compare_thread(g, b) {
                errors.push(e);
            }
        }
    }
    if errors.is_empty() { Ok(()) } else { Err(errors.join("\n")) }
}

/// The tracer's JSON for a core, with a frame cap above the deepest gdb stack.
pub fn bt_core_json(crash: &Crash, gdb: &GdbReport) -> Value {
    let deepest = gdb.threads.iter().map(|t| t.frames.len()).max().unwrap_or(0);
    let core = crash.core.to_str().expect("utf-8 path");
    let exe = crash.exe.to_str().expect("utf-8 path");
    if deepest >= 1000 {
        let cap = (deepest * 2).to_string();
        bt_json(&["ptrace", "--max-frames", &cap, "--core", core, exe])
    } else {
        bt_json(&["ptrace", "--core", core, exe])
    }
}

/// The full oracle check of one example crash: threads, frames, faulting thread, signal.
pub fn check_core_against_gdb(name: &str) {
    let crash = crash(name);
    let gdb = gdb_core(&crash.exe, &crash.core);
    // The oracle itself must have said something, or every comparison passes vacuously.
    for t in &gdb.threads {
        assert!(
            t.frames.iter().any(|f| f.function.is_some()),
            "{name}: gdb printed no named frame for thread {} (parser or gdb problem):\n{}",
            t.tid,
            gdb.raw
        );
    }
    let snap = bt_core_json(crash, &gdb);
    let mut errors = vec![];
    if let Err(e) = compare_report(&gdb, &snap) {
        errors.push(e);
    }
    // The faulting thread comes first and is the only one marked.
    let threads = bt_threads(&snap);
    match gdb.faulting_tid() {
        Some(tid) => {
            if threads.first().map(|t| t.tid) != Some(tid) || !threads[0].faulted {
                errors.push(format!(
                    "the faulting thread {tid} must be first and faulted; bt's first is {:?}",
                    threads.first().map(|t| (t.tid, t.faulted))
                ));
            }
            let marked: Vec<i32> = threads.iter().filter(|t| t.faulted).map(|t| t.tid).collect();
            if marked != vec![tid] {
                errors.push(format!("faulted marks: bt {marked:?}, expected [{tid}]"));
            }
        }
        None => errors.push(format!("gdb did not say which thread faulted:\n{}", gdb.raw)),
    }
    // The signal: gdb's reading, and what the kernel told the parent.
    let bt_signal = snap["signal"]["name"].as_str().map(String::from);
    if gdb.signal.as_deref() != Some(crash.spec.signal.as_str()) {
        errors.push(format!(
            "oracle disagrees with the kernel: gdb says {:?}, wait status {}",
            gdb.signal, crash.spec.signal
        ));
    }
    if bt_signal.as_deref() != Some(crash.spec.signal.as_str()) {
        errors.push(format!("signal: bt {:?}, kernel and gdb {}", bt_signal, crash.spec.signal));
    }
    if snap["signal"]["signo"].as_i64() != Some(signal_number(&crash.spec.signal) as i64) {
        errors.push(format!(
            "signal number: bt {}, expected {}",
            snap["signal"]["signo"],
            signal_number(&crash.spec.signal)
        ));
    }
    if let Some(tid) = gdb.faulting_tid() {
        if snap["signal"]["tid"].as_i64() != Some(tid as i64) {
            errors.push(format!("signal.tid: bt {}, gdb's faulting thread {tid}", snap["signal"]["tid"]));
        }
    }
    assert!(
        errors.is_empty(),
        "example {name} ({}): bt disagrees with gdb on {}\n{}",
        crash.spec.what,
        crash.core.display(),
        errors.join("\n")
    );
}

/// Waits (polling, up to `secs`) until the process has at least `min_tasks` tasks
/// and every one of them is asleep (state S): blocked where the test put it.
pub fn wait_all_asleep(pid: u32, min_tasks: usize, secs: u64) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
    loop {
        let states: Vec<char> = fs::read_dir(format!("/proc/{pid}/task"))
            .map(|d| {
                d.flatten()
                    .filter_map(|e| {
                        let stat = fs::read_to_string(e.path().join("stat")).ok()?;
                        stat[stat.rfind(')')? + 1..].split_whitespace().next()?.chars().next()
                    })
                    .collect()
            })
            .unwrap_or_default();
        if states.len() >= min_tasks && states.iter().all(|s| *s == 'S') {
            return;
        }
        assert!(std::time::Instant::now() < deadline, "pid {pid} never settled: task states {states:?}");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// A live process of `n` threads from examples/c/many_threads.c; killed on drop.
pub struct ManyThreads {
    pub child: std::process::Child,
}

impl ManyThreads {
    pub fn start(n: usize) -> ManyThreads {
        use std::io::BufRead;
        let mut child = std::process::Command::new(examples_dir().join("many_threads"))
            .arg(n.to_string())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("start many_threads");
        let mut line = String::new();
        let out = child.stdout.take().expect("stdout");
        std::io::BufReader::new(out).read_line(&mut line).expect("read ready");
        assert_eq!(line.trim(), "ready");
        wait_all_asleep(child.id(), n, 30);
        ManyThreads { child }
    }
}

impl Drop for ManyThreads {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `bt ptrace --core CORE EXE [EXTRA…] -o OUT`; panics with bt's message on failure.
pub fn snapshot_of_core(exe: &Path, core: &Path, out: &Path, extra: &[&str]) {
    let (core_s, exe_s, out_s) = (core.to_string_lossy(), exe.to_string_lossy(), out.to_string_lossy());
    let mut args = vec!["ptrace", "--core", &core_s, &exe_s, "-o", &out_s];
    args.extend_from_slice(extra);
    let o = bt(&args);
    assert!(o.status.success(), "bt ptrace --core: {}", String::from_utf8_lossy(&o.stderr));
}
