//! Reading /proc: maps, status, limits, meminfo, loadavg, and the host's identity.
//!
//! Parsers take text and return data (easy to test on fixed strings); the `read_*`
//! and `*_environment` functions do the I/O. Everything here is best effort: a
//! missing or odd file becomes a [`Problem`], never an error for the capture.

use crate::snapshot::{Environment, Limit, Mapping, Problem, Process, Scope, Uname};
use std::io;

/// The /proc/PID/status lines kept in [`Environment::status`], in this order.
pub const STATUS_KEYS: &[&str] = &[
    "Name",
    "State",
    "PPid",
    "Uid",
    "Gid",
    "VmPeak",
    "VmSize",
    "VmRSS",
    "VmHWM",
    "Threads",
    "voluntary_ctxt_switches",
    "nonvoluntary_ctxt_switches",
];

/// Parses one line of /proc/PID/maps:
/// `start-end perms offset dev inode [path]`; the path may contain spaces.
pub fn parse_maps_line(line: &str) -> Option<Mapping> {
    let mut rest = line.trim_end_matches('\n');
    let mut fields = [""; 5];
    for f in fields.iter_mut() {
        rest = rest.trim_start_matches(' ');
        let end = rest.find(' ').unwrap_or(rest.len());
        *f = &rest[..end];
        rest = &rest[end..];
    }
    let [range, perms, offset, dev, inode] = fields;
    let (start, end) = range.split_once('-')?;
    let start = u64::from_str_radix(start, 16).ok()?;
    let end = u64::from_str_radix(end, 16).ok()?;
    if end < start || perms.len() != 4 || !dev.contains(':') {
        return None;
    }
    inode.parse::<u64>().ok()?;
    Some(Mapping {
        start,
        end,
        perms: perms.to_string(),
        offset: u64::from_str_radix(offset, 16).ok()?,
        // The kernel pads with spaces before the path; a path's own leading spaces are lost.
        path: rest.trim_start_matches(' ').to_string(),
    })
}

/// Parses a whole maps file; returns the mappings sorted by start and the lines
/// that could not be parsed.
pub fn parse_maps(text: &str) -> (Vec<Mapping>, Vec<String>) {
    let mut maps = Vec::new();
    let mut bad = Vec::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        match parse_maps_line(line) {
            Some(m) => maps.push(m),
            None => bad.push(line.to_string()),
        }
    }
    maps.sort_by_key(|m| m.start);
    (maps, bad)
}

/// Reads /proc/PID/maps.
pub fn read_maps(pid: i32) -> io::Result<(Vec<Mapping>, Vec<String>)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/maps"))?;
    Ok(parse_maps(&text))
}

/// Parses an auxiliary vector (/proc/PID/auxv or NT_AUXV): native-endian u64
/// pairs up to AT_NULL. A trailing partial pair is ignored.
pub fn parse_auxv(bytes: &[u8]) -> Vec<(u64, u64)> {
    let mut out = Vec::new();
    for pair in bytes.chunks_exact(16) {
        let key = u64::from_le_bytes(pair[..8].try_into().expect("chunks_exact(16) yields 16 bytes"));
        let val = u64::from_le_bytes(pair[8..].try_into().expect("chunks_exact(16) yields 16 bytes"));
        if key == 0 {
            break; // AT_NULL
        }
        out.push((key, val));
    }
    out
}

/// Parses `Key:\tvalue` lines (/proc/PID/status), keeping only `keys`, in file order.
/// Values have their internal tabs turned into single spaces.
pub fn parse_status(text: &str, keys: &[&str]) -> Vec<(String, String)> {
    text.lines()
        .filter_map(|l| l.split_once(':'))
        .filter(|(k, _)| keys.contains(k))
        .map(|(k, v)| (k.to_string(), v.split_whitespace().collect::<Vec<_>>().join(" ")))
        .collect()
}

/// Parses /proc/PID/limits. Columns are found from the header line
/// (`Limit  Soft Limit  Hard Limit  Units`) because limit names contain spaces.
pub fn parse_limits(text: &str) -> Vec<Limit> {
    let mut lines = text.lines();
    let Some(header) = lines.next() else { return Vec::new() };
    let (Some(soft), Some(hard), Some(units)) =
        (header.find("Soft Limit"), header.find("Hard Limit"), header.find("Units"))
    else {
        return Vec::new();
    };
    if !(soft < hard && hard < units) {
        return Vec::new();
    }
    let col = |l: &str, a: usize, b: usize| -> String {
        let b = b.min(l.len());
        l.get(a.min(b)..b).unwrap_or("").trim().to_string()
    };
    lines
        .filter(|l| !l.trim().is_empty())
        .map(|l| Limit {
            name: col(l, 0, soft),
            soft: col(l, soft, hard),
            hard: col(l, hard, units),
            units: col(l, units, usize::MAX),
        })
        .filter(|l| !l.name.is_empty())
        .collect()
}

/// Parses /proc/meminfo: `Key:   value [kB]` → (key, value). Values are kB for the
/// lines that say so and plain counts (HugePages_*) for the others.
pub fn parse_meminfo(text: &str) -> Vec<(String, u64)> {
    text.lines()
        .filter_map(|l| {
            let (k, v) = l.split_once(':')?;
            let v = v.split_whitespace().next()?.parse().ok()?;
            Some((k.trim().to_string(), v))
        })
        .collect()
}

/// Parses /proc/loadavg (`0.52 0.58 0.59 1/467 12345`).
pub fn parse_loadavg(text: &str) -> Option<[f64; 3]> {
    let mut it = text.split_whitespace().map(|s| s.parse::<f64>().ok());
    Some([it.next()??, it.next()??, it.next()??])
}

/// Parses /proc/uptime (`12345.67 23456.78`): seconds since boot.
pub fn parse_uptime(text: &str) -> Option<f64> {
    text.split_whitespace().next()?.parse().ok()
}

/// Parses /proc/PID/task/TID/stat into (comm, state letter).
///
/// Folklore: comm is in parentheses and may itself contain `)` and spaces
/// (`prctl(PR_SET_NAME, "a) b")`), so the state is the field after the LAST `)`.
pub fn parse_task_stat(text: &str) -> Option<(String, String)> {
    let open = text.find('(')?;
    let close = text.rfind(')')?;
    if close < open {
        return None;
    }
    let comm = text[open + 1..close].to_string();
    let state = text[close + 1..].split_whitespace().next()?.to_string();
    Some((comm, state))
}

/// Reads a small /proc file (a stat line) with one open and one read: no size
/// probe, no second read to see EOF. Capture reads one per thread, so it counts.
/// Folklore: procfs hands a stat line out whole in the first read.
pub fn read_small(path: &str) -> io::Result<String> {
    use std::io::Read;
    let mut buf = [0u8; 1024];
    let n = std::fs::File::open(path)?.read(&mut buf)?;
    Ok(String::from_utf8_lossy(&buf[..n]).into_owned())
}

/// The `flags` field (the 9th) of a /proc/PID/stat line.
pub fn parse_stat_flags(text: &str) -> Option<u64> {
    text.get(text.rfind(')')? + 1..)?.split_whitespace().nth(6)?.parse().ok()
}

/// The thread ids of a process (entries of /proc/PID/task), unsorted.
/// The kernel stack of each thread (`/proc/PID/task/TID/stack`, readable by root),
/// read before the threads are stopped so that it shows where they wait (a
/// stopped thread's stack shows only the ptrace stop). Unreadable ones are left out.
pub fn kernel_stacks(pid: i32) -> Vec<(i32, String)> {
    let Ok(tids) = task_ids(pid) else { return Vec::new() };
    per_task(&tids, |tid| Some((tid, std::fs::read_to_string(format!("/proc/{pid}/task/{tid}/stack")).ok()?)))
        .into_iter()
        .flatten()
        .collect()
}

/// `one` of every thread id, in order, spread over a few threads when there are
/// many (a thousand /proc files are tens of milliseconds read one after another).
/// A reader that panicked leaves its threads' answers `T::default()`.
pub fn per_task<T: Send + Default + Clone>(tids: &[i32], one: impl Fn(i32) -> T + Sync) -> Vec<T> {
    let workers = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1).min(8);
    if tids.len() < 128 || workers < 2 {
        return tids.iter().map(|&t| one(t)).collect();
    }
    let chunk = tids.len().div_ceil(workers);
    let one = &one;
    std::thread::scope(|s| {
        let handles: Vec<_> =
            tids.chunks(chunk).map(|c| s.spawn(move || c.iter().map(|&t| one(t)).collect::<Vec<_>>())).collect();
        handles
            .into_iter()
            .zip(tids.chunks(chunk))
            .flat_map(|(h, c)| h.join().unwrap_or_else(|_| vec![T::default(); c.len()]))
            .collect()
    })
}

pub fn task_ids(pid: i32) -> io::Result<Vec<i32>> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(format!("/proc/{pid}/task"))? {
        let entry = entry?;
        if let Some(tid) = entry.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) {
            out.push(tid);
        }
    }
    Ok(out)
}

/// Splits /proc/PID/cmdline (NUL-terminated arguments).
pub fn parse_cmdline(bytes: &[u8]) -> Vec<String> {
    let bytes = bytes.strip_suffix(&[0]).unwrap_or(bytes);
    if bytes.is_empty() {
        return Vec::new();
    }
    bytes.split(|b| *b == 0).map(|a| String::from_utf8_lossy(a).into_owned()).collect()
}

/// First number of a status value (`Uid:\t1000\t1000\t1000\t1000` → 1000).
fn first_number<T: std::str::FromStr>(status: &[(String, String)], key: &str) -> Option<T> {
    status.iter().find(|(k, _)| k == key)?.1.split_whitespace().next()?.parse().ok()
}

/// Process identity of a live process: pid, ppid, uid, gid (real ids), exe, comm, cmdline.
pub fn process_info(pid: i32) -> (Process, Vec<Problem>) {
    let mut problems = Vec::new();
    let mut p = Process { pid, ..Default::default() };
    match std::fs::read_to_string(format!("/proc/{pid}/status")) {
        Ok(text) => {
            let st = parse_status(&text, &["PPid", "Uid", "Gid"]);
            p.ppid = first_number(&st, "PPid").unwrap_or(0);
            p.uid = first_number(&st, "Uid").unwrap_or(0);
            p.gid = first_number(&st, "Gid").unwrap_or(0);
        }
        Err(e) => problems.push(Problem::new(Scope::Snapshot, format!("reading /proc/{pid}/status: {e}"))),
    }
    match std::fs::read_link(format!("/proc/{pid}/exe")) {
        Ok(path) => p.exe = path.to_string_lossy().into_owned(),
        Err(e) => problems.push(Problem::new(Scope::Snapshot, format!("reading /proc/{pid}/exe: {e}"))),
    }
    match std::fs::read_to_string(format!("/proc/{pid}/comm")) {
        Ok(text) => p.comm = text.trim_end_matches('\n').to_string(),
        Err(e) => problems.push(Problem::new(Scope::Snapshot, format!("reading /proc/{pid}/comm: {e}"))),
    }
    match std::fs::read(format!("/proc/{pid}/cmdline")) {
        Ok(bytes) => p.cmdline = parse_cmdline(&bytes),
        Err(e) => problems.push(Problem::new(Scope::Snapshot, format!("reading /proc/{pid}/cmdline: {e}"))),
    }
    (p, problems)
}

/// The host's identity and load: hostname, uname, meminfo, loadavg, cpu count, uptime.
pub fn host_environment() -> (Environment, Vec<Problem>) {
    let mut env = Environment::default();
    let mut problems = Vec::new();
    let mut problem = |what: &str, e: &dyn std::fmt::Display| {
        problems.push(Problem::new(Scope::Snapshot, format!("environment: {what}: {e}")));
    };
    match nix::unistd::gethostname() {
        Ok(h) => env.hostname = h.to_string_lossy().into_owned(),
        Err(e) => problem("hostname", &e),
    }
    match nix::sys::utsname::uname() {
        Ok(u) => {
            let s = |o: &std::ffi::OsStr| o.to_string_lossy().into_owned();
            env.uname = Uname {
                sysname: s(u.sysname()),
                nodename: s(u.nodename()),
                release: s(u.release()),
                version: s(u.version()),
                machine: s(u.machine()),
            };
        }
        Err(e) => problem("uname", &e),
    }
    match std::fs::read_to_string("/proc/meminfo") {
        Ok(t) => env.meminfo = parse_meminfo(&t),
        Err(e) => problem("/proc/meminfo", &e),
    }
    match std::fs::read_to_string("/proc/loadavg") {
        Ok(t) => env.loadavg = parse_loadavg(&t),
        Err(e) => problem("/proc/loadavg", &e),
    }
    match std::fs::read_to_string("/proc/uptime") {
        Ok(t) => env.uptime = parse_uptime(&t),
        Err(e) => problem("/proc/uptime", &e),
    }
    // Online CPUs of the machine, not our affinity mask (available_parallelism).
    let n = nix::unistd::sysconf(nix::unistd::SysconfVar::_NPROCESSORS_ONLN).ok().flatten().unwrap_or(0);
    env.cpu_count = u32::try_from(n).unwrap_or(0);
    (env, problems)
}

/// The host environment plus the process's /proc status lines and limits.
pub fn process_environment(pid: i32) -> (Environment, Vec<Problem>) {
    let (mut env, mut problems) = host_environment();
    match std::fs::read_to_string(format!("/proc/{pid}/status")) {
        Ok(t) => env.status = parse_status(&t, STATUS_KEYS),
        Err(e) => problems.push(Problem::new(Scope::Snapshot, format!("environment: /proc/{pid}/status: {e}"))),
    }
    match std::fs::read_to_string(format!("/proc/{pid}/limits")) {
        Ok(t) => env.limits = parse_limits(&t),
        Err(e) => problems.push(Problem::new(Scope::Snapshot, format!("environment: /proc/{pid}/limits: {e}"))),
    }
    (env, problems)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_lines() {
        let m = |s: u64, e: u64, p: &str, o: u64, path: &str| {
            Some(Mapping { start: s, end: e, perms: p.into(), offset: o, path: path.into() })
        };
        let cases: &[(&str, Option<Mapping>)] = &[
            (
                "55d0c8a00000-55d0c8a02000 r--p 00000000 08:01 1312                       /usr/bin/cat",
                m(0x55d0c8a00000, 0x55d0c8a02000, "r--p", 0, "/usr/bin/cat"),
            ),
            (
                "7ffd1a7e9000-7ffd1a80a000 rw-p 00000000 00:00 0                          [stack]",
                m(0x7ffd1a7e9000, 0x7ffd1a80a000, "rw-p", 0, "[stack]"),
            ),
            ("7f0000000000-7f0000001000 ---p 00000000 00:00 0 ", m(0x7f0000000000, 0x7f0000001000, "---p", 0, "")),
            ("7f0000000000-7f0000001000 rw-s 00000000 00:00 0", m(0x7f0000000000, 0x7f0000001000, "rw-s", 0, "")),
            (
                "7f0000000000-7f0000002000 r-xp 0001a000 fd:00 42   /tmp/my lib (deleted)",
                m(0x7f0000000000, 0x7f0000002000, "r-xp", 0x1a000, "/tmp/my lib (deleted)"),
            ),
            (
                "ffffffffff600000-ffffffffff601000 --xp 00000000 00:00 0                  [vsyscall]",
                m(0xffffffffff600000, 0xffffffffff601000, "--xp", 0, "[vsyscall]"),
            ),
            ("", None),
            ("garbage", None),
            ("1000-0fff r--p 00000000 00:00 0", None),
            ("1000-2000 r--p zz 00:00 0", None),
            ("1000-2000 r-p 00000000 00:00 0", None),
            ("1000-2000 r--p 00000000 0000 0", None),
            ("1000 r--p 00000000 00:00 0", None),
        ];
        for (line, want) in cases {
            assert_eq!(&parse_maps_line(line), want, "line {line:?}");
        }
    }

    #[test]
    fn maps_file_sorted_with_bad_lines() {
        let (maps, bad) = parse_maps("2000-3000 r--p 0 00:00 0 b\nnope\n1000-2000 r--p 0 00:00 0 a\n");
        assert_eq!(maps.iter().map(|m| m.path.as_str()).collect::<Vec<_>>(), ["a", "b"]);
        assert_eq!(bad, ["nope"]);
    }

    #[test]
    fn auxv_pairs() {
        let mut b = Vec::new();
        for v in [33u64, 0x7fff0000, 9, 0x401000, 0, 0, 7, 7] {
            b.extend_from_slice(&v.to_le_bytes());
        }
        assert_eq!(parse_auxv(&b), [(33, 0x7fff0000), (9, 0x401000)]);
        assert_eq!(parse_auxv(&b[..20]), [(33, 0x7fff0000)]);
        assert_eq!(parse_auxv(&[]), []);
    }

    #[test]
    fn status_limits_meminfo_loadavg() {
        let status =
            "Name:\tcat\nUmask:\t0022\nState:\tS (sleeping)\nUid:\t1000\t1000\t1000\t1000\nVmRSS:\t    1024 kB\n";
        assert_eq!(
            parse_status(status, STATUS_KEYS),
            [
                ("Name".into(), "cat".into()),
                ("State".into(), "S (sleeping)".into()),
                ("Uid".into(), "1000 1000 1000 1000".into()),
                ("VmRSS".into(), "1024 kB".into())
            ]
        );

        let limits = "Limit                     Soft Limit           Hard Limit           Units     \n\
                      Max cpu time              unlimited            unlimited            seconds   \n\
                      Max core file size        0                    unlimited            bytes     \n\
                      Max nice priority         0                    0                    \n";
        let got = parse_limits(limits);
        let l = |n: &str, s: &str, h: &str, u: &str| Limit {
            name: n.into(),
            soft: s.into(),
            hard: h.into(),
            units: u.into(),
        };
        assert_eq!(
            got,
            [
                l("Max cpu time", "unlimited", "unlimited", "seconds"),
                l("Max core file size", "0", "unlimited", "bytes"),
                l("Max nice priority", "0", "0", ""),
            ]
        );
        assert_eq!(parse_limits(""), []);
        assert_eq!(parse_limits("no header here\nMax x 1 2 3\n"), []);

        assert_eq!(
            parse_meminfo("MemTotal:       16318236 kB\nHugePages_Total:       0\nbad line\n"),
            [("MemTotal".into(), 16318236), ("HugePages_Total".into(), 0)]
        );
        assert_eq!(parse_loadavg("0.52 0.58 0.59 1/467 12345\n"), Some([0.52, 0.58, 0.59]));
        assert_eq!(parse_loadavg("0.52 x"), None);
        assert_eq!(parse_uptime("12345.67 23456.78\n"), Some(12345.67));
    }

    #[test]
    fn task_stat() {
        let cases: &[(&str, Option<(&str, &str)>)] = &[
            ("1234 (cat) S 1 2 3", Some(("cat", "S"))),
            ("1234 (a) b) R 1 2 3", Some(("a) b", "R"))),
            ("1234 (with space) t 1", Some(("with space", "t"))),
            ("1234 cat S", None),
            ("1234 (cat)", None),
            (")(", None),
        ];
        for (text, want) in cases {
            let want = want.map(|(a, b)| (a.to_string(), b.to_string()));
            assert_eq!(parse_task_stat(text), want, "{text:?}");
        }
    }

    #[test]
    fn stat_flags() {
        assert_eq!(parse_stat_flags("2 (kthreadd) S 0 0 0 0 -1 2129984 0 0"), Some(2129984));
        assert_eq!(parse_stat_flags("9 (a) b) S 1 9 9 0 -1 4194560 1"), Some(4194560));
        assert_eq!(parse_stat_flags("9 (x) S 1"), None);
    }

    #[test]
    fn cmdline() {
        assert_eq!(parse_cmdline(b"cat\0-n\0a b\0"), ["cat", "-n", "a b"]);
        assert_eq!(parse_cmdline(b""), Vec::<String>::new());
        assert_eq!(parse_cmdline(b"x"), ["x"]);
    }

    #[test]
    fn own_process_environment() {
        let pid = std::process::id() as i32;
        let (env, problems) = process_environment(pid);
        assert!(problems.is_empty(), "{problems:?}");
        assert!(!env.uname.sysname.is_empty());
        assert!(env.cpu_count > 0);
        assert!(env.status.iter().any(|(k, _)| k == "VmRSS"));
        assert!(env.limits.iter().any(|l| l.name == "Max stack size"));
        let (p, problems) = process_info(pid);
        assert!(problems.is_empty(), "{problems:?}");
        assert!(!p.exe.is_empty() && !p.cmdline.is_empty() && p.ppid > 0);
    }
}
