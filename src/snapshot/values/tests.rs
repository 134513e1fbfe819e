//! Data-driven tests of the renderer: gdb's float and character spelling, corrupt
//! type tables, sign extension.

use super::*;
use crate::snapshot::Regions;

#[test]
#[allow(clippy::approx_constant)] // 3.14 is the value the example programs hold
fn floats_like_gdb() {
    let cases = [
        (3.14f64, 17, "3.1400000000000001"),
        (2.5, 9, "2.5"),
        (0.0, 17, "0"),
        (1e300, 17, "1.0000000000000001e+300"),
        (-0.5, 17, "-0.5"),
        (100.0, 17, "100"),
        (1.5e-7, 17, "1.4999999999999999e-07"),
    ];
    for (v, p, want) in cases {
        assert_eq!(fmt_g(v, p), want, "{v}");
    }
    assert_eq!(fmt_g(1.1f32 as f64, 9), "1.10000002");
}

#[test]
fn char_sequences_like_gdb() {
    assert_eq!(chars_text(b"hello", 10, false), "\"hello\"");
    let mut b = b"hi".to_vec();
    b.extend([0u8; 13]);
    assert_eq!(chars_text(&b, 10, false), "\"hi\", '\\000' <repeats 13 times>");
    // gdb collapses runs longer than the threshold, not equal to it.
    assert_eq!(chars_text(&[b'a'; 10], 10, false), "\"aaaaaaaaaa\"");
    assert_eq!(chars_text(b"a\0b", 10, false), "\"a\\000b\"");
    assert_eq!(char_text(65, b'A'), "65 'A'");
    assert_eq!(char_text(0, 0), "0 '\\000'");
    assert_eq!(char_text(10, b'\n'), "10 '\\n'");
}

#[test]
fn corrupt_tables_render_bounded() {
    // A struct that contains itself by value, a typedef loop, a dangling id: each
    // renders as what it is, without recursing for ever.
    use crate::snapshot::{Member, Type};
    let member = |ty| Member { name: Some("m".into()), type_id: Some(ty), ..Default::default() };
    let strukt = |members| TypeKind::Struct {
        kind: Default::default(),
        tag: Some("s".into()),
        size: Some(8),
        members,
        variants: None,
        declaration: false,
        params: vec![],
    };
    let types = vec![
        Type { name: "struct s".into(), lang: Lang::C, kind: strukt(vec![member(0)]) },
        Type { name: "t".into(), lang: Lang::C, kind: TypeKind::Typedef { target: Some(1) } },
        Type { name: "struct u".into(), lang: Lang::C, kind: strukt(vec![member(99)]) },
    ];
    let mut table = Table::new(&types);
    let regions: [crate::snapshot::MemoryRegion; 0] = [];
    let memory = Regions::new(&regions);
    let opts = VariableOptions::default();
    let none = |_: u64| None;
    let mut r = Renderer {
        types: &mut table,
        lang: Lang::C,
        memory: &memory,
        opts: &opts,
        symbol: &none,
        data_symbol: &none,
        budget: FRAME_READ_BUDGET,
        nesting: 0,
        nodes: MAX_NODES_PER_VALUE,
    };
    let data = Data::known(vec![0; 8], None);
    assert!(r.render(Some(0), &data, 0).1.contains("<nesting too deep>"));
    assert_eq!(r.render(Some(1), &data, 0).1, "<unknown type>");
    assert_eq!(r.render(Some(2), &data, 0).1, "{m = <unknown type>}");
    assert_eq!(r.nesting, 0);
}

#[test]
fn sign_extension() {
    assert_eq!(sign_extend(0xff, 1), -1);
    assert_eq!(sign_extend(0xfffffffe, 4), -2);
    assert_eq!(sign_extend(5, 4), 5);
}

/// Regression (hostile input 11 and 12): a struct holding itself twice is 2^200
/// nodes deep 200 levels, and an array of 50,000 dimensions recursed once per
/// dimension; both end bounded, quickly, on a small stack.
#[test]
fn hostile_tables_render_bounded_in_breadth_and_dimensions() {
    use crate::snapshot::{Member, Type};
    let member = |ty| Member { name: Some("m".into()), type_id: Some(ty), ..Default::default() };
    let types = vec![
        Type {
            name: "struct s".into(),
            lang: Lang::C,
            kind: TypeKind::Struct {
                kind: Default::default(),
                tag: Some("s".into()),
                size: Some(8),
                members: vec![member(0), member(0)],
                variants: None,
                declaration: false,
                params: vec![],
            },
        },
        Type { name: "int".into(), lang: Lang::C, kind: TypeKind::Base { size: 4, encoding: Encoding::Signed } },
        Type {
            name: "int [][]…".into(),
            lang: Lang::C,
            kind: TypeKind::Array { elem: Some(1), dims: vec![Some(1); 50_000] },
        },
    ];
    let out = std::thread::Builder::new()
        .stack_size(1 << 20)
        .spawn(move || {
            let mut table = Table::new(&types);
            let regions: [crate::snapshot::MemoryRegion; 0] = [];
            let memory = Regions::new(&regions);
            let opts = VariableOptions::default();
            let none = |_: u64| None;
            let mut r = Renderer {
                types: &mut table,
                lang: Lang::C,
                memory: &memory,
                opts: &opts,
                symbol: &none,
                data_symbol: &none,
                budget: FRAME_READ_BUDGET,
                nesting: 0,
                nodes: MAX_NODES_PER_VALUE,
            };
            let data = Data::known(vec![0; 8], None);
            let started = std::time::Instant::now();
            let (_, text) = r.render(Some(0), &data, 0);
            let took = started.elapsed();
            assert_eq!(r.nodes, 0, "the node budget was spent, not exceeded");
            assert!(text.contains("<too many values>"));
            assert!(text.len() < 64 << 20, "text bounded: {} bytes", text.len());
            r.nodes = MAX_NODES_PER_VALUE;
            let (_, arr) = r.render(Some(2), &Data::known(vec![0; 4], None), 0);
            assert_eq!(r.nesting, 0);
            (took, arr)
        })
        .unwrap()
        .join()
        .expect("rendering on a 1 MiB stack does not overflow it");
    assert!(out.0 < std::time::Duration::from_secs(10), "took {:?}", out.0);
    assert!(out.1.contains("<nesting too deep>"), "{}", out.1);
}
