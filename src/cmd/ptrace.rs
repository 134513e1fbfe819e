//! `bt ptrace`: snapshot a live process or a core file; print it as text or JSON, or
//! write the binary snapshot.

use crate::snapshot::{Snapshot, render, values};
use crate::trace::{self, TraceOptions};
use anyhow::{Context, bail};
use argh::FromArgs;
use std::io::Write;
use std::path::PathBuf;

/// Snapshot a live process (PID), a core file (--core CORE [EXE]) or a minidump
/// (--minidump FILE) and print all threads.
#[derive(FromArgs, Debug)]
struct Args {
    /// read this ELF core file instead of a live process
    #[argh(option)]
    core: Option<PathBuf>,
    /// read this minidump (Breakpad, Crashpad; Linux x86-64) instead of a live process
    #[argh(option)]
    minidump: Option<PathBuf>,
    /// print a saved snapshot file again (no target needed); variables are rendered
    /// again from the snapshot's types and kept memory
    #[argh(option)]
    snapshot: Option<PathBuf>,
    /// with --snapshot: print this expression instead of the snapshot, e.g.
    /// 'frame 2 node->next->value', 'sh.corners[1].y', '*p' (repeatable)
    #[argh(option)]
    print: Vec<String>,
    /// how many pointers deep structured values follow (default 3)
    #[argh(option)]
    max_depth: Option<u32>,
    /// write the binary snapshot to this file (nothing is printed unless --json or --text)
    #[argh(option, short = 'o')]
    output: Option<PathBuf>,
    /// print the snapshot as JSON
    #[argh(switch)]
    json: bool,
    /// print the text backtrace even when -o is given
    #[argh(switch)]
    text: bool,
    /// add attributes: key:value[,key:value...] (repeatable)
    #[argh(option)]
    kv: Vec<String>,
    /// only this thread (repeatable)
    #[argh(option)]
    thread: Vec<i32>,
    /// treat this thread as the faulting thread
    #[argh(option)]
    fault_thread: Option<i32>,
    /// extra directory searched for separate debug files (repeatable)
    #[argh(option)]
    debug_dir: Vec<PathBuf>,
    /// the perf map naming JIT code (`node --perf-basic-prof` writes /tmp/perf-PID.map);
    /// a live process's own is read without it
    #[argh(option)]
    jit_map: Option<PathBuf>,
    /// maximum frames per thread (default 1024)
    #[argh(option, default = "1024")]
    max_frames: usize,
    /// print registers of each thread in text output
    #[argh(switch)]
    registers: bool,
    /// print the problems met while tracing in text output
    #[argh(switch)]
    problems: bool,
    /// skip variables (parameters, locals, memory)
    #[argh(switch)]
    no_variables: bool,
    /// capture variables of the faulting thread only
    #[argh(switch)]
    faulted: bool,
    /// capture this global, static or thread-local variable by name (repeatable)
    #[argh(option)]
    global: Vec<String>,
    /// bytes of stacks and reached heap objects kept in the snapshot (default 4 MiB; K/M/G suffixes)
    #[argh(option)]
    memory_budget: Option<String>,
    /// run this rhai analysis module (repeatable; after --modules-dir)
    #[argh(option)]
    module: Vec<PathBuf>,
    /// run every *.rhai module in this directory (sorted by name)
    #[argh(option)]
    modules_dir: Option<PathBuf>,
    /// add this classifier to the snapshot by hand (repeatable)
    #[argh(option)]
    classifier: Vec<String>,
    /// skip the built-in analysis (classifiers and annotations)
    #[argh(switch)]
    no_analysis: bool,
    /// PID of a live process, or (with --core) the executable
    #[argh(positional)]
    target: Vec<String>,
}

pub fn run(name: &str, raw: &[String]) -> anyhow::Result<i32> {
    let args: Args = match super::parse_args(name, raw) {
        Ok(a) => a,
        Err(code) => return Ok(code),
    };
    // One trace and exit: a big one may have its heap in huge pages (crate::thp).
    let mut opts = TraceOptions { huge_pages_from: Some(crate::thp::MANY_THREADS), ..TraceOptions::default() };
    opts.walk.max_frames = args.max_frames.max(1);
    opts.threads = args.thread.clone();
    opts.fault_thread = args.fault_thread;
    opts.symbols.debug_dirs = args.debug_dir.clone();
    opts.symbols.jit_map = args.jit_map.clone();
    opts.variables.mode = if args.no_variables {
        trace::VariableMode::None
    } else if args.faulted {
        trace::VariableMode::Faulted
    } else {
        trace::VariableMode::All
    };
    opts.variables.globals = args.global.clone();
    if let Some(d) = args.max_depth {
        let o = &mut opts.variables.options;
        o.keep_depth = o.keep_depth.saturating_sub(o.max_depth).saturating_add(d);
        o.max_depth = d;
    }
    if let Some(b) = &args.memory_budget {
        opts.variables.memory_budget = parse_size(b)
            .with_context(|| format!("bad --memory-budget {b:?}: expected bytes with an optional K, M or G suffix"))?;
    }
    if args.output.is_none() && !args.json {
        // Only text is printed: no memory is kept for a snapshot nobody saves, and
        // no kernel stack read (the text does not show them; hydra and -o do).
        opts.variables.memory_budget = 0;
        // Objects read only to be kept (one pointer deeper than shown) are not read.
        let o = &mut opts.variables.options;
        o.keep_depth = o.max_depth;
        opts.live.kernel_stacks = false;
    }
    for m in &args.module {
        if !m.is_file() {
            bail!("module {}: no such file", m.display());
        }
    }
    if let Some(dir) = &args.modules_dir
        && !dir.is_dir()
    {
        bail!("modules directory {}: not a directory", dir.display());
    }
    opts.analysis.modules = args.module.clone();
    opts.analysis.modules_dir = args.modules_dir.clone();
    opts.analysis.classifiers = args.classifier.clone();
    opts.analysis.no_builtin = args.no_analysis;
    if let Ok(defaults) = std::env::var("BACKTRACE_DEFAULTS") {
        opts.attributes.extend(crate::snapshot::parse_defaults(&defaults));
    }
    for spec in &args.kv {
        opts.attributes.extend(trace::parse_kv(spec).map_err(anyhow::Error::msg)?);
    }

    if !args.print.is_empty() && args.snapshot.is_none() {
        bail!("--print evaluates in a saved snapshot: give --snapshot FILE");
    }
    let snap = if let Some(path) = &args.snapshot {
        if args.core.is_some() || !args.target.is_empty() {
            bail!("--snapshot prints a saved snapshot; it takes no pid, core or executable");
        }
        let mut snap = Snapshot::read_file(path).with_context(|| format!("reading snapshot {}", path.display()))?;
        if !args.print.is_empty() {
            for expr in &args.print {
                let (_, text) = crate::snapshot::print::print(&snap, expr, &opts.variables.options)
                    .with_context(|| format!("printing {expr:?} from {}", path.display()))?;
                println!("{expr} = {text}");
            }
            return Ok(super::exit::OK);
        }
        values::render_snapshot(&mut snap, &opts.variables.options);
        snap
    } else if let Some(md) = &args.minidump {
        let bytes = std::fs::read(md).with_context(|| format!("reading {}", md.display()))?;
        trace::trace_minidump(&md.display().to_string(), &bytes, &opts)
            .with_context(|| format!("tracing minidump {}", md.display()))?
    } else if let Some(core) = &args.core {
        if args.target.len() > 1 {
            bail!("expected at most one executable after --core, got {}", args.target.len());
        }
        let exe = args.target.first().map(PathBuf::from);
        trace::trace_core(core, exe.as_deref(), &opts).with_context(|| format!("tracing core {}", core.display()))?
    } else {
        let [pid] = args.target.as_slice() else {
            bail!("expected a PID, or --core CORE [EXE] (see --help)");
        };
        let pid: i32 = pid.parse().ok().filter(|p| *p > 0).with_context(|| format!("not a pid: {pid:?}"))?;
        trace::trace_pid(pid, &opts)?
    };

    if let Some(out) = &args.output {
        snap.write_file(out).with_context(|| format!("writing snapshot {}", out.display()))?;
        eprintln!("{name}: wrote snapshot {} ({} threads) to {}", snap.uuid, snap.threads.len(), out.display());
    }
    if args.json {
        let text = serde_json::to_string_pretty(&snap).context("rendering JSON")?;
        println!("{text}");
    } else if args.output.is_none() || args.text {
        let opts = render::TextOptions { registers: args.registers, problems: args.problems };
        // Written part by part, as several threads wrote it; a reader that stopped
        // early (`| head`) ends the output quietly.
        let mut stdout = std::io::stdout().lock();
        let written = render::text_parts(&snap, &opts)
            .iter()
            .try_for_each(|part| stdout.write_all(part.as_bytes()))
            .and_then(|()| stdout.flush());
        match written {
            Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
                return Err(anyhow::Error::new(e).context("writing the text"));
            }
            _ => {}
        }
    }
    // The process exits next: freeing a big snapshot value by value (a 1,000-thread
    // one with variables is millions of small allocations) is work nobody waits for.
    std::mem::forget(snap);
    Ok(super::exit::OK)
}

/// `4096`, `64K`, `4M`, `1G` → bytes (see [`crate::units`]).
fn parse_size(s: &str) -> Option<usize> {
    crate::units::size(s).ok().and_then(|v| usize::try_from(v).ok())
}

#[cfg(test)]
mod tests {
    #[test]
    fn sizes() {
        assert_eq!(super::parse_size("4096"), Some(4096));
        assert_eq!(super::parse_size("64K"), Some(65536));
        assert_eq!(super::parse_size("4M"), Some(4 << 20));
        assert_eq!(super::parse_size("x"), None);
    }
}
