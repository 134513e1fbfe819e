//! Shared fixtures of the store and server tests: the real `bt serve` on loopback
//! (a free port, its log kept for failures), a minimal HTTP/1.1 client on std::net,
//! the admin CLI, and realistic snapshots built from the data model.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use bt::snapshot::{Attribute, Environment, Frame, Process, Signal, Snapshot, Thread, Trust, Uname};

pub fn bt_bin() -> PathBuf {
    match std::env::var_os("BT_BIN") {
        Some(p) if !p.is_empty() => PathBuf::from(p),
        _ => PathBuf::from(env!("CARGO_BIN_EXE_bt")),
    }
}

/// A fresh scratch directory for one test.
pub fn scratch(name: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("store-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("creating {}: {e}", dir.display()));
    dir
}

/// Runs `bt coroner --data DATA ARGS…` and returns (exit code, stdout, stderr).
pub fn admin(data: &Path, args: &[&str], stdin: Option<&str>) -> (i32, String, String) {
    let mut cmd = Command::new(bt_bin());
    cmd.arg("coroner").arg("--data").arg(data).args(args);
    cmd.stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("spawning bt coroner");
    if let Some(s) = stdin {
        child.stdin.take().expect("stdin").write_all(s.as_bytes()).expect("writing stdin");
    }
    let out = child.wait_with_output().expect("bt coroner");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Creates a project and a token with the given scopes; returns the token.
pub fn project_with_token(data: &Path, project: &str, scopes: &[&str]) -> String {
    let (code, _, err) = admin(data, &["project", "create", project], None);
    assert_eq!(code, 0, "project create: {err}");
    let mut args = vec!["token", "create", project];
    for s in scopes {
        args.push("--scope");
        args.push(s);
    }
    let (code, out, err) = admin(data, &args, None);
    assert_eq!(code, 0, "token create: {err}");
    out.trim().to_string()
}

/// A running `bt serve`, killed on drop.
pub struct Server {
    pub child: Child,
    pub addr: String,
    pub data: PathBuf,
    pub log: PathBuf,
}

impl Server {
    pub fn start(data: &Path, extra: &[&str]) -> Server {
        Server::start_with(data, extra, |_| {})
    }

    /// Like [`Server::start`], with the command adjusted first (limits, stderr …).
    pub fn start_with(data: &Path, extra: &[&str], adjust: impl FnOnce(&mut Command)) -> Server {
        let log = data.with_extension(format!(
            "log{}",
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0)
        ));
        let log_file = std::fs::File::create(&log).expect("log file");
        let mut cmd = Command::new(bt_bin());
        cmd.arg("serve")
            .arg("--data")
            .arg(data)
            .args(["--listen", "127.0.0.1:0"])
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log_file);
        adjust(&mut cmd);
        let mut child = cmd.spawn().expect("spawning bt serve");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            let _ = tx.send(line);
        });
        let line = match rx.recv_timeout(Duration::from_secs(30)) {
            Ok(l) => l,
            Err(_) => {
                let _ = child.kill();
                panic!("bt serve did not start; log:\n{}", std::fs::read_to_string(&log).unwrap_or_default());
            }
        };
        let Some(addr) = line
            .trim()
            .strip_prefix("listening on http://")
            .or_else(|| line.trim().strip_prefix("listening on https://"))
        else {
            let _ = child.kill();
            let _ = child.wait();
            panic!("bt serve said {line:?}; log:\n{}", std::fs::read_to_string(&log).unwrap_or_default());
        };
        Server { addr: addr.to_string(), child, data: data.to_path_buf(), log }
    }

    /// SIGKILL, like a power cut for the process.
    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Peak resident memory of the server so far, in KiB (VmHWM).
    pub fn peak_rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap_or_default();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or(0)
    }

    /// Whether the server process is still running.
    pub fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn post(&self, path: &str, content_type: &str, body: &[u8]) -> Resp {
        request(&self.addr, "POST", path, &[("Content-Type", content_type)], body)
    }

    pub fn get(&self, path: &str) -> Resp {
        request(&self.addr, "GET", path, &[], b"")
    }

    /// POST /api/query and the parsed answer; panics unless 200.
    pub fn query(&self, token: &str, q: serde_json::Value) -> serde_json::Value {
        let r = self.post(&format!("/api/query?token={token}"), "application/json", q.to_string().as_bytes());
        assert_eq!(r.status, 200, "query {q}: {}", r.text());
        r.json()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill9();
    }
}

#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Resp {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text()))
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

/// Reads one response from a stream.
pub fn read_response(r: &mut impl BufRead) -> std::io::Result<Resp> {
    let mut line = String::new();
    r.read_line(&mut line)?;
    let status: u16 = line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("bad status line {line:?}")))?;
    let mut headers = Vec::new();
    loop {
        let mut h = String::new();
        r.read_line(&mut h)?;
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            headers.push((k.trim().to_string(), v.trim().to_string()));
        }
    }
    let len: usize = headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    let mut body = vec![0; len];
    r.read_exact(&mut body)?;
    Ok(Resp { status, headers, body })
}

/// One request on a fresh connection.
pub fn request(addr: &str, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Resp {
    try_request(addr, method, path, headers, body).unwrap_or_else(|e| panic!("{method} {path}: {e}"))
}

pub fn try_request(
    addr: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> std::io::Result<Resp> {
    let mut s = TcpStream::connect(addr)?;
    s.set_read_timeout(Some(Duration::from_secs(30)))?;
    let mut head =
        format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n", body.len());
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    s.write_all(head.as_bytes())?;
    // A server may answer (413) and stop reading before the body is sent: read the answer anyway.
    let _ = s.write_all(body);
    read_response(&mut BufReader::new(s))
}

/// A multipart/form-data body: (field name, file name, bytes).
pub fn multipart(parts: &[(&str, Option<&str>, &[u8])]) -> (String, Vec<u8>) {
    let boundary = "bt-test-boundary-7d3f";
    let mut body = Vec::new();
    for (name, file, data) in parts {
        body.extend_from_slice(format!("--{boundary}\r\n").as_bytes());
        match file {
            Some(f) => body.extend_from_slice(format!("Content-Disposition: form-data; name=\"{name}\"; filename=\"{f}\"\r\nContent-Type: application/octet-stream\r\n\r\n").as_bytes()),
            None => body.extend_from_slice(format!("Content-Disposition: form-data; name=\"{name}\"\r\n\r\n").as_bytes()),
        }
        body.extend_from_slice(data);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}

/// A realistic small snapshot: 3 threads of ~15 frames; `group` picks the crash site.
pub fn snapshot(group: usize, host: &str, seq: u64) -> Snapshot {
    let frame = |f: &str, m: &str, i: u64| Frame {
        pc: 0x401000 + i * 0x40,
        sp: 0x7ffd_0000_0000 + i * 0x80,
        module: Some(m.to_string()),
        module_offset: 0x1000 + i * 0x40,
        function: Some(f.to_string()),
        file: Some(format!("src/{m}.c")),
        line: Some(10 + i as u32),
        trust: if i == 0 { Trust::Context } else { Trust::Cfi },
        ..Default::default()
    };
    let mut crash: Vec<Frame> =
        vec![frame(&format!("crash_site_{group}"), "app", 0), frame(&format!("handler_{}", group % 7), "app", 1)];
    for i in 2..14 {
        crash.push(frame(&format!("layer_{i}"), if i % 3 == 0 { "libcore.so" } else { "app" }, i));
    }
    crash.push(frame("main", "app", 14));
    let idle: Vec<Frame> =
        (0..10).map(|i| frame(if i == 0 { "futex_wait" } else { "worker_loop" }, "libc.so.6", i)).collect();
    Snapshot {
        uuid: format!("00000000-0000-4000-8000-{seq:012x}"),
        timestamp: 1_700_000_000 + seq,
        process: Process {
            pid: 1000 + (seq % 30000) as i32,
            exe: "/usr/bin/app".into(),
            comm: "app".into(),
            cmdline: vec!["app".into()],
            ..Default::default()
        },
        signal: Some(Signal {
            signo: 11,
            name: "SIGSEGV".into(),
            code: 1,
            code_name: "SEGV_MAPERR".into(),
            fault_address: Some(0),
            tid: 1,
            sender_pid: None,
        }),
        threads: vec![
            Thread {
                tid: 1,
                name: "app".into(),
                state: "R".into(),
                faulted: true,
                frames: crash,
                ..Default::default()
            },
            Thread { tid: 2, name: "worker".into(), state: "S".into(), frames: idle.clone(), ..Default::default() },
            Thread { tid: 3, name: "worker".into(), state: "S".into(), frames: idle, ..Default::default() },
        ],
        environment: Environment {
            hostname: host.to_string(),
            uname: Uname {
                sysname: "Linux".into(),
                nodename: host.into(),
                release: "6.1.0".into(),
                version: "#1 SMP".into(),
                machine: "x86_64".into(),
            },
            cpu_count: 2,
            ..Default::default()
        },
        attributes: vec![Attribute { key: "version".into(), value: format!("1.{}", seq % 3) }],
        classifiers: if group.is_multiple_of(2) {
            vec!["null-dereference".into()]
        } else {
            vec!["invalid-write".into()]
        },
        ..Default::default()
    }
}

/// A Backtrace-style JSON report.
pub fn json_report(func: &str, host: &str, ts: u64) -> Vec<u8> {
    serde_json::json!({
        "uuid": format!("11111111-2222-4333-8444-{ts:012x}"),
        "timestamp": ts,
        "lang": "c", "langVersion": "gcc 12", "agent": "test", "agentVersion": "1.0",
        "mainThread": "1",
        "threads": {"1": {"name": "main", "fault": true, "stack": [
            {"funcName": func, "library": "app", "line": "12"},
            {"funcName": "dispatch", "library": "app"},
            {"funcName": "main", "library": "app"}
        ]}},
        "attributes": {"hostname": host, "build": 42},
        "classifiers": ["null-dereference"],
        "annotations": {"note": {"x": 1}}
    })
    .to_string()
    .into_bytes()
}
