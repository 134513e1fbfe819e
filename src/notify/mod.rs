//! The notification sender: delivers what the store's durable outbox holds to
//! webhooks (JSON, signed with HMAC-SHA256), Slack incoming webhooks and Jira
//! (an issue per group, a comment on a regression), with retries and backoff.
//!
//! At least once, never silently dropped: a notification leaves the outbox only
//! after its outcome is committed (delivered, or refused by the receiver), so a
//! sender killed mid-delivery sends it again after a restart, with the same
//! delivery id (`X-Bt-Delivery`) for receivers that drop repeats. 2xx is delivered;
//! 4xx except 408 and 429 fails for good (logged); 5xx, 408, 429 and transport
//! errors are retried after 1 s, 2 s, 4 s … (at most 5 minutes apart, 20 attempts).

use crate::store::outbox::{Delivery, Event, Integration, Kind, Pending, Status, backoff_ms};
use crate::store::triage::{Change, Ticket};
use crate::store::{Store, format_object_id};
use hmac::{Hmac, Mac};
use serde_json::{Value as Json, json};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// Attempts before a notification is given up.
pub const MAX_ATTEMPTS: u32 = 20;
/// Largest answer read from a receiver.
const MAX_ANSWER: u64 = 1 << 20;

#[derive(Debug, Clone)]
pub struct Options {
    /// Base URL of the console for links in messages (`http://host:6097`).
    pub console_url: String,
    /// How often the outbox is looked at when it is idle.
    pub poll: Duration,
}

impl Default for Options {
    fn default() -> Options {
        Options { console_url: "http://localhost:6097".into(), poll: Duration::from_millis(200) }
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_connect(Some(Duration::from_secs(5)))
        .timeout_global(Some(Duration::from_secs(15)))
        .max_redirects(0)
        .build()
        .into()
}

/// Starts the sender thread; it runs until `stop` is set.
pub fn spawn(store: Arc<Store>, opts: Options, stop: Arc<AtomicBool>) -> std::io::Result<std::thread::JoinHandle<()>> {
    std::thread::Builder::new().name("notify".into()).spawn(move || {
        let agent = agent();
        while !stop.load(Ordering::Relaxed) {
            let due = match store.due_notifications(now_ms(), 32) {
                Ok(d) => d,
                Err(e) => {
                    log::error!(target: "bt::notify", "reading the outbox: {e}");
                    std::thread::sleep(opts.poll);
                    continue;
                }
            };
            if due.is_empty() {
                std::thread::sleep(opts.poll);
                continue;
            }
            for p in due {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                let (delivery, retry_at) = attempt(&store, &agent, &opts, &p);
                log::info!(
                    target: "bt::notify",
                    "delivery {} of {} {} to {}: {} {}",
                    p.id,
                    p.event.kind,
                    p.event.fingerprint,
                    p.integration,
                    delivery.status.as_str(),
                    delivery.code.map(|c| c.to_string()).unwrap_or_else(|| delivery.error.clone())
                );
                if let Err(e) = store.settle_notification(p.id, delivery, retry_at) {
                    log::error!(target: "bt::notify", "recording delivery {}: {e}", p.id);
                }
            }
        }
    })
}

/// The result of one try.
enum Answer {
    Ok(u16, Vec<u8>),
    Refused(u16, String),
    Retry(Option<u16>, String),
}

fn classify(r: Result<ureq::http::Response<ureq::Body>, ureq::Error>) -> Answer {
    match r {
        Err(e) => Answer::Retry(None, transport_reason(&e)),
        Ok(resp) => {
            let code = resp.status().as_u16();
            let body = resp.into_body().with_config().limit(MAX_ANSWER).read_to_vec().unwrap_or_default();
            match code {
                200..=299 => Answer::Ok(code, body),
                408 | 429 | 500..=599 => Answer::Retry(Some(code), short(&body)),
                _ => Answer::Refused(code, short(&body)),
            }
        }
    }
}

fn transport_reason(e: &ureq::Error) -> String {
    match e {
        ureq::Error::ConnectionFailed => "connection failed".into(),
        ureq::Error::Timeout(_) => "timed out".into(),
        ureq::Error::Io(io) => io.kind().to_string(),
        other => other.to_string().chars().take(200).collect(),
    }
}

fn short(body: &[u8]) -> String {
    String::from_utf8_lossy(body).chars().take(200).collect()
}

/// One delivery attempt; returns the log line and, when it must be tried again, when.
fn attempt(store: &Store, agent: &ureq::Agent, opts: &Options, p: &Pending) -> (Delivery, Option<i64>) {
    let attempts = p.attempts + 1;
    let line = |status: Status, code: Option<u16>, error: String| Delivery {
        id: p.id,
        time: now_ms() / 1000,
        event: p.event.kind.clone(),
        fingerprint: p.event.fingerprint.clone(),
        status,
        code,
        attempts,
        error,
    };
    let integration = match store.integration(&p.event.project, &p.integration) {
        Ok(i) => i,
        Err(e) => return (line(Status::Failed, None, format!("integration gone: {e}")), None),
    };
    let answer = match &integration.kind {
        Kind::Webhook { url, secret } => webhook(agent, url, secret.as_deref(), &payload(store, opts, p)),
        Kind::Slack { url } => slack(agent, url, &payload(store, opts, p)),
        Kind::Jira { .. } => jira(store, agent, opts, &integration, p),
    };
    match answer {
        Answer::Ok(code, _) => (line(Status::Delivered, Some(code), String::new()), None),
        Answer::Refused(code, why) => (line(Status::Failed, Some(code), why), None),
        Answer::Retry(code, why) if attempts >= MAX_ATTEMPTS => {
            (line(Status::Failed, code, format!("gave up after {attempts} attempts: {why}")), None)
        }
        Answer::Retry(code, why) => (line(Status::Retrying, code, why), Some(now_ms() + backoff_ms(p.attempts))),
    }
}

/// The JSON body of a webhook: the event and what the store knows of the group.
pub fn payload(store: &Store, opts: &Options, p: &Pending) -> Json {
    let e: &Event = &p.event;
    let link = format!("{}/p/{}/g/{}", opts.console_url.trim_end_matches('/'), e.project, e.fingerprint);
    let mut v = json!({
        "delivery": p.id.to_string(),
        "event": e.kind,
        "project": e.project,
        "fingerprint": e.fingerprint,
        "reason": e.reason,
        "link": link,
        "object": if e.object > 0 { json!(format_object_id(e.object)) } else { Json::Null },
        "time": e.time,
    });
    if let Ok((g, triage, top)) = store.group_summary(&e.project, &e.fingerprint) {
        v["callstack"] = json!(g.callstack.lines().collect::<Vec<_>>());
        v["classifiers"] = json!(g.classifiers.split_whitespace().collect::<Vec<_>>());
        v["count"] = json!(g.count);
        v["first_seen"] = json!(g.first_seen);
        v["last_seen"] = json!(g.last_seen);
        v["state"] = json!(triage.state_at(crate::store::now()).as_str());
        v["regressed"] = json!(triage.regressed);
        let mut attrs = serde_json::Map::new();
        for (name, values) in top {
            attrs.insert(name, json!(values.iter().map(|(v, n)| json!({"value": v, "count": n})).collect::<Vec<_>>()));
        }
        v["top_attributes"] = Json::Object(attrs);
    }
    v
}

/// `sha256=` + the hex HMAC-SHA256 of the body under the secret.
pub fn signature(secret: &str, body: &[u8]) -> String {
    // HMAC takes keys of any length; this cannot fail.
    let mut mac = <Hmac<sha2::Sha256> as Mac>::new_from_slice(secret.as_bytes()).expect("HMAC accepts any key length");
    mac.update(body);
    let bytes = mac.finalize().into_bytes();
    format!("sha256={}", bytes.iter().map(|b| format!("{b:02x}")).collect::<String>())
}

fn webhook(agent: &ureq::Agent, url: &str, secret: Option<&str>, payload: &Json) -> Answer {
    let body = payload.to_string();
    let mut req = agent
        .post(url)
        .header("Content-Type", "application/json")
        .header("X-Bt-Delivery", payload["delivery"].as_str().unwrap_or(""))
        .header("X-Bt-Event", payload["event"].as_str().unwrap_or(""));
    if let Some(s) = secret {
        req = req.header("X-Bt-Signature", &signature(s, body.as_bytes()));
    }
    classify(req.send(body.as_bytes()))
}

/// One line of a message: the classifiers and the top frames.
fn title(payload: &Json) -> String {
    let classifiers: Vec<&str> =
        payload["classifiers"].as_array().map(|a| a.iter().filter_map(|c| c.as_str()).collect()).unwrap_or_default();
    let frames: Vec<&str> = payload["callstack"]
        .as_array()
        .map(|a| a.iter().filter_map(|c| c.as_str()).take(3).collect())
        .unwrap_or_default();
    let mut t = classifiers.join(" ");
    if !frames.is_empty() {
        if !t.is_empty() {
            t.push_str(" in ");
        }
        t.push_str(&frames.join(" ← "));
    }
    if t.is_empty() { "a crash group".into() } else { t }
}

fn slack(agent: &ureq::Agent, url: &str, payload: &Json) -> Answer {
    let what = match payload["event"].as_str().unwrap_or("") {
        "new" => "New crash group",
        "regression" => "Regression",
        "unmuted" => "Unmuted",
        "threshold" => "Threshold crossed",
        _ => "bt test message",
    };
    let text = format!(
        "*{what}* in {}: {}\n{} crashes · state {} · first seen {} · {}\n<{}|Open the group>",
        payload["project"].as_str().unwrap_or(""),
        title(payload),
        payload["count"].as_u64().unwrap_or(0),
        payload["state"].as_str().unwrap_or("open"),
        payload["first_seen"].as_i64().unwrap_or(0),
        payload["reason"].as_str().unwrap_or(""),
        payload["link"].as_str().unwrap_or("")
    );
    let body = json!({"text": text}).to_string();
    classify(agent.post(url).header("Content-Type", "application/json").send(body.as_bytes()))
}

/// Jira: a new group (or threshold) creates an issue, once per group, and its key
/// becomes the group's ticket; a regression comments on the existing issue (or
/// creates one); a test checks the credentials (`GET /rest/api/2/myself`).
fn jira(store: &Store, agent: &ureq::Agent, opts: &Options, i: &Integration, p: &Pending) -> Answer {
    let Kind::Jira { url, project_key, user, token, issue_type } = &i.kind else {
        return Answer::Refused(0, "not a Jira integration".into());
    };
    let base = url.trim_end_matches('/');
    let auth = format!("Basic {}", base64(&format!("{user}:{token}")));
    if p.event.kind == "test" {
        return classify(agent.get(&format!("{base}/rest/api/2/myself")).header("Authorization", &auth).call());
    }
    let payload = payload(store, opts, p);
    let existing = store.triage_of(&p.event.project, &p.event.fingerprint).ok().and_then(|(_, _, rec, _)| {
        // This Jira's ticket: same site, same project (another Jira integration
        // may file the group in another project).
        let prefix = format!("{project_key}-");
        rec.tickets.into_iter().find(|t| t.system == "jira" && t.key.starts_with(&prefix) && t.url.starts_with(base))
    });
    let description = format!(
        "{}\n\nCallstack:\n{{noformat}}\n{}\n{{noformat}}\nClassifiers: {}\nCrashes: {}\n{}",
        payload["reason"].as_str().unwrap_or(""),
        payload["callstack"]
            .as_array()
            .map(|a| a.iter().filter_map(|c| c.as_str()).collect::<Vec<_>>().join("\n"))
            .unwrap_or_default(),
        payload["classifiers"]
            .as_array()
            .map(|a| a.iter().filter_map(|c| c.as_str()).collect::<Vec<_>>().join(" "))
            .unwrap_or_default(),
        payload["count"].as_u64().unwrap_or(0),
        payload["link"].as_str().unwrap_or("")
    );
    if let Some(t) = existing {
        if p.event.kind != "regression" {
            // Never two tickets for one group.
            return Answer::Ok(200, Vec::new());
        }
        let body = json!({"body": format!("Regression: {description}")}).to_string();
        return classify(
            agent
                .post(&format!("{base}/rest/api/2/issue/{}/comment", t.key))
                .header("Authorization", &auth)
                .header("Content-Type", "application/json")
                .send(body.as_bytes()),
        );
    }
    let body = json!({"fields": {
        "project": {"key": project_key},
        "issuetype": {"name": issue_type},
        "summary": format!("[bt] {}", title(&payload)).chars().take(250).collect::<String>(),
        "description": description,
    }})
    .to_string();
    let answer = classify(
        agent
            .post(&format!("{base}/rest/api/2/issue"))
            .header("Authorization", &auth)
            .header("Content-Type", "application/json")
            .send(body.as_bytes()),
    );
    if let Answer::Ok(code, reply) = &answer {
        let v: Json = serde_json::from_slice(reply).unwrap_or(Json::Null);
        let Some(key) = v["key"].as_str() else {
            return Answer::Refused(*code, "Jira answered without an issue key".into());
        };
        let ticket = Ticket { system: "jira".into(), key: key.to_string(), url: format!("{base}/browse/{key}") };
        let who = format!("integration:{}", i.name);
        if let Err(e) =
            store.triage(&p.event.project, std::slice::from_ref(&p.event.fingerprint), Change::Ticket(ticket), &who)
        {
            log::error!(target: "bt::notify", "storing Jira ticket {key}: {e}");
        }
    }
    answer
}

/// Standard base64 (RFC 4648), for HTTP basic auth.
fn base64(s: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(s)
}

#[cfg(test)]
mod tests {
    #[test]
    fn base64_and_hmac_match_known_values() {
        assert_eq!(super::base64("a@b.c:tok"), "YUBiLmM6dG9r");
        assert_eq!(super::base64("ab"), "YWI=");
        // RFC 4231 test case 2.
        assert_eq!(
            super::signature("Jefe", b"what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }
}
