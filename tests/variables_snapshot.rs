//! Variables travel with the snapshot: the C, C++ and Rust variable examples are
//! crashed for real and captured into a snapshot file; with the binaries and the core
//! moved away, rendering the variables again from the snapshot's type table, symbol
//! names and kept memory gives exactly the text (and structured value) capture wrote.

mod common;

use bt::snapshot::values::{VariableOptions, render_snapshot};
use bt::snapshot::{Location, Snapshot, Variable};
use common::*;
use std::path::Path;

fn all_variables(s: &Snapshot) -> Vec<&Variable> {
    s.threads.iter().flat_map(|t| t.frames.iter().flat_map(|f| &f.variables)).chain(&s.globals).collect()
}

/// (name, text, structured) of every variable, as JSON gives them.
fn json_variables(snap: &serde_json::Value) -> Vec<(String, String, String)> {
    let vars = snap["threads"]
        .as_array()
        .expect("threads")
        .iter()
        .flat_map(|t| t["frames"].as_array().expect("frames").iter())
        .flat_map(|f| f["variables"].as_array().expect("variables").iter())
        .chain(snap["globals"].as_array().expect("globals"));
    vars.map(|v| {
        (
            v["name"].as_str().unwrap_or("").to_string(),
            v["value"].as_str().unwrap_or("").to_string(),
            v["structured"].to_string(),
        )
    })
    .collect()
}

fn check(exe: &Path, core: &Path, globals: &[&str], min_rendered: usize) {
    let snap_path = exe.with_extension("bt");
    let mut args = vec!["ptrace", "--core", core.to_str().expect("utf-8"), exe.to_str().expect("utf-8")];
    for g in globals {
        args.extend(["--global", g]);
    }
    args.extend(["-o", snap_path.to_str().expect("utf-8")]);
    let out = bt(&args);
    assert!(out.status.success(), "bt {}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr));
    let captured = Snapshot::read_file(&snap_path).expect("reading the snapshot");
    assert_eq!(captured.globals.len(), globals.len(), "every global was captured");

    // Neither the binaries nor the core are needed from here on.
    let away = |p: &Path| {
        let to = p.with_extension("away");
        std::fs::rename(p, &to).expect("moving a file away");
    };
    away(exe);
    away(core);

    let rendered: Vec<&Variable> =
        all_variables(&captured).into_iter().filter(|v| v.location != Location::None).collect();
    assert!(rendered.len() >= min_rendered, "only {} variables have a location to render from", rendered.len());
    assert!(rendered.iter().all(|v| v.type_id.is_some_and(|id| (id as usize) < captured.types.len())));

    // Library call: the whole snapshot is unchanged by rendering it again.
    let mut again = captured.clone();
    render_snapshot(&mut again, &VariableOptions::default());
    for (a, b) in all_variables(&captured).iter().zip(all_variables(&again)) {
        assert_eq!((&a.name, &a.text), (&b.name, &b.text), "text rendered again differs");
        assert_eq!(a.value, b.value, "structured value of {} rendered again differs", a.name);
    }
    assert_eq!(again, captured);

    // The CLI: `bt ptrace --snapshot` renders again, and prints what capture wrote.
    let printed = bt_json(&["ptrace", "--snapshot", snap_path.to_str().expect("utf-8")]);
    let want = json_variables(&serde_json::to_value(&captured).expect("snapshot as JSON"));
    assert_eq!(json_variables(&printed), want);

    // And it really reads the kept memory: without it, memory-resident values are unreadable.
    let mut bare = captured.clone();
    bare.memory.clear();
    render_snapshot(&mut bare, &VariableOptions::default());
    let lost = all_variables(&bare)
        .iter()
        .filter(|v| matches!(v.location, Location::Memory(_)))
        .filter(|v| v.text.starts_with("<error: Cannot access memory"))
        .count();
    assert!(lost >= min_rendered / 2, "only {lost} values needed the kept memory");
}

#[test]
fn c_variables_render_again_from_the_snapshot() {
    for opt in ["-O0", "-O2"] {
        let (exe, core) =
            compile_and_crash(&format!("snapvars{opt}"), "gcc", &[opt, "-g"], "examples/variables/vars.c");
        let min = if opt == "-O0" { 20 } else { 3 };
        check(&exe, &core, &["global_counter", "global_name", "global_point", "tls_value"], min);
    }
}

#[test]
fn cpp_variables_render_again_from_the_snapshot() {
    // std::string and std::vector render through their libstdc++ layouts, from the table.
    let (exe, core) = compile_and_crash("snapvarscpp", "g++", &["-O0", "-g"], "examples/variables/vars.cpp");
    check(&exe, &core, &["shop::item_count", "shop::per_thread"], 8);
}

#[test]
fn rust_variables_render_again_from_the_snapshot() {
    // &str, String, Vec and enums (Option) render from the table as at capture.
    let (exe, core) =
        compile_and_crash("snapvarsrs", "rustc", &["-g", "-C", "opt-level=0"], "examples/variables/vars.rs");
    check(&exe, &core, &["vars::LIMIT"], 6);
}
