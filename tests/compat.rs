//! Submissions as Backtrace users' tools send them, against a real `bt serve`: curl
//! exactly as the README writes it, Python's urllib, gzip and deflate bodies (also
//! chunked) with the size limit applied to the inflated size, submit-style URLs
//! (`/{project-or-universe}/{token}/{format}`), and attachments sent after their
//! report.

mod server_common;

use serde_json::json;
use server_common::*;
use std::io::Write;
use std::path::Path;
use std::process::Command;

fn curl(args: &[&str]) -> (u16, serde_json::Value) {
    let out = Command::new("curl")
        .args(["-s", "-o", "-", "-w", "\n%{http_code}"])
        .args(args)
        .output()
        .expect("curl (make deps installs it)");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", "0"));
    (code.trim().parse().unwrap_or(0), serde_json::from_str(body).unwrap_or(serde_json::Value::Null))
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(bytes).expect("gzip");
    e.finish().expect("gzip")
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> String {
    let p = dir.join(name);
    std::fs::write(&p, bytes).expect("write");
    p.to_string_lossy().into_owned()
}

#[test]
fn curl_urllib_gzip_submit_urls_and_late_attachments() {
    let data = scratch("compat");
    let token = project_with_token(&data, "p", &["submit", "query", "object"]);
    let server = Server::start(&data, &["--max-submission", "2097152"]);
    let host = &server.addr;
    let snap = snapshot(1, "h", 1).encode().expect("encode");
    let crash_bt = write(&data, "crash.bt", &snap);

    // The README's command, as written.
    let (code, v) = curl(&[
        "--data-binary",
        &format!("@{crash_bt}"),
        &format!("http://{host}/api/post?token={token}&format=snapshot&version=1.2"),
    ]);
    assert_eq!(code, 200, "{v}");
    assert_eq!(v["response"], "ok");
    assert_eq!(v["object"], v["_rxid"]);
    let first = v["object"].as_str().expect("object").to_string();

    // gzip, raw and chunked; deflate: stored as the original bytes.
    let gz = write(&data, "crash.bt.gz", &gzip(&snap));
    for extra in [vec![], vec!["-H", "Transfer-Encoding: chunked"]] {
        let mut args = vec!["-H", "Content-Encoding: gzip", "--data-binary"];
        let at = format!("@{gz}");
        args.push(&at);
        args.extend(extra.iter().copied());
        let url = format!("http://{host}/post?token={token}&format=snapshot");
        args.push(&url);
        let (code, v) = curl(&args);
        assert_eq!(code, 200, "gzip {extra:?}: {v}");
        let id = v["object"].as_str().expect("object");
        let got = server.get(&format!("/api/get?token={token}&object={id}"));
        assert_eq!(got.body, snap, "the inflated snapshot is stored as sent");
    }
    let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
    z.write_all(&snap).expect("zlib");
    let deflated = write(&data, "crash.bt.z", &z.finish().expect("zlib"));
    let (code, v) = curl(&[
        "-H",
        "Content-Encoding: deflate",
        "--data-binary",
        &format!("@{deflated}"),
        &format!("http://{host}/post?token={token}&format=snapshot"),
    ]);
    assert_eq!(code, 200, "deflate: {v}");

    // A gzip bomb: 100 MB of zeros in 100 KB, over the 2 MB limit once inflated.
    let bomb = write(&data, "bomb.gz", &gzip(&vec![0u8; 100 << 20]));
    let (code, v) = curl(&[
        "-H",
        "Content-Encoding: gzip",
        "--data-binary",
        &format!("@{bomb}"),
        &format!("http://{host}/post?token={token}&format=snapshot"),
    ]);
    assert_eq!(code, 413, "{v}");
    assert!(v["error"]["message"].as_str().is_some_and(|m| m.contains("inflates to more than")), "{v}");
    let (code, v) = curl(&[
        "-H",
        "Content-Encoding: gzip",
        "--data-binary",
        &format!("@{crash_bt}"),
        &format!("http://{host}/post?token={token}&format=snapshot"),
    ]);
    assert_eq!(code, 400, "not gzip at all: {v}");
    let (code, _) = curl(&[
        "-H",
        "Content-Encoding: br",
        "--data-binary",
        &format!("@{crash_bt}"),
        &format!("http://{host}/post?token={token}&format=snapshot"),
    ]);
    assert_eq!(code, 415);

    // Submit-style URLs: /PROJECT/TOKEN/FORMAT, and /UNIVERSE/TOKEN/FORMAT (the token's project).
    let report = write(&data, "report.json", &json_report("submit_style", "h", 1_700_000_000));
    for first_segment in ["p", "my-universe"] {
        let (code, v) = curl(&[
            "-H",
            "Content-Type: application/json",
            "--data-binary",
            &format!("@{report}"),
            &format!("http://{host}/{first_segment}/{token}/json"),
        ]);
        assert_eq!(code, 200, "/{first_segment}/TOKEN/json: {v}");
    }
    let (code, _) = curl(&["--data-binary", &format!("@{report}"), &format!("http://{host}/p/not-a-token/json")]);
    assert_eq!(code, 401);

    // Python's urllib sends application/x-www-form-urlencoded for a raw body.
    let py = Command::new("python3")
        .arg("-c")
        .arg(
            "import sys, urllib.request, json\n\
             body = open(sys.argv[1], 'rb').read()\n\
             r = urllib.request.urlopen(urllib.request.Request(sys.argv[2], data=body))\n\
             print(json.load(r)['object'])",
        )
        .arg(&crash_bt)
        .arg(format!("http://{host}/api/post?token={token}&format=snapshot"))
        .output()
        .expect("python3");
    assert!(py.status.success(), "{}", String::from_utf8_lossy(&py.stderr));

    // An attachment sent after its report, as @backtrace/node sends it.
    let log = write(&data, "app.log", b"line 1\nline 2\n");
    let (code, v) = curl(&[
        "--data-binary",
        &format!("@{log}"),
        &format!("http://{host}/api/post?token={token}&object={first}&attachment_name=app.log"),
    ]);
    assert_eq!(code, 200, "{v}");
    let got = server.get(&format!("/api/get?token={token}&object={first}&attachment=app.log"));
    assert_eq!(got.status, 200);
    assert_eq!(got.body, b"line 1\nline 2\n");
    let (code, _) = curl(&[
        "--data-binary",
        &format!("@{log}"),
        &format!("http://{host}/api/post?token={token}&object=ffff&attachment_name=app.log"),
    ]);
    assert_eq!(code, 404, "no such object");

    // Everything accepted above is stored once; the bomb and the refusals are not.
    let out = server.query(&token, json!({"group": ["*"]}));
    assert_eq!(out["objects"], 7, "{out}");
}

/// morgue's `login` posts a form and saves the answer as its config; it reads
/// `token` (coroner.ts login), `config.user.uid`, `config.universe.id/name`,
/// `config.universes` (its keys name the default universe) and
/// `config.endpoints.post[i].{protocol,port}` (bin/morgue.ts saveConfig).
#[test]
fn login_answers_in_the_shape_morgue_saves() {
    let data = scratch("compat-login");
    let (code, _, e) = admin(&data, &["project", "create", "p"], None);
    assert_eq!(code, 0, "{e}");
    let (code, _, e) = admin(&data, &["user", "add", "bob"], Some("a-long-password\n"));
    assert_eq!(code, 0, "{e}");
    let server = Server::start(&data, &["--universe", "acme"]);
    let port: u16 = server.addr.rsplit(':').next().and_then(|p| p.parse().ok()).expect("port");
    let (code, v) =
        curl(&["-d", "username=bob&password=a-long-password", &format!("http://{}/api/login", server.addr)]);
    assert_eq!(code, 200, "{v}");
    assert!(v["token"].as_str().is_some_and(|t| !t.is_empty()), "{v}");
    assert!(v["user"]["uid"].is_number() && v["user"]["username"] == "bob", "{v}");
    assert_eq!(v["universe"]["name"], "acme");
    assert!(v["universe"]["id"].is_number(), "{v}");
    assert!(v["universes"]["acme"].is_object(), "{v}");
    assert_eq!(v["endpoints"]["post"][0]["protocol"], "http");
    assert_eq!(v["endpoints"]["post"][0]["port"], port);
    // The token works as a session, with a universe parameter as morgue adds it.
    let token = v["token"].as_str().unwrap_or("");
    let r = server.post(&format!("/api/query?project=p&universe=acme&token={token}"), "application/json", b"{}");
    assert_eq!(r.status, 200, "{}", r.text());
}
