//! The HTTP API of the object store: routes, authentication, the request log and
//! the background retention task. HTTP itself lives in [`http`].
//!
//! | route | scope | what |
//! |---|---|---|
//! | `POST /api/post`, `POST /post`, `POST /{project-or-universe}/{token}/{format}` | submit | ingest a snapshot or JSON report (raw or multipart, gzip/deflate); `&object=ID&attachment_name=N` adds an attachment to a stored object |
//! | `POST /api/login` | — | user name + password → session token |
//! | `POST /api/query?project=P` | query | run a query |
//! | `GET /api/get?project=P&object=ID[&attachment=NAME]` | object | download |
//! | `POST`/`DELETE /api/delete?project=P` | admin | delete the objects a filter selects |
//! | `GET /api/describe?project=P` | query | the attributes of a project and their types |
//! | `GET /api/list?project=P&object=ID` | object | the object's attachments |
//! | `POST /api/post?format=minidump` | submit | a minidump: queued durably, then traced ([`queue`]) |
//! | `POST /api/post?format=symbols`, `GET /api/symbols` | symbols, query | symbol files by build id ([`symbols`]) |
//! | `GET /api/health` | — | liveness, the minidumps waiting, the bytes of uploads in flight |
//! | `/api/triage…`, `/api/integrations…`, `/api/rules` | see [`workflow`] | triage and notifications |
//! | `/`, `/p/…`, `/settings`, `/login`, `/logout`, `/assets/…`, `/api/console/…`, `/api/admin/…` | see [`console`] | the web console |

pub mod budget;
mod console;
mod coronerd;
pub mod http;
pub mod multipart;
mod queue;
mod symbols;
pub mod throttle;
#[cfg(feature = "tls")]
mod tls;
mod workflow;

use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value as Json, json};

use crate::store::auth::Principal;
use crate::store::query::Query;
use crate::store::schema::BlobKind;
use crate::store::{Format, Scope, Store, StoreError, Submission, format_object_id, now, parse_object_id};
use http::{BodyError, Limits, Request, Response};

/// Options of `bt serve`.
#[derive(Clone)]
pub struct Options {
    pub limits: Limits,
    /// Largest submission (report plus attachments), bytes.
    pub max_submission: u64,
    /// Largest query body, bytes.
    pub max_query: u64,
    /// How often retention runs.
    pub retention_every: Duration,
    /// Bytes all submissions being ingested may hold at once (bodies and decoding).
    pub max_inflight: u64,
    /// The universe name reported to Backtrace clients (bt has one per server).
    pub universe: String,
    /// How long a login session lasts (the console's cookie, morgue's token).
    pub session_secs: i64,
    /// Turns a minidump into an encoded snapshot (the tracer, given by the command:
    /// the server does not name it). None: minidumps are refused.
    pub minidump: Option<MinidumpProcessor>,
}

/// A minidump's bytes → the encoded snapshot of the crash, or why not.
pub type MinidumpProcessor = Arc<dyn Fn(&[u8]) -> Result<Vec<u8>, String> + Send + Sync>;

impl Default for Options {
    fn default() -> Options {
        Options {
            limits: Limits::default(),
            max_submission: 32 << 20,
            max_query: 1 << 20,
            retention_every: Duration::from_secs(60),
            max_inflight: 1 << 30,
            universe: "bt".into(),
            session_secs: crate::store::auth::SESSION_SECS,
            minidump: None,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("listening on {addr}: {source}")]
    Listen { addr: String, source: std::io::Error },
    #[error("TLS: {0}")]
    Tls(String),
}

/// Certificate chain and private key, PEM files.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// Whether this build can serve TLS (cargo feature `tls`).
pub const TLS_BUILT: bool = cfg!(feature = "tls");

/// One line of the request log, on stderr, as JSON, through the logging facade
/// (target `bt::request`, printed as is). Never panics: a closed or full stderr
/// loses the line, not the server. Without an installed logger (the library used
/// on its own) the line goes to stderr directly.
pub fn log_line(v: Json) {
    if log::log_enabled!(target: "bt::request", log::Level::Info) {
        log::info!(target: "bt::request", "{v}");
    } else if log::max_level() == log::LevelFilter::Off {
        use std::io::Write;
        let _ = std::io::stderr().lock().write_all(format!("{v}\n").as_bytes());
    }
}

struct Api {
    /// Where submissions go, as login answers tell morgue: (protocol, port).
    endpoint: (&'static str, u16),
    store: Arc<Store>,
    opts: Options,
    logins: throttle::Throttle,
    inflight: budget::Inflight,
    /// The console debugger's recently decoded snapshots.
    snapshots: console::SnapshotCache,
    /// Minidumps acknowledged and waiting to be processed (None: not processed here).
    queue: Option<Arc<queue::Queue>>,
}

fn busy(why: &str) -> Outcome {
    let mut o = err(503, why);
    o.resp.headers.push(("Retry-After".into(), "1".into()));
    o
}

/// What a handler hands back: a response, plus what the log should say.
struct Outcome {
    resp: Response,
    note: Option<String>,
}

fn err(status: u16, message: &str) -> Outcome {
    Outcome {
        resp: Response::json(status, &json!({"error": {"message": message, "code": status}})),
        note: Some(message.to_string()),
    }
}

fn ok(v: Json) -> Outcome {
    Outcome { resp: Response::json(200, &v), note: None }
}

/// The 401 and 403 replies say nothing about projects, objects or tokens.
fn unauthorized() -> Outcome {
    err(401, "unauthorized")
}

fn forbidden() -> Outcome {
    err(403, "forbidden")
}

/// How often a server with an external blob store sweeps it, and how old an
/// unreferenced blob must be to go (far longer than any commit).
const SWEEP_EVERY: Duration = Duration::from_secs(3600);
const SWEEP_GRACE: Duration = Duration::from_secs(3600);

fn store_error(e: StoreError) -> Outcome {
    match e {
        StoreError::BadInput(m) => err(400, &m),
        StoreError::TooLarge(m) => err(413, &m),
        StoreError::NoProject(_) => err(404, "no such project"),
        StoreError::NotFound(m) => err(404, &format!("{m} not found")),
        StoreError::Closed => err(503, "the store is shutting down"),
        StoreError::Unavailable(m) => {
            let mut o = err(503, "storage unavailable, retry later");
            o.note = Some(m);
            o
        }
        other => {
            let mut o = err(500, "internal error");
            o.note = Some(other.to_string());
            o
        }
    }
}

/// `/{a}/{b}/{format}` with a known format → (a, b, format).
fn submit_style(path: &str) -> Option<(String, String, String)> {
    let mut it = path.trim_start_matches('/').split('/');
    let (Some(a), Some(b), Some(f), None) = (it.next(), it.next(), it.next(), it.next()) else { return None };
    let known = ["json", "snapshot", "bt", "minidump"];
    (!a.is_empty() && !b.is_empty() && a != "api" && known.contains(&f))
        .then(|| (a.to_string(), b.to_string(), f.to_string()))
}

/// Inflates a `Content-Encoding: gzip` or `deflate` body, at most `limit` bytes.
fn inflate(encoding: &str, body: Vec<u8>, limit: u64) -> Result<Vec<u8>, Outcome> {
    use std::io::Read;
    let enc = encoding.trim().to_ascii_lowercase();
    let mut out = Vec::new();
    let read = |r: &mut dyn Read, out: &mut Vec<u8>| r.take(limit + 1).read_to_end(out);
    let result = match enc.as_str() {
        "" | "identity" => return Ok(body),
        "gzip" | "x-gzip" => read(&mut flate2::read::MultiGzDecoder::new(body.as_slice()), &mut out),
        // HTTP's deflate is zlib-wrapped; some clients send raw deflate.
        "deflate" => match read(&mut flate2::read::ZlibDecoder::new(body.as_slice()), &mut out) {
            Ok(n) => Ok(n),
            Err(_) => {
                out.clear();
                read(&mut flate2::read::DeflateDecoder::new(body.as_slice()), &mut out)
            }
        },
        other => return Err(err(415, &format!("unsupported Content-Encoding {other:?}: gzip or deflate"))),
    };
    match result {
        Ok(_) if out.len() as u64 > limit => {
            Err(err(413, &format!("request body inflates to more than the limit of {limit} bytes")))
        }
        Ok(_) => Ok(out),
        Err(e) => Err(err(400, &format!("request body is not valid {enc}: {e}"))),
    }
}

fn body_error(e: BodyError) -> Outcome {
    match e {
        BodyError::TooLarge { limit } => err(413, &format!("request body is larger than the limit of {limit} bytes")),
        BodyError::Timeout => err(408, "request body did not arrive in time"),
        BodyError::Bad(m) => err(400, &format!("request body: {m}")),
    }
}

/// The credential of a request: `token` parameter, `X-Coroner-Token`, or a bearer token.
fn credential<'a>(req: &'a Request<'_>) -> Option<&'a str> {
    req.param("token")
        .or_else(|| req.header("x-coroner-token"))
        .or_else(|| {
            req.header("authorization").and_then(|a| a.strip_prefix("Bearer ").or_else(|| a.strip_prefix("bearer ")))
        })
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .or_else(|| console::cookie_credential(req))
}

/// 401, or 403 when the request carried the console's session cookie without
/// the CSRF token a state-changing request needs.
fn unauthenticated(req: &Request<'_>) -> Outcome {
    if console::csrf_missing(req) {
        return err(403, "missing or wrong X-Bt-Csrf header (cross-site request refused)");
    }
    unauthorized()
}

impl Api {
    /// Authenticates and authorizes; returns the project the request acts on.
    fn authorize(&self, req: &mut Request<'_>, scope: Scope) -> Result<String, Outcome> {
        let Some(cred) = credential(req) else { return Err(unauthenticated(req)) };
        let principal = match self.store.authenticate(cred) {
            Ok(Some(p)) => p,
            Ok(None) => return Err(unauthorized()),
            Err(e) => return Err(store_error(e)),
        };
        let project = match (&principal, req.param("project")) {
            (_, Some(p)) => p.to_string(),
            (Principal::Token { project, .. }, None) => project.clone(),
            (Principal::User { .. }, None) => return Err(err(400, "missing parameter project")),
        };
        if !principal.allows(&project, scope) {
            return Err(forbidden());
        }
        req.log_project = Some(project.clone());
        Ok(project)
    }

    fn route(&self, req: &mut Request<'_>) -> Outcome {
        let path = req.path.trim_end_matches('/').to_string();
        match (req.method.as_str(), path.as_str()) {
            ("GET" | "HEAD", "/api/health") => ok(json!({
                "response": "ok",
                "minidumps_queued": self.queue.as_ref().map(|q| q.len()).unwrap_or(0),
                "inflight_bytes": self.inflight.used(),
            })),
            ("POST", "/api/post" | "/post") => self.post(req),
            ("POST", "/api/login") => self.login(req),
            ("POST", "/api/query") => self.query(req),
            ("GET" | "HEAD", "/api/get") => self.get(req),
            ("POST" | "DELETE", "/api/delete") => self.delete(req),
            ("GET", "/api/describe") => self.describe(req),
            ("GET", "/api/list") => self.list_attachments(req),
            ("GET", "/api/symbols") => self.list_symbols(req),
            (
                _,
                "/api/health" | "/api/post" | "/post" | "/api/login" | "/api/query" | "/api/get" | "/api/delete"
                | "/api/describe" | "/api/list" | "/api/symbols",
            ) => err(405, "method not allowed"),
            ("POST", p) if submit_style(p).is_some() => {
                // `POST /{project-or-universe}/{token}/{format}`, as submit.backtrace.io
                // URLs are written and SDKs post to a custom URL.
                if let Some((first, token, format)) = submit_style(p) {
                    if self.store.index().map(|i| i.contains_key(&first)).unwrap_or(false) {
                        req.query.push(("project".into(), first));
                    }
                    req.query.push(("token".into(), token));
                    req.query.push(("format".into(), format));
                }
                self.post(req)
            }
            (m, p) if p.starts_with("/api/") => {
                let m = m.to_string();
                self.workflow(req, &m, &path)
                    .or_else(|| self.console_api(req, &m, &path))
                    .unwrap_or_else(|| err(404, "no such endpoint"))
            }
            (m, _) => {
                let m = m.to_string();
                self.console_page(req, &m, &path).unwrap_or_else(|| err(404, "no such endpoint"))
            }
        }
    }

    fn post(&self, req: &mut Request<'_>) -> Outcome {
        let symbols = req.param("format") == Some("symbols");
        let project = match self.authorize(req, if symbols { Scope::Symbols } else { Scope::Submit }) {
            Ok(p) => p,
            Err(o) => return o,
        };
        let content_type = req.header("content-type").unwrap_or("").to_ascii_lowercase();
        let mime = content_type.split(';').next().unwrap_or("").trim().to_string();
        // A raw body is the report whatever its content type (curl and urllib send
        // `application/x-www-form-urlencoded` for `--data-binary`); only
        // multipart/form-data is parsed as a form.
        let multipart = mime == "multipart/form-data";
        // Room in the in-flight budget first: the body as declared (a chunked one
        // as the largest allowed), then, once read, the body and its decoding.
        let declared = req.content_length().unwrap_or(self.opts.max_submission).min(self.opts.max_submission);
        let Some(mut reservation) = self.inflight.reserve(declared) else {
            return busy("too many submissions in flight: try again");
        };
        let body = match req.body(self.opts.max_submission) {
            Ok(b) => b,
            Err(e) => return body_error(e),
        };
        // A compressed body counts inflated against the size limit and the budget.
        let body = match req.header("content-encoding").map(str::to_string) {
            Some(enc) => {
                if !reservation.grow_to(self.opts.max_submission.saturating_add(body.len() as u64)) {
                    return busy("too many submissions in flight: try again");
                }
                match inflate(&enc, body, self.opts.max_submission) {
                    Ok(b) => b,
                    Err(o) => return o,
                }
            }
            None => body,
        };
        if symbols {
            return self.symbols_upload(req, &body);
        }
        // An attachment sent after its report (`&object=ID&attachment_name=NAME`, raw body).
        if let (Some(object), Some(name)) = (req.param("object"), req.param("attachment_name")) {
            let Some(id) = parse_object_id(object) else {
                return err(400, "parameter object must be an object id (hex)");
            };
            let name = name.to_string();
            return match self.store.add_attachment(&project, id, &name, &body) {
                Ok(n) => {
                    // The id is the attachment's place among the object's (morgue
                    // prints `attachment_id` and fetches by it).
                    let place = self
                        .store
                        .attachment_names(&project, id)
                        .ok()
                        .and_then(|all| all.iter().position(|(x, _)| *x == n))
                        .unwrap_or(0);
                    ok(json!({"response": "ok", "object": format_object_id(id), "_rxid": format_object_id(id),
                        "attachment": n, "attachment_name": n, "attachment_id": place.to_string()}))
                }
                Err(e) => store_error(e),
            };
        }
        let decode = crate::snapshot::DecodeLimits::for_submission(body.len() as u64, self.opts.max_submission);
        if !reservation.grow_to((body.len() as u64).saturating_mul(2).saturating_add(decode.max_memory)) {
            return busy("too many submissions in flight: try again");
        }
        let control = ["token", "format", "project", "universe", "object", "attachment_name"];
        let mut attributes: Vec<(String, String)> =
            req.query.iter().filter(|(k, _)| !control.contains(&k.as_str())).cloned().collect();
        let mut format = req.param("format").map(str::to_string);
        let mut attachments = Vec::new();
        let report = if multipart {
            let Some(boundary) = multipart::boundary(req.header("content-type").unwrap_or("")) else {
                return err(400, "multipart/form-data without a boundary");
            };
            let parts = match multipart::parse(&body, &boundary) {
                Ok(p) => p,
                Err(m) => return err(400, &m),
            };
            let mut report = None;
            let minidump_form = parts.iter().any(|p| p.name == "upload_file_minidump");
            for part in parts {
                if part.name == "upload_file_minidump" {
                    report = Some(part.data);
                    format = Some("minidump".into());
                } else if minidump_form && part.filename.is_some() {
                    // Crashpad's attachments: file parts named after the file.
                    attachments.push((part.filename.clone().unwrap_or_default(), part.data));
                } else if part.name == "upload_file" {
                    report = Some(part.data);
                } else if let Some(name) = part.name.strip_prefix("attachment_") {
                    attachments.push((name.to_string(), part.data));
                } else if part.name == "format" {
                    format = Some(String::from_utf8_lossy(&part.data).into_owned());
                } else if !control.contains(&part.name.as_str()) {
                    match String::from_utf8(part.data) {
                        Ok(v) => attributes.push((part.name, v)),
                        Err(_) => return err(400, &format!("form field {} is not UTF-8 text", part.name)),
                    }
                }
            }
            match report {
                Some(r) => r,
                None => return err(400, "multipart submission without an upload_file part"),
            }
        } else {
            body
        };
        if report.is_empty() {
            return err(400, "empty report");
        }
        // A minidump (Crashpad, Breakpad) is acknowledged once it is durable in the
        // queue; the queue's worker traces it into a snapshot and stores it, the dump
        // kept with the object.
        let minidump = format.as_deref() == Some("minidump") || (format.is_none() && report.starts_with(b"MDMP"));
        if minidump {
            let Some(queue) = &self.queue else { return err(400, "this server does not process minidumps") };
            if let Err(why) = queue::plausible_minidump(&report) {
                return err(400, &why);
            }
            let entry = queue::Entry { project, attributes, attachments, dump: report };
            return match queue.push(&entry) {
                Ok(id) => {
                    let mut o = ok(json!({"response": "ok", "queued": id}));
                    o.note = Some(format!("minidump queued {id}"));
                    o
                }
                Err(e) => {
                    let mut o = err(503, "could not queue the minidump: try again");
                    o.note = Some(e.to_string());
                    o
                }
            };
        }
        let format = match format.as_deref() {
            Some(f) => match Format::parse(f) {
                Some(f) => f,
                None => return err(400, &format!("unknown format {f:?}: use snapshot, json or minidump")),
            },
            None if report.starts_with(b"BTSNAP") => Format::Snapshot,
            None if mime == "application/json" => Format::Json,
            None => return err(400, "missing parameter format (snapshot or json)"),
        };
        if report.is_empty() {
            return err(400, "empty report");
        }
        let sub = Submission { project, format, body: report, attributes, attachments };
        match self.store.submit(sub) {
            Ok(ack) => {
                // `object` is what backtrace-node reads; `_rxid` what morgue and coronerd use.
                let mut v = json!({"response": "ok", "_rxid": format_object_id(ack.rxid), "object": format_object_id(ack.rxid),
                    "fingerprint": ack.fingerprint, "unique": ack.unique});
                if !ack.warnings.is_empty() {
                    v["warnings"] = json!(ack.warnings);
                }
                let mut o = ok(v);
                o.note = Some(format!("object {}", format_object_id(ack.rxid)));
                o
            }
            Err(e) => store_error(e),
        }
    }

    fn login(&self, req: &mut Request<'_>) -> Outcome {
        let body = match req.body(64 * 1024) {
            Ok(b) => b,
            Err(e) => return body_error(e),
        };
        let json_body = body.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'{');
        let (user, password) = if !json_body {
            let fields = http::parse_query(&String::from_utf8_lossy(&body));
            let get = |k: &str| fields.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
            (get("username"), get("password"))
        } else {
            match serde_json::from_slice::<Json>(&body) {
                Ok(v) => (
                    v.get("username").and_then(Json::as_str).map(str::to_string),
                    v.get("password").and_then(Json::as_str).map(str::to_string),
                ),
                Err(_) => return err(400, "login takes {\"username\": …, \"password\": …}"),
            }
        };
        let (Some(user), Some(password)) = (user, password) else {
            return err(400, "login takes a username and a password");
        };
        let ip = req.remote.ip();
        let permit = match self.logins.admit(ip, &user) {
            Ok(p) => p,
            Err(throttle::Refusal::Throttled { retry_after }) => {
                let mut o = err(429, "too many failed logins: try again later");
                o.resp.headers.push(("Retry-After".into(), retry_after.to_string()));
                return o;
            }
            Err(throttle::Refusal::Busy) => {
                let mut o = err(503, "too many logins at once: try again");
                o.resp.headers.push(("Retry-After".into(), "1".into()));
                return o;
            }
        };
        let result = self.store.login(&user, &password, self.opts.session_secs);
        drop(permit);
        match result {
            Ok(Some(token)) => {
                self.logins.record(ip, &user, true);
                // coronerd's shape, which morgue saves as its config: the user, the
                // universe (bt has one), and where to post.
                let universe = &self.opts.universe;
                let (protocol, port) = self.endpoint;
                let admin = matches!(self.store.authenticate(&token), Ok(Some(Principal::User { admin: true, .. })));
                ok(json!({
                    "response": "ok",
                    "token": token,
                    "user": {"uid": 1, "username": user, "role": if admin { "admin" } else { "member" }},
                    "universe": {"id": 1, "name": universe},
                    "universes": {universe.as_str(): {"id": 1, "name": universe}},
                    "endpoints": {"post": [{"protocol": protocol, "port": port}]},
                }))
            }
            Ok(None) => {
                self.logins.record(ip, &user, false);
                unauthorized()
            }
            Err(e) => store_error(e),
        }
    }

    fn query(&self, req: &mut Request<'_>) -> Outcome {
        let project = match self.authorize(req, Scope::Query) {
            Ok(p) => p,
            Err(o) => return o,
        };
        let body = match req.body(self.opts.max_query) {
            Ok(b) => b,
            Err(e) => return body_error(e),
        };
        if req.param("action") == Some("describe") {
            return match self.store.describe(&project) {
                Ok(attrs) => {
                    let attrs: Vec<(String, String, u64)> =
                        attrs.into_iter().map(|(n, t, c)| (n, t.as_str().to_string(), c)).collect();
                    ok(coronerd::describe(&attrs))
                }
                Err(e) => store_error(e),
            };
        }
        // morgue's requests name a universe and carry its own fields; they get
        // coronerd's answer. bt's own clients get bt's.
        let parsed: Option<Json> = serde_json::from_slice(&body).ok();
        let morgue = parsed.as_ref().is_some_and(|v| coronerd::is_coronerd(req.param("universe").is_some(), v));
        let q = if morgue {
            let mut v = parsed.unwrap_or(Json::Null);
            match coronerd::take_set(&mut v) {
                Ok(Some(set)) => return self.set(req, set, &v),
                Ok(None) => {}
                Err(m) => return err(400, &m),
            }
            if let Err(m) = coronerd::strip(&mut v) {
                return err(400, &m);
            }
            Query::from_json(&v)
        } else {
            Query::parse(&body)
        };
        let q = match q {
            Ok(q) => q,
            Err(e) => return store_error(e),
        };
        let started = Instant::now();
        match self.store.query(&project, &q) {
            Ok(out) if morgue => {
                let types: std::collections::HashMap<String, String> = self
                    .store
                    .describe(&project)
                    .map(|a| a.into_iter().map(|(n, t, _)| (n, t.as_str().to_string())).collect())
                    .unwrap_or_default();
                let us = started.elapsed().as_micros() as u64;
                let rows = out.json["objects"].as_u64().unwrap_or(0);
                let meta = json!({
                    "user": match credential(req).map(|c| self.store.authenticate(c)) {
                        Some(Ok(Some(Principal::User { name, .. }))) => name,
                        _ => "token".to_string(),
                    },
                    "universe": self.opts.universe,
                    "project": project,
                    "latency": format!("{:.3} ms", us as f64 / 1000.0),
                    "runtime": {
                        "filter": {"rows": rows, "time": us},
                        "group_by": {"groups": out.json["total"].as_u64().unwrap_or(0), "time": 0},
                        "aggregate": {"time": 0},
                        "sort": {"time": 0},
                        "total_time": us,
                    },
                });
                let ty = |a: &str| types.get(a).cloned().unwrap_or_else(|| "string".into());
                ok(coronerd::answer(&out.json, &ty, meta))
            }
            Ok(out) => {
                let mut v = out.json;
                if let Json::Object(o) = &mut v {
                    o.insert("response".into(), json!("ok"));
                }
                ok(v)
            }
            Err(e) => store_error(e),
        }
    }

    fn describe(&self, req: &mut Request<'_>) -> Outcome {
        let project = match self.authorize(req, Scope::Query) {
            Ok(p) => p,
            Err(o) => return o,
        };
        match self.store.describe(&project) {
            Ok(attrs) => {
                let attrs: Vec<Json> = attrs
                    .into_iter()
                    .map(|(name, ty, set)| json!({"name": name, "type": ty.as_str(), "objects": set}))
                    .collect();
                ok(json!({"response": "ok", "project": project, "attributes": attrs}))
            }
            Err(e) => store_error(e),
        }
    }

    fn get(&self, req: &mut Request<'_>) -> Outcome {
        let project = match self.authorize(req, Scope::Object) {
            Ok(p) => p,
            Err(o) => return o,
        };
        let Some(id) = req.param("object").and_then(parse_object_id) else {
            return err(400, "parameter object must be an object id (hex)");
        };
        // `attachment=NAME` (bt), `attachment_name=NAME` or `attachment_id=N` (morgue:
        // the N-th of the object's attachments, as /api/list orders them).
        let by_id = match req.param("attachment_id") {
            Some(n) => match (n.parse::<usize>(), self.store.attachment_names(&project, id)) {
                (Ok(i), Ok(names)) => match names.into_iter().nth(i) {
                    Some((name, _)) => Some(name),
                    None => return err(404, "attachment not found"),
                },
                (Err(_), _) => return err(400, "attachment_id must be a number"),
                (_, Err(e)) => return store_error(e),
            },
            None => None,
        };
        let named = req.param("attachment").or_else(|| req.param("attachment_name")).map(str::to_string).or(by_id);
        if let Some(name) = named {
            if !crate::store::ingest::valid_attachment_name(&name) {
                return err(400, "bad attachment name");
            }
            return match self.store.get_attachment(&project, id, &name) {
                Ok(bytes) => {
                    let mut resp = Response::new(200, "application/octet-stream", bytes);
                    resp.headers.push(("Content-Disposition".into(), format!("attachment; filename=\"{name}\"")));
                    Outcome { resp, note: None }
                }
                Err(e) => store_error(e),
            };
        }
        match self.store.get(&project, id) {
            Ok(obj) => {
                let ct = match obj.kind {
                    BlobKind::Snapshot => "application/x-bt-snapshot",
                    BlobKind::JsonZstd => "application/json",
                };
                let file = match obj.kind {
                    BlobKind::Snapshot => format!("{}.bt", format_object_id(id)),
                    BlobKind::JsonZstd => format!("{}.json", format_object_id(id)),
                };
                let mut resp = Response::new(200, ct, obj.bytes);
                resp.headers.push(("X-Object-Id".into(), format_object_id(id)));
                resp.headers.push(("Content-Disposition".into(), format!("attachment; filename=\"{file}\"")));
                Outcome { resp, note: Some(format!("object {}", format_object_id(id))) }
            }
            Err(e) => store_error(e),
        }
    }

    /// `GET /api/list?project=P&object=ID`: the object's attachments.
    fn list_attachments(&self, req: &mut Request<'_>) -> Outcome {
        let project = match self.authorize(req, Scope::Object) {
            Ok(p) => p,
            Err(o) => return o,
        };
        let Some(id) = req.param("object").and_then(parse_object_id) else {
            return err(400, "parameter object must be an object id (hex)");
        };
        match self.store.attachment_names(&project, id) {
            Ok(names) => ok(json!({
                "response": "ok",
                "object": format_object_id(id),
                "attachments": names.iter().enumerate().map(|(i, (n, s))| json!({
                    "id": i.to_string(), "name": n, "size": s,
                    "content_type": "application/octet-stream", "inline": false,
                })).collect::<Vec<_>>(),
            })),
            Err(e) => store_error(e),
        }
    }

    fn delete(&self, req: &mut Request<'_>) -> Outcome {
        let body = match req.body(self.opts.max_query) {
            Ok(b) => b,
            Err(e) => return body_error(e),
        };
        // morgue sends everything in the body: `{"project", "objects": [hex…]}`.
        let morgue: Option<Json> = serde_json::from_slice::<Json>(&body).ok().filter(|v| v.get("objects").is_some());
        if let Some(p) = morgue.as_ref().and_then(|v| v["project"].as_str())
            && req.param("project").is_none()
        {
            req.query.push(("project".into(), p.to_string()));
        }
        let project = match self.authorize(req, Scope::Admin) {
            Ok(p) => p,
            Err(o) => return o,
        };
        if let Some(v) = morgue {
            let mut ids = Vec::new();
            for o in v["objects"].as_array().into_iter().flatten() {
                let id = match o {
                    Json::String(s) => parse_object_id(s),
                    Json::Number(n) => n.as_u64(),
                    _ => None,
                };
                match id {
                    Some(id) => ids.push(id),
                    None => return err(400, "objects must be object ids (hex strings)"),
                }
            }
            return match self.store.delete(&project, ids) {
                Ok(n) => ok(json!({"response": "ok", "deleted": n})),
                Err(e) => store_error(e),
            };
        }
        if let Some(o) = req.param("object") {
            let Some(id) = parse_object_id(o) else {
                return err(400, "parameter object must be an object id (hex)");
            };
            return match self.store.delete(&project, vec![id]) {
                Ok(n) => ok(json!({"response": "ok", "deleted": n})),
                Err(e) => store_error(e),
            };
        }
        let raw: Json = if body.iter().all(u8::is_ascii_whitespace) {
            json!({})
        } else {
            match serde_json::from_slice(&body) {
                Ok(v) => v,
                Err(e) => return err(400, &format!("malformed query: {e}")),
            }
        };
        let q = match Query::from_json(&raw) {
            Ok(q) => q,
            Err(e) => return store_error(e),
        };
        let limit = raw.get("limit").and_then(Json::as_u64).map(|l| l as usize);
        let all = matches!(req.param("all"), Some("1" | "true" | "yes"));
        let deleted = match self.store.delete_matching(&project, &q, limit, all) {
            Ok(n) => n,
            Err(e) => return store_error(e),
        };
        ok(json!({"response": "ok", "deleted": deleted}))
    }
}

struct Handler {
    api: Api,
}

impl http::Handler for Handler {
    fn handle(&self, req: &mut Request<'_>) -> Response {
        let out = self.api.route(req);
        let mut resp = out.resp;
        resp.note = out.note;
        resp
    }

    fn log(&self, req: &Request<'_>, resp: &Response, started: Instant) {
        let (note, project) = (resp.note.clone(), req.log_project.clone());
        // Never the query string: it carries tokens.
        let mut v = json!({
            "ts": now(), "remote": req.remote.to_string(), "method": req.method, "path": req.path,
            "project": project, "status": resp.status, "in": req.body_bytes, "out": resp.body.len(),
            "us": started.elapsed().as_micros() as u64,
        });
        if let (Some(n), Json::Object(o)) = (note, &mut v) {
            o.insert(if resp.status >= 400 { "error".into() } else { "note".into() }, json!(n));
        }
        log_line(v);
    }

    fn log_error(&self, remote: SocketAddr, status: u16, message: &str) {
        log_line(json!({"ts": now(), "remote": remote.to_string(), "status": status, "error": message}));
    }
}

/// Binds `listen`, reports the bound address through `ready`, starts the retention
/// task and serves until the process ends.
pub fn serve(
    store: Arc<Store>,
    listen: &str,
    opts: Options,
    tls: Option<TlsFiles>,
    ready: impl FnOnce(SocketAddr),
) -> Result<(), ServerError> {
    let wrap: Option<Arc<http::Wrap>> = match tls {
        None => None,
        #[cfg(feature = "tls")]
        Some(t) => Some(tls::wrapper(&t.cert, &t.key)?),
        #[cfg(not(feature = "tls"))]
        Some(_) => return Err(ServerError::Tls("this bt was built without TLS (cargo feature tls)".into())),
    };
    let listener =
        TcpListener::bind(listen).map_err(|e| ServerError::Listen { addr: listen.to_string(), source: e })?;
    let addr = listener.local_addr().map_err(|e| ServerError::Listen { addr: listen.to_string(), source: e })?;
    ready(addr);
    let retention_store = store.clone();
    let every = opts.retention_every;
    let _ = std::thread::Builder::new().name("retention".into()).spawn(move || {
        loop {
            std::thread::sleep(every);
            match retention_store.enforce_retention() {
                Ok(0) => {}
                Ok(n) => log_line(json!({"ts": now(), "retention": {"removed": n}})),
                Err(e) => log_line(json!({"ts": now(), "retention": {"error": e.to_string()}})),
            }
        }
    });
    if store.db().blob_store().is_some() {
        let sweep_store = store.clone();
        let _ = std::thread::Builder::new().name("sweeper".into()).spawn(move || {
            loop {
                std::thread::sleep(SWEEP_EVERY);
                match sweep_store.sweep_blobs(SWEEP_GRACE.as_secs() as i64) {
                    Ok(s) if s.removed == 0 && s.compacted == 0 => {}
                    Ok(s) => log_line(json!({"ts": now(), "sweep": {
                        "blobs": s.blobs, "removed": s.removed, "compacted": s.compacted, "moved": s.moved
                    }})),
                    Err(e) => log_line(json!({"ts": now(), "sweep": {"error": e.to_string()}})),
                }
            }
        });
    }
    store.limit_decoding(opts.max_submission);
    let minidump_queue = match &opts.minidump {
        Some(process) => {
            let q = queue::Queue::open(store.dir())
                .map_err(|e| ServerError::Listen { addr: "the minidump queue".into(), source: e })?;
            let (worker_q, worker_store, process) = (q.clone(), store.clone(), process.clone());
            let _ =
                std::thread::Builder::new().name("minidumps".into()).spawn(move || worker_q.run(worker_store, process));
            Some(q)
        }
        None => None,
    };
    let limits = opts.limits.clone();
    let handler = Arc::new(Handler {
        api: Api {
            endpoint: (if wrap.is_some() { "https" } else { "http" }, addr.port()),
            store,
            logins: throttle::Throttle::default(),
            snapshots: console::SnapshotCache::default(),
            queue: minidump_queue,
            inflight: budget::Inflight::new(
                opts.max_inflight.max(opts.max_submission.saturating_mul(10).saturating_add(32 << 20)),
            ),
            opts,
        },
    });
    http::serve(listener, handler, limits, wrap).map_err(|e| ServerError::Listen { addr: addr.to_string(), source: e })
}
