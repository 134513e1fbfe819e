//! `bt coroner project|token|user|check`: administer a stopped store's data
//! directory (projects, retention, tokens, users, consistency checks).

use std::io::{BufRead, IsTerminal};
use std::path::PathBuf;

use anyhow::{Context, bail};
use argh::FromArgs;

use crate::store::{Retention, Scope, Store};

use super::{default_data_dir, parse_duration, parse_size, prompt_hidden};

/// Administer the data directory of the object store (stop the server first: one
/// process holds the store).
#[derive(FromArgs, Debug)]
struct AdminArgs {
    /// data directory (default $XDG_DATA_HOME/bt/store, or ~/.local/share/bt/store)
    #[argh(option)]
    data: Option<PathBuf>,
    /// the catalog in PostgreSQL instead of DATA/store.redb: postgres://USER@HOST:PORT/DB (password from
    /// PGPASSWORD or .pgpass)
    #[argh(option)]
    catalog: Option<String>,
    /// reports and attachments in an S3-compatible bucket: s3://BUCKET?endpoint=URL&region=R
    /// (credentials from AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or --blobs-credentials)
    #[argh(option)]
    blobs: Option<String>,
    /// a file with aws_access_key_id = … and aws_secret_access_key = … lines
    #[argh(option)]
    blobs_credentials: Option<PathBuf>,
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
    Sweep(SweepArgs),
    Migrate(MigrateArgs),
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

/// Remove blobs of the --blobs bucket that no committed object names (bt serve does it hourly).
#[derive(FromArgs, Debug)]
#[argh(
    subcommand,
    name = "sweep",
    example = "bt coroner --catalog postgres://bt@db:5432/bt --blobs 's3://crashes?endpoint=http://s3:8333' sweep --grace 1h"
)]
struct SweepArgs {
    /// leave blobs younger than this (default 1h; it must exceed any commit in progress)
    #[argh(option, default = "String::from(\"1h\")")]
    grace: String,
}

/// Copy the store in --data to --catalog/--blobs (or back with --back), resumable, verified.
#[derive(FromArgs, Debug)]
#[argh(
    subcommand,
    name = "migrate",
    example = "bt coroner --data /var/lib/bt --catalog postgres://bt@db:5432/bt --blobs 's3://crashes?endpoint=http://s3:8333' migrate"
)]
struct MigrateArgs {
    /// from --catalog/--blobs into the data directory's own file instead
    #[argh(switch)]
    back: bool,
}

pub(super) const ADMIN_USAGE: &str = "usage: bt coroner [--data DIR] COMMAND
  serve [--listen ADDR] ...              run the server (also: bt serve, bt coroner --listen ...)
  project create NAME [--max-age D] [--max-size S]
  project list | project remove NAME
  project retention NAME [--max-age D] [--max-size S]
  token create PROJECT [--scope submit|query|object|symbols|admin ...]   (prints the token)
  token list | token remove ID
  user add NAME [--admin | --project P…] (password from the terminal, or the first line of stdin)
  user list | user remove NAME
  check                                  verify the store's invariants
  sweep [--grace 1h]                     remove blobs no object names (with --blobs)
  migrate [--back]                       copy --data's store to --catalog/--blobs (or back)
  integration add PROJECT NAME --webhook URL [--secret S] | --slack URL
                | --jira URL --jira-project KEY --jira-user EMAIL --jira-token-file F
  integration list PROJECT | remove PROJECT NAME | log PROJECT NAME | test PROJECT NAME
  integration rule add PROJECT --on new,regression,unmuted[,threshold:N/WINDOW]
                [--filter ATTR,OP,VALUE] --to NAME[,NAME] [--every 10m]
  integration rule list PROJECT | rule remove PROJECT ID
  (integration commands work against a running server: --url URL --token T, or the
   morgue session; or on a stopped store with --data DIR)
";

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

fn when(ts: i64) -> String {
    ts.to_string()
}

/// `--data DIR` may come anywhere (as it always could): it moves in front of the
/// subcommand words, where argh expects it.
fn data_first(raw: &[String]) -> Vec<String> {
    let (mut front, mut rest) = (Vec::new(), Vec::new());
    let mut i = 0;
    while i < raw.len() {
        if ["--data", "--catalog", "--blobs", "--blobs-credentials"].contains(&raw[i].as_str()) && i + 1 < raw.len() {
            front.extend_from_slice(&raw[i..i + 2]);
            i += 2;
        } else if ["--data=", "--catalog=", "--blobs=", "--blobs-credentials="].iter().any(|o| raw[i].starts_with(o)) {
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

pub(super) fn admin(name: &str, raw: &[String]) -> anyhow::Result<i32> {
    let args: AdminArgs = match crate::cmd::parse_args(name, &data_first(raw)) {
        Ok(a) => a,
        Err(code) => return Ok(code),
    };
    let data = args.data.clone().unwrap_or_else(default_data_dir);
    let backend = super::backend(&args.catalog, &args.blobs, &args.blobs_credentials);
    let open = || match Store::open_admin_with(&data, &backend) {
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
        AdminCmd::Sweep(a) => {
            if backend.blobs.is_none() {
                bail!(
                    "sweep needs --blobs (and the --catalog that names its objects): the embedded store has nothing to sweep"
                );
            }
            let grace = parse_duration(&a.grace)?;
            let s = open()?.sweep_blobs(grace as i64)?;
            println!("{} blobs, {} named by no object, {} removed", s.blobs, s.orphans, s.removed);
            println!(
                "{} sparse packs compacted ({} blobs moved; the old packs go with the next sweep)",
                s.compacted, s.moved
            );
        }
        AdminCmd::Migrate(a) => {
            if backend.catalog.is_none() {
                bail!("migrate needs --catalog postgres://… (and usually --blobs s3://…)");
            }
            let embedded = match Store::open_admin(&data) {
                Err(crate::store::StoreError::Busy(dir)) => {
                    bail!("{} is held by a running bt serve: stop it first", dir.display())
                }
                r => r.with_context(|| format!("opening the store in {}", data.display()))?,
            };
            let shared = open()?;
            let (from, to) = if a.back { (&shared, &embedded) } else { (&embedded, &shared) };
            let t0 = std::time::Instant::now();
            let tables = from.migrate_into(to, |t| {
                eprintln!(
                    "{name}: {:<16} {:>10} entries ({} copied now), sha256 {}",
                    t.table,
                    t.entries,
                    t.copied,
                    &t.checksum[..16]
                );
            })?;
            let n: u64 = tables.iter().map(|t| t.entries).sum();
            eprintln!(
                "{name}: migrated and verified {n} entries in {} tables in {:.1} s",
                tables.len(),
                t0.elapsed().as_secs_f64()
            );
        }
        AdminCmd::Check(_) => {
            let problems = open()?.check()?;
            for p in &problems {
                println!("{p}");
            }
            if !problems.is_empty() {
                eprintln!("{name}: {} problem(s)", problems.len());
                return Ok(crate::cmd::exit::FAILURE);
            }
            eprintln!("{name}: store is consistent");
        }
    }
    Ok(crate::cmd::exit::OK)
}
