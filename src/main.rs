//! The `bt` multicall binary: picks the applet from argv[0] or argv[1] and maps the
//! result to an exit code. No logic lives here.

/// mimalloc: the tracer's workers free on one thread what another allocated, which
/// glibc's malloc serializes on the arena's lock (ARCHITECTURE.md, choices).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    bt::logging::init();
    let args: Vec<String> = std::env::args_os().map(|a| a.to_string_lossy().into_owned()).collect();
    std::process::exit(bt::cmd::dispatch(&args));
}
