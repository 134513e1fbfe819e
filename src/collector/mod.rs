//! coresnap, the crash collector: the kernel's pipe handler ([`ingest`]), the archive
//! ([`spool`]), the daemon that traces and ships ([`daemon`]), its configuration
//! ([`config`]) and the core_pattern installer ([`install`]).
//!
//! Invariant: every crash the kernel hands us leaves a `meta.json` in the archive
//! before anything else happens to it, and each crash sits in exactly one stage
//! directory; stage changes are single renames, so a restart resumes exactly.

pub mod config;
pub mod daemon;
pub mod ingest;
pub mod install;
pub mod spool;

pub use config::Config;
pub use spool::{Spool, Stage};
