//! Format version 2, frozen: the `Snapshot`, `Thread`, `Frame` and `Variable` as
//! version 2 encoded them, and their conversion to the current model.
//!
//! Version 3 appended `Variable::{type_id, location}` and `Snapshot::{types,
//! symbols}`; every other nested type is unchanged and shared with the current model.

use super::model::{
    self, Annotation, Attribute, Environment, Extension, Mapping, MemoryRegion, Module, Problem, Process, Registers,
    Signal, Source, Trust, Value, VariableKind,
};
use serde::{Deserialize, Serialize};

/// The version 2 snapshot: field order is the version 2 wire format.
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
    pub globals: Vec<Variable>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Thread {
    pub tid: i32,
    pub name: String,
    pub state: String,
    pub faulted: bool,
    pub registers: Registers,
    pub frames: Vec<Frame>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Frame {
    pub pc: u64,
    pub sp: u64,
    pub module: Option<String>,
    pub module_offset: u64,
    pub function: Option<String>,
    pub function_offset: Option<u64>,
    pub file: Option<String>,
    pub line: Option<u32>,
    pub column: Option<u32>,
    pub inlined: bool,
    pub trust: Trust,
    pub signal_frame: bool,
    pub registers: Vec<(u16, u64)>,
    pub variables: Vec<Variable>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Variable {
    pub name: String,
    pub kind: VariableKind,
    pub type_name: String,
    pub address: Option<u64>,
    pub text: String,
    pub value: Value,
}

impl From<Variable> for model::Variable {
    fn from(v: Variable) -> Self {
        // No type table before version 3: the text and structured value stay as
        // captured; the variable cannot be rendered again.
        model::Variable {
            name: v.name,
            kind: v.kind,
            type_name: v.type_name,
            address: v.address,
            text: v.text,
            value: v.value,
            type_id: None,
            location: model::Location::None,
        }
    }
}

impl From<Frame> for model::Frame {
    fn from(f: Frame) -> Self {
        model::Frame {
            pc: f.pc,
            sp: f.sp,
            module: f.module,
            module_offset: f.module_offset,
            function: f.function,
            function_offset: f.function_offset,
            file: f.file,
            line: f.line,
            column: f.column,
            inlined: f.inlined,
            trust: f.trust,
            signal_frame: f.signal_frame,
            registers: f.registers,
            variables: f.variables.into_iter().map(Into::into).collect(),
        }
    }
}

impl From<Thread> for model::Thread {
    fn from(t: Thread) -> Self {
        model::Thread {
            tid: t.tid,
            name: t.name,
            state: t.state,
            faulted: t.faulted,
            registers: t.registers,
            frames: t.frames.into_iter().map(Into::into).collect(),
        }
    }
}

impl From<Snapshot> for model::Snapshot {
    fn from(s: Snapshot) -> Self {
        model::Snapshot {
            uuid: s.uuid,
            timestamp: s.timestamp,
            source: s.source,
            process: s.process,
            signal: s.signal,
            threads: s.threads.into_iter().map(Into::into).collect(),
            modules: s.modules,
            maps: s.maps,
            environment: s.environment,
            attributes: s.attributes,
            classifiers: s.classifiers,
            annotations: s.annotations,
            memory: s.memory,
            problems: s.problems,
            extensions: s.extensions,
            globals: s.globals.into_iter().map(Into::into).collect(),
            types: Vec::new(),
            symbols: Vec::new(),
        }
    }
}
