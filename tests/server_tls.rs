//! `bt serve --tls-cert --tls-key` (cargo feature `tls`): submissions and queries
//! over HTTPS with curl as the client, and a plain-HTTP client on the TLS port does
//! not disturb the server.
#![cfg(feature = "tls")]

mod server_common;

use std::process::Command;

use server_common::*;

#[test]
fn https_submit_and_query() {
    let data = scratch("tls");
    let token = project_with_token(&data, "p", &["submit", "query"]);
    let cert = data.with_extension("cert.pem");
    let key = data.with_extension("key.pem");
    let out = Command::new("openssl")
        .args(["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "1"])
        .args(["-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1", "-keyout"])
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .expect("openssl");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let cert_s = cert.to_string_lossy().into_owned();
    let key_s = key.to_string_lossy().into_owned();
    let server = Server::start(&data, &["--tls-cert", &cert_s, "--tls-key", &key_s]);
    // A plain-HTTP client on the TLS port gets nothing useful, and the server goes on.
    let _ = try_request(&server.addr, "GET", "/api/health", &[], b"");
    let curl = |args: &[&str]| {
        let out = Command::new("curl")
            .args(["-sS", "--max-time", "20", "--cacert", &cert_s])
            .args(args)
            .output()
            .expect("curl");
        assert!(out.status.success(), "curl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        serde_json::from_slice::<serde_json::Value>(&out.stdout).expect("json")
    };
    let base = format!("https://{}", server.addr);
    assert_eq!(curl(&[&format!("{base}/api/health")])["response"], "ok");
    let report = String::from_utf8(json_report("tls_crash", "secure-host", 1_700_000_000)).expect("utf8");
    let ack = curl(&[
        "-H",
        "Content-Type: application/json",
        "--data-binary",
        &report,
        &format!("{base}/api/post?token={token}&format=json"),
    ]);
    assert_eq!(ack["response"], "ok", "{ack}");
    let out = curl(&["--data-binary", r#"{"select": ["hostname"]}"#, &format!("{base}/api/query?token={token}")]);
    assert_eq!(out["rows"][0][1][0], "secure-host", "{out}");
}

#[test]
fn missing_or_bad_certificates_are_clear_errors() {
    let data = scratch("tls-bad");
    let bogus = data.with_extension("none.pem");
    let out = Command::new(bt_bin())
        .arg("serve")
        .arg("--data")
        .arg(&data)
        .args(["--listen", "127.0.0.1:0", "--tls-cert"])
        .arg(&bogus)
        .arg("--tls-key")
        .arg(&bogus)
        .output()
        .expect("bt serve");
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("TLS") && err.contains("none.pem"), "{err}");
}
