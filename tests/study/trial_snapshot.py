"""tests/study/data/trial_snapshot.json: every study's trials (flat configuration, name, label, sharing hash) and
parent-run params, as tdrl resolves them; tests/study/test_trial_snapshot.py requires the same.

The file was written at commit ef6a5b3, before the study resolution was rewritten, by this
script's version in commit 28ac16c (which read ef6a5b3's internals). This version resolves with
:func:`tdrl.study.trials.resolve_study`; run it only for a change that is meant to alter the trials,
and review the difference:

    python tests/study/trial_snapshot.py tests/study/data/trial_snapshot.json

Cases: each study on smoke, bench and paper (2 seeds), the search on each preset (one sampled
point), and table5 on smoke with every option set. A temporary working folder is written as
``<cwd>``; the smoke and bench synthetic sets get their markers, so they are hashed by their
parameters; the paper cases read an absolute root, so no hash depends on the folder.
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
    """The case's parent params and trials (as a trial process completes them: Tune id, sampled values)."""
    from tdrl.study.definitions import get_study
    from tdrl.study.naming import trial_name
    from tdrl.study.search import resolve_search
    from tdrl.study.trials import StudyOptions, resolve_study

    o = case["options"]
    opts = StudyOptions(preset=o["preset"], seeds=o["seeds"], data=o.get("data"), name=o.get("name"),
                        storage=o.get("storage"), mlflow_uri=o.get("mlflow_uri"), rows=tuple(o.get("rows", ())),
                        overrides=dict(o.get("overrides", {})))
    if case["study"] == "search":
        resolved = resolve_search(opts)
        params = {"search.samples": 16, "search.asha": False, "search.seed": 0, **resolved.parent_params()}
        trials = [resolved.trial_for({**SEARCH_SAMPLE, "seed": 0})]
    else:
        resolved = resolve_study(get_study(case["study"]), opts)
        params = resolved.parent_params()
        trials = list(resolved.trials)
    return {"case": case["case"], "study": case["study"], "options": o, "experiment": resolved.experiment,
            "study_run": resolved.study_run, "parent_params": params,
            "trials": [{"row": t.row, "seed": t.seed, "name": trial_name(t.prefix, TRIAL_ID), "label": t.display,
                        "hash": t.config_hash, "flat": t.experiment(TRIAL_ID).flatten()} for t in trials]}


def snapshot() -> list[dict]:
    """Every case resolved in a temporary working folder (no $TDRL_STORAGE / $MLFLOW_TRACKING_URI)."""
    saved = {v: os.environ.pop(v) for v in ("TDRL_STORAGE", "MLFLOW_TRACKING_URI") if v in os.environ}
    here = Path.cwd()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            cwd = Path(tmp).resolve()
            os.chdir(cwd)
            write_markers(cwd)
            return [json.loads(json.dumps(compact(normalise(resolve_case(c), str(cwd))), sort_keys=True))
                    for c in cases()]
    finally:
        os.chdir(here)
        os.environ.update(saved)


def compact(entry: dict) -> dict:
    """Each trial's flat keys as the difference to the parent's ``base.*`` params (the full flat is
    ``{**base, **diff}``), so the file stays readable."""
    base = {k[5:]: v for k, v in entry["parent_params"].items() if k.startswith("base.")}
    for t in entry["trials"]:
        t["flat_diff"] = {k: v for k, v in t.pop("flat").items() if base.get(k, object()) != v}
    return entry


def main(out: str) -> None:
    entries = snapshot()
    Path(out).write_text(json.dumps(entries, indent=1, sort_keys=True) + "\n")
    print(f"{sum(len(e['trials']) for e in entries)} trials of {len(entries)} cases -> {out}")


if __name__ == "__main__":
    main(sys.argv[1])
