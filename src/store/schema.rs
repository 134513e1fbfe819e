//! The redb tables of the store and the records kept in them (see STORE.md for the
//! byte-level layout). Only this file names table definitions.

use super::catalog::{Bytes, Str, Table, Text};
use serde::{Deserialize, Serialize, de::DeserializeOwned};

use super::StoreError;

/// Bumped when a table or record layout changes; `Store::open` refuses newer files.
pub const SCHEMA_VERSION: u32 = 4;

/// `"schema"` → SCHEMA_VERSION (u32 LE).
pub const META: Table<Str, Bytes> = Table::new("c.meta");
/// Project name → [`ProjectRecord`].
pub const PROJECTS: Table<Str, Bytes> = Table::new("c.projects");
/// Hex BLAKE2s-256 of a token → [`TokenRecord`]. Tokens themselves are never stored.
pub const TOKENS: Table<Str, Bytes> = Table::new("c.tokens");
/// User name → [`UserRecord`].
pub const USERS: Table<Str, Bytes> = Table::new("c.users");
/// Hex BLAKE2s-256 of a session token → [`SessionRecord`].
pub const SESSIONS: Table<Str, Bytes> = Table::new("c.sessions");
/// user name → the projects a member may see (`Vec<String>`); no row: every project
/// (an admin, or a member given none). Schema 3.
pub const MEMBERS: Table<Str, Bytes> = Table::new("c.members");
/// (project id, attribute id) → [`AttrRecord`].
pub const ATTRS: Table<(u32, u32), Bytes> = Table::new("c.attrs");
/// (project id, string id) → the string: the per-project dictionary of attribute values.
pub const STRINGS: Table<(u32, u32), Text> = Table::new("c.strings");
/// (project id, object id) → [`ObjectRow`]: the indexed attributes of one object.
pub const OBJECTS: Table<(u32, u64), Bytes> = Table::new("c.objects");
/// (project id, object id) → [`BlobHeader`] byte + payload: the submitted report.
pub const BLOBS: Table<(u32, u64), Bytes> = Table::new("c.blobs");
/// (project id, object id, attachment name) → attachment bytes (zstd).
pub const ATTACHMENTS: Table<(u32, u64, Str), Bytes> = Table::new("c.attachments");
/// (project id, fingerprint) → [`GroupRecord`]: per-group aggregates maintained on ingest.
pub const GROUPS: Table<(u32, Str), Bytes> = Table::new("c.groups");

/// (project id, fingerprint) → [`super::triage::TriageRecord`] (schema 2).
pub const TRIAGE: Table<(u32, Str), Bytes> = Table::new("c.triage");
/// (project id, fingerprint, sequence) → [`super::triage::HistoryEntry`]: append-only.
pub const HISTORY: Table<(u32, Str, u64), Bytes> = Table::new("c.history");
/// (project id, integration name) → [`super::outbox::Integration`].
pub const INTEGRATIONS: Table<(u32, Str), Bytes> = Table::new("c.integrations");
/// (project id, rule id) → [`super::outbox::Rule`].
pub const RULES: Table<(u32, u32), Bytes> = Table::new("c.rules");
/// Delivery id → (project id, [`super::outbox::Pending`]): notifications not yet settled.
pub const OUTBOX: Table<u64, Bytes> = Table::new("c.outbox");
/// (project id, integration name, delivery id) → [`super::outbox::Delivery`]: the delivery log.
pub const DELIVERIES: Table<(u32, Str, u64), Bytes> = Table::new("c.deliveries");
/// (project id, rule id, fingerprint) → [`NotifyState`]: when a rule last fired for a group.
pub const NOTIFIED: Table<(u32, u32, Str), Bytes> = Table::new("c.notified");

/// Every table of the catalog (the change log aside), for copies between engines.
pub const ALL_TABLES: &[&str] = &[
    META.name,
    PROJECTS.name,
    TOKENS.name,
    USERS.name,
    SESSIONS.name,
    MEMBERS.name,
    ATTRS.name,
    STRINGS.name,
    OBJECTS.name,
    BLOBS.name,
    ATTACHMENTS.name,
    GROUPS.name,
    TRIAGE.name,
    HISTORY.name,
    INTEGRATIONS.name,
    RULES.name,
    OUTBOX.name,
    DELIVERIES.name,
    NOTIFIED.name,
];

/// Per rule and group: the last notification and the recent crashes a threshold counts.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NotifyState {
    pub last: i64,
    pub window: Vec<i64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProjectRecord {
    pub id: u32,
    pub created: i64,
    /// Retention: objects received more than this many seconds ago are removed (0 = keep).
    pub max_age: u64,
    /// Retention: the oldest objects are removed while blobs exceed this many bytes (0 = no limit).
    pub max_bytes: u64,
    /// The id the next object gets. Never reused, even after deletion.
    pub next_object: u64,
    /// The id the next dictionary string gets.
    pub next_string: u32,
    /// The id the next attribute gets.
    pub next_attr: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Scope {
    Submit,
    Query,
    Object,
    Admin,
    /// Uploading symbols (`format=symbols`).
    Symbols,
}

impl Scope {
    pub fn parse(s: &str) -> Option<Scope> {
        Some(match s {
            "submit" => Scope::Submit,
            "query" => Scope::Query,
            "object" => Scope::Object,
            "admin" => Scope::Admin,
            "symbols" => Scope::Symbols,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Submit => "submit",
            Scope::Query => "query",
            Scope::Object => "object",
            Scope::Admin => "admin",
            Scope::Symbols => "symbols",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenRecord {
    pub project: String,
    pub scopes: Vec<Scope>,
    pub created: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserRecord {
    /// Argon2id in PHC string format.
    pub password_hash: String,
    pub admin: bool,
    pub created: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionRecord {
    pub user: String,
    pub expires: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum AttrType {
    Str,
    Int,
    Timestamp,
}

impl AttrType {
    pub fn as_str(self) -> &'static str {
        match self {
            AttrType::Str => "string",
            AttrType::Int => "integer",
            AttrType::Timestamp => "timestamp",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttrRecord {
    pub name: String,
    pub ty: AttrType,
}

/// One attribute value of an object: a dictionary string or an integer. The tag is
/// kept per value, so an attribute whose type widens (integer → string) keeps its
/// old rows readable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Val {
    S(u32),
    I(i64),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectRow {
    /// Length of the stored blob payload in bytes (retention by size counts these).
    pub blob_len: u64,
    /// Names of the attachments stored under this object.
    pub attachments: Vec<String>,
    /// (attribute id, value), ascending attribute id.
    pub values: Vec<(u32, Val)>,
}

impl ObjectRow {
    /// Reads an encoded row's values in place, without building the row: the
    /// catch-up of a node's index reads millions. Answers the blob length. The
    /// layout is the one `encode` writes (bincode's standard configuration).
    pub fn visit(bytes: &[u8], mut f: impl FnMut(u32, Val)) -> Result<u64, StoreError> {
        use bincode::Decode;
        use bincode::de::{DecoderImpl, read::SliceReader};
        let bad = |e: bincode::error::DecodeError| StoreError::Corrupt(format!("decoding object: {e}"));
        // The limit bounds what a corrupt length may claim.
        let cfg = bincode::config::standard().with_limit::<{ 64 << 20 }>();
        let mut d = DecoderImpl::new(SliceReader::new(bytes), cfg, ());
        let blob_len = u64::decode(&mut d).map_err(bad)?;
        for _ in 0..u64::decode(&mut d).map_err(bad)? {
            String::decode(&mut d).map_err(bad)?;
        }
        for _ in 0..u64::decode(&mut d).map_err(bad)? {
            let attr = u32::decode(&mut d).map_err(bad)?;
            let val = match u32::decode(&mut d).map_err(bad)? {
                0 => Val::S(u32::decode(&mut d).map_err(bad)?),
                1 => Val::I(i64::decode(&mut d).map_err(bad)?),
                t => return Err(StoreError::Corrupt(format!("decoding object: value tag {t}"))),
            };
            f(attr, val);
        }
        Ok(blob_len)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupRecord {
    pub count: u64,
    pub first_seen: i64,
    pub last_seen: i64,
    pub first_object: u64,
    pub last_object: u64,
    /// The pretty signature callstack, one frame a line.
    pub callstack: String,
    pub classifiers: String,
}

/// What the first byte of a blob says about the rest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlobKind {
    /// A bt snapshot, stored exactly as submitted (it is compressed already).
    Snapshot = 1,
    /// A Backtrace-style JSON report, zstd-compressed.
    JsonZstd = 2,
}

impl BlobKind {
    pub fn from_byte(b: u8) -> Option<BlobKind> {
        match b {
            1 => Some(BlobKind::Snapshot),
            2 => Some(BlobKind::JsonZstd),
            _ => None,
        }
    }
}

pub fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, StoreError> {
    bincode::serde::encode_to_vec(value, bincode::config::standard())
        .map_err(|e| StoreError::Corrupt(format!("encoding record: {e}")))
}

pub fn decode<T: DeserializeOwned>(bytes: &[u8], what: &str) -> Result<T, StoreError> {
    let cfg = bincode::config::standard().with_limit::<{ 64 << 20 }>();
    bincode::serde::decode_from_slice::<T, _>(bytes, cfg)
        .map(|(v, _)| v)
        .map_err(|e| StoreError::Corrupt(format!("decoding {what}: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn object_rows_are_small() {
        let row = ObjectRow {
            blob_len: 2000,
            attachments: vec![],
            values: (0..12).map(|i| (i, if i % 3 == 0 { Val::I(1_700_000_000) } else { Val::S(100 + i) })).collect(),
        };
        let bytes = encode(&row).unwrap();
        assert!(bytes.len() < 80, "{} bytes", bytes.len());
        assert_eq!(decode::<ObjectRow>(&bytes, "row").unwrap(), row);
    }

    #[test]
    fn a_row_visited_in_place_reads_as_decoded() {
        let row = ObjectRow {
            blob_len: 1 << 40,
            attachments: vec!["log.txt".into(), "core".into()],
            values: vec![(0, Val::S(7)), (3, Val::I(-5)), (300, Val::I(i64::MIN)), (70_000, Val::S(u32::MAX))],
        };
        let bytes = encode(&row).unwrap();
        let mut seen = Vec::new();
        assert_eq!(ObjectRow::visit(&bytes, |a, v| seen.push((a, v))).unwrap(), row.blob_len);
        assert_eq!(seen, row.values);
        // Cut anywhere, or with an unknown value tag: an error, never a panic.
        for n in 0..bytes.len() {
            assert!(ObjectRow::visit(&bytes[..n], |_, _| {}).is_err(), "cut at {n}");
        }
        let mut bad = encode(&ObjectRow { blob_len: 1, attachments: vec![], values: vec![(1, Val::I(2))] }).unwrap();
        *bad.iter_mut().rev().nth(1).unwrap() = 9;
        assert!(ObjectRow::visit(&bad, |_, _| {}).unwrap_err().to_string().contains("value tag 9"));
    }

    #[test]
    fn scopes_round_trip() {
        for s in ["submit", "query", "object", "admin"] {
            assert_eq!(Scope::parse(s).unwrap().as_str(), s);
        }
        assert!(Scope::parse("root").is_none());
    }
}
