//! Summaries for the web console, computed from the in-memory index in one pass:
//! a project's activity (crashes and groups per window, new groups, a sparkline),
//! the group records and triage of a page of groups, one object's attributes, and
//! why an object's crash was grouped as it was (the rules' explanation).

use std::collections::HashSet;

use serde::Serialize;

use super::index::Column;
use super::schema::{BlobKind, GroupRecord};
use super::triage::TriageRecord;
use super::{Store, StoreError, ingest};
use crate::dedup::Signature;
use crate::snapshot::Snapshot;

/// Buckets of the activity sparkline (the last 30 days).
pub const SPARK_BUCKETS: usize = 32;

/// A project's activity, relative to `now`.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Activity {
    pub objects: u64,
    pub groups: u64,
    /// Crashes in the last 24 hours, 7 days, 30 days (by crash time).
    pub crashes: [u64; 3],
    /// Distinct groups that crashed in those windows.
    pub groups_in: [u64; 3],
    /// Groups first seen in the last 7 days.
    pub new_groups: u64,
    /// Crashes per bucket over the last 30 days, oldest first.
    pub spark: Vec<u64>,
}

/// The windows of [`Activity`], in seconds.
pub const WINDOWS: [i64; 3] = [86_400, 7 * 86_400, 30 * 86_400];

impl Store {
    /// The activity of one project.
    pub fn activity(&self, project: &str, now: i64) -> Result<Activity, StoreError> {
        let p = self.project_index(project)?;
        let mut a = Activity { objects: p.n_alive as u64, groups: p.groups.len() as u64, ..Default::default() };
        a.spark = vec![0; SPARK_BUCKETS];
        let span = WINDOWS[2];
        let ts = match p.attr("timestamp").map(|a| &a.column) {
            Some(Column::Int(c)) => Some(c),
            _ => None,
        };
        let fps = match p.attr("fingerprint").map(|a| &a.column) {
            Some(Column::Str(c)) => Some(c),
            _ => None,
        };
        let mut seen: [HashSet<u32>; 3] = Default::default();
        for row in 0..p.ids.len() {
            if !p.alive[row] {
                continue;
            }
            let Some(t) = ts.map(|c| c.get(row)) else { continue };
            // Crashes "from the future" (clock skew) count as now.
            let age = (now - t).max(0);
            if age >= span {
                continue;
            }
            for (w, win) in WINDOWS.iter().enumerate() {
                if age < *win {
                    a.crashes[w] += 1;
                    if let Some(fps) = fps {
                        seen[w].insert(fps.get(row));
                    }
                }
            }
            let b = (SPARK_BUCKETS as i64 - 1 - age * SPARK_BUCKETS as i64 / span).clamp(0, SPARK_BUCKETS as i64 - 1);
            a.spark[b as usize] += 1;
        }
        a.groups_in = [seen[0].len() as u64, seen[1].len() as u64, seen[2].len() as u64];
        a.new_groups = p.groups.values().filter(|g| now - g.first_seen < WINDOWS[1]).count() as u64;
        Ok(a)
    }

    /// The group record and triage of each fingerprint (None for an unknown one).
    pub fn group_infos(
        &self,
        project: &str,
        fingerprints: &[String],
    ) -> Result<Vec<Option<(GroupRecord, TriageRecord)>>, StoreError> {
        let p = self.project_index(project)?;
        Ok(fingerprints
            .iter()
            .map(|fp| p.groups.get(fp).map(|g| (g.clone(), p.triage.get(fp).cloned().unwrap_or_default())))
            .collect())
    }

    /// The attributes of one live object, by name, as text.
    pub fn object_attributes(&self, project: &str, id: u64) -> Result<Vec<(String, String)>, StoreError> {
        let p = self.project_index(project)?;
        let row =
            p.row_of(id).ok_or_else(|| StoreError::NotFound(format!("object {}", super::format_object_id(id))))?;
        let mut out = Vec::new();
        for a in &p.attrs {
            let v = match &a.column {
                Column::Str(_) => p.str_cell(a, row).map(str::to_string),
                Column::Int(c) => (c.get(row) != super::index::UNSET_INT).then(|| c.get(row).to_string()),
            };
            if let Some(v) = v {
                out.push((a.name.clone(), v));
            }
        }
        out.sort();
        Ok(out)
    }

    /// How the project's rules group this object's crash: each frame with the rules
    /// that fired and what became of it (`bt rules explain`).
    pub fn explain(&self, project: &str, id: u64) -> Result<Signature, StoreError> {
        let obj = self.get(project, id)?;
        let rules = self.rules_for(project)?;
        let (frames, classifiers) = match obj.kind {
            BlobKind::Snapshot => {
                let snap =
                    Snapshot::decode(&obj.bytes).map_err(|e| StoreError::Corrupt(format!("object {id:x}: {e}")))?;
                let thread = snap.faulting_thread().or(snap.threads.first());
                (thread.map(|t| t.frames.clone()).unwrap_or_default(), snap.classifiers.clone())
            }
            BlobKind::JsonZstd => {
                let r = ingest::parse_json_report(&obj.bytes)?;
                (r.frames, r.classifiers)
            }
        };
        Ok(rules.evaluate(&frames, &classifiers))
    }
}
