//! `bt morgue` over https (cargo feature `tls`): a `bt serve --tls-cert` with a
//! self-signed certificate, trusted through `SSL_CERT_FILE`; without it the
//! certificate is refused in one line.
#![cfg(feature = "tls")]

mod server_common;

use std::process::Command;

use server_common::*;

#[test]
fn https_put_and_list_with_a_private_ca() {
    let data = scratch("morgue-tls");
    let token = project_with_token(&data, "p", &["submit", "query"]);
    // A private CA and a server certificate it signed (webpki refuses a CA certificate
    // used as the server's own).
    let file = |ext: &str| data.with_extension(ext);
    let (ca_key, ca, key, csr, cert, ext) =
        (file("ca.key"), file("ca.pem"), file("key.pem"), file("csr"), file("cert.pem"), file("ext"));
    std::fs::write(&ext, "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n").expect("extfile");
    let openssl = |args: &[&std::ffi::OsStr]| {
        let out = Command::new("openssl").args(args).output().expect("openssl");
        assert!(out.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    };
    let ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];
    let os = |s: &'static str| std::ffi::OsStr::new(s);
    let mut a: Vec<&std::ffi::OsStr> =
        vec![os("req"), os("-x509"), os("-days"), os("1"), os("-subj"), os("/CN=bt test CA")];
    a.extend(ec.iter().map(|s| os(s)));
    a.extend([os("-keyout"), ca_key.as_os_str(), os("-out"), ca.as_os_str()]);
    openssl(&a);
    let mut a: Vec<&std::ffi::OsStr> = vec![os("req"), os("-subj"), os("/CN=127.0.0.1")];
    a.extend(ec.iter().map(|s| os(s)));
    a.extend([os("-keyout"), key.as_os_str(), os("-out"), csr.as_os_str()]);
    openssl(&a);
    openssl(&[
        os("x509"),
        os("-req"),
        os("-in"),
        csr.as_os_str(),
        os("-CA"),
        ca.as_os_str(),
        os("-CAkey"),
        ca_key.as_os_str(),
        os("-CAcreateserial"),
        os("-days"),
        os("1"),
        os("-extfile"),
        ext.as_os_str(),
        os("-out"),
        cert.as_os_str(),
    ]);
    let ca_s = ca.to_string_lossy().into_owned();
    let cert_s = cert.to_string_lossy().into_owned();
    let key_s = key.to_string_lossy().into_owned();
    let server = Server::start(&data, &["--tls-cert", &cert_s, "--tls-key", &key_s]);
    let url = format!("https://{}", server.addr);
    let sample = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/snapshot-v1.bt");
    let morgue = |args: &[&str], ca: Option<&str>| {
        let mut c = Command::new(bt_bin());
        c.arg("morgue").args(args).args(["--url", &url, "--token", &token]);
        c.env("XDG_CONFIG_HOME", data.with_extension("config")).env_remove("SSL_CERT_FILE");
        if let Some(ca) = ca {
            c.env("SSL_CERT_FILE", ca);
        }
        c.output().expect("bt morgue")
    };
    let o = morgue(&["put", "p", sample, "--json"], Some(&ca_s));
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let o = morgue(&["list", "p", "--json"], Some(&ca_s));
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
    assert_eq!(v["objects"], 1);
    // The bundled roots do not know this certificate.
    let o = morgue(&["list", "p"], None);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains(&format!("TLS with {url} failed")) && err.contains("SSL_CERT_FILE"), "{err}");
}
