//! Grouping quality on labeled crashes: BCubed and pairwise precision/recall/F1,
//! and the naive baselines bt is measured against.

use crate::snapshot::Frame;
use std::collections::HashMap;

/// Precision, recall and F1 of one clustering against the true labels.
#[derive(Debug, Clone, Copy, PartialEq, Default, serde::Serialize)]
pub struct Scores {
    pub bcubed_precision: f64,
    pub bcubed_recall: f64,
    pub bcubed_f1: f64,
    pub pairwise_precision: f64,
    pub pairwise_recall: f64,
    pub pairwise_f1: f64,
    pub n_groups: usize,
}

fn f1(p: f64, r: f64) -> f64 {
    if p + r == 0.0 { 0.0 } else { 2.0 * p * r / (p + r) }
}

fn pairs(n: usize) -> f64 {
    (n as f64) * (n as f64 - 1.0) / 2.0
}

/// Scores `groups[i]` (the predicted group of item i) against `labels[i]`.
/// BCubed: per item, the share of its group that has its label (precision) and the
/// share of its label that is in its group (recall), averaged over items. Pairwise:
/// over all pairs of items put together (precision) or belonging together (recall);
/// with no such pair the ratio is 1.
pub fn score<L: AsRef<str>, G: AsRef<str>>(labels: &[L], groups: &[G]) -> Scores {
    let n = labels.len().min(groups.len());
    if n == 0 {
        return Scores::default();
    }
    let mut by_group: HashMap<&str, usize> = HashMap::new();
    let mut by_label: HashMap<&str, usize> = HashMap::new();
    let mut by_both: HashMap<(&str, &str), usize> = HashMap::new();
    for i in 0..n {
        let (l, g) = (labels[i].as_ref(), groups[i].as_ref());
        *by_group.entry(g).or_default() += 1;
        *by_label.entry(l).or_default() += 1;
        *by_both.entry((g, l)).or_default() += 1;
    }
    let (mut p, mut r) = (0.0, 0.0);
    for i in 0..n {
        let (l, g) = (labels[i].as_ref(), groups[i].as_ref());
        let both = by_both[&(g, l)] as f64;
        p += both / by_group[g] as f64;
        r += both / by_label[l] as f64;
    }
    let (bp, br) = (p / n as f64, r / n as f64);
    let tp: f64 = by_both.values().map(|&c| pairs(c)).sum();
    let claimed: f64 = by_group.values().map(|&c| pairs(c)).sum();
    let truth: f64 = by_label.values().map(|&c| pairs(c)).sum();
    let pp = if claimed == 0.0 { 1.0 } else { tp / claimed };
    let pr = if truth == 0.0 { 1.0 } else { tp / truth };
    Scores {
        bcubed_precision: bp,
        bcubed_recall: br,
        bcubed_f1: f1(bp, br),
        pairwise_precision: pp,
        pairwise_recall: pr,
        pairwise_f1: f1(pp, pr),
        n_groups: by_group.len(),
    }
}

/// What a grouping by frame names can reach on a labeled corpus: the crashes whose
/// whole callstacks have the same names are put in the group of their most common
/// label (ties: the first in byte order). It reads the labels, so it is a reference,
/// not a method: crashes of different bugs with the same stack are beyond any grouping
/// that sees only the names (merging more of them would only cost more precision).
pub fn names_ceiling<L: AsRef<str>>(labels: &[L], stacks: &[&[Frame]]) -> Scores {
    let keys: Vec<String> = stacks.iter().map(|f| Baseline::WholeStack.key(f)).collect();
    let mut counts: HashMap<&str, HashMap<&str, usize>> = HashMap::new();
    for (k, l) in keys.iter().zip(labels) {
        *counts.entry(k).or_default().entry(l.as_ref()).or_default() += 1;
    }
    let majority: HashMap<&str, &str> = counts
        .iter()
        .map(|(k, ls)| (*k, ls.iter().max_by(|a, b| a.1.cmp(b.1).then(b.0.cmp(a.0))).map(|(l, _)| *l).unwrap_or("")))
        .collect();
    let groups: Vec<&str> = keys.iter().map(|k| majority[k.as_str()]).collect();
    score(labels, &groups)
}

/// The naive groupings bt is compared with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Baseline {
    /// Every frame's raw name, in order.
    WholeStack,
    /// The crash site's raw name.
    FirstFrame,
    /// The first frame whose module is not a system library (by path and name).
    FirstAppFrame,
    /// The three innermost raw names.
    Top3,
    /// The first frame past the abort, assert, fortify, allocator-check and
    /// sanitizer-report frames (a fixed list, not the rules).
    FirstPastPrologue,
    /// The crash site's `file:line` (its name when it has no line).
    CrashSite,
}

/// The frames [`Baseline::FirstPastPrologue`] passes over: how a process is
/// stopped (signals, abort, asserts, fortify, malloc checks, sanitizer reports).
fn is_prologue(f: &Frame) -> bool {
    let n = raw_name(f);
    let n = n.trim_start_matches("__GI_");
    const EXACT: &[&str] = &[
        "raise",
        "abort",
        "gsignal",
        "pthread_kill",
        "__pthread_kill",
        "__pthread_kill_implementation",
        "__pthread_kill_internal",
        "__restore_rt",
        "__libc_message",
        "__libc_message_impl",
        "malloc_printerr",
        "__assert_fail",
        "__assert_fail_base",
        "__stack_chk_fail",
        "__fortify_fail",
        "__chk_fail",
        "__libc_fatal",
    ];
    EXACT.contains(&n)
        || ["__sanitizer", "__asan", "__ubsan", "__msan", "__tsan", "__lsan", "__interceptor_", "___interceptor_"]
            .iter()
            .any(|p| n.starts_with(p))
}

impl Baseline {
    pub const ALL: [Baseline; 6] = [
        Baseline::WholeStack,
        Baseline::FirstFrame,
        Baseline::FirstAppFrame,
        Baseline::Top3,
        Baseline::FirstPastPrologue,
        Baseline::CrashSite,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Baseline::WholeStack => "whole callstack",
            Baseline::FirstFrame => "first frame",
            Baseline::FirstAppFrame => "first application frame",
            Baseline::Top3 => "top 3 frames",
            Baseline::FirstPastPrologue => "first past abort/sanitizer",
            Baseline::CrashSite => "crash-site file:line",
        }
    }

    /// The group key of a callstack under this baseline.
    pub fn key(self, frames: &[Frame]) -> String {
        let names = |fs: &[Frame]| fs.iter().map(raw_name).collect::<Vec<_>>().join(" | ");
        match self {
            Baseline::WholeStack => names(frames),
            Baseline::FirstFrame => names(&frames[..frames.len().min(1)]),
            Baseline::Top3 => names(&frames[..frames.len().min(3)]),
            Baseline::FirstAppFrame => match frames.iter().find(|f| !is_system_module(f.module.as_deref())) {
                Some(f) => raw_name(f),
                None => names(&frames[..frames.len().min(1)]),
            },
            Baseline::FirstPastPrologue => {
                // The outermost prologue frame wins, as with the rules' skip-through.
                let past = frames.iter().rposition(is_prologue).map(|i| i + 1).unwrap_or(0);
                match frames.get(past) {
                    Some(f) => raw_name(f),
                    None => names(&frames[..frames.len().min(1)]),
                }
            }
            Baseline::CrashSite => match frames.first() {
                Some(Frame { file: Some(file), line: Some(line), .. }) => format!("{file}:{line}"),
                _ => names(&frames[..frames.len().min(1)]),
            },
        }
    }
}

/// A frame's name as a naive tool sees it: the symbol, else module+offset.
pub fn raw_name(f: &Frame) -> String {
    match (&f.function, &f.module) {
        (Some(n), _) => n.clone(),
        (None, Some(m)) => format!("{m}+{:#x}", f.module_offset),
        (None, None) => format!("{:#x}", f.pc),
    }
}

/// System library by location or by well-known name (the tracer may give a path
/// or only a file name).
pub fn is_system_module(module: Option<&str>) -> bool {
    let Some(m) = module else { return false };
    if ["/lib/", "/lib64/", "/usr/lib/", "/usr/lib64/", "/usr/libexec/"].iter().any(|p| m.starts_with(p)) {
        return true;
    }
    let base = m.rsplit('/').next().unwrap_or(m);
    base.starts_with('[')
        || base.starts_with("linux-vdso")
        || base.starts_with("ld-linux")
        || [
            "libc.so",
            "libm.so",
            "libpthread.so",
            "libdl.so",
            "librt.so",
            "libstdc++.so",
            "libgcc_s.so",
            "libc++.so",
            "libc++abi.so",
        ]
        .iter()
        .any(|p| base.starts_with(p))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn perfect_and_lumped() {
        let labels = ["a", "a", "b", "b"];
        let s = score(&labels, &["1", "1", "2", "2"]);
        assert_eq!((s.bcubed_f1, s.pairwise_f1, s.n_groups), (1.0, 1.0, 2));
        let s = score(&labels, &["x", "x", "x", "x"]);
        assert_eq!(s.bcubed_precision, 0.5);
        assert_eq!(s.bcubed_recall, 1.0);
        assert!((s.pairwise_precision - 2.0 / 6.0).abs() < 1e-12);
        let s = score(&labels, &["1", "2", "3", "4"]);
        assert_eq!(
            (s.bcubed_precision, s.bcubed_recall, s.pairwise_precision, s.pairwise_recall),
            (1.0, 0.5, 1.0, 0.0)
        );
    }

    #[test]
    fn baselines() {
        let f = |n: &str, m: &str| Frame { function: Some(n.into()), module: Some(m.into()), ..Default::default() };
        let frames = vec![
            f("raise", "/lib/x86_64-linux-gnu/libc.so.6"),
            f("abort", "libc.so.6"),
            f("die", "/opt/app"),
            f("main", "/opt/app"),
        ];
        assert_eq!(Baseline::FirstFrame.key(&frames), "raise");
        assert_eq!(Baseline::FirstAppFrame.key(&frames), "die");
        assert_eq!(Baseline::Top3.key(&frames), "raise | abort | die");
        assert_eq!(Baseline::WholeStack.key(&[]), "");
    }

    #[test]
    fn the_names_ceiling_groups_each_stack_with_its_most_common_label() {
        let f = |n: &str| vec![Frame { function: Some(n.into()), ..Default::default() }];
        let (x, y, z) = (f("x"), f("y"), f("z"));
        // Stack x: bugs a, a, b (b is lost); stack y: bug a (joins x's group); z: c.
        let stacks: Vec<&[Frame]> = vec![&x, &x, &x, &y, &z];
        let labels = ["a", "a", "b", "a", "c"];
        let s = names_ceiling(&labels, &stacks);
        assert_eq!(s, score(&labels, &["a", "a", "a", "a", "c"]));
        assert_eq!(s.n_groups, 2);
        // A tie goes to the first label in byte order, whatever the order of the crashes.
        let s = names_ceiling(&["q", "p"], &[&x[..], &x[..]]);
        assert_eq!(s, score(&["q", "p"], &["p", "p"]));
    }
}
