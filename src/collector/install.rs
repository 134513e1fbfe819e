//! Installing the handler: points kernel.core_pattern at `bt coresnap ingest`, sets
//! kernel.core_pipe_limit, remembers the previous values in a state file so that
//! `uninstall` restores them exactly.
//!
//! Folklore: the kernel silently truncates core_pattern to 127 bytes (CORENAME_MAX_SIZE
//! is 128 with the NUL), so a long path would install a broken handler: we refuse
//! instead. Arguments are split on spaces, so no path in the pattern may hold one.
//! When the direct pattern would be too long or hold a space (a bt built deep in a
//! checkout, a config under a long temporary path), install points the pattern at short
//! symlinks in [`LINK_DIR`] instead. They live in /run (tmpfs), like core_pattern itself
//! they do not survive a reboot, and uninstall removes them.

use std::fs;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

pub const CORE_PATTERN: &str = "/proc/sys/kernel/core_pattern";
pub const CORE_PIPE_LIMIT: &str = "/proc/sys/kernel/core_pipe_limit";
/// Concurrent handlers the kernel waits for (see ingest.rs for the semantics).
pub const PIPE_LIMIT: u32 = 64;
const MAX_PATTERN: usize = 127;
/// Short links to the bt binary (`bt`) and the config (`conf`) for long paths.
pub const LINK_DIR: &str = "/run/bt-coresnap";

#[derive(Debug, thiserror::Error)]
pub enum InstallError {
    #[error("{op} {path}: {source}")]
    Io { op: &'static str, path: String, source: std::io::Error },
    #[error("another crash handler is installed ({0}); uninstall it first or pass --force")]
    Other(String),
    #[error(
        "the core_pattern would be {len} bytes, over the kernel's limit of {MAX_PATTERN} (it truncates silently): {pattern}; use shorter paths"
    )]
    TooLong { len: usize, pattern: String },
    #[error("path {0:?} contains a space: the kernel splits core_pattern on spaces")]
    Space(String),
    #[error("coresnap is not installed (no state file {0})")]
    NotInstalled(String),
    #[error("state file {path}: {msg}")]
    State { path: String, msg: String },
}

/// What was there before us.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct InstallState {
    pub previous_pattern: String,
    pub previous_pipe_limit: String,
    pub pattern: String,
}

/// The pattern for a bt binary and (optionally) a config file.
pub fn pattern(bt: &Path, config: Option<&Path>) -> Result<String, InstallError> {
    let mut p = format!("|{} coresnap ingest", bt.display());
    if let Some(c) = config {
        p.push_str(&format!(" --config {}", c.display()));
    }
    // %E last: an executable path with spaces arrives as several words (see ingest.rs).
    p.push_str(" %P %i %u %g %s %t %h %E");
    for path in std::iter::once(bt).chain(config) {
        if path.to_string_lossy().contains(' ') {
            return Err(InstallError::Space(path.display().to_string()));
        }
    }
    if p.len() > MAX_PATTERN {
        return Err(InstallError::TooLong { len: p.len(), pattern: p });
    }
    Ok(p)
}

/// Points `LINK_DIR/bt` and `LINK_DIR/conf` at the real files (replaced atomically)
/// and returns the link paths.
fn short_links(bt: &Path, config: Option<&Path>) -> Result<(PathBuf, Option<PathBuf>), InstallError> {
    let dir = Path::new(LINK_DIR);
    fs::create_dir_all(dir).map_err(|source| InstallError::Io { op: "creating", path: LINK_DIR.into(), source })?;
    let link = |name: &str, target: &Path| -> Result<PathBuf, InstallError> {
        let target = fs::canonicalize(target).map_err(|source| InstallError::Io {
            op: "resolving",
            path: target.display().to_string(),
            source,
        })?;
        let path = dir.join(name);
        let tmp = dir.join(format!(".{name}.{}", std::process::id()));
        let _ = fs::remove_file(&tmp);
        std::os::unix::fs::symlink(&target, &tmp).map_err(|source| InstallError::Io {
            op: "linking",
            path: tmp.display().to_string(),
            source,
        })?;
        fs::rename(&tmp, &path).map_err(|source| InstallError::Io {
            op: "renaming",
            path: path.display().to_string(),
            source,
        })?;
        Ok(path)
    };
    let bt_link = link("bt", bt)?;
    let conf_link = config.map(|c| link("conf", c)).transpose()?;
    Ok((bt_link, conf_link))
}

/// Names another known handler in `pattern`, if any.
pub fn other_handler(pattern: &str) -> Option<&'static str> {
    let p = pattern.trim();
    if !p.starts_with('|') || p.contains(" coresnap ingest") {
        return None;
    }
    ["apport", "systemd-coredump", "abrt-hook-ccpp", "abrt"]
        .into_iter()
        .find(|h| p.contains(h))
        .or(Some("an unknown pipe handler"))
}

fn read(path: &str) -> Result<String, InstallError> {
    fs::read_to_string(path).map(|s| s.trim_end().to_string()).map_err(|source| InstallError::Io {
        op: "reading",
        path: path.into(),
        source,
    })
}

fn write(path: &str, v: &str) -> Result<(), InstallError> {
    fs::write(path, v).map_err(|source| InstallError::Io { op: "writing", path: path.into(), source })
}

pub fn state_path(archive: &Path) -> PathBuf {
    archive.join("install.state")
}

/// Installs; returns the pattern. Reinstalling keeps the first remembered values.
pub fn install(bt: &Path, config: Option<&Path>, archive: &Path, force: bool) -> Result<String, InstallError> {
    let pat = match pattern(bt, config) {
        Ok(p) => p,
        Err(InstallError::TooLong { .. } | InstallError::Space(_)) => {
            let (bt_link, conf_link) = short_links(bt, config)?;
            pattern(&bt_link, conf_link.as_deref())?
        }
        Err(e) => return Err(e),
    };
    let current = read(CORE_PATTERN)?;
    let limit = read(CORE_PIPE_LIMIT)?;
    if let Some(other) = other_handler(&current)
        && !force
    {
        return Err(InstallError::Other(format!("{other}: {current}")));
    }
    // systemd-coredump installed but not (yet) active still fights us at boot.
    if !force {
        for f in ["/usr/lib/sysctl.d/50-coredump.conf", "/etc/default/apport"] {
            if Path::new(f).exists() && !current.contains(" coresnap ingest") && is_enabled(f) {
                return Err(InstallError::Other(format!("{f} exists")));
            }
        }
    }
    fs::create_dir_all(archive).map_err(|source| InstallError::Io {
        op: "creating",
        path: archive.display().to_string(),
        source,
    })?;
    let sp = state_path(archive);
    let state = match fs::read(&sp) {
        // Already ours: keep what was there before the first install.
        Ok(b) if current.contains(" coresnap ingest") => {
            let mut s: InstallState = serde_json::from_slice(&b)
                .map_err(|e| InstallError::State { path: sp.display().to_string(), msg: e.to_string() })?;
            s.pattern = pat.clone();
            s
        }
        _ => InstallState { previous_pattern: current, previous_pipe_limit: limit.clone(), pattern: pat.clone() },
    };
    let text = serde_json::to_vec_pretty(&state)
        .map_err(|e| InstallError::State { path: sp.display().to_string(), msg: e.to_string() })?;
    super::spool::write_atomic(archive, "install.state", &text)
        .map_err(|e| InstallError::State { path: sp.display().to_string(), msg: e.to_string() })?;
    if limit.trim() == "0" {
        write(CORE_PIPE_LIMIT, &PIPE_LIMIT.to_string())?;
    }
    write(CORE_PATTERN, &pat)?;
    let now = read(CORE_PATTERN)?;
    if now != pat {
        return Err(InstallError::State {
            path: CORE_PATTERN.into(),
            msg: format!("the kernel kept {now:?} instead of {pat:?}"),
        });
    }
    Ok(pat)
}

fn is_enabled(f: &str) -> bool {
    // /etc/default/apport has `enabled=0` when apport is off.
    fs::read_to_string(f).map(|t| !t.lines().any(|l| l.trim() == "enabled=0")).unwrap_or(false)
}

/// Restores the remembered values and removes the state file; returns them.
pub fn uninstall(archive: &Path) -> Result<InstallState, InstallError> {
    let sp = state_path(archive);
    let b = fs::read(&sp).map_err(|_| InstallError::NotInstalled(sp.display().to_string()))?;
    let s: InstallState = serde_json::from_slice(&b)
        .map_err(|e| InstallError::State { path: sp.display().to_string(), msg: e.to_string() })?;
    write(CORE_PATTERN, &s.previous_pattern)?;
    write(CORE_PIPE_LIMIT, &s.previous_pipe_limit)?;
    fs::remove_file(&sp).map_err(|source| InstallError::Io {
        op: "removing",
        path: sp.display().to_string(),
        source,
    })?;
    if s.pattern.contains(LINK_DIR) {
        // Best effort: stale links are harmless, and the next install replaces them.
        for name in ["bt", "conf"] {
            let _ = fs::remove_file(Path::new(LINK_DIR).join(name));
        }
    }
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns() {
        let p = pattern(Path::new("/usr/bin/bt"), None).unwrap();
        assert_eq!(p, "|/usr/bin/bt coresnap ingest %P %i %u %g %s %t %h %E");
        assert!(matches!(pattern(Path::new(&"/x".repeat(60)), None), Err(InstallError::TooLong { .. })));
        assert!(matches!(pattern(Path::new("/a b/bt"), None), Err(InstallError::Space(_))));
    }

    #[test]
    fn other_handlers() {
        assert_eq!(other_handler("|/usr/share/apport/apport -p%p -s%s -c%c"), Some("apport"));
        assert_eq!(
            other_handler("|/lib/systemd/systemd-coredump %P %u %g %s %t 9223372036854775808 %h"),
            Some("systemd-coredump")
        );
        assert_eq!(other_handler("core"), None);
        assert_eq!(other_handler("|/usr/bin/bt coresnap ingest %P"), None);
    }
}
