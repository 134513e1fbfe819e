//! Data-driven tests of the renderer: gdb's float and character spelling, corrupt
//! type tables, sign extension.

use super::*;
use crate::snapshot::Regions;

/// A C renderer with the usual bounds and `follow` values behind pointers.
fn c_renderer<'a>(
    table: &'a mut Table,
    memory: &'a dyn Memory,
    opts: &'a VariableOptions,
    none: &'a dyn Fn(u64) -> Option<String>,
    follow: usize,
) -> Renderer<'a> {
    Renderer {
        types: table,
        lang: Lang::C,
        memory,
        opts,
        symbol: none,
        data_symbol: none,
        budget: FRAME_READ_BUDGET,
        nesting: 0,
        nodes: MAX_NODES_PER_VALUE,
        follow,
        follow_from: None,
    }
}

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
    let mut r = c_renderer(&mut table, &memory, &opts, &none, usize::MAX);
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
            let mut r = c_renderer(&mut table, &memory, &opts, &none, usize::MAX);
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

/// Objects behind pointers render within the stack's follow share: past it pointers
/// are no longer followed (their objects still read), and the text never changes.
#[test]
fn pointers_are_followed_within_the_share() {
    use crate::snapshot::{Member, MemoryRegion, Type};
    use std::sync::Mutex;
    // struct node { struct node *next; long v; }, ten of them chained at 0x1000 + 16 k.
    let member =
        |name: &str, ty, offset| Member { name: Some(name.into()), type_id: Some(ty), offset, ..Default::default() };
    let types = vec![
        Type {
            name: "struct node".into(),
            lang: Lang::C,
            kind: TypeKind::Struct {
                kind: Default::default(),
                tag: Some("node".into()),
                size: Some(16),
                members: vec![member("next", 1, 0), member("v", 2, 8)],
                variants: None,
                declaration: false,
                params: vec![],
            },
        },
        Type {
            name: "struct node *".into(),
            lang: Lang::C,
            kind: TypeKind::Pointer { target: Some(0), reference: false, rvalue: false },
        },
        Type { name: "long".into(), lang: Lang::C, kind: TypeKind::Base { size: 8, encoding: Encoding::Signed } },
    ];
    let mut bytes = Vec::new();
    for k in 0..10u64 {
        let next = if k < 9 { 0x1000 + 16 * (k + 1) } else { 0 };
        bytes.extend(next.to_le_bytes());
        bytes.extend((100 + k).to_le_bytes());
    }
    let regions = [MemoryRegion { address: 0x1000, label: "list".into(), bytes }];
    /// The regions, noting every address read.
    struct Noted<'a>(Regions<'a>, Mutex<Vec<u64>>);
    impl Memory for Noted<'_> {
        fn read(&self, addr: u64, buf: &mut [u8]) -> usize {
            self.1.lock().unwrap().push(addr);
            self.0.read(addr, buf)
        }
    }
    let opts = VariableOptions { max_depth: 3, keep_depth: 4, ..Default::default() };
    let none = |_: u64| None;
    let render = |follow: usize| {
        let memory = Noted(Regions::new(&regions), Mutex::new(Vec::new()));
        let mut table = Table::new(&types);
        let mut r = c_renderer(&mut table, &memory, &opts, &none, follow);
        let (value, text) = r.render(Some(1), &Data::known(0x1000u64.to_le_bytes().to_vec(), None), 0);
        let left = r.follow;
        (value, text, left, memory.1.into_inner().unwrap())
    };
    // How many objects deep the structured value goes.
    fn depth(v: &Value) -> usize {
        match v {
            Value::Pointer { target: Some(t), .. } => match &**t {
                Value::Struct(fields) => 1 + fields.first().map_or(0, |f| depth(&f.value)),
                _ => 0,
            },
            _ => 0,
        }
    }
    let (all, text_all, left_all, read_all) = render(usize::MAX);
    assert_eq!(depth(&all), 3, "max_depth objects shown: {all:?}");
    assert!(left_all < usize::MAX, "what was followed is counted");
    // A share that the first object exhausts (its struct and pointer are 2 values
    // when the pointer inside it would be followed): that one only.
    let (some, text_some, left_some, read_some) = render(2);
    assert_eq!(depth(&some), 1, "{some:?}");
    assert_eq!(left_some, 0);
    let (none_v, text_none, _, read_none) = render(0);
    assert_eq!(depth(&none_v), 0, "{none_v:?}");
    assert_eq!(text_all, "0x1000");
    assert_eq!((text_some.as_str(), text_none.as_str()), (text_all.as_str(), text_all.as_str()), "text never follows");
    // Objects not followed are still read (a later rendering from what was read may
    // look inside them): the first node even with no share, its next one with one.
    assert!(read_none.contains(&0x1000), "{read_none:x?}");
    assert!(read_some.contains(&0x1010), "{read_some:x?}");
    assert!(read_all.contains(&0x1030), "keep_depth reads one object deeper than shown: {read_all:x?}");
}
