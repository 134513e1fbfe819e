//! The archive (spool): one directory per crash, moved between stage directories by
//! `rename(2)` so a crash is always in exactly one stage, also across restarts.
//!
//! ```text
//! ARCHIVE/pending/UUID/meta.json   metadata, written FIRST by the handler (always)
//!                      core        the core (absent when dropped; core.partial while streaming)
//!                      maps status limits   copies of /proc/PID/* taken before reaping
//! ARCHIVE/sending/UUID/snapshot.bt the tracer's snapshot, waiting for the server
//!                      report.json  or, when the core was dropped, a JSON report of the metadata
//! ARCHIVE/done/UUID/sent.json      the server's answer
//! ARCHIVE/failed/UUID/error        why (the tracer's error, the server's refusal)
//! ```

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

pub const STAGES: [Stage; 4] = [Stage::Pending, Stage::Sending, Stage::Done, Stage::Failed];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    Pending,
    Sending,
    Done,
    Failed,
}

impl Stage {
    pub fn dir(self) -> &'static str {
        match self {
            Stage::Pending => "pending",
            Stage::Sending => "sending",
            Stage::Done => "done",
            Stage::Failed => "failed",
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SpoolError {
    #[error("{op} {path}: {source}")]
    Io { op: &'static str, path: PathBuf, source: std::io::Error },
    #[error("metadata {path}: {msg}")]
    Meta { path: PathBuf, msg: String },
    #[error("no crash matches {0:?}")]
    NotFound(String),
    #[error("{prefix:?} is ambiguous: {n} crashes match")]
    Ambiguous { prefix: String, n: usize },
}

pub fn io<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> SpoolError + 'a {
    move |source| SpoolError::Io { op, path: path.to_path_buf(), source }
}

/// What became of the core.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
#[serde(rename_all = "snake_case", tag = "state", content = "reason")]
pub enum CoreState {
    /// The handler is still streaming it (or died doing so: see `handler_pid`).
    #[default]
    Writing,
    Complete,
    /// Kept no core: quota, size cap, rate limit, recursion.
    Dropped(String),
    /// The stream ended early (an I/O error); the core file holds what arrived.
    Truncated(String),
}

/// Everything the handler learns about a crash. Written first, completed last.
#[derive(Debug, Clone, Serialize, Deserialize, Default)]
pub struct Meta {
    pub uuid: String,
    /// Crash time (the kernel's %t), seconds since the epoch.
    pub time: u64,
    /// When the handler started, milliseconds since the epoch (latency figures).
    pub archived_ms: u64,
    pub pid: i32,
    pub tid: i32,
    pub uid: u32,
    pub gid: u32,
    pub signal: i32,
    pub hostname: String,
    /// The executable: /proc/PID/exe, else the kernel's %E.
    pub exe: String,
    pub comm: String,
    pub cmdline: Vec<String>,
    /// Attributes gathered by the handler (BACKTRACE_DEFAULTS of the crashed process …).
    pub attributes: Vec<(String, String)>,
    pub core: CoreState,
    pub core_bytes: u64,
    pub handler_pid: u32,
    /// True once the handler has finished with this crash.
    pub handler_done: bool,
    /// Problems met while collecting (unreadable /proc files …).
    pub problems: Vec<String>,
}

impl Meta {
    pub fn exe_name(&self) -> &str {
        let base = self.exe.rsplit('/').next().unwrap_or(&self.exe);
        base.strip_suffix(" (deleted)").unwrap_or(base)
    }
}

/// The archive root.
#[derive(Debug, Clone)]
pub struct Spool {
    pub root: PathBuf,
}

/// One crash found in the archive.
#[derive(Debug, Clone)]
pub struct Entry {
    pub uuid: String,
    pub stage: Stage,
    pub dir: PathBuf,
}

impl Entry {
    pub fn has(&self, file: &str) -> bool {
        self.dir.join(file).exists()
    }
    pub fn meta(&self) -> Result<Meta, SpoolError> {
        read_meta(&self.dir)
    }
}

impl Spool {
    pub fn new(root: &Path) -> Spool {
        Spool { root: root.to_path_buf() }
    }

    pub fn create_dirs(&self) -> Result<(), SpoolError> {
        for s in STAGES {
            let d = self.root.join(s.dir());
            fs::create_dir_all(&d).map_err(io("creating", &d))?;
        }
        Ok(())
    }

    pub fn stage_dir(&self, s: Stage) -> PathBuf {
        self.root.join(s.dir())
    }

    /// The crashes of one stage, oldest first (by uuid directory mtime).
    pub fn entries(&self, stage: Stage) -> Result<Vec<Entry>, SpoolError> {
        let d = self.stage_dir(stage);
        let rd = match fs::read_dir(&d) {
            Ok(rd) => rd,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(vec![]),
            Err(e) => return Err(SpoolError::Io { op: "listing", path: d, source: e }),
        };
        let mut v: Vec<(std::time::SystemTime, Entry)> = vec![];
        for e in rd.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if name.starts_with('.') || !e.path().is_dir() {
                continue;
            }
            let t = e.metadata().and_then(|m| m.modified()).unwrap_or(std::time::UNIX_EPOCH);
            v.push((t, Entry { uuid: name, stage, dir: e.path() }));
        }
        v.sort_by(|a, b| a.0.cmp(&b.0).then_with(|| a.1.uuid.cmp(&b.1.uuid)));
        Ok(v.into_iter().map(|(_, e)| e).collect())
    }

    pub fn all(&self) -> Result<Vec<Entry>, SpoolError> {
        let mut v = vec![];
        for s in STAGES {
            v.extend(self.entries(s)?);
        }
        Ok(v)
    }

    /// Moves a crash to another stage (one atomic rename).
    pub fn advance(&self, e: &Entry, to: Stage) -> Result<Entry, SpoolError> {
        let dest = self.stage_dir(to).join(&e.uuid);
        fs::rename(&e.dir, &dest).map_err(io("moving", &e.dir))?;
        Ok(Entry { uuid: e.uuid.clone(), stage: to, dir: dest })
    }

    /// The one crash whose uuid starts with `prefix`.
    pub fn find(&self, prefix: &str) -> Result<Entry, SpoolError> {
        let m: Vec<Entry> = self.all()?.into_iter().filter(|e| e.uuid.starts_with(prefix)).collect();
        match m.len() {
            0 => Err(SpoolError::NotFound(prefix.to_string())),
            1 => Ok(m.into_iter().next().expect("one match")),
            n => Err(SpoolError::Ambiguous { prefix: prefix.to_string(), n }),
        }
    }

    /// Re-queues a crash: back to pending/ when it has a core, else to sending/ when it
    /// has a snapshot; its error and sent marks are removed.
    pub fn retry(&self, e: &Entry) -> Result<Entry, SpoolError> {
        for f in ["error", "sent.json", "attempt"] {
            let _ = fs::remove_file(e.dir.join(f));
        }
        let to = if e.has("snapshot.bt") && !e.has("core") { Stage::Sending } else { Stage::Pending };
        if e.has("core") {
            let _ = fs::remove_file(e.dir.join("snapshot.bt"));
        }
        let to = if !e.has("core") && e.has("report.json") { Stage::Sending } else { to };
        if e.stage == to { Ok(e.clone()) } else { self.advance(e, to) }
    }
}

pub fn read_meta(dir: &Path) -> Result<Meta, SpoolError> {
    let p = dir.join("meta.json");
    let text = fs::read(&p).map_err(io("reading", &p))?;
    serde_json::from_slice(&text).map_err(|e| SpoolError::Meta { path: p, msg: e.to_string() })
}

/// Writes `data` to `dir/name` atomically (temporary file, fsync, rename).
pub fn write_atomic(dir: &Path, name: &str, data: &[u8]) -> Result<(), SpoolError> {
    let tmp = dir.join(format!(".{name}.tmp"));
    let dest = dir.join(name);
    let mut f = fs::File::create(&tmp).map_err(io("creating", &tmp))?;
    f.write_all(data).map_err(io("writing", &tmp))?;
    f.sync_all().map_err(io("syncing", &tmp))?;
    fs::rename(&tmp, &dest).map_err(io("renaming", &tmp))?;
    Ok(())
}

pub fn write_meta(dir: &Path, m: &Meta) -> Result<(), SpoolError> {
    let text = serde_json::to_vec_pretty(m)
        .map_err(|e| SpoolError::Meta { path: dir.join("meta.json"), msg: e.to_string() })?;
    write_atomic(dir, "meta.json", &text)
}

/// A random (version 4) UUID.
pub use crate::snapshot::new_uuid;

pub fn now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}
