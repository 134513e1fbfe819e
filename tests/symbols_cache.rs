//! The on-disk index cache (unit outlines and line-sequence spans by build id): a
//! real core traced without the cache, then with it cold and warm, then with every
//! cache file corrupted in several ways — the output never changes, nothing panics,
//! and each bad file is replaced by a good one.

mod common;

use common::{bt_bin, build_and_crash, run_with_timeout, scratch_dir};
use std::path::{Path, PathBuf};

fn trace(core: &Path, exe: &Path, envs: &[(&str, &str)]) -> String {
    let args = ["ptrace", "--no-variables", "--core", core.to_str().expect("utf-8"), exe.to_str().expect("utf-8")];
    let out = run_with_timeout(120, &bt_bin(), &args, envs);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success() && !stderr.contains("panicked"), "bt failed ({}):\n{stderr}", out.status);
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn cache_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for module in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        for f in std::fs::read_dir(module.path()).into_iter().flatten().flatten() {
            out.push(f.path());
        }
    }
    out.sort();
    out
}

#[test]
fn corrupt_index_cache_files_are_ignored_and_rebuilt() {
    let dir = scratch_dir("bt-cores-symbols_cache");
    let src = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/lambdas.cpp");
    let crash = build_and_crash(&dir, "lambdas", "g++", &["-O2", "-g"], &src);
    let exe = crash.exe.clone();
    let home = dir.join("cache");
    let home_s = home.to_str().expect("utf-8");
    let env = [("XDG_CACHE_HOME", home_s)];

    let reference = trace(&crash.core, &exe, &[("XDG_CACHE_HOME", home_s), ("BT_NO_CACHE", "1")]);
    assert!(reference.contains("app::crash_here"), "unexpected trace:\n{reference}");
    let index = home.join("bt/index");
    assert!(cache_files(&index).is_empty(), "BT_NO_CACHE must not write the index cache");

    assert_eq!(trace(&crash.core, &exe, &env), reference, "cold cache");
    let files = cache_files(&index);
    let has = |ext: &str| files.iter().any(|f| f.extension().is_some_and(|e| e == ext));
    assert!(
        has("functions") && has("nodes") && has("lines"),
        "the cold run should store outlines and line spans: {files:?}"
    );
    let good: Vec<Vec<u8>> = files.iter().map(|f| std::fs::read(f).expect("read cache file")).collect();
    assert_eq!(trace(&crash.core, &exe, &env), reference, "warm cache");

    type Corruption = fn(&[u8]) -> Vec<u8>;
    let corruptions: [(&str, Corruption); 5] = [
        ("a bit flipped in the payload", |b| {
            let mut v = b.to_vec();
            let at = v.len() - 3;
            v[at] ^= 0x10;
            v
        }),
        ("a bit flipped in the header", |b| {
            let mut v = b.to_vec();
            v[9] ^= 1;
            v
        }),
        ("truncated to half", |b| b[..b.len() / 2].to_vec()),
        ("empty", |_| Vec::new()),
        ("random bytes of the same length", |b| {
            (0..b.len()).map(|i| (i as u32).wrapping_mul(2_654_435_761).to_le_bytes()[3]).collect()
        }),
    ];
    for (what, corrupt) in corruptions {
        for (f, g) in files.iter().zip(&good) {
            std::fs::write(f, corrupt(g)).expect("corrupt cache file");
        }
        assert_eq!(trace(&crash.core, &exe, &env), reference, "cache files {what}");
        for (f, g) in files.iter().zip(&good) {
            let now = std::fs::read(f).expect("read cache file");
            assert!(&now == g, "{} ({what}) was not rebuilt as before", f.display());
        }
    }
}
