//! Triage of a group (project + fingerprint): its state (`open`, `in-progress`,
//! `resolved`, `muted`), assignee, tags, tickets, comments, the invariant that
//! reopens a resolved group (a newer version, or a time) and the condition that ends
//! a mute (a time, or more than N crashes or hosts in a period). Pure data and
//! rules: the writer applies them in the same transaction as the ingest or change
//! that triggers them, and appends each change to the group's history.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum State {
    #[default]
    Open,
    InProgress,
    Resolved,
    Muted,
}

impl State {
    pub fn parse(s: &str) -> Option<State> {
        Some(match s {
            "open" => State::Open,
            "in-progress" | "progress" | "in_progress" => State::InProgress,
            "resolved" => State::Resolved,
            "muted" | "ignored" => State::Muted,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            State::Open => "open",
            State::InProgress => "in-progress",
            State::Resolved => "resolved",
            State::Muted => "muted",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ticket {
    pub system: String,
    pub key: String,
    pub url: String,
}

/// How versions are ordered when a resolved group checks a new crash.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum VersionRule {
    /// Dotted numbers (`1.2.10 > 1.2.9`), a `-pre` suffix before the release.
    Semver,
    /// Neither side is dotted numbers: the order in which the store first saw them.
    FirstSeen,
}

impl VersionRule {
    pub fn as_str(self) -> &'static str {
        match self {
            VersionRule::Semver => "semver",
            VersionRule::FirstSeen => "first-seen",
        }
    }
}

/// What reopens a resolved group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Until {
    /// A crash whose `attr` is greater than `version`. `seen_before`: the size of
    /// the project's string dictionary when the group was resolved (versions first
    /// seen after that are newer under the first-seen rule when `version` was
    /// never seen).
    Version { attr: String, version: String, seen_before: u32 },
    /// A crash after this time (Unix seconds).
    Time(i64),
}

/// What ends a mute.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum MuteUntil {
    Time(i64),
    /// More than `n` crashes (or distinct hosts, `hosts`) within `period` seconds.
    Count {
        n: u64,
        period: i64,
        hosts: bool,
    },
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TriageRecord {
    pub state: State,
    /// Reopened by a crash that broke the resolution's invariant.
    pub regressed: bool,
    pub assignee: Option<String>,
    pub tags: Vec<String>,
    pub tickets: Vec<Ticket>,
    pub resolved_until: Option<Until>,
    pub muted_until: Option<MuteUntil>,
    /// Crashes seen while muted by count: (timestamp, host), at most n + 1, within the period.
    pub window: Vec<(i64, String)>,
    pub comments: u32,
    /// The group this one was merged into (it answers for this one).
    pub merged_into: Option<String>,
    pub updated: i64,
}

impl TriageRecord {
    /// The state as of `now`: a mute until a time that has passed reads as open
    /// (the record itself changes, with a history line, on the next crash).
    pub fn state_at(&self, now: i64) -> State {
        match (self.state, &self.muted_until) {
            (State::Muted, Some(MuteUntil::Time(t))) if now > *t => State::Open,
            (s, _) => s,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HistoryEntry {
    pub time: i64,
    /// `user:NAME`, `token`, or `rule:regression` / `rule:unmute`.
    pub who: String,
    /// What changed, one line (`state open → resolved until version > 1.3`).
    pub what: String,
}

/// A change asked for by a person (or a script).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Change {
    State {
        state: State,
        until: Option<UntilSpec>,
    },
    Assign(Option<String>),
    Tags {
        add: Vec<String>,
        remove: Vec<String>,
    },
    Ticket(Ticket),
    Comment(String),
    /// Merge into another group: it answers for this one from now on.
    Merge(String),
    Unmerge,
}

/// `--until` as written: `version:1.4.0` (attribute `version`, or `ATTR=1.4.0`),
/// `time:2027-01-01` / `time:UNIX`, `count:100/1d`, `hosts:10/1h`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum UntilSpec {
    Version { attr: String, version: String },
    Time(i64),
    Count { n: u64, period: i64, hosts: bool },
}

impl UntilSpec {
    /// Parses the text of `--until`; `duration` turns `1d` into seconds and
    /// `instant` a date into Unix seconds.
    pub fn parse(
        s: &str,
        duration: &dyn Fn(&str) -> Option<i64>,
        instant: &dyn Fn(&str) -> Option<i64>,
    ) -> Result<UntilSpec, String> {
        let (kind, rest) = s.split_once(':').ok_or_else(|| format!("bad --until {s:?}: expected KIND:VALUE"))?;
        match kind {
            "version" => {
                let (attr, version) = match rest.split_once('=') {
                    Some((a, v)) => (a.to_string(), v.to_string()),
                    None => ("version".to_string(), rest.to_string()),
                };
                if version.is_empty() || attr.is_empty() {
                    return Err(format!("bad --until {s:?}: version:V or version:ATTR=V"));
                }
                Ok(UntilSpec::Version { attr, version })
            }
            "time" => instant(rest).map(UntilSpec::Time).ok_or_else(|| format!("bad --until {s:?}: not a time")),
            "count" | "hosts" => {
                let (n, period) = rest.split_once('/').ok_or_else(|| format!("bad --until {s:?}: {kind}:N/PERIOD"))?;
                let n: u64 = n.parse().map_err(|_| format!("bad --until {s:?}: {n:?} is not a count"))?;
                let period =
                    duration(period).filter(|p| *p > 0).ok_or_else(|| format!("bad --until {s:?}: bad period"))?;
                Ok(UntilSpec::Count { n, period, hosts: kind == "hosts" })
            }
            _ => Err(format!("bad --until {s:?}: version:V, time:T, count:N/PERIOD or hosts:N/PERIOD")),
        }
    }
}

/// Compares two versions: dotted numbers numerically (a `-suffix` sorts before the
/// release), else None (the caller falls back to the first-seen order).
pub fn compare_semver(a: &str, b: &str) -> Option<std::cmp::Ordering> {
    fn parts(v: &str) -> Option<(Vec<u64>, Option<&str>)> {
        let v = v.strip_prefix('v').unwrap_or(v);
        let (main, pre) = match v.split_once(['-', '+']) {
            Some((m, p)) => (m, Some(p)),
            None => (v, None),
        };
        let nums: Option<Vec<u64>> = main.split('.').map(|p| p.parse().ok()).collect();
        nums.filter(|n| !n.is_empty()).map(|n| (n, pre))
    }
    let (na, pa) = parts(a)?;
    let (nb, pb) = parts(b)?;
    let len = na.len().max(nb.len());
    for i in 0..len {
        let (x, y) = (na.get(i).copied().unwrap_or(0), nb.get(i).copied().unwrap_or(0));
        if x != y {
            return Some(x.cmp(&y));
        }
    }
    Some(match (pa, pb) {
        (None, None) => std::cmp::Ordering::Equal,
        (Some(_), None) => std::cmp::Ordering::Less,
        (None, Some(_)) => std::cmp::Ordering::Greater,
        (Some(x), Some(y)) => x.cmp(y),
    })
}

/// Why a crash reopens a resolved group: the sentence the history keeps.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reopen {
    pub reason: String,
}

/// What the store knows about a crash when it checks a group's triage.
pub struct Crash<'a> {
    pub timestamp: i64,
    pub host: &'a str,
    /// The crash's value of an attribute.
    pub attr: &'a dyn Fn(&str) -> Option<String>,
    /// The id of a string in the project's dictionary (its first-seen order).
    pub seen: &'a dyn Fn(&str) -> Option<u32>,
}

/// Whether `crash` breaks the invariant of a resolved group.
pub fn breaks(until: &Until, crash: &Crash) -> Option<Reopen> {
    match until {
        Until::Time(t) => (crash.timestamp > *t).then(|| Reopen {
            reason: format!("a crash at {} after the resolution's time {t} (rule: timestamp)", crash.timestamp),
        }),
        Until::Version { attr, version, seen_before } => {
            let got = (crash.attr)(attr)?;
            if let Some(ord) = compare_semver(&got, version) {
                return (ord == std::cmp::Ordering::Greater).then(|| Reopen {
                    reason: format!("{attr} {got} > {version} (rule: {})", VersionRule::Semver.as_str()),
                });
            }
            // First-seen order: a version first seen after the resolved one (or, when
            // that one was never seen, after the resolution) is newer.
            let got_id = (crash.seen)(&got)?;
            let newer = match (crash.seen)(version) {
                Some(v) => got_id > v,
                None => got_id >= *seen_before,
            };
            newer.then(|| Reopen {
                reason: format!("{attr} {got} first seen after {version} (rule: {})", VersionRule::FirstSeen.as_str()),
            })
        }
    }
}

/// A crash of a muted group: returns the sentence when it ends the mute.
pub fn unmutes(rec: &mut TriageRecord, crash: &Crash) -> Option<String> {
    match rec.muted_until.clone()? {
        MuteUntil::Time(t) => (crash.timestamp > t).then(|| format!("mute ended at {t}")),
        MuteUntil::Count { n, period, hosts } => {
            rec.window.retain(|(ts, _)| *ts > crash.timestamp - period);
            rec.window.push((crash.timestamp, crash.host.to_string()));
            let seen = if hosts {
                let mut h: Vec<&str> = rec.window.iter().map(|(_, h)| h.as_str()).collect();
                h.sort_unstable();
                h.dedup();
                h.len() as u64
            } else {
                rec.window.len() as u64
            };
            if seen > n {
                return Some(format!("more than {n} {} within {period} s", if hosts { "hosts" } else { "crashes" }));
            }
            // Keep the window bounded: only n + 1 entries can matter.
            let keep = (n as usize).saturating_add(1);
            if rec.window.len() > keep {
                let cut = rec.window.len() - keep;
                rec.window.drain(..cut);
            }
            None
        }
    }
}

/// Applies a person's change; returns the history line, or an error for a change
/// that makes no sense.
/// Most crashes (or hosts) a count mute or a threshold may wait for: the window of
/// recent crashes it keeps is at most this long.
pub const MAX_COUNT: u64 = 10_000;
/// Longest comment, tag, assignee or ticket field; most tags per group.
pub const MAX_TEXT: usize = 8 * 1024;
pub const MAX_TAG: usize = 128;
pub const MAX_TAGS: usize = 64;

/// Refuses a change whose sizes would let one request grow a record without bound.
fn check(change: &Change) -> Result<(), String> {
    let long = |s: &str, max: usize, what: &str| {
        if s.len() > max {
            Err(format!("{what} is {} bytes long, at most {max} are accepted", s.len()))
        } else {
            Ok(())
        }
    };
    match change {
        Change::State { until: Some(UntilSpec::Count { n, .. }), .. } if *n > MAX_COUNT => {
            Err(format!("a mute may wait for at most {MAX_COUNT} crashes or hosts"))
        }
        Change::State { until: Some(UntilSpec::Version { attr, version }), .. } => {
            long(attr, MAX_TAG, "the attribute")?;
            long(version, MAX_TAG, "the version")
        }
        Change::Assign(Some(u)) => long(u, MAX_TAG, "the assignee"),
        Change::Tags { add, remove } => {
            if add.len() + remove.len() > MAX_TAGS {
                return Err(format!("at most {MAX_TAGS} tags at once"));
            }
            add.iter().chain(remove).try_for_each(|t| long(t, MAX_TAG, "a tag"))
        }
        Change::Ticket(t) => {
            long(&t.system, MAX_TAG, "the ticket system")?;
            long(&t.key, MAX_TAG, "the ticket key")?;
            long(&t.url, MAX_TEXT, "the ticket URL")
        }
        Change::Comment(c) => long(c, MAX_TEXT, "the comment"),
        Change::Merge(fp) => long(fp, MAX_TAG, "the fingerprint"),
        _ => Ok(()),
    }
}

pub fn apply(rec: &mut TriageRecord, change: &Change, now: i64, dictionary_len: u32) -> Result<String, String> {
    check(change)?;
    let what = match change {
        Change::State { state, until } => {
            let before = rec.state;
            rec.state = *state;
            rec.regressed = false;
            rec.resolved_until = None;
            rec.muted_until = None;
            rec.window.clear();
            let mut what = format!("state {} → {}", before.as_str(), state.as_str());
            match (state, until) {
                (State::Resolved, Some(UntilSpec::Version { attr, version })) => {
                    rec.resolved_until = Some(Until::Version {
                        attr: attr.clone(),
                        version: version.clone(),
                        seen_before: dictionary_len,
                    });
                    what.push_str(&format!(" until {attr} > {version}"));
                }
                (State::Resolved, Some(UntilSpec::Time(t))) => {
                    rec.resolved_until = Some(Until::Time(*t));
                    what.push_str(&format!(" until a crash after {t}"));
                }
                (State::Muted, Some(UntilSpec::Time(t))) => {
                    rec.muted_until = Some(MuteUntil::Time(*t));
                    what.push_str(&format!(" until {t}"));
                }
                (State::Muted, Some(UntilSpec::Count { n, period, hosts })) => {
                    rec.muted_until = Some(MuteUntil::Count { n: *n, period: *period, hosts: *hosts });
                    what.push_str(&format!(
                        " until more than {n} {} in {period} s",
                        if *hosts { "hosts" } else { "crashes" }
                    ));
                }
                (_, None) => {}
                (s, Some(u)) => return Err(format!("--until {u:?} does not apply to state {}", s.as_str())),
            }
            what
        }
        Change::Assign(user) => {
            rec.assignee = user.clone();
            match user {
                Some(u) => format!("assigned to {u}"),
                None => "unassigned".into(),
            }
        }
        Change::Tags { add, remove } => {
            for t in add {
                if !rec.tags.contains(t) {
                    rec.tags.push(t.clone());
                }
            }
            rec.tags.retain(|t| !remove.contains(t));
            if rec.tags.len() > MAX_TAGS {
                return Err(format!("a group has at most {MAX_TAGS} tags"));
            }
            rec.tags.sort();
            let words: Vec<String> =
                add.iter().map(|t| format!("+{t}")).chain(remove.iter().map(|t| format!("-{t}"))).collect();
            format!("tags {}", words.join(" "))
        }
        Change::Ticket(t) => {
            rec.tickets.retain(|x| !(x.system == t.system && x.key == t.key));
            if rec.tickets.len() >= MAX_TAGS {
                return Err(format!("a group has at most {MAX_TAGS} tickets"));
            }
            rec.tickets.push(t.clone());
            format!("ticket {}:{} {}", t.system, t.key, t.url)
        }
        Change::Comment(text) => {
            rec.comments += 1;
            format!("comment: {text}")
        }
        Change::Merge(into) => {
            rec.merged_into = Some(into.clone());
            format!("merged into {into}")
        }
        Change::Unmerge => match rec.merged_into.take() {
            Some(from) => format!("unmerged from {from}"),
            None => return Err("the group is not merged".into()),
        },
    };
    rec.updated = now;
    Ok(what)
}

/// The text of a triage attribute of a group (`fingerprint;issues;state`, …): what
/// queries filter on. A group nobody triaged is `open`.
pub fn attribute(rec: Option<&TriageRecord>, field: &str) -> Option<String> {
    let default = TriageRecord::default();
    let r = rec.unwrap_or(&default);
    Some(match field {
        "state" => r.state_at(super::now()).as_str().to_string(),
        "assignee" => r.assignee.clone().unwrap_or_default(),
        "tags" => r.tags.join(" "),
        "ticket" => r.tickets.iter().map(|t| format!("{}:{}", t.system, t.key)).collect::<Vec<_>>().join(" "),
        "regressed" => if r.regressed { "1" } else { "0" }.to_string(),
        _ => return None,
    })
}

/// The fields of a group's triage that queries see as `fingerprint;issues;FIELD`.
pub const FIELDS: [&str; 5] = ["state", "assignee", "tags", "ticket", "regressed"];

/// The triage attribute a filter names: `fingerprint;issues;FIELD`.
pub fn triage_field(attr: &str) -> Option<&str> {
    attr.strip_prefix("fingerprint;issues;")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cmp::Ordering::*;

    #[test]
    fn versions_compare_numerically_then_by_first_seen() {
        assert_eq!(compare_semver("1.2.10", "1.2.9"), Some(Greater));
        assert_eq!(compare_semver("1.3", "1.3.0"), Some(Equal));
        assert_eq!(compare_semver("1.3.0-rc1", "1.3.0"), Some(Less));
        assert_eq!(compare_semver("v2", "1.9"), Some(Greater));
        assert_eq!(compare_semver("nightly", "1.0"), None);
        let attrs = |v: &'static str| move |a: &str| (a == "version").then(|| v.to_string());
        let order = ["alpha", "beta", "gamma"];
        let seen = |s: &str| order.iter().position(|x| *x == s).map(|i| i as u32);
        let until = Until::Version { attr: "version".into(), version: "beta".into(), seen_before: 3 };
        for (v, reopens) in [("alpha", false), ("beta", false), ("gamma", true)] {
            let f = attrs(v);
            let c = Crash { timestamp: 0, host: "h", attr: &f, seen: &seen };
            assert_eq!(breaks(&until, &c).is_some(), reopens, "{v}");
        }
        let until = Until::Version { attr: "version".into(), version: "1.3".into(), seen_before: 0 };
        for (v, reopens) in [("1.2.9", false), ("1.3.0", false), ("1.3.1", true)] {
            let f = attrs(v);
            let c = Crash { timestamp: 0, host: "h", attr: &f, seen: &seen };
            let r = breaks(&until, &c);
            assert_eq!(r.is_some(), reopens, "{v}");
            if let Some(r) = r {
                assert!(r.reason.contains("1.3.1 > 1.3") && r.reason.contains("semver"), "{}", r.reason);
            }
        }
    }

    #[test]
    fn absurd_changes_are_refused() {
        let mut rec = TriageRecord::default();
        let big = Change::State {
            state: State::Muted,
            until: Some(UntilSpec::Count { n: u64::MAX, period: 1, hosts: false }),
        };
        assert!(apply(&mut rec, &big, 0, 0).is_err());
        assert!(apply(&mut rec, &Change::Comment("x".repeat(MAX_TEXT + 1)), 0, 0).is_err());
        let many = Change::Tags { add: (0..=MAX_TAGS).map(|i| i.to_string()).collect(), remove: vec![] };
        assert!(apply(&mut rec, &many, 0, 0).is_err());
        assert_eq!(rec, TriageRecord::default(), "a refused change changes nothing");
    }

    #[test]
    fn a_mute_until_a_time_reads_open_once_it_passed() {
        let rec = TriageRecord { state: State::Muted, muted_until: Some(MuteUntil::Time(100)), ..Default::default() };
        assert_eq!(rec.state_at(99), State::Muted);
        assert_eq!(rec.state_at(101), State::Open);
        let rec = TriageRecord { state: State::Muted, ..Default::default() };
        assert_eq!(rec.state_at(i64::MAX), State::Muted, "a mute without an end stays");
    }

    #[test]
    fn a_count_mute_ends_on_the_crash_past_the_limit() {
        let mut rec = TriageRecord { state: State::Muted, ..TriageRecord::default() };
        rec.muted_until = Some(MuteUntil::Count { n: 3, period: 100, hosts: false });
        let none = |_: &str| -> Option<String> { None };
        let unseen = |_: &str| -> Option<u32> { None };
        let mut ended = None;
        for i in 0..4 {
            let c = Crash { timestamp: 1000 + i, host: "h", attr: &none, seen: &unseen };
            ended = unmutes(&mut rec, &c);
            assert_eq!(ended.is_some(), i == 3, "crash {i}");
        }
        assert!(ended.is_some_and(|e| e.contains("more than 3 crashes")));
        // Outside the period the old crashes do not count.
        let mut rec = TriageRecord {
            muted_until: Some(MuteUntil::Count { n: 1, period: 10, hosts: false }),
            ..Default::default()
        };
        for t in [0, 20, 40] {
            let c = Crash { timestamp: t, host: "h", attr: &none, seen: &unseen };
            assert!(unmutes(&mut rec, &c).is_none(), "{t}");
        }
    }
}
