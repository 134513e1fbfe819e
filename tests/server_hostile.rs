//! Hostile clients against a real `bt serve` on loopback, one test per attack that
//! once broke it (issue 13). Each attack is followed by a well-behaved request
//! that must be served within a second. The memory-heavy ones run the server
//! under an address-space limit, so that a regression fails the test instead of
//! the machine.

mod server_common;

use std::io::{BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::io::FromRawFd;
use std::os::unix::process::CommandExt;
use std::time::{Duration, Instant};

use serde_json::json;
use server_common::*;

/// The server answers a health check within a second.
fn healthy(server: &mut Server) {
    assert!(server.alive(), "the server died; log:\n{}", server.log_text());
    let started = Instant::now();
    let r = server.get("/api/health");
    assert_eq!(r.status, 200);
    assert!(started.elapsed() < Duration::from_secs(1), "health took {:?}", started.elapsed());
}

/// Runs the server under RLIMIT_AS (bytes), with few malloc arenas (each
/// reserves 64 MiB of address space per thread otherwise).
fn limited(bytes: u64) -> impl FnOnce(&mut std::process::Command) {
    move |cmd| {
        cmd.env("MALLOC_ARENA_MAX", "2");
        // SAFETY: setrlimit is async-signal-safe; nothing else runs between fork and exec.
        unsafe {
            cmd.pre_exec(move || {
                let lim = libc::rlimit { rlim_cur: bytes, rlim_max: bytes };
                if libc::setrlimit(libc::RLIMIT_AS, &lim) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
    }
}

/// A TCP connection from a chosen loopback address (127.0.0.2 …), so that one
/// test can be two clients.
fn connect_from(local: [u8; 4], addr: &str) -> TcpStream {
    let to: SocketAddr = addr.parse().expect("server address");
    let SocketAddr::V4(to) = to else { panic!("IPv4 expected") };
    // SAFETY: plain socket calls on a descriptor this function owns; on success it
    // is handed to TcpStream, which closes it.
    unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0);
        assert!(fd >= 0, "socket");
        let mut me: libc::sockaddr_in = std::mem::zeroed();
        me.sin_family = libc::AF_INET as u16;
        me.sin_addr.s_addr = u32::from_ne_bytes(local);
        assert_eq!(
            libc::bind(fd, &me as *const _ as *const libc::sockaddr, std::mem::size_of::<libc::sockaddr_in>() as u32),
            0,
            "bind {local:?}"
        );
        let mut dst: libc::sockaddr_in = std::mem::zeroed();
        dst.sin_family = libc::AF_INET as u16;
        dst.sin_port = to.port().to_be();
        dst.sin_addr.s_addr = u32::from_ne_bytes(to.ip().octets());
        let rc = libc::connect(
            fd,
            &dst as *const _ as *const libc::sockaddr,
            std::mem::size_of::<libc::sockaddr_in>() as u32,
        );
        assert_eq!(rc, 0, "connect: {}", std::io::Error::last_os_error());
        TcpStream::from_raw_fd(fd)
    }
}

/// The start of a response body, for assertion messages.
fn head(r: &Resp) -> String {
    r.text().chars().take(500).collect()
}

fn raw(addr: &str, bytes: &[u8]) -> Resp {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(20))).expect("timeout");
    let _ = s.write_all(bytes);
    read_response(&mut BufReader::new(s)).expect("response")
}

/// Attack 1: a chunk of size 1, then one of 2^64-1, wrapped the limit check.
#[test]
fn chunk_sizes_cannot_wrap_the_body_limit() {
    let data = scratch("hostile-chunk");
    let token = project_with_token(&data, "p", &["submit"]);
    let mut server = Server::start_with(&data, &["--max-submission", "1048576"], limited(2 << 30));
    for path in [format!("/api/post?token={token}&format=json"), "/api/login".to_string()] {
        let started = Instant::now();
        let r = raw(
            &server.addr,
            format!(
                "POST {path} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n1\r\na\r\nffffffffffffffff\r\n"
            )
            .as_bytes(),
        );
        assert_eq!(r.status, 413, "{path}: {}", r.text());
        assert!(started.elapsed() < Duration::from_secs(2));
        for size in ["+0", "0x10", "-1", " 5", "10000000000000000", ""] {
            let r = raw(
                &server.addr,
                format!("POST {path} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n{size}\r\n").as_bytes(),
            );
            assert_eq!(r.status, 400, "{path} chunk size {size:?}: {}", r.text());
        }
    }
    // Trailers are bounded in number.
    let mut body =
        format!("POST /api/login HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n").into_bytes();
    for i in 0..100 {
        body.extend_from_slice(format!("X-T{i}: v\r\n").as_bytes());
    }
    body.extend_from_slice(b"\r\n");
    assert_eq!(raw(&server.addr, &body).status, 400);
    healthy(&mut server);
}

/// Attacks 2 and 3: decode bombs (compressed and "valid" ones) and deep nesting
/// are refused with a 400, nothing is stored, and the server's memory stays small.
#[test]
fn decode_bombs_and_deep_nesting_are_refused_with_little_memory() {
    let data = scratch("hostile-bomb");
    let token = project_with_token(&data, "p", &["submit", "query"]);
    let mut server = Server::start_with(&data, &[], limited(3 << 30));
    let post = |body: &[u8]| {
        server.post(&format!("/api/post?token={token}&format=snapshot"), "application/octet-stream", body)
    };
    // Two million empty attributes: a few KB on the wire, ~100 MB decoded.
    let mut bomb = snapshot(1, "h", 1);
    bomb.attributes = vec![bt::snapshot::Attribute::default(); 2_000_000];
    let bytes = bomb.encode().expect("encode");
    drop(bomb);
    assert!(bytes.len() < 100 << 10, "{} bytes", bytes.len());
    // Eight at once, as in the report that OOM-killed the server.
    let answers: Vec<Resp> = std::thread::scope(|s| {
        let hs: Vec<_> = (0..8).map(|_| s.spawn(|| post(&bytes))).collect();
        hs.into_iter().map(|h| h.join().expect("client")).collect()
    });
    for r in answers {
        assert_eq!(r.status, 400, "{}", r.text());
        assert!(r.text().contains("decode budget"), "{}", r.text());
    }
    // A value nested 20,000 deep (a few hundred bytes compressed).
    let deep = std::thread::Builder::new()
        .stack_size(256 << 20)
        .spawn(|| {
            let mut v = bt::snapshot::Value::Int(1);
            for _ in 0..20_000 {
                v = bt::snapshot::Value::Pointer { address: 1, symbol: None, target: Some(Box::new(v)) };
            }
            let mut s = snapshot(2, "h", 2);
            s.threads[0].frames[0].variables.push(bt::snapshot::Variable { value: v, ..Default::default() });
            let b = s.encode().expect("encode");
            std::mem::forget(s); // dropping 20,000 levels recursively is the test's problem, not the server's
            b
        })
        .expect("thread")
        .join()
        .expect("encode deep");
    let r = post(&deep);
    assert_eq!(r.status, 400, "{}", r.text());
    assert!(r.text().contains("nested deeper"), "{}", r.text());
    // `bt ptrace --snapshot` on the same file: a one-line error, not an abort.
    let f = data.with_extension("deep.bt");
    std::fs::write(&f, &deep).expect("write");
    let out = std::process::Command::new(bt_bin()).args(["ptrace", "--snapshot"]).arg(&f).output().expect("bt");
    assert_eq!(out.status.code(), Some(1), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stderr).contains("nested deeper"));
    let peak = server.peak_rss_kib();
    eprintln!(
        "figure: 8 decode bombs of {} bytes at once + a 20,000-deep value: peak RSS {} MiB",
        bytes.len(),
        peak >> 10
    );
    assert!(peak < 512 << 10, "server peak RSS {peak} KiB");
    assert_eq!(server.query(&token, json!({"group": ["*"]}))["objects"], 0, "nothing stored");
    let good = snapshot(3, "h", 3).encode().expect("encode");
    assert_eq!(post(&good).status, 200);
    healthy(&mut server);
}

/// Attack 4: with stderr closed, logging panicked after every answer and leaked
/// the connection slot; after --max-connections requests the server was gone.
#[test]
fn a_closed_log_neither_panics_nor_leaks_connection_slots() {
    let data = scratch("hostile-stderr");
    let token = project_with_token(&data, "p", &["submit", "query"]);
    let (reader, writer) = std::io::pipe().expect("pipe");
    let mut server = Server::start_with(&data, &["--max-connections", "8"], move |cmd| {
        cmd.stderr(writer);
    });
    drop(reader); // every write to the server's stderr now fails (EPIPE)
    let good = snapshot(1, "h", 1).encode().expect("encode");
    // With 8 connections one address holds at most 2: a connection still closing may
    // make the next one wait (503 + Retry-After), briefly. A leaked slot would make
    // every later request 503 for good, past the deadline.
    for i in 0..40 {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let r = server.post(&format!("/api/post?token={token}&format=snapshot"), "application/octet-stream", &good);
            if r.status == 200 {
                break;
            }
            assert_eq!(r.status, 503, "request {i}: {}", r.text());
            assert!(Instant::now() < deadline, "request {i}: still refused after 5 s (a leaked slot?)");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    assert_eq!(server.query(&token, json!({"group": ["*"]}))["objects"], 40, "every request was stored once");
    // The last connections may still be closing: the same brief 503 as above, then a
    // 200 within a second of asking (a leaked slot would keep refusing past the
    // deadline). One loop: a health check of its own could meet the previous one's
    // connection still closing.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        assert!(server.alive(), "the server died; log:\n{}", server.log_text());
        let started = Instant::now();
        let r = server.get("/api/health");
        if r.status == 200 {
            assert!(started.elapsed() < Duration::from_secs(1), "health took {:?}", started.elapsed());
            break;
        }
        assert_eq!(r.status, 503, "health: {}", r.text());
        assert!(Instant::now() < deadline, "health still refused after 5 s (a leaked slot?)");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Attack 5: password guessing is throttled per address (429 + Retry-After),
/// and the real user, from the address they logged in from before, still gets in.
#[test]
fn wrong_passwords_are_throttled_without_locking_the_user_out() {
    let data = scratch("hostile-login");
    assert_eq!(admin(&data, &["project", "create", "p"], None).0, 0);
    assert_eq!(admin(&data, &["user", "add", "carol"], Some("s3cret-pass\n")).0, 0);
    let mut server = Server::start(&data, &[]);
    let login = |from: [u8; 4], password: &str| -> Resp {
        let mut s = connect_from(from, &server.addr);
        s.set_read_timeout(Some(Duration::from_secs(20))).expect("timeout");
        let body = format!("{{\"username\":\"carol\",\"password\":\"{password}\"}}");
        let head = format!(
            "POST /api/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        );
        s.write_all(head.as_bytes()).and_then(|_| s.write_all(body.as_bytes())).expect("write");
        read_response(&mut BufReader::new(s)).expect("response")
    };
    assert_eq!(login([127, 0, 0, 3], "s3cret-pass").status, 200, "carol logs in from home");
    let mut statuses = Vec::new();
    let started = Instant::now();
    for _ in 0..30 {
        statuses.push(login([127, 0, 0, 2], "guess"));
    }
    let throttled: Vec<&Resp> = statuses.iter().filter(|r| r.status == 429).collect();
    assert!(statuses.iter().take(10).all(|r| r.status == 401), "the first guesses are answered 401");
    assert!(throttled.len() >= 15, "{} of 30 guesses throttled", throttled.len());
    let retry: u64 = throttled[0].header("retry-after").and_then(|v| v.parse().ok()).expect("Retry-After");
    assert!((1..=10).contains(&retry), "Retry-After {retry}");
    assert!(started.elapsed() < Duration::from_secs(20), "throttled answers are cheap: {:?}", started.elapsed());
    // Concurrent logins do not run unbounded hashes: 64 at once all get an answer.
    let answers: Vec<u16> = std::thread::scope(|s| {
        let hs: Vec<_> = (0..64u8).map(|i| s.spawn(move || login([127, 0, 1, 10 + i], "guess").status)).collect();
        hs.into_iter().map(|h| h.join().expect("client")).collect()
    });
    assert!(answers.iter().all(|s| [401, 429, 503].contains(s)), "{answers:?}");
    eprintln!(
        "figure: 30 guesses from one address then 64 concurrent logins: {} throttled (429) of the 30, peak RSS {} MiB",
        throttled.len(),
        server.peak_rss_kib() >> 10
    );
    assert!(server.peak_rss_kib() < 1 << 20, "peak RSS {} KiB", server.peak_rss_kib());
    assert_eq!(login([127, 0, 0, 3], "s3cret-pass").status, 200, "carol still gets in from home");
    healthy(&mut server);
}

/// Attack 7: slowloris from one address cannot lock others out; a trickling
/// client is cut once it falls below the minimum rate.
#[test]
fn slowloris_from_one_address_leaves_room_for_others() {
    let data = scratch("hostile-slowloris");
    let token = project_with_token(&data, "p", &["submit", "query"]);
    let mut server = Server::start(&data, &["--max-connections", "64"]);
    let mut held = Vec::new();
    let mut refused = 0;
    for _ in 0..64 {
        let mut s = connect_from([127, 0, 0, 2], &server.addr);
        s.set_read_timeout(Some(Duration::from_millis(300))).expect("timeout");
        let _ = s.write_all(b"POST /api/post HTTP/1.1\r\nHost: x\r\n");
        let mut b = [0u8; 64];
        match s.read(&mut b) {
            Ok(n) if n > 0 && b.starts_with(b"HTTP/1.1 503") => refused += 1,
            _ => held.push(s),
        }
    }
    assert!(held.len() <= 16, "one address holds {} of 64 slots", held.len());
    assert!(refused >= 48, "{refused} refused");
    let good = snapshot(1, "h", 1).encode().expect("encode");
    let started = Instant::now();
    let r = server.post(&format!("/api/post?token={token}&format=snapshot"), "application/octet-stream", &good);
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(started.elapsed() < Duration::from_secs(1), "{:?}", started.elapsed());
    // A head trickled a byte every 2 s is cut (408) well before the 60 s deadline.
    let mut slow = TcpStream::connect(&server.addr).expect("connect");
    slow.set_read_timeout(Some(Duration::from_millis(100))).expect("timeout");
    let started = Instant::now();
    let mut answer = Vec::new();
    for b in b"GET /api/health HTTP/1.1\r\nHost: x\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa".iter() {
        if slow.write_all(&[*b]).is_err() {
            break;
        }
        let deadline = Instant::now() + Duration::from_secs(2);
        let mut buf = [0u8; 512];
        while Instant::now() < deadline {
            match slow.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => answer.extend_from_slice(&buf[..n]),
                Err(_) => {}
            }
        }
        if !answer.is_empty() || started.elapsed() > Duration::from_secs(40) {
            break;
        }
    }
    assert!(answer.starts_with(b"HTTP/1.1 408"), "got {:?}", String::from_utf8_lossy(&answer));
    assert!(started.elapsed() < Duration::from_secs(30), "cut after {:?}", started.elapsed());
    drop(held);
    healthy(&mut server);
}

/// Attacks 8 and 9: a catastrophic regex and a fold computed for every group
/// before `limit`. Queries stay within their time and memory budgets, and
/// submissions are acknowledged while a query runs.
#[test]
fn expensive_queries_are_bounded_and_do_not_block_ingest() {
    let data = scratch("hostile-query");
    let token = project_with_token(&data, "p", &["submit", "query"]);
    let (code, out, err) = admin(&data, &["token", "create", "p", "--scope", "admin"], None);
    assert_eq!(code, 0, "{err}");
    let admin_token = out.trim().to_string();
    {
        // 3,000 objects with distinct 4 KB values, through the library (fast).
        let store = std::sync::Arc::new(bt::store::Store::open(&data).expect("store"));
        std::thread::scope(|s| {
            for t in 0..8u64 {
                let store = store.clone();
                s.spawn(move || {
                    for i in 0..375u64 {
                        let n = t * 1000 + i;
                        let mut rep: serde_json::Value =
                            serde_json::from_slice(&json_report(&format!("f{}", n % 50), "h", 1_700_000_000 + n))
                                .expect("json");
                        rep["attributes"]["blob"] = json!(format!("{}{n}", "a".repeat(4096)));
                        let sub = bt::store::Submission {
                            project: "p".into(),
                            format: bt::store::Format::Json,
                            body: rep.to_string().into_bytes(),
                            attributes: vec![],
                            attachments: vec![],
                        };
                        store.submit(sub).expect("submit");
                    }
                });
            }
        });
    }
    let mut server = Server::start_with(&data, &[], limited(3 << 30));
    let q = |body: serde_json::Value| {
        server.post(&format!("/api/query?token={token}"), "application/json", body.to_string().as_bytes())
    };
    // The regex: bounded backtracking, so well inside the time budget.
    let good = snapshot(1, "h", 1).encode().expect("encode");
    let (answer, acks) = std::thread::scope(|s| {
        let query = s.spawn(|| {
            let started = Instant::now();
            let r = q(json!({"filter": [{"blob": [["regular-expression", "(a*)*\\1b"]]}], "group": ["*"]}));
            (r, started.elapsed())
        });
        std::thread::sleep(Duration::from_millis(50));
        let mut acks = Vec::new();
        for _ in 0..5 {
            let started = Instant::now();
            let r = server.post(&format!("/api/post?token={token}&format=snapshot"), "application/octet-stream", &good);
            assert_eq!(r.status, 200, "{}", r.text());
            acks.push(started.elapsed());
        }
        (query.join().expect("query"), acks)
    });
    let (r, took) = answer;
    assert!([200, 400].contains(&r.status), "{}", head(&r));
    assert!(took < Duration::from_secs(8), "regex query took {took:?}");
    assert!(acks.iter().all(|d| *d < Duration::from_secs(1)), "ingest waited for the query: {acks:?}");
    eprintln!(
        "figure: (a*)*\\1b over 3,000 distinct 4 KB values: {took:?} (status {}); submissions meanwhile acked in {acks:?}",
        r.status
    );
    // Group by uuid (3,000 groups), 1,000 bins each: only the page is computed.
    let before = server.peak_rss_kib();
    let r = q(json!({"group": ["uuid"], "fold": {"timestamp": [["bin", 1000]]}, "limit": 20}));
    assert_eq!(r.status, 200, "{}", head(&r));
    assert_eq!(r.json()["rows"].as_array().map(Vec::len), Some(20));
    let grew = server.peak_rss_kib().saturating_sub(before);
    eprintln!("figure: group by uuid (3,001 groups) with a 1,000-bin fold, limit 20: peak RSS grew {} MiB", grew >> 10);
    assert!(grew < 200 << 10, "the query grew the server by {grew} KiB");
    // A page that would be too large is refused with a reason.
    let r = q(json!({"group": ["uuid"], "fold": {"timestamp": [["bin", 1000]]}, "limit": 100000}));
    assert_eq!(r.status, 400, "{}", head(&r));
    assert!(r.text().contains("lower the limit"), "{}", head(&r));
    // Delete by a filter on an unknown attribute (is-not-set selects all): refused;
    // a filter that selects everything needs all=1; limit is honoured.
    let del = |q: &str, body: serde_json::Value| {
        server.post(&format!("/api/delete?token={admin_token}{q}"), "application/json", body.to_string().as_bytes())
    };
    let r = del("", json!({"filter": [{"nosuch": [["is-not-set"]]}]}));
    assert_eq!(r.status, 400, "{}", r.text());
    assert!(r.text().contains("no such attribute"), "{}", r.text());
    let r = del("", json!({"filter": [{"timestamp": [["is-set"]]}]}));
    assert_eq!(r.status, 400, "{}", r.text());
    let r = del("", json!({"filter": [{"timestamp": [["is-set"]]}], "limit": 3}));
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["deleted"], 3);
    assert_eq!(server.query(&token, json!({"group": ["*"]}))["objects"], 3000 + 5 - 3);
    healthy(&mut server);
}

/// Malformed framing that RFC 9112 says to reject: 400 and the connection closed.
#[test]
fn ambiguous_framing_is_refused() {
    let data = scratch("hostile-framing");
    let _token = project_with_token(&data, "p", &["submit"]);
    let mut server = Server::start(&data, &[]);
    let cases: [&[u8]; 9] = [
        b"POST /api/login HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        b"POST /api/login HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nContent-Length: 30\r\n\r\nabc",
        b"GET /api/health HTTP/1.1\r\nHost: x\r\nX-A: 1\r\n folded\r\n\r\n",
        b"POST /api/login HTTP/1.1\r\nHost: x\r\nTE : chunked\r\n\r\n",
        b"POST /api/login HTTP/1.1\r\nHost: x\r\nTransfer-Encoding : chunked\r\n\r\n0\r\n\r\n",
        b"GET /api/health HTTP/1.1\nHost: x\n\n",
        b"GET /api/health HTTP/1.1\r\nHost: x\rX: y\r\n\r\n",
        b"GET /api/health HTTP/1.1\r\nHost: x\0y\r\n\r\n",
        b"GET /api/health HTTP/1.1\r\n\r\n",
    ];
    for (i, c) in cases.iter().enumerate() {
        let r = raw(&server.addr, c);
        assert_eq!(r.status, 400, "case {i} {:?}: {}", String::from_utf8_lossy(c), r.text());
        assert_eq!(r.header("connection"), Some("close"), "case {i}");
    }
    // HTTP/1.0 needs no Host.
    assert_eq!(raw(&server.addr, b"GET /api/health HTTP/1.0\r\n\r\n").status, 200);
    healthy(&mut server);
}

/// Attack 6: escapes from a crash report never reach the terminal raw, in any of
/// morgue's forms, and a CSV cell cannot start a formula.
#[test]
fn terminal_escapes_from_reports_are_neutralised() {
    let data = scratch("hostile-escapes");
    let token = project_with_token(&data, "p", &["submit", "query"]);
    let server = Server::start(&data, &[]);
    let mut rep: serde_json::Value =
        serde_json::from_slice(&json_report("f\x1b[2Jx", "h\x07", 1_700_000_000)).expect("json");
    rep["attributes"]["evil"] = json!("=HYPERLINK(\"http://x\")\x1b]0;pwned\x07\r\x08");
    rep["classifiers"] = json!(["bad\x1b[31m"]);
    let r =
        server.post(&format!("/api/post?token={token}&format=json"), "application/json", rep.to_string().as_bytes());
    assert_eq!(r.status, 200, "{}", r.text());
    drop(server);
    let morgue = |args: &[&str]| -> String {
        let out = std::process::Command::new(bt_bin())
            .arg("morgue")
            .args(args)
            .arg("--data")
            .arg(&data)
            .env("HOME", &data)
            .output()
            .expect("bt morgue");
        assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    for args in [
        &["list", "p"][..],
        &["list", "p", "--factor=evil"],
        &["list", "p", "--select=evil", "--select=hostname"],
        &["list", "p", "--histogram=evil"],
        &["list", "p", "--select=evil", "--csv"],
        &["list", "p", "--csv"],
    ] {
        let out = morgue(args);
        assert!(
            !out.bytes().any(|b| b < 0x20 && b != b'\n' || b == 0x7f),
            "{args:?} printed a control character: {out:?}"
        );
        if args.contains(&"--csv") && args.contains(&"--select=evil") {
            assert!(out.contains("'=HYPERLINK"), "{out}");
        }
    }
}

/// Attack 6, the tracer's side: a target's thread name with terminal escapes
/// (any process can name its threads) is printed escaped by `bt ptrace`.
#[test]
fn a_thread_name_cannot_drive_the_terminal() {
    // A process may name only its own threads: python names itself, then sleeps.
    let mut child = std::process::Command::new("python3")
        .args(["-c", "open('/proc/self/comm','wb').write(b'a\\x1b]0;pwned\\x07\\x08b'); import time; time.sleep(60)"])
        .spawn()
        .expect("python3");
    let pid = child.id();
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::fs::read(format!("/proc/{pid}/comm")).unwrap_or_default() != b"a\x1b]0;pwned\x07\x08b\n" {
        assert!(Instant::now() < deadline, "the target did not name itself");
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = std::process::Command::new(bt_bin()).args(["ptrace", &pid.to_string()]).output().expect("bt ptrace");
    let _ = child.kill();
    let _ = child.wait();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}{}", String::from_utf8_lossy(&out.stderr));
    assert!(!text.bytes().any(|b| b < 0x20 && b != b'\n'), "a control character reached the terminal: {text:?}");
    assert!(text.contains("a\\x1b]0;pwned\\x07\\x08b"), "the name is shown escaped: {text}");
}

/// "Also degraded": the writer queue was bounded only by the connection count.
/// Submissions in flight are bounded in bytes: with a small `--max-inflight`, many
/// large uploads at once get 503 + Retry-After (nothing half-stored), the rest 200.
#[test]
fn submissions_in_flight_are_bounded_in_bytes() {
    let data = scratch("hostile-inflight");
    let token = project_with_token(&data, "p", &["submit", "query"]);
    // max-submission 1 MiB: an upload reserves its declared body while it arrives, then
    // its body and decode budget (≥ 16 MiB). The budget is at least 10 × max-submission
    // + 32 MiB (42 MiB here): 45 uploads of 1 MiB arriving slowly fill it.
    let mut server = Server::start(&data, &["--max-submission", "1048576", "--max-inflight", "41943040"]);
    let mut snap = snapshot(1, "h", 1);
    // Incompressible bytes so the body is ~1 MiB on the wire.
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    let noise: Vec<u8> = (0..900_000)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    snap.memory = vec![bt::snapshot::MemoryRegion { address: 0x1000, label: "noise".into(), bytes: noise }];
    let body = snap.encode().expect("encode");
    // Clients that send their head and then trickle the body hold their reservation.
    let mut slow = Vec::new();
    for _ in 0..45 {
        let mut s = TcpStream::connect(&server.addr).expect("connect");
        s.write_all(
            format!(
                "POST /api/post?token={token}&format=snapshot HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n",
                body.len()
            )
            .as_bytes(),
        )
        .expect("head");
        s.write_all(&body[..1000]).expect("start");
        slow.push(s);
    }
    // Until the server has taken every slow upload's reservation (its health says so).
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let used = server.get("/api/health").json()["inflight_bytes"].as_u64();
        if used.unwrap_or(0) >= 41 * (body.len() as u64) {
            break;
        }
        assert!(Instant::now() < deadline, "the slow uploads never held the budget: {used:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
    let started = Instant::now();
    let r = server.post(&format!("/api/post?token={token}&format=snapshot"), "application/octet-stream", &body);
    assert_eq!(r.status, 503, "{}", head(&r));
    assert!(r.header("retry-after").is_some(), "503 says when to retry");
    assert!(started.elapsed() < Duration::from_secs(5), "refused after the short wait: {:?}", started.elapsed());
    drop(slow);
    // Room again once those connections are gone.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let r = server.post(&format!("/api/post?token={token}&format=snapshot"), "application/octet-stream", &body);
        if r.status == 200 {
            break;
        }
        assert_eq!(r.status, 503, "{}", head(&r));
        assert!(Instant::now() < deadline, "the budget was never returned");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(server.query(&token, json!({"group": ["*"]}))["objects"], 1, "only the accepted one is stored");
    healthy(&mut server);
}
