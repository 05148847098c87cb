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
    import tdrl.train.cluster as cluster

    monkeypatch.setattr(cluster, "connect_ray", lambda *a, **k: pytest.fail("Ray started on bad input"))
    assert tdrl_main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and err.startswith(f"tdrl {argv[0]}: error:")


def test_search_has_no_seeds_and_study_names_resolve(capsys):
    from tdrl.study.definitions import get_study

    with pytest.raises(SystemExit):
        tdrl_main(["search", "--help"])
    assert "--seeds" not in capsys.readouterr().out
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
    """Tune resolves each grid trial's model.* keys from its row: one route (flat keys) for grids and
    searches, and Tune's config shows what each trial trains."""
    from ray.tune.search.variant_generator import generate_variants

    from tdrl.study.definitions import get_study
    from tdrl.study.runner import row_space, trial_overrides

    study = get_study("table6")
    configs = [spec["config"] for _, spec in generate_variants({"config": row_space(study, ["tm", "pem_after"], 2)})]
    assert sorted((c["row"], c["seed"]) for c in configs) == [("pem_after", 0), ("pem_after", 1), ("tm", 0), ("tm", 1)]
    for config in configs:
        row, flat = trial_overrides("table6", config)
        assert row == config["row"] and flat == study.overrides(row)
    assert {c["model.enhance_position"] for c in configs if c["row"] == "pem_after"} == {"after"}
    assert trial_overrides("search", {"model.td_lambda": 1e-4, "seed": 0}) == ("search", {"model.td_lambda": 1e-4})
