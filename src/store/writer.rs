//! The writer thread: the only code that writes objects. It drains the job queue
//! and commits many submissions in one durable redb transaction (group commit),
//! then updates the index and acknowledges each submission — never before its
//! commit returned.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::{Mutex, MutexGuard, mpsc};

use super::catalog::{Catalog as Database, WriteTxn as WriteTransaction};

use super::index::Column;
use super::ingest::{Prepared, Value};
use super::outbox::{Delivery, Pending};
use super::overlay::{Overlay, Tables, append_history};
use super::schema::*;
use super::triage::{self, Change, TriageRecord};
use super::{Ack, SharedIndex, StoreError};

/// Most submissions committed together.
const MAX_BATCH: usize = 1024;
/// Most blob bytes committed together.
const MAX_BATCH_BYTES: usize = 64 << 20;

pub enum Job {
    Ingest(Box<Prepared>, mpsc::Sender<Result<Ack, StoreError>>),
    Delete {
        project: String,
        ids: Vec<u64>,
        reply: mpsc::Sender<Result<usize, StoreError>>,
    },
    /// A person's (or an integration's) triage change of some groups.
    Triage {
        project: String,
        fingerprints: Vec<String>,
        change: Change,
        who: String,
        reply: mpsc::Sender<Result<Vec<(String, TriageRecord)>, StoreError>>,
    },
    /// New values of some attributes of stored objects (`set`).
    SetAttrs {
        project: String,
        ids: Vec<u64>,
        values: Vec<(String, String)>,
        reply: mpsc::Sender<Result<usize, StoreError>>,
    },
    /// The sender's outcome for one notification: settled (delivered or failed) or retried.
    Delivered {
        outcome: Box<(u64, Delivery, Option<i64>)>,
        reply: mpsc::Sender<Result<(), StoreError>>,
    },
}

/// Opens a write transaction; on a shared catalog, first brings the index up to the
/// change log (other nodes' writes), so that ids and dictionaries go on from the
/// catalog's. The caller holds the position's lock until its own change is in the
/// index, and records the sequence its commit took.
fn begin<'d>(db: &'d Database, index: &SharedIndex, last: &mut u64) -> Result<WriteTransaction<'d>, StoreError> {
    let txn = db.begin_write()?;
    if db.shared() {
        super::follow::catch_up(db, txn.raw(), index, last)?;
    }
    Ok(txn)
}

fn lock_follow(follow: &Mutex<u64>) -> Result<MutexGuard<'_, u64>, StoreError> {
    follow.lock().map_err(|_| StoreError::Io("follow lock poisoned".into()))
}

pub fn run(db: Arc<Database>, index: SharedIndex, follow: Arc<Mutex<u64>>, rx: mpsc::Receiver<Job>) {
    while let Ok(first) = rx.recv() {
        let mut ingests = Vec::new();
        let mut deletes = Vec::new();
        let mut bytes = 0;
        let mut next = Some(first);
        while let Some(job) = next.take() {
            match job {
                Job::Ingest(p, reply) => {
                    bytes += p.blob.len();
                    ingests.push((p, reply));
                }
                Job::Delete { project, ids, reply } => deletes.push((project, ids, reply)),
                Job::Triage { project, fingerprints, change, who, reply } => {
                    let _ = reply.send(triage_change(&db, &index, &follow, &project, &fingerprints, &change, &who));
                }
                Job::SetAttrs { project, ids, values, reply } => {
                    let _ = reply.send(set_attrs(&db, &index, &follow, &project, &ids, &values));
                }
                Job::Delivered { outcome, reply } => {
                    let (id, delivery, retry_at) = *outcome;
                    let _ = reply.send(settle(&db, id, delivery, retry_at));
                }
            }
            if ingests.len() < MAX_BATCH && bytes < MAX_BATCH_BYTES {
                next = rx.try_recv().ok();
            }
        }
        if !ingests.is_empty() {
            ingest_batch(&db, &index, &follow, ingests);
        }
        for (project, ids, reply) in deletes {
            let _ = reply.send(delete(&db, &index, &follow, &project, &ids));
        }
    }
}

type Reply = mpsc::Sender<Result<Ack, StoreError>>;

fn ingest_batch(db: &Database, index: &SharedIndex, follow: &Mutex<u64>, jobs: Vec<(Box<Prepared>, Reply)>) {
    let mut acks: Vec<(Reply, Ack)> = Vec::with_capacity(jobs.len());
    // Every submission of a failed batch hears why, not only those written before the failure.
    let all: Vec<Reply> = jobs.iter().map(|(_, r)| r.clone()).collect();
    let mut refused = vec![false; jobs.len()];
    let result = (|| -> Result<(HashMap<String, Overlay>, MutexGuard<'_, u64>), StoreError> {
        let mut last = lock_follow(follow)?;
        let txn = begin(db, index, &mut last)?;
        let idx = index.read().map_err(|_| StoreError::Io("index lock poisoned".into()))?;
        let mut overlays: HashMap<String, Overlay> = HashMap::new();
        {
            let mut t = Tables::open(&txn)?;
            for (i, (obj, reply)) in jobs.into_iter().enumerate() {
                let Some(p) = idx.get(&obj.project) else {
                    let _ = reply.send(Err(StoreError::NoProject(obj.project.clone())));
                    refused[i] = true;
                    continue;
                };
                if !overlays.contains_key(&obj.project) {
                    overlays.insert(obj.project.clone(), Overlay::new(p, &t)?);
                }
                let ov = overlays.get_mut(&obj.project).ok_or(StoreError::Closed)?;
                let ack = ov.add(p, &mut t, &obj)?;
                acks.push((reply, ack));
            }
            for ov in overlays.values() {
                ov.finish(&mut t)?;
            }
        }
        drop(idx);
        if let Some(seq) = txn.commit()? {
            *last = seq;
        }
        Ok((overlays, last))
    })();
    match result {
        Ok((overlays, _last)) => {
            if let Ok(mut idx) = index.write() {
                for (name, ov) in overlays {
                    if let Some(p) = idx.get_mut(&name).map(Arc::make_mut) {
                        ov.apply(p);
                    }
                }
            }
            for (reply, ack) in acks {
                let _ = reply.send(Ok(ack));
            }
        }
        Err(e) => {
            log::error!("batch of {} submissions failed, none stored: {e}", all.len());
            let unavailable = matches!(e, StoreError::Unavailable(_));
            let msg = e.to_string();
            for (reply, _) in all.iter().zip(&refused).filter(|(_, r)| !**r) {
                let _ = reply.send(Err(if unavailable {
                    StoreError::Unavailable(format!("storing failed: {msg}"))
                } else {
                    StoreError::Io(format!("storing failed: {msg}"))
                }));
            }
        }
    }
}

/// Sets attributes of stored objects, in their rows and then in the index;
/// returns how many objects were changed.
fn set_attrs(
    db: &Database,
    index: &SharedIndex,
    follow: &Mutex<u64>,
    project: &str,
    ids: &[u64],
    values: &[(String, String)],
) -> Result<usize, StoreError> {
    let mut last = lock_follow(follow)?;
    let txn = begin(db, index, &mut last)?;
    let (ov, rows, cells) = {
        let idx = index.read().map_err(|_| StoreError::Io("index lock poisoned".into()))?;
        let p = idx.get(project).ok_or_else(|| StoreError::NoProject(project.to_string()))?;
        let rows: Vec<(usize, u64)> = ids.iter().filter_map(|&id| p.row_of(id).map(|r| (r, id))).collect();
        if rows.is_empty() {
            return Ok(0);
        }
        let mut cells = Vec::with_capacity(values.len());
        let ov = {
            let mut t = Tables::open(&txn)?;
            let mut ov = Overlay::new(p, &t)?;
            for (name, text) in values {
                cells.push(ov.cell(p, &mut t, name, &Value::Text(text.clone()))?);
            }
            let pid = ov.record.id;
            for &(_, id) in &rows {
                let mut row: ObjectRow = match t.objects.get((pid, id))? {
                    Some(v) => decode(v.value(), "object")?,
                    None => continue,
                };
                for &(a, v) in &cells {
                    match row.values.binary_search_by_key(&a, |x| x.0) {
                        Ok(i) => row.values[i].1 = v,
                        Err(i) => row.values.insert(i, (a, v)),
                    }
                }
                t.objects.insert((pid, id), encode(&row)?.as_slice())?;
            }
            ov.finish(&mut t)?;
            ov
        };
        (ov, rows, cells)
    };
    if let Some(seq) = txn.commit()? {
        *last = seq;
    }
    let mut idx = index.write().map_err(|_| StoreError::Io("index lock poisoned".into()))?;
    if let Some(p) = idx.get_mut(project).map(Arc::make_mut) {
        ov.apply(p);
        for &(r, _) in &rows {
            for &(a, v) in &cells {
                p.set_cell(r, a, v);
            }
        }
    }
    Ok(rows.len())
}

fn delete(
    db: &Database,
    index: &SharedIndex,
    follow: &Mutex<u64>,
    project: &str,
    ids: &[u64],
) -> Result<usize, StoreError> {
    let mut last = lock_follow(follow)?;
    let txn = begin(db, index, &mut last)?;
    let mut idx = index.write().map_err(|_| StoreError::Io("index lock poisoned".into()))?;
    let p = idx.get_mut(project).map(Arc::make_mut).ok_or_else(|| StoreError::NoProject(project.to_string()))?;
    let rows: Vec<usize> = ids.iter().filter_map(|&id| p.row_of(id)).collect();
    if rows.is_empty() {
        return Ok(0);
    }
    let pid = p.record.id;
    let mut fps: HashSet<String> = HashSet::new();
    if let Some(Column::Str(c)) = p.attr("fingerprint").map(|a| &a.column) {
        for &r in &rows {
            if c.get(r) > 0 {
                fps.insert(p.strings.text(c.get(r) - 1).to_string());
            }
        }
    }
    for &r in &rows {
        p.kill_row(r);
    }
    let fps: Vec<String> = fps.into_iter().collect();
    let new_groups: Vec<(String, Option<GroupRecord>)> = p.recompute_groups(&fps).into_iter().collect();
    let result = (|| -> Result<(), StoreError> {
        {
            let mut objects = txn.open_table(OBJECTS)?;
            let mut blobs = txn.open_table(BLOBS)?;
            let mut attachments = txn.open_table(ATTACHMENTS)?;
            let mut groups = txn.open_table(GROUPS)?;
            for &r in &rows {
                let id = p.ids.get(r);
                let names = match objects.remove((pid, id))? {
                    Some(v) => decode::<ObjectRow>(v.value(), "object")?.attachments,
                    None => Vec::new(),
                };
                blobs.remove((pid, id))?;
                for n in names {
                    attachments.remove((pid, id, n.as_str()))?;
                }
            }
            for (fp, g) in &new_groups {
                match g {
                    Some(g) => {
                        groups.insert((pid, fp.as_str()), encode(g)?.as_slice())?;
                    }
                    None => {
                        groups.remove((pid, fp.as_str()))?;
                    }
                }
            }
        }
        if let Some(seq) = txn.commit()? {
            *last = seq;
        }
        Ok(())
    })();
    match result {
        Ok(()) => {
            for (fp, g) in new_groups {
                match g {
                    Some(g) => p.groups.insert(fp, g),
                    None => p.groups.remove(&fp),
                };
            }
            Ok(rows.len())
        }
        Err(e) => {
            // Nothing was deleted: bring the rows back.
            for &r in &rows {
                p.alive[r] = true;
                p.n_alive += 1;
                p.alive_bytes += p.blob_len.get(r);
            }
            Err(e)
        }
    }
}

/// A triage change of some groups, with its history lines, in one transaction;
/// the index follows after the commit.
fn triage_change(
    db: &Database,
    index: &SharedIndex,
    follow: &Mutex<u64>,
    project: &str,
    fps: &[String],
    change: &Change,
    who: &str,
) -> Result<Vec<(String, TriageRecord)>, StoreError> {
    let mut last = lock_follow(follow)?;
    let txn = begin(db, index, &mut last)?;
    let (pid, dict_len, fps, change) = {
        let idx = index.read().map_err(|_| StoreError::Io("index lock poisoned".into()))?;
        let p = idx.get(project).ok_or_else(|| StoreError::NoProject(project.to_string()))?;
        let mut full = Vec::with_capacity(fps.len());
        for fp in fps {
            match p.group_named(fp) {
                Some(f) => full.push(f),
                None => return Err(StoreError::NotFound(format!("group {fp} in project {project}"))),
            }
        }
        // A merge names its target in full (or by a unique prefix); it must exist,
        // not be among the merged, and not be merged itself.
        let change = match change {
            Change::Merge(target) => {
                let t = p
                    .group_named(target)
                    .ok_or_else(|| StoreError::NotFound(format!("group {target} in project {project}")))?;
                if full.contains(&t) {
                    return Err(StoreError::BadInput("a group cannot be merged into itself".into()));
                }
                if p.triage.get(&t).is_some_and(|r| r.merged_into.is_some()) {
                    return Err(StoreError::BadInput(format!("group {t} is itself merged: merge into its target")));
                }
                Change::Merge(t)
            }
            other => other.clone(),
        };
        (p.record.id, p.strings.len() as u32, full, change)
    };
    let fps = fps.as_slice();
    let change = &change;
    let now = super::now();
    let mut out = Vec::new();
    {
        let mut table = txn.open_table(TRIAGE)?;
        let mut history = txn.open_table(HISTORY)?;
        for fp in fps {
            let mut rec: TriageRecord = match table.get((pid, fp.as_str()))? {
                Some(v) => decode(v.value(), "triage")?,
                None => TriageRecord::default(),
            };
            let before = rec.merged_into.clone();
            let what = triage::apply(&mut rec, change, now, dict_len).map_err(StoreError::BadInput)?;
            table.insert((pid, fp.as_str()), encode(&rec)?.as_slice())?;
            append_history(&mut history, pid, fp, &triage::HistoryEntry { time: now, who: who.to_string(), what })?;
            // The other side of a merge hears of it too.
            let other = match change {
                Change::Merge(t) => Some((t.clone(), format!("merged {fp} into this group"))),
                Change::Unmerge => before.map(|t| (t, format!("unmerged {fp} from this group"))),
                _ => None,
            };
            if let Some((t, what)) = other {
                append_history(&mut history, pid, &t, &triage::HistoryEntry { time: now, who: who.to_string(), what })?;
            }
            out.push((fp.clone(), rec));
        }
    }
    if let Some(seq) = txn.commit()? {
        *last = seq;
    }
    let mut idx = index.write().map_err(|_| StoreError::Io("index lock poisoned".into()))?;
    if let Some(p) = idx.get_mut(project).map(Arc::make_mut) {
        for (fp, rec) in &out {
            p.triage.insert(fp.clone(), rec.clone());
        }
    }
    Ok(out)
}

/// Records the sender's outcome: a settled notification leaves the outbox, a retried
/// one gets its next time; either way the integration's log gets a line.
fn settle(db: &Database, id: u64, delivery: Delivery, retry_at: Option<i64>) -> Result<(), StoreError> {
    let txn = db.begin_write()?;
    {
        let mut outbox = txn.open_table(OUTBOX)?;
        let mut log = txn.open_table(DELIVERIES)?;
        let Some(v) = outbox.get(id)?.map(|v| v.value().to_vec()) else { return Ok(()) };
        let (pid, mut pending): (u32, Pending) = decode(&v, "outbox entry")?;
        // One line per attempt: the key orders by delivery, then attempt.
        let key = (pid, pending.integration.as_str(), id << 8 | u64::from(delivery.attempts.min(255)));
        log.insert(key, encode(&delivery)?.as_slice())?;
        match retry_at {
            Some(at) => {
                pending.attempts = delivery.attempts;
                pending.next_at_ms = at;
                outbox.insert(id, encode(&(pid, pending))?.as_slice())?;
            }
            None => {
                outbox.remove(id)?;
            }
        }
    }
    txn.commit()?;
    Ok(())
}
