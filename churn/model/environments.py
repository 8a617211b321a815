"""The environment a foreign pickle is unpickled in: the libraries that made it, built by uv.

A pickled pipeline only loads with the scikit-learn (and XGBoost) it was made with:
scikit-learn 1.9 cannot load a 1.6 ColumnTransformer. So `pins_for` turns the versions
read from the pickle (`churn.model.pickle_scan`), or a requirements.txt's `==` pins,
into the packages of an environment, and `environment` has uv build it once, with the
project's own Python (3.11; nothing downloads a Python), and keeps it:

- where: `CHURN_IMPORT_ENV_CACHE`, by default `~/.cache/churn/import-envs`
  (`$XDG_CACHE_HOME/churn/import-envs`), one folder per set of pins;
- cost: the first time, uv downloads and installs about 150 MB (scikit-learn, SciPy,
  NumPy, pandas, XGBoost's CPU build): 20-40 s here; the next time, nothing;
- without access to a package registry: `--wheelhouse DIR`, a folder of the wheels
  (`uv pip download`, or `pip download --only-binary :all: --python-version 3.11`,
  on a machine that has access), which uv installs with `--no-index`.

XGBoost 2.1 and later come as `xgboost-cpu`, the same library without the GPU build
and its NCCL (800 MB more); a model trained on a GPU still predicts on the CPU.
NumPy, SciPy, pandas and joblib are not recorded in a pickle: they come from
`_COMPANIONS`, versions that worked with each scikit-learn (the notebook's pins for
1.6), with NumPy's major version as the pickle says (it names `numpy._core` from
NumPy 2 on). For a scikit-learn this table does not know, uv picks them.

When the pickle's scikit-learn and XGBoost are the project's own (the bundled model, a
model from `churn train`), no environment is built: the exporter runs in the project's
interpreter, still in a process of its own.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import platform
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from churn.model.pickle_scan import PickleContents
from churn.record.errors import ModelIntegrityError

ENV_CACHE_VARIABLE = "CHURN_IMPORT_ENV_CACHE"
# Oldest versions with wheels for Python 3.11 and a model format this importer reads.
OLDEST_SKLEARN = (1, 1)
OLDEST_XGBOOST = (1, 0)
_BUILD_TIMEOUT = 1800
_COMPANION_LIBRARIES = ("numpy", "scipy", "pandas", "joblib")
# scikit-learn (major, minor) -> NumPy 1.x and 2.x (None: none works), SciPy, pandas, joblib.
_COMPANIONS: dict[tuple[int, int], tuple[str, str | None, str, str, str]] = {
    (1, 1): ("1.23.5", None, "1.9.3", "1.5.3", "1.2.0"),
    (1, 2): ("1.24.4", None, "1.10.1", "1.5.3", "1.2.0"),
    (1, 3): ("1.26.4", None, "1.11.4", "2.1.4", "1.3.2"),
    (1, 4): ("1.26.4", "2.0.2", "1.13.1", "2.2.2", "1.4.2"),
    (1, 5): ("1.26.4", "2.0.2", "1.13.1", "2.2.2", "1.4.2"),
    (1, 6): ("1.26.4", "2.0.2", "1.13.1", "2.2.2", "1.4.2"),
    (1, 7): ("1.26.4", "2.2.6", "1.15.3", "2.2.3", "1.5.1"),
}
_PIN = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*(?:\[[^\]]*\])?\s*==\s*([A-Za-z0-9.+!-]+)")
Progress = Callable[[str], None]


@dataclass(frozen=True)
class Pins:
    """The packages of an environment, by name, each at one version."""

    packages: tuple[tuple[str, str], ...]
    guessed: bool  # from the pickle (True) or from a requirements file

    def version(self, name: str) -> str | None:
        return dict(self.packages).get(name)

    @property
    def sklearn(self) -> str:
        return dict(self.packages)["scikit-learn"]

    @property
    def xgboost(self) -> str:
        found = dict(self.packages)
        return found.get("xgboost-cpu") or found["xgboost"]

    def lines(self) -> list[str]:
        return [f"{name}=={version}" for name, version in self.packages]

    def key(self) -> str:
        """The cache folder's name: the pins, the Python and the machine."""
        text = "\n".join(
            [platform.python_version(), platform.machine(), sys.platform, *sorted(self.lines())]
        )
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def summary(self) -> str:
        return ", ".join(f"{name} {version}" for name, version in self.packages)


def _release(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", version)[:3])


def read_requirements(path: Path) -> dict[str, str]:
    """The `name==version` pins of a requirements file, names normalised; the rest ignored."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise ModelIntegrityError(f"Cannot read the requirements file {path}: {error}") from None
    pins: dict[str, str] = {}
    for line in text.splitlines():
        match = _PIN.match(line.split("#", 1)[0])
        if match:
            pins[re.sub(r"[-_.]+", "-", match.group(1)).lower()] = match.group(2)
    return pins


def pins_for(contents: PickleContents, requirements: Path | None = None) -> Pins:
    """The environment's packages: the requirements' pins, else what the pickle says."""
    given = read_requirements(requirements) if requirements else {}
    if requirements and "scikit-learn" not in given and "sklearn" not in given:
        raise ModelIntegrityError(f"{requirements} pins no scikit-learn version (==).")
    sklearn = given.get("scikit-learn") or given.get("sklearn") or contents.sklearn_version
    xgboost = given.get("xgboost") or given.get("xgboost-cpu") or contents.xgboost_version
    _supported("scikit-learn", sklearn, OLDEST_SKLEARN)
    _supported("XGBoost", xgboost, OLDEST_XGBOOST)
    xgboost_package = "xgboost-cpu" if _release(xgboost)[:2] >= (2, 1) else "xgboost"
    packages = {"scikit-learn": sklearn, xgboost_package: xgboost}
    major, minor = (*_release(sklearn), 0, 0)[:2]
    companions = _COMPANIONS.get((major, minor))
    given_numpy = given.get("numpy")
    numpy_major = int(given_numpy.split(".")[0]) if given_numpy else contents.numpy_major
    if companions is not None:
        numpy_1, numpy_2, scipy, pandas, joblib = companions
        numpy = numpy_2 if numpy_major == 2 else numpy_1
        if numpy is None:
            raise ModelIntegrityError(
                f"The pickle was written by NumPy 2, which scikit-learn {sklearn} does not "
                "run with; give the versions with --requirements."
            )
        packages |= {"numpy": numpy, "scipy": scipy, "pandas": pandas, "joblib": joblib}
    packages |= {name: given[name] for name in _COMPANION_LIBRARIES if name in given}
    return Pins(tuple(packages.items()), guessed=not requirements)


def _supported(library: str, version: str, oldest: tuple[int, int]) -> None:
    if _release(version)[:2] < oldest:
        raise ModelIntegrityError(
            f"The model was made with {library} {version}; the importer supports "
            f"{library} {'.'.join(map(str, oldest))} and later (older releases have no "
            "build for Python 3.11, or no model format it can read)."
        )


def is_projects_own(pins: Pins) -> bool:
    """Whether the project's own scikit-learn and XGBoost are the pinned ones."""
    own_xgboost = _installed("xgboost-cpu") or _installed("xgboost")
    return _installed("scikit-learn") == pins.sklearn and own_xgboost == pins.xgboost


def _installed(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def default_cache() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "churn" / "import-envs"


def python_of(pins: Pins, cache: Path, *, wheelhouse: Path | None, progress: Progress) -> Path:
    """The Python of an environment with these pins: the project's own when they are its
    versions, else one uv built (or built before) in `cache`."""
    if is_projects_own(pins):
        return Path(sys.executable)
    return environment(pins, cache, wheelhouse=wheelhouse, progress=progress)


def environment(pins: Pins, cache: Path, *, wheelhouse: Path | None, progress: Progress) -> Path:
    """The Python of the cached environment for `pins`, built by uv the first time."""
    folder = cache / pins.key()
    python = folder / "bin" / "python"
    if (folder / "churn-ready").is_file():
        return python
    cache.mkdir(parents=True, exist_ok=True)
    with _locked(cache / f"{pins.key()}.lock"):
        if (folder / "churn-ready").is_file():  # another import built it meanwhile
            return python
        progress(
            f"building an environment with {pins.summary()} in {folder} "
            "(once for these versions; about half a minute with a registry)"
        )
        started = time.monotonic()
        _build(pins, folder, wheelhouse)
        progress(f"environment ready in {time.monotonic() - started:.0f} s")
    return python


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _build(pins: Pins, folder: Path, wheelhouse: Path | None) -> None:
    uv = shutil.which("uv")
    if uv is None:
        raise ModelIntegrityError(
            "Importing a model made elsewhere needs uv, to build the environment it is "
            "loaded in: `python -m pip install uv` (the project's `make setup` has it)."
        )
    shutil.rmtree(folder, ignore_errors=True)  # a build that was cut short
    env = {name: value for name, value in os.environ.items() if name != "VIRTUAL_ENV"}
    env["UV_PYTHON_DOWNLOADS"] = "never"
    requirements = folder.with_name(folder.name + ".requirements.txt")
    requirements.write_text("\n".join(pins.lines()) + "\n", encoding="utf-8")
    source = ["--no-index", "--find-links", str(wheelhouse)] if wheelhouse else []
    for command in (
        [uv, "venv", "--quiet", "--python", sys.executable, str(folder)],
        # --no-build: a version without a wheel for this machine fails at once, instead
        # of compiling scikit-learn from source for half an hour.
        [uv, "pip", "install", "--quiet", "--no-build", "--python", str(folder / "bin" / "python"),
         "-r", str(requirements), *source],
    ):  # fmt: skip
        try:
            done = subprocess.run(
                command, env=env, capture_output=True, text=True, timeout=_BUILD_TIMEOUT
            )
        except subprocess.TimeoutExpired:
            raise ModelIntegrityError(
                f"Building the environment with {pins.summary()} took over "
                f"{_BUILD_TIMEOUT} s; is the package registry reachable?"
            ) from None
        if done.returncode != 0:
            shutil.rmtree(folder, ignore_errors=True)
            where = f"the wheelhouse {wheelhouse}" if wheelhouse else "the package registry"
            raise ModelIntegrityError(
                f"uv could not build an environment with {pins.summary()} from {where}:\n"
                + "\n".join(done.stderr.strip().splitlines()[-8:])
            )
    (folder / "churn-ready").write_text("\n".join(pins.lines()) + "\n", encoding="utf-8")
