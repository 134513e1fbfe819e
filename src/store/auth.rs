//! Credentials: project tokens with scopes, users with Argon2id password hashes,
//! and login sessions. Tokens and session ids are stored only as BLAKE2s hashes.

use std::collections::HashMap;

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use blake2::{Blake2s256, Digest};

use super::schema::*;
use super::{Store, StoreError, now};

/// How long a login session lasts.
pub const SESSION_SECS: i64 = 7 * 24 * 3600;

/// How long a node trusts a project token it has checked without checking again.
pub const TOKEN_TTL: std::time::Duration = std::time::Duration::from_secs(2);
/// Most tokens remembered at once (then all are forgotten).
const TOKENS_KEPT: usize = 4096;

/// Project tokens recently checked, by their key (`token_key`).
#[derive(Default)]
pub struct TokenCache(std::sync::Mutex<HashMap<String, (std::time::Instant, Principal)>>);

impl TokenCache {
    fn get(&self, key: &str) -> Option<Principal> {
        let map = self.0.lock().ok()?;
        map.get(key).filter(|(at, _)| at.elapsed() < TOKEN_TTL).map(|(_, p)| p.clone())
    }

    fn put(&self, key: String, p: Principal) {
        if let Ok(mut map) = self.0.lock() {
            if map.len() >= TOKENS_KEPT {
                map.clear();
            }
            map.insert(key, (std::time::Instant::now(), p));
        }
    }

    fn clear(&self) {
        if let Ok(mut map) = self.0.lock() {
            map.clear();
        }
    }
}

/// Who a request is, once its credential checked out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Principal {
    /// A project token: one project, some scopes.
    Token { project: String, scopes: Vec<Scope> },
    /// A logged-in user: an admin has every project and the admin scope; a
    /// member the projects given (`None`: every project), without the admin scope.
    User { name: String, admin: bool, projects: Option<Vec<String>> },
}

impl Principal {
    /// Whether this principal may use `scope` on `project`.
    pub fn allows(&self, project: &str, scope: Scope) -> bool {
        match self {
            Principal::Token { project: p, scopes } => p == project && scopes.contains(&scope),
            Principal::User { admin: true, .. } => true,
            Principal::User { projects, .. } => {
                scope != Scope::Admin && projects.as_ref().is_none_or(|ps| ps.iter().any(|p| p == project))
            }
        }
    }
}

/// A token as `token list` shows it: never the token itself.
#[derive(Debug, Clone)]
pub struct TokenInfo {
    /// The first 12 hex digits of the token's hash: enough to name it for removal.
    pub id: String,
    pub record: TokenRecord,
}

fn random_hex(n_bytes: usize) -> Result<String, StoreError> {
    let mut buf = vec![0u8; n_bytes];
    getrandom::fill(&mut buf).map_err(|e| StoreError::Io(format!("the system's random source: {e}")))?;
    Ok(buf.iter().map(|b| format!("{b:02x}")).collect())
}

/// An Argon2id hash (PHC string) of a password of at least 8 characters.
fn hash_password(password: &str) -> Result<String, StoreError> {
    if password.len() < 8 {
        return Err(StoreError::BadInput("a password needs at least 8 characters".into()));
    }
    let salt_hex = random_hex(16)?;
    let salt_bytes: Vec<u8> =
        (0..16).map(|i| u8::from_str_radix(&salt_hex[2 * i..2 * i + 2], 16).unwrap_or(0)).collect();
    let salt = SaltString::encode_b64(&salt_bytes).map_err(|e| StoreError::Io(format!("salt: {e}")))?;
    Ok(Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map_err(|e| StoreError::Io(format!("hashing password: {e}")))?
        .to_string())
}

/// The CSRF token of a login session: what the console's pages send back in
/// `X-Bt-Csrf` with every state-changing request made with the session cookie.
/// Derived from the session id, so only who holds the session can compute it.
pub fn csrf_token(session: &str) -> String {
    token_key(&format!("bt-csrf\0{session}"))
}

/// A user's row in `members`: the projects of a member given some; none otherwise.
fn set_members(txn: &super::catalog::WriteTxn, name: &str, admin: bool, projects: &[String]) -> Result<(), StoreError> {
    let mut m = txn.open_table(MEMBERS)?;
    if !admin && !projects.is_empty() {
        m.insert(name, encode(&projects.to_vec())?.as_slice())?;
    } else {
        m.remove(name)?;
    }
    Ok(())
}

/// The key a token or session id is stored under.
pub fn token_key(token: &str) -> String {
    Blake2s256::digest(token.as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
}

impl Store {
    /// Creates a token for a project; returns the token (shown once, stored hashed).
    pub fn create_token(&self, project: &str, scopes: &[Scope]) -> Result<String, StoreError> {
        if scopes.is_empty() {
            return Err(StoreError::BadInput("a token needs at least one scope".into()));
        }
        self.project(project)?;
        let token = random_hex(24)?;
        let mut scopes = scopes.to_vec();
        scopes.sort_by_key(|s| *s as u8);
        scopes.dedup();
        let rec = TokenRecord { project: project.to_string(), scopes, created: now() };
        let txn = self.begin_write()?;
        txn.open_table(TOKENS)?.insert(token_key(&token).as_str(), encode(&rec)?.as_slice())?;
        txn.commit()?;
        Ok(token)
    }

    pub fn list_tokens(&self) -> Result<Vec<TokenInfo>, StoreError> {
        let txn = self.db().begin_read()?;
        let t = txn.open_table(TOKENS)?;
        let mut out = Vec::new();
        for e in t.iter()? {
            let (k, v) = e?;
            out.push(TokenInfo { id: k.value()[..12].to_string(), record: decode(v.value(), "token")? });
        }
        Ok(out)
    }

    /// Removes the token whose id (a prefix of its hash, as listed) or value is given.
    pub fn remove_token(&self, id_or_token: &str) -> Result<(), StoreError> {
        let txn = self.begin_write()?;
        {
            let mut t = txn.open_table(TOKENS)?;
            let by_value = token_key(id_or_token);
            let mut matches = Vec::new();
            for e in t.iter()? {
                let (k, _) = e?;
                let k = k.value();
                if k == by_value || (id_or_token.len() >= 8 && k.starts_with(id_or_token)) {
                    matches.push(k.to_string());
                }
            }
            match matches.len() {
                0 => return Err(StoreError::NotFound(format!("token {id_or_token}"))),
                1 => {
                    t.remove(matches[0].as_str())?;
                    self.tokens.clear();
                }
                n => {
                    return Err(StoreError::BadInput(format!("{n} tokens start with {id_or_token}; give more digits")));
                }
            }
        }
        txn.commit()?;
        Ok(())
    }

    /// Adds a user: an admin, or a member of `projects` (empty: every project).
    pub fn add_user(&self, name: &str, password: &str, admin: bool, projects: &[String]) -> Result<(), StoreError> {
        if !super::ingest::valid_attr_name(name) {
            return Err(StoreError::BadInput(format!("bad user name {name:?}: letters, digits, '.', '_', '-'")));
        }
        for p in projects {
            self.project(p)?;
        }
        let hash = hash_password(password)?;
        let txn = self.begin_write()?;
        {
            let mut t = txn.open_table(USERS)?;
            if t.get(name)?.is_some() {
                return Err(StoreError::UserExists(name.to_string()));
            }
            t.insert(name, encode(&UserRecord { password_hash: hash, admin, created: now() })?.as_slice())?;
            set_members(&txn, name, admin, projects)?;
        }
        txn.commit()?;
        Ok(())
    }

    /// A new password for a user; their sessions end.
    pub fn set_password(&self, name: &str, password: &str) -> Result<(), StoreError> {
        let hash = hash_password(password)?;
        self.update_user(name, |rec, txn| {
            rec.password_hash = hash;
            txn.open_table(SESSIONS)?
                .retain(|_, v| decode::<SessionRecord>(v, "session").map(|s| s.user != name).unwrap_or(false))?;
            Ok(())
        })
    }

    /// A user's role: admin, or a member of `projects` (empty: every project).
    pub fn set_role(&self, name: &str, admin: bool, projects: &[String]) -> Result<(), StoreError> {
        for p in projects {
            self.project(p)?;
        }
        self.update_user(name, |rec, txn| {
            rec.admin = admin;
            set_members(txn, name, admin, projects)
        })
    }

    /// Changes an existing user's record (and what else `change` writes) in one transaction.
    fn update_user(
        &self,
        name: &str,
        change: impl FnOnce(&mut UserRecord, &super::catalog::WriteTxn) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        let txn = self.begin_write()?;
        {
            let mut t = txn.open_table(USERS)?;
            let mut rec: UserRecord = match t.get(name)? {
                Some(v) => decode(v.value(), "user")?,
                None => return Err(StoreError::NotFound(format!("user {name}"))),
            };
            change(&mut rec, &txn)?;
            t.insert(name, encode(&rec)?.as_slice())?;
        }
        txn.commit()?;
        Ok(())
    }

    /// The projects a member was given (`None`: every project).
    pub fn member_projects(&self, name: &str) -> Result<Option<Vec<String>>, StoreError> {
        let txn = self.db().begin_read()?;
        let t = txn.open_table(MEMBERS)?;
        Ok(match t.get(name)? {
            Some(v) => Some(decode(v.value(), "member")?),
            None => None,
        })
    }

    /// Ends one login session (logout).
    pub fn end_session(&self, token: &str) -> Result<(), StoreError> {
        let txn = self.begin_write()?;
        txn.open_table(SESSIONS)?.remove(token_key(token).as_str())?;
        txn.commit()?;
        Ok(())
    }

    pub fn list_users(&self) -> Result<Vec<(String, UserRecord)>, StoreError> {
        let txn = self.db().begin_read()?;
        let t = txn.open_table(USERS)?;
        let mut out = Vec::new();
        for e in t.iter()? {
            let (k, v) = e?;
            out.push((k.value().to_string(), decode(v.value(), "user")?));
        }
        Ok(out)
    }

    /// Removes a user and their sessions.
    pub fn remove_user(&self, name: &str) -> Result<(), StoreError> {
        let txn = self.begin_write()?;
        {
            let mut t = txn.open_table(USERS)?;
            if t.remove(name)?.is_none() {
                return Err(StoreError::NotFound(format!("user {name}")));
            }
            txn.open_table(MEMBERS)?.remove(name)?;
            txn.open_table(SESSIONS)?
                .retain(|_, v| decode::<SessionRecord>(v, "session").map(|s| s.user != name).unwrap_or(false))?;
        }
        txn.commit()?;
        Ok(())
    }

    /// Checks a password; on success opens a session of `ttl_secs` and returns its token.
    /// Unknown users and wrong passwords are the same `None`.
    pub fn login(&self, name: &str, password: &str, ttl_secs: i64) -> Result<Option<String>, StoreError> {
        let user: Option<UserRecord> = {
            let txn = self.db().begin_read()?;
            let t = txn.open_table(USERS)?;
            match t.get(name)? {
                Some(v) => Some(decode(v.value(), "user")?),
                None => None,
            }
        };
        // Hash even for an unknown user, so timing does not tell which names exist.
        static DUMMY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
        let dummy = DUMMY.get_or_init(|| {
            SaltString::encode_b64(&[7u8; 16])
                .ok()
                .and_then(|salt| Argon2::default().hash_password(b"not a password", &salt).ok().map(|h| h.to_string()))
                .unwrap_or_default()
        });
        let stored = user.as_ref().map(|u| u.password_hash.clone()).unwrap_or_else(|| dummy.clone());
        let ok = PasswordHash::new(&stored)
            .map(|h| Argon2::default().verify_password(password.as_bytes(), &h).is_ok())
            .unwrap_or(false);
        if !ok || user.is_none() {
            return Ok(None);
        }
        let token = format!("s{}", random_hex(24)?);
        let txn = self.begin_write()?;
        {
            let mut t = txn.open_table(SESSIONS)?;
            let now = now();
            t.retain(|_, v| decode::<SessionRecord>(v, "session").map(|s| s.expires > now).unwrap_or(false))?;
            t.insert(
                token_key(&token).as_str(),
                encode(&SessionRecord { user: name.to_string(), expires: now + ttl_secs.clamp(1, SESSION_SECS * 52) })?
                    .as_slice(),
            )?;
        }
        txn.commit()?;
        Ok(Some(token))
    }

    /// Who holds this token or session id, if anyone. A project token that checked
    /// out is remembered for [`TOKEN_TTL`], so that a busy submitter costs the catalog
    /// no read per request; removing a token forgets them all on this node, and other
    /// nodes (a shared catalog) stop accepting it within [`TOKEN_TTL`].
    pub fn authenticate(&self, credential: &str) -> Result<Option<Principal>, StoreError> {
        if credential.is_empty() || credential.len() > 256 {
            return Ok(None);
        }
        let key = token_key(credential);
        if let Some(p) = self.tokens.get(&key) {
            return Ok(Some(p));
        }
        let txn = self.db().begin_read()?;
        if let Some(v) = txn.open_table(TOKENS)?.get(key.as_str())? {
            let t: TokenRecord = decode(v.value(), "token")?;
            let p = Principal::Token { project: t.project, scopes: t.scopes };
            self.tokens.put(key, p.clone());
            return Ok(Some(p));
        }
        let session: Option<SessionRecord> = match txn.open_table(SESSIONS)?.get(key.as_str())? {
            Some(v) => Some(decode(v.value(), "session")?),
            None => None,
        };
        let Some(s) = session.filter(|s| s.expires > now()) else { return Ok(None) };
        let admin = match txn.open_table(USERS)?.get(s.user.as_str())? {
            Some(v) => decode::<UserRecord>(v.value(), "user")?.admin,
            None => return Ok(None),
        };
        let projects = match txn.open_table(MEMBERS)?.get(s.user.as_str())? {
            Some(v) if !admin => Some(decode::<Vec<String>>(v.value(), "member")?),
            _ => None,
        };
        Ok(Some(Principal::User { name: s.user, admin, projects }))
    }
}
