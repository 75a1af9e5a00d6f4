//! Marketplace snapshots of the registry: export to RTFS or JSON, import
//! into the registry and the store.

use super::*;

impl Host {
    /// The registered capabilities of serializable provider kinds, and the
    /// others with the reason they cannot be exported.
    fn exportable(&self) -> (Vec<Manifest>, Vec<(String, String)>) {
        let mut out = Vec::new();
        let mut skipped = Vec::new();
        for c in self.capabilities() {
            if c.provider.serializable() {
                out.push(c.manifest());
            } else {
                let by = c
                    .plugin
                    .as_deref()
                    .map(|p| format!(" of plugin `{p}`"))
                    .unwrap_or_default();
                skipped.push((
                    c.id.clone(),
                    format!(":{} capability{by} is runtime-only", c.provider),
                ));
            }
        }
        (out, skipped)
    }

    /// What this host publishes to `caller` (`warden serve`'s marketplace):
    /// every capability a loaded plugin serves and a `[[policy.rules]]`
    /// decision lets `caller` call (approval included), as `:RemoteRTFS`
    /// served at `endpoint` (`:module-url`) under its id here
    /// (`:remote-id`), with its schemas, metadata, permissions and effects.
    /// Sorted by id.
    pub fn published(&self, caller: crate::Identity<'_>, endpoint: &str) -> Vec<Manifest> {
        let governance = &self.inner.governance;
        let mut out: Vec<Manifest> = self
            .capabilities()
            .into_iter()
            .filter(|c| c.plugin.is_some())
            .filter(|c| {
                let rule = governance.match_rule(&c.id, &c.flat_metadata, caller);
                rule.decision != crate::governance::rules::RuleDecision::Deny
            })
            .map(|c| {
                let mut m = c.manifest();
                m.provider = ProviderKind::RemoteRtfs;
                m.provider_meta = serde_json::Map::from_iter([
                    ("module-url".to_string(), Value::from(endpoint)),
                    ("remote-id".to_string(), Value::from(c.id.as_str())),
                ]);
                m
            })
            .collect();
        out.sort_by(|a, b| a.id.cmp(&b.id));
        out
    }

    /// Writes every serializable capability to `dir` as one `.rtfs` snapshot
    /// file each; the others are skipped and named in the report.
    pub fn export_rtfs(&self, dir: &Path) -> Result<ExportReport> {
        let (caps, skipped) = self.exportable();
        std::fs::create_dir_all(dir)
            .map_err(|e| Error::Marketplace(format!("{}: {e}", dir.display())))?;
        let mut report = ExportReport {
            skipped,
            ..Default::default()
        };
        for m in caps {
            let path = dir.join(snapshot::file_name(&m.id, "rtfs"));
            write_file(&path, &snapshot::snapshot_to_rtfs(std::slice::from_ref(&m)))?;
            report.exported.push(m.id);
            report.files.push(path);
        }
        Ok(report)
    }

    /// Writes every serializable capability to one JSON snapshot `file`.
    pub fn export_json(&self, file: &Path) -> Result<ExportReport> {
        let (caps, skipped) = self.exportable();
        write_file(file, &snapshot::snapshot_to_json(&caps))?;
        Ok(ExportReport {
            exported: caps.into_iter().map(|m| m.id).collect(),
            files: vec![file.to_path_buf()],
            skipped,
        })
    }

    /// Imports the capabilities in `path` (an `.rtfs` or `.json` snapshot, or
    /// a directory of them) into the registry and the marketplace store.
    /// Capabilities of runtime-only kinds, invalid entries and ids a plugin
    /// already serves are skipped and named in the report; re-importing an
    /// imported id replaces it.
    pub fn import(&self, path: &Path) -> Result<ImportReport> {
        let entries = snapshot::read_path(path).map_err(Error::Marketplace)?;
        let mut report = ImportReport::default();
        let mut registry = self
            .inner
            .registry
            .write()
            .unwrap_or_else(|e| e.into_inner());
        for (file, entry) in entries {
            let m = match entry {
                Ok(m) => m,
                Err(e) => {
                    report.skipped.push((file.display().to_string(), e));
                    continue;
                }
            };
            if !m.provider.serializable() {
                report.skipped.push((
                    m.id.clone(),
                    format!(
                        ":{} capabilities are runtime-only and cannot be imported",
                        m.provider
                    ),
                ));
                continue;
            }
            let id = m.id.clone();
            let info = match self.inner.servers.info(&self.inner.plugins, m.clone()) {
                Ok(i) => i,
                Err(e) => {
                    report.skipped.push((id, e));
                    continue;
                }
            };
            match registry.insert(Source::Imported, info) {
                Ok(outcome) => {
                    if let Some(dir) = &self.inner.store {
                        std::fs::create_dir_all(dir).map_err(|e| {
                            Error::Marketplace(format!("store {}: {e}", dir.display()))
                        })?;
                        write_file(
                            &dir.join(snapshot::file_name(&id, "rtfs")),
                            &snapshot::snapshot_to_rtfs(&[m]),
                        )?;
                    }
                    match outcome {
                        Registered::New => report.registered.push(id),
                        Registered::Replaced => report.updated.push(id),
                    }
                }
                Err(e) => report.skipped.push((id, e.to_string())),
            }
        }
        drop(registry);
        if !report.registered.is_empty() || !report.updated.is_empty() {
            self.catalog_changed();
        }
        Ok(report)
    }
}

fn write_file(path: &Path, text: &str) -> Result<()> {
    let tmp = path.with_extension("tmp~");
    std::fs::write(&tmp, text)
        .and_then(|_| std::fs::rename(&tmp, path))
        .map_err(|e| Error::Marketplace(format!("writing {}: {e}", path.display())))
}
