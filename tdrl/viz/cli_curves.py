"""``tdrl visualize curves``: loss, top-1 and TD term per epoch of one MLflow run, as a PNG."""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--run-id", required=True, help="MLflow run id of a training run")
    parser.add_argument("--mlflow-uri", default=None,
                        help="MLflow tracking URI (default: sqlite:///<absolute cwd>/mlflow.db, training's default)")
    parser.add_argument("--out", required=True, help="PNG to write")


def run(args: argparse.Namespace) -> int:
    from mlflow.exceptions import MlflowException

    from tdrl.train.tracking import tracking_uri
    from tdrl.viz.curves import save_learning_curves

    uri = tracking_uri(args.mlflow_uri)
    try:
        out = save_learning_curves(args.run_id, uri, args.out)
    except (MlflowException, ValueError) as exc:  # unknown run, no metrics: a message, not a trace
        raise SystemExit(f"tdrl visualize curves: error: {exc}") from None
    print(f"wrote {out}")
    return 0
