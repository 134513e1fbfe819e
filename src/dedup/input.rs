//! Reading callstacks to fingerprint: JSON lines (`{"frames": [...], "classifiers":
//! [...], "label": ...}`), pretty-printed or full `bt ptrace --json` snapshots, and
//! binary snapshot files.

use crate::snapshot::{Frame, Snapshot, Trust};
use serde_json::Value;

/// One callstack to fingerprint.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Record {
    /// 1-based line of the input where the object starts.
    pub line: usize,
    pub frames: Vec<Frame>,
    pub classifiers: Vec<String>,
    /// The true bug, for `eval`.
    pub label: Option<String>,
}

/// A bad input object, naming its line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{source_name}:{line}: {message}")]
pub struct InputError {
    pub source_name: String,
    pub line: usize,
    pub message: String,
}

fn str_field(v: &Value, keys: &[&str]) -> Option<String> {
    keys.iter().find_map(|k| v.get(*k).and_then(Value::as_str)).filter(|s| !s.is_empty()).map(str::to_string)
}

/// Accepts numbers and "0x…" strings.
fn u64_field(v: &Value, keys: &[&str]) -> Option<u64> {
    keys.iter().find_map(|k| match v.get(*k)? {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => {
            let s = s.trim();
            match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
                Some(h) => u64::from_str_radix(h, 16).ok(),
                None => s.parse().ok(),
            }
        }
        _ => None,
    })
}

/// One frame object: the loose input form (`function`, `module`, `file`, `line`,
/// `address`) or a snapshot frame (`pc`, `module_offset`, `inlined`, `trust`, ...).
fn frame_from(v: &Value) -> Result<Frame, String> {
    if let Some(name) = v.as_str() {
        // A bare string is a function name.
        return Ok(Frame { function: Some(name.to_string()).filter(|s| !s.is_empty()), ..Default::default() });
    }
    if !v.is_object() {
        return Err(format!("a frame must be an object or a string, got {v}"));
    }
    let trust = match v.get("trust").and_then(Value::as_str) {
        Some("cfi") => Trust::Cfi,
        Some("frame_pointer") | Some("fp") => Trust::FramePointer,
        Some("scan") => Trust::Scan,
        _ => Trust::Context,
    };
    Ok(Frame {
        pc: u64_field(v, &["pc", "address"]).unwrap_or(0),
        module: str_field(v, &["module", "library"]),
        module_offset: u64_field(v, &["module_offset", "offset"]).unwrap_or(0),
        function: str_field(v, &["function", "funcName"]),
        file: str_field(v, &["file", "source"]),
        line: u64_field(v, &["line"]).and_then(|l| u32::try_from(l).ok()),
        inlined: v.get("inlined").and_then(Value::as_bool).unwrap_or(false),
        trust,
        ..Default::default()
    })
}

fn strings(v: Option<&Value>) -> Vec<String> {
    v.and_then(Value::as_array)
        .map(|a| a.iter().filter_map(|c| c.as_str().map(str::to_string)).collect())
        .unwrap_or_default()
}

/// Turns one JSON object into a record: a frames object or a whole snapshot.
pub fn record_from(v: &Value, line: usize) -> Result<Record, String> {
    if !v.is_object() {
        return Err("expected a JSON object".to_string());
    }
    let label = match v.get("label") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(other) => Some(other.to_string()),
    };
    let classifiers = strings(v.get("classifiers"));
    let frames_v = if let Some(f) = v.get("frames") {
        f
    } else if let Some(threads) = v.get("threads").and_then(Value::as_array) {
        // A snapshot: the faulting thread, or the first one.
        let t = threads.iter().find(|t| t.get("faulted").and_then(Value::as_bool) == Some(true)).or(threads.first());
        match t.and_then(|t| t.get("frames")) {
            Some(f) => f,
            None => return Ok(Record { line, frames: Vec::new(), classifiers, label }),
        }
    } else {
        return Err("no \"frames\" array (and not a snapshot with \"threads\")".to_string());
    };
    let arr = frames_v.as_array().ok_or("\"frames\" must be an array")?;
    let frames = arr
        .iter()
        .enumerate()
        .map(|(i, f)| frame_from(f).map_err(|e| format!("frame {i}: {e}")))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Record { line, frames, classifiers, label })
}

/// A record from a decoded binary snapshot.
pub fn record_from_snapshot(s: &Snapshot) -> Record {
    let frames = s.faulting_thread().or(s.threads.first()).map(|t| t.frames.clone()).unwrap_or_default();
    Record { line: 1, frames, classifiers: s.classifiers.clone(), label: None }
}

/// Reads every JSON object of `bytes`: one per line, or spread over lines (pretty
/// JSON). A malformed object becomes an error naming its line, and reading goes on
/// at the next line. Invalid UTF-8 is replaced (U+FFFD), never fatal.
pub fn read_records(bytes: &[u8], source_name: &str) -> Vec<Result<Record, InputError>> {
    let text = String::from_utf8_lossy(bytes);
    let line_starts: Vec<usize> = std::iter::once(0).chain(text.match_indices('\n').map(|(i, _)| i + 1)).collect();
    let line_of = |offset: usize| line_starts.partition_point(|&s| s <= offset);
    let err = |line: usize, message: String| InputError { source_name: source_name.to_string(), line, message };
    let mut out = Vec::new();
    let mut pos = 0usize;
    while pos < text.len() {
        let rest = &text[pos..];
        let skipped = rest.len() - rest.trim_start().len();
        let start = pos + skipped;
        if start >= text.len() {
            break;
        }
        let mut stream = serde_json::Deserializer::from_str(&text[start..]).into_iter::<Value>();
        match stream.next() {
            None => break,
            Some(Ok(v)) => {
                let line = line_of(start);
                out.push(record_from(&v, line).map_err(|m| err(line, m)));
                pos = start + stream.byte_offset();
            }
            Some(Err(e)) => {
                let line = line_of(start);
                let message =
                    if e.is_eof() { format!("truncated JSON object: {e}") } else { format!("invalid JSON: {e}") };
                out.push(Err(err(line, message)));
                // Resynchronize: at the line where the error was found when that is a
                // later line (it may start the next object), else at the next line.
                let bad_line = line + e.line().saturating_sub(1);
                let resume = if bad_line > line { bad_line - 1 } else { line };
                pos = line_starts.get(resume).copied().unwrap_or(text.len()).max(start + 1);
                while pos < text.len() && !text.is_char_boundary(pos) {
                    pos += 1;
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_pretty_and_errors() {
        let input = b"{\"frames\":[{\"function\":\"a\"},\"b\"],\"label\":\"x\"}\n{not json}\n{\n  \"frames\": [\n    {\"function\": \"c\", \"address\": \"0x10\", \"line\": 7}\n  ]\n}\n{\"frames\": 3}\n{\"nothing\": 1}\n";
        let recs = read_records(input, "in");
        assert_eq!(recs.len(), 5, "{recs:#?}");
        let r0 = recs[0].as_ref().unwrap();
        assert_eq!(r0.frames.len(), 2);
        assert_eq!(r0.label.as_deref(), Some("x"));
        assert_eq!(recs[1].as_ref().unwrap_err().line, 2);
        let r2 = recs[2].as_ref().unwrap();
        assert_eq!((r2.line, r2.frames[0].pc, r2.frames[0].line), (3, 0x10, Some(7)));
        assert_eq!(recs[3].as_ref().unwrap_err().line, 8);
        assert!(recs[4].as_ref().unwrap_err().to_string().starts_with("in:9: no \"frames\""));
    }

    #[test]
    fn snapshot_json_takes_the_faulting_thread() {
        let input = br#"{"threads":[{"tid":1,"faulted":false,"frames":[{"function":"idle"}]},{"tid":2,"faulted":true,"frames":[{"function":"crash","module":"/bin/x","module_offset":4660}]}],"classifiers":["null-dereference"]}"#;
        let recs = read_records(input, "in");
        let r = recs[0].as_ref().unwrap();
        assert_eq!(r.frames[0].function.as_deref(), Some("crash"));
        assert_eq!(r.frames[0].module_offset, 4660);
        assert_eq!(r.classifiers, vec!["null-dereference".to_string()]);
    }

    #[test]
    fn invalid_utf8_is_replaced() {
        let input = b"{\"frames\":[{\"function\":\"bad\xff\xfename\"}]}\n";
        let recs = read_records(input, "in");
        assert!(recs[0].as_ref().unwrap().frames[0].function.as_deref().unwrap().contains('\u{fffd}'));
    }

    #[test]
    fn truncated_last_object() {
        let recs = read_records(b"{\"frames\":[]}\n{\"frames\":[", "in");
        assert_eq!(recs.len(), 2);
        assert_eq!(recs[1].as_ref().unwrap_err().line, 2);
    }
}
