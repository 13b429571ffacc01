#!/usr/bin/env bash
# The fraud review's cost with two versions of the rules and pipeline, same binary, same data,
# one run each in turn: wall time, peak RSS, the rules phase's fraud review (`fraud_review_ms`)
# and the summed time of the risk feature stages (stages named risk_*). Figures go to
# docs/performance.md with the command that produced them.
#
# usage: bench/fraud-review.sh DATA AS_OF BEFORE_REV [THREADS]
#   BEFORE_REV: a git revision whose rules/ and pipelines/ are the "before" (the working tree's
#   are the "after"), e.g. bench/fraud-review.sh /tmp/refopt-bench/scale-10 2026-06-01 35d0189
set -euo pipefail
cd "$(dirname "$0")/.."
data=$1; as_of=$2; before=$3; threads=${4:-2}
bin=${REFOPT_BIN:-target/release/refopt}
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
mkdir -p "$work/before"
git archive "$before" rules pipelines | tar -x -C "$work/before"

measure() { # label rules_dir pipelines_dir
  local label=$1 rules=$2 pipelines=$3 log="$work/$1.log"
  /usr/bin/time -f '%e %M' -o "$work/$label.time" "$bin" --log-format json run optimize-referrals \
    --root "$data" --as-of "$as_of" --threads "$threads" --dry-run \
    --rules "$rules" --pipelines-dir "$pipelines" >/dev/null 2>"$log"
  read -r secs kib < "$work/$label.time"
  python3 - "$label" "$secs" "$kib" "$log" <<'PY'
import json, sys
label, secs, kib, log = sys.argv[1], float(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
risk_ms, review_ms = 0, None
for line in open(log):
    try:
        f = json.loads(line)["fields"]
    except (ValueError, KeyError):
        continue
    if f.get("message") == "stage finished" and f.get("stage", "").startswith("risk_"):
        risk_ms += f["duration_ms"]
    if f.get("message") == "rules phase finished":
        review_ms = f["fraud_review_ms"]
print(f"{label:<8} wall {secs:7.1f} s  peak RSS {kib / 1024:7.0f} MiB  "
      f"risk stages {risk_ms / 1000:6.1f} s  fraud review {review_ms / 1000:6.2f} s")
PY
}

measure before "$work/before/rules" "$work/before/pipelines"
measure after rules pipelines
