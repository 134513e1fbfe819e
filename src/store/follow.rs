//! The in-memory index loaded from the catalog, and kept current on a shared catalog
//! by following its change log: the writes of other nodes (and this node's own
//! administration) are applied in commit order. Applying an entry is idempotent:
//! it re-reads the keys the entry names and makes the index agree with them.

use std::collections::HashMap;
use std::ops::Bound;
use std::sync::Arc;

use super::catalog::{self, Catalog, KeyDef, RawRead, Str};
use super::index::{Dict, ProjectIndex};
use super::schema::*;
use super::{SharedIndex, StoreError};

/// Tables whose changes the log carries, in the order of their numbers in it.
pub const FOLLOWED: &[&str] = &[PROJECTS.name, ATTRS.name, STRINGS.name, OBJECTS.name, GROUPS.name, TRIAGE.name];

/// Every project's index, and the change log position it reflects.
pub fn load_all(raw: &dyn RawRead) -> Result<(HashMap<String, Arc<ProjectIndex>>, u64), StoreError> {
    let mut all = HashMap::new();
    for entry in catalog::table(raw, PROJECTS).iter()? {
        let (name, rec) = entry?;
        let rec: ProjectRecord = decode(rec.value(), "project")?;
        let p = load_project(raw, &name.value(), rec)?;
        all.insert(p.name.clone(), Arc::new(p));
    }
    Ok((all, catalog::last_seq(raw)?))
}

/// Entries on their way from the reading thread to the applying one: keys and values
/// back to back in one buffer, so a batch costs a few allocations, not two an entry.
#[derive(Default)]
struct Batch {
    bytes: Vec<u8>,
    /// Where each entry's key and value end in `bytes`.
    ends: Vec<(usize, usize)>,
}

impl Batch {
    const ENTRIES: usize = 4096;
    const BYTES: usize = 4 << 20;
    fn full(&self) -> bool {
        self.ends.len() >= Self::ENTRIES || self.bytes.len() >= Self::BYTES
    }
    fn push(&mut self, k: &[u8], v: &[u8]) {
        self.bytes.extend_from_slice(k);
        let k_end = self.bytes.len();
        self.bytes.extend_from_slice(v);
        self.ends.push((k_end, self.bytes.len()));
    }
    fn entries(&self) -> impl Iterator<Item = (&[u8], &[u8])> {
        let mut start = 0;
        self.ends.iter().map(move |&(k_end, v_end)| {
            let e = (&self.bytes[start..k_end], &self.bytes[k_end..v_end]);
            start = v_end;
            e
        })
    }
}

/// Runs `apply` on a second thread over the entries `read` hands its `send`, so that
/// reading (on PostgreSQL, the server's work and the client's parsing) and applying
/// overlap. `send` answers false once `apply` failed: reading stops, and `apply`'s
/// error is the answer.
fn overlapped(
    read: impl FnOnce(&mut dyn FnMut(&[u8], &[u8]) -> bool) -> Result<(), StoreError>,
    mut apply: impl FnMut(&[u8], &[u8]) -> Result<(), StoreError> + Send,
) -> Result<(), StoreError> {
    let (tx, rx) = std::sync::mpsc::sync_channel::<Batch>(4);
    // Emptied batches go back to the reader, which refills them without allocating.
    let (back_tx, back_rx) = std::sync::mpsc::channel::<Batch>();
    std::thread::scope(|s| {
        let worker = s.spawn(move || -> Result<(), StoreError> {
            for mut batch in rx {
                for (k, v) in batch.entries() {
                    apply(k, v)?;
                }
                batch.bytes.clear();
                batch.ends.clear();
                let _ = back_tx.send(batch);
            }
            Ok(())
        });
        let mut batch = Batch::default();
        let mut open = true;
        let read = read(&mut |k, v| {
            batch.push(k, v);
            if batch.full() {
                let next = back_rx.try_recv().unwrap_or_default();
                open = tx.send(std::mem::replace(&mut batch, next)).is_ok();
            }
            open
        });
        if open && !batch.ends.is_empty() {
            let _ = tx.send(batch);
        }
        drop(tx);
        let applied = worker.join().unwrap_or_else(|_| Err(StoreError::Corrupt("the index loader panicked".into())));
        applied.and(read)
    })
}

/// One project's index from its tables.
pub fn load_project(raw: &dyn RawRead, name: &str, rec: ProjectRecord) -> Result<ProjectIndex, StoreError> {
    let pid = rec.id;
    // The record counts the strings: the dictionary's table is sized once.
    let n_strings = rec.next_string as usize;
    let mut p = ProjectIndex::new(name, rec);
    p.strings.reserve(n_strings);
    for e in catalog::table(raw, ATTRS).range((pid, 0)..=(pid, u32::MAX))? {
        let (k, v) = e?;
        let a: AttrRecord = decode(v.value(), "attribute")?;
        let id = p.add_attr(&a.name, a.ty);
        if id != k.value().1 {
            return Err(StoreError::Corrupt(format!(
                "project {}: attribute ids are not dense at {}",
                p.name,
                k.value().1
            )));
        }
    }
    // The strings and the objects load at once where the engine shares a snapshot
    // between two connections; each on two threads, reading and applying.
    let mut strings = std::mem::take(&mut p.strings);
    let name = p.name.clone();
    // Integer cells of an attribute that later widened to strings: their text is
    // looked up once the dictionary is whole.
    let mut widened: Vec<(usize, u32, i64)> = Vec::new();
    let load_strings = |raw: &dyn RawRead, strings: &mut Dict| -> Result<f64, StoreError> {
        let started = std::time::Instant::now();
        let (lo, hi) = (catalog::key::<(u32, u32), _>(&(pid, 0u32)), catalog::key::<(u32, u32), _>(&(pid, u32::MAX)));
        overlapped(
            |send| raw.scan(STRINGS.name, Bound::Included(lo), Bound::Included(hi), send),
            |k, v| {
                let (_, id) = key_of::<(u32, u32)>(k, "strings")?;
                let text = std::str::from_utf8(v)
                    .map_err(|_| StoreError::Corrupt(format!("project {name}: string {id} is not UTF-8")))?;
                if strings.add(text) != id {
                    return Err(StoreError::Corrupt(format!("project {name}: string ids are not dense at {id}")));
                }
                Ok(())
            },
        )?;
        Ok(started.elapsed().as_secs_f64())
    };
    let load_objects = |raw: &dyn RawRead, p: &mut ProjectIndex, widened: &mut Vec<_>| -> Result<f64, StoreError> {
        let started = std::time::Instant::now();
        let mut values = Vec::new();
        let (lo, hi) = (catalog::key::<(u32, u64), _>(&(pid, 0u64)), catalog::key::<(u32, u64), _>(&(pid, u64::MAX)));
        overlapped(
            |send| raw.scan(OBJECTS.name, Bound::Included(lo), Bound::Included(hi), send),
            |k, v| {
                let (_, id) = key_of::<(u32, u64)>(k, "objects")?;
                // Read in place into one reused buffer: no row is built.
                values.clear();
                let row = p.ids.len();
                let blob_len = ObjectRow::visit(v, |a, val| match val {
                    Val::I(i) if p.is_str(a) => widened.push((row, a, i)),
                    _ => values.push((a, val)),
                })?;
                p.push_row(id, blob_len, &values);
                Ok(())
            },
        )?;
        Ok(started.elapsed().as_secs_f64())
    };
    let (strings_secs, objects_secs) = match raw.twin()? {
        Some(twin) => std::thread::scope(|s| {
            let (load_strings, mut dict) = (&load_strings, std::mem::take(&mut strings));
            let loading = s.spawn(move || load_strings(&*twin, &mut dict).map(|secs| (secs, dict)));
            let objects = load_objects(raw, &mut p, &mut widened);
            let (secs, dict) =
                loading.join().unwrap_or_else(|_| Err(StoreError::Corrupt("the index loader panicked".into())))?;
            strings = dict;
            Ok::<_, StoreError>((secs, objects?))
        })?,
        None => (load_strings(raw, &mut strings)?, load_objects(raw, &mut p, &mut widened)?),
    };
    p.strings = strings;
    for (row, a, i) in widened {
        p.set_cell(row, a, Val::I(i));
    }
    // Not at info: every command that opens a store loads its index.
    log::debug!(
        target: "bt::index",
        "project {}: {} strings in {strings_secs:.1} s, {} objects in {objects_secs:.1} s",
        p.name,
        p.strings.len(),
        p.ids.len(),
    );
    for e in catalog::table(raw, GROUPS).range((pid, "")..(pid + 1, ""))? {
        let (k, v) = e?;
        p.groups.insert(k.value().1, decode(v.value(), "group")?);
    }
    for e in catalog::table(raw, TRIAGE).range((pid, "")..(pid + 1, ""))? {
        let (k, v) = e?;
        p.triage.insert(k.value().1, decode(v.value(), "triage")?);
    }
    Ok(p)
}

fn poisoned<T>(_: T) -> StoreError {
    StoreError::Io("index lock poisoned".into())
}

/// A catalog key of `what` (a table, the change log), decoded.
fn key_of<K: KeyDef>(k: &[u8], what: &str) -> Result<K::Owned, StoreError> {
    K::decode(&mut &k[..]).ok_or_else(|| StoreError::Corrupt(format!("a key in {what}")))
}

/// What one project's part of a log entry names.
#[derive(Default)]
struct Touched {
    attrs: Vec<u32>,
    strings: Vec<u32>,
    objects: Vec<u64>,
    groups: Vec<String>,
    triage: Vec<String>,
}

/// Log entries applied per read of the log.
const LOG_CHUNK: usize = 256;

/// Applies the log entries after `*last` (read in `raw`) to the index, a chunk at a
/// time; reloads everything when the log no longer holds them.
pub fn catch_up(db: &Catalog, raw: &dyn RawRead, index: &SharedIndex, last: &mut u64) -> Result<usize, StoreError> {
    let mut n = 0;
    loop {
        let Some(entries) = db.log_since(raw, *last, LOG_CHUNK)? else {
            let (all, seq) = load_all(raw)?;
            log::warn!("the catalog's change log was pruned past this node's position {}: index reloaded", *last);
            *index.write().map_err(poisoned)? = all;
            *last = seq;
            return Ok(n + 1);
        };
        let got = entries.len();
        for (seq, change) in entries {
            apply(raw, index, &change)?;
            *last = seq;
        }
        n += got;
        if got < LOG_CHUNK {
            return Ok(n);
        }
    }
}

fn apply(raw: &dyn RawRead, index: &SharedIndex, change: &catalog::Change) -> Result<(), StoreError> {
    let mut projects: Vec<String> = Vec::new();
    let mut by_pid: HashMap<u32, Touched> = HashMap::new();
    for (table, k) in change {
        match *table {
            t if t == PROJECTS.name => projects.push(key_of::<Str>(k, "the change log")?),
            t if t == ATTRS.name => {
                let (p, a) = key_of::<(u32, u32)>(k, "the change log")?;
                by_pid.entry(p).or_default().attrs.push(a);
            }
            t if t == STRINGS.name => {
                let (p, s) = key_of::<(u32, u32)>(k, "the change log")?;
                by_pid.entry(p).or_default().strings.push(s);
            }
            t if t == OBJECTS.name => {
                let (p, o) = key_of::<(u32, u64)>(k, "the change log")?;
                by_pid.entry(p).or_default().objects.push(o);
            }
            t if t == GROUPS.name => {
                let (p, f) = key_of::<(u32, Str)>(k, "the change log")?;
                by_pid.entry(p).or_default().groups.push(f);
            }
            t if t == TRIAGE.name => {
                let (p, f) = key_of::<(u32, Str)>(k, "the change log")?;
                by_pid.entry(p).or_default().triage.push(f);
            }
            _ => {}
        }
    }
    projects.sort();
    projects.dedup();
    for name in projects {
        match catalog::table(raw, PROJECTS).get(name.as_str())? {
            None => {
                index.write().map_err(poisoned)?.remove(&name);
            }
            Some(v) => {
                let rec: ProjectRecord = decode(v.value(), "project")?;
                let known = index.read().map_err(poisoned)?.get(&name).map(|p| p.record.id);
                if known == Some(rec.id) {
                    if let Some(p) = index.write().map_err(poisoned)?.get_mut(&name) {
                        Arc::make_mut(p).record = rec;
                    }
                } else {
                    // A new project (or one removed and created again): all of it.
                    let p = load_project(raw, &name, rec)?;
                    index.write().map_err(poisoned)?.insert(name, Arc::new(p));
                }
            }
        }
    }
    for (pid, mut t) in by_pid {
        let Some(name) = index.read().map_err(poisoned)?.values().find(|p| p.record.id == pid).map(|p| p.name.clone())
        else {
            continue; // removed since: its rows are gone too
        };
        t.attrs.sort_unstable();
        t.attrs.dedup();
        t.strings.sort_unstable();
        t.strings.dedup();
        t.objects.sort_unstable();
        t.objects.dedup();
        // Everything is read before the index is locked for writing.
        let record: Option<ProjectRecord> =
            catalog::table(raw, PROJECTS).get(name.as_str())?.map(|v| decode(v.value(), "project")).transpose()?;
        let Some(record) = record else { continue };
        let mut attrs = Vec::new();
        for &a in &t.attrs {
            if let Some(v) = catalog::table(raw, ATTRS).get((pid, a))? {
                attrs.push((a, decode::<AttrRecord>(v.value(), "attribute")?));
            }
        }
        let mut strings = Vec::new();
        for &s in &t.strings {
            if let Some(v) = catalog::table(raw, STRINGS).get((pid, s))? {
                strings.push((s, v.value().to_string()));
            }
        }
        let mut rows = Vec::new();
        for &o in &t.objects {
            let row = catalog::table(raw, OBJECTS)
                .get((pid, o))?
                .map(|v| decode::<ObjectRow>(v.value(), "object"))
                .transpose()?;
            rows.push((o, row));
        }
        let mut groups = Vec::new();
        for f in &t.groups {
            let g = catalog::table(raw, GROUPS)
                .get((pid, f.as_str()))?
                .map(|v| decode::<GroupRecord>(v.value(), "group"))
                .transpose()?;
            groups.push((f.clone(), g));
        }
        let mut triage = Vec::new();
        for f in &t.triage {
            let r =
                catalog::table(raw, TRIAGE).get((pid, f.as_str()))?.map(|v| decode(v.value(), "triage")).transpose()?;
            triage.push((f.clone(), r));
        }
        let mut idx = index.write().map_err(poisoned)?;
        let Some(entry) = idx.get_mut(&name) else { continue };
        let p = Arc::make_mut(entry);
        if !patch(p, record.clone(), attrs, strings, rows, groups, triage) {
            // A change the patch does not follow (an attribute widened to strings, ids
            // out of order): the project is read again.
            drop(idx);
            let fresh = load_project(raw, &name, record)?;
            index.write().map_err(poisoned)?.insert(name, Arc::new(fresh));
        }
    }
    Ok(())
}

type Rows = Vec<(u64, Option<ObjectRow>)>;

/// Makes a project's index agree with the rows read; false when it cannot be done in place.
fn patch(
    p: &mut ProjectIndex,
    record: ProjectRecord,
    attrs: Vec<(u32, AttrRecord)>,
    strings: Vec<(u32, String)>,
    rows: Rows,
    groups: Vec<(String, Option<GroupRecord>)>,
    triage: Vec<(String, Option<super::triage::TriageRecord>)>,
) -> bool {
    for (id, a) in attrs {
        match p.attrs.get(id as usize) {
            Some(have) if have.ty == a.ty => {}
            Some(_) => return false,
            None if id as usize == p.attrs.len() => {
                p.add_attr(&a.name, a.ty);
            }
            None => return false,
        }
    }
    for (id, s) in strings {
        match (id as usize).cmp(&p.strings.len()) {
            std::cmp::Ordering::Less => {}
            std::cmp::Ordering::Equal => {
                p.add_string(&s);
            }
            std::cmp::Ordering::Greater => return false,
        }
    }
    for (id, row) in rows {
        match (p.ids.search(id), row) {
            (Ok(r), Some(row)) => {
                if !p.alive[r] {
                    return false;
                }
                for (a, v) in row.values {
                    p.set_cell(r, a, v);
                }
            }
            (Ok(r), None) => p.kill_row(r),
            (Err(pos), Some(row)) if pos == p.ids.len() => p.push_row(id, row.blob_len, &row.values),
            (Err(_), Some(_)) => return false,
            (Err(_), None) => {}
        }
    }
    for (f, g) in groups {
        match g {
            Some(g) => p.groups.insert(f, g),
            None => p.groups.remove(&f),
        };
    }
    for (f, r) in triage {
        match r {
            Some(r) => p.triage.insert(f, r),
            None => p.triage.remove(&f),
        };
    }
    p.record = record;
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overlapped_applies_everything_in_order_and_stops_on_either_side_s_error() {
        // Values of 0 to 2,999 bytes: batches end by count and by size.
        let value = |i: u32| vec![i as u8; (i % 3000) as usize];
        let mut got = 0u32;
        overlapped(
            |send| {
                for i in 0..10_000u32 {
                    assert!(send(&i.to_be_bytes(), &value(i)));
                }
                Ok(())
            },
            |k, v| {
                let i = u32::from_be_bytes(k.try_into().unwrap());
                assert_eq!((i, v), (got, &value(i)[..]));
                got += 1;
                Ok(())
            },
        )
        .unwrap();
        assert_eq!(got, 10_000);

        // apply fails: reading stops soon after, and apply's error is the answer.
        let mut sent = 0;
        let r = overlapped(
            |send| {
                for i in 0..1_000_000u32 {
                    sent += 1;
                    if !send(&i.to_be_bytes(), b"") {
                        break;
                    }
                }
                Ok(())
            },
            |k, _| {
                if k == 5000u32.to_be_bytes() { Err(StoreError::Corrupt("bad row 5000".into())) } else { Ok(()) }
            },
        );
        assert!(matches!(r, Err(StoreError::Corrupt(m)) if m == "bad row 5000"));
        assert!(sent < 100_000, "{sent} items read after apply failed");

        // read fails: what was sent is applied, and read's error is the answer.
        let mut applied = 0;
        let r = overlapped(
            |send| {
                for i in 0..5000u32 {
                    send(&i.to_be_bytes(), b"v");
                }
                Err(StoreError::Io("catalog gone".into()))
            },
            |_, _| {
                applied += 1;
                Ok(())
            },
        );
        assert!(matches!(r, Err(StoreError::Io(m)) if m == "catalog gone"));
        assert_eq!(applied, 5000);

        // A panic in apply is an error, not a crash of the node.
        let r = overlapped(
            |send| {
                send(b"k", b"v");
                Ok(())
            },
            |_, _| panic!("boom"),
        );
        assert!(matches!(r, Err(StoreError::Corrupt(_))));
    }
}
