"""The bundle of the real images, as `make bundle` writes it (CI's image stage).

deploy/ci/images.sh builds both images for every platform, bundles them, loads the
bundle into an empty image store with `make bundle-verify` and runs the loaded images;
then it runs these tests with
    CHURN_BUNDLE            the bundle's folder
    CHURN_BUNDLE_STORE      containers-storage.conf of the store it was loaded into
    CHURN_BUNDLE_PLATFORMS  the platforms built, e.g. linux/amd64,linux/arm64
Elsewhere they skip: they need the images, podman and root.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path
from typing import Any

import pytest

from tests.deploy import DEPLOY, bundle_module

BUNDLE = os.environ.get("CHURN_BUNDLE", "")
STORE = os.environ.get("CHURN_BUNDLE_STORE", "")
PLATFORMS = os.environ.get("CHURN_BUNDLE_PLATFORMS", "")
pytestmark = pytest.mark.skipif(
    not (BUNDLE and STORE and PLATFORMS),
    reason="needs CHURN_BUNDLE, CHURN_BUNDLE_STORE and CHURN_BUNDLE_PLATFORMS: a bundle of the "
    "real images and the store it was loaded into (`make ci-images` sets them)",
)
bundle = bundle_module()
NATIVE = {"x86_64": "amd64", "aarch64": "arm64"}.get(platform.machine(), platform.machine())


def podman_json(*args: str, store: str | None = None) -> Any:
    env = {k: v for k, v in os.environ.items() if k != "CONTAINERS_STORAGE_CONF"}
    if store:
        env["CONTAINERS_STORAGE_CONF"] = store
    result = subprocess.run(["podman", *args], capture_output=True, text=True, env=env)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def configs_by_platform(archive: Path, top: str) -> dict[str, str]:
    """platform -> image ID (its config's digest) of each image under `top` in an archive."""
    with tarfile.open(archive) as tar:

        def blob(digest: str) -> Any:
            member = tar.extractfile(f"blobs/sha256/{digest.removeprefix('sha256:')}")
            assert member is not None
            return json.load(member)

        root = blob(top)
        entries = root.get("manifests") or [{"digest": top, "platform": None}]
        found = {}
        for entry in entries:
            manifest = blob(entry["digest"])
            config = blob(manifest["config"]["digest"])
            found[f"{config['os']}/{config['architecture']}"] = manifest["config"]["digest"]
        return found


def fingerprint() -> str:
    """As the release announces it: `make bundle` writes it beside the bundle."""
    return Path(BUNDLE + ".fingerprint").read_text().strip()


@pytest.fixture(scope="module")
def images() -> list[dict[str, Any]]:
    return list(bundle.verify(Path(BUNDLE), fingerprint()))


def test_the_bundle_holds_every_platform_that_was_built(images: list[dict[str, Any]]) -> None:
    for image in images:
        assert sorted(image["platforms"]) == sorted(PLATFORMS.split(","))
        assert image["media_type"] == (
            "application/vnd.oci.image.index.v1+json" if "," in PLATFORMS
            else "application/vnd.oci.image.manifest.v1+json"
        )  # fmt: skip


def test_the_pinned_digests_are_the_images_own(images: list[dict[str, Any]]) -> None:
    """Under each pin are exactly the images that were built and run: the same image IDs
    (the digests of their configs) as NAME:VERSION-ARCH in the store they were built in."""
    for image in images:
        configs = configs_by_platform(Path(BUNDLE) / image["archive"], image["digest"])
        for name, config in configs.items():
            arch = name.split("/")[1]
            built = podman_json("image", "inspect", f"{image['name']}:{image['version']}-{arch}")
            assert f"sha256:{built[0]['Id']}" == config, (image["name"], arch)


def test_the_loaded_images_are_the_pinned_ones(images: list[dict[str, Any]]) -> None:
    """In the store `make bundle-verify` loaded them into, each pin finds this machine's
    image, and the tag it gave names the same image."""
    for image in images:
        pinned = f"{image['name']}@{image['digest']}"
        (loaded,) = podman_json("image", "inspect", pinned, store=STORE)
        (tagged,) = podman_json(
            "image", "inspect", f"{image['name']}:{image['version']}", store=STORE
        )
        assert tagged["Id"] == loaded["Id"]
        assert loaded["Architecture"] == NATIVE
        configs = configs_by_platform(Path(BUNDLE) / image["archive"], image["digest"])
        assert configs[f"linux/{NATIVE}"] == f"sha256:{loaded['Id']}"


def test_a_tampered_copy_of_the_real_bundle_is_refused(tmp_path: Path) -> None:
    """Every file shared by hard link but one archive, copied with one byte changed."""
    source = Path(BUNDLE)
    copy = tmp_path / source.name
    shutil.copytree(source, copy, copy_function=os.link)
    target = copy / "images" / "churn-service.oci.tar"
    target.unlink()
    shutil.copyfile(source / "images" / "churn-service.oci.tar", target)
    size = target.stat().st_size
    with target.open("r+b") as stream:
        stream.seek(size // 2)
        byte = stream.read(1)
        stream.seek(size // 2)
        stream.write(bytes([byte[0] ^ 0x01]))
    result = subprocess.run(
        [sys.executable, str(DEPLOY / "bundle.py"), "verify", str(copy),
         "--fingerprint", fingerprint()],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert result.returncode == 1
    assert "images/churn-service.oci.tar: changed (sha256 " in result.stderr
    assert "loaded" not in result.stdout  # refused before anything was loaded
