//! The web console in a real browser: a real `bt serve` on loopback, seeded
//! through the real ingest endpoint with snapshots of really crashed example
//! programs (and a JSON report with markup in its attributes and function name),
//! walked in headless Chromium by tests/console/walk.js (playwright-core from
//! npm, installed by `make sdk`, driving Debian's /usr/bin/chromium, installed
//! by `make deps`): login (also a wrong password), every view, triage, CSRF,
//! hostile values, settings, a member's view, a phone-width window, logout; and
//! an expired session. Screenshots are saved under the build directory
//! (`console-shots`).

mod common;
mod server_common;

use serde_json::json;
use server_common::{Server, admin, project_with_token, scratch};
use std::path::{Path, PathBuf};
use std::process::Command;

/// Where `make sdk` installed playwright-core (`make test` passes it as BT_SDK).
fn node_modules() -> PathBuf {
    let dir = std::env::var_os("BT_SDK").map(PathBuf::from).unwrap_or_else(|| {
        panic!("BT_SDK is not set: run the tests with make test (make sdk installs playwright-core from npm)")
    });
    let nm = dir.join("node_modules");
    assert!(nm.join("playwright-core").exists(), "{}: no playwright-core (make sdk)", nm.display());
    assert!(Path::new("/usr/bin/chromium").exists(), "no /usr/bin/chromium (make deps installs Debian's chromium)");
    nm
}

/// The snapshot of a core, in a scratch file.
fn snapshot_file(name: &str, exe: &Path, core: &Path) -> PathBuf {
    let out = common::scratch_dir(&format!("bt-console-{name}")).join("snap.bt");
    common::snapshot_of_core(exe, core, &out, &[]);
    out
}

fn submit(server: &Server, token: &str, format: &str, attrs: &str, body: &[u8]) -> serde_json::Value {
    let r = server.post(&format!("/api/post?token={token}&format={format}&{attrs}"), "application/octet-stream", body);
    assert_eq!(r.status, 200, "{}", r.text());
    r.json()
}

fn run_walk(server: &Server, mode: &str, seed: &serde_json::Value) {
    let shots = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("console-shots");
    std::fs::create_dir_all(&shots).expect("shots dir");
    let out = Command::new("node")
        .arg(common::repo_root().join("tests/console/walk.js"))
        .env("NODE_PATH", node_modules())
        .env("BASE", format!("http://{}", server.addr))
        .env("SHOTS", &shots)
        .env("SEED", seed.to_string())
        .env("MODE", mode)
        .output()
        .expect("node");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "the console walk ({mode}) failed:\n{stdout}\n{}\nserver log:\n{}",
        String::from_utf8_lossy(&out.stderr),
        server.log_text()
    );
    eprintln!("{stdout}");
}

#[test]
fn the_console_in_a_real_browser() {
    let _ = node_modules();
    let data = scratch("console");
    let token = project_with_token(&data, "demo", &["submit"]);
    let (code, _, e) = admin(&data, &["project", "create", "other"], None);
    assert_eq!(code, 0, "{e}");
    for args in [&["user", "add", "admin", "--admin"][..], &["user", "add", "mem", "--project", "other"][..]] {
        let (code, _, e) = admin(&data, args, Some("pw-123456789\n"));
        assert_eq!(code, 0, "{e}");
    }

    // Real crashes: the variables example (-O0), the threads example, a live
    // process of 1,000 threads.
    let dir = common::scratch_dir("bt-cores-console-vars");
    let vars = common::build_and_crash(
        &dir,
        "console_vars",
        "gcc",
        &["-O0", "-g"],
        &common::repo_root().join("examples/variables/vars.c"),
    );
    let vars_snap = std::fs::read(snapshot_file("vars", &vars.exe, &vars.core)).expect("vars snapshot");
    let threads = common::crash("c_threads");
    let threads_snap = std::fs::read(snapshot_file("threads", &threads.exe, &threads.core)).expect("snapshot");
    let many_file = common::scratch_dir("bt-console-many").join("many.bt");
    {
        let p = common::ManyThreads::start(1000);
        let o = common::bt(&["ptrace", &p.child.id().to_string(), "-o", &many_file.to_string_lossy()]);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }
    let many_snap = std::fs::read(&many_file).expect("many snapshot");

    let server = Server::start(&data, &[]);
    let mut vars_fp = String::new();
    let mut vars_object = String::new();
    for (host, version) in [("host-a", "1.0"), ("host-a", "1.1"), ("host-b", "1.0")] {
        let a = submit(&server, &token, "snapshot", &format!("hostname={host}&version={version}"), &vars_snap);
        vars_fp = a["fingerprint"].as_str().expect("fingerprint").to_string();
        vars_object = a["object"].as_str().expect("object").to_string();
    }
    submit(&server, &token, "snapshot", "hostname=host-b&version=1.0", &threads_snap);
    let many = submit(&server, &token, "snapshot", "hostname=host-c&version=1.0", &many_snap);
    let hostile = json!({
        "uuid": "a1b2c3d4-0000-4000-8000-000000000001",
        "timestamp": std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_secs(),
        "lang": "c", "agent": "test", "agentVersion": "1",
        "threads": {"1": {"fault": true, "stack": [{"funcName": "<img src=x onerror=window.__xss=2>"}, {"funcName": "main"}]}},
        "attributes": {"hostname": "host-d", "note": "<script>window.__xss=1</script>", "version": "1.0"},
    });
    let xss = submit(&server, &token, "json", "", hostile.to_string().as_bytes());
    let seed = json!({
        "crashes": 6,
        "groups": 4,
        "vars_fingerprint": vars_fp,
        "vars_object": vars_object,
        "vars_count": 3,
        "vars_hosts": 2,
        "host_b_groups": 2,
        "hosts": ["host-a", "host-b", "host-c", "host-d"],
        "many_object": many["object"],
        "xss_object": xss["object"],
        "xss_fingerprint": xss["fingerprint"],
    });
    run_walk(&server, "walk", &seed);
    drop(server);

    // Sessions expire: a server whose sessions last 2 seconds.
    let server = Server::start(&data, &["--session-ttl", "2s"]);
    run_walk(&server, "expired", &seed);
}

#[test]
fn pages_and_the_admin_api_refuse_what_they_must() {
    let data = scratch("console-refuse");
    project_with_token(&data, "demo", &["submit"]);
    let (code, _, e) = admin(&data, &["user", "add", "admin", "--admin"], Some("pw-123456789\n"));
    assert_eq!(code, 0, "{e}");
    let server = Server::start(&data, &[]);
    // Anonymous page requests go to the login page, keeping where they were going.
    let r = server.get("/p/demo/g/abc?attr=version");
    assert_eq!(r.status, 303);
    assert_eq!(r.header("location"), Some("/login?next=/p/demo/g/abc%3Fattr%3Dversion"));
    // The login page escapes what it echoes; a foreign `next` becomes `/`.
    let r = server.get("/login?next=%2F%22%3E%3Cscript%3Ex%3C%2Fscript%3E");
    assert_eq!(r.status, 200);
    assert!(!r.text().contains("<script>x"), "{}", r.text());
    assert!(r.header("content-security-policy").is_some_and(|c| c.contains("script-src 'self'")));
    let login = |next: &str| {
        let body = format!("username=admin&password=pw-123456789&next={next}");
        server.post("/login", "application/x-www-form-urlencoded", body.as_bytes())
    };
    for (next, to) in [("%2Fp%2Fdemo", "/p/demo"), ("%2F%2Fevil.example", "/"), ("https%3A%2F%2Fevil.example", "/")] {
        let r = login(next);
        assert_eq!(r.status, 303, "{}", r.text());
        assert_eq!(r.header("location"), Some(to), "next={next}");
    }
    let r = login("/");
    let cookie = r.header("set-cookie").expect("cookie").to_string();
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict") && cookie.contains("Max-Age="),
        "{cookie}"
    );
    let session = cookie.split(';').next().expect("pair").to_string();
    // The admin API: no credential 401, garbage 400, a good change 200.
    let admin_post = |body: &str, with_csrf: bool| {
        let sess = session.trim_start_matches("bt_session=").to_string();
        let csrf = bt::store::auth::csrf_token(&sess);
        let mut h = vec![("Cookie", session.as_str()), ("Content-Type", "application/json")];
        if with_csrf {
            h.push(("X-Bt-Csrf", csrf.as_str()));
        }
        server_common::request(&server.addr, "POST", "/api/admin/projects", &h, body.as_bytes())
    };
    assert_eq!(server.post("/api/admin/projects", "application/json", b"{}").status, 401);
    assert_eq!(admin_post(r#"{"create":"x"}"#, false).status, 403, "no CSRF token");
    assert_eq!(admin_post("not json", true).status, 400);
    assert_eq!(admin_post(r#"{"create":"../etc"}"#, true).status, 400);
    assert_eq!(admin_post(r#"{"retention":{"project":"demo","max_age":"forever"}}"#, true).status, 400);
    let ok = admin_post(r#"{"create":"made-over-http"}"#, true);
    assert_eq!(ok.status, 200, "{}", ok.text());
    assert!(ok.text().contains("made-over-http"));
    // Unknown console endpoints and methods.
    assert_eq!(
        server_common::request(&server.addr, "GET", "/api/console/nope", &[("Cookie", &session)], b"").status,
        404
    );
    assert_eq!(
        server_common::request(&server.addr, "POST", "/api/console/me", &[("Cookie", &session)], b"").status,
        405
    );
    assert_eq!(server.get("/p/").status, 404);
}
