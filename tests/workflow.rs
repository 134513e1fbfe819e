//! Triage and notifications through the real interfaces: `bt serve` on loopback,
//! `bt morgue` and `bt coroner integration` against it, and local HTTP receivers
//! started here in place of the outside services (a webhook sink that checks the
//! HMAC signature with its own HMAC, a Slack-shaped sink, a Jira-shaped sink that
//! checks the REST request and hands out issue keys). No mocks inside bt.

mod server_common;

use serde_json::{Value as Json, json};
use server_common::*;
use sha2::{Digest, Sha256};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::Path;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// One request a sink received.
#[derive(Debug, Clone)]
struct Got {
    method: String,
    path: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Got {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
    fn json(&self) -> Json {
        serde_json::from_slice(&self.body).unwrap_or(Json::Null)
    }
}

type Answer = Box<dyn Fn(&Got, usize) -> (u16, String) + Send + Sync>;

/// A local HTTP receiver: records every request, answers what `answer` says.
struct Sink {
    addr: String,
    got: Arc<Mutex<Vec<Got>>>,
}

impl Sink {
    fn start(answer: Answer) -> Sink {
        let l = TcpListener::bind("127.0.0.1:0").expect("bind sink");
        let addr = l.local_addr().expect("addr").to_string();
        let got: Arc<Mutex<Vec<Got>>> = Arc::default();
        let g = got.clone();
        let answer = Arc::new(answer);
        std::thread::spawn(move || {
            for conn in l.incoming() {
                let Ok(mut conn) = conn else { continue };
                let g = g.clone();
                let answer = answer.clone();
                std::thread::spawn(move || {
                    let _ = conn.set_read_timeout(Some(Duration::from_secs(10)));
                    let mut r = BufReader::new(conn.try_clone().expect("clone"));
                    let mut line = String::new();
                    if r.read_line(&mut line).unwrap_or(0) == 0 {
                        return;
                    }
                    let mut parts = line.split_whitespace();
                    let method = parts.next().unwrap_or("").to_string();
                    let path = parts.next().unwrap_or("").to_string();
                    let mut headers = Vec::new();
                    loop {
                        let mut h = String::new();
                        if r.read_line(&mut h).unwrap_or(0) == 0 || h.trim().is_empty() {
                            break;
                        }
                        if let Some((k, v)) = h.trim_end().split_once(':') {
                            headers.push((k.trim().to_string(), v.trim().to_string()));
                        }
                    }
                    let len: usize = headers
                        .iter()
                        .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
                        .and_then(|(_, v)| v.parse().ok())
                        .unwrap_or(0);
                    let mut body = vec![0; len];
                    let _ = r.read_exact(&mut body);
                    let req = Got { method, path, headers, body };
                    let n = {
                        let mut all = g.lock().expect("lock");
                        all.push(req.clone());
                        all.len()
                    };
                    let (code, text) = answer(&req, n);
                    let resp = format!(
                        "HTTP/1.1 {code} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{text}",
                        text.len()
                    );
                    let _ = conn.write_all(resp.as_bytes());
                });
            }
        });
        Sink { addr, got }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    fn got(&self) -> Vec<Got> {
        self.got.lock().expect("lock").clone()
    }

    /// Waits until `pred` holds for what was received.
    fn wait(&self, what: &str, secs: u64, pred: impl Fn(&[Got]) -> bool) -> Vec<Got> {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            let g = self.got();
            if pred(&g) {
                return g;
            }
            assert!(
                Instant::now() < deadline,
                "sink: {what} did not happen in {secs} s; got {} requests: {g:#?}",
                g.len()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// HMAC-SHA256 written out from RFC 2104 here, independent of bt's.
fn hmac_sha256(key: &[u8], msg: &[u8]) -> String {
    let mut k = [0u8; 64];
    if key.len() > 64 {
        k[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        k[..key.len()].copy_from_slice(key);
    }
    let ipad: Vec<u8> = k.iter().map(|b| b ^ 0x36).collect();
    let opad: Vec<u8> = k.iter().map(|b| b ^ 0x5c).collect();
    let inner = Sha256::digest([ipad.as_slice(), msg].concat());
    let outer = Sha256::digest([opad.as_slice(), inner.as_slice()].concat());
    format!("sha256={}", outer.iter().map(|b| format!("{b:02x}")).collect::<String>())
}

fn ok_answer() -> Answer {
    Box::new(|_, _| (200, "{}".into()))
}

fn coroner(server: &Server, token: &str, args: &[&str]) -> (i32, String, String) {
    let url = format!("http://{}", server.addr);
    let out = Command::new(bt_bin())
        .arg("coroner")
        .args(args)
        .args(["--url", &url, "--token", token])
        .env("HOME", &server.data)
        .output()
        .expect("bt coroner");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into(),
        String::from_utf8_lossy(&out.stderr).into(),
    )
}

fn morgue(server: &Server, token: &str, args: &[&str]) -> (i32, String, String) {
    let url = format!("http://{}", server.addr);
    let out = Command::new(bt_bin())
        .arg("morgue")
        .args(args)
        .args(["--url", &url, "--token", token])
        .env("HOME", &server.data)
        .output()
        .expect("bt morgue");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into(),
        String::from_utf8_lossy(&out.stderr).into(),
    )
}

/// Submits a JSON report of the group named by `func`, with attributes; returns the fingerprint.
fn crash(server: &Server, token: &str, func: &str, host: &str, extra: &str) -> String {
    let r = server.post(
        &format!("/api/post?token={token}&format=json{extra}"),
        "application/json",
        &json_report(func, host, 1_700_000_000),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    r.json()["fingerprint"].as_str().expect("fingerprint").to_string()
}

/// A store with project `p`, an admin token, and a server.
fn setup(name: &str) -> (Server, String) {
    let data = scratch(name);
    let token = project_with_token(&data, "p", &["submit", "query", "object", "admin"]);
    (Server::start(&data, &[]), token)
}

fn webhook(server: &Server, token: &str, sink: &Sink, on: &str) {
    let (c, _, e) = coroner(
        server,
        token,
        &["integration", "add", "p", "hook", "--webhook", &sink.url("/hook"), "--secret", "s3cret"],
    );
    assert_eq!(c, 0, "{e}");
    let (c, out, e) = coroner(server, token, &["integration", "rule", "add", "p", "--on", on, "--to", "hook"]);
    assert_eq!(c, 0, "{e}");
    assert!(out.trim().parse::<u32>().is_ok(), "rule id: {out}");
}

fn events<'a>(got: &'a [Got], kind: &str) -> Vec<&'a Got> {
    got.iter().filter(|g| g.json()["event"] == kind).collect()
}

#[test]
fn a_new_group_notifies_once_signed_with_the_group_and_a_link() {
    let (server, token) = setup("wf-new");
    let sink = Sink::start(ok_answer());
    webhook(&server, &token, &sink, "new,regression");
    let fp = crash(&server, &token, "parse_header", "host-a", "&version=1.0");
    for i in 0..199 {
        crash(&server, &token, "parse_header", &format!("host-{}", i % 3), "&version=1.0");
    }
    sink.wait("the new-group notification", 20, |g| !g.is_empty());
    // Let a wrong second one arrive if there were one.
    std::thread::sleep(Duration::from_millis(800));
    let got = sink.got();
    assert_eq!(got.len(), 1, "200 crashes of one group notify once: {got:#?}");
    let g = &got[0];
    assert_eq!(g.method, "POST");
    assert_eq!(g.header("X-Bt-Signature"), Some(hmac_sha256(b"s3cret", &g.body).as_str()), "signature");
    let v = g.json();
    assert_eq!(v["event"], "new");
    assert_eq!(v["project"], "p");
    assert_eq!(v["fingerprint"], fp.as_str());
    assert_eq!(g.header("X-Bt-Delivery"), v["delivery"].as_str());
    assert!(v["link"].as_str().is_some_and(|l| l.ends_with(&format!("/p/p/g/{fp}"))), "{v}");
    assert!(v["callstack"].as_array().is_some_and(|c| c[0] == "parse_header"), "{v}");
    assert_eq!(v["classifiers"], json!(["null-dereference"]));
    assert_eq!(v["object"], "1");
    assert!(v["top_attributes"]["hostname"].is_array(), "{v}");
    // A second group is a second notification.
    crash(&server, &token, "other_bug", "host-a", "");
    sink.wait("the second group", 20, |g| g.len() == 2);
    // The delivery log says so, and no secret is shown anywhere.
    let (c, log, e) = coroner(&server, &token, &["integration", "log", "p", "hook"]);
    assert_eq!(c, 0, "{e}");
    assert_eq!(log.lines().filter(|l| l.contains("delivered")).count(), 2, "{log}");
    let (_, list, _) = coroner(&server, &token, &["integration", "list", "p"]);
    assert!(list.contains("\"secret\": true") && !list.contains("s3cret"), "{list}");
    assert!(!server.log_text().contains("s3cret"), "the secret is in the server log");
}

#[test]
fn resolved_until_a_version_reopens_as_a_regression_with_the_reason() {
    let (server, token) = setup("wf-regression");
    let sink = Sink::start(ok_answer());
    webhook(&server, &token, &sink, "regression");
    let fp = crash(&server, &token, "decode_frame", "h", "&version=1.2.0");
    let (c, out, e) = morgue(&server, &token, &["set", "p", &fp, "state=resolved", "--until", "version:1.3"]);
    assert_eq!(c, 0, "{e}");
    assert!(out.contains("resolved"), "{out}");
    // The dry run answers before any crash arrives.
    let (c, out, _) = morgue(&server, &token, &["would-reopen", "p", &fp, "version=1.2.9"]);
    assert_eq!((c, out.trim()), (1, "no"));
    let (c, out, _) = morgue(&server, &token, &["would-reopen", "p", &fp, "version=1.3.1"]);
    assert_eq!(c, 0, "{out}");
    assert!(out.contains("1.3.1 > 1.3") && out.contains("semver"), "{out}");
    // 1.2.9 keeps it resolved.
    crash(&server, &token, "decode_frame", "h", "&version=1.2.9");
    let (_, hist, _) = morgue(&server, &token, &["history", "p", &fp]);
    assert!(hist.lines().next().is_some_and(|l| l.contains("resolved")), "{hist}");
    let (_, listed, _) = morgue(&server, &token, &["list", "p", "--filter=fingerprint;issues;state,equal,resolved"]);
    assert!(listed.contains(&fp[..12]), "filter by state finds the resolved group:\n{listed}");
    // 1.3.1 reopens it as a regression, says why, and notifies.
    crash(&server, &token, "decode_frame", "h", "&version=1.3.1");
    let got = sink.wait("the regression", 20, |g| !events(g, "regression").is_empty());
    let v = events(&got, "regression")[0].json();
    assert_eq!(v["fingerprint"], fp.as_str());
    assert!(v["reason"].as_str().is_some_and(|r| r.contains("1.3.1 > 1.3")), "{v}");
    assert_eq!(v["state"], "open");
    assert_eq!(v["regressed"], true);
    let (_, hist, _) = morgue(&server, &token, &["history", "p", &fp]);
    let first = hist.lines().next().unwrap_or("");
    assert!(first.contains("open (regressed)"), "{hist}");
    assert!(
        hist.lines().any(|l| l.contains("rule:regression") && l.contains("object 3") && l.contains("1.3.1 > 1.3")),
        "the history says which crash and which comparison:\n{hist}"
    );
    let (_, listed, _) = morgue(&server, &token, &["list", "p", "--filter=fingerprint;issues;state,equal,resolved"]);
    assert!(!listed.contains(&fp[..12]), "{listed}");
    // Assign, tag, ticket and comment are recorded, by whom.
    assert_eq!(morgue(&server, &token, &["assign", "p", &fp, "alice"]).0, 0);
    assert_eq!(morgue(&server, &token, &["tag", "p", &fp, "+crash", "+parser"]).0, 0);
    assert_eq!(morgue(&server, &token, &["ticket", "p", &fp, "jira:APP-7", "https://jira.example/browse/APP-7"]).0, 0);
    assert_eq!(morgue(&server, &token, &["comment", "p", &fp, "looking into it"]).0, 0);
    let (_, hist, _) = morgue(&server, &token, &["history", "p", &fp]);
    for want in ["assigned to alice", "tags +crash +parser", "ticket jira:APP-7", "comment: looking into it", "token"] {
        assert!(hist.contains(want), "{want}:\n{hist}");
    }
    let (_, listed, _) = morgue(&server, &token, &["list", "p", "--filter=fingerprint;issues;assignee,equal,alice"]);
    assert!(listed.contains(&fp[..12]), "{listed}");
}

#[test]
fn a_count_mute_ends_on_the_crash_past_the_limit() {
    let (server, token) = setup("wf-mute");
    let sink = Sink::start(ok_answer());
    webhook(&server, &token, &sink, "unmuted");
    let fp = crash(&server, &token, "flaky_io", "h", "");
    let (c, _, e) = morgue(&server, &token, &["set", "p", &fp, "state=muted", "--until", "count:100/1d"]);
    assert_eq!(c, 0, "{e}");
    for _ in 0..100 {
        crash(&server, &token, "flaky_io", "h", "");
    }
    let (_, hist, _) = morgue(&server, &token, &["history", "p", &fp]);
    assert!(hist.lines().next().is_some_and(|l| l.contains("muted")), "100 crashes keep it muted:\n{hist}");
    assert!(sink.got().is_empty());
    crash(&server, &token, "flaky_io", "h", "");
    let got = sink.wait("unmuted", 20, |g| !events(g, "unmuted").is_empty());
    assert!(events(&got, "unmuted")[0].json()["reason"].as_str().is_some_and(|r| r.contains("more than 100 crashes")));
    let (_, hist, _) = morgue(&server, &token, &["history", "p", &fp]);
    assert!(hist.lines().next().is_some_and(|l| l.contains(" open")), "{hist}");
    assert!(hist.contains("rule:unmute"), "{hist}");
}

#[test]
fn a_receiver_that_is_down_gets_it_when_it_comes_back() {
    let (server, token) = setup("wf-down");
    // Down (503) for the first three attempts, then up.
    let sink = Sink::start(Box::new(|_, n| if n <= 3 { (503, "down".into()) } else { (200, "{}".into()) }));
    webhook(&server, &token, &sink, "new");
    crash(&server, &token, "retry_me", "h", "");
    let got = sink.wait("delivery after the outage", 30, |g| g.len() >= 4);
    let ids: Vec<_> = got.iter().map(|g| g.header("X-Bt-Delivery").unwrap_or("").to_string()).collect();
    assert!(ids.iter().all(|i| *i == ids[0]), "every attempt has the same delivery id: {ids:?}");
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(sink.got().len(), 4, "nothing after the success");
    let (_, log, _) = coroner(&server, &token, &["integration", "log", "p", "hook"]);
    assert_eq!(log.lines().filter(|l| l.contains("retrying") && l.contains(" 503 ")).count(), 3, "{log}");
    assert_eq!(log.lines().filter(|l| l.contains("delivered")).count(), 1, "{log}");
}

#[test]
fn kill_9_between_ingest_and_delivery_loses_and_duplicates_nothing() {
    let data = scratch("wf-kill");
    let token = project_with_token(&data, "p", &["submit", "query", "object", "admin"]);
    let sink = Sink::start(ok_answer());
    {
        let server = Server::start(&data, &[]);
        webhook(&server, &token, &sink, "new");
    }
    let mut seed: u64 = 0x9e3779b97f4a7c15;
    let mut fps = Vec::new();
    for round in 0..20 {
        let mut server = Server::start(&data, &[]);
        fps.push(crash(&server, &token, &format!("bug_{round}"), "h", ""));
        // Kill at a random moment: before, during or after the delivery.
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        std::thread::sleep(Duration::from_millis(seed % 60));
        server.kill9();
    }
    let _server = Server::start(&data, &[]);
    sink.wait("every group's notification", 60, |g| {
        fps.iter().all(|fp| g.iter().any(|x| x.json()["fingerprint"] == fp.as_str()))
    });
    std::thread::sleep(Duration::from_millis(800));
    let got = sink.got();
    // Exactly once by delivery id: repeats (a kill after the send, before the record)
    // carry the id of the first send, and each group has one id.
    for fp in &fps {
        let mut ids: Vec<String> = got
            .iter()
            .filter(|g| g.json()["fingerprint"] == fp.as_str())
            .map(|g| g.header("X-Bt-Delivery").unwrap_or("").to_string())
            .collect();
        ids.dedup();
        assert_eq!(ids.len(), 1, "group {fp}: delivery ids {ids:?}");
    }
}

#[test]
fn jira_gets_one_issue_per_group_and_a_refusal_is_not_retried_forever() {
    let (server, token) = setup("wf-jira");
    let dir = scratch("wf-jira-token");
    let token_file = dir.join("jira-token");
    std::fs::write(&token_file, "jira-api-token\n").expect("token file");
    // Accepts issues in project APP with the right auth; refuses other projects.
    let jira = Sink::start(Box::new(|g, n| {
        let auth_ok = g.header("Authorization") == Some("Basic ZGV2QGV4YW1wbGUuY29tOmppcmEtYXBpLXRva2Vu");
        let v = g.json();
        match (g.path.as_str(), auth_ok) {
            (_, false) => (401, "{}".into()),
            ("/rest/api/2/issue", true) if v["fields"]["project"]["key"] == "APP" => {
                (201, json!({"id": "1000", "key": format!("APP-{n}"), "self": "x"}).to_string())
            }
            ("/rest/api/2/issue", true) => (400, json!({"errors": {"project": "unknown"}}).to_string()),
            (p, true) if p.ends_with("/comment") => (201, "{}".into()),
            ("/rest/api/2/myself", true) => (200, "{}".into()),
            _ => (404, "{}".into()),
        }
    }));
    let add = |name: &str, key: &str| {
        coroner(
            &server,
            &token,
            &[
                "integration",
                "add",
                "p",
                name,
                "--jira",
                &jira.url(""),
                "--jira-project",
                key,
                "--jira-user",
                "dev@example.com",
                "--jira-token-file",
                &token_file.to_string_lossy(),
            ],
        )
    };
    assert_eq!(add("jira", "APP").0, 0);
    assert_eq!(add("badjira", "NOPE").0, 0);
    let (c, _, e) = coroner(
        &server,
        &token,
        &["integration", "rule", "add", "p", "--on", "new,regression", "--to", "jira,badjira"],
    );
    assert_eq!(c, 0, "{e}");
    let (_, list, _) = coroner(&server, &token, &["integration", "list", "p"]);
    assert!(!list.contains("jira-api-token"), "{list}");
    let fp = crash(&server, &token, "jira_bug", "h", "&version=2.0");
    jira.wait("the issue and the refused one", 20, |g| g.len() >= 2);
    std::thread::sleep(Duration::from_millis(800));
    let issues: Vec<Got> = jira.got().into_iter().filter(|g| g.path == "/rest/api/2/issue").collect();
    assert_eq!(issues.len(), 2, "one per integration, the refused one not retried: {issues:#?}");
    let good = issues.iter().find(|g| g.json()["fields"]["project"]["key"] == "APP").expect("APP issue");
    let f = &good.json()["fields"];
    assert_eq!(f["issuetype"]["name"], "Bug");
    assert!(f["summary"].as_str().is_some_and(|s| s.contains("jira_bug")), "{f}");
    assert!(f["description"].as_str().is_some_and(|d| d.contains("jira_bug") && d.contains("/p/p/g/")), "{f}");
    let (_, log, _) = coroner(&server, &token, &["integration", "log", "p", "badjira"]);
    assert!(log.contains("failed") && log.contains(" 400 ") && log.contains("attempts 1 "), "{log}");
    // The group's ticket is the issue; a regression comments on it instead of a second issue.
    let (_, hist, _) = morgue(&server, &token, &["history", "p", &fp]);
    assert!(hist.lines().next().is_some_and(|l| l.contains("jira:APP-")), "{hist}");
    assert!(hist.contains("integration:jira"), "{hist}");
    assert_eq!(morgue(&server, &token, &["set", "p", &fp, "state=resolved", "--until", "version:2.0"]).0, 0);
    crash(&server, &token, "jira_bug", "h", "&version=2.1");
    jira.wait("the comment", 20, |g| g.iter().any(|x| x.path.ends_with("/comment")));
    std::thread::sleep(Duration::from_millis(500));
    let n_issues = jira
        .got()
        .iter()
        .filter(|g| g.path == "/rest/api/2/issue" && g.json()["fields"]["project"]["key"] == "APP")
        .count();
    assert_eq!(n_issues, 1, "never two tickets for one group");
    // integration test checks the credentials.
    assert_eq!(coroner(&server, &token, &["integration", "test", "p", "jira"]).0, 0);
    jira.wait("the credential check", 20, |g| g.iter().any(|x| x.path == "/rest/api/2/myself"));
}

#[test]
fn slack_gets_a_message_with_the_title_and_the_link() {
    let (server, token) = setup("wf-slack");
    let slack = Sink::start(ok_answer());
    let (c, _, e) =
        coroner(&server, &token, &["integration", "add", "p", "team", "--slack", &slack.url("/services/T/B/X")]);
    assert_eq!(c, 0, "{e}");
    assert_eq!(
        coroner(
            &server,
            &token,
            &["integration", "rule", "add", "p", "--on", "new", "--to", "team", "--filter", "environment,equal,prod"]
        )
        .0,
        0
    );
    crash(&server, &token, "staging_only", "h", "&environment=staging");
    let fp = crash(&server, &token, "prod_bug", "h", "&environment=prod");
    let got = slack.wait("the Slack message", 20, |g| !g.is_empty());
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(slack.got().len(), 1, "the filter keeps staging out: {got:#?}");
    let text = got[0].json()["text"].as_str().unwrap_or("").to_string();
    assert!(text.contains("New crash group") && text.contains("null-dereference in prod_bug"), "{text}");
    assert!(text.contains(&format!("/p/p/g/{fp}|Open the group>")), "{text}");
    let (_, list, _) = coroner(&server, &token, &["integration", "list", "p"]);
    assert!(!list.contains("/services/T/B/X"), "the Slack URL is a secret: {list}");
}

#[test]
fn triage_on_a_local_data_directory_works_the_same() {
    let data = scratch("wf-local");
    let token = project_with_token(&data, "p", &["submit", "query", "admin"]);
    let fp = {
        let server = Server::start(&data, &[]);
        crash(&server, &token, "local_bug", "h", "")
    };
    let run = |args: &[&str]| {
        let out = Command::new(bt_bin())
            .arg("morgue")
            .args(args)
            .arg("--data")
            .arg(&data)
            .env("USER", "carol")
            .output()
            .expect("morgue");
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (c, out, e) = run(&["set", "p", &fp, "state=in-progress"]);
    assert_eq!(c, 0, "{e}");
    assert!(out.contains("in-progress"), "{out}");
    let (_, hist, _) = run(&["history", "p", &fp]);
    assert!(hist.contains("user:carol") && hist.contains("state open → in-progress"), "{hist}");
    let (c, _, e) = run(&["set", "p", "0123", "state=resolved"]);
    assert_ne!(c, 0);
    assert!(e.contains("not found") || e.contains("no such") || e.contains("group"), "{e}");
    let (c, _, e) = run(&["set", "p", &fp, "state=sleeping"]);
    assert_eq!(c, 1, "{e}");
    let _ = Path::new(&data);
}

#[test]
fn a_threshold_fires_once_per_breach_and_query_tokens_cannot_triage() {
    let data = scratch("wf-threshold");
    let token = project_with_token(&data, "p", &["submit", "query", "object", "admin"]);
    let (code, out, _) = admin(&data, &["token", "create", "p", "--scope", "query"], None);
    assert_eq!(code, 0);
    let reader = out.trim().to_string();
    let server = Server::start(&data, &[]);
    let sink = Sink::start(ok_answer());
    webhook(&server, &token, &sink, "threshold:3/1h");
    let fp = crash(&server, &token, "hot_loop", "h", "");
    for _ in 0..2 {
        crash(&server, &token, "hot_loop", "h", "");
    }
    std::thread::sleep(Duration::from_millis(600));
    assert!(sink.got().is_empty(), "three crashes are not more than three");
    crash(&server, &token, "hot_loop", "h", "");
    let got = sink.wait("the threshold", 20, |g| !g.is_empty());
    let v = got[0].json();
    assert_eq!(v["event"], "threshold");
    assert!(v["reason"].as_str().is_some_and(|r| r.contains("more than 3 crashes")), "{v}");
    crash(&server, &token, "hot_loop", "h", "");
    std::thread::sleep(Duration::from_millis(600));
    assert_eq!(sink.got().len(), 1, "the window restarts after it fires");

    // A token with the query scope reads triage but may not change it.
    let (c, out, _) = morgue(&server, &reader, &["history", "p", &fp]);
    assert_eq!(c, 0, "{out}");
    let (c, _, e) = morgue(&server, &reader, &["set", "p", &fp, "state=resolved"]);
    assert_ne!(c, 0);
    assert!(e.contains("forbidden") || e.contains("403") || e.contains("not allowed"), "{e}");
    let (c, _, e) = coroner(&server, &reader, &["integration", "list", "p"]);
    assert_ne!(c, 0, "integrations need the admin scope: {e}");
}

#[test]
fn merged_groups_answer_as_one_and_keep_their_own_fingerprints() {
    let (server, token) = setup("wf-merge");
    let a = crash(&server, &token, "alloc_fail", "h1", "&version=1.0");
    let b = crash(&server, &token, "alloc_fail_again", "h2", "&version=1.0");
    crash(&server, &token, "alloc_fail_again", "h2", "&version=1.0");
    let groups = |extra: &[&str]| {
        let mut args = vec!["list", "p", "--json"];
        args.extend_from_slice(extra);
        let (c, out, e) = morgue(&server, &token, &args);
        assert_eq!(c, 0, "{e}");
        serde_json::from_str::<Json>(&out).unwrap_or_else(|e| panic!("{e}: {out}"))
    };
    assert_eq!(groups(&[])["rows"].as_array().map(Vec::len), Some(2));
    // Merge b into a (by a prefix, as list shows them).
    let (c, out, e) = morgue(&server, &token, &["merge", "p", &a[..12], &b]);
    assert_eq!(c, 0, "{e}");
    assert!(out.contains(&format!("merged into {a}")), "{out}");
    let v = groups(&[]);
    let gs = v["rows"].as_array().expect("rows");
    assert_eq!(gs.len(), 1, "one group answers for both: {v}");
    assert_eq!(gs[0]["group"], a.as_str(), "{v}");
    assert_eq!(gs[0]["count"], 3, "three crashes: {v}");
    // The originals stay queryable.
    let v = groups(&["--factor", "fingerprint;original"]);
    assert_eq!(v["rows"].as_array().map(Vec::len), Some(2), "{v}");
    let (_, out, _) = morgue(
        &server,
        &token,
        &["list", "p", &format!("--filter=fingerprint;original,equal,{b}"), "--select", "object"],
    );
    assert_eq!(out.lines().filter(|l| l.starts_with(|c: char| c.is_ascii_hexdigit())).count(), 2, "{out}");
    let (_, out, _) =
        morgue(&server, &token, &["list", "p", &format!("--filter=fingerprint,equal,{a}"), "--select", "object"]);
    assert_eq!(out.lines().filter(|l| l.starts_with(|c: char| c.is_ascii_hexdigit())).count(), 3, "{out}");
    // The target's triage is the members': resolving a resolves b's crashes too.
    assert_eq!(morgue(&server, &token, &["set", "p", &a, "state=resolved", "--until", "version:1.0"]).0, 0);
    let (_, out, _) = morgue(
        &server,
        &token,
        &["list", "p", "--filter=fingerprint;issues;state,equal,resolved", "--select", "object"],
    );
    assert_eq!(out.lines().filter(|l| l.starts_with(|c: char| c.is_ascii_hexdigit())).count(), 3, "{out}");
    // A crash of the merged group breaks the target's invariant: the target regresses.
    crash(&server, &token, "alloc_fail_again", "h2", "&version=1.1");
    let (_, hist, _) = morgue(&server, &token, &["history", "p", &a]);
    assert!(hist.lines().next().is_some_and(|l| l.contains("open (regressed)")), "{hist}");
    assert!(hist.contains(&format!("merged {b} into this group")), "{hist}");
    // Unmerge: two groups again, both histories say so.
    assert_eq!(morgue(&server, &token, &["unmerge", "p", &b]).0, 0);
    assert_eq!(groups(&[])["rows"].as_array().map(Vec::len), Some(2));
    let (_, hist, _) = morgue(&server, &token, &["history", "p", &b]);
    assert!(hist.contains("merged into") && hist.contains("unmerged from"), "{hist}");
    // Refusals: into itself, into a merged group, an unknown group.
    assert_ne!(morgue(&server, &token, &["merge", "p", &a, &a]).0, 0);
    assert_ne!(morgue(&server, &token, &["merge", "p", "ffffffffffff", &b]).0, 0);
}
