//! Fingerprint stability on real crashes: the corpus programs (tests/corpus) built
//! several ways, crashed for real, traced by `bt ptrace --core`, fingerprinted with
//! the default rules. The same bug must give one fingerprint across compilers,
//! optimization levels, PIE/non-PIE, call paths (direct, event-loop dispatch,
//! thread, recursion depth); different bugs must give different fingerprints.

mod common;

use bt::dedup::RuleSet;
use bt::dedup::input::record_from;
use common::{CorePatternGuard, CrashSpec, bt_json, crash_one, scratch_dir};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

fn have(tool: &str) -> bool {
    Command::new(tool).arg("--version").output().is_ok_and(|o| o.status.success())
}

/// Compiles `src` with `cmd` into `out`; panics with the compiler's output.
fn build(cmd: &[&str], src: &Path, out: &Path) -> PathBuf {
    let res = Command::new(cmd[0])
        .args(&cmd[1..])
        .arg(src)
        .arg("-o")
        .arg(out)
        .output()
        .unwrap_or_else(|e| panic!("running {}: {e}", cmd[0]));
    assert!(res.status.success(), "{} failed:\n{}", cmd.join(" "), String::from_utf8_lossy(&res.stderr));
    out.to_path_buf()
}

/// (bug, signal, expected label) → crashes every (build, path) and returns the
/// fingerprints per label, with the signature seen for each.
fn fingerprints(
    dir: &Path,
    builds: &[PathBuf],
    bugs: &[(&str, &str, &str)],
    paths: &[&[&str]],
) -> BTreeMap<String, BTreeSet<(String, String)>> {
    let rules = RuleSet::default_rules();
    let core_dir = dir.join("cores");
    std::fs::create_dir_all(&core_dir).expect("core dir");
    let _guard = CorePatternGuard::set(&core_dir);
    let mut out: BTreeMap<String, BTreeSet<(String, String)>> = BTreeMap::new();
    for exe in builds {
        for (bug, signal, label) in bugs {
            for path in paths {
                let mut args = vec![bug.to_string()];
                args.extend(path.iter().map(|s| s.to_string()));
                let name = format!("{}-{}-{}", exe.file_name().unwrap().to_string_lossy(), bug, path.join("-"))
                    .replace('/', "_");
                let spec = CrashSpec {
                    name: name.clone(),
                    program: String::new(),
                    args,
                    signal: signal.to_string(),
                    what: String::new(),
                };
                let crash = crash_one(&spec, exe, &core_dir);
                let snap = bt_json(&["ptrace", "--core", crash.core.to_str().unwrap(), exe.to_str().unwrap()]);
                let _ = std::fs::remove_file(&crash.core);
                let rec = record_from(&snap, 1).unwrap_or_else(|e| panic!("{name}: {e}"));
                let sig = rules.evaluate(&rec.frames, &rec.classifiers);
                out.entry(label.to_string())
                    .or_default()
                    .insert((sig.fingerprint.clone(), format!("{} <- {name}", sig.signature.join(" | "))));
            }
        }
    }
    out
}

/// One fingerprint per label, and no fingerprint shared by two labels.
fn check(groups: &BTreeMap<String, BTreeSet<(String, String)>>) {
    let mut problems = Vec::new();
    let mut owner: BTreeMap<&str, &str> = BTreeMap::new();
    for (label, seen) in groups {
        let fps: BTreeSet<&str> = seen.iter().map(|(f, _)| f.as_str()).collect();
        if fps.len() != 1 {
            let examples: Vec<&str> = seen.iter().map(|(_, s)| s.as_str()).collect();
            problems.push(format!("{label}: {} fingerprints:\n    {}", fps.len(), examples.join("\n    ")));
        }
        for fp in fps {
            if let Some(other) = owner.insert(fp, label) {
                problems.push(format!("{label} and {other} share fingerprint {fp}"));
            }
        }
    }
    assert!(problems.is_empty(), "\n{}", problems.join("\n"));
}

const PATHS: &[&[&str]] = &[&["direct"], &["loop"], &["thread"], &["recurse", "1"], &["recurse", "4"], &["caller_b"]];

#[test]
fn c_bugs_across_compilers_levels_and_paths() {
    let dir = scratch_dir("bt-cores-dedup-c");
    let src = common::repo_root().join("tests/corpus/c/bugs.c");
    let flags = ["-g", "-fstack-protector-strong", "-pthread"];
    let mut builds = vec![
        build(&[&["gcc", "-O0", "-fpie", "-pie"], &flags[..]].concat(), &src, &dir.join("gcc-O0-pie")),
        build(&[&["gcc", "-O2", "-fno-pie", "-no-pie"], &flags[..]].concat(), &src, &dir.join("gcc-O2-nopie")),
    ];
    {
        assert!(have("clang"), "clang is not installed (make deps installs it)");
        builds.push(build(&[&["clang", "-O2", "-fpie", "-pie"], &flags[..]].concat(), &src, &dir.join("clang-O2-pie")));
    }
    let bugs = [
        ("null_header", "SIGSEGV", "null_header"),
        ("assert_qty", "SIGABRT", "assert_qty"),
        ("div_zero", "SIGFPE", "div_zero"),
        ("strlen_null", "SIGSEGV", "strlen_null"),
        ("fatal_config", "SIGABRT", "fatal_config"),
        ("fatal_db", "SIGABRT", "fatal_db"),
        // Stack overflows: one group per recursion wherever the stack ran out.
        ("overflow_expr", "SIGSEGV", "overflow_expr"),
        ("overflow_list", "SIGSEGV", "overflow_list"),
    ];
    check(&fingerprints(&dir, &builds, &bugs, PATHS));
}

/// Heap corruption under Boehm GC (Debian's libgc1, the allocator of w3m and others):
/// the crash comes in the collector's allocator, reached through tail calls that leave
/// neither GC_malloc nor GC_malloc_kind on the stack (`GC_malloc_kind_global ←
/// make_node`). Each bug is one group, signed by the allocation and its caller, at
/// every optimization level and recursion depth.
#[test]
fn boehm_gc_heap_corruption_is_signed_by_the_allocation_and_its_caller() {
    assert!(
        Path::new("/usr/lib/x86_64-linux-gnu/libgc.so.1").exists(),
        "libgc.so.1 is missing (make deps installs libgc1)"
    );
    let dir = scratch_dir("bt-cores-dedup-gc");
    let src = common::repo_root().join("tests/corpus/c/gc_bugs.c");
    let builds = vec![
        build(&["gcc", "-O0", "-g"], &src, &dir.join("gcc-O0")),
        build(&["gcc", "-O2", "-g"], &src, &dir.join("gcc-O2")),
        build(&["clang", "-O2", "-g"], &src, &dir.join("clang-O2")),
    ];
    let bugs = [("node_overflow", "SIGSEGV", "make_node"), ("tag_overflow", "SIGSEGV", "make_tag")];
    let groups = fingerprints(&dir, &builds, &bugs, &[&["direct"], &["recurse", "1"], &["recurse", "4"]]);
    check(&groups);
    for (caller, seen) in &groups {
        for (_, sig) in seen {
            assert!(sig.starts_with(&format!("GC_malloc | {caller} <- ")), "{caller}: signature {sig}");
        }
    }
}

/// Heap bugs under Debian's jemalloc, tcmalloc and mimalloc (LD_PRELOAD): the crash
/// comes in the allocator's internals, which Debian strips (jemalloc's and tcmalloc's
/// frames there have no symbol) or which run inlined in the caller's frame. Each bug is
/// one group at -O0 and -O2, signed by the allocation or free (its name, or the
/// allocator's module when only internals are left) and the application's caller.
#[test]
fn third_party_allocators_are_signed_by_the_operation_and_its_caller() {
    let lib = |name: &str| format!("/usr/lib/x86_64-linux-gnu/{name}");
    let cases = [
        ("libjemalloc.so.2", "bad_free", "SIGSEGV", "libjemalloc.so | release_item"),
        ("libtcmalloc_minimal.so.4", "overflow", "SIGSEGV", "libtcmalloc_minimal.so | make_node"),
        ("libtcmalloc_minimal.so.4", "bad_free", "SIGABRT", "libtcmalloc_minimal.so | release_item"),
        ("libmimalloc.so.2", "overflow", "SIGSEGV", "malloc | make_node"),
        ("libmimalloc.so.2", "bad_free", "SIGSEGV", "free | release_item"),
    ];
    for (name, _, _, _) in &cases {
        assert!(Path::new(&lib(name)).exists(), "{} is missing (make deps installs it)", lib(name));
    }
    let dir = scratch_dir("bt-cores-dedup-alloc");
    let src = common::repo_root().join("tests/corpus/c/alloc_bugs.c");
    let builds = vec![
        build(&["gcc", "-O0", "-g"], &src, &dir.join("gcc-O0")),
        build(&["gcc", "-O2", "-g", "-Wno-free-nonheap-object"], &src, &dir.join("gcc-O2")),
    ];
    let mut groups = BTreeMap::new();
    for (name, bug, signal, want) in cases {
        let path = lib(name);
        let label = format!("{name} {bug}");
        let found = fingerprints(&dir, &builds, &[(path.as_str(), signal, label.as_str())], &[&[bug]]);
        for (_, sig) in found.values().flatten() {
            assert!(sig.starts_with(&format!("{want} <- ")), "{label}: signature {sig}, want {want}");
        }
        groups.extend(found);
    }
    check(&groups);
}

#[test]
fn c_heap_and_stack_checks_at_o0() {
    // At -O2 the double free is reached through a tail call (the frame of
    // release_item is gone from the stack) and copy_name is inlined into its
    // caller, which then runs the canary check: no stack-based rule can join those.
    let dir = scratch_dir("bt-cores-dedup-c0");
    let src = common::repo_root().join("tests/corpus/c/bugs.c");
    let mut builds = vec![build(
        &["gcc", "-O0", "-g", "-fstack-protector-strong", "-pthread", "-no-pie"],
        &src,
        &dir.join("gcc-O0"),
    )];
    {
        assert!(have("clang"), "clang is not installed (make deps installs it)");
        builds.push(build(
            &["clang", "-O0", "-g", "-fstack-protector-strong", "-pthread"],
            &src,
            &dir.join("clang-O0"),
        ));
    }
    let bugs = [("double_free", "SIGABRT", "double_free"), ("stack_smash", "SIGABRT", "stack_smash")];
    check(&fingerprints(&dir, &builds, &bugs, &[&["direct"], &["thread"], &["recurse", "3"]]));
}

#[test]
fn fingerprint_reads_binary_and_json_snapshots() {
    let dir = scratch_dir("bt-cores-dedup-snap");
    let src = common::repo_root().join("tests/corpus/c/bugs.c");
    let exe = build(&["gcc", "-O0", "-g", "-pthread"], &src, &dir.join("gcc-O0"));
    let core_dir = dir.join("cores");
    std::fs::create_dir_all(&core_dir).expect("core dir");
    let crash = {
        let _guard = CorePatternGuard::set(&core_dir);
        let spec = CrashSpec {
            name: "assert".into(),
            program: String::new(),
            args: vec!["assert_qty".into(), "thread".into()],
            signal: "SIGABRT".into(),
            what: String::new(),
        };
        crash_one(&spec, &exe, &core_dir)
    };
    let snap_path = dir.join("assert.btsnap");
    let out = common::bt(&[
        "ptrace",
        "--core",
        crash.core.to_str().unwrap(),
        exe.to_str().unwrap(),
        "-o",
        snap_path.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let json = bt_json(&["ptrace", "--snapshot", snap_path.to_str().unwrap()]);
    let json_path = dir.join("assert.json");
    std::fs::write(&json_path, serde_json::to_vec_pretty(&json).unwrap()).unwrap();
    // One binary snapshot and one pretty-printed JSON snapshot: two output lines.
    let out = common::bt(&["rules", "fingerprint", snap_path.to_str().unwrap(), json_path.to_str().unwrap()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let lines: Vec<serde_json::Value> =
        String::from_utf8_lossy(&out.stdout).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[0]["fingerprint"], lines[1]["fingerprint"]);
    // An assertion keeps the function with the check and its caller (rules/10-glibc.rules).
    assert_eq!(lines[0]["signature"], serde_json::json!(["validate_order", "submit_order"]));
    assert_eq!(lines[0]["attributes"]["crash"], "assert");
    assert!(lines[0]["pretty"][0].as_str().unwrap().contains("frames of error handling"), "{}", lines[0]);
}

#[test]
fn cxx_bugs_across_levels_and_paths() {
    let dir = scratch_dir("bt-cores-dedup-cxx");
    let src = common::repo_root().join("tests/corpus/cxx/bugs.cpp");
    let o0 = build(&["g++", "-O0", "-g", "-std=c++17", "-pthread"], &src, &dir.join("gxx-O0"));
    let o2 = build(&["g++", "-O2", "-g", "-std=c++17", "-pthread"], &src, &dir.join("gxx-O2"));
    let bugs = [
        ("cfg_throw", "SIGABRT", "cfg_throw"),
        ("vec_at", "SIGABRT", "vec_at"),
        ("lambda_null", "SIGSEGV", "lambda_null"),
    ];
    let mut groups =
        fingerprints(&dir, &[o0.clone(), o2], &bugs, &[&["direct"], &["loop"], &["thread"], &["recurse", "2"]]);
    // Two template instantiations of one bug (at -O0: at -O2 the inlined
    // Matrix<T>::get has no inline record at the faulting instruction).
    let matrix = fingerprints(
        &dir,
        &[o0],
        &[("matrix_get", "SIGSEGV", "matrix_get"), ("matrix_get_d", "SIGSEGV", "matrix_get")],
        &[&["direct"], &["thread"]],
    );
    groups.extend(matrix);
    check(&groups);
}

#[test]
fn rust_bugs_debug_and_release() {
    let dir = scratch_dir("bt-cores-dedup-rust");
    let src = common::repo_root().join("tests/corpus/rust/bugs.rs");
    let debug = build(&["rustc", "-C", "panic=abort", "-g", "-C", "opt-level=0"], &src, &dir.join("rust-debug"));
    let release = build(&["rustc", "-C", "panic=abort", "-g", "-C", "opt-level=2"], &src, &dir.join("rust-release"));
    let bugs = [
        ("unwrap_none", "SIGABRT", "unwrap_none"),
        ("index_oob", "SIGABRT", "index_oob"),
        ("refcell", "SIGABRT", "refcell"),
        ("raw_null", "SIGSEGV", "raw_null"),
        ("div_zero", "SIGABRT", "div_zero"),
    ];
    check(&fingerprints(&dir, &[debug, release], &bugs, &[&["direct"], &["loop"], &["thread"], &["recurse", "3"]]));
}
