//! Function names local to other functions (lambdas' call operators, members of a
//! class defined inside a lambda) as gdb prints them: built with g++ and clang++ at
//! -O0 and -O2, crashed by the kernel, traced with `bt ptrace --core`, and every
//! frame's whole function name compared with gdb's backtrace of the same core.

mod common;

use common::{CorePatternGuard, CrashSpec, bt_json, bt_threads, crash_one, gdb_core, scratch_dir};
use std::path::{Path, PathBuf};
use std::process::Command;

fn build(dir: &Path, compiler: &str, opt: &str) -> PathBuf {
    let src = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/lambdas.cpp");
    let exe = dir.join(format!("lambdas-{compiler}{opt}"));
    let res = Command::new(compiler)
        .args([opt, "-g", "-o"])
        .arg(&exe)
        .arg(&src)
        .output()
        .unwrap_or_else(|e| panic!("running {compiler}: {e}"));
    assert!(res.status.success(), "{compiler} {opt} failed:\n{}", String::from_utf8_lossy(&res.stderr));
    exe
}

/// Builds and crashes one variant, then compares the crashing thread's frames with
/// gdb's: the same number of frames and, frame by frame, the same whole name.
fn check(compiler: &str, opt: &str) {
    let dir = scratch_dir(&format!("bt-cores-lambdas{compiler}{opt}"));
    let exe = build(&dir, compiler, opt);
    let spec = CrashSpec {
        name: format!("lambdas-{compiler}{opt}"),
        program: exe.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default(),
        args: vec![],
        signal: "SIGSEGV".into(),
        what: "a crash three lambdas deep".into(),
    };
    let crash = {
        let _guard = CorePatternGuard::set(&dir);
        crash_one(&spec, &exe, &dir)
    };
    let gdb = gdb_core(&exe, &crash.core);
    let snap = bt_json(&[
        "ptrace",
        "--no-variables",
        "--core",
        crash.core.to_str().expect("utf-8"),
        exe.to_str().expect("utf-8"),
    ]);
    let g = &gdb.threads[0];
    let b = &bt_threads(&snap)[0];
    // The shared gdb arguments go past main, so both stacks run to _start.
    let gdb_names: Vec<String> = g.frames.iter().map(|f| f.function.clone().unwrap_or_default()).collect();
    let bt_names: Vec<String> = b.frames.iter().map(|f| f.function.clone().unwrap_or_default()).collect();
    // The frames this test is about must be there (gdb names them differently per compiler).
    assert!(
        gdb_names.iter().any(|n| n.contains("operator()")),
        "{compiler} {opt}: gdb shows no lambda frame:\n{}",
        gdb.raw
    );
    assert_eq!(bt_names, gdb_names, "{compiler} {opt}: bt's function names (left) differ from gdb's (right)");
}

#[test]
fn gcc_o0_lambda_names_match_gdb() {
    check("g++", "-O0");
}

#[test]
fn gcc_o2_lambda_names_match_gdb() {
    check("g++", "-O2");
}

#[test]
fn clang_o0_lambda_names_match_gdb() {
    check("clang++", "-O0");
}

#[test]
fn clang_o2_lambda_names_match_gdb() {
    check("clang++", "-O2");
}
