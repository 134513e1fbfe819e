//! The `bt` multicall binary: picks the applet from argv[0] or argv[1] and maps the
//! result to an exit code. No logic lives here.

fn main() {
    bt::logging::init();
    let args: Vec<String> = std::env::args_os().map(|a| a.to_string_lossy().into_owned()).collect();
    std::process::exit(bt::cmd::dispatch(&args));
}
