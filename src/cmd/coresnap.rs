//! `bt coresnap`: the crash collector's commands — ingest (run by the kernel), daemon,
//! install/uninstall, list, retry.

use std::path::{Path, PathBuf};

use anyhow::Context;
use argh::FromArgs;

use crate::collector::config::Config;
use crate::collector::daemon::{self, DaemonOptions};
use crate::collector::{ingest, install, spool};

const USAGE: &str = "usage: bt coresnap COMMAND [--config FILE] ...
  install [--force]        point kernel.core_pattern at this bt (remembers the previous value)
  uninstall                restore the previous core_pattern and core_pipe_limit
  daemon [--once]          trace pending crashes and send them to server.url (also: coresnapd)
  list                     crashes in the archive: stage, flags, executable, time, size
  retry ID-PREFIX          re-queue one crash
  ingest %P %i %u %g %s %t %h %E   the kernel's pipe handler (core on stdin)
config: --config FILE, else /etc/coresnap/coresnap.conf or /usr/local/etc/coresnap/coresnap.conf
";

/// Trace the crashes waiting in the archive and send them to server.url, in a loop
/// (also run as `coresnapd`).
#[derive(FromArgs, Debug)]
#[argh(example = "bt coresnap daemon --once")]
struct DaemonArgs {
    /// configuration file
    #[argh(option, short = 'c')]
    config: Option<PathBuf>,
    /// process everything in the archive, then exit (1 when some crashes still wait)
    #[argh(switch)]
    once: bool,
    /// the bt executable used as the tracer (default: this one)
    #[argh(option)]
    tracer: Option<PathBuf>,
}

/// Point kernel.core_pattern at this bt (the previous value is remembered for
/// uninstall).
#[derive(FromArgs, Debug)]
#[argh(example = "bt coresnap install --config /etc/coresnap/coresnap.conf")]
struct InstallArgs {
    /// configuration file (named in core_pattern so the handler reads it)
    #[argh(option, short = 'c')]
    config: Option<PathBuf>,
    /// install even over another handler (apport, systemd-coredump)
    #[argh(switch)]
    force: bool,
}

/// Restore the core_pattern and core_pipe_limit that install replaced.
#[derive(FromArgs, Debug)]
#[argh(example = "bt coresnap uninstall")]
struct UninstallArgs {
    /// configuration file (for the archive that remembers the previous values)
    #[argh(option, short = 'c')]
    config: Option<PathBuf>,
}

/// The crashes in the archive: stage, flags, executable, time, size.
#[derive(FromArgs, Debug)]
#[argh(example = "bt coresnap list --json | jq .stage")]
struct ListArgs {
    /// configuration file
    #[argh(option, short = 'c')]
    config: Option<PathBuf>,
    /// JSON lines instead of a table
    #[argh(switch)]
    json: bool,
}

/// Re-queue one crash: traced again when its core is kept, else sent again.
#[derive(FromArgs, Debug)]
#[argh(example = "bt coresnap retry 3f2a")]
struct RetryArgs {
    /// the crash id (a prefix of its uuid, as list shows it)
    #[argh(positional)]
    id: String,
    /// configuration file
    #[argh(option, short = 'c')]
    config: Option<PathBuf>,
}

pub fn run(name: &str, raw: &[String]) -> anyhow::Result<i32> {
    // `coresnapd` is the daemon.
    if name.ends_with("coresnapd") {
        return daemon_cmd(name, raw);
    }
    let Some(cmd) = raw.first() else {
        eprint!("{USAGE}");
        return Ok(super::exit::USAGE);
    };
    let rest = &raw[1..];
    let name = format!("{name} {cmd}");
    match cmd.as_str() {
        "ingest" => Ok(ingest_cmd(rest)),
        "daemon" => daemon_cmd(&name, rest),
        "install" => {
            let a: InstallArgs = match super::parse_args(&name, rest) {
                Ok(a) => a,
                Err(c) => return Ok(c),
            };
            let config = a.config.as_deref().map(absolute).transpose()?;
            let cfg = Config::load(config.as_deref())?;
            let bt = std::env::current_exe().context("finding this executable")?;
            let pat =
                install::install(&bt, config.as_deref(), &cfg.archive, a.force).context("installing the handler")?;
            println!("core_pattern = {pat}");
            println!("archive: {} (run `bt coresnap daemon` to trace and send)", cfg.archive.display());
            Ok(super::exit::OK)
        }
        "uninstall" => {
            let a: UninstallArgs = match super::parse_args(&name, rest) {
                Ok(a) => a,
                Err(c) => return Ok(c),
            };
            let cfg = Config::load(a.config.as_deref())?;
            let s = install::uninstall(&cfg.archive).context("uninstalling the handler")?;
            println!("core_pattern restored to {}", s.previous_pattern);
            println!("core_pipe_limit restored to {}", s.previous_pipe_limit);
            Ok(super::exit::OK)
        }
        "list" => {
            let a: ListArgs = match super::parse_args(&name, rest) {
                Ok(a) => a,
                Err(c) => return Ok(c),
            };
            let cfg = Config::load(a.config.as_deref())?;
            list(&cfg, a.json)
        }
        "retry" => {
            let a: RetryArgs = match super::parse_args(&name, rest) {
                Ok(a) => a,
                Err(c) => return Ok(c),
            };
            let id = &a.id;
            let cfg = Config::load(a.config.as_deref())?;
            let sp = spool::Spool::new(&cfg.archive);
            let e = sp.find(id)?;
            let e2 = sp.retry(&e).with_context(|| format!("re-queueing {}", e.uuid))?;
            println!("{} {} → {}", e.uuid, e.stage.dir(), e2.stage.dir());
            Ok(super::exit::OK)
        }
        "help" | "--help" | "-h" => {
            print!("{USAGE}");
            Ok(super::exit::OK)
        }
        other => {
            eprint!("unknown command {other:?}\n{USAGE}");
            Ok(super::exit::USAGE)
        }
    }
}

fn absolute(p: &Path) -> anyhow::Result<PathBuf> {
    std::path::absolute(p).with_context(|| format!("resolving {}", p.display()))
}

/// The kernel's handler: never fails a crash, always exits 0 quickly.
fn ingest_cmd(raw: &[String]) -> i32 {
    let mut problems = vec![];
    let mut words: Vec<String> = raw.to_vec();
    let mut config_path = None;
    if words.first().is_some_and(|w| w == "--config" || w == "-c") && words.len() >= 2 {
        config_path = Some(PathBuf::from(&words[1]));
        words.drain(..2);
    }
    let config = match Config::load(config_path.as_deref()) {
        Ok(c) => c,
        Err(e) => {
            // The crash still counts: record it in the default archive.
            problems.push(format!("configuration: {e}"));
            Config::default()
        }
    };
    let args = ingest::CrashArgs::parse(&words, &mut problems);
    let archive = config.archive.clone();
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let stdin = std::io::stdin();
        let mut lock = stdin.lock();
        ingest::ingest(&config, &args, problems, &mut lock)
    }));
    let failure = match outcome {
        Ok(Ok(_)) => None,
        Ok(Err(e)) => Some(e.to_string()),
        Err(_) => Some("the handler panicked".to_string()),
    };
    if let Some(why) = failure {
        // Metadata from the arguments alone, so the crash is still counted.
        let again =
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| ingest::record_minimal(&config, &args, &why)));
        match again {
            Ok(Ok(dir)) => ingest::log(
                &archive,
                &format!("crash of pid {}: {why}; minimal metadata in {}", args.pid, dir.display()),
            ),
            Ok(Err(e)) => ingest::log(&archive, &format!("crash of pid {} LOST: {why}; then {e}", args.pid)),
            Err(_) => ingest::log(&archive, &format!("crash of pid {} LOST: {why}; then a panic", args.pid)),
        }
        eprintln!("coresnap ingest: {why}");
    }
    super::exit::OK
}

fn daemon_cmd(name: &str, raw: &[String]) -> anyhow::Result<i32> {
    let a: DaemonArgs = match super::parse_args(name, raw) {
        Ok(a) => a,
        Err(c) => return Ok(c),
    };
    let cfg = Config::load(a.config.as_deref())?;
    let bt = match a.tracer {
        Some(t) => t,
        None => std::env::current_exe().context("finding this executable")?,
    };
    let once = a.once;
    let s = daemon::run(cfg, DaemonOptions { bt, once, ..Default::default() }).context("running the daemon")?;
    if once {
        eprintln!(
            "coresnapd: traced {}, sent {}, failed {}, waiting in sending/ {}",
            s.traced, s.sent, s.failed, s.waiting
        );
        if s.waiting > 0 {
            return Ok(super::exit::FAILURE);
        }
    }
    Ok(super::exit::OK)
}

fn list(cfg: &Config, json: bool) -> anyhow::Result<i32> {
    let sp = spool::Spool::new(&cfg.archive);
    let entries = sp.all().with_context(|| format!("reading the archive {}", cfg.archive.display()))?;
    if !json {
        println!(
            "{:<36} {:<8} {:<5} {:<20} {:<19} {:>12}",
            "ID", "STAGE", "FLAGS", "EXECUTABLE", "TIME (UTC)", "CORE BYTES"
        );
    }
    let mut totals = std::collections::BTreeMap::<&str, (usize, u64)>::new();
    for e in &entries {
        let m = e.meta().unwrap_or_default();
        // c: core present, s: snapshot present (m: metadata report only), a: sent.
        let flags = format!(
            "{}{}{}",
            if e.has("core") { 'c' } else { '-' },
            if e.has("snapshot.bt") {
                's'
            } else if e.has("report.json") {
                'm'
            } else {
                '-'
            },
            if e.has("sent.json") { 'a' } else { '-' }
        );
        let t = totals.entry(e.stage.dir()).or_default();
        t.0 += 1;
        t.1 += m.core_bytes;
        let error = std::fs::read_to_string(e.dir.join("error")).unwrap_or_default().trim().to_string();
        if json {
            println!(
                "{}",
                serde_json::json!({"id": e.uuid, "stage": e.stage.dir(), "flags": flags, "exe": m.exe, "time": m.time,
                    "pid": m.pid, "signal": m.signal, "core_bytes": m.core_bytes, "core": m.core, "error": error})
            );
        } else {
            println!(
                "{:<36} {:<8} {:<5} {:<20} {:<19} {:>12}",
                e.uuid,
                e.stage.dir(),
                flags,
                m.exe_name(),
                utc(m.time),
                m.core_bytes
            );
            if !error.is_empty() {
                println!("    {error}");
            }
        }
    }
    if !json {
        let parts: Vec<String> = spool::STAGES
            .iter()
            .map(|s| format!("{} {}", s.dir(), totals.get(s.dir()).map(|t| t.0).unwrap_or(0)))
            .collect();
        println!("{} crashes: {}", entries.len(), parts.join(", "));
    }
    Ok(super::exit::OK)
}

/// `YYYY-MM-DD HH:MM:SS` of a Unix time (morgue's renderer does the calendar).
fn utc(t: u64) -> String {
    crate::query::render::utc(i64::try_from(t).unwrap_or(i64::MAX))
}

#[cfg(test)]
mod tests {
    #[test]
    fn utc() {
        assert_eq!(super::utc(0), "1970-01-01 00:00:00");
        assert_eq!(super::utc(1_700_000_000), "2023-11-14 22:13:20");
    }
}
