#!/usr/bin/env bash
# CI's image stage (`make ci-images`): builds the real images and runs them.
#   1. podman, buildah and debootstrap from Debian (skipped when installed);
#   2. the stand-in base image localhost/python:3.11-slim (skipped when it exists);
#   3. the Bento and both images, exactly as `make images` builds them for a region;
#   4. runs the service image as it is (its own user and entrypoint): /readyz answers
#      200, /v1/customer answers {"Prediction": ...}, every process runs as uid 1000;
#   5. runs the UI image and checks /_stcore/health (when the UI exists);
#   6. builds the Hugging Face Space folder that `churn spaces export` writes.
# Must run as root (apt-get, podman). Every process it starts is stopped by its PID.
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$PWD
started=$SECONDS
stage() { printf '\n== [%3ss] %s\n' "$((SECONDS - started))" "$*"; }

export BUILDAH_ISOLATION=chroot
export BENTOML_HOME=$root/build/ci-images/bentoml
export BENTOML_DO_NOT_TRACK=true
base=localhost/python:3.11-slim
build_opts="network=host volume=/etc/ssl/certs:/etc/ssl/certs:ro"
work=$root/build/ci-images
mkdir -p "$work"

stage "tools"
need=()
for tool in podman:podman buildah:buildah debootstrap:debootstrap curl:curl; do
  command -v "${tool%%:*}" >/dev/null 2>&1 || need+=("${tool#*:}")
done
if ((${#need[@]})); then
  apt-get update -qq
  # As shared/containers.md installs them (with recommends: networking, image policy).
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi
podman --version

stage "base image $base"
deploy/ci/base-image.sh "$base"

stage "model store and Bento"
.venv/bin/churn import-model models/churn_prediction_model_v1_0.joblib
bento=$(.venv/bin/bentoml build --output tag . | sed -n 's/^__tag__://p')
echo "built $bento"

stage "images"
BASE_IMAGE=$base CONTAINER_BACKEND=podman BUILD_OPTS=$build_opts BENTO_TAG=$bento \
  deploy/images.sh
podman image ls --format '{{.Repository}}:{{.Tag}} {{.Size}}' | grep -E 'churn-(service|ui)'

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
  .venv/bin/python -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
run_image() {  # IMAGE LOG ENV... : starts the image's own entrypoint as its own user
  local image=$1 log=$2 c command
  shift 2
  c=$(buildah from -q "$image")
  containers+=("$c")
  command=$(buildah inspect --type container "$c" | .venv/bin/python -c '
import json, shlex, sys
config = json.load(sys.stdin)["OCIv1"]["config"]
print(shlex.join((config.get("Entrypoint") or []) + (config.get("Cmd") or [])))')
  local envs=()
  for e in "$@"; do envs+=(--env "$e"); done
  eval "command=($command)"
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
  spec=$(buildah inspect --type container "$c" | .venv/bin/python -c '
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
    sleep 1
  done
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

stage "run churn-service:latest"
port=$(free_port)
run_image localhost/churn-service:latest "$work/service.log" \
  "BENTOML_PORT=$port" CHURN_WORKERS=1 CHURN_LOG_LEVEL=INFO
wait_for "http://127.0.0.1:$port/readyz" 180 "$work/service.log"
echo "/readyz: $(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/readyz")"
echo "/livez: $(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/livez")"
answer=$(curl -fsS -H 'Content-Type: application/json' \
  -d '{"CreditScore": 900, "Geography": "France", "Age": 67, "Tenure": 1, "Balance": 120000.50, "NumOfProducts": 1, "HasCrCard": 0, "IsActiveMember": 0, "EstimatedSalary": 95000.75}' \
  "http://127.0.0.1:$port/v1/customer")
echo "/v1/customer: $answer"
.venv/bin/python -c 'import json, sys; assert json.loads(sys.argv[1])["Prediction"] in ("churn", "not churn"), sys.argv[1]' "$answer"
check_uids "${pids[-1]}"
for tool in gcc cc g++ make git; do
  if buildah run --isolation chroot "${containers[-1]}" -- sh -c "command -v $tool" >/dev/null 2>&1; then
    echo "$tool is in the service image" >&2
    exit 1
  fi
done
echo "no compiler, make or git in the image"
stop_all

stage "run churn-service:latest with a read-only root and API keys (deploy/k8s, compose)"
port=$(free_port)
key=$(.venv/bin/python -c 'import secrets; print(secrets.token_hex(16))')
run_read_only localhost/churn-service:latest "$work/service-read-only.log" \
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

if [[ -f churn/ui/app.py && -f deploy/ui/Dockerfile ]]; then
  stage "run churn-ui:latest"
  port=$(free_port)
  run_image localhost/churn-ui:latest "$work/ui.log" \
    "STREAMLIT_SERVER_PORT=$port" "CHURN_API_URL=http://127.0.0.1:9"
  wait_for "http://127.0.0.1:$port/_stcore/health" 120 "$work/ui.log"
  echo "/_stcore/health: $(curl -fsS "http://127.0.0.1:$port/_stcore/health")"
  check_uids "${pids[-1]}"
  stop_all
  stage "run churn-ui:latest with a read-only root, HOME=/tmp (deploy/k8s, compose)"
  port=$(free_port)
  run_read_only localhost/churn-ui:latest "$work/ui-read-only.log" \
    "STREAMLIT_SERVER_PORT=$port" "CHURN_API_URL=http://127.0.0.1:9" HOME=/tmp
  wait_for "http://127.0.0.1:$port/_stcore/health" 120 "$work/ui-read-only.log"
  echo "/_stcore/health: $(curl -fsS "http://127.0.0.1:$port/_stcore/health")"
  curl -fsS -o /dev/null "http://127.0.0.1:$port/"
  check_uids "${pids[-1]}"
  stop_all
else
  stage "no UI yet (churn/ui/app.py, deploy/ui/Dockerfile): UI image not run"
fi

stage "Hugging Face Space folder"
rm -rf "$work/space"
.venv/bin/churn spaces export "$work/space" --bento "$bento"
podman build --isolation chroot --network host -v /etc/ssl/certs:/etc/ssl/certs:ro -q \
  --build-arg "BASE_IMAGE=$base" -t localhost/churn-space:ci "$work/space"
user=$(podman image inspect --format '{{.Config.User}}' localhost/churn-space:ci)
[[ "$user" == 1000* ]] || { echo "the Space image runs as '$user', not 1000" >&2; exit 1; }
echo "Space image builds, user $user"

stage "done"
