"""The ``tdrl`` command line: one subcommand per capability, each defined next to its code.

Each entry of :data:`COMMANDS` names a module with ``add_arguments(parser)`` and ``run(args) -> int``;
modules are imported only for the command being run, so ``tdrl --help`` does not import torch or
Ray. A command with a positional word (``tdrl study NAME``) adds it in its own ``add_arguments``.

One voice for errors: bad input (a value, file, path or checkpoint) raises
:class:`~tdrl.config.base.InputError` (``ConfigError``, ``CheckpointError``, ``AnnotationError``,
``DecodeError``, ... are kinds of it); it ends as ``tdrl COMMAND: error: <message>`` on stderr and
:func:`main` returns 2, the exit code of argparse's own usage errors (which exit through SystemExit). Any other exception is a real failure and shows its
traceback. Option names mean the same in every command: ``--root`` (dataset folder), ``--storage-path``,
``--mlflow-uri``, ``--parent-run-id``, ``--num-classes``; ``--workers`` is Ray Train workers,
``--data-workers`` DataLoader processes per worker, ``--processes`` local processes of a data tool.
A relative path on a command line is relative to the current folder.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from tdrl.config.base import InputError

# command name -> (module, one-line help). Nested commands ("data inspect") use a space. A new command
# is one more line here, e.g. "study": ("tdrl.study.cli", ...), whose module adds a positional NAME.
COMMANDS: dict[str, tuple[str, str]] = {
    "model-info": ("tdrl.model.info", "parameters and GMACs of a network configuration"),
    "train": ("tdrl.train.cli", "train on Ray Train (default: the smoke preset on a local Ray)"),
    "eval": ("tdrl.train.evaluate", "top-1/top-5 of checkpoints, single or multi-view; ensembles"),
    "synth": ("tdrl.data.synthetic", "write the synthetic temporal-order benchmark (V2 format)"),
    "data inspect": ("tdrl.data.inspect", "counts, unreadable/short items and a decoded sample of a dataset"),
    "data prepare": ("tdrl.data.prepare", "convert a dataset once into JPEG frame folders at shorter side 256"),
    "data manifest": ("tdrl.data.manifest", "list a dataset folder's files with sizes and SHA-256 (for staging)"),
    "data pack": ("tdrl.data.shards", "pack a dataset folder into ~1 GB tar shards with their SHA-256 (for staging)"),
    "data stage": ("tdrl.data.staging", "copy a remote dataset (s3://, gs://, file:///) onto this node's disk"),
    "visualize pem": ("tdrl.viz.cli_pem", "paper Fig. 3: channels PEM excites and suppresses, per frame"),
    "visualize tm": ("tdrl.viz.cli_tm", "paper Fig. 4: feature maps before/after TM, with and without the TD loss"),
    "visualize curves": ("tdrl.viz.cli_curves", "learning curves (loss, top-1, TD term) of an MLflow run"),
    "tables": ("tdrl.study.tables", "study tables from MLflow beside the paper's numbers (md, csv, png)"),
    "study": ("tdrl.study.cli", "run or resume a study of the paper (Tables 3-7, memory init): rows x seeds"),
    "search": ("tdrl.study.search", "Optuna search over lambda, TD ratio, positions and memory init"),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tdrl", description="Temporal Distinct Representation Learning")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    groups: dict[str, argparse._SubParsersAction] = {}
    for name, (module, helptext) in COMMANDS.items():
        words = name.split(" ")
        target = sub
        if len(words) == 2:
            if words[0] not in groups:
                group_parser = sub.add_parser(words[0], help=f"{words[0]} commands")
                groups[words[0]] = group_parser.add_subparsers(dest="subcommand", metavar="SUBCOMMAND")
            target = groups[words[0]]
        p = target.add_parser(words[-1], help=helptext, description=helptext)
        p.set_defaults(_module=module)
        # Arguments are defined lazily only for the chosen command (see main).
        p.set_defaults(_name=name)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    # Find the command first, then build only that command's parser with its full options.
    for name, (module, helptext) in COMMANDS.items():
        words = name.split(" ")
        if argv[: len(words)] == words:
            parser = argparse.ArgumentParser(prog=f"tdrl {name}", description=helptext)
            mod = importlib.import_module(module)
            mod.add_arguments(parser)
            args = parser.parse_args(argv[len(words):])
            try:
                return int(mod.run(args) or 0)
            except InputError as exc:
                print(f"tdrl {name}: error: {exc}", file=sys.stderr)
                return 2
    parser = build_parser()
    args = parser.parse_args(argv)
    parser.print_help()
    return 0 if not argv else 2


if __name__ == "__main__":
    sys.exit(main())
