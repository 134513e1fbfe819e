//! The coresnap configuration file: `key = value` lines, `#` comments, `[section]`
//! headers (ignored for key lookup); every error names the file and the line.

use std::path::{Path, PathBuf};
use std::time::Duration;

use fancy_regex::Regex;

/// Where the configuration is looked for when no `--config` is given, in order.
pub const DEFAULT_PATHS: &[&str] = &["/etc/coresnap/coresnap.conf", "/usr/local/etc/coresnap/coresnap.conf"];
pub const DEFAULT_ARCHIVE: &str = "/var/coresnap/archive";

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{path}:{line}: {msg}")]
    Line { path: String, line: usize, msg: String },
    #[error("reading {path}: {source}")]
    Io { path: String, source: std::io::Error },
}

/// Free space to keep on the archive's file system.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Quota {
    Percent(f64),
    Bytes(u64),
}

/// `format.N = PROJECT [%e REGEX]`: executables whose name matches go to PROJECT.
#[derive(Debug, Clone)]
pub struct Route {
    pub order: u64,
    pub project: String,
    /// None: the default route.
    pub exe_regex: Option<Regex>,
}

#[derive(Debug, Clone)]
pub struct Config {
    /// The file it was read from, if any.
    pub source: Option<PathBuf>,
    pub archive: PathBuf,
    pub server_url: Option<String>,
    /// (project, token), in file order.
    pub tokens: Vec<(String, String)>,
    /// Sorted by `order`.
    pub routes: Vec<Route>,
    pub dump_quota: Quota,
    pub core_max_size: Option<u64>,
    pub rate_max_per_minute: Option<u32>,
    pub purge_age: Option<Duration>,
    pub purge_disabled: bool,
    pub defaults_command: Option<String>,
    pub tracer_timeout: Duration,
    /// Tracers running at once in the daemon.
    pub tracer_jobs: usize,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            source: None,
            archive: PathBuf::from(DEFAULT_ARCHIVE),
            server_url: None,
            tokens: vec![],
            routes: vec![],
            dump_quota: Quota::Percent(10.0),
            core_max_size: None,
            rate_max_per_minute: None,
            purge_age: Some(Duration::from_secs(7 * 86400)),
            purge_disabled: false,
            defaults_command: None,
            tracer_timeout: Duration::from_secs(60),
            tracer_jobs: 2,
        }
    }
}

/// Longest piece of an error message shown.
const MAX_SHOWN: usize = 200;

fn shown(msg: &str) -> String {
    let clipped: String = msg.chars().take(MAX_SHOWN).collect();
    let mut out = crate::snapshot::render::for_terminal(&clipped).into_owned();
    if msg.chars().count() > MAX_SHOWN {
        out.push_str("… (cut)");
    }
    out
}

impl Config {
    /// Reads `path`, or the first default path that exists, or the built-in defaults.
    pub fn load(path: Option<&Path>) -> Result<Config, ConfigError> {
        let path = match path {
            Some(p) => p.to_path_buf(),
            None => match DEFAULT_PATHS.iter().map(PathBuf::from).find(|p| p.exists()) {
                Some(p) => p,
                None => return Ok(Config::default()),
            },
        };
        let text = std::fs::read_to_string(&path)
            .map_err(|source| ConfigError::Io { path: path.display().to_string(), source })?;
        let mut c = Config::parse(&text, &path.display().to_string())?;
        c.source = Some(path);
        Ok(c)
    }

    /// Parses the text of a configuration file; `name` is used in errors.
    pub fn parse(text: &str, name: &str) -> Result<Config, ConfigError> {
        let mut c = Config::default();
        for (idx, raw) in text.lines().enumerate() {
            // Errors echo the file's text: clipped and escaped, so a 200 KB regex
            // or a control character does not flood or drive the terminal.
            let err = |msg: String| ConfigError::Line { path: name.to_string(), line: idx + 1, msg: shown(&msg) };
            let line = raw.trim();
            if line.chars().any(|ch| ch.is_control() && ch != '\t') {
                return Err(err("control character (NUL, ESC …) in the line".into()));
            }
            if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
                continue;
            }
            if line.starts_with('[') {
                if !line.ends_with(']') {
                    return Err(err(format!("unterminated section header {line:?}")));
                }
                continue;
            }
            let Some((key, value)) = line.split_once('=') else {
                return Err(err(format!("expected `key = value`, got {line:?}")));
            };
            let (key, value) = (key.trim(), value.trim());
            if value.is_empty() && !key.starts_with("defaults.") {
                return Err(err(format!("{key}: empty value")));
            }
            match key {
                "archive.path" => c.archive = PathBuf::from(value),
                "server.url" => {
                    let tls = cfg!(feature = "tls");
                    if !(value.starts_with("http://") || (tls && value.starts_with("https://"))) {
                        return Err(err(format!(
                            "server.url: {value:?} must start with http://{}",
                            if tls { " or https://" } else { " (this bt was built without TLS)" }
                        )));
                    }
                    c.server_url = Some(value.trim_end_matches('/').to_string());
                }
                "dump.quota" => {
                    c.dump_quota = parse_quota(value)
                        .ok_or_else(|| err(format!("dump.quota: {value:?} is not a percentage (10%) or a size (5G)")))?
                }
                "core.max_size" => {
                    c.core_max_size = Some(parse_size(value).ok_or_else(|| {
                        err(format!("core.max_size: {value:?} is not a size (bytes with an optional K, M or G suffix)"))
                    })?)
                }
                "rate.max_per_minute" => {
                    c.rate_max_per_minute = Some(
                        value.parse().map_err(|_| err(format!("rate.max_per_minute: {value:?} is not a number")))?,
                    )
                }
                "purge.age" => {
                    c.purge_age = Some(parse_duration(value).ok_or_else(|| {
                        err(format!("purge.age: {value:?} is not a duration (e.g. 7d, 12h, 30m, 3600)"))
                    })?)
                }
                "purge.disabled" => {
                    c.purge_disabled = parse_bool(value)
                        .ok_or_else(|| err(format!("purge.disabled: {value:?} is not true or false")))?
                }
                "defaults.command" => c.defaults_command = Some(value.to_string()).filter(|v| !v.is_empty()),
                "tracer.timeout" => {
                    c.tracer_timeout = parse_duration(value)
                        .ok_or_else(|| err(format!("tracer.timeout: {value:?} is not a duration (e.g. 60s, 2m)")))?
                }
                "tracer.jobs" => {
                    c.tracer_jobs = value
                        .parse::<usize>()
                        .ok()
                        .filter(|n| *n > 0)
                        .ok_or_else(|| err(format!("tracer.jobs: {value:?} is not a positive number")))?
                }
                _ => {
                    if let Some(project) = key.strip_prefix("token.") {
                        if project.is_empty() {
                            return Err(err("token.PROJECT: the project name is missing".into()));
                        }
                        c.tokens.retain(|(p, _)| p != project);
                        c.tokens.push((project.to_string(), value.to_string()));
                    } else if let Some(n) = key.strip_prefix("format.") {
                        let order: u64 =
                            n.parse().map_err(|_| err(format!("{key}: expected format.N with a number N")))?;
                        c.routes.push(parse_route(order, value).map_err(|m| err(format!("{key}: {m}")))?);
                    } else {
                        return Err(err(format!("unknown key {key:?}")));
                    }
                }
            }
        }
        c.routes.sort_by_key(|r| r.order);
        Ok(c)
    }

    /// The project of an executable name (its base name), by the routing rules.
    pub fn project_for(&self, exe_name: &str) -> Option<&str> {
        for r in &self.routes {
            match &r.exe_regex {
                None => return Some(&r.project),
                Some(re) if re.is_match(exe_name).unwrap_or(false) => return Some(&r.project),
                Some(_) => {}
            }
        }
        // One project and no rules: everything goes there.
        if self.routes.is_empty() && self.tokens.len() == 1 {
            return Some(&self.tokens[0].0);
        }
        None
    }

    pub fn token_for(&self, project: &str) -> Option<&str> {
        self.tokens.iter().find(|(p, _)| p == project).map(|(_, t)| t.as_str())
    }
}

fn parse_route(order: u64, value: &str) -> Result<Route, String> {
    let mut words = value.splitn(3, char::is_whitespace).map(str::trim).filter(|w| !w.is_empty());
    let project = words.next().ok_or("missing project")?.to_string();
    match words.next() {
        None => Ok(Route { order, project, exe_regex: None }),
        Some("%e") => {
            let re = words.next().ok_or("expected a regular expression after %e")?;
            let re = Regex::new(re).map_err(|e| format!("bad regular expression {re:?}: {e}"))?;
            Ok(Route { order, project, exe_regex: Some(re) })
        }
        Some(other) => Err(format!("expected `PROJECT %e REGEX` or `PROJECT`, got {other:?} after the project")),
    }
}

fn parse_bool(s: &str) -> Option<bool> {
    match s.to_ascii_lowercase().as_str() {
        "true" | "yes" | "on" | "1" => Some(true),
        "false" | "no" | "off" | "0" => Some(false),
        _ => None,
    }
}

/// `4096`, `64K`, `4M`, `1G`, `1T` → bytes (see [`crate::units`]).
pub fn parse_size(s: &str) -> Option<u64> {
    crate::units::size(s).ok()
}

fn parse_quota(s: &str) -> Option<Quota> {
    match s.strip_suffix('%') {
        Some(p) => p.trim().parse::<f64>().ok().filter(|p| (0.0..=100.0).contains(p)).map(Quota::Percent),
        None => parse_size(s).map(Quota::Bytes),
    }
}

/// `90`, `90s`, `30m`, `12h`, `7d`, `2w` → duration (see [`crate::units`]).
pub fn parse_duration(s: &str) -> Option<Duration> {
    crate::units::duration(s).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_file() {
        let c = Config::parse(
            "# comment\n[archive]\narchive.path = /tmp/a\nserver.url = http://127.0.0.1:6097/\n\
             token.web = T1\ntoken.db = T2\nformat.2 = web\nformat.1 = db %e ^(postgres|mysqld)$\n\
             dump.quota = 15%\ncore.max_size = 2G\nrate.max_per_minute = 30\npurge.age = 3d\n\
             purge.disabled = yes\ntracer.timeout = 2m\n",
            "t.conf",
        )
        .unwrap();
        assert_eq!(c.archive, PathBuf::from("/tmp/a"));
        assert_eq!(c.server_url.as_deref(), Some("http://127.0.0.1:6097"));
        assert_eq!(c.project_for("mysqld"), Some("db"));
        assert_eq!(c.project_for("mysqld2"), Some("web"));
        assert_eq!(c.token_for("db"), Some("T2"));
        assert_eq!(c.dump_quota, Quota::Percent(15.0));
        assert_eq!(c.core_max_size, Some(2 << 30));
        assert_eq!(c.rate_max_per_minute, Some(30));
        assert_eq!(c.purge_age, Some(Duration::from_secs(3 * 86400)));
        assert!(c.purge_disabled);
        assert_eq!(c.tracer_timeout, Duration::from_secs(120));
    }

    #[test]
    fn errors_name_file_and_line() {
        for (text, want) in [
            ("a = 1\n", "x.conf:1: unknown key \"a\""),
            ("\n\nnovalue\n", "x.conf:3: expected `key = value`"),
            ("core.max_size = lots\n", "x.conf:1: core.max_size: \"lots\" is not a size"),
            ("format.x = p\n", "x.conf:1: format.x: expected format.N"),
            ("format.1 = p %e (\n", "x.conf:1: format.1: bad regular expression"),
            ("format.1 = p %x y\n", "x.conf:1: format.1: expected `PROJECT %e REGEX`"),
            ("dump.quota = 120%\n", "x.conf:1: dump.quota"),
            ("server.url = ftp://x\n", "x.conf:1: server.url"),
            ("[sec\n", "x.conf:1: unterminated section"),
        ] {
            let e = Config::parse(text, "x.conf").unwrap_err().to_string();
            assert!(e.starts_with(want), "{text:?}: got {e:?}, want {want:?}");
        }
        // Regression (hostile input): a NUL in a key is refused, and a huge bad
        // regex is not echoed whole.
        let e = Config::parse("token.a\0b = T\n", "x.conf").unwrap_err().to_string();
        assert!(e.contains("control character"), "{e}");
        let huge = format!("format.1 = p %e ({}\n", "a".repeat(200_000));
        let e = Config::parse(&huge, "x.conf").unwrap_err().to_string();
        assert!(e.contains("bad regular expression") && e.len() < 400, "{} bytes", e.len());
    }

    #[test]
    fn single_project_is_the_default_route() {
        let c = Config::parse("token.only = T\n", "c").unwrap();
        assert_eq!(c.project_for("anything"), Some("only"));
        let c = Config::parse("token.a = T\ntoken.b = U\n", "c").unwrap();
        assert_eq!(c.project_for("anything"), None);
    }

    #[test]
    fn the_shipped_example_parses() {
        let text = include_str!("../../examples/coresnap.conf");
        let c = Config::parse(text, "examples/coresnap.conf").unwrap();
        assert_eq!(c.project_for("postgres"), Some("infra"));
        assert_eq!(c.project_for("myserver"), Some("myapp"));
        assert_eq!(c.server_url.as_deref(), Some("http://127.0.0.1:6097"));
    }

    #[test]
    fn sizes_and_durations() {
        assert_eq!(parse_size("64K"), Some(65536));
        assert_eq!(parse_size("1GB"), Some(1 << 30));
        assert_eq!(parse_size("x"), None);
        assert_eq!(parse_duration("7d"), Some(Duration::from_secs(604800)));
        assert_eq!(parse_duration("15"), Some(Duration::from_secs(15)));
        assert_eq!(parse_quota("5G"), Some(Quota::Bytes(5 << 30)));
    }
}
