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
