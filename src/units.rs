//! Sizes and durations as people write them on command lines and in configuration
//! files, parsed one way everywhere (`bt coroner`, `bt morgue`, `bt ptrace`, the
//! collector's configuration), with checked arithmetic: a size that does not fit
//! in 64 bits is an error, never a wrapped small number.
//!
//! - sizes: a whole number with an optional binary unit `K`, `M`, `G`, `T`
//!   (case-insensitive, optionally followed by `B` or `iB`): `4096`, `64K`, `10G`;
//! - durations: a whole number with an optional unit `s`, `m` (minutes), `h`, `d`,
//!   `w`, `M` (30 days), `y` (365 days); a bare number is seconds.

use std::time::Duration;

/// Why a size or duration was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UnitError {
    #[error("bad size {0:?} (a whole number with an optional unit K, M, G or T, e.g. 64K, 10G)")]
    Size(String),
    #[error("bad duration {0:?} (a whole number with an optional unit s, m, h, d, w, M or y, e.g. 90s, 12h, 30d)")]
    Duration(String),
    #[error("{0:?} is too large")]
    Overflow(String),
}

fn split(s: &str) -> (&str, &str) {
    let t = s.trim();
    t.split_at(t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len()))
}

/// Bytes.
pub fn size(s: &str) -> Result<u64, UnitError> {
    let (num, unit) = split(s);
    let n: u64 = num.parse().map_err(|_| UnitError::Size(s.to_string()))?;
    let unit = unit.trim();
    let lower = unit.to_ascii_lowercase();
    let unit = lower.strip_suffix("ib").or_else(|| lower.strip_suffix('b')).unwrap_or(&lower);
    let mult: u64 = match unit {
        "" => 1,
        "k" => 1 << 10,
        "m" => 1 << 20,
        "g" => 1 << 30,
        "t" => 1 << 40,
        _ => return Err(UnitError::Size(s.to_string())),
    };
    n.checked_mul(mult).ok_or_else(|| UnitError::Overflow(s.to_string()))
}

/// Seconds.
pub fn seconds(s: &str) -> Result<u64, UnitError> {
    let (num, unit) = split(s);
    let n: u64 = num.parse().map_err(|_| UnitError::Duration(s.to_string()))?;
    let mult: u64 = match unit.trim() {
        "" | "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        "w" => 7 * 86_400,
        "M" => 30 * 86_400,
        "y" => 365 * 86_400,
        _ => return Err(UnitError::Duration(s.to_string())),
    };
    // Durations are also used as signed seconds (timestamps): keep them within i64.
    n.checked_mul(mult).filter(|v| *v <= i64::MAX as u64).ok_or_else(|| UnitError::Overflow(s.to_string()))
}

/// A [`Duration`].
pub fn duration(s: &str) -> Result<Duration, UnitError> {
    seconds(s).map(Duration::from_secs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        for (text, want) in [
            ("0", Some(0)),
            ("4096", Some(4096)),
            ("64K", Some(64 << 10)),
            ("64k", Some(64 << 10)),
            ("4M", Some(4 << 20)),
            ("10G", Some(10 << 30)),
            ("10GB", Some(10 << 30)),
            ("10GiB", Some(10 << 30)),
            ("2T", Some(2 << 40)),
            (" 5 M ", Some(5 << 20)),
            ("18014398509481985K", None),
            ("-1", None),
            ("1.5G", None),
            ("10X", None),
            ("", None),
            ("G", None),
        ] {
            assert_eq!(size(text).ok(), want, "{text:?}");
        }
        assert!(matches!(size("18014398509481985K"), Err(UnitError::Overflow(_))));
    }

    #[test]
    fn durations() {
        for (text, want) in [
            ("0", Some(0)),
            ("90", Some(90)),
            ("90s", Some(90)),
            ("15m", Some(900)),
            ("12h", Some(43_200)),
            ("30d", Some(2_592_000)),
            ("2w", Some(1_209_600)),
            ("1M", Some(2_592_000)),
            ("1y", Some(31_536_000)),
            ("1x", None),
            ("-5m", None),
            ("99999999999999999999d", None),
            ("999999999999999y", None),
        ] {
            assert_eq!(seconds(text).ok(), want, "{text:?}");
        }
    }
}
