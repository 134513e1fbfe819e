//! Turning a submission (a bt snapshot or a Backtrace-style JSON report, plus
//! attributes and attachments) into a [`Prepared`] object: validated, fingerprinted,
//! compressed. Runs on the request's thread; nothing here touches the database.

use std::collections::BTreeMap;

use serde_json::Value as Json;

use crate::dedup::RuleSet;
use crate::snapshot::{Frame, Snapshot};

use super::StoreError;
use super::schema::BlobKind;

/// Longest attribute value accepted from a client, in bytes.
pub const MAX_ATTR_VALUE: usize = 8 * 1024;
/// Longest attribute name.
pub const MAX_ATTR_NAME: usize = 128;
/// Most attributes one object may carry.
pub const MAX_ATTRS: usize = 512;
/// Most frames kept in the `callstack` attribute.
const CALLSTACK_FRAMES: usize = 32;

/// The attribute that records what ingest changed in a report to store it.
pub const WARNINGS: &str = "bt.warnings";

/// Attributes the store computes; a client may not set them.
pub const RESERVED: &[&str] = &["fingerprint", "callstack", "received", "object", "_rxid", "classifiers"];

/// The submission formats the store understands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Snapshot,
    Json,
}

impl Format {
    pub fn parse(s: &str) -> Option<Format> {
        match s {
            "snapshot" | "bt" => Some(Format::Snapshot),
            "json" => Some(Format::Json),
            _ => None,
        }
    }
}

/// What a client sends.
#[derive(Debug, Clone)]
pub struct Submission {
    pub project: String,
    pub format: Format,
    pub body: Vec<u8>,
    /// Extra attributes (query parameters, form fields); they override the report's.
    pub attributes: Vec<(String, String)>,
    /// (name, bytes) of each `attachment_<name>` part.
    pub attachments: Vec<(String, Vec<u8>)>,
}

/// A typed attribute value before it meets the dictionary.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Text(String),
    Int(i64),
}

/// A validated submission, ready for the writer.
#[derive(Debug)]
pub struct Prepared {
    pub project: String,
    /// (name, value); builtin attributes included. Names are unique.
    pub values: Vec<(String, Value)>,
    pub fingerprint: String,
    pub callstack: String,
    pub classifiers: String,
    pub timestamp: i64,
    /// Kind byte followed by the payload (or, with an external blob store, the
    /// catalog's reference to where it was stored).
    pub blob: Vec<u8>,
    /// The payload's length (without the kind byte).
    pub blob_len: u64,
    /// (name, zstd bytes).
    pub attachments: Vec<(String, Vec<u8>)>,
    /// What was renamed, truncated or dropped to store the crash (also `bt.warnings`).
    pub warnings: Vec<String>,
}

fn bad(msg: impl Into<String>) -> StoreError {
    StoreError::BadInput(msg.into())
}

/// Attribute names are plain: letters, digits, `.`, `_`, `-`, at most 128 bytes.
pub fn valid_attr_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_ATTR_NAME
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// Attachment names: as attribute names, not starting with a dot.
pub fn valid_attachment_name(name: &str) -> bool {
    valid_attr_name(name) && !name.starts_with('.')
}

/// The one place that computes a fingerprint: the dedup rules over the crash
/// site's frames. Returns (fingerprint, pretty callstack).
pub fn fingerprint(rules: &RuleSet, frames: &[Frame], classifiers: &[String]) -> (String, Vec<String>) {
    let sig = rules.evaluate(frames, classifiers);
    (sig.fingerprint, sig.pretty)
}

/// Validates and prepares one submission. `received` is the server's clock.
pub fn prepare(
    sub: Submission,
    rules: &RuleSet,
    received: i64,
    limits: &crate::snapshot::DecodeLimits,
) -> Result<Prepared, StoreError> {
    let mut attrs: BTreeMap<String, String> = BTreeMap::new();
    let mut timestamp = None;
    let (frames, classifiers, blob) = match sub.format {
        Format::Snapshot => {
            let snap = Snapshot::decode_with(&sub.body, limits).map_err(|e| bad(format!("invalid snapshot: {e}")))?;
            let thread = snap.faulting_thread().or(snap.threads.first());
            let frames = thread.map(|t| t.frames.clone()).unwrap_or_default();
            if !snap.environment.hostname.is_empty() {
                attrs.insert("hostname".into(), snap.environment.hostname.clone());
            }
            let u = &snap.environment.uname;
            for (k, v) in [
                ("uname.sysname", &u.sysname),
                ("uname.release", &u.release),
                ("uname.version", &u.version),
                ("uname.machine", &u.machine),
            ] {
                if !v.is_empty() {
                    attrs.insert(k.into(), v.clone());
                }
            }
            let app = std::path::Path::new(&snap.process.exe)
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_else(|| snap.process.comm.clone());
            if !app.is_empty() {
                attrs.insert("application".into(), app);
            }
            if let Some(sig) = &snap.signal {
                attrs.insert("signal".into(), sig.name.clone());
            }
            if snap.process.pid != 0 {
                attrs.insert("pid".into(), snap.process.pid.to_string());
            }
            if !snap.uuid.is_empty() {
                attrs.insert("uuid".into(), snap.uuid.clone());
            }
            for a in &snap.attributes {
                attrs.insert(a.key.clone(), a.value.clone());
            }
            if snap.timestamp > 0 {
                timestamp = i64::try_from(snap.timestamp).ok();
            }
            let mut blob = Vec::with_capacity(sub.body.len() + 1);
            blob.push(BlobKind::Snapshot as u8);
            blob.extend_from_slice(&sub.body);
            (frames, snap.classifiers.clone(), blob)
        }
        Format::Json => {
            let report = parse_json_report(&sub.body)?;
            timestamp = Some(report.timestamp);
            attrs.extend(report.attributes);
            let payload =
                zstd::bulk::compress(&sub.body, 3).map_err(|e| StoreError::Io(format!("compressing report: {e}")))?;
            let mut blob = Vec::with_capacity(payload.len() + 1);
            blob.push(BlobKind::JsonZstd as u8);
            blob.extend_from_slice(&payload);
            (report.frames, report.classifiers, blob)
        }
    };
    for (k, v) in sub.attributes {
        attrs.insert(k, v);
    }
    // Never lose a crash for an attribute: what cannot be stored as sent is renamed,
    // truncated or dropped, and the object says so (`bt.warnings`, and the reply).
    let mut warnings = Vec::new();
    if let Some(ts) = attrs.remove("timestamp") {
        match parse_int(&ts) {
            Some(t) => timestamp = Some(t),
            None => warnings.push(format!("attribute timestamp {:?} is not a number of seconds: dropped", clip(&ts))),
        }
    }
    let timestamp = timestamp.unwrap_or(received);
    let mut kept: BTreeMap<String, String> = BTreeMap::new();
    let mut dropped = 0usize;
    for (k, mut v) in attrs {
        let mut name = if RESERVED.contains(&k.as_str()) {
            let renamed = format!("client.{k}");
            warnings.push(format!("attribute {k} is computed by the store: kept as {renamed}"));
            renamed
        } else {
            k.clone()
        };
        if !valid_attr_name(&name) {
            let mut fixed: String = name
                .chars()
                .map(|c| if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') { c } else { '_' })
                .collect();
            fixed.truncate(MAX_ATTR_NAME);
            if fixed.trim_matches('_').is_empty() {
                warnings.push(format!("attribute {:?} has no usable name: dropped", clip(&k)));
                continue;
            }
            warnings.push(format!("attribute {:?} renamed to {fixed}", clip(&k)));
            name = fixed;
        }
        if kept.contains_key(&name) {
            warnings.push(format!("attribute {:?} clashes with {name} after renaming: dropped", clip(&k)));
            continue;
        }
        if v.len() > MAX_ATTR_VALUE {
            let mut end = MAX_ATTR_VALUE;
            while !v.is_char_boundary(end) {
                end -= 1;
            }
            warnings.push(format!("attribute {name} is {} bytes long: truncated to {end}", v.len()));
            v.truncate(end);
        }
        if kept.len() >= MAX_ATTRS {
            dropped += 1;
            continue;
        }
        kept.insert(name, v);
    }
    if dropped > 0 {
        warnings.push(format!("{dropped} attributes beyond the first {MAX_ATTRS}: dropped"));
    }
    let attrs = kept;
    let (fingerprint, pretty) = fingerprint(rules, &frames, &classifiers);
    let callstack = pretty.iter().take(CALLSTACK_FRAMES).cloned().collect::<Vec<_>>().join("\n");
    let mut classifiers = classifiers;
    classifiers.sort();
    classifiers.dedup();
    let classifiers = classifiers.join(" ");

    let mut attachments: Vec<(String, Vec<u8>)> = Vec::with_capacity(sub.attachments.len());
    for (name, bytes) in sub.attachments {
        let name = if valid_attachment_name(&name) {
            name
        } else {
            let fixed: String = name
                .chars()
                .map(|c| if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') { c } else { '_' })
                .collect::<String>()
                .trim_start_matches('.')
                .chars()
                .take(MAX_ATTR_NAME)
                .collect();
            if fixed.is_empty() || attachments.iter().any(|(n, _)| *n == fixed) {
                warnings.push(format!(
                    "attachment {:?} has no usable name: kept as attachment-{}",
                    clip(&name),
                    attachments.len()
                ));
                format!("attachment-{}", attachments.len())
            } else {
                warnings.push(format!("attachment {:?} renamed to {fixed}", clip(&name)));
                fixed
            }
        };
        let z = zstd::bulk::compress(&bytes, 3).map_err(|e| StoreError::Io(format!("compressing attachment: {e}")))?;
        attachments.push((name, z));
    }

    let mut values: Vec<(String, Value)> = Vec::with_capacity(attrs.len() + 6);
    values.push(("timestamp".into(), Value::Int(timestamp)));
    values.push(("received".into(), Value::Int(received)));
    values.push(("fingerprint".into(), Value::Text(fingerprint.clone())));
    values.push(("callstack".into(), Value::Text(callstack.clone())));
    if !classifiers.is_empty() {
        values.push(("classifiers".into(), Value::Text(classifiers.clone())));
    }
    for (k, v) in attrs {
        values.push((k, Value::Text(v)));
    }
    if !warnings.is_empty() {
        let mut text = warnings.join("; ");
        let mut end = text.len().min(MAX_ATTR_VALUE);
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
        values.retain(|(k, _)| k != WARNINGS);
        values.push((WARNINGS.into(), Value::Text(text)));
    }
    Ok(Prepared {
        project: sub.project,
        values,
        fingerprint,
        callstack,
        classifiers,
        timestamp,
        blob_len: blob.len() as u64 - 1,
        blob,
        attachments,
        warnings,
    })
}

/// An integer as a client writes it: `42`, `-7`, `1700000000.` (morgue's timestamps).
pub fn parse_int(s: &str) -> Option<i64> {
    let s = s.trim();
    let s = s.strip_suffix('.').unwrap_or(s);
    s.parse::<i64>().ok()
}

fn clip(s: &str) -> String {
    let mut end = s.len().min(40);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    if end < s.len() { format!("{}…", &s[..end]) } else { s.to_string() }
}

pub(super) struct JsonReport {
    pub timestamp: i64,
    pub attributes: BTreeMap<String, String>,
    pub frames: Vec<Frame>,
    pub classifiers: Vec<String>,
}

fn scalar(v: &Json) -> Option<String> {
    match v {
        Json::String(s) => Some(s.clone()),
        Json::Number(n) => Some(n.to_string()),
        Json::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// Reads the fields of a Backtrace-style JSON crash report that the store indexes.
pub(super) fn parse_json_report(body: &[u8]) -> Result<JsonReport, StoreError> {
    let v: Json = serde_json::from_slice(body).map_err(|e| bad(format!("malformed JSON report: {e}")))?;
    let Json::Object(obj) = &v else { return Err(bad("a JSON report must be an object")) };
    let timestamp = match obj.get("timestamp") {
        Some(Json::Number(n)) => {
            n.as_i64().or_else(|| n.as_f64().map(|f| f as i64)).ok_or_else(|| bad("timestamp out of range"))?
        }
        Some(_) => return Err(bad("timestamp must be a number of seconds")),
        None => return Err(bad("missing field timestamp")),
    };
    let Some(Json::Object(threads)) = obj.get("threads") else {
        return Err(bad("missing field threads (an object of thread id → thread)"));
    };
    let mut attributes = BTreeMap::new();
    if let Some(a) = obj.get("attributes") {
        let Json::Object(a) = a else { return Err(bad("attributes must be an object")) };
        for (k, v) in a {
            if v.is_null() {
                continue;
            }
            let s = scalar(v).ok_or_else(|| bad(format!("attribute {:?} is not a scalar", clip(k))))?;
            attributes.insert(k.clone(), s);
        }
    }
    for (field, attr) in [
        ("uuid", "uuid"),
        ("lang", "lang"),
        ("langVersion", "lang.version"),
        ("agent", "agent"),
        ("agentVersion", "agent.version"),
    ] {
        if let Some(s) = obj.get(field).and_then(scalar) {
            attributes.entry(attr.to_string()).or_insert(s);
        }
    }
    let classifiers = match obj.get("classifiers") {
        None | Some(Json::Null) => Vec::new(),
        Some(Json::Array(a)) => a
            .iter()
            .map(|c| c.as_str().map(str::to_string).ok_or_else(|| bad("classifiers must be strings")))
            .collect::<Result<_, _>>()?,
        Some(_) => return Err(bad("classifiers must be an array of strings")),
    };
    let main = obj.get("mainThread").and_then(scalar);
    let faulting =
        threads.iter().find(|(_, t)| t.get("fault").and_then(Json::as_bool) == Some(true)).map(|(k, _)| k.clone());
    let key = faulting.or(main).or_else(|| threads.keys().next().cloned());
    let mut frames = Vec::new();
    if let Some(t) = key.as_ref().and_then(|k| threads.get(k)) {
        let Some(t) = t.as_object() else { return Err(bad("a thread must be an object")) };
        match t.get("stack") {
            None | Some(Json::Null) => {}
            Some(Json::Array(stack)) => {
                for f in stack {
                    let Some(f) = f.as_object() else { return Err(bad("a stack frame must be an object")) };
                    let pc = match f.get("address") {
                        Some(Json::String(s)) => u64::from_str_radix(s.trim_start_matches("0x"), 16).unwrap_or(0),
                        Some(Json::Number(n)) => n.as_u64().unwrap_or(0),
                        _ => 0,
                    };
                    frames.push(Frame {
                        pc,
                        function: f.get("funcName").and_then(Json::as_str).map(str::to_string),
                        module: f.get("library").and_then(Json::as_str).map(str::to_string),
                        file: f.get("sourceFile").or(f.get("path")).and_then(Json::as_str).map(str::to_string),
                        line: f.get("line").and_then(scalar).and_then(|l| l.parse().ok()),
                        ..Default::default()
                    });
                }
            }
            Some(_) => return Err(bad("a thread's stack must be an array")),
        }
    }
    Ok(JsonReport { timestamp, attributes, frames, classifiers })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sub(format: Format, body: &[u8]) -> Submission {
        Submission { project: "p".into(), format, body: body.to_vec(), attributes: vec![], attachments: vec![] }
    }

    #[test]
    fn json_reports_are_read() {
        let body = br#"{"uuid":"u1","timestamp":1700000000,"lang":"c","agent":"x","attributes":{"hostname":"h1","version":3},
            "classifiers":["null-dereference"],"mainThread":"1",
            "threads":{"1":{"name":"main","fault":true,"stack":[{"funcName":"crash","library":"a.out","line":"5"},{"funcName":"main"}]}}}"#;
        let p = prepare(sub(Format::Json, body), &RuleSet::default_rules(), 5, &Default::default()).unwrap();
        assert_eq!(p.timestamp, 1_700_000_000);
        assert_eq!(p.fingerprint.len(), 32);
        assert!(p.callstack.contains("crash"), "{}", p.callstack);
        assert_eq!(p.classifiers, "null-dereference");
        assert!(p.values.contains(&("hostname".into(), Value::Text("h1".into()))));
        assert!(p.values.contains(&("version".into(), Value::Text("3".into()))));
    }

    #[test]
    fn bad_inputs_are_refused_with_a_reason() {
        let rules = RuleSet::default_rules();
        let cases: &[(Format, &[u8], &str)] = &[
            (Format::Json, b"{not json", "malformed JSON"),
            (Format::Json, b"[1,2]", "must be an object"),
            (Format::Json, br#"{"timestamp":1}"#, "missing field threads"),
            (Format::Json, br#"{"timestamp":"x","threads":{}}"#, "timestamp must be"),
            (Format::Json, br#"{"timestamp":1,"threads":{},"attributes":{"a":{"b":1}}}"#, "not a scalar"),
            (Format::Snapshot, b"BTSNAP", "invalid snapshot"),
            (Format::Snapshot, b"{}", "invalid snapshot"),
        ];
        for (fmt, body, want) in cases {
            let e = prepare(sub(*fmt, body), &rules, 1, &Default::default()).unwrap_err().to_string();
            assert!(e.contains(want), "{:?}: {e}", String::from_utf8_lossy(body));
        }
    }

    #[test]
    fn odd_attributes_are_salvaged_and_said() {
        let rules = RuleSet::default_rules();
        let body = br#"{"timestamp":1,"threads":{}}"#;
        for (k, v, want, stored) in [
            ("big", "x".repeat(MAX_ATTR_VALUE + 1), "bytes long: truncated", Some(("big", MAX_ATTR_VALUE))),
            ("../etc", "x".to_string(), "renamed to .._etc", Some((".._etc", 1))),
            ("build id", "x".to_string(), "renamed to build_id", Some(("build_id", 1))),
            ("fingerprint", "x".to_string(), "kept as client.fingerprint", Some(("client.fingerprint", 1))),
            ("timestamp", "soon".to_string(), "not a number of seconds: dropped", None),
            ("::", "x".to_string(), "no usable name: dropped", None),
        ] {
            let mut s = sub(Format::Json, body);
            s.attributes.push((k.to_string(), v));
            let p = prepare(s, &rules, 1, &Default::default()).unwrap_or_else(|e| panic!("{k}: {e}"));
            assert!(p.warnings.iter().any(|w| w.contains(want)), "{k}: {:?}", p.warnings);
            let w = p.values.iter().find(|(n, _)| n == WARNINGS).expect("bt.warnings");
            assert!(matches!(&w.1, Value::Text(t) if t.contains(want)), "{k}");
            if let Some((name, len)) = stored {
                let v = p.values.iter().find(|(n, _)| n == name).unwrap_or_else(|| panic!("{k}: {name} not stored"));
                assert!(matches!(&v.1, Value::Text(t) if t.len() == len), "{k}");
            }
        }
        let mut s = sub(Format::Json, body);
        s.attributes.push(("fine".into(), "1".into()));
        assert!(prepare(s, &rules, 1, &Default::default()).unwrap().warnings.is_empty());
    }

    #[test]
    fn ints_parse_like_morgue_writes_them() {
        assert_eq!(parse_int("1700000000."), Some(1_700_000_000));
        assert_eq!(parse_int("-3"), Some(-3));
        assert_eq!(parse_int("1.5"), None);
    }
}
