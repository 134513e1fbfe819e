//! `bt morgue list|describe|get|put|delete`: the object commands, their flags and
//! how their answers are printed.

use std::io::IsTerminal;
use std::path::PathBuf;

use anyhow::{Context, bail};
use argh::FromArgs;

use crate::query::flags::{self, ListSpec};
use crate::query::render::{ago, latency};
use crate::query::{Answer, MorgueError, parse_kv, sniff_format};

use super::{backend, read_line, write_stdout};

/// List crash groups (or objects with --select) of a project.
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "list")]
pub(super) struct ListArgs {
    /// the project
    #[argh(positional)]
    pub(super) project: String,
    /// ATTR,OP,VALUE (repeatable); OP: equal, not-equal, contains, not-contains,
    /// regular-expression, inverse-regular-expression, at-least, greater-than, at-most,
    /// less-than, is-set, is-not-set
    #[argh(option)]
    pub(super) filter: Vec<String>,
    /// group by this attribute (default fingerprint)
    #[argh(option)]
    pub(super) factor: Option<String>,
    /// list single objects with these attributes (repeatable)
    #[argh(option)]
    pub(super) select: Vec<String>,
    /// per group: the values of ATTR and their counts (repeatable)
    #[argh(option)]
    pub(super) histogram: Vec<String>,
    /// per group: how many distinct values ATTR has (repeatable)
    #[argh(option)]
    pub(super) unique: Vec<String>,
    /// per group: ATTR of the first object (repeatable)
    #[argh(option)]
    pub(super) head: Vec<String>,
    /// per group: ATTR of the last object (repeatable)
    #[argh(option)]
    pub(super) tail: Vec<String>,
    /// per group: smallest and largest ATTR (repeatable)
    #[argh(option)]
    pub(super) range: Vec<String>,
    /// per group: sum of ATTR (repeatable)
    #[argh(option)]
    pub(super) sum: Vec<String>,
    /// per group: smallest ATTR (repeatable)
    #[argh(option)]
    pub(super) min: Vec<String>,
    /// per group: largest ATTR (repeatable)
    #[argh(option)]
    pub(super) max: Vec<String>,
    /// sort by [-]COLUMN: count, group, first, last, ATTR;FOLD (groups) or ATTR (--select); - = descending
    #[argh(option)]
    pub(super) sort: Vec<String>,
    /// only objects at most this old (timestamp), e.g. 30d, 12h, 1M
    #[argh(option)]
    pub(super) age: Option<String>,
    /// only objects with timestamps in FROM..TO (Unix seconds, YYYY-MM-DD[THH:MM:SSZ], or 3d = 3 days ago)
    #[argh(option)]
    pub(super) time: Option<String>,
    /// at most this many rows
    #[argh(option)]
    pub(super) limit: Option<usize>,
    /// skip this many rows
    #[argh(option)]
    pub(super) offset: Option<usize>,
    /// output a table (default)
    #[argh(switch)]
    pub(super) table: bool,
    /// output JSON
    #[argh(switch)]
    pub(super) json: bool,
    /// output CSV
    #[argh(switch)]
    pub(super) csv: bool,
    /// local data directory: query it directly, no server
    #[argh(option)]
    pub(super) data: Option<PathBuf>,
    /// server URL (default: the session's)
    #[argh(option)]
    pub(super) url: Option<String>,
    /// an API token to use instead of the session
    #[argh(option)]
    pub(super) token: Option<String>,
}

/// List the attributes of a project and their types.
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "describe")]
pub(super) struct DescribeArgs {
    /// the project
    #[argh(positional)]
    pub(super) project: String,
    /// output JSON
    #[argh(switch)]
    pub(super) json: bool,
    /// local data directory: query it directly, no server
    #[argh(option)]
    pub(super) data: Option<PathBuf>,
    /// server URL (default: the session's)
    #[argh(option)]
    pub(super) url: Option<String>,
    /// an API token to use instead of the session
    #[argh(option)]
    pub(super) token: Option<String>,
}

/// Download an object (a bt snapshot or a JSON report).
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "get")]
pub(super) struct GetArgs {
    /// the project
    #[argh(positional)]
    pub(super) project: String,
    /// the object id (hex, as list --select=object shows)
    #[argh(positional)]
    pub(super) object: String,
    /// write here (default: stdout, or OBJECT.bt / OBJECT.json when stdout is a terminal)
    #[argh(option, short = 'o')]
    pub(super) output: Option<PathBuf>,
    /// local data directory: query it directly, no server
    #[argh(option)]
    pub(super) data: Option<PathBuf>,
    /// server URL (default: the session's)
    #[argh(option)]
    pub(super) url: Option<String>,
    /// an API token to use instead of the session
    #[argh(option)]
    pub(super) token: Option<String>,
}

/// Submit a bt snapshot or a JSON report.
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "put")]
pub(super) struct PutArgs {
    /// the project
    #[argh(positional)]
    pub(super) project: String,
    /// the report file (- for stdin)
    #[argh(positional)]
    pub(super) file: PathBuf,
    /// snapshot or json (default: from the file's first bytes)
    #[argh(option)]
    pub(super) format: Option<String>,
    /// attributes key:value,key2:value2 (repeatable)
    #[argh(option)]
    pub(super) kv: Vec<String>,
    /// output the answer as JSON
    #[argh(switch)]
    pub(super) json: bool,
    /// local data directory: submit to it directly, no server
    #[argh(option)]
    pub(super) data: Option<PathBuf>,
    /// server URL (default: the session's)
    #[argh(option)]
    pub(super) url: Option<String>,
    /// an API token to use instead of the session
    #[argh(option)]
    pub(super) token: Option<String>,
}

/// Delete the objects a filter selects (asks first unless --yes).
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "delete")]
pub(super) struct DeleteArgs {
    /// the project
    #[argh(positional)]
    pub(super) project: String,
    /// ATTR,OP,VALUE (repeatable; at least one filter, --age or --time)
    #[argh(option)]
    pub(super) filter: Vec<String>,
    /// only objects at most this old, e.g. 30d
    #[argh(option)]
    pub(super) age: Option<String>,
    /// only objects with timestamps in FROM..TO
    #[argh(option)]
    pub(super) time: Option<String>,
    /// do not ask for confirmation
    #[argh(switch)]
    pub(super) yes: bool,
    /// allow deleting every object of the project (with no filter, or one that selects all)
    #[argh(switch)]
    pub(super) all: bool,
    /// delete at most this many objects (the oldest first)
    #[argh(option)]
    pub(super) limit: Option<usize>,
    /// local data directory: delete there directly, no server
    #[argh(option)]
    pub(super) data: Option<PathBuf>,
    /// server URL (default: the session's)
    #[argh(option)]
    pub(super) url: Option<String>,
    /// an API token to use instead of the session
    #[argh(option)]
    pub(super) token: Option<String>,
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

pub(super) fn list_spec(a: &ListArgs, now: i64) -> Result<ListSpec, MorgueError> {
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

/// Deletes the objects a filter selects, after asking on a terminal (or --yes).
pub(super) fn delete(name: &str, a: &DeleteArgs, now: i64) -> anyhow::Result<()> {
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

/// Prints the groups or objects a list asks for (table, JSON or CSV).
pub(super) fn list(a: ListArgs, now: i64) -> anyhow::Result<()> {
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
    Ok(())
}

/// Prints the project's attributes, their types and how many objects have each.
pub(super) fn describe(a: DescribeArgs) -> anyhow::Result<()> {
    let backend = backend(a.data.as_deref(), a.url.as_deref(), a.token.as_deref())?;
    let attrs = backend.describe(&a.project)?;
    let out = if a.json {
        let v: Vec<serde_json::Value> =
            attrs.iter().map(|x| serde_json::json!({"name": x.name, "type": x.ty, "objects": x.objects})).collect();
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
    Ok(())
}

/// Writes an object's snapshot to a file (on a terminal) or to stdout.
pub(super) fn get(name: &str, a: GetArgs) -> anyhow::Result<()> {
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
    Ok(())
}

/// Sends a snapshot or a JSON report and prints its object and group.
pub(super) fn put(a: PutArgs) -> anyhow::Result<()> {
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
        format!("{}\n", serde_json::json!({"object": ack.object, "fingerprint": ack.fingerprint, "unique": ack.unique}))
    } else {
        format!(
            "object {} fingerprint {} ({})\n",
            ack.object,
            ack.fingerprint,
            if ack.unique { "new group" } else { "known group" }
        )
    };
    write_stdout(out.as_bytes())?;
    Ok(())
}
