"""`churn spaces push`: everything up to the upload, which is recorded instead of sent.

The export itself is tested in tests/test_deploy.py (on a real Bento) and its folder is
built into an image by CI's image stage (deploy/ci/images.sh).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from huggingface_hub import HfApi

from churn.workflows.cli import main

TOKEN = "hf_TestTokenThatMustNeverBePrinted0123456789"


@pytest.fixture
def space_folder(tmp_path: Path) -> Path:
    """A folder shaped like `churn spaces export` output (its content is not built here)."""
    folder = tmp_path / "space"
    folder.mkdir()
    (folder / "README.md").write_text("---\ntitle: Churn\nsdk: docker\napp_port: 3000\n---\n")
    (folder / "Dockerfile").write_text("FROM python:3.11-slim\nUSER 1000:1000\n")
    (folder / "bento.yaml").write_text("service: service:ChurnService\n")
    return folder


@pytest.fixture
def uploads(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, dict[str, Any]]]:
    """Record HfApi's network calls (create_repo, upload_folder) instead of making them."""
    calls: list[tuple[str, dict[str, Any]]] = []

    class Commit:
        commit_url = "https://huggingface.co/spaces/bank/churn/commit/0123abc"

    def create_repo(self: HfApi, **kwargs: Any) -> str:
        calls.append(("create_repo", {"token": self.token, **kwargs}))
        return "https://huggingface.co/spaces/bank/churn"

    def upload_folder(self: HfApi, **kwargs: Any) -> Commit:
        calls.append(("upload_folder", {"token": self.token, **kwargs}))
        return Commit()

    monkeypatch.setattr(HfApi, "create_repo", create_repo)
    monkeypatch.setattr(HfApi, "upload_folder", upload_folder)
    return calls


def push(folder: Path, *extra: str, token: str | None = TOKEN) -> Any:
    env = {"HF_TOKEN": token} if token is not None else {"HF_TOKEN": ""}
    return CliRunner().invoke(
        main, ["spaces", "push", str(folder), "--space", "bank/churn", *extra], env=env
    )


def test_push_uploads_the_folder_to_a_docker_space(
    space_folder: Path, uploads: list[tuple[str, dict[str, Any]]]
) -> None:
    result = push(space_folder, "--private")

    assert result.exit_code == 0, result.output
    assert [name for name, _ in uploads] == ["create_repo", "upload_folder"]
    created, uploaded = uploads[0][1], uploads[1][1]
    assert created["repo_id"] == "bank/churn"
    assert created["repo_type"] == "space"
    assert created["space_sdk"] == "docker"
    assert created["private"] is True
    assert created["exist_ok"] is True
    assert uploaded["repo_id"] == "bank/churn"
    assert uploaded["repo_type"] == "space"
    assert Path(uploaded["folder_path"]) == space_folder
    assert uploaded["token"] == TOKEN
    assert "commit/0123abc" in result.output
    assert TOKEN not in result.output


def test_push_refuses_without_a_token(
    space_folder: Path, uploads: list[tuple[str, dict[str, Any]]]
) -> None:
    result = push(space_folder, token=None)

    assert result.exit_code == 1
    assert "HF_TOKEN is not set" in result.output
    assert "Traceback" not in result.output
    assert uploads == []


def test_push_refuses_a_folder_that_contains_the_token(
    space_folder: Path, uploads: list[tuple[str, dict[str, Any]]]
) -> None:
    (space_folder / "src").mkdir()
    (space_folder / "src" / "settings.env").write_text(f"HF_TOKEN={TOKEN}\n")

    result = push(space_folder)

    assert result.exit_code == 1
    assert "src/settings.env" in result.output
    assert TOKEN not in result.output
    assert uploads == []


def test_push_refuses_a_folder_that_is_not_a_docker_space(
    space_folder: Path, uploads: list[tuple[str, dict[str, Any]]]
) -> None:
    (space_folder / "README.md").write_text("---\nsdk: gradio\n---\n")
    assert "sdk: docker" in push(space_folder).output
    (space_folder / "Dockerfile").unlink()
    result = push(space_folder)
    assert result.exit_code == 1
    assert "churn spaces export" in result.output
    assert uploads == []


def test_push_needs_owner_and_name(
    space_folder: Path, uploads: list[tuple[str, dict[str, Any]]]
) -> None:
    result = CliRunner().invoke(
        main, ["spaces", "push", str(space_folder), "--space", "churn"], env={"HF_TOKEN": TOKEN}
    )
    assert result.exit_code == 1
    assert "OWNER/NAME" in result.output
    assert uploads == []


def test_export_refuses_a_folder_with_files_in_it(tmp_path: Path) -> None:
    (tmp_path / "old.txt").write_text("an earlier export")
    result = CliRunner().invoke(main, ["spaces", "export", str(tmp_path)])
    assert result.exit_code == 1
    assert "not an empty folder" in result.output
    assert (tmp_path / "old.txt").exists()


def test_export_needs_a_built_bento(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        main, ["spaces", "export", str(tmp_path / "space"), "--bento", "churn:missing"]
    )
    assert result.exit_code == 1
    assert "make bento" in result.output
    assert not (tmp_path / "space").exists()
