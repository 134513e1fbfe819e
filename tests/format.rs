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
    // The current writer is version 1: decode → encode → decode is the identity.
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
