#!/usr/bin/env bash
# The container image, built and run offline the way k8s/ runs it.
#
#   1. A Debian bookworm base from Debian packages (mmdebstrap, cached in ~/.cache/refopt).
#   2. The Dockerfile's `prebuilt` target on that base (buildah bud), with a refopt binary built
#      outside the image (default: target/debug/refopt without its debug info).
#   3. Checks of what k8s/base/cronjob.yaml assumes: the image's user (65532), entry point,
#      environment and working folder; `refopt demo` on the embedded defaults; the CronJob's own
#      args and env with rules and pipelines mounted read-only at /etc/refopt/*, an edited rule
#      picked up; JSON logs; exit codes for broken rules and an unwritable plans folder.
# Everything runs as uid 65532 with only /tmp writable (the manifests' emptyDir).
#
# Needs root (apt, buildah's chroot isolation); `podman run` does not work on these machines,
# `buildah run --isolation chroot` does. Installs mmdebstrap and buildah when missing.
# usage: tests/container/run.sh [BINARY]
set -euo pipefail
cd "$(dirname "$0")/../.."

need() {
  command -v "$1" >/dev/null && return
  echo "installing $1 (Debian)"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$1" >/dev/null
}
need mmdebstrap
need buildah
python=${REFOPT_PYTHON:-.venv/bin/python}   # has PyYAML (a moto dependency) after tests/run.sh

binary=${1:-target/debug/refopt}
[ -x "$binary" ] || cargo build --quiet --bin refopt
base=localhost/refopt-base:bookworm
image=localhost/refopt:container-test
work=$(mktemp -d /tmp/refopt-container.XXXXXX)
containers=()
cleanup() {
  for c in "${containers[@]}"; do buildah rm "$c" >/dev/null 2>&1 || true; done
  buildah rmi "$image" >/dev/null 2>&1 || true
  rm -rf "$work" target/container
}
trap cleanup EXIT
step() { printf '\n== %s\n' "$*"; }
fail() { echo "FAIL: $*" >&2; exit 1; }

step "base image: Debian bookworm + ca-certificates (mmdebstrap)"
cache=${XDG_CACHE_HOME:-$HOME/.cache}/refopt
rootfs=$cache/bookworm-rootfs.tar
if [ ! -f "$rootfs" ]; then
  mkdir -p "$cache"
  # mmdebstrap picks its output format from the name: keep ".tar" at the end.
  mmdebstrap --quiet --variant=apt --include=ca-certificates bookworm "$cache/partial.tar"
  mv "$cache/partial.tar" "$rootfs"
fi
if ! buildah inspect --type image "$base" >/dev/null 2>&1; then
  c=$(buildah from scratch)
  buildah add --quiet "$c" "$rootfs" / >/dev/null
  buildah commit --quiet "$c" "$base" >/dev/null
  buildah rm "$c" >/dev/null
fi

step "image: Dockerfile target prebuilt, binary $binary"
mkdir -p target/container
objcopy --strip-debug "$binary" target/container/refopt
buildah bud --quiet --isolation chroot --target prebuilt \
  --build-arg RUNTIME_BASE="$base" --build-arg BINARY=target/container/refopt \
  -t "$image" . >/dev/null
config() { buildah inspect --type image --format "{{$1}}" "$image"; }
[ "$(config .OCIv1.Config.User)" = "65532:65532" ] || fail "image user is $(config .OCIv1.Config.User)"
[ "$(config .OCIv1.Config.Entrypoint)" = "[/usr/local/bin/refopt]" ] || fail "entry point $(config .OCIv1.Config.Entrypoint)"
[ "$(config .OCIv1.Config.WorkingDir)" = "/tmp" ] || fail "working dir $(config .OCIv1.Config.WorkingDir)"
config .OCIv1.Config.Env | grep -q "REFOPT_LOG_FORMAT=json" || fail "REFOPT_LOG_FORMAT=json not set"
echo "user 65532:65532, entry point /usr/local/bin/refopt, workdir /tmp, JSON logs"

# The CronJob's args and literal env values, from the manifest itself.
read_manifest() {
  "$python" - "$1" <<'PY'
import json, sys, yaml
doc = yaml.safe_load(open(sys.argv[1]))
spec = doc["spec"]["jobTemplate"]["spec"]["template"]["spec"]
container = spec["containers"][0]
print(json.dumps({
    "args": container["args"],
    "env": {e["name"]: e["value"] for e in container["env"] if "value" in e},
    "mounts": {m["name"]: m["mountPath"] for m in container["volumeMounts"]},
    "user": spec["securityContext"]["runAsUser"],
    "read_only_root": container["securityContext"]["readOnlyRootFilesystem"],
}))
PY
}
manifest=$(read_manifest k8s/base/cronjob.yaml)
field() { "$python" -c "import json,sys; v=json.loads(sys.argv[1])$2; print(v if isinstance(v,(str,int)) else json.dumps(v))" "$manifest"; }
[ "$(field "" "['user']")" = 65532 ] || fail "cronjob runs as $(field "" "['user']")"
[ "$(field "" "['mounts']['tmp']")" = /tmp ] || fail "cronjob's writable volume is not /tmp"

# A fresh /tmp per container, like the emptyDir; everything else is root's, read-only to 65532.
tmp=$work/tmp
mkdir -p "$tmp" && chmod 1777 "$tmp"
run_as_k8s() { # container, extra buildah run args..., --, refopt args...
  local c=$1; shift
  local opts=()
  while [ "$1" != -- ]; do opts+=("$1"); shift; done
  shift
  buildah run --isolation chroot --user 65532:65532 -v "$tmp:/tmp" "${opts[@]}" "$c" -- /usr/local/bin/refopt "$@"
}
new_container() { local c; c=$(buildah from "$image"); containers+=("$c"); echo "$c"; }

step "refopt --version"
c=$(new_container)
run_as_k8s "$c" -- --version | tee "$work/version"
grep -q "^refopt " "$work/version" || fail "no version"

step "refopt demo on the embedded defaults (nothing mounted)"
run_as_k8s "$c" -- demo --dir /tmp/demo --scale 0.02 --days 60 > "$work/demo.out" 2> "$work/demo.err" \
  || { cat "$work/demo.err"; fail "demo failed"; }
plan=$(ls "$tmp"/demo/plans/optimize-referrals/plan-v000001.json) || fail "demo wrote no plan"
rules=$("$python" -c "import json,sys; print(json.load(open(sys.argv[1]))['inputs']['rules'])" "$plan")
case $rules in embedded@*/rules) echo "plan $plan: rules $rules" ;; *) fail "demo plan's rules: $rules" ;; esac
# REFOPT_LOG_FORMAT=json from the image: every stderr line is a JSON object.
"$python" -c "import json,sys; [json.loads(l) for l in open(sys.argv[1]) if l.strip()]" "$work/demo.err" \
  || fail "stderr is not JSON lines"

step "the CronJob's args and env, rules and pipelines mounted read-only, one rule edited"
cp -r rules "$work/rules" && cp -r pipelines "$work/pipelines"
sed -i 's/id: referral_velocity_burst/id: velocity_burst_edited_in_configmap/' "$work/rules/fraud.yaml"
edited_sha=$(sha256sum "$work/rules/fraud.yaml" | cut -d' ' -f1)
env_args=()
while IFS='=' read -r k v; do env_args+=(--env "$k=$v"); done < <(field "" "['env']" | "$python" -c "import json,sys; [print(f'{k}={v}') for k,v in json.load(sys.stdin).items()]")
# The Secret's two URLs: data from the demo, plans into /tmp.
env_args+=(--env REFOPT_ROOT=/tmp/demo/data --env REFOPT_PLANS=/tmp/plans)
mounts=(-v "$work/rules:$(field "" "['mounts']['rules']"):ro" -v "$work/pipelines:$(field "" "['mounts']['pipelines']"):ro")
mapfile -t args < <(field "" "['args']" | "$python" -c "import json,sys; [print(a) for a in json.load(sys.stdin)]")
c=$(new_container)
run_as_k8s "$c" "${env_args[@]}" "${mounts[@]}" -- "${args[@]}" > "$work/run.out" 2> "$work/run.err" \
  || { tail -5 "$work/run.err"; fail "the CronJob's command failed"; }
plan=$tmp/plans/optimize-referrals/plan-v000001.json
[ -f "$plan" ] || fail "no plan at $plan"
"$python" - "$plan" "$edited_sha" <<'PY' || fail "plan inputs"
import json, sys
plan = json.load(open(sys.argv[1]))
inputs = plan["inputs"]
assert inputs["rules"] == "/etc/refopt/rules", inputs["rules"]
assert inputs["pipeline"] == "/etc/refopt/pipelines/optimize-referrals.yaml", inputs["pipeline"]
assert inputs["config_hashes"]["rules/fraud.yaml"] == sys.argv[2], "edited fraud.yaml not the one read"
ids = [r["rule_id"] for r in plan["risk"]["rules"]]
assert "velocity_burst_edited_in_configmap" in ids, ids
print(f"plan v1: rules {inputs['rules']}, edited fraud.yaml (sha {sys.argv[2][:12]}) used, {plan['risk']['referrals_flagged']} referrals flagged")
PY

step "exit codes the Job's backoffLimit and alerts rely on"
echo "rules: [" > "$work/rules/alerts.yaml"
set +e
run_as_k8s "$c" "${env_args[@]}" "${mounts[@]}" -- "${args[@]}" --force > /dev/null 2> "$work/broken.err"
code=$?
set -e
[ $code = 3 ] || { cat "$work/broken.err"; fail "broken rules exit $code, expected 3 (configuration error)"; }
grep -q "alerts.yaml" "$work/broken.err" || fail "the error does not name alerts.yaml"
[ "$(ls "$tmp/plans/optimize-referrals/" | grep -c '^plan-v.*\.json$')" = 1 ] || fail "a plan was written despite the error"
echo "broken rules/alerts.yaml: exit 3, located, no plan written"
cp rules/alerts.yaml "$work/rules/alerts.yaml"
set +e
run_as_k8s "$c" "${env_args[@]}" "${mounts[@]}" -- "${args[@]}" --plans /var/refopt-plans > /dev/null 2> "$work/ro.err"
code=$?
set -e
[ $code = 5 ] || { tail -3 "$work/ro.err"; fail "read-only plans folder exit $code, expected 5 (storage error)"; }
echo "plans outside /tmp (read-only root for uid 65532): exit 5"

echo
echo "container test passed"
