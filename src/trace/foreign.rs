//! Minidumps of other platforms (Windows, macOS, Linux on ARM …): bt's own tracer
//! reads Linux x86-64 processes only, so these are walked by `minidump-processor`
//! (rust-minidump's stack walker: CFI and Breakpad `.sym` files where uploaded,
//! frame pointers, then stack scanning), driven synchronously, and become a
//! snapshot that says so: a problem names the walker, frames found by scanning are
//! marked `scan` (and kept out of the fingerprint by the rules), the crash reason
//! is an annotation. Variables, analysis and classifiers beyond the crash reason
//! are not available for them.

use std::path::PathBuf;

use minidump::Minidump;
use minidump_processor::ProcessorOptions;
use minidump_unwind::{FrameTrust, Symbolizer, simple_symbol_supplier};

use crate::capture::CaptureError;
use crate::snapshot::{Annotation, Frame, Module, Problem, Process, Scope, Severity, Snapshot, Source, Thread, Trust};

fn trust(t: FrameTrust) -> Trust {
    match t {
        FrameTrust::Context => Trust::Context,
        FrameTrust::CallFrameInfo | FrameTrust::PreWalked => Trust::Cfi,
        FrameTrust::FramePointer => Trust::FramePointer,
        _ => Trust::Scan,
    }
}

/// Walks a minidump of another platform; `sym_roots` hold Breakpad symbol trees
/// (`NAME/ID/NAME.sym`).
pub fn snapshot(name: &str, bytes: &[u8], sym_roots: Vec<PathBuf>) -> Result<Snapshot, CaptureError> {
    let dump = Minidump::read(bytes).map_err(|e| CaptureError::Minidump(format!("unreadable minidump: {e}")))?;
    let provider = Symbolizer::new(simple_symbol_supplier(sym_roots));
    let state = smol::block_on(minidump_processor::process_minidump_with_options(
        &dump,
        &provider,
        ProcessorOptions::default(),
    ))
    .map_err(|e| CaptureError::Minidump(format!("walking the minidump: {e}")))?;
    let os = state.system_info.os.to_string();
    let cpu = state.system_info.cpu.to_string();
    let mut snap = Snapshot {
        uuid: String::new(),
        source: Source::Core(format!("minidump {name} ({os} {cpu})")),
        process: Process { pid: state.process_id.unwrap_or(0) as i32, ..Default::default() },
        ..Default::default()
    };
    if let Some(main) = state.modules.main_module() {
        use minidump::Module as _;
        let main = main.code_file().into_owned();
        snap.process.comm = main.rsplit(['/', '\\']).next().unwrap_or(&main).to_string();
        snap.process.exe = main;
    }
    for m in state.modules.iter() {
        use minidump::Module as _;
        snap.modules.push(Module {
            path: m.code_file().into_owned(),
            build_id: m.debug_identifier().map(|d| d.breakpad().to_string()),
            start: m.base_address(),
            end: m.base_address().saturating_add(m.size()),
            ..Default::default()
        });
    }
    let crashing = state.requesting_thread;
    for (i, cs) in state.threads.iter().enumerate() {
        let frames = cs
            .frames
            .iter()
            .map(|f| Frame {
                pc: f.instruction,
                module: f.module.as_ref().map(|m| {
                    use minidump::Module as _;
                    m.code_file().into_owned()
                }),
                module_offset: f
                    .module
                    .as_ref()
                    .map(|m| {
                        use minidump::Module as _;
                        f.instruction.saturating_sub(m.base_address())
                    })
                    .unwrap_or(0),
                function: f.function_name.clone(),
                file: f.source_file_name.clone(),
                line: f.source_line,
                trust: trust(f.trust),
                ..Default::default()
            })
            .collect();
        snap.threads.push(Thread {
            tid: cs.thread_id as i32,
            name: cs.thread_name.clone().unwrap_or_default(),
            faulted: Some(i) == crashing && state.exception_info.is_some(),
            frames,
            ..Default::default()
        });
    }
    if let Some(e) = &state.exception_info {
        snap.annotations.push(Annotation {
            scope: Scope::Snapshot,
            severity: Severity::Error,
            source: "minidump-processor".into(),
            text: format!("{} at {:#x}", e.reason, e.address.0),
        });
        snap.classifiers.push(format!("{os}-exception"));
    }
    snap.problems.push(Problem::new(
        Scope::Snapshot,
        format!(
            "a minidump of {os} on {cpu}: walked by minidump-processor (Breakpad symbols where uploaded); \
             bt's tracer, variables and analysis cover Linux x86-64 only"
        ),
    ));
    snap.attributes.push(crate::snapshot::Attribute { key: "minidump.os".into(), value: os });
    snap.attributes.push(crate::snapshot::Attribute { key: "minidump.cpu".into(), value: cpu });
    Ok(snap)
}
