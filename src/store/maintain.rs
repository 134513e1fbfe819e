//! Upkeep of the store: the retention pass and the consistency check of STORE.md's
//! invariants.

use super::schema::*;
use std::collections::HashMap;

use super::{Store, StoreError, index, now};

impl Store {
    /// One retention pass over every project: removes objects received longer ago
    /// than `max_age`, then the oldest while blobs exceed `max_bytes`. Returns the
    /// number of objects removed.
    pub fn enforce_retention(&self) -> Result<usize, StoreError> {
        let now = now();
        let mut plans: Vec<(String, Vec<u64>)> = Vec::new();
        {
            let index = self.index()?;
            for (name, p) in index.iter() {
                let mut doomed = Vec::new();
                let mut bytes = p.alive_bytes;
                let received = p.attr("received").map(|a| &a.column);
                for row in 0..p.ids.len() {
                    if !p.alive[row] {
                        continue;
                    }
                    let old = p.record.max_age > 0
                        && matches!(received, Some(index::Column::Int(c)) if c.get(row) != index::UNSET_INT && c.get(row) < now - p.record.max_age as i64);
                    let big = p.record.max_bytes > 0 && bytes > p.record.max_bytes;
                    if old || big {
                        doomed.push(p.ids.get(row));
                        bytes -= p.blob_len.get(row);
                    } else {
                        // Rows are in arrival order: once one is young and the rest fits, stop.
                        break;
                    }
                }
                if !doomed.is_empty() {
                    plans.push((name.clone(), doomed));
                }
            }
        }
        let mut removed = 0;
        for (project, ids) in plans {
            for chunk in ids.chunks(10_000) {
                removed += self.delete(&project, chunk.to_vec())?;
            }
        }
        Ok(removed)
    }

    /// Checks the invariants of STORE.md: every object has its blob and attachments,
    /// every value names a known attribute and string, group counts match the
    /// objects. Returns the problems found (empty = consistent).
    pub fn check(&self) -> Result<Vec<String>, StoreError> {
        let txn = self.db.begin_read()?;
        let projects = txn.open_table(PROJECTS)?;
        let objects = txn.open_table(OBJECTS)?;
        let blobs = txn.open_table(BLOBS)?;
        let attachments = txn.open_table(ATTACHMENTS)?;
        let attrs = txn.open_table(ATTRS)?;
        let strings = txn.open_table(STRINGS)?;
        let groups = txn.open_table(GROUPS)?;
        let mut problems = Vec::new();
        for e in projects.iter()? {
            let (name, rec) = e?;
            let name = name.value().to_string();
            let rec: ProjectRecord = decode(rec.value(), "project")?;
            let pid = rec.id;
            let n_attrs = attrs.range((pid, 0)..=(pid, u32::MAX))?.count() as u32;
            let n_strings = strings.range((pid, 0)..=(pid, u32::MAX))?.count() as u32;
            if n_attrs != rec.next_attr || n_strings != rec.next_string {
                problems.push(format!(
                    "{name}: {n_attrs} attributes / {n_strings} strings, record says {} / {}",
                    rec.next_attr, rec.next_string
                ));
            }
            let mut fp_attr = None;
            for e in attrs.range((pid, 0)..=(pid, u32::MAX))? {
                let (k, v) = e?;
                if decode::<AttrRecord>(v.value(), "attribute")?.name == "fingerprint" {
                    fp_attr = Some(k.value().1);
                }
            }
            let mut counts: HashMap<String, u64> = HashMap::new();
            let mut n_objects = 0u64;
            for e in objects.range((pid, 0)..=(pid, u64::MAX))? {
                let (k, v) = e?;
                let id = k.value().1;
                n_objects += 1;
                if id >= rec.next_object {
                    problems.push(format!("{name}: object {id:x} is beyond next_object {:x}", rec.next_object));
                }
                let row: ObjectRow = match decode(v.value(), "object") {
                    Ok(r) => r,
                    Err(e) => {
                        problems.push(format!("{name}: object {id:x}: {e}"));
                        continue;
                    }
                };
                match blobs.get((pid, id))? {
                    Some(b) if b.value().len() as u64 == row.blob_len + 1 => {}
                    Some(b) => problems.push(format!(
                        "{name}: object {id:x}: blob is {} bytes, row says {}",
                        b.value().len(),
                        row.blob_len + 1
                    )),
                    None => problems.push(format!("{name}: object {id:x} has no blob")),
                }
                for a in &row.attachments {
                    if attachments.get((pid, id, a.as_str()))?.is_none() {
                        problems.push(format!("{name}: object {id:x}: attachment {a} missing"));
                    }
                }
                for &(attr, val) in &row.values {
                    if attr >= rec.next_attr {
                        problems.push(format!("{name}: object {id:x}: unknown attribute {attr}"));
                    }
                    if let Val::S(s) = val {
                        if s >= rec.next_string {
                            problems.push(format!("{name}: object {id:x}: unknown string {s}"));
                        } else if Some(attr) == fp_attr
                            && let Some(fp) = strings.get((pid, s))?
                        {
                            *counts.entry(fp.value().to_string()).or_default() += 1;
                        }
                    }
                }
            }
            let n_blobs = blobs.range((pid, 0)..=(pid, u64::MAX))?.count() as u64;
            if n_blobs != n_objects {
                problems.push(format!("{name}: {n_blobs} blobs for {n_objects} objects"));
            }
            for e in groups.range((pid, "")..(pid + 1, ""))? {
                let (k, v) = e?;
                let g: GroupRecord = decode(v.value(), "group")?;
                let fp = k.value().1.to_string();
                let have = counts.remove(&fp).unwrap_or(0);
                if have != g.count {
                    problems.push(format!("{name}: group {fp} counts {} objects, found {have}", g.count));
                }
            }
            for (fp, n) in counts {
                problems.push(format!("{name}: {n} objects in group {fp}, which has no record"));
            }
        }
        Ok(problems)
    }
}
