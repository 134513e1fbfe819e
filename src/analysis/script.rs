//! User analysis modules in rhai: hooks on the snapshot, each thread, each frame and
//! each variable, with read access to registers, frames, variables and memory, and
//! calls that add classifiers, annotations and attributes. The API is documented in
//! examples/modules/README.md.
//!
//! Sandbox: rhai's core engine has no file, network or process access and we add
//! none (`no_module` also removes `import`); `eval` is disabled. Each module gets a
//! fresh engine with operation, call-depth, size and wall-clock limits. A module
//! that fails to compile, throws or runs out of budget becomes a `Problem`; what it
//! added before that is kept.

use super::{Findings, Reader, ScriptLimits};
use crate::snapshot::{Frame, Problem, Registers, Scope, Severity, Snapshot, Thread, Value, Variable};
use rhai::{AST, Array, Blob, CallFnOptions, Dynamic, Engine, INT, ImmutableString, Map};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// Errors of one module, recorded as problems.
#[derive(Debug, thiserror::Error)]
pub enum ScriptError {
    #[error("module {path}: reading: {source}")]
    Read { path: String, source: std::io::Error },
    #[error("module {path}: {message}")]
    Compile { path: String, message: String },
    #[error("module {path}: {hook}: {message}")]
    Run { path: String, hook: String, message: String },
}

/// The files to run: `modules_dir/*.rhai` sorted by name, then `modules` in order.
pub fn module_files(opts: &super::AnalysisOptions, problems: &mut Vec<Problem>) -> Vec<PathBuf> {
    let mut files = Vec::new();
    if let Some(dir) = &opts.modules_dir {
        match std::fs::read_dir(dir) {
            Ok(entries) => {
                let mut v: Vec<PathBuf> = entries
                    .flatten()
                    .map(|e| e.path())
                    .filter(|p| p.extension().is_some_and(|x| x == "rhai") && p.is_file())
                    .collect();
                v.sort();
                files.extend(v);
            }
            Err(e) => problems.push(Problem::new(Scope::Snapshot, format!("modules directory {}: {e}", dir.display()))),
        }
    }
    files.extend(opts.modules.iter().cloned());
    files
}

/// What a module added, shared with the functions registered in its engine.
#[derive(Default)]
struct Output {
    classifiers: Vec<String>,
    annotations: Vec<(Scope, Severity, String)>,
    attributes: Vec<(String, String)>,
    /// Bytes and items added so far, against `ScriptLimits::max_output{,_items}`.
    bytes: usize,
    items: usize,
}

type HostResult<T> = Result<T, Box<rhai::EvalAltResult>>;

/// Counts `bytes` of output against the module's budget; an error stops the module.
fn spend(o: &mut Output, bytes: usize, max_bytes: usize, max_items: usize) -> HostResult<()> {
    if o.items >= max_items || o.bytes.saturating_add(bytes) > max_bytes {
        return Err(format!(
            "output limit exceeded: a module adds at most {max_items} classifiers, annotations and attributes, {max_bytes} bytes in all"
        )
        .into());
    }
    o.items += 1;
    o.bytes += bytes;
    Ok(())
}

/// Runs each module in turn; never fails.
pub fn run_modules(snap: &Snapshot, reader: &Reader, files: &[PathBuf], limits: &ScriptLimits, f: &mut Findings) {
    let snap_value = snapshot_value(snap);
    for path in files {
        let name = path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_else(|| "module".into());
        let source = format!("module:{name}");
        let out = Arc::new(Mutex::new(Output::default()));
        let result = run_one(snap, &snap_value, reader, path, limits, out.clone());
        if let Ok(o) = out.lock() {
            for c in &o.classifiers {
                f.classify(c);
            }
            for (scope, sev, text) in &o.annotations {
                f.annotate(scope.clone(), *sev, &source, text.clone());
            }
            f.attributes.extend(o.attributes.iter().cloned());
        }
        if let Err(e) = result {
            f.problem(Scope::Snapshot, e.to_string());
        }
    }
}

fn severity(s: &str) -> Severity {
    match s.to_ascii_lowercase().as_str() {
        "error" => Severity::Error,
        "warning" | "warn" => Severity::Warning,
        _ => Severity::Info,
    }
}

fn opt_int(v: Option<u64>) -> Dynamic {
    v.map(|x| Dynamic::from_int(x as INT)).unwrap_or(Dynamic::UNIT)
}

/// A fresh sandboxed engine with the bt API registered.
fn engine(
    snap: &Snapshot,
    reader: &Reader,
    limits: &ScriptLimits,
    out: Arc<Mutex<Output>>,
    deadline: Arc<Mutex<Instant>>,
) -> Engine {
    let mut e = Engine::new();
    e.set_max_operations(limits.max_operations)
        .set_max_call_levels(limits.max_call_levels)
        .set_max_string_size(limits.max_string_size)
        .set_max_array_size(limits.max_array_size)
        .set_max_map_size(limits.max_map_size)
        .set_max_expr_depths(64, 64);
    e.disable_symbol("eval");
    e.on_progress(move |ops| {
        if ops % 256 == 0 && deadline.lock().is_ok_and(|d| Instant::now() > *d) {
            return Some(Dynamic::from("time limit exceeded"));
        }
        None
    });
    // Diagnostics of a module go to stderr, never into the results on stdout.
    e.on_print(|s| log::info!(target: "bt::module", "{s}"));
    e.on_debug(|s, _, pos| log::debug!(target: "bt::module", "({pos}) {s}"));

    let max_read = limits.max_read;
    macro_rules! reader_fn {
        ($name:literal, $n:literal) => {{
            let r = reader.clone();
            e.register_fn($name, move |addr: INT| -> Dynamic {
                let mut b = [0u8; 8];
                if r.read(addr as u64, &mut b[..$n]) == $n {
                    Dynamic::from_int(u64::from_le_bytes(b) as INT)
                } else {
                    Dynamic::UNIT
                }
            });
        }};
    }
    reader_fn!("read_u8", 1);
    reader_fn!("read_u16", 2);
    reader_fn!("read_u32", 4);
    reader_fn!("read_u64", 8);
    let r = reader.clone();
    e.register_fn("read_bytes", move |addr: INT, len: INT| -> Blob {
        r.bytes(addr as u64, (len.max(0) as usize).min(max_read))
    });
    let r = reader.clone();
    e.register_fn("read_string", move |addr: INT| -> Dynamic {
        r.cstring(addr as u64, 4096).map(|(s, _)| Dynamic::from(s)).unwrap_or(Dynamic::UNIT)
    });
    let r = reader.clone();
    e.register_fn("read_string", move |addr: INT, max: INT| -> Dynamic {
        r.cstring(addr as u64, (max.max(0) as usize).min(max_read))
            .map(|(s, _)| Dynamic::from(s))
            .unwrap_or(Dynamic::UNIT)
    });

    let maps = snap.maps.clone();
    e.register_fn("mapping_of", move |addr: INT| -> Dynamic {
        let a = addr as u64;
        maps.iter()
            .find(|m| a >= m.start && a < m.end)
            .map(|m| Dynamic::from_map(mapping_value(m)))
            .unwrap_or(Dynamic::UNIT)
    });
    e.register_fn("demangle", |name: ImmutableString| -> String { crate::symbols::demangle(&name) });
    e.register_fn("hex", |v: INT| -> String { format!("{:#x}", v as u64) });

    let existing = snap.classifiers.clone();
    let o = out.clone();
    e.register_fn("has_classifier", move |name: ImmutableString| -> bool {
        existing.iter().any(|c| c == name.as_str())
            || o.lock().is_ok_and(|o| o.classifiers.iter().any(|c| c == name.as_str()))
    });
    let (max_bytes, max_items) = (limits.max_output, limits.max_output_items);
    let o = out.clone();
    e.register_fn("add_classifier", move |name: ImmutableString| -> HostResult<()> {
        let name = name.trim().to_string();
        if let Ok(mut o) = o.lock()
            && !name.is_empty()
            && !o.classifiers.contains(&name)
        {
            spend(&mut o, name.len(), max_bytes, max_items)?;
            o.classifiers.push(name);
        }
        Ok(())
    });
    let push = move |out: &Arc<Mutex<Output>>, scope: Scope, sev: &str, text: &str| -> HostResult<()> {
        if let Ok(mut o) = out.lock() {
            spend(&mut o, text.len() + sev.len(), max_bytes, max_items)?;
            o.annotations.push((scope, severity(sev), text.to_string()));
        }
        Ok(())
    };
    let o = out.clone();
    e.register_fn("annotate", move |text: ImmutableString| push(&o, Scope::Snapshot, "info", &text));
    let o = out.clone();
    e.register_fn("annotate", move |sev: ImmutableString, text: ImmutableString| {
        push(&o, Scope::Snapshot, &sev, &text)
    });
    let o = out.clone();
    e.register_fn("annotate_thread", move |tid: INT, sev: ImmutableString, text: ImmutableString| {
        push(&o, Scope::Thread(tid as i32), &sev, &text)
    });
    let o = out.clone();
    e.register_fn("annotate_frame", move |tid: INT, idx: INT, sev: ImmutableString, text: ImmutableString| {
        push(&o, Scope::Frame(tid as i32, idx as u32), &sev, &text)
    });
    let o = out.clone();
    e.register_fn(
        "annotate_variable",
        move |tid: INT, idx: INT, name: ImmutableString, sev: ImmutableString, text: ImmutableString| {
            push(&o, Scope::Variable(tid as i32, idx as u32, name.to_string()), &sev, &text)
        },
    );
    let o = out;
    e.register_fn("set_attribute", move |key: ImmutableString, value: Dynamic| -> HostResult<()> {
        // Scalars only: the text of an array of shared strings can be far larger
        // than anything the engine's size limits counted.
        let text = if let Some(s) = value.read_lock::<ImmutableString>() {
            s.to_string()
        } else if value.is_int() || value.is_float() || value.is_bool() || value.is_char() || value.is_unit() {
            value.to_string()
        } else {
            return Err(format!("set_attribute({key}, …) takes a string or a number, not {}", value.type_name()).into());
        };
        if let Ok(mut o) = o.lock() {
            spend(&mut o, key.len() + text.len(), max_bytes, max_items)?;
            o.attributes.push((key.to_string(), text));
        }
        Ok(())
    });
    e
}

fn has_fn(ast: &AST, name: &str, arity: usize) -> bool {
    ast.iter_functions().any(|f| f.name == name && f.params.len() == arity)
}

fn run_one(
    snap: &Snapshot,
    snap_value: &Map,
    reader: &Reader,
    path: &Path,
    limits: &ScriptLimits,
    out: Arc<Mutex<Output>>,
) -> Result<(), ScriptError> {
    let p = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|source| ScriptError::Read { path: p.clone(), source })?;
    let deadline = Arc::new(Mutex::new(Instant::now() + limits.max_time));
    let engine = engine(snap, reader, limits, out, deadline.clone());
    let ast = engine.compile(&text).map_err(|e| ScriptError::Compile { path: p.clone(), message: e.to_string() })?;
    if let Ok(mut d) = deadline.lock() {
        *d = Instant::now() + limits.max_time;
    }
    let run_err = |hook: &str, e: Box<rhai::EvalAltResult>| ScriptError::Run {
        path: p.clone(),
        hook: hook.to_string(),
        message: match *e {
            rhai::EvalAltResult::ErrorTerminated(_, _) => format!("stopped: ran longer than {:?}", limits.max_time),
            rhai::EvalAltResult::ErrorTooManyOperations(_) => {
                format!("stopped: more than {} operations", limits.max_operations)
            }
            other => other.to_string(),
        },
    };
    let mut scope = rhai::Scope::new();
    // Top-level statements run once (constants, helper state).
    engine.run_ast_with_scope(&mut scope, &ast).map_err(|e| run_err("top level", e))?;
    let opts = || CallFnOptions::new().eval_ast(false).rewind_scope(true);
    let call = |scope: &mut rhai::Scope, hook: &str, args: Vec<Dynamic>| -> Result<(), ScriptError> {
        engine
            .call_fn_with_options::<Dynamic>(opts(), scope, &ast, hook, args)
            .map(|_| ())
            .map_err(|e| run_err(hook, e))
    };

    if has_fn(&ast, "on_snapshot", 1) {
        call(&mut scope, "on_snapshot", vec![Dynamic::from_map(snap_value.clone())])?;
    }
    let (want_thread, want_frame, want_var) =
        (has_fn(&ast, "on_thread", 1), has_fn(&ast, "on_frame", 2), has_fn(&ast, "on_variable", 3));
    if !(want_thread || want_frame || want_var) {
        return Ok(());
    }
    for t in &snap.threads {
        let head = thread_head(t);
        if want_thread {
            let mut full = head.clone();
            let frames: Array =
                t.frames.iter().enumerate().map(|(i, f)| Dynamic::from_map(frame_value(i, f))).collect();
            full.insert("frames".into(), Dynamic::from_array(frames));
            call(&mut scope, "on_thread", vec![Dynamic::from_map(full)])?;
        }
        if !(want_frame || want_var) {
            continue;
        }
        for (i, fr) in t.frames.iter().enumerate() {
            let fv = frame_value(i, fr);
            if want_frame {
                call(&mut scope, "on_frame", vec![Dynamic::from_map(head.clone()), Dynamic::from_map(fv.clone())])?;
            }
            if want_var {
                for v in &fr.variables {
                    call(
                        &mut scope,
                        "on_variable",
                        vec![
                            Dynamic::from_map(head.clone()),
                            Dynamic::from_map(fv.clone()),
                            Dynamic::from_map(variable_value(v)),
                        ],
                    )?;
                }
            }
        }
    }
    Ok(())
}

fn map(pairs: Vec<(&str, Dynamic)>) -> Map {
    pairs.into_iter().map(|(k, v)| (k.into(), v)).collect()
}

fn s(v: &str) -> Dynamic {
    Dynamic::from(v.to_string())
}

fn i(v: u64) -> Dynamic {
    Dynamic::from_int(v as INT)
}

fn opt_s(v: Option<&str>) -> Dynamic {
    v.map(s).unwrap_or(Dynamic::UNIT)
}

fn registers_value(r: &Registers) -> Map {
    r.named().iter().map(|(n, v)| ((*n).into(), i(*v))).collect()
}

fn mapping_value(m: &crate::snapshot::Mapping) -> Map {
    map(vec![
        ("start", i(m.start)),
        ("end", i(m.end)),
        ("perms", s(&m.perms)),
        ("offset", i(m.offset)),
        ("path", s(&m.path)),
    ])
}

/// The snapshot as a rhai map (threads with their frames; no raw memory).
fn snapshot_value(snap: &Snapshot) -> Map {
    let signal = match &snap.signal {
        Some(sg) => Dynamic::from_map(map(vec![
            ("signo", i(sg.signo as u64)),
            ("name", s(&sg.name)),
            ("code", Dynamic::from_int(sg.code as INT)),
            ("code_name", s(&sg.code_name)),
            ("fault_address", opt_int(sg.fault_address)),
            ("tid", Dynamic::from_int(sg.tid as INT)),
        ])),
        None => Dynamic::UNIT,
    };
    let threads: Array = snap
        .threads
        .iter()
        .map(|t| {
            let mut m = thread_head(t);
            let frames: Array =
                t.frames.iter().enumerate().map(|(k, f)| Dynamic::from_map(frame_value(k, f))).collect();
            m.insert("frames".into(), Dynamic::from_array(frames));
            Dynamic::from_map(m)
        })
        .collect();
    let modules: Array = snap
        .modules
        .iter()
        .map(|m| {
            Dynamic::from_map(map(vec![
                ("path", s(&m.path)),
                ("build_id", opt_s(m.build_id.as_deref())),
                ("load_bias", i(m.load_bias)),
                ("start", i(m.start)),
                ("end", i(m.end)),
            ]))
        })
        .collect();
    let attributes: Map = snap.attributes.iter().map(|a| (a.key.as_str().into(), s(&a.value))).collect();
    map(vec![
        ("uuid", s(&snap.uuid)),
        ("pid", Dynamic::from_int(snap.process.pid as INT)),
        ("exe", s(&snap.process.exe)),
        ("comm", s(&snap.process.comm)),
        ("cmdline", Dynamic::from_array(snap.process.cmdline.iter().map(|c| s(c)).collect())),
        ("signal", signal),
        ("classifiers", Dynamic::from_array(snap.classifiers.iter().map(|c| s(c)).collect())),
        ("attributes", Dynamic::from_map(attributes)),
        ("threads", Dynamic::from_array(threads)),
        ("modules", Dynamic::from_array(modules)),
        ("maps", Dynamic::from_array(snap.maps.iter().map(|m| Dynamic::from_map(mapping_value(m))).collect())),
    ])
}

fn thread_head(t: &Thread) -> Map {
    map(vec![
        ("tid", Dynamic::from_int(t.tid as INT)),
        ("name", s(&t.name)),
        ("state", s(&t.state)),
        ("faulted", Dynamic::from_bool(t.faulted)),
        ("registers", Dynamic::from_map(registers_value(&t.registers))),
    ])
}

fn frame_value(idx: usize, f: &Frame) -> Map {
    let regs: Map = f
        .registers
        .iter()
        .map(|(n, v)| {
            let name = dwarf_reg_name(*n).map(str::to_string).unwrap_or_else(|| format!("r{n}"));
            (name.into(), i(*v))
        })
        .collect();
    map(vec![
        ("index", i(idx as u64)),
        ("pc", i(f.pc)),
        ("sp", i(f.sp)),
        ("module_name", opt_s(f.module.as_deref())),
        ("module_offset", i(f.module_offset)),
        ("function", opt_s(f.function.as_deref())),
        ("file", opt_s(f.file.as_deref())),
        ("line", f.line.map(|l| i(l as u64)).unwrap_or(Dynamic::UNIT)),
        ("inlined", Dynamic::from_bool(f.inlined)),
        ("signal_frame", Dynamic::from_bool(f.signal_frame)),
        ("trust", s(&format!("{:?}", f.trust).to_lowercase())),
        ("registers", Dynamic::from_map(regs)),
        ("variables", Dynamic::from_array(f.variables.iter().map(|v| Dynamic::from_map(variable_value(v))).collect())),
    ])
}

fn dwarf_reg_name(n: u16) -> Option<&'static str> {
    const NAMES: [&str; 17] = [
        "rax", "rdx", "rcx", "rbx", "rsi", "rdi", "rbp", "rsp", "r8", "r9", "r10", "r11", "r12", "r13", "r14", "r15",
        "rip",
    ];
    NAMES.get(n as usize).copied()
}

fn variable_value(v: &Variable) -> Map {
    map(vec![
        ("name", s(&v.name)),
        ("kind", s(&format!("{:?}", v.kind).to_lowercase())),
        ("type_name", s(&v.type_name)),
        ("address", opt_int(v.address)),
        ("text", s(&v.text)),
        ("value", value_dynamic(&v.value, 0)),
    ])
}

/// A structured value: ints, floats, bools and strings as themselves; pointers as
/// `#{address, target}`; structs as maps; arrays as arrays; absent values as `()`.
fn value_dynamic(v: &Value, depth: usize) -> Dynamic {
    if depth > 16 {
        return Dynamic::UNIT;
    }
    match v {
        Value::OptimizedOut | Value::Unreadable { .. } | Value::Unavailable(_) => Dynamic::UNIT,
        Value::Int(x) => Dynamic::from_int(*x as INT),
        Value::UInt(x) => i(*x),
        Value::Float(x) => Dynamic::from_float(*x),
        Value::Bool(b) => Dynamic::from_bool(*b),
        Value::Char(c) => char::from_u32(*c).map(Dynamic::from_char).unwrap_or(Dynamic::UNIT),
        Value::Enum { value, name } => match name {
            Some(n) => s(n),
            None => Dynamic::from_int(*value as INT),
        },
        Value::Pointer { address, target, .. } => Dynamic::from_map(map(vec![
            ("address", i(*address)),
            ("target", target.as_deref().map(|t| value_dynamic(t, depth + 1)).unwrap_or(Dynamic::UNIT)),
        ])),
        Value::Str { text, .. } => s(text),
        Value::Struct(fields) => Dynamic::from_map(
            fields.iter().map(|f| (f.name.as_str().into(), value_dynamic(&f.value, depth + 1))).collect(),
        ),
        Value::Array { items, .. } => Dynamic::from_array(items.iter().map(|x| value_dynamic(x, depth + 1)).collect()),
        Value::Bytes(b) => Dynamic::from_blob(b.clone()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::capture::CopiedMemory;
    use crate::snapshot::{Signal, VariableKind};
    use crate::symbols::{ModuleSet, SymbolOptions};

    fn reader() -> Reader {
        let mut mem = CopiedMemory::default();
        let mut bytes = 0x1122_3344_5566_7788u64.to_le_bytes().to_vec();
        bytes.extend_from_slice(b"hello\0");
        mem.add(0x1000, bytes);
        let (modules, _) = ModuleSet::load(&[], &[], &[], &mem, &SymbolOptions::default());
        Reader::new(Arc::new(mem), Arc::new(modules))
    }

    fn snapshot() -> Snapshot {
        let frame = |name: &str| Frame {
            function: Some(name.into()),
            variables: vec![Variable {
                name: "p".into(),
                kind: VariableKind::Parameter,
                value: Value::UInt(0x1000),
                ..Default::default()
            }],
            ..Default::default()
        };
        Snapshot {
            signal: Some(Signal {
                signo: 11,
                name: "SIGSEGV".into(),
                fault_address: Some(0x10),
                tid: 7,
                ..Default::default()
            }),
            threads: vec![Thread {
                tid: 7,
                name: "main".into(),
                faulted: true,
                frames: vec![frame("inner"), frame("main")],
                ..Default::default()
            }],
            classifiers: vec!["null-dereference".into()],
            ..Default::default()
        }
    }

    fn run_script(text: &str, limits: &ScriptLimits) -> Findings {
        let dir = std::env::temp_dir().join(format!(
            "bt-script-test-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let path = dir.join("t.rhai");
        std::fs::write(&path, text).expect("write script");
        let mut f = Findings::default();
        run_modules(&snapshot(), &reader(), &[path], limits, &mut f);
        let _ = std::fs::remove_dir_all(&dir);
        f
    }

    #[test]
    fn api_reads_memory_and_writes_findings() {
        let f = run_script(
            r#"
            fn on_snapshot(snap) {
                if read_u64(0x1000) == 0x1122334455667788 && read_u8(0x1000) == 0x88 { add_classifier("read-ok"); }
                if read_string(0x1008) == "hello" { add_classifier("string-ok"); }
                if read_u64(0x5000) == () { add_classifier("unreadable-is-unit"); }
                if read_bytes(0x1000, 100).len() == 14 { add_classifier("short-read"); }
                if has_classifier("null-dereference") { add_classifier("sees-builtin"); }
                if snap.signal.fault_address == 0x10 && snap.threads[0].frames.len() == 2 { add_classifier("model-ok"); }
                set_attribute("answer", 42);
                annotate("warning", "at the snapshot");
            }
            fn on_frame(t, frame) { annotate_frame(t.tid, frame.index, "error", frame.function); }
            fn on_variable(t, frame, v) { annotate_variable(t.tid, frame.index, v.name, "info", hex(v.value)); }
            "#,
            &ScriptLimits::default(),
        );
        assert!(f.problems.is_empty(), "{:?}", f.problems);
        assert_eq!(
            f.classifiers,
            ["read-ok", "string-ok", "unreadable-is-unit", "short-read", "sees-builtin", "model-ok"]
        );
        assert_eq!(f.attributes, vec![("answer".to_string(), "42".to_string())]);
        let got: Vec<(Scope, Severity, String)> =
            f.annotations.iter().map(|a| (a.scope.clone(), a.severity, a.text.clone())).collect();
        assert_eq!(
            got,
            vec![
                (Scope::Snapshot, Severity::Warning, "at the snapshot".into()),
                (Scope::Frame(7, 0), Severity::Error, "inner".into()),
                (Scope::Variable(7, 0, "p".into()), Severity::Info, "0x1000".into()),
                (Scope::Frame(7, 1), Severity::Error, "main".into()),
                (Scope::Variable(7, 1, "p".into()), Severity::Info, "0x1000".into()),
            ]
        );
        assert!(f.annotations.iter().all(|a| a.source == "module:t"));
    }

    #[test]
    fn limits_stop_runaway_modules() {
        // (script, limits, expected problem substring)
        let slow =
            ScriptLimits { max_operations: 0, max_time: std::time::Duration::from_millis(200), ..Default::default() };
        let few_ops = ScriptLimits { max_operations: 1000, ..Default::default() };
        let small = ScriptLimits { max_string_size: 100, ..Default::default() };
        let d = ScriptLimits::default();
        let cases: [(&str, &ScriptLimits, &str); 8] = [
            // Regression (hostile input 10): host functions count against the module's output budget.
            (
                "fn on_snapshot(s) { let x = \"a\"; for i in 0..20 { x += x; } loop { annotate(x); } }",
                &d,
                "output limit exceeded",
            ),
            (
                "fn on_snapshot(s) { let x = \"a\"; for i in 0..20 { x += x; } let i = 0; loop { i += 1; set_attribute(`k${i}`, x); } }",
                &d,
                "output limit exceeded",
            ),
            ("fn on_snapshot(s) { let i = 0; loop { i += 1; add_classifier(`c${i}`); } }", &d, "output limit exceeded"),
            (
                "fn on_snapshot(s) { let a = []; a.pad(1000, 1); set_attribute(\"k\", a); }",
                &d,
                "takes a string or a number",
            ),
            ("fn on_snapshot(s) { loop { } }", &slow, "ran longer than 200ms"),
            ("fn on_snapshot(s) { let i = 0; while true { i += 1; } }", &few_ops, "more than 1000 operations"),
            ("fn on_snapshot(s) { let x = \"a\"; loop { x += x; } }", &small, "Length of string"),
            ("fn on_snapshot(s) { eval(\"1\") }", &ScriptLimits::default(), "eval"),
        ];
        for (script, limits, want) in cases {
            let started = Instant::now();
            let f = run_script(script, limits);
            assert!(started.elapsed() < std::time::Duration::from_secs(10), "{script}");
            assert!(f.problems.iter().any(|p| p.message.contains(want)), "{script}: {:?}", f.problems);
            let kept: usize = f.annotations.iter().map(|a| a.text.len()).sum::<usize>()
                + f.attributes.iter().map(|(k, v)| k.len() + v.len()).sum::<usize>()
                + f.classifiers.iter().map(String::len).sum::<usize>();
            assert!(kept <= limits.max_output + 64, "{script}: kept {kept} bytes");
        }
    }
}
