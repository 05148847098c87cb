"""``tdrl.train.cluster.ray_command``: the ``ray`` of the running Python, never PATH's.

The slow tests and tools/fake_cluster.py start ``ray start`` / ``ray job submit`` through it, so they
work from a venv that is not activated (its ``bin/`` not on PATH). Run for real by the slow two-node
tests; here the choice itself, on a fake interpreter folder.
"""

from __future__ import annotations

import sys


def _interpreter(tmp_path, with_ray: bool):
    bin_dir = tmp_path / "venv" / "bin"
    bin_dir.mkdir(parents=True)
    python = bin_dir / "python"
    python.write_text("")
    if with_ray:
        ray = bin_dir / "ray"
        ray.write_text("#!/bin/sh\n")
        ray.chmod(0o755)
    return python


def test_the_ray_script_beside_the_interpreter_not_the_one_on_path(tmp_path, monkeypatch):
    from tdrl.train.cluster import ray_command

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "ray").write_text("#!/bin/sh\n")
    (elsewhere / "ray").chmod(0o755)
    monkeypatch.setenv("PATH", str(elsewhere))  # another Python's ray first on PATH: never taken
    python = _interpreter(tmp_path, with_ray=True)
    monkeypatch.setattr(sys, "executable", str(python))
    assert ray_command() == [str(python.parent / "ray")]


def test_without_a_script_beside_it_the_interpreter_runs_rays_cli_module(tmp_path, monkeypatch):
    from tdrl.train.cluster import ray_command

    python = _interpreter(tmp_path, with_ray=False)  # e.g. a venv made with --system-site-packages
    monkeypatch.setattr(sys, "executable", str(python))
    assert ray_command() == [str(python), "-m", "ray.scripts.scripts"]


def test_the_cli_module_is_rays_entry_point():
    """The fallback runs the same function the ``ray`` script does (pip's console-script entry point)."""
    from importlib.metadata import entry_points

    ray_script = [e for e in entry_points(group="console_scripts") if e.name == "ray"]
    assert [e.value for e in ray_script] == ["ray.scripts.scripts:main"]
