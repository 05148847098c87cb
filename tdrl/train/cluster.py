"""Joining or starting Ray, the same way for ``tdrl train`` and the studies.

With ``RAY_ADDRESS`` set (``ray job submit``, a head node with ``RAY_ADDRESS=auto``) a bare
``ray.init()`` joins that cluster: it refuses ``num_cpus`` there. Otherwise a new local instance
starts (``address="local"``: even if another Ray on this machine left its address behind) with:

* every core (or ``num_cpus``);
* the custom ``TRAIN_DRIVER`` resource, twice the CPUs (at least 4): a Tune trial's driver takes
  one unit instead of a CPU, so 2-worker DDP trials fit on 2 CPUs (a plain ``fit`` ignores it);
* the dashboard on 127.0.0.1 only. It is never switched off (with ``include_dashboard=False`` a
  trial stopped early by ASHA can leave its placement group behind, ray-mlflow-notes.md), but it
  is not demanded either: with ``include_dashboard=True`` a dashboard that misses Ray's 60 s start-up
  deadline on a loaded machine fails ``ray.init``; left at Ray's default it is logged and skipped.

Tools and tests that start a cluster of their own (``ray start``, ``ray job submit``) run the ``ray``
command of this Python environment (:func:`ray_command`), never whichever ``ray`` is first on PATH.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

DRIVER_RESOURCE = "TRAIN_DRIVER"


def driver_units(cpus: int) -> int:
    """``TRAIN_DRIVER`` units of a local Ray with ``cpus`` cores: twice the CPUs, at least 4."""
    return max(4, 2 * cpus)


def connect_ray(num_cpus: int | None = None) -> bool:
    """Join ``RAY_ADDRESS`` or start a local Ray (see the module docstring); True if started here.
    Does nothing when this process is already connected."""
    import ray  # seconds to import: planning and `--help` import this module and start no Ray

    if ray.is_initialized():
        return False
    if os.environ.get("RAY_ADDRESS"):
        ray.init()
        return False
    cpus = num_cpus or os.cpu_count() or 1
    ray.init(address="local", num_cpus=cpus, resources={DRIVER_RESOURCE: driver_units(cpus)},
             dashboard_host="127.0.0.1")
    return True


def trial_resources() -> dict[str, float]:
    """What a Tune trial's driver takes: one ``TRAIN_DRIVER`` unit where the cluster has it, else a CPU."""
    import ray  # see connect_ray

    return {DRIVER_RESOURCE: 1} if ray.cluster_resources().get(DRIVER_RESOURCE, 0) >= 1 else {"CPU": 1}


def script_beside_python(name: str) -> str | None:
    """The console script ``name`` that pip installed beside the running Python (a venv's ``bin/``), or
    None. ``sys.executable`` is not resolved, so a venv's symlinked ``python`` gives the venv's folder:
    found without PATH, so a venv that is not activated works."""
    script = Path(sys.executable).parent / name
    return str(script) if script.is_file() and os.access(script, os.X_OK) else None


def ray_command() -> list[str]:
    """The ``ray`` command line of the running Python, for ``subprocess``: ``[".../bin/ray"]``.

    The ``ray`` script beside this interpreter (:func:`script_beside_python`); a ``ray`` found on PATH
    may belong to another Python, whose Ray workers cannot import this environment's packages. Where no
    script sits beside the interpreter (a venv made with ``--system-site-packages`` over an install that
    has Ray), the same CLI runs as ``python -m ray.scripts.scripts`` with this interpreter.
    """
    script = script_beside_python("ray")
    return [script] if script else [sys.executable, "-m", "ray.scripts.scripts"]
