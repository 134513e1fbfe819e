//! The snapshot data model (format version 3): plain data with public fields.
//!
//! Every type here is encoded with bincode (positional, not self-describing), so
//! the field order IS the wire format. Never reorder, insert or remove a field in
//! place: freeze this file as `v1.rs`, bump [`super::FORMAT_VERSION`] and convert
//! old versions upward in `super::decode`. See FORMAT.md.

use serde::{Deserialize, Serialize};

/// One snapshot of one process: the unit every producer writes and every
/// consumer reads.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Snapshot {
    /// Random 128-bit id, lowercase hex with dashes (UUID v4 layout).
    pub uuid: String,
    /// When the snapshot was taken (live) or the core was read, Unix seconds.
    pub timestamp: u64,
    /// Where the process state came from.
    pub source: Source,
    pub process: Process,
    /// The signal that killed or stopped the process, when there is one.
    pub signal: Option<Signal>,
    /// All threads; the faulting thread (if any) is first.
    pub threads: Vec<Thread>,
    /// Loaded modules (executable, shared libraries, vDSO).
    pub modules: Vec<Module>,
    /// The memory map (`/proc/PID/maps` or the core's view of it).
    pub maps: Vec<Mapping>,
    pub environment: Environment,
    /// Free-form key/values: `--kv`, `BACKTRACE_DEFAULTS`, automatic ones.
    pub attributes: Vec<Attribute>,
    /// Short tags written by analysis (`null-dereference`, `abort`, ...).
    pub classifiers: Vec<String>,
    /// Sentences written by analysis, attached to the snapshot or a part of it.
    pub annotations: Vec<Annotation>,
    /// Raw memory kept so that values can be re-read without the core.
    pub memory: Vec<MemoryRegion>,
    /// Problems met while producing the snapshot; a snapshot is never all-or-nothing.
    pub problems: Vec<Problem>,
    /// Named, versioned blobs for data a later producer adds before the model
    /// grows a field for it. Unknown keys are carried along untouched.
    pub extensions: Vec<Extension>,
    /// Globals, statics and thread-locals asked for by name (`--global`), since
    /// version 2. Thread-locals are read in the faulting (or first) thread.
    pub globals: Vec<Variable>,
    /// The types of the captured variables and of what their pointers lead to, since
    /// version 3; `Variable::type_id` and the types' own references index it.
    pub types: Vec<Type>,
    /// Names of the code and data addresses rendering asked for (function pointers,
    /// pointers into globals), since version 3, so re-rendering needs no binaries.
    pub symbols: Vec<SymbolName>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    /// A running process, frozen with ptrace.
    #[default]
    Live,
    /// An ELF core file at this path.
    Core(String),
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Process {
    pub pid: i32,
    pub ppid: i32,
    /// Absolute path of the executable, when known.
    pub exe: String,
    /// Short command name (`comm`, at most 15 bytes on Linux).
    pub comm: String,
    pub cmdline: Vec<String>,
    pub uid: u32,
    pub gid: u32,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Signal {
    pub signo: i32,
    /// `SIGSEGV`, `SIGABRT`, ...
    pub name: String,
    /// `si_code`.
    pub code: i32,
    /// Human reading of `si_code` for this signal (`SEGV_MAPERR`, `SI_TKILL`, ...).
    pub code_name: String,
    /// `si_addr` for the fault signals (SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGTRAP).
    pub fault_address: Option<u64>,
    /// The thread the signal was delivered to.
    pub tid: i32,
    /// Sender pid for signals sent by a process (`kill`, `tgkill`).
    pub sender_pid: Option<i32>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Thread {
    pub tid: i32,
    pub name: String,
    /// One-letter kernel state (`R`, `S`, `D`, `t`, ...) as in `/proc/PID/task/TID/stat`.
    pub state: String,
    /// True for the thread the fatal signal was delivered to.
    pub faulted: bool,
    /// The registers at the moment of capture (frame 0).
    pub registers: Registers,
    /// Innermost first. Inlined frames are frames of their own (`inlined: true`)
    /// placed before the physical frame that contains them, as gdb lists them.
    pub frames: Vec<Frame>,
}

/// The x86-64 general purpose registers of a thread.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Registers {
    pub rax: u64,
    pub rbx: u64,
    pub rcx: u64,
    pub rdx: u64,
    pub rsi: u64,
    pub rdi: u64,
    pub rbp: u64,
    pub rsp: u64,
    pub r8: u64,
    pub r9: u64,
    pub r10: u64,
    pub r11: u64,
    pub r12: u64,
    pub r13: u64,
    pub r14: u64,
    pub r15: u64,
    pub rip: u64,
    pub eflags: u64,
    pub cs: u64,
    pub ss: u64,
    pub ds: u64,
    pub es: u64,
    pub fs: u64,
    pub gs: u64,
    pub fs_base: u64,
    pub gs_base: u64,
    pub orig_rax: u64,
}

impl Registers {
    /// The value of a register by its DWARF number (x86-64 psABI numbering:
    /// 0 rax, 1 rdx, 2 rcx, 3 rbx, 4 rsi, 5 rdi, 6 rbp, 7 rsp, 8-15 r8-r15, 16 rip).
    pub fn by_dwarf(&self, regno: u16) -> Option<u64> {
        Some(match regno {
            0 => self.rax,
            1 => self.rdx,
            2 => self.rcx,
            3 => self.rbx,
            4 => self.rsi,
            5 => self.rdi,
            6 => self.rbp,
            7 => self.rsp,
            8 => self.r8,
            9 => self.r9,
            10 => self.r10,
            11 => self.r11,
            12 => self.r12,
            13 => self.r13,
            14 => self.r14,
            15 => self.r15,
            16 => self.rip,
            49 => self.eflags,
            58 => self.fs_base,
            59 => self.gs_base,
            _ => return None,
        })
    }

    /// Names and values in the order gdb's `info registers` prints them.
    pub fn named(&self) -> [(&'static str, u64); 27] {
        [
            ("rax", self.rax),
            ("rbx", self.rbx),
            ("rcx", self.rcx),
            ("rdx", self.rdx),
            ("rsi", self.rsi),
            ("rdi", self.rdi),
            ("rbp", self.rbp),
            ("rsp", self.rsp),
            ("r8", self.r8),
            ("r9", self.r9),
            ("r10", self.r10),
            ("r11", self.r11),
            ("r12", self.r12),
            ("r13", self.r13),
            ("r14", self.r14),
            ("r15", self.r15),
            ("rip", self.rip),
            ("eflags", self.eflags),
            ("cs", self.cs),
            ("ss", self.ss),
            ("ds", self.ds),
            ("es", self.es),
            ("fs", self.fs),
            ("gs", self.gs),
            ("fs_base", self.fs_base),
            ("gs_base", self.gs_base),
            ("orig_rax", self.orig_rax),
        ]
    }
}

/// How a frame was found, from most to least trustworthy.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Trust {
    /// Frame 0: straight from the thread's registers.
    #[default]
    Context,
    /// Recovered with DWARF call frame information.
    Cfi,
    /// Recovered by following the frame-pointer chain.
    FramePointer,
    /// Guessed by scanning the stack for return addresses ("suspect").
    Scan,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Frame {
    /// The frame's program counter: the return address for caller frames.
    pub pc: u64,
    /// Stack pointer of this frame (the caller's CFA for CFI frames).
    pub sp: u64,
    /// Name of the module containing `pc` (file name, or `[vdso]`).
    pub module: Option<String>,
    /// `pc` minus the module's load bias.
    pub module_offset: u64,
    /// Demangled function name.
    pub function: Option<String>,
    /// Offset of `pc` from the start of the (symbol table) function, when known.
    pub function_offset: Option<u64>,
    pub file: Option<String>,
    pub line: Option<u32>,
    pub column: Option<u32>,
    /// True for a frame that exists only because of inlining; it shares `pc`
    /// with the physical frame that follows it.
    pub inlined: bool,
    pub trust: Trust,
    /// True when this frame is the signal trampoline (`__restore_rt`) or was
    /// interrupted by a signal: its pc is exact, not a return address.
    pub signal_frame: bool,
    /// Registers recovered for this frame, by DWARF register number. Frame 0
    /// leaves this empty (see `Thread::registers`); inlined frames too.
    pub registers: Vec<(u16, u64)>,
    /// Parameters and locals (filled by variable capture).
    pub variables: Vec<Variable>,
}

impl Frame {
    /// A frame of a function inlined at this physical frame's place: its pc, sp,
    /// module and trust, no registers and no names.
    pub fn inlined_here(&self) -> Frame {
        Frame {
            pc: self.pc,
            sp: self.sp,
            module: self.module.clone(),
            module_offset: self.module_offset,
            trust: self.trust,
            signal_frame: self.signal_frame,
            inlined: true,
            ..Default::default()
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Module {
    /// Path of the file as mapped (or `[vdso]`).
    pub path: String,
    /// GNU build id, lowercase hex.
    pub build_id: Option<String>,
    /// Load bias: runtime address minus link-time address.
    pub load_bias: u64,
    /// Lowest and highest mapped addresses of the module.
    pub start: u64,
    pub end: u64,
    pub is_executable: bool,
    pub debug: DebugInfo,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DebugInfo {
    /// Whether DWARF debug info (.debug_info) was found for the module.
    pub found: bool,
    /// The file it came from (the module itself or a separate debug file).
    pub path: Option<String>,
    /// Whether the module had a symbol table (.symtab or .dynsym).
    pub symbols: bool,
    /// Whether the module had unwind info (.eh_frame or .debug_frame).
    pub unwind: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mapping {
    pub start: u64,
    pub end: u64,
    /// `rwxp` / `r-xs` as in /proc/PID/maps.
    pub perms: String,
    pub offset: u64,
    pub path: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Environment {
    pub hostname: String,
    pub uname: Uname,
    /// Selected lines of /proc/PID/status (live), key → value.
    pub status: Vec<(String, String)>,
    /// /proc/PID/limits (live): name, soft, hard, units.
    pub limits: Vec<Limit>,
    /// /proc/meminfo, key → kB.
    pub meminfo: Vec<(String, u64)>,
    /// /proc/loadavg: 1, 5 and 15 minute averages.
    pub loadavg: Option<[f64; 3]>,
    pub cpu_count: u32,
    /// System uptime in seconds.
    pub uptime: Option<f64>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Uname {
    pub sysname: String,
    pub nodename: String,
    pub release: String,
    pub version: String,
    pub machine: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Limit {
    pub name: String,
    pub soft: String,
    pub hard: String,
    pub units: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attribute {
    pub key: String,
    pub value: String,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    #[default]
    Info,
    Warning,
    Error,
}

/// What an annotation or problem is about.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Scope {
    #[default]
    Snapshot,
    Thread(i32),
    /// Thread id and frame index in `Thread::frames`.
    Frame(i32, u32),
    Module(String),
    /// Thread id, frame index, variable name.
    Variable(i32, u32, String),
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Annotation {
    pub scope: Scope,
    pub severity: Severity,
    /// Which analysis wrote it.
    pub source: String,
    pub text: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Problem {
    pub scope: Scope,
    pub message: String,
}

impl Problem {
    pub fn new(scope: Scope, message: impl Into<String>) -> Problem {
        Problem { scope, message: message.into() }
    }
}

/// Bytes of the target's memory, kept in the snapshot.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemoryRegion {
    pub address: u64,
    /// Why it was kept (`stack 1234`, `heap object`, ...).
    pub label: String,
    pub bytes: Vec<u8>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Extension {
    pub name: String,
    pub version: u32,
    pub bytes: Vec<u8>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum VariableKind {
    #[default]
    Local,
    Parameter,
    Global,
    ThreadLocal,
}

/// A variable with its type and value.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Variable {
    pub name: String,
    pub kind: VariableKind,
    /// The type as the source spells it (`struct node *`, `std::string`). JSON: `type`.
    #[serde(rename = "type")]
    pub type_name: String,
    /// Where it lives, when in memory.
    pub address: Option<u64>,
    /// The value rendered as gdb would print it. JSON: `value`.
    #[serde(rename = "value")]
    pub text: String,
    /// The structured value (pointers followed a bounded depth). JSON: `structured`.
    #[serde(rename = "structured")]
    pub value: Value,
    /// Its type in `Snapshot::types` (None: no type, or a snapshot older than version 3).
    pub type_id: Option<TypeId>,
    /// Where the value's bytes are, for rendering it again from the snapshot.
    pub location: Location,
}

/// Where a variable's value lives.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Location {
    /// Nothing to render (optimized out, unavailable, or not recorded).
    #[default]
    None,
    /// In target memory at this address (see `Snapshot::memory`).
    Memory(u64),
    /// Not in memory (registers, pieces, implicit values, constants): its bytes, with
    /// `valid[i]` false where byte `i` is optimized out.
    Bytes { bytes: Vec<u8>, valid: Vec<bool> },
}

/// Index of a type in `Snapshot::types`.
pub type TypeId = u32;

/// One type of the type table: what rendering a value of it needs.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Type {
    /// The name gdb prints for it (`struct node *`, `const char *`, `int [4]`).
    pub name: String,
    /// The language of the unit that defined it (naming and library forms depend on it).
    pub lang: Lang,
    pub kind: TypeKind,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Lang {
    C,
    Cpp,
    Rust,
    #[default]
    Other,
}

/// DW_ATE encodings of base types that rendering distinguishes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Encoding {
    #[default]
    Signed,
    Unsigned,
    SignedChar,
    UnsignedChar,
    Float,
    Boolean,
    /// Unicode code point (Rust `char`).
    Utf,
    /// Any other DW_ATE value.
    Other(u8),
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Aggregate {
    #[default]
    Struct,
    Class,
    Union,
}

/// A member of a struct, class or union, or a base class.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    pub name: Option<String>,
    pub type_id: Option<TypeId>,
    /// Byte offset in the object (of its storage for bitfields).
    pub offset: u64,
    /// Bitfields: (bit offset from `offset`, little-endian numbering, bit size).
    pub bits: Option<(u64, u64)>,
    /// A base class (DW_TAG_inheritance).
    pub base: bool,
}

/// A Rust enum (DW_TAG_variant_part): the discriminant member and the variants.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Variants {
    pub discr: Option<Member>,
    /// (discriminant value, None for the default variant) → the variant's member.
    pub variants: Vec<(Option<u64>, Member)>,
}

/// What a type is. References between types are `TypeId`s; `None` is `void`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TypeKind {
    Void,
    Base {
        size: u64,
        encoding: Encoding,
    },
    Enum {
        size: u64,
        signed: bool,
        values: Vec<(i64, String)>,
    },
    /// Pointers and references (`reference`: C++ `&`/`&&`, printed with `@`).
    Pointer {
        target: Option<TypeId>,
        reference: bool,
        rvalue: bool,
    },
    /// Structs, classes and unions. Library types (libstdc++ `std::string` /
    /// `std::vector`, Rust `&str`, `String`, `Vec`, enums) are recognised from
    /// `tag`, the language and the members, exactly as at capture time.
    Struct {
        kind: Aggregate,
        /// DW_AT_name (`basic_string<char, …>`, `Vec<i32, …>`), unqualified.
        tag: Option<String>,
        size: Option<u64>,
        members: Vec<Member>,
        variants: Option<Variants>,
        declaration: bool,
        /// Template type parameters (`T` of `Vec<T>`).
        params: Vec<(String, Option<TypeId>)>,
    },
    /// Element type and the count of each dimension (None: unknown, flexible).
    Array {
        elem: Option<TypeId>,
        dims: Vec<Option<u64>>,
    },
    Typedef {
        target: Option<TypeId>,
    },
    Qualified {
        qualifier: String,
        target: Option<TypeId>,
    },
    Function {
        ret: Option<TypeId>,
        params: Vec<Option<TypeId>>,
        variadic: bool,
    },
    /// A type bt does not interpret, named by its tag.
    Unknown(String),
    /// Referenced but not copied into the snapshot (nothing rendered needed it).
    #[default]
    NotCaptured,
}

/// The name of a code or data address, as rendering looked it up.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SymbolName {
    pub address: u64,
    /// True for a code symbol (function pointers), false for a data object.
    pub code: bool,
    /// `callback`, `main+4`, `global_table+8`.
    pub name: String,
}

/// A structured value. Absence of a value is always explicit.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Value {
    /// The compiler did not keep it at this pc.
    #[default]
    OptimizedOut,
    /// Its memory could not be read.
    Unreadable {
        address: u64,
    },
    /// Could not be evaluated, with the reason.
    Unavailable(String),
    Int(i64),
    UInt(u64),
    Float(f64),
    Bool(bool),
    Char(u32),
    Enum {
        value: i64,
        name: Option<String>,
    },
    Pointer {
        address: u64,
        symbol: Option<String>,
        target: Option<Box<Value>>,
    },
    Str {
        address: u64,
        text: String,
        truncated: bool,
    },
    Struct(Vec<Field>),
    Array {
        length: u64,
        items: Vec<Value>,
    },
    Bytes(Vec<u8>),
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Field {
    pub name: String,
    pub value: Value,
}
