//! The login session of `bt morgue`: server URL, user and session token, kept in
//! `$XDG_CONFIG_HOME/bt/morgue.json` (or `~/.config/bt/morgue.json`), mode 0600.

use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::MorgueError;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Session {
    pub url: String,
    pub user: String,
    pub token: String,
    /// Unix seconds of the login.
    pub created: i64,
}

/// Where the session lives.
pub fn path() -> PathBuf {
    let base = match std::env::var_os("XDG_CONFIG_HOME").filter(|x| !x.is_empty()) {
        Some(x) => PathBuf::from(x),
        None => std::env::var_os("HOME").map(PathBuf::from).unwrap_or_else(|| PathBuf::from(".")).join(".config"),
    };
    base.join("bt").join("morgue.json")
}

fn io(path: &Path, e: std::io::Error) -> MorgueError {
    MorgueError::Io { path: path.to_path_buf(), source: e }
}

/// The stored session, if there is one.
pub fn load(path: &Path) -> Result<Option<Session>, MorgueError> {
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes).map(Some).map_err(|e| {
            MorgueError::BadFlag(format!("{} is not a morgue session ({e}): run bt morgue login URL", path.display()))
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io(path, e)),
    }
}

/// Writes the session through a private temporary file renamed into place, so the
/// token is never readable by others, not even for a moment.
pub fn save(path: &Path, s: &Session) -> Result<(), MorgueError> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| io(dir, e))?;
    }
    let tmp = path.with_extension("json.tmp");
    let _ = std::fs::remove_file(&tmp);
    let mut f =
        std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(&tmp).map_err(|e| io(&tmp, e))?;
    let text = serde_json::to_string_pretty(s).map_err(|e| MorgueError::BadFlag(e.to_string()))?;
    f.write_all(text.as_bytes()).and_then(|_| f.sync_all()).map_err(|e| io(&tmp, e))?;
    // An umask or an old file must not widen the mode.
    std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o600)).map_err(|e| io(&tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| io(path, e))
}

/// Removes the session; `false` if there was none.
pub fn remove(path: &Path) -> Result<bool, MorgueError> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(io(path, e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_with_0600() {
        let dir = std::env::temp_dir().join(format!("bt-morgue-session-{}", std::process::id()));
        let p = dir.join("bt/morgue.json");
        let s = Session { url: "http://127.0.0.1:1".into(), user: "u".into(), token: "t".into(), created: 5 };
        save(&p, &s).unwrap();
        assert_eq!(std::fs::metadata(&p).unwrap().permissions().mode() & 0o777, 0o600);
        assert_eq!(load(&p).unwrap(), Some(s));
        assert!(remove(&p).unwrap());
        assert_eq!(load(&p).unwrap(), None);
        assert!(!remove(&p).unwrap());
        let _ = std::fs::remove_dir_all(dir);
    }
}
