"""Pack the Spark executors' environment, with its own interpreter (`make spark-env`).

    python deploy/spark_env.py --out build/spark-env --archive build/churn-spark-env.tar.gz \
        --wheel build/dist/churn_batch-1.0.0-py3-none-any.whl

A virtualenv cannot travel: its bin/python is a link to one machine's interpreter
(`uv venv --relocatable` only makes its scripts relative). So this copies the interpreter
that runs it (its binary, its shared libpython, its standard library less the test suite,
IDLE and Tk) and installs into that copy's own site-packages the `batch` dependency
group as uv.lock pins it, and the batch wheel (`make spark-wheel`, deploy/batch/) with
--no-deps: the wheel requires that group and nothing else, so the lock's pins decide.
bin/python is a two-line launcher that finds the copied libpython first, wherever the
archive is unpacked (`--archives ENV.tar.gz#env`, `spark.pyspark.python=./env/bin/python`).
It still uses the C libraries every build of Python links to (glibc, libssl, libffi,
zlib...): executors of the same distribution and architecture as the builder.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import sysconfig
import tarfile
from pathlib import Path

_LEFT_OUT = {"test", "idlelib", "tkinter", "turtledemo", "ensurepip", "lib2to3", "site-packages"}
_LAUNCHER = """#!/bin/sh
here=$(cd "$(dirname "$0")" && pwd)
LD_LIBRARY_PATH="$here/../lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" exec "$here/python3.11" "$@"
"""


def _stdlib_filter(folder: str, names: list[str]) -> set[str]:
    top = Path(folder) == Path(sysconfig.get_paths()["stdlib"])
    return {
        name
        for name in names
        if (top and (name in _LEFT_OUT or name.startswith("config-"))) or name == "__pycache__"
    }


def pack(out: Path, archive: Path, wheel: Path) -> None:
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    if out.exists():
        shutil.rmtree(out)
    (out / "bin").mkdir(parents=True)
    real = Path(os.path.realpath(getattr(sys, "_base_executable", sys.executable)))
    shutil.copy2(real, out / "bin" / version)
    (out / "lib").mkdir()
    if sysconfig.get_config_var("Py_ENABLE_SHARED"):
        for shared in Path(sysconfig.get_config_var("LIBDIR")).glob(f"lib{version}*.so*"):
            shutil.copy2(shared, out / "lib" / shared.name)
    stdlib = out / "lib" / version
    shutil.copytree(sysconfig.get_paths()["stdlib"], stdlib, ignore=_stdlib_filter)
    launcher = out / "bin" / "python"
    launcher.write_text(_LAUNCHER.replace("python3.11", version))
    launcher.chmod(0o755)
    site = stdlib / "site-packages"
    requirements = out / "requirements.txt"
    subprocess.run(
        ["uv", "export", "--frozen", "--only-group", "batch", "--no-emit-project", "--no-hashes",
         "--no-header", "--no-annotate", "--quiet", "-o", str(requirements)],
        check=True,
    )  # fmt: skip
    install = ["uv", "pip", "install", "--quiet", "--python", str(launcher), "--target", str(site)]
    subprocess.run([*install, "-r", str(requirements)], check=True)
    subprocess.run([*install, "--no-deps", str(wheel)], check=True)
    # Byte-compiled once here, not in every executor's first import.
    subprocess.run([str(launcher), "-m", "compileall", "-q", "-j", "0", str(stdlib)], check=False)
    # The batch wheel's modules import with what the group installed, from the copy's
    # site-packages (-I: not from a source tree in the working folder); the service's are absent.
    check = (
        "import churn.workflows.batch, churn.spark.job, churn.spark.call_list, importlib.util, sys;"
        "assert 'sklearn' not in sys.modules; assert not importlib.util.find_spec('churn.serving');"
        "print(sys.prefix); print(churn.__file__)"
    )
    found = subprocess.run(
        [str(launcher), "-I", "-c", check], check=True, capture_output=True, text=True
    ).stdout.split("\n")
    assert Path(found[0]).resolve() == out.resolve(), found
    assert Path(found[1]).resolve().is_relative_to(site.resolve()), found
    with tarfile.open(archive, "w:gz") as packed:
        for entry in sorted(out.iterdir()):
            packed.add(entry, arcname=entry.name)
    size = archive.stat().st_size / (1 << 20)
    print(f"{archive}: {size:.0f} MiB; --archives {archive}#env "
          "--conf spark.pyspark.python=./env/bin/python")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--archive", type=Path, required=True)
    parser.add_argument("--wheel", type=Path, required=True)
    args = parser.parse_args()
    pack(args.out, args.archive, args.wheel)


if __name__ == "__main__":
    main()
