//! The rule language: tokenizer and parser from rule-file text to [`Rule`]s and
//! [`Settings`]. The grammar is documented in rules/README.md.

use super::names::Lang;
use crate::snapshot::Trust;
use fancy_regex::Regex;
use std::fmt;

/// Where a rule or setting came from: rule file name and 1-based line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    pub file: String,
    pub line: usize,
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.file, self.line)
    }
}

/// A rule-file problem, always with file:line.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{origin}: {message}")]
pub struct RuleError {
    pub origin: Origin,
    pub message: String,
}

impl RuleError {
    fn new(origin: &Origin, message: impl Into<String>) -> RuleError {
        RuleError { origin: origin.clone(), message: message.into() }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cmp {
    Eq,
    Lt,
    Gt,
}

/// One condition on a frame (before negation).
#[derive(Debug, Clone)]
pub enum Cond {
    /// The cleaned name (after earlier `rename`s).
    Function(Regex),
    /// The name exactly as the input gave it.
    Raw(Regex),
    /// The module's file name, version-free (`libc.so`).
    Module(Regex),
    /// The module exactly as given (a path or a file name).
    Path(Regex),
    File(Regex),
    Lang(Lang),
    /// Any classifier of the crash.
    Classifier(Regex),
    /// The frame's index from the crash site (0 = crash site).
    Frame(Cmp, usize),
    /// The raw name of the next frame toward the entry (the caller).
    Caller(Regex),
    /// The raw name of the previous frame toward the crash site (the callee).
    Callee(Regex),
    /// The version-free module file name of the caller (`libc.so`, `app`); no
    /// caller, or a caller without a module, never matches.
    CallerModule(Regex),
    Trust(Trust),
    App,
    System,
    Inlined,
    NoSymbol,
}

#[derive(Debug, Clone)]
pub struct Matcher {
    pub negate: bool,
    pub cond: Cond,
    /// The matcher as written, for explanations.
    pub text: String,
}

/// What happens to a frame in the signature. The last rule that sets it wins.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Disposition {
    #[default]
    Keep,
    Skip,
    SkipThrough,
    Stop,
    StopAfter,
    Bypass,
}

impl Disposition {
    pub fn as_str(self) -> &'static str {
        match self {
            Disposition::Keep => "keep",
            Disposition::Skip => "skip",
            Disposition::SkipThrough => "skip-through",
            Disposition::Stop => "stop",
            Disposition::StopAfter => "stop-after",
            Disposition::Bypass => "bypass",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Strip {
    Templates,
    Params,
    /// Rust generic arguments written `::<…>`.
    Turbofish,
}

#[derive(Debug, Clone)]
pub enum Action {
    Set(Disposition),
    ModuleOnly,
    /// Mark the frame as application (true) or system (false) code.
    App(bool),
    Lines(bool),
    /// Regex replace on the name; `sig_only` leaves the pretty name alone.
    Rename {
        re: Regex,
        with: String,
        sig_only: bool,
    },
    SigStrip(Strip),
    Attr(String, String),
    Cap(usize),
    /// The signature of this crash ends after this many application frames
    /// (instead of `max-app-frames`).
    AppFrames(usize),
}

#[derive(Debug, Clone)]
pub struct Rule {
    pub origin: Origin,
    /// The line as written, trimmed (for `explain`).
    pub text: String,
    pub matchers: Vec<Matcher>,
    pub actions: Vec<Action>,
}

/// How unsymbolized frames enter the signature.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unsymbolized {
    /// `module` only: stable across builds, coarse.
    Module,
    /// `module+0xOFFSET`: precise, but changes with every build of the module.
    Offset,
}

/// Global knobs set with `set NAME VALUE`; later files override earlier ones.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// At most this many frames in the signature.
    pub max_frames: usize,
    /// The signature ends after this many symbolized application frames.
    pub max_app_frames: usize,
    /// Fold repeated runs (recursion, up to 4 frames per cycle) to one occurrence.
    pub collapse_recursion: bool,
    /// A stack overflow's signature: the recursion's functions (`recursion`) or the
    /// crash site like any crash (`crash-site`).
    pub overflow_recursion: bool,
    pub unsymbolized: Unsymbolized,
    /// Default for `lines on|off`.
    pub lines: bool,
    /// At most this many lines in the pretty callstack.
    pub max_pretty: usize,
}

impl Default for Settings {
    fn default() -> Settings {
        Settings {
            max_frames: 5,
            max_app_frames: 1,
            collapse_recursion: true,
            overflow_recursion: true,
            unsymbolized: Unsymbolized::Module,
            lines: false,
            max_pretty: 64,
        }
    }
}

/// A parsed rule file: its rules and the settings lines it contains.
#[derive(Debug, Clone, Default)]
pub struct ParsedFile {
    pub rules: Vec<Rule>,
    pub settings: Vec<(Origin, String, String)>,
}

/// A token and whether any part of it was quoted (a quoted `=>` is not the separator).
struct Token {
    text: String,
    quoted: bool,
}

/// Splits a line into whitespace-separated tokens. `'…'` and `"…"` quote verbatim
/// (no escapes), and may start anywhere in a token: `function:'a b'`. A `#` at the
/// start of a token begins a comment.
fn tokenize(line: &str, origin: &Origin) -> Result<Vec<Token>, RuleError> {
    let mut tokens = Vec::new();
    let mut chars = line.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        match chars.peek() {
            None | Some('#') => break,
            _ => {}
        }
        let mut tok = Token { text: String::new(), quoted: false };
        while let Some(&c) = chars.peek() {
            if c.is_whitespace() {
                break;
            }
            chars.next();
            if c == '\'' || c == '"' {
                tok.quoted = true;
                let mut closed = false;
                for q in chars.by_ref() {
                    if q == c {
                        closed = true;
                        break;
                    }
                    tok.text.push(q);
                }
                if !closed {
                    return Err(RuleError::new(origin, format!("unterminated {c} quote")));
                }
            } else {
                tok.text.push(c);
            }
        }
        tokens.push(tok);
    }
    Ok(tokens)
}

/// Compiles an anchored regex: rules match whole names, never substrings.
fn anchored(pattern: &str, origin: &Origin, what: &str) -> Result<Regex, RuleError> {
    Regex::new(&format!("^(?:{pattern})$"))
        .map_err(|e| RuleError::new(origin, format!("invalid {what} regex {pattern:?}: {e}")))
}

fn unanchored(pattern: &str, origin: &Origin) -> Result<Regex, RuleError> {
    if pattern.is_empty() {
        return Err(RuleError::new(origin, "empty rename pattern"));
    }
    Regex::new(pattern).map_err(|e| RuleError::new(origin, format!("invalid rename regex {pattern:?}: {e}")))
}

fn parse_matcher(tok: &str, origin: &Origin) -> Result<Matcher, RuleError> {
    let (negate, body) = match tok.strip_prefix('!') {
        Some(rest) => (true, rest),
        None => (false, tok),
    };
    let cond = match body.split_once(':') {
        None => match body {
            "app" => Cond::App,
            "system" => Cond::System,
            "inlined" => Cond::Inlined,
            "nosymbol" => Cond::NoSymbol,
            "first" => Cond::Frame(Cmp::Eq, 0),
            _ => {
                return Err(RuleError::new(
                    origin,
                    format!("unknown condition {body:?} (expected key:value or app, system, inlined, nosymbol, first)"),
                ));
            }
        },
        Some((key, value)) => match key {
            "function" => Cond::Function(anchored(value, origin, "function")?),
            "raw" => Cond::Raw(anchored(value, origin, "raw")?),
            "module" => Cond::Module(anchored(value, origin, "module")?),
            "path" => Cond::Path(anchored(value, origin, "path")?),
            "file" => Cond::File(anchored(value, origin, "file")?),
            "classifier" => Cond::Classifier(anchored(value, origin, "classifier")?),
            "caller" => Cond::Caller(anchored(value, origin, "caller")?),
            "callee" => Cond::Callee(anchored(value, origin, "callee")?),
            "caller-module" => Cond::CallerModule(anchored(value, origin, "caller-module")?),
            "lang" => Cond::Lang(Lang::parse(value).ok_or_else(|| {
                RuleError::new(origin, format!("unknown language {value:?} (c, c++, rust, go, unknown)"))
            })?),
            "trust" => Cond::Trust(match value {
                "context" => Trust::Context,
                "cfi" => Trust::Cfi,
                "frame_pointer" | "fp" => Trust::FramePointer,
                "scan" => Trust::Scan,
                _ => return Err(RuleError::new(origin, format!("unknown trust {value:?} (context, cfi, fp, scan)"))),
            }),
            "frame" => {
                let (cmp, n) = match value.as_bytes().first() {
                    Some(b'<') => (Cmp::Lt, &value[1..]),
                    Some(b'>') => (Cmp::Gt, &value[1..]),
                    _ => (Cmp::Eq, value),
                };
                let n =
                    n.parse().map_err(|_| RuleError::new(origin, format!("frame:{value}: expected N, <N or >N")))?;
                Cond::Frame(cmp, n)
            }
            _ => return Err(RuleError::new(origin, format!("unknown condition key {key:?}"))),
        },
    };
    Ok(Matcher { negate, cond, text: tok.to_string() })
}

fn on_off(v: Option<&Token>, origin: &Origin, what: &str) -> Result<bool, RuleError> {
    match v.map(|t| t.text.as_str()) {
        Some("on") => Ok(true),
        Some("off") => Ok(false),
        _ => Err(RuleError::new(origin, format!("{what} takes on or off"))),
    }
}

fn parse_actions(toks: &[Token], origin: &Origin) -> Result<Vec<Action>, RuleError> {
    let mut out = Vec::new();
    let mut it = toks.iter();
    while let Some(t) = it.next() {
        let a = match t.text.as_str() {
            "skip" => Action::Set(Disposition::Skip),
            "skip-through" => Action::Set(Disposition::SkipThrough),
            "stop" => Action::Set(Disposition::Stop),
            "stop-after" => Action::Set(Disposition::StopAfter),
            "keep" => Action::Set(Disposition::Keep),
            "bypass" => Action::Set(Disposition::Bypass),
            "module-only" => Action::ModuleOnly,
            "app" => Action::App(true),
            "system" => Action::App(false),
            "lines" => Action::Lines(on_off(it.next(), origin, "lines")?),
            "rename" | "sig-rename" => {
                let (Some(pat), Some(with)) = (it.next(), it.next()) else {
                    return Err(RuleError::new(
                        origin,
                        format!("{} takes a regex and a replacement ('' to delete)", t.text),
                    ));
                };
                Action::Rename {
                    re: unanchored(&pat.text, origin)?,
                    with: with.text.clone(),
                    sig_only: t.text == "sig-rename",
                }
            }
            "sig-strip" => match it.next().map(|t| t.text.as_str()) {
                Some("templates") => Action::SigStrip(Strip::Templates),
                Some("params") => Action::SigStrip(Strip::Params),
                Some("turbofish") => Action::SigStrip(Strip::Turbofish),
                _ => return Err(RuleError::new(origin, "sig-strip takes templates, params or turbofish")),
            },
            "attr" => {
                let kv = it.next().map(|t| t.text.as_str()).unwrap_or("");
                match kv.split_once('=') {
                    Some((k, v)) if !k.is_empty() => Action::Attr(k.to_string(), v.to_string()),
                    _ => return Err(RuleError::new(origin, "attr takes KEY=VALUE")),
                }
            }
            "cap" => {
                let n = it.next().and_then(|t| t.text.parse().ok()).filter(|n| *n > 0);
                Action::Cap(n.ok_or_else(|| RuleError::new(origin, "cap takes a positive number of frames"))?)
            }
            "app-frames" => {
                let n = it.next().and_then(|t| t.text.parse().ok()).filter(|n| *n > 0);
                Action::AppFrames(
                    n.ok_or_else(|| RuleError::new(origin, "app-frames takes a positive number of frames"))?,
                )
            }
            other => return Err(RuleError::new(origin, format!("unknown action {other:?}"))),
        };
        out.push(a);
    }
    if out.is_empty() {
        return Err(RuleError::new(origin, "rule has no action after =>"));
    }
    Ok(out)
}

/// Checks the name and value of a `set` line.
fn check_setting(name: &str, value: &str, origin: &Origin) -> Result<(), RuleError> {
    let ok = match name {
        "max-frames" | "max-app-frames" | "max-pretty" => value.parse::<usize>().is_ok_and(|n| n > 0),
        "collapse-recursion" | "lines" => matches!(value, "on" | "off"),
        "unsymbolized" => matches!(value, "module" | "offset"),
        "stack-overflow" => matches!(value, "recursion" | "crash-site"),
        _ => {
            return Err(RuleError::new(
                origin,
                format!(
                    "unknown setting {name:?} (max-frames, max-app-frames, max-pretty, collapse-recursion, stack-overflow, lines, unsymbolized)"
                ),
            ));
        }
    };
    if ok { Ok(()) } else { Err(RuleError::new(origin, format!("bad value {value:?} for {name}"))) }
}

/// Applies one checked `set` line.
pub fn apply_setting(s: &mut Settings, name: &str, value: &str) {
    match name {
        "max-frames" => s.max_frames = value.parse().unwrap_or(s.max_frames),
        "max-app-frames" => s.max_app_frames = value.parse().unwrap_or(s.max_app_frames),
        "max-pretty" => s.max_pretty = value.parse().unwrap_or(s.max_pretty),
        "collapse-recursion" => s.collapse_recursion = value == "on",
        "stack-overflow" => s.overflow_recursion = value == "recursion",
        "lines" => s.lines = value == "on",
        "unsymbolized" => s.unsymbolized = if value == "offset" { Unsymbolized::Offset } else { Unsymbolized::Module },
        _ => {}
    }
}

/// Parses one rule file. Errors do not stop the parse: every bad line is reported,
/// and the good lines are returned alongside (a partial result, as `check` wants).
pub fn parse(file: &str, text: &str) -> (ParsedFile, Vec<RuleError>) {
    let mut parsed = ParsedFile::default();
    let mut errors = Vec::new();
    for (idx, line) in text.lines().enumerate() {
        let origin = Origin { file: file.to_string(), line: idx + 1 };
        let toks = match tokenize(line, &origin) {
            Ok(t) => t,
            Err(e) => {
                errors.push(e);
                continue;
            }
        };
        if toks.is_empty() {
            continue;
        }
        if toks[0].text == "set" && !toks[0].quoted {
            match toks.as_slice() {
                [_, name, value] => match check_setting(&name.text, &value.text, &origin) {
                    Ok(()) => parsed.settings.push((origin, name.text.clone(), value.text.clone())),
                    Err(e) => errors.push(e),
                },
                _ => errors.push(RuleError::new(&origin, "set takes a NAME and a VALUE")),
            }
            continue;
        }
        let Some(arrow) = toks.iter().position(|t| t.text == "=>" && !t.quoted) else {
            errors.push(RuleError::new(&origin, "expected CONDITIONS => ACTIONS (or set NAME VALUE)"));
            continue;
        };
        let mut matchers = Vec::new();
        let mut bad = false;
        for t in &toks[..arrow] {
            match parse_matcher(&t.text, &origin) {
                Ok(m) => matchers.push(m),
                Err(e) => {
                    errors.push(e);
                    bad = true;
                }
            }
        }
        match parse_actions(&toks[arrow + 1..], &origin) {
            Ok(actions) if !bad => parsed.rules.push(Rule { origin, text: line.trim().to_string(), matchers, actions }),
            Ok(_) => {}
            Err(e) => errors.push(e),
        }
    }
    (parsed, errors)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn good_lines() {
        let text = "# comment\n\nset max-frames 3\nfunction:'raise|abort' module:libc.so => skip-through # trailing\n!app lang:c++ => rename '\\{lambda\\(.*\\)#\\d+\\}' '{lambda}' sig-strip templates\nframe:<2 => attr kind=top cap 2\n";
        let (p, errs) = parse("t.rules", text);
        assert!(errs.is_empty(), "{errs:?}");
        assert_eq!(p.settings.len(), 1);
        assert_eq!(p.rules.len(), 3);
        assert_eq!(p.rules[0].origin.line, 4);
        assert!(p.rules[1].matchers[0].negate);
        assert_eq!(p.rules[2].actions.len(), 2);
    }

    #[test]
    fn errors_name_the_line() {
        let text = "function:'(' => skip\nfunction:a => explode\nfunction:a\nbogus:x => skip\nset max-frames zero\nfunction:'abc => skip\nfunction:x =>\n";
        let (p, errs) = parse("bad.rules", text);
        assert!(p.rules.is_empty());
        let lines: Vec<usize> = errs.iter().map(|e| e.origin.line).collect();
        assert_eq!(lines, vec![1, 2, 3, 4, 5, 6, 7]);
        assert!(errs[0].to_string().starts_with("bad.rules:1: invalid function regex"), "{}", errs[0]);
    }

    #[test]
    fn quoted_arrow_is_not_a_separator() {
        let (p, errs) = parse("q.rules", "function:'a=>b' => skip\n");
        assert!(errs.is_empty());
        assert_eq!(p.rules[0].matchers.len(), 1);
    }
}
