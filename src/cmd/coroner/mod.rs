//! `bt coroner` / `bt serve`: run the object store server, and administer its data
//! directory (projects, tokens, users, checks) without a server.

use std::io::{BufRead, Write};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use argh::FromArgs;

use crate::server::{self, http::Limits};
use crate::store::Store;

mod admin;
mod integration;

use admin::{ADMIN_USAGE, admin};
use integration::integration;

/// Run the object store server: ingest, deduplicate, index, query.
#[derive(FromArgs, Debug)]
struct ServeArgs {
    /// data directory (default $XDG_DATA_HOME/bt/store, or ~/.local/share/bt/store)
    #[argh(option)]
    data: Option<PathBuf>,
    /// the catalog in PostgreSQL, shared by every node given the same URL:
    /// postgres://USER@HOST:PORT/DB (password from PGPASSWORD or .pgpass)
    #[argh(option)]
    catalog: Option<String>,
    /// reports and attachments in an S3-compatible bucket: s3://BUCKET?endpoint=URL&region=R
    /// (credentials from AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or --blobs-credentials)
    #[argh(option)]
    blobs: Option<String>,
    /// a file with aws_access_key_id = … and aws_secret_access_key = … lines
    #[argh(option)]
    blobs_credentials: Option<PathBuf>,
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

/// The backend the flags name (`--catalog`, `--blobs`, `--blobs-credentials`; argh
/// has no flattening, so serve and the admin commands declare them each), falling
/// back to `BT_CATALOG`, `BT_BLOBS` and `BT_BLOBS_CREDENTIALS`.
pub(super) fn backend(
    catalog: &Option<String>,
    blobs: &Option<String>,
    credentials: &Option<PathBuf>,
) -> crate::store::Backend {
    let env = crate::store::Backend::from_env();
    crate::store::Backend {
        catalog: catalog.clone().or(env.catalog),
        blobs: blobs.clone().or(env.blobs),
        blobs_credentials: credentials.clone().or(env.blobs_credentials),
    }
}

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
        Some("project" | "token" | "user" | "check" | "sweep" | "migrate") if !is_serve_applet => admin(name, raw),
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
    let backend = backend(&args.catalog, &args.blobs, &args.blobs_credentials);
    let store = Store::open_with(&data, &backend).with_context(|| match &backend.catalog {
        Some(_) => format!("opening the store (data {}, catalog in PostgreSQL)", data.display()),
        None => format!("opening the store in {}", data.display()),
    })?;
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
    // What the index costs, for whoever sizes the node.
    let (rows, bytes) = store
        .index_memory()
        .map(|ps| ps.iter().fold((0, 0), |(r, b), p| (r + p.1, b + p.2.iter().map(|x| x.1).sum::<usize>())))
        .unwrap_or_default();
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
            serde_json::json!({"ts": crate::store::now(), "listening": addr.to_string(), "data": data_shown,
                "index": {"objects": rows, "bytes": bytes}}),
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
