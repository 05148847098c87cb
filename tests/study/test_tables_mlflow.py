"""A study read at a glance in the MLflow UI (real SQLite store, no Ray): the parent run's per-row
metrics, child runs named as the table reads, and resumption by tag whatever a run is called."""

from __future__ import annotations

import math

import pytest

from tdrl.study.definitions import get_study
from tdrl.study.naming import trial_label
from tdrl.study.tables import report, table_metrics
from tdrl.train import tracking


def test_trial_labels_read_as_the_table():
    assert trial_label("+50% TDLoss", {}, 0) == "+50% TDLoss · seed 0"
    sampled = {"model.td_lambda": 2e-4, "model.td_ratio": 0.625, "model.enhance_position": "after",
               "model.td_position": "before", "model.mem_init": "zeros"}
    assert trial_label(None, sampled, 3) == "λ 2.0e-04, ratio 0.625, PEM after, TD before, m0 zeros · seed 3"


def _study_store(uri: str) -> tuple[str, dict[tuple[str, int], str]]:
    """A Table 5 parent with FINISHED children named the old way (their unique trial names)."""
    parent, _ = tracking.find_or_create_run(uri, "tdrl-table5", run_name="t5",
                                            match={tracking.STUDY_RUN_TAG: "t5", tracking.ROLE_TAG: "study"})
    values = {("ratio0", 0): 40.0, ("ratio0", 1): 44.0, ("ratio50", 0): 50.0, ("ratio50", 1): 51.0}
    children = {}
    for (row, seed), top1 in values.items():
        name = f"t5.{row}.s{seed}.abc_0000{seed}"
        run_id, _ = tracking.start_run(uri, "tdrl-table5", name, {}, parent_run_id=parent,
                                       tags={tracking.ROW_TAG: row, tracking.SEED_TAG: str(seed)})
        client = tracking.mlflow_client(uri)
        for key, value in (("val_top1", top1), ("val_top5", top1 + 30), ("train_top1", top1 + 10)):
            client.log_metric(run_id, key, value, step=1)
        tracking.end_run(uri, run_id)
        children[(row, seed)] = run_id
    return parent, children


def test_report_logs_the_table_on_the_parent_and_names_the_children(tmp_path, capsys):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    parent, children = _study_store(uri)
    table, found, _ = report(get_study("table5"), uri, tmp_path / "out", parent_run_id=parent)
    assert found == parent
    m = tracking.get_run(uri, parent).data.metrics
    assert m["top1.ratio0"] == 42.0 and m["top1_std.ratio0"] == pytest.approx(math.sqrt(8))  # 40, 44: sd 2.83
    assert m["top1.ratio50"] == 50.5 and m["top5.ratio50"] == 80.5 and m["train_top1.ratio50"] == 60.5
    assert m["top1_diff.ratio50"] == pytest.approx(8.5)  # paired by seed: (50-40 + 51-44) / 2
    assert "top1.ratio25" not in m and "top1_diff.ratio0" not in m  # no runs / the baseline: no number
    assert table_metrics(table) == {k: v for k, v in m.items() if "." in k}
    for (row, seed), run_id in children.items():
        run = tracking.get_run(uri, run_id)
        label = get_study("table5").row(row).label
        assert run.info.run_name == f"{label} · seed {seed}"  # e.g. "+50% TDLoss · seed 1"
        assert run.data.tags[tracking.RUN_NAME_TAG] == f"t5.{row}.s{seed}.abc_0000{seed}"  # the long id stays
    # A resumed trial finds its renamed run by the tag: no second run.
    again, resumed = tracking.start_run(uri, "tdrl-table5", "t5.ratio50.s1.abc_00001", {}, parent_run_id=parent,
                                        display_name="+50% TDLoss · seed 1")
    assert (again, resumed) == (children[("ratio50", 1)], True)
    assert len(tracking.child_runs(uri, "tdrl-table5", parent)) == 4


def test_a_new_trial_run_is_named_for_people_and_found_by_its_tag(tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    run_id, resumed = tracking.start_run(uri, "e", "t5.ratio50.s0.abc_00002", {"a": 1},
                                         display_name="+50% TDLoss · seed 0")
    run = tracking.get_run(uri, run_id)
    assert not resumed and run.info.run_name == "+50% TDLoss · seed 0"
    assert run.data.tags[tracking.RUN_NAME_TAG] == "t5.ratio50.s0.abc_00002"
    tracking.end_run(uri, run_id, "FAILED")
    assert tracking.start_run(uri, "e", "t5.ratio50.s0.abc_00002", {"a": 1},
                              display_name="+50% TDLoss · seed 0") == (run_id, True)
    assert len(tracking.search_runs(uri, "e")) == 1
