//! Aliases of the faulting address: other threads' registers, their frames'
//! recovered registers and their captured variables that hold the address or a
//! pointer into the same heap object — often the thread that freed or changed it.

use super::heap::chunk_size;
use super::{Findings, Reader};
use crate::snapshot::{Scope, Severity, Snapshot, Value};

const SOURCE: &str = "bt";
/// Pointers this close below the address count as "the same object" when no
/// heap chunk tells the object's size.
const NEAR: u64 = 64;
/// Most alias annotations written.
const MAX_ALIASES: usize = 16;

/// How `v` relates to the faulting address `addr`, when it does.
fn relation(reader: &Reader, v: u64, addr: u64) -> Option<String> {
    if v == addr {
        return Some("the faulting address".into());
    }
    if v < addr {
        if let Some(size) = chunk_size(reader, v)
            && addr - v < size
        {
            return Some(format!("a pointer to the heap object ({size} bytes) at {v:#x} that contains it"));
        }
        if addr - v <= NEAR {
            return Some(format!("{v:#x}, {} bytes below it", addr - v));
        }
    }
    None
}

fn pointer_values(v: &Value, out: &mut Vec<u64>, depth: usize) {
    if depth > 4 || out.len() > 256 {
        return;
    }
    match v {
        Value::Pointer { address, target, .. } => {
            out.push(*address);
            if let Some(t) = target {
                pointer_values(t, out, depth + 1);
            }
        }
        Value::UInt(u) => out.push(*u),
        Value::Int(i) => out.push(*i as u64),
        Value::Str { address, .. } => out.push(*address),
        // A `char *` whose characters could not be read renders as the unreadable
        // memory it points to: the pointer's value.
        Value::Unreadable { address } => out.push(*address),
        Value::Struct(fields) => fields.iter().for_each(|f| pointer_values(&f.value, out, depth + 1)),
        Value::Array { items, .. } => items.iter().take(64).for_each(|i| pointer_values(i, out, depth + 1)),
        _ => {}
    }
}

/// Annotates where other threads hold `addr` (the faulting thread is `fault_tid`).
pub fn run(snap: &Snapshot, fault_tid: i32, addr: u64, reader: &Reader, f: &mut Findings) {
    let mut n = 0;
    for t in snap.threads.iter().filter(|t| t.tid != fault_tid) {
        let mut said = false;
        for (name, v) in t.registers.named().iter().take(16) {
            if let Some(rel) = relation(reader, *v, addr) {
                f.annotate(
                    Scope::Thread(t.tid),
                    Severity::Warning,
                    SOURCE,
                    format!("thread {} \"{}\" holds {rel} in {name} (innermost frame)", t.tid, t.name),
                );
                n += 1;
                said = true;
                break;
            }
        }
        for (idx, fr) in t.frames.iter().enumerate() {
            if n >= MAX_ALIASES {
                return;
            }
            for (regno, v) in &fr.registers {
                if said {
                    break;
                }
                if let Some(rel) = relation(reader, *v, addr) {
                    f.annotate(
                        Scope::Frame(t.tid, idx as u32),
                        Severity::Warning,
                        SOURCE,
                        format!(
                            "thread {} holds {rel} in DWARF register {regno} of frame #{idx} ({})",
                            t.tid,
                            fr.function.as_deref().unwrap_or("??")
                        ),
                    );
                    n += 1;
                    said = true;
                }
            }
            for var in &fr.variables {
                let mut vals = Vec::new();
                pointer_values(&var.value, &mut vals, 0);
                // A variable whose own memory is unreadable is not a pointer to it.
                if let Value::Unreadable { address } = var.value
                    && var.address == Some(address)
                {
                    vals.clear();
                }
                if let Some(rel) = vals.iter().find_map(|v| relation(reader, *v, addr)) {
                    f.annotate(
                        Scope::Variable(t.tid, idx as u32, var.name.clone()),
                        Severity::Warning,
                        SOURCE,
                        format!(
                            "thread {}: variable {} in {} holds {rel}",
                            t.tid,
                            var.name,
                            fr.function.as_deref().unwrap_or("??")
                        ),
                    );
                    n += 1;
                }
            }
        }
        if n >= MAX_ALIASES {
            return;
        }
    }
}
