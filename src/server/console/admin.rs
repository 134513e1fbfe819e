//! Administration while the server runs (redb lets one process hold the store, so
//! `bt coroner project|token|user` cannot while `bt serve` does). Admin role only;
//! the console's Settings page is built on it.
//!
//! | route | body | what |
//! |---|---|---|
//! | `GET /api/admin/projects` | | projects, objects, retention |
//! | `POST /api/admin/projects` | `{"create": NAME}`, `{"remove": NAME}`, `{"retention": {"project", "max_age", "max_size"}}` | change them (`max_age` `30d`, `max_size` `10G`, or numbers; `0`: no limit) |
//! | `GET /api/admin/tokens` | | tokens (never the token itself) |
//! | `POST /api/admin/tokens` | `{"create": {"project", "scopes": [...]}}` (the token is in the answer, once), `{"revoke": ID}` | |
//! | `GET /api/admin/users` | | users, role, projects |
//! | `POST /api/admin/users` | `{"add": {"name", "password", "admin", "projects"}}`, `{"password": {"name", "password"}}`, `{"role": {"name", "admin", "projects"}}`, `{"remove": NAME}` | |

use super::*;
use crate::store::Retention;

fn num_or_units(v: &Json, parse: fn(&str) -> Result<u64, crate::units::UnitError>) -> Result<Option<u64>, String> {
    match v {
        Json::Null => Ok(None),
        Json::Number(n) => n.as_u64().map(Some).ok_or_else(|| format!("{n}: not a non-negative integer")),
        Json::String(s) if s.trim() == "0" => Ok(Some(0)),
        Json::String(s) => parse(s.trim()).map(Some).map_err(|e| e.to_string()),
        other => Err(format!("{other}: a number or a string like 30d or 10G")),
    }
}

fn strings(v: &Json) -> Vec<String> {
    v.as_array().map(|a| a.iter().filter_map(|x| x.as_str().map(str::to_string)).collect()).unwrap_or_default()
}

impl Api {
    pub(super) fn admin(&self, req: &mut Request<'_>, method: &str, what: &str) -> Outcome {
        let p = match self.principal(req) {
            Ok(p) => p,
            Err(o) => return o,
        };
        if !matches!(p, Principal::User { admin: true, .. }) {
            return forbidden();
        }
        let body = match method {
            "GET" | "HEAD" => Json::Null,
            "POST" => match req.body(self.opts.max_query) {
                Ok(b) => match serde_json::from_slice(&b) {
                    Ok(v) => v,
                    Err(e) => return err(400, &format!("malformed JSON: {e}")),
                },
                Err(e) => return body_error(e),
            },
            _ => return err(405, "method not allowed"),
        };
        let r = match (what, body.is_null()) {
            ("projects", true) => self.list_projects_json(),
            ("projects", false) => self.change_projects(&body),
            ("tokens", true) => self.list_tokens_json(),
            ("tokens", false) => self.change_tokens(&body),
            ("users", true) => self.list_users_json(),
            ("users", false) => self.change_users(&body),
            _ => return err(404, "no such endpoint"),
        };
        match r {
            Ok(v) => ok(v),
            Err(e) => store_error(e),
        }
    }

    fn list_projects_json(&self) -> Result<Json, StoreError> {
        let projects = self.store.list_projects()?;
        Ok(json!({"projects": projects.iter().map(|p| json!({
            "name": p.name, "objects": p.objects, "created": p.record.created,
            "max_age": p.record.max_age, "max_size": p.record.max_bytes,
        })).collect::<Vec<_>>()}))
    }

    fn change_projects(&self, body: &Json) -> Result<Json, StoreError> {
        let bad = |m: String| StoreError::BadInput(m);
        if let Some(name) = body.get("create").and_then(Json::as_str) {
            self.store.create_project(name)?;
        } else if let Some(name) = body.get("remove").and_then(Json::as_str) {
            self.store.remove_project(name)?;
        } else if let Some(r) = body.get("retention") {
            let project = r["project"].as_str().ok_or_else(|| bad("retention needs a project".into()))?;
            let max_age =
                num_or_units(&r["max_age"], crate::units::seconds).map_err(|m| bad(format!("max_age: {m}")))?;
            let max_bytes =
                num_or_units(&r["max_size"], crate::units::size).map_err(|m| bad(format!("max_size: {m}")))?;
            self.store.set_retention(project, Retention { max_age, max_bytes })?;
        } else {
            return Err(bad("expected create, remove or retention".into()));
        }
        self.list_projects_json()
    }

    fn list_tokens_json(&self) -> Result<Json, StoreError> {
        let tokens = self.store.list_tokens()?;
        Ok(json!({"tokens": tokens.iter().map(|t| json!({
            "id": t.id, "project": t.record.project, "created": t.record.created,
            "scopes": t.record.scopes.iter().map(|s| s.as_str()).collect::<Vec<_>>(),
        })).collect::<Vec<_>>()}))
    }

    fn change_tokens(&self, body: &Json) -> Result<Json, StoreError> {
        let bad = |m: String| StoreError::BadInput(m);
        if let Some(c) = body.get("create") {
            let project = c["project"].as_str().ok_or_else(|| bad("create needs a project".into()))?;
            let mut scopes = Vec::new();
            for s in strings(&c["scopes"]) {
                scopes.push(
                    Scope::parse(&s)
                        .ok_or_else(|| bad(format!("scope {s:?}: submit, query, object, admin or symbols")))?,
                );
            }
            let token = self.store.create_token(project, &scopes)?;
            let mut v = self.list_tokens_json()?;
            v["token"] = json!(token);
            return Ok(v);
        }
        if let Some(id) = body.get("revoke").and_then(Json::as_str) {
            self.store.remove_token(id)?;
            return self.list_tokens_json();
        }
        Err(bad("expected create or revoke".into()))
    }

    fn list_users_json(&self) -> Result<Json, StoreError> {
        let mut out = Vec::new();
        for (name, rec) in self.store.list_users()? {
            let projects = if rec.admin { None } else { self.store.member_projects(&name)? };
            out.push(json!({"name": name, "admin": rec.admin, "created": rec.created, "projects": projects}));
        }
        Ok(json!({"users": out}))
    }

    fn change_users(&self, body: &Json) -> Result<Json, StoreError> {
        let bad = |m: &str| StoreError::BadInput(m.to_string());
        let name_of = |v: &Json| v["name"].as_str().map(str::to_string).ok_or_else(|| bad("a name is needed"));
        if let Some(a) = body.get("add") {
            let pw = a["password"].as_str().ok_or_else(|| bad("a password is needed"))?;
            self.store.add_user(&name_of(a)?, pw, a["admin"].as_bool().unwrap_or(false), &strings(&a["projects"]))?;
        } else if let Some(a) = body.get("password") {
            let pw = a["password"].as_str().ok_or_else(|| bad("a password is needed"))?;
            self.store.set_password(&name_of(a)?, pw)?;
        } else if let Some(a) = body.get("role") {
            self.store.set_role(&name_of(a)?, a["admin"].as_bool().unwrap_or(false), &strings(&a["projects"]))?;
        } else if let Some(name) = body.get("remove").and_then(Json::as_str) {
            self.store.remove_user(name)?;
        } else {
            return Err(bad("expected add, password, role or remove"));
        }
        self.list_users_json()
    }
}
