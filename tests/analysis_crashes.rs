//! Built-in analysis on real crashes: small C, C++ and Rust programs built at test
//! time, crashed by the kernel (cores under the shared core_pattern guard), traced
//! with `bt ptrace --core`; each must carry the right fault classifier and no wrong one.

mod common;

use common::{CorePatternGuard, Crash, CrashSpec, bt, bt_json, crash_one, scratch_dir};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Classifiers that say what kind of fault it was; a case must have exactly its own.
const FAULT_CLASSIFIERS: &[&str] = &[
    "sent-signal",
    "null-dereference",
    "invalid-read",
    "invalid-write",
    "invalid-execute",
    "stack-overflow",
    "misaligned-access",
    "abort",
    "assert",
    "uncaught-exception",
    "rust-panic",
    "stack-smash",
    "heap-corruption",
    "double-free",
    "division-by-zero",
    "illegal-instruction",
    "asan",
    "ubsan",
    "invalid-free",
    "undefined-behavior",
];

/// One case: mode (argv[1]), the signal, the exact fault classifiers, whether
/// `constraint-violation` is expected, and substrings the annotations must contain.
struct Case {
    mode: &'static str,
    signal: &'static str,
    classifiers: &'static [&'static str],
    constraint: bool,
    annotations: &'static [&'static str],
}

const fn case(
    mode: &'static str,
    signal: &'static str,
    classifiers: &'static [&'static str],
    constraint: bool,
    annotations: &'static [&'static str],
) -> Case {
    Case { mode, signal, classifiers, constraint, annotations }
}

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn build(dir: &Path, program: &str, argv: &[&str]) -> PathBuf {
    let out = dir.join(program);
    let mut cmd = Command::new(argv[0]);
    cmd.args(&argv[1..]).arg("-o").arg(&out);
    let res = cmd.output().unwrap_or_else(|e| panic!("running {}: {e}", argv[0]));
    assert!(res.status.success(), "building {program} failed:\n{}", String::from_utf8_lossy(&res.stderr));
    out
}

/// Crashes every case of one program (holding the core_pattern guard only meanwhile).
fn crash_all(tag: &str, exe: &Path, cases: &[Case]) -> Vec<Crash> {
    let dir = scratch_dir(&format!("bt-cores-analysis_{tag}"));
    let _guard = CorePatternGuard::set(&dir);
    cases
        .iter()
        .map(|c| {
            let spec = CrashSpec {
                name: format!("{tag}_{}", c.mode),
                program: exe.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default(),
                args: vec![c.mode.to_string()],
                signal: c.signal.to_string(),
                what: format!("analysis case {}", c.mode),
            };
            crash_one(&spec, exe, &dir)
        })
        .collect()
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array().map(|a| a.iter().filter_map(|x| x.as_str().map(String::from)).collect()).unwrap_or_default()
}

/// Traces each crash and checks it against its case; reports every mismatch at once.
fn check_all(exe: &Path, cases: &[Case], crashes: &[Crash]) {
    let mut errors = Vec::new();
    for (c, crash) in cases.iter().zip(crashes) {
        let snap = bt_json(&["ptrace", "--core", crash.core.to_str().expect("utf-8"), exe.to_str().expect("utf-8")]);
        let got = strings(&snap["classifiers"]);
        let mut fault: Vec<&str> = got.iter().map(String::as_str).filter(|g| FAULT_CLASSIFIERS.contains(g)).collect();
        fault.sort_unstable();
        let mut want = c.classifiers.to_vec();
        want.sort_unstable();
        let texts: Vec<String> = snap["annotations"]
            .as_array()
            .map(|a| a.iter().filter_map(|x| x["text"].as_str().map(String::from)).collect())
            .unwrap_or_default();
        let mut why = Vec::new();
        if fault != want {
            why.push(format!("fault classifiers {fault:?}, want {want:?}"));
        }
        if got.iter().any(|g| g == "constraint-violation") != c.constraint {
            why.push(format!("constraint-violation expected: {}", c.constraint));
        }
        for needle in c.annotations {
            if !texts.iter().any(|t| t.contains(needle)) {
                why.push(format!("no annotation contains {needle:?}"));
            }
        }
        if !why.is_empty() {
            errors.push(format!("{}: {}\n    classifiers {got:?}\n    annotations {texts:#?}", c.mode, why.join("; ")));
        }
    }
    assert!(errors.is_empty(), "{} of {} cases wrong:\n{}", errors.len(), cases.len(), errors.join("\n"));
}

#[test]
fn c_faults_are_classified() {
    use std::sync::LazyLock;
    static CASES: LazyLock<Vec<Case>> = LazyLock::new(|| {
        vec![
            case(
                "null_read",
                "SIGSEGV",
                &["null-dereference", "invalid-read"],
                false,
                &["invalid read of 4 bytes at 0x10"],
            ),
            case(
                "null_write",
                "SIGSEGV",
                &["null-dereference", "invalid-write"],
                false,
                &["invalid write of 4 bytes at 0x8"],
            ),
            case("wild_read", "SIGSEGV", &["invalid-read"], false, &["through qword [rax]"]),
            case("wild_write", "SIGSEGV", &["invalid-write"], false, &["invalid write of 8 bytes"]),
            case("ro_write", "SIGSEGV", &["invalid-write"], false, &["through dword [rax+0x8]"]),
            case("rmw", "SIGSEGV", &["invalid-write"], false, &["invalid read-modify-write of 4 bytes"]),
            case("rep_movs_src", "SIGSEGV", &["invalid-read"], false, &["by `rep movsb`", "through byte [rsi]"]),
            case("rep_movs_dst", "SIGSEGV", &["invalid-write"], false, &["by `rep movsb`", "through byte [rdi]"]),
            case("rep_stos", "SIGSEGV", &["invalid-write"], false, &["by `rep stosq`"]),
            case(
                "call_null",
                "SIGSEGV",
                &["invalid-execute", "null-dereference"],
                false,
                &["null function pointer", "call_null"],
            ),
            case("call_mem", "SIGSEGV", &["invalid-read"], false, &["by `call`", "through qword [rax+0x8]"]),
            case("call_wild", "SIGSEGV", &["invalid-execute"], false, &["the frame that jumped there is call_wild"]),
            case(
                "stack_overflow",
                "SIGSEGV",
                &["stack-overflow", "invalid-write"],
                false,
                &["stack overflow", "recursion: overflow"],
            ),
            case(
                "thread_overflow",
                "SIGSEGV",
                &["stack-overflow", "invalid-write"],
                false,
                &["stack overflow", "recursion: overflow"],
            ),
            case(
                "misaligned_sse",
                "SIGSEGV",
                &["misaligned-access", "invalid-read"],
                false,
                &["`movaps` requires a 16-byte aligned"],
            ),
            case("alignment_check", "SIGBUS", &["misaligned-access", "invalid-read"], false, &["BUS_ADRALN"]),
            case("div_zero", "SIGFPE", &["division-by-zero"], false, &["by `idiv`"]),
            case("illegal", "SIGILL", &["illegal-instruction"], false, &["`ud2`"]),
            case("abort", "SIGABRT", &["abort"], false, &["abort() called from do_abort"]),
            case("assert", "SIGABRT", &["assert"], false, &["Assertion `answer == 42 && \"the answer\"' failed"]),
            case("stack_smash", "SIGABRT", &["stack-smash"], false, &["canary of smash", "stack smashing detected"]),
            case("double_free", "SIGABRT", &["double-free"], false, &["free(): double free detected"]),
            case("heap_overflow", "SIGABRT", &["heap-corruption"], true, &["glibc malloc: ", "in heap_overflow"]),
            // Regression (issue 12): glibc's "double free or corruption" decided by the chunk.
            case(
                "header_smash",
                "SIGABRT",
                &["heap-corruption"],
                false,
                &["double free or corruption (out)", "size field was overwritten"],
            ),
            case(
                "double_free_large",
                "SIGABRT",
                &["double-free"],
                false,
                &["double free or corruption (!prev)", "it was freed before"],
            ),
            case("free_bad", "SIGABRT", &["heap-corruption"], true, &["free(): invalid pointer", "free() in free_bad"]),
            case(
                "memcpy_null",
                "SIGSEGV",
                &["invalid-read", "null-dereference"],
                true,
                &["memcpy() called with a null source"],
            ),
            case("alias", "SIGSEGV", &["invalid-read"], false, &["holds the faulting address in rsi"]),
            case(
                "handled_null_write",
                "SIGABRT",
                &["invalid-write", "null-dereference"],
                false,
                &["invalid write at 0x10 in handled_null_write, caught by a signal handler"],
            ),
            // Regression: a handler that re-raises the signal (Python's faulthandler, crash
            // reporters) left a SIGSEGV sent by the process itself; the fault it caught is
            // the crash, not the `syscall` instruction of raise().
            case(
                "reraised_null_write",
                "SIGSEGV",
                &["invalid-write", "null-dereference"],
                false,
                &["invalid write of 4 bytes at 0x8", "raised again by the process (SI_TKILL) after a signal handler"],
            ),
            // The same with an SA_NODEFER handler: the process dies inside it.
            case(
                "reraised_nodefer",
                "SIGSEGV",
                &["invalid-write", "null-dereference"],
                false,
                &["invalid write at 0x8 in reraised_null_write, caught by a signal handler that raised SIGSEGV again"],
            ),
            // Regression: a SIGSEGV sent with kill() is no fault; it used to get a warning
            // that the instruction at the pc had no memory operand for the fault address.
            case("killed_by_self", "SIGSEGV", &["sent-signal"], false, &["SIGSEGV was sent by the process itself"]),
            case("killed_by_other", "SIGSEGV", &["sent-signal"], false, &["SIGSEGV was sent by pid "]),
            case(
                "alias_variable",
                "SIGSEGV",
                &["invalid-read"],
                false,
                &["variable held in alias_holder holds the faulting address"],
            ),
        ]
    });
    let dir = scratch_dir("analysis-build-c");
    let src = repo().join("examples/analysis/faults.c");
    let exe = build(
        &dir,
        "faults",
        &["gcc", "-O0", "-g", "-fstack-protector-all", "-U_FORTIFY_SOURCE", "-pthread", src.to_str().expect("utf-8")],
    );
    let crashes = crash_all("c", &exe, &CASES);
    check_all(&exe, &CASES, &crashes);
}

/// A sanitizer's report that ends in abort(): the tool and what it reported, blamed
/// on the first frame past its runtime, never a plain `abort`.
#[test]
fn sanitizer_reports_are_classified() {
    let dir = scratch_dir("analysis-build-sanitizers");
    let src = repo().join("examples/analysis/sanitizers.c");
    let src = src.to_str().expect("utf-8");
    let asan = build(&dir, "asan", &["gcc", "-O0", "-g", "-fsanitize=address", "-fno-omit-frame-pointer", src]);
    let ubsan = build(&dir, "ubsan", &["gcc", "-O0", "-g", "-fsanitize=undefined", src]);
    let cases = [
        case("heap_read", "SIGABRT", &["asan", "invalid-read"], false, &["invalid read of 4 bytes in sum_prices"]),
        case("heap_write", "SIGABRT", &["asan"], false, &["bad memory passed to strcpy() by copy_name"]),
        case("double_free", "SIGABRT", &["asan", "double-free"], false, &["double free in release"]),
        case("bad_free", "SIGABRT", &["asan", "invalid-free"], false, &["bad free in release"]),
        case(
            "segv",
            "SIGABRT",
            &["asan", "invalid-read", "null-dereference"],
            false,
            &["caught a SIGSEGV in field_of: invalid read at 0x8"],
        ),
        // On ASan's own stack (sigaltstack): the overflow is read from the interrupted context.
        case("recurse", "SIGABRT", &["asan", "invalid-write", "stack-overflow"], false, &["stack overflow: access at"]),
    ];
    let crashes = crash_all("asan", &asan, &cases);
    check_all(&asan, &cases, &crashes);
    let cases = [case(
        "ubsan_shift",
        "SIGABRT",
        &["ubsan", "undefined-behavior"],
        false,
        &["UndefinedBehaviorSanitizer: shift out of bounds in scale"],
    )];
    let crashes = crash_all("ubsan", &ubsan, &cases);
    check_all(&ubsan, &cases, &crashes);
}

#[test]
fn cpp_uncaught_exceptions_name_their_type() {
    let cases = [
        case(
            "runtime_error",
            "SIGABRT",
            &["uncaught-exception"],
            false,
            &["of type std::runtime_error: what() = \"the configuration file is missing\""],
        ),
        case("custom", "SIGABRT", &["uncaught-exception"], false, &["of type app::config_error"]),
        case("int", "SIGABRT", &["uncaught-exception"], false, &["of type int"]),
        case(
            "noexcept",
            "SIGABRT",
            &["uncaught-exception"],
            false,
            &["of type std::runtime_error: what() = \"the configuration file is missing\""],
        ),
        // Derived from std::logic_error: found through the type_info base chain.
        case(
            "out_of_range",
            "SIGABRT",
            &["uncaught-exception"],
            false,
            &["of type std::out_of_range: what() = \"widget index 7 is out of range\""],
        ),
    ];
    let dir = scratch_dir("analysis-build-cpp");
    let src = repo().join("examples/analysis/exceptions.cpp");
    let exe = build(&dir, "exceptions", &["g++", "-O1", "-g", src.to_str().expect("utf-8")]);
    let crashes = crash_all("cpp", &exe, &cases);
    check_all(&exe, &cases, &crashes);
    // exception.what only where there is a what() to read.
    for (c, crash) in cases.iter().zip(&crashes) {
        let snap = bt_json(&["ptrace", "--core", crash.core.to_str().expect("utf-8"), exe.to_str().expect("utf-8")]);
        let what = snap["attributes"]
            .as_array()
            .and_then(|a| a.iter().find(|a| a["key"] == "exception.what"))
            .and_then(|a| a["value"].as_str().map(String::from));
        match c.mode {
            "custom" | "int" => assert_eq!(what, None, "{}", c.mode),
            "out_of_range" => assert_eq!(what.as_deref(), Some("widget index 7 is out of range")),
            _ => assert_eq!(what.as_deref(), Some("the configuration file is missing"), "{}", c.mode),
        }
    }
}

#[test]
fn rust_panics_carry_their_message() {
    let cases = [
        case("formatted", "SIGABRT", &["rust-panic"], false, &["panics.rs:9:9: too many widgets: 7 > 3"]),
        case("literal", "SIGABRT", &["rust-panic"], false, &["panics.rs:15:5: the literal panic message"]),
        case("unwrap", "SIGABRT", &["rust-panic"], false, &["called `Option::unwrap()` on a `None` value"]),
        case("overflow", "SIGABRT", &["stack-overflow"], false, &["recursion: panics::recurse"]),
        case("null", "SIGSEGV", &["null-dereference", "invalid-write"], false, &["invalid write of 8 bytes at 0x0"]),
    ];
    let dir = scratch_dir("analysis-build-rust");
    let src = repo().join("examples/analysis/panics.rs");
    let exe = build(
        &dir,
        "panics",
        &["rustc", "-g", "-C", "panic=abort", "--edition", "2021", "-A", "warnings", src.to_str().expect("utf-8")],
    );
    let crashes = crash_all("rust", &exe, &cases);
    check_all(&exe, &cases, &crashes);

    // Text output lists classifiers and annotations at the top, before the threads.
    let out = bt(&["ptrace", "--core", crashes[0].core.to_str().expect("utf-8"), exe.to_str().expect("utf-8")]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.get(1).copied(), Some("classifiers: rust-panic"), "{text}");
    let first_thread = lines.iter().position(|l| l.starts_with("Thread ")).expect("a thread");
    let note = lines.iter().position(|l| l.contains("too many widgets")).expect("the panic annotation");
    assert!(note < first_thread, "annotations come before the threads:\n{text}");
}

/// The modes of examples/analysis/constraints.c: calls that break memcpy's, free's
/// and realloc's contracts, with the fault classifier of the instruction that faulted
/// inside glibc (AVX stores and loads, free's read of the chunk header).
fn constraint_cases() -> Vec<Case> {
    vec![
        case(
            "memcpy_overlap",
            "SIGSEGV",
            &["invalid-write"],
            true,
            &[
                "memcpy() called with overlapping ranges",
                "are 0x1000 bytes apart, less than the size 0x2000",
                "memcpy() called with an unwritable destination",
            ],
        ),
        case(
            "memcpy_overlap_movsb",
            "SIGSEGV",
            &["invalid-read"],
            true,
            &["memcpy() called with overlapping ranges", "memcpy() called with an unreadable source"],
        ),
        case(
            "memcpy_negative",
            "SIGSEGV",
            &["invalid-write"],
            true,
            &["memcpy() called with an absurd size 0xfffffffffffffffb (-5 as a signed length)"],
        ),
        case(
            "memcpy_huge",
            "SIGSEGV",
            &["invalid-read"],
            true,
            &["memcpy() called with an absurd size 0xffffffffffffffff (-1 as a signed length)"],
        ),
        // The source, never NUL-terminated, runs into a guard page while strcpy copies
        // it one byte ahead of itself: the vector load that faults is a read.
        case(
            "strcpy_overlap",
            "SIGSEGV",
            &["invalid-read"],
            true,
            &[
                "strcpy() called with an unreadable source",
                "strcpy() called with overlapping ranges: destination ",
                "are 0x1 bytes apart, less than the string copied (no NUL in the 0x1000 bytes before unreadable address ",
                "strcpy() called with a source not NUL-terminated before unreadable address ",
            ],
        ),
        // stpcpy's code is strcpy's here (the frame says `__strcpy_*`): only the
        // caller's side names it.
        case(
            "stpcpy_overlap",
            "SIGSEGV",
            &["invalid-read"],
            true,
            &[
                "stpcpy() called with overlapping ranges: destination ",
                "are 0x1 bytes apart, less than the string copied (no NUL in the 0xfff bytes before unreadable address ",
                "stpcpy() called with a source not NUL-terminated before unreadable address ",
            ],
        ),
        // Apart: no overlap claimed (check_string_ranges), only the unterminated source.
        case(
            "strcpy_unterminated",
            "SIGSEGV",
            &["invalid-read"],
            true,
            &["strcpy() called with a source not NUL-terminated before unreadable address "],
        ),
        case("free_inside", "SIGABRT", &["heap-corruption"], true, &["free(): invalid pointer", "free() in release"]),
        case("free_unmapped", "SIGSEGV", &["invalid-read"], true, &["free() of a bad pointer"]),
        case(
            "realloc_inside",
            "SIGABRT",
            &["heap-corruption"],
            true,
            &["realloc(): invalid pointer", "realloc() in grow"],
        ),
    ]
}

/// gdb's `print/x EXPR` on a core, the oracle for values the program chose at run time.
fn gdb_print_hex(exe: &Path, core: &Path, expr: &str) -> u64 {
    let out = Command::new("gdb")
        .args(["-nx", "-batch", "-ex", &format!("print/x {expr}")])
        .arg(exe)
        .arg(core)
        .output()
        .expect("running gdb");
    let text = String::from_utf8_lossy(&out.stdout);
    let line =
        text.lines().rev().find(|l| l.starts_with('$')).unwrap_or_else(|| panic!("gdb printed no value:\n{text}"));
    let hex = line.rsplit("0x").next().expect("a hex value");
    u64::from_str_radix(hex.trim(), 16).unwrap_or_else(|e| panic!("gdb value {line:?}: {e}"))
}

/// The bad pointer free/realloc got must be named, with the value gdb reads from the
/// program's own record of it.
fn check_bad_pointers(exe: &Path, cases: &[Case], crashes: &[Crash]) {
    for (c, crash) in cases.iter().zip(crashes) {
        if !c.mode.starts_with("free") && !c.mode.starts_with("realloc") {
            continue;
        }
        let snap = bt_json(&["ptrace", "--core", crash.core.to_str().expect("utf-8"), exe.to_str().expect("utf-8")]);
        // A cast, so that gdb reads it without debug info too.
        let want = gdb_print_hex(exe, &crash.core, "*(unsigned long *)&bad_pointer");
        let needle = match c.mode {
            "free_unmapped" => format!("the pointer was {want:#x}, from the caller's "),
            _ => format!("was passed a pointer {want:#x} whose chunk header is not sane"),
        };
        let texts = snap["annotations"].to_string();
        assert!(texts.contains(&needle), "{}: no annotation contains {needle:?}: {texts}", c.mode);
    }
}

/// The overlapping strcpy/stpcpy ranges must be named with the addresses gdb reads
/// from the program's own record of its unterminated run, and only where they overlap.
fn check_string_ranges(exe: &Path, cases: &[Case], crashes: &[Crash]) {
    for (c, crash) in cases.iter().zip(crashes) {
        let (call, dst, src) = match c.mode {
            "strcpy_overlap" => ("strcpy", 1, 0),
            "stpcpy_overlap" => ("stpcpy", 0, 1),
            "strcpy_unterminated" => ("strcpy", 0, 0),
            _ => continue,
        };
        let snap = bt_json(&["ptrace", "--core", crash.core.to_str().expect("utf-8"), exe.to_str().expect("utf-8")]);
        let run = gdb_print_hex(exe, &crash.core, "*(unsigned long *)&string_run");
        let texts = snap["annotations"].to_string();
        let overlap = format!(
            "{call}() called with overlapping ranges: destination {:#x} and source {:#x}",
            run + dst,
            run + src
        );
        let unterminated = format!(
            "unreadable address {:#x}: no NUL in the {:#x} bytes from {:#x}",
            run + 4096,
            4096 - src,
            run + src
        );
        assert!(texts.contains(&unterminated), "{}: no annotation contains {unterminated:?}: {texts}", c.mode);
        // Without the destination (see c_call_constraints_without_debug_info) no overlap
        // is claimed, nor for ranges apart.
        let proven = !texts.contains(&format!("{call}(?, ")) && c.mode != "strcpy_unterminated";
        if proven {
            assert!(texts.contains(&overlap), "{}: no annotation contains {overlap:?}: {texts}", c.mode);
        } else {
            assert!(!texts.contains("overlapping ranges"), "{}: an overlap claimed: {texts}", c.mode);
        }
    }
}

/// Builds constraints.c with `flags`, crashes each case and checks it.
fn constraints_with(tag: &str, flags: &[&str], cases: &[Case]) {
    let dir = scratch_dir(&format!("analysis-build-{tag}"));
    let src = repo().join("examples/analysis/constraints.c");
    let mut argv = vec!["gcc", "-U_FORTIFY_SOURCE"];
    argv.extend_from_slice(flags);
    argv.push(src.to_str().expect("utf-8"));
    let exe = build(&dir, "constraints", &argv);
    let crashes = crash_all(tag, &exe, cases);
    check_all(&exe, cases, &crashes);
    check_bad_pointers(&exe, cases, &crashes);
    check_string_ranges(&exe, cases, &crashes);
}

#[test]
fn c_call_constraints_from_call_site_records() {
    constraints_with("constraints_o2", &["-O2", "-g"], &constraint_cases());
}

#[test]
fn c_call_constraints_from_the_callers_code() {
    // -O0: no call-site records; the arguments come from replaying the caller's set-up.
    constraints_with("constraints_o0", &["-O0", "-g"], &constraint_cases());
}

#[test]
fn c_call_constraints_without_debug_info() {
    // -O2, no -g: the caller's code still gives what it kept in callee-saved registers
    // (sizes, free's pointer, strcpy's source, stpcpy's both pointers), not `copy`'s
    // destination (its own argument, gone); during `rep movsb` the registers still
    // prove the overlap.
    let keep = [
        "memcpy_negative",
        "memcpy_huge",
        "stpcpy_overlap",
        "strcpy_unterminated",
        "free_inside",
        "free_unmapped",
        "realloc_inside",
    ];
    let mut cases: Vec<Case> = constraint_cases().into_iter().filter(|c| keep.contains(&c.mode)).collect();
    // strcpy's destination is its result, which `copy_string` uses instead of keeping
    // it: only the source is proven, and with it the unterminated string.
    cases.push(case(
        "strcpy_overlap",
        "SIGSEGV",
        &["invalid-read"],
        true,
        &["strcpy() called with a source not NUL-terminated before unreadable address ", "strcpy(?, 0x"],
    ));
    cases.push(case(
        "memcpy_overlap_movsb",
        "SIGSEGV",
        &["invalid-read"],
        true,
        &["memcpy() called with overlapping ranges: `rep movsb` copies", "0x400 bytes apart"],
    ));
    constraints_with("constraints_nodebug", &["-O2"], &cases);
}

#[test]
fn static_c_assert_reads_the_executables_abort_msg() {
    // glibc linked in: `__abort_msg` lives in the executable's .bss, not in a libc.so.
    let cases = [
        // Only glibc's own message starts with the program name.
        case(
            "assert",
            "SIGABRT",
            &["assert"],
            false,
            &["assertion failed: faults: ", "Assertion `answer == 42 && \"the answer\"' failed"],
        ),
        case("abort", "SIGABRT", &["abort"], false, &["abort() called from do_abort"]),
    ];
    let dir = scratch_dir("analysis-build-static");
    let src = repo().join("examples/analysis/faults.c");
    let exe = build(&dir, "faults", &["gcc", "-static", "-O0", "-g", "-pthread", src.to_str().expect("utf-8")]);
    let crashes = crash_all("static", &exe, &cases);
    check_all(&exe, &cases, &crashes);
}

#[test]
fn c_call_constraints_in_a_static_executable() {
    // glibc linked in: memcpy is an IFUNC called through the executable's own PLT
    // (an IRELATIVE slot), free is `__free`.
    constraints_with("constraints_static", &["-static", "-O2", "-g"], &constraint_cases());
}

/// A memory fault inside an allocator's own code is heap corruption (or a pointer the
/// allocator never handed out): real crashes under Debian's Boehm GC (dlopen), tcmalloc,
/// mimalloc and jemalloc (LD_PRELOAD), from tests/corpus/c. Until this was checked, they
/// were a bare `invalid-read` (jemalloc's bad free even a `null-dereference` alone).
#[test]
fn faults_inside_an_allocator_are_heap_corruption() {
    let dir = scratch_dir("analysis-build-alloc");
    let lib = |name: &str| format!("/usr/lib/x86_64-linux-gnu/{name}");
    let gc =
        build(&dir, "gc_bugs", &["gcc", "-O2", "-g", repo().join("tests/corpus/c/gc_bugs.c").to_str().expect("utf-8")]);
    let ab = build(
        &dir,
        "alloc_bugs",
        &[
            "gcc",
            "-O2",
            "-g",
            "-Wno-free-nonheap-object",
            repo().join("tests/corpus/c/alloc_bugs.c").to_str().expect("utf-8"),
        ],
    );
    let cases: [(&Path, Vec<String>, &str, [&str; 2]); 4] = [
        (&gc, vec!["node_overflow".into(), "direct".into()], "SIGSEGV", ["(Boehm GC: ", "called from make_node)"]),
        (
            &ab,
            vec![lib("libtcmalloc_minimal.so.4"), "overflow".into()],
            "SIGSEGV",
            ["(tcmalloc: ", "called from make_node)"],
        ),
        (&ab, vec![lib("libmimalloc.so.2"), "overflow".into()], "SIGSEGV", ["(mimalloc: ", "called from make_node)"]),
        (
            &ab,
            vec![lib("libjemalloc.so.2"), "bad_free".into()],
            "SIGSEGV",
            ["(jemalloc: ", "called from release_item)"],
        ),
    ];
    let cores = scratch_dir("bt-cores-analysis_alloc");
    let _guard = CorePatternGuard::set(&cores);
    let mut errors = Vec::new();
    for (i, (exe, args, signal, needle)) in cases.iter().enumerate() {
        let spec = CrashSpec {
            name: format!("alloc_{i}"),
            program: String::new(),
            args: args.clone(),
            signal: signal.to_string(),
            what: format!("heap corruption under {}", args[0]),
        };
        let crash = crash_one(&spec, exe, &cores);
        let snap = bt_json(&["ptrace", "--core", crash.core.to_str().expect("utf-8"), exe.to_str().expect("utf-8")]);
        let got = strings(&snap["classifiers"]);
        let texts: Vec<String> = snap["annotations"]
            .as_array()
            .map(|a| a.iter().filter_map(|x| x["text"].as_str().map(String::from)).collect())
            .unwrap_or_default();
        if !got.iter().any(|c| c == "heap-corruption") || !texts.iter().any(|t| needle.iter().all(|n| t.contains(n))) {
            errors.push(format!("{:?}: classifiers {got:?}, annotations {texts:#?}, want {needle:?}", args));
        }
    }
    assert!(errors.is_empty(), "{}", errors.join("\n"));
}
