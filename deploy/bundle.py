#!/usr/bin/env python3
"""A region bundle: both images as OCI archives, pinned deployment files, SBOMs, sums.

    deploy/bundle.py make [--out build/bundle]      `make bundle`: podman, uv, the venv
    python3 bundle.py verify DIR --fingerprint SHA256 [--no-load]
                                                    `make bundle-verify DIR=... FINGERPRINT=...`

`verify` needs nothing but Python 3 and podman or docker, so the bundle carries this
file: a region checks a bundle with the bundle's own copy (once `sha256sum -c` has
vouched for it), and the repository's copy checks it the same way. Nothing is loaded,
tagged or run before every byte is checked against the fingerprint (the SHA-256 of
SHA256SUMS) that the operator received by another channel. deploy/README.md ("A region
bundle") describes the layout.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

SUMS = "SHA256SUMS"
IMAGES = "images.json"
CHUNK = 1 << 20
SMALL_BLOB = 1 << 16  # manifests, indexes and configs are kept to follow their references
INDEX_TYPES = {
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
}
DIGEST = re.compile(r"sha256:[0-9a-f]{64}")
# The bundle's own images, the only names it may load or tag (podman reads a short name
# as localhost/NAME).
IMAGE_NAMES = ("churn-service", "churn-ui")
MAX_SUMS_BYTES = 1 << 20
# An OCI archive's members, as podman writes one; nothing else (no docker-archive
# manifest.json or repositories, which `load` would read instead, no links, no twins).
ARCHIVE_FOLDERS = {"blobs", "blobs/sha256"}
ARCHIVE_FILES = re.compile(r"oci-layout|index\.json|blobs/sha256/[0-9a-f]{64}")
REF_NAME = "org.opencontainers.image.ref.name"


class Refused(Exception):
    """The bundle is not what it says it is; the message names the file and the fault."""


@dataclass(frozen=True)
class Archive:
    """What an OCI archive holds: its one top-level digest and the platforms under it."""

    digest: str
    media_type: str
    platforms: tuple[str, ...]
    ref_name: str | None = None


# --- reading -----------------------------------------------------------------------


def sha256_of(stream: IO[bytes]) -> str:
    digest = hashlib.sha256()
    while chunk := stream.read(CHUNK):
        digest.update(chunk)
    return digest.hexdigest()


def sums_bytes(folder: Path) -> bytes:
    """SHA256SUMS's bytes, read once: what the fingerprint is taken of is what is parsed."""
    path = folder / SUMS
    if path.is_symlink() or not path.is_file():
        raise Refused(f"{SUMS}: missing or not a regular file; this is not a bundle")
    with path.open("rb") as stream:
        content = stream.read(MAX_SUMS_BYTES + 1)
    if len(content) > MAX_SUMS_BYTES:
        raise Refused(f"{SUMS}: larger than {MAX_SUMS_BYTES} bytes; this is not a bundle")
    return content


def parse_sums(content: bytes) -> dict[str, str]:
    """SHA256SUMS as `sha256sum` writes it: path -> hex digest. A path listed twice is
    refused, even with the same sum: `sha256sum -c` and a reader that keeps the last line
    would disagree about which line vouches for the file."""
    sums: dict[str, str] = {}
    try:
        text = content.decode("utf-8")
    except UnicodeDecodeError as error:
        raise Refused(f"{SUMS}: not UTF-8 ({error})") from error
    lines = text.split("\n")
    for number, line in enumerate(lines[:-1] if lines[-1] == "" else lines, 1):
        match = re.fullmatch(r"([0-9a-f]{64}) [ *]([^\\\r]+)", line)
        name = match[2] if match else ""
        if not match or not _canonical(name):
            raise Refused(f"{SUMS}: line {number} is not '<sha256>  <relative path>'")
        if name in sums:
            raise Refused(f"{SUMS}: line {number} lists {name} again")
        sums[name] = match[1]
    return sums


def _canonical(name: str) -> bool:
    parts = name.split("/")
    return name not in ("", SUMS) and all(part not in ("", ".", "..") for part in parts)


def read_sums(folder: Path) -> dict[str, str]:
    return parse_sums(sums_bytes(folder))


def bundle_files(folder: Path) -> set[str]:
    return {path.relative_to(folder).as_posix() for path in folder.rglob("*")} - {SUMS}


def check_sums(folder: Path, sums: dict[str, str]) -> list[str]:
    """Every file listed matches its sum; nothing else is there: no unlisted file, link,
    FIFO, device or folder (a folder is there only to hold listed files)."""
    problems = []
    for name, expected in sums.items():
        path = folder / name
        if path.is_symlink() or not path.is_file():
            problems.append(f"{name}: missing (listed in {SUMS})")
            continue
        with path.open("rb") as stream:
            actual = sha256_of(stream)
        if actual != expected:
            problems.append(f"{name}: changed (sha256 {actual}, {SUMS} says {expected})")
    holding = {parent for name in sums for parent in _parents(name)}
    for name in sorted(bundle_files(folder) - sums.keys()):
        path = folder / name
        if name in holding and path.is_dir() and not path.is_symlink():
            continue
        kind = "" if path.is_file() and not path.is_symlink() else f" ({_kind(path)})"
        problems.append(f"{name}{kind}: not in {SUMS} (added after the bundle was made)")
    return problems


def _parents(name: str) -> list[str]:
    parts = name.split("/")
    return ["/".join(parts[:i]) for i in range(1, len(parts))]


def _kind(path: Path) -> str:
    if path.is_symlink():
        return "a link"
    if path.is_dir():
        return "a folder"
    return "not a regular file"


def _members(archive: tarfile.TarFile, label: str) -> Iterator[tuple[str, tarfile.TarInfo]]:
    """The archive's files, each refused unless it is one of an OCI layout's, there once,
    a regular file: podman would follow a later link or read a later twin of a member
    checked here, or read the archive as another format."""
    seen: set[str] = set()
    for member in archive:
        name = member.name.removeprefix("./").rstrip("/")
        if name in seen:
            raise Refused(f"{label}: the member {name} is there twice")
        seen.add(name)
        if member.isdir() and name in ARCHIVE_FOLDERS:
            continue
        if not member.isreg():
            raise Refused(f"{label}: the member {name} is a link or special file")
        if not ARCHIVE_FILES.fullmatch(name):
            raise Refused(f"{label}: the member {name} is not part of an OCI image layout")
        yield name, member


def read_archive(path: Path, label: str | None = None) -> Archive:
    """The archive's top-level digest, after checking that every blob hashes to its name
    and that every manifest, config and layer the top level reaches is there."""
    blobs: set[str] = set()
    small: dict[str, bytes] = {}
    index: dict[str, Any] | None = None
    label = label or path.name
    try:
        with tarfile.open(path, "r:") as archive:
            for name, member in _members(archive, label):
                stream = archive.extractfile(member)
                assert stream is not None  # a regular file
                if name == "index.json":
                    index = json.loads(stream.read())
                    continue
                match = re.fullmatch(r"blobs/sha256/([0-9a-f]{64})", name)
                if not match:
                    continue
                content = stream.read() if member.size <= SMALL_BLOB else None
                actual = (
                    hashlib.sha256(content).hexdigest() if content is not None
                    else sha256_of(stream)
                )  # fmt: skip
                if actual != match[1]:
                    raise Refused(f"{label}: blob {match[1][:12]} hashes to {actual[:12]}")
                blobs.add(f"sha256:{actual}")
                if content is not None:
                    small[f"sha256:{actual}"] = content
    except (tarfile.TarError, OSError, EOFError) as error:
        raise Refused(f"{label}: not a readable OCI archive ({error})") from error
    except json.JSONDecodeError as error:
        raise Refused(f"{label}: index.json is not JSON ({error})") from error
    if index is None or len(index.get("manifests", [])) != 1:
        raise Refused(f"{label}: index.json must name exactly one image or image list")
    (top,) = index["manifests"]
    # What a loader would tag the image with: only the name `images.json` gives it.
    if index.get("annotations") or set(top.get("annotations") or {}) - {REF_NAME}:
        raise Refused(f"{label}: index.json carries annotations other than {REF_NAME}")

    def document(digest: str, parent: str) -> dict[str, Any]:
        if digest not in blobs:
            raise Refused(f"{label}: {parent} refers to {digest}, which is not in the archive")
        if digest not in small:
            raise Refused(f"{label}: {digest} is too large to be a manifest")
        parsed: dict[str, Any] = json.loads(small[digest])
        return parsed

    root = document(top["digest"], "index.json")
    if (root.get("mediaType") or top.get("mediaType")) in INDEX_TYPES:
        entries = root["manifests"]
        parent = top["digest"]
    else:  # one image: its platform is in its config
        config = document(root["config"]["digest"], top["digest"])
        entries = [{**top, "platform": config}]
        parent = "index.json"
    platforms = []
    for entry in entries:
        manifest = document(entry["digest"], parent)
        for blob in [manifest["config"], *manifest.get("layers", [])]:
            if blob["digest"] not in blobs:
                raise Refused(f"{label}: {entry['digest']} needs {blob['digest']}, "
                              "not in the archive")  # fmt: skip
        platform = entry.get("platform", {})
        platforms.append(f"{platform.get('os')}/{platform.get('architecture')}")
    ref_name = (top.get("annotations") or {}).get(REF_NAME)
    return Archive(
        top["digest"], str(top.get("mediaType", "")), tuple(platforms), ref_name and str(ref_name)
    )


def read_images(folder: Path, listed: dict[str, str] | None = None) -> list[dict[str, Any]]:
    """images.json, each entry checked for shape: a name, a version, an archive listed in
    SHA256SUMS, a sha256 digest and its platforms; and the names the bundle's own, each
    once (a bundle naming another image would move that image's tag onto its own)."""
    try:
        images: list[dict[str, Any]] = json.loads((folder / IMAGES).read_text("utf-8"))["images"]
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise Refused(f"{IMAGES}: unreadable ({error})") from error
    listed = read_sums(folder) if listed is None else listed
    names = [image.get("name") if isinstance(image, dict) else None for image in images]
    if sorted(map(str, names)) != sorted(IMAGE_NAMES):
        raise Refused(f"{IMAGES}: names {', '.join(map(str, names))}; a bundle holds "
                      f"{' and '.join(IMAGE_NAMES)}, once each, and no other image")  # fmt: skip
    for number, image in enumerate(images, 1):
        fine = (
            isinstance(image, dict)
            and re.fullmatch(r"[a-z0-9][a-z0-9._/-]*", str(image.get("name")))
            and re.fullmatch(r"[\w][\w.-]*", str(image.get("version")))
            and image.get("archive") in listed
            and DIGEST.fullmatch(str(image.get("digest")))
            and isinstance(image.get("platforms"), list)
        )
        if not fine:
            raise Refused(f"{IMAGES}: image {number} lacks a name, version, archive listed in "
                          f"{SUMS}, sha256 digest or platforms")  # fmt: skip
    return images


def pins_in(text: str, names: Iterable[str]) -> Iterator[tuple[int, str, str | None]]:
    """(line, image name, pinned digest or None) for each image reference in a Compose
    file or Kubernetes manifest: `image:` lines, and kustomization's `name:`/`digest:`."""
    pattern = "|".join(re.escape(name) for name in names)
    current = None
    for number, line in enumerate(text.splitlines(), 1):
        stripped = line.split("#", 1)[0].strip()
        image = re.fullmatch(r"(?:- )?image:\s*(\S+)", stripped)
        if image:
            ref = image[1].strip("\"'")
            named = re.search(rf"(?:^|[/-]|:-)({pattern})(?:}})?(?:@|:|$)", ref)
            if named:
                pinned = re.search(r"@(sha256:[0-9a-f]{64})$", ref)
                yield number, named[1], pinned[1] if pinned else None
            continue
        entry = re.fullmatch(rf"- name:\s*({pattern})", stripped)
        if entry:
            current = entry[1]
            continue
        digest = re.fullmatch(r"digest:\s*(\S+)", stripped)
        if digest and current:
            yield number, current, digest[1].strip("\"'")
        elif stripped.startswith("- "):
            current = None
        elif current and re.fullmatch(r"newTag:.*", stripped):
            yield number, current, None  # a tag would override the digest


def check_pins(folder: Path, images: list[dict[str, Any]]) -> list[str]:
    """Each image is pinned, by its archive's digest, in the Compose file and in the
    Kubernetes manifests, and nothing there names it any other way."""
    expected = {image["name"]: image["digest"] for image in images}
    problems = []
    places = {"compose.yaml": [folder / "compose.yaml"], "k8s": sorted(folder.glob("k8s/*.yaml"))}
    for place, paths in places.items():
        seen = set()
        for path in paths:
            name = path.relative_to(folder).as_posix()
            if not path.is_file():
                problems.append(f"{name}: missing")
                continue
            for line, image, pinned in pins_in(path.read_text("utf-8"), expected):
                seen.add(image)
                if pinned is None:
                    problems.append(f"{name}:{line}: {image} is not pinned by digest")
                elif pinned != expected[image]:
                    problems.append(
                        f"{name}:{line}: {image} pinned to {pinned}, its archive is "
                        f"{expected[image]}"
                    )
        for image in sorted(expected.keys() - seen):
            problems.append(f"{place}: {image} is not used")
    return problems


def check_archives(folder: Path, images: list[dict[str, Any]]) -> list[str]:
    problems = []
    for image in images:
        try:
            archive = read_archive(folder / image["archive"], image["archive"])
        except Refused as refused:
            problems.append(str(refused))
            continue
        if archive.digest != image["digest"]:
            problems.append(
                f"{image['archive']}: holds {archive.digest}, but {IMAGES} pins "
                f"{image['name']} to {image['digest']}"
            )
        if archive.ref_name not in (None, f"{image['name']}:{image['version']}"):
            problems.append(
                f"{image['archive']}: names itself {archive.ref_name}, not "
                f"{image['name']}:{image['version']}"
            )
        if sorted(archive.platforms) != sorted(image["platforms"]):
            problems.append(
                f"{image['archive']}: holds {', '.join(archive.platforms)}, {IMAGES} "
                f"says {', '.join(image['platforms'])}"
            )
    return problems


def fingerprint(folder: Path) -> str:
    """The bundle's identity: the SHA-256 of its SHA256SUMS, to compare with the one the
    release announced by another channel (a changed SHA256SUMS changes it)."""
    return hashlib.sha256(sums_bytes(folder)).hexdigest()


def fingerprint_argument(text: str) -> str:
    """A fingerprint as the operator types it: 64 hex digits, "sha256:" allowed."""
    value = text.strip().lower().removeprefix("sha256:")
    if not re.fullmatch(r"[0-9a-f]{64}", value):
        raise argparse.ArgumentTypeError("a fingerprint is the 64 hex digits of a SHA-256")
    return value


def verify(folder: Path, expected: str) -> list[dict[str, Any]]:
    """Refuses (naming each file at fault) unless SHA256SUMS is the one whose SHA-256 the
    operator received (`expected`), compared first, and every byte is as it says."""
    content = sums_bytes(folder)
    actual = hashlib.sha256(content).hexdigest()
    if actual != expected:
        raise Refused(
            f"{SUMS}: fingerprint {actual}, not the {expected} announced with the release; "
            "this is not that release's bundle"
        )
    sums = parse_sums(content)
    problems = check_sums(folder, sums)
    if problems:
        raise Refused("\n".join(problems))
    images = read_images(folder, sums)
    problems = check_archives(folder, images) + check_pins(folder, images)
    if problems:
        raise Refused("\n".join(problems))
    return images


# --- loading -----------------------------------------------------------------------


def engine_of(choice: str | None) -> str:
    for engine in [choice] if choice else ["podman", "docker"]:
        if shutil.which(engine):
            return engine
    raise SystemExit(f"bundle: {choice or 'podman or docker'} is not installed")


def run(*command: str) -> str:
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode:
        raise SystemExit(f"bundle: {' '.join(command)} failed:\n{result.stderr.strip()}")
    return result.stdout


def load(folder: Path, images: list[dict[str, Any]], engine: str) -> list[str]:
    """Loads each archive (this machine's platform) and tags it NAME:VERSION. Returns
    the pinned references, checked to resolve to what was loaded."""
    references = []
    for image in images:
        run(engine, "load", "-q", "-i", str(folder / image["archive"]))
        pinned = f"{image['name']}@{image['digest']}"
        found = subprocess.run(
            [engine, "image", "inspect", "--format", "{{.Id}}", pinned],
            capture_output=True, text=True,
        )  # fmt: skip
        if found.returncode:
            raise SystemExit(
                f"bundle: {engine} loaded {image['archive']} but cannot find {pinned}: "
                f"{found.stderr.strip()}. Docker needs its containerd image store to keep "
                "the digests of loaded images (deploy/README.md); podman keeps them."
            )
        run(engine, "tag", found.stdout.strip(), f"{image['name']}:{image['version']}")
        references.append(pinned)
    return references


# --- making ------------------------------------------------------------------------


def _podman_json(*args: str) -> Any:
    return json.loads(run("podman", *args))


def is_list(reference: str) -> bool:
    result = subprocess.run(
        ["podman", "manifest", "inspect", reference], capture_output=True, text=True
    )
    return result.returncode == 0 and "manifests" in json.loads(result.stdout or "{}")


def export(reference: str, path: Path) -> None:
    """The image (or every platform of the list) as an OCI archive named `reference`."""
    target = f"oci-archive:{path}:{reference}"
    if is_list(reference):
        run("podman", "manifest", "push", "--all", "--format", "oci", "--quiet", reference, target)
    else:
        run("podman", "push", "--format", "oci", "--quiet", reference, target)


def platform_images(reference: str) -> list[str]:
    """The image IDs behind a name: each platform's for a list, else the image's own."""
    if not is_list(reference):
        return [str(_podman_json("image", "inspect", reference)[0]["Id"])]
    repository = reference.rpartition(":")[0]
    return [
        str(_podman_json("image", "inspect", f"{repository}@{entry['digest']}")[0]["Id"])
        for entry in _podman_json("manifest", "inspect", reference)["manifests"]
    ]


def model_record(reference: str) -> dict[str, Any]:
    """The model as the service image holds it: the Bento's model folder in each platform's
    image, whose booster file must match the digest its metadata records, and match
    across platforms."""
    import yaml  # type: ignore[import-untyped]

    records = []
    for image in platform_images(reference):
        root = Path(run("podman", "image", "mount", image).strip())
        try:
            bento = yaml.safe_load((root / "home/bentoml/bento/bento.yaml").read_text("utf-8"))
            (model_yaml,) = (root / "home/bentoml/bento/models").glob("*/*/model.yaml")
            model = yaml.safe_load(model_yaml.read_text("utf-8"))
            with (model_yaml.parent / "booster.ubj").open("rb") as stream:
                stored = sha256_of(stream)
        finally:
            run("podman", "image", "unmount", image)
        metadata = dict(model["metadata"])
        if stored != metadata.get("booster_sha256"):
            raise SystemExit(f"bundle: the model in {reference} ({image[:12]}) does not match "
                             f"its recorded digest")  # fmt: skip
        records.append({
            "bento": f"{bento['name']}:{bento['version']}",
            "model": f"{model['name']}:{model['version']}",
            "booster_sha256": stored,
            "artifact_sha256": metadata.get("artifact_sha256"),
            "labels": model.get("labels", {}),
            "metadata": {k: v for k, v in metadata.items() if k != "booster_sha256"},
        })  # fmt: skip
    if any(record != records[0] for record in records):
        raise SystemExit(f"bundle: the platforms of {reference} hold different models")
    return records[0]


def sbom(root: Path, *extra: str, keep: set[str]) -> dict[str, Any]:
    """`uv export --format cyclonedx1.5` of uv.lock, narrowed to the distributions in
    `keep`: those an image installs."""
    out = run("uv", "export", "--frozen", "--format", "cyclonedx1.5", "--no-default-groups",
              "--no-emit-project", "--quiet", "--project", str(root), *extra)  # fmt: skip
    document: dict[str, Any] = json.loads(out)
    refs = set()
    components = []
    for component in document["components"]:
        if normalize(component["name"]) in keep:
            components.append(component)
            refs.add(component["bom-ref"])
    document["components"] = components
    document["dependencies"] = [
        {**dep, "dependsOn": [d for d in dep.get("dependsOn", []) if d in refs]}
        for dep in document.get("dependencies", [])
        if dep["ref"] in refs or dep["ref"] == document["metadata"]["component"]["bom-ref"]
    ]
    return document


def normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def installed_by(requirements: Path) -> set[str]:
    """The distributions a pinned requirements file installs on Linux CPython 3.11."""
    from packaging.markers import Marker

    environment = {"implementation_name": "cpython", "sys_platform": "linux",
                   "platform_system": "Linux", "python_version": "3.11",
                   "platform_python_implementation": "CPython"}  # fmt: skip
    names = set()
    for line in requirements.read_text("utf-8").splitlines():
        requirement, _, marker = line.split("#", 1)[0].partition(";")
        if "==" not in requirement:
            continue
        if marker.strip() and not Marker(marker.strip()).evaluate(environment):
            continue
        names.add(normalize(requirement.split("==")[0].strip()))
    return names


def pin_compose(text: str, pins: dict[str, str]) -> str:
    for name, digest in pins.items():
        text, count = re.subn(rf"({re.escape(name)}\}})(:\$\{{CHURN_VERSION:-[^}}]*\}})",
                              rf"\1@{digest}", text)  # fmt: skip
        if count != 1:
            raise SystemExit(f"bundle: deploy/compose.yaml has no image line for {name}")
    return text


def pin_k8s(text: str, pins: dict[str, str]) -> str:
    for name, digest in pins.items():
        text = re.sub(rf"(image:\s*){re.escape(name)}:\S+", rf"\1{name}@{digest}", text)
        text = re.sub(rf"(- name:\s*{re.escape(name)}\n(?:\s+\S.*\n)*?\s+)newTag:.*",
                      rf"\1digest: {digest}", text)  # fmt: skip
    return text


def write_sums(folder: Path) -> None:
    lines = []
    for name in sorted(bundle_files(folder)):
        if (folder / name).is_dir():
            continue
        with (folder / name).open("rb") as stream:
            lines.append(f"{sha256_of(stream)}  {name}\n")
    (folder / SUMS).write_text("".join(lines), encoding="utf-8")


def tarball(folder: Path) -> Path:
    """The folder as one uncompressed tar (the layers inside are compressed already)."""
    path = folder.with_name(folder.name + ".tar")
    with tarfile.open(path, "w", format=tarfile.PAX_FORMAT) as archive:
        for item in sorted(folder.rglob("*")):
            name = (folder.name / item.relative_to(folder)).as_posix()
            info = archive.gettarinfo(str(item), name)
            info.uid = info.gid = 0
            info.uname = info.gname = "root"
            if item.is_file():
                with item.open("rb") as stream:
                    archive.addfile(info, stream)
            else:
                archive.addfile(info)
    with path.open("rb") as stream:
        path.with_name(path.name + ".sha256").write_text(f"{sha256_of(stream)}  {path.name}\n")
    return path


def describe(folder: Path, name: str, version: str, archive_name: str) -> dict[str, Any]:
    """images.json's entry for an archive already in the bundle's folder."""
    archive = read_archive(folder / archive_name)
    return {
        "name": name, "version": version, "archive": archive_name, "digest": archive.digest,
        "media_type": archive.media_type, "platforms": list(archive.platforms),
    }  # fmt: skip


def assemble(folder: Path, images: list[dict[str, Any]], model: dict[str, Any]) -> None:
    """Everything but the archives (already in `folder`): images.json, the Compose file
    and Kubernetes manifests pinned by digest, the SBOMs, the model's record, the
    README, this script and SHA256SUMS."""
    root = Path(__file__).resolve().parent.parent
    deploy = root / "deploy"
    service, ui = images
    version = service["version"]
    (folder / IMAGES).write_text(json.dumps({"images": images}, indent=2) + "\n", "utf-8")
    pins = {image["name"]: image["digest"] for image in images}
    compose = pin_compose((deploy / "compose.yaml").read_text("utf-8"), pins)
    compose = re.sub(r"\A(#.*\n)+", BUNDLE_COMPOSE_HEADER.format(version=version), compose)
    (folder / "compose.yaml").write_text(compose, "utf-8")
    example = (deploy / ".env.example").read_text("utf-8")
    example = re.sub(r"(?m)^CHURN_VERSION=.*\n", "", example)  # the pins say which release
    (folder / "compose.env.example").write_text(example, "utf-8")
    (folder / "k8s").mkdir(exist_ok=True)
    for path in sorted((deploy / "k8s").glob("*.yaml")):
        (folder / "k8s" / path.name).write_text(pin_k8s(path.read_text("utf-8"), pins), "utf-8")
    (folder / "sbom").mkdir(exist_ok=True)
    # Each image installs a pinned requirements file; the lock also lists what those
    # files name only for other platforms or interpreters (PyPy's cffi), not installed.
    service_environment = installed_by(deploy / "bento" / "requirements.txt")
    ui_environment = installed_by(deploy / "ui" / "requirements.txt")
    for image, document in (
        (service, sbom(root, keep=service_environment)),
        (ui, sbom(root, "--all-extras", keep=ui_environment)),
    ):
        path = folder / "sbom" / f"{short(image['name'])}.cdx.json"
        path.write_text(json.dumps(document, indent=2) + "\n", "utf-8")
    (folder / "model").mkdir(exist_ok=True)
    (folder / "model" / "model.json").write_text(json.dumps(model, indent=2) + "\n", "utf-8")
    readme = (deploy / "bundle" / "README.md").read_text("utf-8")
    for key, value in {
        "VERSION": version, "SERVICE_IMAGE": service["name"], "UI_IMAGE": ui["name"],
        "SERVICE_DIGEST": service["digest"], "UI_DIGEST": ui["digest"],
        "PLATFORMS": ", ".join(service["platforms"]), "MODEL": model["model"],
        "MODEL_SHA256": model["booster_sha256"],
    }.items():  # fmt: skip
        readme = readme.replace(f"@{key}@", str(value))
    (folder / "README.md").write_text(readme, "utf-8")
    shutil.copyfile(Path(__file__), folder / "bundle.py")
    write_sums(folder)


BUNDLE_COMPOSE_HEADER = """\
# churn {version}: both images pinned by digest (README.md). Settings come from an env
# file kept outside this folder (copy compose.env.example):
#
#   docker compose -f compose.yaml --env-file /etc/churn/churn.env up -d
"""


def short(name: str) -> str:
    return name.rsplit("/", 1)[-1]


def make(out: Path, version: str, names: list[str]) -> Path:
    """A bundle of the images NAME:VERSION in podman's store, and its tarball."""
    folder = out / f"churn-{version}"
    for name in names:
        if subprocess.run(["podman", "image", "exists", f"{name}:{version}"]).returncode:
            raise SystemExit(f"bundle: no image {name}:{version} in podman's store; build it "
                             "with `make images CONTAINER_BACKEND=podman` first")  # fmt: skip
    if folder.exists():
        shutil.rmtree(folder)
    (folder / "images").mkdir(parents=True)
    images = []
    for name in names:
        archive_name = f"images/{short(name)}.oci.tar"
        print(f"== {name}:{version} -> {archive_name}", flush=True)
        export(f"{name}:{version}", folder / archive_name)
        images.append(describe(folder, name, version, archive_name))
    print("== the model, the SBOMs, the pinned Compose file and manifests, SHA256SUMS", flush=True)
    assemble(folder, images, model_record(f"{names[0]}:{version}"))
    verify(folder, fingerprint(folder))
    path = tarball(folder)
    # Beside the bundle, not in it: the release announces it by another channel.
    folder.with_name(folder.name + ".fingerprint").write_text(fingerprint(folder) + "\n")
    size = sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())
    print(f"bundle {folder} ({size / 1e6:,.0f} MB) and {path}")
    print(f"fingerprint (sha256 of {SUMS}): {fingerprint(folder)}")
    return folder


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bundle.py", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    making = commands.add_parser("make", help="write a bundle of the images in podman's store")
    making.add_argument("--out", default="build/bundle")
    making.add_argument("--version", default=os.environ.get("VERSION", "1.0"))
    checking = commands.add_parser("verify", help="check a bundle and load its images")
    checking.add_argument("folder", type=Path)
    checking.add_argument(
        "--fingerprint", required=True, type=fingerprint_argument,
        help=f"the SHA-256 of {SUMS} announced with the release, by another channel",
    )  # fmt: skip
    checking.add_argument("--no-load", action="store_true", help="check only")
    checking.add_argument("--engine", choices=["podman", "docker"],
                          default=os.environ.get("CONTAINER_BACKEND") or None)  # fmt: skip
    args = parser.parse_args(argv)
    if args.command == "make":
        make(Path(args.out), args.version, list(IMAGE_NAMES))
        return 0
    try:
        images = verify(args.folder, args.fingerprint)
    except Refused as refused:
        print(f"REFUSED {args.folder}:\n{refused}", file=sys.stderr)
        return 1
    print(f"{args.folder}: {SUMS} has the fingerprint given; every file matches it; "
          "each archive matches its pin")  # fmt: skip
    for image in images:
        print(f"  {image['name']}@{image['digest']} ({', '.join(image['platforms'])})")
    if not args.no_load:
        engine = engine_of(args.engine)
        for reference in load(args.folder, images, engine):
            print(f"loaded into {engine}: {reference}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
