//! The query API as coronerd speaks it to morgue, beside bt's own: a request that
//! names a `universe` (morgue always does) or carries morgue's fields
//! (`virtual_columns`, `table`) is answered in coronerd's shape, and
//! `action=describe` lists the attributes as morgue's `describe` reads them.
//!
//! Shapes, from what morgue reads (lib/crdb.ts `Response`, bin/morgue.ts):
//! - grouped: `{"response": {"columns": [["op(attr)", type], …], "values":
//!   [[factor, [result per column], count], …]}, "_": {…}}`; `head`, `unique`,
//!   `min`, `max`, `sum` results are one-element arrays, `range` is `[lo, hi]`,
//!   `bin` is `[[lo, hi, count], …]`;
//! - selected objects: `objects: [["*", [[id], …]]]` and per column one
//!   run-length encoded list `["*", [value, run], …]` in object order;
//! - `_`: `user`, `universe`, `project`, `latency`, and `runtime` (filter rows and
//!   times) which `morgue list --verbose` prints.

use serde_json::{Value as Json, json};

/// Whether a query request comes from morgue (or another coronerd client).
pub fn is_coronerd(universe_param: bool, body: &Json) -> bool {
    universe_param || body.get("virtual_columns").is_some() || body.get("table").is_some()
}

/// Drops the fields morgue sends that bt's engine does not take; refuses the ones
/// whose meaning bt cannot honour (non-empty virtual columns, another table).
pub fn strip(body: &mut Json) -> Result<(), String> {
    let Json::Object(o) = body else { return Ok(()) };
    if let Some(v) = o.remove("virtual_columns")
        && v.as_array().is_some_and(|a| !a.is_empty())
    {
        return Err("virtual columns are not supported by bt".into());
    }
    if let Some(t) = o.remove("table")
        && t.as_str().is_some_and(|t| t != "objects")
    {
        return Err(format!("table {t} is not supported by bt (only objects)"));
    }
    for k in ["universe", "project", "token"] {
        o.remove(k);
    }
    Ok(())
}

/// What a query with `set` changes: attributes of the objects the filter selects,
/// or the triage fields of their groups (`table: "issues"`).
#[derive(Debug, PartialEq)]
pub enum SetRequest {
    Objects(Vec<(String, String)>),
    Issues(Vec<(String, String)>),
}

/// The triage fields `set` may change on the issues table.
pub const ISSUE_FIELDS: [&str; 4] = ["state", "assignee", "tags", "ticket"];

/// Takes `set` and `table` out of a morgue query (the rest is its filter). On the
/// issues table a filter on an issue field (`tags`, `state`, …) means the group's
/// (`fingerprint;issues;tags`).
pub fn take_set(body: &mut Json) -> Result<Option<SetRequest>, String> {
    let Json::Object(o) = body else { return Ok(None) };
    let Some(set) = o.remove("set") else { return Ok(None) };
    let table = o.remove("table");
    let table = table.as_ref().and_then(Json::as_str).unwrap_or("objects");
    let Json::Object(set) = set else { return Err("set must be an object of attribute: value".into()) };
    let mut values = Vec::with_capacity(set.len());
    for (k, v) in set {
        let v = match v {
            Json::String(s) => s,
            Json::Number(n) => n.to_string(),
            Json::Bool(b) => b.to_string(),
            _ => return Err(format!("set {k}: the value must be a string or a number")),
        };
        values.push((k, v));
    }
    for k in ["select", "fold", "group", "order"] {
        o.remove(k);
    }
    match table {
        "objects" => Ok(Some(SetRequest::Objects(values))),
        "issues" => {
            if let Some(k) = values.iter().map(|(k, _)| k).find(|k| !ISSUE_FIELDS.contains(&k.as_str())) {
                return Err(format!("issues have the fields {}; {k} is not one", ISSUE_FIELDS.join(", ")));
            }
            if let Some(Json::Array(filters)) = o.get_mut("filter") {
                for f in filters.iter_mut() {
                    if let Json::Object(f) = f {
                        for field in ISSUE_FIELDS {
                            if let Some(c) = f.remove(field) {
                                f.insert(format!("fingerprint;issues;{field}"), c);
                            }
                        }
                    }
                }
            }
            Ok(Some(SetRequest::Issues(values)))
        }
        t => Err(format!("table {t} is not supported by bt (objects or issues)")),
    }
}

/// The type coronerd names for an attribute of bt's type.
fn format_of(ty: &str) -> &'static str {
    match ty {
        "integer" => "integer",
        "timestamp" => "timestamp",
        _ => "string",
    }
}

/// bt's answer (`columns` of `[attr, op]` or `[attr, type]`, `rows`) in coronerd's
/// shape; `types` gives each attribute's type.
pub fn answer(ours: &Json, types: &dyn Fn(&str) -> String, meta: Json) -> Json {
    let cols = ours["columns"].as_array().cloned().unwrap_or_default();
    let rows = ours["rows"].as_array().cloned().unwrap_or_default();
    let grouped = ours.get("group").is_some();
    let response = if grouped {
        let columns: Vec<Json> = cols
            .iter()
            .map(|c| {
                let (attr, op) = (c[0].as_str().unwrap_or(""), c[1].as_str().unwrap_or(""));
                json!([format!("{op}({attr})"), format_of(&types(attr))])
            })
            .collect();
        let values: Vec<Json> = rows
            .iter()
            .map(|r| {
                let results: Vec<Json> = cols
                    .iter()
                    .enumerate()
                    .map(|(i, c)| {
                        let v = r[1][i].clone();
                        match c[1].as_str().unwrap_or("") {
                            "range" | "bin" | "histogram" | "distribution" => v,
                            _ => json!([v]),
                        }
                    })
                    .collect();
                json!([r[0], results, r[2]])
            })
            .collect();
        json!({"columns": columns, "values": values})
    } else {
        let columns: Vec<Json> = cols.iter().map(|c| json!([c[0], format_of(c[1].as_str().unwrap_or(""))])).collect();
        let ids: Vec<Json> =
            rows.iter().map(|r| json!([u64::from_str_radix(r[0].as_str().unwrap_or("0"), 16).unwrap_or(0)])).collect();
        let mut values = Vec::new();
        for i in 0..cols.len() {
            let mut col = vec![json!("*")];
            for r in &rows {
                col.push(json!([r[1][i], 1]));
            }
            values.push(Json::Array(col));
        }
        json!({"columns": columns, "objects": [["*", ids]], "values": values})
    };
    json!({"response": response, "_": meta})
}

/// `action=describe`: every attribute as morgue's `describe` lists it.
pub fn describe(attrs: &[(String, String, u64)]) -> Json {
    const BUILTIN: &[&str] =
        &["timestamp", "received", "fingerprint", "callstack", "classifiers", "hostname", "application"];
    json!({"describe": attrs.iter().map(|(name, ty, _)| json!({
        "name": name,
        "description": "",
        "format": format_of(ty),
        "type": format_of(ty),
        "custom": !(BUILTIN.contains(&name.as_str()) || name.starts_with("uname.") || name.starts_with("fingerprint;")),
        "state": "enabled",
    })).collect::<Vec<_>>()})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_on_issues_renames_issue_filters() {
        let mut b = json!({"filter": [{"tags": [["not-contains", "x"]], "fingerprint": [["regular-expression", "^a$"]]}],
            "set": {"tags": "x"}, "table": "issues", "select": ["tags"]});
        let s = take_set(&mut b).unwrap();
        assert_eq!(s, Some(SetRequest::Issues(vec![("tags".into(), "x".into())])));
        assert!(b["filter"][0].get("fingerprint;issues;tags").is_some());
        assert!(b["filter"][0].get("tags").is_none());
        assert!(b.get("select").is_none() && b.get("table").is_none());
        let mut b = json!({"set": {"owner": 3}, "filter": [{"owner": [["equal", "x"]]}]});
        assert_eq!(take_set(&mut b).unwrap(), Some(SetRequest::Objects(vec![("owner".into(), "3".into())])));
        assert!(b["filter"][0].get("owner").is_some());
        assert!(take_set(&mut json!({"set": {"colour": "x"}, "table": "issues"})).is_err());
        assert!(take_set(&mut json!({"set": {"a": [1]}})).is_err());
        assert!(take_set(&mut json!({"set": {"a": "b"}, "table": "users"})).is_err());
        assert_eq!(take_set(&mut json!({"filter": []})).unwrap(), None);
    }
}
