//! Backward compatibility of the snapshot format: every version ever written keeps
//! decoding. `tests/data/snapshot-vN.bt` are real snapshots (a 4-thread C program that
//! crashed with SIGSEGV in `inner`), one per format version; never regenerate them.

use bt::snapshot::{FORMAT_VERSION, Snapshot, Source, Trust};

fn sample(version: u16) -> Snapshot {
    let path = format!("{}/tests/data/snapshot-v{version}.bt", env!("CARGO_MANIFEST_DIR"));
    let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    assert_eq!(&bytes[..6], b"BTSNAP");
    assert_eq!(u16::from_le_bytes([bytes[6], bytes[7]]), version, "{path} has the wrong version in its header");
    Snapshot::decode(&bytes).unwrap_or_else(|e| panic!("{path} no longer decodes: {e}"))
}

#[test]
fn every_format_version_has_a_sample() {
    for v in 1..=FORMAT_VERSION {
        let path = format!("{}/tests/data/snapshot-v{v}.bt", env!("CARGO_MANIFEST_DIR"));
        assert!(std::path::Path::new(&path).exists(), "missing sample for format version {v}: {path}");
    }
}

#[test]
fn version_1_sample_still_decodes_with_its_content() {
    let s = sample(1);
    assert!(matches!(s.source, Source::Core(_)));
    assert_eq!(s.threads.len(), 4);
    let t = &s.threads[0];
    assert!(t.faulted, "faulting thread is first");
    assert_eq!(s.signal.as_ref().map(|g| g.name.as_str()), Some("SIGSEGV"));
    assert_eq!(s.signal.as_ref().and_then(|g| g.fault_address), Some(0));
    let names: Vec<&str> = t.frames.iter().filter_map(|f| f.function.as_deref()).collect();
    assert_eq!(&names[..3], &["inner", "middle", "main"]);
    assert_eq!(t.frames[0].trust, Trust::Context);
    assert_eq!(t.frames[1].trust, Trust::Cfi);
    assert_eq!(t.frames[0].line, Some(5));
    assert_eq!(s.attribute("version"), Some("1.0"));
    assert_eq!(s.attribute("team"), Some("core"));
    assert!(s.attribute("hostname").is_some());
    assert!(s.modules.iter().any(|m| m.path.ends_with("/a") && m.build_id.is_some()));
}

#[test]
fn version_1_sample_reencodes_identically() {
    // Only while the writer was version 1: decode → encode → decode is the identity.
    let s = sample(1);
    if FORMAT_VERSION == 1 {
        assert_eq!(Snapshot::decode(&s.encode().expect("encode")).expect("decode"), s);
    }
}

#[test]
fn version_2_sample_decodes_with_variables_globals_and_memory() {
    // A C program (examples/variables/vars.c, -O0) that crashed writing through a list.
    let s = sample(2);
    assert_eq!(s.signal.as_ref().map(|g| g.name.as_str()), Some("SIGSEGV"));
    let t = &s.threads[0];
    assert_eq!(t.frames[0].function.as_deref(), Some("crash_here"));
    let v = |name: &str| t.frames.iter().flat_map(|f| &f.variables).find(|v| v.name == name).map(|v| v.text.clone());
    assert_eq!(v("local_answer").as_deref(), Some("1238"));
    assert_eq!(v("letter").as_deref(), Some("81 'Q'"));
    assert_eq!(v("c").as_deref(), Some("BLUE"));
    let g: Vec<(&str, &str)> = s.globals.iter().map(|g| (g.name.as_str(), g.text.as_str())).collect();
    assert_eq!(g, [("global_counter", "42"), ("tls_value", "99")]);
    assert!(s.memory.iter().any(|m| m.label.starts_with("stack ")));
    assert_eq!(s.attribute("version"), Some("2.0"));
}

#[test]
fn version_1_sample_converts_to_the_current_model() {
    let s = sample(1);
    assert!(s.globals.is_empty(), "version 1 had no globals");
    assert_eq!(Snapshot::decode(&s.encode().expect("encode")).expect("decode"), s);
}

#[test]
fn version_2_sample_converts_without_types() {
    // Before version 3 a variable has no type or location: it keeps its captured text,
    // and rendering it again leaves it as it is.
    let mut s = sample(2);
    assert!(s.types.is_empty() && s.symbols.is_empty());
    let before = s.clone();
    assert!(before.threads[0].frames.iter().flat_map(|f| &f.variables).all(|v| v.type_id.is_none()));
    bt::snapshot::values::render_snapshot(&mut s, &Default::default());
    assert_eq!(s, before);
}

#[test]
fn version_3_sample_renders_again_from_its_types_and_memory() {
    // examples/variables/vars.c at -O0, crashed writing through its list; captured
    // with `--global global_counter --global tls_value`. No binary or core is needed:
    // the variables are rendered again from the sample's own type table and memory.
    let s = sample(3);
    assert_eq!(s.attribute("version"), Some("3.0"));
    let t = &s.threads[0];
    assert_eq!(t.frames[0].function.as_deref(), Some("crash_here"));
    let vars: Vec<&bt::snapshot::Variable> = t.frames.iter().flat_map(|f| &f.variables).collect();
    let typed = vars.iter().filter(|v| v.type_id.is_some()).count();
    assert!(typed >= 15, "only {typed} variables have a type");
    assert!(s.types.iter().any(|ty| ty.name == "struct node *"));
    let mut again = s.clone();
    bt::snapshot::values::render_snapshot(&mut again, &Default::default());
    assert_eq!(again, s, "re-rendering a snapshot changed it");
    let text = |s: &Snapshot, name: &str| {
        s.threads[0].frames.iter().flat_map(|f| &f.variables).find(|v| v.name == name).map(|v| v.text.clone())
    };
    // Symbol names come from the snapshot too.
    assert!(text(&again, "cb").is_some_and(|t| t.ends_with(" <twice>")));
    assert_eq!(text(&again, "local_answer").as_deref(), Some("1238"));
    assert!(text(&again, "sh").is_some_and(|t| t.contains("name = ") && t.contains("\"square\"")));

    // The list is shown 3 pointers deep; the 4th node's bytes were kept, so a viewer
    // that opens one more level finds it in the snapshot.
    let deeper = bt::snapshot::values::VariableOptions { max_depth: 4, ..Default::default() };
    let mut deep = s.clone();
    bt::snapshot::values::render_snapshot(&mut deep, &deeper);
    let list = deep.threads[0].frames[0].variables.iter().find(|v| v.name == "list").expect("list");
    let mut values = Vec::new();
    let mut cur = &list.value;
    while let bt::snapshot::Value::Pointer { target: Some(t), .. } = cur {
        let bt::snapshot::Value::Struct(fields) = &**t else { break };
        if let bt::snapshot::Value::Int(v) = fields[0].value {
            values.push(v);
        }
        cur = &fields[1].value;
    }
    assert_eq!(values, [0, 20, 30, 40]);

    // Without the kept memory, the values read from it are said to be unreadable.
    let mut bare = s.clone();
    bare.memory.clear();
    bt::snapshot::values::render_snapshot(&mut bare, &Default::default());
    assert!(text(&bare, "local_answer").is_some_and(|t| t.starts_with("<error: Cannot access memory")));
}

#[test]
fn version_3_sample_prints_expressions() {
    // `bt ptrace --snapshot FILE --print EXPR`: members, pointers and indexes followed
    // in the sample's own types and memory (4 nodes deep: one past the shown depth).
    let s = sample(3);
    let opts = bt::snapshot::values::VariableOptions::default();
    let cases = [
        ("list->next->next->value", "30"),
        ("list->next->next->next->value", "40"),
        ("frame 0 *list", "{value = 0, next = 0x5643751302e0}"),
        ("frame 1 numbers[2]", "3"),
        ("frame 2 sh.corners[1].y", "4"),
        ("frame 1 s->name", "0x564339485017 \"square\""),
        ("frame 1 cb", "0x564339484149 <twice>"),
        ("frame 1 gp->y", "-4"),
        ("tls_value", "99"),
    ];
    for (expr, want) in cases {
        let got = bt::snapshot::print::print(&s, expr, &opts).map(|x| x.1);
        assert_eq!(got.as_deref(), Ok(want), "{expr}");
    }
    let errors = [
        ("frame 9 x", "no frame 9 in the thread"),
        ("nosuch", "no variable \"nosuch\" in the frame or among the globals"),
        ("frame 1 numbers[7]", "numbers: index 7 is out of bounds"),
        ("list->next->next->next->next->value", "cannot access memory at address 0x0 (not kept in the snapshot)"),
        ("list->value->x", "list->value is not a pointer or an array"),
    ];
    for (expr, want) in errors {
        let got = bt::snapshot::print::print(&s, expr, &opts).map_err(|e| e.to_string());
        assert_eq!(got, Err(want.to_string()), "{expr}");
    }
}
