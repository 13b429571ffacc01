//! refopt with nothing beside it: the default pipeline and rules embedded in the binary,
//! `refopt init` writing them out for editing, and the lookup order (flag, environment,
//! ./rules and ./pipelines, embedded).

use std::path::Path;

use crate::harness::*;

/// The binary run from `dir` with no configuration in the environment.
fn refopt_in(dir: &Path) -> std::process::Command {
    let mut c = refopt();
    c.current_dir(dir)
        .env_remove("REFOPT_RULES")
        .env_remove("REFOPT_PIPELINES");
    c
}

fn embedded() -> String {
    format!("embedded@{}", env!("CARGO_PKG_VERSION"))
}

fn plan_in(plans: &Path) -> serde_json::Value {
    let files = plan_files(plans);
    assert_eq!(files.len(), 1, "one plan under {}", plans.display());
    let plan = serde_json::from_slice(&std::fs::read(&files[0]).unwrap()).unwrap();
    assert_valid_plan(&plan);
    plan
}

#[test]
fn demo_in_an_empty_folder_runs_the_embedded_defaults_with_the_repository_files_hashes() {
    let empty = tempfile::tempdir().unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let o = run(refopt_in(empty.path())
        .args([
            "demo", "--scale", "0.02", "--days", "60", "--output", "json",
        ])
        .env("TMPDIR", tmp.path()));
    assert!(o.status.success(), "demo in an empty folder\n{}", text(&o));
    let plan = plan_in(&empty.path().join("refopt-demo/plans"));
    let inputs = &plan["inputs"];
    assert_eq!(inputs["rules"], format!("{}/rules", embedded()));
    assert_eq!(
        inputs["pipeline"],
        format!("{}/pipelines/optimize-referrals.yaml", embedded())
    );
    // The temporary copy of the embedded files is gone when the command ends.
    let leftovers: Vec<_> = std::fs::read_dir(&tmp).unwrap().flatten().collect();
    assert!(leftovers.is_empty(), "left in TMPDIR: {leftovers:?}");

    // The same content hashes as the files in the repository.
    let data = empty.path().join("refopt-demo/data");
    let from_files = run(refopt().args([
        "run",
        "optimize-referrals",
        "--root",
        data.to_str().unwrap(),
        "--dry-run",
        "--output",
        "json",
        "--as-of",
        inputs["as_of"].as_str().unwrap(),
        "--rules",
        repo().join("rules").to_str().unwrap(),
        "--pipelines-dir",
        repo().join("pipelines").to_str().unwrap(),
    ]));
    assert!(from_files.status.success(), "{}", text(&from_files));
    let from_files: serde_json::Value = serde_json::from_slice(&from_files.stdout).unwrap();
    assert_eq!(
        inputs["config_hashes"], from_files["inputs"]["config_hashes"],
        "embedded files hash like the repository's"
    );
    assert!(
        inputs["config_hashes"]
            .as_object()
            .unwrap()
            .contains_key("rules/fraud.yaml")
    );
    assert_eq!(plan["metrics"], from_files["metrics"]);
}

#[test]
fn init_writes_the_defaults_which_validate_and_test_and_a_run_uses_an_edited_rule() {
    let dir = tempfile::tempdir().unwrap();
    let project = dir.path().join("program");
    let o = run(refopt_in(dir.path()).args(["init", "program"]));
    assert!(o.status.success(), "init\n{}", text(&o));
    for file in [
        "rules/fraud.yaml",
        "rules/tests/fraud.yaml",
        "rules/playbook.rhai",
        "pipelines/optimize-referrals.yaml",
    ] {
        let written = std::fs::read(project.join(file)).unwrap();
        assert_eq!(written, std::fs::read(repo().join(file)).unwrap(), "{file}");
    }

    // A second init refuses and changes nothing.
    let fraud = project.join("rules/fraud.yaml");
    std::fs::write(&fraud, "# mine\n").unwrap();
    let err = expect_exit(&run(refopt_in(dir.path()).args(["init", "program"])), 3);
    assert!(err.contains("refusing to overwrite"), "{err}");
    assert!(err.contains("already exists"), "{err}");
    assert_eq!(std::fs::read_to_string(&fraud).unwrap(), "# mine\n");
    std::fs::copy(repo().join("rules/fraud.yaml"), &fraud).unwrap();

    // validate and test pass on it, reading ./rules and ./pipelines.
    let o = run(refopt_in(&project).arg("validate"));
    assert!(
        o.status.success(),
        "validate in the init'ed folder\n{}",
        text(&o)
    );
    assert!(
        String::from_utf8_lossy(&o.stderr)
            .contains("ok: pipelines/optimize-referrals.yaml and rules are valid"),
        "{}",
        text(&o)
    );
    let o = run(refopt_in(&project).arg("test"));
    assert!(
        o.status.success(),
        "test in the init'ed folder\n{}",
        text(&o)
    );
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        out.contains("0 failed (rules/tests against rules)"),
        "{out}"
    );

    // An edited rule (renamed, threshold changed) is what the run uses.
    let edited = std::fs::read_to_string(&fraud)
        .unwrap()
        .replace("id: referral_velocity_burst", "id: velocity_burst_edited");
    assert!(edited.contains("velocity_burst_edited"));
    std::fs::write(&fraud, edited).unwrap();
    let data = shared_data();
    let o = run(refopt_in(&project).args([
        "run",
        "optimize-referrals",
        "--root",
        data.to_str().unwrap(),
        "--as-of",
        AS_OF,
        "--dry-run",
        "--output",
        "json",
    ]));
    assert!(
        o.status.success(),
        "run in the init'ed folder\n{}",
        text(&o)
    );
    let plan: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(plan["inputs"]["rules"], "rules");
    assert_eq!(
        plan["inputs"]["pipeline"],
        "pipelines/optimize-referrals.yaml"
    );
    let rule_ids: Vec<&str> = plan["risk"]["rules"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|r| r["rule_id"].as_str())
        .collect();
    assert!(rule_ids.contains(&"velocity_burst_edited"), "{rule_ids:?}");
    assert!(
        !rule_ids.contains(&"referral_velocity_burst"),
        "{rule_ids:?}"
    );
}

#[test]
fn flag_and_environment_come_before_the_working_folder_and_a_missing_pipeline_says_where_it_looked()
{
    let dir = tempfile::tempdir().unwrap();
    let o = run(refopt_in(dir.path()).args(["init", "."]));
    assert!(o.status.success(), "{}", text(&o));
    // ./rules is broken; REFOPT_RULES points at good rules: the environment wins.
    std::fs::write(dir.path().join("rules/alerts.yaml"), "rules: [").unwrap();
    let broken = run(refopt_in(dir.path()).arg("validate"));
    assert_eq!(broken.status.code(), Some(1), "{}", text(&broken));
    assert!(
        text(&broken).contains("rules/alerts.yaml"),
        "{}",
        text(&broken)
    );
    let o = run(refopt_in(dir.path())
        .arg("validate")
        .env("REFOPT_RULES", repo().join("rules")));
    assert!(o.status.success(), "{}", text(&o));
    // The flag wins over the environment.
    let o = run(refopt_in(dir.path())
        .args(["validate", "--rules", "rules"])
        .env("REFOPT_RULES", repo().join("rules")));
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));

    // A pipeline the embedded defaults do not have.
    let empty = tempfile::tempdir().unwrap();
    let err = expect_exit(
        &run(refopt_in(empty.path()).args(["run", "weekly-digest", "--root", "data"])),
        3,
    );
    assert!(err.contains("embedded"), "{err}");
    assert!(err.contains("optimize-referrals"), "{err}");
}

#[test]
fn completions_man_page_and_version_come_from_the_command_definitions() {
    let o = run(refopt().args(["completions", "bash"]));
    assert!(o.status.success(), "{}", text(&o));
    let bash = String::from_utf8_lossy(&o.stdout);
    for word in ["refopt", "backfill", "--memory-limit", "init"] {
        assert!(bash.contains(word), "bash completion mentions {word}");
    }
    let o = run(refopt().arg("man"));
    assert!(o.status.success(), "{}", text(&o));
    let page = String::from_utf8_lossy(&o.stdout);
    assert!(
        page.starts_with(".ie") || page.contains(".TH refopt"),
        "{page}"
    );
    let dir = tempfile::tempdir().unwrap();
    let o = run(refopt().args(["man", "--dir", dir.path().to_str().unwrap()]));
    assert!(o.status.success(), "{}", text(&o));
    for page in ["refopt.1", "refopt-run.1", "refopt-init.1"] {
        assert!(dir.path().join(page).is_file(), "{page}");
    }
    let o = run(refopt().arg("--version"));
    let version = String::from_utf8_lossy(&o.stdout);
    assert!(
        version.starts_with(&format!("refopt {}", env!("CARGO_PKG_VERSION"))),
        "{version}"
    );
    // Built from this git checkout: the revision is in the version.
    let head = std::process::Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .current_dir(repo())
        .output()
        .unwrap();
    if head.status.success() {
        let rev = String::from_utf8_lossy(&head.stdout).trim().to_string();
        assert!(
            version.contains(&format!("git {rev}")),
            "{version} vs {rev}"
        );
    }
}
