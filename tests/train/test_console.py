"""A quiet console (issue 12): Ray Train's per-rank bookkeeping stays off the console, tdrl's epoch
lines and everyone's warnings stay on it."""

from __future__ import annotations

import io
import logging
import os
import subprocess
import sys

import pytest


@pytest.fixture
def root_console():
    """A console handler on the root logger, as Ray Train's workers have one; removed afterwards."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    yield stream
    root.removeHandler(handler)
    root.setLevel(level)


def test_ray_train_info_records_are_dropped_whatever_their_logger_is_named(root_console):
    import ray.train.v2._internal.execution.context as context

    from tdrl.train.console import quiet_console

    quiet_console()
    quiet_console()  # idempotent: one filter per handler
    # Ray 2.60 names this logger after its file path, so a filter on "ray.train" would miss it; the
    # records are made as if logged from that file (a record's pathname is where it was logged).
    by_path = logging.getLogger(context.__file__)
    for level, message in ((logging.INFO, "Reporting training result 1: TrainingReport(...) from rank 1"),
                           (logging.WARNING, "a Ray Train warning stays")):
        by_path.handle(by_path.makeRecord(by_path.name, level, context.__file__, 391, message, (), None))
    logging.getLogger("tdrl.example").info("[tdrl] epoch 1/2 stays")
    text = root_console.getvalue()
    assert "Reporting training result" not in text
    assert "a Ray Train warning stays" in text and "[tdrl] epoch 1/2 stays" in text
    handler = logging.getLogger().handlers[-1]
    assert sum(type(f).__name__ == "RayTrainConsoleFilter" for f in handler.filters) == 1


def test_every_trainer_logs_ray_train_at_warning(tmp_path):
    from tdrl.config.experiment import Experiment
    from tdrl.train.trainer import build_trainer, resolve

    trainer = build_trainer(resolve(Experiment(), tmp_path), {"run_name": "tiny"})
    assert trainer.run_config.logging_config.log_level == "WARNING"


CONSOLE_LINES = 12  # besides one line per epoch: data, Ray start, run, controller notice, 4 summary lines


@pytest.mark.slow
def test_smoke_run_console_is_one_line_per_epoch(tmp_path):
    """``tdrl train`` on the smoke preset (2 epochs) as a real process, 2 DDP workers."""
    env = {**os.environ, "RAY_ADDRESS": "", "MLFLOW_TRACKING_URI": ""}
    out = subprocess.run([sys.executable, "-m", "tdrl.cli", "train", "--epochs", "2", "--name", "quiet"],
                         cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900)
    lines = (out.stdout + out.stderr).splitlines()
    assert out.returncode == 0, "\n".join(lines[-30:])
    assert sum("[tdrl] quiet epoch" in line for line in lines) == 2
    for noise in ("Reporting training result", "Checkpoint successfully created", "Moving model to device",
                  "Started training worker group", "Creating initial MLflow database tables"):
        assert not any(noise in line for line in lines), noise
    assert len(lines) <= 2 + CONSOLE_LINES, "\n".join(lines)
