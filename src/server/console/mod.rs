//! The web console, served by `bt serve` beside the API: its pages, login
//! sessions, and the JSON its pages read. One binary: the assets are compiled in
//! ([`assets`]), nothing is fetched at run time.
//!
//! | route | who | what |
//! |---|---|---|
//! | `GET /`, `/p/P`, `/p/P/g/FP`, `/p/P/o/OBJ`, `/p/P/explore`, `/settings` | a logged-in user | the application shell (the page's state lives in its URL) |
//! | `GET /login`, `POST /login` (form) | — | the login page; sets the session cookie |
//! | `POST /logout` (form with `csrf`) | a session | ends the session |
//! | `GET /assets/app.js`, `/assets/app.css` | — | the compiled-in assets |
//! | `GET /api/console/me`, `overview`, `groups`, `group`, `object`, `vars` | query | see [`views`] |
//! | `GET`/`POST /api/admin/projects`, `tokens`, `users` | admin | see [`admin`] |
//!
//! Sessions are the store's login sessions, carried in the cookie `bt_session`
//! (`HttpOnly`, `SameSite=Strict`, `Secure` under TLS, expiring with the session).
//! A request authenticated by the cookie that changes anything (any method but
//! GET and HEAD) must carry `X-Bt-Csrf` (or a `csrf` form field for `/logout`)
//! equal to [`csrf_token`] of the session; otherwise it is refused with 403.

mod admin;
mod assets;
mod views;

use super::*;
use crate::store::auth::csrf_token;
pub(super) use views::SnapshotCache;

/// The session cookie's name.
const COOKIE: &str = "bt_session";

/// The value of a cookie of the request.
fn cookie<'a>(req: &'a Request<'_>, name: &str) -> Option<&'a str> {
    req.headers.iter().filter(|(k, _)| k.eq_ignore_ascii_case("cookie")).find_map(|(_, v)| {
        v.split(';').find_map(|kv| {
            let (k, v) = kv.trim().split_once('=')?;
            (k == name).then_some(v.trim())
        })
    })
}

fn safe_method(req: &Request<'_>) -> bool {
    matches!(req.method.as_str(), "GET" | "HEAD")
}

/// The session cookie as a credential: for reads always, for changes only with
/// the session's CSRF token in `X-Bt-Csrf`.
pub(super) fn cookie_credential<'a>(req: &'a Request<'_>) -> Option<&'a str> {
    let s = cookie(req, COOKIE).filter(|s| !s.is_empty())?;
    if safe_method(req) || req.header("x-bt-csrf").is_some_and(|h| h == csrf_token(s)) { Some(s) } else { None }
}

/// Whether the request carries the session cookie but not its CSRF token.
pub(super) fn csrf_missing(req: &Request<'_>) -> bool {
    cookie(req, COOKIE).is_some_and(|s| !s.is_empty()) && cookie_credential(req).is_none()
}

/// Text safe inside HTML (element content and quoted attribute values).
fn html_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Where to go after login: a path of this server only (never `//host` or a URL).
fn local_path(next: Option<&str>) -> String {
    match next {
        Some(n) if n.starts_with('/') && !n.starts_with("//") && !n.contains('\\') && !n.contains("\r") => {
            n.to_string()
        }
        _ => "/".to_string(),
    }
}

fn html(status: u16, body: String) -> Outcome {
    let mut resp = Response::new(status, "text/html; charset=utf-8", body.into_bytes());
    resp.headers.extend(assets::SECURITY_HEADERS.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    resp.headers.push(("Cache-Control".into(), "no-store".into()));
    Outcome { resp, note: None }
}

fn redirect(to: &str) -> Outcome {
    let mut resp = Response::new(303, "text/plain; charset=utf-8", Vec::new());
    resp.headers.push(("Location".into(), to.to_string()));
    resp.headers.push(("Cache-Control".into(), "no-store".into()));
    Outcome { resp, note: None }
}

/// The pages the application shell answers (the browser routes within them).
fn is_page(path: &str) -> bool {
    if path.is_empty() || path == "/settings" {
        return true;
    }
    let Some(rest) = path.strip_prefix("/p/") else { return false };
    let parts: Vec<&str> = rest.split('/').collect();
    matches!(parts.as_slice(), [p] | [p, "explore"] | [p, "g", _] | [p, "o", _] if !p.is_empty())
}

impl Api {
    /// The logged-in user of a page request (the cookie's session), if any.
    fn session_user(&self, req: &Request<'_>) -> Option<Principal> {
        let s = cookie(req, COOKIE)?;
        match self.store.authenticate(s) {
            Ok(Some(p @ Principal::User { .. })) => Some(p),
            _ => None,
        }
    }

    fn set_cookie(&self, value: &str, max_age: i64) -> String {
        let secure = if self.endpoint.0 == "https" { "; Secure" } else { "" };
        format!("{COOKIE}={value}; Path=/; HttpOnly; SameSite=Strict; Max-Age={max_age}{secure}")
    }

    /// The console's pages, login and logout, and its assets; None for another path.
    pub(super) fn console_page(&self, req: &mut Request<'_>, method: &str, path: &str) -> Option<Outcome> {
        Some(match (method, path) {
            ("GET" | "HEAD", "/assets/app.js") => assets::asset("application/javascript", assets::APP_JS),
            ("GET" | "HEAD", "/assets/app.css") => assets::asset("text/css", assets::APP_CSS),
            ("GET" | "HEAD", "/login") => {
                let next = local_path(req.param("next"));
                let msg = match req.param("why") {
                    Some("expired") => "Your session has expired. Log in again.",
                    Some("out") => "You are logged out.",
                    _ => "",
                };
                html(200, assets::login_page(&html_escape(&next), msg))
            }
            ("POST", "/login") => self.form_login(req),
            ("POST", "/logout") => self.logout(req),
            ("GET" | "HEAD", p) if is_page(p) => match self.session_user(req) {
                Some(_) => html(200, assets::INDEX_HTML.to_string()),
                None => {
                    let mut target = req.path.clone();
                    let q: Vec<String> = req
                        .query
                        .iter()
                        .map(|(k, v)| format!("{}={}", views::url_encode(k), views::url_encode(v)))
                        .collect();
                    if !q.is_empty() {
                        target = format!("{target}?{}", q.join("&"));
                    }
                    let why = if cookie(req, COOKIE).is_some_and(|c| !c.is_empty()) { "&why=expired" } else { "" };
                    redirect(&format!("/login?next={}{why}", views::url_encode(&target)))
                }
            },
            (_, "/login" | "/logout" | "/assets/app.js" | "/assets/app.css") => err(405, "method not allowed"),
            _ => return None,
        })
    }

    fn form_login(&self, req: &mut Request<'_>) -> Outcome {
        let body = match req.body(64 * 1024) {
            Ok(b) => b,
            Err(e) => return body_error(e),
        };
        let fields = http::parse_query(&String::from_utf8_lossy(&body));
        let get = |k: &str| fields.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
        let next = local_path(get("next").as_deref());
        let (Some(user), Some(password)) = (get("username"), get("password")) else {
            return html(400, assets::login_page(&html_escape(&next), "Give a user name and a password."));
        };
        let ip = req.remote.ip();
        let permit = match self.logins.admit(ip, &user) {
            Ok(p) => p,
            Err(_) => {
                return html(429, assets::login_page(&html_escape(&next), "Too many failed logins: try again later."));
            }
        };
        let result = self.store.login(&user, &password, self.opts.session_secs);
        drop(permit);
        match result {
            Ok(Some(token)) => {
                self.logins.record(ip, &user, true);
                let mut o = redirect(&next);
                o.resp.headers.push(("Set-Cookie".into(), self.set_cookie(&token, self.opts.session_secs)));
                o.note = Some(format!("console login {user}"));
                o
            }
            Ok(None) => {
                self.logins.record(ip, &user, false);
                let mut o = html(401, assets::login_page(&html_escape(&next), "Wrong user name or password."));
                o.note = Some("console login refused".into());
                o
            }
            Err(e) => store_error(e),
        }
    }

    fn logout(&self, req: &mut Request<'_>) -> Outcome {
        let body = req.body(64 * 1024).unwrap_or_default();
        let fields = http::parse_query(&String::from_utf8_lossy(&body));
        let form_csrf = fields.iter().find(|(n, _)| n == "csrf").map(|(_, v)| v.clone());
        let Some(session) = cookie(req, COOKIE).map(str::to_string) else { return redirect("/login?why=out") };
        let header_csrf = req.header("x-bt-csrf").map(str::to_string);
        let want = csrf_token(&session);
        if form_csrf.as_deref() != Some(want.as_str()) && header_csrf.as_deref() != Some(want.as_str()) {
            return err(403, "missing or wrong CSRF token (cross-site request refused)");
        }
        if let Err(e) = self.store.end_session(&session) {
            return store_error(e);
        }
        let mut o = redirect("/login?why=out");
        o.resp.headers.push(("Set-Cookie".into(), self.set_cookie("", 0)));
        o
    }

    /// `/api/console/…` and `/api/admin/…`; None for another path.
    pub(super) fn console_api(&self, req: &mut Request<'_>, method: &str, path: &str) -> Option<Outcome> {
        if let Some(what) = path.strip_prefix("/api/console/") {
            if method != "GET" && method != "HEAD" {
                return Some(err(405, "method not allowed"));
            }
            return Some(self.console_view(req, what));
        }
        let what = path.strip_prefix("/api/admin/")?;
        Some(self.admin(req, method, what))
    }
}
