//! Symbols for minidumps over HTTP: `POST …?format=symbols` (a token with the
//! `symbols` scope; kept by [`crate::store::Store::add_symbols`]), `GET /api/symbols`,
//! and the background reprocessing of the dumps that were waiting for them.

use super::*;

/// Attributes the store computes or the tracer derives again: not carried over
/// when a crash is traced again.
const RECOMPUTED: &[&str] = &["fingerprint", "callstack", "classifiers", "received", "_missing_symbols", "bt.warnings"];

/// Traces again, with newly uploaded symbols, the minidumps whose modules with these
/// build ids were missing: each becomes a new object (attributes, timestamp and
/// attachments carried over, `bt.reprocessed_from` naming the old one), stored
/// before the old one is deleted, so the crash is never lost and the group counts
/// move with it.
fn reprocess(store: &Store, process: &MinidumpProcessor, build_ids: &[String]) {
    let projects = match store.list_projects() {
        Ok(p) => p,
        Err(e) => return log_line(json!({"ts": now(), "reprocess": {"error": e.to_string()}})),
    };
    for p in projects {
        let mut ids: Vec<u64> = Vec::new();
        for b in build_ids {
            let q = json!({"filter": [{"_missing_symbols": [["contains", b]]}], "select": ["fingerprint"], "limit": 100000});
            if let Ok(q) = Query::from_json(&q)
                && let Ok(found) = store.select_ids(&p.name, &q)
            {
                ids.extend(found);
            }
        }
        ids.sort_unstable();
        ids.dedup();
        for id in ids {
            let result = (|| -> Result<u64, String> {
                let dump = store.get_attachment(&p.name, id, "upload_file_minidump.dmp").map_err(|e| e.to_string())?;
                let snapshot = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| process(&dump)))
                    .map_err(|_| "processing panicked".to_string())??;
                let mut attributes: Vec<(String, String)> = store
                    .object_attributes(&p.name, id)
                    .map_err(|e| e.to_string())?
                    .into_iter()
                    .filter(|(k, _)| !RECOMPUTED.contains(&k.as_str()) && !k.starts_with("fingerprint;"))
                    .collect();
                attributes.retain(|(k, _)| k != "bt.reprocessed_from");
                attributes.push(("bt.reprocessed_from".into(), format_object_id(id)));
                let mut attachments = Vec::new();
                for (name, _) in store.attachment_names(&p.name, id).map_err(|e| e.to_string())? {
                    attachments
                        .push((name.clone(), store.get_attachment(&p.name, id, &name).map_err(|e| e.to_string())?));
                }
                let ack = store
                    .submit(Submission {
                        project: p.name.clone(),
                        format: Format::Snapshot,
                        body: snapshot,
                        attributes,
                        attachments,
                    })
                    .map_err(|e| e.to_string())?;
                store.delete(&p.name, vec![id]).map_err(|e| e.to_string())?;
                Ok(ack.rxid)
            })();
            let v = match result {
                Ok(new) => json!({"project": p.name, "from": format_object_id(id), "to": format_object_id(new)}),
                Err(e) => json!({"project": p.name, "object": format_object_id(id), "error": e}),
            };
            log_line(json!({"ts": now(), "reprocess": v}));
        }
    }
}

impl Api {
    /// `format=symbols`: ELF files, Breakpad `.sym` files, or a tar/tar.gz/zip of
    /// them (raw, or multipart with the files as parts); kept by build id.
    pub(super) fn symbols_upload(&self, req: &Request<'_>, body: &[u8]) -> Outcome {
        let content_type = req.header("content-type").unwrap_or("").to_string();
        let uploads: Vec<(String, Vec<u8>)> = if content_type.to_ascii_lowercase().starts_with("multipart/form-data") {
            let Some(boundary) = multipart::boundary(&content_type) else {
                return err(400, "multipart/form-data without a boundary");
            };
            match multipart::parse(body, &boundary) {
                Ok(parts) => parts.into_iter().map(|p| (p.filename.unwrap_or(p.name), p.data)).collect(),
                Err(m) => return err(400, &m),
            }
        } else {
            vec![(req.param("name").unwrap_or("upload").to_string(), body.to_vec())]
        };
        let (mut kept, mut skipped) = (Vec::new(), Vec::new());
        for (name, data) in uploads {
            match self.store.add_symbols(&name, &data, self.opts.max_submission) {
                Ok((k, s)) => {
                    kept.extend(k);
                    skipped.extend(s);
                }
                Err(e) => return store_error(e),
            }
        }
        if kept.is_empty() {
            let why = skipped.first().map(|s| format!("{}: {}", s.name, s.reason)).unwrap_or_default();
            return err(400, &format!("no symbols in the upload ({why})"));
        }
        // Crashes that arrived before these symbols are traced again with them.
        let reprocessing = match self.opts.minidump.clone() {
            Some(process) => {
                let ids: Vec<String> = kept.iter().map(|k| k.build_id.clone()).collect();
                let store = self.store.clone();
                std::thread::Builder::new()
                    .name("reprocess".into())
                    .spawn(move || reprocess(&store, &process, &ids))
                    .is_ok()
            }
            None => false,
        };
        let mut o = ok(json!({"response": "ok", "symbols": kept, "skipped": skipped, "reprocessing": reprocessing}));
        o.note = Some(format!("{} symbol files", kept.len()));
        o
    }

    pub(super) fn list_symbols(&self, req: &mut Request<'_>) -> Outcome {
        if let Err(o) = self.authorize(req, Scope::Query) {
            return o;
        }
        match self.store.list_symbols() {
            Ok(l) => ok(
                json!({"response": "ok", "symbols": l.iter().map(|(id, kind)| json!({"build_id": id, "kind": kind})).collect::<Vec<_>>()}),
            ),
            Err(e) => store_error(e),
        }
    }
}
