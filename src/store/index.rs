//! The in-memory columnar index of every project: one column per attribute, a
//! per-project string dictionary, group aggregates. Rebuilt from redb at start,
//! appended to only after a commit succeeded, so it never shows uncommitted data.

use std::collections::HashMap;

use super::schema::{AttrType, GroupRecord, ProjectRecord, Val};
use super::triage::TriageRecord;

/// Marks an unset integer cell.
pub const UNSET_INT: i64 = i64::MIN;

/// The attribute a submission carries to be stored at most once: the collector's
/// crash uuid. A client that lost the answer (killed, timed out) sends the crash
/// again; the second submission gets the first one's id and stores nothing.
pub const IDEMPOTENCY_KEY: &str = "coresnap.uuid";

/// One attribute's values, one cell per row.
#[derive(Debug, Clone)]
pub enum Column {
    /// Dictionary string id + 1; 0 = unset.
    Str(Vec<u32>),
    /// The value; [`UNSET_INT`] = unset.
    Int(Vec<i64>),
}

impl Column {
    pub fn new(ty: AttrType, n_rows: usize) -> Column {
        match ty {
            AttrType::Str => Column::Str(vec![0; n_rows]),
            AttrType::Int | AttrType::Timestamp => Column::Int(vec![UNSET_INT; n_rows]),
        }
    }

    fn push_unset(&mut self) {
        match self {
            Column::Str(v) => v.push(0),
            Column::Int(v) => v.push(UNSET_INT),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Attr {
    pub name: String,
    pub ty: AttrType,
    pub column: Column,
}

/// A project as the query engine sees it. Shared as an `Arc`: a query clones the
/// `Arc` and lets go of the lock, and a writer that finds it shared copies it
/// (`Arc::make_mut`), so a long query never holds up ingest.
#[derive(Debug, Clone)]
pub struct ProjectIndex {
    pub name: String,
    pub record: ProjectRecord,
    /// Object id of each row, ascending.
    pub ids: Vec<u64>,
    /// False for rows deleted since the index was built.
    pub alive: Vec<bool>,
    pub blob_len: Vec<u64>,
    pub n_alive: usize,
    pub alive_bytes: u64,
    pub attrs: Vec<Attr>,
    pub attr_ids: HashMap<String, u32>,
    pub strings: Vec<String>,
    pub string_ids: HashMap<String, u32>,
    pub groups: HashMap<String, GroupRecord>,
    /// Triage of the groups somebody (or a rule) triaged; others are `open`.
    pub triage: HashMap<String, TriageRecord>,
    /// The [`IDEMPOTENCY_KEY`] attribute's id, once it exists.
    key_attr: Option<u32>,
    /// Dictionary id of an idempotency key → the newest row holding it: a resend is
    /// found in one lookup however old the original (10 to 20 bytes a row, by how
    /// full the table is).
    key_rows: HashMap<u32, u32>,
}

impl ProjectIndex {
    /// For grouping and filtering by `fingerprint` when groups were merged: the
    /// dictionary id + 1 of each string → that of the group answering for it (a
    /// merged group's target, else itself). None when nothing is merged.
    pub fn merge_remap(&self) -> Option<Vec<u32>> {
        let merged: Vec<(&String, &String)> =
            self.triage.iter().filter_map(|(fp, r)| r.merged_into.as_ref().map(|t| (fp, t))).collect();
        if merged.is_empty() {
            return None;
        }
        let mut remap: Vec<u32> = (0..=self.strings.len() as u32).collect();
        for (fp, target) in merged {
            if let (Some(&from), Some(&to)) = (self.string_ids.get(fp), self.string_ids.get(target)) {
                remap[from as usize + 1] = to + 1;
            }
        }
        Some(remap)
    }

    /// The group a fingerprint names, or the one group it is the unique prefix of
    /// (at least 8 hex digits, as `morgue list` abbreviates them).
    pub fn group_named(&self, fp: &str) -> Option<String> {
        if self.groups.contains_key(fp) {
            return Some(fp.to_string());
        }
        if fp.len() < 8 {
            return None;
        }
        let mut hits = self.groups.keys().filter(|k| k.starts_with(fp));
        match (hits.next(), hits.next()) {
            (Some(one), None) => Some(one.clone()),
            _ => None,
        }
    }

    pub fn new(name: &str, record: ProjectRecord) -> ProjectIndex {
        ProjectIndex {
            name: name.to_string(),
            record,
            ids: Vec::new(),
            alive: Vec::new(),
            blob_len: Vec::new(),
            n_alive: 0,
            alive_bytes: 0,
            attrs: Vec::new(),
            attr_ids: HashMap::new(),
            strings: Vec::new(),
            string_ids: HashMap::new(),
            groups: HashMap::new(),
            triage: HashMap::new(),
            key_attr: None,
            key_rows: HashMap::new(),
        }
    }

    pub fn attr(&self, name: &str) -> Option<&Attr> {
        self.attr_ids.get(name).map(|&i| &self.attrs[i as usize])
    }

    /// Adds an attribute with the next id (ids are dense: the id is the position).
    pub fn add_attr(&mut self, name: &str, ty: AttrType) -> u32 {
        let id = self.attrs.len() as u32;
        self.attrs.push(Attr { name: name.to_string(), ty, column: Column::new(ty, self.ids.len()) });
        self.attr_ids.insert(name.to_string(), id);
        if name == IDEMPOTENCY_KEY {
            self.key_attr = Some(id);
        }
        id
    }

    pub fn add_string(&mut self, s: &str) -> u32 {
        let id = self.strings.len() as u32;
        self.strings.push(s.to_string());
        self.string_ids.insert(s.to_string(), id);
        id
    }

    /// Widens an integer attribute to strings: every integer cell becomes its decimal text.
    /// New dictionary strings are returned so the caller can persist them.
    pub fn widen_to_str(&mut self, attr_id: u32) -> Vec<(u32, String)> {
        let mut added = Vec::new();
        let Column::Int(ints) = &self.attrs[attr_id as usize].column else { return added };
        let ints = ints.clone();
        let mut cells = Vec::with_capacity(ints.len());
        for v in ints {
            if v == UNSET_INT {
                cells.push(0);
                continue;
            }
            let text = v.to_string();
            let id = match self.string_ids.get(&text) {
                Some(&id) => id,
                None => {
                    let id = self.add_string(&text);
                    added.push((id, text));
                    id
                }
            };
            cells.push(id + 1);
        }
        let attr = &mut self.attrs[attr_id as usize];
        attr.ty = AttrType::Str;
        attr.column = Column::Str(cells);
        added
    }

    /// Appends one committed object. Values name attributes and strings that exist.
    pub fn push_row(&mut self, id: u64, blob_len: u64, values: &[(u32, Val)]) {
        for a in &mut self.attrs {
            a.column.push_unset();
        }
        let row = self.ids.len();
        self.ids.push(id);
        self.alive.push(true);
        self.blob_len.push(blob_len);
        self.n_alive += 1;
        self.alive_bytes += blob_len;
        for &(attr_id, val) in values {
            self.set_cell(row, attr_id, val);
        }
    }

    /// Writes one cell of a row (ingest, or `set` on stored objects).
    pub fn set_cell(&mut self, row: usize, attr_id: u32, val: Val) {
        let Some(attr) = self.attrs.get_mut(attr_id as usize) else { return };
        match (&mut attr.column, val) {
            (Column::Str(c), Val::S(s)) => {
                c[row] = s + 1;
                if self.key_attr == Some(attr_id) {
                    self.key_rows.insert(s, row as u32);
                }
            }
            (Column::Int(c), Val::I(i)) => c[row] = i,
            // A row written before the attribute widened to strings.
            (Column::Str(c), Val::I(i)) => {
                let text = i.to_string();
                let sid = match self.string_ids.get(&text) {
                    Some(&sid) => sid,
                    None => {
                        let sid = self.strings.len() as u32;
                        self.strings.push(text.clone());
                        self.string_ids.insert(text, sid);
                        sid
                    }
                };
                c[row] = sid + 1;
            }
            // Never written: an attribute only widens from integer to string.
            (Column::Int(_), Val::S(_)) => {}
        }
    }

    /// The live row stored under an idempotency key, if any: one dictionary lookup
    /// and one map lookup.
    pub fn row_of_key(&self, key: &str) -> Option<usize> {
        let sid = *self.string_ids.get(key)?;
        let row = *self.key_rows.get(&sid)? as usize;
        let Column::Str(col) = &self.attrs[self.key_attr? as usize].column else { return None };
        (col.get(row) == Some(&(sid + 1)) && self.alive[row]).then_some(row)
    }

    pub fn row_of(&self, id: u64) -> Option<usize> {
        self.ids.binary_search(&id).ok().filter(|&r| self.alive[r])
    }

    pub fn kill_row(&mut self, row: usize) {
        if self.alive[row] {
            self.alive[row] = false;
            self.n_alive -= 1;
            self.alive_bytes -= self.blob_len[row];
        }
    }

    /// The string value of a cell, if set.
    pub fn str_cell(&self, attr: &Attr, row: usize) -> Option<&str> {
        match &attr.column {
            Column::Str(c) => match c[row] {
                0 => None,
                s => self.strings.get(s as usize - 1).map(String::as_str),
            },
            Column::Int(_) => None,
        }
    }

    /// Recomputes, in one pass over the live rows, the aggregates of the named groups
    /// (after deletions). A group left without objects maps to None.
    pub fn recompute_groups(&self, fingerprints: &[String]) -> HashMap<String, Option<GroupRecord>> {
        let mut out: HashMap<String, Option<GroupRecord>> = fingerprints.iter().map(|f| (f.clone(), None)).collect();
        let Some(Column::Str(fps)) = self.attr("fingerprint").map(|a| &a.column) else { return out };
        let ts = match self.attr("timestamp").map(|a| &a.column) {
            Some(Column::Int(t)) => Some(t),
            _ => None,
        };
        // Dictionary id + 1 of each wanted fingerprint → its slot.
        let mut slot_of: HashMap<u32, usize> = HashMap::new();
        let mut acc: Vec<(String, GroupRecord)> = Vec::new();
        for f in fingerprints {
            let (Some(&sid), Some(old)) = (self.string_ids.get(f), self.groups.get(f)) else { continue };
            slot_of.insert(sid + 1, acc.len());
            let blank = GroupRecord {
                count: 0,
                first_seen: i64::MAX,
                last_seen: i64::MIN,
                first_object: u64::MAX,
                last_object: 0,
                ..old.clone()
            };
            acc.push((f.clone(), blank));
        }
        if acc.is_empty() {
            return out;
        }
        for (row, &f) in fps.iter().enumerate() {
            if !self.alive[row] {
                continue;
            }
            let Some(&slot) = slot_of.get(&f) else { continue };
            let g = &mut acc[slot].1;
            let t = ts.map(|t| t[row]).unwrap_or(0);
            g.count += 1;
            g.first_seen = g.first_seen.min(t);
            g.last_seen = g.last_seen.max(t);
            g.first_object = g.first_object.min(self.ids[row]);
            g.last_object = g.last_object.max(self.ids[row]);
        }
        for (f, g) in acc {
            out.insert(f, (g.count > 0).then_some(g));
        }
        out
    }

    /// Recomputes the aggregates of one group (see [`ProjectIndex::recompute_groups`]).
    pub fn recompute_group(&self, fingerprint: &str) -> Option<GroupRecord> {
        self.recompute_groups(&[fingerprint.to_string()]).remove(fingerprint).flatten()
    }
}
