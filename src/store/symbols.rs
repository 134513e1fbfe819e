//! Uploaded symbols: ELF executables, shared objects and separate debug files, one
//! at a time or in a tar, tar.gz or zip, kept by GNU build id under
//! `DATA/symbols/.build-id/xx/rest` (code) and `…/rest.debug` (debug files), the
//! layout of `/usr/lib/debug` that the symbolizer and the minidump reader search.
//! Breakpad `.sym` files are kept under `DATA/symbols/breakpad/NAME/ID/NAME.sym`.
//!
//! Files, not redb: the symbolizer maps them. Each is written to a temporary name
//! and renamed, so a reader never sees half a file; the same build id uploaded
//! again replaces the file with the same content.

use std::io::Read;
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::{Store, StoreError};

/// Most files taken from one archive.
const MAX_ENTRIES: usize = 10_000;

/// One file of an upload and what became of it.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct SymbolFile {
    pub name: String,
    /// `code` (an executable or library), `debug` (a separate debug file), `breakpad`.
    pub kind: String,
    pub build_id: String,
}

/// An uploaded file that was not kept, and why.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Skipped {
    pub name: String,
    pub reason: String,
}

fn bad(m: impl Into<String>) -> StoreError {
    StoreError::BadInput(m.into())
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// (build id, is a separate debug file) of an ELF file.
fn elf_identity(bytes: &[u8]) -> Result<(Vec<u8>, bool), String> {
    use object::{Object, ObjectSection};
    let obj = object::File::parse(bytes).map_err(|e| format!("not a readable ELF file: {e}"))?;
    let id = obj.build_id().ok().flatten().ok_or("no GNU build id")?.to_vec();
    // A separate debug file keeps the section headers but no code: .text is NOBITS.
    let debug_only = obj.section_by_name(".text").is_some_and(|s| s.file_range().is_none());
    Ok((id, debug_only))
}

fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), StoreError> {
    let dir = path.parent().ok_or_else(|| StoreError::Io(format!("{}: no directory", path.display())))?;
    std::fs::create_dir_all(dir).map_err(|e| StoreError::Io(format!("{}: {e}", dir.display())))?;
    let tmp = dir.join(format!(".tmp-{}", std::process::id()));
    std::fs::write(&tmp, bytes).map_err(|e| StoreError::Io(format!("{}: {e}", tmp.display())))?;
    std::fs::rename(&tmp, path).map_err(|e| StoreError::Io(format!("{}: {e}", path.display())))
}

/// A Breakpad `.sym` file's `MODULE os arch id name` line.
fn breakpad_module(bytes: &[u8]) -> Option<(String, String)> {
    let line = bytes.split(|&b| b == b'\n').next()?;
    let line = std::str::from_utf8(line).ok()?.trim();
    let mut w = line.split_whitespace();
    (w.next()? == "MODULE").then_some(())?;
    let (_os, _arch, id) = (w.next()?, w.next()?, w.next()?);
    let name: Vec<&str> = w.collect();
    let name = name.join(" ");
    let plain = |s: &str| !s.is_empty() && s.len() <= 255 && !s.contains(['/', '\\', '\0']) && s != ".." && s != ".";
    (plain(id) && plain(&name) && id.bytes().all(|b| b.is_ascii_hexdigit())).then(|| (id.to_string(), name))
}

impl Store {
    /// Where uploaded symbols live (`DATA/symbols`).
    pub fn symbols_dir(&self) -> PathBuf {
        self.dir().join("symbols")
    }

    /// Keeps the symbol files of an upload: one ELF file, a Breakpad `.sym`, or a
    /// tar / tar.gz / zip of them. `limit` bounds what an archive may inflate to.
    pub fn add_symbols(
        &self,
        name: &str,
        bytes: &[u8],
        limit: u64,
    ) -> Result<(Vec<SymbolFile>, Vec<Skipped>), StoreError> {
        let mut files: Vec<(String, Vec<u8>)> = Vec::new();
        if bytes.starts_with(b"\x1f\x8b") {
            let mut out = Vec::new();
            flate2::read::GzDecoder::new(bytes)
                .take(limit.saturating_add(1))
                .read_to_end(&mut out)
                .map_err(|e| bad(format!("{name}: not gzip: {e}")))?;
            if out.len() as u64 > limit {
                return Err(StoreError::TooLarge(format!("{name} inflates beyond {limit} bytes")));
            }
            // One layer: a gzip inside a gzip would let an upload recurse without end.
            if out.starts_with(b"\x1f\x8b") {
                return Err(bad(format!("{name}: gzip inside gzip")));
            }
            return self.add_symbols(name.trim_end_matches(".gz"), &out, limit);
        } else if bytes.starts_with(b"PK\x03\x04") {
            let mut zip = zip::ZipArchive::new(std::io::Cursor::new(bytes)).map_err(|e| bad(format!("{name}: {e}")))?;
            if zip.len() > MAX_ENTRIES {
                return Err(bad(format!("{name}: more than {MAX_ENTRIES} files")));
            }
            let mut total = 0u64;
            for i in 0..zip.len() {
                let mut f = zip.by_index(i).map_err(|e| bad(format!("{name}: {e}")))?;
                if !f.is_file() {
                    continue;
                }
                let entry = f.name().to_string();
                let mut out = Vec::new();
                (&mut f)
                    .take(limit.saturating_sub(total).saturating_add(1))
                    .read_to_end(&mut out)
                    .map_err(|e| bad(format!("{entry}: {e}")))?;
                total += out.len() as u64;
                if total > limit {
                    return Err(StoreError::TooLarge(format!("{name} inflates beyond {limit} bytes")));
                }
                files.push((entry, out));
            }
        } else if bytes.len() > 262 && &bytes[257..262] == b"ustar" {
            let mut tar = tar::Archive::new(bytes);
            let entries = tar.entries().map_err(|e| bad(format!("{name}: {e}")))?;
            for e in entries {
                let mut e = e.map_err(|e| bad(format!("{name}: {e}")))?;
                if !e.header().entry_type().is_file() {
                    continue;
                }
                if files.len() >= MAX_ENTRIES {
                    return Err(bad(format!("{name}: more than {MAX_ENTRIES} files")));
                }
                let entry = e.path().map(|p| p.display().to_string()).unwrap_or_default();
                let mut out = Vec::new();
                e.read_to_end(&mut out).map_err(|e| bad(format!("{entry}: {e}")))?;
                files.push((entry, out));
            }
        } else {
            files.push((name.to_string(), bytes.to_vec()));
        }
        let root = self.symbols_dir();
        let (mut kept, mut skipped) = (Vec::new(), Vec::new());
        for (entry, data) in files {
            let base = Path::new(&entry).file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
            if data.starts_with(b"\x7fELF") {
                match elf_identity(&data) {
                    Ok((id, debug_only)) if id.len() >= 2 => {
                        let h = hex(&id);
                        let file = if debug_only { format!("{}.debug", &h[2..]) } else { h[2..].to_string() };
                        write_atomic(&root.join(".build-id").join(&h[..2]).join(file), &data)?;
                        kept.push(SymbolFile {
                            name: base,
                            kind: if debug_only { "debug" } else { "code" }.into(),
                            build_id: h,
                        });
                    }
                    Ok(_) => skipped.push(Skipped { name: entry, reason: "build id too short".into() }),
                    Err(reason) => skipped.push(Skipped { name: entry, reason }),
                }
            } else if let Some((id, module)) = breakpad_module(&data) {
                // Breakpad's layout: NAME/ID/NAME.sym, with a Windows `.pdb` name's extension dropped.
                let stem = module.strip_suffix(".pdb").unwrap_or(&module);
                write_atomic(&root.join("breakpad").join(&module).join(&id).join(format!("{stem}.sym")), &data)?;
                kept.push(SymbolFile { name: base, kind: "breakpad".into(), build_id: id });
            } else {
                skipped.push(Skipped { name: entry, reason: "neither an ELF file nor a Breakpad .sym file".into() });
            }
        }
        if kept.is_empty() && skipped.is_empty() {
            return Err(bad(format!("{name}: no file in the upload")));
        }
        Ok((kept, skipped))
    }

    /// The build ids of the uploaded symbols: (build id, kind).
    pub fn list_symbols(&self) -> Result<Vec<(String, String)>, StoreError> {
        let mut out = Vec::new();
        let root = self.symbols_dir().join(".build-id");
        let Ok(dirs) = std::fs::read_dir(&root) else { return Ok(out) };
        for d in dirs.filter_map(Result::ok) {
            let prefix = d.file_name().to_string_lossy().into_owned();
            let Ok(files) = std::fs::read_dir(d.path()) else { continue };
            for f in files.filter_map(Result::ok) {
                let n = f.file_name().to_string_lossy().into_owned();
                if n.starts_with('.') {
                    continue;
                }
                match n.strip_suffix(".debug") {
                    Some(rest) => out.push((format!("{prefix}{rest}"), "debug".to_string())),
                    None => out.push((format!("{prefix}{n}"), "code".to_string())),
                }
            }
        }
        out.sort();
        Ok(out)
    }
}
