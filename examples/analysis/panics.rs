//! Rust crashes, one per mode (argv[1]); built by tests/analysis_rust.rs with
//! `rustc -g -C panic=abort`, so a panic aborts the process with a core.

use std::hint::black_box;

#[inline(never)]
fn check_order(count: usize) {
    if count > 3 {
        panic!("too many widgets: {count} > 3");
    }
}

#[inline(never)]
fn literal() {
    panic!("the literal panic message");
}

#[inline(never)]
fn unwrap_none() {
    let v: Option<u32> = black_box(None);
    println!("{}", v.unwrap());
}

#[inline(never)]
fn recurse(n: u64) -> u64 {
    let pad = black_box([n; 64]);
    recurse(n + 1) + pad[3]
}

#[inline(never)]
fn null_write() {
    let p: *mut u64 = black_box(std::ptr::null_mut());
    unsafe { p.write_volatile(5) };
}

fn main() {
    match std::env::args().nth(1).as_deref() {
        Some("formatted") => check_order(black_box(7)),
        Some("literal") => literal(),
        Some("unwrap") => unwrap_none(),
        Some("overflow") => {
            black_box(recurse(0));
        }
        Some("null") => null_write(),
        _ => std::process::exit(2),
    }
}
