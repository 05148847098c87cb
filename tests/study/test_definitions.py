"""The study definitions: rows map to the paper's configurations and validate as experiments."""

from __future__ import annotations

import pytest

from tdrl.config.experiment import Experiment
from tdrl.study.definitions import STUDIES, get_study


def model_of(study: str, row: str):
    s = get_study(study)
    return Experiment().override(s.overrides(row)).model


@pytest.mark.parametrize("name", list(STUDIES))
def test_every_row_validates_and_rows_differ(name):
    s = STUDIES[name]
    keys = [r.key for r in s.rows]
    assert len(set(keys)) == len(keys)
    models = [Experiment().override(s.overrides(k)).model for k in keys]
    assert len(set(models)) == len(models), "two rows of a study build the same network"
    for r in s.rows:
        assert all(k.startswith("model.") for k in r.overrides)


def test_table5_ratios_on_tim_td_without_pem():
    s = get_study("table5")
    assert [r.label for r in s.rows] == ["baseline", "+25% TDLoss", "+50% TDLoss", "+75% TDLoss", "+100% TDLoss"]
    ratios = []
    for r in s.rows:
        m = model_of("table5", r.key)
        assert (m.temporal, m.enhance, m.td_position, m.td_lambda) == ("tim", "none", "after", 2e-4)
        ratios.append(m.td_ratio)
    assert ratios == [0.0, 0.25, 0.5, 0.75, 1.0]
    assert [r.paper_top1 for r in s.rows] == [46.1, 47.7, 48.4, 47.8, 47.3]


def test_table6_positions():
    pem_after = model_of("table6", "pem_after")
    assert (pem_after.enhance, pem_after.enhance_position, pem_after.td_ratio) == ("pem", "after", 0.0)
    pem_before = model_of("table6", "pem_before")
    assert (pem_before.enhance, pem_before.enhance_position) == ("pem", "before")
    td_before = model_of("table6", "td_before")
    assert (td_before.enhance, td_before.td_ratio, td_before.td_position) == ("none", 0.5, "before")
    assert model_of("table6", "td_after").td_position == "after"
    tm = model_of("table6", "tm")
    assert (tm.temporal, tm.enhance, tm.td_on) == ("tim", "none", False)
    assert get_study("table6").row("pem_after").label == "PEM A. TM"
    assert get_study("table6").row("pem_after").paper_top1 == 49.0


def test_tables_3_and_4_toggle_pem_and_td():
    for name, tm in (("table3", "tsm"), ("table4", "tim")):
        base = model_of(name, "baseline")
        assert (base.temporal, base.enhance, base.td_on) == (tm, "none", False)
        both = model_of(name, "pem_td")
        assert (both.temporal, both.enhance, both.td_ratio) == (tm, "pem", 0.5)
        td = model_of(name, "td")
        assert (td.enhance, td.td_ratio) == ("none", 0.5)
    assert model_of("table4", "mem").enhance == "mem"
    assert get_study("table3").row("pem").paper_top5 == 77.4
    assert get_study("table4").row("pem_td").paper_top1 == 49.8


def test_table7_lambda_and_meminit():
    lambdas = [model_of("table7", r.key) for r in get_study("table7").rows]
    assert [m.td_lambda for m in lambdas] == [0.0, 1e-4, 2e-4, 3e-4, 4e-4]
    assert all((m.enhance, m.td_ratio) == ("none", 0.5) for m in lambdas)
    inits = [model_of("meminit", r.key) for r in get_study("meminit").rows]
    assert [m.mem_init for m in inits] == ["last", "first", "zeros"]
    assert all((m.enhance, m.temporal, m.td_ratio) == ("pem", "tim", 0.5) for m in inits)
    assert all(r.paper_top1 is None for r in get_study("meminit").rows)


def test_aliases():
    assert get_study("ablation_ratio").name == "table5"
    assert get_study("ratio").name == "table5"
    assert get_study("5").name == "table5"
    with pytest.raises(KeyError):
        get_study("table9")


def test_unknown_names_are_refused_with_the_choices():
    with pytest.raises(KeyError) as exc:
        get_study("table9")
    assert exc.value.args == (f"unknown study 'table9'; studies: {', '.join(STUDIES)}",)
    s = get_study("table5")
    with pytest.raises(KeyError) as exc:
        s.row("td99")
    assert exc.value.args == (f"study table5 has no row 'td99'; rows: {', '.join(r.key for r in s.rows)}",)
    assert exc.value.args[0].endswith("rows: ratio0, ratio25, ratio50, ratio75, ratio100")


def test_a_study_must_name_one_of_its_rows_as_baseline():
    from tdrl.study.definitions import Row, Study

    rows = (Row("a", "A", {}), Row("b", "B", {"model.td_ratio": 0.5}))
    assert Study("t", "T", "Method", rows, baseline="b").row("b").overrides == {"model.td_ratio": 0.5}
    with pytest.raises(KeyError, match="study t has no row 'baseline'; rows: a, b"):
        Study("t", "T", "Method", rows)


def test_row_helper_prefixes_model_keys_and_keeps_both_numbers():
    # The rows are built at import time, which mutmut's per-test run cannot attribute; this calls the
    # helper at test time (test_paper_tables.py checks the rows it built against the paper).
    from tdrl.study.definitions import Row, _row

    assert _row("pem_td", "+PEM+TDLoss", 48.4, 77.4, enhance="pem", td_ratio=0.5) == Row(
        "pem_td", "+PEM+TDLoss", {"model.enhance": "pem", "model.td_ratio": 0.5}, 48.4, 77.4)
    assert _row("x", "X", 47.0) == Row("x", "X", {}, 47.0, None)
