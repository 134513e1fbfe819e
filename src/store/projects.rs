//! Projects of the store: creating, listing, retention settings and removal.

use std::sync::Arc;

use super::index::ProjectIndex;
use super::schema::*;
use super::{ProjectInfo, Retention, Store, StoreError, ingest, lock_poisoned, now};

impl Store {
    pub fn create_project(&self, name: &str) -> Result<ProjectRecord, StoreError> {
        if !ingest::valid_attr_name(name) || name.starts_with('.') {
            return Err(StoreError::BadInput(format!("bad project name {name:?}: letters, digits, '.', '_', '-'")));
        }
        let txn = self.begin_write()?;
        let rec;
        {
            let mut t = txn.open_table(PROJECTS)?;
            if t.get(name)?.is_some() {
                return Err(StoreError::ProjectExists(name.to_string()));
            }
            let mut max_id = 0;
            for e in t.iter()? {
                let (_, v) = e?;
                max_id = max_id.max(decode::<ProjectRecord>(v.value(), "project")?.id);
            }
            rec = ProjectRecord {
                id: max_id + 1,
                created: now(),
                max_age: 0,
                max_bytes: 0,
                next_object: 1,
                next_string: 0,
                next_attr: 0,
            };
            t.insert(name, encode(&rec)?.as_slice())?;
        }
        txn.commit()?;
        self.index
            .write()
            .map_err(lock_poisoned)?
            .insert(name.to_string(), Arc::new(ProjectIndex::new(name, rec.clone())));
        Ok(rec)
    }

    pub fn list_projects(&self) -> Result<Vec<ProjectInfo>, StoreError> {
        let txn = self.db.begin_read()?;
        let t = txn.open_table(PROJECTS)?;
        let objects = txn.open_table(OBJECTS)?;
        let mut out = Vec::new();
        for e in t.iter()? {
            let (k, v) = e?;
            let record: ProjectRecord = decode(v.value(), "project")?;
            let n = objects.range((record.id, 0)..=(record.id, u64::MAX))?.count() as u64;
            out.push(ProjectInfo { name: k.value().to_string(), record, objects: n });
        }
        Ok(out)
    }

    pub fn project(&self, name: &str) -> Result<ProjectRecord, StoreError> {
        let txn = self.db.begin_read()?;
        let t = txn.open_table(PROJECTS)?;
        let v = t.get(name)?.ok_or_else(|| StoreError::NoProject(name.to_string()))?;
        decode(v.value(), "project")
    }

    pub fn set_retention(&self, name: &str, r: Retention) -> Result<ProjectRecord, StoreError> {
        let txn = self.begin_write()?;
        let rec;
        {
            let mut t = txn.open_table(PROJECTS)?;
            let mut cur: ProjectRecord = {
                let v = t.get(name)?.ok_or_else(|| StoreError::NoProject(name.to_string()))?;
                decode(v.value(), "project")?
            };
            if let Some(a) = r.max_age {
                cur.max_age = a;
            }
            if let Some(b) = r.max_bytes {
                cur.max_bytes = b;
            }
            t.insert(name, encode(&cur)?.as_slice())?;
            rec = cur;
        }
        txn.commit()?;
        if let Some(p) = self.index.write().map_err(lock_poisoned)?.get_mut(name).map(Arc::make_mut) {
            p.record.max_age = rec.max_age;
            p.record.max_bytes = rec.max_bytes;
        }
        Ok(rec)
    }

    /// Removes a project with all its objects, groups, dictionary and tokens.
    pub fn remove_project(&self, name: &str) -> Result<(), StoreError> {
        let txn = self.begin_write()?;
        {
            let mut t = txn.open_table(PROJECTS)?;
            let rec: ProjectRecord = {
                let v = t.get(name)?.ok_or_else(|| StoreError::NoProject(name.to_string()))?;
                decode(v.value(), "project")?
            };
            t.remove(name)?;
            let pid = rec.id;
            txn.open_table(ATTRS)?.retain_in((pid, 0)..=(pid, u32::MAX), |_, _| false)?;
            txn.open_table(STRINGS)?.retain_in((pid, 0)..=(pid, u32::MAX), |_, _| false)?;
            txn.open_table(OBJECTS)?.retain_in((pid, 0)..=(pid, u64::MAX), |_, _| false)?;
            txn.open_table(BLOBS)?.retain_in((pid, 0)..=(pid, u64::MAX), |_, _| false)?;
            txn.open_table(ATTACHMENTS)?.retain_in((pid, 0, "")..(pid + 1, 0, ""), |_, _| false)?;
            txn.open_table(GROUPS)?.retain_in((pid, "")..(pid + 1, ""), |_, _| false)?;
            let mut tokens = txn.open_table(TOKENS)?;
            let mut doomed = Vec::new();
            for e in tokens.iter()? {
                let (k, v) = e?;
                if decode::<TokenRecord>(v.value(), "token")?.project == name {
                    doomed.push(k.value().to_string());
                }
            }
            for k in doomed {
                tokens.remove(k.as_str())?;
            }
        }
        txn.commit()?;
        self.index.write().map_err(lock_poisoned)?.remove(name);
        self.rules.lock().map_err(lock_poisoned)?.remove(name);
        Ok(())
    }
}
