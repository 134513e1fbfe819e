//! The workflow API as JSON in, JSON out: triage (state, assignee, tags, tickets,
//! comments, history, the reopen dry run) and notification integrations, rules
//! and delivery logs. The server calls it after authorizing a request; `bt morgue`
//! and `bt coroner integration` on a local data directory call it directly, so a
//! server and a directory answer alike.

use serde_json::{Value as Json, json};

use super::outbox::{Integration, Rule};
use super::triage::{Change, HistoryEntry, TriageRecord};
use super::{Store, StoreError, now};

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

fn history_json(h: &[HistoryEntry]) -> Json {
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
