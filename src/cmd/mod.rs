//! The applets: one file each, turning raw arguments into options and calling the
//! library. [`dispatch`] is the one place that decides the exit code.

pub mod coresnap;
pub mod coroner;
pub mod hydra;
pub mod morgue;
pub mod ptrace;
pub mod rules;

use std::path::Path;

/// Exit codes shared by every applet.
pub mod exit {
    pub const OK: i32 = 0;
    /// The operation failed (bad input, no such pid, I/O error).
    pub const FAILURE: i32 = 1;
    /// The command line was wrong, or the applet is unknown.
    pub const USAGE: i32 = 2;
    /// The applet exists in the design but is not built yet.
    pub const NOT_BUILT: i32 = 3;
}

/// An entry of the applet table.
pub struct Applet {
    pub name: &'static str,
    pub about: &'static str,
    /// `None` for applets not built yet.
    pub run: Option<fn(&str, &[String]) -> anyhow::Result<i32>>,
}

/// The applet table, in the order `bt --list` prints it.
pub const APPLETS: &[Applet] = &[
    Applet { name: "ptrace", about: "snapshot a live process (PID) or a core file (--core)", run: Some(ptrace::run) },
    Applet {
        name: "coresnap",
        about: "crash collector: core_pattern handler, spool and sender daemon",
        run: Some(coresnap::run),
    },
    Applet { name: "coresnapd", about: "alias of coresnap daemon", run: Some(coresnap::run) },
    Applet {
        name: "coroner",
        about: "object store server: ingest, deduplicate, index, query",
        run: Some(coroner::run),
    },
    Applet { name: "serve", about: "alias of coroner", run: Some(coroner::run) },
    Applet {
        name: "morgue",
        about: "query CLI: login, list/group/filter/aggregate, describe, get, put, delete",
        run: Some(morgue::run),
    },
    Applet {
        name: "hydra",
        about: "terminal viewer of one snapshot (file, PID, core, or a stored object)",
        run: Some(hydra::run),
    },
    Applet { name: "rules", about: "deduplication rules: fingerprint, explain, check, eval", run: Some(rules::run) },
];

fn find(name: &str) -> Option<&'static Applet> {
    let name = name.strip_prefix("bt-").unwrap_or(name);
    APPLETS.iter().find(|a| a.name == name)
}

fn usage() -> String {
    let mut s = String::from(
        "usage: bt APPLET [ARGS...]   (or call bt through a symlink named after the applet)\n       bt PID | bt --core CORE [EXE]   (shorthand for bt ptrace)\n\napplets:\n",
    );
    for a in APPLETS {
        s.push_str(&format!("  {:<10} {}{}\n", a.name, a.about, if a.run.is_none() { " (not built yet)" } else { "" }));
    }
    s
}

/// Runs the applet named by argv[0] (after stripping a `bt-` prefix) or argv[1].
/// Returns the process exit code; errors are printed here, as one line.
pub fn dispatch(args: &[String]) -> i32 {
    quiet_broken_pipe();
    let argv0 = args
        .first()
        .map(|a| Path::new(a).file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default())
        .unwrap_or_default();
    let (applet, name, rest) = if let Some(a) = find(&argv0) {
        (a, argv0.clone(), &args[args.len().min(1)..])
    } else {
        let Some(first) = args.get(1) else {
            eprint!("{}", usage());
            return exit::USAGE;
        };
        match first.as_str() {
            "--list" => {
                for a in APPLETS {
                    println!("{:<10} {}{}", a.name, a.about, if a.run.is_none() { " (not built yet)" } else { "" });
                }
                return exit::OK;
            }
            "--help" | "-h" | "help" => {
                print!("{}", usage());
                return exit::OK;
            }
            "--version" | "-V" => {
                println!("bt {}", env!("CARGO_PKG_VERSION"));
                return exit::OK;
            }
            _ => {}
        }
        if let Some(a) = find(first) {
            (a, format!("bt {}", a.name), &args[2..])
        } else if first.starts_with('-') || first.parse::<i32>().is_ok() {
            // `bt PID` and `bt --core CORE`: the lightweight tracer shorthand.
            (find("ptrace").expect("ptrace is in the applet table"), "bt".to_string(), &args[1..])
        } else {
            eprintln!("bt: unknown applet '{first}' (bt --list shows the applets)");
            return exit::USAGE;
        }
    };
    let Some(run) = applet.run else {
        eprintln!("{name}: the {} applet is not built yet", applet.name);
        return exit::NOT_BUILT;
    };
    if matches!(applet.name, "coroner" | "serve" | "coresnap" | "coresnapd") {
        broken_pipe_as_error();
    }
    match run(&name, rest) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("{name}: {}", one_line(&e));
            exit::FAILURE
        }
    }
}

/// Folklore: Rust programs start with SIGPIPE ignored, so printing into a closed pipe
/// (`bt ptrace --core CORE | head`) makes `print!` panic with "Broken pipe". A command
/// that writes its results to stdout ends quietly instead, as `cat` does: the default
/// action of SIGPIPE is put back. Servers and the collector keep ignoring it (a client
/// that hangs up is an error for one request, not for the process).
fn quiet_broken_pipe() {
    use nix::sys::signal::{SigHandler, Signal, signal};
    // SAFETY: called once at start, before any thread exists; SIG_DFL installs no
    // handler code.
    let _ = unsafe { signal(Signal::SIGPIPE, SigHandler::SigDfl) };
}

/// Back to Rust's default for the long-running applets: a write to a closed pipe
/// returns an error.
fn broken_pipe_as_error() {
    use nix::sys::signal::{SigHandler, Signal, signal};
    // SAFETY: as in quiet_broken_pipe; SIG_IGN installs no handler code.
    let _ = unsafe { signal(Signal::SIGPIPE, SigHandler::SigIgn) };
}

/// An error as one line: the context chain joined with ": ", each cause once (a
/// typed error that prints its source is followed by that source).
pub fn one_line(e: &anyhow::Error) -> String {
    let mut line = String::new();
    for cause in e.chain() {
        let m = cause.to_string();
        if line.contains(&m) {
            continue;
        }
        if !line.is_empty() {
            line.push_str(": ");
        }
        line.push_str(&m);
    }
    line
}

/// Parses argh arguments; help and usage errors print and become exit codes.
pub fn parse_args<T: argh::FromArgs>(name: &str, args: &[String]) -> Result<T, i32> {
    let strs: Vec<&str> = args.iter().map(String::as_str).collect();
    T::from_args(&[name], &strs).map_err(|early| {
        if early.status.is_ok() {
            print!("{}", early.output);
            exit::OK
        } else {
            eprint!("{}", early.output);
            exit::USAGE
        }
    })
}
