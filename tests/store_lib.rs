//! The store as a library (`bt::store::Store`): group commit under concurrency,
//! `unique`, attribute typing and widening, group aggregates across deletions,
//! the index rebuilt from disk equal to the one built by ingest, and the
//! invariants of STORE.md after each step.

use std::sync::Arc;

use bt::store::query::Query;
use bt::store::{Format, Store, StoreError, Submission};
use serde_json::json;

fn dir(name: &str) -> std::path::PathBuf {
    let d =
        std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("storelib-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

fn report(func: &str, attrs: serde_json::Value, ts: u64) -> Submission {
    let body = json!({"timestamp": ts, "threads": {"1": {"fault": true, "stack": [{"funcName": func}, {"funcName": "main"}]}}, "attributes": attrs});
    Submission {
        project: "p".into(),
        format: Format::Json,
        body: body.to_string().into_bytes(),
        attributes: vec![],
        attachments: vec![],
    }
}

fn q(store: &Store, v: serde_json::Value) -> serde_json::Value {
    store.query("p", &Query::from_json(&v).expect("query")).expect("run").json
}

#[test]
fn concurrent_submissions_get_distinct_ids_and_exact_groups() {
    let d = dir("concurrent");
    let store = Arc::new(Store::open(&d).expect("open"));
    store.create_project("p").expect("project");
    let threads: Vec<_> = (0..8)
        .map(|t| {
            let store = store.clone();
            std::thread::spawn(move || {
                (0..100)
                    .map(|i| {
                        store
                            .submit(report(&format!("f{}", (t + i) % 5), json!({"host": format!("h{t}")}), 1000 + i))
                            .expect("submit")
                    })
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let acks: Vec<_> = threads.into_iter().flat_map(|t| t.join().expect("thread")).collect();
    let mut ids: Vec<u64> = acks.iter().map(|a| a.rxid).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 800);
    assert_eq!(acks.iter().filter(|a| a.unique).count(), 5, "one first submission per group");
    let out = q(&store, json!({"fold": {"timestamp": [["range"]]}}));
    assert_eq!(out["rows"].as_array().expect("rows").len(), 5);
    assert!(out["rows"].as_array().expect("rows").iter().all(|r| r[2] == 160), "{out}");
    assert_eq!(store.check().expect("check"), Vec::<String>::new());
}

#[test]
fn a_crash_sent_again_under_its_coresnap_uuid_is_stored_once() {
    // The collector resends a crash whose answer it lost (killed, timed out): the
    // resend, concurrent or later, from another batch or the same one, answers with
    // the first object's id and stores nothing.
    let d = dir("idempotent");
    let store = Arc::new(Store::open(&d).expect("open"));
    store.create_project("p").expect("project");
    let threads: Vec<_> = (0..8)
        .map(|t| {
            let store = store.clone();
            std::thread::spawn(move || {
                let mut acks = Vec::new();
                for i in 0..20 {
                    let key = format!("crash-{}", i % 4);
                    acks.push((
                        key.clone(),
                        store.submit(report("f", json!({"coresnap.uuid": key}), 100 + t)).expect("submit"),
                    ));
                }
                acks
            })
        })
        .collect();
    let acks: Vec<_> = threads.into_iter().flat_map(|t| t.join().expect("thread")).collect();
    for key in ["crash-0", "crash-1", "crash-2", "crash-3"] {
        let mut ids: Vec<u64> = acks.iter().filter(|(k, _)| k == key).map(|(_, a)| a.rxid).collect();
        assert_eq!(ids.len(), 40);
        ids.dedup();
        assert_eq!(ids.len(), 1, "{key}: one object for 40 submissions");
    }
    assert_eq!(acks.iter().filter(|(_, a)| a.unique).count(), 1, "the group is new once");
    assert_eq!(acks.iter().filter(|(_, a)| a.warnings.iter().any(|w| w.contains("already stored"))).count(), 156);
    assert_eq!(q(&store, json!({"group": ["*"]}))["objects"], 4);
    assert_eq!(q(&store, json!({}))["rows"][0][2], 4, "the group counts each crash once");
    // Other submissions are not affected; neither is a key after its object was deleted.
    let plain1 = store.submit(report("f", json!({}), 1)).expect("submit");
    let plain2 = store.submit(report("f", json!({}), 1)).expect("submit");
    assert_ne!(plain1.rxid, plain2.rxid);
    let first = acks.iter().find(|(k, _)| k == "crash-0").expect("crash-0").1.rxid;
    store.close();
    drop(store);
    let store = Store::open(&d).expect("reopen");
    let again = store.submit(report("f", json!({"coresnap.uuid": "crash-0"}), 7)).expect("submit");
    assert_eq!(again.rxid, first, "the key holds across a restart");
    assert_eq!(store.delete("p", vec![first]).expect("delete"), 1);
    let after = store.submit(report("f", json!({"coresnap.uuid": "crash-0"}), 7)).expect("submit");
    assert!(after.rxid > first, "a deleted object's key may be stored again");
    let third = store.submit(report("f", json!({"coresnap.uuid": "crash-0"}), 8)).expect("submit");
    assert_eq!(third.rxid, after.rxid, "and then answers for the new object");
    assert_eq!(q(&store, json!({"group": ["*"]}))["objects"], 6);
    assert_eq!(store.check().expect("check"), Vec::<String>::new());
}

#[test]
fn attributes_widen_from_integers_to_strings_and_survive_reload() {
    let d = dir("widen");
    let before;
    {
        let store = Store::open(&d).expect("open");
        store.create_project("p").expect("project");
        store.submit(report("a", json!({"build": 41}), 1)).expect("submit");
        store.submit(report("a", json!({"build": "42"}), 2)).expect("submit");
        let out = q(&store, json!({"select": ["build"], "filter": [{"build": [["at-least", 42]]}]}));
        assert_eq!(out["columns"][0], json!(["build", "integer"]));
        assert_eq!(out["rows"][0][1][0], 42);
        store.submit(report("b", json!({"build": "beta"}), 3)).expect("submit");
        let out = q(&store, json!({"select": ["build"], "order": [{"name": "object", "ordering": "ascending"}]}));
        assert_eq!(out["columns"][0], json!(["build", "string"]));
        assert_eq!(
            out["rows"].as_array().expect("rows").iter().map(|r| r[1][0].clone()).collect::<Vec<_>>(),
            vec![json!("41"), json!("42"), json!("beta")]
        );
        store.submit(report("b", json!({"build": 7}), 4)).expect("submit");
        before = q(&store, json!({"select": ["build", "fingerprint", "timestamp", "callstack"], "limit": 100}));
        assert_eq!(store.check().expect("check"), Vec::<String>::new());
    }
    let store = Store::open(&d).expect("reopen");
    let mut after = q(&store, json!({"select": ["build", "fingerprint", "timestamp", "callstack"], "limit": 100}));
    after["time_us"] = before["time_us"].clone();
    assert_eq!(after, before, "the index rebuilt from disk answers like the one built by ingest");
    let out = q(&store, json!({"filter": [{"build": [["equal", "7"]]}], "select": ["build"]}));
    assert_eq!(out["rows"][0][1][0], "7");
}

#[test]
fn set_changes_stored_objects_widens_and_survives_reload() {
    let d = dir("set");
    let before;
    {
        let store = Store::open(&d).expect("open");
        store.create_project("p").expect("project");
        for (i, host) in ["h1", "h2", "h1"].iter().enumerate() {
            store.submit(report("a", json!({"hostname": host, "build": 41}), i as u64 + 1)).expect("submit");
        }
        let q1 = Query::from_json(&json!({"filter": [{"hostname": [["equal", "h1"]]}]})).expect("query");
        let ids = store.select_ids("p", &q1).expect("select");
        assert_eq!(ids.len(), 2);
        let n = store
            .set_attributes("p", ids, vec![("owner".into(), "alice".into()), ("build".into(), "beta".into())])
            .expect("set");
        assert_eq!(n, 2);
        let out = q(
            &store,
            json!({"select": ["hostname", "owner", "build"], "order": [{"name": "object", "ordering": "ascending"}]}),
        );
        let rows: Vec<_> = out["rows"].as_array().expect("rows").iter().map(|r| r[1].clone()).collect();
        assert_eq!(
            rows,
            vec![json!(["h1", "alice", "beta"]), json!(["h2", null, "41"]), json!(["h1", "alice", "beta"])]
        );
        for bad in ["fingerprint", "timestamp", "bt.warnings", "odd name"] {
            let e = store.set_attributes("p", vec![1], vec![(bad.into(), "x".into())]).expect_err(bad);
            assert!(matches!(e, StoreError::BadInput(_)), "{bad}: {e}");
        }
        assert_eq!(store.set_attributes("p", vec![99], vec![("owner".into(), "x".into())]).expect("none"), 0);
        before = q(&store, json!({"select": ["hostname", "owner", "build"], "limit": 100}));
        assert_eq!(store.check().expect("check"), Vec::<String>::new());
    }
    let store = Store::open(&d).expect("reopen");
    let mut after = q(&store, json!({"select": ["hostname", "owner", "build"], "limit": 100}));
    after["time_us"] = before["time_us"].clone();
    assert_eq!(after, before, "what set wrote is on disk");
}

#[test]
fn deletions_update_groups_and_keep_ids_unique() {
    let d = dir("delete");
    let store = Store::open(&d).expect("open");
    store.create_project("p").expect("project");
    let a1 = store.submit(report("a", json!({}), 10)).expect("submit");
    let a2 = store.submit(report("a", json!({}), 20)).expect("submit");
    let b = store.submit(report("b", json!({}), 30)).expect("submit");
    assert!(a1.unique && !a2.unique && b.unique);
    assert_eq!(store.delete("p", vec![a1.rxid, 999]).expect("delete"), 1);
    let out =
        q(&store, json!({"fold": {"timestamp": [["min"]]}, "order": [{"name": ";group", "ordering": "ascending"}]}));
    let row = out["rows"]
        .as_array()
        .expect("rows")
        .iter()
        .find(|r| r[0] == a2.fingerprint.as_str())
        .expect("group a")
        .clone();
    assert_eq!(row[2], 1);
    assert_eq!(row[1][0], 20);
    assert_eq!(store.delete("p", vec![b.rxid]).expect("delete"), 1);
    assert_eq!(q(&store, json!({}))["rows"].as_array().expect("rows").len(), 1, "an emptied group disappears");
    assert!(matches!(store.get("p", b.rxid), Err(StoreError::NotFound(_))));
    // A deleted group comes back as new; ids are never reused.
    let b2 = store.submit(report("b", json!({}), 40)).expect("submit");
    assert!(b2.unique);
    assert!(b2.rxid > b.rxid);
    assert_eq!(store.check().expect("check"), Vec::<String>::new());
    // Unknown projects and bad input are refused without side effects.
    let mut s = report("c", json!({}), 1);
    s.project = "nope".into();
    assert!(matches!(store.submit(s), Err(StoreError::NoProject(_))));
    let mut s = report("c", json!({}), 1);
    s.body = b"{".to_vec();
    assert!(matches!(store.submit(s), Err(StoreError::BadInput(_))));
    assert_eq!(q(&store, json!({"group": ["*"]}))["objects"], 2);
}

#[test]
fn a_second_process_cannot_open_a_busy_store() {
    let d = dir("busy");
    let _store = Store::open(&d).expect("open");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_bt"))
        .args(["coroner", "--data"])
        .arg(&d)
        .args(["project", "list"])
        .output()
        .expect("bt");
    assert_eq!(out.status.code(), Some(1));
    // One line that says what holds the store and how to change it while it runs.
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("is held by a running bt serve") && err.contains("/api/admin/projects"), "{err}");
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
}

#[test]
fn project_rules_override_the_defaults() {
    let d = dir("rules");
    std::fs::create_dir_all(d.join("rules/p")).expect("rules dir");
    std::fs::write(
        d.join("rules/p/50-ours.rules"),
        "# our crash handlers are not the cause\nfunction:'(boom|bang)' => skip\n",
    )
    .expect("rules");
    let store = Store::open(&d).expect("open");
    store.create_project("p").expect("project");
    store.create_project("q").expect("project");
    let sub = |project: &str, func: &str| {
        let mut s = report(func, json!({}), 1);
        s.project = project.to_string();
        store.submit(s).expect("submit")
    };
    let (p1, p2) = (sub("p", "boom"), sub("p", "bang"));
    assert_eq!(p1.fingerprint, p2.fingerprint, "the project rule skips both crash sites");
    assert!(!p2.unique);
    let (q1, q2) = (sub("q", "boom"), sub("q", "bang"));
    assert_ne!(q1.fingerprint, q2.fingerprint, "the defaults keep them apart");
    assert_ne!(p1.fingerprint, q1.fingerprint);
}

/// A store written by bt with schema 3 (redb's typed tables, before the catalog):
/// made by `bt coroner project create`, `token create`, `user add`, five JSON
/// reports through `bt serve`, `morgue set … state=resolved --until version:1.3`
/// and a comment. Opening it migrates every table in one transaction; the data,
/// the token, the triage and its history read back, and ingest goes on from there.
#[test]
fn a_schema_3_store_opens_migrated_with_everything_in_it() {
    let d = dir("schema3");
    std::fs::create_dir_all(&d).expect("dir");
    std::fs::copy(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/store-schema3.redb"), d.join("store.redb"))
        .expect("copy");
    for round in 0..2 {
        let store = Store::open(&d).expect("open");
        assert_eq!(store.check().expect("check"), Vec::<String>::new(), "round {round}");
        let out = store
            .query("myapp", &Query::from_json(&json!({"fold": {"timestamp": [["range"]]}})).expect("query"))
            .expect("run")
            .json;
        let rows = out["rows"].as_array().expect("rows");
        let mut counts: Vec<i64> = rows.iter().map(|r| r[2].as_i64().expect("count")).collect();
        counts.sort();
        assert_eq!(counts, vec![2, 3 + round as i64], "{out}");
        let principal = store
            .authenticate("d54708dd238de26a1ad13125b0d6dc996cbd58aef88676c2")
            .expect("authenticate")
            .expect("the old token still opens the store");
        assert!(format!("{principal:?}").contains("myapp"), "{principal:?}");
        let (_, group, triage, history) = store.triage_of("myapp", "680801d4").expect("group");
        assert_eq!(group.count, 3 + round as u64);
        assert!(!history.is_empty(), "the resolution's history line survives");
        if round == 0 {
            assert_eq!(format!("{:?}", triage.state), "Resolved", "{triage:?}");
            assert!(store.get("myapp", 5).expect("object 5").bytes.starts_with(b"{"), "the JSON report survives");
            // A crash of a later version reopens the resolved group, as it would have.
            let body = json!({"timestamp": 1_700_000_900u64, "lang": "c", "agent": "test", "agentVersion": "1.0",
                "mainThread": "1", "threads": {"1": {"name": "main", "fault": true, "stack": [
                {"funcName": "parse_header", "library": "app", "line": "12"},
                {"funcName": "dispatch", "library": "app"}, {"funcName": "main", "library": "app"}]}},
                "attributes": {"hostname": "web-9", "build": 42, "version": "1.9"}, "classifiers": ["null-dereference"]});
            let ack = store
                .submit(Submission {
                    project: "myapp".into(),
                    format: Format::Json,
                    body: body.to_string().into_bytes(),
                    attributes: vec![],
                    attachments: vec![],
                })
                .expect("submit");
            assert_eq!(ack.rxid, 6, "ids go on from the old counter");
            assert_eq!(ack.fingerprint, "680801d4d3283af8c8845e29ffc0a1d9");
        } else {
            assert!(triage.regressed, "{triage:?}");
        }
    }
}
