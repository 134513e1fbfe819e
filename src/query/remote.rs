//! The HTTP client of `bt morgue`: the object store's API (`/api/login`, `/api/query`,
//! `/api/describe`, `/api/get`, `/api/post`, `/api/delete`) over ureq, with server
//! answers turned into [`MorgueError`]s that say what to do.

use std::time::Duration;

use serde_json::{Value as Json, json};

use super::{Ack, AttrInfo, MorgueError};

/// Largest object `get` accepts.
const MAX_DOWNLOAD: u64 = 1 << 30;
/// Largest JSON answer accepted.
const MAX_ANSWER: u64 = 256 << 20;

/// A server and the credential to use on it.
pub struct Remote {
    agent: ureq::Agent,
    /// `http://host:port`, no trailing slash.
    pub url: String,
    token: String,
    pub user: String,
    /// Whether the token is a login session (a 401 then means it expired).
    from_session: bool,
}

/// What a query-string component may keep as is (RFC 3986 unreserved).
const COMPONENT: &percent_encoding::AsciiSet =
    &percent_encoding::NON_ALPHANUMERIC.remove(b'-').remove(b'_').remove(b'.').remove(b'~');

/// Percent-encodes a query-string component.
pub fn encode(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, COMPONENT).to_string()
}

/// Normalises a server URL: a bare `host:port` gets `http://`; no trailing slash.
pub fn normalize_url(url: &str) -> Result<String, MorgueError> {
    let u = url.trim();
    let u = if u.contains("://") { u.to_string() } else { format!("http://{u}") };
    let u = u.trim_end_matches('/').to_string();
    let host = u.split_once("://").map(|(_, h)| h).unwrap_or("");
    if !(u.starts_with("http://") || u.starts_with("https://")) || host.is_empty() {
        return Err(MorgueError::BadFlag(format!("bad server URL {url:?}: expected http://HOST:PORT")));
    }
    if u.starts_with("https://") && !cfg!(feature = "tls") {
        return Err(MorgueError::BadFlag(format!(
            "{u}: https needs a bt built with TLS (cargo feature tls; make builds with it)"
        )));
    }
    Ok(u)
}

/// The HTTP agent. With TLS built in, `SSL_CERT_FILE` (PEM) replaces the bundled
/// web PKI roots, for servers with a private or self-signed certificate.
fn agent() -> Result<ureq::Agent, MorgueError> {
    #[allow(unused_mut)]
    let mut b = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_connect(Some(Duration::from_secs(10)))
        .timeout_global(Some(Duration::from_secs(300)))
        .max_redirects(0);
    #[cfg(feature = "tls")]
    if let Some(path) = std::env::var_os("SSL_CERT_FILE").filter(|p| !p.is_empty()) {
        use ureq::tls::{PemItem, RootCerts, TlsConfig};
        let path = std::path::PathBuf::from(path);
        let pem = std::fs::read(&path).map_err(|e| MorgueError::Io { path: path.clone(), source: e })?;
        let certs: Vec<_> = ureq::tls::parse_pem(&pem)
            .filter_map(|item| match item {
                Ok(PemItem::Certificate(c)) => Some(c),
                _ => None,
            })
            .collect();
        if certs.is_empty() {
            return Err(MorgueError::BadFlag(format!("{} (SSL_CERT_FILE) holds no PEM certificate", path.display())));
        }
        b = b.tls_config(TlsConfig::builder().root_certs(RootCerts::Specific(std::sync::Arc::new(certs))).build());
    }
    Ok(b.build().into())
}

fn transport(url: &str, e: ureq::Error) -> MorgueError {
    let reason = match &e {
        ureq::Error::ConnectionFailed => "connection failed".to_string(),
        ureq::Error::HostNotFound => "host not found".to_string(),
        ureq::Error::Timeout(_) => "timed out".to_string(),
        ureq::Error::Io(io) if io.kind() == std::io::ErrorKind::ConnectionRefused => "connection refused".to_string(),
        ureq::Error::Io(io) => io.to_string(),
        other => other.to_string(),
    };
    if reason.contains("certificate") || reason.to_ascii_lowercase().contains("tls") {
        return MorgueError::Tls { url: url.to_string(), reason };
    }
    MorgueError::Unreachable { url: url.to_string(), reason }
}

/// The message of an error answer (`{"error": {"message": …}}`), else the body text.
fn message(body: &[u8]) -> String {
    serde_json::from_slice::<Json>(body)
        .ok()
        .and_then(|v| v["error"]["message"].as_str().map(str::to_string))
        .unwrap_or_else(|| String::from_utf8_lossy(body).chars().take(200).collect())
}

/// Logs in; returns the session token.
pub fn login(url: &str, user: &str, password: &str) -> Result<String, MorgueError> {
    let body = json!({"username": user, "password": password}).to_string();
    let resp = agent()?
        .post(format!("{url}/api/login"))
        .header("Content-Type", "application/json")
        .send(body.as_bytes())
        .map_err(|e| transport(url, e))?;
    let status = resp.status().as_u16();
    let bytes = resp.into_body().with_config().limit(MAX_ANSWER).read_to_vec().map_err(|e| transport(url, e))?;
    match status {
        200 => serde_json::from_slice::<Json>(&bytes)
            .ok()
            .and_then(|v| v["token"].as_str().map(str::to_string))
            .ok_or_else(|| MorgueError::BadResponse(format!("{url}: login answer without a token"))),
        401 => Err(MorgueError::LoginFailed { url: url.to_string(), user: user.to_string() }),
        s => Err(MorgueError::Server { url: url.to_string(), status: s, message: message(&bytes) }),
    }
}

impl Remote {
    pub fn new(url: &str, token: &str, user: &str, from_session: bool) -> Result<Remote, MorgueError> {
        Ok(Remote {
            agent: agent()?,
            url: url.to_string(),
            token: token.to_string(),
            user: user.to_string(),
            from_session,
        })
    }

    /// One request; answers other than 2xx become errors naming `project`.
    fn call(
        &self,
        method: &str,
        path: &str,
        project: &str,
        body: Option<(&str, &[u8])>,
        limit: u64,
    ) -> Result<(Vec<u8>, Option<String>), MorgueError> {
        let uri = format!("{}{path}", self.url);
        let auth = format!("Bearer {}", self.token);
        let result = match (method, body) {
            ("GET", _) => self.agent.get(&uri).header("Authorization", &auth).call(),
            (_, Some((ct, b))) => {
                self.agent.post(&uri).header("Authorization", &auth).header("Content-Type", ct).send(b)
            }
            (_, None) => self.agent.post(&uri).header("Authorization", &auth).send_empty(),
        };
        let resp = result.map_err(|e| transport(&self.url, e))?;
        let status = resp.status().as_u16();
        let ct = resp.headers().get("content-type").and_then(|v| v.to_str().ok()).map(str::to_string);
        let bytes = resp.into_body().with_config().limit(limit).read_to_vec().map_err(|e| transport(&self.url, e))?;
        match status {
            200..=299 => Ok((bytes, ct)),
            401 if self.from_session => Err(MorgueError::SessionExpired { url: self.url.clone() }),
            401 => Err(MorgueError::Unauthorized { url: self.url.clone() }),
            403 => Err(MorgueError::Forbidden { url: self.url.clone(), project: project.to_string() }),
            404 if message(&bytes) == "no such project" => Err(MorgueError::NoProject(project.to_string())),
            400 => Err(MorgueError::BadQuery(message(&bytes))),
            s => Err(MorgueError::Server { url: self.url.clone(), status: s, message: message(&bytes) }),
        }
    }

    fn json(&self, bytes: &[u8]) -> Result<Json, MorgueError> {
        serde_json::from_slice(bytes).map_err(|e| MorgueError::BadResponse(format!("{}: not JSON: {e}", self.url)))
    }

    /// A JSON call: GET, or POST with a JSON body; the answer parsed.
    pub fn call_json(&self, method: &str, path: &str, project: &str, body: Option<&Json>) -> Result<Json, MorgueError> {
        let text = body.map(|b| b.to_string());
        let (b, _) =
            self.call(method, path, project, text.as_deref().map(|t| ("application/json", t.as_bytes())), MAX_ANSWER)?;
        self.json(&b)
    }

    pub fn query(&self, project: &str, q: &Json) -> Result<Json, MorgueError> {
        let (b, _) = self.call(
            "POST",
            &format!("/api/query?project={}", encode(project)),
            project,
            Some(("application/json", q.to_string().as_bytes())),
            MAX_ANSWER,
        )?;
        self.json(&b)
    }

    pub fn describe(&self, project: &str) -> Result<Vec<AttrInfo>, MorgueError> {
        let (b, _) =
            self.call("GET", &format!("/api/describe?project={}", encode(project)), project, None, MAX_ANSWER)?;
        let v = self.json(&b)?;
        Ok(v["attributes"]
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|x| AttrInfo {
                        name: x["name"].as_str().unwrap_or("").to_string(),
                        ty: x["type"].as_str().unwrap_or("").to_string(),
                        objects: x["objects"].as_u64().unwrap_or(0),
                    })
                    .collect()
            })
            .unwrap_or_default())
    }

    /// The object's bytes and whether it is a JSON report (else a bt snapshot).
    pub fn get(&self, project: &str, object: &str) -> Result<(Vec<u8>, bool), MorgueError> {
        let path = format!("/api/get?project={}&object={}", encode(project), encode(object));
        match self.call("GET", &path, project, None, MAX_DOWNLOAD) {
            Ok((b, ct)) => Ok((b, ct.is_some_and(|c| c.starts_with("application/json")))),
            Err(MorgueError::Server { status: 404, .. }) => {
                Err(MorgueError::NoObject { project: project.to_string(), object: object.to_string() })
            }
            Err(e) => Err(e),
        }
    }

    pub fn put(&self, project: &str, body: &[u8], format: &str, kv: &[(String, String)]) -> Result<Ack, MorgueError> {
        let mut path = format!("/api/post?project={}&format={}", encode(project), encode(format));
        for (k, v) in kv {
            path.push_str(&format!("&{}={}", encode(k), encode(v)));
        }
        let (b, _) = self.call("POST", &path, project, Some(("application/octet-stream", body)), MAX_ANSWER)?;
        let v = self.json(&b)?;
        Ok(Ack {
            object: v["_rxid"].as_str().unwrap_or("").to_string(),
            fingerprint: v["fingerprint"].as_str().unwrap_or("").to_string(),
            unique: v["unique"].as_bool().unwrap_or(false),
        })
    }

    pub fn upload_symbols(&self, project: &str, name: &str, body: &[u8]) -> Result<Json, MorgueError> {
        let path = format!("/api/post?project={}&format=symbols&name={}", encode(project), encode(name));
        let (b, _) = self.call("POST", &path, project, Some(("application/octet-stream", body)), MAX_ANSWER)?;
        self.json(&b)
    }

    pub fn delete(&self, project: &str, q: &Json, all: bool) -> Result<u64, MorgueError> {
        let (b, _) = self.call(
            "POST",
            &format!("/api/delete?project={}{}", encode(project), if all { "&all=1" } else { "" }),
            project,
            Some(("application/json", q.to_string().as_bytes())),
            MAX_ANSWER,
        )?;
        Ok(self.json(&b)?["deleted"].as_u64().unwrap_or(0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_and_encoding() {
        assert_eq!(encode("a b&c=d/é"), "a%20b%26c%3Dd%2F%C3%A9");
        assert_eq!(normalize_url("127.0.0.1:6097/").unwrap(), "http://127.0.0.1:6097");
        assert_eq!(normalize_url("http://h:1").unwrap(), "http://h:1");
        assert!(normalize_url("ftp://h").is_err());
        assert!(normalize_url("http://").is_err());
    }
}
