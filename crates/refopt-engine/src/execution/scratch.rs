//! The run's scratch folder: stage outputs written as Arrow IPC files (read back as streams by
//! later stages and the rules) and DataFusion's operator spill files. It is removed when the
//! run's session goes away; a folder that a killed run left behind is removed by the next run
//! that uses the same base folder, never read.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::error::EngineError;

/// Folder names: `refopt-scratch-<pid>-<random>`.
const PREFIX: &str = "refopt-scratch-";

/// One run's scratch folder (shared by the windows of a backfill).
#[derive(Debug)]
pub struct Scratch {
    dir: tempfile::TempDir,
    files: AtomicU64,
}

impl Scratch {
    /// Makes a scratch folder under `base` (default: the system temp folder, `TMPDIR`), after
    /// removing the folders of runs that are no longer alive there.
    pub fn create(base: Option<&Path>) -> Result<Scratch, EngineError> {
        let base = base.map_or_else(std::env::temp_dir, Path::to_path_buf);
        let problem = |e: std::io::Error| {
            EngineError::storage_while(
                base.display().to_string(),
                "cannot make the scratch folder",
                e,
            )
        };
        std::fs::create_dir_all(&base).map_err(problem)?;
        remove_abandoned(&base);
        let dir = tempfile::Builder::new()
            .prefix(&format!("{PREFIX}{}-", std::process::id()))
            .tempdir_in(&base)
            .map_err(problem)?;
        Ok(Scratch {
            dir,
            files: AtomicU64::new(0),
        })
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// A file name no other output of this run uses, for `stage`'s output.
    pub fn stage_file(&self, stage: &str) -> PathBuf {
        let n = self.files.fetch_add(1, Ordering::Relaxed);
        let safe: String = stage
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '_' {
                    c
                } else {
                    '-'
                }
            })
            .collect();
        self.dir.path().join(format!("{safe}-{n}.arrow"))
    }
}

/// Removes `refopt-scratch-<pid>-*` folders whose process is gone (checked through `/proc`; on
/// systems without it nothing is removed). A folder carrying this process's own id predates it
/// (the id was reused, as it is for PID 1 in containers), so it goes too.
fn remove_abandoned(base: &Path) {
    let proc = Path::new("/proc");
    if !proc.join("self").exists() {
        return;
    }
    let Ok(entries) = std::fs::read_dir(base) else {
        return;
    };
    let own = std::process::id();
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name
            .to_str()
            .and_then(|n| n.strip_prefix(PREFIX))
            .and_then(|rest| rest.split('-').next())
            .and_then(|pid| pid.parse::<u32>().ok())
        else {
            continue;
        };
        if pid == own || !proc.join(pid.to_string()).exists() {
            match std::fs::remove_dir_all(entry.path()) {
                Ok(()) => {
                    tracing::info!(folder = %entry.path().display(), "removed the scratch folder of a run that ended without cleaning up")
                }
                Err(e) => {
                    tracing::warn!(folder = %entry.path().display(), error = %e, "cannot remove an abandoned scratch folder")
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dead_runs_folder_is_removed_and_a_live_ones_kept() {
        let base = tempfile::tempdir().unwrap();
        // PID 1 is alive on any Linux; 4194304 is above the kernel's pid_max.
        let alive = base.path().join(format!("{PREFIX}1-abc"));
        let dead = base.path().join(format!("{PREFIX}4194304-def"));
        let unrelated = base.path().join("refopt-other");
        for d in [&alive, &dead, &unrelated] {
            std::fs::create_dir_all(d.join("inner")).unwrap();
        }
        let scratch = Scratch::create(Some(base.path())).unwrap();
        assert!(!dead.exists(), "the dead run's folder is gone");
        assert!(unrelated.exists());
        assert_eq!(alive.exists(), std::process::id() != 1);
        let a = scratch.stage_file("risk referrals");
        let b = scratch.stage_file("risk referrals");
        assert_ne!(a, b);
        assert!(a.starts_with(scratch.path()));
        let path = scratch.path().to_path_buf();
        drop(scratch);
        assert!(!path.exists(), "removed with the run");
    }
}
