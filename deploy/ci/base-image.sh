#!/usr/bin/env bash
# Builds localhost/python:3.11-slim, a stand-in for Docker Hub's python:3.11-slim made
# from Debian's packages, for machines that cannot pull images (CI here). Regions never
# need this: they build on the real python:3.11-slim.
#
#   deploy/ci/base-image.sh [TAG] [PLATFORMS]   (as root, podman and debootstrap installed)
#
# PLATFORMS (default: this machine's) is a comma-separated list such as
# linux/amd64,linux/arm64. Each platform's image is TAG-ARCH (built once, then kept);
# TAG is a manifest list of them, so that `podman build --platform linux/arm64` and a
# plain native build both find their own base under the one name. A foreign platform
# runs debootstrap's second stage under qemu-user-static (binfmt_misc, flag F).
set -euo pipefail

TAG=${1:-localhost/python:3.11-slim}
PLATFORMS=${2:-linux/$(podman info --format '{{.Host.Arch}}')}
SUITE=bookworm  # python3 is 3.11 in Debian 12, as in python:3.11-slim

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

build_one() {  # ARCH: the stand-in for one architecture, as $TAG-$ARCH
  local arch=$1 image="$TAG-$1" started=$SECONDS
  if podman image exists "$image"; then
    echo "base image $image exists"
    return
  fi
  echo "building the base image $image from Debian $SUITE ($arch; 1 to 4 minutes)"
  rm -rf "$work/rootfs"
  debootstrap --arch="$arch" --variant=minbase \
    --include=python3,python3-venv,python3-pip,ca-certificates \
    "$SUITE" "$work/rootfs" >"$work/debootstrap.log" 2>&1 \
    || { tail -n 30 "$work/debootstrap.log"; exit 1; }
  # The official image has no PEP 668 marker and has `python` on PATH.
  rm -f "$work/rootfs/usr/lib/python3.11/EXTERNALLY-MANAGED"
  ln -sf /usr/bin/python3 "$work/rootfs/usr/local/bin/python"
  tar -C "$work/rootfs" -c . | podman import -q --arch "$arch" - "localhost/debian-py:$SUITE-$arch" >/dev/null
  rm -rf "$work/rootfs"
  # HTTPS goes out through a proxy whose CA is in the host's trust store, which the build
  # mounts at /etc/ssl/certs: uv must use that store.
  mkdir -p "$work/context"
  cat >"$work/context/Containerfile" <<CONTAINERFILE
FROM localhost/debian-py:$SUITE-$arch
ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    UV_NATIVE_TLS=1 SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt
CONTAINERFILE
  BUILDAH_ISOLATION=chroot podman build --isolation chroot --network host -q \
    --platform "linux/$arch" -t "$image" "$work/context" >/dev/null
  echo "built $image in $((SECONDS - started)) s"
}

archs=()
for platform in ${PLATFORMS//,/ }; do
  archs+=("${platform#linux/}")
  build_one "${archs[-1]}"
done

# TAG lists exactly these platforms; a plain image of that name (an older stand-in) or a
# list of other platforms is replaced.
wanted=$(printf '%s\n' "${archs[@]}" | sort | tr '\n' ' ')
if podman manifest inspect "$TAG" >/dev/null 2>&1; then
  have=$(podman manifest inspect "$TAG" \
    | python3 -c 'import json, sys; print(" ".join(sorted(m["platform"]["architecture"] for m in json.load(sys.stdin)["manifests"])), end=" ")')
  if [[ "$have" == "$wanted" ]]; then
    echo "base image $TAG lists $wanted"
    exit 0
  fi
fi
# `podman rmi` of a list would remove the list's image for this machine, not the list.
podman manifest rm "$TAG" >/dev/null 2>&1 || podman untag "$TAG" "$TAG" >/dev/null 2>&1 || true
podman manifest create "$TAG" >/dev/null
for arch in "${archs[@]}"; do
  podman manifest add "$TAG" "containers-storage:$TAG-$arch" >/dev/null
done
echo "base image $TAG lists $wanted"
