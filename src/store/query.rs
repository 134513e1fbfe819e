//! The query engine: filters, grouping, folds, selection, ordering and paging over
//! the columnar index of one project, in the style of Backtrace's morgue queries.
//!
//! ```json
//! {"filter": [{"timestamp": [["at-least", "1700000000."]], "application": [["equal", "x"]]}],
//!  "group": ["fingerprint"],
//!  "fold": {"timestamp": [["range"], ["bin", 32]], "hostname": [["histogram"]]},
//!  "order": [{"name": ";count", "ordering": "descending"}], "limit": 20, "offset": 0}
//! ```
//! One pass over the rows: filters test cells (string predicates are evaluated once
//! per distinct dictionary string and memoised), groups are found through a dense
//! slot table, folds accumulate per group.

use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasherDefault, Hasher};
use std::time::Instant;

use serde_json::{Value as Json, json};

use super::index::{Attr, Column, ProjectIndex, UNSET_INT};
use super::ingest::parse_int;
use super::schema::AttrType;
use super::{StoreError, format_object_id};

/// Rows returned when the query names no limit.
pub const DEFAULT_LIMIT: usize = 100;
/// Largest limit accepted.
pub const MAX_LIMIT: usize = 100_000;

fn bad(msg: impl Into<String>) -> StoreError {
    StoreError::BadInput(msg.into())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Equal,
    NotEqual,
    Contains,
    NotContains,
    Regex,
    InverseRegex,
    AtLeast,
    GreaterThan,
    AtMost,
    LessThan,
    IsSet,
    IsNotSet,
}

impl Op {
    fn parse(s: &str) -> Option<Op> {
        Some(match s {
            "equal" => Op::Equal,
            "not-equal" => Op::NotEqual,
            "contains" => Op::Contains,
            "not-contains" => Op::NotContains,
            "regular-expression" => Op::Regex,
            "inverse-regular-expression" => Op::InverseRegex,
            "at-least" => Op::AtLeast,
            "greater-than" => Op::GreaterThan,
            "at-most" => Op::AtMost,
            "less-than" => Op::LessThan,
            "is-set" => Op::IsSet,
            "is-not-set" => Op::IsNotSet,
            _ => return None,
        })
    }

    /// The answer for an object that does not have the attribute.
    fn on_unset(self) -> bool {
        matches!(self, Op::NotEqual | Op::NotContains | Op::InverseRegex | Op::IsNotSet)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FoldOp {
    Count,
    Unique,
    Head,
    Tail,
    Range,
    Min,
    Max,
    Sum,
    Mean,
    Histogram,
    Distribution(usize),
    Bin(usize),
}

impl FoldOp {
    fn parse(spec: &[Json]) -> Result<FoldOp, StoreError> {
        let name = spec.first().and_then(Json::as_str).ok_or_else(|| bad("a fold is [\"op\", args…]"))?;
        let arg = |default: usize| -> Result<usize, StoreError> {
            match spec.get(1) {
                None => Ok(default),
                Some(v) => v
                    .as_u64()
                    .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
                    .filter(|n| (1..=1000).contains(n))
                    .map(|n| n as usize)
                    .ok_or_else(|| bad(format!("fold {name}: argument must be a number from 1 to 1000"))),
            }
        };
        Ok(match name {
            "count" => FoldOp::Count,
            "unique" => FoldOp::Unique,
            "head" => FoldOp::Head,
            "tail" => FoldOp::Tail,
            "range" => FoldOp::Range,
            "min" => FoldOp::Min,
            "max" => FoldOp::Max,
            "sum" => FoldOp::Sum,
            "mean" => FoldOp::Mean,
            "histogram" => FoldOp::Histogram,
            "distribution" => FoldOp::Distribution(arg(5)?),
            "bin" => FoldOp::Bin(arg(32)?),
            other => return Err(bad(format!("unknown fold {other:?}"))),
        })
    }

    fn name(self) -> &'static str {
        match self {
            FoldOp::Count => "count",
            FoldOp::Unique => "unique",
            FoldOp::Head => "head",
            FoldOp::Tail => "tail",
            FoldOp::Range => "range",
            FoldOp::Min => "min",
            FoldOp::Max => "max",
            FoldOp::Sum => "sum",
            FoldOp::Mean => "mean",
            FoldOp::Histogram => "histogram",
            FoldOp::Distribution(_) => "distribution",
            FoldOp::Bin(_) => "bin",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Condition {
    pub attr: String,
    pub op: Op,
    pub value: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct OrderBy {
    pub name: String,
    pub descending: bool,
}

/// A parsed query.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Query {
    pub filter: Vec<Condition>,
    /// The grouping attribute; `None` selects single objects.
    pub group: Option<String>,
    pub fold: Vec<(String, FoldOp)>,
    pub select: Vec<String>,
    pub order: Vec<OrderBy>,
    pub limit: usize,
    pub offset: usize,
}

fn text_of(v: &Json) -> Option<String> {
    match v {
        Json::String(s) => Some(s.clone()),
        Json::Number(n) => Some(n.to_string()),
        Json::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

impl Query {
    /// Parses the JSON a client sends. An empty body is the default list query.
    pub fn parse(body: &[u8]) -> Result<Query, StoreError> {
        let v: Json = if body.iter().all(u8::is_ascii_whitespace) {
            json!({})
        } else {
            serde_json::from_slice(body).map_err(|e| bad(format!("malformed query: {e}")))?
        };
        Query::from_json(&v)
    }

    pub fn from_json(v: &Json) -> Result<Query, StoreError> {
        let Json::Object(o) = v else { return Err(bad("a query is a JSON object")) };
        for k in o.keys() {
            if !["filter", "group", "fold", "select", "order", "limit", "offset"].contains(&k.as_str()) {
                return Err(bad(format!("unknown query field {k:?}")));
            }
        }
        let mut q = Query { group: Some("fingerprint".into()), limit: DEFAULT_LIMIT, ..Default::default() };
        let filters: Vec<&Json> = match o.get("filter") {
            None | Some(Json::Null) => vec![],
            Some(Json::Array(a)) => a.iter().collect(),
            Some(f @ Json::Object(_)) => vec![f],
            Some(_) => return Err(bad("filter must be an object or an array of objects")),
        };
        for f in filters {
            let Json::Object(f) = f else { return Err(bad("filter must be an object or an array of objects")) };
            for (attr, conds) in f {
                let Json::Array(conds) = conds else {
                    return Err(bad(format!("filter on {attr}: expected [[op, value], …]")));
                };
                for c in conds {
                    let c = c.as_array().ok_or_else(|| bad(format!("filter on {attr}: expected [op, value]")))?;
                    let op_name = c
                        .first()
                        .and_then(Json::as_str)
                        .ok_or_else(|| bad(format!("filter on {attr}: missing operator")))?;
                    let op = Op::parse(op_name).ok_or_else(|| bad(format!("unknown filter operator {op_name:?}")))?;
                    let value = match (op, c.get(1)) {
                        (Op::IsSet | Op::IsNotSet, _) => String::new(),
                        (_, Some(v)) => text_of(v)
                            .ok_or_else(|| bad(format!("filter on {attr}: value must be a string or a number")))?,
                        (_, None) => return Err(bad(format!("filter on {attr}: {op_name} needs a value"))),
                    };
                    if matches!(op, Op::Regex | Op::InverseRegex) {
                        fancy_regex::Regex::new(&value)
                            .map_err(|e| bad(format!("filter on {attr}: bad regular expression: {e}")))?;
                    }
                    q.filter.push(Condition { attr: attr.clone(), op, value });
                }
            }
        }
        if let Some(s) = o.get("select") {
            let a = s.as_array().ok_or_else(|| bad("select must be an array of attribute names"))?;
            q.select = a
                .iter()
                .map(|x| {
                    x.as_str().map(str::to_string).ok_or_else(|| bad("select must be an array of attribute names"))
                })
                .collect::<Result<_, _>>()?;
            q.group = None;
        }
        match o.get("group") {
            None => {}
            Some(Json::Null) => q.group = None,
            Some(Json::Array(a)) if a.is_empty() => q.group = None,
            Some(Json::Array(a)) if a.len() == 1 => {
                q.group = Some(a[0].as_str().ok_or_else(|| bad("group names one attribute"))?.to_string())
            }
            Some(Json::String(s)) => q.group = Some(s.clone()),
            Some(_) => return Err(bad("group names one attribute: [\"fingerprint\"]")),
        }
        if let Some(f) = o.get("fold") {
            let Json::Object(f) = f else { return Err(bad("fold must be an object: {attr: [[op, args…]]}")) };
            for (attr, specs) in f {
                let specs = specs.as_array().ok_or_else(|| bad(format!("fold on {attr}: expected [[op, args…]]")))?;
                for s in specs {
                    let s = s.as_array().ok_or_else(|| bad(format!("fold on {attr}: expected [op, args…]")))?;
                    q.fold.push((attr.clone(), FoldOp::parse(s)?));
                }
            }
        }
        if let Some(ord) = o.get("order") {
            let a = ord.as_array().ok_or_else(|| bad("order must be an array of {name, ordering}"))?;
            for x in a {
                let name = x.get("name").and_then(Json::as_str).ok_or_else(|| bad("order entries need a name"))?;
                let descending = match x.get("ordering").and_then(Json::as_str) {
                    None | Some("descending") => true,
                    Some("ascending") => false,
                    Some(other) => return Err(bad(format!("ordering must be ascending or descending, not {other:?}"))),
                };
                q.order.push(OrderBy { name: name.to_string(), descending });
            }
        }
        let num = |k: &str| -> Result<Option<usize>, StoreError> {
            match o.get(k) {
                None | Some(Json::Null) => Ok(None),
                Some(v) => v
                    .as_u64()
                    .map(|n| Some(n as usize))
                    .ok_or_else(|| bad(format!("{k} must be a non-negative integer"))),
            }
        };
        if let Some(l) = num("limit")? {
            if l > MAX_LIMIT {
                return Err(bad(format!("limit is at most {MAX_LIMIT}")));
            }
            q.limit = l;
        }
        q.offset = num("offset")?.unwrap_or(0);
        Ok(q)
    }
}

/// A query's answer.
#[derive(Debug, Clone)]
pub struct Output {
    /// `{"columns", "rows", "total", "objects", "time_us"}`.
    pub json: Json,
    pub groups: usize,
    pub objects: usize,
}

// ---------------------------------------------------------------------------------
// Filters

/// A fast hasher for integer keys (dictionary ids, integers): multiply-xorshift.
#[derive(Default)]
struct IntHasher(u64);

impl Hasher for IntHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.write_u64(b as u64);
        }
    }
    fn write_u64(&mut self, v: u64) {
        let x = (self.0 ^ v).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        self.0 = x ^ (x >> 29);
    }
}

type IntMap<V> = HashMap<u64, V, BuildHasherDefault<IntHasher>>;

fn str_test(op: Op, cell: &str, value: &str, re: Option<&fancy_regex::Regex>) -> bool {
    let num = || -> Option<std::cmp::Ordering> {
        let a: f64 = cell.trim().parse().ok()?;
        let b: f64 = value.trim().trim_end_matches('.').parse().ok()?;
        a.partial_cmp(&b)
    };
    let ord = || num().unwrap_or_else(|| cell.cmp(value));
    match op {
        Op::Equal => cell == value,
        Op::NotEqual => cell != value,
        Op::Contains => cell.contains(value),
        Op::NotContains => !cell.contains(value),
        Op::Regex => re.is_some_and(|r| r.is_match(cell).unwrap_or(false)),
        Op::InverseRegex => !re.is_some_and(|r| r.is_match(cell).unwrap_or(false)),
        Op::AtLeast => ord().is_ge(),
        Op::GreaterThan => ord().is_gt(),
        Op::AtMost => ord().is_le(),
        Op::LessThan => ord().is_lt(),
        Op::IsSet => true,
        Op::IsNotSet => false,
    }
}

enum Pred<'a> {
    Const(bool),
    /// Memo over dictionary ids: 0 = not evaluated yet, 1 = false, 2 = true.
    Str {
        cells: &'a [u32],
        memo: Vec<u8>,
        op: Op,
        value: String,
        re: Option<fancy_regex::Regex>,
    },
    Int {
        cells: &'a [i64],
        op: Op,
        value: i64,
    },
    /// String operators on an integer column test the decimal text.
    IntText {
        cells: &'a [i64],
        op: Op,
        value: String,
        re: Option<fancy_regex::Regex>,
    },
    Object {
        op: Op,
        value: u64,
        text: String,
    },
}

impl<'a> Pred<'a> {
    fn compile(p: &'a ProjectIndex, c: &Condition) -> Result<Pred<'a>, StoreError> {
        let re = match c.op {
            Op::Regex | Op::InverseRegex => {
                Some(fancy_regex::Regex::new(&c.value).map_err(|e| bad(format!("bad regular expression: {e}")))?)
            }
            _ => None,
        };
        if c.attr == "object" || c.attr == "_rxid" {
            let value = super::parse_object_id(&c.value).unwrap_or(u64::MAX);
            return Ok(Pred::Object { op: c.op, value, text: c.value.clone() });
        }
        let Some(attr) = p.attr(&c.attr) else { return Ok(Pred::Const(c.op.on_unset())) };
        Ok(match &attr.column {
            Column::Str(cells) => {
                Pred::Str { cells, memo: vec![0; p.strings.len() + 1], op: c.op, value: c.value.clone(), re }
            }
            Column::Int(cells) => match (c.op, parse_int(&c.value)) {
                (Op::Equal | Op::NotEqual | Op::AtLeast | Op::GreaterThan | Op::AtMost | Op::LessThan, Some(v)) => {
                    Pred::Int { cells, op: c.op, value: v }
                }
                (Op::AtLeast | Op::GreaterThan | Op::AtMost | Op::LessThan, None) => {
                    return Err(bad(format!(
                        "{} is an {} attribute: {:?} is not a number",
                        c.attr,
                        attr.ty.as_str(),
                        c.value
                    )));
                }
                (Op::IsSet | Op::IsNotSet, _) => Pred::Int { cells, op: c.op, value: 0 },
                _ => Pred::IntText { cells, op: c.op, value: c.value.clone(), re },
            },
        })
    }

    #[inline]
    fn test(&mut self, p: &ProjectIndex, row: usize) -> bool {
        match self {
            Pred::Const(b) => *b,
            Pred::Str { cells, memo, op, value, re } => {
                let cell = cells[row] as usize;
                match memo[cell] {
                    1 => false,
                    2 => true,
                    _ => {
                        let r = if cell == 0 {
                            op.on_unset()
                        } else {
                            str_test(*op, &p.strings[cell - 1], value, re.as_ref())
                        };
                        memo[cell] = if r { 2 } else { 1 };
                        r
                    }
                }
            }
            Pred::Int { cells, op, value } => {
                let v = cells[row];
                if v == UNSET_INT {
                    return op.on_unset();
                }
                match op {
                    Op::Equal => v == *value,
                    Op::NotEqual => v != *value,
                    Op::AtLeast => v >= *value,
                    Op::GreaterThan => v > *value,
                    Op::AtMost => v <= *value,
                    Op::LessThan => v < *value,
                    Op::IsSet => true,
                    _ => false,
                }
            }
            Pred::IntText { cells, op, value, re } => {
                let v = cells[row];
                if v == UNSET_INT { op.on_unset() } else { str_test(*op, &v.to_string(), value, re.as_ref()) }
            }
            Pred::Object { op, value, text } => {
                let id = p.ids[row];
                match op {
                    Op::Equal => id == *value,
                    Op::NotEqual => id != *value,
                    Op::AtLeast => id >= *value,
                    Op::GreaterThan => id > *value,
                    Op::AtMost => id <= *value,
                    Op::LessThan => id < *value,
                    Op::IsSet => true,
                    Op::IsNotSet => false,
                    _ => str_test(*op, &format_object_id(id), text, None),
                }
            }
        }
    }
}

fn filtered_rows<'a>(p: &'a ProjectIndex, q: &Query) -> Result<impl Iterator<Item = usize> + 'a, StoreError> {
    let mut preds: Vec<Pred<'a>> = q.filter.iter().map(|c| Pred::compile(p, c)).collect::<Result<_, _>>()?;
    Ok((0..p.ids.len()).filter(move |&row| p.alive[row] && preds.iter_mut().all(|pr| pr.test(p, row))))
}

/// The ids of the live objects the query's filter selects (for deletion).
pub fn matching_ids(p: &ProjectIndex, q: &Query) -> Result<Vec<u64>, StoreError> {
    Ok(filtered_rows(p, q)?.map(|r| p.ids[r]).collect())
}

// ---------------------------------------------------------------------------------
// Cells and folds

fn cell_json(p: &ProjectIndex, attr: &Attr, row: usize) -> Json {
    match &attr.column {
        Column::Str(c) => match c[row] {
            0 => Json::Null,
            s => Json::String(p.strings[s as usize - 1].clone()),
        },
        Column::Int(c) => match c[row] {
            UNSET_INT => Json::Null,
            v => json!(v),
        },
    }
}

/// A cell as a hashable key: dictionary id + 1 for strings, the bits for integers; None = unset.
#[inline]
fn cell_key(attr: &Attr, row: usize) -> Option<u64> {
    match &attr.column {
        Column::Str(c) => (c[row] != 0).then_some(c[row] as u64),
        Column::Int(c) => (c[row] != UNSET_INT).then_some(c[row] as u64),
    }
}

fn key_json(p: &ProjectIndex, attr: &Attr, key: u64) -> Json {
    match &attr.column {
        Column::Str(_) => p.strings.get(key as usize - 1).map(|s| Json::String(s.clone())).unwrap_or(Json::Null),
        Column::Int(_) => json!(key as i64),
    }
}

fn cmp_keys(p: &ProjectIndex, attr: &Attr, a: u64, b: u64) -> std::cmp::Ordering {
    match &attr.column {
        Column::Str(_) => p.strings[a as usize - 1].cmp(&p.strings[b as usize - 1]),
        Column::Int(_) => (a as i64).cmp(&(b as i64)),
    }
}

enum Acc {
    Count(u64),
    Unique(HashSet<u64, BuildHasherDefault<IntHasher>>),
    Head(Option<usize>),
    Tail(Option<usize>),
    MinMax(Option<(u64, u64)>),
    Sum(f64, u64),
    Hist(IntMap<u64>),
    Bin(Vec<i64>),
}

struct Fold<'a> {
    attr: Option<&'a Attr>,
    name: String,
    op: FoldOp,
}

impl Fold<'_> {
    fn new_acc(&self) -> Acc {
        match self.op {
            FoldOp::Count => Acc::Count(0),
            FoldOp::Unique => Acc::Unique(Default::default()),
            FoldOp::Head => Acc::Head(None),
            FoldOp::Tail => Acc::Tail(None),
            FoldOp::Range | FoldOp::Min | FoldOp::Max => Acc::MinMax(None),
            FoldOp::Sum | FoldOp::Mean => Acc::Sum(0.0, 0),
            FoldOp::Histogram | FoldOp::Distribution(_) => Acc::Hist(Default::default()),
            FoldOp::Bin(_) => Acc::Bin(Vec::new()),
        }
    }

    #[inline]
    fn add(&self, p: &ProjectIndex, acc: &mut Acc, row: usize) {
        let Some(attr) = self.attr else { return };
        let Some(key) = cell_key(attr, row) else { return };
        match acc {
            Acc::Count(n) => *n += 1,
            Acc::Unique(s) => {
                s.insert(key);
            }
            Acc::Head(h) => {
                if h.is_none() {
                    *h = Some(row);
                }
            }
            Acc::Tail(t) => *t = Some(row),
            Acc::MinMax(m) => match m {
                None => *m = Some((key, key)),
                Some((lo, hi)) => {
                    if cmp_keys(p, attr, key, *lo).is_lt() {
                        *lo = key;
                    }
                    if cmp_keys(p, attr, key, *hi).is_gt() {
                        *hi = key;
                    }
                }
            },
            Acc::Sum(s, n) => {
                let v = match &attr.column {
                    Column::Int(_) => Some(key as i64 as f64),
                    Column::Str(_) => p.strings[key as usize - 1].trim().parse::<f64>().ok(),
                };
                if let Some(v) = v {
                    *s += v;
                    *n += 1;
                }
            }
            Acc::Hist(h) => *h.entry(key).or_default() += 1,
            Acc::Bin(v) => {
                if let Column::Int(_) = attr.column {
                    v.push(key as i64);
                }
            }
        }
    }

    /// The fold's value, and a number to order by.
    fn result(&self, p: &ProjectIndex, acc: &Acc, bins: Option<(i64, i64)>) -> (Json, Option<f64>) {
        let Some(attr) = self.attr else {
            return match self.op {
                FoldOp::Count | FoldOp::Unique => (json!(0), Some(0.0)),
                FoldOp::Histogram | FoldOp::Bin(_) => (json!([]), None),
                _ => (Json::Null, None),
            };
        };
        let num = |k: u64| match &attr.column {
            Column::Int(_) => Some(k as i64 as f64),
            Column::Str(_) => None,
        };
        match acc {
            Acc::Count(n) => (json!(n), Some(*n as f64)),
            Acc::Unique(s) => (json!(s.len()), Some(s.len() as f64)),
            Acc::Head(r) | Acc::Tail(r) => match r {
                Some(r) => (cell_json(p, attr, *r), cell_key(attr, *r).and_then(num)),
                None => (Json::Null, None),
            },
            Acc::MinMax(m) => match (m, self.op) {
                (None, _) => (Json::Null, None),
                (Some((lo, hi)), FoldOp::Range) => (json!([key_json(p, attr, *lo), key_json(p, attr, *hi)]), num(*hi)),
                (Some((lo, _)), FoldOp::Min) => (key_json(p, attr, *lo), num(*lo)),
                (Some((_, hi)), _) => (key_json(p, attr, *hi), num(*hi)),
            },
            Acc::Sum(s, n) => match self.op {
                FoldOp::Mean if *n > 0 => (json!(s / *n as f64), Some(s / *n as f64)),
                FoldOp::Mean => (Json::Null, None),
                _ => (json!(s), Some(*s)),
            },
            Acc::Hist(h) => {
                let mut v: Vec<(u64, u64)> = h.iter().map(|(k, c)| (*k, *c)).collect();
                v.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| cmp_keys(p, attr, a.0, b.0)));
                let top = |v: &[(u64, u64)]| -> Json {
                    Json::Array(v.iter().map(|(k, c)| json!([key_json(p, attr, *k), c])).collect())
                };
                match self.op {
                    FoldOp::Distribution(n) => {
                        let tail: u64 = v.iter().skip(n).map(|x| x.1).sum();
                        (
                            json!({"keys": v.len(), "tail": tail, "vals": top(&v[..n.min(v.len())])}),
                            Some(v.len() as f64),
                        )
                    }
                    _ => (top(&v), Some(v.len() as f64)),
                }
            }
            Acc::Bin(vals) => {
                let FoldOp::Bin(n) = self.op else { return (Json::Null, None) };
                let Some((lo, hi)) = bins else { return (json!([]), None) };
                let width = ((hi - lo) as f64 / n as f64).max(1.0);
                let mut counts = vec![0u64; n];
                for &v in vals {
                    let i = (((v - lo) as f64) / width) as usize;
                    counts[i.min(n - 1)] += 1;
                }
                let out: Vec<Json> = counts
                    .iter()
                    .enumerate()
                    .map(|(i, c)| json!([lo + (i as f64 * width) as i64, lo + ((i + 1) as f64 * width) as i64, c]))
                    .collect();
                (Json::Array(out), Some(vals.len() as f64))
            }
        }
    }
}

fn cmp_json(a: &Json, b: &Json) -> std::cmp::Ordering {
    use std::cmp::Ordering::*;
    match (a, b) {
        (Json::Null, Json::Null) => Equal,
        (Json::Null, _) => Less,
        (_, Json::Null) => Greater,
        (Json::Number(x), Json::Number(y)) => {
            x.as_f64().unwrap_or(0.0).partial_cmp(&y.as_f64().unwrap_or(0.0)).unwrap_or(Equal)
        }
        (Json::String(x), Json::String(y)) => x.cmp(y),
        (Json::Array(x), Json::Array(y)) => x.last().zip(y.last()).map(|(x, y)| cmp_json(x, y)).unwrap_or(Equal),
        _ => a.to_string().cmp(&b.to_string()),
    }
}

/// Runs a query over one project.
pub fn run(p: &ProjectIndex, q: &Query) -> Result<Output, StoreError> {
    let started = Instant::now();
    let mut out = match &q.group {
        Some(g) => run_grouped(p, q, g)?,
        None => run_select(p, q)?,
    };
    if let Json::Object(o) = &mut out.json {
        o.insert("time_us".into(), json!(started.elapsed().as_micros() as u64));
    }
    Ok(out)
}

/// One group of a grouped answer: factor, fold results (value, number to order by), count.
type GroupRow = (Json, Vec<(Json, Option<f64>)>, u64);

/// Answers from the per-group aggregates maintained on ingest, without a scan,
/// when the query asks only what they hold: grouped by fingerprint, no filter,
/// folds among range/min/max of `timestamp`.
fn groups_from_aggregates(p: &ProjectIndex, q: &Query, group: &str, folds: &[Fold]) -> Option<(Vec<GroupRow>, usize)> {
    let fits = group == "fingerprint"
        && q.filter.is_empty()
        && folds.iter().all(|f| f.name == "timestamp" && matches!(f.op, FoldOp::Range | FoldOp::Min | FoldOp::Max));
    if !fits {
        return None;
    }
    let mut n_objects = 0;
    let rows = p
        .groups
        .iter()
        .filter(|(_, g)| g.count > 0)
        .map(|(fp, g)| {
            n_objects += g.count as usize;
            let results = folds
                .iter()
                .map(|f| match f.op {
                    FoldOp::Range => (json!([g.first_seen, g.last_seen]), Some(g.last_seen as f64)),
                    FoldOp::Min => (json!(g.first_seen), Some(g.first_seen as f64)),
                    _ => (json!(g.last_seen), Some(g.last_seen as f64)),
                })
                .collect();
            (json!(fp), results, g.count)
        })
        .collect();
    Some((rows, n_objects))
}

/// Groups by one pass over the rows.
fn groups_by_scan(
    p: &ProjectIndex,
    q: &Query,
    group: &str,
    folds: &[Fold],
) -> Result<(Vec<GroupRow>, usize), StoreError> {
    let gattr = if group == "*" { None } else { p.attr(group) };
    // Group slots: dense over dictionary ids for string factors, hashed otherwise.
    let mut dense: Vec<u32> = match gattr.map(|a| &a.column) {
        Some(Column::Str(_)) => vec![u32::MAX; p.strings.len() + 1],
        _ => Vec::new(),
    };
    let mut hashed: IntMap<u32> = IntMap::default();
    let mut keys: Vec<Option<u64>> = Vec::new();
    let mut counts: Vec<u64> = Vec::new();
    let mut accs: Vec<Vec<Acc>> = Vec::new();
    let mut n_objects = 0usize;
    let mut bin_range: Vec<Option<(i64, i64)>> = vec![None; folds.len()];
    let has_bins = folds.iter().any(|f| matches!(f.op, FoldOp::Bin(_)));
    for row in filtered_rows(p, q)? {
        n_objects += 1;
        let key = gattr.and_then(|a| cell_key(a, row));
        let slot = match gattr.map(|a| &a.column) {
            Some(Column::Str(c)) => {
                let s = &mut dense[c[row] as usize];
                if *s == u32::MAX {
                    *s = keys.len() as u32;
                    keys.push(key);
                    counts.push(0);
                    accs.push(folds.iter().map(Fold::new_acc).collect());
                }
                *s as usize
            }
            _ => {
                let k = key.map(|k| k.wrapping_add(1)).unwrap_or(0);
                let next = keys.len() as u32;
                let s = *hashed.entry(k).or_insert(next);
                if s == next {
                    keys.push(key);
                    counts.push(0);
                    accs.push(folds.iter().map(Fold::new_acc).collect());
                }
                s as usize
            }
        };
        counts[slot] += 1;
        for (f, acc) in folds.iter().zip(accs[slot].iter_mut()) {
            f.add(p, acc, row);
        }
        if has_bins {
            for (i, f) in folds.iter().enumerate() {
                if let (FoldOp::Bin(_), Some(a)) = (f.op, f.attr)
                    && let Some(k) = cell_key(a, row)
                {
                    let v = k as i64;
                    bin_range[i] = Some(bin_range[i].map_or((v, v), |(lo, hi)| (lo.min(v), hi.max(v))));
                }
            }
        }
    }
    let rows: Vec<GroupRow> = (0..keys.len())
        .map(|slot| {
            let factor = match (gattr, keys[slot]) {
                (Some(a), Some(k)) => key_json(p, a, k),
                (None, _) if group == "*" => json!("*"),
                _ => Json::Null,
            };
            let results = folds.iter().enumerate().map(|(i, f)| f.result(p, &accs[slot][i], bin_range[i])).collect();
            (factor, results, counts[slot])
        })
        .collect();
    Ok((rows, n_objects))
}

fn run_grouped(p: &ProjectIndex, q: &Query, group: &str) -> Result<Output, StoreError> {
    let folds: Vec<Fold> = q.fold.iter().map(|(a, op)| Fold { attr: p.attr(a), name: a.clone(), op: *op }).collect();
    let columns: Vec<Json> = folds.iter().map(|f| json!([f.name, f.op.name()])).collect();
    let (mut rows, n_objects) = match groups_from_aggregates(p, q, group, &folds) {
        Some(r) => r,
        None => groups_by_scan(p, q, group, &folds)?,
    };
    // Ordering: by count (default, descending), by the factor, or by a fold.
    let order =
        if q.order.is_empty() { vec![OrderBy { name: ";count".into(), descending: true }] } else { q.order.clone() };
    type SortKey<'a> = Box<dyn Fn(&GroupRow) -> Json + 'a>;
    let mut keys_of: Vec<SortKey> = Vec::new();
    for o in &order {
        let name = o.name.as_str();
        if name == ";count" || name == "count" {
            keys_of.push(Box::new(|r| json!(r.2)));
        } else if name == ";group" || name == group {
            keys_of.push(Box::new(|r| r.0.clone()));
        } else if let Some(i) = folds.iter().position(|f| format!("{};{}", f.name, f.op.name()) == name) {
            keys_of.push(Box::new(move |r| match &r.1[i] {
                (_, Some(n)) => json!(n),
                (v, None) => v.clone(),
            }));
        } else {
            return Err(bad(format!(
                "cannot order by {name:?}: use ;count, ;group or ATTRIBUTE;FOLD of a requested fold"
            )));
        }
    }
    rows.sort_by(|a, b| {
        for (k, o) in keys_of.iter().zip(&order) {
            let c = cmp_json(&k(a), &k(b));
            let c = if o.descending { c.reverse() } else { c };
            if c.is_ne() {
                return c;
            }
        }
        cmp_json(&a.0, &b.0)
    });
    let total = rows.len();
    let json_rows: Vec<Json> = rows
        .into_iter()
        .skip(q.offset)
        .take(q.limit)
        .map(|(factor, results, count)| json!([factor, results.into_iter().map(|r| r.0).collect::<Vec<_>>(), count]))
        .collect();
    Ok(Output {
        json: json!({"group": group, "columns": columns, "rows": json_rows, "total": total, "objects": n_objects}),
        groups: total,
        objects: n_objects,
    })
}

fn run_select(p: &ProjectIndex, q: &Query) -> Result<Output, StoreError> {
    let attrs: Vec<(String, Option<&Attr>)> = q.select.iter().map(|a| (a.clone(), p.attr(a))).collect();
    let mut rows: Vec<usize> = filtered_rows(p, q)?.collect();
    let n_objects = rows.len();
    let order =
        if q.order.is_empty() { vec![OrderBy { name: "object".into(), descending: true }] } else { q.order.clone() };
    let mut sort_attrs = Vec::new();
    for o in &order {
        if o.name == "object" || o.name == "_rxid" {
            sort_attrs.push(None);
        } else {
            sort_attrs.push(Some(
                p.attr(&o.name).ok_or_else(|| bad(format!("cannot order by unknown attribute {:?}", o.name)))?,
            ));
        }
    }
    rows.sort_by(|&a, &b| {
        for (attr, o) in sort_attrs.iter().zip(&order) {
            let c = match attr {
                None => p.ids[a].cmp(&p.ids[b]),
                Some(at) => match (cell_key(at, a), cell_key(at, b)) {
                    (Some(x), Some(y)) => cmp_keys(p, at, x, y),
                    (x, y) => x.is_some().cmp(&y.is_some()),
                },
            };
            let c = if o.descending { c.reverse() } else { c };
            if c.is_ne() {
                return c;
            }
        }
        p.ids[a].cmp(&p.ids[b])
    });
    let columns: Vec<Json> = attrs
        .iter()
        .map(|(name, a)| {
            let ty = match (name.as_str(), a) {
                ("object" | "_rxid", _) => "object",
                (_, Some(a)) => a.ty.as_str(),
                (_, None) => AttrType::Str.as_str(),
            };
            json!([name, ty])
        })
        .collect();
    let json_rows: Vec<Json> = rows
        .iter()
        .skip(q.offset)
        .take(q.limit)
        .map(|&r| {
            let vals: Vec<Json> = attrs
                .iter()
                .map(|(name, a)| match (name.as_str(), a) {
                    ("object" | "_rxid", _) => json!(format_object_id(p.ids[r])),
                    (_, Some(a)) => cell_json(p, a, r),
                    (_, None) => Json::Null,
                })
                .collect();
            json!([format_object_id(p.ids[r]), vals])
        })
        .collect();
    Ok(Output {
        json: json!({"columns": columns, "rows": json_rows, "total": n_objects, "objects": n_objects}),
        groups: 0,
        objects: n_objects,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::schema::{GroupRecord, ProjectRecord, Val};

    /// A small project: (timestamp, hostname, fingerprint, pid) per object.
    fn project(rows: &[(i64, &str, &str, i64)]) -> ProjectIndex {
        let rec =
            ProjectRecord { id: 1, created: 0, max_age: 0, max_bytes: 0, next_object: 1, next_string: 0, next_attr: 0 };
        let mut p = ProjectIndex::new("p", rec);
        let ts = p.add_attr("timestamp", AttrType::Timestamp);
        let host = p.add_attr("hostname", AttrType::Str);
        let fp = p.add_attr("fingerprint", AttrType::Str);
        let pid = p.add_attr("pid", AttrType::Int);
        for (i, (t, h, f, n)) in rows.iter().enumerate() {
            let hs = p.string_ids.get(*h).copied().unwrap_or_else(|| p.add_string(h));
            let fs = p.string_ids.get(*f).copied().unwrap_or_else(|| p.add_string(f));
            p.push_row(i as u64 + 1, 10, &[(ts, Val::I(*t)), (host, Val::S(hs)), (fp, Val::S(fs)), (pid, Val::I(*n))]);
        }
        // The group aggregates, as ingest maintains them.
        let mut fps: Vec<String> = rows.iter().map(|r| r.2.to_string()).collect();
        fps.sort();
        fps.dedup();
        let blank = GroupRecord {
            count: 1,
            first_seen: 0,
            last_seen: 0,
            first_object: 0,
            last_object: 0,
            callstack: String::new(),
            classifiers: String::new(),
        };
        for f in &fps {
            p.groups.insert(f.clone(), blank.clone());
        }
        for (f, g) in p.recompute_groups(&fps) {
            if let Some(g) = g {
                p.groups.insert(f, g);
            }
        }
        p
    }

    fn q(v: Json) -> Query {
        Query::from_json(&v).unwrap()
    }

    fn sample() -> ProjectIndex {
        project(&[(100, "a", "f1", 1), (200, "b", "f1", 2), (300, "a", "f2", 3), (400, "c", "f1", 4)])
    }

    #[test]
    fn default_query_groups_by_fingerprint_by_count() {
        let out = run(&sample(), &q(json!({}))).unwrap();
        assert_eq!(out.json["rows"], json!([["f1", [], 3], ["f2", [], 1]]));
    }

    #[test]
    fn folds() {
        let out = run(&sample(), &q(json!({"fold": {"timestamp": [["range"], ["min"], ["bin", 3]], "hostname": [["histogram"], ["unique"], ["head"], ["tail"], ["distribution", 1]], "pid": [["sum"], ["mean"], ["count"]]}}))).unwrap();
        let f1 = &out.json["rows"][0];
        assert_eq!(f1[0], "f1");
        // Fold columns come in attribute name order, then in the order asked.
        assert_eq!(out.json["columns"][0], json!(["hostname", "histogram"]));
        let r = &f1[1];
        assert_eq!(r[0], json!([["a", 1], ["b", 1], ["c", 1]]));
        assert_eq!(r[1], json!(3));
        assert_eq!(r[2], json!("a"));
        assert_eq!(r[3], json!("c"));
        assert_eq!(r[4], json!({"keys": 3, "tail": 2, "vals": [["a", 1]]}));
        assert_eq!(r[5], json!(7.0));
        assert_eq!(r[6], json!(7.0 / 3.0));
        assert_eq!(r[7], json!(3));
        assert_eq!(r[8], json!([100, 400]));
        assert_eq!(r[9], json!(100));
        assert_eq!(r[10], json!([[100, 200, 1], [200, 300, 1], [300, 400, 1]]));
    }

    #[test]
    fn the_aggregates_answer_like_a_scan() {
        let p = sample();
        let fast = q(json!({"fold": {"timestamp": [["range"], ["min"], ["max"]]}}));
        assert!(groups_from_aggregates(&p, &fast, "fingerprint", &[]).is_some());
        // A filter that keeps everything forces the scan.
        let scan =
            q(json!({"fold": {"timestamp": [["range"], ["min"], ["max"]]}, "filter": [{"timestamp": [["is-set"]]}]}));
        let (mut a, mut b) = (run(&p, &fast).unwrap().json, run(&p, &scan).unwrap().json);
        a["time_us"] = json!(0);
        b["time_us"] = json!(0);
        assert_eq!(a, b);
        assert_eq!(a["rows"][0], json!(["f1", [[100, 400], 100, 400], 3]));
    }

    #[test]
    fn filters() {
        let p = sample();
        let cases: &[(Json, &[u64])] = &[
            (json!({"hostname": [["equal", "a"]]}), &[1, 3]),
            (json!({"hostname": [["not-equal", "a"]]}), &[2, 4]),
            (json!({"fingerprint": [["contains", "2"]]}), &[3]),
            (json!({"fingerprint": [["not-contains", "2"]]}), &[1, 2, 4]),
            (json!({"hostname": [["regular-expression", "^[ab]$"]]}), &[1, 2, 3]),
            (json!({"hostname": [["inverse-regular-expression", "^[ab]$"]]}), &[4]),
            (json!({"timestamp": [["at-least", "200."]]}), &[2, 3, 4]),
            (json!({"timestamp": [["greater-than", 200]]}), &[3, 4]),
            (json!({"timestamp": [["at-most", "200"]]}), &[1, 2]),
            (json!({"timestamp": [["less-than", 200], ["at-least", 100]]}), &[1]),
            (json!({"pid": [["is-set"]]}), &[1, 2, 3, 4]),
            (json!({"nothing": [["is-not-set"]]}), &[1, 2, 3, 4]),
            (json!({"nothing": [["equal", "x"]]}), &[]),
            (json!({"pid": [["equal", "3"]]}), &[3]),
            (json!({"pid": [["contains", "4"]]}), &[4]),
            (json!([{"hostname": [["equal", "a"]]}, {"pid": [["at-least", 2]]}]), &[3]),
        ];
        for (f, want) in cases {
            let ids = matching_ids(&p, &q(json!({"filter": f}))).unwrap();
            assert_eq!(&ids, want, "{f}");
        }
    }

    #[test]
    fn select_order_limit_offset() {
        let p = sample();
        let out = run(&p, &q(json!({"select": ["hostname", "timestamp", "object"], "order": [{"name": "timestamp", "ordering": "ascending"}], "limit": 2, "offset": 1}))).unwrap();
        assert_eq!(out.json["rows"], json!([["2", ["b", 200, "2"]], ["3", ["a", 300, "3"]]]));
        assert_eq!(out.json["total"], json!(4));
        assert_eq!(
            out.json["columns"],
            json!([["hostname", "string"], ["timestamp", "timestamp"], ["object", "object"]])
        );
    }

    #[test]
    fn group_by_other_attributes_and_order_by_fold() {
        let p = sample();
        let out = run(&p, &q(json!({"group": ["hostname"], "fold": {"timestamp": [["max"]]}, "order": [{"name": "timestamp;max", "ordering": "descending"}]}))).unwrap();
        let factors: Vec<&Json> = out.json["rows"].as_array().unwrap().iter().map(|r| &r[0]).collect();
        assert_eq!(factors, vec!["c", "a", "b"]);
        let out =
            run(&p, &q(json!({"group": ["pid"], "order": [{"name": ";group", "ordering": "ascending"}]}))).unwrap();
        assert_eq!(out.json["rows"][0][0], json!(1));
    }

    #[test]
    fn bad_queries_say_why() {
        for (v, want) in [
            (json!({"filter": [{"a": [["like", "x"]]}]}), "unknown filter operator"),
            (json!({"fold": {"a": [["median"]]}}), "unknown fold"),
            (json!({"limit": -1}), "limit"),
            (json!({"wat": 1}), "unknown query field"),
            (json!({"filter": [{"a": [["regular-expression", "("]]}]}), "bad regular expression"),
            (json!([]), "JSON object"),
        ] {
            let e = Query::from_json(&v).unwrap_err().to_string();
            assert!(e.contains(want), "{v}: {e}");
        }
        let e = run(&sample(), &q(json!({"filter": [{"timestamp": [["at-least", "yesterday"]]}]})))
            .unwrap_err()
            .to_string();
        assert!(e.contains("not a number"), "{e}");
    }
}
