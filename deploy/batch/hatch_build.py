"""The batch wheel's version, dependencies, extra and script, read from the project's
pyproject.toml (two folders up), so that neither list can drift from the other."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

from hatchling.metadata.plugin.interface import MetadataHookInterface

SCRIPT = "churn-batch"


class BatchMetadata(MetadataHookInterface):
    def update(self, metadata: dict[str, Any]) -> None:
        project_file = Path(self.root).resolve().parents[1] / "pyproject.toml"
        main = tomllib.loads(project_file.read_text(encoding="utf-8"))
        project = main["project"]
        metadata["version"] = project["version"]
        metadata["dependencies"] = list(main["dependency-groups"]["batch"])
        metadata["optional-dependencies"] = {"spark": project["optional-dependencies"]["spark"]}
        metadata["scripts"] = {SCRIPT: project["scripts"][SCRIPT]}
