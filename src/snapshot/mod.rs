//! The snapshot: the one contract between producers (the tracer) and consumers
//! (dedup, store, query, viewer). Data model in [`model`], encoding here.
//!
#![doc = include_str!("FORMAT.md")]

pub mod budget;
mod memory;
mod model;
pub mod print;
pub mod render;
pub mod tree;
pub mod v1;
pub mod v2;
pub mod values;

pub use budget::DecodeLimits;
pub use memory::{Memory, Regions};
pub use model::*;

use std::io::{Read, Write};

/// Extension name of the threads' kernel stacks (see [`Snapshot::kernel_stacks`]).
pub const KERNEL_STACKS: &str = "kernel-stacks";
/// The extension holding a Go program's goroutines (version 1: JSON `[Goroutine]`).
pub const GOROUTINES: &str = "go.goroutines";

/// One goroutine of a Go program (the [`GOROUTINES`] extension).
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Goroutine {
    pub id: u64,
    /// `running`, `runnable`, `syscall`, `waiting`, `preempted` …
    pub status: String,
    /// Why a waiting goroutine waits (`chan receive`, `sleep`, `semacquire` …), as the
    /// Go runtime names it.
    pub wait_reason: Option<String>,
    /// The OS thread (M) running it, when one does; its stack is that thread's.
    pub thread: Option<i32>,
    /// The goroutine whose panic killed the process.
    pub panicking: bool,
    /// A parked goroutine's stack, innermost first.
    pub frames: Vec<Frame>,
}

/// First bytes of every snapshot file.
pub const MAGIC: [u8; 6] = *b"BTSNAP";
/// The version this build writes. Every version ever written keeps decoding.
pub const FORMAT_VERSION: u16 = 3;
/// Header: magic (6) + version (2) + compression (1) + reserved (3) + payload length (8).
pub const HEADER_LEN: usize = 20;
/// Encoded sizes bincode may claim (its own limit); what decoding may hold in
/// memory is bounded separately, by [`DecodeLimits`].
pub const MAX_DECODED: u64 = 1 << 31;

const COMPRESSION_NONE: u8 = 0;
const COMPRESSION_ZSTD: u8 = 1;

#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    #[error("not a bt snapshot (bad magic)")]
    BadMagic,
    #[error("snapshot format version {0} is newer than this bt understands (max {FORMAT_VERSION})")]
    UnsupportedVersion(u16),
    #[error("snapshot is truncated: header says {expected} payload bytes, found {found}")]
    Truncated { expected: u64, found: u64 },
    #[error("unknown snapshot compression {0}")]
    UnknownCompression(u8),
    #[error("corrupt snapshot payload: {0}")]
    Corrupt(String),
    #[error("snapshot payload inflates to more than {0} bytes")]
    TooLarge(u64),
    #[error("encoding snapshot: {0}")]
    Encode(String),
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

fn bincode_config() -> impl bincode::config::Config {
    bincode::config::standard().with_limit::<{ MAX_DECODED as usize }>()
}

impl Snapshot {
    /// Encodes into the versioned, compressed file format.
    pub fn encode(&self) -> Result<Vec<u8>, SnapshotError> {
        let raw =
            bincode::serde::encode_to_vec(self, bincode_config()).map_err(|e| SnapshotError::Encode(e.to_string()))?;
        let mut enc = zstd::stream::Encoder::new(Vec::with_capacity(raw.len() / 3 + 64), 3)?;
        enc.include_checksum(true)?;
        enc.write_all(&raw)?;
        let payload = enc.finish()?;
        let mut out = Vec::with_capacity(HEADER_LEN + payload.len());
        out.extend_from_slice(&MAGIC);
        out.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
        out.push(COMPRESSION_ZSTD);
        out.extend_from_slice(&[0, 0, 0]);
        out.extend_from_slice(&(payload.len() as u64).to_le_bytes());
        out.extend_from_slice(&payload);
        Ok(out)
    }

    /// Decodes any format version this build knows, under the default limits.
    pub fn decode(bytes: &[u8]) -> Result<Snapshot, SnapshotError> {
        Snapshot::decode_with(bytes, &DecodeLimits::default())
    }

    /// Decodes under `limits`: the inflated payload, what decoding holds in
    /// memory, and the nesting depth are all bounded.
    pub fn decode_with(bytes: &[u8], limits: &DecodeLimits) -> Result<Snapshot, SnapshotError> {
        if bytes.len() < HEADER_LEN || bytes[..6] != MAGIC {
            return Err(SnapshotError::BadMagic);
        }
        let version = u16::from_le_bytes([bytes[6], bytes[7]]);
        let compression = bytes[8];
        let expected = u64::from_le_bytes(bytes[12..20].try_into().expect("8-byte slice"));
        let payload = &bytes[HEADER_LEN..];
        if payload.len() as u64 != expected {
            return Err(SnapshotError::Truncated { expected, found: payload.len() as u64 });
        }
        let raw = match compression {
            COMPRESSION_NONE => payload.to_vec(),
            COMPRESSION_ZSTD => {
                let dec = zstd::stream::Decoder::new(payload)?;
                let mut raw = Vec::new();
                let cap = limits.max_inflated.min(MAX_DECODED);
                dec.take(cap + 1).read_to_end(&mut raw).map_err(|e| SnapshotError::Corrupt(e.to_string()))?;
                if raw.len() as u64 > cap {
                    return Err(SnapshotError::TooLarge(cap));
                }
                raw
            }
            other => return Err(SnapshotError::UnknownCompression(other)),
        };
        if raw.len() as u64 > limits.max_inflated {
            return Err(SnapshotError::TooLarge(limits.max_inflated));
        }
        match version {
            1 => decode_body::<v1::Snapshot>(&raw, limits).map(|s| Snapshot::from(v2::Snapshot::from(s))),
            2 => decode_body::<v2::Snapshot>(&raw, limits).map(Snapshot::from),
            3 => decode_body::<Snapshot>(&raw, limits),
            v => Err(SnapshotError::UnsupportedVersion(v)),
        }
    }

    /// Reads and decodes a snapshot file.
    pub fn read_file(path: &std::path::Path) -> Result<Snapshot, SnapshotError> {
        Snapshot::decode(&std::fs::read(path)?)
    }

    /// Writes atomically: a temporary file in the same directory, then rename,
    /// so a reader never sees half a snapshot.
    pub fn write_file(&self, path: &std::path::Path) -> Result<(), SnapshotError> {
        let bytes = self.encode()?;
        let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(std::path::Path::new("."));
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let tmp = dir.join(format!(".{name}.tmp{}", std::process::id()));
        let result = (|| {
            let mut f = std::fs::File::create(&tmp)?;
            f.write_all(&bytes)?;
            f.sync_all()?;
            std::fs::rename(&tmp, path)
        })();
        if result.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        Ok(result?)
    }

    /// The faulting thread, if the snapshot has one.
    pub fn faulting_thread(&self) -> Option<&Thread> {
        self.threads.iter().find(|t| t.faulted)
    }

    pub fn attribute(&self, key: &str) -> Option<&str> {
        self.attributes.iter().find(|a| a.key == key).map(|a| a.value.as_str())
    }

    /// The kernel stacks of the threads (`/proc/PID/task/TID/stack` of a live target,
    /// readable as root), from the [`KERNEL_STACKS`] extension: (tid, text).
    pub fn kernel_stacks(&self) -> Option<Vec<(i32, String)>> {
        let e = self.extensions.iter().find(|e| e.name == KERNEL_STACKS && e.version == 1)?;
        serde_json::from_slice(&e.bytes).ok()
    }

    /// Stores the kernel stacks as the [`KERNEL_STACKS`] extension (version 1: JSON
    /// `[[tid, "text"], …]`), replacing an earlier one.
    pub fn set_kernel_stacks(&mut self, stacks: &[(i32, String)]) {
        self.extensions.retain(|e| e.name != KERNEL_STACKS);
        if let Ok(bytes) = serde_json::to_vec(stacks) {
            self.extensions.push(Extension { name: KERNEL_STACKS.into(), version: 1, bytes });
        }
    }

    /// The goroutines of a Go program, from the [`GOROUTINES`] extension.
    pub fn goroutines(&self) -> Option<Vec<Goroutine>> {
        let e = self.extensions.iter().find(|e| e.name == GOROUTINES && e.version == 1)?;
        serde_json::from_slice(&e.bytes).ok()
    }

    /// [`Snapshot::goroutines`] with only what the text shows of their frames (no
    /// registers, no structured values, no locations). The structured values are most
    /// of the extension's bytes and are skipped instead of built: a thousand
    /// goroutines' text no longer waits 90 ms for them.
    pub fn goroutines_for_text(&self) -> Option<Vec<Goroutine>> {
        #[derive(serde::Deserialize, Default)]
        #[serde(default)]
        struct G {
            id: u64,
            status: String,
            wait_reason: Option<String>,
            thread: Option<i32>,
            panicking: bool,
            frames: Vec<F>,
        }
        #[derive(serde::Deserialize, Default)]
        #[serde(default)]
        struct F {
            pc: u64,
            module: Option<String>,
            module_offset: u64,
            function: Option<String>,
            file: Option<String>,
            line: Option<u32>,
            inlined: bool,
            trust: Trust,
            signal_frame: bool,
            variables: Vec<V>,
        }
        #[derive(serde::Deserialize, Default)]
        #[serde(default)]
        struct V {
            name: String,
            value: String,
        }
        let e = self.extensions.iter().find(|e| e.name == GOROUTINES && e.version == 1)?;
        let lean: Vec<G> = serde_json::from_slice(&e.bytes).ok()?;
        let frame = |f: F| Frame {
            pc: f.pc,
            module: f.module,
            module_offset: f.module_offset,
            function: f.function,
            file: f.file,
            line: f.line,
            inlined: f.inlined,
            trust: f.trust,
            signal_frame: f.signal_frame,
            variables: f
                .variables
                .into_iter()
                .map(|v| Variable { name: v.name, text: v.value, ..Default::default() })
                .collect(),
            ..Default::default()
        };
        Some(
            lean.into_iter()
                .map(|g| Goroutine {
                    id: g.id,
                    status: g.status,
                    wait_reason: g.wait_reason,
                    thread: g.thread,
                    panicking: g.panicking,
                    frames: g.frames.into_iter().map(frame).collect(),
                })
                .collect(),
        )
    }

    /// Stores the goroutines as the [`GOROUTINES`] extension, replacing earlier ones.
    pub fn set_goroutines(&mut self, goroutines: &[Goroutine]) {
        self.extensions.retain(|e| e.name != GOROUTINES);
        if let Ok(bytes) = serde_json::to_vec(goroutines) {
            self.extensions.push(Extension { name: GOROUTINES.into(), version: 1, bytes });
        }
    }

    /// Sets an attribute, replacing an earlier value of the same key.
    pub fn set_attribute(&mut self, key: &str, value: &str) {
        match self.attributes.iter_mut().find(|a| a.key == key) {
            Some(a) => a.value = value.to_string(),
            None => self.attributes.push(Attribute { key: key.to_string(), value: value.to_string() }),
        }
    }
}

/// A bincode reader over a slice that leaves what it has not read in view (for
/// the trailing-bytes check).
struct Rest<'a>(&'a [u8]);

impl bincode::de::read::Reader for Rest<'_> {
    #[inline]
    fn read(&mut self, out: &mut [u8]) -> Result<(), bincode::error::DecodeError> {
        if out.len() > self.0.len() {
            return Err(bincode::error::DecodeError::UnexpectedEnd { additional: out.len() - self.0.len() });
        }
        let (head, tail) = self.0.split_at(out.len());
        out.copy_from_slice(head);
        self.0 = tail;
        Ok(())
    }
}

/// A random (version 4) UUID, the id of a new snapshot or crash.
pub fn new_uuid() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// Parses `BACKTRACE_DEFAULTS` (attributes a site adds to every snapshot): lines of
/// `key=value`; blank lines and `#` comments ignored.
pub fn parse_defaults(text: &str) -> Vec<(String, String)> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .filter(|(k, _)| !k.is_empty())
        .collect()
}

fn decode_body<T: serde::de::DeserializeOwned>(raw: &[u8], limits: &DecodeLimits) -> Result<T, SnapshotError> {
    let meter = budget::Meter::new(limits);
    let mut rest = Rest(raw);
    let mut de = bincode::serde::OwnedSerdeDecoder::from_reader(&mut rest, bincode_config());
    let value: T = budget::decode(de.as_deserializer(), &meter).map_err(|e| SnapshotError::Corrupt(e.to_string()))?;
    if !rest.0.is_empty() {
        return Err(SnapshotError::Corrupt(format!("{} trailing bytes after the snapshot", rest.0.len())));
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Snapshot {
        Snapshot {
            uuid: "00000000-0000-4000-8000-000000000000".into(),
            timestamp: 1,
            threads: vec![Thread {
                tid: 7,
                faulted: true,
                frames: vec![Frame { pc: 0x401000, function: Some("main".into()), ..Default::default() }],
                ..Default::default()
            }],
            ..Default::default()
        }
    }

    #[test]
    fn round_trip() {
        let s = sample();
        assert_eq!(Snapshot::decode(&s.encode().unwrap()).unwrap(), s);
    }

    #[test]
    fn truncated_is_an_error_not_a_panic() {
        let bytes = sample().encode().unwrap();
        for cut in [0, 5, HEADER_LEN, bytes.len() - 1] {
            assert!(Snapshot::decode(&bytes[..cut]).is_err(), "cut at {cut}");
        }
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        let mut bytes = sample().encode().unwrap();
        for b in bytes[HEADER_LEN..].iter_mut() {
            *b = b.wrapping_mul(31).wrapping_add(7);
        }
        assert!(Snapshot::decode(&bytes).is_err());
        assert!(matches!(Snapshot::decode(b"hello world, not a snapshot"), Err(SnapshotError::BadMagic)));
    }

    /// Regression (hostile input 2): a few KB of zstd holding a million empty
    /// attributes must not decode into hundreds of MB under a submission's limits.
    #[test]
    fn decode_bomb_is_refused_under_submission_limits() {
        let mut s = sample();
        s.attributes = vec![Attribute::default(); 1_000_000];
        let bytes = s.encode().unwrap();
        assert!(bytes.len() < 64 << 10, "the bomb is small: {} bytes", bytes.len());
        let limits = DecodeLimits::for_submission(bytes.len() as u64, 32 << 20);
        let e = Snapshot::decode_with(&bytes, &limits).unwrap_err();
        assert!(e.to_string().contains("decode budget"), "{e}");
        // The same file under the command line's limits still opens (it is valid).
        assert_eq!(Snapshot::decode(&bytes).unwrap().attributes.len(), 1_000_000);
        // An ordinary snapshot decodes under the tightest submission limits.
        let small = sample().encode().unwrap();
        assert!(Snapshot::decode_with(&small, &DecodeLimits::for_submission(small.len() as u64, 1 << 20)).is_ok());
    }

    /// Regression (hostile input 2): the inflated size is bounded before decoding.
    #[test]
    fn inflation_beyond_the_limit_is_refused() {
        let mut s = sample();
        s.memory = vec![MemoryRegion { address: 0x1000, label: String::new(), bytes: vec![0; 64 << 20] }];
        let bytes = s.encode().unwrap();
        let limits = DecodeLimits { max_inflated: 32 << 20, ..DecodeLimits::default() };
        assert!(matches!(Snapshot::decode_with(&bytes, &limits), Err(SnapshotError::TooLarge(_))));
    }

    /// Regression (hostile input 3): a structured value nested far deeper than any
    /// capture makes is refused on a small stack, not a stack overflow.
    #[test]
    fn deep_nesting_is_refused_not_a_stack_overflow() {
        let bytes = std::thread::Builder::new()
            .stack_size(256 << 20)
            .spawn(|| {
                let mut v = Value::Int(1);
                for _ in 0..20_000 {
                    v = Value::Pointer { address: 1, symbol: None, target: Some(Box::new(v)) };
                }
                let mut s = sample();
                s.threads[0].frames[0].variables.push(Variable { value: v, ..Default::default() });
                let bytes = s.encode().unwrap();
                drop(s);
                bytes
            })
            .unwrap()
            .join()
            .unwrap();
        let r = std::thread::Builder::new()
            .stack_size(1 << 20)
            .spawn(move || Snapshot::decode(&bytes).map(|_| ()).map_err(|e| e.to_string()))
            .unwrap()
            .join()
            .expect("decoding on a 1 MiB stack does not overflow it");
        let e = r.unwrap_err();
        assert!(e.contains("nested deeper"), "{e}");
    }

    #[test]
    fn defaults_parsing() {
        let got = parse_defaults("# comment\nversion=1.2\n\n team = core \nbroken line\n");
        assert_eq!(got, vec![("version".into(), "1.2".into()), ("team".into(), "core".into())]);
    }

    #[test]
    fn uuid_shape() {
        let u = new_uuid();
        assert_eq!(u.len(), 36);
        assert_eq!(&u[14..15], "4");
        assert_ne!(u, new_uuid());
    }

    #[test]
    fn newer_version_is_refused_clearly() {
        let mut bytes = sample().encode().unwrap();
        bytes[6] = 99;
        assert!(matches!(Snapshot::decode(&bytes), Err(SnapshotError::UnsupportedVersion(99))));
    }
}
