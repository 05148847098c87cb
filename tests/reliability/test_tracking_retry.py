"""Unit tests of tdrl's tracking-outage handling (tdrl/train/tracking.py): bounded retry with
backoff, epochs queued while the store is away and sent in order when it is back, nothing sent
twice, a clear failure naming the unsent epochs. A fake client stands in for MLflow; the real
server kill/restart is in test_faults_slow.py."""

from __future__ import annotations

import warnings

import pytest

from tdrl.train import tracking
from tdrl.train.tracking import EpochLogger, TrackingUnavailable, is_transient, with_retry


class Down(Exception):
    """What MLflow raises for a refused connection (error_code INTERNAL_ERROR)."""

    error_code = "INTERNAL_ERROR"


class BadRequest(Exception):
    error_code = "INVALID_PARAMETER_VALUE"


class FakeClient:
    """Stores points like MLflow's SQL store (identical points are kept once); ``down`` makes the
    next calls fail; ``lost_reply`` stores a batch but raises as if the answer never arrived."""

    def __init__(self) -> None:
        self.points: list[tuple[str, int, float, int]] = []
        self.down = 0
        self.lost_reply = False
        self.calls = 0

    def get_metric_history(self, run_id, key):
        self._maybe_fail()
        return [type("M", (), {"step": s})() for k, s, _, _ in self.points if k == key]

    def log_batch(self, run_id, metrics=()):
        self._maybe_fail()
        for m in metrics:
            p = (m.key, m.step, m.value, m.timestamp)
            if p not in self.points:
                self.points.append(p)
        if self.lost_reply:
            self.lost_reply = False
            raise Down("connection reset after the server stored the batch")

    def _maybe_fail(self):
        self.calls += 1
        if self.down > 0:
            self.down -= 1
            raise Down("Connection refused")

    def steps(self, key="train_loss"):
        return [s for k, s, _, _ in self.points if k == key]


@pytest.fixture(autouse=True)
def fast_backoff(monkeypatch):
    monkeypatch.setattr(tracking, "RETRY_BACKOFF_S", 0.001)


def test_transient_and_permanent_errors():
    assert is_transient(Down()) and is_transient(OSError("database is locked"))
    assert not is_transient(BadRequest())


def test_with_retry_is_bounded_and_skips_permanent_errors():
    calls = []

    def flaky():
        calls.append(1)
        if len(calls) < 3:
            raise Down()
        return "ok"

    assert with_retry(flaky, "sqlite:////x/mlflow.db") == "ok" and len(calls) == 3
    calls.clear()
    with pytest.raises(Down):
        with_retry(lambda: (calls.append(1), (_ for _ in ()).throw(Down()))[1], "sqlite:////x/db")
    assert len(calls) == tracking.RETRY_ATTEMPTS  # bounded
    calls.clear()
    with pytest.raises(BadRequest):
        with_retry(lambda: (calls.append(1), (_ for _ in ()).throw(BadRequest()))[1], "sqlite:////x/db")
    assert len(calls) == 1  # a bad request is never retried
    calls.clear()
    with pytest.raises(Down):  # HTTP: MLflow's client retries inside the call; tdrl does not add a loop
        with_retry(lambda: (calls.append(1), (_ for _ in ()).throw(Down()))[1], "http://127.0.0.1:5000")
    assert len(calls) == 1


def test_outage_queues_epochs_and_sends_them_in_order_without_duplicates():
    client = FakeClient()
    log = EpochLogger("http://127.0.0.1:1", "run", client=client)
    assert log.log(0, {"train_loss": 1.0, "val_top1": 10.0})
    client.down = 10  # the server goes away
    with pytest.warns(RuntimeWarning, match=r"unreachable .* epoch\(s\) 1 queued"):
        assert log.log(1, {"train_loss": 0.9, "val_top1": 20.0})
    with pytest.warns(RuntimeWarning, match=r"epoch\(s\) 1, 2 queued"):
        log.log(2, {"train_loss": 0.8, "val_top1": 30.0})
    assert client.steps() == [0] and [e for e, _ in log.pending] == [1, 2]
    client.down = 0  # back
    log.log(3, {"train_loss": 0.7, "val_top1": 40.0})
    assert client.steps() == [0, 1, 2, 3] and client.steps("val_top1") == [0, 1, 2, 3]
    assert not log.pending
    with pytest.warns(RuntimeWarning, match="already holds epoch 2"):
        assert not log.log(2, {"train_loss": 0.5})  # a re-run epoch is not logged twice
    log.close(timeout_s=0)
    assert client.steps() == [0, 1, 2, 3]


def test_resent_batch_after_a_lost_reply_is_stored_once(tmp_path):
    """A batch that reached the store but whose answer was lost is sent again; a real SQLite MLflow
    store (not a fake's own bookkeeping) must end up with each point once."""
    from mlflow.tracking import MlflowClient

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    run_id, _ = tracking.start_run(uri, "tests", "lost-reply", {"a": 1})
    real = MlflowClient(uri)

    class LostFirstReply:
        """The real client, except that the first ``log_batch`` stores its points and then raises."""

        lost = True

        def get_metric_history(self, run_id, key):
            return real.get_metric_history(run_id, key)

        def log_batch(self, run_id, metrics=(), **kwargs):
            real.log_batch(run_id, metrics=metrics, **kwargs)
            if self.lost:
                self.lost = False
                raise Down("connection reset after the server stored the batch")

    log = EpochLogger(uri, run_id, client=LostFirstReply())
    log.log(0, {"train_loss": 1.0, "val_top1": 10.0})
    log.log(1, {"train_loss": 0.5, "val_top1": 20.0})
    assert not log.pending
    for key, values in (("train_loss", [(0, 1.0), (1, 0.5)]), ("val_top1", [(0, 10.0), (1, 20.0)])):
        assert sorted((m.step, m.value) for m in real.get_metric_history(run_id, key)) == values, key


def test_close_waits_for_the_store_then_fails_naming_the_epochs():
    client = FakeClient()
    log = EpochLogger("http://127.0.0.1:1", "run", client=client)
    client.down = 3
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        log.log(0, {"train_loss": 1.0})  # fails once, queued
        log.close(timeout_s=30)  # two more failures, then it is sent
    assert client.steps() == [0]
    client.down = 10**6
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        log.log(1, {"train_loss": 0.5})
        with pytest.raises(TrackingUnavailable, match=r'lacks epoch\(s\) 1: \{"1": \{"train_loss": 0.5\}\}'):
            log.close(timeout_s=0.05)


def test_permanent_error_is_raised_not_queued():
    class Refusing(FakeClient):
        def log_batch(self, run_id, metrics=()):
            raise BadRequest("bad metric")

    log = EpochLogger("sqlite:////x/mlflow.db", "run", client=Refusing())
    with pytest.raises(BadRequest):
        log.log(0, {"train_loss": 1.0})


def test_finish_run_retries_a_locked_sqlite_store(tmp_path, monkeypatch):
    """The driver's closing calls go through the same bounded retry (a locked SQLite file)."""
    from mlflow.tracking import MlflowClient

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    run_id, _ = tracking.start_run(uri, "tests", "locked", {"a": 1})
    real = MlflowClient.set_terminated
    fails = [2]

    def locked_twice(self, *a, **k):
        if fails[0]:
            fails[0] -= 1
            raise OSError("database is locked")
        return real(self, *a, **k)

    monkeypatch.setattr(MlflowClient, "set_terminated", locked_twice)
    tracking.finish_run(uri, run_id, status="FINISHED", config={}, final_metrics={}, best_checkpoint=None)
    assert MlflowClient(uri).get_run(run_id).info.status == "FINISHED" and fails == [0]


def test_backfill_logs_only_the_epochs_the_run_lacks_in_order():
    """A restarted worker re-logs from its checkpoint's history what died queued in the old one."""
    client = FakeClient()
    first = EpochLogger("http://mlflow", "run", client=client)
    first.log(0, {"train_loss": 1.0})
    client.down = 99  # outage: epochs 1 and 2 stay queued in this process, which then dies
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        first.log(1, {"train_loss": 0.9})
        first.log(2, {"train_loss": 0.8})
    assert client.steps() == [0]
    client.down = 0
    restarted = EpochLogger("http://mlflow", "run", client=client)
    history = {0: {"train_loss": 1.0}, 1: {"train_loss": 0.9}, 2: {"train_loss": 0.8}}
    assert restarted.backfill(history) == [1, 2]
    assert client.steps() == [0, 1, 2]
    assert restarted.backfill(history) == []  # nothing twice
    assert [v for k, s, v, _ in client.points if k == "train_loss"] == [1.0, 0.9, 0.8]
