//! The minidump queue: an upload is answered as soon as its dump is durable on disk
//! (`DATA/minidumps/queue/ID/`: `dump.dmp`, the attachments, `meta.json`, written
//! to a temporary directory, synced, then renamed), and one worker processes the
//! queue in order: the tracer (given by the command), then the store. An entry is
//! removed only after its object is stored; a server killed in between processes
//! it again when it starts, and finds it stored (the object's `bt.upload` is the
//! entry's id), so each upload becomes one object. A dump the processor refuses moves to
//! `DATA/minidumps/failed/ID/` with the reason, never lost.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use serde_json::{Value as Json, json};

use super::{MinidumpProcessor, log_line};
use crate::store::{Format, Store, Submission, format_object_id, now};

/// Crashpad's and Breakpad's form fields, as Backtrace maps them.
const MINIDUMP_FIELDS: &[(&str, &str)] = &[("prod", "application"), ("product", "application"), ("ver", "version")];

/// One upload waiting to be processed.
pub struct Entry {
    pub project: String,
    pub attributes: Vec<(String, String)>,
    pub attachments: Vec<(String, Vec<u8>)>,
    pub dump: Vec<u8>,
}

pub struct Queue {
    dir: PathBuf,
    wake: (Mutex<bool>, Condvar),
}

fn io_err(p: &Path, e: std::io::Error) -> std::io::Error {
    std::io::Error::new(e.kind(), format!("{}: {e}", p.display()))
}

fn write_synced(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut f = std::fs::File::create(path).map_err(|e| io_err(path, e))?;
    f.write_all(bytes).map_err(|e| io_err(path, e))?;
    f.sync_all().map_err(|e| io_err(path, e))
}

fn sync_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::File::open(dir).and_then(|d| d.sync_all()).map_err(|e| io_err(dir, e))
}

/// A cheap check that `b` is a minidump worth queueing: the header, a stream
/// directory inside the file, every stream inside the file, a thread list and the
/// system information. The processor reads it fully later.
pub fn plausible_minidump(b: &[u8]) -> Result<(), String> {
    let u32_at = |o: usize| b.get(o..o + 4).map(|x| u32::from_le_bytes([x[0], x[1], x[2], x[3]]));
    if !b.starts_with(b"MDMP") {
        return Err("not a minidump (no MDMP header)".into());
    }
    let (Some(version), Some(n), Some(dir)) = (u32_at(4), u32_at(8), u32_at(12)) else {
        return Err("minidump header truncated".into());
    };
    if version & 0xffff != 0xa793 {
        return Err(format!("minidump version {:#x} unknown", version & 0xffff));
    }
    if n == 0 || n > 4096 {
        return Err(format!("minidump with {n} streams"));
    }
    let (n, dir) = (n as usize, dir as usize);
    if dir.checked_add(12 * n).is_none_or(|end| end > b.len()) {
        return Err("minidump stream directory outside the file (truncated?)".into());
    }
    let (mut threads, mut system) = (false, false);
    for i in 0..n {
        let e = dir + 12 * i;
        let (Some(ty), Some(size), Some(rva)) = (u32_at(e), u32_at(e + 4), u32_at(e + 8)) else {
            return Err("minidump stream directory truncated".into());
        };
        if (rva as usize).checked_add(size as usize).is_none_or(|end| end > b.len()) {
            return Err(format!("minidump stream {i} (type {ty}) outside the file (truncated?)"));
        }
        threads |= ty == 3;
        system |= ty == 7;
    }
    if !threads || !system {
        return Err("minidump without a thread list or system information".into());
    }
    Ok(())
}

impl Queue {
    /// The queue in `DATA/minidumps`; entries left by a previous run are processed.
    pub fn open(data: &Path) -> std::io::Result<Arc<Queue>> {
        let dir = data.join("minidumps");
        for d in ["queue", "failed", "tmp"] {
            std::fs::create_dir_all(dir.join(d)).map_err(|e| io_err(&dir.join(d), e))?;
        }
        // Half-written entries of a previous run were never acknowledged.
        if let Ok(rd) = std::fs::read_dir(dir.join("tmp")) {
            for e in rd.filter_map(Result::ok) {
                let _ = std::fs::remove_dir_all(e.path());
            }
        }
        Ok(Arc::new(Queue { dir, wake: (Mutex::new(false), Condvar::new()) }))
    }

    /// Writes an entry durably; returns its id. The upload is acknowledged after this.
    pub fn push(&self, e: &Entry) -> std::io::Result<String> {
        static SEQ: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let seq = SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let nanos =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
        let id = format!("{nanos:024}-{}-{seq}", std::process::id());
        let tmp = self.dir.join("tmp").join(&id);
        std::fs::create_dir_all(&tmp).map_err(|e| io_err(&tmp, e))?;
        write_synced(&tmp.join("dump.dmp"), &e.dump)?;
        for (i, (_, bytes)) in e.attachments.iter().enumerate() {
            write_synced(&tmp.join(format!("attachment-{i}")), bytes)?;
        }
        let meta = json!({
            "project": e.project,
            "attributes": e.attributes,
            "attachments": e.attachments.iter().map(|(n, _)| n).collect::<Vec<_>>(),
        });
        write_synced(&tmp.join("meta.json"), meta.to_string().as_bytes())?;
        sync_dir(&tmp)?;
        let dst = self.dir.join("queue").join(&id);
        std::fs::rename(&tmp, &dst).map_err(|e| io_err(&dst, e))?;
        sync_dir(&self.dir.join("queue"))?;
        if let Ok(mut w) = self.wake.0.lock() {
            *w = true;
            self.wake.1.notify_one();
        }
        Ok(id)
    }

    /// How many uploads wait.
    pub fn len(&self) -> usize {
        std::fs::read_dir(self.dir.join("queue")).map(|rd| rd.count()).unwrap_or(0)
    }

    fn read(dir: &Path) -> std::io::Result<Entry> {
        let meta: Json = serde_json::from_slice(&std::fs::read(dir.join("meta.json")).map_err(|e| io_err(dir, e))?)
            .map_err(|e| std::io::Error::other(format!("{}: {e}", dir.display())))?;
        let attributes: Vec<(String, String)> = serde_json::from_value(meta["attributes"].clone()).unwrap_or_default();
        let names: Vec<String> = serde_json::from_value(meta["attachments"].clone()).unwrap_or_default();
        let mut attachments = Vec::with_capacity(names.len());
        for (i, n) in names.into_iter().enumerate() {
            let p = dir.join(format!("attachment-{i}"));
            attachments.push((n, std::fs::read(&p).map_err(|e| io_err(&p, e))?));
        }
        let dump = std::fs::read(dir.join("dump.dmp")).map_err(|e| io_err(dir, e))?;
        Ok(Entry { project: meta["project"].as_str().unwrap_or("").to_string(), attributes, attachments, dump })
    }

    /// The worker: processes entries in order, forever.
    pub fn run(self: Arc<Queue>, store: Arc<Store>, process: MinidumpProcessor) {
        loop {
            let mut next: Vec<PathBuf> = std::fs::read_dir(self.dir.join("queue"))
                .map(|rd| rd.filter_map(Result::ok).map(|e| e.path()).collect())
                .unwrap_or_default();
            next.sort();
            if next.is_empty() {
                if let Ok(w) = self.wake.0.lock() {
                    let (mut w, _) = self
                        .wake
                        .1
                        .wait_timeout_while(w, Duration::from_secs(1), |woken| !*woken)
                        .unwrap_or_else(|e| e.into_inner());
                    *w = false;
                }
                continue;
            }
            for dir in next {
                self.process_one(&dir, &store, &process);
            }
        }
    }

    fn process_one(&self, dir: &Path, store: &Store, process: &MinidumpProcessor) {
        let id = dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let fail = |why: String| {
            let to = self.dir.join("failed").join(&id);
            let _ = std::fs::write(dir.join("reason.txt"), &why);
            let _ = std::fs::rename(dir, &to);
            log_line(json!({"ts": now(), "minidump": {"queued": id, "error": why, "kept": to.display().to_string()}}));
        };
        let entry = match Queue::read(dir) {
            Ok(e) => e,
            Err(e) => return fail(e.to_string()),
        };
        // Stored already by a run killed before it removed the entry: once only.
        let q = crate::store::query::Query::from_json(
            &json!({"filter": [{"bt.upload": [["equal", id]]}], "select": ["bt.upload"]}),
        );
        if let Ok(q) = q
            && store.select_ids(&entry.project, &q).is_ok_and(|ids| !ids.is_empty())
        {
            let _ = std::fs::remove_dir_all(dir);
            return;
        }
        let snapshot = match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| process(&entry.dump))) {
            Ok(Ok(s)) => s,
            Ok(Err(why)) => return fail(why),
            Err(_) => return fail("processing panicked".into()),
        };
        let mut attributes = entry.attributes;
        for (from, to) in MINIDUMP_FIELDS {
            if let Some(i) = attributes.iter().position(|(k, _)| k == from) {
                let (_, v) = attributes.remove(i);
                if !attributes.iter().any(|(k, _)| k == to) {
                    attributes.push((to.to_string(), v));
                }
            }
        }
        attributes.push(("bt.source".into(), "minidump".into()));
        attributes.push(("bt.upload".into(), id.clone()));
        let mut attachments = entry.attachments;
        attachments.push(("upload_file_minidump.dmp".into(), entry.dump));
        let sub =
            Submission { project: entry.project, format: Format::Snapshot, body: snapshot, attributes, attachments };
        match store.submit(sub) {
            Ok(ack) => {
                let _ = std::fs::remove_dir_all(dir);
                log_line(
                    json!({"ts": now(), "minidump": {"queued": id, "object": format_object_id(ack.rxid), "fingerprint": ack.fingerprint}}),
                );
            }
            // The store refused it for good (a deleted project, a bad attribute): kept aside.
            Err(e @ (crate::store::StoreError::BadInput(_) | crate::store::StoreError::NoProject(_))) => {
                fail(e.to_string())
            }
            // Anything else (closing, I/O): left in the queue, tried again.
            Err(e) => {
                log_line(json!({"ts": now(), "minidump": {"queued": id, "retry": e.to_string()}}));
                std::thread::sleep(Duration::from_secs(1));
            }
        }
    }
}
