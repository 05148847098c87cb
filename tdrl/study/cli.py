"""The command line shared by ``studies/*.py``: ``python studies/X.py [--preset ...] [--data ...] [--seeds K]``.

Runs on the Ray cluster in ``RAY_ADDRESS`` (e.g. under ``ray job submit``), else on a local Ray it
starts with the ``TRAIN_DRIVER`` resource. Running the same command again resumes the study.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any, Sequence

from tdrl.config.base import ConfigError


def parse_set(items: Sequence[str]) -> dict[str, Any]:
    """``["train.epochs=1", "model.width=0.25"]`` -> flat overrides (validated later with the rest)."""
    out: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or "." not in key:
            raise ConfigError(f"--set {item!r}: write SECTION.FIELD=VALUE, e.g. train.epochs=2")
        out[key.strip()] = value.strip()
    return out


def common_parser(description: str) -> argparse.ArgumentParser:
    from tdrl.train.presets import PRESETS

    p = argparse.ArgumentParser(description=description)
    p.add_argument("--preset", choices=tuple(PRESETS), default="smoke",
                   help="base configuration: " + "; ".join(f"{x.name}: {x.description}" for x in PRESETS.values()))
    p.add_argument("--data", default=None, metavar="ROOT",
                   help="dataset root (data.root); default: the preset's (synthetic sets are generated there)")
    p.add_argument("--seeds", type=int, default=1, help="repeats per row with seeds 0..K-1 (mean ± std)")
    p.add_argument("--name", default=None, help="study run name (default <study>-<preset>); the same name resumes")
    p.add_argument("--storage", default=None,
                   help="Ray storage folder or URI (default $TDRL_STORAGE, else ./runs/studies)")
    p.add_argument("--mlflow-uri", default=None,
                   help="MLflow tracking URI (default $MLFLOW_TRACKING_URI, else sqlite:///<cwd>/mlflow.db)")
    p.add_argument("--set", action="append", default=[], metavar="SECTION.FIELD=VALUE",
                   help="override any configuration key, e.g. --set train.epochs=2 (repeatable)")
    p.add_argument("--max-concurrent", type=int, default=None,
                   help="trials at a time (default: as many as the local CPUs fit; unlimited on a cluster)")
    p.add_argument("--tables-out", default=None, help="folder for the table files (default runs/tables/<name>)")
    return p


def main(study_name: str, argv: Sequence[str] | None = None) -> int:
    from tdrl.study.definitions import get_study
    from tdrl.study.runner import StudyOptions, run_study

    study = get_study(study_name)
    p = common_parser(f"{study.title}: every row x seeds on Ray Tune + Ray Train, tracked in MLflow")
    p.add_argument("--rows", default=None, help=f"comma-separated subset of rows: {', '.join(r.key for r in study.rows)}")
    args = p.parse_args(argv)
    try:
        opts = StudyOptions(preset=args.preset, data=args.data, seeds=args.seeds, name=args.name,
                            storage=args.storage, mlflow_uri=args.mlflow_uri,
                            rows=tuple(r for r in (args.rows or "").split(",") if r),
                            overrides=parse_set(args.set), max_concurrent=args.max_concurrent,
                            tables_out=args.tables_out)
        result = run_study(study, opts)
    except (ConfigError, KeyError) as exc:
        p.exit(2, f"{p.prog}: error: {exc.args[0] if isinstance(exc, KeyError) else exc}\n")
    print(f"[tdrl] study {result.name} done in {result.seconds:.0f}s ({result.errors} failed trial(s)); "
          f"MLflow {result.mlflow_uri} experiment {result.experiment} parent run {result.parent_run_id}")
    return 0 if result.errors == 0 else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
