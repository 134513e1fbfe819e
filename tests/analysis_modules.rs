//! rhai analysis modules on a real core: the shipped examples (examples/modules/)
//! add annotations, attributes and classifiers; the misbehaving ones (an infinite
//! loop, a throw, a sandbox escape attempt, a syntax error, runaway recursion) are
//! contained as problems and the snapshot is still complete.

mod common;

use common::{CorePatternGuard, Crash, CrashSpec, bt, bt_json, crash_one, scratch_dir};
use serde_json::Value;
use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// faults.c built and crashed once with a null read (mode null_read).
fn null_read() -> &'static (PathBuf, Crash) {
    static CRASH: OnceLock<(PathBuf, Crash)> = OnceLock::new();
    CRASH.get_or_init(|| {
        let dir = scratch_dir("analysis-build-modules");
        let exe = dir.join("faults");
        let src = repo().join("examples/analysis/faults.c");
        let res = Command::new("gcc")
            .args(["-O0", "-g", "-pthread"])
            .arg(&src)
            .arg("-o")
            .arg(&exe)
            .output()
            .expect("running gcc");
        assert!(res.status.success(), "gcc: {}", String::from_utf8_lossy(&res.stderr));
        let cores = scratch_dir("bt-cores-analysis_modules");
        let _guard = CorePatternGuard::set(&cores);
        let spec = CrashSpec {
            name: "modules_null_read".into(),
            program: "faults".into(),
            args: vec!["null_read".into()],
            signal: "SIGSEGV".into(),
            what: "a null read for the module tests".into(),
        };
        let crash = crash_one(&spec, &exe, &cores);
        (exe, crash)
    })
}

fn trace(extra: &[&str]) -> Value {
    let (exe, crash) = null_read();
    let mut args = vec!["ptrace", "--core", crash.core.to_str().expect("utf-8"), exe.to_str().expect("utf-8")];
    args.extend_from_slice(extra);
    bt_json(&args)
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array().map(|a| a.iter().filter_map(|x| x.as_str().map(String::from)).collect()).unwrap_or_default()
}

fn annotations_from(snap: &Value, source: &str) -> Vec<String> {
    snap["annotations"]
        .as_array()
        .map(|a| {
            a.iter().filter(|x| x["source"] == source).filter_map(|x| x["text"].as_str().map(String::from)).collect()
        })
        .unwrap_or_default()
}

fn problems(snap: &Value) -> Vec<String> {
    snap["problems"]
        .as_array()
        .map(|a| a.iter().filter_map(|x| x["message"].as_str().map(String::from)).collect())
        .unwrap_or_default()
}

fn attribute(snap: &Value, key: &str) -> Option<String> {
    snap["attributes"].as_array()?.iter().find(|a| a["key"] == key)?["value"].as_str().map(String::from)
}

fn module(name: &str) -> String {
    repo().join("examples/modules").join(name).to_string_lossy().into_owned()
}

#[test]
fn shipped_modules_annotate_and_set_attributes() {
    let dir = repo().join("examples/modules");
    let snap = trace(&["--modules-dir", dir.to_str().expect("utf-8")]);
    let summary = annotations_from(&snap, "module:fault_summary");
    assert_eq!(
        summary,
        vec!["SIGSEGV in null_read [faults] on thread ".to_string() + &snap["signal"]["tid"].to_string()]
    );
    assert_eq!(attribute(&snap, "fault.function").as_deref(), Some("null_read"));
    assert_eq!(attribute(&snap, "fault.module").as_deref(), Some("faults"));
    let words = annotations_from(&snap, "module:stack_words");
    assert!(words.len() == 1 && words[0].starts_with("stack: [rsp+0] = 0x"), "{words:?}");
    let module_problems: Vec<String> = problems(&snap).into_iter().filter(|p| p.contains("module")).collect();
    assert!(module_problems.is_empty(), "the shipped modules must run cleanly: {module_problems:?}");
    // Built-in analysis is still there, and first.
    let classifiers = strings(&snap["classifiers"]);
    assert_eq!(classifiers, vec!["invalid-read", "null-dereference"]);
}

#[test]
fn misbehaving_modules_are_contained() {
    // (module, a substring of the problem it must leave)
    let cases = [
        ("misbehaving/infinite_loop.rhai", "stopped: "),
        ("misbehaving/throws.rhai", "cannot cope with thread"),
        ("misbehaving/sandbox.rhai", "Function not found: open_file"),
        ("misbehaving/syntax_error.rhai", "syntax_error.rhai: "),
        ("misbehaving/deep_recursion.rhai", "deep_recursion.rhai: on_snapshot: "),
    ];
    let mut errors = Vec::new();
    for (file, needle) in cases {
        let path = module(file);
        let started = Instant::now();
        let snap = trace(&["--module", &path]);
        let took = started.elapsed();
        let probs = problems(&snap);
        if !probs.iter().any(|p| p.contains(&path) && p.contains(needle)) {
            errors.push(format!("{file}: no problem containing {needle:?}: {probs:?}"));
        }
        if took > Duration::from_secs(30) {
            errors.push(format!("{file}: took {took:?}"));
        }
        // The snapshot is whole: threads, frames, built-in classifiers.
        let classifiers = strings(&snap["classifiers"]);
        if !classifiers.iter().any(|c| c == "null-dereference") {
            errors.push(format!("{file}: built-in classifiers lost: {classifiers:?}"));
        }
        if snap["threads"][0]["frames"].as_array().is_none_or(|f| f.len() < 3) {
            errors.push(format!("{file}: frames lost"));
        }
    }
    assert!(errors.is_empty(), "{}", errors.join("\n"));

    // What a module added before it was stopped is kept.
    let snap = trace(&["--module", &module("misbehaving/infinite_loop.rhai")]);
    assert!(strings(&snap["classifiers"]).contains(&"added-before-the-loop".to_string()));
}

#[test]
fn all_modules_together_and_in_order() {
    // A bad module between good ones does not stop the ones after it.
    let snap = trace(&[
        "--module",
        &module("misbehaving/throws.rhai"),
        "--module",
        &module("fault_summary.rhai"),
        "--module",
        &module("misbehaving/infinite_loop.rhai"),
        "--module",
        &module("stack_words.rhai"),
    ]);
    assert_eq!(annotations_from(&snap, "module:fault_summary").len(), 1);
    assert_eq!(annotations_from(&snap, "module:stack_words").len(), 1);
    assert_eq!(problems(&snap).iter().filter(|p| p.contains("misbehaving")).count(), 2);
}

#[test]
fn classifier_by_hand_and_no_analysis() {
    let snap = trace(&["--classifier", "triaged-by-hand", "--classifier", "second"]);
    let c = strings(&snap["classifiers"]);
    assert_eq!(c, vec!["invalid-read", "null-dereference", "triaged-by-hand", "second"]);

    let snap = trace(&["--no-analysis", "--classifier", "only-mine"]);
    assert_eq!(strings(&snap["classifiers"]), vec!["only-mine"]);
    assert!(snap["annotations"].as_array().is_some_and(|a| a.is_empty()));
}

#[test]
fn missing_module_file_is_a_usage_error() {
    let (exe, crash) = null_read();
    let out = bt(&[
        "ptrace",
        "--core",
        crash.core.to_str().expect("utf-8"),
        exe.to_str().expect("utf-8"),
        "--module",
        "/nonexistent/module.rhai",
    ]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("module /nonexistent/module.rhai: no such file"), "{err}");
}
