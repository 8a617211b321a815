"""The region bundle (deploy/bundle.py): sums, pins, SBOMs, and what `verify` refuses.

These tests assemble bundles around small OCI archives written here, so that they run
without images; the real bundle of the real images is checked by
tests/deploy/test_real_bundle.py in CI's image stage (`make ci-images`).
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.deploy import DEPLOY, ROOT, bundle_module

bundle = bundle_module()
SERVICE, UI = "churn-service", "churn-ui"
BIN = Path(sys.executable).parent


def _blob(blobs: dict[str, bytes], content: bytes) -> dict[str, Any]:
    digest = "sha256:" + hashlib.sha256(content).hexdigest()
    blobs[digest] = content
    return {"digest": digest, "size": len(content)}


def oci_archive(path: Path, platforms: list[str], payload: bytes) -> str:
    """A small OCI archive as podman writes one: one image per platform, under an image
    index when there are several. Returns the top-level digest."""
    blobs: dict[str, bytes] = {}
    manifests = []
    for platform in platforms:
        os_name, arch = platform.split("/")
        layer = io.BytesIO()
        with tarfile.open(fileobj=layer, mode="w") as tar:
            info = tarfile.TarInfo("app/payload")
            content = payload + arch.encode()
            info.size = len(content)
            tar.addfile(info, io.BytesIO(content))
        config = json.dumps({"architecture": arch, "os": os_name, "rootfs": {}}).encode()
        manifest = {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                       **_blob(blobs, config)},
            "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                        **_blob(blobs, gzip.compress(layer.getvalue(), mtime=0))}],
        }  # fmt: skip
        descriptor = {"mediaType": manifest["mediaType"],
                      **_blob(blobs, json.dumps(manifest).encode())}  # fmt: skip
        manifests.append({**descriptor, "platform": {"architecture": arch, "os": os_name}})
    if len(manifests) == 1:
        top = {k: v for k, v in manifests[0].items() if k != "platform"}
    else:
        index = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
                 "manifests": manifests}  # fmt: skip
        top = {"mediaType": index["mediaType"], **_blob(blobs, json.dumps(index).encode())}
    layout = {
        "oci-layout": json.dumps({"imageLayoutVersion": "1.0.0"}).encode(),
        "index.json": json.dumps({"schemaVersion": 2, "manifests": [top]}).encode(),
        **{f"blobs/sha256/{d.removeprefix('sha256:')}": c for d, c in blobs.items()},
    }
    with tarfile.open(path, "w") as tar:
        for name, content in layout.items():
            info = tarfile.TarInfo(name)
            info.size = len(content)
            tar.addfile(info, io.BytesIO(content))
    return str(top["digest"])


MODEL = {
    "bento": "churn:test",
    "model": "churn_model:test",
    "booster_sha256": "0" * 64,
    "artifact_sha256": json.loads(
        (ROOT / "models" / "churn_prediction_model_v1_0.metadata.json").read_text("utf-8")
    )["artifact_sha256"],
}


def assemble(folder: Path, platforms: list[str]) -> Path:
    (folder / "images").mkdir(parents=True)
    images = []
    for name in (SERVICE, UI):
        archive = f"images/{name}.oci.tar"
        oci_archive(folder / archive, platforms, name.encode())
        images.append(bundle.describe(folder, name, "1.0", archive))
    bundle.assemble(folder, images, MODEL)
    return folder


@pytest.fixture(scope="module")
def made(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A bundle assembled by deploy/bundle.py around two-platform archives."""
    return assemble(tmp_path_factory.mktemp("bundle") / "churn-1.0", ["linux/amd64", "linux/arm64"])


@pytest.fixture
def copy(made: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(made, tmp_path / made.name))


def own_fingerprint(folder: Path) -> str:
    return hashlib.sha256((folder / "SHA256SUMS").read_bytes()).hexdigest()


def verify(
    folder: Path, fingerprint: str | None = None, *options: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """`make bundle-verify` without loading: the repository's copy of the checker, given
    the fingerprint of the folder's own SHA256SUMS unless told another (the tests of
    deeper checks forge the sums too: an operator given the forger's fingerprint)."""
    fingerprint = fingerprint or own_fingerprint(folder)
    return subprocess.run(
        [sys.executable, str(DEPLOY / "bundle.py"), "verify", str(folder),
         "--fingerprint", fingerprint, *(options or ["--no-load"])],
        capture_output=True, text=True, timeout=120, env=env,
    )  # fmt: skip


def resum(folder: Path) -> None:
    bundle.write_sums(folder)


def images_of(folder: Path) -> dict[str, dict[str, Any]]:
    return {image["name"]: image for image in bundle.read_images(folder)}


# --- what a bundle holds ------------------------------------------------------------


def test_the_bundle_verifies_with_its_own_copy_of_the_checker(made: Path) -> None:
    result = subprocess.run(
        [sys.executable, "bundle.py", "verify", ".", "--no-load",
         "--fingerprint", "sha256:" + own_fingerprint(made).upper()],
        cwd=made, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    for image in bundle.read_images(made):
        assert f"{image['name']}@{image['digest']} (linux/amd64, linux/arm64)" in result.stdout
    assert "SHA256SUMS has the fingerprint given" in result.stdout


def test_sha256sum_reads_the_sums_and_they_cover_every_file(made: Path) -> None:
    result = subprocess.run(["sha256sum", "-c", "--strict", "SHA256SUMS"], cwd=made,
                            capture_output=True, text=True)  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    listed = {line.split("  ", 1)[1] for line in (made / "SHA256SUMS").read_text().splitlines()}
    files = {p.relative_to(made).as_posix() for p in made.rglob("*") if p.is_file()}
    assert listed == files - {"SHA256SUMS"}
    assert {"images/churn-service.oci.tar", "images/churn-ui.oci.tar", "images.json",
            "compose.yaml", "compose.env.example", "k8s/kustomization.yaml",
            "sbom/churn-service.cdx.json", "sbom/churn-ui.cdx.json", "model/model.json",
            "README.md", "bundle.py"} <= listed  # fmt: skip


def test_every_image_reference_is_pinned_to_its_archive(made: Path) -> None:
    images = images_of(made)
    for image in images.values():
        assert bundle.read_archive(made / image["archive"]).digest == image["digest"]
    compose = (made / "compose.yaml").read_text()
    assert f"image: ${{SERVICE_IMAGE:-churn-service}}@{images[SERVICE]['digest']}" in compose
    assert f"image: ${{UI_IMAGE:-churn-ui}}@{images[UI]['digest']}" in compose
    assert "CHURN_VERSION" not in compose + (made / "compose.env.example").read_text()
    for name, path in ((SERVICE, "service-deployment.yaml"), (UI, "ui-deployment.yaml")):
        assert f"image: {name}@{images[name]['digest']}" in (made / "k8s" / path).read_text()
    kustomization = (made / "k8s" / "kustomization.yaml").read_text()
    assert "newTag" not in kustomization  # a tag there would override the digest
    assert kustomization.count("digest: sha256:") == 2


def test_the_pinned_manifests_are_valid_kubernetes(made: Path) -> None:
    manifests = sorted(str(p) for p in (made / "k8s").glob("*.yaml") if p.stem != "kustomization")
    result = subprocess.run([str(BIN / "kubernetes-validate"), "--strict", "-k", "1.30.0",
                             *manifests], capture_output=True, text=True)  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr


def _sbom_components(path: Path) -> dict[str, str]:
    document = json.loads(path.read_text())
    assert document["bomFormat"] == "CycloneDX"
    assert document["specVersion"] == "1.5"
    refs = {c["bom-ref"] for c in document["components"]}
    for dependency in document["dependencies"]:
        assert set(dependency.get("dependsOn", [])) <= refs
    return {bundle.normalize(c["name"]): c["version"] for c in document["components"]}


def _pinned(requirements: Path, names: set[str]) -> dict[str, str]:
    pins = re.findall(r"^([\w.-]+)==([^\s;]+)", requirements.read_text(), re.MULTILINE)
    return {bundle.normalize(n): v for n, v in pins if bundle.normalize(n) in names}


def test_the_sboms_list_what_each_image_installs(made: Path) -> None:
    service = _sbom_components(made / "sbom" / "churn-service.cdx.json")
    requirements = DEPLOY / "bento" / "requirements.txt"
    assert service == _pinned(requirements, bundle.installed_by(requirements))
    ui = _sbom_components(made / "sbom" / "churn-ui.cdx.json")
    requirements = DEPLOY / "ui" / "requirements.txt"
    assert ui == _pinned(requirements, bundle.installed_by(requirements))
    assert "streamlit" in ui
    assert "bentoml" not in ui  # the UI speaks plain HTTP (churn.clients.client)
    assert not {"xgboost-cpu", "scikit-learn"} & ui.keys()
    assert "cffi" not in ui  # PyPy only: not in the image


def test_the_readme_says_how_to_check_load_configure_run_and_roll_back(made: Path) -> None:
    readme = (made / "README.md").read_text()
    assert not re.search(r"@[A-Z_]+@", readme), "a placeholder left"
    headings = re.findall(r"^## \d\. (\w+)", readme, re.MULTILINE)
    assert headings == ["Check", "Load", "Configure", "Run", "Roll"]
    assert images_of(made)[SERVICE]["digest"] in readme
    assert MODEL["booster_sha256"] in readme
    assert "python3 bundle.py verify ." in readme
    # Step 1 checks with tools the operator trusts, against the fingerprint sent apart,
    # before the bundle's own bundle.py runs.
    check = readme.split("## 1. Check", 1)[1].split("## 2.", 1)[0]
    trusted = check.index('echo "$FINGERPRINT  SHA256SUMS" | sha256sum -c -')
    assert (
        trusted < check.index("sha256sum -c --strict SHA256SUMS") < check.index("bundle.py verify")
    )
    assert all(
        "--fingerprint" in line for line in readme.splitlines() if "bundle.py verify ." in line
    )


def test_the_tarball_holds_the_folder(made: Path, tmp_path: Path) -> None:
    folder = Path(shutil.copytree(made, tmp_path / "churn-1.0"))
    path = bundle.tarball(folder)
    assert (
        path.with_name(path.name + ".sha256").read_text().split()[0]
        == hashlib.sha256(path.read_bytes()).hexdigest()
    )
    (tmp_path / "unpacked").mkdir()
    with tarfile.open(path) as tar:
        tar.extractall(tmp_path / "unpacked", filter="data")
    assert verify(tmp_path / "unpacked" / "churn-1.0").returncode == 0


def test_a_single_platform_bundle_verifies(tmp_path: Path) -> None:
    folder = assemble(tmp_path / "churn-1.0", ["linux/arm64"])
    assert images_of(folder)[SERVICE]["platforms"] == ["linux/arm64"]
    result = verify(folder)
    assert result.returncode == 0, result.stderr


# --- what verify refuses ------------------------------------------------------------

TAMPERED = [
    "images/churn-service.oci.tar",
    "images/churn-ui.oci.tar",
    "images.json",
    "compose.yaml",
    "k8s/service-deployment.yaml",
    "k8s/kustomization.yaml",
    "sbom/churn-ui.cdx.json",
    "model/model.json",
    "README.md",
    "bundle.py",
]


@pytest.mark.parametrize("name", TAMPERED)
def test_a_changed_byte_is_refused_and_the_file_named(copy: Path, name: str) -> None:
    path = copy / name
    content = bytearray(path.read_bytes())
    content[len(content) // 2] ^= 0x01
    path.write_bytes(bytes(content))
    result = verify(copy)
    assert result.returncode == 1
    assert result.stderr.startswith(f"REFUSED {copy}:")
    assert f"{name}: changed (sha256 " in result.stderr
    assert result.stderr.count(": changed (sha256 ") == 1


def test_a_missing_or_added_file_is_refused(copy: Path) -> None:
    (copy / "model" / "model.json").unlink()
    (copy / "k8s" / "extra.yaml").write_text("kind: Secret\n")
    result = verify(copy)
    assert result.returncode == 1
    assert "model/model.json: missing" in result.stderr
    assert "k8s/extra.yaml: not in SHA256SUMS" in result.stderr


def test_a_changed_sums_file_is_refused_by_the_fingerprint(made: Path, copy: Path) -> None:
    """What the sums cannot catch (sums rewritten to match), the fingerprint does, first."""
    (copy / "README.md").write_text("run this instead\n")
    resum(copy)
    assert verify(copy).returncode == 0  # with the forger's own fingerprint
    result = verify(copy, own_fingerprint(made))
    assert result.returncode == 1
    assert result.stderr == (
        f"REFUSED {copy}:\nSHA256SUMS: fingerprint {own_fingerprint(copy)}, not the "
        f"{own_fingerprint(made)} announced with the release; this is not that release's "
        "bundle\n"
    )


def test_a_pin_that_is_not_the_archive_is_refused_even_with_new_sums(copy: Path) -> None:
    digest = images_of(copy)[SERVICE]["digest"]
    other = "sha256:" + hashlib.sha256(b"another image").hexdigest()
    compose = copy / "compose.yaml"
    compose.write_text(compose.read_text().replace(digest, other))
    resum(copy)
    result = verify(copy)
    assert result.returncode == 1
    assert re.search(rf"compose.yaml:\d+: churn-service pinned to {other}, its archive is "
                     rf"{digest}", result.stderr)  # fmt: skip


def test_an_unpinned_reference_is_refused(copy: Path) -> None:
    path = copy / "k8s" / "ui-deployment.yaml"
    digest = images_of(copy)[UI]["digest"]
    path.write_text(path.read_text().replace(f"churn-ui@{digest}", "churn-ui:1.0"))
    resum(copy)
    result = verify(copy)
    assert result.returncode == 1
    assert re.search(r"k8s/ui-deployment.yaml:\d+: churn-ui is not pinned by digest",
                     result.stderr)  # fmt: skip


def test_another_archive_under_the_same_name_is_refused_even_with_new_sums(copy: Path) -> None:
    archive = copy / "images" / "churn-ui.oci.tar"
    new = oci_archive(archive, ["linux/amd64", "linux/arm64"], b"something else")
    resum(copy)
    result = verify(copy)
    assert result.returncode == 1
    pinned = images_of(copy)[UI]["digest"]
    assert f"images/churn-ui.oci.tar: holds {new}, but images.json pins churn-ui to {pinned}" in (
        result.stderr
    )


def _rewrite_member(archive: Path, name: str, change: Callable[[bytes], bytes]) -> None:
    with tarfile.open(archive) as tar:
        members = [(m, tar.extractfile(m).read()) for m in tar.getmembers()]  # type: ignore[union-attr]
    with tarfile.open(archive, "w") as tar:
        for member, content in members:
            if member.name.startswith(name):
                content = change(content)
                member.size = len(content)
            tar.addfile(member, io.BytesIO(content))


def test_a_changed_layer_inside_an_archive_is_refused_even_with_new_sums(copy: Path) -> None:
    archive = copy / "images" / "churn-service.oci.tar"
    with tarfile.open(archive) as tar:
        layers = [
            member.name
            for member in tar.getmembers()
            if member.name.startswith("blobs/") and tar.extractfile(member).read(2) == b"\x1f\x8b"  # type: ignore[union-attr]
        ]
    assert layers
    _rewrite_member(archive, layers[0], lambda content: content[:-1] + bytes([content[-1] ^ 1]))
    resum(copy)
    result = verify(copy)
    assert result.returncode == 1
    assert f"images/churn-service.oci.tar: blob {layers[0][13:25]}" in (result.stderr)


def test_an_archive_outside_the_sums_is_refused_even_with_new_sums(copy: Path) -> None:
    """images.json may only name archives that SHA256SUMS vouches for."""
    listing = json.loads((copy / "images.json").read_text())
    listing["images"][0]["archive"] = "../elsewhere.oci.tar"
    (copy / "images.json").write_text(json.dumps(listing))
    resum(copy)
    result = verify(copy)
    assert result.returncode == 1
    assert "images.json: image 1 lacks a name, version, archive listed in SHA256SUMS" in (
        result.stderr
    )


# --- nothing loaded before it is trusted (issue 27) -----------------------------------


def fake_engine(tmp_path: Path) -> tuple[dict[str, str], Path]:
    """A `podman` on PATH that only writes down how it was called: the proof that verify
    called no engine (the real podman loads in CI's image stage, test_real_bundle.py)."""
    calls = tmp_path / "engine-calls"
    engine = tmp_path / "bin" / "podman"
    engine.parent.mkdir()
    engine.write_text(f'#!/bin/sh\necho "$@" >> {calls}\ncase "$*" in *inspect*) echo 0f;; esac\n')
    engine.chmod(0o755)
    return {"PATH": f"{engine.parent}:/usr/bin:/bin"}, calls


def test_verify_needs_the_fingerprint_and_compares_it_before_anything_else(
    made: Path, copy: Path, tmp_path: Path
) -> None:
    result = subprocess.run(
        [sys.executable, str(DEPLOY / "bundle.py"), "verify", str(made)],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 2
    assert "the following arguments are required: --fingerprint" in result.stderr
    make = subprocess.run(["make", "-s", "bundle-verify", f"DIR={made}"], cwd=ROOT,
                          capture_output=True, text=True, timeout=60)  # fmt: skip
    assert make.returncode != 0
    assert "--fingerprint" in make.stderr
    # A forged bundle, sums rewritten: refused on the fingerprint, and no engine called.
    (copy / "images.json").write_text("{}")
    (copy / "k8s" / "extra.yaml").write_text("kind: Secret\n")
    resum(copy)
    env, calls = fake_engine(tmp_path)
    result = verify(copy, own_fingerprint(made), "--engine", "podman", env=env)
    assert result.returncode == 1
    assert result.stderr.splitlines()[1].startswith("SHA256SUMS: fingerprint ")
    assert len(result.stderr.splitlines()) == 2  # nothing else was read
    assert not calls.exists()
    # The genuine bundle, its fingerprint given: loaded and tagged (the engine is called).
    assert verify(made, own_fingerprint(made), "--engine", "podman", env=env).returncode == 0
    assert "load -q -i" in calls.read_text()


def _forge_image_name(folder: Path, name: str, version: str) -> None:
    listing = json.loads((folder / "images.json").read_text())
    listing["images"][1].update(name=name, version=version)
    (folder / "images.json").write_text(json.dumps(listing))
    resum(folder)


def test_only_the_bundles_own_image_names_are_accepted(copy: Path, tmp_path: Path) -> None:
    _forge_image_name(copy, "localhost/payments", "2.3")
    env, calls = fake_engine(tmp_path)
    result = verify(copy, None, "--engine", "podman", env=env)
    assert result.returncode == 1
    assert "images.json: names churn-service, localhost/payments; a bundle holds " in (
        result.stderr
    )
    assert not calls.exists()
    _forge_image_name(copy, "churn-service", "1.0")  # the service twice, no UI
    assert "images.json: names churn-service, churn-service" in verify(copy).stderr


Extra = Callable[[tarfile.TarFile, dict[str, bytes]], None]


def _rewrite_archive(archive: Path, extra: Extra) -> None:
    with tarfile.open(archive) as tar:
        members = {m.name: tar.extractfile(m).read() for m in tar.getmembers()}  # type: ignore[union-attr]
    with tarfile.open(archive, "w") as tar:
        for name, content in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(content)
            tar.addfile(info, io.BytesIO(content))
        extra(tar, members)


def _link(
    name: str, target: str, kind: bytes
) -> Callable[[tarfile.TarFile, dict[str, bytes]], None]:
    def add(tar: tarfile.TarFile, members: dict[str, bytes]) -> None:
        info = tarfile.TarInfo(name)
        info.type, info.linkname = kind, target
        tar.addfile(info)

    return add


def _twin(name: str, content: bytes) -> Extra:
    def add(tar: tarfile.TarFile, members: dict[str, bytes]) -> None:
        info = tarfile.TarInfo(name)
        info.size = len(content)
        tar.addfile(info, io.BytesIO(content))

    return add


SMUGGLED = json.dumps({"schemaVersion": 2, "manifests": []}).encode()


@pytest.mark.parametrize(
    ("extra", "refusal"),
    [
        # podman follows the later symlink of the same name; verify read the first.
        (_link("index.json", "blobs/sha256/smuggled", tarfile.SYMTYPE),
         "the member index.json is there twice"),
        (_link("./index.json", "oci-layout", tarfile.LNKTYPE),
         "the member index.json is there twice"),
        (_twin("index.json", SMUGGLED), "the member index.json is there twice"),
        (_link("blobs/sha256/" + "0" * 64, "/etc/passwd", tarfile.SYMTYPE),
         f"the member blobs/sha256/{'0' * 64} is a link or special file"),
        (_link("extra", "index.json", tarfile.LNKTYPE), "the member extra is a link"),
        # A docker-archive's manifest, which a loader may read instead of index.json.
        (_twin("manifest.json", b'[{"RepoTags": ["localhost/payments:2.3"]}]'),
         "the member manifest.json is not part of an OCI image layout"),
    ],
)  # fmt: skip
def test_an_archive_with_twin_link_or_foreign_members_is_refused(
    copy: Path,
    tmp_path: Path,
    extra: Extra,
    refusal: str,
) -> None:
    _rewrite_archive(copy / "images" / "churn-ui.oci.tar", extra)
    resum(copy)
    env, calls = fake_engine(tmp_path)
    result = verify(copy, None, "--engine", "podman", env=env)
    assert result.returncode == 1
    assert f"images/churn-ui.oci.tar: {refusal}" in result.stderr
    assert not calls.exists()


def test_an_archive_naming_another_image_is_refused(copy: Path) -> None:
    archive = copy / "images" / "churn-ui.oci.tar"

    def annotate(name: str) -> None:
        with tarfile.open(archive) as tar:
            members = {m.name: tar.extractfile(m).read() for m in tar.getmembers()}  # type: ignore[union-attr]
        index = json.loads(members["index.json"])
        index["manifests"][0]["annotations"] = {"org.opencontainers.image.ref.name": name}
        members["index.json"] = json.dumps(index).encode()
        with tarfile.open(archive, "w") as tar:
            for member, content in members.items():
                info = tarfile.TarInfo(member)
                info.size = len(content)
                tar.addfile(info, io.BytesIO(content))
        resum(copy)

    annotate("churn-ui:1.0")  # as podman writes it
    assert verify(copy).returncode == 0
    annotate("localhost/payments:2.3")  # podman load would tag it so
    result = verify(copy)
    assert result.returncode == 1
    assert "images/churn-ui.oci.tar: names itself localhost/payments:2.3, not churn-ui:1.0" in (
        result.stderr
    )


def test_a_file_listed_twice_is_refused_even_when_one_line_is_right(copy: Path) -> None:
    sums = copy / "SHA256SUMS"
    lines = sums.read_text().splitlines(keepends=True)
    readme = next(line for line in lines if line.endswith("  README.md\n"))
    (copy / "README.md").write_text("run this instead\n")
    right = f"{hashlib.sha256(b'run this instead' + bytes([10])).hexdigest()}  README.md\n"
    for forged in ([*lines, right], [right, *lines], [*lines, readme]):
        sums.write_text("".join(forged))
        result = verify(copy)
        assert result.returncode == 1
        assert re.search(r"SHA256SUMS: line \d+ lists README.md again", result.stderr)


@pytest.mark.parametrize("name", ["./README.md", "k8s//x.yaml", "images/../README.md"])
def test_a_path_spelt_another_way_is_refused(copy: Path, name: str) -> None:
    with (copy / "SHA256SUMS").open("a") as sums:
        sums.write(f"{'0' * 64}  {name}\n")
    result = verify(copy)
    assert result.returncode == 1
    assert "is not '<sha256>  <relative path>'" in result.stderr


def test_unlisted_fifos_links_and_empty_folders_are_refused(copy: Path) -> None:
    os.mkfifo(copy / "k8s" / "pipe.yaml")
    (copy / "empty").mkdir()
    (copy / "sbom" / "nested" / "deeper").mkdir(parents=True)
    (copy / "k8s" / "link.yaml").symlink_to("service-deployment.yaml")
    result = verify(copy)
    assert result.returncode == 1
    assert "k8s/pipe.yaml (not a regular file): not in SHA256SUMS" in result.stderr
    assert "empty (a folder): not in SHA256SUMS" in result.stderr
    assert "sbom/nested (a folder): not in SHA256SUMS" in result.stderr
    assert "k8s/link.yaml (a link): not in SHA256SUMS" in result.stderr
