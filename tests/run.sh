#!/usr/bin/env bash
# The test command (README, .ci/run): sets up what the tests need on a fresh machine, then runs
# the whole workspace's tests.
#   - a Python venv in .venv with DuckDB (reference SQL engine) and moto (S3 server), from PyPI
#   - REFOPT_PYTHON pointing at it; tests that need it fail loudly if it is missing
#   - Chromium (Debian package `chromium`) for the report test, installed when missing and
#     running as root; otherwise set REFOPT_CHROMIUM to a Chromium binary
# Extra arguments go to `cargo test` (e.g. tests/run.sh -- funnel).
set -euo pipefail
cd "$(dirname "$0")/.."

venv=.venv
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
fi
stamp="$venv/.requirements.sha"
want=$(sha256sum tests/requirements.txt | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  "$venv/bin/pip" install --quiet --disable-pip-version-check -r tests/requirements.txt
  echo "$want" > "$stamp"
fi
export REFOPT_PYTHON="$PWD/$venv/bin/python"

if [ -z "${REFOPT_CHROMIUM:-}" ] && ! command -v chromium >/dev/null; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "installing chromium (Debian) for the report test"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
  else
    echo "warning: chromium not found; the report test will fail (install it or set REFOPT_CHROMIUM)" >&2
  fi
fi

cargo test --workspace "$@"
