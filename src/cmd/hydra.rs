//! `bt hydra`: view one snapshot in the terminal — a saved file, a live process or
//! a core (snapshotted first, by the tracer's normal path), or an object of a store.
//! `--screen COLSxROWS --keys …` prints the screen after those keys instead.

use crate::query::Backend;
use crate::snapshot::{Snapshot, values};
use crate::trace::{self, TraceOptions};
use crate::viewer::{self, Loaded, Options};
use anyhow::{Context, bail};
use argh::FromArgs;
use std::path::{Path, PathBuf};

/// View a snapshot: FILE, PID, --core CORE [EXE], or PROJECT OBJECT from a store.
#[derive(FromArgs, Debug)]
struct Args {
    /// snapshot this ELF core file first (with its executable as the positional)
    #[argh(option)]
    core: Option<PathBuf>,
    /// with PROJECT OBJECT: local data directory of the store (no server)
    #[argh(option)]
    data: Option<PathBuf>,
    /// with PROJECT OBJECT: server URL (default: the morgue session's)
    #[argh(option)]
    url: Option<String>,
    /// with PROJECT OBJECT: an API token instead of the session
    #[argh(option)]
    token: Option<String>,
    /// render without a terminal at this size (COLSxROWS) and print the screen
    #[argh(option)]
    screen: Option<String>,
    /// with --screen: keys to apply first, as tmux send-keys names them ("Tab Down Enter /main")
    #[argh(option, default = "String::new()")]
    keys: String,
    /// no colours (NO_COLOR does the same)
    #[argh(switch)]
    mono: bool,
    /// with --screen: print the time of the first screen and per key to stderr
    #[argh(switch)]
    timings: bool,
    /// FILE | PID | EXE (with --core) | PROJECT OBJECT
    #[argh(positional)]
    target: Vec<String>,
}

/// What the command line asks to view.
enum Target {
    File(PathBuf),
    Pid(i32),
    Core(PathBuf, Option<PathBuf>),
    Stored { project: String, object: String },
}

fn target(args: &Args) -> anyhow::Result<Target> {
    if let Some(core) = &args.core {
        if args.target.len() > 1 {
            bail!("expected at most one executable after --core, got {}", args.target.len());
        }
        return Ok(Target::Core(core.clone(), args.target.first().map(PathBuf::from)));
    }
    match args.target.as_slice() {
        [one] => {
            let path = Path::new(one);
            match one.parse::<i32>() {
                Ok(pid) if !path.exists() => {
                    if pid <= 0 {
                        bail!("not a pid: {one:?}");
                    }
                    Ok(Target::Pid(pid))
                }
                _ => Ok(Target::File(path.to_path_buf())),
            }
        }
        [project, object] => Ok(Target::Stored { project: project.clone(), object: object.clone() }),
        [] => bail!("expected a snapshot FILE, a PID, --core CORE [EXE], or PROJECT OBJECT (see --help)"),
        more => bail!("expected at most PROJECT OBJECT, got {} arguments", more.len()),
    }
}

/// Loads what `t` names; the error is one line.
fn load(t: Target, data: Option<PathBuf>, url: Option<String>, token: Option<String>) -> Loaded {
    let one_line = |e: anyhow::Error| super::one_line(&e);
    match t {
        Target::File(p) => {
            let mut snap = Snapshot::read_file(&p)
                .with_context(|| format!("reading snapshot {}", p.display()))
                .map_err(one_line)?;
            values::render_snapshot(&mut snap, &values::VariableOptions::default());
            Ok((snap, Vec::new()))
        }
        Target::Pid(pid) => {
            let snap = trace::trace_pid(pid, &TraceOptions::default())
                .with_context(|| format!("tracing pid {pid}"))
                .map_err(one_line)?;
            Ok((snap, Vec::new()))
        }
        Target::Core(core, exe) => {
            let snap = trace::trace_core(&core, exe.as_deref(), &TraceOptions::default())
                .with_context(|| format!("tracing core {}", core.display()))
                .map_err(one_line)?;
            Ok((snap, Vec::new()))
        }
        Target::Stored { project, object } => {
            let backend =
                super::morgue::backend(data.as_deref(), url.as_deref(), token.as_deref()).map_err(|e| e.to_string())?;
            let origin = match &backend {
                Backend::Remote(r) => r.url.clone(),
                Backend::Local { store, .. } => store.dir().display().to_string(),
            };
            let (bytes, json) = backend.get(&project, &object).map_err(|e| e.to_string())?;
            if json {
                return Err(format!(
                    "object {object} of {project} is a JSON report, not a bt snapshot: bt morgue get {project} {object} shows it"
                ));
            }
            let mut snap = Snapshot::decode(&bytes).map_err(|e| format!("object {object} of {project}: {e}"))?;
            values::render_snapshot(&mut snap, &values::VariableOptions::default());
            let mut facts =
                vec![("store".into(), origin), ("project".into(), project.clone()), ("object".into(), object.clone())];
            facts.extend(group_facts(&backend, &project, &object));
            Ok((snap, facts))
        }
    }
}

/// The object's group and its triage (state, assignee, tickets), best effort: a
/// store that cannot say leaves them out.
fn group_facts(backend: &Backend, project: &str, object: &str) -> Vec<(String, String)> {
    let q = serde_json::json!({"filter": [{"object": [["equal", object]]}], "select": ["fingerprint"]});
    let Ok(answer) = backend.query(project, &q) else { return Vec::new() };
    let Some(fp) = find_hex(&answer, 32) else { return Vec::new() };
    let mut out = vec![("group".to_string(), fp.clone())];
    if let Ok(t) = backend.workflow(project, crate::store::workflow::Call::Triage { fingerprint: &fp }) {
        let mut state = t["state"].as_str().unwrap_or("open").to_string();
        if t["regressed"].as_bool() == Some(true) {
            state.push_str(" (regressed)");
        }
        out.push(("state".into(), state));
        if let Some(a) = t["assignee"].as_str() {
            out.push(("assignee".into(), a.to_string()));
        }
        for tk in t["tickets"].as_array().into_iter().flatten() {
            let (sys, key, url) = (tk["system"].as_str(), tk["key"].as_str(), tk["url"].as_str());
            out.push(("ticket".into(), format!("{}:{} {}", sys.unwrap_or(""), key.unwrap_or(""), url.unwrap_or(""))));
        }
    }
    out
}

/// The first string of `len` hex digits anywhere in a JSON answer (the fingerprint).
fn find_hex(v: &serde_json::Value, len: usize) -> Option<String> {
    match v {
        serde_json::Value::String(s) if s.len() == len && s.bytes().all(|b| b.is_ascii_hexdigit()) => Some(s.clone()),
        serde_json::Value::Array(a) => a.iter().find_map(|x| find_hex(x, len)),
        serde_json::Value::Object(o) => o.values().find_map(|x| find_hex(x, len)),
        _ => None,
    }
}

pub fn run(name: &str, raw: &[String]) -> anyhow::Result<i32> {
    let args: Args = match super::parse_args(name, raw) {
        Ok(a) => a,
        Err(code) => return Ok(code),
    };
    let t = target(&args)?;
    let stored = matches!(t, Target::Stored { .. });
    if !stored && (args.data.is_some() || args.url.is_some() || args.token.is_some()) {
        bail!("--data, --url and --token open a stored object: give PROJECT OBJECT");
    }
    // https://no-color.org: any non-empty NO_COLOR turns colours off.
    let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
    let opts = Options { mono: args.mono || no_color, origin: Vec::new(), timings: args.timings };
    if let Some(screen) = &args.screen {
        let size = viewer::parse_screen(screen)?;
        let keys = viewer::parse_keys(&args.keys)?;
        let (snap, origin) = load(t, args.data, args.url, args.token).map_err(anyhow::Error::msg)?;
        let opts = Options { origin, ..opts };
        print!("{}", viewer::headless(snap, size, &keys, &opts)?);
        return Ok(super::exit::OK);
    }
    if !args.keys.is_empty() {
        bail!("--keys applies with --screen COLSxROWS");
    }
    viewer::check_terminal()?;
    // Loading runs beside the UI, which shows a spinner when it takes a while.
    let (tx, rx) = std::sync::mpsc::channel();
    let (data, url, token) = (args.data, args.url, args.token);
    std::thread::Builder::new()
        .name("hydra-load".into())
        .spawn(move || {
            let _ = tx.send(load(t, data, url, token));
        })
        .context("starting the loader thread")?;
    viewer::interactive(rx, &opts)?;
    Ok(super::exit::OK)
}
