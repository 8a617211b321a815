"""deploy/images.sh's choices before it builds anything (CI's image stage builds for real)."""

from __future__ import annotations

import os
import subprocess

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
    assert "deploy/bundle.py verify 'somewhere/churn-1.0'" in dry_run(
        "bundle-verify", "DIR=somewhere/churn-1.0"
    )
    assert "deploy/bundle.py make --out 'out' --version '1.1'" in dry_run(
        "bundle", "BUNDLE_OUT=out", "IMAGE_VERSION=1.1"
    )
