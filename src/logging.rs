//! The one logging facade's sink: `log` records to stderr, one line each, never
//! panicking (a closed stderr loses the line, not the program). `BT_LOG` picks
//! the level (`error`, `warn`, `info` — the default —, `debug`, `trace`).
//!
//! Lines read `bt[PID]: LEVEL target: message`, with the thread id when it is not
//! the main thread; records whose target is a stream of its own keep that stream's
//! format: `coresnapd` lines read `coresnapd: message` (the collector's log), and
//! `bt::request` lines are the server's JSON request log, printed as they are.

use std::io::Write;

struct Sink;

/// Targets whose lines are printed as the message alone (after their own prefix).
const RAW: &[(&str, &str)] = &[("bt::request", ""), ("coresnapd", "coresnapd: ")];

impl log::Log for Sink {
    fn enabled(&self, meta: &log::Metadata) -> bool {
        meta.level() <= log::max_level()
    }

    fn log(&self, record: &log::Record) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let line = match RAW.iter().find(|(t, _)| *t == record.target()) {
            Some((_, prefix)) => format!("{prefix}{}\n", record.args()),
            None => {
                let pid = std::process::id();
                // SAFETY: gettid has no preconditions and cannot fail.
                let tid = unsafe { libc::gettid() } as u32;
                let thread = if tid == pid { String::new() } else { format!(" tid {tid}") };
                format!(
                    "bt[{pid}{thread}]: {} {}: {}\n",
                    record.level().as_str().to_ascii_lowercase(),
                    record.target().trim_start_matches("bt::"),
                    record.args()
                )
            }
        };
        let _ = std::io::stderr().lock().write_all(line.as_bytes());
    }

    fn flush(&self) {}
}

/// The level `BT_LOG` asks for (info when unset or unknown).
pub fn level_from_env() -> log::LevelFilter {
    std::env::var("BT_LOG").ok().and_then(|v| v.trim().parse().ok()).unwrap_or(log::LevelFilter::Info)
}

/// Installs the sink (once; later calls change nothing).
pub fn init() {
    static SINK: Sink = Sink;
    if log::set_logger(&SINK).is_ok() {
        log::set_max_level(level_from_env());
    }
}
