#!/usr/bin/env bash
# Builds the two images of a region: the service (the Bento, containerized by BentoML)
# and the UI. `make images` runs this; see deploy/README.md.
#
# Settings (environment variables, all optional):
#   BASE_IMAGE         base of both images                  (python:3.11-slim)
#   CONTAINER_BACKEND  docker or podman                     (docker)
#   PLATFORMS          comma-separated, e.g. linux/amd64,linux/arm64 (the builder's own)
#   PUSH               docker, several platforms: 1 pushes the lists to the registry
#                      named by SERVICE_IMAGE and UI_IMAGE instead of loading them
#   BUILD_OPTS         extra build options, space separated, as NAME=VALUE or NAME,
#                      given to both builds (e.g. "network=host")
#   VERSION            second tag of both images            (1.0)
#   SERVICE_IMAGE      service image name                   (churn-service)
#   UI_IMAGE           UI image name                        (churn-ui)
#   BENTO_TAG          the Bento to containerize; built from this tree if unset
#   PYTHON             Python with bentoml installed        (.venv/bin/python)
#
# One platform (or none) gives plain images, as before. Several give, under each name, a
# multi-arch manifest list tagged latest and VERSION: with podman, one build per
# platform (each kept as NAME:VERSION-ARCH, e.g. churn-service:1.0-arm64) gathered with
# `podman manifest`; with docker, one `docker buildx build --platform ...`.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

BASE_IMAGE=${BASE_IMAGE:-python:3.11-slim}
CONTAINER_BACKEND=${CONTAINER_BACKEND:-docker}
PLATFORMS=${PLATFORMS:-}
PUSH=${PUSH:-}
BUILD_OPTS=${BUILD_OPTS:-}
VERSION=${VERSION:-1.0}
SERVICE_IMAGE=${SERVICE_IMAGE:-churn-service}
UI_IMAGE=${UI_IMAGE:-churn-ui}
PYTHON=${PYTHON:-$root/.venv/bin/python}
bentoml=("$PYTHON" -m bentoml)
started=$SECONDS
elapsed() { echo "$((SECONDS - started)) s"; }

bentoml_opts=(--opt "build-arg=BASE_IMAGE=$BASE_IMAGE")
build_opts=(--build-arg "BASE_IMAGE=$BASE_IMAGE")
for opt in $BUILD_OPTS; do
  bentoml_opts+=(--opt "$opt")
  build_opts+=("--$opt")
done
read -r -a platforms <<<"${PLATFORMS//,/ }"
has_ui=$([[ -f deploy/ui/Dockerfile ]] && echo 1 || true)
[[ -n "$has_ui" ]] || echo "== no deploy/ui/Dockerfile: the UI image is not built"

if [[ -z "${BENTO_TAG:-}" ]]; then
  echo "== building the Bento (the model comes from the BentoML store: make import)"
  BENTO_TAG=$("${bentoml[@]}" build --output tag "$root" | sed -n 's/^__tag__:\(.*\)$/\1/p')
fi

containerize() {  # BACKEND TAG... [-- OPT...]: the service image, BentoML's way
  local backend=$1 tags=() opts=()
  shift
  while (($#)) && [[ "$1" != -- ]]; do tags+=(-t "$1"); shift; done
  (($#)) && shift
  for opt in "$@"; do opts+=(--opt "$opt"); done
  # Run from / : BentoML 1.4 refuses a dockerfile_template in its temporary build folder
  # when that folder is outside the working directory (bentoml/BentoML#5566).
  (cd / && "${bentoml[@]}" containerize "$BENTO_TAG" --backend "$backend" \
    "${bentoml_opts[@]}" ${opts[@]+"${opts[@]}"} "${tags[@]}")
}

# shellcheck source=deploy/podman-names.sh
source deploy/podman-names.sh  # release, manifest: podman's names, rerun whatever it holds
if [[ "$CONTAINER_BACKEND" == podman ]]; then
  names=("$SERVICE_IMAGE:latest" "$SERVICE_IMAGE:$VERSION")
  [[ -z "$has_ui" ]] || names+=("$UI_IMAGE:latest" "$UI_IMAGE:$VERSION")
  release "${names[@]}"
fi

if ((${#platforms[@]} <= 1)); then
  platform_opts=()
  ((${#platforms[@]})) && platform_opts=("platform=${platforms[0]}")
  echo "== containerizing $BENTO_TAG as $SERVICE_IMAGE:latest, $SERVICE_IMAGE:$VERSION on $BASE_IMAGE ${PLATFORMS}"
  containerize "$CONTAINER_BACKEND" "$SERVICE_IMAGE:latest" "$SERVICE_IMAGE:$VERSION" \
    -- ${platform_opts[@]+"${platform_opts[@]}"}
  echo "== service image built ($(elapsed))"
  if [[ -n "$has_ui" ]]; then
    echo "== building $UI_IMAGE:latest, $UI_IMAGE:$VERSION on $BASE_IMAGE ${PLATFORMS}"
    "$CONTAINER_BACKEND" build "${build_opts[@]}" ${PLATFORMS:+--platform "$PLATFORMS"} \
      -f deploy/ui/Dockerfile -t "$UI_IMAGE:latest" -t "$UI_IMAGE:$VERSION" .
    echo "== UI image built ($(elapsed))"
  fi
  exit 0
fi

case "$CONTAINER_BACKEND" in
  docker)
    # buildx builds every platform in one go (QEMU for the foreign ones). The classic
    # image store holds no manifest list: load needs Docker's containerd image store,
    # otherwise PUSH=1 with SERVICE_IMAGE and UI_IMAGE naming the registry.
    output=--load
    [[ -n "$PUSH" ]] && output=--push
    echo "== containerizing $BENTO_TAG for $PLATFORMS with docker buildx ($output)"
    containerize buildx "$SERVICE_IMAGE:latest" "$SERVICE_IMAGE:$VERSION" \
      -- "platform=$PLATFORMS" "${output#--}"
    echo "== service images built ($(elapsed))"
    if [[ -n "$has_ui" ]]; then
      echo "== building $UI_IMAGE for $PLATFORMS with docker buildx ($output)"
      docker buildx build "${build_opts[@]}" --platform "$PLATFORMS" "$output" \
        -f deploy/ui/Dockerfile -t "$UI_IMAGE:latest" -t "$UI_IMAGE:$VERSION" .
      echo "== UI images built ($(elapsed))"
    fi
    ;;
  podman)
    # One build per platform, then a manifest list per name (deploy/podman-names.sh).
    for platform in "${platforms[@]}"; do
      arch=${platform#*/}
      echo "== containerizing $BENTO_TAG for $platform as $SERVICE_IMAGE:$VERSION-$arch on $BASE_IMAGE"
      containerize podman "$SERVICE_IMAGE:$VERSION-$arch" -- "platform=$platform"
      echo "== service image for $platform built ($(elapsed))"
      if [[ -n "$has_ui" ]]; then
        echo "== building $UI_IMAGE:$VERSION-$arch for $platform on $BASE_IMAGE"
        podman build "${build_opts[@]}" --platform "$platform" -f deploy/ui/Dockerfile \
          -t "$UI_IMAGE:$VERSION-$arch" .
        echo "== UI image for $platform built ($(elapsed))"
      fi
    done
    manifest "$SERVICE_IMAGE" "$VERSION" "${platforms[@]}"
    [[ -z "$has_ui" ]] || manifest "$UI_IMAGE" "$VERSION" "${platforms[@]}"
    ;;
  *)
    echo "CONTAINER_BACKEND=$CONTAINER_BACKEND: several platforms need docker (buildx) or podman" >&2
    exit 2
    ;;
esac
