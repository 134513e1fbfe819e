//! `bt serve` beyond one machine: several nodes on one PostgreSQL catalog (issue 21).
//! A real PostgreSQL (Debian's, installed by `make deps`) runs on loopback in a
//! temporary directory, started and stopped by these tests; real `bt serve` nodes
//! share it. Scenarios: ingest through two nodes and query either; kill -9 of a node
//! under load from 8 clients loses nothing acknowledged; a restarted node catches up;
//! PostgreSQL down gives 503 and nothing half-written, and service returns with it.

mod server_common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use server_common::*;

/// A PostgreSQL server of its own, on 127.0.0.1 and a free port.
struct Postgres {
    bin: PathBuf,
    dir: PathBuf,
    port: u16,
}

fn pg_bin() -> PathBuf {
    let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|d| d.flatten().map(|e| e.path().join("bin")).filter(|b| b.join("initdb").exists()).collect())
        .unwrap_or_default();
    found.sort();
    found.pop().expect("PostgreSQL's initdb under /usr/lib/postgresql/*/bin (make deps installs postgresql)")
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port()
}

/// PostgreSQL refuses to run as root: as root, its commands run as `postgres`.
fn as_pg(cmd: &Path) -> Command {
    if (unsafe { libc::geteuid() } == 0) {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(cmd);
        c
    } else {
        Command::new(cmd)
    }
}

impl Postgres {
    fn start(name: &str) -> Postgres {
        let bin = pg_bin();
        let dir = scratch(&format!("pg-{name}"));
        if (unsafe { libc::geteuid() } == 0) {
            let st = Command::new("chown").args(["-R", "postgres"]).arg(&dir).status().expect("chown");
            assert!(st.success());
        }
        let out = as_pg(&bin.join("initdb"))
            .arg("-D")
            .arg(dir.join("data"))
            .args(["-A", "trust", "-U", "bt", "--no-sync"])
            .output()
            .expect("initdb");
        assert!(out.status.success(), "initdb: {}", String::from_utf8_lossy(&out.stderr));
        let pg = Postgres { bin, dir, port: free_port() };
        pg.up();
        let out = Command::new("psql")
            .args([
                "-h",
                "127.0.0.1",
                "-p",
                &pg.port.to_string(),
                "-U",
                "bt",
                "-d",
                "postgres",
                "-c",
                "CREATE DATABASE bt",
            ])
            .output()
            .expect("psql");
        assert!(out.status.success(), "create database: {}", String::from_utf8_lossy(&out.stderr));
        pg
    }

    fn up(&self) {
        let opts = format!("-p {} -k {} -c listen_addresses=127.0.0.1", self.port, self.dir.display());
        let out = as_pg(&self.bin.join("pg_ctl"))
            .arg("-D")
            .arg(self.dir.join("data"))
            .args(["-o", &opts, "-l"])
            .arg(self.dir.join("log"))
            .args(["-w", "start"])
            .output()
            .expect("pg_ctl start");
        assert!(out.status.success(), "pg_ctl start: {}", String::from_utf8_lossy(&out.stderr));
    }

    fn down(&self) {
        let _ = as_pg(&self.bin.join("pg_ctl"))
            .arg("-D")
            .arg(self.dir.join("data"))
            .args(["-m", "fast", "-w", "stop"])
            .output();
    }

    fn url(&self) -> String {
        format!("postgres://bt@127.0.0.1:{}/bt", self.port)
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        self.down();
    }
}

fn admin_pg(data: &Path, url: &str, args: &[&str]) -> String {
    let mut all = vec!["--catalog", url];
    all.extend_from_slice(args);
    let (code, out, err) = admin(data, &all, None);
    assert_eq!(code, 0, "bt coroner {args:?}: {err}");
    out.trim().to_string()
}

fn node(data: &Path, url: &str) -> Server {
    Server::start(data, &["--catalog", url])
}

fn submit(s: &Server, token: &str, n: u64) -> Option<(u64, Vec<u8>)> {
    let body = json_report(&format!("f{}", n % 7), &format!("host-{n}"), 1_700_000_000 + n);
    let r = try_request(
        &s.addr,
        "POST",
        &format!("/api/post?token={token}&format=json"),
        &[("Content-Type", "application/json")],
        &body,
    )
    .ok()?;
    if r.status != 200 {
        return None;
    }
    let id = u64::from_str_radix(r.json()["_rxid"].as_str()?, 16).ok()?;
    Some((id, body))
}

fn count(s: &Server, token: &str) -> i64 {
    let out = s.query(token, serde_json::json!({"fold": {"timestamp": [["range"]]}}));
    out["rows"].as_array().map(|rows| rows.iter().map(|r| r[2].as_i64().unwrap_or(0)).sum()).unwrap_or(-1)
}

fn wait_count(s: &Server, token: &str, want: i64) -> i64 {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let c = count(s, token);
        if c == want || Instant::now() > deadline {
            return c;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn two_nodes_share_one_catalog_and_see_each_others_objects() {
    let pg = Postgres::start("two");
    let url = pg.url();
    let (d1, d2) = (scratch("node1"), scratch("node2"));
    admin_pg(&d1, &url, &["project", "create", "p"]);
    let token = admin_pg(&d1, &url, &["token", "create", "p", "--scope", "submit,query,object"]);
    let n1 = node(&d1, &url);
    let n2 = node(&d2, &url);
    let nodes = Arc::new([n1, n2]);
    let clients: Vec<_> = (0..8u64)
        .map(|c| {
            let nodes = nodes.clone();
            let token = token.clone();
            std::thread::spawn(move || {
                (0..25u64)
                    .map(|i| submit(&nodes[((c + i) % 2) as usize], &token, c * 100 + i).expect("acknowledged"))
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let acked: Vec<(u64, Vec<u8>)> = clients.into_iter().flat_map(|c| c.join().expect("client")).collect();
    let mut ids: Vec<u64> = acked.iter().map(|a| a.0).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 200, "ids are never reused across nodes");
    let t0 = Instant::now();
    for n in nodes.iter() {
        assert_eq!(wait_count(n, &token, 200), 200, "every node sees every acknowledged object");
    }
    let seen_after = t0.elapsed();
    assert!(seen_after < Duration::from_secs(1), "seen by both nodes {seen_after:?} after the last acknowledgement");
    let g1 = nodes[0].query(&token, serde_json::json!({"fold": {"hostname": [["unique"]]}}))["rows"].clone();
    let g2 = nodes[1].query(&token, serde_json::json!({"fold": {"hostname": [["unique"]]}}))["rows"].clone();
    assert_eq!(g1, g2, "the same groups on both nodes");
    assert_eq!(g1.as_array().map(Vec::len), Some(7));
    for (id, body) in acked.iter().step_by(7) {
        for n in nodes.iter() {
            let r = n.get(&format!("/api/get?token={token}&object={id:x}"));
            assert_eq!(r.status, 200);
            assert_eq!(&r.body, body, "object {id:x} byte for byte from {}", n.addr);
        }
    }
}

#[test]
fn kill_9_of_a_node_under_load_loses_nothing_acknowledged() {
    let pg = Postgres::start("kill");
    let url = pg.url();
    let (d1, d2) = (scratch("kill1"), scratch("kill2"));
    admin_pg(&d1, &url, &["project", "create", "p"]);
    let token = admin_pg(&d1, &url, &["token", "create", "p", "--scope", "submit,query,object"]);
    let stable = Arc::new(node(&d2, &url));
    let mut victim = node(&d1, &url);
    let acked = Arc::new(std::sync::Mutex::new(Vec::new()));
    let mut seq = 0u64;
    for round in 0..10 {
        let stop = Arc::new(AtomicBool::new(false));
        let addr = Arc::new(victim.addr.clone());
        let clients: Vec<_> = (0..8u64)
            .map(|c| {
                let (stop, acked, stable, addr, token) =
                    (stop.clone(), acked.clone(), stable.clone(), addr.clone(), token.clone());
                let base = seq + c * 10_000;
                std::thread::spawn(move || {
                    let mut i = 0;
                    while !stop.load(Ordering::Relaxed) {
                        let n = base + i;
                        i += 1;
                        // Half the clients write to the node that dies.
                        let got = if c % 2 == 0 {
                            let body = json_report(&format!("f{}", n % 7), &format!("host-{n}"), 1_700_000_000 + n);
                            try_request(
                                &addr,
                                "POST",
                                &format!("/api/post?token={token}&format=json"),
                                &[("Content-Type", "application/json")],
                                &body,
                            )
                            .ok()
                            .filter(|r| r.status == 200)
                            .and_then(|r| u64::from_str_radix(r.json()["_rxid"].as_str()?, 16).ok())
                            .map(|id| (id, body))
                        } else {
                            submit(&stable, &token, n)
                        };
                        if let Some(a) = got {
                            acked.lock().expect("acked").push(a);
                        }
                    }
                })
            })
            .collect();
        std::thread::sleep(Duration::from_millis(150 + 37 * round));
        victim.kill9();
        stop.store(true, Ordering::Relaxed);
        for c in clients {
            c.join().expect("client");
        }
        seq += 100_000;
        victim = node(&d1, &url);
    }
    let acked = acked.lock().expect("acked").clone();
    assert!(acked.len() > 100, "the load was real: {} acknowledged", acked.len());
    let n = acked.len() as i64;
    for s in [&victim, &*stable] {
        let c = wait_count(s, &token, n);
        assert!(c >= n, "{} sees {c} objects, {n} were acknowledged", s.addr);
    }
    for (id, body) in &acked {
        for s in [&victim, &*stable] {
            let r = s.get(&format!("/api/get?token={token}&object={id:x}"));
            assert_eq!(r.status, 200, "acknowledged object {id:x} on {}", s.addr);
            assert_eq!(&r.body, body, "object {id:x} byte for byte on {}", s.addr);
        }
    }
}

#[test]
fn postgres_down_is_503_and_service_returns_with_it() {
    let pg = Postgres::start("down");
    let url = pg.url();
    let d = scratch("down");
    admin_pg(&d, &url, &["project", "create", "p"]);
    let token = admin_pg(&d, &url, &["token", "create", "p", "--scope", "submit,query,object"]);
    let s = node(&d, &url);
    assert!(submit(&s, &token, 1).is_some());
    pg.down();
    let body = json_report("f", "h", 1_700_000_000);
    let r = s.post(&format!("/api/post?token={token}&format=json"), "application/json", &body);
    assert_eq!(r.status, 503, "{}", r.text());
    pg.up();
    let deadline = Instant::now() + Duration::from_secs(10);
    let back = loop {
        if let Some(a) = submit(&s, &token, 2) {
            break a;
        }
        assert!(Instant::now() < deadline, "service did not return; log:\n{}", s.log_text());
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(wait_count(&s, &token, 2), 2, "the refused submission left nothing");
    assert!(back.0 >= 2);
}
