"""Write trial_snapshot.json: every study's trials as tdrl resolved them at commit ef6a5b3.

Run with that commit's code on PYTHONPATH (this version uses its internals: runner.base_experiment,
grid_rows, trial_name, trial_label and the row layering of runner.trial):

    PYTHONPATH=<ef6a5b3 checkout> python tests/study/data/make_trial_snapshot.py tests/study/data/trial_snapshot.json

The cases and the normalisation (a temporary working folder written as ``<cwd>``, synthetic-set
markers so a set is hashed by its parameters) are those of tests/study/test_trial_snapshot.py.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from dataclasses import asdict
from pathlib import Path

TRIAL_ID = "tuneid_00000"  # stands for the Tune trial id, known only inside a trial
SEARCH_SAMPLE = {"model.td_lambda": 1e-4, "model.td_ratio": 0.375, "model.enhance_position": "after",
                 "model.td_position": "before", "model.td_blocks": "layer4.-1", "model.mem_init": "first"}
PAPER_DATA = "/datasets/something-something-v1"  # an absolute root: paths (and so hashes) do not depend on cwd


def cases() -> list[dict]:
    """(study, options) of every snapshot case: each study on smoke, bench and paper (2 seeds), the
    search on each preset (one sampled point), and table5 on smoke with every option set."""
    from tdrl.study.definitions import STUDIES

    out = []
    for preset in ("smoke", "bench", "paper"):
        data = PAPER_DATA if preset == "paper" else None
        for name in STUDIES:
            out.append({"case": f"{name}-{preset}", "study": name,
                        "options": {"preset": preset, "seeds": 2, "data": data}})
        out.append({"case": f"search-{preset}", "study": "search",
                    "options": {"preset": preset, "seeds": 1, "data": data, "name": f"search-{preset}"}})
    out.append({"case": "table5-smoke-options", "study": "table5",
                "options": {"preset": "smoke", "seeds": 1, "data": "/datasets/synth", "name": "t5-custom",
                            "rows": ["ratio50", "ratio0"], "storage": "/storage/studies",
                            "mlflow_uri": "sqlite:////stores/mlflow.db",
                            "overrides": {"train.epochs": "1", "model.width": "0.5", "train.progress": "lines"}}})
    return out


def write_markers(cwd: Path) -> None:
    """The smoke and bench synthetic sets' completion markers (as generate_synthetic writes them)."""
    from tdrl.data.synthetic import MARKER, SynthParams
    from tdrl.train.presets import PRESETS

    for preset in PRESETS.values():
        if preset.synthetic:
            root = cwd / preset.values["data.root"]
            root.mkdir(parents=True, exist_ok=True)
            (root / MARKER).write_text(json.dumps({"params": asdict(SynthParams(**preset.synthetic))}))


def normalise(value, cwd: str):
    if isinstance(value, str):
        return value.replace(cwd, "<cwd>")
    if isinstance(value, dict):
        return {k: normalise(v, cwd) for k, v in value.items()}
    if isinstance(value, list):
        return [normalise(v, cwd) for v in value]
    return value


def resolve_case(case: dict) -> dict:
    """The case's parent params and trials, the way ef6a5b3 resolved them (driver + trial worker)."""
    from tdrl.config.experiment import Experiment
    from tdrl.study import search as S
    from tdrl.study.definitions import get_study
    from tdrl.study.runner import StudyOptions, base_experiment, default_storage, grid_rows, trial_label, trial_name
    from tdrl.study.sharing import config_hash
    from tdrl.train.tracking import tracking_uri

    o = case["options"]
    opts = StudyOptions(preset=o["preset"], seeds=o["seeds"], data=o.get("data"), name=o.get("name"),
                        storage=o.get("storage"), mlflow_uri=o.get("mlflow_uri"), rows=tuple(o.get("rows", ())),
                        overrides=dict(o.get("overrides", {})))
    search = case["study"] == "search"
    name = S.NAME if search else get_study(case["study"]).name
    common = S.COMMON if search else get_study(name).common
    experiment = f"{opts.experiment_prefix}-{name}"
    study_run = opts.name or f"{name}-{opts.preset}"
    storage = opts.storage or default_storage()
    uri = tracking_uri(opts.mlflow_uri)
    base = base_experiment(opts, study_run, storage, uri, experiment, common)
    if search:
        params = {"search.samples": 16, "search.asha": False, "search.seed": 0, "study.preset": opts.preset}
        rows = [("search", None, dict(SEARCH_SAMPLE))]
        seeds = [0]
    else:
        study = get_study(name)
        keys = grid_rows(study, opts)
        params = {"study.rows": ",".join(keys), "study.seeds": opts.seeds, "study.preset": opts.preset}
        rows = [(k, study.row(k).label, study.overrides(k)) for k in keys]
        seeds = list(range(opts.seeds))
    params.update({f"base.{k}": v for k, v in base.flatten().items()})
    trials = []
    for row, label, overrides in rows:
        for seed in seeds:
            full = trial_name(study_run, row, seed, TRIAL_ID)
            flat = Experiment.from_flat({**base.flatten(), **overrides, "train.seed": seed, "train.name": full}).flatten()
            trials.append({"row": row, "seed": seed, "name": full, "label": trial_label(label, overrides, seed),
                           "hash": config_hash(flat), "flat": flat})
    return {"case": case["case"], "study": case["study"], "options": o, "experiment": experiment,
            "study_run": study_run, "parent_params": params, "trials": trials}


def compact(entry: dict) -> dict:
    """Each trial's flat keys as the difference to the parent's ``base.*`` params (the full flat is
    ``{**base, **diff}``), so the file stays readable."""
    base = {k[5:]: v for k, v in entry["parent_params"].items() if k.startswith("base.")}
    for t in entry["trials"]:
        t["flat_diff"] = {k: v for k, v in t.pop("flat").items() if base.get(k, object()) != v}
    return entry


def main(out: str) -> None:
    for var in ("TDRL_STORAGE", "MLFLOW_TRACKING_URI"):
        os.environ.pop(var, None)
    here = Path.cwd()
    with tempfile.TemporaryDirectory() as tmp:
        cwd = Path(tmp).resolve()
        os.chdir(cwd)
        try:
            write_markers(cwd)
            entries = [compact(normalise(resolve_case(c), str(cwd))) for c in cases()]
        finally:
            os.chdir(here)
    Path(out).write_text(json.dumps(entries, indent=1, sort_keys=True) + "\n")
    print(f"{sum(len(e['trials']) for e in entries)} trials of {len(entries)} cases -> {out}")


if __name__ == "__main__":
    main(sys.argv[1])
