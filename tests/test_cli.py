"""One CLI voice (issue 12): bad input is ``tdrl COMMAND: error: ...`` on stderr with exit 2, a real
failure shows its traceback, ``--help`` shows what a bare command runs, option names agree."""

from __future__ import annotations

import importlib
import json

import pytest

from tdrl.cli import COMMANDS, main


def _input_error(capsys, *argv: str) -> str:
    code = main(list(argv))
    out, err = capsys.readouterr()
    assert code == 2, err
    command = " ".join(w for w in argv[:2] if not w.startswith("-") and f"{argv[0]} {w}" in COMMANDS) or argv[0]
    assert err.startswith(f"tdrl {command}: error: ") and "Traceback" not in err, err
    assert out == ""  # nothing on stdout: a script reading it sees no half result
    return err


def test_every_command_module_speaks_the_protocol():
    for name, (module, _) in COMMANDS.items():
        mod = importlib.import_module(module)
        assert callable(mod.add_arguments) and callable(mod.run), name


def test_bad_input_is_one_error_line_with_exit_2(tmp_path, capsys):
    assert "must be even" in _input_error(capsys, "synth", "--out", str(tmp_path / "s"), "--num-classes", "3")
    assert "no such checkpoint file" in _input_error(capsys, "eval", str(tmp_path / "missing"))
    assert "--size 8 is too small" in _input_error(capsys, "model-info", "--size", "8")
    assert "train.epochs=0" in _input_error(capsys, "train", "--epochs", "0", "--dry-run")


def test_a_real_training_failure_shows_its_traceback(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)

    def broken(*args, **kwargs):
        raise RuntimeError("worker group died")

    monkeypatch.setattr("tdrl.train.cli.fit", broken)
    with pytest.raises(RuntimeError, match="worker group died"):  # not swallowed into "training failed"
        main(["train", "--preset", "paper", "--storage-path", str(tmp_path)])


def test_train_help_shows_what_a_bare_command_runs(capsys):
    from tdrl.train.presets import get_preset

    with pytest.raises(SystemExit) as exc:
        main(["train", "--help"])
    assert exc.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    smoke = get_preset("smoke").experiment()
    assert f"training epochs (default: {smoke.train.epochs})" in text
    assert "torchvision ResNet depth (default: resnet18)" in text
    assert "--data-workers" in text and "--parent-run-id" in text


def test_train_paths_typed_are_relative_to_the_current_folder(monkeypatch, tmp_path, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["train", "--dry-run", "--root", "DIR", "--train-annotations", "DIR/x.csv",
                 "--storage-path", "out"]) == 0
    flat = json.loads(capsys.readouterr().out)
    assert flat["data.root"] == str(tmp_path / "DIR")
    assert flat["data.train_annotations"] == str(tmp_path / "DIR" / "x.csv")  # not DIR/DIR/x.csv
    assert flat["train.storage_path"] == str(tmp_path / "out")


def _synth_args(*argv: str):
    import argparse

    from tdrl.data import synthetic

    parser = argparse.ArgumentParser(prog="tdrl synth")
    synthetic.add_arguments(parser)
    return parser, parser.parse_args(list(argv))


def test_synth_option_names_agree_and_old_spellings_still_parse():
    parser, args = _synth_args("--num-classes", "4", "--processes", "3")
    assert (args.num_classes, args.processes) == (4, 3)
    assert not hasattr(args, "classes") and not hasattr(args, "workers")
    _, old = _synth_args("--classes", "6", "--workers", "2")  # deprecated aliases, same destinations
    assert (old.num_classes, old.processes) == (6, 2)
    _, default = _synth_args()
    assert (default.num_classes, default.processes) == (10, None)
    text = parser.format_help()
    assert "--num-classes" in text and "--processes" in text
    assert "--classes" not in text and "--workers" not in text  # hidden from --help


def test_tables_takes_parent_run_id_and_the_old_spelling(tmp_path, monkeypatch, capsys):
    import argparse

    from tdrl.study import tables

    parser = argparse.ArgumentParser(prog="tdrl tables")
    tables.add_arguments(parser)
    assert parser.parse_args(["table3", "--parent-run-id", "abc"]).parent_run_id == "abc"
    assert parser.parse_args(["table3", "--parent-run", "abc"]).parent_run_id == "abc"  # hidden alias
    assert parser.parse_args(["table3"]).parent_run_id is None
    args = parser.parse_args(["table3", "table5", "--name", "t5", "--out", "o", "--experiment-prefix", "b",
                              "--mlflow-uri", "sqlite:///m.db", "--no-log"])
    assert (args.studies, args.name, args.out, args.experiment_prefix, args.mlflow_uri, args.no_log) == (
        ["table3", "table5"], "t5", "o", "b", "sqlite:///m.db", True)
    args = parser.parse_args([])
    assert (args.studies, args.name, args.out, args.experiment_prefix, args.mlflow_uri, args.no_log) == (
        [], None, "runs/tables", "tdrl", None, False)
    assert "--parent-run-id" in parser.format_help() and "--parent-run " not in parser.format_help()
    monkeypatch.chdir(tmp_path)  # the default store would be ./mlflow.db; the check comes before any read
    err = _input_error(capsys, "tables", "table3", "table4", "--parent-run-id", "abc")
    assert "--parent-run-id needs exactly one STUDY" in err
