//! Morgue's command-line vocabulary turned into store queries: `--filter=ATTR,OP,VALUE`,
//! durations (`30d`, `1M`), time windows (`FROM..TO`), `--sort=[-]COL`, and the
//! [`ListSpec`] that builds the JSON of `POST /api/query`.

use std::collections::BTreeMap;

use serde_json::{Value as Json, json};

use super::MorgueError;

fn bad(msg: impl Into<String>) -> MorgueError {
    MorgueError::BadFlag(msg.into())
}

/// The filter operators of the query API, with the short spellings morgue users type.
const OPS: &[(&str, &[&str])] = &[
    ("equal", &["eq", "=", "=="]),
    ("not-equal", &["ne", "!="]),
    ("contains", &["has"]),
    ("not-contains", &["nothas"]),
    ("regular-expression", &["regex", "re"]),
    ("inverse-regular-expression", &["not-regex", "nre"]),
    ("at-least", &["ge", ">="]),
    ("greater-than", &["gt", ">"]),
    ("at-most", &["le", "<="]),
    ("less-than", &["lt", "<"]),
    ("is-set", &["set"]),
    ("is-not-set", &["not-set", "unset"]),
];

/// Attributes every object of a store has once it holds one object; always valid names.
pub const BUILTIN_ATTRS: &[&str] = &["timestamp", "received", "fingerprint", "callstack", "classifiers"];

/// Pseudo-attributes the query engine understands without an attribute record.
pub const PSEUDO_ATTRS: &[&str] = &["object", "_rxid"];

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Filter {
    pub attr: String,
    /// The canonical operator name of the query API.
    pub op: &'static str,
    pub value: String,
}

/// `ATTR,OP,VALUE` (the value may hold commas), or `ATTR,is-set` / `ATTR,is-not-set`.
pub fn parse_filter(s: &str) -> Result<Filter, MorgueError> {
    let usage = || {
        let names: Vec<&str> = OPS.iter().map(|(n, _)| *n).collect();
        bad(format!("bad filter {s:?}: expected ATTR,OP,VALUE with OP one of {}", names.join(", ")))
    };
    let mut parts = s.splitn(3, ',');
    let attr = parts.next().unwrap_or("").trim();
    let op_text = parts.next().ok_or_else(usage)?.trim();
    let value = parts.next();
    if attr.is_empty() {
        return Err(usage());
    }
    let op = OPS
        .iter()
        .find(|(name, aliases)| *name == op_text || aliases.contains(&op_text))
        .map(|(name, _)| *name)
        .ok_or_else(usage)?;
    let value = match (op, value) {
        ("is-set" | "is-not-set", None) => String::new(),
        ("is-set" | "is-not-set", Some(_)) => return Err(bad(format!("bad filter {s:?}: {op} takes no value"))),
        (_, Some(v)) => v.to_string(),
        (_, None) => return Err(bad(format!("bad filter {s:?}: {op} needs a value (ATTR,{op},VALUE)"))),
    };
    Ok(Filter { attr: attr.to_string(), op, value })
}

/// A filter on a time attribute (`timestamp`, `received`) may name its value as a
/// date or a duration ago (`timestamp,at-least,2024-01-01`, `timestamp,less-than,7d`);
/// it is turned into Unix seconds here, as the store compares numbers.
pub fn resolve_time_filter(f: Filter, now: i64) -> Result<Filter, MorgueError> {
    let ordered = matches!(f.op, "equal" | "not-equal" | "at-least" | "greater-than" | "at-most" | "less-than");
    if !["timestamp", "received"].contains(&f.attr.as_str()) || !ordered || f.value.trim().parse::<i64>().is_ok() {
        return Ok(f);
    }
    let value = parse_instant(&f.value, now)?.to_string();
    Ok(Filter { value, ..f })
}

/// `90s`, `15m`, `12h`, `30d`, `2w`, `1M` (30 days), `1y` (365 days); a bare number is
/// seconds (see [`crate::units`]).
pub fn parse_duration(s: &str) -> Result<i64, MorgueError> {
    crate::units::seconds(s).map(|v| v as i64).map_err(|e| bad(e.to_string()))
}

/// Days since 1970-01-01 of a civil date (proleptic Gregorian).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// A point in time: Unix seconds, `YYYY-MM-DD`, `YYYY-MM-DDTHH:MM[:SS][Z]` (UTC), or a
/// duration ago (`3d` = three days before `now`).
pub fn parse_instant(s: &str, now: i64) -> Result<i64, MorgueError> {
    let t = s.trim();
    if let Ok(n) = t.parse::<i64>() {
        return Ok(n);
    }
    if t.ends_with(|c: char| c.is_ascii_alphabetic()) && t.starts_with(|c: char| c.is_ascii_digit()) && !t.contains('-')
    {
        return Ok(now - parse_duration(t)?);
    }
    let err =
        || bad(format!("bad time {s:?} (Unix seconds, YYYY-MM-DD, YYYY-MM-DDTHH:MM:SSZ or a duration ago like 3d)"));
    let t = t.trim_end_matches('Z');
    let (date, clock) = match t.split_once(['T', ' ']) {
        Some((d, c)) => (d, Some(c)),
        None => (t, None),
    };
    let num = |x: Option<&str>, lo: i64, hi: i64| -> Result<i64, MorgueError> {
        x.and_then(|v| v.parse::<i64>().ok()).filter(|v| (lo..=hi).contains(v)).ok_or_else(err)
    };
    let mut d = date.split('-');
    let (y, m, day) = (num(d.next(), 1970, 9999)?, num(d.next(), 1, 12)?, num(d.next(), 1, 31)?);
    if d.next().is_some() {
        return Err(err());
    }
    let mut secs = days_from_civil(y, m, day) * 86_400;
    if let Some(c) = clock {
        let mut c = c.split(':');
        let h = num(c.next(), 0, 23)?;
        let mi = num(c.next(), 0, 59)?;
        let se = match c.next() {
            Some(x) => num(Some(x), 0, 60)?,
            None => 0,
        };
        secs += h * 3600 + mi * 60 + se;
    }
    Ok(secs)
}

/// `FROM..TO` with either side optional (`2024-01-01..`, `..1700000000`, `7d..1d`).
pub fn parse_time_range(s: &str, now: i64) -> Result<(Option<i64>, Option<i64>), MorgueError> {
    let Some((a, b)) = s.split_once("..") else {
        return Err(bad(format!("bad time range {s:?}: expected FROM..TO (either side may be empty)")));
    };
    let side = |x: &str| if x.trim().is_empty() { Ok(None) } else { parse_instant(x, now).map(Some) };
    let (from, to) = (side(a)?, side(b)?);
    if let (Some(f), Some(t)) = (from, to)
        && t <= f
    {
        return Err(bad(format!("bad time range {s:?}: it ends before it starts")));
    }
    Ok((from, to))
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sort {
    pub column: String,
    pub descending: bool,
}

/// `[-]COLUMN`: a leading `-` sorts descending.
pub fn parse_sort(s: &str) -> Result<Sort, MorgueError> {
    let (column, descending) = match s.strip_prefix('-') {
        Some(c) => (c, true),
        None => (s.strip_prefix('+').unwrap_or(s), false),
    };
    if column.is_empty() {
        return Err(bad("--sort needs a column: [-]COLUMN"));
    }
    Ok(Sort { column: column.to_string(), descending })
}

/// The folds morgue's flags ask for, by flag name = fold name of the query API.
pub const FOLD_FLAGS: &[&str] = &["histogram", "unique", "head", "tail", "range", "sum", "min", "max"];

/// Number of sparkline buckets.
pub const BUCKETS: usize = 32;

/// A `list` request, validated: what to filter, group, fold, select, sort and page.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ListSpec {
    pub filters: Vec<Filter>,
    /// Group by this attribute (default `fingerprint`); ignored when `select` is set.
    pub factor: Option<String>,
    pub select: Vec<String>,
    /// (attribute, fold) in the order given on the command line.
    pub folds: Vec<(String, String)>,
    pub sort: Vec<Sort>,
    /// The time window on `timestamp`: from `--age` or `--time`.
    pub window: (Option<i64>, Option<i64>),
    pub limit: Option<usize>,
    pub offset: Option<usize>,
}

impl ListSpec {
    pub fn grouped(&self) -> bool {
        self.select.is_empty()
    }

    pub fn factor(&self) -> &str {
        self.factor.as_deref().unwrap_or("fingerprint")
    }

    /// The folds sent: the user's, then the view's own (time range and sparkline
    /// buckets of `timestamp`; callstack and classifiers when grouping by fingerprint),
    /// without duplicates.
    pub fn all_folds(&self) -> Vec<(String, String)> {
        let mut out: Vec<(String, String)> = Vec::new();
        let mut add = |a: &str, f: &str| {
            if !out.iter().any(|(x, y)| x == a && y == f) {
                out.push((a.to_string(), f.to_string()));
            }
        };
        for (a, f) in &self.folds {
            add(a, f);
        }
        for s in &self.sort {
            if let Some((a, f)) = sort_fold(&s.column) {
                add(&a, &f);
            }
        }
        add("timestamp", "range");
        add("timestamp", "bin");
        if self.factor() == "fingerprint" {
            add("callstack", "head");
            add("classifiers", "head");
        }
        out
    }

    /// Every attribute the request names (to check against the project's attributes).
    pub fn attributes(&self) -> Vec<&str> {
        let mut v: Vec<&str> = self.filters.iter().map(|f| f.attr.as_str()).collect();
        v.extend(self.select.iter().map(String::as_str));
        v.extend(self.folds.iter().map(|(a, _)| a.as_str()));
        if let Some(f) = &self.factor {
            v.push(f);
        }
        if !self.grouped() {
            v.extend(self.sort.iter().map(|s| s.column.as_str()));
        }
        v.retain(|a| *a != "*" && !PSEUDO_ATTRS.contains(a) && !BUILTIN_ATTRS.contains(a));
        v.sort_unstable();
        v.dedup();
        v
    }

    /// The filter part of the query (also what `delete` sends).
    pub fn filter_json(&self) -> Json {
        let mut filters: Vec<Json> = self.filters.iter().map(|f| filter_json(&f.attr, f.op, &f.value)).collect();
        if let Some(from) = self.window.0 {
            filters.push(filter_json("timestamp", "at-least", &from.to_string()));
        }
        if let Some(to) = self.window.1 {
            filters.push(filter_json("timestamp", "at-most", &to.to_string()));
        }
        Json::Array(filters)
    }

    /// The JSON body of `POST /api/query`.
    pub fn query(&self) -> Result<Json, MorgueError> {
        let mut q = serde_json::Map::new();
        q.insert("filter".into(), self.filter_json());
        if self.grouped() {
            q.insert("group".into(), json!([self.factor()]));
            let mut fold: BTreeMap<String, Vec<Json>> = BTreeMap::new();
            for (a, f) in self.all_folds() {
                let spec = match (f.as_str(), self.window) {
                    ("bin", (Some(from), Some(to))) => json!(["bin", BUCKETS, from, to]),
                    ("bin", _) => json!(["bin", BUCKETS]),
                    (other, _) => json!([other]),
                };
                fold.entry(a).or_default().push(spec);
            }
            q.insert("fold".into(), json!(fold));
            let order: Vec<Json> = self
                .sort
                .iter()
                .map(|s| {
                    let name = match s.column.as_str() {
                        "count" | ";count" => ";count".to_string(),
                        c if c == "group" || c == ";group" || c == self.factor() => ";group".to_string(),
                        c => match sort_fold(c) {
                            Some((a, f)) => format!("{a};{f}"),
                            None => return Err(self.bad_group_sort(c)),
                        },
                    };
                    Ok(json!({"name": name, "ordering": if s.descending { "descending" } else { "ascending" }}))
                })
                .collect::<Result<_, MorgueError>>()?;
            if !order.is_empty() {
                q.insert("order".into(), Json::Array(order));
            }
        } else {
            let mut select = self.select.clone();
            if !select.iter().any(|s| s == "timestamp") {
                select.push("timestamp".into());
            }
            q.insert("select".into(), json!(select));
            if !self.sort.is_empty() {
                let order: Vec<Json> = self
                    .sort
                    .iter()
                    .map(|s| json!({"name": s.column, "ordering": if s.descending { "descending" } else { "ascending" }}))
                    .collect();
                q.insert("order".into(), Json::Array(order));
            }
        }
        if let Some(l) = self.limit {
            q.insert("limit".into(), json!(l));
        }
        if let Some(o) = self.offset {
            q.insert("offset".into(), json!(o));
        }
        Ok(Json::Object(q))
    }

    fn bad_group_sort(&self, c: &str) -> MorgueError {
        bad(format!("cannot sort groups by {c:?}: use count, group, first, last, or ATTR;FOLD (e.g. hostname;unique)"))
    }
}

/// The fold a grouped sort column needs: `first`/`last` are the timestamp's min/max,
/// `ATTR;FOLD` names one.
fn sort_fold(column: &str) -> Option<(String, String)> {
    match column {
        "first" => Some(("timestamp".into(), "min".into())),
        "last" => Some(("timestamp".into(), "max".into())),
        c => {
            let (a, f) = c.split_once(';')?;
            (!a.is_empty() && (FOLD_FLAGS.contains(&f) || f == "count" || f == "mean"))
                .then(|| (a.to_string(), f.to_string()))
        }
    }
}

fn filter_json(attr: &str, op: &str, value: &str) -> Json {
    let mut m = serde_json::Map::new();
    let cond = if op == "is-set" || op == "is-not-set" { json!([op]) } else { json!([op, value]) };
    m.insert(attr.to_string(), json!([cond]));
    Json::Object(m)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters() {
        type Case<'a> = (&'a str, Option<(&'a str, &'a str, &'a str)>);
        let cases: &[Case] = &[
            ("hostname,equal,db1", Some(("hostname", "equal", "db1"))),
            ("hostname,eq,db1", Some(("hostname", "equal", "db1"))),
            ("callstack,contains,a,b", Some(("callstack", "contains", "a,b"))),
            ("timestamp,>=,100", Some(("timestamp", "at-least", "100"))),
            ("pid,is-set", Some(("pid", "is-set", ""))),
            ("pid,not-set", Some(("pid", "is-not-set", ""))),
            ("version,regex,^1\\.", Some(("version", "regular-expression", "^1\\."))),
            ("hostname,equal,", Some(("hostname", "equal", ""))),
            ("hostname", None),
            ("hostname,like,x", None),
            (",equal,x", None),
            ("hostname,equal", None),
            ("pid,is-set,1", None),
        ];
        for (input, want) in cases {
            let got = parse_filter(input).ok().map(|f| (f.attr, f.op, f.value));
            let want = want.map(|(a, o, v)| (a.to_string(), o, v.to_string()));
            assert_eq!(got, want, "{input}");
        }
        let e = parse_filter("hostname,like,x").unwrap_err().to_string();
        assert!(e.starts_with("bad filter \"hostname,like,x\""), "{e}");
    }

    #[test]
    fn durations_and_times() {
        for (s, want) in [("30d", Some(30 * 86400)), ("90", Some(90)), ("15m", Some(900)), ("1M", Some(2_592_000))] {
            assert_eq!(parse_duration(s).ok(), want, "{s}");
        }
        for s in ["", "d", "3x", "-1d"] {
            assert!(parse_duration(s).is_err(), "{s}");
        }
        let now = 1_700_000_000;
        let cases: &[(&str, Option<i64>)] = &[
            ("1700000000", Some(1_700_000_000)),
            ("1970-01-01", Some(0)),
            ("2023-11-14", Some(1_699_920_000)),
            ("2023-11-14T22:13:20Z", Some(1_700_000_000)),
            ("2000-03-01 00:00", Some(951_868_800)),
            ("1d", Some(now - 86_400)),
            ("2023-13-01", None),
            ("yesterday", None),
        ];
        for (s, want) in cases {
            assert_eq!(parse_instant(s, now).ok(), *want, "{s}");
        }
        assert_eq!(parse_time_range("100..200", now).unwrap(), (Some(100), Some(200)));
        assert_eq!(parse_time_range("..200", now).unwrap(), (None, Some(200)));
        assert_eq!(parse_time_range("2d..1d", now).unwrap(), (Some(now - 172_800), Some(now - 86_400)));
        assert!(parse_time_range("200..100", now).is_err());
        assert!(parse_time_range("200", now).is_err());
    }

    #[test]
    fn time_filters_take_dates() {
        let now = 1_700_000_000;
        let f = |s: &str| resolve_time_filter(parse_filter(s).unwrap(), now).map(|f| f.value);
        assert_eq!(f("timestamp,at-least,2023-11-14").unwrap(), "1699920000");
        assert_eq!(f("received,less-than,1d").unwrap(), (now - 86_400).to_string());
        assert_eq!(f("timestamp,at-least,100").unwrap(), "100");
        assert_eq!(f("hostname,equal,2023-11-14").unwrap(), "2023-11-14");
        assert!(f("timestamp,at-least,tuesday").unwrap_err().to_string().contains("bad time"));
    }

    #[test]
    fn sorts() {
        assert_eq!(parse_sort("-count").unwrap(), Sort { column: "count".into(), descending: true });
        assert_eq!(parse_sort("first").unwrap(), Sort { column: "first".into(), descending: false });
        assert!(parse_sort("-").is_err());
    }

    #[test]
    fn list_queries() {
        let spec = ListSpec {
            filters: vec![parse_filter("hostname,equal,a").unwrap(), parse_filter("pid,is-set").unwrap()],
            folds: vec![("hostname".into(), "unique".into()), ("pid".into(), "sum".into())],
            sort: vec![parse_sort("-last").unwrap(), parse_sort("hostname;unique").unwrap()],
            window: (Some(100), Some(200)),
            limit: Some(5),
            offset: Some(1),
            ..Default::default()
        };
        let q = spec.query().unwrap();
        assert_eq!(
            q,
            json!({
                "filter": [{"hostname": [["equal", "a"]]}, {"pid": [["is-set"]]},
                           {"timestamp": [["at-least", "100"]]}, {"timestamp": [["at-most", "200"]]}],
                "group": ["fingerprint"],
                "fold": {"hostname": [["unique"]], "pid": [["sum"]], "callstack": [["head"]], "classifiers": [["head"]],
                         "timestamp": [["max"], ["range"], ["bin", 32, 100, 200]]},
                "order": [{"name": "timestamp;max", "ordering": "descending"}, {"name": "hostname;unique", "ordering": "ascending"}],
                "limit": 5, "offset": 1
            })
        );
        assert_eq!(spec.attributes(), vec!["hostname", "pid"]);

        let by_host = ListSpec {
            factor: Some("hostname".into()),
            sort: vec![parse_sort("hostname").unwrap()],
            ..Default::default()
        };
        let q = by_host.query().unwrap();
        assert_eq!(q["group"], json!(["hostname"]));
        assert_eq!(q["fold"], json!({"timestamp": [["range"], ["bin", 32]]}));
        assert_eq!(q["order"], json!([{"name": ";group", "ordering": "ascending"}]));

        let select = ListSpec {
            select: vec!["hostname".into()],
            sort: vec![parse_sort("-timestamp").unwrap()],
            ..Default::default()
        };
        let q = select.query().unwrap();
        assert_eq!(q["select"], json!(["hostname", "timestamp"]));
        assert_eq!(q["order"], json!([{"name": "timestamp", "ordering": "descending"}]));
        assert!(q.get("group").is_none());

        let bad_sort = ListSpec { sort: vec![parse_sort("wat").unwrap()], ..Default::default() };
        assert!(bad_sort.query().unwrap_err().to_string().contains("cannot sort groups by \"wat\""));
    }
}
