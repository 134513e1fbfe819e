//! DWARF location expressions of one frame: the registers, CFA, frame base, TLS block
//! and entry values they may ask for (`FrameEnv`), evaluated into a place (memory,
//! register, implicit bytes or pieces); and what a variable DIE says at one pc
//! (`VarPlan`, read by `variables`, cached by `dwarf`'s name cache).

use super::ModuleSet;
use super::elf::Reader;
use crate::capture::Memory;
use crate::snapshot::values::Data;
use gimli::{AttributeValue, Reader as _, UnitRef};

/// DWARF registers a frame can know (0–16 general purpose and rip, up to fs/gs base).
pub(crate) const N_DWARF_REGS: usize = 67;

/// What a frame's location expressions may ask for.
pub(crate) struct FrameEnv<'a> {
    pub regs: [Option<u64>; N_DWARF_REGS],
    /// True for frame 0: vector registers are absent because they were not captured,
    /// not because the ABI clobbered them.
    pub innermost: bool,
    pub cfa: Option<u64>,
    pub frame_base: Option<u64>,
    /// Module load bias (DW_OP_addr is link-time).
    pub bias: u64,
    /// Start of this module's static TLS block for the thread, found on first use
    /// (walking the DTV reads target memory; most frames have no TLS variable).
    pub tls_block: std::cell::OnceCell<Result<u64, String>>,
    /// (module set, module index, fs_base) for finding `tls_block`.
    pub tls_of: (&'a ModuleSet, usize, u64),
    pub memory: &'a dyn Memory,
    /// What the caller passed, from its call-site parameters (DW_OP_entry_value,
    /// DW_OP_GNU_parameter_ref): by register, or by the callee's parameter DIE.
    pub entry: Vec<(EntryKey, u64)>,
}

/// How a call-site parameter names the callee's parameter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum EntryKey {
    /// The register the value was passed in (DW_AT_location of the call-site parameter).
    Register(u16),
    /// The callee's parameter DIE (DW_AT_call_parameter), as a unit offset.
    Parameter(usize),
}

/// The register of a `DW_OP_regN` / `DW_OP_regx N` expression (what an entry value wraps).
pub(super) fn single_register(bytes: &[u8]) -> Option<u16> {
    match bytes {
        [op @ 0x50..=0x6f] => Some((op - 0x50) as u16),
        [0x90, rest @ ..] => {
            let mut r = gimli::EndianSlice::new(rest, gimli::LittleEndian);
            gimli::leb128::read::unsigned(&mut r).ok().map(|v| v as u16)
        }
        _ => None,
    }
}

/// What rendering a variable DIE at one pc needs from the DIE, read once: threads
/// that stop at the same pc share it, and only the values differ between them.
#[derive(Clone)]
pub(crate) struct VarPlan {
    pub kind: crate::snapshot::VariableKind,
    /// None: no DIE at that offset.
    pub name: Option<String>,
    pub ty: Option<super::types::TypeRef>,
    /// A type in another unit (Go keeps all types in one unit of their own).
    pub foreign: Option<gimli::DebugInfoOffset>,
    /// The location expression at the pc, Ok(None) when there is none.
    pub location: Result<Option<gimli::Expression<Reader>>, EvalError>,
    pub const_value: Option<AttributeValue<Reader>>,
}

/// Why a location did not give bytes.
#[derive(Debug, Clone)]
pub(crate) enum EvalError {
    OptimizedOut,
    Unavailable(String),
}

/// Where a variable's bytes are.
pub(crate) enum Place {
    Memory(u64),
    Data(Data),
}

pub(super) fn eval_expr(
    expr: gimli::Expression<Reader>,
    unit: UnitRef<'_, Reader>,
    env: &FrameEnv<'_>,
) -> Result<Vec<gimli::Piece<Reader>>, EvalError> {
    use gimli::EvaluationResult as R;
    let mut eval = expr.evaluation(unit.encoding());
    eval.set_max_iterations(10_000);
    let fail = |e: gimli::Error| EvalError::Unavailable(format!("DWARF expression: {e}"));
    let mut r = eval.evaluate().map_err(fail)?;
    loop {
        r = match r {
            R::Complete => break,
            R::RequiresMemory { address, size, .. } => {
                let mut b = [0u8; 8];
                let size = (size as usize).min(8);
                if !env.memory.read_exact(address, &mut b[..size]) {
                    return Err(EvalError::Unavailable(format!("cannot read memory at {address:#x}")));
                }
                eval.resume_with_memory(gimli::Value::Generic(u64::from_le_bytes(b))).map_err(fail)?
            }
            R::RequiresRegister { register, .. } => match env.regs.get(register.0 as usize).copied().flatten() {
                Some(v) => eval.resume_with_register(gimli::Value::Generic(v)).map_err(fail)?,
                None => return Err(EvalError::OptimizedOut),
            },
            R::RequiresFrameBase => match env.frame_base {
                Some(fb) => eval.resume_with_frame_base(fb).map_err(fail)?,
                None => return Err(EvalError::Unavailable("frame base unknown".into())),
            },
            R::RequiresCallFrameCfa => match env.cfa {
                Some(cfa) => eval.resume_with_call_frame_cfa(cfa).map_err(fail)?,
                None => return Err(EvalError::Unavailable("CFA unknown (outermost frame)".into())),
            },
            R::RequiresTls(off) => match env.tls_block.get_or_init(|| {
                let (modules, idx, fs_base) = env.tls_of;
                modules.tls_block(idx, fs_base, env.memory)
            }) {
                Ok(block) => eval.resume_with_tls(block.wrapping_add(off)).map_err(fail)?,
                Err(why) => return Err(EvalError::Unavailable(why.clone())),
            },
            R::RequiresRelocatedAddress(a) => {
                eval.resume_with_relocated_address(a.wrapping_add(env.bias)).map_err(fail)?
            }
            R::RequiresIndexedAddress { index, relocate } => {
                let a = unit.address(index).map_err(fail)?;
                eval.resume_with_indexed_address(if relocate { a.wrapping_add(env.bias) } else { a }).map_err(fail)?
            }
            R::RequiresBaseType(off) => {
                let e = unit.entry(off).map_err(fail)?;
                let enc = match e.attr_value(gimli::DW_AT_encoding) {
                    Some(AttributeValue::Encoding(x)) => x,
                    _ => gimli::DW_ATE_unsigned,
                };
                let size = e.attr_value(gimli::DW_AT_byte_size).and_then(|v| v.udata_value()).unwrap_or(8);
                let vt = gimli::ValueType::from_encoding(enc, size).unwrap_or(gimli::ValueType::Generic);
                eval.resume_with_base_type(vt).map_err(fail)?
            }
            // Entry values come from the caller's call-site parameters (as gdb finds
            // them); without a matching one the value is gone, not guessed.
            R::RequiresEntryValue(expr) => {
                let reg = expr.0.to_slice().ok().and_then(|b| single_register(&b));
                match reg.and_then(|r| env.entry.iter().find(|(k, _)| *k == EntryKey::Register(r))) {
                    Some((_, v)) => eval.resume_with_entry_value(gimli::Value::Generic(*v)).map_err(fail)?,
                    None => return Err(EvalError::OptimizedOut),
                }
            }
            R::RequiresParameterRef(off) => match env.entry.iter().find(|(k, _)| *k == EntryKey::Parameter(off.0)) {
                Some((_, v)) => eval.resume_with_parameter_ref(*v).map_err(fail)?,
                None => return Err(EvalError::OptimizedOut),
            },
            R::RequiresAtLocation(_) => {
                return Err(EvalError::Unavailable("DW_OP_call is not supported".into()));
            }
            _ => return Err(EvalError::Unavailable("unsupported DWARF operation".into())),
        };
    }
    Ok(eval.result())
}

pub(super) fn value_bytes(v: gimli::Value) -> Vec<u8> {
    use gimli::Value as V;
    match v {
        V::Generic(x) | V::U64(x) => x.to_le_bytes().to_vec(),
        V::I64(x) => x.to_le_bytes().to_vec(),
        V::U32(x) => x.to_le_bytes().to_vec(),
        V::I32(x) => x.to_le_bytes().to_vec(),
        V::U16(x) => x.to_le_bytes().to_vec(),
        V::I16(x) => x.to_le_bytes().to_vec(),
        V::U8(x) => vec![x],
        V::I8(x) => vec![x as u8],
        V::F32(x) => x.to_le_bytes().to_vec(),
        V::F64(x) => x.to_le_bytes().to_vec(),
    }
}

/// Turns evaluated pieces into a place: one memory address, or assembled bytes.
/// The place of the commonest locations, `DW_OP_fbreg N` (every local of an -O0
/// build) and `DW_OP_bregR N`, read straight from the bytes: no evaluator to set
/// up, and no clone of the expression's reader (whose shared reference count the
/// workers would bounce between them). None: anything else, or a base this frame
/// lacks, which the evaluator then reports as it always has.
pub(super) fn simple_place(expr: &gimli::Expression<Reader>, env: &FrameEnv<'_>) -> Option<Place> {
    let bytes = expr.0.to_slice().ok()?;
    let (&op, rest) = bytes.split_first()?;
    let mut r = gimli::EndianSlice::new(rest, gimli::LittleEndian);
    let off = gimli::leb128::read::signed(&mut r).ok()?;
    if !r.is_empty() {
        return None;
    }
    let base = match op {
        0x91 => env.frame_base?,
        0x70..=0x8f => env.regs.get(usize::from(op - 0x70)).copied().flatten()?,
        _ => return None,
    };
    Some(Place::Memory(base.wrapping_add(off as u64)))
}

pub(super) fn place_of(pieces: Vec<gimli::Piece<Reader>>, size: u64, env: &FrameEnv<'_>) -> Result<Place, EvalError> {
    use gimli::Location as L;
    let reg_bytes = |r: u16| -> Result<Vec<u8>, EvalError> {
        match env.regs.get(r as usize).copied().flatten() {
            Some(v) => Ok(v.to_le_bytes().to_vec()),
            None if env.innermost && (17..=32).contains(&r) => {
                Err(EvalError::Unavailable(format!("vector register {} not captured", r - 17)))
            }
            None => Err(EvalError::OptimizedOut),
        }
    };
    if pieces.len() == 1 && pieces[0].size_in_bits.is_none() {
        let p = pieces.into_iter().next().ok_or(EvalError::OptimizedOut)?;
        return match p.location {
            L::Empty => Err(EvalError::OptimizedOut),
            L::Address { address } => Ok(Place::Memory(address)),
            L::Register { register } => Ok(Place::Data(Data::known(reg_bytes(register.0)?, None))),
            L::Value { value } => Ok(Place::Data(Data::known(value_bytes(value), None))),
            L::Bytes { value } => {
                Ok(Place::Data(Data::known(value.to_slice().map(|c| c.into_owned()).unwrap_or_default(), None)))
            }
            L::ImplicitPointer { .. } => Err(EvalError::Unavailable("<synthetic pointer>".into())),
        };
    }
    // Pieces: assemble the value byte by byte; a missing piece leaves its bytes invalid.
    let size = size.min(1 << 16) as usize;
    let mut data = Data { bytes: vec![0; size], valid: vec![false; size], address: None };
    let mut at = 0usize;
    for p in pieces {
        let bits = p.size_in_bits.unwrap_or(64);
        // Clamped before it sizes a read: a corrupt DW_OP_piece may claim 2^60 bits.
        let n = bits.div_ceil(8).min(size.saturating_sub(at) as u64) as usize;
        let src: Option<Vec<u8>> = match p.location {
            L::Empty => None,
            L::Address { address } => {
                let mut b = vec![0u8; n];
                env.memory.read_exact(address, &mut b).then_some(b)
            }
            L::Register { register } => reg_bytes(register.0).ok(),
            L::Value { value } => Some(value_bytes(value)),
            L::Bytes { value } => value.to_slice().ok().map(|c| c.into_owned()),
            L::ImplicitPointer { .. } => None,
        };
        if let Some(src) = src {
            for (i, b) in src.iter().take(n).enumerate() {
                if at + i < size {
                    data.bytes[at + i] = *b;
                    data.valid[at + i] = true;
                }
            }
        }
        at += n;
        if at >= size {
            break;
        }
    }
    if !data.valid.iter().any(|v| *v) {
        return Err(EvalError::OptimizedOut);
    }
    Ok(Place::Data(data))
}

/// The location expression of `e` at link-time `probe`: DW_AT_location (exprloc or
/// location list). Ok(None): no location (optimized out).
pub(super) fn location_expr(
    unit: UnitRef<'_, Reader>,
    e: &gimli::DebuggingInformationEntry<Reader>,
    probe: u64,
    locs: Option<&gimli::LocationLists<Reader>>,
) -> Result<Option<gimli::Expression<Reader>>, EvalError> {
    let Some(v) = e.attr_value(gimli::DW_AT_location) else { return Ok(None) };
    let fail = |e: gimli::Error| EvalError::Unavailable(format!("location list: {e}"));
    let offset = match v {
        // An empty expression describes an object that exists in the source but not
        // in the program: optimized out (Go writes one for unnamed results).
        AttributeValue::Exprloc(expr) if expr.0.is_empty() => return Ok(None),
        AttributeValue::Exprloc(expr) => return Ok(Some(expr)),
        AttributeValue::LocationListsRef(o) => o,
        AttributeValue::DebugLocListsIndex(i) if unit.dwarf.file_type == gimli::DwarfFileType::Dwo => {
            unit.dwarf.locations.get_offset(unit.encoding(), unit.loclists_base, i).map_err(fail)?
        }
        AttributeValue::DebugLocListsIndex(i) => {
            let Some(l) = locs else { return Err(EvalError::Unavailable("no location list sections".into())) };
            l.get_offset(unit.encoding(), unit.loclists_base, i).map_err(fail)?
        }
        _ => return Err(EvalError::Unavailable("unsupported DW_AT_location form".into())),
    };
    // A split unit's lists are in its `.dwo`, in that file's encoding (see `split`).
    let mut iter = if unit.dwarf.file_type == gimli::DwarfFileType::Dwo {
        unit.dwarf.locations(unit.unit, offset).map_err(fail)?
    } else {
        let Some(l) = locs else { return Err(EvalError::Unavailable("no location list sections".into())) };
        l.locations(offset, unit.encoding(), unit.low_pc, &unit.dwarf.debug_addr, unit.addr_base).map_err(fail)?
    };
    let mut n = 0;
    while let Some(entry) = iter.next().map_err(fail)? {
        n += 1;
        if n > 100_000 {
            break;
        }
        if entry.range.begin <= probe && probe < entry.range.end {
            return Ok((!entry.data.0.is_empty()).then_some(entry.data));
        }
    }
    Ok(None)
}
