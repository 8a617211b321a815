"""deploy/images.sh's choices before it builds anything (CI's image stage builds for real)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from tests.deploy import DEPLOY


def test_several_platforms_need_a_builder_that_makes_manifest_lists() -> None:
    result = subprocess.run(
        [str(DEPLOY / "images.sh")],
        env={**os.environ, "CONTAINER_BACKEND": "nerdctl", "BENTO_TAG": "churn:any",
             "PLATFORMS": "linux/amd64,linux/arm64"},
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 2
    assert "CONTAINER_BACKEND=nerdctl: several platforms need docker (buildx) or podman" in (
        result.stderr
    )


def test_make_passes_the_platforms_and_the_bundle_to_check() -> None:
    def dry_run(*args: str) -> str:
        return subprocess.run(
            ["make", "-n", *args], cwd=DEPLOY.parent, capture_output=True, text=True, check=True
        ).stdout

    images = dry_run("images", "PLATFORMS=linux/amd64,linux/arm64", "PUSH=1")
    assert "PLATFORMS='linux/amd64,linux/arm64'" in images
    assert "PUSH='1'" in images
    assert "deploy/images.sh" in images
    assert "deploy/bundle.py verify 'somewhere/churn-1.0' --fingerprint 'f00d'" in dry_run(
        "bundle-verify", "DIR=somewhere/churn-1.0", "FINGERPRINT=f00d"
    )
    assert "deploy/bundle.py make --out 'out' --version '1.1'" in dry_run(
        "bundle", "BUNDLE_OUT=out", "IMAGE_VERSION=1.1"
    )


# deploy/images.sh itself, with podman's real store and commands, but each build a small
# image (FROM scratch: no base, no network) in place of the Bento's and the UI's: a
# `podman` on PATH that hands every other command to the real one, and a PYTHON whose
# `-m bentoml containerize` builds the service's small image.
BUILD = """#!/usr/bin/env bash
set -euo pipefail
platform=() tags=()
while (($#)); do
  case "$1" in
    -t) tags+=(-t "$2"); shift ;;
    --platform) platform=(--platform "$2"); shift ;;
    --opt) [[ "$2" == platform=* ]] && platform=(--platform "${2#platform=}"); shift ;;
  esac
  shift
done
exec /usr/bin/podman build -q "${platform[@]}" "${tags[@]}" "$CONTEXT/$WHICH" >/dev/null
"""
PODMAN = """#!/usr/bin/env bash
[[ "$1" == build ]] && { shift; WHICH=ui exec "$STANDIN/build" "$@"; }
exec /usr/bin/podman "$@"
"""
PYTHON = """#!/usr/bin/env bash
[[ "$1 $2 $3" == "-m bentoml containerize" ]] || exit 3
shift 3
WHICH=service exec "$STANDIN/build" "$@"
"""
ONE = ""
TWO = "linux/amd64,linux/arm64"


@pytest.mark.skipif(
    not Path("/usr/bin/podman").exists(),
    reason="no podman: CI's image stage installs it (`make ci-images`); here `apt-get install "
    "-y podman`",
)
@pytest.mark.parametrize("runs", [(ONE, TWO, TWO), (TWO, TWO, ONE, TWO), (ONE, ONE, TWO, ONE)])
def test_make_images_reruns_whatever_the_store_holds(tmp_path: Path, runs: tuple[str]) -> None:
    """A build of one platform (then CI's NAME:VERSION-ARCH tag) leaves churn-ui:latest,
    :1.0 and :1.0-amd64 on one image; a cached build of two gave the same image, and
    `podman untag churn-ui:latest` stripped all three names after it: the list could not
    be made ("does not resolve to an image ID", exit 125), until a third run."""
    standin = tmp_path / "bin"
    standin.mkdir()
    for name, text in (("build", BUILD), ("podman", PODMAN), ("python", PYTHON)):
        (standin / name).write_text(text)
        (standin / name).chmod(0o755)
    for which in ("service", "ui"):
        (tmp_path / which).mkdir()
        (tmp_path / which / "Dockerfile").write_text("FROM scratch\nCOPY x /x\n")
        (tmp_path / which / "x").write_text(f"the {which}, the same each time\n")
    storage = tmp_path / "storage.conf"
    storage.write_text(
        f'[storage]\ndriver = "vfs"\ngraphroot = "{tmp_path}/graph"\nrunroot = "{tmp_path}/run"\n'
    )
    env = {**os.environ, "CONTAINERS_STORAGE_CONF": str(storage), "STANDIN": str(standin),
           "CONTEXT": str(tmp_path), "PATH": f"{standin}:{os.environ['PATH']}",
           "PYTHON": str(standin / "python"), "CONTAINER_BACKEND": "podman",
           "BENTO_TAG": "churn:standin", "VERSION": "1.0"}  # fmt: skip

    def podman(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["/usr/bin/podman", *args], env=env, capture_output=True, text=True)

    for number, platforms in enumerate(runs, 1):
        result = subprocess.run([str(DEPLOY / "images.sh")], env={**env, "PLATFORMS": platforms},
                                capture_output=True, text=True, timeout=300)  # fmt: skip
        assert result.returncode == 0, (number, platforms, result.stdout + result.stderr)
        if platforms == ONE:  # as deploy/ci/images.sh names a one-platform build
            for image in ("churn-service", "churn-ui"):
                assert not podman("tag", f"{image}:1.0", f"{image}:1.0-amd64").returncode
        for image in ("churn-service", "churn-ui"):
            is_list = not podman("manifest", "exists", f"{image}:1.0").returncode
            assert is_list == (platforms == TWO), (number, image)
            assert not podman("image", "exists", f"{image}:latest").returncode
