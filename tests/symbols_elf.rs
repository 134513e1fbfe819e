//! Symbolization of ELF files built at test time, checked against binutils
//! `addr2line -f -i` (the oracle): -O0/-O2, PIE and non-PIE, a separate debug file
//! through .gnu_debuglink and through .build-id, zlib- and zstd-compressed DWARF, and
//! symbol-table-only binaries. No core needed: the module is "mapped" by hand.

use bt::capture::CopiedMemory;
use bt::snapshot::{Frame, Mapping, Trust};
use bt::symbols::{ModuleSet, SymbolOptions};
use std::path::{Path, PathBuf};
use std::process::Command;

const SRC: &str = r#"
#include <stdio.h>
#include <stdlib.h>
static inline int inner(int x) { return x * 3 + (x >> 2); }
__attribute__((noinline)) int middle(int x) { int r = inner(x); if (r == 7) abort(); return r + 1; }
__attribute__((noinline)) int outer(int x) { return middle(x) * 2; }
int main(int argc, char **argv) { (void)argv; printf("%d\n", outer(argc)); return 0; }
"#;

fn scratch(name: &str) -> PathBuf {
    // One directory per test, replaced by the next run (kept after a failure to look at).
    let d = std::env::temp_dir().join(format!("bt-symbols-{name}"));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).expect("create scratch dir");
    d
}

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("running {cmd:?}: {e}"));
    assert!(out.status.success(), "{cmd:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Builds the test program with `flags` and applies `post` (a shell snippet run in the
/// directory, `$P` = the program).
fn build(dir: &Path, flags: &[&str], post: &str) -> PathBuf {
    let src = dir.join("prog.c");
    std::fs::write(&src, SRC).expect("write source");
    let prog = dir.join("prog");
    run(Command::new("gcc").args(flags).arg("-o").arg(&prog).arg(&src));
    if !post.is_empty() {
        run(Command::new("sh").arg("-c").arg(post).env("P", &prog).current_dir(dir));
    }
    prog
}

/// Link-time address and size of a function symbol, from nm -S.
fn symbol(prog: &Path, name: &str) -> (u64, u64) {
    let out = run(Command::new("nm").arg("-S").arg(prog));
    out.lines()
        .find_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            if f.len() != 4 || f[3] != name {
                return None;
            }
            Some((u64::from_str_radix(f[0], 16).ok()?, u64::from_str_radix(f[1], 16).ok()?))
        })
        .unwrap_or_else(|| panic!("{name} not in nm -S output of {}", prog.display()))
}

fn symbol_addr(prog: &Path, name: &str) -> u64 {
    symbol(prog, name).0
}

/// Every instruction address of a function (objdump), so inlined code is hit too.
fn instructions(prog: &Path, start: u64, len: u64) -> Vec<u64> {
    let out = run(Command::new("objdump")
        .arg("-d")
        .arg(format!("--start-address={start:#x}"))
        .arg(format!("--stop-address={:#x}", start + len))
        .arg(prog));
    out.lines()
        .filter_map(|l| {
            let (a, _) = l.trim_start().split_once(':')?;
            u64::from_str_radix(a, 16).ok().filter(|v| *v >= start)
        })
        .collect()
}

/// (function, basename:line) pairs from addr2line -f -i, innermost first.
fn oracle(prog: &Path, addr: u64) -> Vec<(String, String)> {
    let out = run(Command::new("addr2line").arg("-f").arg("-i").arg("-e").arg(prog).arg(format!("{addr:#x}")));
    let lines: Vec<&str> = out.lines().collect();
    lines
        .chunks(2)
        .map(|c| {
            let loc = c.get(1).copied().unwrap_or("");
            let loc = loc.split(" (discriminator").next().unwrap_or(loc);
            let base = loc.rsplit('/').next().unwrap_or(loc).to_string();
            (c[0].to_string(), base)
        })
        .collect()
}

fn ours(set: &ModuleSet, pc: u64) -> Vec<(String, String)> {
    set.symbolize(Frame { pc, trust: Trust::Context, ..Default::default() })
        .into_iter()
        .map(|f| {
            let file = f.file.as_deref().map(|p| p.rsplit('/').next().unwrap_or(p).to_string()).unwrap_or("??".into());
            let line = f.line.map(|l| l.to_string()).unwrap_or("?".into());
            (f.function.unwrap_or("??".into()), format!("{file}:{line}"))
        })
        .collect()
}

/// Maps `prog` at `base` (offset 0) as the only module, without target memory.
fn module_set(prog: &Path, base: u64, opts: SymbolOptions) -> ModuleSet {
    let size = std::fs::metadata(prog).expect("stat").len().div_ceil(4096) * 4096 + 0x10000;
    let maps = vec![Mapping {
        start: base,
        end: base + size,
        perms: "r-xp".into(),
        offset: 0,
        path: prog.display().to_string(),
    }];
    let (set, problems) = ModuleSet::load(&maps, &[], &[], &CopiedMemory::default(), &opts);
    assert!(problems.is_empty(), "load problems: {problems:?}");
    set
}

/// Checks every instruction of middle/outer/main against addr2line.
fn check_against_addr2line(prog: &Path, base: u64, bias: u64, opts: SymbolOptions, oracle_prog: &Path) {
    check_functions(prog, base, bias, opts, oracle_prog, &["middle", "outer", "main"]);
}

/// Checks every instruction of `funcs` against addr2line.
fn check_functions(prog: &Path, base: u64, bias: u64, opts: SymbolOptions, oracle_prog: &Path, funcs: &[&str]) {
    let set = module_set(prog, base, opts);
    let mut checked = 0;
    for &func in funcs {
        let (start, size) = symbol(oracle_prog, func);
        for addr in instructions(oracle_prog, start, size) {
            let want = oracle(oracle_prog, addr);
            if want.iter().any(|(f, l)| f == "??" || l.starts_with("??")) {
                continue;
            }
            let got = ours(&set, addr + bias);
            assert_eq!(got, want, "{} at {addr:#x}", prog.display());
            checked += 1;
        }
    }
    assert!(checked > 5, "too few addresses checked ({checked})");
    let modules = set.modules();
    assert_eq!(modules.len(), 1);
    assert_eq!(modules[0].load_bias, bias, "load bias");
    assert!(set.take_problems().is_empty());
}

#[test]
fn pie_o0_matches_addr2line() {
    let d = scratch("pie-o0");
    let p = build(&d, &["-g", "-O0"], "");
    check_against_addr2line(&p, 0x5555_5555_0000, 0x5555_5555_0000, SymbolOptions::default(), &p);
}

#[test]
fn pie_o2_inlined_matches_addr2line() {
    let d = scratch("pie-o2");
    let p = build(&d, &["-g", "-O2"], "");
    check_against_addr2line(&p, 0x7f00_0000_0000, 0x7f00_0000_0000, SymbolOptions::default(), &p);
}

#[test]
fn non_pie_has_zero_bias() {
    let d = scratch("nopie");
    let p = build(&d, &["-g", "-O2", "-fno-pie", "-no-pie"], "");
    check_against_addr2line(&p, 0x400000, 0, SymbolOptions::default(), &p);
}

#[test]
fn zlib_and_zstd_compressed_debug_sections() {
    for (name, flag) in [("zlib", "zlib"), ("zstd", "zstd")] {
        let d = scratch(name);
        let p = build(&d, &["-g", "-O2"], &format!("objcopy --compress-debug-sections={flag} \"$P\""));
        let sections = run(Command::new("readelf").arg("-S").arg("-W").arg(&p));
        assert!(sections.lines().any(|l| l.contains(".debug_info") && l.contains(" C ")), "{name}: not compressed");
        check_against_addr2line(&p, 0x5555_0000_0000, 0x5555_0000_0000, SymbolOptions::default(), &p);
    }
}

#[test]
fn separate_debug_file_through_debuglink() {
    let d = scratch("debuglink");
    let p = build(
        &d,
        &["-g", "-O2"],
        "cp \"$P\" full && objcopy --only-keep-debug \"$P\" prog.debug && strip --strip-debug \"$P\" && objcopy --add-gnu-debuglink=prog.debug \"$P\"",
    );
    let set = module_set(&p, 0x5555_0000_0000, SymbolOptions::default());
    let m = &set.modules()[0];
    assert!(m.debug.found, "debug file not found: {m:?}");
    assert_eq!(m.debug.path.as_deref(), Some(d.join("prog.debug").to_str().expect("utf-8 path")));
    check_against_addr2line(&p, 0x5555_0000_0000, 0x5555_0000_0000, SymbolOptions::default(), &d.join("full"));
}

#[test]
fn separate_debug_file_through_build_id_dir() {
    let d = scratch("buildid");
    let p = build(
        &d,
        &["-g", "-O2", "-Wl,--build-id"],
        "cp \"$P\" full && objcopy --only-keep-debug \"$P\" prog.debug && strip --strip-debug \"$P\"",
    );
    let id = run(Command::new("sh").arg("-c").arg("readelf -n prog | sed -n 's/.*Build ID: //p'").current_dir(&d));
    let id = id.trim();
    let dir = d.join("dbg/.build-id").join(&id[..2]);
    std::fs::create_dir_all(&dir).expect("mkdir");
    std::fs::rename(d.join("prog.debug"), dir.join(format!("{}.debug", &id[2..]))).expect("move debug file");
    let opts = SymbolOptions { debug_dirs: vec![d.join("dbg")], ..Default::default() };
    let set = module_set(&p, 0x5555_0000_0000, opts.clone());
    let m = &set.modules()[0];
    assert!(m.debug.found, "debug file not found: {m:?}");
    assert_eq!(m.build_id.as_deref(), Some(id));
    check_against_addr2line(&p, 0x5555_0000_0000, 0x5555_0000_0000, opts, &d.join("full"));
}

#[test]
fn debuglink_with_wrong_crc_is_rejected() {
    let d = scratch("badcrc");
    let p = build(
        &d,
        &["-g", "-O2", "-Wl,--build-id=none"],
        "objcopy --only-keep-debug \"$P\" prog.debug && strip --strip-debug \"$P\" && objcopy --add-gnu-debuglink=prog.debug \"$P\" && echo junk >> prog.debug",
    );
    let set = module_set(&p, 0x5555_0000_0000, SymbolOptions::default());
    let m = &set.modules()[0];
    assert!(!m.debug.found, "a debug file failing its CRC was used: {m:?}");
    let problems = set.take_problems();
    assert!(problems.iter().any(|p| p.message.contains("CRC")), "{problems:?}");
    // Still symbolized from .symtab.
    let f = &set.symbolize(Frame { pc: 0x5555_0000_0000 + symbol_addr(&p, "outer") + 1, ..Default::default() })[0];
    assert_eq!(f.function.as_deref(), Some("outer"));
}

#[test]
fn symbol_tables_without_dwarf() {
    let d = scratch("nodwarf");
    // .symtab only (no -g), then fully stripped (.dynsym only).
    let p = build(&d, &["-O2", "-rdynamic"], "cp \"$P\" stripped && strip stripped");
    let base = 0x5555_0000_0000;
    let addr = symbol_addr(&p, "middle");
    for prog in [p.clone(), d.join("stripped")] {
        let set = module_set(&prog, base, SymbolOptions::default());
        let f = set.symbolize(Frame { pc: base + addr + 4, trust: Trust::Context, ..Default::default() });
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].function.as_deref(), Some("middle"), "{}", prog.display());
        assert_eq!(f[0].function_offset, Some(4));
        assert_eq!(f[0].file, None);
        assert_eq!(f[0].module.as_deref(), prog.file_name().and_then(|n| n.to_str()));
        assert_eq!(f[0].module_offset, addr + 4);
    }
}

#[test]
fn return_addresses_are_looked_up_at_pc_minus_one() {
    let d = scratch("pcm1");
    let p = build(&d, &["-g", "-O0"], "");
    let base = 0x5555_0000_0000;
    let set = module_set(&p, base, SymbolOptions::default());
    // The first instruction of `outer`, as a return address, belongs to what precedes it.
    let outer = symbol_addr(&p, "outer");
    let as_ret = set.symbolize(Frame { pc: base + outer, trust: Trust::Cfi, ..Default::default() });
    assert_eq!(as_ret.last().and_then(|f| f.function.as_deref()), Some("middle"));
    let exact = set.symbolize(Frame { pc: base + outer, trust: Trust::Cfi, signal_frame: true, ..Default::default() });
    assert_eq!(exact.last().and_then(|f| f.function.as_deref()), Some("outer"));
}

#[test]
fn dwz_supplementary_file() {
    // `make deps` installs dwz; without it this test fails rather than pass silently.
    assert!(Command::new("dwz").arg("--version").output().is_ok(), "dwz is not installed (make deps installs it)");
    let d = scratch("dwz");
    std::fs::write(
        d.join("common.h"),
        "struct point { int x, y; long tag; };\nstruct shape { struct point corners[4]; const char *name; };\n\
         static inline int area(const struct shape *s) { return (s->corners[2].x - s->corners[0].x) * (s->corners[2].y - s->corners[0].y); }\n",
    )
    .expect("write header");
    for i in 1..=2 {
        let src = format!(
            "#include \"common.h\"\n#include <stdio.h>\n__attribute__((noinline)) int work{i}(struct shape *s) {{ return area(s) + {i}; }}\n\
             int main(void) {{ struct shape s = {{{{{{0,0,0}},{{1,0,0}},{{2,3,0}},{{0,3,0}}}}, \"sq\"}}; printf(\"%d\\n\", work{i}(&s)); return 0; }}\n"
        );
        std::fs::write(d.join(format!("p{i}.c")), src).expect("write source");
        run(Command::new("gcc").args(["-g", "-O2", "-o"]).arg(d.join(format!("p{i}"))).arg(d.join(format!("p{i}.c"))));
    }
    let common = d.join("common.debug");
    run(Command::new("dwz").arg("-m").arg(&common).arg("-M").arg(&common).arg(d.join("p1")).arg(d.join("p2")));
    let p1 = d.join("p1");
    assert!(run(Command::new("readelf").arg("-S").arg(&p1)).contains(".gnu_debugaltlink"), "dwz made no multifile");
    // binutils addr2line may not follow the altlink; gdb does: compare lines with gdb.
    let base = 0x5555_0000_0000;
    let set = module_set(&p1, base, SymbolOptions::default());
    let (start, size) = symbol(&p1, "work1");
    let mut checked = 0;
    for addr in instructions(&p1, start, size) {
        let out = run(Command::new("gdb").args(["-batch", "-nx", "-ex"]).arg(format!("info line *{addr:#x}")).arg(&p1));
        let Some(rest) = out.lines().find_map(|l| l.strip_prefix("Line ")) else { continue };
        let (line, file) = rest.split_once(" of \"").expect("gdb info line shape");
        let file = file.split('"').next().unwrap_or("");
        let want = format!("{}:{line}", file.rsplit('/').next().unwrap_or(file));
        let got = ours(&set, base + addr);
        assert_eq!(got[0].1, want, "at {addr:#x}: {got:?}");
        assert_eq!(got.last().map(|f| f.0.as_str()), Some("work1"));
        checked += 1;
    }
    assert!(checked > 2, "too few addresses checked ({checked})");
    assert!(got_inlined_area(&set, base + start));
}

fn got_inlined_area(set: &ModuleSet, pc: u64) -> bool {
    ours(set, pc).iter().any(|(f, _)| f == "area")
}
