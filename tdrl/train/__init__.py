"""Training and evaluation on Ray Train's TorchTrainer, with checkpoints, resume and MLflow tracking.

Entry points: :func:`tdrl.train.trainer.fit` (an :class:`~tdrl.config.experiment.Experiment`),
:func:`tdrl.train.trainer.fit_flat` (flat ``section.field`` keys, e.g. from a Tune trial) and
:func:`tdrl.train.loop.train_loop_per_worker` (what every Ray Train worker runs).
"""
