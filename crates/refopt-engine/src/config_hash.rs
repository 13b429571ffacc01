//! Content hashes of the configuration a run used (rule files, pipeline YAML and SQL), recorded
//! in the plan so a plan names exactly what produced it and the change log can say what changed.

use std::collections::BTreeMap;
use std::path::Path;

use refopt_spec::Pipeline;
use refopt_spec::pipeline::SqlSource;
use sha2::{Digest, Sha256};

/// SHA-256 of `bytes`, lowercase hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// `rules/<name>` -> hash for every rule file (`*.yaml`, `*.rhai`) directly in `dir`.
pub fn rule_file_hashes(dir: &Path) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for entry in entries.flatten() {
            let path = entry.path();
            let is_rule = path
                .extension()
                .is_some_and(|e| e == "yaml" || e == "yml" || e == "rhai" || e == "txt");
            if path.is_file()
                && is_rule
                && let Ok(bytes) = std::fs::read(&path)
            {
                let name = entry.file_name().to_string_lossy().to_string();
                out.insert(format!("rules/{name}"), sha256_hex(&bytes));
            }
        }
    }
    out
}

/// `pipeline/<file>` and `pipeline/<sql file>` -> hash for the pipeline YAML and its SQL files.
pub fn pipeline_hashes(pipeline: &Pipeline) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let base = pipeline.file.parent().unwrap_or(Path::new("."));
    let mut add = |path: &Path| {
        if let Ok(bytes) = std::fs::read(path) {
            let relative = path.strip_prefix(base).unwrap_or(path);
            out.insert(
                format!("pipeline/{}", relative.display()),
                sha256_hex(&bytes),
            );
        }
    };
    add(&pipeline.file);
    for stage in &pipeline.stages {
        if let Some((_, SqlSource::File(path))) = stage.kind.sql() {
            add(path);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sha256_of_known_input() {
        assert_eq!(
            sha256_hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
