//! bt: a post-mortem debugging platform for native software on Linux x86-64.
//!
//! One library, one thin binary. Dependencies flow one way: [`snapshot`] at the
//! bottom; producers ([`capture`], [`symbols`], [`unwind`], [`analysis`], [`trace`]) above it;
//! consumers ([`dedup`]) above that; [`cmd`] (the applets) on top. See ARCHITECTURE.md.

pub mod analysis;
pub mod capture;
pub mod cmd;
pub mod collector;
pub mod dedup;
pub mod logging;
pub mod notify;
pub mod query;
pub mod server;
pub mod snapshot;
pub mod store;
pub mod symbols;
pub mod thp;
pub mod trace;
pub mod units;
pub mod unwind;
pub mod viewer;
