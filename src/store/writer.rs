//! The writer thread: the only code that writes objects. It drains the job queue
//! and commits many submissions in one durable redb transaction (group commit),
//! then updates the index and acknowledges each submission — never before its
//! commit returned.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::{Mutex, MutexGuard, mpsc};

use super::catalog::{Bytes, Catalog as Database, Str, TableMut as Table, Text, WriteTxn as WriteTransaction};

use super::index::{Column, ProjectIndex, UNSET_INT};
use super::ingest::{Prepared, Value, parse_int};
use super::outbox::{Delivery, Event, Pending, Rule, Trigger};
use super::schema::*;
use super::triage::{self, Change, State, TriageRecord};
use super::{Ack, SharedIndex, StoreError, format_object_id};

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

struct Tables<'t> {
    projects: Table<'t, Str, Bytes>,
    attrs: Table<'t, (u32, u32), Bytes>,
    strings: Table<'t, (u32, u32), Text>,
    objects: Table<'t, (u32, u64), Bytes>,
    blobs: Table<'t, (u32, u64), Bytes>,
    attachments: Table<'t, (u32, u64, Str), Bytes>,
    groups: Table<'t, (u32, Str), Bytes>,
    triage: Table<'t, (u32, Str), Bytes>,
    history: Table<'t, (u32, Str, u64), Bytes>,
    rules: Table<'t, (u32, u32), Bytes>,
    outbox: Table<'t, u64, Bytes>,
    notified: Table<'t, (u32, u32, Str), Bytes>,
    meta: Table<'t, Str, Bytes>,
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
            triage: txn.open_table(TRIAGE)?,
            history: txn.open_table(HISTORY)?,
            rules: txn.open_table(RULES)?,
            outbox: txn.open_table(OUTBOX)?,
            notified: txn.open_table(NOTIFIED)?,
            meta: txn.open_table(META)?,
        })
    }
}

/// The next delivery id (META `next_delivery`), advanced by `n` in this transaction.
pub(super) fn take_delivery_ids(meta: &mut Table<Str, Bytes>, n: u64) -> Result<u64, StoreError> {
    let cur = match meta.get("next_delivery")? {
        Some(v) => {
            let b = v.value();
            let mut a = [0u8; 8];
            let k = b.len().min(8);
            a[..k].copy_from_slice(&b[..k]);
            u64::from_le_bytes(a).max(1)
        }
        None => 1,
    };
    meta.insert("next_delivery", (cur + n).to_le_bytes().as_slice())?;
    Ok(cur)
}

/// Appends one line to a group's history (sequence = last + 1).
fn append_history(
    history: &mut Table<(u32, Str, u64), Bytes>,
    pid: u32,
    fp: &str,
    entry: &triage::HistoryEntry,
) -> Result<(), StoreError> {
    let last = history.range((pid, fp, 0)..=(pid, fp, u64::MAX))?.next_back().transpose()?.map(|(k, _)| k.value().2);
    let seq = last.map(|l| l + 1).unwrap_or(0);
    history.insert((pid, fp, seq), encode(entry)?.as_slice())?;
    Ok(())
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
    /// Triage records changed by this batch (regressions, mutes ending).
    triage: HashMap<String, TriageRecord>,
    /// The project's notification rules (read once per batch).
    rules: Option<Vec<Rule>>,
    /// Idempotency key → the answer given to the first submission with it in this batch.
    keys: HashMap<String, Ack>,
}

/// The attribute a submission carries to be stored at most once: the collector's
/// crash uuid. A client that lost the answer (killed, timed out) sends the crash
/// again; the second submission gets the first one's id and stores nothing.
pub const IDEMPOTENCY_KEY: &str = "coresnap.uuid";

fn idempotency_key(obj: &Prepared) -> Option<&str> {
    obj.values.iter().find(|(n, _)| n == IDEMPOTENCY_KEY).and_then(|(_, v)| match v {
        Value::Text(s) if !s.is_empty() => Some(s.as_str()),
        _ => None,
    })
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
            triage: HashMap::new(),
            rules: None,
            keys: HashMap::new(),
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

    /// The attribute id and stored value of one `name = value`, creating the
    /// attribute, interning the string, or widening the column as needed.
    fn cell(&mut self, p: &ProjectIndex, t: &mut Tables, name: &str, value: &Value) -> Result<(u32, Val), StoreError> {
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
        Ok((id, val))
    }

    /// The answer to a submission already stored (by an earlier request or earlier in
    /// this batch) under the same idempotency key.
    fn stored_before(&self, p: &ProjectIndex, obj: &Prepared) -> Option<Ack> {
        let key = idempotency_key(obj)?;
        let (rxid, fingerprint) = match self.keys.get(key) {
            Some(first) => (first.rxid, first.fingerprint.clone()),
            None => {
                let row = p.find_text(IDEMPOTENCY_KEY, key)?;
                let fp = p.attr("fingerprint").and_then(|a| p.str_cell(a, row)).unwrap_or_default();
                (p.ids[row], fp.to_string())
            }
        };
        Some(Ack {
            rxid,
            fingerprint,
            unique: false,
            warnings: vec![format!("{IDEMPOTENCY_KEY} {key} was already stored as object {}", format_object_id(rxid))],
        })
    }

    fn add(&mut self, p: &ProjectIndex, t: &mut Tables, obj: &Prepared) -> Result<Ack, StoreError> {
        if let Some(ack) = self.stored_before(p, obj) {
            return Ok(ack);
        }
        let mut vals = Vec::with_capacity(obj.values.len());
        for (name, value) in &obj.values {
            vals.push(self.cell(p, t, name, value)?);
        }
        vals.sort_by_key(|v| v.0);
        let pid = self.record.id;
        let id = self.record.next_object;
        self.record.next_object += 1;
        let blob_len = obj.blob_len;
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
        self.after_crash(p, t, obj, id, unique)?;
        let ack = Ack { rxid: id, fingerprint: obj.fingerprint.clone(), unique, warnings: obj.warnings.clone() };
        if let Some(key) = idempotency_key(obj) {
            self.keys.insert(key.to_string(), ack.clone());
        }
        Ok(ack)
    }

    /// What a crash does to its group's triage (a regression reopens it, a mute may
    /// end) and which notifications it causes: all in this transaction.
    fn after_crash(
        &mut self,
        p: &ProjectIndex,
        t: &mut Tables,
        obj: &Prepared,
        id: u64,
        unique: bool,
    ) -> Result<(), StoreError> {
        let pid = self.record.id;
        let fp = obj.fingerprint.as_str();
        let text = |name: &str| -> Option<String> {
            obj.values.iter().find(|(n, _)| n == name).map(|(_, v)| match v {
                Value::Text(s) => s.clone(),
                Value::Int(i) => i.to_string(),
            })
        };
        let host = text("hostname").unwrap_or_default();
        let string_ids = &self.string_ids;
        let seen = |s: &str| string_ids.get(s).copied().or_else(|| p.string_ids.get(s).copied());
        let crash = triage::Crash { timestamp: obj.timestamp, host: &host, attr: &text, seen: &seen };
        let mut events: Vec<(&'static str, String)> = Vec::new();
        if unique {
            events.push(("new", "the first crash of this group".into()));
        }
        let load = |ov: &Overlay, t: &Tables, fp: &str| -> Result<Option<TriageRecord>, StoreError> {
            Ok(match ov.triage.get(fp) {
                Some(r) => Some(r.clone()),
                None => match t.triage.get((pid, fp))? {
                    Some(v) => Some(decode::<TriageRecord>(v.value(), "triage")?),
                    None => None,
                },
            })
        };
        let mut current = load(self, t, fp)?;
        // A merged group's crashes count for its target: its triage, its notifications.
        let target = current.as_ref().and_then(|r| r.merged_into.clone());
        let fp = match &target {
            Some(tg) => {
                current = load(self, t, tg)?;
                tg.as_str()
            }
            None => fp,
        };
        let mut muted = false;
        if let Some(mut rec) = current {
            let mut changed = None;
            match rec.state {
                State::Resolved => {
                    if let Some(r) = rec.resolved_until.as_ref().and_then(|u| triage::breaks(u, &crash)) {
                        rec.state = State::Open;
                        rec.regressed = true;
                        rec.resolved_until = None;
                        let what = format!(
                            "reopened as a regression by object {}: {}",
                            crate::store::format_object_id(id),
                            r.reason
                        );
                        changed = Some(("rule:regression", what));
                        events.push(("regression", r.reason));
                    }
                }
                State::Muted => {
                    let before = rec.window.clone();
                    match triage::unmutes(&mut rec, &crash) {
                        Some(why) => {
                            rec.state = State::Open;
                            rec.muted_until = None;
                            rec.window.clear();
                            changed = Some((
                                "rule:unmute",
                                format!("unmuted by object {}: {why}", crate::store::format_object_id(id)),
                            ));
                            events.push(("unmuted", why));
                        }
                        None => {
                            muted = true;
                            if rec.window != before {
                                self.triage.insert(fp.to_string(), rec.clone());
                            }
                        }
                    }
                }
                _ => {}
            }
            if let Some((who, what)) = changed {
                rec.updated = obj.timestamp;
                append_history(
                    &mut t.history,
                    pid,
                    fp,
                    &triage::HistoryEntry { time: super::now(), who: who.into(), what },
                )?;
                self.triage.insert(fp.to_string(), rec);
            }
        }
        let fp = fp.to_string();
        self.notify(t, obj, &fp, id, &events, muted, &text)
    }

    /// Puts in the outbox one notification per matching rule and integration.
    #[allow(clippy::too_many_arguments)]
    fn notify(
        &mut self,
        t: &mut Tables,
        obj: &Prepared,
        fp: &str,
        id: u64,
        events: &[(&'static str, String)],
        muted: bool,
        text: &dyn Fn(&str) -> Option<String>,
    ) -> Result<(), StoreError> {
        let pid = self.record.id;
        if self.rules.is_none() {
            let mut rules = Vec::new();
            for e in t.rules.range((pid, 0)..=(pid, u32::MAX))? {
                rules.push(decode::<Rule>(e?.1.value(), "rule")?);
            }
            self.rules = Some(rules);
        }
        let rules = self.rules.clone().unwrap_or_default();
        let now = obj.timestamp.max(super::now());
        for rule in &rules {
            if !rule.filters.iter().all(|c| c.matches(text(&c.attr).as_deref())) {
                continue;
            }
            let mut state: NotifyState = match t.notified.get((pid, rule.id, fp))? {
                Some(v) => decode(v.value(), "notify state")?,
                None => NotifyState::default(),
            };
            let before = state.clone();
            let mut fire: Option<(&str, String)> = None;
            for trig in &rule.triggers {
                match trig {
                    Trigger::Threshold { n, window } => {
                        state.window.retain(|ts| *ts > obj.timestamp - window);
                        state.window.push(obj.timestamp);
                        let keep = (*n as usize).saturating_add(1);
                        if state.window.len() > keep {
                            let cut = state.window.len() - keep;
                            state.window.drain(..cut);
                        }
                        if state.window.len() as u64 > *n && !muted && fire.is_none() {
                            fire = Some(("threshold", format!("more than {n} crashes within {window} s")));
                            state.window.clear();
                        }
                    }
                    other => {
                        if let Some((k, why)) = events.iter().find(|(k, _)| *k == other.event())
                            && fire.is_none()
                        {
                            fire = Some((k, why.clone()));
                        }
                    }
                }
            }
            if let Some((kind, reason)) = fire {
                // New groups and regressions always notify; repeats of a rule within
                // its interval do not.
                let due = state.last == 0 || now - state.last >= rule.every || matches!(kind, "new" | "regression");
                if due {
                    state.last = now;
                    let first = take_delivery_ids(&mut t.meta, rule.to.len() as u64)?;
                    for (i, to) in rule.to.iter().enumerate() {
                        let pending = Pending {
                            id: first + i as u64,
                            integration: to.clone(),
                            event: Event {
                                kind: kind.to_string(),
                                project: self.name.clone(),
                                fingerprint: fp.to_string(),
                                object: id,
                                reason: reason.clone(),
                                time: now,
                            },
                            attempts: 0,
                            next_at_ms: 0,
                        };
                        t.outbox.insert(pending.id, encode(&(pid, pending.clone()))?.as_slice())?;
                    }
                }
            }
            if state != before {
                t.notified.insert((pid, rule.id, fp), encode(&state)?.as_slice())?;
            }
        }
        Ok(())
    }

    fn finish(&self, t: &mut Tables) -> Result<(), StoreError> {
        for (fp, g) in &self.groups {
            t.groups.insert((self.record.id, fp.as_str()), encode(g)?.as_slice())?;
        }
        for (fp, r) in &self.triage {
            t.triage.insert((self.record.id, fp.as_str()), encode(r)?.as_slice())?;
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
        p.triage.extend(self.triage);
        let (max_age, max_bytes) = (p.record.max_age, p.record.max_bytes);
        p.record = self.record;
        p.record.max_age = max_age;
        p.record.max_bytes = max_bytes;
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
                p.alive_bytes += p.blob_len[r];
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
