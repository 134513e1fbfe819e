//! Benchmarks of the object store (not tests; `bench/store/run.sh` drives them):
//!
//! - `ingest`: submissions per second of realistic small snapshots, over HTTP with
//!   keep-alive clients, against a real `bt serve` (fingerprinting included);
//! - `load`: fills a data directory with N objects through the library (the same
//!   prepare → group-commit path as the server, without HTTP);
//! - `query`: starts `bt serve` on that data, times the list query and filtered
//!   queries over HTTP (median of runs), and the bytes per object beyond the blobs;
//! - `console`: the web console's API on that data (the triage page's calls, a
//!   group's details, the debugger of a 1,000-thread snapshot), median of runs;
//!   with `BENCH_NODE_PATH` (playwright-core) also the pages in headless Chromium
//!   (bench/console.js): the time until each page shows its data;
//! - `verify`: reads N objects of a project, picked at random among ids 1..=MAX,
//!   through the library (after a sweep of a big store: does every sampled object
//!   still read back?).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use bt::snapshot::{Attribute, Environment, Frame, MemoryRegion, Process, Signal, Snapshot, Thread, Trust, Uname};
use bt::store::{Format, Store, Submission};

fn usage() -> ! {
    eprintln!(
        "usage: store_bench ingest BT DIR [N] [CLIENTS] | load DIR N [GROUPS] | query BT DIR [RUNS] | console BT DIR [RUNS] | verify DIR PROJECT MAX N"
    );
    std::process::exit(2)
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let a = |i: usize| args.get(i).cloned().unwrap_or_else(|| usage());
    let n = |i: usize, d: u64| args.get(i).and_then(|s| s.parse().ok()).unwrap_or(d);
    match args.first().map(String::as_str) {
        Some("ingest") => ingest(Path::new(&a(1)), Path::new(&a(2)), n(3, 20_000), n(4, 32) as usize, n(5, 1) as usize),
        Some("load") => load(Path::new(&a(1)), n(2, 1_000_000), n(3, 40)),
        Some("console") => console(Path::new(&a(1)), Path::new(&a(2)), n(3, 21) as usize),
        Some("query") => query(Path::new(&a(1)), Path::new(&a(2)), n(3, 21) as usize),
        Some("verify") => verify(Path::new(&a(1)), &a(2), n(3, 1), n(4, 1000)),
        _ => usage(),
    }
}

/// A realistic small crash: 3 threads, a 15-frame faulting stack, one of `groups` groups.
fn snapshot(i: u64, groups: u64) -> Snapshot {
    let group = i % groups;
    let frame = |f: String, m: &str, k: u64| Frame {
        pc: 0x55d0_0000_1000 + k * 0x40 + group * 0x1000,
        sp: 0x7ffd_0000_0000 + k * 0x80,
        module: Some(m.to_string()),
        module_offset: 0x1000 + k * 0x40,
        function: Some(f),
        file: Some(format!("src/{m}.cc")),
        line: Some(10 + k as u32),
        trust: if k == 0 { Trust::Context } else { Trust::Cfi },
        ..Default::default()
    };
    let mut crash = vec![
        frame(format!("Parser::crash_site_{group}(Token const&)"), "app", 0),
        frame(format!("handler_{}", group % 7), "app", 1),
    ];
    for k in 2..14 {
        crash.push(frame(format!("ns::Layer{k}::run()"), if k % 3 == 0 { "libcore.so" } else { "app" }, k));
    }
    crash.push(frame("main".into(), "app", 14));
    let idle: Vec<Frame> = (0..10)
        .map(|k| frame(if k == 0 { "futex_wait".into() } else { "worker_loop".into() }, "libc.so.6", k))
        .collect();
    let host = format!("host-{:02}", i % 50);
    Snapshot {
        uuid: format!("00000000-0000-4000-8000-{i:012x}"),
        timestamp: 1_700_000_000 + i,
        process: Process {
            pid: 1000 + (i % 30000) as i32,
            exe: format!("/usr/bin/app{}", i % 5),
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
            hostname: host.clone(),
            uname: Uname {
                sysname: "Linux".into(),
                nodename: host,
                release: "6.1.0".into(),
                version: "#1 SMP".into(),
                machine: "x86_64".into(),
            },
            cpu_count: 2,
            ..Default::default()
        },
        attributes: attributes(i),
        // BENCH_SMALL_BLOBS=1: without the stack bytes (reports of ~700 B), for stores
        // too big for this machine's disk at 2-8 KB an object (10 M: 70 GB in redb).
        memory: if std::env::var_os("BENCH_SMALL_BLOBS").is_some() { vec![] } else { vec![stack_bytes(i)] },
        classifiers: if group.is_multiple_of(3) {
            vec!["null-dereference".into()]
        } else {
            vec!["invalid-write".into()]
        },
        ..Default::default()
    }
}

/// About 20 attributes, as a collector's defaults and a client's own add.
fn attributes(i: u64) -> Vec<Attribute> {
    let mut a = vec![
        Attribute { key: "version".into(), value: format!("1.{}", i % 9) },
        Attribute { key: "build".into(), value: format!("{}", 100 + i % 20) },
        Attribute { key: "datacenter".into(), value: format!("dc-{}", i % 4) },
        Attribute { key: "customer".into(), value: format!("customer-{}", i % 97) },
        Attribute { key: "release_channel".into(), value: ["stable", "beta", "nightly"][(i % 3) as usize].into() },
    ];
    for k in 0..15 {
        a.push(Attribute { key: format!("feature.flag_{k}"), value: format!("{}", (i >> k) & 1) });
    }
    a
}

/// Stack memory kept for re-rendering values: 1.5 to 7 KB of bytes that compress
/// little, so that stored reports are 2 to 8 KB as real ones are.
fn stack_bytes(i: u64) -> MemoryRegion {
    let len = 1536 + (i.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 40) as usize % 5632;
    let mut x = i | 1;
    let bytes = (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    MemoryRegion { address: 0x7ffd_0000_0000, label: "stack 1".into(), bytes }
}

/// The backend under test: `BENCH_CATALOG` (postgres://…), `BENCH_BLOBS` (s3://…) and
/// `BENCH_BLOBS_CREDENTIALS`; none set: the embedded store.
fn backend() -> bt::store::Backend {
    let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    bt::store::Backend {
        catalog: var("BENCH_CATALOG"),
        blobs: var("BENCH_BLOBS"),
        blobs_credentials: var("BENCH_BLOBS_CREDENTIALS").map(Into::into),
    }
}

/// The backend as `bt serve` / `bt coroner` flags.
fn backend_args() -> Vec<String> {
    let b = backend();
    let mut out = Vec::new();
    for (flag, v) in [
        ("--catalog", b.catalog),
        ("--blobs", b.blobs),
        ("--blobs-credentials", b.blobs_credentials.map(|p| p.display().to_string())),
    ] {
        if let Some(v) = v {
            out.push(flag.to_string());
            out.push(v);
        }
    }
    out
}

fn admin(bt: &Path, data: &Path, args: &[&str]) -> String {
    let out = Command::new(bt)
        .arg("coroner")
        .arg("--data")
        .arg(data)
        .args(backend_args())
        .args(args)
        .output()
        .expect("bt coroner");
    assert!(out.status.success(), "bt coroner {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

struct Server(Child, String);

impl Server {
    fn start(bt: &Path, data: &Path) -> Server {
        let mut child = Command::new(bt)
            .arg("serve")
            .arg("--data")
            .arg(data)
            .args(backend_args())
            .args(["--listen", "127.0.0.1:0"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("bt serve");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("stdout")).read_line(&mut line).expect("listening line");
        let addr = line
            .trim()
            .strip_prefix("listening on http://")
            .unwrap_or_else(|| panic!("bt serve said {line:?}"))
            .to_string();
        Server(child, addr)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A keep-alive HTTP/1.1 client.
struct Client {
    addr: String,
    conn: Option<(TcpStream, BufReader<TcpStream>)>,
}

impl Client {
    fn post(&mut self, path: &str, body: &[u8]) -> (u16, Vec<u8>) {
        self.send("POST", path, "", body)
    }

    /// One request; `headers` are extra header lines, each ending in CRLF.
    fn send(&mut self, method: &str, path: &str, headers: &str, body: &[u8]) -> (u16, Vec<u8>) {
        for _ in 0..3 {
            if self.conn.is_none() {
                let s = TcpStream::connect(&self.addr).expect("connect");
                s.set_nodelay(true).ok();
                let r = BufReader::new(s.try_clone().expect("clone"));
                self.conn = Some((s, r));
            }
            let (s, r) = self.conn.as_mut().expect("connection");
            let head = format!(
                "{method} {path} HTTP/1.1\r\nHost: b\r\n{headers}Content-Type: application/octet-stream\r\nContent-Length: {}\r\n\r\n",
                body.len()
            );
            if s.write_all(head.as_bytes()).and_then(|_| s.write_all(body)).is_err() {
                self.conn = None;
                continue;
            }
            match read_response(r) {
                Ok((status, body, close)) => {
                    if close {
                        self.conn = None;
                    }
                    return (status, body);
                }
                Err(_) => self.conn = None,
            }
        }
        panic!("{method} {path} failed three times");
    }
}

fn read_response(r: &mut BufReader<TcpStream>) -> std::io::Result<(u16, Vec<u8>, bool)> {
    let mut line = String::new();
    if r.read_line(&mut line)? == 0 {
        return Err(std::io::Error::other("closed"));
    }
    let status = line.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    let (mut len, mut close) = (0usize, false);
    loop {
        let mut h = String::new();
        r.read_line(&mut h)?;
        let h = h.trim_end().to_ascii_lowercase();
        if h.is_empty() {
            break;
        }
        if let Some(v) = h.strip_prefix("content-length:") {
            len = v.trim().parse().unwrap_or(0);
        }
        if h.starts_with("connection:") && h.contains("close") {
            close = true;
        }
    }
    let mut body = vec![0; len];
    r.read_exact(&mut body)?;
    Ok((status, body, close))
}

fn ingest(bt: &Path, dir: &Path, n: u64, clients: usize, nodes: usize) {
    let _ = std::fs::remove_dir_all(dir);
    let project = format!("bench{}", std::process::id());
    admin(bt, dir, &["project", "create", &project]);
    let token = admin(bt, dir, &["token", "create", &project, "--scope", "submit"]);
    let pool: Arc<Vec<Vec<u8>>> = Arc::new((0..400).map(|i| snapshot(i, 40).encode().expect("encode")).collect());
    let avg = pool.iter().map(Vec::len).sum::<usize>() / pool.len();
    // Several nodes share a catalog (BENCH_CATALOG); each has its own data directory.
    let shared = backend().catalog.is_some();
    let servers: Vec<Server> = (0..if shared { nodes.max(1) } else { 1 })
        .map(|i| Server::start(bt, &if shared { dir.join(format!("node{i}")) } else { dir.to_path_buf() }))
        .collect();
    let next = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let threads: Vec<_> = (0..clients)
        .map(|c| {
            let addr = servers[c % servers.len()].1.clone();
            let (pool, next, token) = (pool.clone(), next.clone(), token.clone());
            std::thread::spawn(move || {
                let mut c = Client { addr, conn: None };
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= n {
                        break;
                    }
                    let (status, body) = c.post(
                        &format!("/api/post?token={token}&format=snapshot"),
                        &pool[(i % pool.len() as u64) as usize],
                    );
                    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
                }
            })
        })
        .collect();
    for t in threads {
        t.join().expect("client");
    }
    let secs = started.elapsed().as_secs_f64();
    println!(
        "ingest: {n} snapshots ({avg} bytes each), {clients} keep-alive clients, {} node(s): {:.2} s, {:.0} submissions/s (goal >= 2000/s per node)",
        servers.len(),
        secs,
        n as f64 / secs
    );
}

fn verify(dir: &Path, project: &str, max: u64, n: u64) {
    let store = Store::open_with(dir, &backend()).expect("open store");
    // xorshift64*, seeded from the clock: a different sample each run.
    let mut x =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(1, |d| d.as_nanos() as u64) | 1;
    let (mut ok, mut missing, mut failed) = (0u64, 0u64, 0u64);
    let t = Instant::now();
    for _ in 0..n {
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        let id = x.wrapping_mul(0x2545_f491_4f6c_dd1d) % max.max(1) + 1;
        match store.get(project, id) {
            Ok(o) if !o.bytes.is_empty() => ok += 1,
            Ok(_) => failed += 1,
            Err(bt::store::StoreError::NotFound(_)) => missing += 1,
            Err(e) => {
                failed += 1;
                eprintln!("verify: object {id:x}: {e}");
            }
        }
    }
    println!(
        "verify: {n} objects sampled among ids 1..={max}: {ok} read back, {missing} not found, {failed} failed ({:.1} s)",
        t.elapsed().as_secs_f64()
    );
}

fn load(dir: &Path, n: u64, groups: u64) {
    let _ = std::fs::remove_dir_all(dir);
    let store = Arc::new(Store::open_with(dir, &backend()).expect("open store"));
    store.create_project("bench").expect("project");
    let pool_n = groups.max(1000);
    let pool: Arc<Vec<Vec<u8>>> =
        Arc::new((0..pool_n).map(|i| snapshot(i, groups).encode().expect("encode")).collect());
    let now = bt::store::now();
    let next = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    // Many submitters, so that the writer commits large batches.
    let threads: Vec<_> = (0..64)
        .map(|_| {
            let (store, pool, next) = (store.clone(), pool.clone(), next.clone());
            std::thread::spawn(move || {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= n {
                        break;
                    }
                    // Spread over the last 60 days, deterministic.
                    let age = (i.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 40) % (60 * 86400);
                    let sub = Submission {
                        project: "bench".into(),
                        format: Format::Snapshot,
                        body: pool[(i % pool_n) as usize].clone(),
                        attributes: vec![
                            ("timestamp".into(), (now - age as i64).to_string()),
                            ("seq".into(), i.to_string()),
                            // Every crash has its own uuid: one unique string a row,
                            // as in a real store.
                            ("uuid".into(), format!("{:08x}-0000-4000-8000-{:012x}", i >> 48, i & 0xffff_ffff_ffff)),
                        ],
                        attachments: vec![],
                    };
                    store.submit(sub).expect("submit");
                    if i > 0 && i % 100_000 == 0 {
                        eprintln!("load: {i} objects");
                    }
                }
            })
        })
        .collect();
    for t in threads {
        t.join().expect("loader");
    }
    let secs = started.elapsed().as_secs_f64();
    for (project, rows, parts) in store.index_memory().expect("index") {
        let total: usize = parts.iter().map(|p| p.1).sum();
        let top: Vec<String> =
            parts.iter().take(6).map(|(k, b)| format!("{k} {:.0}", *b as f64 / rows.max(1) as f64)).collect();
        println!(
            "index: project {project}: {rows} rows, {:.0} MiB in the heap, {:.0} bytes a row ({}; {} columns)",
            total as f64 / 1048576.0,
            total as f64 / rows.max(1) as f64,
            top.join(", "),
            parts.len() - 3
        );
    }
    let (objects, blob_bytes) = store.blob_bytes("bench").expect("bytes");
    store.close();
    let file = store.file_size();
    let avg = pool.iter().map(Vec::len).sum::<usize>() / pool.len();
    println!(
        "load: {objects} objects ({avg} bytes each) in {secs:.1} s ({:.0}/s through the library)",
        objects as f64 / secs
    );
    if backend().catalog.is_some() {
        return;
    }
    println!(
        "size: database {:.1} MiB, blobs {:.1} MiB, beyond the blobs {:.0} bytes/object (goal < 1024)",
        file as f64 / 1048576.0,
        blob_bytes as f64 / 1048576.0,
        (file.saturating_sub(blob_bytes)) as f64 / objects.max(1) as f64
    );
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn query(bt: &Path, dir: &Path, runs: usize) {
    let token = admin(bt, dir, &["token", "create", "bench", "--scope", "query"]);
    let started = Instant::now();
    let server = Server::start(bt, dir);
    println!("startup: index of {} loaded in {:.2} s", dir.display(), started.elapsed().as_secs_f64());
    let mut c = Client { addr: server.1.clone(), conn: None };
    let rss_kib: u64 = std::fs::read_to_string(format!("/proc/{}/status", server.0.id()))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0);
    println!("memory: the node holds {:.0} MiB resident after loading its index", rss_kib as f64 / 1024.0);
    let month_ago = bt::store::now() - 30 * 86400;
    let queries = [
        (
            "list: group by fingerprint, count, range(timestamp), histogram(hostname), last 30 days",
            serde_json::json!({"filter": [{"timestamp": [["at-least", month_ago.to_string()]]}], "group": ["fingerprint"],
                "fold": {"timestamp": [["range"]], "hostname": [["histogram"]]}}),
            100.0,
        ),
        (
            "groups: count, first and last seen (from the per-group aggregates, no scan)",
            serde_json::json!({"group": ["fingerprint"], "fold": {"timestamp": [["range"]]}}),
            100.0,
        ),
        (
            "filter: classifiers contains null-dereference",
            serde_json::json!({"filter": [{"classifiers": [["contains", "null-dereference"]]}], "group": ["fingerprint"]}),
            50.0,
        ),
        (
            "filter: application equal app3",
            serde_json::json!({"filter": [{"application": [["equal", "app3"]]}], "group": ["fingerprint"]}),
            50.0,
        ),
        (
            "filter: both, selecting 50 objects",
            serde_json::json!({"filter": [{"classifiers": [["contains", "null-dereference"]], "application": [["equal", "app3"]]}], "select": ["hostname", "timestamp"], "limit": 50}),
            50.0,
        ),
    ];
    for (name, q, goal) in queries {
        let body = q.to_string();
        let mut wall = Vec::new();
        let mut engine = Vec::new();
        let mut objects = 0;
        for _ in 0..runs {
            let t = Instant::now();
            let (status, out) = c.post(&format!("/api/query?token={token}"), body.as_bytes());
            wall.push(t.elapsed().as_secs_f64() * 1000.0);
            assert_eq!(status, 200, "{}", String::from_utf8_lossy(&out));
            let v: serde_json::Value = serde_json::from_slice(&out).expect("json");
            engine.push(v["time_us"].as_f64().unwrap_or(0.0) / 1000.0);
            objects = v["objects"].as_u64().unwrap_or(0);
        }
        println!(
            "query: {name}: median {:.1} ms over HTTP ({:.1} ms in the engine), {objects} objects matched, goal < {goal} ms",
            median(wall),
            median(engine)
        );
    }
}

/// A live-looking snapshot of 1,000 threads: 997 idle workers with one stack, three
/// others, the faulting one with a few variables.
fn thousand_threads() -> Snapshot {
    let mut s = snapshot(7, 40);
    let idle = s.threads[1].frames.clone();
    s.threads.truncate(1);
    for t in 0..999 {
        let mut frames = idle.clone();
        if t < 2 {
            frames[0].function = Some(format!("lock_in_order_{t}"));
        }
        s.threads.push(Thread {
            tid: 100 + t,
            name: format!("worker-{t}"),
            state: "S".into(),
            frames,
            ..Default::default()
        });
    }
    s
}

fn console(bt: &Path, dir: &Path, runs: usize) {
    let submit = admin(bt, dir, &["token", "create", "bench", "--scope", "submit"]);
    // The password comes from stdin; `admin` gives none, so add it here.
    let mut add = Command::new(bt)
        .args(["coroner", "--data"])
        .arg(dir)
        .args(["user", "add", "bench-user", "--admin"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("user add");
    add.stdin.take().expect("stdin").write_all(b"bench-password\n").expect("password");
    let _ = add.wait();
    let server = Server::start(bt, dir);
    let mut c = Client { addr: server.1.clone(), conn: None };
    let (status, out) = c.post("/api/login", b"username=bench-user&password=bench-password");
    assert_eq!(status, 200, "login: {}", String::from_utf8_lossy(&out));
    let v: serde_json::Value = serde_json::from_slice(&out).expect("json");
    let auth = format!("Authorization: Bearer {}\r\n", v["token"].as_str().expect("token"));
    let (status, out) =
        c.post(&format!("/api/post?token={submit}&format=snapshot"), &thousand_threads().encode().expect("encode"));
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&out));
    let v: serde_json::Value = serde_json::from_slice(&out).expect("json");
    let many = v["object"].as_str().expect("object").to_string();
    let mut get = |path: &str| -> (f64, serde_json::Value) {
        let t = Instant::now();
        let (status, out) = c.send("GET", path, &auth, b"");
        let ms = t.elapsed().as_secs_f64() * 1000.0;
        assert_eq!(status, 200, "{path}: {}", String::from_utf8_lossy(&out));
        (ms, serde_json::from_slice(&out).expect("json"))
    };
    let (_, groups) = get("/api/console/groups?project=bench&age=all&limit=1");
    let top = groups["groups"][0]["fingerprint"].as_str().expect("a group").to_string();
    println!(
        "console: {} objects, {} groups in the last year",
        groups["objects"].as_u64().unwrap_or(0),
        groups["total"].as_u64().unwrap_or(0)
    );
    let calls = [
        ("overview (every project's activity)", "/api/console/overview".to_string(), 100.0),
        ("triage page: groups of 30 days, by count, 50 a page", "/api/console/groups?project=bench".to_string(), 100.0),
        ("triage page: sorted by last seen", "/api/console/groups?project=bench&sort=last".to_string(), 100.0),
        (
            "triage page: filtered (classifiers contains null)",
            "/api/console/groups?project=bench&filter=classifiers,contains,null".to_string(),
            100.0,
        ),
        ("triage page: page 100 (offset 5000)", "/api/console/groups?project=bench&offset=5000".to_string(), 100.0),
        ("group details", format!("/api/console/group?project=bench&fingerprint={top}"), 250.0),
        ("debugger: a 1,000-thread snapshot", format!("/api/console/object?project=bench&object={many}"), 500.0),
        (
            "debugger: variables of a frame",
            format!("/api/console/vars?project=bench&object={many}&thread=1&frame=0"),
            100.0,
        ),
    ];
    for (name, path, goal) in calls {
        let times: Vec<f64> = (0..runs).map(|_| get(&path).0).collect();
        println!("console: {name}: median {:.1} ms over HTTP, goal < {goal} ms", median(times));
    }
    if let Some(nm) = std::env::var_os("BENCH_NODE_PATH") {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("bench/console.js");
        let st = Command::new("node")
            .arg(script)
            .env("NODE_PATH", nm)
            .env("BASE", format!("http://{}", server.1))
            .env("FP", &top)
            .env("OBJECT", &many)
            .status()
            .expect("node");
        assert!(st.success(), "bench/console.js failed");
    }
}
