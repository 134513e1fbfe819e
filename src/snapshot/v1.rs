//! Format version 1, frozen: the `Snapshot` as version 1 encoded it, and its
//! conversion to the current model.
//!
//! Version 2 only appended `Snapshot::globals`; every nested type is version 2's,
//! so they are shared with `v2` (which converts them on to the current model). When
//! a nested type changes, the version that changes it freezes its own copy (see
//! FORMAT.md).

use super::model::{
    Annotation, Attribute, Environment, Extension, Mapping, MemoryRegion, Module, Problem, Process, Signal, Source,
};
use super::v2::Thread;
use serde::{Deserialize, Serialize};

/// The version 1 snapshot: field order is the version 1 wire format.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Snapshot {
    pub uuid: String,
    pub timestamp: u64,
    pub source: Source,
    pub process: Process,
    pub signal: Option<Signal>,
    pub threads: Vec<Thread>,
    pub modules: Vec<Module>,
    pub maps: Vec<Mapping>,
    pub environment: Environment,
    pub attributes: Vec<Attribute>,
    pub classifiers: Vec<String>,
    pub annotations: Vec<Annotation>,
    pub memory: Vec<MemoryRegion>,
    pub problems: Vec<Problem>,
    pub extensions: Vec<Extension>,
}

impl From<Snapshot> for super::v2::Snapshot {
    fn from(s: Snapshot) -> Self {
        super::v2::Snapshot {
            uuid: s.uuid,
            timestamp: s.timestamp,
            source: s.source,
            process: s.process,
            signal: s.signal,
            threads: s.threads,
            modules: s.modules,
            maps: s.maps,
            environment: s.environment,
            attributes: s.attributes,
            classifiers: s.classifiers,
            annotations: s.annotations,
            memory: s.memory,
            problems: s.problems,
            extensions: s.extensions,
            globals: Vec::new(),
        }
    }
}
