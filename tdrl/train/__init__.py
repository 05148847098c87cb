"""Training and evaluation on Ray Train's TorchTrainer, with checkpoints, resume and MLflow tracking.

Entry points: :func:`tdrl.train.trainer.fit` (an :class:`~tdrl.config.experiment.Experiment`) and
:func:`tdrl.train.loop.train_loop_per_worker` (what every Ray Train worker runs). One home each:
MLflow in :mod:`~tdrl.train.tracking`, a trained network in :func:`~tdrl.train.checkpoint.load_trained`,
device/precision/memory format in :mod:`~tdrl.train.runtime`, Ray in :mod:`~tdrl.train.cluster`,
console noise in :mod:`~tdrl.train.console`.
"""
