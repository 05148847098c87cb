"""``tdrl study NAME`` and the scripts ``studies/*.py``: one study's rows x seeds on Ray Tune + Ray Train.

``python studies/ablation_ratio.py [options]`` is ``tdrl study table5 [options]``. Runs on the Ray
cluster in ``RAY_ADDRESS`` (e.g. under ``ray job submit``, whose working directory Ray puts on
``PYTHONPATH``), else on a local Ray it starts with the ``TRAIN_DRIVER`` resource. Running the same
command again resumes the study. Bad input exits with ``tdrl study: error: ...`` and code 2.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any, Sequence

from tdrl.cli import main as tdrl_main
from tdrl.config.base import ConfigError
from tdrl.study.definitions import STUDIES, get_study
from tdrl.study.naming import TABLES_DIR
from tdrl.study.plan import plan_trials, print_plan
from tdrl.study.trials import StudyOptions, resolve_study
from tdrl.train.presets import DEFAULT_PRESET, PRESETS


def parse_set(items: Sequence[str]) -> dict[str, Any]:
    """``["train.epochs=1", "model.width=0.25"]`` -> flat overrides (validated later with the rest)."""
    out: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or "." not in key:
            raise ConfigError(f"--set {item!r}: write SECTION.FIELD=VALUE, e.g. train.epochs=2")
        out[key.strip()] = value.strip()
    return out


def add_common_arguments(p: argparse.ArgumentParser) -> None:
    """The options every study and the search share (the long names of ``tdrl train``: ``--root``,
    ``--storage-path``; the older ``--data`` and ``--storage`` are kept as aliases)."""
    p.add_argument("--preset", choices=tuple(PRESETS), default=DEFAULT_PRESET,
                   help="base configuration: " + "; ".join(f"{x.name}: {x.description}" for x in PRESETS.values()))
    p.add_argument("--root", "--data", dest="data", default=None, metavar="ROOT",
                   help="dataset root (data.root); default: the preset's (synthetic sets are generated there)")
    p.add_argument("--name", default=None, help="study run name (default <study>-<preset>); the same name resumes")
    p.add_argument("--storage-path", "--storage", dest="storage", default=None,
                   help="Ray storage folder or URI (default $TDRL_STORAGE, else ./runs/studies)")
    p.add_argument("--mlflow-uri", default=None,
                   help="MLflow tracking URI (default $MLFLOW_TRACKING_URI, else sqlite:///<cwd>/mlflow.db)")
    p.add_argument("--set", action="append", default=[], metavar="SECTION.FIELD=VALUE",
                   help="override any configuration key, e.g. --set train.epochs=2 (repeatable)")
    p.add_argument("--max-concurrent", type=int, default=None,
                   help="trials at a time (default: as many as the local CPUs fit; unlimited on a cluster)")
    p.add_argument("--tables-out", default=None, help=f"folder for the table files (default {TABLES_DIR}/<name>)")
    plan = p.add_argument_group("planning (--plan: print trials, concurrency, hours and cost; start nothing)")
    plan.add_argument("--plan", action="store_true",
                      help="print the trials still to train, how many run side by side, the estimated wall time, "
                           "GPU-hours and cost, then exit: no Ray, no files, no MLflow runs")
    plan.add_argument("--cluster", default=None, metavar="YAML",
                      help="plan for this Ray cluster-launcher YAML or KubeRay manifest (e.g. cluster/aws.yaml) "
                           "at full scale; default: this machine")
    plan.add_argument("--gpu-hour-price", type=float, default=None, metavar="USD",
                      help="price of one GPU-hour (default: the GPU node types' on-demand, or spot, price from "
                           "tdrl/cluster/instances.py)")
    plan.add_argument("--clips-per-s", type=float, default=None, metavar="N",
                      help="training clips/s per GPU (or CPU worker) instead of each network's rate on the "
                           "cluster's GPU (benchmarks/results/*.json, carried from the GPU it was measured on by "
                           "tdrl/cluster/speed.py; else spec.md's H100 yardstick)")


def add_arguments(p: argparse.ArgumentParser, study_name: str | None = None) -> None:
    """``tdrl study``'s options; ``study_name`` fixes the study (the scripts) instead of a positional NAME."""
    if study_name is None:
        p.add_argument("study", metavar="NAME",
                       help=f"the study: {', '.join(STUDIES)}, a script name (ablation_ratio) or a number (5)")
    add_common_arguments(p)
    p.add_argument("--seeds", type=int, default=1, help="repeats per row with seeds 0..K-1 (mean ± std, paired "
                                                         "differences to the baseline)")
    p.add_argument("--rows", default=None, help="comma-separated subset of rows (keys in tdrl/study/definitions.py)")


def options_from_args(args: argparse.Namespace, **fixed: Any) -> StudyOptions:
    """The study options a command line gives (``fixed`` sets some instead, e.g. the search's name)."""
    given = dict(preset=args.preset, data=args.data, seeds=getattr(args, "seeds", 1), name=args.name,
                 storage=args.storage, mlflow_uri=args.mlflow_uri,
                 rows=tuple(r for r in (getattr(args, "rows", None) or "").split(",") if r),
                 overrides=parse_set(args.set), max_concurrent=args.max_concurrent, tables_out=args.tables_out)
    return StudyOptions(**{**given, **fixed})


def run(args: argparse.Namespace) -> int:
    """Run (or resume) the study; bad input raises ConfigError (``tdrl study: error: ...``, exit 2)."""
    try:
        study = get_study(args.study)
    except KeyError as exc:  # only the unknown-study lookup: any other KeyError is a real failure
        raise ConfigError(str(exc.args[0])) from None
    opts = options_from_args(args)
    if args.plan:  # print what would run, start nothing
        return print_plan(plan_trials(resolve_study(study, opts), cluster=args.cluster,
                                      gpu_hour_price=args.gpu_hour_price, clips_per_s=args.clips_per_s))
    from tdrl.study.runner import run_study  # Ray: seconds to import, not on the path of --help or --plan

    return finish(run_study(study, opts), "study")


def finish(result, what: str) -> int:
    """The last console line of a study or search, and its exit code: 0 done, 1 with failed trials,
    130 stopped (Ctrl-C) with trials left, which the same command resumes."""
    where = f"MLflow {result.mlflow_uri} experiment {result.experiment} parent run {result.parent_run_id}"
    if result.unfinished:
        print(f"[tdrl] {what} {result.name} stopped after {result.seconds:.0f}s with {result.unfinished} trial(s) "
              f"not finished ({result.errors} failed); run the same command again to resume; {where}")
        return 130  # the shell's code for a run stopped by Ctrl-C
    print(f"[tdrl] {what} {result.name} done in {result.seconds:.0f}s ({result.errors} failed trial(s)); {where}")
    return 0 if result.errors == 0 else 1


def main(study_name: str, argv: Sequence[str] | None = None) -> int:
    """``studies/<script>.py``: the same as ``tdrl study <study_name> ...``."""
    return tdrl_main(["study", study_name, *(sys.argv[1:] if argv is None else argv)])
