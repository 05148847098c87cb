"""The suite's Ray instance is its own even where another cluster's address is known: RAY_ADDRESS set,
and a stale ``ray_current_cluster`` file left by a stopped ``ray start`` (both pointing nowhere)."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent
DEAD = "127.0.0.1:1"  # where the "other cluster" is: nothing listens there


@pytest.fixture
def other_cluster_known(monkeypatch, tmp_path) -> Path:
    """RAY_ADDRESS and a left-over address file both name another (dead) cluster."""
    (tmp_path / "ray").mkdir()
    (tmp_path / "ray" / "ray_current_cluster").write_text(DEAD)
    monkeypatch.setenv("RAY_ADDRESS", DEAD)
    monkeypatch.setenv("RAY_TMPDIR", str(tmp_path))
    return tmp_path


def test_start_test_ray_asks_for_a_new_instance(monkeypatch, other_cluster_known):
    """What ``ray.init`` is given resolves, by the installed Ray's own rule, to "start a new local
    instance" (None), not to the other cluster's address (which a bare ``ray.init()`` would join)."""
    import ray
    from ray._private.services import canonicalize_bootstrap_address  # the rule ray.init applies

    from ray_helpers import start_test_ray

    calls = []
    monkeypatch.setattr(ray, "init", lambda **kw: calls.append(kw))
    start_test_ray()
    assert len(calls) == 1 and calls[0]["num_cpus"] == 2 and calls[0]["resources"] == {"TRAIN_DRIVER": 4}
    assert canonicalize_bootstrap_address(calls[0].get("address")) is None
    # The premise: without it, Ray would join the other one (127.0.0.1 comes back as this node's IP).
    assert (canonicalize_bootstrap_address(None) or "").endswith(":1")


def test_a_start_that_loses_the_raylets_start_up_race_is_tried_again(monkeypatch):
    import ray

    from ray_helpers import SLOW_START, START_TRIES, start_test_ray

    calls, shutdowns = [], []
    monkeypatch.setattr(ray, "shutdown", lambda: shutdowns.append(1))

    def slow_once(**kw):
        calls.append(kw)
        if len(calls) == 1:
            raise Exception(f"The current node {SLOW_START}. This could happen because ...")

    monkeypatch.setattr(ray, "init", slow_once)
    start_test_ray()
    assert len(calls) == 2 and calls[0] == calls[1] and len(shutdowns) == 1

    calls.clear()
    monkeypatch.setattr(ray, "init", lambda **kw: (calls.append(kw), 1 / 0))
    with pytest.raises(ZeroDivisionError):  # any other failure at once
        start_test_ray()
    assert len(calls) == 1

    def always_slow(**kw):
        calls.append(kw)
        raise Exception(SLOW_START)

    calls.clear()
    monkeypatch.setattr(ray, "init", always_slow)
    with pytest.raises(Exception, match=SLOW_START):
        start_test_ray()
    assert len(calls) == START_TRIES


SCRIPT = """
import sys
sys.path.insert(0, sys.argv[1])
from ray_helpers import start_test_ray
import ray
start_test_ray()
print("TRAIN_DRIVER", ray.cluster_resources().get("TRAIN_DRIVER"))
ray.shutdown()
"""


@pytest.mark.slow
def test_start_test_ray_really_starts_its_own_instance():
    """The same for real, in a subprocess (a Ray start: seconds, a minute or more on a loaded machine)."""
    # A short temp folder: Ray's socket paths under it must stay below the 107-character limit.
    with tempfile.TemporaryDirectory(prefix="rt", dir="/tmp") as tmp:
        (Path(tmp) / "ray").mkdir()
        (Path(tmp) / "ray" / "ray_current_cluster").write_text(DEAD)
        env = {**os.environ, "RAY_ADDRESS": DEAD, "RAY_TMPDIR": tmp}
        r = subprocess.run([sys.executable, "-c", SCRIPT, str(TESTS)], env=env, capture_output=True, text=True,
                           timeout=600)
    log = "\n".join(line for line in r.stderr.splitlines() if "SubprocessModule" not in line)
    assert r.returncode == 0, log[-3000:]
    assert "TRAIN_DRIVER 4.0" in r.stdout  # our instance, with our custom resource
