//! The same pipeline against a real S3-compatible server (moto on 127.0.0.1) gives the same
//! plan metrics as the local run, and writes its plan back to the bucket.

use std::process::Command;

use crate::harness::*;

#[test]
fn s3_run_matches_local_run() {
    let moto = Moto::start("referrals");
    let env = moto.env();
    generate("s3://referrals/program", &env);
    let (s3_plan, _) = run_pipeline(
        "s3://referrals/program",
        "s3://referrals/plans",
        &["--dimensions", "channel,region,partner-tier"],
        &env,
    );

    let plans = tempfile::tempdir().unwrap();
    let (local_plan, _) = run_pipeline(
        shared_data().to_str().unwrap(),
        plans.path().to_str().unwrap(),
        &["--dimensions", "channel,region,partner-tier"],
        &[],
    );
    assert_json_close(&s3_plan["metrics"], &local_plan["metrics"], "metrics");
    assert_json_close(
        &s3_plan["success_metrics"],
        &local_plan["success_metrics"],
        "success_metrics",
    );
    let rows = |p: &serde_json::Value| -> Vec<serde_json::Value> {
        p["datasets"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d["checks"].clone())
            .collect()
    };
    assert_eq!(rows(&s3_plan), rows(&local_plan));
    assert!(
        s3_plan["inputs"]["data_root"]
            .as_str()
            .unwrap()
            .starts_with("s3://referrals/program")
    );

    // The plan landed in the bucket, under plans/optimize-referrals/.
    let script = format!(
        "import boto3; c = boto3.client('s3', endpoint_url='{}', aws_access_key_id='test', \
         aws_secret_access_key='test', region_name='us-east-1'); \
         print('\\n'.join(o['Key'] for o in c.list_objects_v2(Bucket='referrals', Prefix='plans/')['Contents']))",
        moto.endpoint
    );
    let o = run(Command::new(python()).args(["-c", &script]));
    assert!(o.status.success(), "{}", text(&o));
    let keys = String::from_utf8_lossy(&o.stdout);
    let plan_keys: Vec<&str> = keys
        .lines()
        .filter(|k| k.starts_with("plans/optimize-referrals/plan-"))
        .collect();
    // The plan and its report and summary beside it.
    assert_eq!(
        plan_keys,
        [
            "plans/optimize-referrals/plan-v000001.html",
            "plans/optimize-referrals/plan-v000001.json",
            "plans/optimize-referrals/plan-v000001.md"
        ],
        "{keys}"
    );
}

#[test]
fn no_secret_reaches_plans_logs_or_errors() {
    // moto accepts any credentials: run with a recognisable fake secret and look for it
    // everywhere refopt writes: stdout, stderr (text and JSON logs), the plan, the flagged
    // referrals file, and the error of a failing run.
    const SECRET: &str = "refoptFAKEsecret0123456789abcdefXYZ";
    let moto = Moto::start("secrets");
    let mut env = moto.env();
    for (k, v) in env.iter_mut() {
        if *k == "AWS_SECRET_ACCESS_KEY" {
            *v = SECRET.to_string();
        }
    }
    generate("s3://secrets/program", &env);
    let mut outputs = Vec::new();
    for log_format in ["text", "json"] {
        let (plan, output) = run_pipeline(
            "s3://secrets/program",
            "s3://secrets/plans",
            &["--log-format", log_format, "--force"],
            &env,
        );
        outputs.push(serde_json::to_string(&plan).unwrap());
        outputs.push(String::from_utf8_lossy(&output.stdout).to_string());
        outputs.push(String::from_utf8_lossy(&output.stderr).to_string());
    }
    // A failing run (wrong bucket) and a URL with credentials in it: errors stay clean too.
    let o = run(refopt()
        .args([
            "run",
            "optimize-referrals",
            "--root",
            &format!("s3://user:{SECRET}@no-such-bucket/program"),
            "--as-of",
            AS_OF,
        ])
        .envs(env.iter().map(|(k, v)| (*k, v.as_str()))));
    // Credentials in a URL are refused as configuration, before anything is read.
    let err = expect_exit(&o, 3);
    assert!(
        err.contains("credentials in URLs are not accepted"),
        "{err}"
    );
    outputs.push(String::from_utf8_lossy(&o.stdout).to_string());
    outputs.push(String::from_utf8_lossy(&o.stderr).to_string());
    // Every object refopt wrote to the bucket.
    let script = format!(
        "import boto3\n\
         c = boto3.client('s3', endpoint_url='{}', aws_access_key_id='test', aws_secret_access_key='x', region_name='us-east-1')\n\
         for o in c.list_objects_v2(Bucket='secrets', Prefix='plans/')['Contents']:\n\
         \x20   print(c.get_object(Bucket='secrets', Key=o['Key'])['Body'].read().decode('latin-1'))\n",
        moto.endpoint
    );
    let o = run(Command::new(python()).args(["-c", &script]));
    assert!(o.status.success(), "{}", text(&o));
    outputs.push(String::from_utf8_lossy(&o.stdout).to_string());
    for (i, out) in outputs.iter().enumerate() {
        assert!(
            !out.contains(SECRET),
            "output {i} contains the secret:\n{out}"
        );
    }
}
