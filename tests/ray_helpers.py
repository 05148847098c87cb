"""Starting the test suite's own Ray instance (a module of its own so a subprocess test can import it)."""

from __future__ import annotations

# What ray.init raises when the raylet did not register in time. On a loaded machine the raylet
# dies waiting for its agents (Python processes) to write their ports (a fixed 15 s in Ray 2.60):
# a start-up race, not a fault of the test, so the start is tried again.
SLOW_START = "timed out during startup"
START_TRIES = 3


def start_test_ray() -> None:
    """A new local 2-CPU Ray instance, whatever else runs on the machine.

    ``address="local"``: never join a running cluster, the one ``RAY_ADDRESS`` names, or the one a
    stopped ``ray start`` left in ``/tmp/ray/ray_current_cluster`` (a bare ``ray.init(num_cpus=...)``
    tries to join it and fails at setup). ``TRAIN_DRIVER`` lets Tune trial drivers run without a CPU.
    A start that loses the raylet's start-up race (``SLOW_START``) is tried again, ``START_TRIES`` in all.
    """
    import ray

    for attempt in range(1, START_TRIES + 1):
        try:
            ray.init(address="local", num_cpus=2, resources={"TRAIN_DRIVER": 4}, include_dashboard=True,
                     dashboard_host="127.0.0.1", log_to_driver=True)
            return
        except Exception as exc:  # Ray raises a bare Exception for it
            if SLOW_START not in str(exc) or attempt == START_TRIES:
                raise
            ray.shutdown()
