//! hydra in a real terminal: tmux runs `bt hydra` in each opening mode (a snapshot
//! file, a live PID, a core, an object of a store), `send-keys` drives it and
//! `capture-pane` reads it. Quitting (q, Ctrl-C, SIGTERM) leaves the terminal as it
//! was: same `stty` settings, no alternate screen, a visible cursor. The
//! interactive screen equals `--screen` for the same keys. Errors are one line
//! before the terminal is taken.

mod common;

use common::*;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const COLS: u16 = 120;
const ROWS: u16 = 36;

/// A tmux server of its own (a private socket) with one window running a command.
struct Tmux {
    socket: String,
}

impl Tmux {
    /// Runs `cmd` in a COLS×ROWS window without a status line; after it the shell
    /// prints its exit code and whether the terminal settings came back.
    fn start(name: &str, cmd: &str) -> Tmux {
        let socket = format!("bt-hydra-{name}-{}", std::process::id());
        let conf = scratch_dir(&format!("bt-hydra-tmux-{name}")).join("tmux.conf");
        std::fs::write(&conf, "set -g status off\nset -g escape-time 0\n").expect("tmux.conf");
        let script = format!(
            "S=$(stty -g); {cmd}; echo EXIT=$?; if [ \"$(stty -g)\" = \"$S\" ]; then echo TTY=restored; else echo TTY=changed; fi; sleep 600"
        );
        let ok = Command::new("tmux")
            .args(["-L", &socket, "-f"])
            .arg(&conf)
            .args(["new-session", "-d", "-s", "h", "-x", &COLS.to_string(), "-y", &ROWS.to_string()])
            .arg(script)
            .env_remove("TMUX")
            .env("TERM", "xterm-256color")
            .status()
            .expect("run tmux");
        assert!(ok.success(), "tmux new-session failed");
        Tmux { socket }
    }

    fn tmux(&self, args: &[&str]) -> String {
        let o = Command::new("tmux").args(["-L", &self.socket]).args(args).output().expect("tmux");
        String::from_utf8_lossy(&o.stdout).into_owned()
    }

    fn send(&self, keys: &[&str]) {
        for k in keys {
            self.tmux(&["send-keys", "-t", "h", k]);
            // One key at a time, as a person types: each is drawn before the next.
            std::thread::sleep(Duration::from_millis(30));
        }
    }

    fn capture(&self) -> String {
        self.tmux(&["capture-pane", "-p", "-t", "h"])
    }

    /// Waits until the screen shows `needle`; returns the screen.
    fn wait_for(&self, needle: &str, secs: u64) -> String {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            let s = self.capture();
            if s.contains(needle) {
                return s;
            }
            assert!(Instant::now() < deadline, "no {needle:?} on the screen after {secs} s:\n{s}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Waits until two captures 150 ms apart agree.
    fn settled(&self) -> String {
        let mut last = self.capture();
        for _ in 0..100 {
            std::thread::sleep(Duration::from_millis(150));
            let s = self.capture();
            if s == last {
                return s;
            }
            last = s;
        }
        last
    }

    fn display(&self, format: &str) -> String {
        self.tmux(&["display-message", "-p", "-t", "h", format]).trim().to_string()
    }

    /// After hydra quit: exit code 0, the terminal as it was.
    fn assert_restored(&self, how: &str) {
        let s = self.wait_for("TTY=", 10);
        assert!(s.contains("EXIT=0"), "{how}: hydra did not exit 0:\n{s}");
        assert!(s.contains("TTY=restored"), "{how}: stty settings changed:\n{s}");
        assert_eq!(self.display("#{alternate_on}"), "0", "{how}: still on the alternate screen");
        assert_eq!(self.display("#{cursor_flag}"), "1", "{how}: cursor hidden");
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = Command::new("tmux").args(["-L", &self.socket, "kill-server"]).status();
    }
}

fn trimmed(s: &str) -> Vec<String> {
    s.lines().map(|l| l.trim_end().to_string()).collect()
}

/// Made once per test binary: the tests run in parallel and share it.
fn c_threads_snapshot() -> PathBuf {
    static MADE: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    MADE.get_or_init(make_c_threads_snapshot).clone()
}

fn make_c_threads_snapshot() -> PathBuf {
    let c = crash("c_threads");
    let out = scratch_dir("bt-hydra-tmux-snap").join("c_threads.bt");
    let o =
        bt(&["ptrace", "--core", &c.core.to_string_lossy(), &c.exe.to_string_lossy(), "-o", &out.to_string_lossy()]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    out
}

fn hydra_cmd(args: &str) -> String {
    format!("{} hydra {args}", bt_bin().display())
}

#[test]
fn file_mode_matches_the_headless_screen_and_restores_the_terminal() {
    let snap = c_threads_snapshot();
    let t = Tmux::start("file", &hydra_cmd(&snap.to_string_lossy()));
    t.wait_for("Threads (8)", 20);
    let keys = ["Tab", "2", "BTab", "Down", "Right"];
    t.send(&keys);
    let live = t.settled();
    let headless =
        bt(&["hydra", &snap.to_string_lossy(), "--screen", &format!("{COLS}x{ROWS}"), "--keys", &keys.join(" ")]);
    assert!(headless.status.success(), "{}", String::from_utf8_lossy(&headless.stderr));
    let headless = String::from_utf8_lossy(&headless.stdout).into_owned();
    assert_eq!(trimmed(&live), trimmed(&headless), "interactive:\n{live}\nheadless:\n{headless}");
    assert!(live.contains("[2 Registers]"), "{live}");
    t.send(&["?"]);
    t.wait_for("hydra keys", 5);
    t.send(&["Escape", "q"]);
    t.assert_restored("q");
}

#[test]
fn core_mode_and_ctrl_c() {
    let c = crash("c_threads");
    let t = Tmux::start("core", &hydra_cmd(&format!("--core {} {}", c.core.display(), c.exe.display())));
    t.wait_for("store_record", 30);
    let s = t.settled();
    assert!(s.contains("SIGSEGV (11) SEGV_MAPERR"), "{s}");
    t.send(&["C-c"]);
    t.assert_restored("Ctrl-C");
}

#[test]
fn pid_mode_lets_the_process_run_again() {
    let mut child = Command::new(examples_dir().join("many_threads"))
        .arg("40")
        .stdout(Stdio::piped())
        .spawn()
        .expect("start many_threads");
    {
        use std::io::BufRead;
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().expect("stdout")).read_line(&mut line).expect("ready");
    }
    wait_all_asleep(child.id(), 40, 30);
    let pid = child.id();
    let t = Tmux::start("pid", &hydra_cmd(&pid.to_string()));
    t.wait_for("Threads (40)", 30);
    let s = t.settled();
    assert!(s.contains("×37"), "the idle workers are grouped:\n{s}");
    // The target runs while hydra shows it: no thread is left traced or stopped.
    let stat = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    let tracer = stat.lines().find(|l| l.starts_with("TracerPid:")).unwrap_or("");
    assert!(tracer.ends_with("\t0"), "still traced while viewing: {tracer}");
    t.send(&["q"]);
    t.assert_restored("q after a live snapshot");
    assert!(Path::new(&format!("/proc/{pid}")).exists(), "the process survived");
    let _ = child.kill();
    let _ = child.wait();
}

#[test]
fn store_mode_and_sigterm() {
    let data = scratch_dir("bt-hydra-store");
    let admin =
        |args: &[&str]| Command::new(bt_bin()).arg("coroner").arg("--data").arg(&data).args(args).output().expect("bt");
    assert!(admin(&["project", "create", "hp"]).status.success());
    let snap = c_threads_snapshot();
    let put = Command::new(bt_bin())
        .args(["morgue", "put", "hp"])
        .arg(&snap)
        .arg("--data")
        .arg(&data)
        .arg("--json")
        .output()
        .expect("bt morgue put");
    assert!(put.status.success(), "{}", String::from_utf8_lossy(&put.stderr));
    let ack: serde_json::Value = serde_json::from_slice(&put.stdout).expect("put json");
    let object = ack["object"].as_str().expect("object id").to_string();
    let t = Tmux::start("store", &hydra_cmd(&format!("hp {object} --data {}", data.display())));
    t.wait_for("Threads (8)", 30);
    let s = t.settled();
    assert!(s.contains(&format!("object: {object}")), "Summary names the stored object:\n{s}");
    assert!(s.contains("project: hp"), "{s}");
    assert!(s.contains("state: open"), "Summary shows the group's triage state:\n{s}");
    // SIGTERM: hydra leaves its loop and restores the terminal.
    // The bt process itself (not the shell whose command line also names it).
    let pattern = format!("^{} hydra hp {object}", bt_bin().display());
    let pids = Command::new("pgrep").args(["-f", &pattern]).output().expect("pgrep");
    let pid = String::from_utf8_lossy(&pids.stdout).lines().next().map(str::to_string).expect("hydra's pid");
    assert!(Command::new("kill").args(["-TERM", &pid]).status().expect("kill").success());
    t.assert_restored("SIGTERM");

    // A missing object: one line, exit 1, the terminal untouched.
    let t = Tmux::start("store-missing", &hydra_cmd(&format!("hp 7777 --data {}", data.display())));
    let s = t.wait_for("TTY=", 20);
    assert!(s.contains("EXIT=1"), "{s}");
    let err: Vec<&str> = s.lines().filter(|l| l.contains("bt hydra:")).collect();
    assert_eq!(err.len(), 1, "one error line:\n{s}");
    assert!(err[0].contains("7777"), "the error names the object:\n{s}");
    assert!(s.contains("TTY=restored"), "{s}");
}

#[test]
fn bad_input_is_one_line_before_the_terminal_is_taken() {
    let dir = scratch_dir("bt-hydra-bad");
    let garbage = dir.join("garbage.bt");
    std::fs::write(&garbage, b"BTSNAP\x03\x00\x01\x00\x00\x00\xff\xff\xff\xff\x00\x00\x00\x00garbage").expect("write");
    let truncated = dir.join("truncated.bt");
    let good = std::fs::read(c_threads_snapshot()).expect("read");
    std::fs::write(&truncated, &good[..good.len() / 2]).expect("write");
    for (what, args) in [
        ("garbage", vec![garbage.to_string_lossy().into_owned(), "--screen".into(), "80x24".into()]),
        ("truncated", vec![truncated.to_string_lossy().into_owned(), "--screen".into(), "80x24".into()]),
        ("missing file", vec!["/nonexistent/x.bt".into(), "--screen".into(), "80x24".into()]),
        ("bad size", vec![garbage.to_string_lossy().into_owned(), "--screen".into(), "80by24".into()]),
        (
            "bad key",
            vec![
                garbage.to_string_lossy().into_owned(),
                "--screen".into(),
                "80x24".into(),
                "--keys".into(),
                "C-".into(),
            ],
        ),
        // No terminal on stdin/stdout (the test harness's pipes), no --screen.
        ("no terminal", vec![garbage.to_string_lossy().into_owned()]),
    ] {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let o = Command::new(bt_bin()).arg("hydra").args(&args).stdin(Stdio::null()).output().expect("bt hydra");
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(1), "{what}: {err}");
        assert_eq!(err.lines().count(), 1, "{what}: one line:\n{err}");
        assert!(err.starts_with("bt hydra: "), "{what}: {err}");
        assert!(!err.contains('\x1b') && o.stdout.is_empty(), "{what}: nothing drawn");
    }
    // In a terminal too: a corrupt file never takes the screen.
    let t = Tmux::start("garbage", &hydra_cmd(&garbage.to_string_lossy()));
    let s = t.wait_for("TTY=", 20);
    assert!(s.contains("EXIT=1") && s.contains("TTY=restored"), "{s}");
    assert!(s.contains("bt hydra: reading snapshot"), "{s}");
}
