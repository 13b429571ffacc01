//! Stamps `refopt --version` with the git revision the binary was built from, when built from a
//! git checkout (`0.1.0 (git 1a2b3c4d5e6f)`), and rebuilds when the embedded default pipeline or
//! rules change (see src/defaults.rs).

use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let git = |args: &[&str]| {
        Command::new("git")
            .args(args)
            .current_dir(&root)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
            .filter(|s| !s.is_empty())
    };
    let mut watched = vec![root.join("rules"), root.join("pipelines")];
    // A new commit moves HEAD or the branch it points at.
    if let (Some(git_dir), Some(common)) = (
        git(&["rev-parse", "--git-dir"]),
        git(&["rev-parse", "--git-common-dir"]),
    ) {
        let (git_dir, common) = (root.join(git_dir), root.join(common));
        watched.push(git_dir.join("HEAD"));
        watched.extend(
            [common.join("refs/heads"), common.join("packed-refs")]
                .into_iter()
                .filter(|p: &PathBuf| p.exists()),
        );
    }
    for path in watched {
        println!("cargo:rerun-if-changed={}", path.display());
    }
    let version = env!("CARGO_PKG_VERSION");
    let stamped = match git(&["rev-parse", "--short=12", "HEAD"]) {
        Some(rev) => format!("{version} (git {rev})"),
        None => version.to_string(),
    };
    println!("cargo:rustc-env=REFOPT_VERSION={stamped}");
}
