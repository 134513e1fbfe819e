//! Deduplication: the rule language under rules/, signature callstacks and
//! fingerprints.
//!
//! A [`RuleSet`] is the embedded default rule files (rules/*.rules, compiled into
//! the binary) plus optional project rules. [`RuleSet::evaluate`] turns the frames
//! of a faulting thread into a [`Signature`]: a pretty callstack, a signature
//! callstack and its fingerprint. The language is documented in rules/README.md.
//!
//! Boundaries: this module reads only the frame model of [`crate::snapshot`]; it
//! never touches the store, and it never panics on input.

mod engine;
pub mod eval;
pub mod input;
mod lang;
mod names;
mod sha256;

pub use engine::{ENCODING_TAG, FrameExplanation, Signature, fingerprint};
pub use lang::{Origin, RuleError, Settings, Unsymbolized};
pub use names::{Lang, guess_lang, module_name};

use crate::snapshot::Frame;
use lang::{Cond, Rule};
use std::path::{Path, PathBuf};

/// The default rule files, in evaluation order, compiled into the binary so the
/// static `bt` needs no files at run time.
pub const DEFAULT_RULES: &[(&str, &str)] = &[
    ("00-names.rules", include_str!("../../rules/00-names.rules")),
    ("10-glibc.rules", include_str!("../../rules/10-glibc.rules")),
    ("15-alloc.rules", include_str!("../../rules/15-alloc.rules")),
    ("20-cxx.rules", include_str!("../../rules/20-cxx.rules")),
    ("30-rust.rules", include_str!("../../rules/30-rust.rules")),
    ("40-go.rules", include_str!("../../rules/40-go.rules")),
    ("45-jvm.rules", include_str!("../../rules/45-jvm.rules")),
    ("50-eventloop.rules", include_str!("../../rules/50-eventloop.rules")),
    ("90-signature.rules", include_str!("../../rules/90-signature.rules")),
];

/// Loading project rules failed.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("reading rules {path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("{} error(s) in rule files; first: {}", .0.len(), .0.first().map(|e| e.to_string()).unwrap_or_default())]
    Rules(Vec<RuleError>),
}

/// A lint finding of `bt rules check`: not an error, the rule still loads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Warning {
    pub origin: Origin,
    pub message: String,
}

impl std::fmt::Display for Warning {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: warning: {}", self.origin, self.message)
    }
}

/// An ordered set of rules and settings, ready to evaluate.
pub struct RuleSet {
    rules: Vec<Rule>,
    settings: Settings,
    shape: engine::Shape,
    /// File names in evaluation order, with where each came from.
    files: Vec<(String, String)>,
    /// Hash of every file's name and text, in order.
    version: String,
    /// Unique in the process: the evaluator's cache of frame outcomes is per rule set.
    id: u64,
}

impl std::fmt::Debug for RuleSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RuleSet")
            .field("files", &self.files)
            .field("rules", &self.rules.len())
            .field("settings", &self.settings)
            .finish()
    }
}

impl RuleSet {
    /// The embedded default rules.
    pub fn default_rules() -> RuleSet {
        let sources: Vec<(String, String, String)> =
            DEFAULT_RULES.iter().map(|(n, t)| (n.to_string(), "default".to_string(), t.to_string())).collect();
        // The defaults are parsed by a unit test on every build, so this holds.
        RuleSet::from_sources(&sources).expect("embedded default rules parse (tested by dedup::tests::defaults_parse)")
    }

    /// The defaults plus every `*.rules` file of `dir`, in name order. A project
    /// file named like a default file replaces it; the others run after the defaults.
    pub fn load(dir: &Path) -> Result<RuleSet, LoadError> {
        RuleSet::from_sources(&sources_with(dir)?).map_err(LoadError::Rules)
    }

    /// Builds a rule set from (file name, provenance, text) triples, in order.
    /// All errors of all files are returned together.
    pub fn from_sources(sources: &[(String, String, String)]) -> Result<RuleSet, Vec<RuleError>> {
        let (set, errors, _) = RuleSet::build(sources);
        if errors.is_empty() { Ok(set) } else { Err(errors) }
    }

    /// Parses everything it can: the rule set of the good lines, the errors and the
    /// lint warnings.
    pub fn build(sources: &[(String, String, String)]) -> (RuleSet, Vec<RuleError>, Vec<Warning>) {
        let mut rules = Vec::new();
        let mut settings = Settings::default();
        let mut errors = Vec::new();
        let mut files = Vec::new();
        for (name, provenance, text) in sources {
            let (parsed, errs) = lang::parse(name, text);
            errors.extend(errs);
            for (_, k, v) in &parsed.settings {
                lang::apply_setting(&mut settings, k, v);
            }
            rules.extend(parsed.rules);
            files.push((name.clone(), provenance.clone()));
        }
        let warnings = lint(&rules);
        let shape = engine::Shape {
            max_frame_ref: rules
                .iter()
                .flat_map(|r| r.matchers.iter())
                .filter_map(|m| match m.cond {
                    Cond::Frame(_, n) => Some(n),
                    _ => None,
                })
                .max()
                .unwrap_or(0),
            uses_neighbours: rules
                .iter()
                .flat_map(|r| r.matchers.iter())
                .any(|m| matches!(m.cond, Cond::Caller(_) | Cond::Callee(_) | Cond::CallerModule(_))),
        };
        let mut canon = String::from("bt-rules-v1\n");
        for (name, _, text) in sources {
            let base = name.rsplit('/').next().unwrap_or(name);
            canon.push_str(&format!("{} {}\n{}\n", base, text.len(), text));
        }
        let version = sha256::hex(&sha256::sha256(canon.as_bytes())[..8]);
        static NEXT_ID: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
        let id = NEXT_ID.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        (RuleSet { rules, settings, shape, files, version, id }, errors, warnings)
    }

    /// Evaluates the rules over the frames of a faulting thread (crash site first)
    /// and the crash's classifiers. Never fails: an empty stack has a signature too.
    pub fn evaluate(&self, frames: &[Frame], classifiers: &[String]) -> Signature {
        engine::evaluate(self.id, &self.rules, &self.settings, &self.shape, frames, classifiers)
    }

    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// Rule file names in evaluation order, with their provenance (`default` or a path).
    pub fn files(&self) -> &[(String, String)] {
        &self.files
    }

    /// 16 hex digits identifying the rule texts (file names and contents, in
    /// order): store it next to fingerprints to know which rules made them.
    pub fn version(&self) -> &str {
        &self.version
    }

    pub fn n_rules(&self) -> usize {
        self.rules.len()
    }
}

/// The default sources, with the `*.rules` files of `dir` merged in.
pub fn sources_with(dir: &Path) -> Result<Vec<(String, String, String)>, LoadError> {
    let mut sources: Vec<(String, String, String)> =
        DEFAULT_RULES.iter().map(|(n, t)| (n.to_string(), "default".to_string(), t.to_string())).collect();
    let io = |e| LoadError::Io { path: dir.to_path_buf(), source: e };
    let mut names: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(io)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "rules") && p.is_file())
        .collect();
    names.sort();
    for path in names {
        let text = std::fs::read(&path).map_err(|e| LoadError::Io { path: path.clone(), source: e })?;
        let text = String::from_utf8_lossy(&text).into_owned();
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let shown = path.display().to_string();
        match sources.iter_mut().find(|(n, _, _)| *n == name) {
            Some(slot) => *slot = (shown.clone(), shown, text),
            None => sources.push((shown.clone(), shown, text)),
        }
    }
    Ok(sources)
}

/// Lints: rules that can never fire (contradictory conditions) and rules whose
/// disposition is always overridden by a later rule with the same conditions.
fn lint(rules: &[Rule]) -> Vec<Warning> {
    let mut out = Vec::new();
    for (i, r) in rules.iter().enumerate() {
        let has = |text: &str| r.matchers.iter().any(|m| m.text == text);
        let contradiction = (has("app") && has("system"))
            || (has("app") && has("!app"))
            || (has("system") && has("!system"))
            || (has("nosymbol")
                && r.matchers.iter().any(|m| !m.negate && matches!(m.cond, Cond::Function(_) | Cond::Raw(_))))
            || {
                let langs: Vec<_> = r
                    .matchers
                    .iter()
                    .filter(|m| !m.negate)
                    .filter_map(|m| if let Cond::Lang(l) = m.cond { Some(l) } else { None })
                    .collect();
                langs.windows(2).any(|w| w[0] != w[1])
            }
            || {
                let frames: Vec<_> = r
                    .matchers
                    .iter()
                    .filter(|m| !m.negate)
                    .filter_map(|m| if let Cond::Frame(c, n) = m.cond { Some((c, n)) } else { None })
                    .collect();
                let lo = frames
                    .iter()
                    .filter_map(|&(c, n)| match c {
                        lang::Cmp::Gt => Some(n + 1),
                        lang::Cmp::Eq => Some(n),
                        _ => None,
                    })
                    .max()
                    .unwrap_or(0);
                let hi = frames
                    .iter()
                    .filter_map(|&(c, n)| match c {
                        lang::Cmp::Lt => Some(n.checked_sub(1)),
                        lang::Cmp::Eq => Some(Some(n)),
                        _ => None,
                    })
                    .min();
                matches!(hi, Some(None)) || matches!(hi, Some(Some(h)) if h < lo)
            };
        if contradiction {
            out.push(Warning {
                origin: r.origin.clone(),
                message: format!("unreachable rule: its conditions can never hold together: {}", r.text),
            });
            continue;
        }
        let key: Vec<&str> = {
            let mut k: Vec<&str> = r.matchers.iter().map(|m| m.text.as_str()).collect();
            k.sort_unstable();
            k
        };
        let sets_disposition = |rule: &Rule| rule.actions.iter().any(|a| matches!(a, lang::Action::Set(_)));
        let only_disposition = r.actions.iter().all(|a| matches!(a, lang::Action::Set(_)));
        if !(only_disposition && sets_disposition(r)) {
            continue;
        }
        if let Some(later) = rules[i + 1..].iter().find(|l| {
            let mut k: Vec<&str> = l.matchers.iter().map(|m| m.text.as_str()).collect();
            k.sort_unstable();
            k == key && sets_disposition(l)
        }) {
            out.push(Warning {
                origin: r.origin.clone(),
                message: format!("unreachable rule: {} has the same conditions and always overrides it", later.origin),
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_parse() {
        let sources: Vec<(String, String, String)> =
            DEFAULT_RULES.iter().map(|(n, t)| (n.to_string(), "default".to_string(), t.to_string())).collect();
        let (_, errors, warnings) = RuleSet::build(&sources);
        assert!(errors.is_empty(), "{errors:#?}");
        assert!(warnings.is_empty(), "{warnings:#?}");
    }

    #[test]
    fn version_follows_the_texts() {
        let a = RuleSet::build(&[("a.rules".into(), "x".into(), "function:a => skip\n".into())]).0;
        let b = RuleSet::build(&[("/some/dir/a.rules".into(), "y".into(), "function:a => skip\n".into())]).0;
        let c = RuleSet::build(&[("a.rules".into(), "x".into(), "function:b => skip\n".into())]).0;
        assert_eq!(a.version(), b.version(), "where a file came from does not matter");
        assert_ne!(a.version(), c.version());
        assert_eq!(RuleSet::default_rules().version().len(), 16);
    }

    #[test]
    fn lint_finds_unreachable() {
        let text = "app system => skip\nfunction:a => skip\nfunction:a => keep\nframe:<1 frame:>3 => skip\nlang:c lang:rust => skip\n";
        let (_, errors, warnings) = RuleSet::build(&[("l.rules".into(), "test".into(), text.into())]);
        assert!(errors.is_empty());
        let lines: Vec<usize> = warnings.iter().map(|w| w.origin.line).collect();
        assert_eq!(lines, vec![1, 2, 4, 5]);
    }
}
