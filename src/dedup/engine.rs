//! The evaluator: runs a [`RuleSet`](super::RuleSet)'s rules over each frame, then
//! walks the frames from the crash site toward the entry as a small state machine
//! that yields the signature and the pretty callstack in one pass.

use super::lang::{Action, Cmp, Cond, Disposition, Rule, Settings, Strip, Unsymbolized};
use super::names::{Lang, guess_lang, module_name, strip_balanced, strip_turbofish};
use super::sha256::{hex, sha256};
use crate::snapshot::{Frame, Trust};
use std::collections::{BTreeMap, HashMap};
use std::rc::Rc;

/// What the rules decided for one frame.
#[derive(Debug, Clone, Default)]
struct Outcome {
    pretty: Option<String>,
    sig: Option<String>,
    app: bool,
    disposition: Disposition,
    module_only: bool,
    lines: Option<bool>,
    attrs: Vec<(String, String)>,
    cap: Option<usize>,
    app_frames: Option<usize>,
    /// Indexes into the rule list of the rules that fired, in order.
    fired: Vec<usize>,
}

/// Facts about a frame that conditions test, computed once.
struct Facts<'a> {
    raw: Option<&'a str>,
    module: Option<String>,
    path: Option<&'a str>,
    file: Option<&'a str>,
    lang: Lang,
    inlined: bool,
    trust: Trust,
    idx: usize,
    caller: Option<&'a str>,
    callee: Option<&'a str>,
    /// The caller's module, version-free.
    caller_module: Option<String>,
}

/// One frame's story, for `bt rules explain`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct FrameExplanation {
    pub index: usize,
    /// The frame as the input gave it.
    pub frame: String,
    pub lang: String,
    pub app: bool,
    /// `file:line: rule text` of every rule that fired, in order.
    pub rules: Vec<String>,
    /// What became of the frame.
    pub outcome: String,
}

/// The result of evaluating the rules over one callstack.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Signature {
    /// 32 lowercase hex digits: the first 128 bits of SHA-256 over the canonical
    /// encoding of `signature` and `attributes` (see rules/README.md, "Stability").
    pub fingerprint: String,
    /// The grouping callstack, crash site first.
    pub signature: Vec<String>,
    /// The callstack for humans: boilerplate folded, names cleaned.
    pub pretty: Vec<String>,
    /// Attributes added by `attr` actions; part of the fingerprint.
    pub attributes: BTreeMap<String, String>,
    #[serde(skip)]
    pub explanation: Vec<FrameExplanation>,
}

/// The version tag at the head of the canonical encoding. Changing the encoding
/// (not the rules) bumps it.
pub const ENCODING_TAG: &str = "bt-signature-v1";

/// The fingerprint of a signature: stable for equal inputs, forever.
pub fn fingerprint(signature: &[String], attributes: &BTreeMap<String, String>) -> String {
    let mut canon = String::from(ENCODING_TAG);
    canon.push('\n');
    for s in signature {
        canon.push_str("f ");
        canon.push_str(&s.replace('\\', "\\\\").replace('\n', "\\n"));
        canon.push('\n');
    }
    for (k, v) in attributes {
        canon.push_str("a ");
        canon.push_str(&format!(
            "{}={}",
            k.replace('\\', "\\\\").replace('\n', "\\n"),
            v.replace('\\', "\\\\").replace('\n', "\\n")
        ));
        canon.push('\n');
    }
    hex(&sha256(canon.as_bytes())[..16])
}

fn test(re: &fancy_regex::Regex, s: Option<&str>) -> bool {
    // A regex that exceeds its backtracking budget counts as "no match".
    s.is_some_and(|s| re.is_match(s).unwrap_or(false))
}

fn cond_holds(cond: &Cond, f: &Facts, o: &Outcome, classifiers: &[String]) -> bool {
    match cond {
        Cond::Function(re) => test(re, o.pretty.as_deref()),
        Cond::Raw(re) => test(re, f.raw),
        Cond::Module(re) => test(re, f.module.as_deref()),
        Cond::Path(re) => test(re, f.path),
        Cond::File(re) => test(re, f.file),
        Cond::Lang(l) => f.lang == *l,
        Cond::Classifier(re) => classifiers.iter().any(|c| test(re, Some(c))),
        Cond::Frame(Cmp::Eq, n) => f.idx == *n,
        Cond::Frame(Cmp::Lt, n) => f.idx < *n,
        Cond::Frame(Cmp::Gt, n) => f.idx > *n,
        Cond::Caller(re) => test(re, f.caller),
        Cond::Callee(re) => test(re, f.callee),
        Cond::CallerModule(re) => test(re, f.caller_module.as_deref()),
        Cond::Trust(t) => f.trust == *t,
        Cond::App => o.app,
        Cond::System => !o.app,
        Cond::Inlined => f.inlined,
        Cond::NoSymbol => f.raw.is_none(),
    }
}

fn rename(name: &mut Option<String>, re: &fancy_regex::Regex, with: &str) {
    if let Some(n) = name
        && let Ok(std::borrow::Cow::Owned(new)) = re.try_replacen(n, 0, with)
    {
        *n = new;
    }
}

/// Runs every rule, in order, over one frame.
fn run_rules(rules: &[Rule], f: &Facts, classifiers: &[String]) -> Outcome {
    let mut o = Outcome { pretty: f.raw.map(str::to_string), sig: None, app: true, ..Default::default() };
    for (ri, rule) in rules.iter().enumerate() {
        if !rule.matchers.iter().all(|m| cond_holds(&m.cond, f, &o, classifiers) != m.negate) {
            continue;
        }
        o.fired.push(ri);
        for a in &rule.actions {
            match a {
                Action::Set(d) => o.disposition = *d,
                Action::ModuleOnly => o.module_only = true,
                Action::App(app) => o.app = *app,
                Action::Lines(on) => o.lines = Some(*on),
                Action::Rename { re, with, sig_only: false } => {
                    rename(&mut o.pretty, re, with);
                    if o.sig.is_some() {
                        rename(&mut o.sig, re, with);
                    }
                }
                Action::Rename { re, with, sig_only: true } => {
                    if o.sig.is_none() {
                        o.sig = o.pretty.clone();
                    }
                    rename(&mut o.sig, re, with);
                }
                Action::SigStrip(what) => {
                    if o.sig.is_none() {
                        o.sig = o.pretty.clone();
                    }
                    if let Some(s) = &mut o.sig {
                        *s = match what {
                            Strip::Templates => strip_balanced(s, '<', '>'),
                            Strip::Params => strip_balanced(s, '(', ')'),
                            Strip::Turbofish => strip_turbofish(s),
                        };
                    }
                }
                Action::Attr(k, v) => o.attrs.push((k.clone(), v.clone())),
                Action::Cap(n) => o.cap = Some(*n),
                Action::AppFrames(n) => o.app_frames = Some(*n),
            }
        }
    }
    if o.sig.is_none() {
        o.sig = o.pretty.clone();
    }
    o
}

/// What a rule set knows about itself that shapes memoization.
pub(super) struct Shape {
    /// Largest N in any `frame:` condition; frames past it look alike.
    pub max_frame_ref: usize,
    pub uses_neighbours: bool,
}

fn frame_text(frame: &Frame) -> String {
    let mut s = match (&frame.function, &frame.module) {
        (Some(f), _) => f.clone(),
        (None, Some(m)) => format!("{}+{:#x}", module_name(m), frame.module_offset),
        (None, None) => format!("{:#x}", frame.pc),
    };
    if let Some(file) = &frame.file {
        s.push_str(&format!(" at {}", file));
        if let Some(line) = frame.line {
            s.push_str(&format!(":{line}"));
        }
    }
    if frame.inlined {
        s.push_str(" [inlined]");
    }
    s
}

/// Signature element for one kept frame.
fn sig_text(frame: &Frame, o: &Outcome, settings: &Settings) -> String {
    let module = frame.module.as_deref().map(module_name).unwrap_or_else(|| "?".to_string());
    if frame.function.is_none() {
        return match settings.unsymbolized {
            Unsymbolized::Module => module,
            Unsymbolized::Offset => format!("{module}+{:#x}", frame.module_offset),
        };
    }
    if o.module_only {
        return module;
    }
    let mut s = o.sig.clone().unwrap_or_default();
    if o.lines.unwrap_or(settings.lines)
        && let Some(line) = frame.line
    {
        s.push_str(&format!(":{line}"));
    }
    s
}

fn pretty_text(frame: &Frame, o: &Outcome) -> String {
    let mut s = match &o.pretty {
        Some(p) => p.clone(),
        None => frame_text(&Frame { file: None, inlined: false, ..frame.clone() }),
    };
    if let Some(file) = &frame.file {
        let short = file.rsplit('/').next().unwrap_or(file);
        s.push_str(&format!(" ({short}"));
        if let Some(line) = frame.line {
            s.push_str(&format!(":{line}"));
        }
        s.push(')');
    }
    s
}

/// A signature entry under construction.
struct Kept {
    text: String,
    frame_idx: usize,
    app: bool,
}

/// After pushing, drops a just-completed repeat of the last 1..=4 entries
/// (direct and mutual recursion). Returns the frame indexes it dropped.
fn collapse_tail(kept: &mut Vec<Kept>) -> Vec<usize> {
    for k in 1..=4usize {
        let n = kept.len();
        if n >= 2 * k && (0..k).all(|j| kept[n - k + j].text == kept[n - 2 * k + j].text) {
            return kept.drain(n - k..).map(|e| e.frame_idx).collect();
        }
    }
    Vec::new()
}

/// Most frames of an overflowing stack looked at, from the crash site.
const RECURSION_WINDOW: usize = 256;
/// Most functions in a recursion signature. A grammar's cycle can be long (NASM's
/// expression parser recurses through 14 functions): a cap below its length keeps a
/// different subset depending on where the stack ran out.
const RECURSION_FUNCTIONS: usize = 32;

/// The functions that recur in the innermost [`RECURSION_WINDOW`] frames of an
/// overflowing stack, each at its innermost frame, in name order — the same set
/// whichever function the stack ran out in and however the cycle was entered (a
/// grammar's recursion is rarely periodic). A function counts when it appears at
/// least twice and at least a quarter as often as the most frequent one (helpers
/// called at the crash site appear once); the most frequent [`RECURSION_FUNCTIONS`]
/// are kept. None when nothing repeats three times (a huge frame, not recursion).
fn recursion(frames: &[Frame], outcomes: &[Rc<Outcome>], settings: &Settings) -> Option<Vec<Kept>> {
    let mut counts: HashMap<String, (usize, usize, bool)> = HashMap::new();
    for (idx, (frame, o)) in frames.iter().zip(outcomes).enumerate().take(RECURSION_WINDOW) {
        if !matches!(o.disposition, Disposition::Keep | Disposition::StopAfter) || frame.function.is_none() {
            continue;
        }
        counts.entry(sig_text(frame, o, settings)).or_insert((0, idx, o.app)).0 += 1;
    }
    let most = counts.values().map(|c| c.0).max()?;
    if most < 3 {
        return None;
    }
    let mut recurring: Vec<(String, (usize, usize, bool))> =
        counts.into_iter().filter(|(_, c)| c.0 >= (most / 4).max(2)).collect();
    recurring.sort_by(|a, b| b.1.0.cmp(&a.1.0).then_with(|| a.0.cmp(&b.0)));
    recurring.truncate(RECURSION_FUNCTIONS);
    recurring.sort_by(|a, b| a.0.cmp(&b.0));
    Some(recurring.into_iter().map(|(text, (_, frame_idx, app))| Kept { text, frame_idx, app }).collect())
}

/// What the rules can see of a frame: raw name, module, file, inlined, trust,
/// clamped index, caller, callee and the caller's module. Frames with equal keys
/// get equal outcomes.
type MemoKey<'a> = (
    Option<&'a str>,
    Option<&'a str>,
    Option<&'a str>,
    bool,
    Trust,
    usize,
    Option<&'a str>,
    Option<&'a str>,
    Option<&'a str>,
);

/// Outcomes this thread has already computed, across evaluations: a server's
/// submissions share most of their frames (libc's, the hot paths of an
/// application), and the rules' regexes are most of the cost of a signature.
/// Keyed by the rule set, the crash's classifiers (`classifier:` conditions) and
/// the frame's [`MemoKey`], encoded; emptied when it holds [`SEEN_MAX`] outcomes.
struct Seen {
    map: HashMap<Box<[u8]>, Rc<Outcome>, foldhash::fast::RandomState>,
    key: Vec<u8>,
}

const SEEN_MAX: usize = 4096;
/// Longest encoded key remembered: a frame with longer names (a hostile or absurd
/// submission) is evaluated every time, so the cache stays within a few MiB a thread.
const SEEN_KEY_MAX: usize = 1024;

thread_local! {
    static SEEN: std::cell::RefCell<Seen> =
        std::cell::RefCell::new(Seen { map: HashMap::default(), key: Vec::new() });
}

/// Appends an unambiguous encoding of `key` (after the rule set and classifiers).
fn encode_memo_key(out: &mut Vec<u8>, key: &MemoKey) {
    let (raw, module, file, inlined, trust, idx, caller, callee, caller_module) = *key;
    for s in [raw, module, file, caller, callee, caller_module] {
        match s {
            None => out.push(0),
            Some(s) => {
                out.push(1);
                out.extend_from_slice(&(s.len() as u64).to_le_bytes());
                out.extend_from_slice(s.as_bytes());
            }
        }
    }
    out.push(inlined as u8);
    out.push(trust as u8);
    out.extend_from_slice(&(idx as u64).to_le_bytes());
}

/// Evaluates the rules over `frames` (crash site first).
pub(super) fn evaluate(
    rules_id: u64,
    rules: &[Rule],
    settings: &Settings,
    shape: &Shape,
    frames: &[Frame],
    classifiers: &[String],
) -> Signature {
    let n = frames.len();
    let mut memo: HashMap<MemoKey, Rc<Outcome>> = HashMap::new();
    // What every key of this evaluation starts with: the rule set, the classifiers.
    let mut prefix = rules_id.to_le_bytes().to_vec();
    prefix.extend_from_slice(&(classifiers.len() as u64).to_le_bytes());
    for c in classifiers {
        prefix.extend_from_slice(&(c.len() as u64).to_le_bytes());
        prefix.extend_from_slice(c.as_bytes());
    }
    SEEN.with_borrow_mut(|seen| {
        seen.key.clear();
        seen.key.extend_from_slice(&prefix);
    });
    let mut outcomes: Vec<Rc<Outcome>> = Vec::with_capacity(n);
    let mut langs = Vec::with_capacity(n);
    for (idx, frame) in frames.iter().enumerate() {
        let (caller, callee, caller_module) = if shape.uses_neighbours {
            (
                frames.get(idx + 1).and_then(|f| f.function.as_deref()),
                idx.checked_sub(1).and_then(|i| frames[i].function.as_deref()),
                frames.get(idx + 1).and_then(|f| f.module.as_deref()),
            )
        } else {
            (None, None, None)
        };
        let key = (
            frame.function.as_deref(),
            frame.module.as_deref(),
            frame.file.as_deref(),
            frame.inlined,
            frame.trust,
            idx.min(shape.max_frame_ref + 1),
            caller,
            callee,
            caller_module,
        );
        let lang = guess_lang(frame.function.as_deref(), frame.file.as_deref());
        langs.push(lang);
        let o = memo
            .entry(key)
            .or_insert_with(|| {
                SEEN.with_borrow_mut(|seen| {
                    let Seen { map, key: buf } = seen;
                    buf.truncate(prefix.len());
                    encode_memo_key(buf, &key);
                    if let Some(o) = map.get(buf.as_slice()) {
                        return o.clone();
                    }
                    let facts = Facts {
                        raw: frame.function.as_deref(),
                        module: frame.module.as_deref().map(module_name),
                        path: frame.module.as_deref(),
                        file: frame.file.as_deref(),
                        lang,
                        inlined: frame.inlined,
                        trust: frame.trust,
                        idx,
                        caller,
                        callee,
                        caller_module: caller_module.map(module_name),
                    };
                    let o = Rc::new(run_rules(rules, &facts, classifiers));
                    if buf.len() <= SEEN_KEY_MAX {
                        if map.len() >= SEEN_MAX {
                            map.clear();
                        }
                        map.insert(buf.as_slice().into(), o.clone());
                    }
                    o
                })
            })
            .clone();
        outcomes.push(o);
    }

    // The walk: crash site → entry.
    let mut kept: Vec<Kept> = Vec::new();
    let mut stopped_at: Option<usize> = None;
    let mut prologue_end = 0usize;
    let mut cap = settings.max_frames;
    let mut app_frames = settings.max_app_frames;
    let mut attributes = BTreeMap::new();
    let mut collapsed = vec![false; n];
    let mut stop_reason: Vec<Option<&'static str>> = vec![None; n];
    let mut past_entry = false;
    for (idx, (frame, o)) in frames.iter().zip(&outcomes).enumerate() {
        if o.disposition == Disposition::Stop {
            past_entry = true;
        }
        // An entry frame (`stop`) is a barrier: nothing beyond the thread's or the
        // process's entry can be the error handling of this crash.
        if o.disposition == Disposition::SkipThrough && !past_entry {
            kept.clear();
            stopped_at = None;
            prologue_end = idx + 1;
            cap = settings.max_frames;
            app_frames = settings.max_app_frames;
        }
        if stopped_at.is_some() {
            continue;
        }
        for (k, v) in &o.attrs {
            attributes.insert(k.clone(), v.clone());
        }
        if let Some(c) = o.cap {
            cap = cap.min(c);
        }
        if let Some(a) = o.app_frames {
            app_frames = a;
        }
        match o.disposition {
            Disposition::SkipThrough | Disposition::Skip | Disposition::Bypass => {}
            Disposition::Stop => {
                stopped_at = Some(idx);
                stop_reason[idx] = Some("stop: the signature ends before this frame");
            }
            Disposition::Keep | Disposition::StopAfter => {
                kept.push(Kept {
                    text: sig_text(frame, o, settings),
                    frame_idx: idx,
                    app: o.app && frame.function.is_some(),
                });
                if settings.collapse_recursion {
                    for i in collapse_tail(&mut kept) {
                        collapsed[i] = true;
                    }
                }
                let n_app = kept.iter().filter(|k| k.app).count();
                if o.disposition == Disposition::StopAfter {
                    stopped_at = Some(idx);
                    stop_reason[idx] = Some("stop-after: last frame of the signature");
                } else if n_app >= app_frames && kept.last().is_some_and(|k| k.app && k.frame_idx == idx) {
                    stopped_at = Some(idx);
                    stop_reason[idx] = Some("max-app-frames reached: last frame of the signature");
                } else if kept.len() >= cap {
                    stopped_at = Some(idx);
                    stop_reason[idx] = Some("max-frames reached: last frame of the signature");
                }
            }
        }
    }
    // A stack overflow: where the stack ran out is an accident of depth and frame
    // sizes; the functions that recur are the bug.
    if settings.overflow_recursion
        && classifiers.iter().any(|c| c == "stack-overflow") // the analysis names it so
        && let Some(recurring) = recursion(frames, &outcomes, settings)
    {
        for k in &recurring {
            stop_reason[k.frame_idx] = Some("recursion: recurs in the overflowing stack (stack-overflow)");
        }
        stopped_at = recurring.iter().map(|k| k.frame_idx).max();
        kept = recurring;
    }
    let signature: Vec<String> = kept.iter().map(|k| k.text.clone()).collect();
    let in_sig: HashMap<usize, &str> = kept.iter().map(|k| (k.frame_idx, k.text.as_str())).collect();
    let last_sig = stopped_at.unwrap_or(n);

    // Pretty: fold skipped runs, count repeats, cap the length.
    let mut pretty: Vec<String> = Vec::new();
    let mut fold: Option<(&'static str, Vec<String>)> = None;
    let mut last_line: Option<(String, usize)> = None;
    let flush_fold = |fold: &mut Option<(&'static str, Vec<String>)>, pretty: &mut Vec<String>| {
        if let Some((what, names)) = fold.take() {
            let mut shown: Vec<String> = Vec::new();
            for nm in &names {
                if shown.last() != Some(nm) && shown.len() < 4 {
                    shown.push(nm.clone());
                }
            }
            let more = if names.len() > shown.len() { ", …" } else { "" };
            let what = if names.len() == 1 { what.replacen("frames", "frame", 1) } else { what.to_string() };
            pretty.push(format!("[{} {what}: {}{more}]", names.len(), shown.join(", ")));
        }
    };
    let flush_line = |last: &mut Option<(String, usize)>, pretty: &mut Vec<String>| {
        if let Some((line, count)) = last.take() {
            pretty.push(if count > 1 { format!("{line} (×{count})") } else { line });
        }
    };
    for (idx, (frame, o)) in frames.iter().zip(&outcomes).enumerate() {
        let folded = if idx < prologue_end {
            Some("frames of error handling")
        } else {
            match o.disposition {
                Disposition::Skip => Some("frames skipped"),
                Disposition::Bypass => Some("frames of dispatch bypassed"),
                _ => None,
            }
        };
        match folded {
            Some(what) => {
                flush_line(&mut last_line, &mut pretty);
                let name = o.pretty.clone().unwrap_or_else(|| frame_text(frame));
                match &mut fold {
                    Some((w, names)) if *w == what => names.push(name),
                    _ => {
                        flush_fold(&mut fold, &mut pretty);
                        fold = Some((what, vec![name]));
                    }
                }
            }
            None => {
                flush_fold(&mut fold, &mut pretty);
                let line = pretty_text(frame, o);
                match &mut last_line {
                    Some((l, c)) if *l == line => *c += 1,
                    _ => {
                        flush_line(&mut last_line, &mut pretty);
                        last_line = Some((line, 1));
                    }
                }
            }
        }
        if pretty.len() > settings.max_pretty {
            break;
        }
    }
    flush_fold(&mut fold, &mut pretty);
    flush_line(&mut last_line, &mut pretty);
    if pretty.len() > settings.max_pretty {
        pretty.truncate(settings.max_pretty);
        pretty.push("[… more frames]".to_string());
    }

    // Explanation: per frame, the rules that fired and the outcome.
    let explanation = frames
        .iter()
        .zip(&outcomes)
        .enumerate()
        .map(|(idx, (frame, o))| {
            let outcome = if let Some(text) = in_sig.get(&idx) {
                match stop_reason[idx] {
                    Some(r) => format!("signature: {text} ({r})"),
                    None => format!("signature: {text}"),
                }
            } else if idx + 1 == prologue_end {
                "skip-through: this frame and all above it are error handling".to_string()
            } else if idx < prologue_end {
                "dropped: above a later skip-through frame".to_string()
            } else if collapsed[idx] {
                "collapsed: repeats the frames above (recursion)".to_string()
            } else if let Some(r) = stop_reason[idx] {
                r.to_string()
            } else if idx > last_sig {
                "after the end of the signature".to_string()
            } else {
                match o.disposition {
                    Disposition::Skip => "skip".to_string(),
                    Disposition::Bypass => "bypass: dispatcher frame".to_string(),
                    d => d.as_str().to_string(),
                }
            };
            FrameExplanation {
                index: idx,
                frame: frame_text(frame),
                lang: langs[idx].as_str().to_string(),
                app: o.app,
                rules: o.fired.iter().map(|&ri| format!("{}: {}", rules[ri].origin, rules[ri].text)).collect(),
                outcome,
            }
        })
        .collect();

    Signature { fingerprint: fingerprint(&signature, &attributes), signature, pretty, attributes, explanation }
}
