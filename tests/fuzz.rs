//! Bounded in-tree mutation fuzzing of every parser that takes outside input: the
//! HTTP request head and body framing (chunked included), multipart forms,
//! snapshot decode + render (compressed and raw payloads), JSON reports, store
//! queries, and the coresnap configuration. (Core notes are fuzzed against a real
//! core in `capture_core.rs`.) Each target starts from real seeds and applies
//! random byte flips, inserts, deletions, duplications, "interesting" values and
//! splices. The bar: no panic, no hang (each target's time is bounded), and
//! every refusal is an error value.
//!
//! `BT_FUZZ_CASES` sets the cases per target: `make test` runs a few thousand,
//! `make fuzz` a few hundred thousand; `BT_FUZZ_SEED` changes the sequence.

mod server_common;

use std::time::{Duration, Instant};

use bt::server::http::{Limits, parse_one};
use bt::snapshot::Snapshot;
use server_common::*;

fn cases() -> usize {
    std::env::var("BT_FUZZ_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(20_000)
}

/// xorshift64*: deterministic, seedable.
struct Rng(u64);

impl Rng {
    fn new(salt: u64) -> Rng {
        let seed = std::env::var("BT_FUZZ_SEED").ok().and_then(|v| v.parse().ok()).unwrap_or(0x9e37_79b9_7f4a_7c15);
        Rng((seed ^ salt.wrapping_mul(0x2545_f491_4f6c_dd1d)) | 1)
    }
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        if n == 0 { 0 } else { (self.next() % n as u64) as usize }
    }
}

const INTERESTING: &[&[u8]] = &[
    b"\x00",
    b"\xff",
    b"\x7f",
    b"\x80",
    b"\xff\xff\xff\xff\xff\xff\xff\xff",
    b"\xfc\xff\xff\xff\xff\xff\xff\xff\xff",
    b"\xfb\xff\xff\xff\xff",
    b"\r\n",
    b"\n",
    b"\r",
    b"ffffffffffffffff",
    b"18446744073709551616",
    b"-1",
    b"+0",
    b";",
    b":",
    b"\"",
    b"--",
    b"{",
    b"[[[[[[[[",
];

/// One mutation of `seed`, sometimes spliced with `other`.
fn mutate(rng: &mut Rng, seed: &[u8], other: &[u8]) -> Vec<u8> {
    let mut b = seed.to_vec();
    for _ in 0..1 + rng.below(6) {
        let at = rng.below(b.len() + 1);
        match rng.below(7) {
            0 if !b.is_empty() => {
                let i = rng.below(b.len());
                b[i] = rng.next() as u8;
            }
            1 if !b.is_empty() => {
                let i = rng.below(b.len());
                b[i] ^= 1 << rng.below(8);
            }
            2 => {
                let v = INTERESTING[rng.below(INTERESTING.len())];
                b.splice(at..at, v.iter().copied());
            }
            3 if !b.is_empty() => {
                let end = (at + 1 + rng.below(32)).min(b.len());
                let start = at.min(end);
                b.drain(start..end);
            }
            4 if !b.is_empty() => {
                let start = rng.below(b.len());
                let end = (start + 1 + rng.below(64)).min(b.len());
                let piece: Vec<u8> = b[start..end].to_vec();
                let at = rng.below(b.len() + 1);
                b.splice(at..at, piece);
            }
            5 if !other.is_empty() => {
                let start = rng.below(other.len());
                let end = (start + 1 + rng.below(256)).min(other.len());
                let cut = at.min(b.len());
                b.truncate(cut);
                b.extend_from_slice(&other[start..end]);
            }
            _ => {
                let v = rng.next().to_le_bytes();
                b.splice(at..at, v[..1 + rng.below(8)].iter().copied());
            }
        }
    }
    b
}

/// A structural mutation of a JSON document: a random node replaced by a hostile
/// value, an object member removed, or an array item duplicated (byte mutations
/// alone rarely produce valid JSON).
fn mutate_json(rng: &mut Rng, seed: &[u8]) -> Vec<u8> {
    use serde_json::{Value, json};
    let Ok(mut v) = serde_json::from_slice::<Value>(seed) else { return seed.to_vec() };
    fn nodes(v: &mut Value, out: &mut Vec<*mut Value>) {
        out.push(v as *mut Value);
        match v {
            Value::Array(a) => a.iter_mut().for_each(|x| nodes(x, out)),
            Value::Object(o) => o.values_mut().for_each(|x| nodes(x, out)),
            _ => {}
        }
    }
    for _ in 0..1 + rng.below(3) {
        let mut all = Vec::new();
        nodes(&mut v, &mut all);
        let target = all[rng.below(all.len())];
        let hostile = [
            json!(null),
            json!(-1),
            json!(u64::MAX),
            json!(1e308),
            json!(""),
            json!("x".repeat(rng.below(5000))),
            json!("\u{1b}[2J\u{7}"),
            json!([]),
            json!({}),
            json!([[[[[[[[[[1]]]]]]]]]]),
            json!(["bin", 1000]),
            json!(["regular-expression", "(a*)*\\1b"]),
            json!(true),
        ];
        let pick = hostile[rng.below(hostile.len())].clone();
        // SAFETY: `target` points into `v`, which is not otherwise borrowed here,
        // and `all` is dropped before `v` is walked again.
        let t = unsafe { &mut *target };
        match (rng.below(3), &mut *t) {
            (0, Value::Object(o)) if !o.is_empty() => {
                let k = o.keys().nth(rng.below(o.len())).cloned().unwrap_or_default();
                o.remove(&k);
            }
            (1, Value::Array(a)) if !a.is_empty() => {
                let x = a[rng.below(a.len())].clone();
                for _ in 0..1 + rng.below(100) {
                    a.push(x.clone());
                }
            }
            _ => *t = pick,
        }
    }
    serde_json::to_vec(&v).unwrap_or_default()
}

/// Runs `check` on `cases()` mutations of the seeds; fails on a panic (which
/// propagates) or when the target as a whole runs past `budget`.
fn fuzz(name: &str, salt: u64, seeds: &[Vec<u8>], budget: Duration, mut check: impl FnMut(&[u8]) -> bool) {
    let mut rng = Rng::new(salt);
    let started = Instant::now();
    for s in seeds {
        assert!(check(s), "{name}: a seed is refused");
    }
    let n = cases();
    let mut accepted = 0;
    for i in 0..n {
        let seed = &seeds[rng.below(seeds.len())];
        let other = &seeds[rng.below(seeds.len())];
        let input = if seed.first() == Some(&b'{') && rng.below(2) == 0 {
            mutate_json(&mut rng, seed)
        } else {
            mutate(&mut rng, seed, other)
        };
        accepted += check(&input) as usize;
        let scaled = budget.mul_f64((n as f64 / 20_000.0).max(1.0));
        assert!(started.elapsed() < scaled, "{name}: {i} cases took {:?} (budget {scaled:?})", started.elapsed());
    }
    eprintln!("fuzz {name}: {n} cases, {accepted} accepted, {:?}", started.elapsed());
    // A mutator whose every case is refused at the first byte tests nothing.
    assert!(accepted * 100 >= n, "{name}: only {accepted} of {n} mutations got past the parser");
}

#[test]
fn http_requests() {
    let limits = Limits { max_body: 1 << 20, ..Limits::default() };
    let seeds: Vec<Vec<u8>> = [
        &b"GET /api/health HTTP/1.1\r\nHost: x\r\n\r\n"[..],
        b"POST /api/post?token=t&format=json HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello",
        b"POST /api/post HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5;ext=1\r\nhello\r\n3\r\nabc\r\n0\r\nX-Trailer: 1\r\n\r\n",
        b"POST /api/login HTTP/1.0\r\nContent-Length: 0\r\n\r\n",
        b"GET /api/get?project=p&object=1f&a=%41%zz+b HTTP/1.1\r\nHost: x\r\nConnection: close\r\nExpect: 100-continue\r\n\r\n",
    ]
    .iter()
    .map(|s| s.to_vec())
    .collect();
    fuzz("http", 1, &seeds, Duration::from_secs(30), |input| match parse_one(input.to_vec(), &limits) {
        Ok(Some(p)) => {
            assert!(p.body.len() as u64 <= limits.max_body);
            assert!(!p.method.is_empty());
            true
        }
        Ok(None) => false,
        Err((status, reason)) => {
            assert!((400..=505).contains(&status), "status {status}");
            assert!(!reason.is_empty() && reason.len() < 1024, "{reason:?}");
            false
        }
    });
}

#[test]
fn multipart_forms() {
    let (ct, body) = multipart(&[
        ("upload_file", Some("r.json"), b"{\"a\": 1}"),
        ("attachment_log.txt", Some("log.txt"), b"line 1\r\nline 2\r\n"),
        ("version", None, b"1.2.3"),
    ]);
    let boundary = bt::server::multipart::boundary(&ct).expect("boundary");
    fuzz("multipart", 2, &[body], Duration::from_secs(30), |input| {
        match bt::server::multipart::parse(input, &boundary) {
            Ok(parts) => {
                let total: usize = parts.iter().map(|p| p.data.len()).sum();
                assert!(total <= input.len());
                true
            }
            Err(_) => false,
        }
    });
    for ct in ["multipart/form-data; boundary=", "multipart/form-data", "multipart/form-data; boundary=\"x\"; a=b"] {
        let _ = bt::server::multipart::boundary(ct);
    }
}

/// The snapshot as an uncompressed file (compression byte 0): mutations then
/// reach the decoder instead of stopping at zstd's checksum.
fn uncompressed(encoded: &[u8]) -> Vec<u8> {
    let payload = zstd::stream::decode_all(&encoded[bt::snapshot::HEADER_LEN..]).expect("zstd");
    let mut out = encoded[..bt::snapshot::HEADER_LEN].to_vec();
    out[8] = 0;
    out[12..20].copy_from_slice(&(payload.len() as u64).to_le_bytes());
    out.extend_from_slice(&payload);
    out
}

#[test]
fn snapshots_decode_and_render() {
    let mut seeds = Vec::new();
    for name in ["snapshot-v1.bt", "snapshot-v2.bt", "snapshot-v3.bt"] {
        let b = std::fs::read(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data").join(name))
            .expect("sample snapshot");
        seeds.push(uncompressed(&b));
        seeds.push(b);
    }
    let made = snapshot(1, "h", 1).encode().expect("encode");
    seeds.push(uncompressed(&made));
    let limits = bt::snapshot::DecodeLimits::for_submission(64 << 10, 1 << 20);
    fuzz("snapshot", 3, &seeds, Duration::from_secs(120), |input| {
        // The header's length must match: fix it up half the time so the payload is reached.
        let mut b = input.to_vec();
        if b.len() >= bt::snapshot::HEADER_LEN && b[12] & 1 == 0 {
            let n = (b.len() - bt::snapshot::HEADER_LEN) as u64;
            b[12..20].copy_from_slice(&n.to_le_bytes());
        }
        match Snapshot::decode_with(&b, &limits) {
            Ok(mut s) => {
                bt::snapshot::values::render_snapshot(&mut s, &Default::default());
                let text = bt::snapshot::render::text(
                    &s,
                    &bt::snapshot::render::TextOptions { registers: true, problems: true },
                );
                assert!(!text.contains('\x1b'), "an escape reached the text output");
                let _ = serde_json::to_vec(&s);
                true
            }
            Err(_) => false,
        }
    });
}

#[test]
fn json_reports() {
    let seeds =
        vec![json_report("crash_here", "host-1", 1_700_000_000), b"{\"threads\": {}, \"timestamp\": 1}".to_vec()];
    let rules = bt::dedup::RuleSet::default_rules();
    let limits = bt::snapshot::DecodeLimits::default();
    fuzz("json-report", 4, &seeds, Duration::from_secs(60), |input| {
        let sub = bt::store::Submission {
            project: "p".into(),
            format: bt::store::Format::Json,
            body: input.to_vec(),
            attributes: vec![],
            attachments: vec![],
        };
        bt::store::ingest::prepare(sub, &rules, 1, &limits).is_ok()
    });
}

#[test]
fn store_queries() {
    let data = scratch("fuzz-query");
    let store = bt::store::Store::open(&data).expect("store");
    store.create_project("p").expect("project");
    for i in 0..20u64 {
        let sub = bt::store::Submission {
            project: "p".into(),
            format: bt::store::Format::Json,
            body: json_report(&format!("f{}", i % 4), &format!("h{}", i % 3), 1_700_000_000 + i),
            attributes: vec![],
            attachments: vec![],
        };
        store.submit(sub).expect("submit");
    }
    let seeds: Vec<Vec<u8>> = [
        r#"{"filter": [{"timestamp": [["at-least", "1700000005"]], "hostname": [["regular-expression", "h[0-9]"]]}], "group": ["fingerprint"], "fold": {"timestamp": [["range"], ["bin", 8]], "hostname": [["histogram"], ["distribution", 2]]}, "order": [{"name": ";count", "ordering": "descending"}], "limit": 5, "offset": 1}"#,
        r#"{"select": ["hostname", "timestamp", "object"], "order": [{"name": "timestamp", "ordering": "ascending"}], "filter": [{"object": [["equal", "3"]]}]}"#,
        r#"{"group": ["hostname"], "fold": {"build": [["sum"], ["mean"], ["min"], ["max"], ["unique"], ["head"], ["tail"]]}}"#,
        r#"{"fold": {"timestamp": [["bin", 4, 1700000000, 1700000020]]}, "filter": {"build": [["not-contains", "4"], ["is-set"]]}}"#,
    ]
    .iter()
    .map(|s| s.as_bytes().to_vec())
    .collect();
    fuzz("query", 5, &seeds, Duration::from_secs(120), |input| match bt::store::query::Query::parse(input) {
        Ok(q) => store.query("p", &q).is_ok(),
        Err(_) => false,
    });
}

#[test]
fn coresnap_configuration() {
    let seeds = vec![
        std::fs::read(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/coresnap.conf")).unwrap_or_else(
            |_| b"[server]\nserver.url = http://127.0.0.1:6097\ntoken.p = T\nformat.1 = p %e ^app$\n".to_vec(),
        ),
        b"archive.path = /tmp/x\ndump.quota = 10%\ncore.max_size = 5G\nrate.max_per_minute = 10\n".to_vec(),
    ];
    fuzz("config", 6, &seeds, Duration::from_secs(30), |input| {
        let text = String::from_utf8_lossy(input);
        match bt::collector::Config::parse(&text, "fuzz.conf") {
            Ok(_) => true,
            Err(e) => {
                let m = e.to_string();
                assert!(m.len() < 600, "error echoes {} bytes", m.len());
                assert!(!m.contains('\x1b') && !m.contains('\0'), "{m:?}");
                false
            }
        }
    });
}
