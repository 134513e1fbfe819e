//! Notifications as data: the integrations of a project (webhook, Slack, Jira),
//! the rules that route events to them, the events themselves, and the durable
//! outbox. An event is put in the outbox in the same transaction as the ingest or
//! triage change that causes it, so a notification is never lost and never
//! invented; the sender (`crate::notify`) delivers it and records the outcome.

use serde::{Deserialize, Serialize};

/// Where notifications go. Secrets (webhook secret, Slack URL, Jira token) are
/// never shown once saved: see [`Integration::public`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Kind {
    Webhook { url: String, secret: Option<String> },
    Slack { url: String },
    Jira { url: String, project_key: String, user: String, token: String, issue_type: String },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Integration {
    pub name: String,
    pub kind: Kind,
    #[serde(default)]
    pub created: i64,
}

impl Integration {
    /// What may be shown: the kind and non-secret settings.
    pub fn public(&self) -> serde_json::Value {
        match &self.kind {
            Kind::Webhook { url, secret } => {
                serde_json::json!({"name": self.name, "kind": "webhook", "url": url, "secret": secret.is_some()})
            }
            Kind::Slack { .. } => serde_json::json!({"name": self.name, "kind": "slack", "url": "(secret)"}),
            Kind::Jira { url, project_key, user, issue_type, .. } => serde_json::json!({
                "name": self.name, "kind": "jira", "url": url, "project": project_key, "user": user,
                "issue_type": issue_type, "token": "(secret)"
            }),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Trigger {
    New,
    Regression,
    Unmuted,
    /// More than `n` crashes of a group within `window` seconds.
    Threshold {
        n: u64,
        window: i64,
    },
}

impl Trigger {
    pub fn parse(s: &str, duration: &dyn Fn(&str) -> Option<i64>) -> Result<Trigger, String> {
        Ok(match s {
            "new" => Trigger::New,
            "regression" => Trigger::Regression,
            "unmuted" => Trigger::Unmuted,
            t => {
                let spec = t
                    .strip_prefix("threshold:")
                    .ok_or_else(|| format!("unknown trigger {t:?}: new, regression, unmuted or threshold:N/WINDOW"))?;
                let (n, w) = spec.split_once('/').ok_or_else(|| format!("bad trigger {t:?}: threshold:N/WINDOW"))?;
                let n = n.parse().map_err(|_| format!("bad trigger {t:?}: {n:?} is not a count"))?;
                let window = duration(w).filter(|w| *w > 0).ok_or_else(|| format!("bad trigger {t:?}: bad window"))?;
                Trigger::Threshold { n, window }
            }
        })
    }

    pub fn event(self) -> &'static str {
        match self {
            Trigger::New => "new",
            Trigger::Regression => "regression",
            Trigger::Unmuted => "unmuted",
            Trigger::Threshold { .. } => "threshold",
        }
    }
}

/// An attribute condition of a rule: `attr,op,value` with op `equal`,
/// `not-equal`, `contains` or `regular-expression`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Condition {
    pub attr: String,
    pub op: String,
    pub value: String,
}

impl Condition {
    pub fn parse(s: &str) -> Result<Condition, String> {
        let mut it = s.splitn(3, ',');
        let (Some(attr), Some(op), Some(value)) = (it.next(), it.next(), it.next()) else {
            return Err(format!("bad --filter {s:?}: ATTR,OP,VALUE"));
        };
        if !matches!(op, "equal" | "not-equal" | "contains" | "regular-expression") {
            return Err(format!("bad --filter {s:?}: OP is equal, not-equal, contains or regular-expression"));
        }
        if op == "regular-expression" {
            fancy_regex::Regex::new(value).map_err(|e| format!("bad --filter {s:?}: {e}"))?;
        }
        Ok(Condition { attr: attr.into(), op: op.into(), value: value.into() })
    }

    pub fn matches(&self, got: Option<&str>) -> bool {
        let got = got.unwrap_or("");
        match self.op.as_str() {
            "equal" => got == self.value,
            "not-equal" => got != self.value,
            "contains" => got.contains(&self.value),
            _ => fancy_regex::Regex::new(&self.value).ok().and_then(|r| r.is_match(got).ok()).unwrap_or(false),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rule {
    #[serde(default)]
    pub id: u32,
    pub triggers: Vec<Trigger>,
    pub filters: Vec<Condition>,
    /// Integration names.
    pub to: Vec<String>,
    /// Least time between two notifications of this rule for one group, seconds.
    pub every: i64,
}

/// What happened to a group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    /// `new`, `regression`, `unmuted`, `threshold`, `test`.
    pub kind: String,
    pub project: String,
    pub fingerprint: String,
    /// The crash that caused it (0 for a test message).
    pub object: u64,
    /// Why: the regression's comparison, the mute's end, the threshold.
    pub reason: String,
    pub time: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Status {
    Delivered,
    /// Will be tried again.
    Retrying,
    /// Given up: the receiver refused it (4xx), or it was malformed.
    Failed,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Delivered => "delivered",
            Status::Retrying => "retrying",
            Status::Failed => "failed",
        }
    }
}

/// How long a node's claim on a due notification lasts (several nodes): longer than
/// a delivery may take (15 s), so that only a dead node's claims run out.
pub const CLAIM_LEASE_MS: i64 = 60_000;

/// A notification waiting to be delivered to one integration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pending {
    /// The delivery id (also sent to the receiver, which may use it to drop repeats).
    pub id: u64,
    pub integration: String,
    pub event: Event,
    pub attempts: u32,
    /// Not before (Unix ms).
    pub next_at_ms: i64,
}

/// One line of an integration's delivery log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Delivery {
    pub id: u64,
    pub time: i64,
    pub event: String,
    pub fingerprint: String,
    pub status: Status,
    /// The HTTP status, when there was an answer.
    pub code: Option<u16>,
    pub attempts: u32,
    /// Why it failed (never a secret).
    pub error: String,
}

/// The delay before attempt `n + 1`: 1 s, 2 s, 4 s, … up to 5 minutes.
pub fn backoff_ms(attempts: u32) -> i64 {
    1000i64.saturating_mul(1i64 << attempts.min(8)).min(300_000)
}
