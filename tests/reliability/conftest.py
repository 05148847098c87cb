"""Reliability-suite fixtures: reuse the training and study tests' helpers instead of copying them.

``tests/train/conftest.py`` owns the tiny synthetic set (``tiny_data``) and the tiny experiment
factory (``tiny_experiment``); it is loaded here under its own module name and its fixtures are
re-exported, so both suites build the same runs. ``train_helpers`` (MLflow look-ups) and the
two-node helpers of ``tests/train/test_slow_runs.py`` are imported from there as well.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]
for folder in (TESTS / "train", TESTS / "study"):
    if str(folder) not in sys.path:
        sys.path.insert(0, str(folder))


def _load(path: Path, name: str):
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


_train_conftest = _load(TESTS / "train" / "conftest.py", "tdrl_tests_train_conftest")
tiny_data = _train_conftest.tiny_data
tiny_experiment = _train_conftest.tiny_experiment
