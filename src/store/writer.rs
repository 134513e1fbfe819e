//! The writer thread: the only code that writes objects. It drains the job queue
//! and commits many submissions in one durable redb transaction (group commit),
//! then updates the index and acknowledges each submission — never before its
//! commit returned.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::mpsc;

use redb::{Database, ReadableTable, Table, WriteTransaction};

use super::index::{Column, ProjectIndex, UNSET_INT};
use super::ingest::{Prepared, Value, parse_int};
use super::schema::*;
use super::{Ack, SharedIndex, StoreError};

/// Most submissions committed together.
const MAX_BATCH: usize = 1024;
/// Most blob bytes committed together.
const MAX_BATCH_BYTES: usize = 64 << 20;

pub enum Job {
    Ingest(Box<Prepared>, mpsc::Sender<Result<Ack, StoreError>>),
    Delete { project: String, ids: Vec<u64>, reply: mpsc::Sender<Result<usize, StoreError>> },
}

/// Attributes that are strings whatever their values look like.
const STRING_ATTRS: &[&str] = &[
    "fingerprint",
    "callstack",
    "classifiers",
    "hostname",
    "application",
    "uuid",
    "signal",
    "version",
    "lang",
    "agent",
];

fn builtin_type(name: &str) -> Option<AttrType> {
    match name {
        "timestamp" | "received" => Some(AttrType::Timestamp),
        n if STRING_ATTRS.contains(&n) || n.starts_with("uname.") => Some(AttrType::Str),
        _ => None,
    }
}

pub fn run(db: Arc<Database>, index: SharedIndex, rx: mpsc::Receiver<Job>) {
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
            }
            if ingests.len() < MAX_BATCH && bytes < MAX_BATCH_BYTES {
                next = rx.try_recv().ok();
            }
        }
        if !ingests.is_empty() {
            ingest_batch(&db, &index, ingests);
        }
        for (project, ids, reply) in deletes {
            let _ = reply.send(delete(&db, &index, &project, &ids));
        }
    }
}

struct Tables<'t> {
    projects: Table<'t, &'static str, &'static [u8]>,
    attrs: Table<'t, (u32, u32), &'static [u8]>,
    strings: Table<'t, (u32, u32), &'static str>,
    objects: Table<'t, (u32, u64), &'static [u8]>,
    blobs: Table<'t, (u32, u64), &'static [u8]>,
    attachments: Table<'t, (u32, u64, &'static str), &'static [u8]>,
    groups: Table<'t, (u32, &'static str), &'static [u8]>,
}

impl<'t> Tables<'t> {
    fn open(txn: &'t WriteTransaction) -> Result<Tables<'t>, StoreError> {
        Ok(Tables {
            projects: txn.open_table(PROJECTS)?,
            attrs: txn.open_table(ATTRS)?,
            strings: txn.open_table(STRINGS)?,
            objects: txn.open_table(OBJECTS)?,
            blobs: txn.open_table(BLOBS)?,
            attachments: txn.open_table(ATTACHMENTS)?,
            groups: txn.open_table(GROUPS)?,
        })
    }
}

/// What one batch adds to one project, applied to the index after the commit.
struct Overlay {
    name: String,
    record: ProjectRecord,
    new_attrs: Vec<(u32, String, AttrType)>,
    attr_types: HashMap<String, (u32, AttrType)>,
    widened: Vec<u32>,
    new_strings: Vec<(u32, String)>,
    string_ids: HashMap<String, u32>,
    groups: HashMap<String, GroupRecord>,
    /// (object id, blob length, values) of each object added.
    rows: Vec<NewRow>,
}

type NewRow = (u64, u64, Vec<(u32, Val)>);

impl Overlay {
    fn new(p: &ProjectIndex, t: &Tables) -> Result<Overlay, StoreError> {
        let record: ProjectRecord = match t.projects.get(p.name.as_str())? {
            Some(v) => decode(v.value(), "project")?,
            None => return Err(StoreError::NoProject(p.name.clone())),
        };
        if record.next_attr as usize != p.attrs.len() || record.next_string as usize != p.strings.len() {
            return Err(StoreError::Corrupt(format!(
                "project {}: index and database disagree on dictionary sizes",
                p.name
            )));
        }
        Ok(Overlay {
            name: p.name.clone(),
            record,
            new_attrs: Vec::new(),
            attr_types: HashMap::new(),
            widened: Vec::new(),
            new_strings: Vec::new(),
            string_ids: HashMap::new(),
            groups: HashMap::new(),
            rows: Vec::new(),
        })
    }

    fn string(&mut self, p: &ProjectIndex, t: &mut Tables, s: &str) -> Result<u32, StoreError> {
        if let Some(&id) = p.string_ids.get(s).or_else(|| self.string_ids.get(s)) {
            return Ok(id);
        }
        let id = self.record.next_string;
        self.record.next_string += 1;
        t.strings.insert((self.record.id, id), s)?;
        self.new_strings.push((id, s.to_string()));
        self.string_ids.insert(s.to_string(), id);
        Ok(id)
    }

    fn attr(
        &mut self,
        p: &ProjectIndex,
        t: &mut Tables,
        name: &str,
        value: &Value,
    ) -> Result<(u32, AttrType), StoreError> {
        if let Some(&a) = self.attr_types.get(name) {
            return Ok(a);
        }
        if let Some(&id) = p.attr_ids.get(name) {
            return Ok((id, p.attrs[id as usize].ty));
        }
        let ty = builtin_type(name).unwrap_or(match value {
            Value::Int(_) => AttrType::Int,
            Value::Text(s) if parse_int(s).is_some() && !s.ends_with('.') => AttrType::Int,
            Value::Text(_) => AttrType::Str,
        });
        let id = self.record.next_attr;
        self.record.next_attr += 1;
        t.attrs.insert((self.record.id, id), encode(&AttrRecord { name: name.to_string(), ty })?.as_slice())?;
        self.new_attrs.push((id, name.to_string(), ty));
        self.attr_types.insert(name.to_string(), (id, ty));
        Ok((id, ty))
    }

    /// Widens an integer attribute to strings, interning the text of every integer it holds.
    fn widen(&mut self, p: &ProjectIndex, t: &mut Tables, id: u32, name: &str) -> Result<(), StoreError> {
        let mut ints: HashSet<i64> = HashSet::new();
        if let Some(a) = p.attrs.get(id as usize)
            && let Column::Int(c) = &a.column
        {
            ints.extend(c.iter().copied().filter(|&v| v != UNSET_INT));
        }
        for (_, _, vals) in &self.rows {
            for &(a, v) in vals {
                if let (true, Val::I(i)) = (a == id, v) {
                    ints.insert(i);
                }
            }
        }
        for i in ints {
            self.string(p, t, &i.to_string())?;
        }
        t.attrs.insert(
            (self.record.id, id),
            encode(&AttrRecord { name: name.to_string(), ty: AttrType::Str })?.as_slice(),
        )?;
        self.attr_types.insert(name.to_string(), (id, AttrType::Str));
        match self.new_attrs.iter_mut().find(|a| a.0 == id) {
            Some(a) => a.2 = AttrType::Str,
            None => self.widened.push(id),
        }
        Ok(())
    }

    fn add(&mut self, p: &ProjectIndex, t: &mut Tables, obj: &Prepared) -> Result<Ack, StoreError> {
        let mut vals = Vec::with_capacity(obj.values.len());
        for (name, value) in &obj.values {
            let (id, ty) = self.attr(p, t, name, value)?;
            let val = match (ty, value) {
                (AttrType::Str, Value::Text(s)) => Val::S(self.string(p, t, s)?),
                (AttrType::Str, Value::Int(i)) => Val::S(self.string(p, t, &i.to_string())?),
                (_, Value::Int(i)) => Val::I(*i),
                (_, Value::Text(s)) => match parse_int(s) {
                    Some(i) => Val::I(i),
                    None => {
                        self.widen(p, t, id, name)?;
                        Val::S(self.string(p, t, s)?)
                    }
                },
            };
            vals.push((id, val));
        }
        vals.sort_by_key(|v| v.0);
        let pid = self.record.id;
        let id = self.record.next_object;
        self.record.next_object += 1;
        let blob_len = obj.blob.len() as u64 - 1;
        let row = ObjectRow {
            blob_len,
            attachments: obj.attachments.iter().map(|a| a.0.clone()).collect(),
            values: vals.clone(),
        };
        t.objects.insert((pid, id), encode(&row)?.as_slice())?;
        t.blobs.insert((pid, id), obj.blob.as_slice())?;
        for (name, bytes) in &obj.attachments {
            t.attachments.insert((pid, id, name.as_str()), bytes.as_slice())?;
        }
        let unique = !self.groups.contains_key(&obj.fingerprint) && !p.groups.contains_key(&obj.fingerprint);
        let g = self.groups.entry(obj.fingerprint.clone()).or_insert_with(|| {
            p.groups.get(&obj.fingerprint).cloned().unwrap_or(GroupRecord {
                count: 0,
                first_seen: obj.timestamp,
                last_seen: obj.timestamp,
                first_object: id,
                last_object: id,
                callstack: obj.callstack.clone(),
                classifiers: obj.classifiers.clone(),
            })
        });
        g.count += 1;
        g.first_seen = g.first_seen.min(obj.timestamp);
        g.last_seen = g.last_seen.max(obj.timestamp);
        g.first_object = g.first_object.min(id);
        g.last_object = g.last_object.max(id);
        self.rows.push((id, blob_len, vals));
        Ok(Ack { rxid: id, fingerprint: obj.fingerprint.clone(), unique })
    }

    fn finish(&self, t: &mut Tables) -> Result<(), StoreError> {
        for (fp, g) in &self.groups {
            t.groups.insert((self.record.id, fp.as_str()), encode(g)?.as_slice())?;
        }
        t.projects.insert(self.name.as_str(), encode(&self.record)?.as_slice())?;
        Ok(())
    }

    fn apply(self, p: &mut ProjectIndex) {
        for (id, name, ty) in &self.new_attrs {
            let got = p.add_attr(name, *ty);
            debug_assert_eq!(got, *id);
        }
        for (id, s) in &self.new_strings {
            let got = p.add_string(s);
            debug_assert_eq!(got, *id);
        }
        for id in &self.widened {
            p.widen_to_str(*id);
        }
        for (id, blob_len, vals) in &self.rows {
            p.push_row(*id, *blob_len, vals);
        }
        p.groups.extend(self.groups);
        let (max_age, max_bytes) = (p.record.max_age, p.record.max_bytes);
        p.record = self.record;
        p.record.max_age = max_age;
        p.record.max_bytes = max_bytes;
    }
}

type Reply = mpsc::Sender<Result<Ack, StoreError>>;

fn ingest_batch(db: &Database, index: &SharedIndex, jobs: Vec<(Box<Prepared>, Reply)>) {
    let mut acks: Vec<(Reply, Ack)> = Vec::with_capacity(jobs.len());
    // Every submission of a failed batch hears why, not only those written before the failure.
    let all: Vec<Reply> = jobs.iter().map(|(_, r)| r.clone()).collect();
    let mut refused = vec![false; jobs.len()];
    let result = (|| -> Result<HashMap<String, Overlay>, StoreError> {
        let idx = index.read().map_err(|_| StoreError::Io("index lock poisoned".into()))?;
        let mut txn = db.begin_write()?;
        txn.set_quick_repair(true);
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
        txn.commit()?;
        Ok(overlays)
    })();
    match result {
        Ok(overlays) => {
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
            let msg = e.to_string();
            for (reply, _) in all.iter().zip(&refused).filter(|(_, r)| !**r) {
                let _ = reply.send(Err(StoreError::Io(format!("storing failed: {msg}"))));
            }
        }
    }
}

fn delete(db: &Database, index: &SharedIndex, project: &str, ids: &[u64]) -> Result<usize, StoreError> {
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
            if c[r] > 0 {
                fps.insert(p.strings[c[r] as usize - 1].clone());
            }
        }
    }
    for &r in &rows {
        p.kill_row(r);
    }
    let fps: Vec<String> = fps.into_iter().collect();
    let new_groups: Vec<(String, Option<GroupRecord>)> = p.recompute_groups(&fps).into_iter().collect();
    let result = (|| -> Result<(), StoreError> {
        let mut txn = db.begin_write()?;
        txn.set_quick_repair(true);
        {
            let mut objects = txn.open_table(OBJECTS)?;
            let mut blobs = txn.open_table(BLOBS)?;
            let mut attachments = txn.open_table(ATTACHMENTS)?;
            let mut groups = txn.open_table(GROUPS)?;
            for &r in &rows {
                let id = p.ids[r];
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
        txn.commit()?;
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
                p.alive_bytes += p.blob_len[r];
            }
            Err(e)
        }
    }
}
