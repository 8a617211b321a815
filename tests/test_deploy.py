"""The deployment files: Bento recipe, locked requirements, Compose, Kubernetes, Space.

The images themselves are built and run by CI's image stage (`make ci-images`).
"""

from __future__ import annotations

import ast
import importlib.metadata
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml  # type: ignore[import-untyped]

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
K8S = DEPLOY / "k8s"
BIN = Path(sys.executable).parent
KUBERNETES_VERSIONS = ("1.30.0", "1.37.0")  # the oldest a region may run, the newest known
EXAMPLE = {
    "CreditScore": 900, "Geography": "France", "Age": 67, "Tenure": 1, "Balance": 120000.50,
    "NumOfProducts": 1, "HasCrCard": 0, "IsActiveMember": 0, "EstimatedSalary": 95000.75,
}  # fmt: skip


def load(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def load_all(path: Path) -> list[Any]:
    return [doc for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")) if doc]


def manifests() -> list[Path]:
    return sorted(path for path in K8S.glob("*.yaml") if path.name != "kustomization.yaml")


def resources(kind: str) -> dict[str, Any]:
    found = {}
    for path in manifests():
        for doc in load_all(path):
            if doc["kind"] == kind:
                found[doc["metadata"]["name"]] = doc
    return found


# --- the Bento recipe and its requirements ------------------------------------------


def test_bentofile_names_the_service_its_labels_and_its_sources() -> None:
    recipe = load(ROOT / "bentofile.yaml")
    assert recipe["service"] == "service:ChurnService"
    assert recipe["labels"]["owner"] == "customer-analytics-retention"
    assert recipe["labels"]["model_version"] == "1.0"
    assert set(recipe["include"]) == {"service.py", "churn/**/*.py"}
    for excluded in ("tests/", "models/", "**/*.joblib", "**/__pycache__/"):
        assert excluded in recipe["exclude"]
    assert recipe["docker"]["python_version"] == "3.11"
    assert recipe["docker"]["base_image"] == "python:3.11-slim"
    assert (ROOT / recipe["docker"]["dockerfile_template"]).is_file()
    assert (ROOT / recipe["python"]["requirements_txt"]).is_file()


def test_the_requirements_are_the_locked_main_dependencies() -> None:
    """deploy/bento/requirements.txt is `uv export` of uv.lock: it cannot drift."""
    uv = shutil.which("uv")
    assert uv is not None, "uv is needed (make setup installs with it)"
    exported = subprocess.run(
        [uv, "export", "--frozen", "--no-default-groups", "--no-emit-project", "--no-hashes",
         "--no-header", "--no-annotate"],
        cwd=ROOT, capture_output=True, text=True, check=True,
        env={**os.environ, "UV_SYSTEM_CERTS": "1"},
    ).stdout  # fmt: skip
    committed = (DEPLOY / "bento" / "requirements.txt").read_text(encoding="utf-8")
    assert committed == exported, "run `make requirements` and commit the result"
    names = {line.split("==")[0] for line in committed.splitlines() if "==" in line}
    assert {"bentoml", "xgboost-cpu", "pandas"} <= names
    # The service serves XGBoost's own model file: training and import need these, it not.
    assert not names & {"scikit-learn", "joblib"}
    # Nothing imports them: uvicorn picks them up when installed, and without them the
    # image serves with the pure-Python parser at about 60% of the requests a second.
    assert {"httptools", "uvloop"} <= names
    # The service needs the main dependencies only: no UI, no development tools.
    assert not names & {"streamlit", "pytest", "mypy", "ruff", "huggingface-hub", "flask"}


def _module_level_imports(path: Path) -> set[str]:
    """Modules the file imports when it is loaded (not inside functions), dotted."""
    names: set[str] = set()
    for node in ast.parse(path.read_text(encoding="utf-8")).body:
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
            # `from churn.x import y` may load the submodule churn.x.y
            names |= {f"{node.module}.{alias.name}" for alias in node.names}
    return names


def _loaded_by_the_bento() -> dict[str, set[str]]:
    """Each source file service.py loads, directly or through churn, with its imports."""
    loaded: dict[str, set[str]] = {}
    pending = [ROOT / "service.py"]
    while pending:
        path = pending.pop()
        key = path.relative_to(ROOT).as_posix()
        if key in loaded:
            continue
        loaded[key] = imports = _module_level_imports(path)
        for module in imports:
            if module.split(".")[0] != "churn":
                continue
            parts = module.split(".")
            for depth in range(1, len(parts) + 1):  # a package's __init__ loads too
                base = ROOT.joinpath(*parts[:depth])
                for candidate in (base / "__init__.py", base.with_suffix(".py")):
                    if candidate.is_file():
                        pending.append(candidate)
    return loaded


def _normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def test_every_module_the_bento_loads_is_in_its_requirements() -> None:
    """What service.py loads, through churn/, must be installed in the image.

    Optional parts (Spark, the UI, Evidently) load only on use, so they are not in it.
    """
    recipe = load(ROOT / "bentofile.yaml")
    requirements = (ROOT / recipe["python"]["requirements_txt"]).read_text(encoding="utf-8")
    locked = {_normalize(line.split("==")[0]) for line in requirements.splitlines() if "==" in line}
    distributions = importlib.metadata.packages_distributions()
    loaded = _loaded_by_the_bento()
    assert sum(path.startswith("churn/") for path in loaded) > 5, loaded  # the walk found churn
    missing = {}
    for path, imports in loaded.items():
        for module in {name.split(".")[0] for name in imports} - set(sys.stdlib_module_names):
            if module == "churn":
                continue
            provided_by = {_normalize(d) for d in distributions.get(module, [module])}
            if not provided_by & locked:
                missing[module] = path
    assert not missing, (
        f"imported at load time but not a main dependency: {missing}. Add them to "
        "[project] dependencies in pyproject.toml, then `uv lock` and `make requirements`."
    )


def test_the_bento_ships_what_the_service_loads_and_no_client_or_deployment_code() -> None:
    recipe = load(ROOT / "bentofile.yaml")
    excluded = tuple(recipe["exclude"])
    assert {"churn/clients/", "churn/deploy/", "churn/spark/", "churn/workflows/"} <= set(excluded)
    shipped_but_excluded = [path for path in _loaded_by_the_bento() if path.startswith(excluded)]
    assert not shipped_but_excluded, f"service.py loads {shipped_but_excluded}, left out"


# --- Kubernetes ---------------------------------------------------------------------


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_kubernetes_manifests_are_valid(version: str) -> None:
    result = subprocess.run(
        [str(BIN / "kubernetes-validate"), "--strict", "-k", version,
         *(str(path) for path in manifests())],
        capture_output=True, text=True,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("passed") == sum(len(load_all(path)) for path in manifests())


def test_kustomization_lists_every_manifest_and_both_images() -> None:
    kustomization = load(K8S / "kustomization.yaml")
    assert sorted(kustomization["resources"]) == [path.name for path in manifests()]
    assert {image["name"] for image in kustomization["images"]} == {"churn-service", "churn-ui"}


def test_the_service_deployment_is_probed_limited_and_unprivileged() -> None:
    deployment = resources("Deployment")["churn-service"]
    pod = deployment["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["image"].startswith("churn-service:")
    assert container["livenessProbe"]["httpGet"]["path"] == "/livez"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["startupProbe"]["httpGet"]["path"] == "/readyz"
    assert {"cpu", "memory"} <= container["resources"]["requests"].keys()
    assert {"cpu", "memory"} <= container["resources"]["limits"].keys()
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == 1000
    security = container["securityContext"]
    assert security["readOnlyRootFilesystem"] is True
    assert security["allowPrivilegeEscalation"] is False
    assert security["capabilities"]["drop"] == ["ALL"]
    # Read-only root: BentoML's home must be on the writable volume.
    env = {item["name"]: item.get("value") for item in container["env"]}
    mounts = {mount["mountPath"] for mount in container["volumeMounts"]}
    assert env["BENTOML_HOME"].startswith("/tmp/")
    assert "/tmp" in mounts
    assert deployment["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0


def test_api_keys_come_from_an_optional_secret_that_is_not_committed() -> None:
    assert resources("Secret") == {}
    deployments = resources("Deployment")
    for name, variable in (("churn-service", "CHURN_API_KEYS"), ("churn-ui", "CHURN_API_KEY")):
        (container,) = deployments[name]["spec"]["template"]["spec"]["containers"]
        (entry,) = [item for item in container["env"] if item["name"] == variable]
        reference = entry["valueFrom"]["secretKeyRef"]
        assert reference == {"name": "churn-api-keys", "key": variable, "optional": True}
    config = resources("ConfigMap")["churn-service-config"]["data"]
    assert not [name for name in config if "KEY" in name and name != "CHURN_METRICS_REQUIRE_KEY"]


def test_the_service_scales_on_cpu_and_is_reachable() -> None:
    hpa = resources("HorizontalPodAutoscaler")["churn-service"]
    assert hpa["spec"]["scaleTargetRef"]["name"] == "churn-service"
    assert 1 < hpa["spec"]["minReplicas"] < hpa["spec"]["maxReplicas"]
    services = resources("Service")
    assert services["churn-service"]["spec"]["ports"][0]["port"] == 3000
    assert services["churn-ui"]["spec"]["ports"][0]["port"] == 8501


def test_the_ui_deployment_finds_the_service_and_is_unprivileged() -> None:
    pod = resources("Deployment")["churn-ui"]["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["image"].startswith("churn-ui:")
    env = {item["name"]: item.get("value") for item in container["env"]}
    assert env["CHURN_API_URL"] == "http://churn-service:3000"
    assert container["readinessProbe"]["httpGet"]["path"] == "/_stcore/health"
    assert pod["securityContext"]["runAsUser"] == 1000
    assert container["securityContext"]["capabilities"]["drop"] == ["ALL"]


# --- Docker Compose -----------------------------------------------------------------


def test_compose_runs_both_images_with_health_checks() -> None:
    compose = load(DEPLOY / "compose.yaml")
    service, ui = compose["services"]["service"], compose["services"]["ui"]
    assert service["image"] == "${SERVICE_IMAGE:-churn-service}:${CHURN_VERSION:-1.0}"
    assert ui["image"] == "${UI_IMAGE:-churn-ui}:${CHURN_VERSION:-1.0}"
    assert "/readyz" in " ".join(service["healthcheck"]["test"])
    assert "/_stcore/health" in " ".join(ui["healthcheck"]["test"])
    assert ui["depends_on"] == {"service": {"condition": "service_healthy"}}
    assert ui["environment"]["CHURN_API_URL"] == "http://service:3000"
    assert ui["environment"]["CHURN_API_KEY"] == "${CHURN_API_KEY:-}"
    assert service["environment"]["CHURN_API_KEYS"] == "${CHURN_API_KEYS:-}"
    for container in (service, ui):
        assert container["user"] == "1000:1000"
        assert container["read_only"] is True
        assert container["cap_drop"] == ["ALL"]


def test_every_compose_setting_is_documented_with_its_default() -> None:
    text = (DEPLOY / "compose.yaml").read_text(encoding="utf-8")
    used = dict(re.findall(r"\$\{(\w+):-([^}]*)\}", text))
    assert not re.findall(r"\$\{(\w+)\}", text), "every variable needs a default"
    example = {}
    for line in (DEPLOY / ".env.example").read_text(encoding="utf-8").splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.partition("=")
            example[name] = value
    assert example == used


# --- a real Bento, and its Hugging Face Space ---------------------------------------


@pytest.fixture(scope="module")
def bento(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, dict[str, str]]:
    """The Bento `bentoml build` makes of this tree, in a BentoML home of its own."""
    home = tmp_path_factory.mktemp("bentoml-home")
    env = {**os.environ, "BENTOML_HOME": str(home), "BENTOML_DO_NOT_TRACK": "True"}
    model = ROOT / "models" / "churn_prediction_model_v1_0.joblib"
    subprocess.run(
        [str(BIN / "churn"), "import-model", str(model)], env=env, check=True, capture_output=True
    )
    built = subprocess.run(
        [str(BIN / "bentoml"), "build", "--output", "tag", str(ROOT)],
        env=env, capture_output=True, text=True, check=True,
    )  # fmt: skip
    (tag,) = re.findall(r"^__tag__:(\S+)$", built.stdout, re.MULTILINE)
    return tag, env


def bento_info(tag: str, env: dict[str, str]) -> dict[str, Any]:
    out = subprocess.run(
        [str(BIN / "bentoml"), "get", tag, "-o", "yaml"],
        env=env, capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    info: dict[str, Any] = yaml.safe_load(out)
    return info


@pytest.mark.slow
def test_the_bento_packs_the_model_and_only_the_service_sources(
    bento: tuple[str, dict[str, str]],
) -> None:
    tag, env = bento
    info = bento_info(tag, env)
    assert info["labels"]["owner"] == "customer-analytics-retention"
    (service,) = info["services"]
    assert [model["tag"].split(":")[0] for model in service["models"]] == ["churn_model"]
    path = Path(env["BENTOML_HOME"]) / "bentos" / tag.replace(":", "/")
    sources = {p.relative_to(path / "src").as_posix() for p in (path / "src").rglob("*.py")}
    assert "service.py" in sources
    assert "churn/scoring/scorer.py" in sources
    assert not [s for s in sources if s.startswith(("tests/", "benchmarks/", "churn/clients/ui/"))]
    assert not list(path.rglob("*.joblib"))


@pytest.mark.slow
def test_the_space_export_is_a_docker_space_with_the_model(
    bento: tuple[str, dict[str, str]], tmp_path: Path
) -> None:
    tag, env = bento
    folder = tmp_path / "space"
    result = subprocess.run(
        [str(BIN / "churn"), "spaces", "export", str(folder), "--bento", tag],
        env=env, capture_output=True, text=True,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    readme = (folder / "README.md").read_text(encoding="utf-8")
    front = yaml.safe_load(readme.split("---")[1])
    assert front["sdk"] == "docker"
    assert front["app_port"] == 3000
    dockerfile = (folder / "Dockerfile").read_text(encoding="utf-8")
    assert "ARG BASE_IMAGE=python:3.11-slim" in dockerfile
    assert re.search(r"^USER 1000:1000$", dockerfile, re.MULTILINE)
    assert "build-essential" not in dockerfile
    assert " git" not in dockerfile
    # Everything the Dockerfile copies is in the folder: the Bento and its model.
    assert (folder / "bento.yaml").is_file()
    assert (folder / "env" / "python" / "requirements.txt").is_file()
    assert list((folder / "models" / "churn_model").glob("*/booster.ubj"))
    assert not list((folder / "models").rglob("*.pkl"))
