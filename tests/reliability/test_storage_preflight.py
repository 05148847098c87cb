"""Unwritable or full storage is refused before Ray starts, naming the option and the folder
(tdrl.train.trainer.preflight_storage, called by fit before connect_ray).

Tests run as root here, where ``chmod 0o500`` does not stop writes; the robust unwritable paths
are a folder whose parent is a regular file (mkdir fails for anyone) and, for non-root users, a
read-only folder. A full disk is simulated by patching ``shutil.disk_usage``.
"""

from __future__ import annotations

import os
import shutil
from collections import namedtuple
from pathlib import Path

import pytest

from tdrl.config import ConfigError
from tdrl.train import trainer

Usage = namedtuple("Usage", "total used free")


@pytest.fixture
def no_ray(monkeypatch):
    """Record (and refuse) any attempt to start or join Ray."""
    calls: list[int] = []

    def refuse():
        calls.append(1)
        raise AssertionError("Ray was started although the storage preflight should have refused")

    monkeypatch.setattr(trainer, "connect_ray", refuse)
    return calls


def test_storage_under_a_regular_file_is_refused_before_ray(tiny_experiment, tmp_path, no_ray):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file")
    exp = tiny_experiment(train__storage_path=str(blocker / "runs"))
    with pytest.raises(ConfigError, match=r"train\.storage_path=.*not-a-folder/runs: .*not-a-folder is a file"):
        trainer.fit(exp)
    assert not no_ray


def test_mlflow_folder_under_a_regular_file_is_refused(tiny_experiment, tmp_path, no_ray):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    exp = tiny_experiment(train__mlflow_uri=f"sqlite:///{blocker}/sub/mlflow.db")
    with pytest.raises(ConfigError, match=r"train\.mlflow_uri=sqlite:///.*file/sub/mlflow\.db: .* is a file"):
        trainer.fit(exp)
    assert not no_ray


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into 0o500 folders; covered by the file-parent case")
def test_read_only_folder_is_refused(tiny_experiment, tmp_path, no_ray):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        with pytest.raises(ConfigError, match=r"train\.storage_path=.*cannot write to"):
            trainer.fit(tiny_experiment(train__storage_path=str(ro / "runs")))
    finally:
        ro.chmod(0o700)
    assert not no_ray


def test_failing_probe_write_is_refused(tiny_experiment, tmp_path, no_ray, monkeypatch):
    """A folder that exists but refuses writes (read-only mount, EACCES, ENOSPC at write time)."""
    real_write = Path.write_bytes

    def refuse(self, data):
        if self.name.startswith(".tdrl-write-probe-"):
            raise OSError(30, "Read-only file system")
        return real_write(self, data)

    monkeypatch.setattr(Path, "write_bytes", refuse)
    with pytest.raises(ConfigError, match=r"train\.storage_path=.*cannot write to .*Read-only file system"):
        trainer.fit(tiny_experiment())
    assert not no_ray


@pytest.mark.parametrize("full", ["storage", "mlflow"])
def test_full_disk_is_refused_before_ray_and_creates_nothing(tiny_experiment, tmp_path, no_ray, monkeypatch, full):
    exp = tiny_experiment(train__storage_path=str(tmp_path / "store" / "runs"),
                          train__mlflow_uri=f"sqlite:///{tmp_path / 'track' / 'mlflow.db'}")
    real = shutil.disk_usage
    target = tmp_path / ("store" if full == "storage" else "track")

    def usage(path):
        u = real(path)
        # The nearest existing folder of the full location is tmp_path itself (nothing created yet);
        # report 5 MiB free there only while checking that location.
        return Usage(u.total, u.used, 5 * 2**20) if checking[0] == full else u

    checking = [""]
    real_check = trainer._check_folder

    def check(field, value, folder, min_free):
        checking[0] = "storage" if field == "train.storage_path" else "mlflow"
        return real_check(field, value, folder, min_free)

    monkeypatch.setattr(shutil, "disk_usage", usage)
    monkeypatch.setattr(trainer, "_check_folder", check)
    field = "train.storage_path" if full == "storage" else "train.mlflow_uri"
    with pytest.raises(ConfigError, match=rf"{field}=.*only 5 MiB free .*at least 100 MiB"):
        trainer.fit(exp)
    assert not no_ray
    assert not target.exists(), "a full disk must not get new folders"


def test_minimum_is_configurable_and_writable_storage_passes(tiny_experiment, tmp_path, monkeypatch):
    exp = trainer.resolve(tiny_experiment())
    trainer.preflight_storage(exp)  # writable, enough space: no error
    assert Path(exp.train.storage_path).is_dir()
    assert not list(Path(exp.train.storage_path).glob(".tdrl-write-probe-*"))  # the probe is removed
    monkeypatch.setenv("TDRL_MIN_FREE_MB", str(10**12))  # more than any disk
    with pytest.raises(ConfigError, match="TDRL_MIN_FREE_MB"):
        trainer.preflight_storage(exp)


def test_remote_storage_is_left_to_its_client(tiny_experiment, monkeypatch):
    checked: list[str] = []
    monkeypatch.setattr(trainer, "_check_folder", lambda field, value, folder, min_free: checked.append(field))
    exp = tiny_experiment(train__storage_path="s3://bucket/tdrl", train__mlflow_uri="http://127.0.0.1:1")
    trainer.preflight_storage(exp)
    assert checked == []  # no local folder to check (none created), no network access attempted
    # A remote store beside a local SQLite database: only the database's folder is checked.
    trainer.preflight_storage(tiny_experiment(train__storage_path="s3://bucket/tdrl"))
    assert checked == ["train.mlflow_uri"]
