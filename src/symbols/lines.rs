//! Line lookup with gdb's semantics. gdb, the oracle users compare with, does not take
//! the last line-table row at an address: it drops non-statement rows that switch
//! files at an address already described, lets a file switch erase the old file's
//! rows at that address, and prefers a statement row among rows at one address. For
//! optimized C++ this picks `new_allocator.h:90` where binutils addr2line says
//! `exception.cpp:15`. One pass over a compile unit's line program builds its table
//! (only for units holding looked-up pcs); lookups are binary searches.

use super::elf::Reader;
use gimli::Reader as _;

/// One row kept by gdb's rules, in one source file's table. Packed into 8 bytes:
/// big units have millions of rows. Link-time addresses above 4 GiB are not kept (the
/// caller then falls back to addr2line's row).
#[derive(Clone, Copy, PartialEq, Eq)]
struct Row {
    addr: u32,
    /// Bit 31: is_stmt; bits 0-30: the line, 0 = end of a range.
    packed: u32,
}

impl Row {
    fn new(addr: u64, line: u32, is_stmt: bool) -> Option<Row> {
        Some(Row { addr: u32::try_from(addr).ok()?, packed: line.min(0x7fff_ffff) | if is_stmt { 1 << 31 } else { 0 } })
    }
    fn line(self) -> u32 {
        self.packed & 0x7fff_ffff
    }
    fn is_stmt(self) -> bool {
        self.packed >> 31 != 0
    }
}

impl std::fmt::Debug for Row {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:#x}:{}{}", self.addr, self.line(), if self.is_stmt() { "" } else { "(ns)" })
    }
}

/// The line table of one unit, split per source file as gdb keeps it (by file path,
/// so two DWARF file indexes naming one file share a table).
#[derive(Debug, Default)]
pub(crate) struct UnitLines {
    files: Vec<(String, Vec<Row>)>,
}

/// gdb's `buildsym_compunit::record_line`: an end marker (line 0) first erases the
/// file's rows at the same address, and is dropped when it would end nothing.
fn record(rows: &mut Vec<Row>, row: Option<Row>) {
    let Some(row) = row else { return };
    if row.line() == 0 {
        let mut last_line = None;
        while let Some(last) = rows.last() {
            last_line = Some(last.line());
            if last.addr != row.addr {
                break;
            }
            rows.pop();
        }
        if last_line.is_none_or(|l| l == 0) {
            return;
        }
    }
    rows.push(row);
}

/// Appends `part` to `path` the way file paths compose: an absolute part replaces.
fn path_push(path: &mut String, part: &str) {
    if part.starts_with('/') || path.is_empty() {
        *path = part.to_string();
    } else {
        if !path.ends_with('/') {
            path.push('/');
        }
        path.push_str(part);
    }
}

/// The file's path as addr2line renders it: comp_dir, then the file's directory
/// (index 0 is the compilation directory itself), then its name.
pub(crate) fn file_path(
    unit: gimli::UnitRef<'_, Reader>,
    header: &gimli::LineProgramHeader<Reader>,
    index: u64,
) -> Option<String> {
    let file = header.file(index)?;
    let mut path = String::new();
    if let Some(comp) = unit.comp_dir.as_ref().and_then(|c| c.to_string_lossy().ok()) {
        path_push(&mut path, &comp);
    }
    if file.directory_index() != 0
        && let Some(dir) = file.directory(header).and_then(|d| unit.attr_string(d).ok())
    {
        path_push(&mut path, &dir.to_string_lossy().ok()?);
    }
    let name = unit.attr_string(file.path_name()).ok()?.to_string_lossy().ok()?.into_owned();
    path_push(&mut path, &name);
    Some(path)
}

impl UnitLines {
    /// Runs the unit's line program once, applying gdb's recording rules
    /// (`lnp_state_machine::record_line` and `dwarf_record_line_p`).
    pub(crate) fn build(unit: gimli::UnitRef<'_, Reader>) -> UnitLines {
        match unit.line_program.clone() {
            Some(program) => UnitLines::build_rows(unit, program.rows()),
            None => UnitLines::default(),
        }
    }

    /// The same rules over any row source: a whole program, or one sequence of it
    /// (`CompleteLineProgram::resume_from`, used by the point lookups of `linetable`).
    pub(crate) fn build_rows<P: gimli::LineProgram<Reader>>(
        unit: gimli::UnitRef<'_, Reader>,
        mut rows: gimli::LineRows<Reader, P>,
    ) -> UnitLines {
        let mut out = UnitLines::default();
        let mut names: Vec<(u64, usize)> = Vec::new();
        // Per-sequence state.
        let mut last_file: Option<usize> = None;
        let mut last_line = 0u32;
        let mut last_addr: Option<u64> = None;
        let mut last_disc = false;
        // A statement row was seen at `last_addr` (gdb's `m_stmt_at_address`).
        let mut stmt_at_addr = false;
        let mut n_rows = 0usize;
        while let Ok(Some((header, row))) = rows.next_row() {
            n_rows += 1;
            if n_rows > 50_000_000 {
                break; // corrupt program: bounded work
            }
            let addr = row.address();
            if row.end_sequence() {
                if let Some(f) = last_file {
                    record(&mut out.files[f].1, Row::new(addr, 0, true));
                }
                last_file = None;
                last_line = 0;
                last_addr = None;
                last_disc = false;
                stmt_at_addr = false;
                continue;
            }
            let index = row.file_index();
            let file = match names.iter().find(|(i, _)| *i == index) {
                Some((_, f)) => *f,
                None => {
                    let path = file_path(unit, header, index).unwrap_or_default();
                    let f = match out.files.iter().position(|(p, _)| *p == path) {
                        Some(f) => f,
                        None => {
                            out.files.push((path, Vec::new()));
                            out.files.len() - 1
                        }
                    };
                    names.push((index, f));
                    f
                }
            };
            let line = row.line().map_or(0, |l| l.get().min(u32::MAX as u64) as u32);
            let disc = row.discriminator() != 0;
            let line_has_disc = if line == last_line && Some(file) == last_file { last_disc || disc } else { disc };
            let file_changed = last_file != Some(file);
            // A non-statement row in another file at the address of a statement row
            // would erase it (the end marker below): gdb skips it, and only then.
            let ignore = (file_changed && last_addr == Some(addr) && !row.is_stmt() && stmt_at_addr) || line == 0;
            if file_changed
                && !ignore
                && let Some(f) = last_file
            {
                record(&mut out.files[f].1, Row::new(addr, 0, true));
            }
            if !ignore {
                // dwarf_record_line_p: same file and line is recorded again unless the
                // line ever had a non-zero discriminator.
                if file_changed || line != last_line || !line_has_disc {
                    record(&mut out.files[file].1, Row::new(addr, line, row.is_stmt()));
                }
                last_file = Some(file);
                last_line = line;
                last_disc = line_has_disc;
            }
            if last_addr != Some(addr) {
                stmt_at_addr = false;
            }
            stmt_at_addr |= row.is_stmt();
            last_addr = Some(addr);
        }
        for (_, rows) in out.files.iter_mut() {
            // Stable: rows at one address keep program order, end markers first.
            let order =
                |a: &Row, b: &Row| a.addr.cmp(&b.addr).then(((b.line() == 0) as u8).cmp(&((a.line() == 0) as u8)));
            // Usually already in order (one sequence per section): skip the sort's scratch.
            if !rows.is_sorted_by(|a, b| order(a, b).is_le()) {
                rows.sort_by(order);
            }
            rows.shrink_to_fit();
        }
        out.files.shrink_to_fit();
        out
    }

    /// gdb's `find_pc_sect_line`: the closest row at or before `pc` over all files,
    /// stepping back to a statement row at the same address; None for line 0.
    pub(crate) fn lookup(&self, pc: u64) -> Option<(&str, u32)> {
        let pc = u32::try_from(pc).ok()?;
        let mut best: Option<(usize, usize)> = None;
        for (f, (_, rows)) in self.files.iter().enumerate() {
            let upper = rows.partition_point(|r| r.addr <= pc);
            if upper == 0 {
                continue;
            }
            let prev = upper - 1;
            if rows[prev].line() != 0 && best.is_none_or(|(bf, bi)| rows[prev].addr > self.files[bf].1[bi].addr) {
                let mut i = prev;
                if !rows[i].is_stmt() {
                    while i > 0 && rows[i - 1].addr == rows[i].addr && rows[i - 1].line() != 0 && !rows[i].is_stmt() {
                        i -= 1;
                    }
                    if !rows[i].is_stmt() {
                        i = prev;
                    }
                }
                best = Some((f, i));
            }
        }
        let (f, i) = best?;
        let row = self.files[f].1[i];
        (row.line() != 0).then(|| (self.files[f].0.as_str(), row.line()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(addr: u64, line: u32, is_stmt: bool) -> Row {
        Row::new(addr, line, is_stmt).expect("small test address")
    }

    #[test]
    fn end_marker_erases_rows_at_its_address() {
        let mut rows = vec![r(0x10, 5, true), r(0x20, 6, true)];
        record(&mut rows, Some(r(0x20, 0, true)));
        assert_eq!(rows, vec![r(0x10, 5, true), r(0x20, 0, true)]);
        // An end marker after nothing (or after another marker) is dropped.
        let mut empty = Vec::new();
        record(&mut empty, Some(r(0x30, 0, true)));
        // Rows beyond 4 GiB are not representable and dropped.
        assert!(Row::new(1 << 32, 5, true).is_none());
        assert!(empty.is_empty());
    }

    #[test]
    fn lookup_prefers_statement_rows_and_latest_address() {
        let lines = UnitLines {
            files: vec![
                ("a.h".into(), vec![r(0x71, 90, true), r(0x71, 90, false), r(0x90, 0, true)]),
                ("b.cc".into(), vec![r(0x5e, 15, true), r(0x90, 14, true)]),
            ],
        };
        let cases = [(0x86, Some(("a.h", 90))), (0x60, Some(("b.cc", 15))), (0x95, Some(("b.cc", 14))), (0x10, None)];
        for (pc, want) in cases {
            assert_eq!(lines.lookup(pc), want, "pc {pc:#x}");
        }
    }
}
