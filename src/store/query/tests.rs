//! Data-driven tests of the query engine over small in-memory projects.

use super::fold::groups_from_aggregates;
use super::*;
use crate::store::schema::{GroupRecord, ProjectRecord, Val};

/// A small project: (timestamp, hostname, fingerprint, pid) per object.
fn project(rows: &[(i64, &str, &str, i64)]) -> ProjectIndex {
    let rec =
        ProjectRecord { id: 1, created: 0, max_age: 0, max_bytes: 0, next_object: 1, next_string: 0, next_attr: 0 };
    let mut p = ProjectIndex::new("p", rec);
    let ts = p.add_attr("timestamp", AttrType::Timestamp);
    let host = p.add_attr("hostname", AttrType::Str);
    let fp = p.add_attr("fingerprint", AttrType::Str);
    let pid = p.add_attr("pid", AttrType::Int);
    for (i, (t, h, f, n)) in rows.iter().enumerate() {
        let hs = p.string_id(h).unwrap_or_else(|| p.add_string(h));
        let fs = p.string_id(f).unwrap_or_else(|| p.add_string(f));
        p.push_row(i as u64 + 1, 10, &[(ts, Val::I(*t)), (host, Val::S(hs)), (fp, Val::S(fs)), (pid, Val::I(*n))]);
    }
    // The group aggregates, as ingest maintains them.
    let mut fps: Vec<String> = rows.iter().map(|r| r.2.to_string()).collect();
    fps.sort();
    fps.dedup();
    let blank = GroupRecord {
        count: 1,
        first_seen: 0,
        last_seen: 0,
        first_object: 0,
        last_object: 0,
        callstack: String::new(),
        classifiers: String::new(),
    };
    for f in &fps {
        p.groups.insert(f.clone(), blank.clone());
    }
    for (f, g) in p.recompute_groups(&fps) {
        if let Some(g) = g {
            p.groups.insert(f, g);
        }
    }
    p
}

fn q(v: Json) -> Query {
    Query::from_json(&v).unwrap()
}

fn sample() -> ProjectIndex {
    project(&[(100, "a", "f1", 1), (200, "b", "f1", 2), (300, "a", "f2", 3), (400, "c", "f1", 4)])
}

#[test]
fn default_query_groups_by_fingerprint_by_count() {
    let out = run(&sample(), &q(json!({}))).unwrap();
    assert_eq!(out.json["rows"], json!([["f1", [], 3], ["f2", [], 1]]));
}

#[test]
fn folds() {
    let out = run(&sample(), &q(json!({"fold": {"timestamp": [["range"], ["min"], ["bin", 3]], "hostname": [["histogram"], ["unique"], ["head"], ["tail"], ["distribution", 1]], "pid": [["sum"], ["mean"], ["count"]]}}))).unwrap();
    let f1 = &out.json["rows"][0];
    assert_eq!(f1[0], "f1");
    // Fold columns come in attribute name order, then in the order asked.
    assert_eq!(out.json["columns"][0], json!(["hostname", "histogram"]));
    let r = &f1[1];
    assert_eq!(r[0], json!([["a", 1], ["b", 1], ["c", 1]]));
    assert_eq!(r[1], json!(3));
    assert_eq!(r[2], json!("a"));
    assert_eq!(r[3], json!("c"));
    assert_eq!(r[4], json!({"keys": 3, "tail": 2, "vals": [["a", 1]]}));
    assert_eq!(r[5], json!(7.0));
    assert_eq!(r[6], json!(7.0 / 3.0));
    assert_eq!(r[7], json!(3));
    assert_eq!(r[8], json!([100, 400]));
    assert_eq!(r[9], json!(100));
    assert_eq!(r[10], json!([[100, 200, 1], [200, 300, 1], [300, 400, 1]]));
}

#[test]
fn bins_over_a_fixed_range_line_up_across_groups() {
    let out = run(&sample(), &q(json!({"fold": {"timestamp": [["bin", 4, 0, 400]]}}))).unwrap();
    // f1 has 100, 200, 400; f2 has 300. Buckets [0,100) [100,200) [200,300) [300,400].
    assert_eq!(out.json["rows"][0][1][0], json!([[0, 100, 0], [100, 200, 1], [200, 300, 1], [300, 400, 1]]));
    assert_eq!(out.json["rows"][1][1][0], json!([[0, 100, 0], [100, 200, 0], [200, 300, 0], [300, 400, 1]]));
    let out = run(&sample(), &q(json!({"fold": {"timestamp": [["bin", 2, 150, 250]]}}))).unwrap();
    assert_eq!(out.json["rows"][0][1][0], json!([[150, 200, 0], [200, 250, 1]]), "outside the range: not counted");
    assert!(Query::from_json(&json!({"fold": {"timestamp": [["bin", 2, 5, 5]]}})).is_err());
}

#[test]
fn the_aggregates_answer_like_a_scan() {
    let p = sample();
    let fast = q(json!({"fold": {"timestamp": [["range"], ["min"], ["max"]]}}));
    assert!(groups_from_aggregates(&p, &fast, "fingerprint", &[]).is_some());
    // A filter that keeps everything forces the scan.
    let scan =
        q(json!({"fold": {"timestamp": [["range"], ["min"], ["max"]]}, "filter": [{"timestamp": [["is-set"]]}]}));
    let (mut a, mut b) = (run(&p, &fast).unwrap().json, run(&p, &scan).unwrap().json);
    a["time_us"] = json!(0);
    b["time_us"] = json!(0);
    assert_eq!(a, b);
    assert_eq!(a["rows"][0], json!(["f1", [[100, 400], 100, 400], 3]));
}

#[test]
fn filters() {
    let p = sample();
    let cases: &[(Json, &[u64])] = &[
        (json!({"hostname": [["equal", "a"]]}), &[1, 3]),
        (json!({"hostname": [["not-equal", "a"]]}), &[2, 4]),
        (json!({"fingerprint": [["contains", "2"]]}), &[3]),
        (json!({"fingerprint": [["not-contains", "2"]]}), &[1, 2, 4]),
        (json!({"hostname": [["regular-expression", "^[ab]$"]]}), &[1, 2, 3]),
        (json!({"hostname": [["inverse-regular-expression", "^[ab]$"]]}), &[4]),
        (json!({"timestamp": [["at-least", "200."]]}), &[2, 3, 4]),
        (json!({"timestamp": [["greater-than", 200]]}), &[3, 4]),
        (json!({"timestamp": [["at-most", "200"]]}), &[1, 2]),
        (json!({"timestamp": [["less-than", 200], ["at-least", 100]]}), &[1]),
        (json!({"pid": [["is-set"]]}), &[1, 2, 3, 4]),
        (json!({"nothing": [["is-not-set"]]}), &[1, 2, 3, 4]),
        (json!({"nothing": [["equal", "x"]]}), &[]),
        (json!({"pid": [["equal", "3"]]}), &[3]),
        (json!({"pid": [["contains", "4"]]}), &[4]),
        (json!([{"hostname": [["equal", "a"]]}, {"pid": [["at-least", 2]]}]), &[3]),
    ];
    for (f, want) in cases {
        let ids = matching_ids(&p, &q(json!({"filter": f}))).unwrap();
        assert_eq!(&ids, want, "{f}");
    }
}

#[test]
fn select_order_limit_offset() {
    let p = sample();
    let out = run(&p, &q(json!({"select": ["hostname", "timestamp", "object"], "order": [{"name": "timestamp", "ordering": "ascending"}], "limit": 2, "offset": 1}))).unwrap();
    assert_eq!(out.json["rows"], json!([["2", ["b", 200, "2"]], ["3", ["a", 300, "3"]]]));
    assert_eq!(out.json["total"], json!(4));
    assert_eq!(out.json["columns"], json!([["hostname", "string"], ["timestamp", "timestamp"], ["object", "object"]]));
}

#[test]
fn group_by_other_attributes_and_order_by_fold() {
    let p = sample();
    let out = run(&p, &q(json!({"group": ["hostname"], "fold": {"timestamp": [["max"]]}, "order": [{"name": "timestamp;max", "ordering": "descending"}]}))).unwrap();
    let factors: Vec<&Json> = out.json["rows"].as_array().unwrap().iter().map(|r| &r[0]).collect();
    assert_eq!(factors, vec!["c", "a", "b"]);
    let out = run(&p, &q(json!({"group": ["pid"], "order": [{"name": ";group", "ordering": "ascending"}]}))).unwrap();
    assert_eq!(out.json["rows"][0][0], json!(1));
}

#[test]
fn bad_queries_say_why() {
    for (v, want) in [
        (json!({"filter": [{"a": [["like", "x"]]}]}), "unknown filter operator"),
        (json!({"fold": {"a": [["median"]]}}), "unknown fold"),
        (json!({"limit": -1}), "limit"),
        (json!({"wat": 1}), "unknown query field"),
        (json!({"filter": [{"a": [["regular-expression", "("]]}]}), "bad regular expression"),
        (json!([]), "JSON object"),
    ] {
        let e = Query::from_json(&v).unwrap_err().to_string();
        assert!(e.contains(want), "{v}: {e}");
    }
    let e =
        run(&sample(), &q(json!({"filter": [{"timestamp": [["at-least", "yesterday"]]}]}))).unwrap_err().to_string();
    assert!(e.contains("not a number"), "{e}");
}
