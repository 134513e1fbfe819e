//! A Rust program that crashes two ways (built with `rustc -g -C panic=abort`):
//! `crash panic` panics (abort → SIGABRT through the panic machinery),
//! `crash null` writes through a null raw pointer (SIGSEGV).

struct Account {
    id: u32,
    balance: i64,
}

#[inline(never)]
fn apply_withdrawal(account: &mut Account, amount: i64) {
    if amount > account.balance {
        panic!("account {} overdrawn: balance {}, withdrawal {}", account.id, account.balance, amount);
    }
    account.balance -= amount;
}

#[inline(never)]
fn settle(accounts: &mut [Account], amounts: &[i64]) {
    for (a, &m) in accounts.iter_mut().zip(amounts) {
        apply_withdrawal(a, m);
    }
}

#[inline(never)]
fn write_ledger(slot: *mut i64, value: i64) {
    // SAFETY: deliberately unsound; this example exists to crash.
    unsafe { std::ptr::write_volatile(slot, value) };
}

#[inline(never)]
fn flush_ledger(total: i64) {
    write_ledger(std::ptr::null_mut(), total);
}

fn main() {
    let mode = std::env::args().nth(1).unwrap_or_default();
    let mut accounts = vec![Account { id: 1, balance: 100 }, Account { id: 2, balance: 5 }];
    match mode.as_str() {
        "panic" => settle(&mut accounts, &[10, 50]),
        "null" => flush_ledger(accounts.iter().map(|a| a.balance).sum()),
        _ => {
            eprintln!("usage: crash panic|null");
            std::process::exit(2);
        }
    }
    println!("{}", accounts[0].balance);
}
