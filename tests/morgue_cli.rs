//! `bt morgue` through the real binary, against a real `bt serve` on loopback and
//! against a local data directory: every list flag, with the JSON parsed back and
//! checked against what was submitted (counts per group, unique hostnames, ranges,
//! sparkline buckets at known timestamps), describe, get, put, delete, login, and
//! the one-line errors.

mod server_common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_json::{Value as Json, json};
use server_common::*;

/// One submitted crash: (group, hostname, seconds before the base time, build).
type Crash = (usize, &'static str, i64, i64);

/// Three groups; group 2 is old (outside a one-hour window).
const CRASHES: &[Crash] = &[
    (0, "host-a", 3000, 10),
    (0, "host-a", 2000, 11),
    (0, "host-b", 1000, 12),
    (0, "host-c", 500, 13),
    (0, "host-c", 100, 14),
    (1, "host-a", 2900, 20),
    (1, "host-b", 1500, 21),
    (1, "host-b", 50, 22),
    (2, "host-d", 20_000, 30),
];

fn now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_secs() as i64
}

/// How morgue reaches the store in a test.
struct Env {
    /// Extra arguments every command gets: `--data DIR`, or `--url U --token T`.
    conn: Vec<String>,
    /// XDG_CONFIG_HOME of the commands (the session lives there).
    config: PathBuf,
    /// The base time the crash timestamps count back from.
    base: i64,
    /// Object ids by crash index.
    ids: Vec<String>,
    /// Fingerprints by group.
    fps: BTreeMap<usize, String>,
    files: PathBuf,
}

struct Out {
    code: i32,
    stdout: String,
    stderr: String,
}

fn morgue_in(config: &Path, args: &[&str], env: &[(&str, &str)], stdin: Option<&[u8]>) -> Out {
    let mut cmd = Command::new(bt_bin());
    cmd.arg("morgue")
        .args(args)
        .env("XDG_CONFIG_HOME", config)
        .env_remove("MORGUE_USERNAME")
        .env_remove("MORGUE_PASSWORD");
    // No default data directory: only what the test names.
    cmd.env("XDG_DATA_HOME", config.join("no-data"));
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("spawning bt morgue");
    if let Some(s) = stdin {
        use std::io::Write;
        child.stdin.take().expect("stdin").write_all(s).expect("stdin");
    }
    let o = child.wait_with_output().expect("bt morgue");
    Out {
        code: o.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
    }
}

impl Env {
    fn run(&self, args: &[&str]) -> Out {
        let mut all: Vec<&str> = args.to_vec();
        all.extend(self.conn.iter().map(String::as_str));
        morgue_in(&self.config, &all, &[], None)
    }

    fn ok(&self, args: &[&str]) -> String {
        let o = self.run(args);
        assert_eq!(o.code, 0, "morgue {args:?}: {}", o.stderr);
        o.stdout
    }

    fn json(&self, args: &[&str]) -> Json {
        let mut a = args.to_vec();
        a.push("--json");
        let text = self.ok(&a);
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("morgue {args:?}: not JSON ({e}): {text}"))
    }

    /// Fails with one line on stderr, nothing on stdout.
    fn fails(&self, args: &[&str], want: &str) {
        let o = self.run(args);
        assert_eq!(o.code, 1, "morgue {args:?} should fail: {} {}", o.stdout, o.stderr);
        assert!(o.stdout.is_empty(), "{args:?}: {}", o.stdout);
        assert_eq!(o.stderr.lines().count(), 1, "{args:?}: one line: {}", o.stderr);
        assert!(o.stderr.contains(want), "{args:?}: wanted {want:?} in {}", o.stderr);
    }

    /// Submits every crash with `bt morgue put`, as snapshot files with chosen times.
    fn submit_all(&mut self) {
        for (i, (group, host, ago, build)) in CRASHES.iter().enumerate() {
            let mut s = snapshot(*group, host, i as u64);
            s.timestamp = (self.base - ago) as u64;
            let path = self.files.join(format!("crash-{i}.bt"));
            std::fs::write(&path, s.encode().expect("encode")).expect("write snapshot");
            let kv = format!("build:{build},branch:main");
            let ack = self.json(&["put", "p", path.to_str().expect("utf-8 path"), "--kv", &kv]);
            let fp = ack["fingerprint"].as_str().expect("fingerprint").to_string();
            if let Some(old) = self.fps.insert(*group, fp.clone()) {
                assert_eq!(old, fp, "same crash site, same group");
                assert_eq!(ack["unique"], false);
            } else {
                assert_eq!(ack["unique"], true);
            }
            self.ids.push(ack["object"].as_str().expect("object").to_string());
        }
    }

    fn group_of(&self, fp: &Json) -> usize {
        *self.fps.iter().find(|(_, f)| Json::String(f.to_string()) == *fp).map(|(g, _)| g).expect("known group")
    }

    fn ts(&self, crash: &Crash) -> i64 {
        self.base - crash.2
    }
}

/// The expected 32 buckets of `ts` over [lo, hi], the store's formula.
fn buckets(ts: &[i64], lo: i64, hi: i64) -> Vec<u64> {
    let width = ((hi - lo) as f64 / 32.0).max(1.0);
    let mut b = vec![0u64; 32];
    for &t in ts {
        if t < lo || t > hi {
            continue;
        }
        b[((((t - lo) as f64) / width) as usize).min(31)] += 1;
    }
    b
}

fn rows(v: &Json) -> &Vec<Json> {
    v["rows"].as_array().expect("rows")
}

/// Everything `list` can do, checked against CRASHES.
fn check_list(env: &Env) {
    let crashes_of = |g: usize| CRASHES.iter().filter(move |c| c.0 == g);

    // The default view: groups by fingerprint, biggest first; counts, shares, first/last.
    let v = env.json(&["list", "p"]);
    assert_eq!(v["groups"], 3);
    assert_eq!(v["objects"], CRASHES.len());
    let got: Vec<(usize, u64)> =
        rows(&v).iter().map(|r| (env.group_of(&r["group"]), r["count"].as_u64().expect("count"))).collect();
    assert_eq!(got, vec![(0, 5), (1, 3), (2, 1)]);
    for r in rows(&v) {
        let g = env.group_of(&r["group"]);
        let ts: Vec<i64> = crashes_of(g).map(|c| env.ts(c)).collect();
        assert_eq!(r["first"], json!(ts.iter().min()));
        assert_eq!(r["last"], json!(ts.iter().max()));
        assert!((r["share"].as_f64().expect("share") - ts.len() as f64 / CRASHES.len() as f64).abs() < 1e-9);
        assert_eq!(r["callstack"][0], json!(format!("crash_site_{g} (app.c:10)")), "{r}");
        let class = if g.is_multiple_of(2) { "null-dereference" } else { "invalid-write" };
        assert_eq!(r["classifiers"], json!([class]));
        // Without a window the buckets span the data: oldest to newest crash of all groups.
        let all: Vec<i64> = CRASHES.iter().map(|c| env.ts(c)).collect();
        let (lo, hi) = (*all.iter().min().expect("min"), *all.iter().max().expect("max"));
        assert_eq!(v["range"], json!([lo, hi]));
        let spark: Vec<u64> = serde_json::from_value(r["sparkline"].clone()).expect("buckets");
        assert_eq!(spark, buckets(&ts, lo, hi), "group {g}");
    }

    // A fixed window: the buckets line up with it, exactly where the crashes fell.
    let (lo, hi) = (env.base - 3200, env.base);
    let v = env.json(&["list", "p", &format!("--time={lo}..{hi}")]);
    assert_eq!(v["range"], json!([lo, hi]));
    assert_eq!(v["groups"], 2, "group 2 is older than the window");
    for r in rows(&v) {
        let g = env.group_of(&r["group"]);
        let ts: Vec<i64> = crashes_of(g).map(|c| env.ts(c)).collect();
        let spark: Vec<u64> = serde_json::from_value(r["sparkline"].clone()).expect("buckets");
        assert_eq!(spark, buckets(&ts, lo, hi), "group {g}");
        assert_eq!(spark.iter().sum::<u64>(), ts.len() as u64);
    }
    // Group 0 at base-3000 (bucket 2: 200/100), -2000 (12), -1000 (22), -500 (27), -100 (31).
    let g0 = rows(&v).iter().find(|r| env.group_of(&r["group"]) == 0).expect("group 0");
    let nonzero: Vec<usize> = g0["sparkline"]
        .as_array()
        .expect("spark")
        .iter()
        .enumerate()
        .filter(|(_, c)| c.as_u64() != Some(0))
        .map(|(i, _)| i)
        .collect();
    assert_eq!(nonzero, vec![2, 12, 22, 27, 31]);

    // --age: the last hour only.
    let v = env.json(&["list", "p", "--age=1h"]);
    assert_eq!(v["objects"], 8);
    let (from, to) = (v["range"][0].as_i64().expect("from"), v["range"][1].as_i64().expect("to"));
    assert!((to - from) == 3600 && (to - now()).abs() < 60, "{}", v["range"]);

    // Folds.
    let v = env.json(&[
        "list",
        "p",
        "--unique=hostname",
        "--histogram=hostname",
        "--head=hostname",
        "--tail=hostname",
        "--range=timestamp",
        "--sum=build",
        "--min=build",
        "--max=build",
    ]);
    for r in rows(&v) {
        let g = env.group_of(&r["group"]);
        let cs: Vec<&Crash> = crashes_of(g).collect();
        let f = &r["folds"];
        let mut hosts: BTreeMap<&str, u64> = BTreeMap::new();
        for c in &cs {
            *hosts.entry(c.1).or_default() += 1;
        }
        assert_eq!(f["hostname;unique"], json!(hosts.len()), "group {g}");
        let hist: BTreeMap<String, u64> = f["hostname;histogram"]
            .as_array()
            .expect("histogram")
            .iter()
            .map(|e| (e[0].as_str().expect("host").to_string(), e[1].as_u64().expect("n")))
            .collect();
        assert_eq!(hist, hosts.iter().map(|(k, v)| (k.to_string(), *v)).collect());
        assert_eq!(f["hostname;head"], json!(cs[0].1));
        assert_eq!(f["hostname;tail"], json!(cs[cs.len() - 1].1));
        let ts: Vec<i64> = cs.iter().map(|c| env.ts(c)).collect();
        assert_eq!(f["timestamp;range"], json!([ts.iter().min(), ts.iter().max()]));
        assert_eq!(f["build;sum"], json!(cs.iter().map(|c| c.3).sum::<i64>() as f64));
        assert_eq!(f["build;min"], json!(cs.iter().map(|c| c.3).min()));
        assert_eq!(f["build;max"], json!(cs.iter().map(|c| c.3).max()));
    }

    // Filters, one per operator family, counted.
    for (filter, want) in [
        ("hostname,equal,host-a", 3),
        ("hostname,not-equal,host-a", 6),
        ("hostname,contains,-c", 2),
        ("hostname,regular-expression,^host-[ab]$", 6),
        ("build,at-least,20", 4),
        ("build,less-than,12", 2),
        ("build,is-set", 9),
        ("build,is-not-set", 0),
    ] {
        let v = env.json(&["list", "p", "--filter", filter]);
        assert_eq!(v["objects"], want, "{filter}");
    }
    // Time filters take durations ago (and dates): the last 1000 s hold 4 crashes.
    let v = env.json(&["list", "p", &format!("--filter=timestamp,at-least,{}", env.base - 1000)]);
    assert_eq!(v["objects"], 4);
    let v = env.json(&["list", "p", "--filter=timestamp,at-least,2000-01-01", "--filter=timestamp,less-than,5h"]);
    assert_eq!(v["objects"], 1, "only the crash 20000 s ago is older than 5h");
    let v = env.json(&["list", "p", "--filter=hostname,eq,host-b", "--filter=build,ge,20"]);
    assert_eq!(v["objects"], 2, "filters combine with and");

    // --factor: group by hostname.
    let v = env.json(&["list", "p", "--factor=hostname", "--sort=hostname"]);
    let got: Vec<(String, u64)> = rows(&v)
        .iter()
        .map(|r| (r["group"].as_str().expect("host").to_string(), r["count"].as_u64().expect("n")))
        .collect();
    assert_eq!(got, vec![("host-a".into(), 3), ("host-b".into(), 3), ("host-c".into(), 2), ("host-d".into(), 1)]);

    // --sort: ascending count; by last occurrence; by a fold.
    let v = env.json(&["list", "p", "--sort=count"]);
    let counts: Vec<u64> = rows(&v).iter().map(|r| r["count"].as_u64().expect("n")).collect();
    assert_eq!(counts, vec![1, 3, 5]);
    let v = env.json(&["list", "p", "--sort=-last"]);
    let order: Vec<usize> = rows(&v).iter().map(|r| env.group_of(&r["group"])).collect();
    assert_eq!(order, vec![1, 0, 2], "group 1 crashed last (50 s before base)");
    let v = env.json(&["list", "p", "--unique=hostname", "--sort=-hostname;unique"]);
    let uniq: Vec<u64> = rows(&v).iter().map(|r| r["folds"]["hostname;unique"].as_u64().expect("n")).collect();
    assert_eq!(uniq, vec![3, 2, 1]);

    // --limit / --offset page the groups.
    let v = env.json(&["list", "p", "--limit=1", "--offset=1"]);
    assert_eq!(rows(&v).len(), 1);
    assert_eq!(env.group_of(&rows(&v)[0]["group"]), 1);
    assert_eq!(v["groups"], 3);

    // --select: single objects, sorted by time.
    let v = env.json(&["list", "p", "--select=hostname", "--select=build", "--sort=timestamp", "--limit=4"]);
    let mut by_time: Vec<&Crash> = CRASHES.iter().collect();
    by_time.sort_by_key(|c| env.ts(c));
    let got: Vec<(String, i64)> = rows(&v)
        .iter()
        .map(|r| (r["hostname"].as_str().expect("host").to_string(), r["build"].as_i64().expect("build")))
        .collect();
    let want: Vec<(String, i64)> = by_time.iter().take(4).map(|c| (c.1.to_string(), c.3)).collect();
    assert_eq!(got, want);
    assert_eq!(v["objects"], 9);
    let idx = CRASHES.iter().position(|c| std::ptr::eq(c, by_time[0])).expect("crash");
    assert_eq!(rows(&v)[0]["object"], json!(env.ids[idx]));

    // --csv: a header, one line per group, the same counts.
    let csv = env.ok(&["list", "p", "--csv", "--unique=hostname"]);
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines[0], "fingerprint,count,share,first,last,classifiers,callstack,hostname;unique");
    assert_eq!(lines.len(), 4);
    assert!(lines[1].starts_with(&format!("{},5,0.5556,", env.fps[&0])), "{}", lines[1]);
    assert!(lines[1].ends_with(",3"), "{}", lines[1]);
    let csv = env.ok(&["list", "p", "--csv", "--select=hostname", "--filter=hostname,equal,host-d"]);
    assert_eq!(csv.lines().nth(1).map(|l| l.split(',').nth(1)), Some(Some("host-d")));

    // --table (the default): sparklines, callstack head, the footer.
    let t = env.ok(&["list", "p", "--table", "--histogram=hostname", &format!("--time={lo}..{hi}")]);
    assert!(t.contains(&env.fps[&0][..16]), "{t}");
    assert!(t.contains("callstack:   crash_site_0 (app.c:10) ← handler_0"), "{t}");
    assert!(t.contains("classifiers: null-dereference"), "{t}");
    assert!(t.contains("host-a ▆"), "{t}");
    assert!(t.contains("55.6%") || t.contains("62.5%"), "{t}");
    let first = t.lines().next().expect("a line");
    let spark: String = first.chars().skip(17).take(32).collect();
    let want: String =
        bt::query::render::sparkline(&buckets(&crashes_of(0).map(|c| env.ts(c)).collect::<Vec<_>>(), lo, hi));
    assert_eq!(spark, want, "{first}");
    let footer = t.lines().last().expect("footer");
    assert!(footer.contains(": p as of ") && footer.ends_with(']'), "{footer}");
    let t = env.ok(&["list", "p", "--select=hostname", "--limit=2"]);
    assert!(t.starts_with("object  hostname  timestamp"), "{t}");
    assert!(t.contains("(2 of 9 objects shown"), "{t}");
}

fn check_describe_get_put(env: &Env) {
    let v = env.json(&["describe", "p"]);
    let types: BTreeMap<String, String> = v["attributes"]
        .as_array()
        .expect("attributes")
        .iter()
        .map(|a| (a["name"].as_str().expect("n").to_string(), a["type"].as_str().expect("t").to_string()))
        .collect();
    assert_eq!(types["hostname"], "string");
    assert_eq!(types["build"], "integer");
    assert_eq!(types["timestamp"], "timestamp");
    assert_eq!(v["attributes"][0]["objects"], 9, "{v}");
    let t = env.ok(&["describe", "p"]);
    assert!(t.lines().any(|l| l.split_whitespace().collect::<Vec<_>>() == ["build", "integer", "9"]), "{t}");

    // get: the bytes as submitted, to stdout or to a file.
    let submitted = std::fs::read(env.files.join("crash-0.bt")).expect("crash-0");
    let o = env.run(&["get", "p", &env.ids[0]]);
    assert_eq!(o.code, 0, "{}", o.stderr);
    let out = env.files.join("got.bt");
    env.ok(&["get", "p", &env.ids[0], "-o", out.to_str().expect("path")]);
    assert_eq!(std::fs::read(&out).expect("got"), submitted);
    let decoded = bt::snapshot::Snapshot::decode(&std::fs::read(&out).expect("got")).expect("decodes");
    assert_eq!(decoded.environment.hostname, "host-a");
    env.fails(&["get", "p", "ffff"], "no object ffff in project p");
    env.fails(&["get", "p", "../x"], "bad object id");

    // put: a JSON report with attributes, from stdin-free file; format sniffed and forced.
    let report = env.files.join("report.json");
    std::fs::write(&report, json_report("json_crash", "host-j", env.base as u64)).expect("report");
    let ack = env.json(&["put", "p", report.to_str().expect("path"), "--kv=build:99,team:core"]);
    assert_eq!(ack["unique"], true);
    let v = env.json(&["list", "p", "--select=team", "--select=build", "--filter=hostname,equal,host-j"]);
    assert_eq!(rows(&v)[0]["team"], "core");
    assert_eq!(rows(&v)[0]["build"], 99);
    let o = env.run(&["get", "p", ack["object"].as_str().expect("id"), "-o", "-"]);
    assert_eq!(serde_json::from_str::<Json>(&o.stdout).expect("json report")["attributes"]["hostname"], "host-j");
    env.fails(&["put", "p", report.to_str().expect("path"), "--format=minidump"], "unknown format");
    let junk = env.files.join("junk.bin");
    std::fs::write(&junk, b"\x7fELF").expect("junk");
    env.fails(&["put", "p", junk.to_str().expect("path")], "give --format");
}

fn check_delete(env: &Env) {
    env.fails(&["delete", "p"], "delete needs --filter");
    let o = env.run(&["delete", "p", "--filter=hostname,equal,host-j"]);
    assert_eq!(o.code, 1);
    assert!(o.stderr.contains("refusing to delete 1 objects of p without --yes"), "{}", o.stderr);
    assert_eq!(env.json(&["list", "p", "--filter=hostname,equal,host-j"])["objects"], 1, "nothing deleted");
    assert_eq!(env.ok(&["delete", "p", "--filter=hostname,equal,host-j", "--yes"]), "deleted 1 objects\n");
    assert_eq!(env.json(&["list", "p", "--filter=hostname,equal,host-j"])["objects"], 0);
    assert_eq!(env.json(&["list", "p"])["objects"], 9);
    // Regression (hostile input): a filter that selects every object needs --all,
    // and --limit is honoured (oldest first).
    env.fails(&["delete", "p", "--filter=timestamp,is-set", "--yes"], "pass all to delete a whole project");
    assert_eq!(env.json(&["list", "p"])["objects"], 9, "nothing deleted");
    assert_eq!(env.ok(&["delete", "p", "--filter=timestamp,is-set", "--limit=2", "--yes"]), "deleted 2 objects\n");
    assert_eq!(env.json(&["list", "p"])["objects"], 7);
}

/// `project_error`: what naming another project says (a project token sees only its own).
fn check_errors(env: &Env, project_error: &str) {
    env.fails(&["list", "nope"], project_error);
    env.fails(&["describe", "nope"], project_error);
    env.fails(&["list", "p", "--filter=nosuch,equal,x"], "unknown attribute nosuch in project p");
    env.fails(&["list", "p", "--unique=nosuch"], "unknown attribute nosuch");
    env.fails(&["list", "p", "--filter=hostname"], "bad filter \"hostname\"");
    env.fails(&["list", "p", "--filter=hostname,like,x"], "bad filter");
    env.fails(&["list", "p", "--filter=hostname,regex,("], "bad regular expression");
    env.fails(&["list", "p", "--sort=wat"], "cannot sort groups by \"wat\"");
    env.fails(&["list", "p", "--age=soon"], "bad duration");
    env.fails(&["list", "p", "--time=200..100"], "ends before it starts");
}

fn local_env(name: &str) -> Env {
    let dir = scratch(&format!("morgue-{name}"));
    let data = dir.join("data");
    assert_eq!(admin(&data, &["project", "create", "p"], None).0, 0);
    let files = dir.join("files");
    std::fs::create_dir_all(&files).expect("files dir");
    Env {
        conn: vec!["--data".into(), data.to_string_lossy().into_owned()],
        config: dir.join("config"),
        base: now(),
        ids: Vec::new(),
        fps: BTreeMap::new(),
        files,
    }
}

#[test]
fn list_describe_get_put_delete_on_a_local_data_dir() {
    let mut env = local_env("local");
    env.submit_all();
    check_list(&env);
    check_describe_get_put(&env);
    check_delete(&env);
    check_errors(&env, "unknown project nope");
    let o = env.run(&["list", "p"]);
    assert!(o.stdout.lines().last().is_some_and(|l| l.contains(": p as of ")), "{}", o.stdout);
}

#[test]
fn list_describe_get_put_delete_against_a_server() {
    let dir = scratch("morgue-server");
    let data = dir.join("data");
    let token = project_with_token(&data, "p", &["submit", "query", "object", "admin"]);
    let server = Server::start(&data, &[]);
    let files = dir.join("files");
    std::fs::create_dir_all(&files).expect("files dir");
    let mut env = Env {
        conn: vec!["--url".into(), format!("http://{}", server.addr), "--token".into(), token],
        config: dir.join("config"),
        base: now(),
        ids: Vec::new(),
        fps: BTreeMap::new(),
        files,
    };
    env.submit_all();
    check_list(&env);
    check_describe_get_put(&env);
    check_delete(&env);
    check_errors(&env, "forbidden on project nope");
    let t = env.ok(&["list", "p"]);
    assert!(t.lines().last().is_some_and(|l| l.starts_with("token: p as of ")), "{t}");
}

#[test]
fn login_session_logout_and_connection_errors() {
    let dir = scratch("morgue-login");
    let data = dir.join("data");
    let config = dir.join("config");
    let token = project_with_token(&data, "p", &["submit"]);
    assert_eq!(admin(&data, &["user", "add", "carol"], Some("s3cret-pass\n")).0, 0);
    let server = Server::start(&data, &[]);
    let url = format!("http://{}", server.addr);
    // Something to list: one submission through the API with the submit token.
    let sample = std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/snapshot-v2.bt")).expect("sample");
    let r = server.post(&format!("/api/post?token={token}&format=snapshot"), "application/octet-stream", &sample);
    assert_eq!(r.status, 200, "{}", r.text());

    // Not logged in, no local store: one line says what to do.
    let o = morgue_in(&config, &["list", "p"], &[], None);
    assert_eq!(o.code, 1);
    assert!(o.stderr.contains("not logged in") && o.stderr.contains("bt morgue login URL"), "{}", o.stderr);

    // A wrong password.
    let o =
        morgue_in(&config, &["login", &url], &[("MORGUE_USERNAME", "carol"), ("MORGUE_PASSWORD", "wrong-pass")], None);
    assert_eq!(o.code, 1);
    assert!(o.stderr.contains("wrong user name or password"), "{}", o.stderr);
    // User from the environment, password from stdin.
    let o = morgue_in(&config, &["login", &url], &[("MORGUE_USERNAME", "carol")], Some(b"s3cret-pass\n"));
    assert_eq!(o.code, 0, "{}", o.stderr);
    let session = config.join("bt/morgue.json");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(std::fs::metadata(&session).expect("session file").permissions().mode() & 0o777, 0o600);
    let saved: Json = serde_json::from_slice(&std::fs::read(&session).expect("session")).expect("json");
    assert_eq!(saved["url"], json!(url));
    assert_eq!(saved["user"], "carol");

    // The session is used without flags; the footer names the user.
    let o = morgue_in(&config, &["list", "p"], &[], None);
    assert_eq!(o.code, 0, "{}", o.stderr);
    assert!(o.stdout.lines().last().is_some_and(|l| l.starts_with("carol: p as of ")), "{}", o.stdout);
    let o = morgue_in(&config, &["list", "p", "--json"], &[], None);
    assert_eq!(serde_json::from_str::<Json>(&o.stdout).expect("json")["objects"], 1);
    // A user sees every project, so an unknown one is named as such.
    let o = morgue_in(&config, &["list", "nope"], &[], None);
    assert!(o.code == 1 && o.stderr.contains("unknown project nope"), "{}", o.stderr);
    // A user who is not an admin may not delete.
    let o = morgue_in(&config, &["delete", "p", "--filter=timestamp,is-set", "--yes"], &[], None);
    assert_eq!(o.code, 1);
    assert!(o.stderr.contains("forbidden"), "{}", o.stderr);

    // An expired (here: unknown) session says so.
    let mut s = saved.clone();
    s["token"] = json!("0000");
    std::fs::write(&session, s.to_string()).expect("session");
    let o = morgue_in(&config, &["list", "p"], &[], None);
    assert_eq!(o.code, 1);
    assert_eq!(o.stderr.lines().count(), 1, "{}", o.stderr);
    assert!(o.stderr.contains("has expired") && o.stderr.contains(&format!("bt morgue login {url}")), "{}", o.stderr);

    // A wrong token.
    let o = morgue_in(&config, &["list", "p", "--url", &url, "--token", "bogus"], &[], None);
    assert!(o.code == 1 && o.stderr.contains("unauthorized"), "{}", o.stderr);

    // logout removes the session.
    let o = morgue_in(&config, &["logout"], &[], None);
    assert_eq!(o.code, 0);
    assert!(!session.exists());

    // An unreachable server: one line.
    drop(server);
    let o = morgue_in(&config, &["list", "p", "--url", &url, "--token", "t"], &[], None);
    assert_eq!(o.code, 1);
    assert_eq!(o.stderr.lines().count(), 1, "{}", o.stderr);
    assert!(o.stderr.contains(&format!("cannot reach {url}")), "{}", o.stderr);
    let o = morgue_in(&config, &["login", &url], &[("MORGUE_USERNAME", "carol"), ("MORGUE_PASSWORD", "x")], None);
    assert!(o.code == 1 && o.stderr.contains("cannot reach"), "{}", o.stderr);
}

#[test]
fn the_default_local_data_dir_is_used_without_a_login() {
    let dir = scratch("morgue-default");
    let xdg_data = dir.join("xdg");
    let data = xdg_data.join("bt/store");
    assert_eq!(admin(&data, &["project", "create", "p"], None).0, 0);
    let sample = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/snapshot-v1.bt");
    let env = [("XDG_DATA_HOME", xdg_data.to_str().expect("path"))];
    let config = dir.join("config");
    let o = morgue_in(&config, &["put", "p", sample], &env, None);
    assert_eq!(o.code, 0, "{}", o.stderr);
    let o = morgue_in(&config, &["list", "p", "--json"], &env, None);
    assert_eq!(o.code, 0, "{}", o.stderr);
    assert_eq!(serde_json::from_str::<Json>(&o.stdout).expect("json")["objects"], 1);
    // While a server holds the data directory, the local mode says so.
    let _server = Server::start(&data, &[]);
    let o = morgue_in(&config, &["list", "p"], &env, None);
    assert_eq!(o.code, 1);
    assert!(o.stderr.contains("in use by another bt process"), "{}", o.stderr);
}

#[test]
fn the_applet_symlink_works() {
    let dir = scratch("morgue-link");
    let link = dir.join("morgue");
    std::os::unix::fs::symlink(bt_bin(), &link).expect("symlink");
    let o = Command::new(&link).arg("--help").output().expect("morgue --help");
    assert_eq!(o.status.code(), Some(0));
    let text = String::from_utf8_lossy(&o.stdout);
    for sub in ["login", "logout", "list", "describe", "get", "put", "delete"] {
        assert!(text.contains(sub), "{text}");
    }
}
