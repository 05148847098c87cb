"""``tdrl visualize curves``: loss, top-1 and TD term per epoch of one MLflow run, as a PNG."""

from __future__ import annotations

import argparse

from tdrl.config.base import InputError
from tdrl.train.tracking import is_transient, tracking_uri
from tdrl.viz.curves import log_learning_curves, save_learning_curves


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--run-id", required=True, help="MLflow run id of a training run")
    parser.add_argument("--mlflow-uri", default=None,
                        help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI, else sqlite:///<cwd>/mlflow.db)")
    parser.add_argument("--out", required=True, help="PNG to write")
    parser.add_argument("--log", action="store_true",
                        help="also log the PNG to the run as an artifact (figures/learning_curves.png)")


def run(args: argparse.Namespace) -> int:
    from mlflow.exceptions import MlflowException  # seconds to import: not on the path of --help

    uri = tracking_uri(args.mlflow_uri)
    try:
        out = save_learning_curves(args.run_id, uri, args.out)
    except MlflowException as exc:
        if is_transient(exc):  # the store is down: a real failure, with its traceback
            raise
        raise InputError(f"run {args.run_id} at {uri}: {exc.message}") from exc  # e.g. no such run
    print(f"wrote {out}")
    if args.log:
        print(f"logged {log_learning_curves(args.run_id, uri)} to run {args.run_id}")
    return 0
