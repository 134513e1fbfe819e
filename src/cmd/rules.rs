//! `bt rules`: fingerprint callstacks, explain a signature, lint rule files, and
//! measure grouping quality on a labeled corpus.

use crate::dedup::eval::{Baseline, Scores, names_ceiling, score};
use crate::dedup::input::{InputError, Record, read_records, record_from_snapshot};
use crate::dedup::{DEFAULT_RULES, RuleSet, sources_with};
use crate::snapshot::{Frame, MAGIC, Snapshot};
use anyhow::{Context, bail};
use argh::FromArgs;
use std::collections::{BTreeMap, HashMap};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

/// Deduplication rules: fingerprint, explain, check, eval.
#[derive(FromArgs, Debug)]
struct Args {
    #[argh(subcommand)]
    cmd: Sub,
}

#[derive(FromArgs, Debug)]
#[argh(subcommand)]
enum Sub {
    Fingerprint(FingerprintArgs),
    Explain(ExplainArgs),
    Check(CheckArgs),
    Eval(EvalArgs),
    Show(ShowArgs),
}

/// Print the embedded default rule files (all, or the one named), to copy into a
/// project rules directory and edit.
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "show")]
struct ShowArgs {
    /// a default rule file name (e.g. 20-cxx.rules); without it, all of them
    #[argh(positional)]
    name: Option<String>,
}

/// Fingerprint callstacks: JSON lines on stdin (or files: JSON, snapshot JSON or
/// binary snapshots) → one JSON line each with fingerprint, signature and pretty.
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "fingerprint")]
struct FingerprintArgs {
    /// project rules directory: its *.rules files extend or replace the defaults
    #[argh(option)]
    rules: Option<PathBuf>,
    /// inputs (default: stdin; "-" is stdin)
    #[argh(positional)]
    inputs: Vec<PathBuf>,
}

/// Show, frame by frame, which rules fired and what became of each frame.
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "explain")]
struct ExplainArgs {
    /// project rules directory
    #[argh(option)]
    rules: Option<PathBuf>,
    /// inputs (default: stdin)
    #[argh(positional)]
    inputs: Vec<PathBuf>,
}

/// Lint rule files (the defaults, --rules DIR, or the given files) with file:line
/// errors and warnings; exit 1 on any error.
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "check")]
struct CheckArgs {
    /// project rules directory, checked together with the defaults
    #[argh(option)]
    rules: Option<PathBuf>,
    /// treat warnings as errors
    #[argh(switch)]
    strict: bool,
    /// single rule files to check after the defaults
    #[argh(positional)]
    files: Vec<PathBuf>,
}

/// Score grouping on a labeled corpus (JSON lines with frames and label): BCubed and
/// pairwise precision/recall/F1 for bt and the baselines.
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "eval")]
struct EvalArgs {
    /// project rules directory
    #[argh(option)]
    rules: Option<PathBuf>,
    /// print the scores as JSON
    #[argh(switch)]
    json: bool,
    /// list bt's groups per label and labels per group
    #[argh(switch)]
    details: bool,
    /// the rules before a change (a rules directory, or "default" for the embedded
    /// ones): how many crashes change group, and how many groups split or merge
    #[argh(option)]
    from: Option<String>,
    /// the corpus (JSON lines)
    #[argh(positional)]
    corpus: PathBuf,
}

pub fn run(name: &str, raw: &[String]) -> anyhow::Result<i32> {
    let args: Args = match super::parse_args(name, raw) {
        Ok(a) => a,
        Err(code) => return Ok(code),
    };
    match args.cmd {
        Sub::Fingerprint(a) => fingerprint(&ruleset(a.rules.as_deref())?, &a.inputs),
        Sub::Explain(a) => explain(&ruleset(a.rules.as_deref())?, &a.inputs),
        Sub::Check(a) => check(&a),
        Sub::Eval(a) => eval(&ruleset(a.rules.as_deref())?, &a),
        Sub::Show(a) => show(a.name.as_deref()),
    }
}

fn ruleset(dir: Option<&Path>) -> anyhow::Result<RuleSet> {
    match dir {
        None => Ok(RuleSet::default_rules()),
        Some(d) => {
            let (set, errors, _) = RuleSet::build(&sources_with(d)?);
            if let Some(first) = errors.first() {
                for e in &errors {
                    eprintln!("{e}");
                }
                bail!(
                    "{} error(s) in rule files (first: {first}); `bt rules check --rules {}` lists them",
                    errors.len(),
                    d.display()
                );
            }
            Ok(set)
        }
    }
}

/// Reads all inputs (stdin when none) into records; bad objects stay as errors.
fn read_inputs(inputs: &[PathBuf]) -> anyhow::Result<Vec<Result<Record, InputError>>> {
    if inputs.is_empty() {
        return read_inputs(&[PathBuf::from("-")]);
    }
    let mut out = Vec::new();
    for path in inputs {
        let (bytes, shown) = if path.as_os_str() == "-" {
            let mut b = Vec::new();
            std::io::stdin().read_to_end(&mut b).context("reading stdin")?;
            (b, "stdin".to_string())
        } else {
            (std::fs::read(path).with_context(|| format!("reading {}", path.display()))?, path.display().to_string())
        };
        if bytes.starts_with(&MAGIC) {
            let snap = Snapshot::decode(&bytes).with_context(|| format!("reading snapshot {shown}"))?;
            out.push(Ok(record_from_snapshot(&snap)));
        } else {
            out.extend(read_records(&bytes, &shown));
        }
    }
    Ok(out)
}

fn fingerprint(rules: &RuleSet, inputs: &[PathBuf]) -> anyhow::Result<i32> {
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    let mut failed = false;
    for rec in read_inputs(inputs)? {
        let line = match rec {
            Ok(r) => {
                let sig = rules.evaluate(&r.frames, &r.classifiers);
                let mut v = serde_json::json!({ "fingerprint": sig.fingerprint, "signature": sig.signature, "pretty": sig.pretty });
                if !sig.attributes.is_empty() {
                    v["attributes"] = serde_json::json!(sig.attributes);
                }
                v
            }
            Err(e) => {
                eprintln!("bt rules fingerprint: {e}");
                failed = true;
                serde_json::json!({ "line": e.line, "error": e.message })
            }
        };
        writeln!(out, "{line}").context("writing output")?;
    }
    out.flush().context("writing output")?;
    Ok(if failed { super::exit::FAILURE } else { super::exit::OK })
}

fn explain(rules: &RuleSet, inputs: &[PathBuf]) -> anyhow::Result<i32> {
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    let mut failed = false;
    for (n, rec) in read_inputs(inputs)?.into_iter().enumerate() {
        let r = match rec {
            Ok(r) => r,
            Err(e) => {
                eprintln!("bt rules explain: {e}");
                failed = true;
                continue;
            }
        };
        let sig = rules.evaluate(&r.frames, &r.classifiers);
        writeln!(
            out,
            "callstack {} (line {}): {} frames, fingerprint {}",
            n + 1,
            r.line,
            r.frames.len(),
            sig.fingerprint
        )?;
        writeln!(
            out,
            "  signature: {}",
            if sig.signature.is_empty() { "(empty)".to_string() } else { sig.signature.join(" | ") }
        )?;
        for (k, v) in &sig.attributes {
            writeln!(out, "  attribute: {k}={v}")?;
        }
        for e in &sig.explanation {
            writeln!(out, "  #{:<3} {}  [{}, {}]", e.index, e.frame, e.lang, if e.app { "app" } else { "system" })?;
            for rule in &e.rules {
                writeln!(out, "         rule {rule}")?;
            }
            writeln!(out, "         → {}", e.outcome)?;
        }
        writeln!(out, "  pretty:")?;
        for p in &sig.pretty {
            writeln!(out, "    {p}")?;
        }
        writeln!(out)?;
    }
    out.flush()?;
    Ok(if failed { super::exit::FAILURE } else { super::exit::OK })
}

fn show(name: Option<&str>) -> anyhow::Result<i32> {
    let mut out = std::io::stdout().lock();
    match name {
        None => {
            for (n, text) in DEFAULT_RULES {
                writeln!(out, "### {n}\n{text}")?;
            }
        }
        Some(want) => match DEFAULT_RULES.iter().find(|(n, _)| *n == want) {
            Some((_, text)) => write!(out, "{text}")?,
            None => {
                let names: Vec<&str> = DEFAULT_RULES.iter().map(|(n, _)| *n).collect();
                bail!("no default rule file {want:?} (there are: {})", names.join(", "));
            }
        },
    }
    Ok(super::exit::OK)
}

fn check(a: &CheckArgs) -> anyhow::Result<i32> {
    let mut sources = match &a.rules {
        Some(d) => sources_with(d)?,
        None => DEFAULT_RULES.iter().map(|(n, t)| (n.to_string(), "default".to_string(), t.to_string())).collect(),
    };
    for f in &a.files {
        let bytes = std::fs::read(f).with_context(|| format!("reading {}", f.display()))?;
        sources.push((f.display().to_string(), f.display().to_string(), String::from_utf8_lossy(&bytes).into_owned()));
    }
    let (set, errors, warnings) = RuleSet::build(&sources);
    for e in &errors {
        println!("{e}");
    }
    for w in &warnings {
        println!("{w}");
    }
    println!(
        "{} files, {} rules (version {}): {} error(s), {} warning(s)",
        set.files().len(),
        set.n_rules(),
        set.version(),
        errors.len(),
        warnings.len()
    );
    let bad = !errors.is_empty() || (a.strict && !warnings.is_empty());
    Ok(if bad { super::exit::FAILURE } else { super::exit::OK })
}

fn eval(rules: &RuleSet, a: &EvalArgs) -> anyhow::Result<i32> {
    let bytes = std::fs::read(&a.corpus).with_context(|| format!("reading corpus {}", a.corpus.display()))?;
    let mut records = Vec::new();
    for rec in read_records(&bytes, &a.corpus.display().to_string()) {
        let r = rec?;
        if r.label.is_none() {
            bail!("{}:{}: corpus line has no \"label\"", a.corpus.display(), r.line);
        }
        records.push(r);
    }
    if records.is_empty() {
        bail!("{}: the corpus is empty", a.corpus.display());
    }
    let labels: Vec<&str> = records.iter().map(|r| r.label.as_deref().unwrap_or("")).collect();
    let sigs: Vec<_> = records.iter().map(|r| rules.evaluate(&r.frames, &r.classifiers)).collect();
    let fps: Vec<&str> = sigs.iter().map(|s| s.fingerprint.as_str()).collect();
    let mut rows: Vec<(&str, Scores)> = vec![("bt", score(&labels, &fps))];
    for b in Baseline::ALL {
        let keys: Vec<String> = records.iter().map(|r| b.key(&r.frames)).collect();
        rows.push((b.name(), score(&labels, &keys)));
    }
    let n_labels = labels.iter().collect::<std::collections::HashSet<_>>().len();
    let stacks: Vec<&[Frame]> = records.iter().map(|r| r.frames.as_slice()).collect();
    let ceiling = names_ceiling(&labels, &stacks);
    if a.json {
        let v: Vec<_> = rows.iter().map(|(n, s)| serde_json::json!({ "method": n, "scores": s })).collect();
        println!(
            "{}",
            serde_json::json!({ "crashes": records.len(), "labels": n_labels, "results": v, "names_ceiling": ceiling })
        );
    } else {
        println!("corpus {}: {} crashes, {} true bugs", a.corpus.display(), records.len(), n_labels);
        println!(
            "{:<26} {:>6}  {:>9} {:>9} {:>9}  {:>9} {:>9} {:>9}",
            "method", "groups", "BCubed P", "BCubed R", "BCubed F1", "pairs P", "pairs R", "pairs F1"
        );
        for (n, s) in &rows {
            println!(
                "{:<26} {:>6}  {:>9.3} {:>9.3} {:>9.3}  {:>9.3} {:>9.3} {:>9.3}",
                n,
                s.n_groups,
                s.bcubed_precision,
                s.bcubed_recall,
                s.bcubed_f1,
                s.pairwise_precision,
                s.pairwise_recall,
                s.pairwise_f1
            );
        }
        println!(
            "reference: the best of the labels per whole callstack (what no grouping by frame names passes by much): \
             BCubed P {:.3}, R {:.3}, F1 {:.3}",
            ceiling.bcubed_precision, ceiling.bcubed_recall, ceiling.bcubed_f1
        );
    }
    // Per program (the label's part before `:`), bt against the best baseline there.
    let mut programs: Vec<&str> = labels.iter().map(|l| l.split(':').next().unwrap_or(l)).collect();
    programs.sort_unstable();
    programs.dedup();
    if programs.len() > 1 && !a.json {
        println!();
        println!(
            "{:<16} {:>7} {:>6}  {:>9}  {:>9}  {:>9}  best baseline",
            "program", "crashes", "bugs", "bt F1", "reference", "best F1"
        );
        for prog in &programs {
            let idx: Vec<usize> = (0..records.len()).filter(|&i| labels[i].split(':').next() == Some(*prog)).collect();
            let l: Vec<&str> = idx.iter().map(|&i| labels[i]).collect();
            let bt_f1 = score(&l, &idx.iter().map(|&i| fps[i]).collect::<Vec<_>>()).bcubed_f1;
            let (best_name, best_f1) = Baseline::ALL
                .iter()
                .map(|b| {
                    let keys: Vec<String> = idx.iter().map(|&i| b.key(&records[i].frames)).collect();
                    (b.name(), score(&l, &keys).bcubed_f1)
                })
                .fold(("", -1.0), |acc, x| if x.1 > acc.1 { x } else { acc });
            let bugs = l.iter().collect::<std::collections::HashSet<_>>().len();
            let reference = names_ceiling(&l, &idx.iter().map(|&i| stacks[i]).collect::<Vec<_>>()).bcubed_f1;
            println!(
                "{prog:<16} {:>7} {bugs:>6}  {bt_f1:>9.3}  {reference:>9.3}  {best_f1:>9.3}  {best_name}",
                idx.len()
            );
        }
    }
    if let Some(from) = &a.from {
        let before = if from == "default" { RuleSet::default_rules() } else { ruleset(Some(Path::new(from)))? };
        let old: Vec<String> = records.iter().map(|r| before.evaluate(&r.frames, &r.classifiers).fingerprint).collect();
        let m = moves(&old, &fps);
        let text = format!(
            "against the rules {from}: {} of {} crashes change fingerprint; groups {} before, {} after: {} split, {} merged",
            m.changed,
            records.len(),
            m.groups_before,
            m.groups_after,
            m.split,
            m.merged
        );
        if a.json {
            eprintln!("{text}");
        } else {
            println!("\n{text}");
        }
    }
    if a.details {
        let mut by_label: BTreeMap<&str, BTreeMap<String, usize>> = BTreeMap::new();
        let mut by_fp: HashMap<&str, BTreeMap<&str, usize>> = HashMap::new();
        for (i, s) in sigs.iter().enumerate() {
            *by_label
                .entry(labels[i])
                .or_default()
                .entry(format!("{} {}", &s.fingerprint[..8], s.signature.join(" | ")))
                .or_default() += 1;
            *by_fp.entry(&s.fingerprint).or_default().entry(labels[i]).or_default() += 1;
        }
        println!("\nbt groups per true bug:");
        for (l, groups) in &by_label {
            println!("  {l}:");
            for (g, c) in groups {
                println!("    {c:>4}  {g}");
            }
        }
        println!("\nbt groups holding more than one true bug:");
        for (fp, ls) in &by_fp {
            if ls.len() > 1 {
                println!("  {}: {:?}", &fp[..8], ls);
            }
        }
    }
    Ok(super::exit::OK)
}

/// How a change of rules moves crashes between groups.
#[derive(Debug, PartialEq, Eq)]
struct Moves {
    /// Crashes whose fingerprint changes (in a store: they would land in another group).
    changed: usize,
    groups_before: usize,
    groups_after: usize,
    /// Old groups whose crashes now go to more than one group.
    split: usize,
    /// New groups that hold crashes of more than one old group.
    merged: usize,
}

fn moves<A: AsRef<str>, B: AsRef<str>>(old: &[A], new: &[B]) -> Moves {
    let mut fwd: HashMap<&str, std::collections::HashSet<&str>> = HashMap::new();
    let mut back: HashMap<&str, std::collections::HashSet<&str>> = HashMap::new();
    for (o, n) in old.iter().zip(new) {
        fwd.entry(o.as_ref()).or_default().insert(n.as_ref());
        back.entry(n.as_ref()).or_default().insert(o.as_ref());
    }
    Moves {
        changed: old.iter().zip(new).filter(|(o, n)| o.as_ref() != n.as_ref()).count(),
        groups_before: fwd.len(),
        groups_after: back.len(),
        split: fwd.values().filter(|s| s.len() > 1).count(),
        merged: back.values().filter(|s| s.len() > 1).count(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn moves_count_changes_splits_and_merges() {
        let m = moves(&["a", "a", "b", "c", "c"], &["x", "y", "b", "z", "z"]);
        assert_eq!(m, Moves { changed: 4, groups_before: 3, groups_after: 4, split: 1, merged: 0 });
        let m = moves(&["a", "b", "c"], &["x", "x", "c"]);
        assert_eq!(m, Moves { changed: 2, groups_before: 3, groups_after: 2, split: 0, merged: 1 });
    }
}
