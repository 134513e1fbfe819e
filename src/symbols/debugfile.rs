//! Separate debug files: `/usr/lib/debug/.build-id/xx/rest.debug` and `.gnu_debuglink`
//! (with its CRC32), searched the way gdb and elfutils do.

use super::elf::{Image, hex};
use std::path::{Path, PathBuf};

/// The default debug root; `SymbolOptions::debug_dirs` are searched after it.
pub(crate) const DEFAULT_DEBUG_ROOT: &str = "/usr/lib/debug";

/// CRC-32 (IEEE 802.3) as `.gnu_debuglink` uses it (`crc32fast`: SIMD where the
/// CPU has it, so checking a large debug file stays near memory speed).
pub(crate) fn crc32(data: &[u8]) -> u32 {
    crc32fast::hash(data)
}

/// Candidate paths for a build id under each root, in order.
pub(crate) fn build_id_candidates(build_id: &[u8], roots: &[PathBuf]) -> Vec<PathBuf> {
    if build_id.len() < 2 {
        return Vec::new();
    }
    let h = hex(build_id);
    roots.iter().map(|r| r.join(".build-id").join(&h[..2]).join(format!("{}.debug", &h[2..]))).collect()
}

/// Candidate paths for a debuglink `name` of the binary at `binary` (its real path):
/// beside it, in `.debug/` beside it, then `<root>/<binary's dir>/name` for each root.
pub(crate) fn debuglink_candidates(binary: &Path, name: &str, roots: &[PathBuf]) -> Vec<PathBuf> {
    let dir = binary.parent().unwrap_or(Path::new("/"));
    let mut out = vec![dir.join(name), dir.join(".debug").join(name)];
    let rel = dir.strip_prefix("/").unwrap_or(dir);
    for r in roots {
        out.push(r.join(rel).join(name));
    }
    // Never pick the binary itself (a debuglink naming its own file).
    out.retain(|p| p != binary);
    out
}

/// Finds the dwz supplementary file named by `image`'s `.gnu_debugaltlink`: the path
/// as written (relative paths from the debug file's directory), then by build id under
/// each root. Its build id must match.
pub(crate) fn find_alt(image: &Image, roots: &[PathBuf]) -> Option<Image> {
    let (path, id) = image.altlink.as_ref()?;
    let mut candidates = Vec::new();
    let p = Path::new(path);
    if p.is_absolute() {
        candidates.push(p.to_path_buf());
    } else if let Some(dir) = image.path.parent() {
        candidates.push(dir.join(p));
    }
    candidates.extend(build_id_candidates(id, roots));
    candidates
        .into_iter()
        .filter_map(|c| Image::open(&c).ok())
        .find(|img| img.build_id.as_ref().is_none_or(|b| b == id))
}

/// Why a candidate was rejected, for the problem list.
#[derive(Debug)]
pub(crate) enum Rejected {
    BuildId(PathBuf),
    Crc(PathBuf),
}

/// Finds and opens the separate debug file of `image`. Order: build-id paths, then
/// debuglink paths. A debuglink candidate is accepted when its build id equals the
/// binary's (cheap and as strong as the CRC); otherwise its CRC32 must match.
pub(crate) fn find(image: &Image, roots: &[PathBuf]) -> (Option<Image>, Vec<Rejected>) {
    let mut rejected = Vec::new();
    if let Some(id) = &image.build_id {
        for p in build_id_candidates(id, roots) {
            if let Ok(img) = Image::open(&p) {
                if img.build_id.as_ref().is_none_or(|b| b == id) {
                    return (Some(img), rejected);
                }
                rejected.push(Rejected::BuildId(p));
            }
        }
    }
    if let Some((name, crc)) = &image.debuglink {
        let real = std::fs::canonicalize(&image.path).unwrap_or_else(|_| image.path.clone());
        for p in debuglink_candidates(&real, name, roots) {
            let Ok(img) = Image::open(&p) else { continue };
            match (&image.build_id, &img.build_id) {
                (Some(a), Some(b)) if a == b => return (Some(img), rejected),
                (Some(_), Some(_)) => rejected.push(Rejected::BuildId(p)),
                _ if crc32(&img.bytes) == *crc => return (Some(img), rejected),
                _ => rejected.push(Rejected::Crc(p)),
            }
        }
    }
    (None, rejected)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32_known_values() {
        let cases: &[(&[u8], u32)] = &[
            (b"", 0),
            (b"a", 0xe8b7be43),
            (b"123456789", 0xcbf43926),
            (b"The quick brown fox jumps over the lazy dog", 0x414fa339),
        ];
        for (input, want) in cases {
            assert_eq!(crc32(input), *want, "crc32({:?})", String::from_utf8_lossy(input));
        }
    }

    #[test]
    fn candidate_paths() {
        let roots = vec![PathBuf::from("/usr/lib/debug"), PathBuf::from("/opt/dbg")];
        assert_eq!(
            build_id_candidates(&[0xab, 0xcd, 0xef], &roots),
            vec![
                PathBuf::from("/usr/lib/debug/.build-id/ab/cdef.debug"),
                PathBuf::from("/opt/dbg/.build-id/ab/cdef.debug")
            ]
        );
        assert_eq!(
            debuglink_candidates(Path::new("/usr/bin/prog"), "prog.debug", &roots),
            vec![
                PathBuf::from("/usr/bin/prog.debug"),
                PathBuf::from("/usr/bin/.debug/prog.debug"),
                PathBuf::from("/usr/lib/debug/usr/bin/prog.debug"),
                PathBuf::from("/opt/dbg/usr/bin/prog.debug"),
            ]
        );
    }
}
