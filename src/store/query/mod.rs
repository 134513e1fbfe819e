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

use super::index::{Attr, Column, IntColumn, ProjectIndex, StrColumn, UNSET_INT};
use super::ingest::parse_int;
use super::schema::AttrType;
use super::{StoreError, format_object_id};

/// Rows returned when the query names no limit.
pub const DEFAULT_LIMIT: usize = 100;
/// Largest limit accepted.
pub const MAX_LIMIT: usize = 100_000;
/// Longest a query may run before it is refused (it holds no lock meanwhile:
/// it works on a shared copy of the project's index).
pub const MAX_QUERY_TIME: std::time::Duration = std::time::Duration::from_secs(5);
/// Steps fancy-regex may backtrack per tested value (its default is 1,000,000:
/// `(a*)*\1b` over a 4 KB value then costs ~26 ms; here well under 1 ms). A value
/// that exceeds it does not match.
pub const REGEX_BACKTRACK_LIMIT: usize = 20_000;
/// Longest regular expression accepted.
pub const MAX_REGEX_LEN: usize = 1024;
/// Most filter conditions and folds in one query.
pub const MAX_TERMS: usize = 64;
/// Groups × folds a grouped query may accumulate (each cell is a small accumulator).
pub const MAX_FOLD_CELLS: usize = 4_000_000;
/// Values one page of a grouped answer may hold (groups × bins, buckets …): 100
/// groups of 32-bucket sparklines are 3,200; each value is ~100 bytes of JSON.
pub const MAX_PAGE_VALUES: usize = 250_000;

/// Compiles a filter's regular expression under the query budget.
pub(crate) fn compile_regex(value: &str) -> Result<fancy_regex::Regex, StoreError> {
    if value.len() > MAX_REGEX_LEN {
        return Err(bad(format!("regular expression longer than {MAX_REGEX_LEN} bytes")));
    }
    fancy_regex::RegexBuilder::new(value)
        .backtrack_limit(REGEX_BACKTRACK_LIMIT)
        .build()
        .map_err(|e| bad(format!("bad regular expression: {e}")))
}

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
    /// `["bin", n, from, to]`: n buckets over a fixed range (values outside are not
    /// counted), so every group's buckets line up with a requested time window.
    BinRange(usize, i64, i64),
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
            "bin" if spec.len() >= 4 => {
                let edge = |i: usize| -> Result<i64, StoreError> {
                    spec.get(i)
                        .and_then(|v| v.as_i64().or_else(|| v.as_str().and_then(parse_int)))
                        .ok_or_else(|| bad("fold bin: from and to must be integers"))
                };
                let (lo, hi) = (edge(2)?, edge(3)?);
                if hi <= lo {
                    return Err(bad("fold bin: the range must end after it starts"));
                }
                FoldOp::BinRange(arg(32)?, lo, hi)
            }
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
            FoldOp::Bin(_) | FoldOp::BinRange(..) => "bin",
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
                        compile_regex(&value).map_err(|e| bad(format!("filter on {attr}: {e}")))?;
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
        if q.filter.len() > MAX_TERMS || q.fold.len() > MAX_TERMS || q.select.len() > MAX_TERMS {
            return Err(bad(format!(
                "a query has at most {MAX_TERMS} filter conditions, folds and selected attributes"
            )));
        }
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

mod filter;
mod fold;
#[cfg(test)]
mod tests;

pub use filter::{matching_fingerprints, matching_ids};
pub use fold::run;
