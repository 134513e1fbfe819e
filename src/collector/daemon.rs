//! The daemon (`bt coresnap daemon`, `coresnapd`): pending/ → tracer → sending/ →
//! object store → done/ (or failed/), on smol; restart-safe because every step ends
//! with one rename and the state lives only in the archive.

use std::collections::{HashMap, HashSet};
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::config::Config;
use super::ingest::log as archive_log;
use super::spool::{self, CoreState, Entry, Meta, Spool, Stage};

#[derive(Debug, Clone)]
pub struct DaemonOptions {
    /// The bt executable run as the tracer (normally /proc/self/exe).
    pub bt: PathBuf,
    /// Process everything there is, then exit.
    pub once: bool,
    /// Seconds between scans of the archive.
    pub poll: Duration,
    /// In --once mode: send attempts per crash before giving up for this run.
    pub once_attempts: u32,
}

impl Default for DaemonOptions {
    fn default() -> Self {
        DaemonOptions {
            bt: PathBuf::from("/proc/self/exe"),
            once: false,
            poll: Duration::from_millis(50),
            once_attempts: 4,
        }
    }
}

/// What a `--once` run left behind.
#[derive(Debug, Default, Clone)]
pub struct Summary {
    pub traced: usize,
    pub sent: usize,
    pub failed: usize,
    pub waiting: usize,
}

#[derive(Default)]
struct State {
    busy: HashSet<String>,
    /// uuid → (attempts, next attempt).
    backoff: HashMap<String, (u32, Instant)>,
    summary: Summary,
}

type Shared = Arc<Mutex<State>>;

fn lock(s: &Shared) -> std::sync::MutexGuard<'_, State> {
    // A panicking task cannot leave State inconsistent (plain sets and counters).
    s.lock().unwrap_or_else(|p| p.into_inner())
}

/// One line on stderr and in ARCHIVE/coresnap.log.
fn say(cfg: &Config, line: &str) {
    log::info!(target: "coresnapd", "{line}");
    archive_log(&cfg.archive, line);
}

/// Runs the daemon until killed (or, with `once`, until nothing is left to do).
pub fn run(cfg: Config, opts: DaemonOptions) -> Result<Summary, spool::SpoolError> {
    let sp = Spool::new(&cfg.archive);
    sp.create_dirs()?;
    let cfg = Arc::new(cfg);
    let opts = Arc::new(opts);
    let state: Shared = Arc::default();
    let jobs = Arc::new(smol::lock::Semaphore::new(cfg.tracer_jobs.max(1)));
    say(&cfg, &format!("watching {} (server {})", cfg.archive.display(), cfg.server_url.as_deref().unwrap_or("none")));
    smol::block_on(async {
        let mut last_purge = Instant::now() - Duration::from_secs(3600);
        loop {
            if last_purge.elapsed() > Duration::from_secs(60) {
                last_purge = Instant::now();
                purge(&sp, &cfg);
            }
            let mut idle = true;
            for e in sp.entries(Stage::Pending)? {
                if !ready(&e, &cfg) || !lock(&state).busy.insert(e.uuid.clone()) {
                    continue;
                }
                idle = false;
                let (sp, cfg, opts, state, jobs) = (sp.clone(), cfg.clone(), opts.clone(), state.clone(), jobs.clone());
                smol::spawn(async move {
                    let _permit = jobs.acquire().await;
                    trace(&sp, &cfg, &opts, &state, &e).await;
                    lock(&state).busy.remove(&e.uuid);
                })
                .detach();
            }
            for e in sp.entries(Stage::Sending)? {
                let now = Instant::now();
                {
                    let mut st = lock(&state);
                    if st.busy.contains(&e.uuid) {
                        idle = false;
                        continue;
                    }
                    if let Some((n, at)) = st.backoff.get(&e.uuid) {
                        if opts.once && *n >= opts.once_attempts {
                            continue;
                        }
                        if *at > now {
                            idle = false;
                            continue;
                        }
                    }
                    st.busy.insert(e.uuid.clone());
                }
                idle = false;
                let (sp, cfg, state) = (sp.clone(), cfg.clone(), state.clone());
                smol::spawn(async move {
                    send(&sp, &cfg, &state, &e).await;
                    lock(&state).busy.remove(&e.uuid);
                })
                .detach();
            }
            if opts.once && idle && lock(&state).busy.is_empty() {
                let mut st = lock(&state);
                st.summary.waiting = sp.entries(Stage::Sending)?.len();
                return Ok(st.summary.clone());
            }
            smol::Timer::after(opts.poll).await;
        }
    })
}

/// A pending crash is ready once its handler is done, or the handler died mid-way
/// (then the partial core is kept as a truncated one).
fn ready(e: &Entry, cfg: &Config) -> bool {
    let Ok(mut m) = e.meta() else {
        return false;
    };
    if m.handler_done {
        return true;
    }
    if handler_alive(m.handler_pid) {
        return false;
    }
    let partial = e.dir.join("core.partial");
    if partial.exists() {
        let _ = fs::rename(&partial, e.dir.join("core"));
    }
    m.core = CoreState::Truncated("the handler died while streaming the core".into());
    m.handler_done = true;
    if spool::write_meta(&e.dir, &m).is_err() {
        return false;
    }
    say(cfg, &format!("crash {}: handler {} died mid-way; keeping the partial core", e.uuid, m.handler_pid));
    true
}

fn handler_alive(pid: u32) -> bool {
    if pid == 0 {
        return false;
    }
    fs::read(format!("/proc/{pid}/cmdline")).map(|c| c.windows(8).any(|w| w == b"coresnap")).unwrap_or(false)
}

/// The attributes given to the tracer (as BACKTRACE_DEFAULTS lines).
fn attributes(cfg: &Config, m: &Meta) -> Vec<(String, String)> {
    let mut a: Vec<(String, String)> = vec![
        ("coresnap.uuid".into(), m.uuid.clone()),
        ("crash.uid".into(), m.uid.to_string()),
        ("crash.gid".into(), m.gid.to_string()),
        ("core.size".into(), m.core_bytes.to_string()),
    ];
    if !m.hostname.is_empty() {
        a.push(("crash.hostname".into(), m.hostname.clone()));
    }
    if let Ok(d) = std::env::var("BACKTRACE_DEFAULTS") {
        a.extend(crate::snapshot::parse_defaults(&d));
    }
    if let Some(cmd) = &cfg.defaults_command {
        a.extend(defaults_command(cmd, m.exe_name()));
    }
    a.extend(m.attributes.iter().cloned());
    a
}

/// Runs `defaults.command EXE-NAME`; its `key=value` lines become attributes.
fn defaults_command(cmd: &str, exe: &str) -> Vec<(String, String)> {
    let mut words = cmd.split_whitespace();
    let Some(prog) = words.next() else { return vec![] };
    let mut command = std::process::Command::new(prog);
    command.args(words).arg(exe).stdin(std::process::Stdio::null());
    // bt turns transparent huge pages off for itself (crate::thp), which children
    // inherit: the command gets them back.
    // SAFETY: thp::allow is one prctl (async-signal-safe) on the child's own flag.
    unsafe {
        std::os::unix::process::CommandExt::pre_exec(&mut command, || {
            crate::thp::allow(true);
            Ok(())
        });
    }
    match command.output() {
        Ok(o) if o.status.success() => crate::snapshot::parse_defaults(&String::from_utf8_lossy(&o.stdout)),
        _ => vec![],
    }
}

async fn trace(sp: &Spool, cfg: &Config, opts: &DaemonOptions, state: &Shared, e: &Entry) {
    let t0 = Instant::now();
    let m = match e.meta() {
        Ok(m) => m,
        Err(err) => return fail(sp, cfg, e, &format!("unreadable metadata: {err}")),
    };
    let core = e.dir.join("core");
    if !core.exists() {
        // Metadata only (core dropped): nothing to trace, but the crash is still
        // reported, as a Backtrace-style JSON report without stacks.
        let why = match &m.core {
            CoreState::Dropped(r) => r.clone(),
            _ => "no core".into(),
        };
        let report = metadata_report(cfg, &m, &why);
        if let Err(err) = spool::write_atomic(&e.dir, "report.json", report.to_string().as_bytes()) {
            return fail(sp, cfg, e, &format!("no core ({why}), and writing its report: {err}"));
        }
        match sp.advance(e, Stage::Sending) {
            Ok(_) => say(
                cfg,
                &format!("crash {} ({}) has no core ({why}); its metadata will be reported", e.uuid, m.exe_name()),
            ),
            Err(err) => say(cfg, &format!("crash {}: {err}", e.uuid)),
        }
        return;
    }
    let out = e.dir.join(".snapshot.tmp");
    let defaults: String = attributes(cfg, &m)
        .into_iter()
        .map(|(k, v)| format!("{}={}\n", k.replace(['\n', '='], " "), v.replace('\n', " ")))
        .collect();
    let mut cmd = smol::process::Command::new(&opts.bt);
    cmd.arg("ptrace").arg("--faulted").arg("--core").arg(&core).arg("-o").arg(&out);
    let exe = m.exe.strip_suffix(" (deleted)").unwrap_or(&m.exe);
    if !exe.is_empty() && Path::new(exe).is_file() {
        cmd.arg(exe);
    }
    cmd.env("BACKTRACE_DEFAULTS", defaults).env("BT_CORESNAP_TRACER", "1");
    cmd.stdin(smol::process::Stdio::null()).stdout(smol::process::Stdio::null()).stderr(smol::process::Stdio::piped());
    cmd.kill_on_drop(true);
    let child = match cmd.spawn() {
        Ok(c) => c,
        Err(err) => return fail(sp, cfg, e, &format!("starting the tracer {}: {err}", opts.bt.display())),
    };
    let timeout = cfg.tracer_timeout;
    let result = smol::future::or(async { Some(child.output().await) }, async {
        smol::Timer::after(timeout).await;
        None
    })
    .await;
    let ms = t0.elapsed().as_millis();
    match result {
        None => fail(sp, cfg, e, &format!("the tracer timed out after {} s (tracer.timeout)", timeout.as_secs())),
        Some(Err(err)) => fail(sp, cfg, e, &format!("waiting for the tracer: {err}")),
        Some(Ok(o)) if !o.status.success() || !out.exists() => {
            let text = String::from_utf8_lossy(&o.stderr);
            let last = text.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or("").trim().to_string();
            let _ = fs::remove_file(&out);
            fail(sp, cfg, e, &format!("the tracer failed ({}): {last}", o.status));
            lock(state).summary.failed += 1;
        }
        Some(Ok(_)) => {
            if let Err(err) = fs::rename(&out, e.dir.join("snapshot.bt")) {
                return fail(sp, cfg, e, &format!("keeping the snapshot: {err}"));
            }
            match sp.advance(e, Stage::Sending) {
                Ok(_) => {
                    say(cfg, &format!("crash {} ({}) traced in {ms} ms", e.uuid, m.exe_name()));
                    lock(state).summary.traced += 1;
                }
                Err(err) => say(cfg, &format!("crash {}: {err}", e.uuid)),
            }
        }
    }
}

/// A JSON report (the store's `format=json`) of a crash whose core was dropped.
fn metadata_report(cfg: &Config, m: &Meta, why: &str) -> serde_json::Value {
    let mut attrs = serde_json::Map::new();
    for (k, v) in attributes(cfg, m) {
        attrs.insert(k, serde_json::Value::String(v));
    }
    let mut put = |k: &str, v: serde_json::Value| {
        attrs.insert(k.to_string(), v);
    };
    put("application", m.exe_name().into());
    put("hostname", m.hostname.clone().into());
    put("pid", m.pid.into());
    put("signal", m.signal.into());
    put("exe", m.exe.clone().into());
    put("cmdline", m.cmdline.join(" ").into());
    put("core.dropped", why.into());
    let tid = if m.tid > 0 { m.tid } else { m.pid };
    serde_json::json!({
        "uuid": m.uuid,
        "timestamp": m.time,
        "lang": "c",
        "agent": "bt-coresnap",
        "agentVersion": env!("CARGO_PKG_VERSION"),
        "mainThread": tid.to_string(),
        "threads": {tid.to_string(): {"name": m.comm, "fault": true, "stack": []}},
        "attributes": attrs,
        "classifiers": ["no-core"],
    })
}

fn fail(sp: &Spool, cfg: &Config, e: &Entry, why: &str) {
    let _ = fs::write(e.dir.join("error"), format!("{why}\n"));
    match sp.advance(e, Stage::Failed) {
        Ok(_) => say(cfg, &format!("crash {} failed: {why}", e.uuid)),
        Err(err) => say(cfg, &format!("crash {} failed: {why}; and could not be moved: {err}", e.uuid)),
    }
}

/// How a submission went.
enum Sent {
    Ok(String),
    /// Try again later: the server answered 5xx or 429, so nothing was stored.
    Later(String),
    /// Try again later, not knowing whether the server stored it (no connection, or
    /// the answer was lost): the `attempt` mark stays, so the next try asks first.
    Unknown(String),
    /// Do not retry (4xx: bad token, refused input).
    Refused(String),
}

async fn send(sp: &Spool, cfg: &Config, state: &Shared, e: &Entry) {
    let t0 = Instant::now();
    let m = match e.meta() {
        Ok(m) => m,
        Err(err) => return fail(sp, cfg, e, &format!("unreadable metadata: {err}")),
    };
    let Some(url) = cfg.server_url.as_deref() else {
        return later(cfg, state, e, "no server.url configured");
    };
    let Some(project) = cfg.project_for(m.exe_name()).map(str::to_string) else {
        lock(state).summary.failed += 1;
        return fail(sp, cfg, e, &format!("no format.N rule routes executable {:?} to a project", m.exe_name()));
    };
    let Some(token) = cfg.token_for(&project).map(str::to_string) else {
        lock(state).summary.failed += 1;
        return fail(sp, cfg, e, &format!("no token.{project} in the configuration"));
    };
    // An earlier attempt whose answer was lost (daemon killed while the server
    // committed): ask the server before sending again, so restarts make no duplicates.
    let attempt = e.dir.join("attempt");
    if attempt.exists()
        && let Some(id) = already_stored(url, &project, &token, &e.uuid).await
    {
        return finish(sp, cfg, state, e, &m, &project, &format!("{{\"_rxid\":\"{id}\",\"recovered\":true}}"), t0);
    }
    let (file, format) = if e.has("snapshot.bt") { ("snapshot.bt", "snapshot") } else { ("report.json", "json") };
    let body = match smol::unblock({
        let p = e.dir.join(file);
        move || fs::read(p)
    })
    .await
    {
        Ok(b) => b,
        Err(err) => {
            lock(state).summary.failed += 1;
            return fail(sp, cfg, e, &format!("reading {file}: {err}"));
        }
    };
    let _ = spool::write_atomic(&e.dir, "attempt", spool::now_ms().to_string().as_bytes());
    let path = format!("/api/post?token={}&format={format}", enc(&token));
    let ctype = if format == "json" { "application/json" } else { "application/octet-stream" };
    let r = match http_post(url, &path, ctype, &body).await {
        Err(err) => Sent::Unknown(err),
        Ok((200, b)) => Sent::Ok(String::from_utf8_lossy(&b).into_owned()),
        Ok((s, b)) if s == 429 || s >= 500 => {
            Sent::Later(format!("server answered {s}: {}", String::from_utf8_lossy(&b)))
        }
        Ok((s, b)) => {
            Sent::Refused(format!("server refused the snapshot ({s}): {}", String::from_utf8_lossy(&b).trim()))
        }
    };
    match r {
        Sent::Ok(reply) => finish(sp, cfg, state, e, &m, &project, &reply, t0),
        Sent::Later(why) => {
            let _ = fs::remove_file(&attempt);
            later(cfg, state, e, &why)
        }
        Sent::Unknown(why) => later(cfg, state, e, &why),
        Sent::Refused(why) => {
            let _ = fs::remove_file(&attempt);
            lock(state).summary.failed += 1;
            fail(sp, cfg, e, &why)
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn finish(sp: &Spool, cfg: &Config, state: &Shared, e: &Entry, m: &Meta, project: &str, reply: &str, t0: Instant) {
    if let Err(err) = spool::write_atomic(&e.dir, "sent.json", reply.as_bytes()) {
        say(cfg, &format!("crash {}: recording the answer: {err}", e.uuid));
    }
    let _ = fs::remove_file(e.dir.join("attempt"));
    let id = serde_json::from_str::<serde_json::Value>(reply)
        .ok()
        .and_then(|v| v["_rxid"].as_str().map(String::from))
        .unwrap_or_default();
    match sp.advance(e, Stage::Done) {
        Ok(_) => {
            let total = spool::now_ms().saturating_sub(m.archived_ms);
            say(
                cfg,
                &format!(
                    "crash {} ({}) sent to {project} as object {id} in {} ms ({total} ms since the crash)",
                    e.uuid,
                    m.exe_name(),
                    t0.elapsed().as_millis()
                ),
            );
            let mut st = lock(state);
            st.summary.sent += 1;
            st.backoff.remove(&e.uuid);
        }
        Err(err) => say(cfg, &format!("crash {}: {err}", e.uuid)),
    }
}

/// Exponential backoff: 0.25 s doubling up to 60 s.
fn later(cfg: &Config, state: &Shared, e: &Entry, why: &str) {
    let mut st = lock(state);
    let n = st.backoff.get(&e.uuid).map(|b| b.0).unwrap_or(0) + 1;
    let delay =
        Duration::from_millis(250u64.saturating_mul(1 << n.min(8).saturating_sub(1))).min(Duration::from_secs(60));
    st.backoff.insert(e.uuid.clone(), (n, Instant::now() + delay));
    drop(st);
    say(cfg, &format!("crash {} waits in sending/ (attempt {n}, next in {} ms): {why}", e.uuid, delay.as_millis()));
}

/// The object id when the server already holds a snapshot with this coresnap.uuid.
async fn already_stored(url: &str, project: &str, token: &str, uuid: &str) -> Option<String> {
    let q = serde_json::json!({"filter": [{"coresnap.uuid": [["equal", uuid]]}], "limit": 1});
    let path = format!("/api/query?token={}&project={}", enc(token), enc(project));
    match http_post(url, &path, "application/json", q.to_string().as_bytes()).await {
        Ok((200, b)) => {
            let v: serde_json::Value = serde_json::from_slice(&b).ok()?;
            let row = v["rows"].as_array()?.first()?;
            Some(row[0].as_str().map(String::from).unwrap_or_else(|| row[0].to_string()))
        }
        // No query scope on the token, or no such attribute yet: send again.
        _ => None,
    }
}

/// What a query-string component may keep as is (RFC 3986 unreserved).
const COMPONENT: &percent_encoding::AsciiSet =
    &percent_encoding::NON_ALPHANUMERIC.remove(b'-').remove(b'_').remove(b'.').remove(b'~');

fn enc(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, COMPONENT).to_string()
}

/// Largest answer read from the server.
const MAX_ANSWER: u64 = 16 << 20;

/// One POST through ureq (http:// and, with the `tls` feature, https://; chunked
/// and re-chunked answers read properly), on smol's blocking pool: (status, body).
async fn http_post(url: &str, path: &str, content_type: &str, body: &[u8]) -> Result<(u16, Vec<u8>), String> {
    let uri = format!("{}{path}", url.trim_end_matches('/'));
    let (content_type, body) = (content_type.to_string(), body.to_vec());
    smol::unblock(move || {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_connect(Some(Duration::from_secs(10)))
            .timeout_global(Some(Duration::from_secs(60)))
            .max_redirects(0)
            .user_agent(format!("bt-coresnap/{}", env!("CARGO_PKG_VERSION")))
            .build()
            .into();
        let shown = uri.split('?').next().unwrap_or(&uri).to_string();
        let mut resp = agent
            .post(&uri)
            .header("Content-Type", &content_type)
            .send(&body[..])
            .map_err(|e| format!("{shown}: {e}"))?;
        let status = resp.status().as_u16();
        let answer =
            resp.body_mut().with_config().limit(MAX_ANSWER).read_to_vec().map_err(|e| format!("{shown}: {e}"))?;
        Ok((status, answer))
    })
    .await
}

/// Removes done/ and failed/ crashes older than purge.age (unless purge.disabled).
pub fn purge(sp: &Spool, cfg: &Config) {
    if cfg.purge_disabled {
        return;
    }
    let Some(age) = cfg.purge_age else { return };
    for stage in [Stage::Done, Stage::Failed] {
        for e in sp.entries(stage).unwrap_or_default() {
            let old = fs::metadata(&e.dir)
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| t.elapsed().ok())
                .is_some_and(|el| el > age);
            if old {
                match fs::remove_dir_all(&e.dir) {
                    Ok(()) => say(cfg, &format!("crash {} purged (older than purge.age)", e.uuid)),
                    Err(err) => say(cfg, &format!("crash {}: purging: {err}", e.uuid)),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    /// bt sets PR_SET_THP_DISABLE on itself (crate::thp), which children inherit; the
    /// defaults command runs with it cleared (fails without the `pre_exec`).
    #[test]
    fn the_defaults_command_gets_transparent_huge_pages_back() {
        // SAFETY: sets this test process's own flag, as bt's main does.
        assert_eq!(unsafe { libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0) }, 0);
        let script = std::env::temp_dir().join(format!("bt-thp-{}.sh", std::process::id()));
        std::fs::write(&script, "awk '/^THP_enabled/ { print \"thp=\" $2 }' /proc/self/status\n").unwrap();
        let got = super::defaults_command(&format!("/bin/sh {}", script.display()), "prog");
        let _ = std::fs::remove_file(&script);
        assert_eq!(got, vec![("thp".to_string(), "1".to_string())]);
    }
}
