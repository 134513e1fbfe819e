//! The in-memory columnar index of every project: one column per attribute, a
//! per-project string dictionary, group aggregates. Rebuilt from the catalog at start,
//! appended to only after a commit succeeded, so it never shows uncommitted data.

mod cells;
mod dict;

use std::collections::HashMap;

pub use cells::{IntColumn, Packed, StrColumn};
pub use dict::Dict;

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
    /// [`StrColumn::get`]: dictionary string id + 1; 0 = unset.
    Str(StrColumn),
    /// [`IntColumn::get`]: the value; [`UNSET_INT`] = unset.
    Int(IntColumn),
}

impl Column {
    pub fn new(ty: AttrType, n_rows: usize) -> Column {
        match ty {
            AttrType::Str => Column::Str(StrColumn::unset(n_rows)),
            AttrType::Int | AttrType::Timestamp => Column::Int(IntColumn::unset(n_rows)),
        }
    }

    fn push_unset(&mut self) {
        match self {
            Column::Str(v) => v.push_unset(),
            Column::Int(v) => v.push_unset(),
        }
    }

    /// Whether the cell at `row` holds a value.
    pub fn is_set(&self, row: usize) -> bool {
        match self {
            Column::Str(c) => c.get(row) != 0,
            Column::Int(c) => c.get(row) != UNSET_INT,
        }
    }

    pub fn heap_bytes(&self) -> usize {
        match self {
            Column::Str(c) => c.heap_bytes(),
            Column::Int(c) => c.heap_bytes(),
        }
    }
}

/// Object ids of the rows, ascending, as offsets from the first.
#[derive(Debug, Clone, Default)]
pub struct RowIds {
    base: u64,
    cells: Packed,
}

impl RowIds {
    pub fn len(&self) -> usize {
        self.cells.len()
    }

    pub fn is_empty(&self) -> bool {
        self.cells.is_empty()
    }

    #[inline]
    pub fn get(&self, row: usize) -> u64 {
        self.base + self.cells.get(row)
    }

    /// Appends an id above every other (the caller checks the order).
    fn push(&mut self, id: u64) {
        if self.cells.is_empty() {
            self.base = id;
        }
        debug_assert!(id >= self.base, "rows are appended in id order");
        self.cells.push(id.saturating_sub(self.base));
    }

    /// As `slice::binary_search`.
    pub fn search(&self, id: u64) -> Result<usize, usize> {
        if id < self.base || self.cells.is_empty() {
            return Err(0);
        }
        let off = id - self.base;
        let (mut lo, mut hi) = (0, self.len());
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            match self.cells.get(mid).cmp(&off) {
                std::cmp::Ordering::Less => lo = mid + 1,
                std::cmp::Ordering::Greater => hi = mid,
                std::cmp::Ordering::Equal => return Ok(mid),
            }
        }
        Err(lo)
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
    pub ids: RowIds,
    /// False for rows deleted since the index was built.
    pub alive: Vec<bool>,
    pub blob_len: Packed,
    pub n_alive: usize,
    pub alive_bytes: u64,
    pub attrs: Vec<Attr>,
    pub attr_ids: HashMap<String, u32>,
    pub strings: Dict,
    pub groups: HashMap<String, GroupRecord>,
    /// Triage of the groups somebody (or a rule) triaged; others are `open`.
    pub triage: HashMap<String, TriageRecord>,
    /// The [`IDEMPOTENCY_KEY`] attribute's id, once it exists.
    key_attr: Option<u32>,
    /// Dictionary id of an idempotency key → the newest row holding it: a resend is
    /// found in one lookup however old the original (10 to 20 bytes a row, by how
    /// full the table is).
    key_rows: HashMap<u32, u32, foldhash::fast::RandomState>,
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
            if let (Some(from), Some(to)) = (self.strings.id(fp), self.strings.id(target)) {
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
            ids: RowIds::default(),
            alive: Vec::new(),
            blob_len: Packed::default(),
            n_alive: 0,
            alive_bytes: 0,
            attrs: Vec::new(),
            attr_ids: HashMap::new(),
            strings: Dict::default(),
            groups: HashMap::new(),
            triage: HashMap::new(),
            key_attr: None,
            key_rows: HashMap::default(),
        }
    }

    /// Heap bytes the index holds, by part: (part, bytes), largest first.
    pub fn heap_bytes(&self) -> Vec<(String, usize)> {
        let map = |n: usize, entry: usize| n * (entry + 1);
        let mut parts = vec![
            (
                "rows (ids, alive, sizes)".to_string(),
                self.ids.cells.heap_bytes() + self.alive.capacity() + self.blob_len.heap_bytes(),
            ),
            ("string dictionary".to_string(), self.strings.heap_bytes()),
            ("idempotency keys".to_string(), map(self.key_rows.capacity(), 8)),
        ];
        for a in &self.attrs {
            parts.push((format!("column {}", a.name), a.column.heap_bytes()));
        }
        parts.sort_by(|a, b| b.1.cmp(&a.1));
        parts
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
        self.strings.add(s)
    }

    /// The dictionary id of `s`, if it has one.
    pub fn string_id(&self, s: &str) -> Option<u32> {
        self.strings.id(s)
    }

    /// Widens an integer attribute to strings: every integer cell becomes its decimal text.
    /// New dictionary strings are returned so the caller can persist them.
    pub fn widen_to_str(&mut self, attr_id: u32) -> Vec<(u32, String)> {
        let mut added = Vec::new();
        let Column::Int(ints) = &self.attrs[attr_id as usize].column else { return added };
        let ints = ints.clone();
        let mut cells = StrColumn::unset(0);
        for row in 0..ints.len() {
            let v = ints.get(row);
            if v == UNSET_INT {
                cells.push(0);
                continue;
            }
            let text = v.to_string();
            let id = match self.strings.id(&text) {
                Some(id) => id,
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

    /// Whether attribute `attr_id` holds strings.
    pub fn is_str(&self, attr_id: u32) -> bool {
        matches!(self.attrs.get(attr_id as usize), Some(Attr { column: Column::Str(_), .. }))
    }

    /// Writes one cell of a row (ingest, or `set` on stored objects).
    pub fn set_cell(&mut self, row: usize, attr_id: u32, val: Val) {
        let Some(attr) = self.attrs.get_mut(attr_id as usize) else { return };
        match (&mut attr.column, val) {
            (Column::Str(c), Val::S(s)) => {
                c.set(row, s + 1);
                if self.key_attr == Some(attr_id) {
                    self.key_rows.insert(s, row as u32);
                }
            }
            (Column::Int(c), Val::I(i)) => c.set(row, i),
            // A row written before the attribute widened to strings.
            (Column::Str(c), Val::I(i)) => {
                let text = i.to_string();
                let sid = match self.strings.id(&text) {
                    Some(sid) => sid,
                    None => self.strings.add(&text),
                };
                c.set(row, sid + 1);
            }
            // Never written: an attribute only widens from integer to string.
            (Column::Int(_), Val::S(_)) => {}
        }
    }

    /// The live row stored under an idempotency key, if any: one dictionary lookup
    /// and one map lookup.
    pub fn row_of_key(&self, key: &str) -> Option<usize> {
        let sid = self.strings.id(key)?;
        let row = *self.key_rows.get(&sid)? as usize;
        let Column::Str(col) = &self.attrs[self.key_attr? as usize].column else { return None };
        (row < col.len() && col.get(row) == sid + 1 && self.alive[row]).then_some(row)
    }

    pub fn row_of(&self, id: u64) -> Option<usize> {
        self.ids.search(id).ok().filter(|&r| self.alive[r])
    }

    pub fn kill_row(&mut self, row: usize) {
        if self.alive[row] {
            self.alive[row] = false;
            self.n_alive -= 1;
            self.alive_bytes -= self.blob_len.get(row);
        }
    }

    /// The string value of a cell, if set.
    pub fn str_cell(&self, attr: &Attr, row: usize) -> Option<&str> {
        match &attr.column {
            Column::Str(c) => match c.get(row) {
                0 => None,
                s => self.strings.get(s - 1),
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
            let (Some(sid), Some(old)) = (self.strings.id(f), self.groups.get(f)) else { continue };
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
        for row in 0..fps.len() {
            if !self.alive[row] {
                continue;
            }
            let Some(&slot) = slot_of.get(&fps.get(row)) else { continue };
            let g = &mut acc[slot].1;
            let t = ts.map(|t| t.get(row)).unwrap_or(0);
            let id = self.ids.get(row);
            g.count += 1;
            g.first_seen = g.first_seen.min(t);
            g.last_seen = g.last_seen.max(t);
            g.first_object = g.first_object.min(id);
            g.last_object = g.last_object.max(id);
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Objects as the store bench sends them: a unique uuid, a timestamp, a pid, a
    /// handful of small string attributes and 0/1 flags.
    #[test]
    fn a_row_of_a_realistic_object_stays_near_100_bytes() {
        let rec =
            ProjectRecord { id: 1, created: 0, max_age: 0, max_bytes: 0, next_object: 1, next_string: 0, next_attr: 0 };
        let mut p = ProjectIndex::new("p", rec);
        let uuid = p.add_attr("uuid", AttrType::Str);
        let ts = p.add_attr("timestamp", AttrType::Timestamp);
        let pid = p.add_attr("pid", AttrType::Int);
        let small: Vec<u32> = (0..8).map(|k| p.add_attr(&format!("s{k}"), AttrType::Str)).collect();
        let flags: Vec<u32> = (0..15).map(|k| p.add_attr(&format!("flag{k}"), AttrType::Int)).collect();
        let n = 200_000u64;
        for i in 0..n {
            let mut vals = vec![
                (uuid, Val::S(p.add_string(&format!("00000000-0000-4000-8000-{i:012x}")))),
                (ts, Val::I(1_700_000_000 + (i * 7919 % 5_184_000) as i64)),
                (pid, Val::I(1000 + (i % 30_000) as i64)),
            ];
            for (k, &a) in small.iter().enumerate() {
                let text = format!("value-{k}-{}", i % (5 + 20 * k as u64));
                let sid = p.string_id(&text).unwrap_or_else(|| p.add_string(&text));
                vals.push((a, Val::S(sid)));
            }
            vals.extend(flags.iter().enumerate().map(|(k, &a)| (a, Val::I(((i >> k) & 1) as i64))));
            p.push_row(1000 + i, 700 + i % 5000, &vals);
        }
        // What was stored reads back.
        let row = 123_457;
        assert_eq!(p.str_cell(&p.attrs[uuid as usize], row), Some("00000000-0000-4000-8000-00000001e241"));
        assert_eq!(p.str_cell(&p.attrs[small[3] as usize], row), Some(format!("value-3-{}", row % 65).as_str()));
        let Column::Int(t) = &p.attrs[ts as usize].column else { panic!("timestamp is an integer column") };
        assert_eq!(t.get(row), 1_700_000_000 + (row as i64 * 7919 % 5_184_000));
        assert_eq!(p.row_of(1000 + row as u64), Some(row));
        assert_eq!(p.blob_len.get(row), 700 + row as u64 % 5000);
        // Capacity, not length: what the allocator gave. (With wide cells, u32 ids, i64
        // values and every string held twice, a node held 3.6 times more: store_bench.)
        let bytes: usize = p.heap_bytes().iter().map(|x| x.1).sum();
        let per_row = bytes as f64 / n as f64;
        assert!(per_row < 130.0, "{per_row:.0} bytes a row: {:?}", &p.heap_bytes()[..5]);
    }
}
