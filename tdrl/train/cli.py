"""The ``tdrl train`` command: preset < --config FILE < command-line options, then :func:`fit`.

With no options it trains the ``smoke`` preset on a local Ray instance it starts itself (or on the
cluster in ``RAY_ADDRESS``). Every model/data/train field is an option (``--td-lambda``,
``--epochs``, ...); the data section's ``workers`` is ``--data-workers`` because ``--workers`` is
the number of training workers. All values are validated before Ray starts.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from tdrl.config.base import add_arguments as add_config_arguments
from tdrl.config.experiment import SECTIONS, Experiment, load_file

RENAMED = {"data": {"--workers": "--data-workers"}}


class _SectionOptions:
    """Lets :func:`tdrl.config.base.add_arguments` add one section's options with ``section.field``
    destinations (so sections never clash) and renamed flags where two sections share a name."""

    def __init__(self, group: argparse._ArgumentGroup, section: str) -> None:
        self.group, self.section = group, section

    def add_argument(self, *flags: str, dest: str, **kwargs: Any) -> None:
        rename = RENAMED.get(self.section, {})
        self.group.add_argument(*(rename.get(f, f) for f in flags), dest=f"{self.section}.{dest}", **kwargs)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from tdrl.train.presets import PRESETS

    parser.add_argument("--preset", choices=tuple(PRESETS), default=None,
                        help="starting values: " + "; ".join(f"{p.name}: {p.description}" for p in PRESETS.values())
                        + " (default: smoke, or none when --config is given)")
    parser.add_argument("--config", default=None, metavar="FILE",
                        help="YAML/JSON file with model/data/train sections or SECTION.FIELD keys, layered over "
                             "the preset; command-line options override it")
    parser.add_argument("--parent-run-id", default=None, help="MLflow parent run id (nest this run under it)")
    parser.add_argument("--dry-run", action="store_true",
                        help="print the resolved configuration as JSON and exit without training")
    for section, cls in SECTIONS.items():
        group = parser.add_argument_group(f"{section} options")
        add_config_arguments(_SectionOptions(group, section), cls)  # type: ignore[arg-type]


def experiment_from_args(args: argparse.Namespace) -> tuple[Experiment, Any]:
    """The layered Experiment and the preset used (or None)."""
    from tdrl.train.presets import get_preset

    name = args.preset or (None if args.config else "smoke")
    preset = get_preset(name) if name else None
    exp = preset.experiment() if preset else Experiment()
    if args.config:
        exp = load_file(args.config, base=exp)
    given = {k: v for k, v in vars(args).items() if "." in k and v is not None}
    return exp.override(given), preset


def run(args: argparse.Namespace) -> int:
    from tdrl.train.presets import prepare_data
    from tdrl.train.trainer import fit, resolve

    exp, preset = experiment_from_args(args)
    exp = resolve(exp)  # absolute paths, run name, MLflow URI: what the workers will see
    if args.dry_run:
        print(json.dumps(exp.flatten(), indent=1))
        return 0
    if preset is not None:
        prepare_data(preset, exp)
    try:
        result = fit(exp, parent_run_id=args.parent_run_id)
    except Exception as exc:
        from tdrl.config.base import ConfigError

        if isinstance(exc, ConfigError):
            raise
        print(f"tdrl train: training failed: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    m = result.metrics
    print(f"[tdrl] finished {result.name}: val top-1 {m.get('val_top1', float('nan')):.2f}% top-5 "
          f"{m.get('val_top5', float('nan')):.2f}% (best top-1 {m.get('best_val_top1') or 0:.2f}% at epoch "
          f"{m.get('best_epoch')})\n[tdrl] best checkpoint: {result.best_checkpoint}\n[tdrl] run folder: "
          f"{result.path}\n[tdrl] MLflow: {result.mlflow_uri} run {result.mlflow_run_id}")
    return 0
