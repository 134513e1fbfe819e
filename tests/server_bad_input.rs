//! Bad input never stores anything, always gets a clear 4xx, and never takes the
//! server down: malformed JSON, truncated snapshots, huge bodies, unknown formats,
//! wrong tokens, path tricks in object ids, malformed HTTP, and slow clients that
//! must not block others. A report that parses is never lost for an attribute: odd
//! names and huge values are stored renamed or truncated, with warnings.

mod server_common;

use std::io::{BufReader, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use serde_json::json;
use server_common::*;

fn expect(r: &Resp, status: u16, reason: &str) {
    assert_eq!(r.status, status, "want {status} ({reason}), got: {}", r.text());
    let msg = r.json()["error"]["message"].as_str().unwrap_or_default().to_string();
    assert!(msg.contains(reason), "want a reason containing {reason:?}, got {msg:?}");
}

#[test]
fn bad_submissions_are_refused_and_store_nothing() {
    let data = scratch("bad");
    let token = project_with_token(&data, "p", &["submit", "query", "object"]);
    let server = Server::start(&data, &["--max-submission", "2097152"]);
    let post = |q: &str, ct: &str, body: &[u8]| server.post(&format!("/api/post?token={token}{q}"), ct, body);
    let good = snapshot(1, "h", 1).encode().expect("encode");

    expect(&post("&format=json", "application/json", b"{\"timestamp\": 1, \"threads\": {"), 400, "malformed JSON");
    expect(&post("&format=json", "application/json", b"\xff\xfe not json"), 400, "malformed JSON");
    expect(&post("&format=json", "application/json", b"[]"), 400, "must be an object");
    expect(&post("&format=json", "application/json", br#"{"timestamp": 1}"#), 400, "missing field threads");
    expect(
        &post("&format=json", "application/json", br#"{"timestamp": 1, "threads": {"1": {"stack": 7}}}"#),
        400,
        "stack must be an array",
    );
    for cut in [3, 20, good.len() / 2, good.len() - 1] {
        expect(&post("&format=snapshot", "application/octet-stream", &good[..cut]), 400, "invalid snapshot");
    }
    let mut corrupt = good.clone();
    for b in corrupt[30..].iter_mut() {
        *b ^= 0x5a;
    }
    expect(&post("&format=snapshot", "application/octet-stream", &corrupt), 400, "invalid snapshot");
    expect(&post("&format=snapshot", "application/json", br#"{"uuid": "x"}"#), 400, "invalid snapshot");
    expect(&post("&format=minidump", "application/octet-stream", &good), 400, "not a minidump");
    expect(&post("&format=pdf", "application/octet-stream", &good), 400, "unknown format");
    expect(&post("", "application/octet-stream", b"some bytes"), 400, "missing parameter format");
    expect(&post("&format=json", "application/json", b""), 400, "empty report");
    expect(&post("&format=json", "multipart/form-data", b"--x\r\n"), 400, "without a boundary");
    let (ct, body) = multipart(&[("release", None, b"1")]);
    expect(&post("&format=json", &ct, &body), 400, "without an upload_file part");
    let (ct, mut body) = multipart(&[("upload_file", Some("r.json"), &json_report("f", "h", 1))]);
    body.truncate(body.len() - 10);
    expect(&post("&format=json", &ct, &body), 400, "ends in the middle");

    // Huge bodies and URLs: refused by HTTP before anything is read.
    let big = vec![b'x'; 10 << 20];
    let (ct, body) = multipart(&[("upload_file", Some("s.bt"), &good), ("note", None, &big)]);
    expect(&post("&format=snapshot", &ct, &body), 413, "larger than the limit");
    let url_attr = format!("&note={}", "y".repeat(100_000));
    let r = post(&format!("&format=snapshot{url_attr}"), "application/octet-stream", &good);
    assert_eq!(r.status, 431, "{}", r.text());

    // Wrong tokens.
    let r = server.post("/api/post?token=not-a-token&format=snapshot", "application/octet-stream", &good);
    assert_eq!(r.status, 401);
    let r = server.post("/api/post?format=snapshot", "application/octet-stream", &good);
    assert_eq!(r.status, 401);

    // Nothing above was stored; a good one still is.
    let out = server.query(&token, json!({"group": ["*"]}));
    assert_eq!(out["objects"], 0, "{out}");
    let r = post("&format=snapshot", "application/octet-stream", &good);
    assert_eq!(r.status, 200, "{}", r.text());
    let id = r.json()["_rxid"].as_str().expect("id").to_string();
    // A raw body is the report whatever its content type (the README's curl example
    // sends application/x-www-form-urlencoded); only multipart/form-data is a form.
    for ct in ["text/html", "image/png", "application/x-www-form-urlencoded", "multipart/mixed; boundary=x"] {
        let r = post("&format=snapshot", ct, &good);
        assert_eq!(r.status, 200, "{ct}: {}", r.text());
    }
    assert_eq!(server.query(&token, json!({"group": ["*"]}))["objects"], 5);

    // Never lose a crash for an attribute (issue 18): an over-long value, an odd or
    // reserved name, a bad attachment name are stored renamed, truncated or dropped,
    // said in the reply's `warnings` and in the object's `bt.warnings`.
    let (ct, body) = multipart(&[("upload_file", Some("s.bt"), &good), ("note", None, &big[..1 << 20])]);
    let mut report: serde_json::Value = serde_json::from_slice(&json_report("f", "h", 1)).expect("json");
    report["attributes"]["huge"] = json!("z".repeat(1 << 20));
    let report = report.to_string();
    let (act, abody) =
        multipart(&[("upload_file", Some("s.bt"), &good), ("attachment_../../etc/passwd", Some("x"), b"x")]);
    let salvaged: Vec<(String, &str, &[u8], &str)> = vec![
        ("&format=snapshot".into(), ct.as_str(), &body, "note is 1048576 bytes long: truncated to 8192"),
        ("&format=json".into(), "application/json", report.as_bytes(), "huge is 1048576 bytes long: truncated"),
        ("&format=snapshot&fingerprint=abc".into(), "application/octet-stream", &good, "kept as client.fingerprint"),
        ("&format=snapshot&bad%20name=1".into(), "application/octet-stream", &good, "\"bad name\" renamed to bad_name"),
        ("&format=snapshot&a%3Ab=2".into(), "application/octet-stream", &good, "\"a:b\" renamed to a_b"),
        ("&format=snapshot".into(), act.as_str(), &abody, "renamed to _.._etc_passwd"),
    ];
    for (q, ct, body, want) in &salvaged {
        let r = post(q, ct, body);
        assert_eq!(r.status, 200, "{q}: {}", r.text());
        let v = r.json();
        let warnings =
            v["warnings"].as_array().map(|w| w.iter().filter_map(|x| x.as_str()).collect::<Vec<_>>().join("; "));
        assert!(warnings.as_deref().is_some_and(|w| w.contains(want)), "{q}: want {want:?} in {v}");
        assert_eq!(v["object"], v["_rxid"], "{v}");
        let id = v["object"].as_str().expect("object");
        let out = server.query(&token, json!({"filter": [{"object": [["equal", id]]}], "select": ["bt.warnings"]}));
        assert!(out.to_string().contains(&want.replace('"', "\\\"")), "{q}: the object records it: {out}");
    }
    assert_eq!(server.query(&token, json!({"group": ["*"]}))["objects"], 5 + salvaged.len());

    // Path tricks in object ids and attachment names.
    for obj in ["../../etc/passwd", "..%2F..%2Fetc%2Fpasswd", "1/../2", "-1", "0x1", "1%00", "", "11111111111111111"] {
        expect(&server.get(&format!("/api/get?token={token}&object={obj}")), 400, "object id");
    }
    for att in ["../store.redb", ".hidden", "a%2Fb"] {
        expect(
            &server.get(&format!("/api/get?token={token}&object={id}&attachment={att}")),
            400,
            "bad attachment name",
        );
    }
    assert_eq!(server.get(&format!("/api/../api/get?token={token}&object={id}")).status, 404);
    assert_eq!(server.get(&format!("/api/get?token={token}&object={id}")).status, 200);

    // Bad queries.
    let q = |body: &[u8]| server.post(&format!("/api/query?token={token}"), "application/json", body);
    expect(&q(b"{\"filter\": "), 400, "malformed query");
    expect(&q(br#"{"filter": [{"a": [["like", "x"]]}]}"#), 400, "unknown filter operator");
    expect(&q(br#"{"fold": {"a": [["median"]]}}"#), 400, "unknown fold");
    expect(&q(br#"{"order": [{"name": "nope"}]}"#), 400, "cannot order by");
    expect(&q(br#"{"filter": [{"timestamp": [["at-least", "yesterday"]]}]}"#), 400, "not a number");

    drop(server);
    let (code, out, err) = admin(&data, &["check"], None);
    assert_eq!(code, 0, "{out}{err}");
}

/// Writes raw bytes and reads one response.
fn raw(addr: &str, bytes: &[u8]) -> Resp {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(20))).expect("timeout");
    s.write_all(bytes).expect("write");
    read_response(&mut BufReader::new(s)).expect("response")
}

#[test]
fn oversize_bodies_are_refused_before_they_are_read() {
    let data = scratch("oversize");
    let token = project_with_token(&data, "p", &["submit", "query"]);
    let server = Server::start(&data, &["--max-submission", "1048576"]);
    // Headers only: a 1 TB body that never comes. The answer must not wait for it.
    for extra in ["", "Expect: 100-continue\r\n"] {
        let started = Instant::now();
        let r = raw(&server.addr, format!("POST /api/post?token={token}&format=snapshot HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000000000\r\n{extra}\r\n").as_bytes());
        assert_eq!(r.status, 413, "{}", r.text());
        assert!(started.elapsed() < Duration::from_secs(2), "413 took {:?}", started.elapsed());
        assert_eq!(r.header("connection"), Some("close"));
    }
    // Chunked bodies are counted as they come.
    let mut s = TcpStream::connect(&server.addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(20))).expect("timeout");
    s.write_all(
        format!(
            "POST /api/post?token={token}&format=snapshot HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
        )
        .as_bytes(),
    )
    .expect("write");
    let chunk = vec![b'a'; 256 * 1024];
    let mut status = None;
    for _ in 0..8 {
        if s.write_all(format!("{:x}\r\n", chunk.len()).as_bytes())
            .and_then(|_| s.write_all(&chunk))
            .and_then(|_| s.write_all(b"\r\n"))
            .is_err()
        {
            break;
        }
    }
    if let Ok(r) = read_response(&mut BufReader::new(&s)) {
        status = Some(r.status);
    }
    assert_eq!(status, Some(413));
    // Malformed HTTP gets a 4xx and the server goes on.
    assert_eq!(raw(&server.addr, b"GARBAGE\r\n\r\n").status, 400);
    assert_eq!(raw(&server.addr, b"GET / HTTP/2.0\r\n\r\n").status, 505);
    assert_eq!(raw(&server.addr, b"POST /api/post HTTP/1.1\r\nContent-Length: -5\r\n\r\n").status, 400);
    assert_eq!(raw(&server.addr, b"GET /api/health HTTP/1.1\r\nno colon here\r\n\r\n").status, 400);
    let mut huge_head = b"GET /api/health HTTP/1.1\r\n".to_vec();
    for i in 0..3000 {
        huge_head.extend_from_slice(format!("X-Filler-{i}: {}\r\n", "f".repeat(30)).as_bytes());
    }
    huge_head.extend_from_slice(b"\r\n");
    assert_eq!(raw(&server.addr, &huge_head).status, 431);
    assert_eq!(server.get("/api/health").status, 200);
    let out = server.query(&token, json!({}));
    assert_eq!(out["objects"], 0);
}

#[test]
fn a_slow_client_does_not_block_others() {
    let data = scratch("slow");
    let token = project_with_token(&data, "p", &["submit", "query"]);
    // Stalled clients are cut after 4 s; had they blocked the others, those would wait that long.
    let server = Server::start(&data, &["--io-timeout", "4"]);
    let good = snapshot(2, "h", 2).encode().expect("encode");
    // Several clients send half a body and stall.
    let mut stalled = Vec::new();
    for _ in 0..8 {
        let mut s = TcpStream::connect(&server.addr).expect("connect");
        s.write_all(
            format!(
                "POST /api/post?token={token}&format=snapshot HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n",
                good.len()
            )
            .as_bytes(),
        )
        .expect("head");
        s.write_all(&good[..good.len() / 2]).expect("half");
        stalled.push(s);
    }
    // One more that stalls inside its headers.
    let mut slow_head = TcpStream::connect(&server.addr).expect("connect");
    slow_head.write_all(b"POST /api/post HTTP/1.1\r\nHost: x\r\nContent-Le").expect("partial head");
    // Meanwhile others are served at once.
    let started = Instant::now();
    for _ in 0..5 {
        let r = server.post(&format!("/api/post?token={token}&format=snapshot"), "application/octet-stream", &good);
        assert_eq!(r.status, 200, "{}", r.text());
    }
    assert!(started.elapsed() < Duration::from_secs(3), "others waited {:?}", started.elapsed());
    // The stalled ones are answered 408 and dropped, and stored nothing.
    for s in stalled {
        s.set_read_timeout(Some(Duration::from_secs(15))).expect("timeout");
        let r = read_response(&mut BufReader::new(s)).expect("a response to the stalled client");
        assert_eq!(r.status, 408, "{}", r.text());
    }
    slow_head.set_read_timeout(Some(Duration::from_secs(15))).expect("timeout");
    let r = read_response(&mut BufReader::new(slow_head)).expect("a response to the slow head");
    assert_eq!(r.status, 408);
    let out = server.query(&token, json!({"group": ["*"]}));
    assert_eq!(out["objects"], 5);
    assert!(server.log_text().contains("\"status\":408"), "the request log records the timeouts");
}
