# Sourced by deploy/images.sh: the names podman's store gives the images it builds, so
# that `make images` reruns whatever the store holds (lists or plain images, from this
# checkout or another). tests/deploy/test_images.py runs these with real podman.

# release NAME:TAG...: each name freed for a build, whatever holds it: a manifest list
# is removed (its images stay), an image loses that one name. `podman untag IMAGE`
# alone strips every name of the image, also NAME:VERSION-ARCH, which a cached build
# gives the same image: a rerun then failed ("does not resolve to an image ID").
release() {
  local ref
  for ref in "$@"; do
    if podman manifest exists "$ref"; then
      podman manifest rm "$ref" >/dev/null
    elif podman image exists "$ref"; then
      podman untag "$ref" "$ref"
    fi
  done
}

# manifest NAME VERSION PLATFORM...: NAME:latest and NAME:VERSION become one list of
# NAME:VERSION-ARCH of each platform. A list and an image cannot share a name.
manifest() {
  local name=$1 version=$2 platform stored=$1
  shift 2
  # containers-storage: normalizes a name without a registry to docker.io's, where
  # podman keeps local builds under localhost/.
  [[ "${name%%/*}" == *[.:]* || "${name%%/*}" == localhost ]] && [[ "$name" == */* ]] \
    || stored=localhost/$name
  release "$name:latest" "$name:$version"
  podman manifest create "$name:latest" >/dev/null
  for platform in "$@"; do
    podman manifest add "$name:latest" "containers-storage:$stored:$version-${platform#*/}" >/dev/null
  done
  podman tag "$name:latest" "$name:$version"
  echo "== $name:latest and $name:$version list $*"
}
