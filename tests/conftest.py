"""Shared test fixtures: one Ray instance per test session (starting Ray costs seconds).

``RAY_TRAIN_HEALTH_CHECK_INTERVAL_S`` must be in the environment before ``ray.init`` so the
controller and workers inherit it; 0.2 s roughly halves small Train runs' overhead.
The ``TRAIN_DRIVER`` custom resource lets Tune trial drivers run without taking a CPU (see
../shared/docs/ray-mlflow-notes.md beside the repository): 2-worker DDP trials then fit on 2 CPUs.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("RAY_TRAIN_HEALTH_CHECK_INTERVAL_S", "0.2")
# tdrl's Triton kernels (model.kernels=triton) run on CPU tensors in Triton's interpreter, which Triton
# reads once, when it is first imported (torchvision imports it): so here, before anything imports torch.
# Not where a GPU is present: there the gpu tests run the compiled kernels.
if not any(Path("/dev").glob("nvidia[0-9]*")):
    os.environ.setdefault("TRITON_INTERPRET", "1")
# A run whose resources can never be met should fail a test, not hang it.
os.environ.setdefault("RAY_TRAIN_WORKER_GROUP_START_TIMEOUT_S", "60")


@pytest.fixture(scope="session")
def ray_session():
    """A local 2-CPU Ray instance shared by every test that asks for it."""
    import ray

    from ray_helpers import start_test_ray

    if not ray.is_initialized():
        start_test_ray()  # its own instance, never a cluster that runs (or ran) on this machine
    yield ray
    ray.shutdown()
