"""A quiet console: a training run prints one progress line per epoch, not Ray Train's bookkeeping.

What Ray Train 2.60 prints, and the supported switch for each (checked in the installed source):

* Its ``ray.train.*`` loggers (the controller's "Attempting to start training worker group ...",
  a worker's "Checkpoint successfully created at ...", "Moving model to device", ...) reach the
  console through a handler filtered by ``RunConfig(logging_config=LoggingConfig(log_level))``
  (``ray/train/v2/_internal/logging/logging.py``). :func:`train_logging_config` sets WARNING; the
  session's ``logs/train/ray-train-sys-*.log`` files still get every level.
* Every rank's "Reporting training result N: TrainingReport(...)" comes from a logger named after
  its file path (``logging.getLogger(__file__)`` in ``ray/train/v2/_internal/execution/context.py``),
  so the level above and any filter on ``ray.train`` miss it: it propagates to the worker's root
  logger, whose console handler prints it. :func:`quiet_console` puts a filter on this process's
  console handlers that drops records below WARNING *logged from Ray Train's source files*,
  whatever their logger's name. The loop calls it in every worker; log files keep the records.

:func:`quiet_console` is also for drivers (``fit``, a study's driver): there it does the same for
Ray Train records logged in that process and silences MLflow's one-off store-migration lines.
"""

from __future__ import annotations

import logging
import os

LOG_LEVEL = "WARNING"  # Ray Train's console level in a tdrl run
# MLflow's INFO lines when a sqlite store is created or migrated ("Creating initial MLflow database tables...").
_MLFLOW_NOISE = ("mlflow.store.db.utils", "alembic.runtime.migration")


class RayTrainConsoleFilter(logging.Filter):
    """Drops records below ``LOG_LEVEL`` that were logged from a file under Ray Train's package."""

    def __init__(self, package_dir: str) -> None:
        super().__init__()
        self.package_dir = os.path.join(package_dir, "")
        self.level = logging.getLevelName(LOG_LEVEL)

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno >= self.level or not record.pathname.startswith(self.package_dir)


def _console_handlers() -> list[logging.Handler]:
    """Stream handlers (not files) of the root logger and of ``ray.train`` (which does not propagate)."""
    handlers = logging.getLogger().handlers + logging.getLogger("ray.train").handlers
    return [h for h in handlers if isinstance(h, logging.StreamHandler) and not isinstance(h, logging.FileHandler)]


def quiet_console() -> None:
    """In this process, keep Ray Train's INFO records and MLflow's store-migration lines off the console
    (idempotent; see the module docstring). Call it early: in a driver before ``ray.init`` or a
    Tuner, in a Ray Train worker at the start of the training function."""
    import ray.train  # seconds to import: not on the path of `tdrl train --help`

    package_dir = os.path.dirname(os.path.abspath(ray.train.__file__))
    for handler in _console_handlers():
        if not any(isinstance(f, RayTrainConsoleFilter) for f in handler.filters):
            handler.addFilter(RayTrainConsoleFilter(package_dir))
    for name in _MLFLOW_NOISE:
        logging.getLogger(name).setLevel(logging.WARNING)


def train_logging_config():
    """``RunConfig(logging_config=...)`` for every ``TorchTrainer`` tdrl builds."""
    import ray.train  # seconds to import: not on the path of `tdrl train --help`

    return ray.train.LoggingConfig(log_level=LOG_LEVEL)
