"""Starting the test suite's own Ray instance (a module of its own so a subprocess test can import it)."""

from __future__ import annotations


def start_test_ray() -> None:
    """A new local 2-CPU Ray instance, whatever else runs on the machine.

    ``address="local"``: never join a running cluster, the one ``RAY_ADDRESS`` names, or the one a
    stopped ``ray start`` left in ``/tmp/ray/ray_current_cluster`` (a bare ``ray.init(num_cpus=...)``
    tries to join it and fails at setup). ``TRAIN_DRIVER`` lets Tune trial drivers run without a CPU.
    """
    import ray

    ray.init(address="local", num_cpus=2, resources={"TRAIN_DRIVER": 4}, include_dashboard=True,
             dashboard_host="127.0.0.1", log_to_driver=True)
