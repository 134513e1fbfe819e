//! Crash consistency: while clients submit continuously, the real server process is
//! killed with SIGKILL at a random moment, then restarted on the same data. Every
//! acknowledged submission must be there, byte for byte; nothing half-written may be
//! visible (every listed object downloads and decodes, `bt coroner check` finds the
//! tables consistent, group counts add up). Several rounds, a few seconds each.

mod server_common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::json;
use server_common::*;

/// A small deterministic generator, seeded per round (xorshift).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

fn rounds(name: &str, n_rounds: usize, seed: u64) {
    let data = scratch(name);
    let token = project_with_token(&data, "crash", &["submit", "query", "object"]);
    // A pool of distinct snapshots and JSON reports; each submission sends one of them.
    let pool: Arc<Vec<(Vec<u8>, &str)>> = Arc::new(
        (0..40u64)
            .map(|i| {
                if i % 4 == 3 {
                    (json_report(&format!("f{}", i % 5), "jhost", 1_700_000_000 + i), "json")
                } else {
                    (snapshot((i % 6) as usize, &format!("h{}", i % 3), i).encode().expect("encode"), "snapshot")
                }
            })
            .collect(),
    );
    let mut acked_total: Vec<(String, usize)> = Vec::new();
    let mut rng = Rng(seed | 1);
    for round in 0..n_rounds {
        let server = Server::start(&data, &[]);
        let addr = server.addr.clone();
        let stop = Arc::new(AtomicBool::new(false));
        let acked: Arc<Mutex<Vec<(String, usize)>>> = Arc::new(Mutex::new(Vec::new()));
        let mut clients = Vec::new();
        for c in 0..4usize {
            let (addr, stop, acked, pool, token) =
                (addr.clone(), stop.clone(), acked.clone(), pool.clone(), token.clone());
            clients.push(std::thread::spawn(move || {
                let mut k = c * 7 + round;
                let deadline = Instant::now() + Duration::from_secs(20);
                while !stop.load(Ordering::SeqCst) && Instant::now() < deadline {
                    k = (k + 1) % pool.len();
                    let (body, format) = &pool[k];
                    let ct = if *format == "json" { "application/json" } else { "application/octet-stream" };
                    match try_request(
                        &addr,
                        "POST",
                        &format!("/api/post?token={token}&format={format}&client={c}"),
                        &[("Content-Type", ct)],
                        body,
                    ) {
                        Ok(r) if r.status == 200 => {
                            let id = r.json()["_rxid"].as_str().expect("rxid").to_string();
                            acked.lock().expect("lock").push((id, k));
                        }
                        Ok(r) => panic!("submission refused: {} {}", r.status, r.text()),
                        // The server died under us: this one was not acknowledged.
                        Err(_) => {
                            if stop.load(Ordering::SeqCst) {
                                break;
                            }
                            std::thread::sleep(Duration::from_millis(5));
                        }
                    }
                }
            }));
        }
        // Let it work, then pull the plug at a random moment.
        std::thread::sleep(Duration::from_millis(400 + rng.next() % 900));
        let mut server = server;
        server.kill9();
        stop.store(true, Ordering::SeqCst);
        for c in clients {
            c.join().expect("client thread");
        }
        let acked_now = acked.lock().expect("lock").clone();
        assert!(
            !acked_now.is_empty(),
            "round {round}: nothing was acknowledged before the kill; log:\n{}",
            server.log_text()
        );
        eprintln!("round {round}: {} acknowledged before the kill", acked_now.len());
        acked_total.extend(acked_now);
        drop(server);

        // Restart on the same data: every acknowledged object, byte for byte.
        let server = Server::start(&data, &[]);
        for (id, k) in &acked_total {
            let r = server.get(&format!("/api/get?token={token}&object={id}"));
            assert_eq!(r.status, 200, "round {round}: acknowledged object {id} is missing: {}", r.text());
            assert!(r.body == pool[*k].0, "round {round}: object {id} differs from what was sent");
        }
        // Everything visible is whole: listed objects download and decode, groups add up.
        let out = server.query(&token, json!({"select": ["fingerprint", "timestamp"], "limit": 100000}));
        let rows = out["rows"].as_array().expect("rows");
        assert!(
            rows.len() >= acked_total.len(),
            "round {round}: {} listed < {} acknowledged",
            rows.len(),
            acked_total.len()
        );
        for row in rows {
            let id = row[0].as_str().expect("id");
            assert!(
                row[1][0].is_string() && row[1][1].is_i64(),
                "round {round}: object {id} lacks its built-in attributes: {row}"
            );
            let r = server.get(&format!("/api/get?token={token}&object={id}"));
            assert_eq!(r.status, 200, "round {round}: listed object {id} cannot be downloaded");
            if r.header("content-type") == Some("application/json") {
                serde_json::from_slice::<serde_json::Value>(&r.body).unwrap_or_else(|e| panic!("object {id}: {e}"));
            } else {
                bt::snapshot::Snapshot::decode(&r.body).unwrap_or_else(|e| panic!("object {id}: {e}"));
            }
        }
        let groups = server.query(&token, json!({"limit": 100000}));
        let sum: u64 = groups["rows"].as_array().expect("rows").iter().map(|g| g[2].as_u64().expect("count")).sum();
        assert_eq!(sum as usize, rows.len(), "round {round}: group counts add up to the objects");
        drop(server);
        let (code, out, err) = admin(&data, &["check"], None);
        assert_eq!(code, 0, "round {round}: check after kill -9:\n{out}{err}");
    }
}

#[test]
fn kill_9_during_submissions_loses_nothing_acknowledged_a() {
    rounds("crash-a", 3, 0x9e37_79b9);
}

#[test]
fn kill_9_during_submissions_loses_nothing_acknowledged_b() {
    rounds(
        "crash-b",
        3,
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or(7),
    );
}
