//! Corpus program (Rust, built with panic=abort): six distinct bugs, each reachable
//! through six paths.
//! usage: bugs BUG PATH [DEPTH]
//! BUG:  unwrap_none index_oob explicit_panic refcell raw_null div_zero
//! PATH: direct caller_a caller_b loop thread recurse
use std::cell::RefCell;
use std::hint::black_box;

struct User {
    name: String,
}

// Bug 1: an address without a port.
fn parse_port(addr: &str) -> u16 {
    let port = addr.split(':').nth(1).unwrap();
    port.parse().unwrap_or(0)
}

// Bug 2: a user id past the end of the table.
fn lookup_user(users: &[User], id: usize) -> &str {
    &users[id].name
}

// Bug 3: a broken invariant, reported with panic!.
fn check_invariant(balance: i64) {
    if balance < 0 {
        panic!("negative balance: {balance}");
    }
}

// Bug 4: a RefCell borrowed mutably twice.
fn update_cache(cache: &RefCell<Vec<u32>>) {
    let first = cache.borrow_mut();
    let mut second = cache.borrow_mut();
    second.push(first.len() as u32);
}

// Bug 5: a raw pointer that was never set.
fn read_raw(p: *const u32) -> u32 {
    unsafe { std::ptr::read_volatile(p) }
}

// Bug 6: a ratio over zero samples.
fn compute_ratio(total: u64, n: u64) -> u64 {
    total / n
}

fn run_bug(bug: &str) {
    match bug {
        "unwrap_none" => {
            black_box(parse_port(black_box("localhost")));
        }
        "index_oob" => {
            let users = vec![User { name: "a".into() }, User { name: "b".into() }];
            black_box(lookup_user(&users, black_box(5)));
        }
        "explicit_panic" => check_invariant(black_box(-3)),
        "refcell" => update_cache(&RefCell::new(vec![1])),
        "raw_null" => {
            black_box(read_raw(black_box(std::ptr::null())));
        }
        "div_zero" => {
            black_box(compute_ratio(black_box(10), black_box(0)));
        }
        _ => {
            eprintln!("unknown bug {bug}");
            std::process::exit(2);
        }
    }
}

#[inline(never)]
fn handle_request_a(bug: &str) {
    run_bug(bug);
    black_box(1);
}

#[inline(never)]
fn process_item(bug: &str, i: usize) {
    if black_box(i) < 10 {
        run_bug(bug);
    }
}

#[inline(never)]
fn handle_batch_b(bug: &str) {
    for i in 0..1 {
        process_item(bug, i);
    }
}

#[inline(never)]
fn walk(bug: &str, depth: u32) {
    if depth == 0 {
        run_bug(bug);
    } else {
        walk(bug, depth - 1);
    }
    black_box(depth);
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 3 {
        eprintln!("usage: {} BUG PATH [DEPTH]", args[0]);
        std::process::exit(2);
    }
    let bug = args[1].clone();
    let depth: u32 = args.get(3).and_then(|d| d.parse().ok()).unwrap_or(3);
    match args[2].as_str() {
        "direct" => run_bug(&bug),
        "caller_a" => handle_request_a(&bug),
        "caller_b" => handle_batch_b(&bug),
        "loop" => {
            let handlers: Vec<Box<dyn Fn()>> = vec![Box::new(move || run_bug(&bug))];
            for h in &handlers {
                h();
            }
        }
        "thread" => {
            let t = std::thread::spawn(move || run_bug(&bug));
            let _ = t.join();
        }
        "recurse" => walk(&bug, depth),
        p => {
            eprintln!("unknown path {p}");
            std::process::exit(2);
        }
    }
}
