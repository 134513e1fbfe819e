//! The morgue wire protocol: the requests of the real backtrace-morgue 1.24.11
//! (captured once, `tests/data/morgue-1.24.11.json`; morgue is not in a registry)
//! replayed against a real `bt serve`, and the answers checked for every field
//! morgue reads — the morgue code that reads each is named next to the check.

mod server_common;

use base64::Engine;
use serde_json::{Value as Json, json};
use server_common::*;
use std::io::Write;

fn fixtures() -> Vec<Json> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/morgue-1.24.11.json");
    let doc: Json = serde_json::from_slice(&std::fs::read(&path).expect("fixture")).expect("fixture JSON");
    doc["requests"].as_array().expect("requests").clone()
}

/// The request's body with its report's timestamp moved to now (morgue's queries
/// filter on the last month of the capture day; a replay must fall in it).
fn body_of(r: &Json) -> Vec<u8> {
    let raw = base64::engine::general_purpose::STANDARD.decode(r["body_b64"].as_str().unwrap_or("")).expect("base64");
    let gz = r["headers"]["Content-Encoding"] == "gzip";
    let plain = if gz {
        let mut d = flate2::read::GzDecoder::new(raw.as_slice());
        let mut out = Vec::new();
        std::io::Read::read_to_end(&mut d, &mut out).expect("gunzip");
        out
    } else {
        raw
    };
    let Ok(mut v) = serde_json::from_slice::<Json>(&plain) else { return plain };
    if v.get("timestamp").is_some() && v.get("threads").is_some() {
        v["timestamp"] = json!(bt::store::now());
    }
    let text = v.to_string().into_bytes();
    if gz {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(&text).expect("gzip");
        e.finish().expect("gzip")
    } else {
        text
    }
}

#[test]
fn morgue_requests_get_the_answers_morgue_reads() {
    let data = scratch("morgue-wire");
    let submit = project_with_token(&data, "p", &["submit"]);
    let (code, _, e) = admin(&data, &["user", "add", "bob", "--admin"], Some("pw-123456789\n"));
    assert_eq!(code, 0, "{e}");
    let server = Server::start(&data, &["--universe", "acme"]);
    let port: u16 = server.addr.rsplit(':').next().and_then(|p| p.parse().ok()).expect("port");
    let mut token = String::new();
    let mut object = String::new();
    for r in fixtures() {
        let note = r["note"].as_str().unwrap_or("").to_string();
        let path = r["path"]
            .as_str()
            .expect("path")
            .replace("{TOKEN}", &token)
            .replace("{SUBMIT}", &submit)
            .replace("{OBJECT}", &object);
        let mut body = body_of(&r);
        if path == "/api/login" {
            body = b"username=bob&password=pw-123456789".to_vec();
        }
        body = String::from_utf8(body.clone()).map(|s| s.replace("{OBJECT}", &object).into_bytes()).unwrap_or(body);
        let headers: Vec<(String, String)> = r["headers"]
            .as_object()
            .map(|o| o.iter().map(|(k, v)| (k.clone(), v.as_str().unwrap_or("").to_string())).collect())
            .unwrap_or_default();
        let hdrs: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let resp = request(&server.addr, r["method"].as_str().unwrap_or("GET"), &path, &hdrs, &body);
        assert_eq!(resp.status, 200, "{note}: {}", resp.text());
        let is_json = resp.header("content-type").is_some_and(|c| c.starts_with("application/json"));
        let v: Json = if is_json { resp.json() } else { Json::Null };
        match () {
            _ if note.starts_with("morgue login") => {
                // lib/coroner.js login: `json.token`; bin/morgue.js saveConfig:
                // `config.endpoints.post[i].protocol/port`; `config.universes` keys and
                // `config.universe.name`, `config.user.uid` (coronerList, views).
                token = v["token"].as_str().expect("token").to_string();
                assert_eq!(v["endpoints"]["post"][0]["port"], port, "{v}");
                assert_eq!(v["endpoints"]["post"][0]["protocol"], "http");
                assert!(v["universes"]["acme"].is_object() && v["universe"]["name"] == "acme", "{v}");
                assert!(v["user"]["uid"].is_number(), "{v}");
            }
            _ if note.starts_with("morgue put") => {
                // bin/morgue.js coronerPut success_cb: `r.fingerprint`, `r.unique`, `r.object` (--printids).
                assert!(
                    v["fingerprint"].is_string() && v["unique"].is_boolean() && v["object"].is_string(),
                    "{note}: {v}"
                );
                object = v["object"].as_str().unwrap_or("").to_string();
            }
            _ if note.starts_with("morgue attachment add") => {
                // bin/morgue.js attachmentAdd: `r.attachment_name`, `r.object`, `r.attachment_id`.
                assert_eq!(v["attachment_name"], "r.json", "{v}");
                assert_eq!(v["object"], object.as_str());
                assert!(v["attachment_id"].is_string(), "{v}");
            }
            _ if note == "morgue list p" || note.starts_with("morgue list p --factor") => {
                // lib/crdb.js Response.unpack: `response.columns[j][0]`, `response.values[i]`
                // = [factor, [per column], count]; bin/morgue.js coronerList footer:
                // `_.user`, `_.universe`, `_.project`, `_.latency`; objectPrint:
                // `range(timestamp)` [lo, hi], `bin(timestamp)` bins.
                let cols = v["response"]["columns"].as_array().expect("columns");
                let vals = v["response"]["values"].as_array().expect("values");
                assert!(!vals.is_empty(), "{note}: no groups in {v}");
                for row in vals {
                    assert_eq!(row[1].as_array().map(Vec::len), Some(cols.len()), "{note}: {row}");
                    assert!(row[2].as_u64().is_some_and(|c| c > 0), "{note}: count in {row}");
                }
                let names: Vec<&str> = cols.iter().filter_map(|c| c[0].as_str()).collect();
                assert!(names.contains(&"range(timestamp)"), "{names:?}");
                let range = &vals[0][1][names.iter().position(|n| *n == "range(timestamp)").expect("range")];
                assert!(range[0].is_number() && range[1].is_number(), "{range}");
                if note.contains("--factor") {
                    for (name, check) in [
                        ("unique(fingerprint)", "one-element"),
                        ("head(application)", "one-element"),
                        ("min(timestamp)", "one-element"),
                    ] {
                        let i = names.iter().position(|n| *n == name).unwrap_or_else(|| panic!("{name} in {names:?}"));
                        assert_eq!(vals[0][1][i].as_array().map(Vec::len), Some(1), "{name}: {check} array");
                    }
                }
                assert_eq!(v["_"]["user"], "bob");
                assert_eq!(v["_"]["universe"], "acme");
                assert_eq!(v["_"]["project"], "p");
                assert!(v["_"]["latency"].is_string() && v["_"]["runtime"]["filter"]["rows"].is_number(), "{v}");
            }
            _ if note.starts_with("morgue list p --select") => {
                // lib/crdb.js unpackObject: `objects[i]` = [label, [[base, run?]…]];
                // `values` run-length encoded per column, [key, [value, run]…].
                let objs = &v["response"]["objects"];
                let ids = objs[0][1].as_array().expect("object runs");
                assert!(!ids.is_empty() && ids[0][0].is_number(), "{v}");
                let cols = v["response"]["columns"].as_array().expect("columns");
                let vals = v["response"]["values"].as_array().expect("values");
                assert_eq!(vals.len(), cols.len(), "{v}");
                let runs: u64 =
                    vals[0].as_array().expect("column")[1..].iter().map(|x| x[1].as_u64().unwrap_or(0)).sum();
                assert_eq!(runs as usize, ids.len(), "one value per object: {v}");
                if note.contains("owner,equal,alice") {
                    // What `morgue set … owner=alice` wrote, read back.
                    assert_eq!(vals[0][1][0], "alice", "{v}");
                }
            }
            _ if note.starts_with("morgue set p --table=issues") => {
                // bin/morgue.js coronerSet reads only success; bt says how many groups changed.
                assert!(v["response"]["issues"].as_u64().is_some_and(|n| n >= 1), "{v}");
            }
            _ if note.starts_with("morgue set") => {
                assert!(v["response"]["objects"].as_u64().is_some_and(|n| n >= 1), "{v}");
            }
            _ if note.starts_with("morgue list p --filter=fingerprint;issues;state") => {
                // The group `set` resolved is found by its triage state.
                let vals = v["response"]["values"].as_array().expect("values");
                assert!(!vals.is_empty(), "{v}");
            }
            _ if note.starts_with("morgue describe") => {
                // bin/morgue.js coronerDescribe: `describe[i].name`, `.custom`, `.format`, `.state`.
                let d = v["describe"].as_array().expect("describe");
                assert!(
                    d.iter().any(|a| a["name"] == "hostname" && a["custom"] == false && a["format"].is_string()),
                    "{v}"
                );
            }
            _ if note.starts_with("morgue get") => {
                assert!(!resp.body.is_empty(), "the report");
                assert!(resp.header("content-disposition").is_some());
            }
            _ if note.starts_with("morgue attachment list") => {
                // bin/morgue.js attachmentList: `attachments[i].id/name/size/content_type/inline`.
                let a = &v["attachments"][0];
                assert!(
                    a["id"].is_string()
                        && a["name"] == "r.json"
                        && a["size"].is_number()
                        && a["content_type"].is_string(),
                    "{v}"
                );
            }
            _ if note.starts_with("morgue attachment get") => {
                assert!(!resp.body.is_empty());
            }
            _ if note.starts_with("morgue delete") => {
                assert_eq!(v["deleted"], 1, "{v}");
            }
            _ => panic!("no check for fixture {note:?}"),
        }
    }
}
