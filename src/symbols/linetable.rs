//! Line lookups for single addresses: one compile unit's line program is split into
//! its sequences once (a decode pass that keeps no rows), and only the sequence holding
//! a looked-up pc is replayed through gdb's row rules (`lines::UnitLines`). Big units
//! hold thousands of sequences (one per COMDAT function), so a lookup materialises a
//! few hundred rows instead of the unit's millions.

use super::elf::{Reader, SharedBytes};
use super::indexcache::{self, Payload};
use super::lines::{self, UnitLines};
use std::collections::HashMap;

/// The sequences of one unit's line program, sorted by start address.
pub(crate) struct Program {
    kind: Kind,
    /// Replayed sequences by index (a thread pool parked in one function hits the
    /// same sequence many times).
    tables: HashMap<usize, Sequence>,
}

enum Kind {
    /// Sequences found by a scan of the opcode stream that decodes only opcode
    /// lengths. A sequence is replayed as a small line program of its own: the unit's
    /// header bytes followed by the sequence's opcodes.
    Scanned { header: Vec<u8>, ops: Reader, sequences: Vec<Span> },
    /// gimli's full decode, for programs the scan does not understand.
    Decoded { complete: gimli::CompleteLineProgram<Reader>, sequences: Vec<gimli::LineSequence<Reader>> },
}

/// One sequence in the opcode stream: the address of its first DW_LNE_set_address
/// and its byte range `[begin, end)` (end_sequence included).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Span {
    start: u64,
    begin: usize,
    end: usize,
}

/// One replayed sequence: gdb's per-file rows, the raw rows (last row per address,
/// as addr2line keeps them) for when gdb's rules give line 0, and the end address.
struct Sequence {
    gdb: UnitLines,
    raw: Vec<RawRow>,
    header: gimli::LineProgramHeader<Reader>,
    end: u64,
}

#[derive(Clone, Copy)]
struct RawRow {
    addr: u64,
    file: u64,
    line: u32,
    column: u32,
}

/// The location of an address: gdb's (file, line) choice when it has one, and the
/// raw row's (file, line, column) as addr2line reports it.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct Location {
    pub gdb: Option<(String, u32)>,
    pub file: Option<String>,
    pub line: Option<u32>,
    pub column: Option<u32>,
}

/// Upper bound on rows replayed for one sequence (a corrupt program must not spin).
const MAX_ROWS: usize = 50_000_000;

fn uleb(b: &[u8], pos: &mut usize) -> Option<u64> {
    let mut v = 0u64;
    let mut shift = 0;
    loop {
        let byte = *b.get(*pos)?;
        *pos += 1;
        if shift < 64 {
            v |= u64::from(byte & 0x7f) << shift;
        }
        if byte & 0x80 == 0 {
            return Some(v);
        }
        shift += 7;
    }
}

/// Splits an opcode stream into sequences without running the state machine. None
/// when a sequence does not begin with DW_LNE_set_address before its first row (the
/// start address would need the full decode) or the stream is malformed.
fn scan(ops: &[u8], opcode_base: u8, lengths: &[u8], address_size: u8) -> Option<Vec<Span>> {
    const COPY: u8 = 1;
    const FIXED_ADVANCE_PC: u8 = 9;
    const END_SEQUENCE: u8 = 1;
    const SET_ADDRESS: u8 = 2;
    let mut out = Vec::new();
    let mut pos = 0;
    let mut begin = 0;
    let mut start: Option<u64> = None;
    // Sequences without rows (discarded COMDAT copies) can hold no pc.
    let mut has_rows = false;
    while pos < ops.len() {
        let op = ops[pos];
        pos += 1;
        if op >= opcode_base || op == COPY {
            // A row is emitted: its address must be known from set_address.
            start?;
            has_rows = true;
            continue;
        }
        if op == 0 {
            let len = usize::try_from(uleb(ops, &mut pos)?).ok()?;
            let body = ops.get(pos..pos.checked_add(len)?)?;
            match body.first() {
                Some(&END_SEQUENCE) => {
                    if has_rows {
                        out.push(Span { start: start?, begin, end: pos + len });
                    }
                    begin = pos + len;
                    start = None;
                    has_rows = false;
                }
                Some(&SET_ADDRESS) if start.is_none() => {
                    let a = body.get(1..1 + usize::from(address_size))?;
                    let mut v = [0u8; 8];
                    v.get_mut(..a.len())?.copy_from_slice(a);
                    start = Some(u64::from_le_bytes(v));
                }
                _ => {}
            }
            pos += len;
        } else if op == FIXED_ADVANCE_PC {
            pos += 2;
        } else {
            for _ in 0..*lengths.get(usize::from(op) - 1)? {
                uleb(ops, &mut pos)?;
            }
        }
    }
    Some(out)
}

impl Program {
    /// Splits the unit's line program into sequences; None without a line program.
    /// `cached` is a split stored earlier (`encode_spans`), used when it fits this
    /// program (None when it does not: the caller rebuilds).
    pub(crate) fn new(unit: gimli::UnitRef<'_, Reader>, cached: Option<&Payload>) -> Option<Program> {
        let program = unit.line_program.clone()?;
        if let Some(kind) = Program::scanned(unit, program.header(), cached) {
            return Some(Program { kind, tables: HashMap::new() });
        }
        if cached.is_some() {
            return None;
        }
        let (complete, mut sequences) = program.sequences().ok()?;
        // Empty sequences (start == end) can never hold a pc.
        sequences.retain(|s| s.start < s.end);
        sequences.sort_by_key(|s| s.start);
        Some(Program { kind: Kind::Decoded { complete, sequences }, tables: HashMap::new() })
    }

    /// The scanned split for `indexcache`: per sequence its start address, opcode
    /// offset and length, sorted by start. None (not cached) for a program gimli had
    /// to decode.
    pub(crate) fn encode_spans(&self) -> Option<indexcache::Writer> {
        let Kind::Scanned { sequences, .. } = &self.kind else { return None };
        let spans = sequences.iter().map(|s| [s.start, s.begin as u64, (s.end - s.begin) as u64]);
        Some(indexcache::Writer::sorted_triples(spans))
    }

    fn scanned(
        unit: gimli::UnitRef<'_, Reader>,
        header: &gimli::LineProgramHeader<Reader>,
        cached: Option<&Payload>,
    ) -> Option<Kind> {
        use gimli::Section as _;
        let ops = header.raw_program_buf();
        let section = unit.dwarf.debug_line.reader();
        let initial = match header.format() {
            gimli::Format::Dwarf32 => 4,
            gimli::Format::Dwarf64 => 12,
        };
        let total = initial + header.unit_length();
        let header_len = total.checked_sub(ops.len())?;
        let at = header.offset().0;
        let bytes = section.bytes().get(at..at.checked_add(header_len)?)?.to_vec();
        // The program must directly follow its header in the section.
        if ops.bytes().as_ptr() != section.bytes().get(at + header_len..)?.as_ptr() {
            return None;
        }
        let sequences = match cached {
            // A stored split must lie inside this program's opcodes, sorted as below.
            Some(payload) => {
                let len = ops.len() as u64;
                let span = |[start, begin, size]: [u64; 3]| {
                    let end = begin.checked_add(size).filter(|&e| size > 0 && e <= len)?;
                    Some(Span { start, begin: begin as usize, end: end as usize })
                };
                payload.reader().sorted_triples()?.into_iter().map(span).collect::<Option<Vec<_>>>()?
            }
            None => {
                let lengths = header.standard_opcode_lengths().bytes().to_vec();
                let mut sequences = scan(ops.bytes(), header.opcode_base(), &lengths, header.address_size())?;
                sequences.sort_by_key(|s| s.start);
                sequences
            }
        };
        Some(Kind::Scanned { header: bytes, ops, sequences })
    }

    /// The location of link-time address `probe`, or None when no sequence holds it.
    pub(crate) fn lookup(&mut self, unit: gimli::UnitRef<'_, Reader>, probe: u64) -> Option<Location> {
        // Sequences do not overlap in sane DWARF: the one holding the probe is the last
        // one starting at or before it (its end is checked after the replay).
        let idx = match &self.kind {
            Kind::Scanned { sequences, .. } => sequences.partition_point(|s| s.start <= probe),
            Kind::Decoded { sequences, .. } => sequences.partition_point(|s| s.start <= probe),
        }
        .checked_sub(1)?;
        if !self.tables.contains_key(&idx) {
            let seq = self.replay(unit, idx)?;
            self.tables.insert(idx, seq);
        }
        let seq = self.tables.get(&idx)?;
        if probe >= seq.end {
            return None;
        }
        let mut loc = Location { gdb: seq.gdb.lookup(probe).map(|(f, l)| (f.to_string(), l)), ..Default::default() };
        let at = seq.raw.partition_point(|r| r.addr <= probe);
        if let Some(r) = at.checked_sub(1).map(|i| seq.raw[i]) {
            loc.file = lines::file_path(unit, &seq.header, r.file);
            loc.line = (r.line != 0).then_some(r.line);
            loc.column = (r.column != 0).then_some(r.column);
        }
        Some(loc)
    }

    fn replay(&self, unit: gimli::UnitRef<'_, Reader>, idx: usize) -> Option<Sequence> {
        match &self.kind {
            Kind::Scanned { header, ops, sequences } => {
                let span = sequences[idx];
                let mut buf = header.clone();
                buf.extend_from_slice(ops.bytes().get(span.begin..span.end)?);
                // Patch the unit length to cover only this sequence's opcodes.
                match unit.line_program.as_ref()?.header().format() {
                    gimli::Format::Dwarf32 => {
                        let len = u32::try_from(buf.len() - 4).ok()?;
                        buf.get_mut(0..4)?.copy_from_slice(&len.to_le_bytes());
                    }
                    gimli::Format::Dwarf64 => {
                        let len = (buf.len() - 12) as u64;
                        buf.get_mut(4..12)?.copy_from_slice(&len.to_le_bytes());
                    }
                }
                let reader = Reader::new(SharedBytes::owned(buf), gimli::LittleEndian);
                let program = gimli::DebugLine::from(reader)
                    .program(
                        gimli::DebugLineOffset(0),
                        unit.header.address_size(),
                        unit.comp_dir.clone(),
                        unit.name.clone(),
                    )
                    .ok()?;
                let gdb = UnitLines::build_rows(unit, program.clone().rows());
                let header = program.header().clone();
                let (raw, end) = raw_rows(program.rows());
                Some(Sequence { gdb, raw, header, end })
            }
            Kind::Decoded { complete, sequences } => {
                let seq = &sequences[idx];
                let gdb = UnitLines::build_rows(unit, complete.resume_from(seq));
                let (raw, end) = raw_rows(complete.resume_from(seq));
                Some(Sequence { gdb, raw, header: complete.header().clone(), end })
            }
        }
    }
}

/// The rows of one sequence, last row per address (as addr2line keeps them), and
/// the sequence's end address.
fn raw_rows<P: gimli::LineProgram<Reader>>(mut rows: gimli::LineRows<Reader, P>) -> (Vec<RawRow>, u64) {
    let mut raw: Vec<RawRow> = Vec::new();
    let mut end = 0;
    while let Ok(Some((_, row))) = rows.next_row() {
        if row.end_sequence() {
            end = row.address();
            break;
        }
        if raw.len() >= MAX_ROWS {
            break;
        }
        let r = RawRow {
            addr: row.address(),
            file: row.file_index(),
            line: row.line().map_or(0, |l| l.get().min(u32::MAX as u64) as u32),
            column: match row.column() {
                gimli::ColumnType::LeftEdge => 0,
                gimli::ColumnType::Column(c) => c.get().min(u32::MAX as u64) as u32,
            },
        };
        match raw.last_mut() {
            Some(last) if last.addr == r.addr => *last = r,
            _ => raw.push(r),
        }
    }
    // Rows within a sequence have non-decreasing addresses; sort in case a producer
    // broke that rule, so the binary search in `lookup` stays sound.
    if !raw.is_sorted_by_key(|r| r.addr) {
        raw.sort_by_key(|r| r.addr);
    }
    raw.shrink_to_fit();
    (raw, end)
}

#[cfg(test)]
mod tests {
    use super::*;

    const LENGTHS: [u8; 12] = [0, 1, 1, 1, 1, 0, 0, 0, 1, 0, 0, 1];

    fn set_address(a: u64) -> Vec<u8> {
        let mut v = vec![0, 9, 2];
        v.extend_from_slice(&a.to_le_bytes());
        v
    }

    #[test]
    fn scan_splits_sequences_and_drops_empty_ones() {
        let end = [0u8, 1, 1];
        let mut ops = set_address(0x2000);
        ops.extend_from_slice(&[0x05, 0x80, 0x01, 20, 0x09, 0x10, 0x00, 21]); // set_column, special, fixed_advance_pc, special
        ops.extend_from_slice(&end);
        let second = ops.len();
        ops.extend(set_address(0)); // a discarded COMDAT copy: no rows
        ops.extend_from_slice(&end);
        let third = ops.len();
        ops.extend(set_address(0x1000));
        ops.extend_from_slice(&[0x02, 0x10, 0x01]); // advance_pc, copy
        ops.extend_from_slice(&end);
        let spans = scan(&ops, 13, &LENGTHS, 8).expect("well-formed stream");
        assert_eq!(
            spans,
            vec![Span { start: 0x2000, begin: 0, end: second }, Span { start: 0x1000, begin: third, end: ops.len() }]
        );
    }

    #[test]
    fn scan_gives_up_without_set_address_or_on_truncation() {
        // A row before any DW_LNE_set_address: the start would need the full decode.
        assert_eq!(scan(&[20, 0, 1, 1], 13, &LENGTHS, 8), None);
        // Truncated extended opcode.
        let mut ops = set_address(0x10);
        ops.truncate(6);
        assert_eq!(scan(&ops, 13, &LENGTHS, 8), None);
    }
}
