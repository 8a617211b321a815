"""Tests of deploy/: the region bundle, and the real images' bundle in CI."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parent.parent.parent
DEPLOY = ROOT / "deploy"


def bundle_module() -> ModuleType:
    """deploy/bundle.py, a script (the bundle carries a copy), loaded as a module."""
    if "churn_bundle" not in sys.modules:
        spec = importlib.util.spec_from_file_location("churn_bundle", DEPLOY / "bundle.py")
        assert spec is not None
        assert spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules["churn_bundle"] = module  # dataclasses look their module up here
        spec.loader.exec_module(module)
    return sys.modules["churn_bundle"]
