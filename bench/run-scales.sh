#!/usr/bin/env bash
# Measures `refopt generate` and `refopt run` (release build) at several data scales: wall time
# and peak RSS from /usr/bin/time. Prints one line per measurement; figures go to
# docs/performance.md with the command that produced them.
#
# usage: bench/run-scales.sh [WORKDIR] [SCALES...]     (scales in millions of invites)
#   e.g. bench/run-scales.sh /tmp/refopt-bench 1 10 100
set -euo pipefail
cd "$(dirname "$0")/.."
work=${1:-/tmp/refopt-bench}
shift || true
scales=("${@:-1 10}")
days=${DAYS:-120}
end=${END:-2026-06-01}
threads=${THREADS:-2}
limit=${LIMIT:-}          # e.g. LIMIT=2GiB adds a run with --memory-limit at each scale

cargo build --release --quiet
bin=target/release/refopt
mkdir -p "$work"

measure() { # label, command...
  local label=$1; shift
  local log; log=$(mktemp)
  /usr/bin/time -f '%e %M' -o "$log" "$@" >/dev/null 2>"$log.err" || { cat "$log.err"; exit 1; }
  read -r secs kib < "$log"
  printf '%-34s %8.1f s  peak RSS %7.0f MiB\n' "$label" "$secs" "$(echo "$kib / 1024" | bc -l)"
}

for s in ${scales[@]}; do
  root="$work/scale-$s"
  if [ ! -f "$root/_truth/manifest.json" ]; then
    measure "generate ${s}M invites" "$bin" generate --root "$root" --days "$days" --scale "$s" --seed 42 --end "$end"
  fi
  printf '%-34s %8s\n' "data ${s}M invites" "$(du -sh "$root" | cut -f1)"
  for w in 30d; do
    measure "run ${s}M invites, window $w" "$bin" run optimize-referrals --root "$root" --plans "$work/plans" \
      --as-of "$end" --window "$w" --detail full --dimensions channel,persona,region,partner-tier \
      --threads "$threads" --output json
    if [ -n "$limit" ]; then
      measure "run ${s}M, $w, --memory-limit $limit" "$bin" run optimize-referrals --root "$root" \
        --plans "$work/plans" --as-of "$end" --window "$w" --detail full \
        --dimensions channel,persona,region,partner-tier --threads "$threads" --output json \
        --memory-limit "$limit"
    fi
  done
done
