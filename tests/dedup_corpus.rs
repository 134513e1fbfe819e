//! Grouping quality on the recorded corpus (tests/corpus/corpus.jsonl, written by
//! tests/corpus/gen.sh from real crashes traced by bt): guards the default rules
//! against regressions in BCubed F1 and in the margin over the naive baselines.
//! Regenerate the corpus with `make corpus` when the programs or the tracer change.

use bt::dedup::RuleSet;
use bt::dedup::eval::{Baseline, score};
use bt::dedup::input::read_records;

#[test]
fn default_rules_beat_every_baseline_on_the_corpus() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/corpus/corpus.jsonl");
    let bytes = std::fs::read(path).expect("reading the recorded corpus");
    let records: Vec<_> = read_records(&bytes, path).into_iter().map(|r| r.expect("corpus line parses")).collect();
    assert!(records.len() >= 500, "corpus has {} crashes", records.len());
    let labels: Vec<String> = records.iter().map(|r| r.label.clone().expect("every corpus line has a label")).collect();
    let rules = RuleSet::default_rules();
    let fps: Vec<String> = records.iter().map(|r| rules.evaluate(&r.frames, &r.classifiers).fingerprint).collect();
    let bt = score(&labels, &fps);
    assert!(bt.bcubed_f1 >= 0.90, "BCubed F1 {:.3} fell below 0.90: {bt:?}", bt.bcubed_f1);
    for b in Baseline::ALL {
        let keys: Vec<String> = records.iter().map(|r| b.key(&r.frames)).collect();
        let s = score(&labels, &keys);
        assert!(
            bt.bcubed_f1 >= s.bcubed_f1 + 0.05,
            "bt {:.3} is not clearly above {} {:.3}",
            bt.bcubed_f1,
            b.name(),
            s.bcubed_f1
        );
    }
}
