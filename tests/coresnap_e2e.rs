//! coresnap end to end: real crashes through the kernel's core_pattern pipe into the
//! handler, the daemon tracing and shipping them to a real `bt serve` on loopback;
//! outages, restarts, quota, corrupt cores. Needs root (core_pattern) and gcc.

mod common;
mod server_common;

use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::json;
use server_common::{bt_bin, project_with_token, try_request};

const PATTERN_LOCK: &str = "/tmp/bt-tests-core_pattern.lock";
const SAVED: &str = "/tmp/bt-tests-coresnap.saved";
const CORE_PATTERN: &str = "/proc/sys/kernel/core_pattern";
const PIPE_LIMIT: &str = "/proc/sys/kernel/core_pipe_limit";

/// A short scratch directory: the config path ends up in core_pattern (127 bytes max).
fn short_scratch(name: &str) -> PathBuf {
    // Leftovers of earlier runs whose process is gone (a failed test keeps its files).
    if let Ok(rd) = fs::read_dir("/tmp") {
        for e in rd.flatten() {
            let n = e.file_name().to_string_lossy().into_owned();
            let pid = n.strip_prefix("btcs-").and_then(|r| r.split('-').next()).and_then(|p| p.parse::<u32>().ok());
            if pid.is_some_and(|p| !Path::new(&format!("/proc/{p}")).exists()) {
                let _ = fs::remove_dir_all(e.path());
            }
        }
    }
    let d = PathBuf::from(format!("/tmp/btcs-{}-{name}", std::process::id()));
    let _ = fs::remove_dir_all(&d);
    fs::create_dir_all(&d).unwrap_or_else(|e| panic!("creating {}: {e}", d.display()));
    d
}

fn bt(args: &[&str]) -> (i32, String, String) {
    let o = Command::new(bt_bin()).args(args).stdin(Stdio::null()).output().expect("running bt");
    (
        o.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

/// The handler installed for as long as it lives, under the lock every test binary
/// that touches core_pattern takes; restored on drop, also when the test panics.
struct Installed {
    config: PathBuf,
    previous: (String, String),
    _lock: common::FileLock,
}

impl Installed {
    fn new(config: &Path) -> Installed {
        let lock = common::FileLock::acquire(Path::new(PATTERN_LOCK));
        let mut pattern = fs::read_to_string(CORE_PATTERN).expect("core_pattern").trim_end().to_string();
        let mut limit = fs::read_to_string(PIPE_LIMIT).expect("core_pipe_limit").trim_end().to_string();
        if pattern.contains(" coresnap ingest --config ") {
            // A run killed while installed: repair from its saved copy.
            let saved = fs::read_to_string(SAVED).expect("leftover coresnap pattern and no saved copy");
            let (p, l) = saved.split_once('\n').expect("saved copy: pattern\\nlimit");
            (pattern, limit) = (p.to_string(), l.trim().to_string());
        }
        fs::write(SAVED, format!("{pattern}\n{limit}\n")).expect("saving core_pattern");
        let inst = Installed { config: config.to_path_buf(), previous: (pattern, limit), _lock: lock };
        let (code, out, err) = bt(&["coresnap", "install", "--force", "--config", config.to_str().expect("utf-8")]);
        assert_eq!(code, 0, "install: {out}{err}");
        let now = fs::read_to_string(CORE_PATTERN).expect("core_pattern");
        assert!(now.contains("coresnap ingest --config"), "core_pattern is {now:?}");
        inst
    }
}

impl Drop for Installed {
    fn drop(&mut self) {
        let (code, out, err) = bt(&["coresnap", "uninstall", "--config", self.config.to_str().unwrap_or("")]);
        let now = fs::read_to_string(CORE_PATTERN).unwrap_or_default();
        if code != 0 || now.trim_end() != self.previous.0 {
            eprintln!("uninstall did not restore ({out}{err}); writing the saved values");
            let _ = fs::write(CORE_PATTERN, &self.previous.0);
            let _ = fs::write(PIPE_LIMIT, &self.previous.1);
        }
        if fs::read_to_string(PIPE_LIMIT).unwrap_or_default().trim_end() != self.previous.1 {
            let _ = fs::write(PIPE_LIMIT, &self.previous.1);
        }
        let _ = fs::remove_file(SAVED);
    }
}

/// Builds a crashing C program named `name` in `dir`.
fn program(dir: &Path, name: &str, body: &str) -> PathBuf {
    let src = dir.join(format!("{name}.c"));
    fs::write(&src, format!("#include <stdlib.h>\n#include <signal.h>\n#include <stdio.h>\n{body}\n"))
        .expect("writing C");
    let exe = dir.join(name);
    let o = Command::new("gcc").args(["-g", "-O0", "-o"]).arg(&exe).arg(&src).output().expect("gcc");
    assert!(o.status.success(), "gcc {name}: {}", String::from_utf8_lossy(&o.stderr));
    exe
}

const SEGV: &str = "__attribute__((noinline)) void poke(int *p) { *p = 42; }\nint main(void) { poke(0); return 0; }";
const ABRT: &str = "__attribute__((noinline)) void give_up(void) { abort(); }\nint main(void) { give_up(); return 0; }";
const FPE: &str = "__attribute__((noinline)) int divide(int a, int b) { return a / b; }\nint main(int c, char **v) { (void)v; return divide(7, c - 1); }";

/// Starts a crash (RLIMIT_CORE unlimited, optional environment).
fn start_crash(exe: &Path, env: &[(&str, &str)]) -> Child {
    let mut cmd = Command::new(exe);
    cmd.stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::null());
    for (k, v) in env {
        cmd.env(k, v);
    }
    // SAFETY: setrlimit is async-signal-safe.
    unsafe {
        cmd.pre_exec(|| {
            let r = libc::rlimit { rlim_cur: libc::RLIM_INFINITY, rlim_max: libc::RLIM_INFINITY };
            libc::setrlimit(libc::RLIMIT_CORE, &r);
            Ok(())
        });
    }
    cmd.spawn().unwrap_or_else(|e| panic!("starting {}: {e}", exe.display()))
}

fn wait_crash(mut c: Child) {
    let st = c.wait().expect("wait");
    assert!(st.signal().is_some() && st.core_dumped(), "expected a core dump, got {st}");
}

/// A `bt serve` on a fixed address (so it can be stopped and started again).
struct Serve {
    child: Child,
}

impl Serve {
    fn start(data: &Path, addr: &str) -> Serve {
        let mut child = Command::new(bt_bin())
            .args(["serve", "--data"])
            .arg(data)
            .args(["--listen", addr])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("bt serve");
        let out = child.stdout.take().expect("stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut l = String::new();
            let _ = BufReader::new(out).read_line(&mut l);
            let _ = tx.send(l);
        });
        let line = rx.recv_timeout(Duration::from_secs(30)).expect("bt serve did not start");
        assert!(line.starts_with("listening on"), "bt serve said {line:?}");
        Serve { child }
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_addr() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr").to_string()
}

/// A long-running daemon, killed on drop; its log kept for failures.
struct Daemon {
    child: Child,
    log: PathBuf,
}

impl Daemon {
    fn start(config: &Path, log: &Path) -> Daemon {
        let f = fs::File::create(log).expect("daemon log");
        let child = Command::new(bt_bin())
            .args(["coresnap", "daemon", "--config"])
            .arg(config)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(f)
            .spawn()
            .expect("daemon");
        Daemon { child, log: log.to_path_buf() }
    }
    fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
    fn log(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.kill9();
    }
}

struct Setup {
    dir: PathBuf,
    data: PathBuf,
    addr: String,
    config: PathBuf,
    archive: PathBuf,
    /// project → token (submit + query).
    tokens: Vec<(String, String)>,
}

impl Setup {
    fn new(name: &str, extra: &str) -> Setup {
        let dir = short_scratch(name);
        let data = dir.join("data");
        let tokens: Vec<(String, String)> = ["alpha", "beta"]
            .iter()
            .map(|p| (p.to_string(), project_with_token(&data, p, &["submit", "query"])))
            .collect();
        let addr = free_addr();
        let archive = dir.join("arch");
        let config = dir.join("c.conf");
        let mut text = format!(
            "# test configuration\n[archive]\narchive.path = {}\n[server]\nserver.url = http://{addr}\n",
            archive.display()
        );
        for (p, t) in &tokens {
            text.push_str(&format!("token.{p} = {t}\n"));
        }
        text.push_str("format.1 = alpha %e ^alpha\nformat.2 = beta\ndump.quota = 0%\ntracer.jobs = 2\n");
        text.push_str(extra);
        fs::write(&config, text).expect("config");
        Setup { dir, data, addr, config, archive, tokens }
    }

    fn token(&self, p: &str) -> &str {
        &self.tokens.iter().find(|(q, _)| q == p).expect("project").1
    }

    fn cfg(&self) -> &str {
        self.config.to_str().expect("utf-8")
    }

    fn query(&self, project: &str, q: serde_json::Value) -> Option<serde_json::Value> {
        let path = format!("/api/query?token={}&project={project}", self.token(project));
        let r =
            try_request(&self.addr, "POST", &path, &[("Content-Type", "application/json")], q.to_string().as_bytes())
                .ok()?;
        (r.status == 200).then(|| r.json())
    }

    /// Objects of a project: (coresnap.uuid, selected values).
    fn objects(&self, project: &str, select: &[&str]) -> Vec<Vec<serde_json::Value>> {
        let mut sel = vec!["coresnap.uuid"];
        sel.extend_from_slice(select);
        let Some(out) = self.query(project, json!({"select": sel, "limit": 10000})) else { return vec![] };
        out["rows"]
            .as_array()
            .map(|rows| rows.iter().map(|r| r[1].as_array().cloned().unwrap_or_default()).collect())
            .unwrap_or_default()
    }

    fn stage(&self, s: &str) -> Vec<String> {
        fs::read_dir(self.archive.join(s))
            .map(|rd| {
                rd.flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .filter(|n| !n.starts_with('.'))
                    .collect()
            })
            .unwrap_or_default()
    }

    fn once(&self) -> (i32, String) {
        let (c, o, e) = bt(&["coresnap", "daemon", "--once", "--config", self.cfg()]);
        (c, format!("{o}{e}"))
    }

    /// Feeds the handler directly (no kernel): the pid of a live process and `core` on stdin.
    fn feed(&self, pid: u32, exe: &Path, core: &[u8]) {
        let e = format!("{}", exe.display()).replace('/', "!");
        let mut c = Command::new(bt_bin())
            .args(["coresnap", "ingest", "--config", self.cfg()])
            .args([&pid.to_string(), &pid.to_string(), "0", "0", "11", "1700000000", "host", &e])
            .stdin(Stdio::piped())
            .spawn()
            .expect("ingest");
        let _ = c.stdin.take().expect("stdin").write_all(core);
        assert!(c.wait().expect("ingest").success());
    }

    fn wait_for(&self, what: &str, secs: u64, mut f: impl FnMut() -> bool) {
        let t = Instant::now();
        while !f() {
            assert!(
                t.elapsed() < Duration::from_secs(secs),
                "{what}: not within {secs} s; archive {:?} {:?} {:?} {:?}\nlog:\n{}",
                self.stage("pending"),
                self.stage("sending"),
                self.stage("done"),
                self.stage("failed"),
                fs::read_to_string(self.archive.join("coresnap.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

fn is_root() -> bool {
    // SAFETY: no preconditions.
    unsafe { libc::geteuid() == 0 }
}

#[test]
fn kernel_crashes_arrive_with_attributes_and_routing() {
    assert!(is_root(), "this test installs a core_pattern handler and must run as root");
    let s = Setup::new("e2e", "");
    let alpha = program(&s.dir, "alpha_segv", SEGV);
    let beta = program(&s.dir, "beta_abort", ABRT);
    let gamma = program(&s.dir, "gamma_fpe", FPE);
    let _server = Serve::start(&s.data, &s.addr);
    let daemon = Daemon::start(&s.config, &s.dir.join("daemon.log"));
    {
        let _inst = Installed::new(&s.config);
        // Latency: one small crash, from spawn to queryable in the store.
        let t0 = Instant::now();
        wait_crash(start_crash(&alpha, &[]));
        s.wait_for("the first crash in the store", 30, || s.objects("alpha", &[]).len() == 1);
        let latency = t0.elapsed();
        eprintln!("FIGURE crash -> queryable object: {} ms", latency.as_millis());
        // Several at once, one with BACKTRACE_DEFAULTS in its environment.
        let kids = vec![
            start_crash(&alpha, &[("BACKTRACE_DEFAULTS", "build=77\nteam=storage")]),
            start_crash(&beta, &[]),
            start_crash(&gamma, &[]),
            start_crash(&beta, &[]),
        ];
        kids.into_iter().for_each(wait_crash);
        // A burst of 50.
        let t1 = Instant::now();
        let burst: Vec<Child> = (0..50).map(|i| start_crash(if i % 2 == 0 { &alpha } else { &gamma }, &[])).collect();
        burst.into_iter().for_each(wait_crash);
        eprintln!("FIGURE burst of 50 crashes handled by the kernel in {} ms", t1.elapsed().as_millis());
    } // handler uninstalled here, before the slow part
    s.wait_for("all 55 crashes in the store", 240, || {
        s.objects("alpha", &[]).len() + s.objects("beta", &[]).len() == 55
    });
    // Another test may hold the lock and its own handler by now, so this checks that
    // this test's handler (its config path) is gone, not that no handler is installed.
    let ours = s.config.to_str().expect("utf-8").to_string();
    assert_eq!(
        fs::read_to_string(CORE_PATTERN).map(|p| p.contains(&ours)).ok(),
        Some(false),
        "core_pattern not restored"
    );
    let alpha_rows = s.objects("alpha", &["application", "build", "team", "crash.uid", "signal"]);
    let beta_rows = s.objects("beta", &["application", "signal"]);
    assert_eq!(alpha_rows.len(), 1 + 1 + 25, "alpha: {alpha_rows:?}");
    assert_eq!(beta_rows.len(), 2 + 1 + 25, "beta (default route)");
    assert!(alpha_rows.iter().all(|r| r[1] == "alpha_segv"), "{alpha_rows:?}");
    let tagged: Vec<_> = alpha_rows.iter().filter(|r| r[2] == 77 || r[2] == "77").collect();
    assert_eq!(tagged.len(), 1, "BACKTRACE_DEFAULTS of the crashed process: {alpha_rows:?}");
    assert_eq!(tagged[0][3], "storage");
    assert!(alpha_rows.iter().all(|r| r[4] == 0 || r[4] == "0"), "crash.uid: {alpha_rows:?}");
    let mut apps: Vec<String> = beta_rows.iter().map(|r| r[1].as_str().unwrap_or("").to_string()).collect();
    apps.sort();
    apps.dedup();
    assert_eq!(apps, vec!["beta_abort", "gamma_fpe"]);
    // Every crash exactly once, all in done/.
    let mut uuids: Vec<String> =
        alpha_rows.iter().chain(&beta_rows).map(|r| r[0].as_str().unwrap_or("").to_string()).collect();
    uuids.sort();
    uuids.dedup();
    assert_eq!(uuids.len(), 55);
    // The server acknowledges before the daemon moves the crash to done/.
    s.wait_for("all 55 in done/", 10, || s.stage("done").len() == 55);
    let log = daemon.log();
    assert!(log.contains("traced in") && log.contains("sent to alpha as object"), "{log}");
    let (code, out, _) = bt(&["coresnap", "list", "--config", s.cfg()]);
    assert_eq!(code, 0);
    assert!(out.contains("55 crashes: pending 0, sending 0, done 55, failed 0"), "{out}");
    assert!(out.contains("csa") && out.contains("alpha_segv"), "{out}");
    let _ = fs::remove_dir_all(&s.dir);
}

#[test]
fn server_down_then_back_and_daemon_killed_midway() {
    assert!(is_root(), "this test installs a core_pattern handler and must run as root");
    let s = Setup::new("outage", "");
    let alpha = program(&s.dir, "alpha_segv", SEGV);
    let beta = program(&s.dir, "beta_abort", ABRT);
    {
        let _inst = Installed::new(&s.config);
        let kids: Vec<Child> = (0..12).map(|i| start_crash(if i % 3 == 0 { &beta } else { &alpha }, &[])).collect();
        kids.into_iter().for_each(wait_crash);
    }
    // No server: everything is traced and waits in sending/.
    let mut daemon = Daemon::start(&s.config, &s.dir.join("d1.log"));
    s.wait_for("12 crashes waiting in sending/", 120, || s.stage("sending").len() == 12);
    s.wait_for("the daemon to say a crash waits", 30, || daemon.log().contains("waits in sending/"));
    assert_eq!(s.stage("done").len(), 0);
    // The server comes back: the backoff picks it up; kill the daemon mid-way.
    let _server = Serve::start(&s.data, &s.addr);
    s.wait_for("some crashes sent", 90, || !s.stage("done").is_empty());
    daemon.kill9();
    let sent_before = s.stage("done").len();
    eprintln!("daemon killed with {sent_before} of 12 sent");
    // Restart (a --once run): it completes the rest, no duplicates.
    let (code, out) = s.once();
    assert_eq!(code, 0, "{out}");
    assert_eq!(s.stage("done").len(), 12, "{out}");
    assert!(s.stage("sending").is_empty() && s.stage("pending").is_empty());
    let rows: Vec<_> = s.objects("alpha", &[]).into_iter().chain(s.objects("beta", &[])).collect();
    let mut uuids: Vec<String> = rows.iter().map(|r| r[0].as_str().unwrap_or("").to_string()).collect();
    assert_eq!(uuids.len(), 12, "objects in the store: {rows:?}");
    uuids.sort();
    uuids.dedup();
    assert_eq!(uuids.len(), 12, "duplicates in the store");
    let _ = fs::remove_dir_all(&s.dir);
}

#[test]
fn an_interrupted_attempt_is_not_sent_twice() {
    // The daemon died after the server stored the snapshot but before moving it to
    // done/: the `attempt` mark makes the next run ask the server first.
    let s = Setup::new("attempt", "");
    let alpha = program(&s.dir, "alpha_segv", SEGV);
    let _server = Serve::start(&s.data, &s.addr);
    let core = real_core(&s, &alpha);
    // pid 0: no /proc to read, the executable comes from %E.
    s.feed(0, &alpha, &core);
    assert_eq!(s.once().0, 0);
    let uuid = s.stage("done").pop().expect("one crash done");
    // Pretend the acknowledgement was lost.
    let done = s.archive.join("done").join(&uuid);
    fs::write(done.join("attempt"), "0").expect("attempt");
    fs::remove_file(done.join("sent.json")).expect("sent.json");
    fs::rename(&done, s.archive.join("sending").join(&uuid)).expect("back to sending");
    let (code, out) = s.once();
    assert_eq!(code, 0, "{out}");
    assert_eq!(s.objects("alpha", &[]).len(), 1, "sent twice");
    assert!(
        fs::read_to_string(s.archive.join("done").join(&uuid).join("sent.json"))
            .expect("sent.json")
            .contains("recovered")
    );
    let _ = fs::remove_dir_all(&s.dir);
}

/// A real core of `exe`, collected through a plain core_pattern (the shared fixture).
fn real_core(s: &Setup, exe: &Path) -> Vec<u8> {
    // One directory per call: tests run in parallel, and a shared one was removed by one
    // test while the kernel was writing another test's core into it (no core dumped).
    static CALLS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = CALLS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("bt-cores-coresnap-{}-{n}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).expect("core dir");
    let pid;
    {
        let _g = common::CorePatternGuard::set(&dir);
        let c = start_crash(exe, &[]);
        pid = c.id();
        wait_crash(c);
    }
    let _ = s;
    let b = fs::read(dir.join(format!("core.{pid}"))).expect("the kernel wrote a core");
    let _ = fs::remove_dir_all(&dir);
    b
}

#[test]
fn quota_drops_the_core_and_keeps_the_metadata() {
    let s = Setup::new("quota", "dump.quota = 100%\n");
    let alpha = program(&s.dir, "alpha_segv", SEGV);
    let mut sleeper = Command::new("sleep").arg("30").spawn().expect("sleep");
    // Past exec: before it, /proc/PID still shows the test binary.
    // The exe link changes before the new arguments are in place: wait for both.
    s.wait_for("sleep exec'd", 10, || {
        fs::read_link(format!("/proc/{}/exe", sleeper.id())).is_ok_and(|p| p.ends_with("sleep"))
            && fs::read(format!("/proc/{}/cmdline", sleeper.id())).is_ok_and(|c| c.starts_with(b"sleep\0"))
    });
    s.feed(sleeper.id(), &alpha, &vec![7u8; 1 << 20]);
    let uuid = s.stage("pending").pop().expect("one crash");
    let dir = s.archive.join("pending").join(&uuid);
    assert!(!dir.join("core").exists() && !dir.join("core.partial").exists());
    let meta: serde_json::Value =
        serde_json::from_slice(&fs::read(dir.join("meta.json")).expect("meta")).expect("json");
    assert_eq!(meta["core"]["state"], "dropped", "{meta}");
    assert!(meta["core"]["reason"].as_str().expect("reason").contains("dump.quota"), "{meta}");
    assert_eq!(meta["pid"], sleeper.id());
    assert!(meta["cmdline"][0].as_str().expect("cmdline").ends_with("sleep"), "{meta}");
    assert!(dir.join("maps").exists() && dir.join("status").exists() && dir.join("limits").exists());
    // The daemon reports the metadata to the store (a JSON report without stacks).
    let _server = Serve::start(&s.data, &s.addr);
    let (code, out) = s.once();
    assert_eq!(code, 0, "{out}");
    assert_eq!(s.stage("done"), vec![uuid.clone()]);
    let (_, list, _) = bt(&["coresnap", "list", "--config", s.cfg()]);
    assert!(list.contains(&uuid) && list.contains("-ma") && list.contains("done 1"), "{list}");
    let rows = s.objects("beta", &["application", "core.dropped", "classifiers"]);
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0][0], uuid.as_str());
    assert_eq!(rows[0][1], "sleep");
    assert!(rows[0][2].as_str().expect("core.dropped").contains("dump.quota"), "{rows:?}");
    assert_eq!(rows[0][3], "no-core");
    // Size cap and rate limit drop the core the same way.
    let s2 = Setup::new("caps", "core.max_size = 64K\nrate.max_per_minute = 2\n");
    s2.feed(sleeper.id(), &alpha, &vec![7u8; 1 << 20]);
    s2.feed(sleeper.id(), &alpha, &vec![7u8; 1000]);
    s2.feed(sleeper.id(), &alpha, &vec![7u8; 1000]);
    let mut reasons: Vec<String> = s2
        .stage("pending")
        .iter()
        .map(|u| {
            let m: serde_json::Value =
                serde_json::from_slice(&fs::read(s2.archive.join("pending").join(u).join("meta.json")).expect("meta"))
                    .expect("json");
            m["core"]["reason"].as_str().unwrap_or("kept").to_string()
        })
        .collect();
    reasons.sort();
    assert_eq!(reasons.len(), 3);
    assert_eq!(reasons[0], "core larger than core.max_size (65536 bytes)");
    assert_eq!(reasons[1], "kept");
    assert!(reasons[2].starts_with("rate limit"), "{reasons:?}");
    let _ = sleeper.kill();
    let _ = sleeper.wait();
    let _ = fs::remove_dir_all(&s.dir);
    let _ = fs::remove_dir_all(&s2.dir);
}

#[test]
fn corrupt_and_truncated_cores_end_in_a_stage() {
    let s = Setup::new("corrupt", "");
    let alpha = program(&s.dir, "alpha_segv", SEGV);
    let _server = Serve::start(&s.data, &s.addr);
    let core = real_core(&s, &alpha);
    s.feed(0, &alpha, b"this is not an ELF core at all");
    s.feed(0, &alpha, &core[..core.len() / 3]);
    s.feed(0, &alpha, &core[..200]);
    let (code, out) = s.once();
    assert_eq!(code, 0, "{out}");
    assert!(s.stage("pending").is_empty() && s.stage("sending").is_empty(), "stuck: {out}");
    let failed = s.stage("failed");
    assert!(failed.len() >= 2, "garbage and a 200-byte core must fail: {out}");
    for u in &failed {
        let err = fs::read_to_string(s.archive.join("failed").join(u).join("error")).expect("error file");
        assert!(err.contains("the tracer failed"), "{err}");
    }
    assert_eq!(failed.len() + s.stage("done").len(), 3);
    // retry re-queues one; it fails again the same way, and is not lost.
    let (code, out, err) = bt(&["coresnap", "retry", "--config", s.cfg(), &failed[0][..8]]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("failed → pending"), "{out}");
    assert_eq!(s.once().0, 0);
    assert_eq!(s.stage("failed").len(), failed.len());
    let _ = fs::remove_dir_all(&s.dir);
}

#[test]
fn bad_configuration_names_file_and_line() {
    let dir = short_scratch("badconf");
    let c = dir.join("bad.conf");
    fs::write(&c, "archive.path = /tmp/x\n\ncore.max_size = huge\n").expect("conf");
    let (code, _, err) = bt(&["coresnap", "list", "--config", c.to_str().expect("utf-8")]);
    assert_eq!(code, 1);
    assert!(err.contains(&format!("{}:3: core.max_size", c.display())), "{err}");
    // The handler still records the crash, in the default archive, when its
    // configuration is broken: it is never refused. (Not exercised here: it would
    // write to /var/coresnap.)
    let _ = fs::remove_dir_all(&dir);
}

#[test]
fn install_refuses_another_handler_and_restores() {
    assert!(is_root());
    let dir = short_scratch("inst");
    let c = dir.join("c.conf");
    fs::write(&c, format!("archive.path = {}/arch\n", dir.display())).expect("conf");
    let _lock = common::FileLock::acquire(Path::new(PATTERN_LOCK));
    let before = (fs::read_to_string(CORE_PATTERN).expect("p"), fs::read_to_string(PIPE_LIMIT).expect("l"));
    struct Restore((String, String));
    impl Drop for Restore {
        fn drop(&mut self) {
            let _ = fs::write(CORE_PATTERN, self.0.0.trim_end());
            let _ = fs::write(PIPE_LIMIT, self.0.1.trim_end());
        }
    }
    let _restore = Restore(before.clone());
    fs::write(CORE_PATTERN, "|/usr/share/apport/apport -p%p -s%s -c%c -d%d -P%P -u%u -g%g -- %E").expect("set apport");
    let (code, _, err) = bt(&["coresnap", "install", "--config", c.to_str().expect("utf-8")]);
    assert_eq!(code, 1);
    assert!(err.contains("another crash handler is installed (apport"), "{err}");
    fs::write(CORE_PATTERN, "core.%p").expect("set plain");
    fs::write(PIPE_LIMIT, "0").expect("limit");
    let (code, out, err) = bt(&["coresnap", "install", "--force", "--config", c.to_str().expect("utf-8")]);
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(fs::read_to_string(PIPE_LIMIT).expect("l").trim(), "64");
    // Installing twice keeps the first remembered values.
    assert_eq!(bt(&["coresnap", "install", "--force", "--config", c.to_str().expect("utf-8")]).0, 0);
    let (code, out, _) = bt(&["coresnap", "uninstall", "--config", c.to_str().expect("utf-8")]);
    assert_eq!(code, 0);
    assert!(out.contains("restored to core.%p"), "{out}");
    assert_eq!(fs::read_to_string(CORE_PATTERN).expect("p").trim(), "core.%p");
    assert_eq!(fs::read_to_string(PIPE_LIMIT).expect("l").trim(), "0");
    let _ = fs::remove_dir_all(&dir);
}

#[test]
fn the_collector_never_recurses_on_itself() {
    assert!(is_root(), "this test installs a core_pattern handler and must run as root");
    let s = Setup::new("recurse", "");
    let alpha = program(&s.dir, "alpha_segv", SEGV);
    {
        let _inst = Installed::new(&s.config);
        // A coresnap process crashes (here: the daemon, killed by SIGABRT; a SIGSEGV
        // sent by kill(2) is swallowed by Rust's stack-overflow handler).
        let mut d = Daemon::start(&s.config, &s.dir.join("d.log"));
        // Once it runs as coresnap (exec done), its crash is a coresnap process's.
        let pid = d.child.id();
        s.wait_for("the daemon to run", 10, || {
            fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|c| c.windows(8).any(|w| w == b"coresnap"))
        });
        // SAFETY: kill on our own child's pid.
        unsafe { libc::kill(d.child.id() as i32, libc::SIGABRT) };
        let st = d.child.wait().expect("wait");
        assert_eq!(st.signal(), Some(libc::SIGABRT));
        // A tracer started by the daemon crashes (marked by BT_CORESNAP_TRACER).
        wait_crash(start_crash(&alpha, &[("BT_CORESNAP_TRACER", "1")]));
        s.wait_for("two crashes recorded", 10, || s.stage("pending").len() == 2);
    }
    let mut reasons: Vec<String> = s
        .stage("pending")
        .iter()
        .map(|u| {
            let m: serde_json::Value =
                serde_json::from_slice(&fs::read(s.archive.join("pending").join(u).join("meta.json")).expect("meta"))
                    .expect("json");
            assert_eq!(m["core"]["state"], "dropped", "{m}");
            assert!(!s.archive.join("pending").join(u).join("core").exists());
            m["core"]["reason"].as_str().unwrap_or("").to_string()
        })
        .collect();
    reasons.sort();
    assert!(reasons[0].contains("coresnap tracer") && reasons[1].contains("coresnap itself"), "{reasons:?}");
    let _ = fs::remove_dir_all(&s.dir);
}

#[test]
fn purge_age_removes_old_crashes_unless_disabled() {
    for (extra, kept) in [("purge.age = 1s\n", false), ("purge.age = 1s\npurge.disabled = true\n", true)] {
        let s = Setup::new(if kept { "purge-off" } else { "purge-on" }, extra);
        s.feed(0, Path::new("/usr/bin/true"), b"x");
        assert_eq!(s.once().0, 0);
        assert_eq!(s.stage("failed").len(), 1, "a core the tracer cannot read lands in failed/");
        // Older than purge.age without waiting for it: the crash's directory is dated back.
        for e in fs::read_dir(s.archive.join("failed")).expect("failed/").flatten() {
            let then = std::time::SystemTime::now() - Duration::from_secs(60);
            fs::File::open(e.path()).and_then(|d| d.set_modified(then)).expect("date the crash back");
        }
        assert_eq!(s.once().0, 0);
        assert_eq!(s.stage("failed").len(), usize::from(kept), "{extra}");
        let _ = fs::remove_dir_all(&s.dir);
    }
}
