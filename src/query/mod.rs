//! morgue, the query CLI's library: flags turned into store queries ([`flags`]), one
//! [`Backend`] over either a server ([`remote`], HTTP) or a local data directory (the
//! store library, the same query code the server runs), the login [`session`], and
//! the rendering of answers ([`render`]: table with sparklines, JSON, CSV).
//!
//! Boundaries: only `query::remote` speaks HTTP; the local backend calls
//! [`crate::store::Store`] and never names redb.

pub mod flags;
pub mod remote;
pub mod render;
pub mod session;

use std::path::{Path, PathBuf};
use std::time::Instant;

use serde_json::{Value as Json, json};

use crate::store::{Format, Store, StoreError, Submission, format_object_id, parse_object_id};
use flags::ListSpec;
use remote::Remote;
use render::{Listing, Selection};

#[derive(Debug, thiserror::Error)]
pub enum MorgueError {
    #[error("{0}")]
    BadFlag(String),
    #[error("cannot reach {url}: {reason} (is bt serve running there?)")]
    Unreachable { url: String, reason: String },
    #[error("TLS with {url} failed: {reason} (a private CA? point SSL_CERT_FILE at its PEM certificate)")]
    Tls { url: String, reason: String },
    #[error("the session for {url} has expired or was revoked: run bt morgue login {url}")]
    SessionExpired { url: String },
    #[error("{url} refused the credential (unauthorized): check the token, or run bt morgue login {url}")]
    Unauthorized { url: String },
    #[error("{url}: forbidden on project {project} (the credential does not cover this project or this action)")]
    Forbidden { url: String, project: String },
    #[error("login to {url} as {user} failed: wrong user name or password")]
    LoginFailed { url: String, user: String },
    #[error("unknown project {0}")]
    NoProject(String),
    #[error("unknown attribute {attr} in project {project} (bt morgue describe {project} lists them)")]
    UnknownAttribute { attr: String, project: String },
    #[error("no object {object} in project {project}")]
    NoObject { project: String, object: String },
    #[error("bad query: {0}")]
    BadQuery(String),
    #[error("{url} answered {status}: {message}")]
    Server { url: String, status: u16, message: String },
    #[error("unexpected answer: {0}")]
    BadResponse(String),
    #[error("not logged in and no local store at {}: run bt morgue login URL, or give --data DIR", .0.display())]
    NoBackend(PathBuf),
    #[error("{}: {source}", .path.display())]
    Io { path: PathBuf, source: std::io::Error },
    #[error("local store {}: {source}", .dir.display())]
    Store { dir: PathBuf, source: StoreError },
}

/// One attribute of a project, as `describe` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttrInfo {
    pub name: String,
    pub ty: String,
    /// Live objects that have a value.
    pub objects: u64,
}

/// The reply to a submission.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ack {
    pub object: String,
    pub fingerprint: String,
    pub unique: bool,
}

/// Where queries go: a server, or the store in a local data directory.
pub enum Backend {
    Remote(Remote),
    Local { store: Store, user: String },
}

/// An answer to `list`, ready to render.
pub enum Answer {
    Groups(Listing),
    Objects(Selection),
}

impl Backend {
    /// Opens the local store in `dir` (it must not be in use by a running server).
    /// With `BT_CATALOG` (and `BT_BLOBS`) set, the store is the distributed one they name.
    pub fn local(dir: &Path) -> Result<Backend, MorgueError> {
        let backend = crate::store::Backend::from_env();
        if !backend.is_distributed() && !dir.join(crate::store::DB_FILE).exists() {
            return Err(MorgueError::Store {
                dir: dir.to_path_buf(),
                source: StoreError::Io("no store here (bt coroner --data DIR project create NAME makes one)".into()),
            });
        }
        let store =
            Store::open_with(dir, &backend).map_err(|e| MorgueError::Store { dir: dir.to_path_buf(), source: e })?;
        let user = std::env::var("USER").ok().filter(|u| !u.is_empty()).unwrap_or_else(|| "local".into());
        Ok(Backend::Local { store, user })
    }

    pub fn user(&self) -> &str {
        match self {
            Backend::Remote(r) => &r.user,
            Backend::Local { user, .. } => user,
        }
    }

    fn local_err(store: &Store, e: StoreError) -> MorgueError {
        match e {
            StoreError::NoProject(p) => MorgueError::NoProject(p),
            StoreError::BadInput(m) => MorgueError::BadQuery(m),
            other => MorgueError::Store { dir: store.dir().to_path_buf(), source: other },
        }
    }

    /// Runs a query (the JSON of `POST /api/query`).
    pub fn query(&self, project: &str, q: &Json) -> Result<Json, MorgueError> {
        match self {
            Backend::Remote(r) => r.query(project, q),
            Backend::Local { store, .. } => {
                let parsed = crate::store::query::Query::from_json(q).map_err(|e| Self::local_err(store, e))?;
                Ok(store.query(project, &parsed).map_err(|e| Self::local_err(store, e))?.json)
            }
        }
    }

    pub fn describe(&self, project: &str) -> Result<Vec<AttrInfo>, MorgueError> {
        match self {
            Backend::Remote(r) => r.describe(project),
            Backend::Local { store, .. } => Ok(store
                .describe(project)
                .map_err(|e| Self::local_err(store, e))?
                .into_iter()
                .map(|(name, ty, objects)| AttrInfo { name, ty: ty.as_str().to_string(), objects })
                .collect()),
        }
    }

    /// An object's bytes, and whether it is a JSON report (else a bt snapshot).
    pub fn get(&self, project: &str, object: &str) -> Result<(Vec<u8>, bool), MorgueError> {
        let no_object = || MorgueError::NoObject { project: project.to_string(), object: object.to_string() };
        let id = parse_object_id(object).ok_or_else(|| {
            MorgueError::BadFlag(format!("bad object id {object:?}: object ids are hex, as list --select=object shows"))
        })?;
        match self {
            Backend::Remote(r) => r.get(project, &format_object_id(id)),
            Backend::Local { store, .. } => match store.get(project, id) {
                Ok(o) => Ok((o.bytes, o.kind == crate::store::schema::BlobKind::JsonZstd)),
                Err(StoreError::NotFound(_)) => Err(no_object()),
                Err(e) => Err(Self::local_err(store, e)),
            },
        }
    }

    /// A workflow call (triage, integrations): over HTTP to a server, or straight to
    /// the local store as the current user (`user:$USER`).
    pub fn workflow(&self, project: &str, call: crate::store::workflow::Call) -> Result<Json, MorgueError> {
        use crate::store::workflow::Call;
        match self {
            Backend::Remote(r) => {
                let p = remote::encode(project);
                let (method, path, body) = match call {
                    Call::Triage { fingerprint } => {
                        ("GET", format!("/api/triage?project={p}&fingerprint={}", remote::encode(fingerprint)), None)
                    }
                    Call::Change(v) => ("POST", format!("/api/triage?project={p}"), Some(v.clone())),
                    Call::DryRun(v) => ("POST", format!("/api/triage/dry-run?project={p}"), Some(v.clone())),
                    Call::Integrations => ("GET", format!("/api/integrations?project={p}"), None),
                    Call::Integration(v) => ("POST", format!("/api/integrations?project={p}"), Some(v.clone())),
                    Call::Rule(v) => ("POST", format!("/api/rules?project={p}"), Some(v.clone())),
                    Call::Log { name } => {
                        ("GET", format!("/api/integrations/log?project={p}&name={}", remote::encode(name)), None)
                    }
                };
                r.call_json(method, &path, project, body.as_ref())
            }
            Backend::Local { store, user } => {
                crate::store::workflow::call(store, project, &format!("user:{user}"), call)
                    .map_err(|e| Self::local_err(store, e))
            }
        }
    }

    /// Submits a report; `format` is `snapshot` or `json`.
    /// Uploads symbol files (ELF, Breakpad `.sym`, tar/tar.gz/zip); the answer lists
    /// what was kept (`symbols`) and what was not (`skipped`).
    pub fn upload_symbols(&self, project: &str, name: &str, body: &[u8]) -> Result<Json, MorgueError> {
        match self {
            Backend::Remote(r) => r.upload_symbols(project, name, body),
            Backend::Local { store, .. } => {
                let (kept, skipped) =
                    store.add_symbols(name, body, 1 << 30).map_err(|e| Backend::local_err(store, e))?;
                Ok(serde_json::json!({"symbols": kept, "skipped": skipped}))
            }
        }
    }

    /// The uploaded symbols: (build id, kind).
    pub fn symbols(&self, project: &str) -> Result<Vec<(String, String)>, MorgueError> {
        match self {
            Backend::Remote(r) => {
                let v =
                    r.call_json("GET", &format!("/api/symbols?project={}", remote::encode(project)), project, None)?;
                Ok(v["symbols"]
                    .as_array()
                    .map(|a| {
                        a.iter()
                            .map(|x| {
                                (
                                    x["build_id"].as_str().unwrap_or("").to_string(),
                                    x["kind"].as_str().unwrap_or("").to_string(),
                                )
                            })
                            .collect()
                    })
                    .unwrap_or_default())
            }
            Backend::Local { store, .. } => store.list_symbols().map_err(|e| Backend::local_err(store, e)),
        }
    }

    pub fn put(&self, project: &str, body: Vec<u8>, format: &str, kv: &[(String, String)]) -> Result<Ack, MorgueError> {
        match self {
            Backend::Remote(r) => r.put(project, &body, format, kv),
            Backend::Local { store, .. } => {
                let format = Format::parse(format)
                    .ok_or_else(|| MorgueError::BadFlag(format!("unknown format {format:?}: use snapshot or json")))?;
                let sub = Submission {
                    project: project.to_string(),
                    format,
                    body,
                    attributes: kv.to_vec(),
                    attachments: Vec::new(),
                };
                let ack = store.submit(sub).map_err(|e| Self::local_err(store, e))?;
                Ok(Ack { object: format_object_id(ack.rxid), fingerprint: ack.fingerprint, unique: ack.unique })
            }
        }
    }

    /// Deletes the objects a filter selects (oldest first, at most `limit`;
    /// `all` is needed when the filter selects every object); returns how many.
    pub fn delete(&self, project: &str, filter: &Json, limit: Option<usize>, all: bool) -> Result<u64, MorgueError> {
        let mut q = json!({"filter": filter});
        if let Some(l) = limit {
            q["limit"] = json!(l);
        }
        match self {
            Backend::Remote(r) => r.delete(project, &q, all),
            Backend::Local { store, .. } => {
                let parsed = crate::store::query::Query::from_json(&q).map_err(|e| Self::local_err(store, e))?;
                let n = store.delete_matching(project, &parsed, limit, all).map_err(|e| Self::local_err(store, e))?;
                Ok(n as u64)
            }
        }
    }

    /// How many objects a filter selects.
    pub fn count(&self, project: &str, filter: &Json) -> Result<u64, MorgueError> {
        let a = self.query(project, &json!({"filter": filter, "group": ["*"], "limit": 1}))?;
        Ok(a["objects"].as_u64().unwrap_or(0))
    }

    /// Checks that every attribute a request names exists in the project.
    pub fn check_attributes(&self, project: &str, names: &[&str]) -> Result<(), MorgueError> {
        if names.is_empty() {
            return Ok(());
        }
        let known = self.describe(project)?;
        for n in names {
            if !known.iter().any(|a| a.name == *n) {
                return Err(MorgueError::UnknownAttribute { attr: n.to_string(), project: project.to_string() });
            }
        }
        Ok(())
    }

    /// `list`: checks the attributes, runs the query, reads the answer. Returns the
    /// answer and the time the query took (round trip for a server).
    pub fn list(&self, project: &str, spec: &ListSpec) -> Result<(Answer, u128), MorgueError> {
        self.check_attributes(project, &spec.attributes())?;
        let q = spec.query()?;
        let started = Instant::now();
        let a = self.query(project, &q)?;
        let us = started.elapsed().as_micros();
        let answer = if spec.grouped() {
            Answer::Groups(Listing::from_answer(project, spec, &a)?)
        } else {
            Answer::Objects(Selection::from_answer(project, &a)?)
        };
        Ok((answer, us))
    }
}

/// Picks the format of a report from its first bytes: `BTSNAP` is a bt snapshot, `{` JSON.
pub fn sniff_format(body: &[u8]) -> Option<&'static str> {
    if body.starts_with(b"BTSNAP") {
        Some("snapshot")
    } else if body.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'{') {
        Some("json")
    } else {
        None
    }
}

/// `k:v,k2:v2` (also `k=v`), as ptrace's `--kv`.
pub fn parse_kv(s: &str) -> Result<Vec<(String, String)>, MorgueError> {
    s.split(',')
        .filter(|p| !p.trim().is_empty())
        .map(|p| {
            let (k, v) = p
                .split_once(':')
                .or_else(|| p.split_once('='))
                .ok_or_else(|| MorgueError::BadFlag(format!("bad --kv entry {p:?}: expected key:value")))?;
            let k = k.trim();
            if k.is_empty() {
                return Err(MorgueError::BadFlag(format!("bad --kv entry {p:?}: empty key")));
            }
            Ok((k.to_string(), v.to_string()))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kv_and_formats() {
        assert_eq!(
            parse_kv("build:42,branch=main,,").unwrap(),
            vec![("build".into(), "42".into()), ("branch".into(), "main".into())]
        );
        assert!(parse_kv("oops").is_err());
        assert!(parse_kv(":x").is_err());
        assert_eq!(sniff_format(b"BTSNAP\x01"), Some("snapshot"));
        assert_eq!(sniff_format(b"  {\"a\":1}"), Some("json"));
        assert_eq!(sniff_format(b"\x7fELF"), None);
    }
}
