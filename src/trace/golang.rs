//! Go programs: every goroutine (not only the OS threads) and the panic that killed
//! the process, read from the Go runtime's own data — `runtime.allgs`, each `g`'s
//! status, wait reason, scheduler registers and `_panic` — with the member offsets
//! taken from the binary's DWARF (`runtime.g`, `runtime.gobuf`, `runtime.m`,
//! `runtime._panic`), so no Go version's layout is written down here.
//!
//! A parked goroutine's stack is walked from its saved `sched.pc/sp/bp` by the same
//! unwinder as the threads; a running one points at the thread (M) that runs it.
//! What could not be read is said in `problems`, never guessed.
//!
//! The result travels in the snapshot as the `go.goroutines` extension (version 1,
//! JSON), with the `go-panic` / `go-fatal-error` classifiers, the panic message as an
//! annotation and the `go.panic` attribute.

use crate::capture::Memory;
use crate::snapshot::{Annotation, Goroutine, Problem, Registers, Scope, Severity, Snapshot, Variable};
use crate::symbols::ModuleSet;
use crate::unwind::{Unwinder, WalkOptions};
use std::collections::HashMap;

/// Most goroutines read (a corrupt `allgs` length must not size an allocation).
const MAX_GOROUTINES: u64 = 1_000_000;
/// Most frames kept per parked goroutine.
const MAX_GOROUTINE_FRAMES: usize = 256;
/// Longest panic message or string read.
const MAX_STRING: u64 = 4096;

/// The variables of a walked stack: per raw frame, per function of its inline chain.
pub type Vars = Vec<Vec<Vec<Variable>>>;

/// What the raw walk found, before symbolization.
pub struct Found {
    pub goroutines: Vec<Goroutine>,
    /// Each parked goroutine's variables, by index into `goroutines`.
    pub variables: Vec<Vars>,
    pub panic: Option<Panic>,
    pub problems: Vec<Problem>,
    /// `runtime._type` and `runtime.moduledata`, to name interfaces' dynamic types.
    types: Types,
}

type Types = (Option<HashMap<String, u64>>, Option<HashMap<String, u64>>);

/// A panic in flight.
#[derive(Debug, Clone)]
pub struct Panic {
    pub goroutine: u64,
    pub message: String,
    /// The signal a runtime error came from (SIGSEGV of a nil dereference) and the
    /// faulting address.
    pub signal: Option<(u32, u64)>,
}

struct Layout {
    g: HashMap<String, u64>,
    gobuf: HashMap<String, u64>,
    m: HashMap<String, u64>,
    panic: HashMap<String, u64>,
    /// `runtime._type` and `runtime.moduledata`.
    types: Types,
}

fn member(map: &HashMap<String, u64>, name: &str) -> Result<u64, String> {
    map.get(name).copied().ok_or_else(|| format!("the runtime's DWARF has no member {name}"))
}

/// The target's memory, and for what a core leaves out (read-only file-backed
/// mappings: the runtime's strings and type names live in `.rodata`) the module files.
struct Mem<'a> {
    memory: &'a dyn Memory,
    modules: &'a ModuleSet,
}

impl Mem<'_> {
    fn read_exact(&self, addr: u64, buf: &mut [u8]) -> bool {
        self.memory.read_exact(addr, buf) || self.modules.read_code(addr, buf) == buf.len()
    }

    fn read_u64(&self, addr: u64) -> Option<u64> {
        let mut b = [0u8; 8];
        self.read_exact(addr, &mut b).then(|| u64::from_le_bytes(b))
    }
}

/// Reads the target's memory, and the module files for what it lacks.
impl Memory for Mem<'_> {
    fn read(&self, addr: u64, buf: &mut [u8]) -> usize {
        let n = self.memory.read(addr, buf);
        if n == buf.len() {
            return n;
        }
        n.max(self.modules.read_code(addr, buf))
    }
}

/// True when the process is a Go program (its runtime's goroutine list is there).
pub fn is_go(modules: &ModuleSet) -> bool {
    modules.symbol_address("runtime.allgs").is_some() && modules.symbol_address("runtime.main").is_some()
}

/// Reads every goroutine and the panic in flight; walks parked goroutines' stacks.
/// Call while the memory is consistent (a live target still stopped).
/// `variables` captures a parked goroutine's variables from its registers and raw
/// frames (the tracer's capture, with its memory recorder and type table), within
/// the goroutine's share of what pointers may lead to (`values::follow_share`).
pub fn read(
    modules: &ModuleSet,
    memory: &dyn Memory,
    unwinder: &Unwinder<'_>,
    variables: &(dyn Fn(&Registers, &[crate::snapshot::Frame], usize) -> Vars + Sync),
) -> Found {
    let mut found =
        Found { goroutines: Vec::new(), variables: Vec::new(), panic: None, problems: Vec::new(), types: (None, None) };
    let mem = Mem { memory, modules };
    if let Err(e) = read_into(modules, &mem, unwinder, variables, &mut found) {
        found.problems.push(Problem::new(Scope::Snapshot, format!("Go goroutines: {e}")));
    }
    found
}

fn read_into(
    modules: &ModuleSet,
    memory: &Mem<'_>,
    unwinder: &Unwinder<'_>,
    variables: &(dyn Fn(&Registers, &[crate::snapshot::Frame], usize) -> Vars + Sync),
    out: &mut Found,
) -> Result<(), String> {
    let mut all = modules.struct_members(&[
        "runtime.g",
        "runtime.gobuf",
        "runtime.m",
        "runtime._panic",
        "runtime._type",
        "internal/abi.Type",
        "runtime.moduledata",
    ]);
    let mut take = |name: &str| all.remove(name).ok_or(format!("no DWARF for {name} (built with -ldflags=-w?)"));
    let layout = Layout {
        g: take("runtime.g")?,
        gobuf: take("runtime.gobuf")?,
        m: take("runtime.m")?,
        panic: take("runtime._panic")?,
        // Needed only to name a panic value's or an interface's type.
        // Go ≥ 1.21 describes types with `internal/abi.Type` (`runtime._type` is an alias).
        types: (
            take("runtime._type").or_else(|_| take("internal/abi.Type")).ok().map(old_type_names),
            take("runtime.moduledata").ok(),
        ),
    };
    out.types = layout.types.clone();
    let (allgs, _) = modules.symbol_address("runtime.allgs").ok_or("no symbol runtime.allgs")?;
    let u64_at = |addr: u64| memory.read_u64(addr);
    let base = u64_at(allgs).ok_or("runtime.allgs is unreadable")?;
    let len = u64_at(allgs + 8).ok_or("runtime.allgs is unreadable")?;
    if len > MAX_GOROUTINES {
        return Err(format!("runtime.allgs claims {len} goroutines: not read"));
    }
    let reasons = wait_reasons(modules, memory);
    let (goid, status, reason) =
        (member(&layout.g, "goid")?, member(&layout.g, "atomicstatus")?, member(&layout.g, "waitreason")?);
    let (sched, m_off, panic_off) =
        (member(&layout.g, "sched")?, member(&layout.g, "m")?, member(&layout.g, "_panic")?);
    let (pc, sp, bp) = (member(&layout.gobuf, "pc")?, member(&layout.gobuf, "sp")?, member(&layout.gobuf, "bp")?);
    let procid = member(&layout.m, "procid")?;
    let walk = WalkOptions { max_frames: MAX_GOROUTINE_FRAMES };
    let mut parked = Vec::new();
    for i in 0..len {
        let Some(g) = u64_at(base + 8 * i) else {
            out.problems.push(Problem::new(Scope::Snapshot, format!("Go: allgs[{i}] is unreadable")));
            continue;
        };
        if g == 0 {
            continue;
        }
        let read32 = |addr: u64| {
            let mut b = [0u8; 4];
            memory.read_exact(addr, &mut b).then(|| u32::from_le_bytes(b))
        };
        let Some(st) = read32(g + status) else { continue };
        let st = st & !0x1000; // _Gscan
        if st == 6 {
            continue; // _Gdead: a free g kept for reuse
        }
        let id = u64_at(g + goid).unwrap_or(0);
        let mut byte = [0u8; 1];
        let wait = if st == 4 && memory.read_exact(g + reason, &mut byte) {
            reasons.get(byte[0] as usize).cloned().filter(|r| !r.is_empty())
        } else {
            None
        };
        let m = u64_at(g + m_off).unwrap_or(0);
        let thread =
            if m != 0 && (st == 2 || st == 3) { u64_at(m + procid).map(|t| t as i32).filter(|t| *t > 0) } else { None };
        let mut gr = Goroutine { id, status: status_name(st).into(), wait_reason: wait, thread, ..Default::default() };
        if thread.is_none() {
            let regs = Registers {
                rip: u64_at(g + sched + pc).unwrap_or(0),
                rsp: u64_at(g + sched + sp).unwrap_or(0),
                rbp: u64_at(g + sched + bp).unwrap_or(0),
                ..Default::default()
            };
            if regs.rip != 0 && regs.rsp != 0 {
                parked.push((out.goroutines.len(), regs));
            }
        }
        let p = u64_at(g + panic_off).unwrap_or(0);
        if p != 0 && out.panic.is_none() {
            gr.panicking = true;
            let arg = member(&layout.panic, "arg")?;
            let (typ, data) = (u64_at(p + arg).unwrap_or(0), u64_at(p + arg + 8).unwrap_or(0));
            let message = panic_message(modules, memory, &layout, typ, data);
            let sig = member(&layout.g, "sig").ok().and_then(|o| read32(g + o)).unwrap_or(0);
            let addr = member(&layout.g, "sigcode1").ok().and_then(|o| u64_at(g + o)).unwrap_or(0);
            out.panic = Some(Panic { goroutine: id, message, signal: (sig != 0).then_some((sig, addr)) });
        }
        out.goroutines.push(gr);
        out.variables.push(Vars::new());
    }
    // The parked goroutines' stacks and variables, spread over the tracer's workers
    // (a server has thousands), each with its share of what pointed-to objects may
    // render (every goroutine counts, as when they are rendered again).
    let follow = crate::snapshot::values::follow_share(out.goroutines.len());
    let stacks = super::spread(parked, |(i, regs)| {
        let (mut frames, _) = unwinder.walk(&regs, memory.memory, &walk);
        // The saved pc is a return address (into gopark, after its call of mcall):
        // looked up as a caller's, not as an interrupted instruction — unless the
        // goroutine never ran and it is its function's entry.
        if let Some(f) = frames.first_mut()
            && modules.symbol_start(f.pc) != Some(f.pc)
        {
            f.trust = crate::snapshot::Trust::Cfi;
        }
        let vars = variables(&regs, &frames, follow);
        (i, frames, vars)
    });
    for (i, frames, vars) in stacks {
        out.goroutines[i].frames = frames;
        out.variables[i] = vars;
    }
    Ok(())
}

/// `internal/abi.Type`'s members under the names `runtime._type` had before Go 1.21.
fn old_type_names(mut members: HashMap<String, u64>) -> HashMap<String, u64> {
    for (new, old) in [("Str", "str"), ("TFlag", "tflag"), ("Kind_", "kind")] {
        if let Some(off) = members.remove(new) {
            members.entry(old.to_string()).or_insert(off);
        }
    }
    members
}

/// The runtime's names of wait reasons (`runtime.waitReasonStrings`, an array of Go
/// strings), by index.
fn wait_reasons(modules: &ModuleSet, memory: &Mem<'_>) -> Vec<String> {
    let Some((addr, size)) = modules.symbol_address("runtime.waitReasonStrings") else { return Vec::new() };
    (0..(size / 16).min(256)).map(|i| go_string(memory, addr + 16 * i).unwrap_or_default()).collect()
}

/// A Go string header (pointer, length) at `addr`, read as text.
fn go_string(memory: &Mem<'_>, addr: u64) -> Option<String> {
    let ptr = memory.read_u64(addr)?;
    let len = memory.read_u64(addr + 8)?.min(MAX_STRING);
    let mut buf = vec![0u8; len as usize];
    memory.read_exact(ptr, &mut buf).then(|| String::from_utf8_lossy(&buf).into_owned())
}

fn status_name(st: u32) -> &'static str {
    match st {
        0 => "idle",
        1 => "runnable",
        2 => "running",
        3 => "syscall",
        4 => "waiting",
        8 => "copystack",
        9 => "preempted",
        _ => "unknown",
    }
}

/// A Go interface value (`any`, `error`, any interface type: a pair of the dynamic
/// type — for a non-empty interface through its itab — and a data word) as Delve
/// shows it: `interface {}(int) 42`, `error(*errors.errorString) *{s: "boom"}`,
/// `interface {}(*main.Node) 0xc000070180`, `error nil`. Basic kinds and strings are
/// read; other values stay an address. The structured value is left as it was.
/// Interfaces inside the variable (a struct member such as `_panic.arg`, an element
/// of `[]any`) are shown the same way within its text.
fn describe_interface(modules: &ModuleSet, memory: &Mem<'_>, types: &Types, v: &mut crate::snapshot::Variable) {
    if let Some(text) = interface_description(modules, memory, types, v) {
        v.text = text;
    }
}

/// The text [`describe_interface`] gives `v`, when it holds interfaces (None leaves
/// it as it is).
fn interface_description(
    modules: &ModuleSet,
    memory: &Mem<'_>,
    types: &Types,
    v: &crate::snapshot::Variable,
) -> Option<String> {
    if let crate::snapshot::Value::Struct(fields) = &v.value
        && let Some(text) = interface_text(modules, memory, types, &v.type_name, fields)
    {
        return Some(text);
    }
    let mut found = Vec::new();
    nested_interfaces(&v.value, 0, &mut found);
    if found.is_empty() {
        return None;
    }
    let mut out = v.text.clone();
    for (pair, typ, data) in found {
        // The pair as the renderer printed it: `{_type = 0x…[ <sym>], data = 0x…[ <sym>]}`.
        let head = format!("{{{pair} = {typ:#x}");
        let Some(at) = out.find(&head) else { continue };
        let Some(len) = out[at..].find('}').map(|n| n + 1) else { continue };
        if !out[at..at + len].contains(&format!("data = {data:#x}")) {
            continue;
        }
        let fields = [pair_field(pair, typ), pair_field("data", data)];
        // The static type of a member is not in the value: `interface {}` for an
        // empty interface, the itab's interface type for another.
        let stat = match pair {
            "tab" => itab_interface_name(modules, memory, types, typ).unwrap_or_else(|| "interface".into()),
            _ => "interface {}".into(),
        };
        if let Some(text) = interface_text(modules, memory, types, &stat, &fields) {
            out.replace_range(at..at + len, &text);
        }
    }
    Some(out)
}

fn pair_field(name: &str, address: u64) -> crate::snapshot::Field {
    crate::snapshot::Field {
        name: name.into(),
        value: crate::snapshot::Value::Pointer { address, symbol: None, target: None },
    }
}

/// The name of the interface type of an itab (its first word, `inter`).
fn itab_interface_name(modules: &ModuleSet, memory: &Mem<'_>, types: &Types, tab: u64) -> Option<String> {
    let inter = memory.read_u64(tab).filter(|a| *a != 0)?;
    type_name(modules, memory, types, inter)
}

/// Interface pairs (`_type`/`tab` and `data` words) inside a value shown in its text:
/// struct members and array elements, not what pointers point at.
fn nested_interfaces(v: &crate::snapshot::Value, depth: usize, out: &mut Vec<(&'static str, u64, u64)>) {
    use crate::snapshot::Value;
    if depth > 16 || out.len() >= 64 {
        return;
    }
    let children: Box<dyn Iterator<Item = &Value>> = match v {
        Value::Struct(fields) => Box::new(fields.iter().map(|f| &f.value)),
        Value::Array { items, .. } => Box::new(items.iter()),
        _ => return,
    };
    for c in children {
        if let Value::Struct(fields) = c
            && let Some((pair, typ, data)) = interface_words(fields)
        {
            // A nil interface inside a value stays as the renderer printed it.
            if typ != 0 {
                out.push((pair, typ, data));
            }
            continue;
        }
        nested_interfaces(c, depth + 1, out);
    }
}

/// The words of an interface value's fields: ("_type" or "tab", that word, data).
fn interface_words(fields: &[crate::snapshot::Field]) -> Option<(&'static str, u64, u64)> {
    use crate::snapshot::Value;
    let word = |name: &str| {
        fields.iter().find(|f| f.name == name).and_then(|f| match f.value {
            Value::Pointer { address, .. } => Some(address),
            Value::UInt(u) => Some(u),
            _ => None,
        })
    };
    match (fields.len(), word("_type"), word("tab"), word("data")) {
        (2, Some(t), None, Some(d)) => Some(("_type", t, d)),
        (2, None, Some(tab), Some(d)) => Some(("tab", tab, d)),
        _ => None,
    }
}

/// The text of an interface value of static type `stat` whose fields are `fields`;
/// None when they are not an interface's pair or its dynamic type has no name.
fn interface_text(
    modules: &ModuleSet,
    memory: &Mem<'_>,
    types: &Types,
    stat: &str,
    fields: &[crate::snapshot::Field],
) -> Option<String> {
    let (typ, data) = match interface_words(fields)? {
        ("_type", t, d) => (t, d),
        // itab: inter *interfacetype, _type *_type, …
        (_, tab, d) => (if tab == 0 { 0 } else { memory.read_u64(tab + 8).unwrap_or(0) }, d),
    };
    if typ == 0 {
        return Some(format!("{stat} nil"));
    }
    let name = type_name(modules, memory, types, typ)?;
    let byte_at = |member: &str| {
        let mut b = [0u8; 1];
        let off = types.0.as_ref().and_then(|t| t.get(member)).copied();
        off.filter(|o| memory.read_exact(typ + o, &mut b)).map(|_| b[0]).unwrap_or(0)
    };
    // The value is the data word itself: kindDirectIface in the kind byte of older
    // runtimes, TFlagDirectIface in the flags of newer ones (each bit unused in the other).
    let (kind, direct) = (byte_at("kind"), byte_at("kind") & 32 != 0 || byte_at("tflag") & 32 != 0);
    let read = |n: usize| {
        let mut b = [0u8; 8];
        memory.read_exact(data, &mut b[..n]).then(|| u64::from_le_bytes(b))
    };
    let signed = |n: usize| read(n).map(|u| ((u << (64 - 8 * n)) as i64 >> (64 - 8 * n)).to_string());
    let unsigned = |n: usize| read(n).map(|u| u.to_string());
    // Kinds of the runtime (reflect.Kind).
    let value = match kind & 0x1f {
        _ if direct => match name.as_str() {
            "*errors.errorString" => go_string(memory, data).map(|s| format!("*{{s: {s:?}}}")),
            _ if data == 0 => Some("nil".into()),
            // A pointer to a named type: what it points at, as Delve shows it.
            n if n.starts_with('*') => Some(
                named_value(modules, memory, &n[1..], data).map(|t| format!("*{t}")).unwrap_or(format!("{data:#x}")),
            ),
            _ => Some(format!("{data:#x}")),
        },
        1 => read(1).map(|b| (b != 0).to_string()),
        2 | 6 => signed(8),
        3 => signed(1),
        4 => signed(2),
        5 => signed(4),
        7 | 11 | 12 => unsigned(8),
        8 => unsigned(1),
        9 => unsigned(2),
        10 => unsigned(4),
        13 => read(4).map(|u| f32::from_bits(u as u32).to_string()),
        14 => read(8).map(|u| f64::from_bits(u).to_string()),
        24 => go_string(memory, data).map(|s| format!("{s:?}")),
        // A struct, array or slice held by address: the value there, by its DWARF type.
        _ => Some(named_value(modules, memory, &name, data).unwrap_or(format!("*{data:#x}"))),
    };
    Some(format!("{stat}({name}) {}", value.unwrap_or_else(|| format!("<unreadable at {data:#x}>"))))
}

/// The value of the Go type `name` at `addr`, by the executable's DWARF; None when
/// the type is not there or its memory cannot be read.
fn named_value(modules: &ModuleSet, memory: &Mem<'_>, name: &str, addr: u64) -> Option<String> {
    let text = modules.render_named_type(name, addr, memory)?;
    (!text.starts_with("<error") && !text.starts_with("<unavailable")).then_some(text)
}

/// What Go prints after `panic: ` for the value `(typ, data)` of an `any`: strings
/// and errors by their text, runtime errors as the runtime words them, other values
/// by their type.
fn panic_message(modules: &ModuleSet, memory: &Mem<'_>, layout: &Layout, typ: u64, data: u64) -> String {
    let name = type_name(modules, memory, &layout.types, typ).unwrap_or_default();
    let t = name.as_str();
    let text = |addr: u64| go_string(memory, addr).unwrap_or_else(|| "<unreadable>".into());
    match t {
        "string" => text(data),
        "runtime.errorString" => format!("runtime error: {}", text(data)),
        "runtime.plainError" => text(data),
        "*errors.errorString" => memory.read_u64(data).map(text).unwrap_or_else(|| "<unreadable>".into()),
        "runtime.boundsError" => {
            bounds_error(memory, data).unwrap_or_else(|| "runtime error: index out of range".into())
        }
        "" => format!("<a value of unknown type at {typ:#x}>"),
        other if other.starts_with("*fmt.wrapError") => {
            memory.read_u64(data).map(text).unwrap_or_else(|| "<unreadable>".into())
        }
        other => format!("<a value of type {other}>"),
    }
}

/// The name of the Go type whose descriptor (`runtime._type`) is at `typ`, as the
/// runtime keeps it: the descriptor's `str` is an offset into the module's type
/// data (`runtime.firstmoduledata.types`), where a name is a flags byte, a uvarint
/// length and the bytes; `tflagExtraStar` says the stored name has a `*` too many.
fn type_name(modules: &ModuleSet, memory: &Mem<'_>, types: &Types, typ: u64) -> Option<String> {
    if typ == 0 {
        return None;
    }
    let (Some(t), Some(md)) = types else { return None };
    let (first, _) = modules.symbol_address("runtime.firstmoduledata")?;
    let types = memory.read_u64(first + md.get("types")?)?;
    let mut b4 = [0u8; 4];
    memory.read_exact(typ + t.get("str")?, &mut b4).then_some(())?;
    let off = i32::from_le_bytes(b4);
    let mut flag = [0u8; 1];
    memory.read_exact(typ + t.get("tflag")?, &mut flag).then_some(())?;
    let at = types.checked_add_signed(off as i64)?;
    let mut head = [0u8; 11];
    memory.read_exact(at, &mut head).then_some(())?;
    let (mut len, mut shift, mut used) = (0u64, 0u32, 0usize);
    for &b in &head[1..] {
        len |= u64::from(b & 0x7f) << shift;
        used += 1;
        if b & 0x80 == 0 {
            break;
        }
        shift += 7;
    }
    let mut bytes = vec![0u8; len.min(MAX_STRING) as usize];
    memory.read_exact(at + 1 + used as u64, &mut bytes).then_some(())?;
    let name = String::from_utf8_lossy(&bytes).into_owned();
    Some(if flag[0] & 2 != 0 { name.strip_prefix('*').unwrap_or(&name).to_string() } else { name })
}

/// `runtime.boundsError{x int64, y int, signed bool, code uint8}` as the runtime words it.
fn bounds_error(memory: &Mem<'_>, data: u64) -> Option<String> {
    let x = memory.read_u64(data)? as i64;
    let y = memory.read_u64(data + 8)? as i64;
    let mut b = [0u8; 2];
    memory.read_exact(data + 16, &mut b).then_some(())?;
    let (signed, code) = (b[0] != 0, b[1]);
    let x = if signed { x.to_string() } else { (x as u64).to_string() };
    Some(match code {
        0 => format!("runtime error: index out of range [{x}] with length {y}"),
        1 => format!("runtime error: slice bounds out of range [:{x}] with length {y}"),
        2 => format!("runtime error: slice bounds out of range [:{x}] with capacity {y}"),
        3 => format!("runtime error: slice bounds out of range [{x}:{y}]"),
        _ => format!("runtime error: slice bounds out of range ({x}, {y})"),
    })
}

/// Renders the goroutines' variables of a held live target from the bytes copied
/// while it was stopped, as its threads' are (captured then, rendered after).
pub fn render_variables(
    snap: &Snapshot,
    found: &mut Found,
    memory: &dyn Memory,
    opts: &crate::snapshot::values::VariableOptions,
) {
    let stacks: Vec<Vec<(bool, &mut Vec<Variable>)>> = found
        .variables
        .iter_mut()
        .map(|frames| {
            frames
                .iter_mut()
                .flat_map(|chain| {
                    let n = chain.len();
                    chain.iter_mut().enumerate().map(move |(i, vars)| (i + 1 < n, vars))
                })
                .collect()
        })
        .collect();
    crate::snapshot::values::render_stacks(snap, stacks, memory, opts);
}

/// For a held live target, whose interfaces [`annotate`] describes after it runs
/// again from the bytes copied while it was stopped: describes them once now,
/// through `memory` (the recorder), so that what a description reads (the dynamic
/// value, the strings it holds) is among those copies. The texts are dropped.
pub fn read_interfaces<'v>(
    modules: &ModuleSet,
    memory: &dyn Memory,
    found: &'v Found,
    threads: impl Iterator<Item = &'v Variable>,
) {
    let mem = Mem { memory, modules };
    for v in found.variables.iter().flatten().flatten().flatten().chain(threads) {
        interface_description(modules, &mem, &found.types, v);
    }
}

/// Symbolizes the goroutines' frames and writes what was found into the snapshot:
/// the extension, the classifiers, the panic annotation and attribute. Runs after
/// the built-in analysis, whose `abort` a Go panic replaces (the runtime raised
/// SIGABRT only to dump core).
pub fn annotate(snap: &mut Snapshot, modules: &ModuleSet, memory: &dyn Memory, found: Found) {
    let Found { goroutines, variables, panic, problems, types } = found;
    snap.problems.extend(problems);
    // Symbolized by the tracer's workers: a server's goroutines are tens of thousands of frames.
    let mut goroutines = super::spread(goroutines.into_iter().zip(variables).collect(), |(mut g, mut vars)| {
        let mut frames = Vec::with_capacity(g.frames.len());
        for (k, f) in std::mem::take(&mut g.frames).into_iter().enumerate() {
            let first = frames.len();
            modules.symbolize_into(f, &mut frames);
            // The variables of each function of the inline chain, innermost first.
            if let Some(lists) = vars.get_mut(k) {
                for (frame, list) in frames[first..].iter_mut().zip(lists.drain(..)) {
                    frame.variables = list;
                }
            }
        }
        g.frames = frames;
        g
    });
    let mem = Mem { memory, modules };
    let frames = snap
        .threads
        .iter_mut()
        .flat_map(|t| t.frames.iter_mut())
        .chain(goroutines.iter_mut().flat_map(|g| g.frames.iter_mut()));
    for v in frames.flat_map(|f| f.variables.iter_mut()) {
        describe_interface(modules, &mem, &types, v);
    }
    let on = |name: &str| {
        snap.threads.iter().any(|t| t.frames.iter().any(|f| f.function.as_deref() == Some(name)))
            || goroutines.iter().any(|g| g.frames.iter().any(|f| f.function.as_deref() == Some(name)))
    };
    let called = Called::on(on);
    classify(snap, panic.as_ref(), &called);
    snap.classifiers.dedup();
    snap.set_attribute("go.goroutines", &goroutines.len().to_string());
    snap.set_goroutines(&goroutines);
    super::free_aside(goroutines);
}

/// Which of the runtime's failure paths a snapshot's stacks show.
struct Called {
    fatal: bool,
    deadlock: bool,
    map_misuse: bool,
    /// `runtime.gopanic` on a stack (what is said when the panic record was not read).
    panicked: bool,
}

impl Called {
    /// From whether a function is on any stack.
    fn on(on: impl Fn(&str) -> bool) -> Called {
        Called {
            fatal: on("runtime.fatalthrow") || on("runtime.throw") || on("runtime.fatal"),
            deadlock: on("runtime.checkdead"),
            map_misuse: on("runtime.mapassign") || on("runtime.mapassign_faststr") || on("runtime.mapassign_fast64"),
            panicked: on("runtime.gopanic") || on("runtime.fatalpanic"),
        }
    }
}

/// `go-panic` or `go-fatal-error` instead of `abort`, with what is known of why.
fn classify(snap: &mut Snapshot, panic: Option<&Panic>, called: &Called) {
    let not_abort = |snap: &mut Snapshot| {
        snap.classifiers.retain(|c| c != "abort");
        snap.annotations.retain(|a| !a.text.starts_with("the process aborted itself"));
    };
    if let Some(p) = panic {
        not_abort(snap);
        snap.classifiers.push("go-panic".into());
        if let Some((sig, addr)) = p.signal {
            // A runtime error that began as a signal: what the fault was.
            if sig == 11 || sig == 7 {
                snap.classifiers.push(if addr < 4096 { "null-dereference" } else { "invalid-read" }.into());
            }
        }
        let signal = p.signal.map(|(s, a)| format!(" [signal {s} addr={a:#x}]")).unwrap_or_default();
        snap.annotations.push(note(format!("goroutine {} panicked: {}{signal}", p.goroutine, p.message)));
        snap.set_attribute("go.panic", &p.message);
    } else if called.panicked {
        not_abort(snap);
        snap.classifiers.push("go-panic".into());
        snap.annotations.push(note(
            "a goroutine panicked (its panic record was not read: without DWARF its layout is unknown; Go printed the value on stderr)"
                .into(),
        ));
    } else if called.fatal {
        not_abort(snap);
        snap.classifiers.push("go-fatal-error".into());
        let what = if called.deadlock {
            "fatal error: all goroutines are asleep - deadlock!".to_string()
        } else if called.map_misuse {
            "fatal error: concurrent map writes (or another map misuse)".to_string()
        } else {
            "fatal error (runtime.throw)".to_string()
        };
        snap.annotations.push(note(what.clone()));
        snap.set_attribute("go.fatal", &what);
    }
    snap.classifiers.dedup();
}

/// A Go program without DWARF (`-ldflags=-s -w`): its threads' frames come from Go's
/// function table, its goroutines and panic record cannot be read (their layout is
/// in DWARF); the failure is still told from the runtime functions on its stacks.
pub fn annotate_stripped(snap: &mut Snapshot) {
    let on = |name: &str| snap.threads.iter().any(|t| t.frames.iter().any(|f| f.function.as_deref() == Some(name)));
    if !on("runtime.goexit") && !on("runtime.mstart") && !on("runtime.rt0_go") && !on("runtime.main") {
        return;
    }
    let called = Called::on(on);
    classify(snap, None, &called);
}

fn note(text: String) -> Annotation {
    Annotation { scope: Scope::Snapshot, severity: Severity::Error, source: "bt go".into(), text }
}
