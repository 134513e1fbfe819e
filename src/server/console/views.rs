//! The JSON the console's pages read, all `GET /api/console/WHAT`:
//!
//! - `me`: the user, their role, the projects they may see, the CSRF token;
//! - `overview`: per project, crashes and groups in the last 24 h / 7 d / 30 d, new
//!   groups, a 32-bucket sparkline of 30 days;
//! - `groups?project=P&filter=ATTR,OP,VALUE…&age=24h|7d|30d|90d|1y|all&sort=count|last|first|hosts&dir=desc|asc&offset=&limit=`:
//!   a page of groups with title, triage, counts, hosts, first/last seen and a sparkline;
//! - `group?project=P&fingerprint=FP&attr=ATTR`: a group's details (instances,
//!   count over time, a breakdown by one attribute, why it was grouped);
//! - `object?project=P&object=ID`: the debugger's data of one crash (threads with
//!   identical stacks grouped, frames, registers, modules, maps, environment);
//! - `vars?project=P&object=ID&thread=TID&frame=N&expand=PATH…`: the variables tree
//!   of one frame with the given nodes expanded (as hydra expands them).
//!
//! Everything is data, never markup: the pages render it as text.

use std::sync::Mutex;

use super::*;
use crate::snapshot::tree::Tree;
use crate::snapshot::{Snapshot, Trust};
use crate::store::summary::SPARK_BUCKETS;

/// Percent-encodes a query-string component.
pub(super) fn url_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~' | b'/') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Decoded snapshots of the last few objects the debugger opened (a page asks for
/// the threads, then the variables of frame after frame).
#[derive(Default)]
pub struct SnapshotCache {
    recent: Mutex<Vec<((String, u64), Arc<Snapshot>)>>,
}

const CACHED_SNAPSHOTS: usize = 4;

impl SnapshotCache {
    fn get(&self, store: &Store, project: &str, id: u64) -> Result<Option<Arc<Snapshot>>, StoreError> {
        let key = (project.to_string(), id);
        if let Ok(r) = self.recent.lock()
            && let Some((_, s)) = r.iter().find(|(k, _)| *k == key)
        {
            return Ok(Some(s.clone()));
        }
        let obj = store.get(project, id)?;
        if obj.kind != BlobKind::Snapshot {
            return Ok(None);
        }
        let snap =
            Arc::new(Snapshot::decode(&obj.bytes).map_err(|e| StoreError::Corrupt(format!("object {id:x}: {e}")))?);
        if let Ok(mut r) = self.recent.lock() {
            r.retain(|(k, _)| *k != key);
            r.insert(0, (key, snap.clone()));
            r.truncate(CACHED_SNAPSHOTS);
        }
        Ok(Some(snap))
    }
}

/// The windows of the triage page's time range, in seconds (`all`: a year).
fn age_secs(age: &str) -> Option<i64> {
    Some(match age {
        "24h" => 86_400,
        "7d" => 7 * 86_400,
        "30d" => 30 * 86_400,
        "90d" => 90 * 86_400,
        "1y" | "all" => 365 * 86_400,
        _ => return None,
    })
}

fn trust_name(t: Trust) -> &'static str {
    match t {
        Trust::Context => "context",
        Trust::Cfi => "cfi",
        Trust::FramePointer => "fp",
        Trust::Scan => "scan",
    }
}

/// `ATTR,OP,VALUE` (the value may hold commas) → `{ATTR: [[OP, VALUE]]}` terms.
fn filter_terms(specs: &[String]) -> Result<Json, String> {
    let mut f = serde_json::Map::new();
    for s in specs {
        let mut it = s.splitn(3, ',');
        let (Some(a), Some(op)) = (it.next(), it.next()) else {
            return Err(format!("filter {s:?}: expected ATTRIBUTE,OPERATOR,VALUE"));
        };
        let v = it.next().unwrap_or("");
        let terms = f.entry(a.to_string()).or_insert_with(|| json!([]));
        if let Json::Array(t) = terms {
            t.push(if v.is_empty() && (op == "is-set" || op == "is-not-set") { json!([op]) } else { json!([op, v]) });
        }
    }
    Ok(Json::Object(f))
}

impl Api {
    pub(super) fn principal(&self, req: &Request<'_>) -> Result<Principal, Outcome> {
        let Some(cred) = credential(req) else { return Err(unauthenticated(req)) };
        match self.store.authenticate(cred) {
            Ok(Some(p)) => Ok(p),
            Ok(None) => Err(unauthorized()),
            Err(e) => Err(store_error(e)),
        }
    }

    /// The projects a principal may query.
    fn visible_projects(&self, p: &Principal) -> Result<Vec<String>, StoreError> {
        Ok(self.store.list_projects()?.into_iter().map(|i| i.name).filter(|n| p.allows(n, Scope::Query)).collect())
    }

    pub(super) fn console_view(&self, req: &mut Request<'_>, what: &str) -> Outcome {
        let r = match what {
            "me" => self.me(req),
            "overview" => self.overview(req),
            "groups" => self.groups(req),
            "group" => self.group(req),
            "object" => self.object(req),
            "vars" => self.vars(req),
            _ => return err(404, "no such endpoint"),
        };
        match r {
            Ok(v) => ok(v),
            Err(o) => o,
        }
    }

    fn me(&self, req: &mut Request<'_>) -> Result<Json, Outcome> {
        let p = self.principal(req)?;
        let projects = self.visible_projects(&p).map_err(store_error)?;
        let (user, admin) = match &p {
            Principal::User { name, admin, .. } => (name.clone(), *admin),
            Principal::Token { .. } => ("token".to_string(), false),
        };
        let csrf = cookie(req, COOKIE).map(csrf_token);
        Ok(json!({"user": user, "admin": admin, "projects": projects, "csrf": csrf, "universe": self.opts.universe}))
    }

    fn overview(&self, req: &mut Request<'_>) -> Result<Json, Outcome> {
        let p = self.principal(req)?;
        let now = now();
        let mut out = Vec::new();
        for name in self.visible_projects(&p).map_err(store_error)? {
            let a = self.store.activity(&name, now).map_err(store_error)?;
            out.push(json!({"name": name, "activity": a}));
        }
        Ok(json!({"now": now, "projects": out}))
    }

    fn groups(&self, req: &mut Request<'_>) -> Result<Json, Outcome> {
        let project = self.authorize(req, Scope::Query)?;
        let now = now();
        let age = req.param("age").unwrap_or("30d");
        let span = age_secs(age).ok_or_else(|| err(400, "age: 24h, 7d, 30d, 90d, 1y or all"))?;
        let from = now - span;
        let specs: Vec<String> = req.query.iter().filter(|(k, _)| k == "filter").map(|(_, v)| v.clone()).collect();
        let mut filter = filter_terms(&specs).map_err(|m| err(400, &m))?;
        if age != "all"
            && let Json::Object(f) = &mut filter
        {
            let t = f.entry("timestamp".to_string()).or_insert_with(|| json!([]));
            if let Json::Array(t) = t {
                t.push(json!(["at-least", from]));
            }
        }
        let (sort, dir) = (req.param("sort").unwrap_or("count"), req.param("dir").unwrap_or("desc"));
        let order = match sort {
            "count" => ";count",
            "last" => "timestamp;max",
            "first" => "timestamp;min",
            "hosts" => "hostname;unique",
            _ => return Err(err(400, "sort: count, last, first or hosts")),
        };
        let num = |k: &str, d: usize| req.param(k).and_then(|v| v.parse::<usize>().ok()).unwrap_or(d);
        let (offset, limit) = (num("offset", 0), num("limit", 50).clamp(1, 500));
        let q = json!({
            "filter": [filter],
            "group": ["fingerprint"],
            "fold": {
                "timestamp": [["min"], ["max"], ["bin", SPARK_BUCKETS, from, now + 1]],
                "hostname": [["unique"]],
            },
            "order": [{"name": order, "ordering": if dir == "asc" { "ascending" } else { "descending" }}],
            "offset": offset,
            "limit": limit,
        });
        let q = Query::from_json(&q).map_err(store_error)?;
        let started = Instant::now();
        let out = self.store.query(&project, &q).map_err(store_error)?;
        let rows = out.json["rows"].as_array().cloned().unwrap_or_default();
        let cols = out.json["columns"].as_array().cloned().unwrap_or_default();
        let col = |attr: &str, op: &str| cols.iter().position(|c| c[0] == attr && c[1] == op);
        let cell = |r: &Json, i: Option<usize>| i.map(|i| r[1][i].clone()).unwrap_or(Json::Null);
        let (c_min, c_max, c_bin, c_hosts) =
            (col("timestamp", "min"), col("timestamp", "max"), col("timestamp", "bin"), col("hostname", "unique"));
        // `bin` cells are [lo, hi, count]; the page draws the counts.
        let counts = |v: Json| -> Json {
            json!(
                v.as_array()
                    .map(|a| a.iter().map(|b| b[2].as_u64().unwrap_or(0)).collect::<Vec<_>>())
                    .unwrap_or_default()
            )
        };
        let fps: Vec<String> = rows.iter().map(|r| r[0].as_str().unwrap_or("").to_string()).collect();
        let infos = self.store.group_infos(&project, &fps).map_err(store_error)?;
        let groups: Vec<Json> = rows
            .iter()
            .zip(infos)
            .map(|(r, info)| {
                let (callstack, classifiers, triage) = match info {
                    Some((g, t)) => (
                        g.callstack,
                        g.classifiers,
                        crate::store::workflow::record_json(r[0].as_str().unwrap_or(""), &t),
                    ),
                    None => (String::new(), String::new(), Json::Null),
                };
                json!({
                    "fingerprint": r[0],
                    "count": r[2],
                    "first": cell(r, c_min),
                    "last": cell(r, c_max),
                    "spark": counts(cell(r, c_bin)),
                    "hosts": cell(r, c_hosts),
                    // The title: the first frames, without the folded runs (`[14 frames of error handling: …]`).
                    "frames": callstack.lines().filter(|l| !l.starts_with('[')).take(3).collect::<Vec<_>>(),
                    "classifiers": classifiers,
                    "state": triage["state"],
                    "assignee": triage["assignee"],
                    "tickets": triage["tickets"],
                    "tags": triage["tags"],
                })
            })
            .collect();
        Ok(json!({
            "project": project, "from": from, "to": now, "buckets": SPARK_BUCKETS,
            "total": out.json["total"], "objects": out.json["objects"],
            "offset": offset, "limit": limit, "groups": groups,
            "server_ms": started.elapsed().as_secs_f64() * 1000.0,
        }))
    }

    fn group(&self, req: &mut Request<'_>) -> Result<Json, Outcome> {
        let project = self.authorize(req, Scope::Query)?;
        let want = req.param("fingerprint").ok_or_else(|| err(400, "missing parameter fingerprint"))?.to_string();
        let (fp, g, rec, history) = self.store.triage_of(&project, &want).map_err(store_error)?;
        let run = |q: Json| -> Result<Json, Outcome> {
            let q = Query::from_json(&q).map_err(store_error)?;
            Ok(self.store.query(&project, &q).map_err(store_error)?.json)
        };
        let by_fp = json!([{"fingerprint": [["equal", fp]]}]);
        let instances = run(json!({
            "filter": by_fp, "select": ["timestamp", "hostname", "application", "version"],
            "order": [{"name": "timestamp", "ordering": "descending"}], "limit": 2000,
        }))?;
        let (lo, hi) = (g.first_seen, g.last_seen.max(g.first_seen + 1));
        let bins = run(json!({
            "filter": by_fp, "group": ["fingerprint"],
            "fold": {"timestamp": [["bin", 48, lo, hi + 1]]},
        }))?;
        let attr = req.param("attr").unwrap_or("hostname").to_string();
        let breakdown = run(json!({
            "filter": by_fp, "group": [attr.clone()],
            "order": [{"name": ";count", "ordering": "descending"}], "limit": 20,
        }))?;
        let attrs: Vec<String> = self
            .store
            .describe(&project)
            .map_err(store_error)?
            .into_iter()
            .map(|(n, _, _)| n)
            .filter(|n| !n.starts_with("fingerprint;"))
            .collect();
        let explain = match self.store.explain(&project, g.last_object) {
            Ok(sig) => json!({
                "signature": sig.signature,
                "attributes": sig.attributes,
                "frames": sig.explanation,
            }),
            Err(e) => json!({"error": e.to_string()}),
        };
        let mut triage = crate::store::workflow::record_json(&fp, &rec);
        triage["history"] = crate::store::workflow::history_json(&history);
        let url = format!("{}://{}", self.endpoint.0, req.header("host").unwrap_or("HOST:6097"));
        Ok(json!({
            "project": project,
            "fingerprint": fp,
            "count": g.count,
            "first_seen": g.first_seen,
            "last_seen": g.last_seen,
            "first_object": format_object_id(g.first_object),
            "last_object": format_object_id(g.last_object),
            "callstack": g.callstack.lines().collect::<Vec<_>>(),
            "classifiers": g.classifiers,
            "triage": triage,
            "instances": instances["rows"],
            "instances_total": instances["total"],
            "bins": {"from": lo, "to": hi + 1, "counts": bins["rows"][0][1][0].as_array().map(|a| a.iter().map(|b| b[2].as_u64().unwrap_or(0)).collect::<Vec<_>>()).unwrap_or_default()},
            "attr": attr,
            "attributes": attrs,
            "breakdown": breakdown["rows"],
            "explain": explain,
            "url": url,
        }))
    }

    fn object_id(&self, req: &Request<'_>) -> Result<u64, Outcome> {
        let o = req.param("object").ok_or_else(|| err(400, "missing parameter object"))?;
        parse_object_id(o).ok_or_else(|| err(400, "object: a hexadecimal object id"))
    }

    fn object(&self, req: &mut Request<'_>) -> Result<Json, Outcome> {
        let project = self.authorize(req, Scope::Query)?;
        let id = self.object_id(req)?;
        let attributes = self.store.object_attributes(&project, id).map_err(store_error)?;
        let attachments = self.store.attachment_names(&project, id).map_err(store_error)?;
        let url = format!("{}://{}", self.endpoint.0, req.header("host").unwrap_or("HOST:6097"));
        let mut v = json!({
            "project": project, "object": format_object_id(id), "url": url,
            "attributes": attributes,
            "attachments": attachments.iter().map(|(n, s)| json!({"name": n, "size": s})).collect::<Vec<_>>(),
        });
        let Some(snap) = self.snapshots.get(&self.store, &project, id).map_err(store_error)? else {
            v["kind"] = json!("json");
            let obj = self.store.get(&project, id).map_err(store_error)?;
            v["report"] = serde_json::from_slice(&obj.bytes).unwrap_or(Json::Null);
            return Ok(v);
        };
        v["kind"] = json!("snapshot");
        // Threads with identical stacks (the same pcs) are listed once.
        let mut stacks: Vec<(Vec<u64>, Vec<usize>)> = Vec::new();
        for (i, t) in snap.threads.iter().enumerate() {
            let key: Vec<u64> = t.frames.iter().map(|f| f.pc).collect();
            match stacks.iter_mut().find(|(k, _)| *k == key) {
                Some((_, members)) if !t.faulted => members.push(i),
                _ => stacks.push((key, vec![i])),
            }
        }
        let threads: Vec<Json> = snap
            .threads
            .iter()
            .map(|t| {
                json!({
                    "tid": t.tid, "name": t.name, "state": t.state, "faulted": t.faulted,
                    "registers": t.registers,
                    "frames": t.frames.iter().map(|f| json!({
                        "pc": format!("0x{:x}", f.pc),
                        "function": f.function, "file": f.file, "line": f.line,
                        "module": f.module.as_deref().map(|m| m.rsplit('/').next().unwrap_or(m)),
                        "inlined": f.inlined, "trust": trust_name(f.trust), "signal_frame": f.signal_frame,
                        "variables": f.variables.len(),
                    })).collect::<Vec<_>>(),
                })
            })
            .collect();
        v["threads"] = json!(threads);
        v["stacks"] = json!(stacks.iter().map(|(_, m)| m).collect::<Vec<_>>());
        v["signal"] = json!(snap.signal);
        v["process"] = json!(snap.process);
        v["classifiers"] = json!(snap.classifiers);
        v["annotations"] = json!(snap.annotations);
        v["problems"] = json!(snap.problems);
        v["modules"] = json!(snap.modules);
        v["maps"] = json!(snap.maps);
        v["environment"] = json!(snap.environment);
        v["timestamp"] = json!(snap.timestamp);
        Ok(v)
    }

    fn vars(&self, req: &mut Request<'_>) -> Result<Json, Outcome> {
        let project = self.authorize(req, Scope::Query)?;
        let id = self.object_id(req)?;
        let tid: i32 =
            req.param("thread").and_then(|t| t.parse().ok()).ok_or_else(|| err(400, "thread: a thread id"))?;
        let f: usize = req.param("frame").and_then(|t| t.parse().ok()).ok_or_else(|| err(400, "frame: a number"))?;
        let snap = self
            .snapshots
            .get(&self.store, &project, id)
            .map_err(store_error)?
            .ok_or_else(|| err(404, "the object is not a snapshot: it has no variables"))?;
        let t = snap.threads.iter().position(|th| th.tid == tid).ok_or_else(|| err(404, "no such thread"))?;
        let mut tree = Tree::default();
        let expand: Vec<&str> = req.query.iter().filter(|(k, _)| k == "expand").map(|(_, v)| v.as_str()).collect();
        if expand.len() > 256 {
            return Err(err(400, "at most 256 expanded nodes"));
        }
        for p in expand {
            tree.set_expanded(t, f, p, true);
        }
        let rows = tree.rows(&snap, t, f);
        Ok(json!({"thread": tid, "frame": f, "rows": rows.iter().map(|r| json!({
            "path": r.path, "depth": r.depth, "name": r.name, "type": r.type_name, "value": r.text,
            "expandable": r.expandable, "expanded": r.expanded,
            "points_to": r.points_to.map(|a| format!("0x{a:x}")),
            "address": r.address.map(|a| format!("0x{a:x}")),
        })).collect::<Vec<_>>()}))
    }
}
