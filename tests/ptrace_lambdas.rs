//! C++ function names as gdb prints them: names local to other functions (lambdas'
//! call operators, members of a class defined inside a lambda) and names gdb
//! re-spells (`tests/data/cxx_names.cpp`: `long int` → `long`, `7ul`, operators,
//! anonymous namespaces, ABI tags). Built with g++ and clang++ at -O0 and -O2,
//! crashed by the kernel, traced with `bt ptrace --core`, and every frame's whole
//! function name compared with gdb's backtrace of the same core.

mod common;

use common::{bt_json, bt_threads, build_and_crash, gdb_core, scratch_dir};
use std::path::PathBuf;

/// Builds and crashes one variant, then compares the crashing thread's frames with
/// gdb's: the same number of frames and, frame by frame, the same whole name.
fn check(compiler: &str, opt: &str) {
    check_source("lambdas", "operator()", compiler, opt);
}

fn check_source(name: &str, must_show: &str, compiler: &str, opt: &str) {
    let dir = scratch_dir(&format!("bt-cores-{name}{compiler}{opt}"));
    let src = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(format!("tests/data/{name}.cpp"));
    let crash = build_and_crash(&dir, &format!("{name}-{compiler}{opt}"), compiler, &[opt, "-g"], &src);
    let (exe, core) = (crash.exe.to_str().expect("utf-8"), crash.core.to_str().expect("utf-8"));
    let gdb = gdb_core(&crash.exe, &crash.core);
    let snap = bt_json(&["ptrace", "--no-variables", "--core", core, exe]);
    let g = &gdb.threads[0];
    let b = &bt_threads(&snap)[0];
    // The shared gdb arguments go past main, so both stacks run to _start.
    let gdb_names: Vec<String> = g.frames.iter().map(|f| f.function.clone().unwrap_or_default()).collect();
    let bt_names: Vec<String> = b.frames.iter().map(|f| f.function.clone().unwrap_or_default()).collect();
    // The frames this test is about must be there (gdb names them differently per compiler).
    assert!(
        gdb_names.iter().any(|n| n.contains(must_show)),
        "{compiler} {opt}: gdb shows no frame with {must_show}:\n{}",
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

#[test]
fn gcc_o0_cxx_names_match_gdb() {
    check_source("cxx_names", "K<7ul, (char)120", "g++", "-O0");
}

#[test]
fn gcc_o2_cxx_names_match_gdb() {
    check_source("cxx_names", "K<7ul, (char)120", "g++", "-O2");
}

#[test]
fn clang_o0_cxx_names_match_gdb() {
    check_source("cxx_names", "K<7ul, (char)120", "clang++", "-O0");
}

#[test]
fn clang_o2_cxx_names_match_gdb() {
    check_source("cxx_names", "K<7ul, (char)120", "clang++", "-O2");
}
