//! `bt ptrace --core` against gdb on every example crash: same threads, same frames
//! (functions, inlined frames, files, lines), the faulting thread first, the signal.

mod common;

use common::*;

/// One test per example, so a failure names the case it guards.
macro_rules! oracle_tests {
    ($($test:ident => $name:literal),* $(,)?) => {
        $(
            #[test]
            fn $test() {
                check_core_against_gdb($name);
            }
        )*
        const COVERED: &[&str] = &[$($name),*];
    };
}

oracle_tests! {
    null_read_three_calls_deep_matches_gdb => "c_null",
    non_pie_executable_matches_gdb => "c_null_nopie",
    separate_debug_file_via_debuglink_matches_gdb => "c_split_debug",
    seven_threads_with_faulting_thread_first_match_gdb => "c_threads",
    fault_inside_signal_handler_unwinds_through_trampoline => "c_sighandler",
    ten_thousand_recursive_frames_match_gdb => "c_recursion",
    omitted_frame_pointers_unwind_by_cfi => "c_omitfp",
    elf_files_mapped_as_data_do_not_displace_modules => "c_mmap_elf",
    tail_call_through_the_plt_keeps_the_qsort_frame => "c_qsort",
    a_library_in_a_dlmopen_namespace_is_its_own_module => "c_dlmopen",
    a_fault_in_a_plt_stub_is_named_as_gdb_names_it => "c_plt",
    cpp_inlined_templates_lambdas_std_function_match_gdb => "cpp_templates",
    cpp_uncaught_exception_abort_matches_gdb => "cpp_exception",
    rust_panic_abort_matches_gdb => "rust_panic",
    rust_null_write_matches_gdb => "rust_null",
    rust_lto_cross_unit_inlines_match_gdb => "rust_lto",
}

/// Guards the coverage promise: every crash listed in examples/crashes.tsv has an
/// oracle test above.
#[test]
fn every_example_crash_has_an_oracle_test() {
    let mut listed: Vec<String> = crash_specs().into_iter().map(|s| s.name).collect();
    let mut covered: Vec<String> = COVERED.iter().map(|s| s.to_string()).collect();
    listed.sort();
    covered.sort();
    assert_eq!(listed, covered, "examples/crashes.tsv and the oracle tests disagree");
}

/// Guards the frame cap: with the default cap a 10000-frame stack is cut, the frames
/// kept still match gdb's innermost ones, and the cut is recorded as a problem.
#[test]
fn default_frame_cap_truncates_deep_recursion_and_says_so() {
    let crash = crash("c_recursion");
    let gdb = gdb_core(&crash.exe, &crash.core);
    let snap = bt_json(&["ptrace", "--core", crash.core.to_str().unwrap(), crash.exe.to_str().unwrap()]);
    let threads = bt_threads(&snap);
    let g = &gdb.threads[0];
    let b = threads.iter().find(|t| t.tid == g.tid).expect("bt lists the crashing thread");
    assert!(
        g.frames.len() > 1024,
        "the example should recurse past the default cap; gdb has {} frames",
        g.frames.len()
    );
    assert!(!b.frames.is_empty() && b.frames.len() <= 1024, "default cap is 1024 frames, bt gave {}", b.frames.len());
    let prefix = GdbThread { frames: g.frames[..b.frames.len()].to_vec(), ..g.clone() };
    if let Err(e) = compare_thread(&prefix, b) {
        panic!("the frames kept under the cap differ from gdb's innermost ones:\n{e}");
    }
    let problems = snap["problems"].as_array().map(|p| p.len()).unwrap_or(0);
    assert!(problems > 0, "a truncated stack must be recorded in problems; got {}", snap["problems"]);
}

/// Guards the trust levels: frame 0 comes from the registers (context); the others
/// were found by CFI on these binaries, which all carry .eh_frame; none by scanning.
#[test]
fn frames_state_how_they_were_found() {
    for name in ["c_null", "c_omitfp", "cpp_templates"] {
        let crash = crash(name);
        let snap = bt_json(&["ptrace", "--core", crash.core.to_str().unwrap(), crash.exe.to_str().unwrap()]);
        let t = &bt_threads(&snap)[0];
        assert!(!t.frames.is_empty(), "{name}: no frames");
        assert_eq!(t.frames[0].trust, "context", "{name}: frame 0 trust");
        for (i, f) in t.frames.iter().enumerate().skip(1) {
            if f.inlined {
                continue;
            }
            assert!(
                f.trust == "cfi" || f.trust == "context",
                "{name}: frame #{i} {:?} has trust {:?}, expected cfi",
                f.function,
                f.trust
            );
        }
    }
}

/// Guards call-site lines past 65535 (REFERENCES: gdb 13 wraps them): a function
/// inlined at line 70000-something of a generated C file. bt must give the source's
/// line; gdb gives the same line or, wrapped, that line minus 65536 — and with that
/// one allowance the whole stack matches gdb's.
#[test]
fn call_site_lines_above_65535_are_the_source_lines() {
    let dir = scratch_dir("bt-cores-ptrace_core_wrap");
    let mut src = String::from(
        "int *volatile target;\nint sink;\n\
         static inline __attribute__((always_inline)) void inner(int v) {\n\
         \x20   sink = v * 3;\n    *target = v;\n    sink += 1;\n}\n\
         __attribute__((noinline)) void outer(int v) {\n    sink = v;\n",
    );
    for _ in 0..70_000 {
        src.push_str("    /* padding */\n");
    }
    src.push_str("    inner(v);\n    sink += 2;\n}\nint main(int c, char **a) { (void)a; outer(c); return 0; }\n");
    let call_line = src.lines().position(|l| l == "    inner(v);").expect("the call is there") as u32 + 1;
    assert!(call_line > 0xffff, "the call must sit past line 65535 (it is at {call_line})");
    let path = dir.join("wrap.c");
    std::fs::write(&path, &src).expect("writing the source");
    let crash = build_and_crash(&dir, "wrap", "gcc", &["-O2", "-g"], &path);
    let gdb = gdb_core(&crash.exe, &crash.core);
    let snap = bt_json(&["ptrace", "--core", crash.core.to_str().unwrap(), crash.exe.to_str().unwrap()]);
    let b = &bt_threads(&snap)[0];
    let at = b.frames.iter().position(|f| f.function.as_deref() == Some("inner")).expect("bt shows the inlined frame");
    assert!(b.frames[at].inlined, "inner is inlined: {:?}", b.frames[at]);
    let caller = &b.frames[at + 1];
    assert_eq!(caller.function.as_deref(), Some("outer"));
    assert_eq!(caller.line, Some(call_line), "bt's call-site line is the source's");
    let g = &gdb.threads[0];
    let gline = g.frames.get(at + 1).and_then(|f| f.line);
    assert!(
        gline == Some(call_line) || gline == Some(call_line - 0x10000),
        "gdb's call-site line {gline:?} is neither {call_line} nor its 16-bit wrap"
    );
    if let Err(e) = compare_thread(g, b) {
        panic!("bt and gdb differ beyond the line wrap:\n{e}");
    }
}

/// Guards the pipeline against its own bugs (issue 12): a panic while unwinding or
/// symbolizing one thread (injected through the `BT_INJECT_PANIC` failpoint) costs
/// that thread or frame, recorded as a problem; the trace still succeeds with
/// every other thread.
#[test]
fn a_panic_in_one_thread_is_a_problem_not_a_failed_trace() {
    let crash = crash("c_threads");
    let args = ["ptrace", "--core", crash.core.to_str().unwrap(), crash.exe.to_str().unwrap(), "--json"];
    let whole = bt_json(&args[..4]);
    let threads = bt_threads(&whole);
    assert!(threads.len() >= 3, "c_threads has several threads");
    let victim = threads[1].tid;
    for phase in ["unwind", "symbolize"] {
        let out = std::process::Command::new(bt_bin())
            .args(args)
            .env("BT_INJECT_PANIC", format!("{phase}:{victim}"))
            .output()
            .expect("bt");
        assert!(out.status.success(), "{phase}: {}", String::from_utf8_lossy(&out.stderr));
        let snap: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
        let problems = snap["problems"].to_string();
        assert!(problems.contains("bt panicked"), "{phase}: {problems}");
        let again = bt_threads(&snap);
        assert_eq!(again.len(), threads.len(), "{phase}: every thread is still listed");
        for (a, b) in again.iter().zip(&threads) {
            if a.tid != victim {
                assert_eq!(a.frames.len(), b.frames.len(), "{phase}: thread {} keeps its frames", a.tid);
            }
        }
    }
}
