//! Variables against gdb (the oracle): examples/variables built at -O0 and -O2, crashed
//! for real, then every parameter and local gdb prints in `thread apply all bt full`
//! (and `print` of named globals) must read the same in bt's snapshot.

mod common;

use common::*;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Splits `a=1, b={x = 1, y = 2}, c=0x1 "a, b"` at top-level commas.
fn split_top(s: &str) -> Vec<String> {
    let (mut out, mut cur, mut depth, mut quote) = (Vec::new(), String::new(), 0i32, None::<char>);
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if let Some(q) = quote {
            cur.push(c);
            if c == '\\' {
                if let Some(n) = chars.next() {
                    cur.push(n);
                }
            } else if c == q {
                quote = None;
            }
            continue;
        }
        match c {
            '"' | '\'' => quote = Some(c),
            '{' | '(' | '[' | '<' => depth += 1,
            '}' | ')' | ']' | '>' => depth -= 1,
            ',' if depth == 0 => {
                out.push(cur.trim().to_string());
                cur.clear();
                continue;
            }
            _ => {}
        }
        cur.push(c);
    }
    if !cur.trim().is_empty() {
        out.push(cur.trim().to_string());
    }
    out
}

/// (function, variable) → value text, from gdb's `bt full` output.
fn gdb_values(text: &str) -> BTreeMap<(String, String), String> {
    let mut out = BTreeMap::new();
    let mut func = String::new();
    for line in text.lines() {
        if line.starts_with('#') {
            // `#1  0x… in walk (s=0x7ffe…, count=4) at file.c:51` or `#0  crash_here (…) at …`
            let rest = line
                .split_once(" in ")
                .map(|x| x.1)
                .unwrap_or_else(|| line.split_once("  ").map(|x| x.1).unwrap_or(""));
            let Some((name, args)) = rest.split_once(" (") else { continue };
            func = name.trim().to_string();
            let args = args.rsplit_once(')').map(|x| x.0).unwrap_or(args);
            let args = args.rsplit_once(") at ").map(|x| x.0).unwrap_or(args);
            for a in split_top(args) {
                if let Some((n, v)) = a.split_once('=') {
                    out.insert((func.clone(), n.to_string()), v.to_string());
                }
            }
        } else if let Some((n, v)) = line.strip_prefix("        ").and_then(|l| l.split_once(" = "))
            && !n.contains(' ')
        {
            out.insert((func.clone(), n.to_string()), v.to_string());
        }
    }
    out
}

fn build(src: &Path, out: &Path, compiler: &str, flags: &[&str]) {
    let st = Command::new(compiler)
        .args(flags)
        .arg("-g")
        .arg("-o")
        .arg(out)
        .arg(src)
        .status()
        .expect("running the compiler");
    assert!(st.success(), "{compiler} {} failed", src.display());
}

/// Builds (C/C++, with -g), crashes, and returns (exe, core).
fn crashed(name: &str, src: &str, compiler: &str, flags: &[&str]) -> (PathBuf, PathBuf) {
    let mut all = flags.to_vec();
    all.push("-g");
    compile_and_crash(name, compiler, &all, src)
}

fn gdb_text(exe: &Path, core: &Path, extra: &[&str]) -> String {
    let mut args =
        vec!["-nx", "-batch", "-ex", "set width 0", "-ex", "set pagination off", "-ex", "thread apply all bt full"];
    for e in extra {
        args.push("-ex");
        args.push(e);
    }
    args.push(exe.to_str().expect("utf-8"));
    args.push(core.to_str().expect("utf-8"));
    let out = run_with_timeout(120, Path::new("gdb"), &args, &[]);
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// bt's (function, variable) → value text for every frame of every thread.
fn bt_values(snap: &serde_json::Value) -> BTreeMap<(String, String), String> {
    let mut out = BTreeMap::new();
    for t in snap["threads"].as_array().expect("threads") {
        for f in t["frames"].as_array().expect("frames") {
            let func = f["function"].as_str().unwrap_or("").to_string();
            for v in f["variables"].as_array().into_iter().flatten() {
                let key = (func.clone(), v["name"].as_str().unwrap_or("").to_string());
                out.entry(key).or_insert_with(|| v["value"].as_str().unwrap_or("").to_string());
            }
        }
    }
    out
}

/// Compares every gdb value of `functions`; entry values (`x@entry=`) are skipped
/// (bt does not resolve DW_OP_entry_value yet). Returns how many were compared.
fn compare(
    gdb: &BTreeMap<(String, String), String>,
    bt: &BTreeMap<(String, String), String>,
    functions: &[&str],
) -> usize {
    compare_where(gdb, bt, functions, |_| true)
}

/// Like [`compare`], only for gdb values `keep` accepts. gdb's `...` (a non-scalar
/// argument in a frame line) is never compared.
fn compare_where(
    gdb: &BTreeMap<(String, String), String>,
    bt: &BTreeMap<(String, String), String>,
    functions: &[&str],
    keep: impl Fn(&str) -> bool,
) -> usize {
    let mut compared = 0;
    let mut errors = Vec::new();
    for ((func, name), want) in gdb {
        if !functions.contains(&func.as_str()) || want.contains("@entry") || want == "..." || !keep(want) {
            continue;
        }
        // gdb words a partly optimized-out value read by a language printer this way.
        let want = if want == "<error reading variable: value has been optimized out>" {
            "<optimized out>"
        } else {
            want.as_str()
        };
        match bt.get(&(func.clone(), name.clone())) {
            Some(got) if got == want => compared += 1,
            // gdb does not unwind past main, so it cannot read main's entry values from
            // __libc_start_call_main's call site; bt can (argc = 1 is right).
            Some(_) if func == "main" && want == "<optimized out>" => {}
            Some(got) => errors.push(format!("{func}: {name}: gdb {want:?}, bt {got:?}")),
            None => errors.push(format!("{func}: {name}: gdb {want:?}, bt has no such variable")),
        }
    }
    assert!(errors.is_empty(), "values differ from gdb:\n{}", errors.join("\n"));
    compared
}

fn check_c(opt: &str) {
    let (exe, core) = crashed(&format!("vars{opt}"), "examples/variables/vars.c", "gcc", &[opt]);
    let globals = ["global_counter", "global_name", "global_point", "tls_value"];
    let prints: Vec<String> = globals.iter().map(|g| format!("print {g}")).collect();
    let prints: Vec<&str> = prints.iter().map(String::as_str).collect();
    let text = gdb_text(&exe, &core, &prints);
    let gdb = gdb_values(&text);
    let mut args = vec!["ptrace", "--core", core.to_str().expect("utf-8"), exe.to_str().expect("utf-8")];
    for g in &globals {
        args.push("--global");
        args.push(g);
    }
    let snap = bt_json(&args);
    let n = compare(&gdb, &bt_values(&snap), &["crash_here", "walk", "main"]);
    assert!(n >= if opt == "-O0" { 15 } else { 3 }, "too few values compared ({n}); gdb said:\n{text}");
    // `print NAME` lines: `$1 = 42` in order.
    let printed: Vec<&str> =
        text.lines().filter(|l| l.starts_with('$')).filter_map(|l| l.split_once(" = ").map(|x| x.1)).collect();
    let ours: Vec<&str> =
        snap["globals"].as_array().expect("globals").iter().map(|g| g["value"].as_str().unwrap_or("")).collect();
    assert_eq!(ours, printed, "globals differ from gdb's print");
}

#[test]
fn c_variables_at_o0_match_gdb() {
    check_c("-O0");
}

#[test]
fn c_variables_at_o2_match_gdb() {
    check_c("-O2");
}

#[test]
fn no_variables_and_faulted_modes() {
    let (exe, core) = crashed("varsmodes", "examples/variables/vars.c", "gcc", &["-O0"]);
    let (c, e) = (core.to_str().expect("utf-8"), exe.to_str().expect("utf-8"));
    let none = bt_json(&["ptrace", "--no-variables", "--core", c, e]);
    assert!(bt_values(&none).is_empty());
    assert!(none["memory"].as_array().expect("memory").is_empty());
    let faulted = bt_json(&["ptrace", "--faulted", "--core", c, e]);
    assert!(bt_values(&faulted).contains_key(&("crash_here".into(), "local_answer".into())));
    // The linked list is followed in the structured value, bounded.
    let list = &faulted["threads"][0]["frames"][0]["variables"][0];
    assert_eq!(list["name"], "list");
    assert_eq!(
        list["structured"]["pointer"]["target"]["struct"][1]["value"]["pointer"]["target"]["struct"][0]["value"]["int"],
        20
    );
    let small = bt_json(&["ptrace", "--memory-budget", "1K", "--core", c, e]);
    let kept: usize = small["memory"]
        .as_array()
        .expect("memory")
        .iter()
        .map(|m| m["bytes"].as_array().map(|b| b.len()).unwrap_or(0))
        .sum();
    assert!(kept <= 1024, "budget exceeded: {kept}");
}

#[test]
fn cpp_variables_match_gdb() {
    // gdb's libstdc++ pretty printers (std::string, std::vector) are the reference.
    for opt in ["-O0", "-O2"] {
        let (exe, core) = crashed(&format!("varscpp{opt}"), "examples/variables/vars.cpp", "g++", &[opt]);
        let text = gdb_text(&exe, &core, &["print shop::item_count", "print shop::per_thread"]);
        let gdb = gdb_values(&text);
        let snap = bt_json(&[
            "ptrace",
            "--core",
            core.to_str().expect("utf-8"),
            exe.to_str().expect("utf-8"),
            "--global",
            "shop::item_count",
            "--global",
            "shop::per_thread",
        ]);
        let n = compare(&gdb, &bt_values(&snap), &["shop::Inventory::fail", "main"]);
        assert!(n >= if opt == "-O0" { 8 } else { 1 }, "{opt}: too few values compared ({n}); gdb said:\n{text}");
        let printed: Vec<&str> =
            text.lines().filter(|l| l.starts_with('$')).filter_map(|l| l.split_once(" = ").map(|x| x.1)).collect();
        let ours: Vec<&str> =
            snap["globals"].as_array().expect("globals").iter().map(|g| g["value"].as_str().unwrap_or("")).collect();
        assert_eq!(ours, printed, "{opt}: globals differ from gdb's print");
    }
}

#[test]
fn libstdcxx_containers_and_smart_pointers_match_gdbs_printers() {
    // std::map, set, multiset, unordered_map/set, list, deque, tuple, pair, unique_ptr,
    // shared_ptr, weak_ptr, optional and variant (type names as gdb's type printers
    // shorten them: `std::variant<int, std::string>`), as gdb's libstdc++ pretty printers print
    // them, and empty classes (`{<No data fields>}`) and references (`@0x…: 42`; in a
    // struct `@0x…`; to a printed type the printer's text) as gdb prints them. GCC only:
    // Clang leaves std::string's type a declaration (-fno-standalone-debug), where
    // gdb's printers raise Python exceptions and no oracle is left.
    for (compiler, opt) in [("g++", "-O0"), ("g++", "-O2")] {
        let name = format!("containers-{compiler}{opt}");
        let (exe, core) = crashed(&name, "tests/data/containers.cpp", compiler, &[opt, "-std=c++17"]);
        let text = gdb_text(&exe, &core, &[]);
        let gdb = gdb_values(&text);
        // -O2 leaves the smart pointers and the optionals <optimized out>.
        let want = if opt == "-O0" { 18 } else { 8 };
        let printed = gdb.iter().filter(|((f, _), v)| f == "main" && v.starts_with("std::")).count();
        assert!(printed >= want, "{name}: gdb's libstdc++ printers did not run ({printed} values):\n{text}");
        let saved = core.with_extension("bt");
        let snap = bt_json(&[
            "ptrace",
            "--core",
            core.to_str().expect("utf-8"),
            exe.to_str().expect("utf-8"),
            "-o",
            saved.to_str().expect("utf-8"),
        ]);
        // refs()'s arguments come from gdb's frame line, where aggregates are `{...}`.
        // At -O2 they live in rdi and rsi, which gdb reads in a caller frame as if the
        // callee had kept them (it need not); bt says <optimized out> there.
        let functions: &[&str] = if opt == "-O0" { &["main", "refs"] } else { &["main"] };
        let n = compare_where(&gdb, &bt_values(&snap), functions, |v| !v.contains("{...}"));
        assert!(n >= want, "{name}: too few values compared ({n}); gdb said:\n{text}");
        // The nodes walked are kept: the snapshot alone renders the same values.
        let again = bt_json(&["ptrace", "--snapshot", saved.to_str().expect("utf-8")]);
        assert_eq!(bt_values(&again), bt_values(&snap), "{name}: the saved snapshot renders other values");
    }
}

#[test]
fn pointers_to_versioned_copies_of_library_data_are_named_as_gdb_names_them() {
    // An executable's copies of std::cout and of typeinfo objects carry the library's
    // symbol version in its symbol table; gdb prints `<std::cout@GLIBCXX_3.4>`,
    // `<typeinfo for int@CXXABI_1.3>`.
    let (exe, core) = crashed("versioned-data", "tests/data/versioned_data.cpp", "g++", &["-O0"]);
    let text = gdb_text(&exe, &core, &[]);
    let gdb = gdb_values(&text);
    let versioned =
        gdb.iter().filter(|((f, _), v)| f == "main" && (v.contains("@GLIBCXX_") || v.contains("@CXXABI_"))).count();
    assert!(versioned >= 3, "the precondition failed: gdb names no versioned copies:\n{text}");
    let snap = bt_json(&["ptrace", "--core", core.to_str().expect("utf-8"), exe.to_str().expect("utf-8")]);
    let n = compare_where(&gdb, &bt_values(&snap), &["main"], |_| true);
    assert!(n >= 4, "too few values compared ({n}); gdb said:\n{text}");
}

#[test]
fn rust_variables_match_gdb() {
    // Plain gdb prints Rust String and Vec as their raw layout while bt reads them
    // ("grace", vec![1, 2, 3]); scalars, &str, Option and pointers must agree.
    for opt in ["0", "2"] {
        let name = format!("varsrs-O{opt}");
        let level = format!("opt-level={opt}");
        let (exe, core) = compile_and_crash(&name, "rustc", &["-g", "-C", &level], "examples/variables/vars.rs");
        let text = gdb_text(&exe, &core, &["print vars::LIMIT"]);
        let gdb = gdb_values(&text);
        let snap = bt_json(&[
            "ptrace",
            "--core",
            core.to_str().expect("utf-8"),
            exe.to_str().expect("utf-8"),
            "--global",
            "vars::LIMIT",
        ]);
        let bt = bt_values(&snap);
        let n = compare_where(&gdb, &bt, &["vars::smash", "vars::main", "core::ptr::write_volatile<i64>"], |v| {
            !v.contains(" {")
        });
        assert!(n >= if opt == "0" { 6 } else { 1 }, "-O{opt}: too few values compared ({n}); gdb said:\n{text}");
        if opt == "0" {
            assert_eq!(
                bt.get(&("vars::main".into(), "acct".into())).map(String::as_str),
                Some(
                    "vars::Account {id: 17, owner: \"grace\", balance: -250, tags: vec![1, 2, 3], parent: core::option::Option<u32>::Some(4)}"
                )
            );
        }
        assert_eq!(snap["globals"][0]["value"], "5000");
    }
}

#[test]
fn thread_locals_of_executable_and_shared_library_match_gdb() {
    let dir = scratch_dir("bt-cores-variables-tls");
    let lib = dir.join("libtlsvars.so");
    build(&repo_root().join("examples/variables/tls_lib.c"), &lib, "gcc", &["-O0", "-shared", "-fPIC"]);
    let exe = dir.join("tlsvars");
    let st = Command::new("gcc")
        .args(["-g", "-O0", "-o"])
        .arg(&exe)
        .arg(repo_root().join("examples/variables/tls_main.c"))
        .arg(format!("-L{}", dir.display()))
        .args(["-ltlsvars", "-Wl,-rpath,$ORIGIN"])
        .status()
        .expect("gcc");
    assert!(st.success());
    let spec = CrashSpec {
        name: "tlsvars".into(),
        program: "tlsvars".into(),
        args: vec![],
        signal: "SIGSEGV".into(),
        what: String::new(),
    };
    let crash = {
        let _guard = CorePatternGuard::set(&dir);
        crash_one(&spec, &exe, &dir)
    };
    let names = ["exe_tls", "lib_counter", "lib_tag", "lib_untouched"];
    let prints: Vec<String> = names.iter().map(|g| format!("print {g}")).collect();
    let prints: Vec<&str> = prints.iter().map(String::as_str).collect();
    let text = gdb_text(&exe, &crash.core, &prints);
    let printed: Vec<&str> =
        text.lines().filter(|l| l.starts_with('$')).filter_map(|l| l.split_once(" = ").map(|x| x.1)).collect();
    assert_eq!(printed.len(), names.len(), "gdb could not print every thread-local:\n{text}");
    let mut args = vec!["ptrace", "--core", crash.core.to_str().expect("utf-8"), exe.to_str().expect("utf-8")];
    for n in &names {
        args.push("--global");
        args.push(n);
    }
    let snap = bt_json(&args);
    let ours: Vec<&str> =
        snap["globals"].as_array().expect("globals").iter().map(|g| g["value"].as_str().unwrap_or("")).collect();
    assert_eq!(ours, printed, "thread-locals differ from gdb");
    assert!(snap["globals"].as_array().expect("globals").iter().all(|g| g["kind"] == "thread_local"));
}

#[test]
fn live_variables_match_gdb_and_render_again_from_the_snapshot() {
    // Live capture copies what the variables need while the threads are stopped and
    // renders after detaching; the values must still be gdb's, and the snapshot alone
    // must render them again the same.
    let dir = scratch_dir("bt-variables-live");
    let exe = dir.join("live");
    build(&repo_root().join("examples/variables/live.c"), &exe, "gcc", &["-O0"]);
    let mut child =
        Command::new(&exe).stdout(std::process::Stdio::piped()).spawn().expect("starting examples/variables/live.c");
    let mut line = String::new();
    std::io::BufRead::read_line(&mut std::io::BufReader::new(child.stdout.take().expect("stdout")), &mut line)
        .expect("reading ready");
    assert_eq!(line.trim(), "ready");
    let pid = child.id().to_string();
    let snap_path = dir.join("live.bt");
    let snap = bt_json(&["ptrace", &pid, "--global", "global_counter", "-o", snap_path.to_str().expect("utf-8")]);
    let gdb_out = run_with_timeout(
        120,
        Path::new("gdb"),
        &["-nx", "-batch", "-ex", "set width 0", "-ex", "thread apply all bt full", "-p", &pid],
        &[],
    );
    let _ = child.kill();
    let _ = child.wait();
    let text = String::from_utf8_lossy(&gdb_out.stdout).into_owned();
    let ours = bt_values(&snap);
    let n = compare(&gdb_values(&text), &ours, &["park", "main"]);
    assert!(n >= 8, "too few values compared ({n}); gdb said:\n{text}");
    // Names resolved after detaching: the callback and the pointer to a global.
    let get = |name: &str| ours.get(&("park".to_string(), name.to_string())).cloned().unwrap_or_default();
    assert!(get("cb").ends_with(" <twice>"), "cb = {}", get("cb"));
    assert!(get("counter").ends_with(" <global_counter>"), "counter = {}", get("counter"));
    assert_eq!(snap["globals"][0]["value"], "42");
    // The list was read while stopped, 3 pointers deep.
    let list = snap["threads"][0]["frames"]
        .as_array()
        .expect("frames")
        .iter()
        .flat_map(|f| f["variables"].as_array().expect("variables"))
        .find(|v| v["name"] == "list")
        .expect("list");
    assert_eq!(
        list["structured"]["pointer"]["target"]["struct"][1]["value"]["pointer"]["target"]["struct"][0]["value"]["int"],
        20
    );
    // The saved snapshot renders the same without the process.
    let again = bt_json(&["ptrace", "--snapshot", snap_path.to_str().expect("utf-8")]);
    assert_eq!(bt_values(&again), ours);
    for (a, b) in snap["threads"].as_array().expect("threads").iter().zip(again["threads"].as_array().expect("threads"))
    {
        assert_eq!(a["frames"], b["frames"]);
    }
}

/// Regression (issue 12): a data pointer into code is named as gdb names it, after the
/// function or the PLT stub it points into (`stub = 0x401030 <puts@plt> "\377%…"`);
/// bt used to print no name, since only data segments were searched.
#[test]
fn a_data_pointer_into_a_plt_stub_is_named_as_gdb_names_it() {
    let c = crash("c_plt");
    let text = gdb_text(&c.exe, &c.core, &[]);
    let gdb = gdb_values(&text);
    let stub = gdb.get(&("main".to_string(), "stub".to_string())).cloned().unwrap_or_default();
    assert!(stub.contains(" <puts@plt> "), "gdb no longer names the stub; it said:\n{text}");
    let snap = bt_json(&["ptrace", "--core", c.core.to_str().expect("utf-8"), c.exe.to_str().expect("utf-8")]);
    let n = compare(&gdb, &bt_values(&snap), &["main"]);
    assert!(n >= 4, "too few values compared ({n}); gdb said:\n{text}");
}

/// A thread waiting in pthread_join: glibc reaches the futex wait by tail calls
/// (`__futex_abstimed_wait_cancelable64` jumps to `__futex_abstimed_wait_common`), so
/// the frame above the wait is a reconstructed tail-call frame. The wait's frame base
/// is the CFA, the sp of the next physical frame past it: its values (read through the
/// frame base at this pc) must be gdb's, not read from the wrong stack slots.
#[test]
fn values_under_a_tail_call_frame_match_gdb() {
    let src = "#include <pthread.h>\n#include <unistd.h>\n\
               static void *crash(void *p) { (void)p; usleep(200000); *(volatile int *)0 = 1; return 0; }\n\
               int main(void) { pthread_t t; pthread_create(&t, 0, crash, 0); pthread_join(t, 0); return 0; }\n";
    let dir = scratch_dir("bt-cores-variables-tailcall");
    let c = dir.join("join.c");
    std::fs::write(&c, src).expect("write the source");
    let crash = common::build_and_crash(&dir, "join", "gcc", &["-O2", "-g", "-pthread"], &c);
    let text = gdb_text(&crash.exe, &crash.core, &[]);
    let gdb = gdb_values(&text);
    let snap = bt_json(&["ptrace", "--core", crash.core.to_str().expect("utf-8"), crash.exe.to_str().expect("utf-8")]);
    let bt = bt_values(&snap);
    let f = "__futex_abstimed_wait_common";
    let mut compared = 0;
    let mut entry = 0;
    // `private`, `clockid` and `clockbit` are known only from the entry values the
    // caller passed: its call site is the jump of the tail-call frame above
    // (`__futex_abstimed_wait_cancelable64`), evaluated with the registers of the next
    // physical frame and that frame's own entry values. gdb prints such a parameter
    // `private=private@entry=128`; bt prints the value.
    for name in ["futex_word", "op", "abstime", "expected", "private", "clockid", "cancel", "clockbit"] {
        let key = (f.to_string(), name.to_string());
        let Some(said) = gdb.get(&key).filter(|w| *w != "<optimized out>") else { continue };
        let want = match said.rsplit_once("@entry=") {
            Some((_, v)) => {
                entry += 1;
                v.to_string()
            }
            None => said.clone(),
        };
        assert_eq!(bt.get(&key), Some(&want), "{f}: {name}: bt differs from gdb; gdb said:\n{text}");
        compared += 1;
    }
    assert!(
        compared >= 6 && entry >= 2,
        "the precondition failed: gdb shows too few values of {f} ({compared}, {entry} entry values):\n{text}"
    );
}

/// The `.dwo` files in `dir`.
fn dwo_files(dir: &Path) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("scratch dir")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "dwo"))
        .collect();
    out.sort();
    out
}

/// Frames (inlined calls, names as gdb names them) and variables of a split DWARF build
/// against gdb, which reads the split units; then with the split units gone, which bt
/// must say, and where it then has no variables of the program's functions.
fn check_split(exe: &Path, core: &Path, moved: &[PathBuf]) {
    let (c, e) = (core.to_str().expect("utf-8"), exe.to_str().expect("utf-8"));
    let snap = bt_json(&["ptrace", "--core", c, e]);
    let gdb = gdb_core(exe, core);
    if let Err(diff) = compare_report(&gdb, &snap) {
        panic!("{}: frames differ from gdb's:\n{diff}", exe.display());
    }
    let text = gdb_text(exe, core, &[]);
    let n = compare(&gdb_values(&text), &bt_values(&snap), &["shop::Inventory::fail", "main"]);
    assert!(n >= 2, "{}: too few values compared ({n}); gdb said:\n{text}", exe.display());
    let functions: Vec<String> = snap["threads"][0]["frames"]
        .as_array()
        .expect("frames")
        .iter()
        .filter_map(|f| f["function"].as_str().map(str::to_string))
        .collect();
    assert!(functions.iter().any(|f| f == "shop::Inventory::fail"), "{}: {functions:?}", exe.display());
    for m in moved {
        std::fs::rename(m, m.with_extension("away")).expect("moving the split unit away");
    }
    let without = bt_json(&["ptrace", "--core", c, e]);
    for m in moved {
        std::fs::rename(m.with_extension("away"), m).expect("moving the split unit back");
    }
    let said = without["problems"].to_string();
    assert!(said.contains("split DWARF file") && said.contains("not found"), "no problem said: {said}");
    let vars = bt_values(&without);
    assert!(!vars.keys().any(|(f, _)| f.contains("Inventory")), "variables without the split unit: {vars:?}");
}

#[test]
fn split_dwarf_units_are_read_from_dwo_files_and_dwp_packages_as_gdb_reads_them() {
    let src = repo_root().join("examples/variables/vars.cpp");
    // DWARF 5 (split units of DW_UT_split_compile) and DWARF 4 (GNU's extension), -O2
    // (inlined calls, location lists in the .dwo): the .dwo beside the executable.
    let mut built = Vec::new();
    for (tag, version) in [("5", "-gdwarf-5"), ("4", "-gdwarf-4")] {
        let dir = scratch_dir(&format!("bt-cores-split-dwarf-{tag}"));
        let c = build_and_crash(&dir, &format!("split{tag}"), "g++", &["-O2", "-g", version, "-gsplit-dwarf"], &src);
        let dwos = dwo_files(&dir);
        assert_eq!(dwos.len(), 1, "g++ -gsplit-dwarf wrote no .dwo in {}", dir.display());
        check_split(&c.exe, &c.core, &dwos);
        built.push((c, dwos[0].clone()));
    }
    // A .dwo cut short, then the other build's .dwo, in the place of the DWARF 5 one:
    // each said, every frame still there, never fatal.
    let ((c, dwo), (_, other)) = (&built[0], &built[1]);
    let kept = std::fs::read(dwo).expect("reading the .dwo");
    let args = ["ptrace", "--core", c.core.to_str().expect("utf-8"), c.exe.to_str().expect("utf-8")];
    let physical = |snap: &serde_json::Value| {
        let frames = snap["threads"][0]["frames"].as_array().expect("frames").clone();
        frames.iter().filter(|f| f["inlined"] == false).map(|f| f["pc"].clone()).collect::<Vec<_>>()
    };
    let good = physical(&bt_json(&args));
    for (bad, said) in
        [(kept[..kept.len() / 2].to_vec(), "not readable"), (std::fs::read(other).expect("dwo"), "another build")]
    {
        std::fs::write(dwo, &bad).expect("writing the bad .dwo");
        let snap = bt_json(&args);
        let problems = snap["problems"].to_string();
        assert!(problems.contains(said), "a bad .dwo ({said}) not said: {problems}");
        assert_eq!(physical(&snap), good, "frames lost with a bad .dwo ({said})");
    }
    std::fs::write(dwo, &kept).expect("restoring the .dwo");
    // A .dwp package (what a release ships instead of the .dwo files): objects compiled
    // apart, linked, packaged; the .dwo files deleted. DWARF 4 by binutils' dwp, read
    // by gdb too; DWARF 5 by llvm-dwp, whose packages gdb 13 crashes on: there bt with
    // the package must say what it said with the .dwo files (checked against gdb).
    for (tag, version, packer) in [("4", "-gdwarf-4", "dwp"), ("5", "-gdwarf-5", "llvm-dwp")] {
        let dir = scratch_dir(&format!("bt-cores-split-dwarf-dwp{tag}"));
        let obj = dir.join("vars.o");
        let st = Command::new("g++")
            .args(["-O2", "-g", version, "-gsplit-dwarf", "-c", "-o"])
            .arg(&obj)
            .arg(&src)
            .status()
            .expect("g++");
        assert!(st.success());
        let c = build_and_crash(&dir, &format!("splitdwp{tag}"), "g++", &[], &obj);
        let (core, exe) = (c.core.to_str().expect("utf-8"), c.exe.to_str().expect("utf-8"));
        let with_dwo = bt_json(&["ptrace", "--core", core, exe]);
        if packer == "llvm-dwp" {
            // Before the package exists: gdb would read it, and crash.
            check_split(&c.exe, &c.core, &dwo_files(&dir));
        }
        let dwp = dir.join(format!("splitdwp{tag}.dwp"));
        let st = Command::new(packer).arg("-e").arg(&c.exe).arg("-o").arg(&dwp).status().expect(packer);
        assert!(st.success(), "{packer} failed");
        let dwos = dwo_files(&dir);
        assert_eq!(dwos.len(), 1);
        if packer == "dwp" {
            std::fs::remove_file(&dwos[0]).expect("removing the .dwo");
            check_split(&c.exe, &c.core, std::slice::from_ref(&dwp));
        } else {
            std::fs::remove_file(&dwos[0]).expect("removing the .dwo");
            let with_dwp = bt_json(&["ptrace", "--core", core, exe]);
            assert_eq!(with_dwp["threads"], with_dwo["threads"], "the package reads otherwise than the .dwo");
        }
    }
}
