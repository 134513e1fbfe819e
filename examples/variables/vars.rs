// Known values in Rust: &str, String, Vec, Option, a struct and a static; crashes
// with SIGSEGV writing through a null pointer in `smash`.
use std::hint::black_box;

pub struct Account {
    pub id: u32,
    pub owner: String,
    pub balance: i64,
    pub tags: Vec<u16>,
    pub parent: Option<u32>,
}

pub static LIMIT: i64 = 5000;

#[inline(never)]
fn smash(acct: &Account, label: &str, factor: i32) -> i64 {
    let doubled = acct.balance * 2 + factor as i64;
    let maybe: Option<i32> = Some(7);
    let nothing: Option<i32> = None;
    let p = black_box(0usize) as *mut i64;
    black_box((&maybe, &nothing, label));
    unsafe { std::ptr::write_volatile(p, doubled) };
    doubled
}

fn main() {
    let acct = Account { id: 17, owner: String::from("grace"), balance: -250, tags: vec![1, 2, 3], parent: Some(4) };
    let label = "checking";
    let n = smash(black_box(&acct), black_box(label), black_box(3));
    println!("{n} {}", LIMIT);
}
