"""Bad configuration files, options and checkpoints are refused with the field or file named, before
Ray is started or joined (``ray.init`` is a tripwire here) and before the storage folder exists.

Malformed annotations and media are covered by tests/data (see docs/reliability.md)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import torch

from rel_helpers import run_guarded_tdrl


@pytest.fixture
def guarded_main(monkeypatch, capsys):
    """``tdrl.cli.main(argv)`` with ``ray.init`` refused; returns (exit code, stderr, ray-init calls)."""
    import ray

    calls: list[int] = []

    def tripwire(*a, **k):
        calls.append(1)
        raise AssertionError("ray.init called for an input that should have been refused first")

    monkeypatch.setattr(ray, "init", tripwire)

    def run(argv: list[str]) -> tuple[int, str, int]:
        from tdrl.cli import main

        capsys.readouterr()
        try:
            code = main(argv)
        except SystemExit as exc:  # argparse / ConfigError exit
            code = exc.code
        return code, capsys.readouterr().err, len(calls)

    return run


CONFIG_FILES = [  # (file name, content, what the message must name)
    ("type.yaml", "train:\n  epochs: ten\n", r"type\.yaml: train\.epochs='ten' must be an integer"),
    ("unknown.yaml", "model:\n  td_ratio: 0.5\n  bogus: 1\n", r"unknown\.yaml: unknown key\(s\) model\.bogus"),
    ("range.yaml", "model.td_ratio: 1.5\n", r"range\.yaml: model\.td_ratio=1\.5 is out of range"),
    ("section.yaml", "optim:\n  lr: 0.1\n", r"section\.yaml: unknown key 'optim'"),
    ("syntax.yaml", "model: [1, 2\n", r"syntax\.yaml: not valid YAML"),
    ("list.yaml", "- 1\n- 2\n", r"list\.yaml: the top level must be a mapping"),
    ("float.json", '{"train.batch_size": 2.5}', r"float\.json: train\.batch_size=2\.5 must be an integer"),
    ("choice.json", '{"model": {"temporal": "lstm"}}', r"choice\.json: model\.temporal='lstm' is not allowed"),
    ("bool.yaml", "data:\n  flip: maybe\n", r"bool\.yaml: data\.flip='maybe' must be true or false"),
    ("cross.yaml", "data: {input_size: 300, short_side: 256}\n", r"cross\.yaml: data\.input_size=300 is larger"),
]


@pytest.mark.parametrize("name,content,message", CONFIG_FILES, ids=[c[0] for c in CONFIG_FILES])
def test_bad_config_file_is_refused_before_ray(guarded_main, tmp_path, name, content, message):
    f = tmp_path / name
    f.write_text(content)
    store = tmp_path / "runs"
    code, err, ray_calls = guarded_main(["train", "--config", str(f), "--storage-path", str(store)])
    assert code == 2 and ray_calls == 0
    assert __import__("re").search(message, err), err
    assert not store.exists()


def test_missing_config_file_is_named(guarded_main, tmp_path):
    code, err, ray_calls = guarded_main(["train", "--config", str(tmp_path / "nope.yaml")])
    assert code == 2 and ray_calls == 0 and "cannot read configuration file" in err and "nope.yaml" in err


OPTIONS = [  # (options, what the message must name)
    (["--epochs", "ten"], "train.epochs='ten' must be an integer"),
    (["--lr-gamma", "2"], "train.lr_gamma=2.0 is out of range"),
    (["--td-ratio", "-0.1"], "model.td_ratio=-0.1 is out of range"),
    (["--batch-size", "0"], "train.batch_size=0 must be >= 1"),
    (["--frames", "1"], "model.frames=1 must be >= 2"),
    (["--name", "../escape"], "train.name='../escape' must start with a letter or digit"),
    (["--workers", "1", "--fail-rank", "3"], "train.fail_rank=3 must be below train.workers=1"),
    (["--lr-steps", "40,30"], "train.lr_steps=(40, 30) must be strictly increasing"),
    (["--precision", "fp16"], "argument --precision: invalid choice: 'fp16'"),
    (["--use-gpu", "yes"], "unrecognized arguments: yes"),
]


@pytest.mark.parametrize("options,message", OPTIONS, ids=[o[0][0] + "=" + o[0][1] for o in OPTIONS])
def test_bad_option_is_refused_before_ray(guarded_main, tmp_path, options, message):
    store = tmp_path / "runs"
    code, err, ray_calls = guarded_main(["train", *options, "--storage-path", str(store)])
    assert code == 2 and ray_calls == 0
    assert message in err, err
    assert not store.exists()


def test_cli_subprocess_fails_fast_without_ray_or_storage(tmp_path):
    """The real command in its own process: exit 2 with the file and field named, within seconds,
    ray.init never reached, no storage folder created, no MLflow store created."""
    f = tmp_path / "bad.yaml"
    f.write_text("model:\n  backbone: resnet50\n  num_classes: many\n")
    t0 = time.time()
    out = run_guarded_tdrl(["train", "--config", str(f), "--storage-path", str(tmp_path / "runs")], cwd=tmp_path)
    took = time.time() - t0
    assert out.returncode == 2, out.stdout + out.stderr
    assert "bad.yaml: model.num_classes='many' must be an integer" in out.stderr
    assert "RAY-INIT-CALLED" not in out.stdout
    assert not (tmp_path / "runs").exists() and not (tmp_path / "mlflow.db").exists()
    assert took < 60, f"refusal took {took:.0f}s"


# --- checkpoints ------------------------------------------------------------------------------

def _finished_checkpoint(tmp_path: Path, flat: dict) -> Path:
    from tdrl.config import Experiment
    from tdrl.model.network import build_model
    from tdrl.train.checkpoint import save_checkpoint

    model = build_model(Experiment.from_flat(flat).model)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda e: 1.0)
    return save_checkpoint(tmp_path, epoch=0, model=model, optimizer=opt, scheduler=sched, config=flat,
                           metrics={"epoch": 0}, mlflow_run_id="r")


def test_resume_with_another_architecture_or_class_count_is_refused_before_ray(tiny_experiment, monkeypatch):
    """A run resumed by name whose newest checkpoint is of another network, another number of
    classes, or truncated: ConfigError naming the run and the checkpoint file, Ray never started."""
    from tdrl.config import ConfigError
    from tdrl.train import trainer

    monkeypatch.setattr(trainer, "connect_ray", lambda: (_ for _ in ()).throw(AssertionError("Ray started")))
    exp = trainer.resolve(tiny_experiment(train__name="resumed"))
    run_dir = Path(exp.train.storage_path) / "resumed" / "epoch_0000"
    other = {**exp.flatten(), "model.backbone": "resnet34"}
    ckpt = _finished_checkpoint(run_dir, other)
    with pytest.raises(ConfigError, match=r"train\.name=resumed resumes from .*epoch_0000/checkpoint\.pt.*"
                                          r"model\.backbone='resnet34' \(expected 'resnet18'\)"):
        trainer.fit(exp)
    _finished_checkpoint(run_dir, {**exp.flatten(), "model.num_classes": 9})
    with pytest.raises(ConfigError, match=r"model\.num_classes=9 \(expected 4\)"):
        trainer.fit(exp)
    data = ckpt.read_bytes()
    ckpt.write_bytes(data[: len(data) // 3])
    with pytest.raises(ConfigError, match=r"checkpoint\.pt: cannot be read .*truncated"):
        trainer.fit(exp)


def test_eval_refuses_truncated_and_foreign_checkpoints_naming_the_file(tmp_path, capsys):
    from tdrl.cli import main

    flat = {"model.backbone": "resnet18", "model.width": 0.25, "model.reduction": 4, "model.frames": 4,
            "model.num_classes": 4}
    from tdrl.config import Experiment

    ckpt = _finished_checkpoint(tmp_path / "ok", Experiment.from_flat(flat).flatten())
    data = ckpt.read_bytes()
    bad = tmp_path / "trunc" / "checkpoint.pt"
    bad.parent.mkdir()
    bad.write_bytes(data[: len(data) // 2])
    assert main(["eval", str(bad.parent)]) == 2
    assert f"{bad}: cannot be read" in capsys.readouterr().err
    foreign = tmp_path / "foreign" / "checkpoint.pt"
    foreign.parent.mkdir()
    torch.save({"state_dict": {"w": torch.zeros(1)}}, foreign)  # some other project's file
    assert main(["eval", str(foreign)]) == 2
    assert f"{foreign}: not a tdrl checkpoint" in capsys.readouterr().err


@pytest.mark.parametrize("split,file", [("train", "something-something-v2-train.json"),
                                        ("val", "something-something-v2-validation.json")])
def test_an_empty_split_is_refused_naming_the_root_and_split(tmp_path, split, file):
    from tdrl.config import ConfigError, Experiment
    from tdrl.data.synthetic import generate_synthetic
    from tdrl.train.trainer import preflight

    generate_synthetic(tmp_path, num_classes=2, train_per_class=1, val_per_class=1, frames=4, size=32, seed=0,
                       workers=1)
    (tmp_path / file).write_text("[]")  # the class list stays: only the split is empty
    exp = Experiment.from_flat({"model.num_classes": 2, "data.dataset": "sthv2", "data.root": str(tmp_path)})
    with pytest.raises(ConfigError, match=rf"data\.root={tmp_path}: the {split} split is empty"):
        preflight(exp)
