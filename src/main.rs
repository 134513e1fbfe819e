//! The `bt` multicall binary: picks the applet from argv[0] or argv[1] and maps the
//! result to an exit code. No logic lives here.

/// mimalloc: the tracer's workers free on one thread what another allocated, which
/// glibc's malloc serializes on the arena's lock (ARCHITECTURE.md, choices).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Huge pages stay off for bt's heap unless one trace turns them on (`bt::thp`): set
/// from `.preinit_array`, which runs before every constructor and allocation (mimalloc's
/// first arena included), so that not even the runtime's first pages are huge ones.
#[used]
#[unsafe(link_section = ".preinit_array")]
static HUGE_PAGES_OFF: extern "C" fn() = huge_pages_off;

extern "C" fn huge_pages_off() {
    bt::thp::allow(false);
}

fn main() {
    bt::logging::init();
    let args: Vec<String> = std::env::args_os().map(|a| a.to_string_lossy().into_owned()).collect();
    std::process::exit(bt::cmd::dispatch(&args));
}
