//! The rule language itself, action by action and condition by condition, on small
//! rule sets written for the test (the defaults are tested in dedup_rules.rs).

use bt::dedup::RuleSet;
use bt::snapshot::{Frame, Trust};

fn rules(text: &str) -> RuleSet {
    RuleSet::from_sources(&[("t.rules".to_string(), "test".to_string(), text.to_string())])
        .unwrap_or_else(|e| panic!("{e:?}"))
}

fn f(name: &str) -> Frame {
    Frame { function: Some(name.to_string()), module: Some("/opt/app/bin/app".into()), ..Default::default() }
}

fn sig(r: &RuleSet, frames: &[Frame]) -> Vec<String> {
    r.evaluate(frames, &[]).signature
}

fn frames(names: &[&str]) -> Vec<Frame> {
    names.iter().map(|n| f(n)).collect()
}

/// (rules, frames, expected signature)
const CASES: &[(&str, &[&str], &[&str])] = &[
    ("set max-app-frames 3\nfunction:b => skip", &["a", "b", "c", "d"], &["a", "c", "d"]),
    ("set max-app-frames 9\nfunction:c => skip-through", &["a", "b", "c", "d", "e"], &["d", "e"]),
    ("set max-app-frames 9\nfunction:c => stop", &["a", "b", "c", "d"], &["a", "b"]),
    ("set max-app-frames 9\nfunction:b => stop-after", &["a", "b", "c"], &["a", "b"]),
    ("set max-app-frames 9\nfunction:'a|b' => skip\nfunction:b => keep", &["a", "b", "c"], &["b", "c"]),
    ("set max-app-frames 9\nfunction:x => bypass", &["a", "x", "x", "b"], &["a", "b"]),
    ("set max-app-frames 9\nset max-frames 2", &["a", "b", "c"], &["a", "b"]),
    ("set max-app-frames 9\nfunction:a => cap 1", &["a", "b", "c"], &["a"]),
    ("function:a => module-only", &["a", "b"], &["app"]),
    ("function:a => system", &["a", "b", "c"], &["a", "b"]),
    ("set max-app-frames 2\nfunction:a => rename '^(\\w+)$' 'renamed_$1'", &["a", "b"], &["renamed_a", "b"]),
    ("function:'renamed_.*' => skip\nfunction:a => rename a renamed_a", &["a", "b"], &["renamed_a"]),
    ("function:a => rename a renamed_a\nfunction:'renamed_.*' => skip", &["a", "b"], &["b"]),
    ("set max-app-frames 9\nraw:a => sig-rename a z\nfunction:a => stop-after", &["a", "b"], &["z"]),
    ("set max-app-frames 9\nframe:<2 => skip", &["a", "b", "c"], &["c"]),
    ("set max-app-frames 9\nframe:>0 => skip", &["a", "b", "c"], &["a"]),
    ("set max-app-frames 9\ncaller:c => skip", &["a", "b", "c"], &["a", "c"]),
    ("set max-app-frames 9\ncallee:a => skip", &["a", "b", "c"], &["a", "c"]),
    ("set max-app-frames 9\n!function:'b|c' => skip", &["a", "b", "c", "d"], &["b", "c"]),
    ("set max-app-frames 9\nset collapse-recursion off", &["a", "a", "b"], &["a", "a", "b"]),
    ("set max-app-frames 9", &["a", "a", "b"], &["a", "b"]),
    (
        "lang:c++ => sig-strip templates sig-strip params",
        &["ns::V<int>::at(unsigned long) const"],
        &["ns::V::at const"],
    ),
];

#[test]
fn actions_and_conditions() {
    let mut failures = Vec::new();
    for (text, names, want) in CASES {
        let got = sig(&rules(text), &frames(names));
        if got != *want {
            failures.push(format!("rules {text:?} on {names:?}: got {got:?}, want {want:?}"));
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}

#[test]
fn lines_attributes_and_classifiers() {
    let r = rules("function:a => lines on\nclassifier:null-dereference first => attr kind=null\n");
    let mut a = f("a");
    a.line = Some(42);
    let s = r.evaluate(&[a.clone()], &["null-dereference".into()]);
    assert_eq!(s.signature, vec!["a:42"]);
    assert_eq!(s.attributes.get("kind").map(String::as_str), Some("null"));
    let plain = r.evaluate(&[a.clone()], &[]);
    assert!(plain.attributes.is_empty());
    assert_ne!(plain.fingerprint, s.fingerprint, "attributes are part of the fingerprint");
    a.line = Some(43);
    assert_ne!(r.evaluate(&[a], &[]).fingerprint, plain.fingerprint, "lines on: the line is part of the signature");
}

#[test]
fn conditions_on_module_path_file_trust_inlined_nosymbol() {
    let r = rules(
        "set max-app-frames 9\nmodule:libx.so => skip\npath:'/opt/.*' file:'.*\\.c' => skip\ntrust:scan => skip\ninlined => skip\nnosymbol => skip\n",
    );
    let mut v = vec![
        Frame { function: Some("x".into()), module: Some("/usr/lib/libx.so.1".into()), ..Default::default() },
        Frame {
            function: Some("in_c".into()),
            module: Some("/opt/app".into()),
            file: Some("/src/a.c".into()),
            ..Default::default()
        },
        Frame { function: Some("scanned".into()), trust: Trust::Scan, ..Default::default() },
        Frame { function: Some("inl".into()), inlined: true, ..Default::default() },
        Frame { module: Some("/opt/app".into()), module_offset: 5, ..Default::default() },
        Frame {
            function: Some("kept".into()),
            module: Some("/opt/app".into()),
            file: Some("/src/a.rs".into()),
            ..Default::default()
        },
    ];
    assert_eq!(sig(&r, &v), vec!["kept"]);
    v.truncate(5);
    assert!(sig(&r, &v).is_empty());
}

#[test]
fn unsymbolized_offset_setting() {
    let frames =
        vec![Frame { module: Some("/opt/libp.so.2".into()), module_offset: 0x1a, ..Default::default() }, f("host")];
    assert_eq!(sig(&rules(""), &frames), vec!["libp.so", "host"]);
    assert_eq!(sig(&rules("set unsymbolized offset"), &frames), vec!["libp.so+0x1a", "host"]);
}

#[test]
fn fingerprint_is_a_pinned_function_of_the_signature() {
    // Changing the canonical encoding or the hash breaks every stored group: this
    // value must never change.
    let fp = bt::dedup::fingerprint(&["validate_order".to_string()], &Default::default());
    assert_eq!(fp, rules("").evaluate(&[f("validate_order")], &[]).fingerprint);
    assert_eq!(fp.len(), 32);
    assert_eq!(fp, PINNED);
}

/// `printf 'bt-signature-v1\nf validate_order\n' | sha256sum | cut -c1-32`
const PINNED: &str = "3052dcaab8edc49478af4075671dc86b";

/// The evaluator remembers frame outcomes across evaluations (per thread): the same
/// frames must still give what the rule set and the crash's classifiers say, whatever
/// was evaluated before, and a new rule set must not see another's outcomes.
#[test]
fn remembered_outcomes_follow_the_rule_set_and_the_classifiers() {
    let r = rules("set max-app-frames 9\nclassifier:assert function:a => skip");
    let fs = frames(&["a", "b", "c"]);
    for _ in 0..3 {
        assert_eq!(r.evaluate(&fs, &["assert".to_string()]).signature, ["b", "c"]);
        assert_eq!(r.evaluate(&fs, &[]).signature, ["a", "b", "c"]);
        // One classifier or two that spell the same bytes together are different.
        assert_eq!(r.evaluate(&fs, &["ass".to_string(), "ert".to_string()]).signature, ["a", "b", "c"]);
    }
    let first = r.evaluate(&fs, &["assert".to_string()]);
    let again = r.evaluate(&fs, &["assert".to_string()]);
    assert_eq!((first.fingerprint, first.pretty), (again.fingerprint, again.pretty));
    // A frame too long to be remembered is evaluated each time, alike.
    let long = frames(&[&"a".repeat(4000), "b"]);
    let want = r.evaluate(&long, &["assert".to_string()]).signature;
    assert_eq!(r.evaluate(&long, &["assert".to_string()]).signature, want);
    assert_eq!(r.evaluate(&long, &[]).signature, want, "the rule names `a`, not this frame");
    // Rule sets built one after another with the same frames: each its own outcome.
    for (text, want) in [("function:a => skip", ["b", "c"]), ("function:b => skip", ["a", "c"])] {
        for _ in 0..2 {
            assert_eq!(rules(&format!("set max-app-frames 9\n{text}")).evaluate(&fs, &[]).signature, want);
        }
    }
}
