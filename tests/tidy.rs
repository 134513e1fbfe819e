//! Tidy checks over `src/` (in the spirit of rust-analyzer's): the module map of
//! ARCHITECTURE.md, written once below as the allowed edges between subsystems,
//! holds; every file opens with a `//!` line; no `unwrap()` outside tests; every
//! `unsafe` block, fn or impl carries a `SAFETY:` comment. Data-driven: to allow
//! an edge, change the table (and ARCHITECTURE.md with it).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Which subsystems each subsystem may name (`crate::X`). One direction only:
/// `snapshot` (the contract) and `units` at the bottom, producers above them,
/// consumers beside the producers, `cmd` on top.
const ALLOWED: &[(&str, &[&str])] = &[
    ("snapshot", &[]),
    ("units", &[]),
    ("logging", &[]),
    // The process's transparent-huge-pages flag, which a big trace turns on.
    ("thp", &[]),
    ("capture", &["snapshot"]),
    ("symbols", &["snapshot", "capture"]),
    ("unwind", &["snapshot", "capture", "symbols"]),
    ("analysis", &["snapshot", "capture", "symbols"]),
    ("trace", &["snapshot", "capture", "symbols", "unwind", "analysis", "thp"]),
    ("dedup", &["snapshot"]),
    ("store", &["snapshot", "dedup"]),
    ("server", &["snapshot", "store", "units"]),
    // The notification sender reads the outbox and records outcomes through the store.
    ("notify", &["store"]),
    ("query", &["snapshot", "store", "units"]),
    // The collector runs the tracer as a child process and talks to the store over
    // HTTP: it names neither.
    ("collector", &["snapshot", "units", "thp"]),
    // hydra reads snapshots only through `snapshot` (loading is the command's job).
    ("viewer", &["snapshot"]),
    (
        "cmd",
        &[
            "snapshot",
            "units",
            "logging",
            "thp",
            "capture",
            "symbols",
            "unwind",
            "analysis",
            "trace",
            "dedup",
            "store",
            "server",
            "query",
            "collector",
            "viewer",
            "notify",
        ],
    ),
];

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir).expect("read src").flatten().map(|e| e.path()).collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|e| e == "rs") {
            out.push(p);
        }
    }
}

/// The subsystem a file belongs to (its first directory under src/, or its stem).
fn subsystem(path: &Path) -> String {
    let rel = path.strip_prefix(src()).expect("under src");
    let first = rel.components().next().expect("a component").as_os_str().to_string_lossy().into_owned();
    first.trim_end_matches(".rs").to_string()
}

/// The code of a file outside its tests: files named `tests.rs` have none; elsewhere
/// everything from the first `#[cfg(test)]` on is tests (the house convention puts
/// the test module last).
fn non_test_code(path: &Path, text: &str) -> String {
    if path.file_name().is_some_and(|n| n == "tests.rs") {
        return String::new();
    }
    match text.find("#[cfg(test)]") {
        Some(i) => text[..i].to_string(),
        None => text.to_string(),
    }
}

/// Lines without `//` comments (string contents are left: good enough for tidy).
fn code_lines(text: &str) -> impl Iterator<Item = (usize, &str)> {
    text.lines().enumerate().map(|(i, l)| {
        let trimmed = l.trim_start();
        if trimmed.starts_with("//") { (i + 1, "") } else { (i + 1, l) }
    })
}

/// Every subsystem named by `crate::X` or `use crate::{X, Y::…}`.
fn named_subsystems(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut rest = text;
    while let Some(i) = rest.find("crate::") {
        rest = &rest[i + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            let mut depth = 1;
            let mut start = 0;
            let mut end = group.len();
            for (j, c) in group.char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' => {
                        depth -= 1;
                        if depth == 0 {
                            end = j;
                            break;
                        }
                    }
                    ',' if depth == 1 => {
                        out.insert(ident(&group[start..j]));
                        start = j + 1;
                    }
                    _ => {}
                }
            }
            out.insert(ident(&group[start..end]));
        } else {
            out.insert(ident(rest));
        }
    }
    out.retain(|s| !s.is_empty() && s != "self");
    out
}

fn ident(s: &str) -> String {
    s.trim_start().chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect()
}

#[test]
fn subsystems_depend_one_way() {
    let allowed: BTreeMap<&str, BTreeSet<&str>> =
        ALLOWED.iter().map(|(k, v)| (*k, v.iter().copied().collect())).collect();
    let mut files = Vec::new();
    rust_files(&src(), &mut files);
    let mut errors = Vec::new();
    for f in &files {
        let sub = subsystem(f);
        if sub == "lib" || sub == "main" {
            continue;
        }
        let Some(ok) = allowed.get(sub.as_str()) else {
            errors.push(format!("{}: subsystem {sub:?} is not in the table of tests/tidy.rs", f.display()));
            continue;
        };
        let text = std::fs::read_to_string(f).expect("read");
        let text = non_test_code(f, &text);
        let code: String = code_lines(&text).map(|(_, l)| l).collect::<Vec<_>>().join("\n");
        for named in named_subsystems(&code) {
            if named != sub && !ok.contains(named.as_str()) {
                errors.push(format!("{}: {sub} may not name {named} (see ALLOWED)", f.display()));
            }
        }
    }
    // The table itself has no cycle.
    for (from, tos) in &allowed {
        for to in tos {
            assert!(!allowed.get(to).is_some_and(|back| back.contains(from)), "the table allows {from} <-> {to}");
        }
    }
    assert!(errors.is_empty(), "{}", errors.join("\n"));
}

/// Every module named by `prefix` paths (`super::x`, `super::{a, b::c}`).
fn named_after(text: &str, prefix: &str) -> BTreeSet<String> {
    named_subsystems(&text.replace(prefix, "crate::"))
}

/// Inside each subsystem too, modules depend one way: the sibling files of a
/// folder (its `mod.rs` aside, which declares them) form no cycle.
#[test]
fn modules_inside_a_subsystem_depend_one_way() {
    let mut problems = Vec::new();
    for dir in std::fs::read_dir(src()).expect("src").flatten().map(|e| e.path()).filter(|p| p.is_dir()) {
        let sub = dir.file_name().expect("name").to_string_lossy().into_owned();
        let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for e in std::fs::read_dir(&dir).expect("dir").flatten() {
            let p = e.path();
            let module = p.file_stem().expect("stem").to_string_lossy().into_owned();
            if module == "mod" || p.extension().is_none_or(|x| x != "rs") {
                continue;
            }
            let text = std::fs::read_to_string(&p).expect("read");
            let text = non_test_code(&p, &text);
            let code: String = code_lines(&text).map(|(_, l)| l).collect::<Vec<_>>().join("\n");
            let mut named = named_after(&code, "super::");
            named.extend(named_after(&code, &format!("crate::{sub}::")));
            named.retain(|n| *n != module && dir.join(format!("{n}.rs")).exists() || dir.join(n).is_dir());
            edges.insert(module, named);
        }
        // Depth-first search for a cycle.
        fn visit(
            n: &str,
            edges: &BTreeMap<String, BTreeSet<String>>,
            path: &mut Vec<String>,
            done: &mut BTreeSet<String>,
        ) -> Option<Vec<String>> {
            if let Some(i) = path.iter().position(|p| p == n) {
                return Some(path[i..].to_vec());
            }
            if done.contains(n) {
                return None;
            }
            path.push(n.to_string());
            for m in edges.get(n).into_iter().flatten() {
                if let Some(c) = visit(m, edges, path, done) {
                    return Some(c);
                }
            }
            path.pop();
            done.insert(n.to_string());
            None
        }
        let mut done = BTreeSet::new();
        for n in edges.keys() {
            if let Some(cycle) = visit(n, &edges, &mut Vec::new(), &mut done) {
                problems.push(format!("src/{sub}: {} -> {}", cycle.join(" -> "), cycle[0]));
                break;
            }
        }
    }
    assert!(problems.is_empty(), "cycles between modules:\n{}", problems.join("\n"));
}

#[test]
fn every_file_says_what_it_owns() {
    let mut files = Vec::new();
    rust_files(&src(), &mut files);
    let missing: Vec<String> = files
        .iter()
        .filter(|f| !std::fs::read_to_string(f).expect("read").trim_start().starts_with("//!"))
        .map(|f| f.display().to_string())
        .collect();
    assert!(missing.is_empty(), "files without a //! line:\n{}", missing.join("\n"));
}

#[test]
fn no_unwrap_outside_tests() {
    let mut files = Vec::new();
    rust_files(&src(), &mut files);
    let mut hits = Vec::new();
    for f in &files {
        let text = std::fs::read_to_string(f).expect("read");
        let code = non_test_code(f, &text);
        for (n, l) in code_lines(&code) {
            if l.contains(".unwrap()") {
                hits.push(format!("{}:{n}: {}", f.display(), l.trim()));
            }
        }
    }
    assert!(
        hits.is_empty(),
        "unwrap() outside tests (use ? or an expect that states the invariant):\n{}",
        hits.join("\n")
    );
}

/// The terminal UI crates stay inside the viewer (ARCHITECTURE.md: only
/// `src/viewer/` names tui-realm and ratatui).
#[test]
fn only_the_viewer_names_the_terminal_ui_crates() {
    let mut files = Vec::new();
    rust_files(&src(), &mut files);
    let mut hits = Vec::new();
    for f in &files {
        if subsystem(f) == "viewer" {
            continue;
        }
        let text = std::fs::read_to_string(f).expect("read");
        for (n, l) in code_lines(&text) {
            if l.contains("tuirealm") || l.contains("ratatui") || l.contains("crossterm") {
                hits.push(format!("{}:{n}: {}", f.display(), l.trim()));
            }
        }
    }
    assert!(hits.is_empty(), "terminal UI crates named outside src/viewer/:\n{}", hits.join("\n"));
}

#[test]
fn unsafe_code_says_why_it_is_sound() {
    let mut files = Vec::new();
    rust_files(&src(), &mut files);
    let mut missing = Vec::new();
    for f in &files {
        let text = std::fs::read_to_string(f).expect("read");
        let lines: Vec<&str> = text.lines().collect();
        for (i, l) in lines.iter().enumerate() {
            let code = l.split("//").next().unwrap_or("");
            let is_unsafe = code.contains("unsafe {") || code.contains("unsafe fn") || code.contains("unsafe impl");
            if !is_unsafe || code.contains("\"") {
                continue;
            }
            // A SAFETY comment on the line or in the comment block just above it.
            let mut j = i;
            let mut said = l.contains("SAFETY");
            while !said && j > 0 {
                j -= 1;
                let above = lines[j].trim();
                if above.contains("SAFETY") {
                    said = true;
                } else if !(above.starts_with("//") || above.starts_with("#[") || above.is_empty() || i - j <= 3) {
                    break;
                }
                if i - j > 12 {
                    break;
                }
            }
            if !said {
                missing.push(format!("{}:{}: {}", f.display(), i + 1, l.trim()));
            }
        }
    }
    assert!(missing.is_empty(), "unsafe without a SAFETY comment:\n{}", missing.join("\n"));
}

#[test]
fn the_checker_sees_what_it_checks() {
    // The parser of `crate::` paths, on the forms the code uses.
    let got = named_subsystems("use crate::{snapshot::{A, B}, capture::Memory, self};\nlet x = crate::units::size(s);");
    assert_eq!(got, ["capture", "snapshot", "units"].iter().map(|s| s.to_string()).collect());
    // Tests are excluded from the unwrap rule; code before them is not.
    let code = non_test_code(Path::new("x.rs"), "fn a() { b.unwrap(); }\n#[cfg(test)]\nmod tests { c.unwrap(); }");
    assert!(code.contains("b.unwrap()") && !code.contains("c.unwrap()"));
}
