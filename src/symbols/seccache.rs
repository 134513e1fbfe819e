//! A persistent cache of inflated debug sections, keyed by build id: distribution
//! debug files (libc's among them) compress their DWARF, and inflating it is most of
//! the cost of a small trace. A section is inflated once, written atomically under
//! `$XDG_CACHE_HOME/bt/sections` (else `~/.cache/bt/sections`) and mmapped on reuse.
//! `BT_NO_CACHE` set (to anything) disables it. Every failure here falls back to
//! inflating in memory: the cache is an optimisation, never a source of errors.

use super::elf::{Image, SharedBytes};
use object::{Object, ObjectSection};
use std::io::Write;
use std::path::PathBuf;

/// `$XDG_CACHE_HOME/bt/NAME` (else `~/.cache/bt/NAME`); None when `BT_NO_CACHE` is set.
pub(crate) fn cache_dir(name: &str) -> Option<PathBuf> {
    if std::env::var_os("BT_NO_CACHE").is_some() {
        return None;
    }
    let base = match std::env::var_os("XDG_CACHE_HOME").filter(|v| !v.is_empty()) {
        Some(dir) => PathBuf::from(dir),
        None => PathBuf::from(std::env::var_os("HOME").filter(|v| !v.is_empty())?).join(".cache"),
    };
    Some(base.join("bt").join(name))
}

/// A section's contents by name, inflated when SHF_COMPRESSED — from the cache when
/// this image (by build id) had it inflated before.
pub(crate) fn section_data(image: &Image, name: &str) -> Option<SharedBytes> {
    let size = match uncompressed_size(image, name) {
        Some(size) => size,
        None => return image.section_data(name), // absent or stored uncompressed
    };
    let (Some(root), Some(id)) = (cache_dir("sections"), image.build_id.as_deref()) else {
        return image.section_data(name);
    };
    // Invariant: a cache file is only ever created by rename of a complete write, so a
    // file of the expected size holds the inflated section of that build id.
    let path = root.join(super::elf::hex(id)).join(name.trim_start_matches('.'));
    if let Ok(meta) = std::fs::metadata(&path)
        && meta.len() == size
        && let Ok(bytes) = SharedBytes::map_file(&path)
    {
        return Some(bytes);
    }
    let data = image.section_data(name)?;
    if data.len() as u64 == size {
        store(&path, &[&data]);
    }
    Some(data)
}

/// The inflated size from the compression header; None when not compressed.
fn uncompressed_size(image: &Image, name: &str) -> Option<u64> {
    let file = object::read::elf::ElfFile64::<object::LittleEndian>::parse(&*image.bytes).ok()?;
    let c = file.section_by_name(name)?.compressed_file_range().ok()?;
    (c.format != object::CompressionFormat::None).then_some(c.uncompressed_size)
}

/// Writes `parts` (one after the other) to `path` through a temporary file in the
/// same directory and a rename, so readers see the whole file or none. Errors are
/// ignored.
pub(crate) fn store(path: &std::path::Path, parts: &[&[u8]]) {
    let Some(dir) = path.parent() else { return };
    if std::fs::create_dir_all(dir).is_err() {
        return;
    }
    let tmp = dir.join(format!(
        ".tmp.{}.{}",
        std::process::id(),
        path.file_name().map(|n| n.to_string_lossy()).unwrap_or_default()
    ));
    let written = std::fs::File::create(&tmp).and_then(|mut f| parts.iter().try_for_each(|p| f.write_all(p)));
    if written.is_err() || std::fs::rename(&tmp, path).is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
}
