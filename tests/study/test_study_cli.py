"""`tdrl study NAME`, `tdrl search` and the studies/*.py scripts: one command line, one error voice."""

import subprocess
import sys
from pathlib import Path

import pytest

from tdrl.cli import main as tdrl_main

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("argv,message", [
    (["study", "nosuch"], "tdrl study: error: unknown study 'nosuch'"),
    (["study", "5", "--seeds", "0"], "tdrl study: error: --seeds=0 must be >= 1"),
    (["study", "table4", "--rows", "baseline,nope"], "--rows: study table4 has no row 'nope'"),
    (["study", "5", "--set", "train.epochs"], "write SECTION.FIELD=VALUE"),
    (["search", "--set", "model.nosuch=1"], "model.nosuch"),
])
def test_bad_input_exits_2_before_ray(argv, message, capsys, monkeypatch):
    monkeypatch.setattr("tdrl.study.runner.connect_ray", lambda *a, **k: pytest.fail("Ray started on bad input"))
    assert tdrl_main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and err.startswith(f"tdrl {argv[0]}: error:")


def test_search_seeds_are_the_confirmations_and_study_names_resolve(capsys):
    from tdrl.study.definitions import get_study

    with pytest.raises(SystemExit):
        tdrl_main(["search", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert "--seeds SEEDS with --confirm: seeds per configuration" in out  # a search trains seed 0 only
    assert get_study("ablation_ratio") is get_study("5") is get_study("table5")


def test_scripts_run_without_path_edits(tmp_path):
    """A script is `tdrl study <its table>`: tdrl comes from the install (or Ray's PYTHONPATH under
    `ray job submit`), so a script run from another folder needs no sys.path edit."""
    for script in sorted((REPO / "studies").glob("*.py")):
        assert "sys.path" not in script.read_text(), script.name
    out = subprocess.run([sys.executable, str(REPO / "studies" / "ablation_lambda.py"), "--seeds", "0"],
                         cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert out.returncode == 2 and "tdrl study: error: --seeds=0 must be >= 1" in out.stderr


def test_grid_trials_carry_their_rows_flat_keys():
    """Tune's grid picks each trial of the resolved list by row and seed, and its config shows the
    model keys each trial's row sets; a search's config fills its template in with the sampled values."""
    from ray.tune.search.variant_generator import generate_variants

    from tdrl.study.definitions import get_study
    from tdrl.study.runner import grid_space
    from tdrl.study.search import resolve_search
    from tdrl.study.trials import StudyOptions, resolve_study

    study = get_study("table6")
    trials = resolve_study(study, StudyOptions(seeds=2, rows=("tm", "pem_after")))
    configs = [spec["config"] for _, spec in generate_variants({"config": grid_space(trials)})]
    assert sorted((c["row"], c["seed"]) for c in configs) == [("pem_after", 0), ("pem_after", 1), ("tm", 0), ("tm", 1)]
    for config in configs:
        trial = trials.trial_for(config)
        assert (trial.row, trial.seed) == (config["row"], config["seed"])
        assert {k: trial.flat[k] for k in study.overrides(trial.row)} == study.overrides(trial.row)
        assert {k: v for k, v in config.items() if "." in k} == study.overrides(trial.row)
    assert {c["model.enhance_position"] for c in configs if c["row"] == "pem_after"} == {"after"}
    search = resolve_search(StudyOptions())
    sampled = search.trial_for({"model.td_lambda": 1e-4, "model.td_blocks": "layer4.-1", "seed": 0})
    assert (sampled.flat["model.td_lambda"], sampled.flat["model.td_blocks"]) == (1e-4, "layer4.-1")
    assert sampled.display == "λ 1.0e-04, at layer4.-1 · seed 0"
    assert sampled.config_hash != search.trials[0].config_hash


def test_set_of_a_key_the_study_fixes_is_refused(capsys, monkeypatch):
    """`--set` of a key a study's rows or common keys set would make the table measure something else
    (ef6a5b3 validated it, logged it on the parent run and trained every trial with the row's value):
    exit 2 before anything starts, naming the key, the study and its rows, for a run and for --plan."""
    monkeypatch.setattr("tdrl.study.runner.connect_ray", lambda *a, **k: pytest.fail("Ray started on bad input"))
    argv = ["study", "table5", "--preset", "smoke", "--rows", "ratio50", "--seeds", "1",
            "--set", "model.td_lambda=0.001", "--set", "train.epochs=1"]
    for extra in ([], ["--plan"]):
        assert tdrl_main(argv + extra) == 2
        err = capsys.readouterr().err
        assert err.startswith("tdrl study: error: --set model.td_lambda=0.001: study table5 fixes model.td_lambda")
        assert "ratio0, ratio25, ratio50, ratio75, ratio100" in err and "--rows" in err and "tdrl train" in err
    assert tdrl_main(["study", "table6", "--set", "model.enhance_position=after", "--plan"]) == 2
    assert "fixes model.enhance_position in row(s) tm, pem_before, pem_after" in capsys.readouterr().err
    assert tdrl_main(["study", "table5", "--set", "train.seed=3", "--plan"]) == 2
    assert "a study sets train.seed for every trial; use --seeds" in capsys.readouterr().err
    assert tdrl_main(["search", "--set", "model.td_blocks=layer4.-1", "--plan"]) == 2
    assert "study search samples model.td_blocks" in capsys.readouterr().err


def test_a_study_built_at_run_time_resolves_like_a_table():
    """A Study that is not in the registry (e.g. the confirmation of a search's best configurations)
    resolves, plans and tags its trials from the object itself: nothing looks it up by name."""
    from tdrl.study.definitions import STUDIES, TIM_BASELINE, Row, Study
    from tdrl.study.plan import plan_trials
    from tdrl.study.trials import StudyOptions, resolve_study

    study = Study("confirm", "Confirmation of the best configurations", "config", baseline="tim",
                  common=dict(TIM_BASELINE),
                  rows=(Row("tim", "TIM baseline", {}),
                        Row("c1", "λ 3.0e-04, ratio 0.75", {"model.td_lambda": 3e-4, "model.td_ratio": 0.75})))
    assert study.name not in STUDIES
    trials = resolve_study(study, StudyOptions(seeds=2, overrides={"train.epochs": "3"}))
    assert [(t.row, t.seed) for t in trials.trials] == [("tim", 0), ("tim", 1), ("c1", 0), ("c1", 1)]
    c1 = trials.trial_for({"row": "c1", "seed": 1})
    assert (c1.flat["model.td_lambda"], c1.flat["model.td_ratio"], c1.flat["train.epochs"], c1.flat["train.seed"]) \
        == (3e-4, 0.75, 3, 1)
    assert c1.prefix == "confirm-smoke.c1.s1" and c1.display == "λ 3.0e-04, ratio 0.75 · seed 1"
    tags = trials.trial_tags(c1, "abc_00003")
    assert (tags["tdrl.table"], tags["tdrl.row_label"], tags["tdrl.config_hash"]) == (study.title, c1.label,
                                                                                     c1.config_hash)
    assert trials.experiment == "tdrl-confirm" and trials.parent_params()["study.rows"] == "tim,c1"
    assert [t.row for t in plan_trials(trials, lookup=False).trials] == ["tim", "tim", "c1", "c1"]
