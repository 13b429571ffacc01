//! The default pipeline and rules, compiled into the binary, and where each command finds its
//! configuration.
//!
//! Lookup order for the rules folder and the pipelines folder, each on its own:
//! 1. the flag (`--rules`, `--pipelines-dir`),
//! 2. the environment variable (`REFOPT_RULES`, `REFOPT_PIPELINES`),
//! 3. `./rules` or `./pipelines` in the working directory, when it exists,
//! 4. the embedded defaults (what `refopt init` writes out for editing).
//!
//! Embedded files are copied to a private temporary folder the first time a command needs them
//! (the loaders read folders); problems and the plan's `inputs` name them `embedded@<version>`,
//! and their content hashes are those of the same files on disk.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use include_dir::{Dir, include_dir};
use refopt_engine::EngineError;
use refopt_engine::rules::source::{LoadedRules, load_rules_with, rebase_locations};
use refopt_engine::storage::StoragePolicy;
use refopt_spec::Diagnostic;

static RULES: Dir = include_dir!("$CARGO_MANIFEST_DIR/../../rules");
static PIPELINES: Dir = include_dir!("$CARGO_MANIFEST_DIR/../../pipelines");

/// How plans and problems name the embedded configuration.
pub const EMBEDDED: &str = concat!("embedded@", env!("CARGO_PKG_VERSION"));

/// Folder names of the two parts, in the working directory, in the embedded copy, and in what
/// `refopt init` writes.
pub const RULES_FOLDER: &str = "rules";
pub const PIPELINES_FOLDER: &str = "pipelines";

/// The private copy of the embedded files, made once per process and removed by [`cleanup`].
static COPY: Mutex<Option<tempfile::TempDir>> = Mutex::new(None);

/// A configuration folder after the lookup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    /// What loaders read: a local folder or an object-store prefix (rules only).
    pub location: String,
    /// Whether it is the embedded copy (then `location` is a temporary folder).
    pub embedded: bool,
}

impl Resolved {
    /// How the plan and messages name it.
    pub fn display(&self, folder: &str) -> String {
        if self.embedded {
            format!("{EMBEDDED}/{folder}")
        } else {
            self.location.clone()
        }
    }
}

/// The rules location: `given` (flag or environment), else `./rules`, else the embedded rules.
pub fn rules(given: Option<&str>) -> Result<Resolved, EngineError> {
    resolve(given, RULES_FOLDER)
}

/// The pipelines folder: `given` (flag or environment), else `./pipelines`, else the embedded
/// pipelines.
pub fn pipelines_dir(given: Option<&Path>) -> Result<Resolved, EngineError> {
    resolve(
        given.map(|p| p.to_string_lossy()).as_deref(),
        PIPELINES_FOLDER,
    )
}

fn resolve(given: Option<&str>, folder: &str) -> Result<Resolved, EngineError> {
    if let Some(location) = given {
        return Ok(Resolved {
            location: location.to_string(),
            embedded: false,
        });
    }
    if Path::new(folder).is_dir() {
        return Ok(Resolved {
            location: folder.to_string(),
            embedded: false,
        });
    }
    Ok(Resolved {
        location: embedded_copy()?.join(folder).to_string_lossy().into_owned(),
        embedded: true,
    })
}

/// Loads the rules after the lookup; embedded rules are recorded as `embedded@<version>`.
pub async fn load_rules(
    given: Option<&str>,
    policy: &StoragePolicy,
) -> Result<LoadedRules, EngineError> {
    let resolved = rules(given)?;
    if resolved.embedded {
        refopt_engine::rules::source::load_rules_from_copy(
            Path::new(&resolved.location),
            &resolved.display(RULES_FOLDER),
        )
    } else {
        load_rules_with(&resolved.location, policy).await
    }
}

/// Rewrites locations inside the embedded copy to `embedded@<version>/...`.
pub fn name_embedded(problems: &mut [Diagnostic]) {
    let copy = COPY.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(dir) = copy.as_ref() {
        rebase_locations(problems, dir.path(), EMBEDDED);
    }
}

/// `text` with paths inside the embedded copy written as `embedded@<version>/...`.
pub fn name_embedded_text(text: &str) -> String {
    let copy = COPY.lock().unwrap_or_else(|e| e.into_inner());
    match copy.as_ref() {
        Some(dir) => text.replace(&dir.path().display().to_string(), EMBEDDED),
        None => text.to_string(),
    }
}

/// The temporary copy of the embedded files, made on first use.
fn embedded_copy() -> Result<PathBuf, EngineError> {
    let mut copy = COPY.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(dir) = copy.as_ref() {
        return Ok(dir.path().to_path_buf());
    }
    let failed = |e: std::io::Error| {
        EngineError::Parameter(format!(
            "cannot copy the embedded pipeline and rules to a temporary folder (TMPDIR): {e}"
        ))
    };
    let dir = tempfile::Builder::new()
        .prefix("refopt-defaults-")
        .tempdir()
        .map_err(failed)?;
    write_tree(dir.path(), false).map_err(failed)?;
    let path = dir.path().to_path_buf();
    *copy = Some(dir);
    Ok(path)
}

/// Removes the temporary copy, if one was made (called once, when the command ends).
pub fn cleanup() {
    let mut copy = COPY.lock().unwrap_or_else(|e| e.into_inner());
    copy.take();
}

/// Every embedded file as (path relative to the target folder, contents), sorted.
pub fn files() -> Vec<(PathBuf, &'static [u8])> {
    let mut out = Vec::new();
    for (folder, dir) in [(RULES_FOLDER, &RULES), (PIPELINES_FOLDER, &PIPELINES)] {
        collect(dir, Path::new(folder), &mut out);
    }
    out.sort();
    out
}

fn collect(dir: &'static Dir<'static>, prefix: &Path, out: &mut Vec<(PathBuf, &'static [u8])>) {
    for file in dir.files() {
        out.push((prefix.join(file.path()), file.contents()));
    }
    for sub in dir.dirs() {
        collect(sub, prefix, out);
    }
}

/// Writes every embedded file under `target`. With `create_new`, an existing file is an error
/// (`refopt init` never overwrites); the check of all paths comes first, so nothing is written
/// when one exists.
pub fn write_tree(target: &Path, create_new: bool) -> std::io::Result<Vec<PathBuf>> {
    let files = files();
    if create_new
        && let Some((existing, _)) = files
            .iter()
            .find(|(relative, _)| target.join(relative).symlink_metadata().is_ok())
    {
        return Err(std::io::Error::new(
            std::io::ErrorKind::AlreadyExists,
            format!("{} already exists", target.join(existing).display()),
        ));
    }
    let mut written = Vec::with_capacity(files.len());
    for (relative, contents) in files {
        let path = target.join(&relative);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        let mut options = std::fs::OpenOptions::new();
        options.write(true);
        if create_new {
            options.create_new(true);
        } else {
            options.create(true).truncate(true);
        }
        std::io::Write::write_all(&mut options.open(&path)?, contents)?;
        written.push(relative);
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embeds_the_default_pipeline_its_sql_and_the_rules_with_their_tests() {
        let names: Vec<String> = files()
            .iter()
            .map(|(p, _)| p.to_string_lossy().replace('\\', "/"))
            .collect();
        for expected in [
            "pipelines/optimize-referrals.yaml",
            "rules/fraud.yaml",
            "rules/playbook.rhai",
            "rules/tests/fraud.yaml",
        ] {
            assert!(
                names.iter().any(|n| n == expected),
                "{expected} in {names:?}"
            );
        }
        assert!(names.iter().any(|n| n.starts_with("pipelines/sql/")));
    }

    #[test]
    fn embedded_files_equal_the_repository_files() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        for (relative, contents) in files() {
            let on_disk = std::fs::read(root.join(&relative)).unwrap();
            assert_eq!(on_disk, contents, "{}", relative.display());
        }
    }

    #[test]
    fn write_tree_refuses_to_overwrite_and_writes_nothing_then() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("rules")).unwrap();
        std::fs::write(dir.path().join("rules/fraud.yaml"), "mine").unwrap();
        let err = write_tree(dir.path(), true).unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::AlreadyExists);
        assert!(err.to_string().contains("fraud.yaml"), "{err}");
        assert_eq!(
            std::fs::read_to_string(dir.path().join("rules/fraud.yaml")).unwrap(),
            "mine"
        );
        assert!(!dir.path().join("pipelines").exists());
    }
}
