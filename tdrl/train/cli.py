"""The ``tdrl train`` command: preset < --config FILE < command-line options, then :func:`fit`.

With no options it trains the ``smoke`` preset on a local Ray instance it starts itself (or on the
cluster in ``RAY_ADDRESS``); ``--help`` shows the smoke preset's values as the defaults, since those
are what a bare command runs. Every model/data/train field is an option (``--td-lambda``,
``--epochs``, ...), named after its field (the data section's ``workers`` is ``--data-workers``:
``--workers`` is the number of training workers). All values are validated before Ray starts; a
failure during training shows its traceback.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from tdrl.config.base import add_arguments as add_config_arguments, given_arguments
from tdrl.config.experiment import SECTIONS, Experiment, load_file
from tdrl.train.presets import DEFAULT_PRESET, PRESETS, get_preset, prepare_data
from tdrl.train.tracking import SCORE
from tdrl.train.trainer import fit, resolve


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--preset", choices=tuple(PRESETS), default=None,
                        help="starting values: " + "; ".join(f"{p.name}: {p.description}" for p in PRESETS.values())
                        + f" (default: {DEFAULT_PRESET}, or none when --config is given)")
    parser.add_argument("--config", default=None, metavar="FILE",
                        help="YAML/JSON file with model/data/train sections or SECTION.FIELD keys, layered over "
                             "the preset; command-line options override it")
    parser.add_argument("--parent-run-id", default=None, help="MLflow parent run id (nest this run under it)")
    parser.add_argument("--dry-run", action="store_true",
                        help="print the resolved configuration as JSON and exit without training")
    bare = get_preset(DEFAULT_PRESET).experiment()
    for section, cls in SECTIONS.items():
        group = parser.add_argument_group(f"{section} options (defaults: the {DEFAULT_PRESET} preset's)")
        add_config_arguments(group, cls, defaults=getattr(bare, section), prefix=f"{section}.")


def experiment_from_args(args: argparse.Namespace) -> tuple[Experiment, Any]:
    """The layered Experiment and the preset used (or None)."""
    name = args.preset or (None if args.config else DEFAULT_PRESET)
    preset = get_preset(name) if name else None
    exp = preset.experiment() if preset else Experiment()
    if args.config:
        exp = load_file(args.config, base=exp)
    given = {f"{section}.{k}": v for section, cls in SECTIONS.items()
             for k, v in given_arguments(args, cls, prefix=f"{section}.").items()}
    return exp.override(given), preset


def run(args: argparse.Namespace) -> int:
    exp, preset = experiment_from_args(args)
    exp = resolve(exp)  # absolute paths, run name, MLflow URI: what the workers will see
    if args.dry_run:
        print(json.dumps(exp.flatten(), indent=1))
        return 0
    if preset is not None:
        prepare_data(preset, exp)
    result = fit(exp, parent_run_id=args.parent_run_id)
    m = result.metrics
    print(f"[tdrl] finished {result.name}: val top-1 {m.get(SCORE, float('nan')):.2f}% top-5 "
          f"{m.get('val_top5', float('nan')):.2f}% (best top-1 {m.get(f'best_{SCORE}') or 0:.2f}% at epoch "
          f"{m.get('best_epoch')})\n[tdrl] best checkpoint: {result.best_checkpoint}\n[tdrl] run folder: "
          f"{result.path}\n[tdrl] MLflow: {result.mlflow_uri} run {result.mlflow_run_id}")
    return 0
