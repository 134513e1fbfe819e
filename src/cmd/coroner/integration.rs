//! `bt coroner integration`: notification integrations (webhook, Slack, Jira)
//! and their rules, on a stopped store or through a server.

use std::path::PathBuf;

use anyhow::{Context, bail};
use argh::FromArgs;

/// Notification integrations and their rules (bt coroner integration …).
#[derive(FromArgs, Debug)]
struct IntegrationTop {
    #[argh(subcommand)]
    cmd: IntegrationCmd,
}

#[derive(FromArgs, Debug)]
#[argh(subcommand)]
enum IntegrationCmd {
    Add(IntegrationAdd),
    List(IntegrationOne),
    Remove(IntegrationNamed),
    Log(IntegrationLog),
    Test(IntegrationTest),
    Rule(RuleTop),
}

/// Add an integration: --webhook URL [--secret S], --slack URL, or --jira URL with
/// --jira-project, --jira-user and --jira-token-file.
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "add")]
struct IntegrationAdd {
    /// the project
    #[argh(positional)]
    project: String,
    /// the integration's name
    #[argh(positional)]
    name: String,
    /// a generic webhook: POST JSON to this URL
    #[argh(option)]
    webhook: Option<String>,
    /// the webhook's HMAC-SHA256 secret (X-Bt-Signature)
    #[argh(option)]
    secret: Option<String>,
    /// a Slack incoming-webhook URL
    #[argh(option)]
    slack: Option<String>,
    /// a Jira base URL (https://example.atlassian.net)
    #[argh(option)]
    jira: Option<String>,
    /// the Jira project key
    #[argh(option)]
    jira_project: Option<String>,
    /// the Jira user (e-mail)
    #[argh(option)]
    jira_user: Option<String>,
    /// a file holding the Jira API token
    #[argh(option)]
    jira_token_file: Option<PathBuf>,
    /// the Jira issue type (default Bug)
    #[argh(option, default = "String::from(\"Bug\")")]
    jira_issue_type: String,
    #[argh(option, description = "local data directory (a stopped store)")]
    data: Option<PathBuf>,
    #[argh(option, description = "server URL (default: the morgue session's)")]
    url: Option<String>,
    #[argh(option, description = "an API token with the admin scope")]
    token: Option<String>,
}

/// List the integrations (no secrets) and rules of a project.
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "list")]
struct IntegrationOne {
    /// the project
    #[argh(positional)]
    project: String,
    #[argh(option, description = "local data directory (a stopped store)")]
    data: Option<PathBuf>,
    #[argh(option, description = "server URL (default: the morgue session's)")]
    url: Option<String>,
    #[argh(option, description = "an API token with the admin scope")]
    token: Option<String>,
}

/// Remove an integration.
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "remove")]
struct IntegrationNamed {
    /// the project
    #[argh(positional)]
    project: String,
    /// the integration
    #[argh(positional)]
    name: String,
    #[argh(option, description = "local data directory (a stopped store)")]
    data: Option<PathBuf>,
    #[argh(option, description = "server URL (default: the morgue session's)")]
    url: Option<String>,
    #[argh(option, description = "an API token with the admin scope")]
    token: Option<String>,
}

/// The delivery log of an integration (newest first).
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "log")]
struct IntegrationLog {
    /// the project
    #[argh(positional)]
    project: String,
    /// the integration
    #[argh(positional)]
    name: String,
    /// print JSON
    #[argh(switch)]
    json: bool,
    #[argh(option, description = "local data directory (a stopped store)")]
    data: Option<PathBuf>,
    #[argh(option, description = "server URL (default: the morgue session's)")]
    url: Option<String>,
    #[argh(option, description = "an API token with the admin scope")]
    token: Option<String>,
}

/// Send a test message through an integration.
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "test")]
struct IntegrationTest {
    /// the project
    #[argh(positional)]
    project: String,
    /// the integration
    #[argh(positional)]
    name: String,
    #[argh(option, description = "local data directory (a stopped store)")]
    data: Option<PathBuf>,
    #[argh(option, description = "server URL (default: the morgue session's)")]
    url: Option<String>,
    #[argh(option, description = "an API token with the admin scope")]
    token: Option<String>,
}

/// Rules: which events go to which integrations.
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "rule")]
struct RuleTop {
    #[argh(subcommand)]
    cmd: RuleCmd,
}

#[derive(FromArgs, Debug)]
#[argh(subcommand)]
enum RuleCmd {
    Add(RuleAdd),
    List(RuleList),
    Remove(RuleRemove),
}

/// Add a rule: --on new,regression,unmuted,threshold:N/WINDOW --to NAME[,NAME].
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "add")]
struct RuleAdd {
    /// the project
    #[argh(positional)]
    project: String,
    /// events: new, regression, unmuted, threshold:N/WINDOW (comma-separated)
    #[argh(option)]
    on: String,
    /// only crashes matching ATTR,OP,VALUE (equal, not-equal, contains, regular-expression; repeatable)
    #[argh(option)]
    filter: Vec<String>,
    /// integrations (comma-separated)
    #[argh(option)]
    to: String,
    /// least time between two notifications of this rule for one group (default 0)
    #[argh(option, default = "String::from(\"0\")")]
    every: String,
    #[argh(option, description = "local data directory (a stopped store)")]
    data: Option<PathBuf>,
    #[argh(option, description = "server URL (default: the morgue session's)")]
    url: Option<String>,
    #[argh(option, description = "an API token with the admin scope")]
    token: Option<String>,
}

/// List the rules of a project.
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "list")]
struct RuleList {
    /// the project
    #[argh(positional)]
    project: String,
    #[argh(option, description = "local data directory (a stopped store)")]
    data: Option<PathBuf>,
    #[argh(option, description = "server URL (default: the morgue session's)")]
    url: Option<String>,
    #[argh(option, description = "an API token with the admin scope")]
    token: Option<String>,
}

/// Remove a rule by id.
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "remove")]
struct RuleRemove {
    /// the project
    #[argh(positional)]
    project: String,
    /// the rule id (rule list shows it)
    #[argh(positional)]
    id: u32,
    #[argh(option, description = "local data directory (a stopped store)")]
    data: Option<PathBuf>,
    #[argh(option, description = "server URL (default: the morgue session's)")]
    url: Option<String>,
    #[argh(option, description = "an API token with the admin scope")]
    token: Option<String>,
}

pub(super) fn integration(name: &str, raw: &[String]) -> anyhow::Result<i32> {
    use crate::store::outbox::{Condition, Integration, Kind, Rule, Trigger};
    use crate::store::workflow::Call;
    use serde_json::json;
    let top: IntegrationTop = match crate::cmd::parse_args(name, raw) {
        Ok(a) => a,
        Err(code) => return Ok(code),
    };
    let connect = |data: &Option<PathBuf>, url: &Option<String>, token: &Option<String>| {
        crate::cmd::morgue::backend(data.as_deref(), url.as_deref(), token.as_deref())
    };
    let dur = |s: &str| crate::units::seconds(s).ok().and_then(|v| i64::try_from(v).ok());
    match top.cmd {
        IntegrationCmd::Add(a) => {
            let kind = match (&a.webhook, &a.slack, &a.jira) {
                (Some(url), None, None) => Kind::Webhook { url: url.clone(), secret: a.secret.clone() },
                (None, Some(url), None) => Kind::Slack { url: url.clone() },
                (None, None, Some(url)) => {
                    let (Some(key), Some(user), Some(file)) = (&a.jira_project, &a.jira_user, &a.jira_token_file)
                    else {
                        bail!("--jira needs --jira-project, --jira-user and --jira-token-file");
                    };
                    let token = std::fs::read_to_string(file)
                        .with_context(|| format!("reading the Jira token from {}", file.display()))?
                        .trim()
                        .to_string();
                    if token.is_empty() {
                        bail!("{} holds no token", file.display());
                    }
                    Kind::Jira {
                        url: url.clone(),
                        project_key: key.clone(),
                        user: user.clone(),
                        token,
                        issue_type: a.jira_issue_type.clone(),
                    }
                }
                _ => bail!("give exactly one of --webhook, --slack, --jira"),
            };
            let i = Integration { name: a.name.clone(), kind, created: 0 };
            let b = connect(&a.data, &a.url, &a.token)?;
            b.workflow(&a.project, Call::Integration(&json!({"add": i})))?;
            eprintln!("{name}: integration {} added to {}", a.name, a.project);
        }
        IntegrationCmd::List(a) => {
            let b = connect(&a.data, &a.url, &a.token)?;
            let v = b.workflow(&a.project, Call::Integrations)?;
            println!("{:#}", json!({"integrations": v["integrations"], "rules": v["rules"]}));
        }
        IntegrationCmd::Remove(a) => {
            let b = connect(&a.data, &a.url, &a.token)?;
            b.workflow(&a.project, Call::Integration(&json!({"remove": a.name})))?;
            eprintln!("{name}: integration {} removed", a.name);
        }
        IntegrationCmd::Test(a) => {
            let b = connect(&a.data, &a.url, &a.token)?;
            let v = b.workflow(&a.project, Call::Integration(&json!({"test": a.name})))?;
            eprintln!(
                "{name}: test message queued as delivery {} (bt coroner integration log {} {} shows the outcome)",
                v["delivery"].as_str().unwrap_or("?"),
                a.project,
                a.name
            );
        }
        IntegrationCmd::Log(a) => {
            let b = connect(&a.data, &a.url, &a.token)?;
            let v = b.workflow(&a.project, Call::Log { name: &a.name })?;
            if a.json {
                println!("{:#}", v["deliveries"]);
            } else {
                for d in v["deliveries"].as_array().into_iter().flatten() {
                    println!(
                        "{}  {:<9} {:<10} {:>4} attempts {:<3} {} {}",
                        crate::query::render::utc(d["time"].as_i64().unwrap_or(0)),
                        d["status"].as_str().unwrap_or(""),
                        d["event"].as_str().unwrap_or(""),
                        d["code"].as_u64().map(|c| c.to_string()).unwrap_or_else(|| "-".into()),
                        d["attempts"].as_u64().unwrap_or(0),
                        d["fingerprint"].as_str().unwrap_or(""),
                        // A receiver's answer: escaped for the terminal.
                        crate::snapshot::render::for_terminal(d["error"].as_str().unwrap_or(""))
                    );
                }
            }
        }
        IntegrationCmd::Rule(r) => match r.cmd {
            RuleCmd::Add(a) => {
                let triggers =
                    a.on.split(',')
                        .filter(|t| !t.is_empty())
                        .map(|t| Trigger::parse(t, &dur))
                        .collect::<Result<Vec<_>, _>>()
                        .map_err(anyhow::Error::msg)?;
                let filters = a
                    .filter
                    .iter()
                    .map(|f| Condition::parse(f))
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(anyhow::Error::msg)?;
                let to: Vec<String> = a.to.split(',').filter(|t| !t.is_empty()).map(str::to_string).collect();
                let every = dur(&a.every).with_context(|| format!("bad --every {:?}", a.every))?;
                let rule = Rule { id: 0, triggers, filters, to, every };
                let b = connect(&a.data, &a.url, &a.token)?;
                let v = b.workflow(&a.project, Call::Rule(&json!({"add": rule})))?;
                println!("{}", v["id"]);
            }
            RuleCmd::List(a) => {
                let b = connect(&a.data, &a.url, &a.token)?;
                let v = b.workflow(&a.project, Call::Integrations)?;
                println!("{:#}", v["rules"]);
            }
            RuleCmd::Remove(a) => {
                let b = connect(&a.data, &a.url, &a.token)?;
                b.workflow(&a.project, Call::Rule(&json!({"remove": a.id})))?;
                eprintln!("{name}: rule {} removed", a.id);
            }
        },
    }
    Ok(crate::cmd::exit::OK)
}
