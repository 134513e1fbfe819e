//! Folds and grouping: per-group accumulators, group rows from the stored aggregates or
//! a scan, and plain selection.

use super::filter::{Clock, IntHasher, IntMap, filtered_rows};
use super::*;

fn cell_json(p: &ProjectIndex, attr: &Attr, row: usize) -> Json {
    match &attr.column {
        Column::Str(c) => match c.get(row) {
            0 => Json::Null,
            s => Json::String(p.strings.text(s - 1).to_string()),
        },
        Column::Int(c) => match c.get(row) {
            UNSET_INT => Json::Null,
            v => json!(v),
        },
    }
}

/// A cell as a hashable key: the column's code for strings (one per distinct string),
/// the bits for integers; None = unset.
#[inline]
fn cell_key(attr: &Attr, row: usize) -> Option<u64> {
    match &attr.column {
        Column::Str(c) => Some(c.code(row) as u64).filter(|&k| k != 0),
        Column::Int(c) => Some(c.get(row)).filter(|&v| v != UNSET_INT).map(|v| v as u64),
    }
}

/// The string a column code stands for.
fn code_text<'p>(p: &'p ProjectIndex, c: &StrColumn, code: u64) -> &'p str {
    c.sid1_of(code as u32).checked_sub(1).map_or("", |sid| p.strings.text(sid))
}

fn key_json(p: &ProjectIndex, attr: &Attr, key: u64) -> Json {
    match &attr.column {
        Column::Str(c) => sid_json(p, c.sid1_of(key as u32)),
        Column::Int(_) => json!(key as i64),
    }
}

/// A dictionary id + 1 as its string (null when unset).
fn sid_json(p: &ProjectIndex, sid1: u32) -> Json {
    sid1.checked_sub(1).and_then(|sid| p.strings.get(sid)).map_or(Json::Null, |s| Json::String(s.to_string()))
}

fn cmp_keys(p: &ProjectIndex, attr: &Attr, a: u64, b: u64) -> std::cmp::Ordering {
    match &attr.column {
        Column::Str(c) => code_text(p, c, a).cmp(code_text(p, c, b)),
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

pub(super) struct Fold<'a> {
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
            FoldOp::Bin(_) | FoldOp::BinRange(..) => Acc::Bin(Vec::new()),
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
                    Column::Str(c) => code_text(p, c, key).trim().parse::<f64>().ok(),
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

    /// The number (or small value) a group is ordered by, without building a large
    /// result (a histogram's or bins' arrays).
    fn order_key(&self, p: &ProjectIndex, acc: &Acc, bins: Option<(i64, i64)>) -> (Json, Option<f64>) {
        match acc {
            Acc::Hist(h) if self.attr.is_some() => (Json::Null, Some(h.len() as f64)),
            Acc::Bin(v) if self.attr.is_some() => (Json::Null, Some(v.len() as f64)),
            _ => self.result(p, acc, bins),
        }
    }

    /// The fold's value, and a number to order by.
    fn result(&self, p: &ProjectIndex, acc: &Acc, bins: Option<(i64, i64)>) -> (Json, Option<f64>) {
        let Some(attr) = self.attr else {
            return match self.op {
                FoldOp::Count | FoldOp::Unique => (json!(0), Some(0.0)),
                FoldOp::Histogram | FoldOp::Bin(_) | FoldOp::BinRange(..) => (json!([]), None),
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
                let (n, bins) = match self.op {
                    FoldOp::Bin(n) => (n, bins),
                    FoldOp::BinRange(n, lo, hi) => (n, Some((lo, hi))),
                    _ => return (Json::Null, None),
                };
                let Some((lo, hi)) = bins else { return (json!([]), None) };
                let width = ((hi - lo) as f64 / n as f64).max(1.0);
                let mut counts = vec![0u64; n];
                for &v in vals {
                    if v < lo || v > hi {
                        continue;
                    }
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

/// The groups of a scan: their accumulators, turned into results only for the
/// folds an ordering needs and for the rows of the page asked for (a `bin` fold's
/// result is large; computing it for 10,000 groups to return 20 of them is what
/// a hostile query exploits).
pub(super) struct Scanned {
    factors: Vec<Json>,
    counts: Vec<u64>,
    accs: Vec<Vec<Acc>>,
    bin_range: Vec<Option<(i64, i64)>>,
    n_objects: usize,
}

/// Answers from the per-group aggregates maintained on ingest, without a scan,
/// when the query asks only what they hold: grouped by fingerprint, no filter,
/// folds among range/min/max of `timestamp`.
pub(super) fn groups_from_aggregates(
    p: &ProjectIndex,
    q: &Query,
    group: &str,
    folds: &[Fold],
) -> Option<(Vec<GroupRow>, usize)> {
    let fits = group == "fingerprint"
        && q.filter.is_empty()
        && !p.triage.values().any(|r| r.merged_into.is_some())
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
fn groups_by_scan(p: &ProjectIndex, q: &Query, group: &str, folds: &[Fold]) -> Result<Scanned, StoreError> {
    // Grouped by `fingerprint`, a merged group's objects count in its target's group;
    // `fingerprint;original` groups by the objects' own fingerprints.
    let (group, remap) = match group {
        "fingerprint" => ("fingerprint", p.merge_remap()),
        "fingerprint;original" => ("fingerprint", None),
        g => (g, None),
    };
    let gattr = if group == "*" { None } else { p.attr(group) };
    // Group slots: dense over the column's codes for string factors (each code's slot
    // found once, by its remapped string id), hashed otherwise.
    let mut dense: Vec<u32> = match gattr.map(|a| &a.column) {
        Some(Column::Str(c)) => vec![u32::MAX; c.code_bound(p.strings.len())],
        _ => Vec::new(),
    };
    let mut hashed: IntMap<u32> = IntMap::default();
    let mut keys: Vec<Option<u64>> = Vec::new();
    let mut counts: Vec<u64> = Vec::new();
    let mut accs: Vec<Vec<Acc>> = Vec::new();
    let mut n_objects = 0usize;
    let mut bin_range: Vec<Option<(i64, i64)>> = vec![None; folds.len()];
    let has_bins = folds.iter().any(|f| matches!(f.op, FoldOp::Bin(_)));
    let clock = Clock::start();
    let cells_budget = MAX_FOLD_CELLS / folds.len().max(1);
    for row in filtered_rows(p, q, &clock)? {
        n_objects += 1;
        let slot = match gattr.map(|a| &a.column) {
            Some(Column::Str(c)) => {
                let code = c.code(row);
                match dense[code as usize] {
                    u32::MAX => {
                        let sid1 = c.sid1_of(code);
                        let cell = match &remap {
                            Some(r) => r.get(sid1 as usize).copied().unwrap_or(0),
                            None => sid1,
                        };
                        let next = keys.len() as u32;
                        let s = *hashed.entry(cell as u64).or_insert(next);
                        if s == next {
                            if keys.len() >= cells_budget {
                                return Err(too_many_groups(folds.len()));
                            }
                            keys.push((cell != 0).then_some(cell as u64));
                            counts.push(0);
                            accs.push(folds.iter().map(Fold::new_acc).collect());
                        }
                        dense[code as usize] = s;
                        s as usize
                    }
                    s => s as usize,
                }
            }
            _ => {
                let key = gattr.and_then(|a| cell_key(a, row));
                let k = key.map(|k| k.wrapping_add(1)).unwrap_or(0);
                let next = keys.len() as u32;
                let s = *hashed.entry(k).or_insert(next);
                if s == next {
                    if keys.len() >= cells_budget {
                        return Err(too_many_groups(folds.len()));
                    }
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
    clock.check()?;
    let factors = keys
        .iter()
        .map(|key| match (gattr, key) {
            // String groups are keyed by (remapped) dictionary id + 1, not by code.
            (Some(a), Some(k)) if matches!(a.column, Column::Str(_)) => sid_json(p, *k as u32),
            (Some(a), Some(k)) => key_json(p, a, *k),
            (None, _) if group == "*" => json!("*"),
            _ => Json::Null,
        })
        .collect();
    Ok(Scanned { factors, counts, accs, bin_range, n_objects })
}

fn too_many_groups(n_folds: usize) -> StoreError {
    bad(format!(
        "query would accumulate more than {MAX_FOLD_CELLS} group × fold cells ({n_folds} folds): filter first, or group by an attribute with fewer values"
    ))
}

fn run_grouped(p: &ProjectIndex, q: &Query, group: &str) -> Result<Output, StoreError> {
    let folds: Vec<Fold> = q.fold.iter().map(|(a, op)| Fold { attr: p.attr(a), name: a.clone(), op: *op }).collect();
    let columns: Vec<Json> = folds.iter().map(|f| json!([f.name, f.op.name()])).collect();
    // Ordering: by count (default, descending), by the factor, or by a fold.
    let order =
        if q.order.is_empty() { vec![OrderBy { name: ";count".into(), descending: true }] } else { q.order.clone() };
    enum Key {
        Count,
        Group,
        Fold(usize),
    }
    let mut keys_of: Vec<Key> = Vec::new();
    for o in &order {
        let name = o.name.as_str();
        if name == ";count" || name == "count" {
            keys_of.push(Key::Count);
        } else if name == ";group" || name == group {
            keys_of.push(Key::Group);
        } else if let Some(i) = folds.iter().position(|f| format!("{};{}", f.name, f.op.name()) == name) {
            keys_of.push(Key::Fold(i));
        } else {
            return Err(bad(format!(
                "cannot order by {name:?}: use ;count, ;group or ATTRIBUTE;FOLD of a requested fold"
            )));
        }
    }
    let ordered_folds: HashSet<usize> =
        keys_of.iter().filter_map(|k| if let Key::Fold(i) = k { Some(*i) } else { None }).collect();
    // Rows: factor, the results known so far (all from the aggregates; only the
    // ordering folds from a scan), count, and the scan slot.
    let (mut rows, n_objects, scanned): (Vec<(GroupRow, usize)>, usize, Option<Scanned>) =
        match groups_from_aggregates(p, q, group, &folds) {
            Some((rows, n)) => (rows.into_iter().enumerate().map(|(i, r)| (r, i)).collect(), n, None),
            None => {
                let mut sc = groups_by_scan(p, q, group, &folds)?;
                let factors = std::mem::take(&mut sc.factors);
                let rows = factors
                    .into_iter()
                    .enumerate()
                    .map(|(slot, factor)| {
                        let results = folds
                            .iter()
                            .enumerate()
                            .map(|(i, f)| {
                                if ordered_folds.contains(&i) {
                                    f.order_key(p, &sc.accs[slot][i], sc.bin_range[i])
                                } else {
                                    (Json::Null, None)
                                }
                            })
                            .collect();
                        ((factor, results, sc.counts[slot]), slot)
                    })
                    .collect();
                (rows, sc.n_objects, Some(sc))
            }
        };
    let key = |k: &Key, r: &GroupRow| -> Json {
        match k {
            Key::Count => json!(r.2),
            Key::Group => r.0.clone(),
            Key::Fold(i) => match &r.1[*i] {
                (_, Some(n)) => json!(n),
                (v, None) => v.clone(),
            },
        }
    };
    rows.sort_by(|(a, _), (b, _)| {
        for (k, o) in keys_of.iter().zip(&order) {
            let c = cmp_json(&key(k, a), &key(k, b));
            let c = if o.descending { c.reverse() } else { c };
            if c.is_ne() {
                return c;
            }
        }
        cmp_json(&a.0, &b.0)
    });
    let total = rows.len();
    let page = total.saturating_sub(q.offset).min(q.limit);
    let weight: usize = folds
        .iter()
        .map(|f| match f.op {
            FoldOp::Bin(n) | FoldOp::BinRange(n, ..) | FoldOp::Distribution(n) => n,
            _ => 1,
        })
        .sum();
    if page.saturating_mul(weight) > MAX_PAGE_VALUES {
        return Err(bad(format!(
            "a page of {page} groups with these folds would hold more than {MAX_PAGE_VALUES} values: lower the limit"
        )));
    }
    let json_rows: Vec<Json> = rows
        .into_iter()
        .skip(q.offset)
        .take(q.limit)
        .map(|((factor, mut results, count), slot)| {
            if let Some(sc) = &scanned {
                for (i, f) in folds.iter().enumerate() {
                    results[i] = f.result(p, &sc.accs[slot][i], sc.bin_range[i]);
                }
            }
            json!([factor, results.into_iter().map(|r| r.0).collect::<Vec<_>>(), count])
        })
        .collect();
    Ok(Output {
        json: json!({"group": group, "columns": columns, "rows": json_rows, "total": total, "objects": n_objects}),
        groups: total,
        objects: n_objects,
    })
}

fn run_select(p: &ProjectIndex, q: &Query) -> Result<Output, StoreError> {
    let attrs: Vec<(String, Option<&Attr>)> = q.select.iter().map(|a| (a.clone(), p.attr(a))).collect();
    let clock = Clock::start();
    let mut rows: Vec<usize> = filtered_rows(p, q, &clock)?.collect();
    clock.check()?;
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
                None => p.ids.get(a).cmp(&p.ids.get(b)),
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
        p.ids.get(a).cmp(&p.ids.get(b))
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
                    ("object" | "_rxid", _) => json!(format_object_id(p.ids.get(r))),
                    (_, Some(a)) => cell_json(p, a, r),
                    (_, None) => Json::Null,
                })
                .collect();
            json!([format_object_id(p.ids.get(r)), vals])
        })
        .collect();
    Ok(Output {
        json: json!({"columns": columns, "rows": json_rows, "total": n_objects, "objects": n_objects}),
        groups: 0,
        objects: n_objects,
    })
}
