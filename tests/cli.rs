//! The command line of the `bt` binary: the multicall dispatch (applet symlinks, `bt-`
//! prefix, --list, unknown and unbuilt applets), bad input to `bt ptrace` (each a
//! one-line error, never a panic), attributes, and the static build.

mod common;

use common::*;
use std::fs;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::process::Output;

/// A fake install prefix: `bin/bt` → BT_BIN, plus applet symlinks as `make install` makes.
fn install_links() -> PathBuf {
    let dir = scratch_dir("bt-prefix");
    let bin = dir.join("bin");
    fs::create_dir_all(&bin).unwrap();
    symlink(bt_bin(), bin.join("bt")).unwrap();
    for a in ["ptrace", "coresnap", "coroner", "morgue", "hydra", "bt-ptrace", "bt-hydra"] {
        symlink("bt", bin.join(a)).unwrap();
    }
    bin
}

fn stderr_of(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// A failure done right: non-zero, exactly one line on stderr, no panic.
fn assert_clean_failure(out: &Output, what: &str) {
    let stderr = stderr_of(out);
    assert!(!stderr.contains("panicked"), "{what}: bt panicked:\n{stderr}");
    assert!(
        !out.status.success(),
        "{what}: must fail, exited {}\nstdout: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(out.status.code().is_some(), "{what}: killed by a signal ({})", out.status);
    let lines: Vec<&str> = stderr.trim().lines().collect();
    assert_eq!(lines.len(), 1, "{what}: expected one error line on stderr, got {}:\n{stderr}", lines.len());
    assert!(lines[0].len() > 10, "{what}: the error says too little: {:?}", lines[0]);
}

/// Guards argv[0] dispatch: `ptrace` and `bt-ptrace` symlinks are the tracer, and
/// give the same snapshot as `bt ptrace`.
#[test]
fn applet_symlinks_dispatch_to_the_tracer() {
    let bin = install_links();
    for link in ["ptrace", "bt-ptrace"] {
        let out = run_with_timeout(30, &bin.join(link), &["--help"], &[]);
        assert!(out.status.success(), "{link} --help failed: {}", stderr_of(&out));
        let help = String::from_utf8_lossy(&out.stdout);
        assert!(help.contains("--core"), "{link} --help is not the tracer's help:\n{help}");
    }
    let c = crash("c_null");
    let (core, exe) = (c.core.to_str().unwrap(), c.exe.to_str().unwrap());
    let via_bt = bt_json(&["ptrace", "--core", core, exe]);
    for link in ["ptrace", "bt-ptrace"] {
        let out = run_with_timeout(120, &bin.join(link), &["--core", core, exe, "--json"], &[]);
        assert!(out.status.success(), "{link} --core failed: {}", stderr_of(&out));
        let snap: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON from the symlink");
        assert_eq!(snap["threads"], via_bt["threads"], "{link} and `bt ptrace` disagree on the threads");
    }
}

/// Guards `make install`: the real recipe (run with `-o bt` so it installs the binary
/// under test instead of building) puts `bt` and every applet link under PREFIX/bin,
/// and the installed links work.
#[test]
fn make_install_puts_bt_and_applet_links_under_prefix() {
    let prefix = scratch_dir("bt-install");
    let out = std::process::Command::new("make")
        .arg("-s")
        .arg("-C")
        .arg(repo_root())
        .args(["-o", "bt", "install"])
        .arg(format!("BIN={}", bt_bin().display()))
        .arg(format!("PREFIX={}", prefix.display()))
        .output()
        .expect("running make install");
    assert!(out.status.success(), "make install failed:\n{}{}", String::from_utf8_lossy(&out.stdout), stderr_of(&out));
    let bin = prefix.join("bin");
    assert!(bin.join("bt").is_file(), "no bt under {}", bin.display());
    for a in ["ptrace", "coresnap", "coroner", "morgue", "hydra"] {
        let link = fs::read_link(bin.join(a)).unwrap_or_else(|e| panic!("{a} is not a symlink: {e}"));
        assert_eq!(link, Path::new("bt"), "{a} should link to bt");
    }
    let out = run_with_timeout(30, &bin.join("ptrace"), &["--help"], &[]);
    assert!(out.status.success() && String::from_utf8_lossy(&out.stdout).contains("--core"), "installed ptrace --help");
    let out = run_with_timeout(30, &bin.join("morgue"), &[], &[]);
    assert_clean_failure(&out, "installed morgue without arguments");
    let _ = fs::remove_dir_all(&prefix);
}

/// Guards `bt --list`: every applet of the design is listed, unbuilt ones say so.
#[test]
fn list_shows_every_applet() {
    let out = bt(&["--list"]);
    assert!(out.status.success(), "bt --list failed: {}", stderr_of(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    for a in ["ptrace", "coresnap", "coroner", "morgue", "hydra"] {
        assert!(text.lines().any(|l| l.split_whitespace().next() == Some(a)), "bt --list lacks {a}:\n{text}");
    }
}

/// Guards the unknown-applet error: exit 2 and one line naming the culprit, both as
/// an argument and as a symlink name.
#[test]
fn unknown_applet_is_a_usage_error() {
    let out = bt(&["frobnicate"]);
    assert_clean_failure(&out, "bt frobnicate");
    assert_eq!(out.status.code(), Some(2), "unknown applet exit code");
    assert!(stderr_of(&out).contains("frobnicate"), "the error names the applet: {}", stderr_of(&out));
}

/// hydra answers through `bt hydra` and through the `hydra` and `bt-hydra` links: a
/// screen for a snapshot, a one-line usage error without one.
#[test]
fn hydra_answers_through_every_name() {
    let bin = install_links();
    let sample = repo_root().join("tests/data/snapshot-v3.bt");
    let sample = sample.to_string_lossy();
    let args = [sample.as_ref(), "--screen", "80x24"];
    let runs: Vec<(String, Output, Output)> = vec![
        ("bt hydra".into(), bt(&["hydra", args[0], args[1], args[2]]), bt(&["hydra"])),
        (
            "hydra".into(),
            run_with_timeout(30, &bin.join("hydra"), &args, &[]),
            run_with_timeout(30, &bin.join("hydra"), &[], &[]),
        ),
        (
            "bt-hydra".into(),
            run_with_timeout(30, &bin.join("bt-hydra"), &args, &[]),
            run_with_timeout(30, &bin.join("bt-hydra"), &[], &[]),
        ),
    ];
    for (what, screen, bare) in runs {
        assert!(screen.status.success(), "{what}: {}", stderr_of(&screen));
        assert!(String::from_utf8_lossy(&screen.stdout).contains("Threads ("), "{what}: no screen");
        assert_clean_failure(&bare, &what);
        assert!(stderr_of(&bare).contains("expected a snapshot FILE"), "{what}: {}", stderr_of(&bare));
    }
}

fn trace_core_args<'a>(core: &'a str, exe: Option<&'a str>) -> Vec<&'a str> {
    let mut v = vec!["ptrace", "--core", core];
    v.extend(exe);
    v.push("--json");
    v
}

/// A truncated core done right: a one-line error, or a partial snapshot whose
/// problems say the core is truncated. Never a panic, never a silent success.
fn assert_truncation_reported(out: &Output, what: &str) {
    let stderr = stderr_of(out);
    assert!(!stderr.contains("panicked"), "{what}: bt panicked:\n{stderr}");
    if out.status.success() {
        let snap: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
        let problems = snap["problems"].to_string().to_lowercase();
        assert!(
            problems.contains("truncat"),
            "{what}: a partial snapshot must record the truncation; problems: {problems}"
        );
    } else {
        assert_clean_failure(out, what);
    }
}

/// Guards bad cores that hold nothing usable: random bytes, an empty file, a missing
/// file, an executable given as the core. Each is a one-line error, never a panic.
#[test]
fn unusable_cores_are_one_line_errors() {
    let dir = scratch_dir("bt-badcores");
    let c = crash("c_threads");
    let exe = c.exe.to_str().unwrap();
    let random = dir.join("random.core");
    let mut noise = vec![0u8; 256 * 1024];
    let mut f = fs::File::open("/dev/urandom").unwrap();
    std::io::Read::read_exact(&mut f, &mut noise).unwrap();
    fs::write(&random, &noise).unwrap();
    let empty = dir.join("empty.core");
    fs::write(&empty, b"").unwrap();
    let missing = dir.join("missing.core");
    let not_a_core = c.exe.clone(); // an ELF file, but an executable, not a core
    for (what, path) in [
        ("random bytes", &random),
        ("empty file", &empty),
        ("missing file", &missing),
        ("an executable given as the core", &not_a_core),
    ] {
        let p = path.to_str().unwrap();
        assert_clean_failure(&bt(&trace_core_args(p, Some(exe))), what);
        assert_clean_failure(&bt(&trace_core_args(p, None)), &format!("{what}, no executable"));
    }
    let _ = fs::remove_dir_all(&dir);
}

/// Guards truncated cores: the first 4 KiB of a core, and a core cut in the middle.
/// Either a one-line error or a partial snapshot that records the truncation.
#[test]
fn truncated_cores_fail_cleanly_or_record_the_truncation() {
    let dir = scratch_dir("bt-cutcore");
    let c = crash("c_threads");
    let bytes = fs::read(&c.core).unwrap();
    let head = dir.join("head4k.core");
    fs::write(&head, &bytes[..4096]).unwrap();
    let half = dir.join("half.core");
    fs::write(&half, &bytes[..bytes.len() / 2]).unwrap();
    for (what, path) in [("first 4 KiB of a core", &head), ("half a core", &half)] {
        let p = path.to_str().unwrap();
        assert_truncation_reported(&bt(&trace_core_args(p, Some(c.exe.to_str().unwrap()))), what);
        assert_truncation_reported(&bt(&trace_core_args(p, None)), &format!("{what}, no executable"));
    }
    let _ = fs::remove_dir_all(&dir);
}

/// Guards the mismatch check: a core with another program's executable is refused
/// with a one-line error instead of a confidently wrong stack.
#[test]
fn core_with_the_wrong_executable_is_refused() {
    let c = crash("c_null");
    let other = examples_dir().join("cpp_templates");
    let out = bt(&trace_core_args(c.core.to_str().unwrap(), Some(other.to_str().unwrap())));
    assert_clean_failure(&out, "c_null core with the cpp_templates executable");
}

/// Guards pid errors: a pid that does not exist and a pid that is not a number.
#[test]
fn bad_pids_are_one_line_errors() {
    // A pid that surely does not exist: a child we started and reaped.
    let mut child = std::process::Command::new("true").spawn().unwrap();
    let gone = child.id();
    child.wait().unwrap();
    assert!(!Path::new(&format!("/proc/{gone}")).exists(), "pid {gone} was reused already");
    assert_clean_failure(&bt(&["ptrace", &gone.to_string()]), "a pid that does not exist");
    assert_clean_failure(&bt(&["ptrace", "not-a-pid"]), "a non-numeric pid");
    assert_clean_failure(&bt(&["ptrace", "-5"]), "a negative pid");
    assert_clean_failure(&bt(&["ptrace"]), "no pid at all");
}

/// Guards attributes: `--kv` and BACKTRACE_DEFAULTS land in `attributes`, next to the
/// automatic hostname, application and uname.* ones, with this machine's values.
#[test]
fn kv_and_backtrace_defaults_become_attributes() {
    let c = crash("c_null");
    let out = run_with_timeout(
        120,
        &bt_bin(),
        &[
            "ptrace",
            "--kv",
            "a:1,b:2",
            "--kv",
            "team:tracer",
            "--core",
            c.core.to_str().unwrap(),
            c.exe.to_str().unwrap(),
            "--json",
        ],
        &[("BACKTRACE_DEFAULTS", "region=eu-west\n# a comment\n\nshard = 7\n")],
    );
    assert!(out.status.success(), "bt failed: {}", stderr_of(&out));
    let snap: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    let attrs: Vec<(String, String)> = snap["attributes"]
        .as_array()
        .expect("attributes array")
        .iter()
        .map(|a| (a["key"].as_str().unwrap_or("").to_string(), a["value"].as_str().unwrap_or("").to_string()))
        .collect();
    let get = |k: &str| attrs.iter().find(|(key, _)| key == k).map(|(_, v)| v.clone());
    // SAFETY: uname fills the struct it is given.
    let mut u: libc::utsname = unsafe { std::mem::zeroed() };
    assert_eq!(unsafe { libc::uname(&mut u) }, 0);
    let field = |f: &[libc::c_char]| {
        // SAFETY: uname's fields are NUL-terminated.
        unsafe { std::ffi::CStr::from_ptr(f.as_ptr()) }.to_string_lossy().into_owned()
    };
    let expected = [
        ("a", "1".to_string()),
        ("b", "2".to_string()),
        ("team", "tracer".to_string()),
        ("region", "eu-west".to_string()),
        ("shard", "7".to_string()),
        ("hostname", field(&u.nodename)),
        ("application", "c_null".to_string()),
        ("uname.sysname", field(&u.sysname)),
        ("uname.release", field(&u.release)),
        ("uname.version", field(&u.version)),
        ("uname.machine", field(&u.machine)),
    ];
    for (k, v) in expected {
        assert_eq!(get(k).as_deref(), Some(v.as_str()), "attribute {k} in {attrs:?}");
    }
}

/// Guards a malformed `--kv`: a usage error, not a panic or a silently dropped pair.
#[test]
fn malformed_kv_is_rejected() {
    let c = crash("c_null");
    let out = bt(&["ptrace", "--kv", "novalue", "--core", c.core.to_str().unwrap(), c.exe.to_str().unwrap()]);
    assert_clean_failure(&out, "--kv novalue");
}

/// Guards the deliverable: the binary under `make test` (BT_BIN) is statically linked.
#[test]
fn release_binary_is_statically_linked() {
    // Not a skip: without BT_BIN this test cannot check what it claims, so it fails.
    let bin = std::env::var_os("BT_BIN")
        .expect("BT_BIN is unset: run the tests with `make test`, which points it at the static release build");
    let out = run_with_timeout(30, Path::new("file"), &["-L", bin.to_str().unwrap()], &[]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("statically linked") || text.contains("static-pie linked"),
        "{} is not static: {text}",
        bin.to_string_lossy()
    );
}

/// Regression (issue 14): one size and duration parser with checked arithmetic.
/// `18014398509481985K` wrapped to 1 KiB in `project retention`, and retention then
/// deleted nearly everything; now it is refused, and `1M` means 30 days everywhere.
#[test]
fn sizes_and_durations_are_checked_and_mean_one_thing() {
    let data = scratch_dir("bt-units");
    let run = |args: &[&str]| {
        std::process::Command::new(bt_bin()).arg("coroner").arg("--data").arg(&data).args(args).output().expect("bt")
    };
    assert!(run(&["project", "create", "p"]).status.success());
    let out = run(&["project", "retention", "p", "--max-size", "18014398509481985K"]);
    assert_clean_failure(&out, "an overflowing size");
    assert!(stderr_of(&out).contains("too large"), "{}", stderr_of(&out));
    let out = run(&["project", "retention", "p", "--max-age", "1M", "--max-size", "10G"]);
    assert!(out.status.success(), "{}", stderr_of(&out));
    let listed = String::from_utf8_lossy(&run(&["project", "list"]).stdout).into_owned();
    assert!(listed.contains("2592000") || listed.contains("30d"), "1M is 30 days: {listed}");
}

/// Regression: `bt ptrace --core CORE | head` panicked with "failed printing to stdout:
/// Broken pipe" once the reader had gone. A command ends quietly when its reader does,
/// as `cat` does (by SIGPIPE), and prints nothing to stderr.
#[test]
fn a_closed_stdout_ends_the_command_quietly() {
    use std::os::unix::process::ExitStatusExt;
    let c = crash("c_null");
    let (core, exe) = (c.core.to_str().unwrap(), c.exe.to_str().unwrap());
    for args in [vec!["ptrace", "--core", core, exe], vec!["--list"]] {
        let mut child = std::process::Command::new(bt_bin())
            .args(&args)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("start bt");
        drop(child.stdout.take());
        let out = child.wait_with_output().expect("wait for bt");
        let err = stderr_of(&out);
        assert!(!err.contains("panicked"), "bt {args:?} panicked on a closed stdout:\n{err}");
        assert!(
            out.status.success() || out.status.signal() == Some(libc::SIGPIPE),
            "bt {args:?} on a closed stdout: {} ({err})",
            out.status
        );
    }
}
