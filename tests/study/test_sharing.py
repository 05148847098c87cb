"""Which runs are shared between studies: the configuration hash and its canonical form."""

import json

import pytest

from tdrl.data.synthetic import MARKER
from tdrl.study.definitions import get_study
from tdrl.study.sharing import RESULTS_VERSION, canonical, config_hash
from tdrl.train.presets import get_preset


def _flat(study: str, row: str, **extra) -> dict:
    exp = get_preset("smoke").experiment().override({**get_study(study).overrides(row), **extra})
    return exp.flatten()


def _hash(study: str, row: str, **extra) -> str:
    return config_hash(_flat(study, row, **extra))


def test_the_same_network_in_several_tables_has_one_hash():
    td = {_hash("table4", "td"), _hash("table5", "ratio50"), _hash("table6", "td_after"), _hash("table7", "lambda2e-4")}
    assert len(td) == 1
    # The TIM baseline: lambda 0 with ratio 0.5 computes the TD term but gives it no weight.
    base = {_hash("table4", "baseline"), _hash("table5", "ratio0"), _hash("table6", "tm"), _hash("table7", "lambda0")}
    assert len(base) == 1
    assert _hash("table4", "pem") == _hash("table6", "pem_before")
    assert _hash("table4", "pem_td") == _hash("table3", "pem_td", **{"model.temporal": "tim"})
    assert _hash("table4", "pem_td") == _hash("meminit", "last")
    assert _hash("table3", "tsn") == _hash("table4", "tsn")


def test_different_networks_and_recipes_never_share():
    rows = [(s, r.key) for s in ("table3", "table4", "table5", "table6", "table7", "meminit")
            for r in get_study(s).rows]
    hashes = {}
    for study, row in rows:
        hashes.setdefault(_hash(study, row), set()).add((study, row))
    # Distinct networks: TSN, TSM x {base, pem, td, pem_td}, TIM base, MEM, PEM, TD(25/50/75/100), PEM+TD,
    # PEM after, TD before, lambda 1e-4/3e-4/4e-4, mem init first/zeros.
    assert len(hashes) == 1 + 4 + 1 + 1 + 1 + 4 + 1 + 1 + 1 + 3 + 2
    base = _hash("table5", "ratio50")
    for key, value in [("train.lr_per_64", 0.1), ("train.epochs", 3), ("model.width", 0.5), ("data.input_size", 48),
                       ("train.decay_policy", "all"), ("model.td_blocks", "layer4.-1"), ("train.workers", 1)]:
        assert _hash("table5", "ratio50", **{key: value}) != base, key


def test_names_paths_and_bookkeeping_do_not_change_the_hash():
    base = _hash("table5", "ratio50")
    assert _hash("table5", "ratio50", **{"train.name": "x", "train.storage_path": "/else", "train.experiment": "e",
                                          "train.mlflow_uri": "sqlite:///x.db", "train.progress": "none",
                                          "train.keep_best": 5, "train.max_failures": 0, "data.workers": 3,
                                          "train.seed": 4}) == base


def test_synthetic_data_is_identified_by_its_generator_parameters(tmp_path):
    params = {"num_classes": 6, "seed": 0}
    for folder in ("a", "b", "c"):
        (tmp_path / folder).mkdir()
    (tmp_path / "a" / MARKER).write_text(json.dumps({"params": params}))
    (tmp_path / "b" / MARKER).write_text(json.dumps({"params": params}))
    (tmp_path / "c" / MARKER).write_text(json.dumps({"params": {**params, "seed": 1}}))
    h = {f: _hash("table5", "ratio0", **{"data.root": str(tmp_path / f)}) for f in "abc"}
    assert h["a"] == h["b"] != h["c"]
    assert canonical(_flat("table5", "ratio0", **{"data.root": str(tmp_path / "a")}))["data.synthetic"] == params
    # Real data (no marker) is identified by its paths.
    (tmp_path / "real").mkdir()
    assert _hash("table5", "ratio0", **{"data.root": str(tmp_path / "real")}) != h["a"]
    assert canonical(_flat("table5", "ratio0"))["results_version"] == RESULTS_VERSION


@pytest.mark.parametrize("study,row", [("table6", "pem_after"), ("table6", "td_before"), ("meminit", "zeros")])
def test_switched_on_fields_stay_in_the_hash(study, row):
    """Position and memory-init rows differ from the default only in a field the canonical form
    keeps because the component is on."""
    assert _hash(study, row) != _hash("table4", "pem_td") and _hash(study, row) != _hash("table4", "td")


# config_hash of Experiment() with data.root=/nonexistent/tdrl-hash-pin (TDRL, and as TSN), computed at
# ef6a5b3, before model.kernels and model.recompute existed: finished runs' stores must keep matching.
TSN = {"model.temporal": "none", "model.enhance": "none", "model.td_ratio": 0.0}
PINNED = {"tdrl": "469fe96badb33df4", "tsn": "8a01643cb645b076"}


@pytest.mark.parametrize("row", ["tdrl", "tsn"])
def test_existing_configurations_keep_their_hash(row):
    from tdrl.config.experiment import Experiment

    base = Experiment().override({"data.root": "/nonexistent/tdrl-hash-pin", **(TSN if row == "tsn" else {})})
    assert config_hash(base.flatten()) == PINNED[row]
    for auto_or_eager in ("auto", "eager"):  # neither changes results' identity; recomputation never does
        for recompute in (False, True):
            flat = base.override({"model.kernels": auto_or_eager, "model.recompute": recompute}).flatten()
            assert config_hash(flat) == PINNED[row]
    triton = base.override({"model.kernels": "triton"}).flatten()
    assert config_hash(triton) != PINNED[row]  # fused kernels round differently: not shared with eager runs
    assert config_hash({**triton, "model.recompute": True}) == config_hash(triton)
