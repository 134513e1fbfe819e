//! Triage and notifications in the store: the `Store` methods (triage changes
//! through the writer, history, integrations, rules, the outbox) and the workflow
//! API as JSON in, JSON out: triage (state, assignee, tags, tickets,
//! comments, history, the reopen dry run) and notification integrations, rules
//! and delivery logs. The server calls it after authorizing a request; `bt morgue`
//! and `bt coroner integration` on a local data directory call it directly, so a
//! server and a directory answer alike.

use serde_json::{Value as Json, json};

use super::outbox::{Integration, Rule};
use super::schema::{DELIVERIES, GroupRecord, HISTORY, INTEGRATIONS, META, OUTBOX, RULES, decode, encode};
use super::triage::{Change, HistoryEntry, TriageRecord};
use super::{Store, StoreError, now};
use super::{index, ingest, outbox, overlay, triage, writer};

use std::collections::HashMap;
use std::sync::mpsc;

/// One workflow request.
pub enum Call<'a> {
    /// State and history of a group.
    Triage { fingerprint: &'a str },
    /// `{"fingerprints": [...], "change": Change}`.
    Change(&'a Json),
    /// `{"fingerprint", "attributes": {...}, "timestamp"}`: would a crash reopen it?
    DryRun(&'a Json),
    /// Integrations (without secrets) and rules.
    Integrations,
    /// `{"add": Integration}`, `{"remove": NAME}`, `{"test": NAME}`.
    Integration(&'a Json),
    /// `{"add": Rule}`, `{"remove": ID}`.
    Rule(&'a Json),
    /// The delivery log of an integration.
    Log { name: &'a str },
}

pub fn record_json(fp: &str, r: &TriageRecord) -> Json {
    json!({
        "fingerprint": fp,
        "state": r.state_at(now()).as_str(),
        "regressed": r.regressed,
        "assignee": r.assignee,
        "tags": r.tags,
        "tickets": r.tickets.iter().map(|t| json!({"system": t.system, "key": t.key, "url": t.url})).collect::<Vec<_>>(),
        "resolved_until": r.resolved_until.as_ref().map(|u| serde_json::to_value(u).unwrap_or(Json::Null)),
        "muted_until": r.muted_until.as_ref().map(|u| serde_json::to_value(u).unwrap_or(Json::Null)),
        "comments": r.comments,
        "merged_into": r.merged_into,
        "updated": r.updated,
    })
}

pub fn history_json(h: &[HistoryEntry]) -> Json {
    json!(h.iter().map(|e| json!({"time": e.time, "who": e.who, "what": e.what})).collect::<Vec<_>>())
}

fn bad(m: impl Into<String>) -> StoreError {
    StoreError::BadInput(m.into())
}

/// Runs one call for `who` (`user:NAME`, `token`) on a project; the caller checked
/// that `who` may.
pub fn call(store: &Store, project: &str, who: &str, c: Call) -> Result<Json, StoreError> {
    match c {
        Call::Triage { fingerprint } => {
            let (fp, g, rec, history) = store.triage_of(project, fingerprint)?;
            let mut v = record_json(&fp, &rec);
            v["count"] = json!(g.count);
            v["first_seen"] = json!(g.first_seen);
            v["last_seen"] = json!(g.last_seen);
            v["history"] = history_json(&history);
            Ok(v)
        }
        Call::Change(v) => {
            let fps: Vec<String> = serde_json::from_value(v["fingerprints"].clone())
                .map_err(|_| bad("fingerprints must be a list of strings"))?;
            let change: Change =
                serde_json::from_value(v["change"].clone()).map_err(|e| bad(format!("bad change: {e}")))?;
            let recs = store.triage(project, &fps, change, who)?;
            Ok(json!({"groups": recs.iter().map(|(fp, r)| record_json(fp, r)).collect::<Vec<_>>()}))
        }
        Call::DryRun(v) => {
            let fp = v["fingerprint"].as_str().ok_or_else(|| bad("missing fingerprint"))?;
            let attrs: Vec<(String, String)> = v["attributes"]
                .as_object()
                .map(|o| {
                    o.iter()
                        .map(|(k, v)| (k.clone(), v.as_str().map(str::to_string).unwrap_or_else(|| v.to_string())))
                        .collect()
                })
                .unwrap_or_default();
            let ts = v["timestamp"].as_i64().unwrap_or_else(now);
            let r = store.would_reopen(project, fp, &attrs, ts)?;
            Ok(json!({"reopens": r.is_some(), "reason": r}))
        }
        Call::Integrations => {
            let integrations = store.integrations(project)?;
            let rules = store.notification_rules(project)?;
            Ok(json!({
                "integrations": integrations.iter().map(Integration::public).collect::<Vec<_>>(),
                "rules": rules,
            }))
        }
        Call::Integration(v) => {
            if let Some(add) = v.get("add") {
                let mut i: Integration =
                    serde_json::from_value(add.clone()).map_err(|e| bad(format!("bad integration: {e}")))?;
                i.created = now();
                store.integration_add(project, i.clone())?;
                return Ok(json!({"integration": i.public()}));
            }
            if let Some(name) = v.get("remove").and_then(Json::as_str) {
                store.integration_remove(project, name)?;
                return Ok(json!({}));
            }
            if let Some(name) = v.get("test").and_then(Json::as_str) {
                let id = store.notify_test(project, name)?;
                return Ok(json!({"delivery": id.to_string()}));
            }
            Err(bad("expected add, remove or test"))
        }
        Call::Rule(v) => {
            if let Some(add) = v.get("add") {
                let rule: Rule = serde_json::from_value(add.clone()).map_err(|e| bad(format!("bad rule: {e}")))?;
                let id = store.rule_add(project, rule)?;
                return Ok(json!({"id": id}));
            }
            if let Some(id) = v.get("remove").and_then(Json::as_u64) {
                store.rule_remove(project, u32::try_from(id).map_err(|_| bad("no such rule"))?)?;
                return Ok(json!({}));
            }
            Err(bad("expected add or remove"))
        }
        Call::Log { name } => {
            let log = store.deliveries(project, name, 1000)?;
            Ok(json!({"deliveries": log.iter().map(|d| json!({
                "id": d.id.to_string(), "time": d.time, "event": d.event, "fingerprint": d.fingerprint,
                "status": d.status.as_str(), "code": d.code, "attempts": d.attempts, "error": d.error,
            })).collect::<Vec<_>>()}))
        }
    }
}

// ---------------------------------------------------------------------------
// The store's side of triage and notifications.

impl Store {
    // ---------------------------------------------------------------------------
    // Triage

    /// Applies a triage change to groups of a project, with a history line each
    /// (`who`: `user:NAME`, `token`, `integration:NAME`). Unknown groups are refused.
    pub fn triage(
        &self,
        project: &str,
        fingerprints: &[String],
        change: triage::Change,
        who: &str,
    ) -> Result<Vec<(String, triage::TriageRecord)>, StoreError> {
        if fingerprints.is_empty() {
            return Err(StoreError::BadInput("no fingerprint given".into()));
        }
        let (tx, rx) = mpsc::channel();
        self.send(writer::Job::Triage {
            project: project.to_string(),
            fingerprints: fingerprints.to_vec(),
            change,
            who: who.to_string(),
            reply: tx,
        })?;
        rx.recv().map_err(|_| StoreError::Closed)?
    }

    /// A group (named by its fingerprint or a unique prefix): its full fingerprint,
    /// aggregates, triage (default: open) and history, oldest first.
    #[allow(clippy::type_complexity)]
    pub fn triage_of(
        &self,
        project: &str,
        fingerprint: &str,
    ) -> Result<(String, GroupRecord, triage::TriageRecord, Vec<triage::HistoryEntry>), StoreError> {
        let p = self.project_index(project)?;
        let fingerprint = p
            .group_named(fingerprint)
            .ok_or_else(|| StoreError::NotFound(format!("group {fingerprint} in project {project}")))?;
        let fingerprint = fingerprint.as_str();
        let group = p
            .groups
            .get(fingerprint)
            .cloned()
            .ok_or_else(|| StoreError::NotFound(format!("group {fingerprint} in project {project}")))?;
        let rec = p.triage.get(fingerprint).cloned().unwrap_or_default();
        let txn = self.db.begin_read()?;
        let table = txn.open_table(HISTORY)?;
        let pid = p.record.id;
        let mut history = Vec::new();
        for e in table.range((pid, fingerprint, 0)..=(pid, fingerprint, u64::MAX))? {
            history.push(decode(e?.1.value(), "history")?);
        }
        Ok((fingerprint.to_string(), group, rec, history))
    }

    /// Dry run: would a crash with these attributes (and time) reopen the group?
    /// Returns the reason it would, or None.
    pub fn would_reopen(
        &self,
        project: &str,
        fingerprint: &str,
        attributes: &[(String, String)],
        timestamp: i64,
    ) -> Result<Option<String>, StoreError> {
        let p = self.project_index(project)?;
        let Some(fingerprint) = p.group_named(fingerprint) else {
            return Err(StoreError::NotFound(format!("group {fingerprint} in project {project}")));
        };
        let Some(rec) = p.triage.get(&fingerprint) else { return Ok(None) };
        let (triage::State::Resolved, Some(until)) = (rec.state, &rec.resolved_until) else { return Ok(None) };
        let attr = |n: &str| attributes.iter().find(|(k, _)| k == n).map(|(_, v)| v.clone());
        // A version the store never saw would be first seen now: after everything.
        let unseen = p.strings.len() as u32;
        let seen = |s: &str| Some(p.string_id(s).unwrap_or(unseen));
        let crash = triage::Crash { timestamp, host: "", attr: &attr, seen: &seen };
        Ok(triage::breaks(until, &crash).map(|r| r.reason))
    }

    // ---------------------------------------------------------------------------
    // Notifications: integrations, rules, the outbox

    pub fn integration_add(&self, project: &str, integration: outbox::Integration) -> Result<(), StoreError> {
        let pid = self.project_id(project)?;
        if !ingest::valid_attr_name(&integration.name) {
            return Err(StoreError::BadInput(format!(
                "bad integration name {:?}: letters, digits, '.', '_', '-'",
                integration.name
            )));
        }
        let txn = self.begin_write()?;
        {
            let mut t = txn.open_table(INTEGRATIONS)?;
            if t.get((pid, integration.name.as_str()))?.is_some() {
                return Err(StoreError::BadInput(format!("integration {} exists", integration.name)));
            }
            t.insert((pid, integration.name.as_str()), encode(&integration)?.as_slice())?;
        }
        txn.commit()?;
        Ok(())
    }

    pub fn integration_remove(&self, project: &str, name: &str) -> Result<(), StoreError> {
        let pid = self.project_id(project)?;
        let txn = self.begin_write()?;
        {
            let mut t = txn.open_table(INTEGRATIONS)?;
            if t.remove((pid, name))?.is_none() {
                return Err(StoreError::NotFound(format!("integration {name}")));
            }
        }
        txn.commit()?;
        Ok(())
    }

    pub fn integrations(&self, project: &str) -> Result<Vec<outbox::Integration>, StoreError> {
        let pid = self.project_id(project)?;
        let txn = self.db.begin_read()?;
        let t = txn.open_table(INTEGRATIONS)?;
        let mut out = Vec::new();
        for e in t.range((pid, "")..(pid + 1, ""))? {
            out.push(decode(e?.1.value(), "integration")?);
        }
        Ok(out)
    }

    /// An integration of a project, secrets included (for the sender only).
    pub fn integration(&self, project: &str, name: &str) -> Result<outbox::Integration, StoreError> {
        let pid = self.project_id(project)?;
        let txn = self.db.begin_read()?;
        let t = txn.open_table(INTEGRATIONS)?;
        let v = t.get((pid, name))?.ok_or_else(|| StoreError::NotFound(format!("integration {name}")))?;
        decode(v.value(), "integration")
    }

    /// Adds a rule (its id is assigned); every integration it names must exist.
    pub fn rule_add(&self, project: &str, mut rule: outbox::Rule) -> Result<u32, StoreError> {
        let pid = self.project_id(project)?;
        if rule.to.is_empty() || rule.triggers.is_empty() {
            return Err(StoreError::BadInput("a rule needs --on and --to".into()));
        }
        // A threshold keeps its window of recent crashes per group: bounded.
        if rule.triggers.iter().any(|t| matches!(t, outbox::Trigger::Threshold { n, .. } if *n > triage::MAX_COUNT))
            || rule.to.len() > 16
            || rule.filters.len() > 16
        {
            return Err(StoreError::BadInput(format!(
                "a rule has at most 16 integrations and 16 filters, and a threshold of at most {}",
                triage::MAX_COUNT
            )));
        }
        let txn = self.begin_write()?;
        {
            let integ = txn.open_table(INTEGRATIONS)?;
            for to in &rule.to {
                if integ.get((pid, to.as_str()))?.is_none() {
                    return Err(StoreError::NotFound(format!("integration {to}")));
                }
            }
            let mut t = txn.open_table(RULES)?;
            let last = t.range((pid, 0)..=(pid, u32::MAX))?.next_back().transpose()?.map(|(k, _)| k.value().1);
            rule.id = last.map(|l| l + 1).unwrap_or(1);
            t.insert((pid, rule.id), encode(&rule)?.as_slice())?;
        }
        txn.commit()?;
        Ok(rule.id)
    }

    pub fn rule_remove(&self, project: &str, id: u32) -> Result<(), StoreError> {
        let pid = self.project_id(project)?;
        let txn = self.begin_write()?;
        {
            let mut t = txn.open_table(RULES)?;
            if t.remove((pid, id))?.is_none() {
                return Err(StoreError::NotFound(format!("rule {id}")));
            }
        }
        txn.commit()?;
        Ok(())
    }

    pub fn notification_rules(&self, project: &str) -> Result<Vec<outbox::Rule>, StoreError> {
        let pid = self.project_id(project)?;
        let txn = self.db.begin_read()?;
        let t = txn.open_table(RULES)?;
        let mut out = Vec::new();
        for e in t.range((pid, 0)..=(pid, u32::MAX))? {
            out.push(decode(e?.1.value(), "rule")?);
        }
        Ok(out)
    }

    /// The delivery log of an integration, newest first.
    pub fn deliveries(&self, project: &str, name: &str, limit: usize) -> Result<Vec<outbox::Delivery>, StoreError> {
        let pid = self.project_id(project)?;
        let txn = self.db.begin_read()?;
        let t = txn.open_table(DELIVERIES)?;
        let mut out = Vec::new();
        for e in t.range((pid, name, 0)..=(pid, name, u64::MAX))?.rev().take(limit) {
            out.push(decode(e?.1.value(), "delivery")?);
        }
        Ok(out)
    }

    /// Puts a test message for an integration in the outbox; returns its delivery id.
    pub fn notify_test(&self, project: &str, name: &str) -> Result<u64, StoreError> {
        let pid = self.project_id(project)?;
        self.integration(project, name)?;
        let txn = self.begin_write()?;
        let id;
        {
            id = overlay::take_delivery_ids(&mut txn.open_table(META)?, 1)?;
            let pending = outbox::Pending {
                id,
                integration: name.to_string(),
                event: outbox::Event {
                    kind: "test".into(),
                    project: project.to_string(),
                    fingerprint: String::new(),
                    object: 0,
                    reason: "a test message from bt coroner integration test".into(),
                    time: now(),
                },
                attempts: 0,
                next_at_ms: 0,
            };
            txn.open_table(OUTBOX)?.insert(id, encode(&(pid, pending))?.as_slice())?;
        }
        txn.commit()?;
        Ok(id)
    }

    /// Notifications due at `now_ms`, oldest first, at most `limit`.
    pub fn due_notifications(&self, now_ms: i64, limit: usize) -> Result<Vec<outbox::Pending>, StoreError> {
        if self.db.shared() {
            return self.claim_notifications(now_ms, limit);
        }
        let txn = self.db.begin_read()?;
        let t = txn.open_table(OUTBOX)?;
        let mut out = Vec::new();
        for e in t.iter()? {
            let (_, p): (u32, outbox::Pending) = decode(e?.1.value(), "outbox entry")?;
            if p.next_at_ms <= now_ms {
                out.push(p);
                if out.len() >= limit {
                    break;
                }
            }
        }
        Ok(out)
    }

    /// On a shared catalog every node's sender looks at the same outbox: due entries
    /// are *claimed* in a write transaction (the writers' lock makes the claim
    /// exclusive, as `SELECT … FOR UPDATE SKIP LOCKED` would) by moving their next
    /// time a lease ahead. The claimant settles them; if it dies, the lease runs out
    /// and another node sends, with the same delivery id.
    fn claim_notifications(&self, now_ms: i64, limit: usize) -> Result<Vec<outbox::Pending>, StoreError> {
        // A look without the lock first: most polls find nothing due.
        {
            let txn = self.db.begin_read()?;
            let mut any = false;
            for e in txn.open_table(OUTBOX)?.iter()? {
                let (_, p): (u32, outbox::Pending) = decode(e?.1.value(), "outbox entry")?;
                if p.next_at_ms <= now_ms {
                    any = true;
                    break;
                }
            }
            if !any {
                return Ok(Vec::new());
            }
        }
        let txn = self.db.begin_write()?;
        let mut out = Vec::new();
        {
            let mut t = txn.open_table(OUTBOX)?;
            let mut due = Vec::new();
            for e in t.iter()? {
                let (k, v) = e?;
                let (pid, p): (u32, outbox::Pending) = decode(v.value(), "outbox entry")?;
                if p.next_at_ms <= now_ms {
                    due.push((k.value(), pid, p));
                    if due.len() >= limit {
                        break;
                    }
                }
            }
            for (id, pid, p) in due {
                let mut leased = p.clone();
                leased.next_at_ms = now_ms + outbox::CLAIM_LEASE_MS;
                t.insert(id, encode(&(pid, leased))?.as_slice())?;
                out.push(p);
            }
        }
        txn.commit()?;
        Ok(out)
    }

    /// Notifications waiting (due or not).
    pub fn outbox_len(&self) -> Result<u64, StoreError> {
        let txn = self.db.begin_read()?;
        Ok(txn.open_table(OUTBOX)?.iter()?.count() as u64)
    }

    /// Records a delivery attempt: `retry_at` (Unix ms) keeps it in the outbox.
    pub fn settle_notification(
        &self,
        id: u64,
        delivery: outbox::Delivery,
        retry_at: Option<i64>,
    ) -> Result<(), StoreError> {
        let (tx, rx) = mpsc::channel();
        self.send(writer::Job::Delivered { outcome: Box::new((id, delivery, retry_at)), reply: tx })?;
        rx.recv().map_err(|_| StoreError::Closed)?
    }

    /// What a notification about a group says: the group's aggregates, its triage,
    /// and the most frequent values of a few attributes among its crashes.
    pub fn group_summary(
        &self,
        project: &str,
        fingerprint: &str,
    ) -> Result<(GroupRecord, triage::TriageRecord, Vec<(String, Vec<(String, u64)>)>), StoreError> {
        let p = self.project_index(project)?;
        let group = p
            .groups
            .get(fingerprint)
            .cloned()
            .ok_or_else(|| StoreError::NotFound(format!("group {fingerprint} in project {project}")))?;
        let rec = p.triage.get(fingerprint).cloned().unwrap_or_default();
        let mut top = Vec::new();
        let fp_sid = p.string_id(fingerprint).map(|s| s + 1);
        if let (Some(fp_sid), Some(index::Column::Str(fps))) = (fp_sid, p.attr("fingerprint").map(|a| &a.column)) {
            for name in ["hostname", "version", "application"] {
                let Some(index::Column::Str(col)) = p.attr(name).map(|a| &a.column) else { continue };
                let mut counts: HashMap<u32, u64> = HashMap::new();
                for row in 0..fps.len() {
                    if fps.get(row) == fp_sid && p.alive[row] && col.get(row) > 0 {
                        *counts.entry(col.get(row)).or_default() += 1;
                    }
                }
                let mut v: Vec<(String, u64)> =
                    counts.into_iter().map(|(s, n)| (p.strings.text(s - 1).to_string(), n)).collect();
                v.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
                v.truncate(5);
                top.push((name.to_string(), v));
            }
        }
        Ok((group, rec, top))
    }
}
