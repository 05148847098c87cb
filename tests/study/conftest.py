"""Study test fixtures: a tiny synthetic set and a real `ray start` head for the slow tests."""

from __future__ import annotations

import pytest

from local_cluster import LocalCluster
from study_helpers import TINY_SYNTH


@pytest.fixture(scope="session")
def study_data(tmp_path_factory) -> str:
    from tdrl.data.synthetic import generate_synthetic

    root = tmp_path_factory.mktemp("study-synth")
    generate_synthetic(root, workers=2, **TINY_SYNTH)
    return str(root)


@pytest.fixture(scope="module")
def ray_head():
    """A real local Ray head (tests/local_cluster.py: `ray start --head`, 2 CPUs, the TRAIN_DRIVER
    resource, the job server on 127.0.0.1, token auth), ended with the module's tests by stopping the
    processes it started, not with `ray stop`, which would also stop other Ray instances on the machine."""
    with LocalCluster(head_cpus=2, head_resources={"TRAIN_DRIVER": 4}, dashboard=True) as cluster:
        yield {"gcs": cluster.address, "dashboard": cluster.dashboard, "env": cluster.env}
