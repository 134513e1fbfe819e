//! Code generated at run time (JIT compilers: V8 in Node.js, JVMs, .NET, LuaJIT,
//! Python's perf trampolines). It lives in anonymous executable memory, outside every
//! module, and its names come from the perf map the runtime writes when asked
//! (`node --perf-basic-prof`, `python -X perf`, `DOTNET_PerfMapEnabled=1`,
//! perf-map-agent): `/tmp/perf-PID.map`, one `START SIZE NAME` per line (hex, without
//! `0x`), the convention `perf` reads. Code is freed and its memory reused, so a later
//! line wins over the earlier lines it overlaps.

use crate::snapshot::Mapping;
use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;

/// The most of a perf map that is read: a long-running JVM's can grow without end.
pub(crate) const MAX_PERF_MAP_BYTES: u64 = 64 << 20;
/// The most names kept (a big JVM's map has a few hundred thousand), and the longest.
const MAX_NAMES: usize = 1 << 20;
const MAX_NAME_BYTES: usize = 1024;

#[derive(Default)]
pub(crate) struct Jit {
    /// Anonymous executable mappings, sorted: [start, end).
    ranges: Vec<(u64, u64)>,
    /// Named code by start: (end, name), no two overlapping.
    names: BTreeMap<u64, (u64, String)>,
}

impl Jit {
    /// The process's JIT memory from its maps, and the names of a perf map when one is
    /// given. A perf map that cannot be read or is cut short is said in the problem
    /// returned; the names read up to there are kept.
    pub(crate) fn new(maps: &[Mapping], perf_map: Option<&Path>) -> (Jit, Option<String>) {
        let mut ranges: Vec<(u64, u64)> = maps.iter().filter(|m| is_jit_mapping(m)).map(|m| (m.start, m.end)).collect();
        ranges.sort_unstable();
        let mut jit = Jit { ranges, names: BTreeMap::new() };
        let Some(path) = perf_map else { return (jit, None) };
        let mut text = Vec::new();
        let read = crate::capture::open_regular(path)
            .and_then(|f| f.take(MAX_PERF_MAP_BYTES).read_to_end(&mut text).map(|_| ()));
        if let Err(e) = read {
            return (jit, Some(format!("perf map {}: {e}; JIT frames are not named", path.display())));
        }
        let cut = text.len() as u64 >= MAX_PERF_MAP_BYTES;
        let text = String::from_utf8_lossy(&text);
        let mut lines = text.lines();
        if cut {
            // The last line may be cut in the middle.
            lines.next_back();
        }
        let mut kept = 0;
        for line in lines {
            // Only code in JIT memory needs a name from here (a module's has symbols).
            let Some((start, size, name)) = parse_line(line) else { continue };
            let end = start.saturating_add(size);
            if !jit.overlaps_jit(start, end) {
                continue;
            }
            if kept == MAX_NAMES {
                let note = format!("perf map {}: only its first {MAX_NAMES} names in JIT memory kept", path.display());
                return (jit, Some(note));
            }
            kept += 1;
            jit.insert(start, end, truncated(name, MAX_NAME_BYTES));
        }
        let note =
            cut.then(|| format!("perf map {}: only its first {} MiB read", path.display(), MAX_PERF_MAP_BYTES >> 20));
        (jit, note)
    }

    /// Whether `addr` is in anonymous executable memory: the start of its mapping.
    pub(crate) fn mapping_of(&self, addr: u64) -> Option<u64> {
        let i = self.ranges.partition_point(|r| r.0 <= addr);
        let (start, end) = *self.ranges.get(i.checked_sub(1)?)?;
        (addr < end).then_some(start)
    }

    /// Whether [start, end) meets an anonymous executable mapping.
    fn overlaps_jit(&self, start: u64, end: u64) -> bool {
        let i = self.ranges.partition_point(|r| r.0 < end);
        i > 0 && self.ranges[i - 1].1 > start
    }

    /// The perf map's name for the code at `addr`, with the code's start.
    pub(crate) fn name(&self, addr: u64) -> Option<(&str, u64)> {
        let (start, (end, name)) = self.names.range(..=addr).next_back()?;
        (addr < *end).then_some((name.as_str(), *start))
    }

    /// Adds named code, replacing whatever it overlaps (code freed and reused).
    fn insert(&mut self, start: u64, end: u64, name: &str) {
        if end <= start {
            return;
        }
        let overlapped: Vec<u64> =
            self.names.range(..end).rev().take_while(|(_, (e, _))| *e > start).map(|(s, _)| *s).collect();
        for s in overlapped {
            self.names.remove(&s);
        }
        self.names.insert(start, (end, name.to_string()));
    }
}

/// Executable memory that is no file's: anonymous, `[anon:…]` or a memfd (some
/// runtimes map their code twice through one, to write it in one view and run it in
/// the other). The kernel's own pages (`[vdso]`, `[vsyscall]`) are modules or nothing.
fn is_jit_mapping(m: &Mapping) -> bool {
    m.perms.as_bytes().get(2) == Some(&b'x')
        && (m.path.is_empty() || m.path.starts_with("[anon") || m.path.starts_with("/memfd:"))
}

/// `s` cut to at most `max` bytes, at a character boundary.
fn truncated(s: &str, max: usize) -> &str {
    let mut n = s.len().min(max);
    while !s.is_char_boundary(n) {
        n -= 1;
    }
    &s[..n]
}

/// `START SIZE NAME` (hex, an optional `0x`); the name may hold blanks.
fn parse_line(line: &str) -> Option<(u64, u64, &str)> {
    let hex = |s: &str| u64::from_str_radix(s.trim_start_matches("0x"), 16).ok();
    let (start, rest) = line.split_once(' ')?;
    let (size, name) = rest.split_once(' ')?;
    let name = name.trim();
    (!name.is_empty()).then_some(())?;
    Some((hex(start)?, hex(size)?, name))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(start: u64, end: u64, perms: &str, path: &str) -> Mapping {
        Mapping { start, end, perms: perms.into(), offset: 0, path: path.into() }
    }

    #[test]
    fn later_lines_win_and_names_stay_in_their_code() {
        let dir = std::env::temp_dir().join(format!("bt-jit-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("perf-1.map");
        std::fs::write(
            &path,
            "1000 100 JS:*old /a.js:1:1\n1080 40 JS:*new /a.js:2:1\nzz 10 bad\n2000 0 empty\n3000 10\n0x4000 10 Builtin: X\n",
        )
        .unwrap();
        let maps = [map(0x1000, 0x5000, "r-xp", ""), map(0x6000, 0x7000, "r-xp", "/usr/lib/libc.so.6")];
        let long = format!("6000 10 in-libc\n4800 10 {}\n", "é".repeat(2000));
        std::fs::write(&path, std::fs::read_to_string(&path).unwrap() + long.as_str()).unwrap();
        let (jit, note) = Jit::new(&maps, Some(&path));
        assert_eq!(note, None);
        assert_eq!(jit.name(0x1090), Some(("JS:*new /a.js:2:1", 0x1080)));
        // The old code's first part was not overlapped but its entry is gone: its
        // memory was reused, so what is left of it is not known to be it.
        assert_eq!(jit.name(0x1010), None);
        assert_eq!(jit.name(0x4005), Some(("Builtin: X", 0x4000)));
        assert_eq!(jit.name(0x2000), None);
        assert_eq!(jit.name(0x3000), None);
        assert_eq!(jit.mapping_of(0x4fff), Some(0x1000));
        // Code of a module is not named from the map; a long name is cut whole.
        assert_eq!(jit.name(0x6000), None);
        let (long, _) = jit.name(0x4800).unwrap();
        assert!(long.len() <= MAX_NAME_BYTES && long.len() >= MAX_NAME_BYTES - 1 && long.starts_with('é'));
        assert_eq!(jit.mapping_of(0x5000), None);
        assert_eq!(jit.mapping_of(0x6100), None);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_missing_or_special_perf_map_is_said_not_fatal() {
        let (jit, note) = Jit::new(&[], Some(Path::new("/nonexistent/perf-1.map")));
        assert!(note.unwrap().contains("JIT frames are not named"));
        assert_eq!(jit.name(1), None);
        let (_, note) = Jit::new(&[], Some(Path::new("/dev/zero")));
        assert!(note.unwrap().contains("not a regular file"));
    }
}
