#!/usr/bin/env bash
# Builds the two images of a region: the service (the Bento, containerized by BentoML)
# and the UI. `make images` runs this; see deploy/README.md.
#
# Settings (environment variables, all optional):
#   BASE_IMAGE         base of both images                  (python:3.11-slim)
#   CONTAINER_BACKEND  docker or podman                     (docker)
#   BUILD_OPTS         extra build options, space separated, as NAME=VALUE or NAME,
#                      given to both builds (e.g. "network=host")
#   VERSION            second tag of both images            (1.0)
#   SERVICE_IMAGE      service image name                   (churn-service)
#   UI_IMAGE           UI image name                        (churn-ui)
#   BENTO_TAG          the Bento to containerize; built from this tree if unset
#   PYTHON             Python with bentoml installed        (.venv/bin/python)
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

BASE_IMAGE=${BASE_IMAGE:-python:3.11-slim}
CONTAINER_BACKEND=${CONTAINER_BACKEND:-docker}
BUILD_OPTS=${BUILD_OPTS:-}
VERSION=${VERSION:-1.0}
SERVICE_IMAGE=${SERVICE_IMAGE:-churn-service}
UI_IMAGE=${UI_IMAGE:-churn-ui}
PYTHON=${PYTHON:-$root/.venv/bin/python}
bentoml=("$PYTHON" -m bentoml)

bentoml_opts=(--opt "build-arg=BASE_IMAGE=$BASE_IMAGE")
build_opts=(--build-arg "BASE_IMAGE=$BASE_IMAGE")
for opt in $BUILD_OPTS; do
  bentoml_opts+=(--opt "$opt")
  build_opts+=("--$opt")
done

if [[ -z "${BENTO_TAG:-}" ]]; then
  echo "== building the Bento (the model comes from the BentoML store: make import)"
  BENTO_TAG=$("${bentoml[@]}" build --output tag "$root" | sed -n 's/^__tag__://p')
fi
echo "== containerizing $BENTO_TAG as $SERVICE_IMAGE:latest, $SERVICE_IMAGE:$VERSION on $BASE_IMAGE"
# Run from / : BentoML 1.4 refuses a dockerfile_template in its temporary build folder
# when that folder is outside the working directory (bentoml/BentoML#5566).
(cd / && "${bentoml[@]}" containerize "$BENTO_TAG" --backend "$CONTAINER_BACKEND" \
  "${bentoml_opts[@]}" -t "$SERVICE_IMAGE:latest" -t "$SERVICE_IMAGE:$VERSION")

if [[ -f deploy/ui/Dockerfile ]]; then
  echo "== building $UI_IMAGE:latest, $UI_IMAGE:$VERSION on $BASE_IMAGE"
  "$CONTAINER_BACKEND" build "${build_opts[@]}" -f deploy/ui/Dockerfile \
    -t "$UI_IMAGE:latest" -t "$UI_IMAGE:$VERSION" .
else
  echo "== no deploy/ui/Dockerfile: the UI image is not built"
fi
