//! `print` over a saved snapshot: a variable of a frame (or a global) followed
//! through members, pointers and indexes (`list->next->value`, `sh.corners[1].y`,
//! `*p`), rendered by [`super::values`] from the snapshot's types and kept memory.

use super::values::{Data, Renderer, Table, TypeSource, VariableOptions};
use super::{Location, Regions, Snapshot, TypeId, TypeKind, Value, Variable};

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PrintError {
    #[error("bad expression {0:?}: expected [thread TID] [frame N] NAME followed by .member, ->member, [index]")]
    Syntax(String),
    #[error("no thread {0} in the snapshot")]
    NoThread(i32),
    #[error("no frame {0} in the thread")]
    NoFrame(usize),
    #[error("no variable {0:?} in the frame or among the globals")]
    NoVariable(String),
    #[error("{0} has no type in the snapshot (written before format version 3)")]
    NoType(String),
    #[error("{0} was not captured: {1}")]
    NoValue(String, String),
    #[error("{0} is not a struct, class or union")]
    NotAStruct(String),
    #[error("{0} has no member {1:?}")]
    NoMember(String, String),
    #[error("{0} is not a pointer or an array")]
    NotIndexable(String),
    #[error("{0}: index {1} is out of bounds")]
    OutOfBounds(String, u64),
    #[error("cannot access memory at address {0:#x} (not kept in the snapshot)")]
    Unreadable(u64),
}

/// One step of a path.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Step {
    Member(String),
    Arrow(String),
    Index(u64),
}

/// `[thread TID] [frame N] [*]NAME steps…` → (thread, frame, deref, name, steps).
#[allow(clippy::type_complexity)]
fn parse(expr: &str) -> Result<(Option<i32>, usize, bool, String, Vec<Step>), PrintError> {
    let bad = || PrintError::Syntax(expr.to_string());
    let mut words = expr.split_whitespace().peekable();
    let (mut thread, mut frame) = (None, 0usize);
    loop {
        match words.peek().copied() {
            Some("thread") => {
                words.next();
                thread = Some(words.next().and_then(|w| w.parse().ok()).ok_or_else(bad)?);
            }
            Some("frame") => {
                words.next();
                frame = words.next().and_then(|w| w.parse().ok()).ok_or_else(bad)?;
            }
            _ => break,
        }
    }
    let path: String = words.collect::<Vec<_>>().join("");
    let (deref, path) = match path.strip_prefix('*') {
        Some(p) => (true, p),
        None => (false, path.as_str()),
    };
    let ident = |s: &str| s.find(|c: char| !(c.is_alphanumeric() || c == '_' || c == ':')).unwrap_or(s.len());
    let n = ident(path);
    if n == 0 {
        return Err(bad());
    }
    let name = path[..n].to_string();
    let mut rest = &path[n..];
    let mut steps = Vec::new();
    while !rest.is_empty() {
        if let Some(r) = rest.strip_prefix("->").or_else(|| rest.strip_prefix('.')) {
            let arrow = rest.starts_with("->");
            let n = ident(r);
            if n == 0 {
                return Err(bad());
            }
            steps.push(if arrow { Step::Arrow(r[..n].to_string()) } else { Step::Member(r[..n].to_string()) });
            rest = &r[n..];
        } else if let Some(r) = rest.strip_prefix('[') {
            let (num, r) = r.split_once(']').ok_or_else(bad)?;
            steps.push(Step::Index(num.trim().parse().map_err(|_| bad())?));
            rest = r;
        } else {
            return Err(bad());
        }
    }
    Ok((thread, frame, deref, name, steps))
}

/// Evaluates `expr` against a saved snapshot; returns (type name, text). Frames are
/// numbered as the text output numbers them (inlined frames count); the thread is
/// the faulting (first) one unless `thread TID` says otherwise.
pub fn print(snap: &Snapshot, expr: &str, opts: &VariableOptions) -> Result<(String, String), PrintError> {
    evaluate(snap, expr, opts).map(|e| (e.type_name, e.text))
}

/// What [`evaluate`] found: the type name, the structured value (pointers followed
/// `opts.max_depth` levels) and gdb's text for it.
#[derive(Debug, Clone, PartialEq)]
pub struct Evaluated {
    pub type_name: String,
    pub value: Value,
    pub text: String,
}

/// [`print`] with the structured value too (the viewer expands a tree from it).
pub fn evaluate(snap: &Snapshot, expr: &str, opts: &VariableOptions) -> Result<Evaluated, PrintError> {
    let (tid, frame_idx, deref, name, steps) = parse(expr)?;
    let thread = match tid {
        Some(tid) => Some(snap.threads.iter().find(|t| t.tid == tid).ok_or(PrintError::NoThread(tid))?),
        None => snap.threads.first(),
    };
    let frame_vars: &[Variable] = match thread {
        Some(t) => &t.frames.get(frame_idx).ok_or(PrintError::NoFrame(frame_idx))?.variables,
        None => &[],
    };
    let var = frame_vars
        .iter()
        .chain(&snap.globals)
        .find(|v| v.name == name)
        .ok_or_else(|| PrintError::NoVariable(name.clone()))?;
    let mut types = Table::new(&snap.types);
    let ty = var.type_id.ok_or_else(|| PrintError::NoType(name.clone()))?;
    let lang = types.get(ty).map(|t| t.lang).unwrap_or_default();
    let memory = Regions::new(&snap.memory);
    let names: std::collections::HashMap<(u64, bool), &str> =
        snap.symbols.iter().map(|s| ((s.address, s.code), s.name.as_str())).collect();
    let symbol = |a: u64| names.get(&(a, true)).map(|n| n.to_string());
    let data_symbol = |a: u64| names.get(&(a, false)).map(|n| n.to_string());
    let mut r = Renderer {
        types: &mut types,
        lang,
        memory: &memory,
        opts,
        symbol: &symbol,
        data_symbol: &data_symbol,
        budget: super::values::FRAME_READ_BUDGET,
        nesting: 0,
        nodes: super::values::MAX_NODES_PER_VALUE,
        follow: usize::MAX,
        follow_from: None,
    };
    let mut data = match &var.location {
        Location::Memory(a) => r.read_value(Some(ty), *a).map_err(PrintError::Unreadable)?,
        Location::Bytes { bytes, valid } => {
            let mut valid = valid.clone();
            valid.resize(bytes.len(), false);
            Data { bytes: bytes.clone(), valid, address: None }
        }
        Location::None => return Err(PrintError::NoValue(name.clone(), var.text.clone())),
    };
    let mut at = (Some(ty), name.clone());
    let mut all = Vec::new();
    if deref {
        all.push(None);
    }
    all.extend(steps.into_iter().map(Some));
    for step in all {
        let (ty, shown) = at.clone();
        at = match step {
            None => {
                let (target, d) = deref_pointer(&mut r, ty, &data, &shown)?;
                data = d;
                (target, format!("*{shown}"))
            }
            Some(Step::Member(m)) => {
                let (mty, d) = member(&mut r, ty, &data, &shown, &m)?;
                data = d;
                (mty, format!("{shown}.{m}"))
            }
            Some(Step::Arrow(m)) => {
                let (target, d) = deref_pointer(&mut r, ty, &data, &shown)?;
                let (mty, d) = member(&mut r, target, &d, &shown, &m)?;
                data = d;
                (mty, format!("{shown}->{m}"))
            }
            Some(Step::Index(i)) => {
                let (ety, d) = index(&mut r, ty, &data, &shown, i)?;
                data = d;
                (ety, format!("{shown}[{i}]"))
            }
        };
    }
    let type_name = r.type_name(at.0);
    let (value, text) = r.render(at.0, &data, 0);
    Ok(Evaluated { type_name, value, text })
}

fn deref_pointer(
    r: &mut Renderer<'_>,
    ty: Option<TypeId>,
    data: &Data,
    shown: &str,
) -> Result<(Option<TypeId>, Data), PrintError> {
    let target = match r.strip(ty).map(|(_, t)| t.kind.clone()) {
        Some(TypeKind::Pointer { target, .. }) => target,
        _ => return Err(PrintError::NotIndexable(shown.to_string())),
    };
    let addr = data.uint(8).ok_or_else(|| PrintError::NoValue(shown.to_string(), "<optimized out>".into()))?;
    Ok((target, r.read_value(target, addr).map_err(PrintError::Unreadable)?))
}

fn member(
    r: &mut Renderer<'_>,
    ty: Option<TypeId>,
    data: &Data,
    shown: &str,
    name: &str,
) -> Result<(Option<TypeId>, Data), PrintError> {
    member_in(r, ty, data, shown, name, 0)
}

/// `member` through `bases` levels of base classes (bounded: a corrupt table may loop).
fn member_in(
    r: &mut Renderer<'_>,
    ty: Option<TypeId>,
    data: &Data,
    shown: &str,
    name: &str,
    bases: u32,
) -> Result<(Option<TypeId>, Data), PrintError> {
    let no_member = || PrintError::NoMember(shown.to_string(), name.to_string());
    let Some(TypeKind::Struct { members, .. }) = r.strip(ty).map(|(_, t)| t.kind.clone()) else {
        return Err(PrintError::NotAStruct(shown.to_string()));
    };
    if bases > 32 {
        return Err(no_member());
    }
    // Direct members first, then base classes (depth first), as C++ lookup finds them.
    if let Some(m) = members.iter().find(|m| !m.base && m.name.as_deref() == Some(name)) {
        if m.bits.is_some() {
            return Err(PrintError::NoValue(format!("{shown}.{name}"), "a bitfield: print the struct".into()));
        }
        let size = r.size(m.type_id).unwrap_or(0);
        return Ok((m.type_id, data.slice(m.offset, size).ok_or_else(no_member)?));
    }
    for b in members.iter().filter(|m| m.base) {
        let size = r.size(b.type_id).unwrap_or(0);
        let Some(base) = data.slice(b.offset, size) else { continue };
        if let Ok(found) = member_in(r, b.type_id, &base, shown, name, bases + 1) {
            return Ok(found);
        }
    }
    Err(no_member())
}

fn index(
    r: &mut Renderer<'_>,
    ty: Option<TypeId>,
    data: &Data,
    shown: &str,
    i: u64,
) -> Result<(Option<TypeId>, Data), PrintError> {
    match r.strip(ty).map(|(_, t)| t.kind.clone()) {
        Some(TypeKind::Array { elem, dims }) if dims.len() == 1 => {
            let esize = r.size(elem).unwrap_or(0);
            if dims[0].is_some_and(|n| i >= n) {
                return Err(PrintError::OutOfBounds(shown.to_string(), i));
            }
            let at = i.checked_mul(esize).ok_or(PrintError::OutOfBounds(shown.to_string(), i))?;
            let d = data.slice(at, esize).ok_or(PrintError::OutOfBounds(shown.to_string(), i))?;
            Ok((elem, d))
        }
        Some(TypeKind::Pointer { target, .. }) => {
            let esize = r.size(target).unwrap_or(0);
            let addr = data.uint(8).ok_or_else(|| PrintError::NoValue(shown.to_string(), "<optimized out>".into()))?;
            let at = addr.wrapping_add(i.wrapping_mul(esize));
            Ok((target, r.read_value(target, at).map_err(PrintError::Unreadable)?))
        }
        _ => Err(PrintError::NotIndexable(shown.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expressions_parse() {
        let ok = |e: &str| parse(e).unwrap_or_else(|err| panic!("{e}: {err}"));
        assert_eq!(ok("x"), (None, 0, false, "x".into(), vec![]));
        assert_eq!(
            ok("frame 2 node->next->value"),
            (None, 2, false, "node".into(), vec![Step::Arrow("next".into()), Step::Arrow("value".into())])
        );
        assert_eq!(
            ok("thread 7 frame 1 *sh.corners[1] . y"),
            (
                Some(7),
                1,
                true,
                "sh".into(),
                vec![Step::Member("corners".into()), Step::Index(1), Step::Member("y".into())]
            )
        );
        assert_eq!(ok("shop::count").3, "shop::count");
        for bad in ["", "frame", "frame x y", "a->", "a[", "a[x]", "a+b", "a..b"] {
            assert!(parse(bad).is_err(), "{bad:?} parsed");
        }
    }
}
