//! The kernel's pipe handler (`bt coresnap ingest`): metadata first, then the core
//! streamed from stdin into the archive with a fixed buffer; never fails a crash.
//!
//! Folklore — how the kernel runs us (fs/coredump.c):
//! - The handler runs as root, in the initial namespaces (not the crashed process's
//!   container), with the core on stdin and no terminal; stderr goes nowhere, so we log
//!   to ARCHIVE/coresnap.log.
//! - It runs with RLIMIT_CORE = 1: the kernel's signal that a crash of the handler itself
//!   must not be piped to the handler again (no recursion). We also refuse to keep a core
//!   of `bt coresnap` itself, or of a tracer the daemon started (BT_CORESNAP_TRACER in its
//!   environment), recording metadata only.
//! - `core_pipe_limit` = 0: the kernel does not wait for us, the crashed process is
//!   reaped and /proc/PID may vanish before we read it. > 0: the kernel keeps the zombie
//!   until we exit, and at most that many handlers run at once (more crashes get no
//!   core at all, and the kernel logs it). `install` sets it.
//! - Arguments come from splitting the expanded pattern on spaces: an executable path
//!   with spaces arrives as several words, which is why `%E` (the path with `/` as `!`)
//!   is last and we join the remaining words.
//! - RLIMIT_CORE of the crashed process is not enforced for pipes: a process with
//!   `ulimit -c 0` still reaches us (except the 0 limit when the pattern has no pipe).

use std::fs;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use super::config::{Config, Quota};
use super::spool::{self, CoreState, Meta, Spool};

/// The words after `ingest`: `%P %i %u %g %s %t %h %E`.
#[derive(Debug, Clone, Default)]
pub struct CrashArgs {
    pub pid: i32,
    pub tid: i32,
    pub uid: u32,
    pub gid: u32,
    pub signal: i32,
    pub time: u64,
    pub hostname: String,
    /// %E with `!` turned back into `/`.
    pub exe: String,
}

impl CrashArgs {
    /// Lenient: a bad number becomes 0 and a problem; a crash is never refused.
    pub fn parse(words: &[String], problems: &mut Vec<String>) -> CrashArgs {
        let mut num = |i: usize, name: &str| -> i64 {
            match words.get(i).map(|w| w.parse::<i64>()) {
                Some(Ok(n)) => n,
                Some(Err(_)) => {
                    problems.push(format!("argument {name}: {:?} is not a number", words[i]));
                    0
                }
                None => {
                    problems.push(format!("argument {name} missing"));
                    0
                }
            }
        };
        let pid = num(0, "pid (%P)") as i32;
        let tid = num(1, "tid (%i)") as i32;
        let uid = num(2, "uid (%u)") as u32;
        let gid = num(3, "gid (%g)") as u32;
        let signal = num(4, "signal (%s)") as i32;
        let time = num(5, "time (%t)") as u64;
        let hostname = words.get(6).cloned().unwrap_or_default();
        let exe = if words.len() > 7 { words[7..].join(" ").replace('!', "/") } else { String::new() };
        CrashArgs { pid, tid, uid, gid, signal, time, hostname, exe }
    }
}

/// The outcome, for the caller's log line and the tests.
#[derive(Debug)]
pub struct Ingested {
    pub uuid: String,
    pub dir: PathBuf,
    pub core: CoreState,
    pub bytes: u64,
}

const BUF: usize = 256 << 10;
/// How often (bytes) the free space is checked again while streaming.
const QUOTA_EVERY: u64 = 256 << 20;

/// Handles one crash. Errors only when even the metadata could not be written.
pub fn ingest(
    config: &Config,
    args: &CrashArgs,
    mut problems: Vec<String>,
    stdin: &mut dyn Read,
) -> Result<Ingested, spool::SpoolError> {
    let started = spool::now_ms();
    let sp = Spool::new(&config.archive);
    sp.create_dirs()?;
    let uuid = spool::new_uuid();
    // Built in a hidden directory and renamed into pending/ once meta.json is durable,
    // so the daemon never sees a crash without its metadata.
    let hidden = sp.stage_dir(spool::Stage::Pending).join(format!(".{uuid}"));
    fs::create_dir(&hidden).map_err(spool::io("creating", &hidden))?;

    let mut meta = meta_from_args(args, &uuid, started);
    let recursion = read_proc(args.pid, &hidden, &mut meta, &mut problems);
    meta.problems = problems;
    spool::write_meta(&hidden, &meta)?;
    let dir = sp.stage_dir(spool::Stage::Pending).join(&uuid);
    fs::rename(&hidden, &dir).map_err(spool::io("moving", &hidden))?;

    // From here on the crash is recorded; what follows only decides about its core.
    let drop_reason = if let Some(r) = recursion {
        Some(r)
    } else if let Some(r) = rate_limited(&sp, config) {
        Some(r)
    } else {
        below_quota(&config.archive, config.dump_quota)
    };
    let (state, bytes) = match drop_reason {
        Some(r) => (CoreState::Dropped(r), 0),
        None => stream_core(&dir, config, stdin),
    };
    meta.core = state.clone();
    meta.core_bytes = bytes;
    meta.handler_done = true;
    spool::write_meta(&dir, &meta)?;
    log(
        &config.archive,
        &format!(
            "crash {uuid} archived: pid {} {} signal {}, core {} ({} bytes) in {} ms",
            args.pid,
            meta.exe,
            args.signal,
            describe(&state),
            bytes,
            spool::now_ms().saturating_sub(started)
        ),
    );
    Ok(Ingested { uuid, dir, core: state, bytes })
}

/// What the kernel's arguments alone say about a crash.
fn meta_from_args(args: &CrashArgs, uuid: &str, archived_ms: u64) -> Meta {
    Meta {
        uuid: uuid.to_string(),
        time: args.time,
        archived_ms,
        pid: args.pid,
        tid: args.tid,
        uid: args.uid,
        gid: args.gid,
        signal: args.signal,
        hostname: args.hostname.clone(),
        exe: args.exe.clone(),
        handler_pid: std::process::id(),
        ..Default::default()
    }
}

/// The last resort when [`ingest`] failed or panicked: metadata from the arguments
/// alone, no /proc, no core, so the crash is still counted.
pub fn record_minimal(config: &Config, args: &CrashArgs, why: &str) -> Result<PathBuf, spool::SpoolError> {
    let sp = Spool::new(&config.archive);
    sp.create_dirs()?;
    let uuid = spool::new_uuid();
    let hidden = sp.stage_dir(spool::Stage::Pending).join(format!(".{uuid}"));
    fs::create_dir(&hidden).map_err(spool::io("creating", &hidden))?;
    let meta = Meta {
        core: CoreState::Dropped(format!("the handler failed: {why}")),
        handler_done: true,
        ..meta_from_args(args, &uuid, spool::now_ms())
    };
    spool::write_meta(&hidden, &meta)?;
    let dir = sp.stage_dir(spool::Stage::Pending).join(&uuid);
    fs::rename(&hidden, &dir).map_err(spool::io("moving", &hidden))?;
    Ok(dir)
}

pub fn describe(s: &CoreState) -> String {
    match s {
        CoreState::Writing => "being written".into(),
        CoreState::Complete => "kept".into(),
        CoreState::Dropped(r) => format!("dropped ({r})"),
        CoreState::Truncated(r) => format!("truncated ({r})"),
    }
}

/// Appends one line to ARCHIVE/coresnap.log (best effort: the kernel gave us no stderr).
pub fn log(archive: &Path, line: &str) {
    let p = archive.join("coresnap.log");
    if let Ok(mut f) = fs::OpenOptions::new().create(true).append(true).open(&p) {
        let _ = writeln!(f, "{} coresnap[{}]: {line}", spool::now_ms() / 1000, std::process::id());
    }
}

/// Reads /proc/PID while the kernel holds the zombie; copies maps, status and limits
/// into the crash directory. Returns a reason to keep no core when the crashed process
/// is coresnap itself or one of its tracers.
fn read_proc(pid: i32, dir: &Path, meta: &mut Meta, problems: &mut Vec<String>) -> Option<String> {
    if pid <= 0 {
        return None;
    }
    let proc = PathBuf::from(format!("/proc/{pid}"));
    match fs::read_link(proc.join("exe")) {
        Ok(p) => meta.exe = p.to_string_lossy().into_owned(),
        Err(e) => problems.push(format!("reading {}/exe: {e}", proc.display())),
    }
    match fs::read(proc.join("cmdline")) {
        Ok(b) => {
            meta.cmdline = b
                .split(|c| *c == 0)
                .filter(|s| !s.is_empty())
                .map(|s| String::from_utf8_lossy(s).into_owned())
                .collect()
        }
        Err(e) => problems.push(format!("reading {}/cmdline: {e}", proc.display())),
    }
    if let Ok(c) = fs::read_to_string(proc.join("comm")) {
        meta.comm = c.trim_end().to_string();
    }
    for f in ["maps", "status", "limits"] {
        let src = proc.join(f);
        // Bounded: a process with a million mappings does not make us allocate gigabytes.
        match fs::File::open(&src).and_then(|h| {
            let mut v = Vec::new();
            h.take(16 << 20).read_to_end(&mut v).map(|_| v)
        }) {
            Ok(b) => {
                if let Err(e) = fs::write(dir.join(f), b) {
                    problems.push(format!("saving {f}: {e}"));
                }
            }
            Err(e) => problems.push(format!("reading {}: {e}", src.display())),
        }
    }
    let mut tracer = false;
    if let Ok(env) = fs::read(proc.join("environ")) {
        for var in env.split(|c| *c == 0) {
            if let Some(v) = var.strip_prefix(b"BACKTRACE_DEFAULTS=") {
                meta.attributes.extend(crate::snapshot::parse_defaults(&String::from_utf8_lossy(v)));
            } else if var.starts_with(b"BT_CORESNAP_TRACER=") {
                tracer = true;
            }
        }
    }
    if tracer {
        return Some("the crashed process is a coresnap tracer (no recursion)".into());
    }
    let same_exe = match (fs::metadata(proc.join("exe")), fs::metadata("/proc/self/exe")) {
        (Ok(a), Ok(b)) => {
            use std::os::unix::fs::MetadataExt;
            a.dev() == b.dev() && a.ino() == b.ino()
        }
        _ => false,
    };
    if same_exe && meta.cmdline.iter().any(|a| a == "coresnap" || a.ends_with("coresnapd")) {
        return Some("the crashed process is coresnap itself (no recursion)".into());
    }
    None
}

/// Counts crashes per minute in ARCHIVE/.rate under an flock; Some when over the limit.
fn rate_limited(sp: &Spool, config: &Config) -> Option<String> {
    let max = config.rate_max_per_minute?;
    let p = sp.root.join(".rate");
    let f = fs::OpenOptions::new().create(true).truncate(false).read(true).write(true).open(&p).ok()?;
    // Held until `f` is dropped at the end of this function.
    let mut f = nix::fcntl::Flock::lock(f, nix::fcntl::FlockArg::LockExclusive).ok()?;
    let mut text = String::new();
    let _ = f.read_to_string(&mut text);
    let minute = spool::now_ms() / 60_000;
    let mut it = text.split_whitespace().map(|w| w.parse::<u64>().unwrap_or(0));
    let (m, n) = (it.next().unwrap_or(0), it.next().unwrap_or(0));
    let n = if m == minute { n + 1 } else { 1 };
    let _ = f.set_len(0);
    let _ = f.seek(SeekFrom::Start(0));
    let _ = write!(f, "{minute} {n}");
    (n > max as u64).then(|| format!("rate limit: more than {max} crashes this minute"))
}

/// (free, total) bytes of the file system holding `path`.
pub fn disk_space(path: &Path) -> Option<(u64, u64)> {
    let st = nix::sys::statvfs::statvfs(path).ok()?;
    let bs = st.fragment_size();
    Some((st.blocks_available().saturating_mul(bs), st.blocks().saturating_mul(bs)))
}

fn below_quota(archive: &Path, q: Quota) -> Option<String> {
    let (free, total) = disk_space(archive)?;
    let keep = match q {
        Quota::Percent(p) => (total as f64 * p / 100.0) as u64,
        Quota::Bytes(b) => b,
    };
    (free < keep).then(|| format!("disk free {} MiB below dump.quota ({} MiB)", free >> 20, keep >> 20))
}

/// Streams stdin into dir/core through one fixed buffer. Runs of zero pages become
/// holes (cores are full of them). Over core.max_size or under the quota, the partial
/// file is removed and the rest of the stream is not read (the kernel gets EPIPE).
fn stream_core(dir: &Path, config: &Config, stdin: &mut dyn Read) -> (CoreState, u64) {
    let partial = dir.join("core.partial");
    let mut f = match fs::File::create(&partial) {
        Ok(f) => f,
        Err(e) => return (CoreState::Dropped(format!("creating {}: {e}", partial.display())), 0),
    };
    let mut buf = vec![0u8; BUF];
    let mut total: u64 = 0;
    let mut next_quota_check = QUOTA_EVERY;
    let mut hole = false;
    let fail = |reason: String, total: u64| -> (CoreState, u64) {
        let _ = fs::remove_file(&partial);
        (CoreState::Dropped(reason), total)
    };
    loop {
        // Fill the buffer as far as the pipe allows, so zero detection works on whole pages.
        let n = match read_full(stdin, &mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) => {
                let _ = f.set_len(total);
                if fs::rename(&partial, dir.join("core")).is_err() {
                    return fail(format!("reading the core: {e}"), total);
                }
                return (CoreState::Truncated(format!("reading the core after {total} bytes: {e}")), total);
            }
        };
        total += n as u64;
        if let Some(max) = config.core_max_size
            && total > max
        {
            return fail(format!("core larger than core.max_size ({max} bytes)"), total);
        }
        if total >= next_quota_check {
            next_quota_check += QUOTA_EVERY;
            if let Some(r) = below_quota(&config.archive, config.dump_quota) {
                return fail(format!("{r}, after {total} bytes"), total);
            }
        }
        let chunk = &buf[..n];
        let written = if chunk.iter().all(|b| *b == 0) {
            hole = true;
            f.seek(SeekFrom::Current(n as i64)).map(|_| ())
        } else {
            f.write_all(chunk)
        };
        if let Err(e) = written {
            return fail(format!("writing the core: {e}"), total);
        }
    }
    if hole && let Err(e) = f.set_len(total) {
        return fail(format!("writing the core: {e}"), total);
    }
    drop(f);
    match fs::rename(&partial, dir.join("core")) {
        Ok(()) => (CoreState::Complete, total),
        Err(e) => fail(format!("renaming the core: {e}"), total),
    }
}

fn read_full(r: &mut dyn Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) if n > 0 => {
                // Report what we have; the error returns on the next call.
                let _ = e;
                break;
            }
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn args_with_spaces_in_the_path() {
        let w: Vec<String> =
            "42 43 1000 1000 11 1700000000 host !opt!my app!bin!x".split(' ').map(String::from).collect();
        let mut p = vec![];
        let a = CrashArgs::parse(&w, &mut p);
        assert_eq!((a.pid, a.tid, a.signal, a.time), (42, 43, 11, 1_700_000_000));
        assert_eq!(a.exe, "/opt/my app/bin/x");
        assert!(p.is_empty());
        let a = CrashArgs::parse(&["x".into()], &mut p);
        assert_eq!(a.pid, 0);
        assert!(!p.is_empty());
    }

    #[test]
    fn streams_and_drops() {
        let root = std::env::temp_dir().join(format!("bt-ingest-unit-{}", std::process::id()));
        let _ = fs::remove_dir_all(&root);
        let mut c = Config { archive: root.clone(), dump_quota: Quota::Bytes(0), ..Default::default() };
        let args = CrashArgs { pid: 0, exe: "/x/y".into(), ..Default::default() };
        let mut data = vec![0u8; 3 * BUF + 17];
        data[5] = 1;
        data[3 * BUF + 3] = 7;
        let r = ingest(&c, &args, vec![], &mut &data[..]).unwrap();
        assert_eq!(r.core, CoreState::Complete);
        assert_eq!(fs::read(r.dir.join("core")).unwrap(), data);
        c.core_max_size = Some(100);
        let r = ingest(&c, &args, vec![], &mut &data[..]).unwrap();
        assert!(matches!(r.core, CoreState::Dropped(_)));
        assert!(!r.dir.join("core").exists() && !r.dir.join("core.partial").exists());
        let m = spool::read_meta(&r.dir).unwrap();
        assert!(m.handler_done);
        let m = spool::read_meta(&record_minimal(&c, &args, "test").unwrap()).unwrap();
        assert!(m.handler_done && matches!(m.core, CoreState::Dropped(_)));
        let _ = fs::remove_dir_all(&root);
    }
}
