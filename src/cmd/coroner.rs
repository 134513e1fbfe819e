//! `bt coroner` / `bt serve`: run the object store server, and administer its data
//! directory (projects, tokens, users, checks) without a server.

use std::io::{BufRead, IsTerminal, Write};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use argh::FromArgs;

use crate::server::{self, http::Limits};
use crate::store::{Retention, Scope, Store};

/// Run the object store server: ingest, deduplicate, index, query.
#[derive(FromArgs, Debug)]
struct ServeArgs {
    /// data directory (default $XDG_DATA_HOME/bt/store, or ~/.local/share/bt/store)
    #[argh(option)]
    data: Option<PathBuf>,
    /// address to listen on (default 127.0.0.1:6097; port 0 picks a free port)
    #[argh(option, default = "String::from(\"127.0.0.1:6097\")")]
    listen: String,
    /// largest submission in bytes, report and attachments (default 32 MiB)
    #[argh(option, default = "32 << 20")]
    max_submission: u64,
    /// seconds a client may take for one read or write, and x6 for a whole request (default 10)
    #[argh(option, default = "10")]
    io_timeout: u64,
    /// most connections served at once (default 512)
    #[argh(option, default = "512")]
    max_connections: usize,
    /// most connections one client address may hold (default 64; at most a quarter of --max-connections)
    #[argh(option, default = "64")]
    max_per_address: usize,
    /// bytes all submissions being ingested may hold at once, bodies and decoding (default 1 GiB)
    #[argh(option, default = "1 << 30")]
    max_inflight: u64,
    /// seconds between retention passes (default 60)
    #[argh(option, default = "60")]
    retention_every: u64,
    /// TLS certificate chain (PEM; needs a bt built with the tls feature)
    #[argh(option)]
    tls_cert: Option<PathBuf>,
    /// TLS private key (PEM)
    #[argh(option)]
    tls_key: Option<PathBuf>,
    /// base URL of this server for links in notifications (default: the listening address)
    #[argh(option)]
    public_url: Option<String>,
    /// the universe name Backtrace clients see (default: the host name)
    #[argh(option)]
    universe: Option<String>,
    /// how long a login session (console cookie, morgue login) lasts: 7d, 12h, 900s (default 7d)
    #[argh(option, default = "String::from(\"7d\")")]
    session_ttl: String,
}

/// Administer the data directory of the object store (stop the server first: one
/// process holds the store).
#[derive(FromArgs, Debug)]
struct AdminArgs {
    /// data directory (default $XDG_DATA_HOME/bt/store, or ~/.local/share/bt/store)
    #[argh(option)]
    data: Option<PathBuf>,
    #[argh(subcommand)]
    cmd: AdminCmd,
}

#[derive(FromArgs, Debug)]
#[argh(subcommand)]
enum AdminCmd {
    Project(ProjectArgs),
    Token(TokenArgs),
    User(UserArgs),
    Check(CheckArgs),
}

/// Projects: create, list, remove, retention.
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "project", example = "bt coroner project create myapp --max-age 30d --max-size 10G")]
struct ProjectArgs {
    #[argh(subcommand)]
    cmd: ProjectCmd,
}

#[derive(FromArgs, Debug)]
#[argh(subcommand)]
enum ProjectCmd {
    Create(ProjectCreate),
    List(ProjectList),
    Remove(ProjectRemove),
    Retention(ProjectRetention),
}

/// Create a project (retention optional).
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "create", example = "bt coroner project create myapp --max-age 30d")]
struct ProjectCreate {
    /// the project name: letters, digits, '.', '_', '-'
    #[argh(positional)]
    name: String,
    /// retention: maximum age of objects (e.g. 30d, 12h, 1M, 3600)
    #[argh(option)]
    max_age: Option<String>,
    /// retention: maximum blob bytes of the project (e.g. 10G, 500M)
    #[argh(option)]
    max_size: Option<String>,
}

/// List the projects with their object counts and retention.
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "list")]
struct ProjectList {}

/// Remove a project and all its objects.
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "remove")]
struct ProjectRemove {
    /// the project
    #[argh(positional)]
    name: String,
}

/// Set a project's retention (0 disables a bound).
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "retention", example = "bt coroner project retention myapp --max-size 10G")]
struct ProjectRetention {
    /// the project
    #[argh(positional)]
    name: String,
    /// maximum age of objects (e.g. 30d, 12h, 1M, 3600)
    #[argh(option)]
    max_age: Option<String>,
    /// maximum blob bytes of the project (e.g. 10G, 500M)
    #[argh(option)]
    max_size: Option<String>,
}

/// API tokens: create, list, remove.
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "token", example = "bt coroner token create myapp --scope query,object")]
struct TokenArgs {
    #[argh(subcommand)]
    cmd: TokenCmd,
}

#[derive(FromArgs, Debug)]
#[argh(subcommand)]
enum TokenCmd {
    Create(TokenCreate),
    List(TokenList),
    Remove(TokenRemove),
}

/// Create a token for a project; prints it (it is stored only as a hash).
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "create", example = "bt coroner token create myapp --scope submit")]
struct TokenCreate {
    /// the project
    #[argh(positional)]
    project: String,
    /// scopes: submit, query, object, symbols, admin (repeatable or comma-separated; default submit)
    #[argh(option)]
    scope: Vec<String>,
}

/// List the tokens (ids, projects, scopes; never the tokens).
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "list")]
struct TokenList {}

/// Remove a token by id.
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "remove")]
struct TokenRemove {
    /// the token id (token list shows it)
    #[argh(positional)]
    id: String,
}

/// Users of the console and of `bt morgue login`: add, list, remove.
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "user", example = "echo 'a long password' | bt coroner user add alice")]
struct UserArgs {
    #[argh(subcommand)]
    cmd: UserCmd,
}

#[derive(FromArgs, Debug)]
#[argh(subcommand)]
enum UserCmd {
    Add(UserAdd),
    List(UserList),
    Remove(UserRemove),
}

/// Add a user; the password comes from the terminal, or the first line of stdin.
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "add")]
struct UserAdd {
    /// the user name
    #[argh(positional)]
    name: String,
    /// an admin: every project, deleting objects, settings (admin scope)
    #[argh(switch)]
    admin: bool,
    /// a member sees only this project (repeat for several; none: every project)
    #[argh(option)]
    project: Vec<String>,
}

/// List the users.
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "list")]
struct UserList {}

/// Remove a user.
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "remove")]
struct UserRemove {
    /// the user name
    #[argh(positional)]
    name: String,
}

/// Verify the store's invariants (non-zero exit when one is broken).
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "check")]
struct CheckArgs {}

const ADMIN_USAGE: &str = "usage: bt coroner [--data DIR] COMMAND
  serve [--listen ADDR] ...              run the server (also: bt serve, bt coroner --listen ...)
  project create NAME [--max-age D] [--max-size S]
  project list | project remove NAME
  project retention NAME [--max-age D] [--max-size S]
  token create PROJECT [--scope submit|query|object|symbols|admin ...]   (prints the token)
  token list | token remove ID
  user add NAME [--admin | --project P…] (password from the terminal, or the first line of stdin)
  user list | user remove NAME
  check                                  verify the store's invariants
  integration add PROJECT NAME --webhook URL [--secret S] | --slack URL
                | --jira URL --jira-project KEY --jira-user EMAIL --jira-token-file F
  integration list PROJECT | remove PROJECT NAME | log PROJECT NAME | test PROJECT NAME
  integration rule add PROJECT --on new,regression,unmuted[,threshold:N/WINDOW]
                [--filter ATTR,OP,VALUE] --to NAME[,NAME] [--every 10m]
  integration rule list PROJECT | rule remove PROJECT ID
  (integration commands work against a running server: --url URL --token T, or the
   morgue session; or on a stopped store with --data DIR)
";

/// The documented default data directory.
pub fn default_data_dir() -> PathBuf {
    if let Some(x) = std::env::var_os("XDG_DATA_HOME").filter(|x| !x.is_empty()) {
        return PathBuf::from(x).join("bt/store");
    }
    let home = std::env::var_os("HOME").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("."));
    home.join(".local/share/bt/store")
}

pub fn run(name: &str, raw: &[String]) -> anyhow::Result<i32> {
    let is_serve_applet = name.ends_with("serve");
    // The first word that is not an option or an option's value names the command.
    let mut i = 0;
    while i < raw.len() && raw[i].starts_with('-') {
        i += if ["--admin", "--help", "-h"].contains(&raw[i].as_str()) || raw[i].contains('=') { 1 } else { 2 };
    }
    match raw.get(i).map(String::as_str) {
        Some("serve") => serve(name, &[&raw[..i], &raw[i + 1..]].concat()),
        Some("project" | "token" | "user" | "check") if !is_serve_applet => admin(name, raw),
        Some("integration") if !is_serve_applet => integration(name, &[&raw[..i], &raw[i + 1..]].concat()),
        Some("help") => {
            print!("{ADMIN_USAGE}");
            Ok(super::exit::OK)
        }
        _ => serve(name, raw),
    }
}

fn serve(name: &str, raw: &[String]) -> anyhow::Result<i32> {
    let args: ServeArgs = match super::parse_args(name, raw) {
        Ok(a) => a,
        Err(code) => return Ok(code),
    };
    let tls = match (args.tls_cert.clone(), args.tls_key.clone()) {
        (None, None) => None,
        (Some(cert), Some(key)) => Some(server::TlsFiles { cert, key }),
        _ => bail!("--tls-cert and --tls-key go together"),
    };
    if tls.is_some() && !server::TLS_BUILT {
        bail!("this bt was built without TLS (cargo feature tls); rebuild with --features tls or use a TLS proxy");
    }
    let data = args.data.unwrap_or_else(default_data_dir);
    let store = Store::open(&data).with_context(|| format!("opening the store in {}", data.display()))?;
    let opts = server::Options {
        limits: Limits {
            max_body: args.max_submission.max(1 << 20),
            io_timeout: Duration::from_secs(args.io_timeout.max(1)),
            request_deadline: Duration::from_secs(args.io_timeout.max(1) * 6),
            max_connections: args.max_connections.max(1),
            max_per_address: args.max_per_address.max(1),
            ..Limits::default()
        },
        max_submission: args.max_submission,
        max_inflight: args.max_inflight,
        retention_every: Duration::from_secs(args.retention_every.max(1)),
        universe: args.universe.clone().unwrap_or_else(|| {
            nix::unistd::gethostname()
                .ok()
                .and_then(|h| h.into_string().ok())
                .filter(|h| !h.is_empty())
                .unwrap_or_else(|| "bt".into())
        }),
        minidump: Some(minidump_processor(data.join("symbols"))),
        session_secs: crate::units::seconds(&args.session_ttl)
            .ok()
            .and_then(|s| i64::try_from(s).ok())
            .filter(|&s| s > 0)
            .with_context(|| format!("--session-ttl {:?}: a duration such as 7d, 12h or 900s", args.session_ttl))?,
        ..server::Options::default()
    };
    let data_shown = data.display().to_string();
    let scheme = if tls.is_some() { "https" } else { "http" };
    let store = Arc::new(store);
    let notifier = store.clone();
    let public_url = args.public_url.clone();
    server::serve(store, &args.listen, opts, tls, move |addr| {
        // The notification sender starts with the server: it delivers what the
        // outbox holds, including what a killed server left there.
        let console_url = public_url.unwrap_or_else(|| format!("{scheme}://{addr}"));
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        if let Err(e) =
            crate::notify::spawn(notifier, crate::notify::Options { console_url, ..Default::default() }, stop)
        {
            log::error!("starting the notification sender: {e}");
        }
        println!("listening on {scheme}://{addr}");
        let _ = std::io::stdout().flush();
        server::log_line(
            serde_json::json!({"ts": crate::store::now(), "listening": addr.to_string(), "data": data_shown}),
        );
    })?;
    Ok(super::exit::OK)
}

/// `30d`, `12h`, `15m`, `2w`, `3600` (seconds); `0` disables (see [`crate::units`]).
fn parse_duration(s: &str) -> anyhow::Result<u64> {
    Ok(crate::units::seconds(s)?)
}

/// `10G`, `500M`, `64K`, `1024` (bytes); `0` disables (see [`crate::units`]).
fn parse_size(s: &str) -> anyhow::Result<u64> {
    Ok(crate::units::size(s)?)
}

fn read_password(user: &str) -> anyhow::Result<String> {
    let stdin = std::io::stdin();
    if stdin.is_terminal() {
        let first = prompt_hidden(&format!("password for {user}: "))?;
        let second = prompt_hidden("again: ")?;
        if first != second {
            bail!("the passwords differ");
        }
        Ok(first)
    } else {
        let mut line = String::new();
        stdin.lock().read_line(&mut line).context("reading the password from stdin")?;
        Ok(line.trim_end_matches(['\n', '\r']).to_string())
    }
}

/// Reads a line from the terminal with echo off (restored on every path).
pub(crate) fn prompt_hidden(prompt: &str) -> anyhow::Result<String> {
    eprint!("{prompt}");
    use nix::sys::termios::{LocalFlags, SetArg, tcgetattr, tcsetattr};
    let stdin = std::io::stdin();
    let old = tcgetattr(&stdin).ok();
    if let Some(old) = &old {
        let mut quiet = old.clone();
        quiet.local_flags.remove(LocalFlags::ECHO);
        let _ = tcsetattr(&stdin, SetArg::TCSANOW, &quiet);
    }
    let mut line = String::new();
    let r = stdin.lock().read_line(&mut line);
    if let Some(old) = &old {
        let _ = tcsetattr(&stdin, SetArg::TCSANOW, old);
    }
    eprintln!();
    r.context("reading the password")?;
    Ok(line.trim_end_matches(['\n', '\r']).to_string())
}

fn when(ts: i64) -> String {
    ts.to_string()
}

/// `--data DIR` may come anywhere (as it always could): it moves in front of the
/// subcommand words, where argh expects it.
fn data_first(raw: &[String]) -> Vec<String> {
    let (mut front, mut rest) = (Vec::new(), Vec::new());
    let mut i = 0;
    while i < raw.len() {
        if raw[i] == "--data" && i + 1 < raw.len() {
            front.extend_from_slice(&raw[i..i + 2]);
            i += 2;
        } else if raw[i].starts_with("--data=") {
            front.push(raw[i].clone());
            i += 1;
        } else {
            rest.push(raw[i].clone());
            i += 1;
        }
    }
    front.extend(rest);
    front
}

fn retention(max_age: &Option<String>, max_size: &Option<String>) -> anyhow::Result<Retention> {
    Ok(Retention {
        max_age: max_age.as_deref().map(parse_duration).transpose()?,
        max_bytes: max_size.as_deref().map(parse_size).transpose()?,
    })
}

/// How `bt serve` turns a minidump into a snapshot: the tracer over the dump, with
/// module files found by build id on this machine and under `symbols` (uploaded
/// symbols, `.build-id/xx/rest` or by name).
fn minidump_processor(symbols: PathBuf) -> server::MinidumpProcessor {
    Arc::new(move |bytes: &[u8]| {
        let mut opts = crate::trace::TraceOptions::default();
        opts.symbols.debug_dirs.push(symbols.clone());
        // bt's tracer, under catch_unwind; if it fails on a dump the parser accepted,
        // the crash is still stored: walked by minidump-processor, or with nothing but
        // the problem, the dump kept with it.
        let traced = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            crate::trace::trace_minidump("upload", bytes, &opts)
        }));
        let mut snap = match traced {
            Ok(r) => r.map_err(|e| e.to_string())?,
            Err(_) => {
                let why = "bt's tracer failed on this minidump (a bug: the dump is kept with the object)";
                let roots = opts.symbols.debug_dirs.iter().map(|d| d.join("breakpad")).collect();
                let mut s = std::panic::catch_unwind(|| crate::trace::foreign::snapshot("upload", bytes, roots))
                    .ok()
                    .and_then(Result::ok)
                    .unwrap_or_default();
                s.problems.push(crate::snapshot::Problem::new(crate::snapshot::Scope::Snapshot, why));
                s
            }
        };
        // Modules whose files were not found (`bt morgue symbol P missing` counts them).
        let missing: Vec<String> = snap
            .problems
            .iter()
            .filter(|p| p.message.starts_with("no file of "))
            .filter_map(|p| match &p.scope {
                crate::snapshot::Scope::Module(m) => {
                    let id = p.message.split("build id ").nth(1).and_then(|r| r.split(' ').next()).unwrap_or("");
                    Some(format!("{m} {id}"))
                }
                _ => None,
            })
            .collect();
        if !missing.is_empty() {
            snap.attributes
                .push(crate::snapshot::Attribute { key: "_missing_symbols".into(), value: missing.join(", ") });
        }
        snap.encode().map_err(|e| format!("encoding the snapshot: {e}"))
    })
}

fn admin(name: &str, raw: &[String]) -> anyhow::Result<i32> {
    let args: AdminArgs = match super::parse_args(name, &data_first(raw)) {
        Ok(a) => a,
        Err(code) => return Ok(code),
    };
    let data = args.data.clone().unwrap_or_else(default_data_dir);
    let open = || match Store::open_admin(&data) {
        Err(crate::store::StoreError::Busy(dir)) => Err(anyhow::anyhow!(
            "{} is held by a running bt serve (one process holds the store): stop it, or make this change while it \
             runs in the console's Settings page (http://HOST:PORT/settings) or with its admin API, e.g. \
             curl -H \"Authorization: Bearer $SESSION\" -d '{{\"create\":\"NAME\"}}' http://HOST:PORT/api/admin/projects \
             (projects, tokens, users; README, \"The web console\")",
            dir.display()
        )),
        r => r.with_context(|| format!("opening the store in {}", data.display())),
    };
    match args.cmd {
        AdminCmd::Project(p) => match p.cmd {
            ProjectCmd::Create(c) => {
                let project = &c.name;
                let r = retention(&c.max_age, &c.max_size)?;
                let store = open()?;
                store.create_project(project).with_context(|| format!("creating project {project}"))?;
                if r.max_age.is_some() || r.max_bytes.is_some() {
                    store.set_retention(project, r)?;
                }
                eprintln!("{name}: created project {project}");
            }
            ProjectCmd::List(_) => {
                let store = open()?;
                println!("{:<24} {:>10} {:>12} {:>14} created", "project", "objects", "max-age(s)", "max-bytes");
                for p in store.list_projects()? {
                    println!(
                        "{:<24} {:>10} {:>12} {:>14} {}",
                        p.name,
                        p.objects,
                        p.record.max_age,
                        p.record.max_bytes,
                        when(p.record.created)
                    );
                }
            }
            ProjectCmd::Remove(r) => {
                let project = &r.name;
                open()?.remove_project(project).with_context(|| format!("removing project {project}"))?;
                eprintln!("{name}: removed project {project} and all its objects");
            }
            ProjectCmd::Retention(c) => {
                let project = &c.name;
                let r = retention(&c.max_age, &c.max_size)?;
                if r.max_age.is_none() && r.max_bytes.is_none() {
                    bail!("give --max-age and/or --max-size (0 disables)");
                }
                let rec = open()?.set_retention(project, r).with_context(|| format!("project {project}"))?;
                println!("{project}: max-age {} s, max-size {} bytes", rec.max_age, rec.max_bytes);
            }
        },
        AdminCmd::Token(t) => match t.cmd {
            TokenCmd::Create(c) => {
                let project = &c.project;
                let mut scopes = Vec::new();
                for s in if c.scope.is_empty() { vec!["submit".to_string()] } else { c.scope.clone() } {
                    for one in s.split(',') {
                        scopes.push(Scope::parse(one.trim()).with_context(|| {
                            format!("unknown scope {one:?} (submit, query, object, symbols, admin)")
                        })?);
                    }
                }
                let token = open()?
                    .create_token(project, &scopes)
                    .with_context(|| format!("creating a token for {project}"))?;
                println!("{token}");
            }
            TokenCmd::List(_) => {
                println!("{:<14} {:<24} {:<28} created", "id", "project", "scopes");
                for t in open()?.list_tokens()? {
                    let scopes: Vec<&str> = t.record.scopes.iter().map(|s| s.as_str()).collect();
                    println!(
                        "{:<14} {:<24} {:<28} {}",
                        t.id,
                        t.record.project,
                        scopes.join(","),
                        when(t.record.created)
                    );
                }
            }
            TokenCmd::Remove(r) => {
                let id = &r.id;
                open()?.remove_token(id).with_context(|| format!("removing token {id}"))?;
                eprintln!("{name}: removed token {id}");
            }
        },
        AdminCmd::User(u) => match u.cmd {
            UserCmd::Add(a) => {
                let user = &a.name;
                let store = open()?;
                let password = read_password(user)?;
                store.add_user(user, &password, a.admin, &a.project).with_context(|| format!("adding user {user}"))?;
                eprintln!("{name}: added user {user}");
            }
            UserCmd::List(_) => {
                println!("{:<24} {:<6} {:<20} projects", "user", "admin", "created");
                let store = open()?;
                for (u, rec) in store.list_users()? {
                    let projects = match store.member_projects(&u)? {
                        Some(ps) if !rec.admin => ps.join(","),
                        _ => "*".to_string(),
                    };
                    println!("{:<24} {:<6} {:<20} {projects}", u, rec.admin, when(rec.created));
                }
            }
            UserCmd::Remove(r) => {
                let user = &r.name;
                open()?.remove_user(user).with_context(|| format!("removing user {user}"))?;
                eprintln!("{name}: removed user {user}");
            }
        },
        AdminCmd::Check(_) => {
            let problems = open()?.check()?;
            for p in &problems {
                println!("{p}");
            }
            if !problems.is_empty() {
                eprintln!("{name}: {} problem(s)", problems.len());
                return Ok(super::exit::FAILURE);
            }
            eprintln!("{name}: store is consistent");
        }
    }
    Ok(super::exit::OK)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_and_sizes() {
        assert_eq!(parse_duration("30d").unwrap(), 30 * 86400);
        assert_eq!(parse_duration("3600").unwrap(), 3600);
        assert!(parse_duration("soon").is_err());
        assert_eq!(parse_size("10G").unwrap(), 10 << 30);
        assert_eq!(parse_size("500MiB").unwrap(), 500 << 20);
        assert!(parse_size("x").is_err());
    }
}

/// Notification integrations and their rules (bt coroner integration …).
#[derive(FromArgs, Debug)]
struct IntegrationTop {
    #[argh(subcommand)]
    cmd: IntegrationCmd,
}

#[derive(FromArgs, Debug)]
#[argh(subcommand)]
enum IntegrationCmd {
    Add(IntegrationAdd),
    List(IntegrationOne),
    Remove(IntegrationNamed),
    Log(IntegrationLog),
    Test(IntegrationTest),
    Rule(RuleTop),
}

/// Add an integration: --webhook URL [--secret S], --slack URL, or --jira URL with
/// --jira-project, --jira-user and --jira-token-file.
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "add")]
struct IntegrationAdd {
    /// the project
    #[argh(positional)]
    project: String,
    /// the integration's name
    #[argh(positional)]
    name: String,
    /// a generic webhook: POST JSON to this URL
    #[argh(option)]
    webhook: Option<String>,
    /// the webhook's HMAC-SHA256 secret (X-Bt-Signature)
    #[argh(option)]
    secret: Option<String>,
    /// a Slack incoming-webhook URL
    #[argh(option)]
    slack: Option<String>,
    /// a Jira base URL (https://example.atlassian.net)
    #[argh(option)]
    jira: Option<String>,
    /// the Jira project key
    #[argh(option)]
    jira_project: Option<String>,
    /// the Jira user (e-mail)
    #[argh(option)]
    jira_user: Option<String>,
    /// a file holding the Jira API token
    #[argh(option)]
    jira_token_file: Option<PathBuf>,
    /// the Jira issue type (default Bug)
    #[argh(option, default = "String::from(\"Bug\")")]
    jira_issue_type: String,
    #[argh(option, description = "local data directory (a stopped store)")]
    data: Option<PathBuf>,
    #[argh(option, description = "server URL (default: the morgue session's)")]
    url: Option<String>,
    #[argh(option, description = "an API token with the admin scope")]
    token: Option<String>,
}

/// List the integrations (no secrets) and rules of a project.
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "list")]
struct IntegrationOne {
    /// the project
    #[argh(positional)]
    project: String,
    #[argh(option, description = "local data directory (a stopped store)")]
    data: Option<PathBuf>,
    #[argh(option, description = "server URL (default: the morgue session's)")]
    url: Option<String>,
    #[argh(option, description = "an API token with the admin scope")]
    token: Option<String>,
}

/// Remove an integration.
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "remove")]
struct IntegrationNamed {
    /// the project
    #[argh(positional)]
    project: String,
    /// the integration
    #[argh(positional)]
    name: String,
    #[argh(option, description = "local data directory (a stopped store)")]
    data: Option<PathBuf>,
    #[argh(option, description = "server URL (default: the morgue session's)")]
    url: Option<String>,
    #[argh(option, description = "an API token with the admin scope")]
    token: Option<String>,
}

/// The delivery log of an integration (newest first).
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "log")]
struct IntegrationLog {
    /// the project
    #[argh(positional)]
    project: String,
    /// the integration
    #[argh(positional)]
    name: String,
    /// print JSON
    #[argh(switch)]
    json: bool,
    #[argh(option, description = "local data directory (a stopped store)")]
    data: Option<PathBuf>,
    #[argh(option, description = "server URL (default: the morgue session's)")]
    url: Option<String>,
    #[argh(option, description = "an API token with the admin scope")]
    token: Option<String>,
}

/// Send a test message through an integration.
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "test")]
struct IntegrationTest {
    /// the project
    #[argh(positional)]
    project: String,
    /// the integration
    #[argh(positional)]
    name: String,
    #[argh(option, description = "local data directory (a stopped store)")]
    data: Option<PathBuf>,
    #[argh(option, description = "server URL (default: the morgue session's)")]
    url: Option<String>,
    #[argh(option, description = "an API token with the admin scope")]
    token: Option<String>,
}

/// Rules: which events go to which integrations.
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "rule")]
struct RuleTop {
    #[argh(subcommand)]
    cmd: RuleCmd,
}

#[derive(FromArgs, Debug)]
#[argh(subcommand)]
enum RuleCmd {
    Add(RuleAdd),
    List(RuleList),
    Remove(RuleRemove),
}

/// Add a rule: --on new,regression,unmuted,threshold:N/WINDOW --to NAME[,NAME].
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "add")]
struct RuleAdd {
    /// the project
    #[argh(positional)]
    project: String,
    /// events: new, regression, unmuted, threshold:N/WINDOW (comma-separated)
    #[argh(option)]
    on: String,
    /// only crashes matching ATTR,OP,VALUE (equal, not-equal, contains, regular-expression; repeatable)
    #[argh(option)]
    filter: Vec<String>,
    /// integrations (comma-separated)
    #[argh(option)]
    to: String,
    /// least time between two notifications of this rule for one group (default 0)
    #[argh(option, default = "String::from(\"0\")")]
    every: String,
    #[argh(option, description = "local data directory (a stopped store)")]
    data: Option<PathBuf>,
    #[argh(option, description = "server URL (default: the morgue session's)")]
    url: Option<String>,
    #[argh(option, description = "an API token with the admin scope")]
    token: Option<String>,
}

/// List the rules of a project.
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "list")]
struct RuleList {
    /// the project
    #[argh(positional)]
    project: String,
    #[argh(option, description = "local data directory (a stopped store)")]
    data: Option<PathBuf>,
    #[argh(option, description = "server URL (default: the morgue session's)")]
    url: Option<String>,
    #[argh(option, description = "an API token with the admin scope")]
    token: Option<String>,
}

/// Remove a rule by id.
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "remove")]
struct RuleRemove {
    /// the project
    #[argh(positional)]
    project: String,
    /// the rule id (rule list shows it)
    #[argh(positional)]
    id: u32,
    #[argh(option, description = "local data directory (a stopped store)")]
    data: Option<PathBuf>,
    #[argh(option, description = "server URL (default: the morgue session's)")]
    url: Option<String>,
    #[argh(option, description = "an API token with the admin scope")]
    token: Option<String>,
}

fn integration(name: &str, raw: &[String]) -> anyhow::Result<i32> {
    use crate::store::outbox::{Condition, Integration, Kind, Rule, Trigger};
    use crate::store::workflow::Call;
    use serde_json::json;
    let top: IntegrationTop = match super::parse_args(name, raw) {
        Ok(a) => a,
        Err(code) => return Ok(code),
    };
    let connect = |data: &Option<PathBuf>, url: &Option<String>, token: &Option<String>| {
        super::morgue::backend(data.as_deref(), url.as_deref(), token.as_deref())
    };
    let dur = |s: &str| crate::units::seconds(s).ok().and_then(|v| i64::try_from(v).ok());
    match top.cmd {
        IntegrationCmd::Add(a) => {
            let kind = match (&a.webhook, &a.slack, &a.jira) {
                (Some(url), None, None) => Kind::Webhook { url: url.clone(), secret: a.secret.clone() },
                (None, Some(url), None) => Kind::Slack { url: url.clone() },
                (None, None, Some(url)) => {
                    let (Some(key), Some(user), Some(file)) = (&a.jira_project, &a.jira_user, &a.jira_token_file)
                    else {
                        bail!("--jira needs --jira-project, --jira-user and --jira-token-file");
                    };
                    let token = std::fs::read_to_string(file)
                        .with_context(|| format!("reading the Jira token from {}", file.display()))?
                        .trim()
                        .to_string();
                    if token.is_empty() {
                        bail!("{} holds no token", file.display());
                    }
                    Kind::Jira {
                        url: url.clone(),
                        project_key: key.clone(),
                        user: user.clone(),
                        token,
                        issue_type: a.jira_issue_type.clone(),
                    }
                }
                _ => bail!("give exactly one of --webhook, --slack, --jira"),
            };
            let i = Integration { name: a.name.clone(), kind, created: 0 };
            let b = connect(&a.data, &a.url, &a.token)?;
            b.workflow(&a.project, Call::Integration(&json!({"add": i})))?;
            eprintln!("{name}: integration {} added to {}", a.name, a.project);
        }
        IntegrationCmd::List(a) => {
            let b = connect(&a.data, &a.url, &a.token)?;
            let v = b.workflow(&a.project, Call::Integrations)?;
            println!("{:#}", json!({"integrations": v["integrations"], "rules": v["rules"]}));
        }
        IntegrationCmd::Remove(a) => {
            let b = connect(&a.data, &a.url, &a.token)?;
            b.workflow(&a.project, Call::Integration(&json!({"remove": a.name})))?;
            eprintln!("{name}: integration {} removed", a.name);
        }
        IntegrationCmd::Test(a) => {
            let b = connect(&a.data, &a.url, &a.token)?;
            let v = b.workflow(&a.project, Call::Integration(&json!({"test": a.name})))?;
            eprintln!(
                "{name}: test message queued as delivery {} (bt coroner integration log {} {} shows the outcome)",
                v["delivery"].as_str().unwrap_or("?"),
                a.project,
                a.name
            );
        }
        IntegrationCmd::Log(a) => {
            let b = connect(&a.data, &a.url, &a.token)?;
            let v = b.workflow(&a.project, Call::Log { name: &a.name })?;
            if a.json {
                println!("{:#}", v["deliveries"]);
            } else {
                for d in v["deliveries"].as_array().into_iter().flatten() {
                    println!(
                        "{}  {:<9} {:<10} {:>4} attempts {:<3} {} {}",
                        crate::query::render::utc(d["time"].as_i64().unwrap_or(0)),
                        d["status"].as_str().unwrap_or(""),
                        d["event"].as_str().unwrap_or(""),
                        d["code"].as_u64().map(|c| c.to_string()).unwrap_or_else(|| "-".into()),
                        d["attempts"].as_u64().unwrap_or(0),
                        d["fingerprint"].as_str().unwrap_or(""),
                        // A receiver's answer: escaped for the terminal.
                        crate::snapshot::render::for_terminal(d["error"].as_str().unwrap_or(""))
                    );
                }
            }
        }
        IntegrationCmd::Rule(r) => match r.cmd {
            RuleCmd::Add(a) => {
                let triggers =
                    a.on.split(',')
                        .filter(|t| !t.is_empty())
                        .map(|t| Trigger::parse(t, &dur))
                        .collect::<Result<Vec<_>, _>>()
                        .map_err(anyhow::Error::msg)?;
                let filters = a
                    .filter
                    .iter()
                    .map(|f| Condition::parse(f))
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(anyhow::Error::msg)?;
                let to: Vec<String> = a.to.split(',').filter(|t| !t.is_empty()).map(str::to_string).collect();
                let every = dur(&a.every).with_context(|| format!("bad --every {:?}", a.every))?;
                let rule = Rule { id: 0, triggers, filters, to, every };
                let b = connect(&a.data, &a.url, &a.token)?;
                let v = b.workflow(&a.project, Call::Rule(&json!({"add": rule})))?;
                println!("{}", v["id"]);
            }
            RuleCmd::List(a) => {
                let b = connect(&a.data, &a.url, &a.token)?;
                let v = b.workflow(&a.project, Call::Integrations)?;
                println!("{:#}", v["rules"]);
            }
            RuleCmd::Remove(a) => {
                let b = connect(&a.data, &a.url, &a.token)?;
                b.workflow(&a.project, Call::Rule(&json!({"remove": a.id})))?;
                eprintln!("{name}: rule {} removed", a.id);
            }
        },
    }
    Ok(super::exit::OK)
}
