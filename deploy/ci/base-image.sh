#!/usr/bin/env bash
# Builds localhost/python:3.11-slim, a stand-in for Docker Hub's python:3.11-slim made
# from Debian's packages, for machines that cannot pull images (CI here). Regions never
# need this: they build on the real python:3.11-slim. Skips if the image exists.
#
#   deploy/ci/base-image.sh [TAG]        (as root, with podman and debootstrap installed)
set -euo pipefail

TAG=${1:-localhost/python:3.11-slim}
SUITE=bookworm  # python3 is 3.11 in Debian 12, as in python:3.11-slim

if podman image exists "$TAG"; then
  echo "base image $TAG exists"
  exit 0
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
echo "building the base image $TAG from Debian $SUITE (about a minute)"
debootstrap --variant=minbase \
  --include=python3,python3-venv,python3-pip,ca-certificates \
  "$SUITE" "$work/rootfs" >"$work/debootstrap.log" 2>&1 \
  || { tail -n 30 "$work/debootstrap.log"; exit 1; }
# The official image has no PEP 668 marker and has `python` on PATH.
rm -f "$work/rootfs/usr/lib/python3.11/EXTERNALLY-MANAGED"
ln -sf /usr/bin/python3 "$work/rootfs/usr/local/bin/python"
tar -C "$work/rootfs" -c . | podman import - localhost/debian-py:"$SUITE" >/dev/null
# HTTPS goes out through a proxy whose CA is in the host's trust store, which the build
# mounts at /etc/ssl/certs: uv must use that store.
mkdir "$work/context"
cat >"$work/context/Containerfile" <<CONTAINERFILE
FROM localhost/debian-py:$SUITE
ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    UV_NATIVE_TLS=1 SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt
CONTAINERFILE
BUILDAH_ISOLATION=chroot podman build --isolation chroot --network host -q \
  -t "$TAG" "$work/context" >/dev/null
echo "built $TAG"
