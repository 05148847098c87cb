"""``tdrl tables`` end to end on a SQLite store the test writes (no Ray): the options reach the
report, the exit code says whether any study run was found."""

from __future__ import annotations

from tdrl.cli import main
from tdrl.train import tracking as T


def _store(uri: str, experiment: str) -> None:
    """A table5 study run with two seeds of the baseline and of +50 % TDLoss (all FINISHED)."""
    parent, _ = T.find_or_create_run(uri, experiment, run_name="table5-t", match={T.ROLE_TAG: "study"},
                                     tags={T.STUDY_RUN_TAG: "table5-t"})
    for row, seed, top1 in (("ratio0", 0, 40.0), ("ratio0", 1, 42.0), ("ratio50", 0, 45.0), ("ratio50", 1, 48.0)):
        run, _ = T.find_or_create_run(uri, experiment, run_name=f"{row}-{seed}", match={T.RUN_NAME_TAG: f"{row}-{seed}"},
                                      tags={T.ROW_TAG: row, T.SEED_TAG: seed}, parent_run_id=parent)
        T.with_retry(lambda: T.mlflow_client(uri).log_metric(run, "val_top1", top1), uri)
        T.end_run(uri, run)


def test_tables_command_reads_the_named_prefix_and_reports_exit_codes(tmp_path, capsys):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    _store(uri, "bench-table5")
    out = tmp_path / "tables"
    argv = ["--mlflow-uri", uri, "--out", str(out), "--experiment-prefix", "bench", "--no-log"]
    assert main(["tables", *argv]) == 0  # no STUDY: every study with a run, here only table5
    assert sorted(p.name for p in out.iterdir()) == ["table5.csv", "table5.md", "table5.png", "table5_runs.csv"]
    md = (out / "table5.md").read_text()
    assert "— table5-t" in md and "| 41.0 ± 1.4 |" in md and "| 46.5 ± 2.1 |" in md
    assert "tables written to" in capsys.readouterr().out
    assert not T.mlflow_client(uri).list_artifacts(T.find_run(uri, "bench-table5", tags={T.ROLE_TAG: "study"}))
    assert main(["tables", "table5", *argv, "--name", "table5-t"]) == 0
    assert main(["tables", "table5", *argv, "--name", "other"]) == 1  # no study run of that name
    assert "no study runs found at" in capsys.readouterr().out


def test_tables_from_committed_runs_files_rebuild_the_same_table_and_the_family(tmp_path, capsys):
    """``--from-runs``: the per-run file an MLflow report wrote rebuilds the same table without the
    store; ``--family`` adds family.md; a named study without its file exits 2 naming the path."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    _store(uri, "bench-table5")
    first, again = tmp_path / "first", tmp_path / "again"
    assert main(["tables", "table5", "--mlflow-uri", uri, "--out", str(first), "--experiment-prefix", "bench",
                 "--no-log"]) == 0
    assert main(["tables", "table5", "--from-runs", str(first), "--out", str(again), "--name", "table5-t",
                 "--family"]) == 0
    assert (again / "table5.md").read_text() == (first / "table5.md").read_text()
    assert (again / "table5.csv").read_text() == (first / "table5.csv").read_text()
    family = (again / "family.md").read_text()
    # d = 5, 6: mean 5.5, s_d = 0.707, t_{0.975, 1} = 12.706: half-width 12.706 * 0.707 / sqrt 2 = 6.35
    assert "| table5 +50% TDLoss | 2 | +5.5 [-0.9, +11.9] | 0.7 |" in family
    capsys.readouterr()
    assert main(["tables", "table4", "--from-runs", str(first), "--out", str(again)]) == 2
    assert f"{first / 'table4_runs.csv'} does not exist" in capsys.readouterr().err
