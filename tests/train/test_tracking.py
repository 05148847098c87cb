"""tdrl.train.tracking, the one MLflow module: the default URI every command shares (issue 12,
bug 1: ``tdrl train`` ignored ``MLFLOW_TRACKING_URI``), find-or-create runs with parents, params
past MLflow's 100-per-batch limit, and child runs read without touching the global tracking URI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tdrl.train import tracking

pytestmark = pytest.mark.bookkeeping_only  # MLflow runs, params and tags: nothing computed by SIMD kernels


def test_uri_precedence_option_then_env_then_local_sqlite(monkeypatch, tmp_path):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert tracking.tracking_uri(None, tmp_path) == f"sqlite:///{tmp_path.resolve()}/mlflow.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://mlflow.example:5000")
    assert tracking.tracking_uri(None, tmp_path) == "http://mlflow.example:5000"
    assert tracking.tracking_uri("http://other:5000", tmp_path) == "http://other:5000"
    # A relative sqlite path (from the option or the environment) is made absolute: workers run elsewhere.
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "sqlite:///sub/t.db")
    assert tracking.tracking_uri(None, tmp_path) == f"sqlite:///{tmp_path.resolve()}/sub/t.db"
    assert tracking.tracking_uri("sqlite:////abs/t.db", tmp_path) == "sqlite:////abs/t.db"


def _dry_run(capsys, *args: str) -> dict:
    from tdrl.cli import main

    assert main(["train", "--dry-run", *args]) == 0
    return json.loads(capsys.readouterr().out)


def test_train_dry_run_honours_mlflow_tracking_uri(monkeypatch, tmp_path, capsys):
    """Regression (issue 12, bug 1): the environment's server, not ./mlflow.db; the option still wins."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://mlflow.example:5000")
    assert _dry_run(capsys)["train.mlflow_uri"] == "http://mlflow.example:5000"
    assert _dry_run(capsys, "--mlflow-uri", "http://other:5000")["train.mlflow_uri"] == "http://other:5000"
    monkeypatch.delenv("MLFLOW_TRACKING_URI")
    assert _dry_run(capsys)["train.mlflow_uri"] == f"sqlite:///{tmp_path.resolve()}/mlflow.db"


@pytest.fixture
def store(tmp_path) -> str:
    return f"sqlite:///{tmp_path / 'mlflow.db'}"


def test_find_or_create_run_nests_logs_all_params_and_finds_the_same_run(store):
    params = {f"p{i:03d}": i for i in range(250)} | {"long": "x" * 7000, "none": None}
    parent, resumed = tracking.find_or_create_run(store, "t", run_name="study", match={tracking.ROLE_TAG: "study"},
                                                  params={"a": 1})
    assert not resumed
    child, resumed = tracking.start_run(store, "t", "trial-1", params, parent_run_id=parent, tags={"k": 3})
    assert not resumed
    run = tracking.get_run(store, child)
    assert len(run.data.params) == 252  # three batches of at most 100
    assert run.data.params["p249"] == "249" and run.data.params["none"] == "None"
    assert len(run.data.params["long"]) == tracking.PARAM_VALUE_LIMIT
    assert run.data.tags[tracking.PARENT_TAG] == parent and run.data.tags["k"] == "3"
    assert run.data.tags[tracking.RUN_NAME_TAG] == "trial-1"

    tracking.end_run(store, child, "FINISHED")
    again, resumed = tracking.start_run(store, "t", "trial-1", params)
    assert (again, resumed) == (child, True)
    assert tracking.get_run(store, child).info.status == "RUNNING"
    # By a known id (a study's state file), or by tags when the id belongs to another store.
    assert tracking.find_or_create_run(store, "t", run_name="study", match={tracking.ROLE_TAG: "study"},
                                       known_run_id=parent) == (parent, True)
    assert tracking.find_or_create_run(store, "t", run_name="study", match={tracking.ROLE_TAG: "study"},
                                       known_run_id="0" * 32) == (parent, True)
    assert tracking.find_run(store, "t", "trial-1") == child
    assert tracking.find_run(store, "t", "nope") is None
    assert tracking.find_run(store, "missing-experiment", "trial-1") is None


def test_child_runs_leave_the_global_tracking_uri_alone(store, monkeypatch):
    import mlflow

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    before = mlflow.get_tracking_uri()
    parent, _ = tracking.find_or_create_run(store, "t", run_name="p", match={tracking.ROLE_TAG: "study"})
    kids = [tracking.start_run(store, "t", f"c{i}", {}, parent_run_id=parent, tags={tracking.SEED_TAG: i})[0]
            for i in range(3)]
    tracking.start_run(store, "t", "unrelated", {})
    frame = tracking.child_runs(store, "t", parent)
    assert sorted(frame["run_id"]) == sorted(kids)
    assert sorted(frame[f"tags.{tracking.SEED_TAG}"]) == ["0", "1", "2"]
    assert set(frame["status"]) == {"RUNNING"}
    assert mlflow.get_tracking_uri() == before
    assert tracking.child_runs(store, "missing", parent).empty


def test_finish_run_writes_artifacts_tag_and_status(store, tmp_path):
    run_id, _ = tracking.start_run(store, "t", "r", {})
    tracking.finish_run(store, run_id, status="FINISHED", config={"a": 1}, final_metrics={"val_top1": 50.0},
                        best_checkpoint="/ckpt/epoch_0001")
    run = tracking.get_run(store, run_id)
    assert run.info.status == "FINISHED"
    assert run.data.tags[tracking.BEST_CHECKPOINT_TAG] == "/ckpt/epoch_0001"
    names = {f.path for f in tracking.mlflow_client(store).list_artifacts(run_id)}
    assert names == {"config.json", "final_metrics.json"}
    # Artifacts of a sqlite store live next to the database, not in the current folder.
    assert Path(run.info.artifact_uri.removeprefix("file://")).is_relative_to(tmp_path)
