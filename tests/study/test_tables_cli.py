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
