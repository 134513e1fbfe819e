//! The crash-reporting SDKs Backtrace users already ship, installed from the
//! registries by `make sdk` (backtracepython 0.4.3 from PyPI, @backtrace/node 0.8.0
//! and backtrace-node 1.2.0 from npm), run for real against `bt serve` on loopback:
//! handled errors, messages, attachments, attributes with odd names, both URL
//! styles (`/post?format=json&token=T` and `/{project}/{token}/json`), uncaught
//! exceptions (through the Node SDK's offline database after a crash while the
//! server was unreachable); then the objects are checked through the query API.

mod server_common;

use serde_json::json;
use server_common::*;
use std::path::PathBuf;
use std::process::Command;

/// Where `make sdk` installed the SDKs (`make test` passes it as BT_SDK).
fn sdk_dir() -> PathBuf {
    let dir = std::env::var_os("BT_SDK").map(PathBuf::from).unwrap_or_else(|| {
        panic!("BT_SDK is not set: run the tests with make test (make sdk installs the SDKs from PyPI and npm)")
    });
    assert!(dir.join("venv/bin/python").exists(), "{}: no venv (make sdk)", dir.display());
    assert!(dir.join("node_modules/@backtrace/node").exists(), "{}: no @backtrace/node (make sdk)", dir.display());
    dir
}

fn script(name: &str) -> String {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/sdk").join(name).to_string_lossy().into_owned()
}

fn run(cmd: &mut Command, what: &str) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{what}: {e}"));
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{what} failed:\n{text}\n{}", String::from_utf8_lossy(&out.stderr));
    text
}

/// The objects whose `sdk` attribute is `sdk`, each as {"object", attribute: value…}.
fn objects_of(server: &Server, token: &str, sdk: &str) -> Vec<serde_json::Value> {
    let cols = ["odd_name", "version", "bt.warnings"];
    let q = json!({"filter": [{"sdk": [["equal", sdk]]}], "select": cols});
    let out = server.query(token, q);
    // Rows are [object id, [values in the order selected]].
    let rows = out["rows"].as_array().cloned().unwrap_or_else(|| panic!("no rows in {out}"));
    rows.iter()
        .map(|r| {
            let mut m = serde_json::Map::new();
            m.insert("object".into(), r[0].clone());
            for (i, c) in cols.iter().enumerate() {
                m.insert(c.to_string(), r[1][i].clone());
            }
            serde_json::Value::Object(m)
        })
        .collect()
}

fn attachments(server: &Server, token: &str, object: &str) -> Vec<String> {
    let r = server.get(&format!("/api/list?token={token}&object={object}"));
    assert_eq!(r.status, 200, "{}", r.text());
    r.json()["attachments"]
        .as_array()
        .map(|a| a.iter().filter_map(|x| x["name"].as_str().map(str::to_string)).collect())
        .unwrap_or_default()
}

#[test]
fn python_and_node_sdks_submit_to_bt_serve() {
    let sdk = sdk_dir();
    let data = scratch("sdk");
    let token = project_with_token(&data, "p", &["submit", "query", "object"]);
    let server = Server::start(&data, &[]);
    let base = format!("http://{}", server.addr);

    // backtracepython: endpoint + token, then a submit-style URL.
    let py = sdk.join("venv/bin/python");
    run(Command::new(&py).arg(script("python_sdk.py")).arg(&base).arg(&token), "backtracepython (token)");
    run(Command::new(&py).arg(script("python_sdk.py")).arg(format!("{base}/p/{token}/json")), "backtracepython (URL)");
    let rows = objects_of(&server, &token, "python");
    assert_eq!(rows.len(), 4, "two exceptions and two messages: {rows:?}");
    for r in &rows {
        assert_eq!(r["odd_name"], "x", "the odd name is renamed, not lost: {r}");
        assert!(r["bt.warnings"].as_str().is_some_and(|w| w.contains("\"odd name\" renamed to odd_name")), "{r}");
        assert_eq!(r["version"], "1.0");
        let id = r["object"].as_str().expect("object");
        assert!(attachments(&server, &token, id).iter().any(|a| a == "python_sdk.py"), "attachment of {id}");
    }

    // @backtrace/node: both URL styles; it reads the answer's fields.
    let node_path = sdk.join("node_modules");
    for url in [format!("{base}/post?format=json&token={token}"), format!("{base}/p/{token}/json")] {
        let out = run(
            Command::new("node").arg(script("node_sdk.js")).arg(&url).env("NODE_PATH", &node_path),
            "@backtrace/node",
        );
        let v: serde_json::Value =
            serde_json::from_str(out.lines().last().unwrap_or("")).unwrap_or_else(|e| panic!("{e}: {out}"));
        assert_eq!(v["statuses"], json!(["Ok", "Ok"]), "{v}");
        assert_eq!(v["answer"]["object"], v["answer"]["_rxid"], "{v}");
    }
    let rows = objects_of(&server, &token, "node");
    assert_eq!(rows.len(), 4, "{rows:?}");
    for r in &rows {
        assert_eq!(r["odd_name"], "x", "{r}");
        let id = r["object"].as_str().expect("object");
        assert!(attachments(&server, &token, id).iter().any(|a| a == "note.txt"), "attachment of {id}: {r}");
    }

    // backtrace-node 1.x.
    let out = run(
        Command::new("node").arg(script("node_legacy_sdk.js")).arg(&base).arg(&token).env("NODE_PATH", &node_path),
        "backtrace-node",
    );
    // BacktraceResultStatus.Ok is 4 in backtrace-node 1.x.
    assert!(out.contains("sent {\"status\":4"), "{out}");
    let rows = objects_of(&server, &token, "node-legacy");
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0]["odd_name"], "y");
}

#[test]
fn uncaught_exceptions_reach_bt_serve_also_after_being_offline() {
    let sdk = sdk_dir();
    let data = scratch("sdk-uncaught");
    let token = project_with_token(&data, "p", &["submit", "query", "object"]);
    let server = Server::start(&data, &[]);
    let base = format!("http://{}", server.addr);
    let select = |sdk: &str, cols: serde_json::Value| {
        let out = server.query(&token, json!({"filter": [{"sdk": [["equal", sdk]]}], "select": cols}));
        out["rows"].as_array().cloned().unwrap_or_default()
    };

    // backtracepython's exception hook reports the exception that ends the script.
    let py = sdk.join("venv/bin/python");
    let out = Command::new(&py).arg(script("python_uncaught.py")).arg(&base).arg(&token).output().expect("python");
    assert!(!out.status.success(), "the script ends with its uncaught exception");
    let rows = select("python-uncaught", json!(["classifiers", "error.message"]));
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0][1], json!(["RuntimeError", "uncaught error from python"]));

    // @backtrace/node with its offline database: the crash happens while the
    // server cannot be reached; the next run of the application sends it.
    let node_path = sdk.join("node_modules");
    let db = data.join("node-db");
    let dead = format!("http://127.0.0.1:1/post?format=json&token={token}");
    let out = Command::new("node")
        .arg(script("node_uncaught.js"))
        .arg(&dead)
        .arg(&db)
        .arg("crash")
        .env("NODE_PATH", &node_path)
        .output()
        .expect("node");
    assert!(!out.status.success(), "the process dies of its uncaught exception");
    let kept = std::fs::read_dir(&db).expect("database").filter_map(Result::ok);
    assert_eq!(kept.filter(|e| e.file_name().to_string_lossy().ends_with("-record.json")).count(), 1, "kept offline");
    assert!(select("node-uncaught", json!(["classifiers"])).is_empty());
    let live = format!("{base}/post?format=json&token={token}");
    run(
        Command::new("node")
            .arg(script("node_uncaught.js"))
            .arg(&live)
            .arg(&db)
            .arg("resend")
            .env("NODE_PATH", &node_path),
        "@backtrace/node (resend)",
    );
    let rows = select("node-uncaught", json!(["error.type", "errorOrigin", "application.version"]));
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0][1], json!(["Unhandled exception", "uncaughtException", "3.0"]));
}
