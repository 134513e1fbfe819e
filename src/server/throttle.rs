//! Login throttling: password hashes (Argon2id, ~19 MiB and tens of ms each) are
//! the most expensive thing an unauthenticated client can ask for. At most
//! [`HASHES_AT_ONCE`] run at once (a few more wait briefly, the rest get 503), and
//! failures are rate-limited per client address and per user name with token
//! buckets that refill, so nobody is locked out for ever. An address that has
//! logged in as a user before is exempt from that user's bucket: an attacker
//! guessing one user's password from elsewhere does not lock the real user out.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

/// Password hashes computed at once.
pub const HASHES_AT_ONCE: usize = 2;
/// Logins waiting for a hash slot; beyond, 503 at once.
pub const HASH_QUEUE: usize = 16;
/// Longest wait for a hash slot.
pub const HASH_WAIT: Duration = Duration::from_secs(5);
/// Failed logins an address may make in a burst, then one per [`REFILL`].
pub const ADDRESS_BURST: f64 = 10.0;
/// Failed logins a user name may take in a burst (from addresses it never logged in from).
pub const USER_BURST: f64 = 20.0;
/// One more attempt per this long.
pub const REFILL: Duration = Duration::from_secs(3);
/// Entries kept per map before the oldest full buckets are forgotten.
const MAX_ENTRIES: usize = 100_000;

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

impl Bucket {
    fn refreshed(self, burst: f64, now: Instant) -> Bucket {
        let gained = now.duration_since(self.at).as_secs_f64() / REFILL.as_secs_f64();
        Bucket { tokens: (self.tokens + gained).min(burst), at: now }
    }
}

#[derive(Default)]
struct State {
    addresses: HashMap<IpAddr, Bucket>,
    users: HashMap<String, Bucket>,
    /// (user, address) pairs that logged in successfully.
    known: HashMap<(String, IpAddr), Instant>,
    hashing: usize,
    waiting: usize,
}

/// Why a login is not tried now.
#[derive(Debug, Clone, PartialEq)]
pub enum Refusal {
    /// Too many failures: try again after this many seconds (429).
    Throttled { retry_after: u64 },
    /// Too many logins at once (503).
    Busy,
}

/// The login throttle of one server.
#[derive(Default)]
pub struct Throttle {
    state: Mutex<State>,
    freed: Condvar,
}

/// A hash slot, released on drop.
pub struct Permit<'a> {
    throttle: &'a Throttle,
}

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        let mut s = self.throttle.lock();
        s.hashing -= 1;
        self.throttle.freed.notify_one();
    }
}

/// The name a bucket is kept under: bounded, so a flood of long names stays small.
fn user_key(user: &str) -> String {
    user.chars().take(128).collect()
}

fn retry_after(b: Bucket) -> u64 {
    ((1.0 - b.tokens).max(0.0) * REFILL.as_secs_f64()).ceil().max(1.0) as u64
}

fn prune<K: Clone + Eq + std::hash::Hash>(map: &mut HashMap<K, Bucket>, burst: f64, now: Instant) {
    if map.len() >= MAX_ENTRIES {
        map.retain(|_, b| b.refreshed(burst, now).tokens < burst);
    }
}

impl Throttle {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Asks to try a password for `user` from `ip`: refused while either bucket is
    /// empty, or while too many hashes run; otherwise a permit for one hash.
    pub fn admit(&self, ip: IpAddr, user: &str) -> Result<Permit<'_>, Refusal> {
        let now = Instant::now();
        let user = &user_key(user);
        let mut s = self.lock();
        if let Some(b) = s.addresses.get(&ip).map(|b| b.refreshed(ADDRESS_BURST, now))
            && b.tokens < 1.0
        {
            return Err(Refusal::Throttled { retry_after: retry_after(b) });
        }
        if !s.known.contains_key(&(user.to_string(), ip))
            && let Some(b) = s.users.get(user).map(|b| b.refreshed(USER_BURST, now))
            && b.tokens < 1.0
        {
            return Err(Refusal::Throttled { retry_after: retry_after(b) });
        }
        if s.hashing >= HASHES_AT_ONCE {
            if s.waiting >= HASH_QUEUE {
                return Err(Refusal::Busy);
            }
            s.waiting += 1;
            let deadline = now + HASH_WAIT;
            while s.hashing >= HASHES_AT_ONCE {
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    s.waiting -= 1;
                    return Err(Refusal::Busy);
                }
                s = self.freed.wait_timeout(s, left).unwrap_or_else(|p| p.into_inner()).0;
            }
            s.waiting -= 1;
        }
        s.hashing += 1;
        Ok(Permit { throttle: self })
    }

    /// Records the outcome of a password check.
    pub fn record(&self, ip: IpAddr, user: &str, success: bool) {
        let now = Instant::now();
        let user = &user_key(user);
        let mut s = self.lock();
        if success {
            if s.known.len() >= MAX_ENTRIES {
                s.known.clear();
            }
            s.known.insert((user.to_string(), ip), now);
            return;
        }
        prune(&mut s.addresses, ADDRESS_BURST, now);
        let b = s.addresses.get(&ip).copied().unwrap_or(Bucket { tokens: ADDRESS_BURST, at: now });
        let mut b = b.refreshed(ADDRESS_BURST, now);
        b.tokens -= 1.0;
        s.addresses.insert(ip, b);
        if !s.known.contains_key(&(user.to_string(), ip)) {
            prune(&mut s.users, USER_BURST, now);
            let b = s.users.get(user).copied().unwrap_or(Bucket { tokens: USER_BURST, at: now });
            let mut b = b.refreshed(USER_BURST, now);
            b.tokens -= 1.0;
            s.users.insert(user.clone(), b);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_throttle_the_address_then_refill() {
        let t = Throttle::default();
        let ip: IpAddr = [10, 0, 0, 1].into();
        for _ in 0..ADDRESS_BURST as usize {
            let p = t.admit(ip, "alice").expect("within the burst");
            drop(p);
            t.record(ip, "alice", false);
        }
        match t.admit(ip, "alice") {
            Err(Refusal::Throttled { retry_after }) => assert!((1..=REFILL.as_secs()).contains(&retry_after)),
            other => panic!("want throttled, got {:?}", other.map(|_| ())),
        }
        // Another address is not affected by this one's failures (the user's bucket is larger).
        assert!(t.admit([10, 0, 0, 2].into(), "alice").is_ok());
    }

    #[test]
    fn a_known_address_is_not_locked_out_by_attacks_on_its_user() {
        let t = Throttle::default();
        let home: IpAddr = [10, 0, 0, 9].into();
        t.record(home, "alice", true);
        for i in 0..(USER_BURST as usize + 5) {
            let ip: IpAddr = [10, 1, (i / 200) as u8, (i % 200) as u8].into();
            t.record(ip, "alice", false);
        }
        assert!(matches!(t.admit([10, 2, 0, 1].into(), "alice"), Err(Refusal::Throttled { .. })));
        assert!(t.admit(home, "alice").is_ok(), "the address alice logged in from before still may");
    }

    #[test]
    fn hashes_at_once_are_bounded() {
        let t = Throttle::default();
        let ip: IpAddr = [10, 0, 0, 1].into();
        let held: Vec<_> = (0..HASHES_AT_ONCE).map(|_| t.admit(ip, "u").expect("slot")).collect();
        assert_eq!(t.lock().hashing, HASHES_AT_ONCE);
        drop(held);
        assert_eq!(t.lock().hashing, 0);
    }
}
