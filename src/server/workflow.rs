//! The workflow routes (see [`crate::store::workflow`] for what they do):
//!
//! | route | who | what |
//! |---|---|---|
//! | `GET /api/triage?project=P&fingerprint=FP` | query | state and history of a group |
//! | `POST /api/triage?project=P` `{"fingerprints":[…],"change":…}` | a user, or an admin token | change groups |
//! | `POST /api/triage/dry-run?project=P` `{"fingerprint","attributes":{…},"timestamp"}` | query | would it reopen? |
//! | `GET /api/integrations?project=P` | admin | integrations (no secrets) and rules |
//! | `POST /api/integrations?project=P` `{"add":…}` `{"remove":NAME}` `{"test":NAME}` | admin | configure |
//! | `POST /api/rules?project=P` `{"add":…}` `{"remove":ID}` | admin | routing rules |
//! | `GET /api/integrations/log?project=P&name=N` | admin | the delivery log |

use super::*;
use crate::store::triage::{Change, State, Ticket};
use crate::store::workflow::{self, Call};

fn json_body(req: &mut Request<'_>, limit: u64) -> Result<Json, Outcome> {
    let body = req.body(limit).map_err(body_error)?;
    serde_json::from_slice(&body).map_err(|e| err(400, &format!("malformed JSON: {e}")))
}

fn answer(r: Result<Json, StoreError>) -> Outcome {
    match r {
        Ok(mut v) => {
            if let Json::Object(o) = &mut v {
                o.insert("response".into(), json!("ok"));
            }
            ok(v)
        }
        Err(e) => store_error(e),
    }
}

impl Api {
    /// Who changes triage: a logged-in user, or a token with the admin scope.
    fn triager(&self, req: &mut Request<'_>) -> Result<(String, String), Outcome> {
        let Some(cred) = credential(req) else { return Err(unauthenticated(req)) };
        let principal = match self.store.authenticate(cred) {
            Ok(Some(p)) => p,
            Ok(None) => return Err(unauthorized()),
            Err(e) => return Err(store_error(e)),
        };
        let project = self.authorize(req, Scope::Query)?;
        match principal {
            Principal::User { name, .. } => Ok((project, format!("user:{name}"))),
            Principal::Token { ref scopes, .. } if scopes.contains(&Scope::Admin) => Ok((project, "token".into())),
            Principal::Token { .. } => Err(forbidden()),
        }
    }

    /// morgue's `set`: new attribute values for the objects a filter selects, or
    /// triage fields for their groups (`table: "issues"`). Who may: as for triage.
    pub(super) fn set(&self, req: &mut Request<'_>, set: coronerd::SetRequest, filter: &Json) -> Outcome {
        let (project, who) = match self.triager(req) {
            Ok(x) => x,
            Err(o) => return o,
        };
        let mut filter = filter.clone();
        if let Err(m) = coronerd::strip(&mut filter) {
            return err(400, &m);
        }
        let q = match Query::from_json(&filter) {
            Ok(q) => q,
            Err(e) => return store_error(e),
        };
        let meta = json!({"universe": self.opts.universe, "project": project, "user": who});
        match set {
            coronerd::SetRequest::Objects(values) => {
                let ids = match self.store.select_ids(&project, &q) {
                    Ok(ids) => ids,
                    Err(e) => return store_error(e),
                };
                match self.store.set_attributes(&project, ids, values) {
                    Ok(n) => ok(json!({"response": {"objects": n}, "_": meta})),
                    Err(e) => store_error(e),
                }
            }
            coronerd::SetRequest::Issues(values) => {
                let fps = match self.store.select_fingerprints(&project, &q) {
                    Ok(f) => f,
                    Err(e) => return store_error(e),
                };
                let mut changes = Vec::new();
                for (k, v) in &values {
                    match issue_change(k, v) {
                        Ok(c) => changes.push(c),
                        Err(m) => return err(400, &m),
                    }
                }
                if !fps.is_empty() {
                    for c in changes {
                        if let Err(e) = self.store.triage(&project, &fps, c, &who) {
                            return store_error(e);
                        }
                    }
                }
                ok(json!({"response": {"issues": fps.len()}, "_": meta}))
            }
        }
    }

    /// The workflow routes; None for a path that is not one of them.
    pub(super) fn workflow(&self, req: &mut Request<'_>, method: &str, path: &str) -> Option<Outcome> {
        let (scope, needs_body) = match (method, path) {
            ("GET", "/api/triage") => (Scope::Query, false),
            ("POST", "/api/triage") => (Scope::Query, true),
            ("POST", "/api/triage/dry-run") => (Scope::Query, true),
            ("GET", "/api/integrations" | "/api/integrations/log") => (Scope::Admin, false),
            ("POST", "/api/integrations" | "/api/rules") => (Scope::Admin, true),
            (
                _,
                "/api/triage" | "/api/triage/dry-run" | "/api/integrations" | "/api/integrations/log" | "/api/rules",
            ) => {
                return Some(err(405, "method not allowed"));
            }
            _ => return None,
        };
        let (project, who) = if (method, path) == ("POST", "/api/triage") {
            match self.triager(req) {
                Ok(x) => x,
                Err(o) => return Some(o),
            }
        } else {
            match self.authorize(req, scope) {
                Ok(p) => (p, "token".to_string()),
                Err(o) => return Some(o),
            }
        };
        let body = if needs_body {
            match json_body(req, self.opts.max_query) {
                Ok(v) => v,
                Err(o) => return Some(o),
            }
        } else {
            Json::Null
        };
        let param = |n: &str| req.param(n).map(str::to_string);
        let c = match path {
            "/api/triage" if method == "GET" => {
                let Some(fp) = param("fingerprint") else { return Some(err(400, "missing parameter fingerprint")) };
                return Some(answer(workflow::call(&self.store, &project, &who, Call::Triage { fingerprint: &fp })));
            }
            "/api/triage" => Call::Change(&body),
            "/api/triage/dry-run" => Call::DryRun(&body),
            "/api/integrations" if method == "GET" => Call::Integrations,
            "/api/integrations" => Call::Integration(&body),
            "/api/rules" => Call::Rule(&body),
            _ => {
                let Some(name) = param("name") else { return Some(err(400, "missing parameter name")) };
                return Some(answer(workflow::call(&self.store, &project, &who, Call::Log { name: &name })));
            }
        };
        Some(answer(workflow::call(&self.store, &project, &who, c)))
    }
}

/// One issue field as morgue sets it, as a triage change: `state` (open,
/// in-progress, resolved, muted), `assignee` (empty: nobody), `tags` (added; several
/// separated by commas or spaces), `ticket` (`SYSTEM:KEY URL`, `SYSTEM:KEY` or a URL).
fn issue_change(field: &str, value: &str) -> Result<Change, String> {
    Ok(match field {
        "state" => Change::State {
            state: State::parse(value)
                .ok_or_else(|| format!("state {value:?}: expected open, in-progress, resolved or muted"))?,
            until: None,
        },
        "assignee" => Change::Assign((!value.trim().is_empty()).then(|| value.trim().to_string())),
        "tags" => Change::Tags {
            add: value.split([',', ' ']).filter(|t| !t.is_empty()).map(str::to_string).collect(),
            remove: Vec::new(),
        },
        "ticket" => {
            let words: Vec<&str> = value.split_whitespace().collect();
            let url = words.iter().find(|w| w.starts_with("http://") || w.starts_with("https://")).copied();
            let key = words.iter().find(|w| Some(**w) != url).copied();
            let (system, key) = match (key.and_then(|k| k.split_once(':')), url) {
                (Some((s, k)), _) => (s.to_string(), k.to_string()),
                (None, Some(u)) => ("link".to_string(), u.rsplit('/').find(|p| !p.is_empty()).unwrap_or(u).to_string()),
                (None, None) => return Err(format!("ticket {value:?}: expected SYSTEM:KEY URL, SYSTEM:KEY or a URL")),
            };
            Change::Ticket(Ticket { system, key, url: url.unwrap_or_default().to_string() })
        }
        f => return Err(format!("issues have no field {f}")),
    })
}
