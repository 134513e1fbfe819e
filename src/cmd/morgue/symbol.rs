//! `bt morgue symbol PROJECT upload|list|missing`: symbol files for minidumps.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use argh::FromArgs;

use super::backend;

/// Symbols for minidumps: bt morgue symbol PROJECT upload FILE…|DIR (ELF files,
/// separate debug files, Breakpad .sym, tar/tar.gz/zip; a directory is walked for
/// ELF files), bt morgue symbol PROJECT list, bt morgue symbol PROJECT missing
/// (modules seen in minidumps without their files, most frequent first).
#[derive(FromArgs, Debug)]
#[argh(
    subcommand,
    name = "symbol",
    example = "bt morgue symbol myapp upload build/out/ --url http://bt:6097 --token T"
)]
pub(super) struct SymbolArgs {
    /// the project, the action (upload, list, missing), the files or directories
    #[argh(positional)]
    pub(super) words: Vec<String>,
    /// local data directory, no server
    #[argh(option)]
    pub(super) data: Option<PathBuf>,
    /// server URL (default: the session's)
    #[argh(option)]
    pub(super) url: Option<String>,
    /// an API token (symbols scope to upload) instead of the session
    #[argh(option)]
    pub(super) token: Option<String>,
}

/// The files an upload takes: files as given; a directory's ELF files, walked.
fn symbol_files(paths: &[String]) -> anyhow::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    let mut stack: Vec<PathBuf> = paths.iter().map(PathBuf::from).collect();
    while let Some(p) = stack.pop() {
        let meta = std::fs::symlink_metadata(&p).with_context(|| format!("reading {}", p.display()))?;
        if meta.is_dir() {
            for e in std::fs::read_dir(&p).with_context(|| format!("reading {}", p.display()))? {
                stack.push(e?.path());
            }
        } else if meta.is_file() {
            let mut magic = [0u8; 4];
            let is_elf =
                std::fs::File::open(&p).and_then(|mut f| std::io::Read::read_exact(&mut f, &mut magic)).is_ok()
                    && &magic == b"\x7fELF";
            if is_elf || paths.iter().any(|a| Path::new(a) == p) {
                out.push(p);
            }
        }
    }
    out.sort();
    Ok(out)
}

/// Uploads symbol files, lists them, or counts the modules minidumps lacked.
pub(super) fn run(a: SymbolArgs) -> anyhow::Result<()> {
    let [project, action, rest @ ..] = a.words.as_slice() else {
        bail!("usage: bt morgue symbol PROJECT upload FILE…|DIR | list | missing");
    };
    let b = backend(a.data.as_deref(), a.url.as_deref(), a.token.as_deref())?;
    match action.as_str() {
        "upload" => {
            let files = symbol_files(rest)?;
            if files.is_empty() {
                bail!("no file to upload (give ELF files, .sym files, archives, or directories)");
            }
            let (mut kept, mut skipped) = (0, 0);
            for f in files {
                let bytes = std::fs::read(&f).with_context(|| format!("reading {}", f.display()))?;
                let name = f.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
                match b.upload_symbols(project, &name, &bytes) {
                    Ok(v) => {
                        for s in v["symbols"].as_array().into_iter().flatten() {
                            kept += 1;
                            println!(
                                "{}  {}  {}",
                                s["build_id"].as_str().unwrap_or(""),
                                s["kind"].as_str().unwrap_or(""),
                                s["name"].as_str().unwrap_or("")
                            );
                        }
                        for s in v["skipped"].as_array().into_iter().flatten() {
                            skipped += 1;
                            eprintln!(
                                "skipped {}: {}",
                                s["name"].as_str().unwrap_or(""),
                                s["reason"].as_str().unwrap_or("")
                            );
                        }
                    }
                    Err(crate::query::MorgueError::BadQuery(m)) => {
                        skipped += 1;
                        eprintln!("skipped {}: {m}", f.display());
                    }
                    Err(e) => return Err(e.into()),
                }
            }
            eprintln!("{kept} symbol files kept, {skipped} skipped");
        }
        "list" => {
            for (id, kind) in b.symbols(project)? {
                println!("{id}  {kind}");
            }
        }
        "missing" => {
            let q = serde_json::json!({"filter": [{"_missing_symbols": [["is-set"]]}], "select": ["_missing_symbols"], "limit": 100000});
            let out = match b.query(project, &q) {
                Ok(v) => v,
                Err(crate::query::MorgueError::UnknownAttribute { .. }) => serde_json::json!({"rows": []}),
                Err(crate::query::MorgueError::BadQuery(m)) if m.contains("_missing_symbols") => {
                    serde_json::json!({"rows": []})
                }
                Err(e) => return Err(e.into()),
            };
            let mut counts: std::collections::BTreeMap<String, u64> = Default::default();
            for r in out["rows"].as_array().into_iter().flatten() {
                for m in r[1][0].as_str().unwrap_or("").split(", ").filter(|m| !m.is_empty()) {
                    *counts.entry(m.to_string()).or_default() += 1;
                }
            }
            let mut v: Vec<(String, u64)> = counts.into_iter().collect();
            v.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
            for (m, n) in v {
                println!("{n:>6}  {m}");
            }
        }
        other => bail!("unknown symbol action {other:?}: upload, list or missing"),
    }
    Ok(())
}
