//! Bad and extreme inputs: the engine and `bt rules` never panic, stay bounded in
//! time, and name the line of what is wrong.

use bt::dedup::{DEFAULT_RULES, RuleSet};
use bt::snapshot::Frame;
use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn bt_bin() -> PathBuf {
    match std::env::var_os("BT_BIN") {
        Some(p) if !p.is_empty() => PathBuf::from(p),
        _ => PathBuf::from(env!("CARGO_BIN_EXE_bt")),
    }
}

/// Runs `bt ARGS` with `stdin`; returns (exit code, stdout, stderr).
fn bt(args: &[&str], stdin: &[u8]) -> (i32, String, String) {
    let mut child = Command::new(bt_bin())
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starting bt");
    child.stdin.take().expect("stdin").write_all(stdin).expect("writing stdin");
    let out = child.wait_with_output().expect("waiting for bt");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn named(n: &str) -> Frame {
    Frame { function: Some(n.to_string()), module: Some("app".into()), ..Default::default() }
}

fn scratch(name: &str) -> PathBuf {
    let d = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).expect("scratch dir");
    d
}

#[test]
fn empty_stack() {
    let rules = RuleSet::default_rules();
    let a = rules.evaluate(&[], &[]);
    assert!(a.signature.is_empty() && a.pretty.is_empty());
    assert_eq!(a.fingerprint.len(), 32);
    assert_eq!(a.fingerprint, rules.evaluate(&[], &["assert".into()]).fingerprint);
}

#[test]
fn frames_without_symbols() {
    let rules = RuleSet::default_rules();
    let frames: Vec<Frame> = (0..5)
        .map(|i| Frame {
            pc: 0x1000 + i,
            module_offset: 0x1000 + i,
            module: Some("/opt/x/libplug.so.3".into()),
            ..Default::default()
        })
        .collect();
    let s = rules.evaluate(&frames, &[]);
    assert_eq!(s.signature, vec!["libplug.so".to_string()], "unsymbolized frames collapse to their module");
    assert!(s.pretty[0].starts_with("libplug.so+0x1000"), "{:?}", s.pretty);
    // No module either: still a signature, never a panic.
    let bare = rules.evaluate(&[Frame { pc: 0xdead, ..Default::default() }], &[]);
    assert_eq!(bare.signature, vec!["?".to_string()]);
    // A different build moves the offsets: same fingerprint.
    let moved: Vec<Frame> =
        frames.iter().map(|f| Frame { module_offset: f.module_offset + 0x40, ..f.clone() }).collect();
    assert_eq!(rules.evaluate(&moved, &[]).fingerprint, s.fingerprint);
}

#[test]
fn hundred_thousand_frames_in_bounded_time() {
    let rules = RuleSet::default_rules();
    // Deep recursion (one name) and a stack of all-different names.
    let deep: Vec<Frame> = std::iter::once(named("leaf")).chain((0..100_000).map(|_| named("recurse"))).collect();
    let distinct: Vec<Frame> = (0..100_000)
        .map(|i| Frame { function: Some(format!("std::f{i}")), module: Some("libc.so.6".into()), ..Default::default() })
        .collect();
    for frames in [&deep, &distinct] {
        let start = Instant::now();
        let s = rules.evaluate(frames, &[]);
        let took = start.elapsed();
        assert!(took < Duration::from_secs(20), "100,000 frames took {took:?}");
        assert!(s.signature.len() <= rules.settings().max_frames);
        assert!(s.pretty.len() <= rules.settings().max_pretty + 1, "pretty has {} lines", s.pretty.len());
    }
    let s = rules.evaluate(&deep, &[]);
    assert_eq!(s.signature, vec!["leaf".to_string()]);
    assert!(s.pretty.iter().any(|l| l.contains("×100000")), "{:?}", s.pretty);
}

#[test]
fn recursion_depth_does_not_change_the_fingerprint() {
    let rules = RuleSet::default_rules();
    let mk = |depth: usize| -> Vec<Frame> {
        let mut v = vec![Frame {
            function: Some("lib_internal".into()),
            module: Some("libfoo.so.1".into()),
            ..Default::default()
        }];
        v.extend((0..depth).map(|_| named("walk")));
        v.push(named("main"));
        v
    };
    // libfoo is not a known system library, so it counts as application code:
    // the signature is lib_internal alone. Set max-app-frames 3 to see walk fold.
    let sources: Vec<(String, String, String)> = DEFAULT_RULES
        .iter()
        .map(|(n, t)| (n.to_string(), "default".to_string(), t.to_string()))
        .chain(std::iter::once(("99-test.rules".to_string(), "test".to_string(), "set max-app-frames 3\n".to_string())))
        .collect();
    let deep_rules = RuleSet::from_sources(&sources).expect("rules parse");
    let fps: Vec<String> = [1, 2, 7, 500].iter().map(|&d| deep_rules.evaluate(&mk(d), &[]).fingerprint).collect();
    assert!(fps.windows(2).all(|w| w[0] == w[1]), "{fps:?}");
    assert_eq!(deep_rules.evaluate(&mk(3), &[]).signature, vec!["lib_internal", "walk", "main"]);
    assert_eq!(rules.evaluate(&mk(3), &[]).signature, vec!["lib_internal"]);
    // Mutual recursion a→b→a→b folds too.
    let mutual: Vec<Frame> = ["crash", "a", "b", "a", "b", "a", "b", "main"].iter().map(|n| named(n)).collect();
    assert_eq!(deep_rules.evaluate(&mutual, &[]).signature, vec!["crash", "a", "b"]);
}

#[test]
fn non_utf8_names_through_the_cli() {
    let input = b"{\"frames\":[{\"function\":\"caf\xe9_crash\",\"module\":\"app\"}]}\n{\"frames\":[{\"function\":\"caf\xe9_crash\",\"module\":\"app\"}]}\n";
    let (code, out, err) = bt(&["rules", "fingerprint"], input);
    assert_eq!(code, 0, "{err}");
    let lines: Vec<serde_json::Value> = out.lines().map(|l| serde_json::from_str(l).expect("json line")).collect();
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[0]["fingerprint"], lines[1]["fingerprint"]);
    assert_eq!(lines[0]["signature"][0], "caf\u{fffd}_crash");
}

#[test]
fn malformed_json_lines_name_the_line_and_the_rest_goes_on() {
    let input = b"{\"frames\":[\"a\"]}\n{\"frames\": [\"b\"\n{\"frames\":[\"c\"]}\nnot json at all\n{\"frames\": 5}\n{\"frames\":[\"d\"]}\n";
    let (code, out, err) = bt(&["rules", "fingerprint"], input);
    assert_eq!(code, 1, "a bad line makes the exit code 1");
    let lines: Vec<serde_json::Value> = out.lines().map(|l| serde_json::from_str(l).expect("json line")).collect();
    let errors: Vec<i64> =
        lines.iter().filter(|l| l["error"].is_string()).map(|l| l["line"].as_i64().unwrap()).collect();
    assert_eq!(errors, vec![2, 4, 5], "{out}");
    assert!(err.contains("stdin:2:") && err.contains("stdin:4:") && err.contains("stdin:5:"), "{err}");
    let good: Vec<&str> = lines.iter().filter_map(|l| l["signature"][0].as_str()).collect();
    assert_eq!(good, vec!["a", "c", "d"]);
}

#[test]
fn invalid_regex_is_a_file_line_error_from_check() {
    let dir = scratch("dedup-badrules");
    std::fs::write(
        dir.join("mine.rules"),
        "# fine\nfunction:ok => skip\nfunction:'(unclosed' => skip\nfunction:x => frobnicate\napp system => skip\n",
    )
    .unwrap();
    let (code, out, _) = bt(&["rules", "check", "--rules", dir.to_str().unwrap()], b"");
    assert_eq!(code, 1, "{out}");
    let path = dir.join("mine.rules");
    let p = path.display();
    assert!(out.contains(&format!("{p}:3: invalid function regex")), "{out}");
    assert!(out.contains(&format!("{p}:4: unknown action \"frobnicate\"")), "{out}");
    assert!(out.contains(&format!("{p}:5: warning: unreachable rule")), "{out}");
    // The same directory refuses to load for fingerprinting, with the first error.
    let (code, _, err) = bt(&["rules", "fingerprint", "--rules", dir.to_str().unwrap()], b"{\"frames\":[]}\n");
    assert_eq!(code, 1);
    assert!(err.contains(":3: invalid function regex"), "{err}");
}

#[test]
fn defaults_check_clean() {
    let (code, out, _) = bt(&["rules", "check", "--strict"], b"");
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("0 error(s), 0 warning(s)"), "{out}");
}

#[test]
fn project_rules_extend_and_replace() {
    let dir = scratch("dedup-project");
    std::fs::write(dir.join("app.rules"), "function:report_and_quit app => skip-through\n").unwrap();
    let input = b"{\"frames\":[\"raise\",\"abort\",\"report_and_quit\",\"load_config\",\"main\"]}\n";
    let (_, out, _) = bt(&["rules", "fingerprint"], input);
    assert!(out.contains("\"signature\":[\"report_and_quit\"]"), "{out}");
    let (code, out, err) = bt(&["rules", "fingerprint", "--rules", dir.to_str().unwrap()], input);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("\"signature\":[\"load_config\"]"), "{out}");
    // A file named like a default replaces it: an empty 90-signature.rules drops
    // `max-app-frames 1` back to the built-in default (also 1) but also the scan rule.
    std::fs::write(dir.join("00-names.rules"), "# no renames\n").unwrap();
    let (_, out, _) =
        bt(&["rules", "fingerprint", "--rules", dir.to_str().unwrap()], b"{\"frames\":[\"parse.isra.0\"]}\n");
    assert!(out.contains("\"signature\":[\"parse.isra.0\"]"), "{out}");
}

#[test]
fn explain_names_the_rule_that_fired() {
    let input = b"{\"frames\":[{\"function\":\"raise\",\"module\":\"libc.so.6\"},{\"function\":\"abort\",\"module\":\"libc.so.6\"},{\"function\":\"shutdown_now\",\"module\":\"app\"}]}\n";
    let (code, out, _) = bt(&["rules", "explain"], input);
    assert_eq!(code, 0);
    assert!(out.contains("signature: shutdown_now"), "{out}");
    assert!(out.contains("10-glibc.rules:"), "{out}");
    assert!(out.contains("skip-through: this frame and all above it are error handling"), "{out}");
}

#[test]
fn eval_needs_labels_and_scores_the_baselines() {
    let dir = scratch("dedup-eval");
    let corpus = dir.join("c.jsonl");
    std::fs::write(
        &corpus,
        "{\"label\":\"x\",\"frames\":[\"raise\",\"abort\",\"x_fn\",\"a\",\"main\"]}\n{\"label\":\"x\",\"frames\":[\"raise\",\"abort\",\"x_fn\",\"b\",\"main\"]}\n{\"label\":\"y\",\"frames\":[\"raise\",\"abort\",\"y_fn\",\"main\"]}\n",
    )
    .unwrap();
    let (code, out, err) = bt(&["rules", "eval", "--json", corpus.to_str().unwrap()], b"");
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(out.trim()).expect("json");
    let results = v["results"].as_array().expect("results");
    let methods: Vec<&str> = results.iter().map(|r| r["method"].as_str().unwrap()).collect();
    assert_eq!(
        methods,
        vec![
            "bt",
            "whole callstack",
            "first frame",
            "first application frame",
            "top 3 frames",
            "first past abort/sanitizer",
            "crash-site file:line"
        ]
    );
    assert_eq!(results[0]["scores"]["bcubed_f1"], 1.0);
    assert!(results[2]["scores"]["bcubed_f1"].as_f64().unwrap() < 1.0);
    // Past raise and abort, x_fn and y_fn tell the two bugs apart.
    assert_eq!(results[5]["scores"]["bcubed_f1"], 1.0);
    std::fs::write(&corpus, "{\"frames\":[\"a\"]}\n").unwrap();
    let (code, _, err) = bt(&["rules", "eval", corpus.to_str().unwrap()], b"");
    assert_eq!(code, 1);
    assert!(err.contains(":1: corpus line has no \"label\""), "{err}");
}
