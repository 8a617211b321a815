"""The batch wheel (deploy/batch/, `make spark-wheel`): what it declares, what it holds,
and `churn-batch` where only that wheel, its dependencies and pyspark are installed."""

from __future__ import annotations

import ast
import configparser
import email
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet

from churn.model.synth import write_synthetic_csv
from tests.conftest import ROOT, run_churn, run_outside, uv
from tests.factories import bank_row

PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
ENTRY = "churn.workflows.batch"
# Lazy imports that churn-batch does not reach with --model FILE --model-sha256 HEX.
OFF_THE_PATH = {
    ("churn.spark.model", "churn.model.store"),  # the store, read only without --model
}
SERVICE = {"bentoml", "fastapi", "starlette", "uvicorn", "uvloop", "streamlit", "httpx"}
TREE = {
    ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
    for path in (ROOT / "churn").rglob("*.py")
}


def _sources(wheel: Path) -> dict[str, str]:
    """The wheel's modules by name, with their source."""
    with zipfile.ZipFile(wheel) as archive:
        return {
            name.removesuffix(".py").replace("/", ".").removesuffix(".__init__"):
                archive.read(name).decode("utf-8")
            for name in archive.namelist() if name.endswith(".py")
        }  # fmt: skip


def _imports(source: str) -> tuple[set[str], set[str]]:
    """The names a module imports when it is imported, and inside its functions
    (`if TYPE_CHECKING:` blocks never run)."""
    eager: set[str] = set()
    lazy: set[str] = set()

    def visit(node: ast.AST, inside: bool) -> None:
        if isinstance(node, ast.If) and ast.unparse(node.test) == "TYPE_CHECKING":
            return
        found = lazy if inside else eager
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            for alias in node.names:
                name = f"{node.module}.{alias.name}"
                found.add(name if name in TREE else node.module)
        inside = inside or isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
        for child in ast.iter_child_nodes(node):
            visit(child, inside)

    visit(ast.parse(source), False)
    return eager, lazy


def _reached(sources: dict[str, str]) -> tuple[set[str], set[str], set[str]]:
    """From churn-batch's module: the project's modules its commands import, those of
    them the wheel has not got, and the other top-level packages they import."""
    reached, missing, external = set(), set(), set()
    todo = [ENTRY]
    while todo:
        module = todo.pop()
        if module in reached:
            continue
        reached.add(module)
        if module not in sources:
            missing.add(module)
            continue
        eager, lazy = _imports(sources[module])
        for name in eager | lazy:
            top = name.split(".")[0]
            if (module, name) in OFF_THE_PATH:
                continue
            if top != "churn":
                external.add(top)
                continue
            parts = name.split(".")
            todo += [".".join(parts[:end]) for end in range(1, len(parts) + 1)]
    return reached, missing, external - set(sys.stdlib_module_names)


def test_it_declares_the_batch_group_with_pyspark_as_an_extra(batch_wheel: Path) -> None:
    project = PROJECT["project"]
    with zipfile.ZipFile(batch_wheel) as archive:
        info = f"churn_batch-{project['version']}.dist-info"
        metadata = email.message_from_bytes(archive.read(f"{info}/METADATA"))
        entry_points = configparser.ConfigParser()
        entry_points.read_string(archive.read(f"{info}/entry_points.txt").decode())
    assert (metadata["Name"], metadata["Version"]) == ("churn-batch", project["version"])
    # The project's Python, and those tests/spark/test_runtimes.py runs the job on.
    assert all(v in SpecifierSet(metadata["Requires-Python"]) for v in ("3.10", "3.11", "3.12"))
    requires = [Requirement(line) for line in metadata.get_all("Requires-Dist", [])]
    assert {str(r) for r in requires if r.marker is None} == {
        str(Requirement(line)) for line in PROJECT["dependency-groups"]["batch"]
    }
    assert metadata.get_all("Provides-Extra") == ["spark"]
    assert {str(r) for r in requires if r.marker is not None} == {
        str(Requirement(f"{line}; extra == 'spark'"))
        for line in project["optional-dependencies"]["spark"]
    }
    assert [r.name for r in requires if r.marker is not None] == ["pyspark"]
    assert dict(entry_points["console_scripts"]) == {
        "churn-batch": project["scripts"]["churn-batch"]
    }


def test_it_holds_what_churn_batch_imports_and_nothing_else(batch_wheel: Path) -> None:
    sources = _sources(batch_wheel)
    reached, missing, external = _reached(sources)
    assert not missing, f"churn-batch imports {missing}: add them to deploy/batch/pyproject.toml"
    assert set(sources) == reached, "the wheel holds modules that churn-batch never imports"
    assert not [m for m in sources if m.startswith(("churn.serving", "churn.clients"))]
    assert not external & (SERVICE | {"sklearn", "joblib"})
    anywhere = {
        module: {name.split(".")[0] for name in set.union(*_imports(source))} & SERVICE
        for module, source in sources.items()
    }
    assert not {module: names for module, names in anywhere.items() if names}


@pytest.mark.slow
def test_churn_batch_scores_where_only_its_wheel_and_pyspark_are_installed(
    batch_wheel: Path, bundled_store: Path, tmp_path: Path
) -> None:
    # The lock's versions, as a bank's cluster would resolve them (from uv's cache here).
    pins = tmp_path / "pins.txt"
    uv("export", "--frozen", "--all-extras", "--no-emit-project", "--no-hashes",
        "--no-header", "--no-annotate", "--quiet", "-o", str(pins))  # fmt: skip
    venv = tmp_path / "venv"
    uv("venv", "--quiet", "--python", sys.executable, str(venv))
    python = str(venv / "bin" / "python")
    uv("pip", "install", "--quiet", "--python", python, "-c", str(pins), f"{batch_wheel}[spark]")
    model = tmp_path / "churn-model.ubj"
    exported = run_churn("batch", "export-model", "--out", str(model),
                         env={"BENTOML_HOME": str(bundled_store)})  # fmt: skip
    assert exported.returncode == 0, exported.stderr
    digest = exported.stdout.split()[0]
    book = write_synthetic_csv(tmp_path / "book.csv", 20, seed=5)
    with book.open("a", encoding="utf-8") as handle:
        handle.write(bank_row(21, 900000021, Geography="Mars") + "\n")
    no_store = tmp_path / "no-store"
    no_store.mkdir()

    def run(*command: str) -> subprocess.CompletedProcess[str]:
        # Outside the source tree, with no store.
        return run_outside(*command, cwd=tmp_path, env={"BENTOML_HOME": str(no_store)})

    helped = run(str(venv / "bin" / "churn-batch"), "--help")
    assert helped.returncode == 0, helped.stderr
    assert helped.stdout.startswith("Usage: churn-batch")
    refused = run(python, "-c", "import bentoml")
    assert refused.returncode != 0
    assert "No module named 'bentoml'" in refused.stderr
    # Every package the batch path imports is there: the group's and pyspark's.
    _, _, external = _reached(_sources(batch_wheel))
    find = (
        "import importlib.util as u, sys; print(*[n for n in sys.argv[1:] if not u.find_spec(n)])"
    )
    absent = run(python, "-c", find, *sorted(external))
    assert (absent.returncode, absent.stdout.strip()) == (0, ""), absent.stderr
    scored = run(str(venv / "bin" / "churn-batch"), "score", str(book), "--out",
                 str(tmp_path / "out"), "--run-id", "r1", "--master", "local[1]",
                 "--conf", "spark.ui.enabled=false", "--model", str(model),
                 "--model-sha256", digest)  # fmt: skip
    assert scored.returncode == 0, scored.stderr[-3000:]
    assert scored.stdout.startswith("21 rows: 20 scored, 1 rejected"), scored.stdout
    assert (tmp_path / "out" / "run=r1").is_dir()
    # Without --model the job would read a store, which this wheel has not got.
    storeless = run(str(venv / "bin" / "churn-batch"), "score", str(book), "--out",
                    str(tmp_path / "out"), "--run-id", "r2", "--master", "local[1]")  # fmt: skip
    assert storeless.returncode != 0
    assert "Traceback" not in storeless.stderr, storeless.stderr[-3000:]
    assert "--model FILE --model-sha256 HEX" in storeless.stderr, storeless.stderr[-3000:]
    assert not list(no_store.iterdir())
