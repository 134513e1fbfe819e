//! `bt morgue`: the query CLI — login/logout, list, describe, get, put, delete —
//! against a server or, with `--data DIR` (or no login and a local store), directly
//! on a local data directory. Wiring only: the logic lives in [`crate::query`].

use std::io::{BufRead, IsTerminal, Write};
use std::path::Path;

use anyhow::{Context, bail};
use argh::FromArgs;

use crate::query::remote::{self, Remote};
use crate::query::{Backend, MorgueError, session};

mod objects;
mod symbol;
mod triage;

use objects::{DeleteArgs, DescribeArgs, GetArgs, ListArgs, PutArgs};
use symbol::SymbolArgs;
use triage::{
    AssignArgs, CommentArgs, HistoryArgs, MergeArgs, SetArgs, TagArgs, TicketArgs, UnmergeArgs, WouldReopenArgs,
};

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
        Sub::List(a) => objects::list(a, now)?,
        Sub::Describe(a) => objects::describe(a)?,
        Sub::Get(a) => objects::get(name, a)?,
        Sub::Symbol(a) => symbol::run(a)?,
        Sub::Put(a) => objects::put(a)?,
        Sub::Delete(a) => objects::delete(name, &a, now)?,
        Sub::Set(a) => triage::set(a, now)?,
        Sub::Assign(a) => triage::assign(a)?,
        Sub::Tag(a) => triage::tag(a)?,
        Sub::Ticket(a) => triage::ticket(a)?,
        Sub::Comment(a) => triage::comment(a)?,
        Sub::Merge(a) => triage::merge(a)?,
        Sub::Unmerge(a) => triage::unmerge(a)?,
        Sub::History(a) => triage::history(a)?,
        Sub::WouldReopen(a) => return triage::would_reopen(a, now),
    }
    Ok(super::exit::OK)
}

pub(super) fn write_stdout(bytes: &[u8]) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    match out.write_all(bytes).and_then(|_| out.flush()) {
        // A closed pipe (| head) is not an error worth a message.
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        r => r.context("writing to stdout"),
    }
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

pub(super) fn read_line(prompt: &str) -> anyhow::Result<String> {
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

#[cfg(test)]
mod tests {
    use super::objects::list_spec;
    use super::*;
    use crate::query::flags::{self, ListSpec};

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
