#!/usr/bin/env bash
# Side by side on the same Parquet files, same thread count (release build):
#   (a) refopt run, end to end
#   (b) the pipeline's SQL stages executed by DuckDB (bench/duckdb_pipeline.py)
#   (c) a bare DataFusion scan of every column the pipeline declares (the floor)
#   (d) a 12-window backfill (weekly as-of dates) vs the single window of (a)
# and the ratios the targets in docs/performance.md are stated in.
#
# usage: bench/compare.sh DATA_ROOT [AS_OF] [THREADS]
#   DATA_ROOT from `refopt generate` (e.g. bench/run-scales.sh leaves /tmp/refopt-bench/scale-10)
set -euo pipefail
cd "$(dirname "$0")/.."
root=${1:?usage: bench/compare.sh DATA_ROOT [AS_OF] [THREADS]}
as_of=${2:-2026-06-01}
threads=${3:-2}
window=30
python=${REFOPT_PYTHON:-.venv/bin/python}
[ -x "$python" ] || { echo "run tests/run.sh once to create .venv (DuckDB)"; exit 1; }

cargo build --release --quiet --workspace --bins --examples
bin=target/release/refopt
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

seconds() { # command... -> prints "wall_seconds peak_rss_mib"
  /usr/bin/time -f '%e %M' -o "$work/time" "$@" > "$work/out" 2> "$work/err" || { cat "$work/err"; exit 1; }
  read -r s kib < "$work/time"
  echo "$s $((kib / 1024))"
}

read -r run_s run_mib < <(seconds "$bin" run optimize-referrals --root "$root" --dry-run --as-of "$as_of" \
  --window "${window}d" --detail full --dimensions channel,persona,region,partner-tier --threads "$threads" --output json)
read -r duck_s duck_mib < <(seconds "$python" bench/duckdb_pipeline.py "$root" pipelines/optimize-referrals.yaml "$as_of" "$window" "$threads")
duck_sql_s=$(python3 -c "import json;print(json.load(open('$work/out'))['total_s'])")
read -r scan_s scan_mib < <(seconds target/release/examples/scan_floor "$root" pipelines/optimize-referrals.yaml "$as_of" "$window" "$threads")
from=$(python3 -c "import datetime as d;print(d.date.fromisoformat('$as_of')-d.timedelta(days=77))")
read -r bf_s bf_mib < <(seconds "$bin" backfill optimize-referrals --root "$root" --plans "$work/plans" \
  --from "$from" --to "$as_of" --step 7d --window "${window}d" --detail full --threads "$threads")

printf '%-44s %8s %10s\n' "leg" "seconds" "peak MiB"
printf '%-44s %8.2f %10d\n' "(a) refopt run (1 window)" "$run_s" "$run_mib"
printf '%-44s %8.2f %10d\n' "(b) DuckDB, same SQL (process; SQL only: $duck_sql_s s)" "$duck_s" "$duck_mib"
printf '%-44s %8.2f %10d\n' "(c) DataFusion bare scan of declared columns" "$scan_s" "$scan_mib"
printf '%-44s %8.2f %10d\n' "(d) refopt backfill, 12 weekly windows" "$bf_s" "$bf_mib"
python3 - "$run_s" "$duck_sql_s" "$scan_s" "$bf_s" <<'PY'
import sys
run, duck, scan, bf = map(float, sys.argv[1:])
print(f"refopt / DuckDB SQL      {run / duck:5.2f}x   (target <= 1.0)")
print(f"refopt / bare scan       {run / scan:5.2f}x   (target <= 3.0)")
print(f"12 windows / 1 window    {bf / run:5.2f}x   (target <= 2.0)")
PY
