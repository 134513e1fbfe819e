//! Filters: per-row predicates over the columnar index, string predicates memoised per
//! dictionary string.

use super::*;

/// A fast hasher for integer keys (dictionary ids, integers): multiply-xorshift.
#[derive(Default)]
pub(super) struct IntHasher(u64);

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

pub(super) type IntMap<V> = HashMap<u64, V, BuildHasherDefault<IntHasher>>;

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

/// A predicate's answer for a dictionary cell, computed once per cell (0 = not
/// yet, 1 = false, 2 = true).
#[inline]
fn memoised(memo: &mut [u8], cell: usize, test: impl FnOnce() -> bool) -> bool {
    match memo[cell] {
        1 => false,
        2 => true,
        _ => {
            let r = test();
            memo[cell] = if r { 2 } else { 1 };
            r
        }
    }
}

enum Pred<'a> {
    Const(bool),
    /// Memo over the column's codes: 0 = not evaluated yet, 1 = false, 2 = true.
    Str {
        cells: &'a StrColumn,
        memo: Vec<u8>,
        op: Op,
        value: String,
        re: Option<fancy_regex::Regex>,
    },
    Int {
        cells: &'a IntColumn,
        op: Op,
        value: i64,
    },
    /// String operators on an integer column test the decimal text.
    IntText {
        cells: &'a IntColumn,
        op: Op,
        value: String,
        re: Option<fancy_regex::Regex>,
    },
    Object {
        op: Op,
        value: u64,
        text: String,
    },
    /// A string column seen through a remap of its dictionary ids (merged groups).
    Remapped {
        cells: &'a StrColumn,
        remap: Vec<u32>,
        memo: Vec<u8>,
        op: Op,
        value: String,
        re: Option<fancy_regex::Regex>,
    },
    /// A triage attribute of the object's group (`fingerprint;issues;state`): the
    /// fingerprint column, memoised per fingerprint string.
    Triage {
        cells: &'a StrColumn,
        memo: Vec<u8>,
        field: String,
        op: Op,
        value: String,
        re: Option<fancy_regex::Regex>,
    },
}

impl<'a> Pred<'a> {
    fn compile(p: &'a ProjectIndex, c: &Condition) -> Result<Pred<'a>, StoreError> {
        let re = match c.op {
            Op::Regex | Op::InverseRegex => Some(compile_regex(&c.value)?),
            _ => None,
        };
        if c.attr == "object" || c.attr == "_rxid" {
            let value = crate::store::parse_object_id(&c.value).unwrap_or(u64::MAX);
            return Ok(Pred::Object { op: c.op, value, text: c.value.clone() });
        }
        if let Some(field) = crate::store::triage::triage_field(&c.attr) {
            if crate::store::triage::attribute(None, field).is_none() {
                return Err(bad(format!(
                    "unknown triage attribute {:?}: state, assignee, tags, ticket, regressed",
                    c.attr
                )));
            }
            let Some(Column::Str(cells)) = p.attr("fingerprint").map(|a| &a.column) else {
                return Ok(Pred::Const(c.op.on_unset()));
            };
            let memo = vec![0; cells.code_bound(p.strings.len())];
            return Ok(Pred::Triage { cells, memo, field: field.to_string(), op: c.op, value: c.value.clone(), re });
        }
        // `fingerprint` names the group that answers for an object (a merged group's
        // target); `fingerprint;original` the object's own.
        let (name, remap) = match c.attr.as_str() {
            "fingerprint;original" => ("fingerprint", None),
            "fingerprint" => ("fingerprint", p.merge_remap()),
            other => (other, None),
        };
        let Some(attr) = p.attr(name) else { return Ok(Pred::Const(c.op.on_unset())) };
        if let (Some(remap), Column::Str(cells)) = (remap, &attr.column) {
            return Ok(Pred::Remapped {
                cells,
                remap,
                memo: vec![0; p.strings.len() + 1],
                op: c.op,
                value: c.value.clone(),
                re,
            });
        }
        Ok(match &attr.column {
            Column::Str(cells) => Pred::Str {
                cells,
                memo: vec![0; cells.code_bound(p.strings.len())],
                op: c.op,
                value: c.value.clone(),
                re,
            },
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
                let code = cells.code(row);
                memoised(memo, code as usize, || match cells.sid1_of(code) {
                    0 => op.on_unset(),
                    sid1 => str_test(*op, p.strings.text(sid1 - 1), value, re.as_ref()),
                })
            }
            Pred::Int { cells, op, value } => {
                let v = cells.get(row);
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
                let v = cells.get(row);
                if v == UNSET_INT { op.on_unset() } else { str_test(*op, &v.to_string(), value, re.as_ref()) }
            }
            Pred::Remapped { cells, remap, memo, op, value, re } => {
                let cell = remap.get(cells.get(row) as usize).copied().unwrap_or(0) as usize;
                memoised(memo, cell, || {
                    if cell == 0 {
                        op.on_unset()
                    } else {
                        str_test(*op, p.strings.text(cell as u32 - 1), value, re.as_ref())
                    }
                })
            }
            Pred::Triage { cells, memo, field, op, value, re } => {
                let code = cells.code(row);
                memoised(memo, code as usize, || {
                    let sid1 = cells.sid1_of(code);
                    if sid1 == 0 {
                        return op.on_unset();
                    }
                    let mut fp = p.strings.text(sid1 - 1);
                    // A merged group's triage is its target's.
                    if let Some(t) = p.triage.get(fp).and_then(|r| r.merged_into.as_ref()) {
                        fp = t.as_str();
                    }
                    let text = crate::store::triage::attribute(p.triage.get(fp), field).unwrap_or_default();
                    str_test(*op, &text, value, re.as_ref())
                })
            }
            Pred::Object { op, value, text } => {
                let id = p.ids.get(row);
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

/// The clock of one query: rows stop coming once [`MAX_QUERY_TIME`] has passed,
/// and [`Clock::check`] then turns that into an error.
pub(super) struct Clock {
    deadline: Instant,
    expired: std::cell::Cell<bool>,
}

impl Clock {
    pub(super) fn start() -> Clock {
        Clock { deadline: Instant::now() + MAX_QUERY_TIME, expired: std::cell::Cell::new(false) }
    }

    /// Whether the query may go on (looked at every 1024 rows).
    #[inline]
    fn going(&self, row: usize) -> bool {
        if row % 1024 == 0 && Instant::now() > self.deadline {
            self.expired.set(true);
        }
        !self.expired.get()
    }

    pub(super) fn check(&self) -> Result<(), StoreError> {
        if self.expired.get() {
            return Err(bad(format!(
                "query ran longer than its budget of {} s: narrow the filter or simplify the expressions",
                MAX_QUERY_TIME.as_secs()
            )));
        }
        Ok(())
    }
}

pub(super) fn filtered_rows<'a>(
    p: &'a ProjectIndex,
    q: &Query,
    clock: &'a Clock,
) -> Result<impl Iterator<Item = usize> + 'a, StoreError> {
    let mut preds: Vec<Pred<'a>> = q.filter.iter().map(|c| Pred::compile(p, c)).collect::<Result<_, _>>()?;
    Ok((0..p.ids.len())
        .take_while(move |&row| clock.going(row))
        .filter(move |&row| p.alive[row] && preds.iter_mut().all(|pr| pr.test(p, row))))
}

/// The ids of the live objects the query's filter selects (for deletion).
pub fn matching_ids(p: &ProjectIndex, q: &Query) -> Result<Vec<u64>, StoreError> {
    let clock = Clock::start();
    let ids = filtered_rows(p, q, &clock)?.map(|r| p.ids.get(r)).collect();
    clock.check()?;
    Ok(ids)
}

/// The fingerprints (groups) of the live objects the query's filter selects, in
/// order of first appearance (for `set` on the issues table).
pub fn matching_fingerprints(p: &ProjectIndex, q: &Query) -> Result<Vec<String>, StoreError> {
    let clock = Clock::start();
    let mut seen = std::collections::HashSet::new();
    let mut out = Vec::new();
    if let Some(a) = p.attr("fingerprint") {
        for r in filtered_rows(p, q, &clock)? {
            if let Some(fp) = p.str_cell(a, r)
                && seen.insert(fp)
            {
                out.push(fp.to_string());
            }
        }
    }
    clock.check()?;
    Ok(out)
}
