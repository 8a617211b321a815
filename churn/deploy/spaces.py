"""Hugging Face Spaces: the Bento as a Docker Space folder, and its upload.

`export_space` writes a folder that Hugging Face builds as it is: the Bento exported
from the BentoML store with its model (`bentoml export`, folder format), at the root
the Dockerfile that `bentoml containerize` uses for it (non-root uid 1000, the user
Spaces run containers as), and a README.md whose front matter makes it a Docker Space
listening on the service's port. `push_space` uploads the folder with `huggingface_hub`
(the "deploy" extra), with the token from HF_TOKEN.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from churn.record.errors import ChurnError

APP_PORT = 3000
DEFAULT_BENTO = "churn:latest"
TOKEN_VARIABLE = "HF_TOKEN"  # noqa: S105  (the name of the variable, not a token)
README_TEMPLATE = """\
---
title: {title}
emoji: 📉
colorFrom: blue
colorTo: gray
sdk: docker
app_port: {port}
pinned: false
short_description: Bank customer churn predictions (BentoML service)
---

# {title}

The bank's churn model ({bento}) as a BentoML service, built from this folder's
Dockerfile and run as the non-root user 1000.

| route | what it does |
| --- | --- |
| `POST /v1/customer` | nine features -> `{{"Prediction": "churn"}}` or `"not churn"` |
| `POST /v1/customerbatch` | many customers at once |
| `POST /v2/predict` | probabilities, labels and risk bands (adaptive batching) |
| `POST /v2/predict-file` | a CSV upload, scored row by row |
| `POST /v2/explain` | the factors behind one customer's risk |
| `GET /v2/model` | the model's version and metrics |
| `GET /livez`, `GET /readyz`, `GET /metrics` | health and Prometheus metrics |

Settings are environment variables (Space settings, "Variables"): CHURN_WORKERS,
CHURN_LOG_LEVEL and the others listed in the project's deploy/README.md.
"""


class SpacesError(ChurnError):
    code = "spaces"


@dataclass(frozen=True)
class SpaceFolder:
    path: Path
    bento: str
    models: tuple[str, ...]


def export_space(
    directory: Path, bento_tag: str = DEFAULT_BENTO, *, title: str = "Churn"
) -> SpaceFolder:
    """Write a Docker Space for the Bento `bento_tag` (from the local store) to `directory`.

    The directory must not exist or be empty: an export never mixes with older files.
    """
    import bentoml
    from bentoml.exceptions import NotFound

    if directory.exists() and (not directory.is_dir() or any(directory.iterdir())):
        raise SpacesError(f"{directory} exists and is not an empty folder.")
    try:
        bento = bentoml.get(bento_tag)
    except NotFound:
        raise SpacesError(
            f"No Bento {bento_tag} in the BentoML store: build one first (make bento)."
        ) from None
    if directory.exists():
        directory.rmdir()  # into an existing folder, BentoML exports to a subfolder
    directory.parent.mkdir(parents=True, exist_ok=True)
    bentoml.export_bento(bento.tag, f"{directory.resolve()}/", output_format="folder")
    # BentoML 1.4 refuses a dockerfile_template that lies outside the working directory,
    # and renders it from a temporary copy of the Bento (bentoml/BentoML#5566).
    with contextlib.chdir(tempfile.gettempdir()):
        bentoml.container.get_containerfile(
            str(bento.tag),
            output_path=str((directory / "Dockerfile").resolve()),
            enable_buildkit=False,
        )
    (directory / "README.md").write_text(
        README_TEMPLATE.format(title=title, port=APP_PORT, bento=bento.tag),
        encoding="utf-8",
    )
    models = tuple(str(model.tag) for model in bento.info.all_models)
    return SpaceFolder(path=directory, bento=str(bento.tag), models=models)


def check_space_folder(directory: Path) -> None:
    """Refuse a folder that is not a Docker Space as `export_space` writes it."""
    readme = directory / "README.md"
    if not (directory / "Dockerfile").is_file() or not readme.is_file():
        raise SpacesError(
            f"{directory} is not a Space folder (no Dockerfile or README.md): "
            "write one with `churn spaces export`."
        )
    front_matter = readme.read_text(encoding="utf-8").split("---")
    if len(front_matter) < 3 or "sdk: docker" not in front_matter[1]:
        raise SpacesError(f"{readme} has no front matter with `sdk: docker`.")


def _files_containing(directory: Path, secret: str) -> list[Path]:
    needle = secret.encode()
    return [
        path
        for path in sorted(directory.rglob("*"))
        if path.is_file() and needle in path.read_bytes()
    ]


def push_space(
    directory: Path, space_id: str, *, private: bool = False, message: str | None = None
) -> str:
    """Create the Space `space_id` (OWNER/NAME) if needed and upload `directory` to it.

    The token comes from HF_TOKEN only, and is never printed. Returns the commit's URL.
    """
    token = os.environ.get(TOKEN_VARIABLE, "").strip()
    if not token:
        raise SpacesError(
            f"{TOKEN_VARIABLE} is not set: refusing to upload. Create a token with write "
            "access at https://huggingface.co/settings/tokens and export it as "
            f"{TOKEN_VARIABLE}."
        )
    owner, _, name = space_id.partition("/")
    if not owner or not name or "/" in name:
        raise SpacesError(f"--space must be OWNER/NAME, not {space_id!r}.")
    check_space_folder(directory)
    if leaks := _files_containing(directory, token):
        raise SpacesError(
            f"refusing to upload: the token in {TOKEN_VARIABLE} appears in "
            + ", ".join(str(path.relative_to(directory)) for path in leaks)
        )
    from huggingface_hub import HfApi

    api = HfApi(token=token)
    api.create_repo(
        repo_id=space_id, repo_type="space", space_sdk="docker", private=private, exist_ok=True
    )
    commit = api.upload_folder(
        repo_id=space_id,
        repo_type="space",
        folder_path=directory,
        commit_message=message or "Deploy the churn service",
        ignore_patterns=[".git/*", "*.env", ".env*"],
    )
    return str(commit.commit_url)
