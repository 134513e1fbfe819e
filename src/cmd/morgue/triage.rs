//! `bt morgue set|assign|tag|ticket|comment|merge|unmerge|history|would-reopen`:
//! the triage commands on groups (fingerprints) and how a group's triage is printed.

use std::path::PathBuf;

use anyhow::{Context, bail};
use argh::FromArgs;

use crate::query::Backend;
use crate::query::flags::{self};
use crate::snapshot::render::for_terminal;
use crate::store::triage::{Change, State, Ticket, UntilSpec};
use crate::store::workflow::Call;

use super::{backend, write_stdout};

/// Merge groups into one: bt morgue merge PROJECT TARGET FINGERPRINT…; the target
/// answers for them (their own fingerprints stay as fingerprint;original).
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "merge")]
pub(super) struct MergeArgs {
    /// the project, the target group, the groups to merge into it
    #[argh(positional)]
    pub(super) words: Vec<String>,
    /// local data directory, no server
    #[argh(option)]
    pub(super) data: Option<PathBuf>,
    /// server URL (default: the session's)
    #[argh(option)]
    pub(super) url: Option<String>,
    /// an API token (admin scope) instead of the session
    #[argh(option)]
    pub(super) token: Option<String>,
}

/// Undo a merge: bt morgue unmerge PROJECT FINGERPRINT….
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "unmerge")]
pub(super) struct UnmergeArgs {
    /// the project, the merged groups
    #[argh(positional)]
    pub(super) words: Vec<String>,
    /// local data directory, no server
    #[argh(option)]
    pub(super) data: Option<PathBuf>,
    /// server URL (default: the session's)
    #[argh(option)]
    pub(super) url: Option<String>,
    /// an API token (admin scope) instead of the session
    #[argh(option)]
    pub(super) token: Option<String>,
}

/// Set the triage state of groups: bt morgue set PROJECT FINGERPRINT… state=STATE
/// [--until version:1.4.0 | time:2027-01-01 | count:100/1d | hosts:10/1h].
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "set")]
pub(super) struct SetArgs {
    /// the project, the fingerprints, then state=open|in-progress|resolved|muted
    #[argh(positional)]
    pub(super) words: Vec<String>,
    /// resolved until version:V (or version:ATTR=V) or time:T; muted until time:T,
    /// count:N/PERIOD or hosts:N/PERIOD
    #[argh(option)]
    pub(super) until: Option<String>,
    /// local data directory, no server
    #[argh(option)]
    pub(super) data: Option<PathBuf>,
    /// server URL (default: the session's)
    #[argh(option)]
    pub(super) url: Option<String>,
    /// an API token (admin scope) instead of the session
    #[argh(option)]
    pub(super) token: Option<String>,
}

/// Assign groups to a user (- unassigns): bt morgue assign PROJECT FINGERPRINT… USER.
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "assign")]
pub(super) struct AssignArgs {
    /// the project, the fingerprints, the user
    #[argh(positional)]
    pub(super) words: Vec<String>,
    /// local data directory, no server
    #[argh(option)]
    pub(super) data: Option<PathBuf>,
    /// server URL (default: the session's)
    #[argh(option)]
    pub(super) url: Option<String>,
    /// an API token (admin scope) instead of the session
    #[argh(option)]
    pub(super) token: Option<String>,
}

/// Tag groups: bt morgue tag PROJECT FINGERPRINT… +add -remove.
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "tag")]
pub(super) struct TagArgs {
    /// the project, the fingerprints, then +TAG / -TAG words (use -- before the first -TAG)
    #[argh(positional)]
    pub(super) words: Vec<String>,
    /// local data directory, no server
    #[argh(option)]
    pub(super) data: Option<PathBuf>,
    /// server URL (default: the session's)
    #[argh(option)]
    pub(super) url: Option<String>,
    /// an API token (admin scope) instead of the session
    #[argh(option)]
    pub(super) token: Option<String>,
}

/// Link a ticket to groups: bt morgue ticket PROJECT FINGERPRINT… SYSTEM:KEY URL.
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "ticket")]
pub(super) struct TicketArgs {
    /// the project, the fingerprints, SYSTEM:KEY, URL
    #[argh(positional)]
    pub(super) words: Vec<String>,
    /// local data directory, no server
    #[argh(option)]
    pub(super) data: Option<PathBuf>,
    /// server URL (default: the session's)
    #[argh(option)]
    pub(super) url: Option<String>,
    /// an API token (admin scope) instead of the session
    #[argh(option)]
    pub(super) token: Option<String>,
}

/// Comment on groups: bt morgue comment PROJECT FINGERPRINT… TEXT.
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "comment")]
pub(super) struct CommentArgs {
    /// the project, the fingerprints, the text (one word: quote it)
    #[argh(positional)]
    pub(super) words: Vec<String>,
    /// local data directory, no server
    #[argh(option)]
    pub(super) data: Option<PathBuf>,
    /// server URL (default: the session's)
    #[argh(option)]
    pub(super) url: Option<String>,
    /// an API token (admin scope) instead of the session
    #[argh(option)]
    pub(super) token: Option<String>,
}

/// A group's triage and its history: bt morgue history PROJECT FINGERPRINT.
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "history")]
pub(super) struct HistoryArgs {
    /// the project
    #[argh(positional)]
    pub(super) project: String,
    /// the fingerprint
    #[argh(positional)]
    pub(super) fingerprint: String,
    /// print JSON
    #[argh(switch)]
    pub(super) json: bool,
    /// local data directory, no server
    #[argh(option)]
    pub(super) data: Option<PathBuf>,
    /// server URL (default: the session's)
    #[argh(option)]
    pub(super) url: Option<String>,
    /// an API token instead of the session
    #[argh(option)]
    pub(super) token: Option<String>,
}

/// Dry run: would a crash with these attributes reopen a resolved group?
/// bt morgue would-reopen PROJECT FINGERPRINT version=1.3.1 [timestamp=T].
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "would-reopen")]
pub(super) struct WouldReopenArgs {
    /// the project, the fingerprint, ATTR=VALUE…
    #[argh(positional)]
    pub(super) words: Vec<String>,
    /// local data directory, no server
    #[argh(option)]
    pub(super) data: Option<PathBuf>,
    /// server URL (default: the session's)
    #[argh(option)]
    pub(super) url: Option<String>,
    /// an API token instead of the session
    #[argh(option)]
    pub(super) token: Option<String>,
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
pub(super) fn triage_line(v: &serde_json::Value) -> String {
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

/// Sets the triage state of groups.
pub(super) fn set(a: SetArgs, now: i64) -> anyhow::Result<()> {
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
    Ok(())
}

/// Assigns groups to a user (`-` for nobody).
pub(super) fn assign(a: AssignArgs) -> anyhow::Result<()> {
    let (project, rest) = project_and(&a.words, "assign PROJECT FINGERPRINT… USER")?;
    let (fps, user) = rest.split_at(rest.len() - 1);
    let user = if user[0] == "-" { None } else { Some(user[0].clone()) };
    let b = backend(a.data.as_deref(), a.url.as_deref(), a.token.as_deref())?;
    change(&b, project, fps, Change::Assign(user))?;
    Ok(())
}

/// Adds (`+TAG`) and removes (`-TAG`) tags of groups.
pub(super) fn tag(a: TagArgs) -> anyhow::Result<()> {
    let (project, rest) = project_and(&a.words, "tag PROJECT FINGERPRINT… +TAG -TAG")?;
    let fps: Vec<String> = rest.iter().filter(|w| !w.starts_with(['+', '-'])).cloned().collect();
    let add = rest.iter().filter_map(|w| w.strip_prefix('+')).map(str::to_string).collect();
    let remove = rest.iter().filter_map(|w| w.strip_prefix('-')).map(str::to_string).collect();
    let b = backend(a.data.as_deref(), a.url.as_deref(), a.token.as_deref())?;
    change(&b, project, &fps, Change::Tags { add, remove })?;
    Ok(())
}

/// Links groups to a ticket.
pub(super) fn ticket(a: TicketArgs) -> anyhow::Result<()> {
    let (project, rest) = project_and(&a.words, "ticket PROJECT FINGERPRINT… SYSTEM:KEY URL")?;
    if rest.len() < 3 {
        bail!("usage: bt morgue ticket PROJECT FINGERPRINT… SYSTEM:KEY URL");
    }
    let (fps, tail) = rest.split_at(rest.len() - 2);
    let (system, key) = tail[0].split_once(':').with_context(|| format!("expected SYSTEM:KEY, got {:?}", tail[0]))?;
    let ticket = Ticket { system: system.into(), key: key.into(), url: tail[1].clone() };
    let b = backend(a.data.as_deref(), a.url.as_deref(), a.token.as_deref())?;
    change(&b, project, fps, Change::Ticket(ticket))?;
    Ok(())
}

/// Comments on groups.
pub(super) fn comment(a: CommentArgs) -> anyhow::Result<()> {
    let (project, rest) = project_and(&a.words, "comment PROJECT FINGERPRINT… TEXT")?;
    let (fps, text) = rest.split_at(rest.len() - 1);
    let b = backend(a.data.as_deref(), a.url.as_deref(), a.token.as_deref())?;
    change(&b, project, fps, Change::Comment(text[0].clone()))?;
    Ok(())
}

/// Merges groups into a target group.
pub(super) fn merge(a: MergeArgs) -> anyhow::Result<()> {
    let (project, rest) = project_and(&a.words, "merge PROJECT TARGET FINGERPRINT…")?;
    let (target, fps) = rest.split_at(1);
    let b = backend(a.data.as_deref(), a.url.as_deref(), a.token.as_deref())?;
    change(&b, project, fps, Change::Merge(target[0].clone()))?;
    Ok(())
}

/// Undoes merges.
pub(super) fn unmerge(a: UnmergeArgs) -> anyhow::Result<()> {
    let Some((project, fps)) = a.words.split_first().filter(|(_, f)| !f.is_empty()) else {
        bail!("usage: bt morgue unmerge PROJECT FINGERPRINT…");
    };
    let b = backend(a.data.as_deref(), a.url.as_deref(), a.token.as_deref())?;
    change(&b, project, fps, Change::Unmerge)?;
    Ok(())
}

/// Prints a group's triage and its history.
pub(super) fn history(a: HistoryArgs) -> anyhow::Result<()> {
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
    Ok(())
}

/// Says whether a crash with these attributes would reopen a group (exit 0 if so).
pub(super) fn would_reopen(a: WouldReopenArgs, now: i64) -> anyhow::Result<i32> {
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
    return Ok(if v["reopens"].as_bool() == Some(true) { super::super::exit::OK } else { super::super::exit::FAILURE });
}
