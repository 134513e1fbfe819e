//! The server's budgets, in one place. Every number a hostile client could push
//! against is bounded here or names the constant that bounds it:
//!
//! | what | bound | where |
//! |---|---|---|
//! | request head | 64 KiB, 16 trailer lines | [`super::http::Limits`] |
//! | request body | `--max-submission` (32 MiB), queries 1 MiB, login 64 KiB; chunk sizes checked, never wrap | `http::Request::body` |
//! | transfer | each read or write `--io-timeout` (10 s); a head or body 6× that in all, and at least 1 KiB/s after 5 s | `http::Limits` |
//! | connections | `--max-connections` (512); one address at most `--max-per-address` (64) and a quarter of the total | `http::Slot` |
//! | submissions in flight | [`Inflight`]: body + decode memory of all submissions being ingested, `--max-inflight` (1 GiB); beyond, 503 + `Retry-After` | here |
//! | snapshot decode | inflated ≤ 4 × max-submission; memory ≤ 256 × body, at least 16 MiB, at most 8 × max-submission; nesting ≤ 1024 | `snapshot::DecodeLimits::for_submission` |
//! | logins | 2 password hashes at once, 16 waiting; failures: 10 per address and 20 per user name in a burst, one more per 3 s, 429 + `Retry-After` | [`super::throttle`] |
//! | queries | 5 s, regex backtracking 20,000 steps per value and 1 KiB of pattern, 64 terms, 4 M group × fold cells, 250,000 values per page, results only for the page | `store::query` |
//! | a panic in a handler | 500 and a log line; the connection slot is released | `http::connection` |

use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

/// Longest a submission waits for room in the in-flight budget before 503.
pub const INFLIGHT_WAIT: Duration = Duration::from_secs(2);

/// Bytes held by submissions between reading their body and their
/// acknowledgement: bodies, what decoding them may allocate, and the writer
/// queue. Bounded, so that many large submissions at once get 503 instead of
/// exhausting memory.
pub struct Inflight {
    capacity: u64,
    used: Mutex<u64>,
    freed: Condvar,
}

/// A share of the in-flight budget, returned on drop.
pub struct Reservation<'a> {
    budget: &'a Inflight,
    bytes: u64,
}

impl Inflight {
    pub fn new(capacity: u64) -> Inflight {
        Inflight { capacity, used: Mutex::new(0), freed: Condvar::new() }
    }

    /// Reserves `bytes`, waiting up to [`INFLIGHT_WAIT`] for room; `None` when
    /// there is none (or the request alone is larger than the whole budget).
    pub fn reserve(&self, bytes: u64) -> Option<Reservation<'_>> {
        let mut r = Reservation { budget: self, bytes: 0 };
        r.grow_to(bytes).then_some(r)
    }

    /// Bytes reserved now.
    pub fn used(&self) -> u64 {
        *self.used.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Reservation<'_> {
    /// Grows (or shrinks) this reservation to `bytes`; false when there is no room in time.
    pub fn grow_to(&mut self, bytes: u64) -> bool {
        let b = self.budget;
        let mut used = b.used.lock().unwrap_or_else(|p| p.into_inner());
        if bytes <= self.bytes {
            *used -= self.bytes - bytes;
            self.bytes = bytes;
            b.freed.notify_all();
            return true;
        }
        let extra = bytes - self.bytes;
        if extra > b.capacity {
            return false;
        }
        let deadline = Instant::now() + INFLIGHT_WAIT;
        while *used + extra > b.capacity {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            used = b.freed.wait_timeout(used, left).unwrap_or_else(|p| p.into_inner()).0;
        }
        *used += extra;
        self.bytes = bytes;
        true
    }
}

impl Drop for Reservation<'_> {
    fn drop(&mut self) {
        let mut used = self.budget.used.lock().unwrap_or_else(|p| p.into_inner());
        *used -= self.bytes;
        self.budget.freed.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reservations_are_bounded_and_returned() {
        let b = Inflight::new(100);
        let mut a = b.reserve(60).expect("room");
        assert!(b.reserve(50).is_none(), "60 + 50 > 100");
        assert!(b.reserve(101).is_none(), "larger than the budget");
        assert!(a.grow_to(20));
        let c = b.reserve(50).expect("room after shrinking");
        assert_eq!(b.used(), 70);
        drop(a);
        drop(c);
        assert_eq!(b.used(), 0);
    }
}
