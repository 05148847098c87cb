"""Slow: a study submitted with `ray job submit` to a real local Ray head, and a study whose driver is
killed mid-way, then resumed without re-running finished trials or duplicating MLflow runs."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from study_helpers import REPO, TINY, child_runs, set_args

pytestmark = pytest.mark.slow


def test_ray_job_submit_smoke_study(ray_head, study_data, tmp_path):
    from tdrl.train.cluster import ray_command

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    runtime_env = {"env_vars": {"MLFLOW_TRACKING_URI": uri, "TDRL_STORAGE": str(tmp_path / "storage"),
                                "RAY_TRAIN_HEALTH_CHECK_INTERVAL_S": "0.2"}}
    # This Python's `ray` and `python`: a venv need not be activated (the job runs on this machine).
    cmd = [*ray_command(), "job", "submit", "--address", ray_head["dashboard"], "--working-dir", str(REPO),
           "--runtime-env-json", json.dumps(runtime_env), "--",
           sys.executable, "studies/ablation_ratio.py", "--rows", "ratio0,ratio100", "--data", study_data,
           "--name", "t5-job", *set_args(TINY)]
    t0 = time.time()
    out = subprocess.run(cmd, env=ray_head["env"], capture_output=True, text=True, timeout=900, cwd=tmp_path)
    print(f"ray job submit: {time.time() - t0:.0f}s")
    log = out.stdout + out.stderr
    assert out.returncode == 0, log[-6000:]
    assert "succeeded" in log, log[-3000:]
    assert "| +100% TDLoss | 47.3 |" in log  # the table the job printed
    runs = child_runs(uri, "tdrl-table5")
    assert sorted(r.data.tags["tdrl.row"] for r in runs) == ["ratio0", "ratio100"]
    assert all(r.info.status == "FINISHED" for r in runs)
    # The trials ran on the cluster, with the job's storage.
    assert (tmp_path / "storage" / "t5-job" / "tdrl_study.json").is_file()


def _wait_for(predicate, timeout: float, what: str, proc=None):
    t0 = time.time()
    while time.time() - t0 < timeout:
        if predicate():
            return
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"the driver exited ({proc.returncode}) before {what}")
        time.sleep(1)
    raise AssertionError(f"timed out waiting for {what}")


def test_killed_driver_resumes_without_rerunning_or_duplicating(ray_head, study_data, tmp_path):
    """3 rows one at a time (2 epochs each) on the head; SIGKILL the driver once the first row has
    finished and the second is training; run the same command again: it completes, the first row's
    MLflow run is untouched, and there is exactly one run per row."""
    from mlflow.tracking import MlflowClient

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    args = ["--rows", "ratio0,ratio25,ratio50", "--data", study_data, "--name", "t5-kill", "--storage",
            str(tmp_path / "storage"), "--mlflow-uri", uri, "--max-concurrent", "1",
            *set_args({**TINY, "train.epochs": 2})]
    env = {**ray_head["env"], "RAY_ADDRESS": ray_head["gcs"]}
    log1 = open(tmp_path / "driver1.log", "w")
    driver = subprocess.Popen([sys.executable, str(REPO / "studies" / "ablation_ratio.py"), *args], cwd=tmp_path,
                              env=env, stdout=log1, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        def first_done_second_started():
            runs = child_runs(uri, "tdrl-table5")
            done = [r for r in runs if r.info.status == "FINISHED"]
            return len(done) == 1 and any(r.info.status == "RUNNING" for r in runs)

        _wait_for(first_done_second_started, 600, "the first trial to finish and the second to start", driver)
        time.sleep(3)  # let the second trial get into training
    finally:
        os.killpg(driver.pid, signal.SIGKILL)
        driver.wait()
        log1.close()
    before = {r.data.tags["tdrl.row"]: r for r in child_runs(uri, "tdrl-table5")}
    finished = [r for r in before.values() if r.info.status == "FINISHED"]
    assert len(finished) == 1
    first = finished[0]
    first_history = MlflowClient(uri).get_metric_history(first.info.run_id, "train_loss")
    assert len(first_history) == 2

    out = subprocess.run([sys.executable, str(REPO / "studies" / "ablation_ratio.py"), *args], cwd=tmp_path,
                         env=env, capture_output=True, text=True, timeout=900)
    log = out.stdout + out.stderr
    (tmp_path / "driver2.log").write_text(log)
    assert out.returncode == 0, log[-6000:]
    assert "resuming study t5-kill" in log

    after = child_runs(uri, "tdrl-table5")
    rows = sorted(r.data.tags["tdrl.row"] for r in after)
    assert rows == ["ratio0", "ratio25", "ratio50"], "one MLflow run per row, none duplicated"
    assert all(r.info.status == "FINISHED" for r in after)
    again = next(r for r in after if r.info.run_id == first.info.run_id)
    assert again.info.end_time == first.info.end_time, "the finished trial was run again"
    assert len(MlflowClient(uri).get_metric_history(first.info.run_id, "train_loss")) == 2
    for r in after:  # every run has each epoch exactly once, also the interrupted one
        assert sorted(m.step for m in MlflowClient(uri).get_metric_history(r.info.run_id, "train_loss")) == [0, 1]
    # The parent run is the same one (its id persisted in the study folder), and it finished.
    parents = {r.data.tags["mlflow.parentRunId"] for r in after}
    state = json.loads((tmp_path / "storage" / "t5-kill" / "tdrl_study.json").read_text())
    assert parents == {state["parent_run_id"]}
    assert MlflowClient(uri).get_run(state["parent_run_id"]).info.status == "FINISHED"
