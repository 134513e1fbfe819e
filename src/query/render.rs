//! Rendering of query answers: the morgue listing model ([`Listing`], [`Selection`])
//! built from the store's JSON, and its three forms — a table with sparklines, JSON
//! and CSV.

use std::fmt::Write as _;

use serde_json::{Value as Json, json};

use super::MorgueError;
use super::flags::ListSpec;

/// The eight levels of a sparkline; an empty bucket is a blank.
pub const LEVELS: [char; 8] = ['▁', '▂', '▃', '▄', '▅', '▆', '▇', '█'];

/// Frames of the pretty callstack shown per group in the table.
const CALLSTACK_HEAD: usize = 5;

/// One group of a grouped listing.
#[derive(Debug, Clone, PartialEq)]
pub struct GroupView {
    pub key: Json,
    pub count: u64,
    /// count / objects matched, 0..=1.
    pub share: f64,
    pub first: Option<i64>,
    pub last: Option<i64>,
    /// Occurrences per time bucket (32), oldest first.
    pub buckets: Vec<u64>,
    pub classifiers: Vec<String>,
    pub callstack: Vec<String>,
    /// The folds the user asked for: ("ATTR;FOLD", value).
    pub folds: Vec<(String, Json)>,
}

/// A grouped answer.
#[derive(Debug, Clone, PartialEq)]
pub struct Listing {
    pub project: String,
    pub factor: String,
    pub groups: Vec<GroupView>,
    /// Groups in the whole answer (before limit/offset).
    pub n_groups: u64,
    pub n_objects: u64,
    /// The span the sparkline buckets cover.
    pub range: Option<(i64, i64)>,
}

/// A `--select` answer: one row per object.
#[derive(Debug, Clone, PartialEq)]
pub struct Selection {
    pub project: String,
    /// (name, type) per column; the first is always `object`.
    pub columns: Vec<(String, String)>,
    pub rows: Vec<Vec<Json>>,
    pub n_objects: u64,
}

fn bad_answer(msg: impl Into<String>) -> MorgueError {
    MorgueError::BadResponse(msg.into())
}

impl Listing {
    /// Reads the store's answer to `spec.query()`.
    pub fn from_answer(project: &str, spec: &ListSpec, answer: &Json) -> Result<Listing, MorgueError> {
        let columns: Vec<(String, String)> = answer["columns"]
            .as_array()
            .ok_or_else(|| bad_answer("no columns in the answer"))?
            .iter()
            .map(|c| (c[0].as_str().unwrap_or("").to_string(), c[1].as_str().unwrap_or("").to_string()))
            .collect();
        let col = |a: &str, f: &str| columns.iter().position(|(x, y)| x == a && y == f);
        let (range_i, bin_i) = (col("timestamp", "range"), col("timestamp", "bin"));
        let (stack_i, class_i) = (col("callstack", "head"), col("classifiers", "head"));
        let n_objects = answer["objects"].as_u64().unwrap_or(0);
        let mut range = None;
        let mut groups = Vec::new();
        for row in answer["rows"].as_array().ok_or_else(|| bad_answer("no rows in the answer"))? {
            let results = row[1].as_array().ok_or_else(|| bad_answer("a row without fold results"))?;
            let get = |i: Option<usize>| i.and_then(|i| results.get(i)).cloned().unwrap_or(Json::Null);
            let count = row[2].as_u64().unwrap_or(0);
            let span = get(range_i);
            let bins = get(bin_i);
            let buckets: Vec<u64> =
                bins.as_array().map(|b| b.iter().map(|x| x[2].as_u64().unwrap_or(0)).collect()).unwrap_or_default();
            if range.is_none()
                && let Some(b) = bins.as_array()
                && let (Some(lo), Some(hi)) =
                    (b.first().and_then(|x| x[0].as_i64()), b.last().and_then(|x| x[1].as_i64()))
            {
                range = Some((lo, hi));
            }
            let text = |v: Json| v.as_str().map(str::to_string).unwrap_or_default();
            let folds = spec
                .folds
                .iter()
                .filter_map(|(a, f)| {
                    col(a, f).map(|i| (format!("{a};{f}"), results.get(i).cloned().unwrap_or(Json::Null)))
                })
                .collect();
            groups.push(GroupView {
                key: row[0].clone(),
                count,
                share: if n_objects > 0 { count as f64 / n_objects as f64 } else { 0.0 },
                first: span[0].as_i64(),
                last: span[1].as_i64(),
                buckets,
                classifiers: text(get(class_i)).split_whitespace().map(str::to_string).collect(),
                callstack: text(get(stack_i)).lines().map(str::to_string).collect(),
                folds,
            });
        }
        if let (Some(from), Some(to)) = spec.window {
            range = Some((from, to));
        }
        Ok(Listing {
            project: project.to_string(),
            factor: spec.factor().to_string(),
            groups,
            n_groups: answer["total"].as_u64().unwrap_or(0),
            n_objects,
            range,
        })
    }

    pub fn to_json(&self) -> Json {
        let rows: Vec<Json> = self
            .groups
            .iter()
            .map(|g| {
                let folds: serde_json::Map<String, Json> = g.folds.iter().cloned().collect();
                json!({
                    "group": g.key, "count": g.count, "share": g.share, "first": g.first, "last": g.last,
                    "sparkline": g.buckets, "classifiers": g.classifiers, "callstack": g.callstack, "folds": folds,
                })
            })
            .collect();
        json!({
            "project": self.project, "factor": self.factor, "groups": self.n_groups, "objects": self.n_objects,
            "range": self.range.map(|(a, b)| json!([a, b])), "rows": rows,
        })
    }

    pub fn to_csv(&self) -> String {
        let mut out = String::new();
        let mut head = vec![self.factor.clone(), "count".into(), "share".into(), "first".into(), "last".into()];
        if self.factor == "fingerprint" {
            head.push("classifiers".into());
            head.push("callstack".into());
        }
        if let Some(g) = self.groups.first() {
            head.extend(g.folds.iter().map(|(n, _)| n.clone()));
        }
        csv_line(&mut out, head.iter().map(|s| s.as_str().into()));
        for g in &self.groups {
            let mut cells: Vec<String> = vec![
                plain(&g.key),
                g.count.to_string(),
                format!("{:.4}", g.share),
                g.first.map(|t| t.to_string()).unwrap_or_default(),
                g.last.map(|t| t.to_string()).unwrap_or_default(),
            ];
            if self.factor == "fingerprint" {
                cells.push(term(&g.classifiers.join(" ")));
                cells.push(term(&g.callstack.join(" | ")));
            }
            cells.extend(g.folds.iter().map(|(_, v)| plain(v)));
            csv_line(&mut out, cells.into_iter().map(Into::into));
        }
        out
    }

    /// The table: per group a header line (key, sparkline, count and share, first and
    /// last occurrence), then classifiers, the callstack head and the asked folds.
    pub fn to_table(&self, now: i64) -> String {
        let mut out = String::new();
        let key_width = self.groups.iter().map(|g| short_key(&g.key, &self.factor).chars().count()).max().unwrap_or(0);
        for g in &self.groups {
            let key = short_key(&g.key, &self.factor);
            let _ = writeln!(
                out,
                "{key:<key_width$} {} {:>6} {:>5.1}%  first {:<8} last {}",
                sparkline(&g.buckets),
                g.count,
                g.share * 100.0,
                g.first.map(|t| ago(t, now)).unwrap_or_else(|| "-".into()),
                g.last.map(|t| ago(t, now)).unwrap_or_else(|| "-".into()),
            );
            if !g.classifiers.is_empty() {
                let _ = writeln!(out, "  classifiers: {}", term(&g.classifiers.join(" ")));
            }
            if !g.callstack.is_empty() {
                let mut head: Vec<&str> = g.callstack.iter().take(CALLSTACK_HEAD).map(String::as_str).collect();
                if g.callstack.len() > CALLSTACK_HEAD {
                    head.push("…");
                }
                let _ = writeln!(out, "  callstack:   {}", term(&head.join(" ← ")));
            }
            for (name, v) in &g.folds {
                render_fold(&mut out, name, v);
            }
        }
        if self.groups.is_empty() {
            out.push_str("no objects match\n");
        } else if self.n_groups > self.groups.len() as u64 {
            let _ = writeln!(out, "({} of {} groups shown; --limit/--offset page)", self.groups.len(), self.n_groups);
        }
        out
    }

    /// Earliest occurrence shown, for the footer.
    pub fn since(&self) -> Option<i64> {
        self.range.map(|r| r.0).or_else(|| self.groups.iter().filter_map(|g| g.first).min())
    }
}

impl Selection {
    pub fn from_answer(project: &str, answer: &Json) -> Result<Selection, MorgueError> {
        let mut columns = vec![("object".to_string(), "object".to_string())];
        for c in answer["columns"].as_array().ok_or_else(|| bad_answer("no columns in the answer"))? {
            columns.push((c[0].as_str().unwrap_or("").to_string(), c[1].as_str().unwrap_or("").to_string()));
        }
        let rows = answer["rows"]
            .as_array()
            .ok_or_else(|| bad_answer("no rows in the answer"))?
            .iter()
            .map(|r| {
                let mut v = vec![r[0].clone()];
                v.extend(r[1].as_array().cloned().unwrap_or_default());
                v
            })
            .collect();
        Ok(Selection {
            project: project.to_string(),
            columns,
            rows,
            n_objects: answer["objects"].as_u64().unwrap_or(0),
        })
    }

    pub fn to_json(&self) -> Json {
        let rows: Vec<Json> = self
            .rows
            .iter()
            .map(|r| {
                let m: serde_json::Map<String, Json> =
                    self.columns.iter().zip(r).map(|((n, _), v)| (n.clone(), v.clone())).collect();
                Json::Object(m)
            })
            .collect();
        json!({"project": self.project, "objects": self.n_objects, "rows": rows})
    }

    pub fn to_csv(&self) -> String {
        let mut out = String::new();
        csv_line(&mut out, self.columns.iter().map(|(n, _)| term(n).into()));
        for r in &self.rows {
            csv_line(&mut out, r.iter().map(|v| plain(v).into()));
        }
        out
    }

    pub fn to_table(&self) -> String {
        let cells: Vec<Vec<String>> = self
            .rows
            .iter()
            .map(|r| {
                r.iter()
                    .zip(&self.columns)
                    .map(|(v, (_, ty))| match (ty.as_str(), v.as_i64()) {
                        ("timestamp", Some(t)) => utc(t),
                        _ => plain(v),
                    })
                    .collect()
            })
            .collect();
        let mut widths: Vec<usize> = self.columns.iter().map(|(n, _)| n.chars().count()).collect();
        for r in &cells {
            for (w, c) in widths.iter_mut().zip(r) {
                *w = (*w).max(c.chars().count()).min(60);
            }
        }
        let mut out = String::new();
        let line = |out: &mut String, cells: &mut dyn Iterator<Item = &str>| {
            let parts: Vec<String> = cells.zip(&widths).map(|(c, w)| format!("{:<w$}", clip(c, *w))).collect();
            let _ = writeln!(out, "{}", parts.join("  ").trim_end());
        };
        let names: Vec<String> = self.columns.iter().map(|(n, _)| term(n)).collect();
        line(&mut out, &mut names.iter().map(String::as_str));
        for r in &cells {
            line(&mut out, &mut r.iter().map(String::as_str));
        }
        if self.rows.is_empty() {
            out.push_str("no objects match\n");
        } else if self.n_objects > self.rows.len() as u64 {
            let _ = writeln!(out, "({} of {} objects shown; --limit/--offset page)", self.rows.len(), self.n_objects);
        }
        out
    }
}

fn clip(s: &str, w: usize) -> String {
    if s.chars().count() <= w { s.to_string() } else { s.chars().take(w.saturating_sub(1)).chain(['…']).collect() }
}

/// A fingerprint is long: its first 16 digits name it well enough in a table.
fn short_key(key: &Json, factor: &str) -> String {
    let s = plain(key);
    if factor == "fingerprint" && s.chars().count() > 16 {
        s.chars().take(16).collect()
    } else if s.is_empty() {
        "(unset)".into()
    } else {
        s
    }
}

/// A JSON value as plain text for a terminal: strings unquoted (their control
/// characters escaped, see `snapshot::render::for_terminal`), null empty, arrays
/// and objects as JSON.
pub fn plain(v: &Json) -> String {
    match v {
        Json::Null => String::new(),
        Json::String(s) => term(s),
        other => term(&other.to_string()),
    }
}

/// Submitted text, safe for the terminal.
fn term(s: &str) -> String {
    crate::snapshot::render::for_terminal(s).into_owned()
}

/// One CSV cell: quoted where needed, and a cell a spreadsheet would take for a
/// formula (`=`, `+`, `-`, `@`, tab or CR first, and not a number) is prefixed
/// with `'` (OWASP's CSV injection advice).
fn csv_cell(c: &str) -> String {
    let formula = c.starts_with(['=', '+', '-', '@', '\t', '\r']) && c.trim().parse::<f64>().is_err();
    let c = if formula { format!("'{c}") } else { c.to_string() };
    if c.contains([',', '"', '\n', '\r']) { format!("\"{}\"", c.replace('"', "\"\"")) } else { c }
}

fn csv_line<'a>(out: &mut String, cells: impl Iterator<Item = std::borrow::Cow<'a, str>>) {
    let cells: Vec<String> = cells.map(|c| csv_cell(&c)).collect();
    out.push_str(&cells.join(","));
    out.push('\n');
}

fn render_fold(out: &mut String, name: &str, v: &Json) {
    match (name.rsplit(';').next(), v) {
        (Some("histogram"), Json::Array(entries)) => {
            let _ = writeln!(out, "  {name}:");
            let max = entries.iter().filter_map(|e| e[1].as_u64()).max().unwrap_or(1).max(1);
            let width = entries.iter().map(|e| plain(&e[0]).chars().count()).max().unwrap_or(0).min(40);
            for e in entries {
                let n = e[1].as_u64().unwrap_or(0);
                let bar = "▆".repeat(((n * 10).div_ceil(max)) as usize);
                let _ = writeln!(out, "    {:<width$} {bar:<10} {n}", clip(&plain(&e[0]), width));
            }
        }
        (Some("range"), Json::Array(r)) if r.len() == 2 => {
            let _ = writeln!(out, "  {}: {} .. {}", term(name), plain(&r[0]), plain(&r[1]));
        }
        _ => {
            let _ = writeln!(out, "  {}: {}", term(name), plain(v));
        }
    }
}

/// A 32-bucket (or any) sparkline: blank for an empty bucket, else one of eight
/// levels proportional to the busiest bucket (any non-empty bucket shows at least ▁).
pub fn sparkline(buckets: &[u64]) -> String {
    let max = buckets.iter().copied().max().unwrap_or(0);
    buckets
        .iter()
        .map(|&c| {
            if c == 0 {
                ' '
            } else {
                let level = ((c * 8).div_ceil(max)).clamp(1, 8) as usize;
                LEVELS[level - 1]
            }
        })
        .collect()
}

/// How long before `now` a time was: `now`, `42s ago`, `5m ago`, `3h ago`, `4d ago`,
/// `2mo ago`, `1y ago` (`in 5m` for the future).
pub fn ago(ts: i64, now: i64) -> String {
    let d = now - ts;
    let a = d.unsigned_abs();
    if a < 1 {
        return "now".into();
    }
    let span = match a {
        0..60 => format!("{a}s"),
        60..3600 => format!("{}m", a / 60),
        3600..86_400 => format!("{}h", a / 3600),
        86_400..2_592_000 => format!("{}d", a / 86_400),
        2_592_000..31_536_000 => format!("{}mo", a / 2_592_000),
        _ => format!("{}y", a / 31_536_000),
    };
    if d > 0 { format!("{span} ago") } else { format!("in {span}") }
}

/// Latency as `384 us`, `12.3 ms`, `1.20 s`.
pub fn latency(us: u128) -> String {
    match us {
        0..1000 => format!("{us} us"),
        1000..1_000_000 => format!("{:.1} ms", us as f64 / 1000.0),
        _ => format!("{:.2} s", us as f64 / 1e6),
    }
}

/// `YYYY-MM-DD HH:MM:SS` in UTC.
pub fn utc(ts: i64) -> String {
    let days = ts.div_euclid(86_400);
    let secs = ts.rem_euclid(86_400);
    // Civil from days (proleptic Gregorian), the inverse of flags::days_from_civil.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + if m <= 2 { 1 } else { 0 };
    format!("{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}", secs / 3600, secs % 3600 / 60, secs % 60)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::query::flags::parse_sort;

    #[test]
    fn sparklines() {
        let cases: &[(&[u64], &str)] = &[
            (&[], ""),
            (&[0, 0], "  "),
            (&[1, 0, 8], "▁ █"),
            (&[1, 2, 3, 4, 5, 6, 7, 8], "▁▂▃▄▅▆▇█"),
            (&[1, 100], "▁█"),
            (&[3, 3], "██"),
        ];
        for (input, want) in cases {
            assert_eq!(sparkline(input), *want, "{input:?}");
        }
    }

    #[test]
    fn relative_times() {
        for (d, want) in [
            (0, "now"),
            (5, "5s ago"),
            (300, "5m ago"),
            (7200, "2h ago"),
            (86_400 * 3, "3d ago"),
            (86_400 * 65, "2mo ago"),
            (86_400 * 800, "2y ago"),
            (-120, "in 2m"),
        ] {
            assert_eq!(ago(1_000_000_000 - d, 1_000_000_000), want, "{d}");
        }
        assert_eq!(latency(384), "384 us");
        assert_eq!(latency(12_345), "12.3 ms");
        assert_eq!(utc(1_700_000_000), "2023-11-14 22:13:20");
        assert_eq!(utc(0), "1970-01-01 00:00:00");
        assert_eq!(utc(951_782_400), "2000-02-29 00:00:00");
    }

    fn answer() -> Json {
        json!({
            "group": "fingerprint",
            "columns": [["callstack", "head"], ["classifiers", "head"], ["hostname", "histogram"], ["hostname", "unique"], ["timestamp", "bin"], ["timestamp", "range"]],
            "rows": [
                ["aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", ["crash\nhandler\nmain", "null-dereference", [["h1", 2], ["h2", 1]], 2, [[0, 10, 2], [10, 20, 0], [20, 30, 1]], [1, 25]], 3],
                ["bbbb", ["other", "", [["h1", 1]], 1, [[0, 10, 0], [10, 20, 0], [20, 30, 1]], [29, 29]], 1]
            ],
            "total": 2, "objects": 4
        })
    }

    fn spec() -> ListSpec {
        ListSpec {
            folds: vec![("hostname".into(), "histogram".into()), ("hostname".into(), "unique".into())],
            sort: vec![parse_sort("-count").unwrap()],
            ..Default::default()
        }
    }

    #[test]
    fn listing_model_and_forms() {
        let l = Listing::from_answer("p", &spec(), &answer()).unwrap();
        assert_eq!(l.range, Some((0, 30)));
        assert_eq!(l.groups[0].buckets, vec![2, 0, 1]);
        assert_eq!(l.groups[0].callstack, vec!["crash", "handler", "main"]);
        assert_eq!(l.groups[0].share, 0.75);
        assert_eq!(l.groups[1].classifiers, Vec::<String>::new());
        let j = l.to_json();
        assert_eq!(j["rows"][0]["folds"]["hostname;unique"], json!(2));
        assert_eq!(j["rows"][1]["first"], json!(29));
        let table = l.to_table(40);
        let want = "\
aaaaaaaaaaaaaaaa █ ▄      3  75.0%  first 39s ago  last 15s ago
  classifiers: null-dereference
  callstack:   crash ← handler ← main
  hostname;histogram:
    h1 ▆▆▆▆▆▆▆▆▆▆ 2
    h2 ▆▆▆▆▆      1
  hostname;unique: 2
bbbb               █      1  25.0%  first 11s ago  last 11s ago
  callstack:   other
  hostname;histogram:
    h1 ▆▆▆▆▆▆▆▆▆▆ 1
  hostname;unique: 1
";
        assert_eq!(table, want);
        let csv = l.to_csv();
        assert_eq!(
            csv.lines().next().unwrap(),
            "fingerprint,count,share,first,last,classifiers,callstack,hostname;histogram,hostname;unique"
        );
        assert_eq!(
            csv.lines().nth(1).unwrap(),
            "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa,3,0.7500,1,25,null-dereference,crash | handler | main,\"[[\"\"h1\"\",2],[\"\"h2\"\",1]]\",2"
        );
    }

    #[test]
    fn selection_forms() {
        let a = json!({"columns": [["hostname", "string"], ["timestamp", "timestamp"]], "rows": [["1f", ["db, 1", 1_700_000_000]], ["2", [null, 5]]], "total": 3, "objects": 3});
        let s = Selection::from_answer("p", &a).unwrap();
        assert_eq!(s.to_json()["rows"][0], json!({"object": "1f", "hostname": "db, 1", "timestamp": 1_700_000_000}));
        assert_eq!(s.to_csv(), "object,hostname,timestamp\n1f,\"db, 1\",1700000000\n2,,5\n");
        let t = s.to_table();
        assert_eq!(
            t,
            "object  hostname  timestamp\n1f      db, 1     2023-11-14 22:13:20\n2                 1970-01-01 00:00:05\n(2 of 3 objects shown; --limit/--offset page)\n"
        );
    }
}
