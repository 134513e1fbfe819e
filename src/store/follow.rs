//! The in-memory index loaded from the catalog, and kept current on a shared catalog
//! by following its change log: the writes of other nodes (and this node's own
//! administration) are applied in commit order. Applying an entry is idempotent:
//! it re-reads the keys the entry names and makes the index agree with them.

use std::collections::HashMap;
use std::sync::Arc;

use super::catalog::{self, Catalog, KeyDef, RawRead, Str};
use super::index::ProjectIndex;
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

/// Runs `apply` on a second thread over the items `read` sends (in batches), so that
/// reading and applying overlap. `read`'s `send` answers false once `apply` failed:
/// reading stops, and `apply`'s error is the answer.
fn overlapped<T: Send>(
    read: impl FnOnce(&mut dyn FnMut(T) -> bool) -> Result<(), StoreError>,
    mut apply: impl FnMut(T) -> Result<(), StoreError> + Send,
) -> Result<(), StoreError> {
    const BATCH: usize = 4096;
    let (tx, rx) = std::sync::mpsc::sync_channel::<Vec<T>>(4);
    std::thread::scope(|s| {
        let worker = s.spawn(move || -> Result<(), StoreError> {
            for batch in rx {
                for item in batch {
                    apply(item)?;
                }
            }
            Ok(())
        });
        let mut batch = Vec::with_capacity(BATCH);
        let mut open = true;
        let read = read(&mut |item| {
            batch.push(item);
            if batch.len() == BATCH {
                open = tx.send(std::mem::replace(&mut batch, Vec::with_capacity(BATCH))).is_ok();
            }
            open
        });
        if open && !batch.is_empty() {
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
    // Reading the catalog (on PostgreSQL a page is a round trip) and building the
    // columns overlap: this thread reads, a second one decodes and appends.
    let name = p.name.clone();
    overlapped(
        |send| {
            for e in catalog::table(raw, STRINGS).range((pid, 0)..=(pid, u32::MAX))? {
                let (k, v) = e?;
                if !send((k.value().1, v)) {
                    break;
                }
            }
            Ok(())
        },
        |(id, v)| {
            if p.add_string(v.value()) != id {
                return Err(StoreError::Corrupt(format!("project {name}: string ids are not dense at {id}")));
            }
            Ok(())
        },
    )?;
    overlapped(
        |send| {
            for e in catalog::table(raw, OBJECTS).range((pid, 0)..=(pid, u64::MAX))? {
                let (k, v) = e?;
                if !send((k.value().1, v)) {
                    break;
                }
            }
            Ok(())
        },
        |(id, v)| {
            let row: ObjectRow = decode(v.value(), "object")?;
            p.push_row(id, row.blob_len, &row.values);
            Ok(())
        },
    )?;
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

fn key_of<K: KeyDef>(k: &[u8]) -> Result<K::Owned, StoreError> {
    K::decode(&mut &k[..]).ok_or_else(|| StoreError::Corrupt("a key in the change log".into()))
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
            t if t == PROJECTS.name => projects.push(key_of::<Str>(k)?),
            t if t == ATTRS.name => {
                let (p, a) = key_of::<(u32, u32)>(k)?;
                by_pid.entry(p).or_default().attrs.push(a);
            }
            t if t == STRINGS.name => {
                let (p, s) = key_of::<(u32, u32)>(k)?;
                by_pid.entry(p).or_default().strings.push(s);
            }
            t if t == OBJECTS.name => {
                let (p, o) = key_of::<(u32, u64)>(k)?;
                by_pid.entry(p).or_default().objects.push(o);
            }
            t if t == GROUPS.name => {
                let (p, f) = key_of::<(u32, Str)>(k)?;
                by_pid.entry(p).or_default().groups.push(f);
            }
            t if t == TRIAGE.name => {
                let (p, f) = key_of::<(u32, Str)>(k)?;
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
        let mut got = Vec::new();
        overlapped(
            |send| {
                for i in 0..10_000u32 {
                    assert!(send(i));
                }
                Ok(())
            },
            |i| {
                got.push(i);
                Ok(())
            },
        )
        .unwrap();
        assert!(got.iter().copied().eq(0..10_000));

        // apply fails: reading stops soon after, and apply's error is the answer.
        let mut sent = 0;
        let r = overlapped(
            |send| {
                for i in 0..1_000_000u32 {
                    sent += 1;
                    if !send(i) {
                        break;
                    }
                }
                Ok(())
            },
            |i| if i == 5000 { Err(StoreError::Corrupt("bad row 5000".into())) } else { Ok(()) },
        );
        assert!(matches!(r, Err(StoreError::Corrupt(m)) if m == "bad row 5000"));
        assert!(sent < 100_000, "{sent} items read after apply failed");

        // read fails: what was sent is applied, and read's error is the answer.
        let mut applied = 0;
        let r = overlapped(
            |send| {
                for i in 0..5000u32 {
                    send(i);
                }
                Err(StoreError::Io("catalog gone".into()))
            },
            |_| {
                applied += 1;
                Ok(())
            },
        );
        assert!(matches!(r, Err(StoreError::Io(m)) if m == "catalog gone"));
        assert_eq!(applied, 5000);

        // A panic in apply is an error, not a crash of the node.
        let r = overlapped(
            |send| {
                send(1u8);
                Ok(())
            },
            |_| panic!("boom"),
        );
        assert!(matches!(r, Err(StoreError::Corrupt(_))));
    }
}
