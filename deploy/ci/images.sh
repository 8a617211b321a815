#!/usr/bin/env bash
# CI's image stage (`make ci-images`): builds the real images for amd64 and arm64, runs
# them, and bundles them for a region.
#   1. podman, buildah, debootstrap, qemu-user-static from Debian (skipped when
#      installed), and qemu's binfmt_misc handler for arm64;
#   2. the stand-in base localhost/python:3.11-slim, a list of an amd64 and an arm64
#      image (each skipped when it exists);
#   3. the Bento and both images for both platforms, exactly as `make images
#      PLATFORMS=linux/amd64,linux/arm64` builds them for a region;
#   4. runs the amd64 service image as it is (its own user and entrypoint): /readyz and
#      /livez answer 200, /v1/customer answers {"Prediction": ...} as Flask did, every
#      process runs as uid 1000, no compiler or git; again with a read-only root and API
#      keys; scores the public customers with /v2/predict-file;
#   5. runs the UI image and checks /_stcore/health (also with a read-only root);
#   6. runs the arm64 images under qemu: /readyz, the old contract byte for byte as on
#      amd64, /v2/predict-file on the public customers with the same labels and
#      probabilities within 1e-6, the UI's health;
#   7. `make bundle`, then `make bundle-verify` loads it into an empty image store, the
#      pinned images run from there, and tests/deploy/test_real_bundle.py checks the
#      pins and refuses a tampered copy; each image's Python environment is its SBOM;
#   8. builds the Hugging Face Space folder that `churn spaces export` writes.
# Start-up times to /readyz and each stage's duration are printed at the end.
#
# Settings: CI_PLATFORMS (linux/amd64,linux/arm64; linux/amd64 skips step 6),
# CHURN_PUBLIC_DATA (../shared/data/Churn_Modelling.csv; without it the comparisons on
# the public customers are skipped, with a message). Must run as root (apt-get, podman).
# Every process it starts is stopped by its PID.
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$PWD
started=$SECONDS
stage_started=$SECONDS
stage_cpu=0
stage_name=
timings=()
cpu() {  # sets now: CPU seconds used so far by the processes this script waited for
  times >"$root/build/.ci-images-times"  # (here: in a subshell, `times` would count its own)
  now=$(awk 'NR == 2 { split($1, u, /[ms]/); split($2, s, /[ms]/); printf "%d", u[1] * 60 + u[2] + s[1] * 60 + s[2] }' \
    "$root/build/.ci-images-times")
}
stage() {  # each stage's wall time, and CPU time, which depends less on a busy machine
  local now
  cpu
  [[ -z "$stage_name" ]] \
    || timings+=("$(printf '%5s s %6s s CPU  %s' "$((SECONDS - stage_started))" "$((now - stage_cpu))" "$stage_name")")
  stage_name=$*
  stage_started=$SECONDS
  stage_cpu=$now
  printf '\n== [%4ss] %s\n' "$((SECONDS - started))" "$*"
}

export BUILDAH_ISOLATION=chroot
export BENTOML_HOME=$root/build/ci-images/bentoml
export BENTOML_DO_NOT_TRACK=true
CI_PLATFORMS=${CI_PLATFORMS:-linux/amd64,linux/arm64}
public=${CHURN_PUBLIC_DATA:-$root/../shared/data/Churn_Modelling.csv}
base=localhost/python:3.11-slim
build_opts="network=host volume=/etc/ssl/certs:/etc/ssl/certs:ro"
version=1.0
work=$root/build/ci-images
python=$root/.venv/bin/python
mkdir -p "$work"
emulate=$([[ "$CI_PLATFORMS" == *linux/arm64* ]] && echo 1 || true)
if [[ -f "$public" ]]; then
  rows=$("$python" -c 'import csv, sys; print(sum(1 for _ in csv.DictReader(open(sys.argv[1]))))' "$public")
else
  rows=
  echo "SKIPPED: $public is absent, so /v2/predict-file and /v1/customerbatch are not"
  echo "compared across architectures on the public customers (the rest runs)."
fi

stage "tools"
need=()
for tool in podman:podman buildah:buildah debootstrap:debootstrap curl:curl; do
  command -v "${tool%%:*}" >/dev/null 2>&1 || need+=("${tool#*:}")
done
if [[ -n "$emulate" ]]; then
  [[ -x /usr/bin/qemu-aarch64-static ]] || need+=(qemu-user-static)
  command -v update-binfmts >/dev/null 2>&1 || need+=(binfmt-support)
fi
if ((${#need[@]})); then
  apt-get update -qq
  # As shared/containers.md installs them (with recommends: networking, image policy).
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi
podman --version
if [[ -n "$emulate" ]]; then
  # Debian registers qemu with the fix-binary flag (F): arm64 programs run inside a
  # chroot that holds no qemu. A bare VM may need binfmt_misc mounted first.
  mountpoint -q /proc/sys/fs/binfmt_misc \
    || mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc
  update-binfmts --enable qemu-aarch64 2>/dev/null || true
  grep -q '^flags: .*F' /proc/sys/fs/binfmt_misc/qemu-aarch64 \
    || { echo "qemu-aarch64 is not registered with flag F" >&2; exit 1; }
  echo "qemu-aarch64: $(grep '^flags' /proc/sys/fs/binfmt_misc/qemu-aarch64)"
fi

stage "base image $base ($CI_PLATFORMS)"
deploy/ci/base-image.sh "$base" "$CI_PLATFORMS"

stage "model store and Bento"
.venv/bin/churn import-model models/churn_prediction_model_v1_0.joblib
bento=$(.venv/bin/bentoml build --output tag . | sed -n 's/^__tag__://p')
echo "built $bento"

stage "images for $CI_PLATFORMS"
BASE_IMAGE=$base CONTAINER_BACKEND=podman PLATFORMS=$CI_PLATFORMS BUILD_OPTS=$build_opts \
  BENTO_TAG=$bento VERSION=$version deploy/images.sh
podman image ls --format '{{.Repository}}:{{.Tag}} {{.Size}}' | grep -E 'churn-(service|ui)'
# With one platform, images.sh tags plain images; name them as the lists' members are.
if [[ "$CI_PLATFORMS" != *,* ]]; then
  for image in churn-service churn-ui; do
    podman tag "localhost/$image:$version" "localhost/$image:$version-${CI_PLATFORMS#*/}"
  done
fi
# What the service adds to its base (the stand-in base is about 170 MB larger than the
# real python:3.11-slim, so only this difference compares with other sites').
for platform in ${CI_PLATFORMS//,/ }; do
  added=$(( $(podman image inspect --format '{{.Size}}' "localhost/churn-service:$version-${platform#*/}") \
    - $(podman image inspect --format '{{.Size}}' "$base-${platform#*/}") ))
  echo "churn-service ($platform): $((added / 1000000)) MB above the base"
done

# --- running an image: buildah run with chroot isolation on the host network --------
pids=()
containers=()
descendants() {  # every process below PID $1
  local child
  for child in $(ps -o pid= --ppid "$1"); do
    echo "$child"
    descendants "$child"
  done
}
stop_all() {
  local pid
  for pid in "${pids[@]}"; do
    kill -TERM $(descendants "$pid") "$pid" 2>/dev/null || true
  done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  pids=()
  for c in "${containers[@]}"; do buildah rm "$c" >/dev/null 2>&1 || true; done
  containers=()
}
trap stop_all EXIT
free_port() {
  "$python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
launched=0
run_image() {  # IMAGE LOG ENV... : starts the image's own entrypoint as its own user
  local image=$1 log=$2 c command
  shift 2
  c=$(buildah from -q "$image")  # (warns when the image's platform is not this machine's)
  containers+=("$c")
  command=$(buildah inspect --type container "$c" | "$python" -c '
import json, shlex, sys
config = json.load(sys.stdin)["OCIv1"]["config"]
print(shlex.join((config.get("Entrypoint") or []) + (config.get("Cmd") or [])))')
  local envs=()
  for e in "$@"; do envs+=(--env "$e"); done
  eval "command=($command)"
  launched=$(date +%s.%N)
  buildah run --isolation chroot --network host "${envs[@]}" "$c" -- "${command[@]}" \
    >"$log" 2>&1 &
  pids+=($!)
}
run_read_only() {  # IMAGE LOG ENV... : as Kubernetes runs it with readOnlyRootFilesystem:
  # the image's root read-only, a tmpfs on /tmp, the image's user, env and entrypoint.
  local image=$1 log=$2 c rootfs
  shift 2
  c=$(buildah from -q "$image")
  containers+=("$c")
  rootfs=$(buildah mount "$c")
  touch "$rootfs/etc/hosts" "$rootfs/etc/resolv.conf"  # a container runtime provides these
  local spec
  spec=$(buildah inspect --type container "$c" | "$python" -c '
import json, shlex, sys
config = json.load(sys.stdin)["OCIv1"]["config"]
command = (config.get("Entrypoint") or []) + (config.get("Cmd") or [])
print(config.get("User") or "0:0")
print(config.get("WorkingDir") or "/")
print(shlex.join(["env", "-i", *(config.get("Env") or []), *sys.argv[1:], *command]))' "$@")
  local user workdir command
  { read -r user; read -r workdir; read -r command; } <<<"$spec"
  unshare --mount --propagation private bash -c '
    set -e
    root=$1 user=$2 workdir=$3; shift 3
    mount --bind "$root" "$root"
    mount -o remount,bind,ro "$root"
    mount -t tmpfs -o "uid=${user%%:*},gid=${user##*:},mode=0700" tmpfs "$root/tmp"
    mount -t proc proc "$root/proc"
    mount --rbind /dev "$root/dev"
    mount --bind /etc/hosts "$root/etc/hosts"
    mount --bind /etc/resolv.conf "$root/etc/resolv.conf"
    if touch "$root/probe" 2>/dev/null; then echo "root is writable" >&2; exit 1; fi
    exec chroot --userspec="$user" "$root" /bin/sh -c "cd \"\$0\" && exec \"\$@\"" "$workdir" "$@"
  ' run-read-only "$rootfs" "$user" "$workdir" bash -c "exec $command" >"$log" 2>&1 &
  pids+=($!)
}
wait_for() {  # URL SECONDS LOG
  local deadline=$((SECONDS + $2))
  until curl -fs -o /dev/null "$1"; do
    if ((SECONDS > deadline)) || ! kill -0 "${pids[-1]}" 2>/dev/null; then
      echo "no answer from $1; the container's output:" >&2
      tail -n 40 "$3" >&2
      return 1
    fi
    sleep 0.2
  done
}
startups=()
wait_ready() {  # URL SECONDS LOG WHAT : wait_for, and record the time from launch
  wait_for "$1" "$2" "$3"
  local took
  took=$("$python" -c 'import sys, time; print(f"{time.time() - float(sys.argv[1]):.1f}")' "$launched")
  startups+=("$(printf '%6s s  %s' "$took" "$4")")
  echo "$4: $1 answered $took s after launch"
}
check_uids() {  # PID: every process of the container runs as uid 1000
  local pid uid bad=0 n=0
  for pid in "$1" $(descendants "$1"); do
    # buildah's own runtime process (root) starts the container's entrypoint
    [[ "$(tr '\0' '\n' <"/proc/$pid/cmdline" 2>/dev/null | head -n 1)" == buildah* ]] && continue
    uid=$(awk '/^Uid:/ {print $2}' "/proc/$pid/status" 2>/dev/null) || continue
    [[ -n "$uid" ]] || continue
    n=$((n + 1))
    if [[ "$uid" != 1000 ]]; then
      echo "process $pid runs as uid $uid: $(tr '\0' ' ' <"/proc/$pid/cmdline")" >&2
      bad=1
    fi
  done
  ((n > 0)) || { echo "no container process found" >&2; return 1; }
  ((bad == 0)) && echo "$n processes, all uid 1000"
}
example='{"CreditScore": 900, "Geography": "France", "Age": 67, "Tenure": 1, "Balance": 120000.50, "NumOfProducts": 1, "HasCrCard": 0, "IsActiveMember": 0, "EstimatedSalary": 95000.75}'
check_service() {  # PORT ARCH : the routes every platform's image must answer alike
  local url="http://127.0.0.1:$1" arch=$2
  echo "/livez: $(curl -s -o /dev/null -w '%{http_code}' "$url/livez")"
  curl -fsS -H 'Content-Type: application/json' -d "$example" "$url/v1/customer" \
    -o "$work/customer-$arch.json"
  echo "/v1/customer: $(cat "$work/customer-$arch.json")"
  "$python" deploy/ci/compare.py flask "$work/customer-$arch.json"
  if [[ -n "$rows" ]]; then
    curl -fsS -F "file=@$public" "$url/v1/customerbatch" -o "$work/customerbatch-$arch.json"
    echo "/v1/customerbatch, $rows public customers: $("$python" deploy/ci/compare.py flask "$work/customerbatch-$arch.json")"
    local t0=$SECONDS
    curl -fsS -F "file=@$public" -D "$work/predict-file-$arch.headers" \
      "$url/v2/predict-file" -o "$work/predict-file-$arch.csv"
    grep -i '^x-rows-scored' "$work/predict-file-$arch.headers" | tr -d '\r'
    echo "/v2/predict-file, $rows public customers: $((SECONDS - t0)) s"
  fi
}

stage "run churn-service:$version-amd64"
port=$(free_port)
run_image "localhost/churn-service:$version-amd64" "$work/service.log" \
  "BENTOML_PORT=$port" CHURN_WORKERS=1 CHURN_LOG_LEVEL=INFO
wait_ready "http://127.0.0.1:$port/readyz" 180 "$work/service.log" "service, amd64, native"
check_service "$port" amd64
check_uids "${pids[-1]}"
for tool in gcc cc g++ make git; do
  if buildah run --isolation chroot "${containers[-1]}" -- sh -c "command -v $tool" >/dev/null 2>&1; then
    echo "$tool is in the service image" >&2
    exit 1
  fi
done
echo "no compiler, make or git in the image"
# The service scores XGBoost's own model file: no scikit-learn, joblib or pickle in it.
buildah run --isolation chroot "${containers[-1]}" -- python -c '
import importlib.util, pathlib, sys
present = [m for m in ("sklearn", "joblib") if importlib.util.find_spec(m)]
pickles = [str(p) for p in pathlib.Path("/home/bentoml/bento/models").rglob("*.pkl")]
print("in the service image:", present or "no scikit-learn or joblib,", pickles or "no pickle")
sys.exit(1 if present or pickles else 0)'
stop_all

stage "run churn-service:$version-amd64 with a read-only root and API keys (deploy/k8s, compose)"
port=$(free_port)
key=$("$python" -c 'import secrets; print(secrets.token_hex(16))')
run_read_only "localhost/churn-service:$version-amd64" "$work/service-read-only.log" \
  "BENTOML_PORT=$port" BENTOML_HOME=/tmp/bentoml CHURN_WORKERS=1 "CHURN_API_KEYS=$key"
wait_for "http://127.0.0.1:$port/readyz" 180 "$work/service-read-only.log"
printf 'CreditScore,Geography,Age,Tenure,Balance,NumOfProducts,HasCrCard,IsActiveMember,EstimatedSalary\n900,France,67,1,120000.5,1,0,0,95000.75\n' \
  >"$work/one-customer.csv"
status=$(curl -s -o /dev/null -w '%{http_code}' -F "file=@$work/one-customer.csv" \
  "http://127.0.0.1:$port/v2/predict-file")
[[ "$status" == 401 ]] || { echo "without the key: $status, not 401" >&2; exit 1; }
echo "/v2/predict-file without the key: 401"
curl -fsS -H "Authorization: Bearer $key" -F "file=@$work/one-customer.csv" \
  -D "$work/headers.txt" -o /dev/null "http://127.0.0.1:$port/v2/predict-file"
grep -i '^x-rows-scored: 1' "$work/headers.txt"
if grep -qF "$key" "$work/service-read-only.log"; then
  echo "the API key appears in the service's log" >&2
  exit 1
fi
check_uids "${pids[-1]}"
stop_all

check_ui() {  # IMAGE LOG WHAT
  local port
  port=$(free_port)
  run_image "$1" "$2" "STREAMLIT_SERVER_PORT=$port" "CHURN_API_URL=http://127.0.0.1:9"
  wait_ready "http://127.0.0.1:$port/_stcore/health" 180 "$2" "$3"
  echo "/_stcore/health: $(curl -fsS "http://127.0.0.1:$port/_stcore/health")"
  check_uids "${pids[-1]}"
  stop_all
}
stage "run churn-ui:$version-amd64"
check_ui "localhost/churn-ui:$version-amd64" "$work/ui.log" "UI, amd64, native"
stage "run churn-ui:$version-amd64 with a read-only root, HOME=/tmp (deploy/k8s, compose)"
port=$(free_port)
run_read_only "localhost/churn-ui:$version-amd64" "$work/ui-read-only.log" \
  "STREAMLIT_SERVER_PORT=$port" "CHURN_API_URL=http://127.0.0.1:9" HOME=/tmp
wait_for "http://127.0.0.1:$port/_stcore/health" 120 "$work/ui-read-only.log"
echo "/_stcore/health: $(curl -fsS "http://127.0.0.1:$port/_stcore/health")"
curl -fsS -o /dev/null "http://127.0.0.1:$port/"
check_uids "${pids[-1]}"
stop_all

if [[ -n "$emulate" ]]; then
  stage "run churn-service:$version-arm64 under qemu"
  port=$(free_port)
  run_image "localhost/churn-service:$version-arm64" "$work/service-arm64.log" \
    "BENTOML_PORT=$port" CHURN_WORKERS=1 CHURN_LOG_LEVEL=INFO
  wait_ready "http://127.0.0.1:$port/readyz" 900 "$work/service-arm64.log" "service, arm64, emulated"
  check_service "$port" arm64
  cmp "$work/customer-amd64.json" "$work/customer-arm64.json"
  echo "/v1/customer: the same bytes as on amd64"
  if [[ -n "$rows" ]]; then
    cmp "$work/customerbatch-amd64.json" "$work/customerbatch-arm64.json"
    echo "/v1/customerbatch: the same bytes as on amd64"
    echo "/v2/predict-file against amd64: $("$python" deploy/ci/compare.py scored \
      "$work/predict-file-amd64.csv" "$work/predict-file-arm64.csv" "$rows")"
  fi
  rm -f "$work"/customerbatch-*.json "$work"/predict-file-*  # customers' ids
  check_uids "${pids[-1]}"
  stop_all
  stage "run churn-ui:$version-arm64 under qemu"
  check_ui "localhost/churn-ui:$version-arm64" "$work/ui-arm64.log" "UI, arm64, emulated"
fi

stage "each image's Python environment is its SBOM; make bundle"
rm -rf "$work/bundle"
.venv/bin/python deploy/bundle.py make --out "$work/bundle" --version "$version"
bundle=$work/bundle/churn-$version
for image in churn-service churn-ui; do
  c=$(buildah from -q "localhost/$image:$version-amd64")
  containers+=("$c")
  buildah run --isolation chroot "$c" -- /app/.venv/bin/python -c '
import importlib.metadata as m, json
print(json.dumps({d.metadata["Name"]: d.version for d in m.distributions()}))' \
    >"$work/$image-environment.json"
  "$python" deploy/ci/compare.py sbom "$work/$image-environment.json" "$bundle/sbom/$image.cdx.json"
done
stop_all
du -sh "$bundle" "$bundle.tar"

stage "make bundle-verify: into an empty image store, then run the pinned images"
loaded=$work/loaded-store
rm -rf "$loaded"
mkdir -p "$loaded"
printf '[storage]\ndriver = "overlay"\ngraphroot = "%s"\nrunroot = "%s"\n' \
  "$loaded/graph" "$loaded/run" >"$work/loaded-storage.conf"
export CONTAINERS_STORAGE_CONF=$work/loaded-storage.conf
# The fingerprint as the release announces it: written beside the bundle by `make bundle`.
python3 deploy/bundle.py verify "$bundle" --fingerprint "$(cat "$bundle.fingerprint")" --engine podman
podman image ls --format '{{.Repository}}:{{.Tag}} {{.Digest}}'
pinned() {  # NAME: NAME@sha256:... as the bundle pins it
  "$python" -c 'import json, sys; print(next(i["name"] + "@" + i["digest"] for i in json.load(open(sys.argv[1]))["images"] if i["name"] == sys.argv[2]))' "$bundle/images.json" "$1"
}
port=$(free_port)
run_image "$(pinned churn-service)" "$work/service-loaded.log" "BENTOML_PORT=$port" CHURN_WORKERS=1
wait_for "http://127.0.0.1:$port/readyz" 180 "$work/service-loaded.log"
echo "$(pinned churn-service): /readyz 200, /v1/customer $(curl -fsS -H 'Content-Type: application/json' -d "$example" "http://127.0.0.1:$port/v1/customer")"
stop_all
port=$(free_port)
run_image "$(pinned churn-ui)" "$work/ui-loaded.log" "STREAMLIT_SERVER_PORT=$port" "CHURN_API_URL=http://127.0.0.1:9"
wait_for "http://127.0.0.1:$port/_stcore/health" 120 "$work/ui-loaded.log"
echo "$(pinned churn-ui): /_stcore/health $(curl -fsS "http://127.0.0.1:$port/_stcore/health")"
stop_all
unset CONTAINERS_STORAGE_CONF

stage "tests/deploy/test_real_bundle.py: the pins are the images' own; a tampered copy is refused"
CHURN_BUNDLE=$bundle CHURN_BUNDLE_STORE=$work/loaded-storage.conf CHURN_BUNDLE_PLATFORMS=$CI_PLATFORMS \
  .venv/bin/pytest tests/deploy/test_real_bundle.py -q -p no:cacheprovider
rm -rf "$loaded"

stage "Hugging Face Space folder"
rm -rf "$work/space"
.venv/bin/churn spaces export "$work/space" --bento "$bento"
podman build --isolation chroot --network host -v /etc/ssl/certs:/etc/ssl/certs:ro -q \
  --build-arg "BASE_IMAGE=$base" -t localhost/churn-space:ci "$work/space"
user=$(podman image inspect --format '{{.Config.User}}' localhost/churn-space:ci)
[[ "$user" == 1000* ]] || { echo "the Space image runs as '$user', not 1000" >&2; exit 1; }
echo "Space image builds, user $user"

stage "done"
printf '\nstart-up, launch to the first 200 from /readyz (or the UI health):\n'
printf '  %s\n' "${startups[@]}"
printf '\nstages (wall, CPU):\n'
printf '  %s\n' "${timings[@]}"
cpu
printf '  %5s s %6s s CPU  in all\n' "$((SECONDS - started))" "$now"
