"""Remote data staged on every node before the training workers form their process group
(tdrl.train.node_staging): the driver's pinned task per node, the worker group's backend that stages
before ``init_process_group``, a bad source refused naming node and file, and ``fit``'s order."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tdrl.data.manifest import write_manifest
from tdrl.data.shards import pack_folder
from tdrl.data.staging import COMPLETE, StagingError

pytestmark = pytest.mark.bookkeeping_only  # files staged and calls made: nothing computed by SIMD kernels


def _bucket(root: Path) -> Path:
    for v in range(3):
        (root / "frames" / str(v)).mkdir(parents=True)
        (root / "frames" / str(v) / "00001.jpg").write_bytes(bytes([v]) * 1000)
    (root / "train.txt").write_text("frames/0 1 0\n")
    return root


@pytest.fixture
def remote(tmp_path):
    """A packed ``file://`` source; the copies the Ray workers make (under their own stage root, the
    default ``<tmp>/tdrl-stage``, as the node's setting) are removed afterwards."""
    pack_folder(_bucket(tmp_path / "src"), tmp_path / "bucket", shard_size=1500)
    made: list[str] = []
    yield f"file://{tmp_path / 'bucket'}", made
    for path in made:
        for p in (Path(path), Path(path + ".lock")):
            shutil.rmtree(p, ignore_errors=True) if p.is_dir() else p.unlink(missing_ok=True)


def test_the_driver_stages_each_node_once_with_a_pinned_task(ray_session, remote):
    from tdrl.train.node_staging import stage_on_nodes

    uri, made = remote
    first = stage_on_nodes(uri, {"CPU": 1})
    made.append(first[0]["path"])
    assert len(first) == 1 and first[0]["copied_shards"] == first[0]["shards"] >= 2
    assert (Path(first[0]["path"]) / COMPLETE).is_file()
    again = stage_on_nodes(uri, {"CPU": 1})
    assert again[0]["copied_files"] == 0 and again[0]["path"] == first[0]["path"]
    assert stage_on_nodes(uri, {"CPU": 1, "GPU": 1}) == []  # no node here could host a GPU worker


def test_a_bad_source_stops_the_driver_naming_node_and_file(ray_session, tmp_path):
    from tdrl.train.node_staging import stage_on_nodes

    (tmp_path / "empty").mkdir()
    with pytest.raises(StagingError, match=r"staging on node .*: file://.*/empty: neither tdrl-shards.tsv nor "
                                           r"tdrl-manifest.tsv found") as exc:
        stage_on_nodes(f"file://{tmp_path / 'empty'}", {"CPU": 1})
    assert "Traceback" not in str(exc.value)


def test_each_worker_group_stages_before_its_process_group(ray_session, remote, tmp_path):
    import ray.train
    from ray.train.torch import TorchTrainer

    from tdrl.data.staging import local_folder
    from tdrl.train.node_staging import StagingTorchConfig

    def check_staged(config):  # defined here: pickled by value for the workers
        import torch.distributed as dist

        from tdrl.data.staging import local_folder

        # This function never stages: the data must be there, and the process group formed after it.
        return {"staged": (local_folder(config["uri"]) / ".tdrl-staged").is_file(),
                "group": dist.get_world_size() if dist.is_initialized() else 0}

    uri, made = remote
    made.append(str(local_folder(uri)))  # the workers' stage root is this process's default too
    trainer = TorchTrainer(check_staged, train_loop_config={"uri": uri},
                           torch_config=StagingTorchConfig(backend="gloo", data_root=uri),
                           scaling_config=ray.train.ScalingConfig(num_workers=2),
                           run_config=ray.train.RunConfig(name="staging", storage_path=str(tmp_path / "runs")))
    result = trainer.fit()
    assert result.return_value == {"staged": True, "group": 2}  # rank 0's


def test_the_trainer_config_stages_only_a_remote_root():
    from tdrl.config.experiment import Experiment
    from tdrl.train.node_staging import StagingTorchConfig
    from tdrl.train.trainer import build_trainer

    base = {"model.backbone": "resnet18", "model.num_classes": 2, "train.name": "r", "train.storage_path": "/x",
            "train.use_gpu": False}
    remote = build_trainer(Experiment.from_flat({**base, "data.root": "s3://bucket/set"}), {}).backend_config
    assert isinstance(remote, StagingTorchConfig) and (remote.data_root, remote.backend) == ("s3://bucket/set", "gloo")
    local = build_trainer(Experiment.from_flat({**base, "data.root": "/data/set"}), {}).backend_config
    assert not isinstance(local, StagingTorchConfig)


def test_fit_stages_the_nodes_before_the_trainer_starts(monkeypatch, tmp_path):
    from tdrl.config.experiment import Experiment
    from tdrl.data.synthetic import generate_synthetic
    from tdrl.train import node_staging, trainer

    root = tmp_path / "synth"
    generate_synthetic(root, num_classes=2, train_per_class=1, val_per_class=1, frames=4, size=32, seed=0, workers=1)
    write_manifest(root)
    calls = []

    class Stop(Exception):
        pass

    class Trainer:
        def fit(self):
            calls.append("fit")
            raise Stop

    monkeypatch.setattr(trainer, "prepare_cluster", lambda exp: (exp, False))
    monkeypatch.setattr(node_staging, "stage_on_nodes", lambda uri, res: calls.append(("stage", uri, res)))
    monkeypatch.setattr(trainer, "build_trainer", lambda exp, run, callbacks=(): Trainer())
    monkeypatch.setenv("TDRL_STAGE_DIR", str(tmp_path / "stage"))  # the driver's annotation check
    exp = Experiment.from_flat({"model.backbone": "resnet18", "model.num_classes": 2, "data.root": f"file://{root}",
                                "train.use_gpu": False, "train.cpus_per_worker": 3, "train.name": "n",
                                "train.storage_path": str(tmp_path / "runs"),
                                "train.mlflow_uri": f"sqlite:///{tmp_path / 'm.db'}"})
    with pytest.raises(Stop):
        trainer.fit(exp)
    assert calls == [("stage", f"file://{root}", {"CPU": 3}), "fit"]
