//! What one ingest batch writes to one project inside the writer's transaction:
//! new attributes (typed, widened), dictionary strings, object rows, blobs and
//! attachments, group aggregates, regressions and mute ends of triage, and the
//! notifications they cause. Applied to the index only after the commit.

use std::collections::{HashMap, HashSet};

use super::catalog::{Bytes, Str, TableMut as Table, Text, WriteTxn as WriteTransaction};
use super::index::{Column, IDEMPOTENCY_KEY, ProjectIndex, UNSET_INT};
use super::ingest::{Prepared, Value, parse_int};
use super::outbox::{Event, Pending, Rule, Trigger};
use super::schema::*;
use super::triage::{self, State, TriageRecord};
use super::{Ack, StoreError, format_object_id};

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

pub(super) struct Tables<'t> {
    pub(super) projects: Table<'t, Str, Bytes>,
    pub(super) attrs: Table<'t, (u32, u32), Bytes>,
    pub(super) strings: Table<'t, (u32, u32), Text>,
    pub(super) objects: Table<'t, (u32, u64), Bytes>,
    pub(super) blobs: Table<'t, (u32, u64), Bytes>,
    pub(super) attachments: Table<'t, (u32, u64, Str), Bytes>,
    pub(super) groups: Table<'t, (u32, Str), Bytes>,
    pub(super) triage: Table<'t, (u32, Str), Bytes>,
    pub(super) history: Table<'t, (u32, Str, u64), Bytes>,
    pub(super) rules: Table<'t, (u32, u32), Bytes>,
    pub(super) outbox: Table<'t, u64, Bytes>,
    pub(super) notified: Table<'t, (u32, u32, Str), Bytes>,
    pub(super) meta: Table<'t, Str, Bytes>,
}

impl<'t> Tables<'t> {
    pub(super) fn open(txn: &'t WriteTransaction) -> Result<Tables<'t>, StoreError> {
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
pub(super) fn append_history(
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
pub(super) struct Overlay {
    name: String,
    pub(super) record: ProjectRecord,
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

fn idempotency_key(obj: &Prepared) -> Option<&str> {
    obj.values.iter().find(|(n, _)| n == IDEMPOTENCY_KEY).and_then(|(_, v)| match v {
        Value::Text(s) if !s.is_empty() => Some(s.as_str()),
        _ => None,
    })
}

type NewRow = (u64, u64, Vec<(u32, Val)>);

impl Overlay {
    pub(super) fn new(p: &ProjectIndex, t: &Tables) -> Result<Overlay, StoreError> {
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
        if let Some(id) = p.string_id(s).or_else(|| self.string_ids.get(s).copied()) {
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
            ints.extend((0..c.len()).map(|r| c.get(r)).filter(|&v| v != UNSET_INT));
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
    pub(super) fn cell(
        &mut self,
        p: &ProjectIndex,
        t: &mut Tables,
        name: &str,
        value: &Value,
    ) -> Result<(u32, Val), StoreError> {
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
                let row = p.row_of_key(key)?;
                let fp = p.attr("fingerprint").and_then(|a| p.str_cell(a, row)).unwrap_or_default();
                (p.ids.get(row), fp.to_string())
            }
        };
        Some(Ack {
            rxid,
            fingerprint,
            unique: false,
            warnings: vec![format!("{IDEMPOTENCY_KEY} {key} was already stored as object {}", format_object_id(rxid))],
        })
    }

    pub(super) fn add(&mut self, p: &ProjectIndex, t: &mut Tables, obj: &Prepared) -> Result<Ack, StoreError> {
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
        let seen = |s: &str| string_ids.get(s).copied().or_else(|| p.string_id(s));
        let crash = triage::Crash { timestamp: obj.timestamp, host: &host, attr: &text, seen: &seen };
        let mut events: Vec<(&'static str, String)> = Vec::new();
        if unique {
            events.push(("new", "the first crash of this group".into()));
        }
        // The index holds every group's triage as committed (a writer catches up
        // first); this batch's changes are in the overlay.
        let load = |ov: &Overlay, fp: &str| ov.triage.get(fp).or_else(|| p.triage.get(fp)).cloned();
        let mut current = load(self, fp);
        // A merged group's crashes count for its target: its triage, its notifications.
        let target = current.as_ref().and_then(|r| r.merged_into.clone());
        let fp = match &target {
            Some(tg) => {
                current = load(self, tg);
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

    pub(super) fn finish(&self, t: &mut Tables) -> Result<(), StoreError> {
        for (fp, g) in &self.groups {
            t.groups.insert((self.record.id, fp.as_str()), encode(g)?.as_slice())?;
        }
        for (fp, r) in &self.triage {
            t.triage.insert((self.record.id, fp.as_str()), encode(r)?.as_slice())?;
        }
        t.projects.insert(self.name.as_str(), encode(&self.record)?.as_slice())?;
        Ok(())
    }

    pub(super) fn apply(self, p: &mut ProjectIndex) {
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
