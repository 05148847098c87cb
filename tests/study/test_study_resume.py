"""Resuming a study: the same options resume it, other seeds/rows/overrides are refused before Ray
starts, and a stopped study ends with its own message and exit code (not "done")."""

from __future__ import annotations

import pytest

from tdrl.config import ConfigError
from tdrl.study.cli import finish
from tdrl.study.runner import StudyResult, check_resumable, grid_options, write_state
from tdrl.study.trials import StudyOptions


def _state(tmp_path, opts: StudyOptions) -> str:
    study_dir = str(tmp_path / "table5-smoke")
    write_state(study_dir, {"study": "table5", "study_run": "table5-smoke", **grid_options(opts)})
    return study_dir


def test_same_options_resume(tmp_path):
    opts = StudyOptions(preset="smoke", seeds=3, rows=("ratio0", "ratio50"), overrides={"train.epochs": 2})
    check_resumable(_state(tmp_path, opts), "table5-smoke", opts)  # no error
    check_resumable(str(tmp_path / "never-ran"), "x", opts)  # no state file: a new study


@pytest.mark.parametrize("change, named", [
    (dict(seeds=5), "seeds 3 -> 5"),
    (dict(rows=("ratio0",)), "rows ['ratio0', 'ratio50'] -> ['ratio0']"),
    (dict(overrides={"train.epochs": 3}), "overrides {'train.epochs': 2} -> {'train.epochs': 3}"),
    (dict(preset="cpu"), "preset 'smoke' -> 'cpu'"),
    (dict(data="/elsewhere"), "data None -> '/elsewhere'"),
])
def test_other_options_are_refused_naming_the_change(tmp_path, change, named):
    before = StudyOptions(preset="smoke", seeds=3, rows=("ratio0", "ratio50"), overrides={"train.epochs": 2})
    study_dir = _state(tmp_path, before)
    after = StudyOptions(**{**before.__dict__, **change})
    with pytest.raises(ConfigError) as err:
        check_resumable(study_dir, "table5-smoke", after)
    assert named in str(err.value)
    assert "--name table5-smoke-2" in str(err.value)


def _result(**kw) -> StudyResult:
    return StudyResult(name="table5-smoke", path="/p", parent_run_id="abc", mlflow_uri="sqlite:///m.db",
                       experiment="tdrl-table5", table=None, seconds=12.0, **kw)


def test_finish_messages_and_exit_codes(capsys):
    assert finish(_result(), "study") == 0
    assert "study table5-smoke done in 12s (0 failed trial(s))" in capsys.readouterr().out
    assert finish(_result(errors=2), "study") == 1
    assert finish(_result(unfinished=7, errors=1), "search") == 130
    out = capsys.readouterr().out.splitlines()[-1]
    assert "search table5-smoke stopped after 12s with 7 trial(s) not finished (1 failed)" in out
    assert "run the same command again to resume" in out and "done" not in out
