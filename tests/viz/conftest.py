"""Fixtures for the figure tests: a tiny random network saved as a real training checkpoint.

The network is small (ResNet-18 at width 0.25, 4 frames, 112 px input) so a forward pass takes
a fraction of a second on CPU; weights are random, which is all the layout and channel-selection
checks need.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib
import pytest
import torch

matplotlib.use("Agg")  # the builders never use pyplot, but make sure nothing opens a window

from tdrl.config.data import DataConfig  # noqa: E402
from tdrl.config.experiment import Experiment  # noqa: E402
from tdrl.config.model import ModelConfig  # noqa: E402
from tdrl.model.network import TDRLNet, build_model  # noqa: E402

# The shared folder sits beside the repository (tests/viz/conftest.py -> parents[2] is the repo root).
REAL = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "real"
FRAMES_DIR = REAL / "frames"
VIDEO = REAL / "test.mp4"


def tiny_experiment(**model_changes) -> Experiment:
    model = ModelConfig(backbone="resnet18", width=0.25, reduction=4, frames=4, num_classes=5, **model_changes)
    return Experiment(model=model, data=DataConfig(input_size=112, short_side=128))


def save_tiny_checkpoint(directory: Path, seed: int, **model_changes) -> tuple[Path, TDRLNet]:
    from tdrl.train.checkpoint import save_checkpoint

    exp = tiny_experiment(**model_changes)
    torch.manual_seed(seed)
    model = build_model(exp.model)
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    sched = torch.optim.lr_scheduler.StepLR(opt, 1)
    path = save_checkpoint(directory, epoch=0, model=model, optimizer=opt, scheduler=sched,
                           config=exp.flatten(), metrics={}, mlflow_run_id=None)
    return path, model.eval()


@pytest.fixture(scope="session")
def tiny_ckpt(tmp_path_factory) -> tuple[Path, TDRLNet]:
    return save_tiny_checkpoint(tmp_path_factory.mktemp("ckpt_td"), seed=0)


@pytest.fixture(scope="session")
def tiny_ckpt_no_td(tmp_path_factory) -> tuple[Path, TDRLNet]:
    return save_tiny_checkpoint(tmp_path_factory.mktemp("ckpt_no_td"), seed=1, td_lambda=0.0)


@pytest.fixture(scope="session")
def real_frames_dir() -> Path:
    if not FRAMES_DIR.is_dir():
        pytest.skip(f"{FRAMES_DIR} not available")
    return FRAMES_DIR


@pytest.fixture(scope="session")
def real_video() -> Path:
    if not VIDEO.is_file():
        pytest.skip(f"{VIDEO} not available")
    return VIDEO
