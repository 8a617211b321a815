"""The package's rooms and which may use which: inner layers never import outer ones.

record < model < scoring < monitoring < serving | spark; deploy and clients use only
record and settings (the clients reach the service over HTTP); workflows, the jobs that
compose them, sit above all but serving. No exceptions. Checked on
every import in the source (functions' own included), and, for the edge, on what
really loads in a fresh interpreter.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT

CHURN = ROOT / "churn"
# What each room may import of churn (besides itself).
ALLOWED: dict[str, set[str]] = {
    "record": set(),
    "settings": {"record"},
    "model": {"record"},
    "scoring": {"record", "model"},
    "monitoring": {"record", "model", "scoring", "settings"},
    "serving": {"record", "model", "scoring", "monitoring", "settings"},
    "spark": {"record", "model", "scoring", "settings"},
    "deploy": {"record", "settings"},
    "clients": {"record", "settings"},
    # The jobs that compose the library's rooms: training, import, the operator's command
    # line (its `predict` through the Python client) and Spark's entry file.
    "workflows": {
        "record",
        "settings",
        "model",
        "scoring",
        "monitoring",
        "spark",
        "deploy",
        "clients",
    },
}


def _room(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def _imports(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names if alias.name.startswith("churn.")}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            if node.module == "churn":
                found |= {f"churn.{alias.name}" for alias in node.names}
            elif node.module.startswith("churn."):
                found.add(node.module)
    return found


def _modules() -> list[tuple[str, Path]]:
    return [
        (".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__"), path)
        for path in sorted(CHURN.rglob("*.py"))
    ]


def test_every_module_is_in_a_room() -> None:
    rooms = {_room(name) for name, _ in _modules() if name != "churn"}
    assert rooms == set(ALLOWED)


@pytest.mark.parametrize(("module", "path"), _modules(), ids=lambda value: str(value))
def test_no_room_imports_an_outer_one(module: str, path: Path) -> None:
    if module == "churn":
        return
    room = _room(module)
    allowed = {room} | ALLOWED[room]
    outer = sorted(name for name in _imports(path) if _room(name) not in allowed)
    assert not outer, f"{module} ({room}) imports {outer}; it may import {sorted(allowed)}"


EDGE_PROBE = """
import json, sys
import churn.serving.edge, churn.serving.timeout
print(json.dumps(sorted(sys.modules)))
"""


def test_the_edge_loads_no_route_no_scoring_and_no_model_library() -> None:
    done = subprocess.run(
        [sys.executable, "-c", EDGE_PROBE], cwd=ROOT, capture_output=True, text=True, check=True
    )
    loaded = set(json.loads(done.stdout))
    assert "churn.serving.edge" in loaded
    leaked = sorted(
        name
        for name in loaded
        if name.split(".")[0] in {"xgboost", "sklearn", "joblib", "bentoml", "fastapi"}
        or name.startswith(("churn.scoring", "churn.model", "churn.monitoring"))
        or name in {"churn.serving.routes", "churn.serving.app", "churn.serving.fastpath"}
    )
    assert not leaked, f"the edge loads {leaked}"
