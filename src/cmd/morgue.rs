//! `bt morgue`: the query CLI — login/logout, list, describe, get, put, delete —
//! against a server or, with `--data DIR` (or no login and a local store), directly
//! on a local data directory. Wiring only: the logic lives in [`crate::query`].

use std::io::{BufRead, IsTerminal, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use argh::FromArgs;

use crate::query::flags::{self, ListSpec};
use crate::query::remote::{self, Remote};
use crate::query::render::{ago, latency};
use crate::query::{Answer, Backend, MorgueError, parse_kv, session, sniff_format};
use crate::snapshot::render::for_terminal;
use crate::store::triage::{Change, State, Ticket, UntilSpec};
use crate::store::workflow::Call;

/// Query the object store: list, describe, get, put, delete (login URL first, or --data DIR).
#[derive(FromArgs, Debug)]
struct Args {
    #[argh(subcommand)]
    cmd: Sub,
}

// Parsed once per run: the size of the list variant does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(FromArgs, Debug)]
#[argh(subcommand)]
enum Sub {
    Login(LoginArgs),
    Logout(LogoutArgs),
    List(ListArgs),
    Describe(DescribeArgs),
    Get(GetArgs),
    Put(PutArgs),
    Delete(DeleteArgs),
    Set(SetArgs),
    Assign(AssignArgs),
    Tag(TagArgs),
    Ticket(TicketArgs),
    Comment(CommentArgs),
    History(HistoryArgs),
    WouldReopen(WouldReopenArgs),
    Merge(MergeArgs),
    Unmerge(UnmergeArgs),
    Symbol(SymbolArgs),
}

/// Symbols for minidumps: bt morgue symbol PROJECT upload FILE…|DIR (ELF files,
/// separate debug files, Breakpad .sym, tar/tar.gz/zip; a directory is walked for
/// ELF files), bt morgue symbol PROJECT list, bt morgue symbol PROJECT missing
/// (modules seen in minidumps without their files, most frequent first).
#[derive(FromArgs, Debug)]
#[argh(
    subcommand,
    name = "symbol",
    example = "bt morgue symbol myapp upload build/out/ --url http://bt:6097 --token T"
)]
struct SymbolArgs {
    /// the project, the action (upload, list, missing), the files or directories
    #[argh(positional)]
    words: Vec<String>,
    /// local data directory, no server
    #[argh(option)]
    data: Option<PathBuf>,
    /// server URL (default: the session's)
    #[argh(option)]
    url: Option<String>,
    /// an API token (symbols scope to upload) instead of the session
    #[argh(option)]
    token: Option<String>,
}

/// The files an upload takes: files as given; a directory's ELF files, walked.
fn symbol_files(paths: &[String]) -> anyhow::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    let mut stack: Vec<PathBuf> = paths.iter().map(PathBuf::from).collect();
    while let Some(p) = stack.pop() {
        let meta = std::fs::symlink_metadata(&p).with_context(|| format!("reading {}", p.display()))?;
        if meta.is_dir() {
            for e in std::fs::read_dir(&p).with_context(|| format!("reading {}", p.display()))? {
                stack.push(e?.path());
            }
        } else if meta.is_file() {
            let mut magic = [0u8; 4];
            let is_elf =
                std::fs::File::open(&p).and_then(|mut f| std::io::Read::read_exact(&mut f, &mut magic)).is_ok()
                    && &magic == b"\x7fELF";
            if is_elf || paths.iter().any(|a| Path::new(a) == p) {
                out.push(p);
            }
        }
    }
    out.sort();
    Ok(out)
}

/// Merge groups into one: bt morgue merge PROJECT TARGET FINGERPRINT…; the target
/// answers for them (their own fingerprints stay as fingerprint;original).
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "merge")]
struct MergeArgs {
    /// the project, the target group, the groups to merge into it
    #[argh(positional)]
    words: Vec<String>,
    /// local data directory, no server
    #[argh(option)]
    data: Option<PathBuf>,
    /// server URL (default: the session's)
    #[argh(option)]
    url: Option<String>,
    /// an API token (admin scope) instead of the session
    #[argh(option)]
    token: Option<String>,
}

/// Undo a merge: bt morgue unmerge PROJECT FINGERPRINT….
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "unmerge")]
struct UnmergeArgs {
    /// the project, the merged groups
    #[argh(positional)]
    words: Vec<String>,
    /// local data directory, no server
    #[argh(option)]
    data: Option<PathBuf>,
    /// server URL (default: the session's)
    #[argh(option)]
    url: Option<String>,
    /// an API token (admin scope) instead of the session
    #[argh(option)]
    token: Option<String>,
}

/// Set the triage state of groups: bt morgue set PROJECT FINGERPRINT… state=STATE
/// [--until version:1.4.0 | time:2027-01-01 | count:100/1d | hosts:10/1h].
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "set")]
struct SetArgs {
    /// the project, the fingerprints, then state=open|in-progress|resolved|muted
    #[argh(positional)]
    words: Vec<String>,
    /// resolved until version:V (or version:ATTR=V) or time:T; muted until time:T,
    /// count:N/PERIOD or hosts:N/PERIOD
    #[argh(option)]
    until: Option<String>,
    /// local data directory, no server
    #[argh(option)]
    data: Option<PathBuf>,
    /// server URL (default: the session's)
    #[argh(option)]
    url: Option<String>,
    /// an API token (admin scope) instead of the session
    #[argh(option)]
    token: Option<String>,
}

/// Assign groups to a user (- unassigns): bt morgue assign PROJECT FINGERPRINT… USER.
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "assign")]
struct AssignArgs {
    /// the project, the fingerprints, the user
    #[argh(positional)]
    words: Vec<String>,
    /// local data directory, no server
    #[argh(option)]
    data: Option<PathBuf>,
    /// server URL (default: the session's)
    #[argh(option)]
    url: Option<String>,
    /// an API token (admin scope) instead of the session
    #[argh(option)]
    token: Option<String>,
}

/// Tag groups: bt morgue tag PROJECT FINGERPRINT… +add -remove.
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "tag")]
struct TagArgs {
    /// the project, the fingerprints, then +TAG / -TAG words (use -- before the first -TAG)
    #[argh(positional)]
    words: Vec<String>,
    /// local data directory, no server
    #[argh(option)]
    data: Option<PathBuf>,
    /// server URL (default: the session's)
    #[argh(option)]
    url: Option<String>,
    /// an API token (admin scope) instead of the session
    #[argh(option)]
    token: Option<String>,
}

/// Link a ticket to groups: bt morgue ticket PROJECT FINGERPRINT… SYSTEM:KEY URL.
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "ticket")]
struct TicketArgs {
    /// the project, the fingerprints, SYSTEM:KEY, URL
    #[argh(positional)]
    words: Vec<String>,
    /// local data directory, no server
    #[argh(option)]
    data: Option<PathBuf>,
    /// server URL (default: the session's)
    #[argh(option)]
    url: Option<String>,
    /// an API token (admin scope) instead of the session
    #[argh(option)]
    token: Option<String>,
}

/// Comment on groups: bt morgue comment PROJECT FINGERPRINT… TEXT.
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "comment")]
struct CommentArgs {
    /// the project, the fingerprints, the text (one word: quote it)
    #[argh(positional)]
    words: Vec<String>,
    /// local data directory, no server
    #[argh(option)]
    data: Option<PathBuf>,
    /// server URL (default: the session's)
    #[argh(option)]
    url: Option<String>,
    /// an API token (admin scope) instead of the session
    #[argh(option)]
    token: Option<String>,
}

/// A group's triage and its history: bt morgue history PROJECT FINGERPRINT.
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "history")]
struct HistoryArgs {
    /// the project
    #[argh(positional)]
    project: String,
    /// the fingerprint
    #[argh(positional)]
    fingerprint: String,
    /// print JSON
    #[argh(switch)]
    json: bool,
    /// local data directory, no server
    #[argh(option)]
    data: Option<PathBuf>,
    /// server URL (default: the session's)
    #[argh(option)]
    url: Option<String>,
    /// an API token instead of the session
    #[argh(option)]
    token: Option<String>,
}

/// Dry run: would a crash with these attributes reopen a resolved group?
/// bt morgue would-reopen PROJECT FINGERPRINT version=1.3.1 [timestamp=T].
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "would-reopen")]
struct WouldReopenArgs {
    /// the project, the fingerprint, ATTR=VALUE…
    #[argh(positional)]
    words: Vec<String>,
    /// local data directory, no server
    #[argh(option)]
    data: Option<PathBuf>,
    /// server URL (default: the session's)
    #[argh(option)]
    url: Option<String>,
    /// an API token instead of the session
    #[argh(option)]
    token: Option<String>,
}

/// Log in to a server; the session is kept in ~/.config/bt/morgue.json (0600).
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "login")]
struct LoginArgs {
    /// server URL, e.g. http://127.0.0.1:6097
    #[argh(positional)]
    url: String,
    /// user name (default $MORGUE_USERNAME, else asked)
    #[argh(option)]
    user: Option<String>,
}

/// Forget the stored session.
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "logout")]
struct LogoutArgs {}

/// List crash groups (or objects with --select) of a project.
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "list")]
struct ListArgs {
    /// the project
    #[argh(positional)]
    project: String,
    /// ATTR,OP,VALUE (repeatable); OP: equal, not-equal, contains, not-contains,
    /// regular-expression, inverse-regular-expression, at-least, greater-than, at-most,
    /// less-than, is-set, is-not-set
    #[argh(option)]
    filter: Vec<String>,
    /// group by this attribute (default fingerprint)
    #[argh(option)]
    factor: Option<String>,
    /// list single objects with these attributes (repeatable)
    #[argh(option)]
    select: Vec<String>,
    /// per group: the values of ATTR and their counts (repeatable)
    #[argh(option)]
    histogram: Vec<String>,
    /// per group: how many distinct values ATTR has (repeatable)
    #[argh(option)]
    unique: Vec<String>,
    /// per group: ATTR of the first object (repeatable)
    #[argh(option)]
    head: Vec<String>,
    /// per group: ATTR of the last object (repeatable)
    #[argh(option)]
    tail: Vec<String>,
    /// per group: smallest and largest ATTR (repeatable)
    #[argh(option)]
    range: Vec<String>,
    /// per group: sum of ATTR (repeatable)
    #[argh(option)]
    sum: Vec<String>,
    /// per group: smallest ATTR (repeatable)
    #[argh(option)]
    min: Vec<String>,
    /// per group: largest ATTR (repeatable)
    #[argh(option)]
    max: Vec<String>,
    /// sort by [-]COLUMN: count, group, first, last, ATTR;FOLD (groups) or ATTR (--select); - = descending
    #[argh(option)]
    sort: Vec<String>,
    /// only objects at most this old (timestamp), e.g. 30d, 12h, 1M
    #[argh(option)]
    age: Option<String>,
    /// only objects with timestamps in FROM..TO (Unix seconds, YYYY-MM-DD[THH:MM:SSZ], or 3d = 3 days ago)
    #[argh(option)]
    time: Option<String>,
    /// at most this many rows
    #[argh(option)]
    limit: Option<usize>,
    /// skip this many rows
    #[argh(option)]
    offset: Option<usize>,
    /// output a table (default)
    #[argh(switch)]
    table: bool,
    /// output JSON
    #[argh(switch)]
    json: bool,
    /// output CSV
    #[argh(switch)]
    csv: bool,
    /// local data directory: query it directly, no server
    #[argh(option)]
    data: Option<PathBuf>,
    /// server URL (default: the session's)
    #[argh(option)]
    url: Option<String>,
    /// an API token to use instead of the session
    #[argh(option)]
    token: Option<String>,
}

/// List the attributes of a project and their types.
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "describe")]
struct DescribeArgs {
    /// the project
    #[argh(positional)]
    project: String,
    /// output JSON
    #[argh(switch)]
    json: bool,
    /// local data directory: query it directly, no server
    #[argh(option)]
    data: Option<PathBuf>,
    /// server URL (default: the session's)
    #[argh(option)]
    url: Option<String>,
    /// an API token to use instead of the session
    #[argh(option)]
    token: Option<String>,
}

/// Download an object (a bt snapshot or a JSON report).
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "get")]
struct GetArgs {
    /// the project
    #[argh(positional)]
    project: String,
    /// the object id (hex, as list --select=object shows)
    #[argh(positional)]
    object: String,
    /// write here (default: stdout, or OBJECT.bt / OBJECT.json when stdout is a terminal)
    #[argh(option, short = 'o')]
    output: Option<PathBuf>,
    /// local data directory: query it directly, no server
    #[argh(option)]
    data: Option<PathBuf>,
    /// server URL (default: the session's)
    #[argh(option)]
    url: Option<String>,
    /// an API token to use instead of the session
    #[argh(option)]
    token: Option<String>,
}

/// Submit a bt snapshot or a JSON report.
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "put")]
struct PutArgs {
    /// the project
    #[argh(positional)]
    project: String,
    /// the report file (- for stdin)
    #[argh(positional)]
    file: PathBuf,
    /// snapshot or json (default: from the file's first bytes)
    #[argh(option)]
    format: Option<String>,
    /// attributes key:value,key2:value2 (repeatable)
    #[argh(option)]
    kv: Vec<String>,
    /// output the answer as JSON
    #[argh(switch)]
    json: bool,
    /// local data directory: submit to it directly, no server
    #[argh(option)]
    data: Option<PathBuf>,
    /// server URL (default: the session's)
    #[argh(option)]
    url: Option<String>,
    /// an API token to use instead of the session
    #[argh(option)]
    token: Option<String>,
}

/// Delete the objects a filter selects (asks first unless --yes).
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "delete")]
struct DeleteArgs {
    /// the project
    #[argh(positional)]
    project: String,
    /// ATTR,OP,VALUE (repeatable; at least one filter, --age or --time)
    #[argh(option)]
    filter: Vec<String>,
    /// only objects at most this old, e.g. 30d
    #[argh(option)]
    age: Option<String>,
    /// only objects with timestamps in FROM..TO
    #[argh(option)]
    time: Option<String>,
    /// do not ask for confirmation
    #[argh(switch)]
    yes: bool,
    /// allow deleting every object of the project (with no filter, or one that selects all)
    #[argh(switch)]
    all: bool,
    /// delete at most this many objects (the oldest first)
    #[argh(option)]
    limit: Option<usize>,
    /// local data directory: delete there directly, no server
    #[argh(option)]
    data: Option<PathBuf>,
    /// server URL (default: the session's)
    #[argh(option)]
    url: Option<String>,
    /// an API token to use instead of the session
    #[argh(option)]
    token: Option<String>,
}

/// `PROJECT rest…`, with at least two words after the project.
fn project_and<'a>(words: &'a [String], usage: &str) -> anyhow::Result<(&'a str, &'a [String])> {
    match words {
        [project, rest @ ..] if rest.len() >= 2 => Ok((project.as_str(), rest)),
        _ => bail!("usage: bt morgue {usage}"),
    }
}

/// One line of a group's triage: `FP  state (regressed) · assignee · tags · tickets`,
/// escaped for the terminal (assignees, tags and tickets are people's text).
fn triage_line(v: &serde_json::Value) -> String {
    for_terminal(&triage_text(v)).into_owned()
}

fn triage_text(v: &serde_json::Value) -> String {
    let mut line = format!("{}  {}", v["fingerprint"].as_str().unwrap_or(""), v["state"].as_str().unwrap_or(""));
    if v["regressed"].as_bool() == Some(true) {
        line.push_str(" (regressed)");
    }
    if let Some(u) = v["assignee"].as_str() {
        line.push_str(&format!(" · assigned to {u}"));
    }
    let tags: Vec<&str> =
        v["tags"].as_array().map(|a| a.iter().filter_map(|t| t.as_str()).collect()).unwrap_or_default();
    if !tags.is_empty() {
        line.push_str(&format!(" · tags {}", tags.join(" ")));
    }
    if let Some(m) = v["merged_into"].as_str() {
        line.push_str(&format!(" · merged into {m}"));
    }
    for t in v["tickets"].as_array().into_iter().flatten() {
        line.push_str(&format!(
            " · {}:{} {}",
            t["system"].as_str().unwrap_or(""),
            t["key"].as_str().unwrap_or(""),
            t["url"].as_str().unwrap_or("")
        ));
    }
    line
}

/// Sends a triage change and prints each group's new triage.
fn change(b: &Backend, project: &str, fps: &[String], change: Change) -> anyhow::Result<()> {
    if fps.is_empty() {
        bail!("no fingerprint given");
    }
    let body = serde_json::json!({"fingerprints": fps, "change": change});
    let v = b.workflow(project, Call::Change(&body))?;
    let mut out = String::new();
    for g in v["groups"].as_array().into_iter().flatten() {
        out.push_str(&triage_line(g));
        out.push('\n');
    }
    write_stdout(out.as_bytes())?;
    Ok(())
}

/// argh takes `--name value`; morgue's users write `--filter=a,b,c` too.
fn split_equals(raw: &[String]) -> Vec<String> {
    let mut out = Vec::with_capacity(raw.len());
    let mut rest_positional = false;
    for a in raw {
        if a == "--" {
            rest_positional = true;
        }
        match a.split_once('=') {
            Some((name, value)) if !rest_positional && name.starts_with("--") && name.len() > 2 => {
                out.push(name.to_string());
                out.push(value.to_string());
            }
            _ => out.push(a.clone()),
        }
    }
    out
}

const USAGE: &str = "usage: bt morgue login URL | logout | list PROJECT | describe PROJECT | get PROJECT OBJECT | put PROJECT FILE | delete PROJECT | symbol PROJECT upload|list|missing | set|assign|tag|ticket|comment PROJECT FINGERPRINT… | merge PROJECT TARGET FP… | unmerge PROJECT FP… | history PROJECT FINGERPRINT | would-reopen PROJECT FINGERPRINT ATTR=V (bt morgue --help, bt morgue list --help)";

pub fn run(name: &str, raw: &[String]) -> anyhow::Result<i32> {
    if raw.is_empty() {
        eprintln!("{USAGE}");
        return Ok(super::exit::USAGE);
    }
    let args: Args = match super::parse_args(name, &split_equals(raw)) {
        Ok(a) => a,
        Err(code) => return Ok(code),
    };
    let now = crate::store::now();
    match args.cmd {
        Sub::Login(a) => login(name, &a)?,
        Sub::Logout(_) => {
            let p = session::path();
            if session::remove(&p)? {
                eprintln!("{name}: logged out (removed {})", p.display());
            } else {
                eprintln!("{name}: not logged in");
            }
        }
        Sub::List(a) => {
            let spec = list_spec(&a, now)?;
            let backend = backend(a.data.as_deref(), a.url.as_deref(), a.token.as_deref())?;
            let (answer, us) = backend.list(&a.project, &spec)?;
            let out = match (&answer, a.json, a.csv) {
                (Answer::Groups(l), true, _) => format!("{:#}\n", l.to_json()),
                (Answer::Objects(s), true, _) => format!("{:#}\n", s.to_json()),
                (Answer::Groups(l), _, true) => l.to_csv(),
                (Answer::Objects(s), _, true) => s.to_csv(),
                (Answer::Groups(l), _, _) => {
                    let since = l.since().map(|t| ago(t, now)).unwrap_or_else(|| "now".into());
                    format!("{}{}: {} as of {since} [{}]\n", l.to_table(now), backend.user(), a.project, latency(us))
                }
                (Answer::Objects(s), _, _) => {
                    format!("{}{}: {} [{}]\n", s.to_table(), backend.user(), a.project, latency(us))
                }
            };
            write_stdout(out.as_bytes())?;
        }
        Sub::Describe(a) => {
            let backend = backend(a.data.as_deref(), a.url.as_deref(), a.token.as_deref())?;
            let attrs = backend.describe(&a.project)?;
            let out = if a.json {
                let v: Vec<serde_json::Value> = attrs
                    .iter()
                    .map(|x| serde_json::json!({"name": x.name, "type": x.ty, "objects": x.objects}))
                    .collect();
                format!("{:#}\n", serde_json::json!({"project": a.project, "attributes": v}))
            } else {
                let w = attrs.iter().map(|x| x.name.len()).max().unwrap_or(9).max(9);
                let mut s = format!("{:<w$}  {:<9}  objects\n", "attribute", "type");
                for x in &attrs {
                    s.push_str(&format!("{:<w$}  {:<9}  {}\n", x.name, x.ty, x.objects));
                }
                s
            };
            write_stdout(out.as_bytes())?;
        }
        Sub::Get(a) => {
            let backend = backend(a.data.as_deref(), a.url.as_deref(), a.token.as_deref())?;
            let (bytes, is_json) = backend.get(&a.project, &a.object)?;
            let target = match a.output {
                Some(p) if p.as_os_str() == "-" => None,
                Some(p) => Some(p),
                None if std::io::stdout().is_terminal() => {
                    Some(PathBuf::from(format!("{}.{}", a.object, if is_json { "json" } else { "bt" })))
                }
                None => None,
            };
            match target {
                Some(p) => {
                    std::fs::write(&p, &bytes).with_context(|| format!("writing {}", p.display()))?;
                    eprintln!("{name}: wrote object {} ({} bytes) to {}", a.object, bytes.len(), p.display());
                }
                None => write_stdout(&bytes)?,
            }
        }
        Sub::Symbol(a) => {
            let [project, action, rest @ ..] = a.words.as_slice() else {
                bail!("usage: bt morgue symbol PROJECT upload FILE…|DIR | list | missing");
            };
            let b = backend(a.data.as_deref(), a.url.as_deref(), a.token.as_deref())?;
            match action.as_str() {
                "upload" => {
                    let files = symbol_files(rest)?;
                    if files.is_empty() {
                        bail!("no file to upload (give ELF files, .sym files, archives, or directories)");
                    }
                    let (mut kept, mut skipped) = (0, 0);
                    for f in files {
                        let bytes = std::fs::read(&f).with_context(|| format!("reading {}", f.display()))?;
                        let name = f.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
                        match b.upload_symbols(project, &name, &bytes) {
                            Ok(v) => {
                                for s in v["symbols"].as_array().into_iter().flatten() {
                                    kept += 1;
                                    println!(
                                        "{}  {}  {}",
                                        s["build_id"].as_str().unwrap_or(""),
                                        s["kind"].as_str().unwrap_or(""),
                                        s["name"].as_str().unwrap_or("")
                                    );
                                }
                                for s in v["skipped"].as_array().into_iter().flatten() {
                                    skipped += 1;
                                    eprintln!(
                                        "skipped {}: {}",
                                        s["name"].as_str().unwrap_or(""),
                                        s["reason"].as_str().unwrap_or("")
                                    );
                                }
                            }
                            Err(crate::query::MorgueError::BadQuery(m)) => {
                                skipped += 1;
                                eprintln!("skipped {}: {m}", f.display());
                            }
                            Err(e) => return Err(e.into()),
                        }
                    }
                    eprintln!("{kept} symbol files kept, {skipped} skipped");
                }
                "list" => {
                    for (id, kind) in b.symbols(project)? {
                        println!("{id}  {kind}");
                    }
                }
                "missing" => {
                    let q = serde_json::json!({"filter": [{"_missing_symbols": [["is-set"]]}], "select": ["_missing_symbols"], "limit": 100000});
                    let out = match b.query(project, &q) {
                        Ok(v) => v,
                        Err(crate::query::MorgueError::UnknownAttribute { .. }) => serde_json::json!({"rows": []}),
                        Err(crate::query::MorgueError::BadQuery(m)) if m.contains("_missing_symbols") => {
                            serde_json::json!({"rows": []})
                        }
                        Err(e) => return Err(e.into()),
                    };
                    let mut counts: std::collections::BTreeMap<String, u64> = Default::default();
                    for r in out["rows"].as_array().into_iter().flatten() {
                        for m in r[1][0].as_str().unwrap_or("").split(", ").filter(|m| !m.is_empty()) {
                            *counts.entry(m.to_string()).or_default() += 1;
                        }
                    }
                    let mut v: Vec<(String, u64)> = counts.into_iter().collect();
                    v.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
                    for (m, n) in v {
                        println!("{n:>6}  {m}");
                    }
                }
                other => bail!("unknown symbol action {other:?}: upload, list or missing"),
            }
        }
        Sub::Put(a) => {
            let body = if a.file.as_os_str() == "-" {
                let mut b = Vec::new();
                std::io::Read::read_to_end(&mut std::io::stdin(), &mut b).context("reading the report from stdin")?;
                b
            } else {
                std::fs::read(&a.file).with_context(|| format!("reading {}", a.file.display()))?
            };
            let format = match a.format.as_deref() {
                Some(f @ ("snapshot" | "json")) => f.to_string(),
                Some(f) => bail!("unknown format {f:?}: use snapshot or json"),
                None => sniff_format(&body)
                    .with_context(|| format!("{}: neither a bt snapshot nor JSON; give --format", a.file.display()))?
                    .to_string(),
            };
            let mut kv = Vec::new();
            for k in &a.kv {
                kv.extend(parse_kv(k)?);
            }
            let backend = backend(a.data.as_deref(), a.url.as_deref(), a.token.as_deref())?;
            let ack = backend.put(&a.project, body, &format, &kv)?;
            let out = if a.json {
                format!(
                    "{}\n",
                    serde_json::json!({"object": ack.object, "fingerprint": ack.fingerprint, "unique": ack.unique})
                )
            } else {
                format!(
                    "object {} fingerprint {} ({})\n",
                    ack.object,
                    ack.fingerprint,
                    if ack.unique { "new group" } else { "known group" }
                )
            };
            write_stdout(out.as_bytes())?;
        }
        Sub::Delete(a) => delete(name, &a, now)?,
        Sub::Set(a) => {
            let (project, rest) = project_and(&a.words, "set PROJECT FINGERPRINT… state=STATE")?;
            let (fps, state) = rest.split_at(rest.len() - 1);
            let state = state[0]
                .strip_prefix("state=")
                .and_then(State::parse)
                .with_context(|| format!("expected state=open|in-progress|resolved|muted last, got {:?}", state[0]))?;
            let until = match &a.until {
                Some(u) => Some(
                    UntilSpec::parse(u, &|d| flags::parse_duration(d).ok(), &|t| flags::parse_instant(t, now).ok())
                        .map_err(anyhow::Error::msg)?,
                ),
                None => None,
            };
            let b = backend(a.data.as_deref(), a.url.as_deref(), a.token.as_deref())?;
            change(&b, project, fps, Change::State { state, until })?;
        }
        Sub::Assign(a) => {
            let (project, rest) = project_and(&a.words, "assign PROJECT FINGERPRINT… USER")?;
            let (fps, user) = rest.split_at(rest.len() - 1);
            let user = if user[0] == "-" { None } else { Some(user[0].clone()) };
            let b = backend(a.data.as_deref(), a.url.as_deref(), a.token.as_deref())?;
            change(&b, project, fps, Change::Assign(user))?;
        }
        Sub::Tag(a) => {
            let (project, rest) = project_and(&a.words, "tag PROJECT FINGERPRINT… +TAG -TAG")?;
            let fps: Vec<String> = rest.iter().filter(|w| !w.starts_with(['+', '-'])).cloned().collect();
            let add = rest.iter().filter_map(|w| w.strip_prefix('+')).map(str::to_string).collect();
            let remove = rest.iter().filter_map(|w| w.strip_prefix('-')).map(str::to_string).collect();
            let b = backend(a.data.as_deref(), a.url.as_deref(), a.token.as_deref())?;
            change(&b, project, &fps, Change::Tags { add, remove })?;
        }
        Sub::Ticket(a) => {
            let (project, rest) = project_and(&a.words, "ticket PROJECT FINGERPRINT… SYSTEM:KEY URL")?;
            if rest.len() < 3 {
                bail!("usage: bt morgue ticket PROJECT FINGERPRINT… SYSTEM:KEY URL");
            }
            let (fps, tail) = rest.split_at(rest.len() - 2);
            let (system, key) =
                tail[0].split_once(':').with_context(|| format!("expected SYSTEM:KEY, got {:?}", tail[0]))?;
            let ticket = Ticket { system: system.into(), key: key.into(), url: tail[1].clone() };
            let b = backend(a.data.as_deref(), a.url.as_deref(), a.token.as_deref())?;
            change(&b, project, fps, Change::Ticket(ticket))?;
        }
        Sub::Comment(a) => {
            let (project, rest) = project_and(&a.words, "comment PROJECT FINGERPRINT… TEXT")?;
            let (fps, text) = rest.split_at(rest.len() - 1);
            let b = backend(a.data.as_deref(), a.url.as_deref(), a.token.as_deref())?;
            change(&b, project, fps, Change::Comment(text[0].clone()))?;
        }
        Sub::Merge(a) => {
            let (project, rest) = project_and(&a.words, "merge PROJECT TARGET FINGERPRINT…")?;
            let (target, fps) = rest.split_at(1);
            let b = backend(a.data.as_deref(), a.url.as_deref(), a.token.as_deref())?;
            change(&b, project, fps, Change::Merge(target[0].clone()))?;
        }
        Sub::Unmerge(a) => {
            let Some((project, fps)) = a.words.split_first().filter(|(_, f)| !f.is_empty()) else {
                bail!("usage: bt morgue unmerge PROJECT FINGERPRINT…");
            };
            let b = backend(a.data.as_deref(), a.url.as_deref(), a.token.as_deref())?;
            change(&b, project, fps, Change::Unmerge)?;
        }
        Sub::History(a) => {
            let b = backend(a.data.as_deref(), a.url.as_deref(), a.token.as_deref())?;
            let v = b.workflow(&a.project, Call::Triage { fingerprint: &a.fingerprint })?;
            if a.json {
                write_stdout(format!("{v:#}\n").as_bytes())?;
            } else {
                let mut out = format!("{}\n", triage_line(&v));
                // Comments and tags are other people's text: escaped for the terminal.
                for h in v["history"].as_array().into_iter().flatten() {
                    out.push_str(&format!(
                        "{}  {:<20} {}\n",
                        crate::query::render::utc(h["time"].as_i64().unwrap_or(0)),
                        for_terminal(h["who"].as_str().unwrap_or("")),
                        for_terminal(h["what"].as_str().unwrap_or(""))
                    ));
                }
                write_stdout(out.as_bytes())?;
            }
        }
        Sub::WouldReopen(a) => {
            let (project, rest) = project_and(&a.words, "would-reopen PROJECT FINGERPRINT ATTR=VALUE…")?;
            let fp = &rest[0];
            let mut attrs = serde_json::Map::new();
            let mut ts = serde_json::Value::Null;
            for w in &rest[1..] {
                let (k, v) = w.split_once('=').with_context(|| format!("expected ATTR=VALUE, got {w:?}"))?;
                if k == "timestamp" {
                    ts = serde_json::json!(flags::parse_instant(v, now)?);
                } else {
                    attrs.insert(k.into(), serde_json::json!(v));
                }
            }
            let b = backend(a.data.as_deref(), a.url.as_deref(), a.token.as_deref())?;
            let body = serde_json::json!({"fingerprint": fp, "attributes": attrs, "timestamp": ts});
            let v = b.workflow(project, Call::DryRun(&body))?;
            match v["reason"].as_str() {
                Some(r) => println!("yes: {r}"),
                None => println!("no"),
            }
            return Ok(if v["reopens"].as_bool() == Some(true) { super::exit::OK } else { super::exit::FAILURE });
        }
    }
    Ok(super::exit::OK)
}

fn write_stdout(bytes: &[u8]) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    match out.write_all(bytes).and_then(|_| out.flush()) {
        // A closed pipe (| head) is not an error worth a message.
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        r => r.context("writing to stdout"),
    }
}

fn window(age: Option<&str>, time: Option<&str>, now: i64) -> Result<(Option<i64>, Option<i64>), MorgueError> {
    match (age, time) {
        (Some(_), Some(_)) => Err(MorgueError::BadFlag("--age and --time exclude each other".into())),
        (Some(a), None) => Ok((Some(now - flags::parse_duration(a)?), Some(now))),
        (None, Some(t)) => flags::parse_time_range(t, now),
        (None, None) => Ok((None, None)),
    }
}

fn parse_filters(raw: &[String], now: i64) -> Result<Vec<flags::Filter>, MorgueError> {
    raw.iter().map(|f| flags::parse_filter(f).and_then(|f| flags::resolve_time_filter(f, now))).collect()
}

fn list_spec(a: &ListArgs, now: i64) -> Result<ListSpec, MorgueError> {
    if [a.table, a.json, a.csv].iter().filter(|x| **x).count() > 1 {
        return Err(MorgueError::BadFlag("--table, --json and --csv exclude each other".into()));
    }
    if a.factor.is_some() && !a.select.is_empty() {
        return Err(MorgueError::BadFlag("--factor groups and --select lists single objects: give one".into()));
    }
    let mut folds = Vec::new();
    for (fold, attrs) in [
        ("histogram", &a.histogram),
        ("unique", &a.unique),
        ("head", &a.head),
        ("tail", &a.tail),
        ("range", &a.range),
        ("sum", &a.sum),
        ("min", &a.min),
        ("max", &a.max),
    ] {
        for attr in attrs {
            folds.push((attr.clone(), fold.to_string()));
        }
    }
    if !a.select.is_empty() && !folds.is_empty() {
        return Err(MorgueError::BadFlag(
            "folds (--histogram, --unique, …) summarise groups: not with --select".into(),
        ));
    }
    Ok(ListSpec {
        filters: parse_filters(&a.filter, now)?,
        factor: a.factor.clone(),
        select: a.select.clone(),
        folds,
        sort: a.sort.iter().map(|s| flags::parse_sort(s)).collect::<Result<_, _>>()?,
        window: window(a.age.as_deref(), a.time.as_deref(), now)?,
        limit: a.limit,
        offset: a.offset,
    })
}

/// Picks the backend: `--data DIR`; else a server (`--url`/`--token`, or the stored
/// session); else the default local data directory when it holds a store.
pub(super) fn backend(data: Option<&Path>, url: Option<&str>, token: Option<&str>) -> Result<Backend, MorgueError> {
    if let Some(d) = data {
        return Backend::local(d);
    }
    let sess = session::load(&session::path())?;
    if url.is_some() || token.is_some() {
        let url = match (url, &sess) {
            (Some(u), _) => remote::normalize_url(u)?,
            (None, Some(s)) => s.url.clone(),
            (None, None) => return Err(MorgueError::BadFlag("--token needs --url (or a login session)".into())),
        };
        return Ok(match (token, &sess) {
            (Some(t), _) => Backend::Remote(Remote::new(&url, t, "token", false)?),
            (None, Some(s)) if s.url == url => Backend::Remote(Remote::new(&url, &s.token, &s.user, true)?),
            (None, _) => {
                return Err(MorgueError::BadFlag(format!(
                    "not logged in to {url}: run bt morgue login {url}, or give --token"
                )));
            }
        });
    }
    if let Some(s) = sess {
        return Ok(Backend::Remote(Remote::new(&s.url, &s.token, &s.user, true)?));
    }
    let dir = super::coroner::default_data_dir();
    if dir.join(crate::store::DB_FILE).exists() {
        return Backend::local(&dir);
    }
    Err(MorgueError::NoBackend(dir))
}

fn read_line(prompt: &str) -> anyhow::Result<String> {
    let stdin = std::io::stdin();
    if stdin.is_terminal() {
        eprint!("{prompt}");
    }
    let mut line = String::new();
    stdin.lock().read_line(&mut line).context("reading from stdin")?;
    Ok(line.trim_end_matches(['\n', '\r']).to_string())
}

fn login(name: &str, a: &LoginArgs) -> anyhow::Result<()> {
    let url = remote::normalize_url(&a.url)?;
    let user = match a.user.clone().or_else(|| std::env::var("MORGUE_USERNAME").ok().filter(|u| !u.is_empty())) {
        Some(u) => u,
        None => read_line("user: ")?,
    };
    if user.is_empty() {
        bail!("no user name given");
    }
    let password = match std::env::var("MORGUE_PASSWORD").ok().filter(|p| !p.is_empty()) {
        Some(p) => p,
        None if std::io::stdin().is_terminal() => super::coroner::prompt_hidden(&format!("password for {user}: "))?,
        None => read_line("")?,
    };
    let token = remote::login(&url, &user, &password)?;
    let path = session::path();
    session::save(
        &path,
        &session::Session { url: url.clone(), user: user.clone(), token, created: crate::store::now() },
    )?;
    eprintln!("{name}: logged in to {url} as {user} (session in {})", path.display());
    Ok(())
}

fn delete(name: &str, a: &DeleteArgs, now: i64) -> anyhow::Result<()> {
    let spec = ListSpec {
        filters: parse_filters(&a.filter, now)?,
        window: window(a.age.as_deref(), a.time.as_deref(), now)?,
        ..Default::default()
    };
    if spec.filters.is_empty() && spec.window == (None, None) && !a.all {
        bail!("delete needs --filter, --age or --time (to delete every object of the project: --all)");
    }
    let backend = backend(a.data.as_deref(), a.url.as_deref(), a.token.as_deref())?;
    backend.check_attributes(&a.project, &spec.attributes())?;
    let filter = spec.filter_json();
    let n = backend.count(&a.project, &filter)?;
    let n = a.limit.map_or(n, |l| n.min(l as u64));
    if n == 0 {
        eprintln!("{name}: no objects match; nothing deleted");
        return Ok(());
    }
    if !a.yes {
        if !std::io::stdin().is_terminal() {
            bail!("refusing to delete {n} objects of {} without --yes (stdin is not a terminal)", a.project);
        }
        let answer = read_line(&format!("delete {n} objects of {}? [y/N] ", a.project))?;
        if !matches!(answer.trim(), "y" | "Y" | "yes") {
            eprintln!("{name}: nothing deleted");
            return Ok(());
        }
    }
    let deleted = backend.delete(&a.project, &filter, a.limit, a.all)?;
    write_stdout(format!("deleted {deleted} objects\n").as_bytes())?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equals_forms_are_split() {
        let raw: Vec<String> = ["list", "p", "--filter=a,equal,b=c", "--json", "-o=x", "--", "--x=y"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert_eq!(split_equals(&raw), vec!["list", "p", "--filter", "a,equal,b=c", "--json", "-o=x", "--", "--x=y"]);
    }

    fn parse(words: &[&str]) -> Result<ListSpec, String> {
        let raw: Vec<String> = words.iter().map(|s| s.to_string()).collect();
        let args: Args = super::super::parse_args("morgue", &split_equals(&raw)).map_err(|c| format!("usage {c}"))?;
        let Sub::List(a) = args.cmd else { return Err("not list".into()) };
        list_spec(&a, 1_000_000).map_err(|e| e.to_string())
    }

    #[test]
    fn list_flags() {
        let s = parse(&[
            "list",
            "p",
            "--filter=hostname,eq,a",
            "--unique",
            "hostname",
            "--histogram=version",
            "--sort=-count",
            "--age=1d",
            "--limit=3",
            "--offset",
            "1",
        ])
        .unwrap();
        assert_eq!(s.filters, vec![flags::parse_filter("hostname,equal,a").unwrap()]);
        assert_eq!(
            s.folds,
            vec![("version".to_string(), "histogram".to_string()), ("hostname".into(), "unique".into())]
        );
        assert_eq!(s.sort, vec![flags::Sort { column: "count".into(), descending: true }]);
        assert_eq!(s.window, (Some(1_000_000 - 86_400), Some(1_000_000)));
        assert_eq!((s.limit, s.offset), (Some(3), Some(1)));
        let s = parse(&["list", "p", "--time=100..200", "--select=hostname", "--select", "pid"]).unwrap();
        assert_eq!(s.window, (Some(100), Some(200)));
        assert_eq!(s.select, vec!["hostname", "pid"]);
        for (bad, want) in [
            (&["list", "p", "--filter=hostname"][..], "bad filter"),
            (&["list", "p", "--age=1d", "--time=1..2"], "exclude each other"),
            (&["list", "p", "--json", "--csv"], "exclude each other"),
            (&["list", "p", "--factor=a", "--select=b"], "give one"),
            (&["list", "p", "--select=a", "--unique=b"], "not with --select"),
            (&["list", "p", "--age=soon"], "bad duration"),
        ] {
            let e = parse(bad).unwrap_err();
            assert!(e.contains(want), "{bad:?}: {e}");
        }
    }
}
