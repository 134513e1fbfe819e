//! The variables tree of a frame, as hydra's Variables pane and the web console's
//! debugger show it: a frame's variables expanded through their structured
//! values, and past the depth the tracer rendered by evaluating the node's
//! expression again from the snapshot's types and kept memory
//! ([`crate::snapshot::print::evaluate`]). Bytes the snapshot does not hold end a
//! branch with `<not captured>`, never with invented values.

use crate::snapshot::print::{self, PrintError};
use crate::snapshot::values::VariableOptions;
use crate::snapshot::{Snapshot, Value};
use std::collections::{HashMap, HashSet};

/// Children listed under one node at most (arrays longer than this say so).
const MAX_CHILDREN: usize = 1000;

/// One visible row of the tree.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    /// The expression of the node (`list->next->value`), relative to its frame.
    pub path: String,
    pub depth: usize,
    pub name: String,
    pub type_name: String,
    /// The value as one line.
    pub text: String,
    /// True when the node has (or may have, for a pointer not yet followed) children.
    pub expandable: bool,
    pub expanded: bool,
    /// The address the node's value points to or holds (pointers, strings).
    pub points_to: Option<u64>,
    /// Where the node lives in memory, when known.
    pub address: Option<u64>,
}

/// Expansion state and the values evaluated past the captured depth, per frame.
#[derive(Default)]
pub struct Tree {
    /// (thread index, frame index, path) of expanded nodes.
    expanded: HashSet<(usize, usize, String)>,
    /// Values of `path[0]` evaluated on demand, per (thread, frame, path).
    deeper: HashMap<(usize, usize, String), Result<Value, String>>,
}

impl Tree {
    pub fn is_expanded(&self, t: usize, f: usize, path: &str) -> bool {
        self.expanded.contains(&(t, f, path.to_string()))
    }

    pub fn set_expanded(&mut self, t: usize, f: usize, path: &str, on: bool) {
        let key = (t, f, path.to_string());
        if on {
            self.expanded.insert(key);
        } else {
            self.expanded.remove(&key);
        }
    }

    /// The visible rows of frame `f` of thread `t`.
    pub fn rows(&mut self, snap: &Snapshot, t: usize, f: usize) -> Vec<Row> {
        let mut out = Vec::new();
        let Some(frame) = snap.threads.get(t).and_then(|th| th.frames.get(f)) else { return out };
        for v in &frame.variables {
            let expanded = self.is_expanded(t, f, &v.name);
            let (expandable, points_to) = shape(&v.value);
            out.push(Row {
                path: v.name.clone(),
                depth: 0,
                name: v.name.clone(),
                type_name: v.type_name.clone(),
                text: one_line(&v.text),
                expandable,
                expanded: expanded && expandable,
                points_to,
                address: v.address,
            });
            if expanded && expandable {
                self.children(snap, t, f, &v.name, &v.value, v.address, 1, &mut out);
            }
        }
        out
    }

    #[allow(clippy::too_many_arguments)]
    fn children(
        &mut self,
        snap: &Snapshot,
        t: usize,
        f: usize,
        path: &str,
        value: &Value,
        address: Option<u64>,
        depth: usize,
        out: &mut Vec<Row>,
    ) {
        if depth > 64 {
            return;
        }
        for (name, child_path, child, child_addr) in self.kids(snap, t, f, path, value, address) {
            let expanded = self.is_expanded(t, f, &child_path);
            let (expandable, points_to) = shape(&child);
            out.push(Row {
                path: child_path.clone(),
                depth,
                name,
                type_name: String::new(),
                text: summary(&child),
                expandable,
                expanded: expanded && expandable,
                points_to,
                address: child_addr,
            });
            if expanded && expandable {
                self.children(snap, t, f, &child_path, &child, child_addr, depth + 1, out);
            }
        }
    }

    /// The children of a node: (name, path, value, address).
    fn kids(
        &mut self,
        snap: &Snapshot,
        t: usize,
        f: usize,
        path: &str,
        value: &Value,
        _address: Option<u64>,
    ) -> Vec<(String, String, Value, Option<u64>)> {
        match value {
            Value::Struct(fields) => fields_of(fields, path, "."),
            Value::Array { length, items } => {
                let mut v: Vec<_> = items
                    .iter()
                    .take(MAX_CHILDREN)
                    .enumerate()
                    .map(|(i, item)| (format!("[{i}]"), format!("{path}[{i}]"), item.clone(), None))
                    .collect();
                if (*length as usize) > v.len() {
                    let more = format!("… {} more not shown", *length as usize - v.len());
                    v.push((more, format!("{path}[…]"), Value::Unavailable("not rendered".into()), None));
                }
                v
            }
            Value::Pointer { address, target: Some(target), .. } => match target.as_ref() {
                Value::Struct(fields) => fields_of(fields, path, "->"),
                other => vec![(format!("*{}", leaf_name(path)), format!("{path}[0]"), other.clone(), Some(*address))],
            },
            Value::Pointer { address, target: None, .. } if *address != 0 => {
                let key = (t, f, path.to_string());
                let deeper = self.deeper.entry(key).or_insert_with(|| deref(snap, t, f, path)).clone();
                match deeper {
                    Ok(Value::Struct(fields)) => fields_of(&fields, &format!("{path}[0]"), "."),
                    Ok(v) => vec![(format!("*{}", leaf_name(path)), format!("{path}[0]"), v, Some(*address))],
                    Err(why) => {
                        vec![(format!("*{}", leaf_name(path)), format!("{path}[0]"), Value::Unavailable(why), None)]
                    }
                }
            }
            _ => Vec::new(),
        }
    }
}

/// `*path`, evaluated from the snapshot (one level further than the tracer rendered).
fn deref(snap: &Snapshot, t: usize, f: usize, path: &str) -> Result<Value, String> {
    let Some(thread) = snap.threads.get(t) else { return Err("no such thread".into()) };
    let opts = VariableOptions { max_depth: 1, keep_depth: 1, ..VariableOptions::default() };
    match print::evaluate(snap, &format!("thread {} frame {f} {path}[0]", thread.tid), &opts) {
        Ok(e) => Ok(e.value),
        Err(PrintError::Unreadable(a)) => Err(format!("not captured (0x{a:x} is not in the snapshot)")),
        Err(e) => Err(e.to_string()),
    }
}

fn fields_of(fields: &[crate::snapshot::Field], path: &str, sep: &str) -> Vec<(String, String, Value, Option<u64>)> {
    fields
        .iter()
        .take(MAX_CHILDREN)
        .map(|fl| {
            // Base classes (`<Base>`, names with spaces) add no step: member lookup
            // finds their members through the derived object.
            let ident = !fl.name.is_empty() && fl.name.chars().all(|c| c.is_alphanumeric() || c == '_');
            let p = if ident { format!("{path}{sep}{}", fl.name) } else { path.to_string() };
            (fl.name.clone(), p, fl.value.clone(), None)
        })
        .collect()
}

fn leaf_name(path: &str) -> &str {
    let cut = path.rfind(['.', '>', ']']).map(|i| i + 1).unwrap_or(0);
    let leaf = &path[cut..];
    if leaf.is_empty() { path } else { leaf }
}

/// Whether a value has children, and the address it points to.
fn shape(v: &Value) -> (bool, Option<u64>) {
    match v {
        Value::Struct(fields) => (!fields.is_empty(), None),
        Value::Array { items, .. } => (!items.is_empty(), None),
        Value::Pointer { address, .. } => (*address != 0, Some(*address)),
        Value::Str { address, .. } => (false, Some(*address)),
        _ => (false, None),
    }
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// One line for a structured value, as gdb abbreviates nested ones.
pub fn summary(v: &Value) -> String {
    match v {
        Value::OptimizedOut => "<optimized out>".into(),
        Value::Unreadable { address } => format!("<not captured: 0x{address:x}>"),
        Value::Unavailable(why) => format!("<{why}>"),
        Value::Int(i) => i.to_string(),
        Value::UInt(u) => u.to_string(),
        Value::Float(x) => x.to_string(),
        Value::Bool(b) => b.to_string(),
        Value::Char(c) => match char::from_u32(*c) {
            Some(ch) if !ch.is_control() => format!("{c} '{ch}'"),
            _ => format!("{c}"),
        },
        Value::Enum { value, name } => name.clone().unwrap_or_else(|| value.to_string()),
        Value::Pointer { address, symbol, target } => {
            let mut s = format!("0x{address:x}");
            if let Some(sym) = symbol {
                s.push_str(&format!(" <{sym}>"));
            }
            if let Some(Value::Str { text, .. }) = target.as_deref() {
                s.push_str(&format!(" {text:?}"));
            }
            s
        }
        Value::Str { address, text, truncated } => {
            format!("0x{address:x} {text:?}{}", if *truncated { "..." } else { "" })
        }
        Value::Struct(fields) => {
            let mut s = String::from("{");
            for (i, fl) in fields.iter().enumerate() {
                if s.len() > 60 {
                    s.push_str(", …");
                    break;
                }
                if i > 0 {
                    s.push_str(", ");
                }
                s.push_str(&format!("{} = {}", fl.name, summary(&fl.value)));
            }
            s.push('}');
            s
        }
        Value::Array { length, .. } => format!("[{length} elements]"),
        Value::Bytes(b) => b.iter().map(|x| format!("{x:02x}")).collect::<Vec<_>>().join(" "),
    }
}

/// What [`walk`] calls for each node: (ancestors' paths, name, path, value).
pub type Visit<'a> = dyn FnMut(&[String], &str, &str, &Value) + 'a;

/// Every (path chain, value) of a variable's structured value, depth first, for
/// search and alias lookup; `visit` gets the ancestors' paths and the node.
pub fn walk(name: &str, v: &Value, chain: &mut Vec<String>, visit: &mut Visit) {
    visit(chain, name, name, v);
    walk_kids(name, v, chain, visit, 0);
}

fn walk_kids(path: &str, v: &Value, chain: &mut Vec<String>, visit: &mut Visit, d: u32) {
    if d > 16 {
        return;
    }
    let kids: Vec<(String, String, Value, Option<u64>)> = match v {
        Value::Struct(fields) => fields_of(fields, path, "."),
        Value::Array { items, .. } => items
            .iter()
            .take(MAX_CHILDREN)
            .enumerate()
            .map(|(i, it)| (format!("[{i}]"), format!("{path}[{i}]"), it.clone(), None))
            .collect(),
        Value::Pointer { target: Some(t), .. } => match t.as_ref() {
            Value::Struct(fields) => fields_of(fields, path, "->"),
            other => vec![(format!("*{}", leaf_name(path)), format!("{path}[0]"), other.clone(), None)],
        },
        _ => return,
    };
    chain.push(path.to_string());
    for (name, p, child, _) in &kids {
        visit(chain, name, p, child);
        walk_kids(p, child, chain, visit, d + 1);
    }
    chain.pop();
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::snapshot::Field;

    #[test]
    fn walk_gives_paths_and_ancestors() {
        let v = Value::Pointer {
            address: 0x10,
            symbol: None,
            target: Some(Box::new(Value::Struct(vec![
                Field { name: "a".into(), value: Value::Int(1) },
                Field { name: "next".into(), value: Value::Pointer { address: 0x20, symbol: None, target: None } },
            ]))),
        };
        let mut seen = Vec::new();
        walk("p", &v, &mut Vec::new(), &mut |chain, _, path, _| seen.push((chain.to_vec(), path.to_string())));
        assert_eq!(
            seen,
            vec![
                (vec![], "p".to_string()),
                (vec!["p".to_string()], "p->a".to_string()),
                (vec!["p".to_string()], "p->next".to_string()),
            ]
        );
        assert_eq!(leaf_name("p->next"), "next");
        assert_eq!(leaf_name("a.b[3]"), "a.b[3]");
    }
}
