//! Compressed cores, as systemd-coredump keeps them
//! (`/var/lib/systemd/coredump/core.NAME.….zst`): a zstd core is inflated into a
//! temporary file, unlinked as soon as it is created (cores are often bigger than
//! memory would comfortably hold, and a killed bt leaves nothing behind), and that file
//! is mapped. A stream cut short gives the core as far as it goes, as a truncated core
//! file does. The temporary directory is never filled: the inflated core must leave
//! 1 GiB of it free. Cores compressed with xz or lz4 (other systemd builds) are named
//! with the tool that inflates them.

use super::super::CaptureError;
use std::fs::File;
use std::io::{Read, Write};
use std::os::unix::fs::OpenOptionsExt;

const ZSTD_MAGIC: [u8; 4] = [0x28, 0xb5, 0x2f, 0xfd];
const XZ_MAGIC: [u8; 6] = [0xfd, b'7', b'z', b'X', b'Z', 0];
const LZ4_MAGIC: [u8; 4] = [0x04, 0x22, 0x4d, 0x18];
/// What the inflated core must leave free in the temporary directory.
const KEEP_FREE: u64 = 1 << 30;

/// How the file at `head` is compressed, when it is.
pub(super) enum Compression {
    Zstd,
    /// Not inflated here: the tool that does it.
    Other(&'static str),
}

pub(super) fn compression(head: &[u8]) -> Option<Compression> {
    if head.starts_with(&ZSTD_MAGIC) {
        Some(Compression::Zstd)
    } else if head.starts_with(&XZ_MAGIC) {
        Some(Compression::Other("xz"))
    } else if head.starts_with(&LZ4_MAGIC) {
        Some(Compression::Other("lz4"))
    } else {
        None
    }
}

/// Inflates the zstd core `file` (named `name`) into an unlinked temporary file and
/// maps it; with the problem met when the stream ended early or broke.
pub(super) fn inflate(file: &File, name: &str) -> Result<(memmap2::Mmap, Option<String>), CaptureError> {
    let dir = std::env::temp_dir();
    let io = |what: &str, source: std::io::Error| CaptureError::Io {
        path: name.to_string(),
        source: std::io::Error::new(source.kind(), format!("{what} {}: {source}", dir.display())),
    };
    let stamp = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
    let path = dir.join(format!(".bt-core-{}-{stamp}", std::process::id()));
    let mut out = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)
        .map_err(|e| io("creating a file in", e))?;
    // Unlinked at once: the space is the open file's, freed when bt ends however it ends.
    let _ = std::fs::remove_file(&path);
    let room = free_bytes(&out).map(|f| f.saturating_sub(KEEP_FREE));
    let mut decoder = zstd::stream::read::Decoder::new(file).map_err(|e| io("inflating the core into", e))?;
    let mut buf = vec![0u8; 1 << 20];
    let mut written = 0u64;
    let mut problem = None;
    loop {
        let n = match decoder.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) => {
                problem = Some(format!(
                    "the zstd stream of {name} breaks after {written} bytes ({e}); the core is read as far as it goes"
                ));
                break;
            }
        };
        if room.is_some_and(|r| written + n as u64 > r) {
            return Err(io(
                &format!("inflating the core past {written} bytes would leave less than 1 GiB free in"),
                std::io::Error::from(std::io::ErrorKind::StorageFull),
            ));
        }
        out.write_all(&buf[..n]).map_err(|e| io("inflating the core into", e))?;
        written += n as u64;
    }
    if written == 0 {
        return Err(CaptureError::NotACore {
            path: name.to_string(),
            reason: problem.unwrap_or_else(|| "an empty zstd stream".into()),
        });
    }
    // SAFETY: the file is ours alone (created exclusively, then unlinked), mapped read-only.
    let map = unsafe { memmap2::Mmap::map(&out) }.map_err(|e| io("mapping the inflated core in", e))?;
    Ok((map, problem))
}

/// Free bytes of the file system holding `file`, for an unprivileged user.
fn free_bytes(file: &File) -> Option<u64> {
    use std::os::fd::AsRawFd;
    let mut st = std::mem::MaybeUninit::<libc::statvfs>::uninit();
    // SAFETY: fstatvfs fills the struct for a valid descriptor; checked before use.
    if unsafe { libc::fstatvfs(file.as_raw_fd(), st.as_mut_ptr()) } != 0 {
        return None;
    }
    // SAFETY: initialised by the successful call above.
    let st = unsafe { st.assume_init() };
    Some(st.f_bavail.saturating_mul(st.f_frsize))
}
