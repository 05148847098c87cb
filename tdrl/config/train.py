"""The train section: optimisation recipe, Ray Train resources, storage, tracking and evaluation.

Defaults are the paper's recipe (spec.md): SGD with momentum 0.9, weight decay 1e-4, lr 0.01 per
64 clips scaled linearly with the global batch, 50 epochs with lr x0.1 at 30, 40 and 45.
``batch_size`` is per worker, so the global batch is ``batch_size * workers``.

Elastic runs: ``workers`` may be a range ``MIN-MAX`` (e.g. ``2-8``, spot GPU nodes that come and
go; Ray Train V2's ``ScalingConfig(num_workers=(MIN, MAX))``). The recipe is that of MAX workers:
the global batch is ``batch_size * MAX`` on any number of workers, and a run on fewer accumulates
gradients over micro-batches of at most ``batch_size`` clips (tdrl.train.batching), so the lr and its
schedule never change. A single count stays an int (``2-2`` is ``2``), so fixed runs record and hash
as before.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import ClassVar, Literal

from tdrl.config.base import ConfigError, check_declared, check_int, check_range

NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")
RANGE_RE = re.compile(r"^\s*(\d+)\s*-\s*(\d+)\s*$")


def parse_workers(field_name: str, value: object) -> tuple[int, int]:
    """``train.workers`` as ``(min, max)``: an int or ``"4"`` is fixed; ``"2-8"`` (or a pair) is elastic."""
    if isinstance(value, (list, tuple)) and len(value) == 2:
        lo, hi = value
    elif isinstance(value, str) and RANGE_RE.match(value):
        lo, hi = (int(g) for g in RANGE_RE.match(value).groups())
    elif isinstance(value, str) and value.strip().isdigit():
        lo = hi = int(value)
    else:
        lo = hi = value
    for v in (lo, hi):
        if isinstance(v, bool) or not isinstance(v, int):
            raise ConfigError(f"{field_name}={value!r} must be a worker count like 4 or a range MIN-MAX like 2-8")
        if v < 1:
            raise ConfigError(f"{field_name}={value!r}: worker counts must be >= 1")
    if lo > hi:
        raise ConfigError(f"{field_name}={value!r}: the range MIN-MAX needs MIN <= MAX")
    return lo, hi


@dataclass(frozen=True)
class TrainConfig:
    SECTION: ClassVar[str] = "train"

    epochs: int = field(default=50, metadata={"help": "training epochs"})
    batch_size: int = field(default=8, metadata={"help": "clips per worker per step (global batch = "
                                                        "batch_size x workers)"})
    lr_per_64: float = field(default=0.01, metadata={"help": "learning rate for a global batch of 64 clips; "
                                                              "scaled linearly with the global batch"})
    lr_steps: tuple[int, ...] = field(default=(30, 40, 45), metadata={
        "help": "epochs at which the lr is multiplied by lr_gamma, e.g. 30,40,45"})
    lr_gamma: float = field(default=0.1, metadata={"help": "lr factor at each step epoch"})
    warmup_epochs: int = field(default=0, metadata={"help": "epochs of linear lr warm-up (0 = none, the paper)"})
    momentum: float = field(default=0.9, metadata={"help": "SGD momentum"})
    weight_decay: float = field(default=1e-4, metadata={"help": "SGD weight decay"})
    decay_policy: Literal["weights", "all"] = field(default="weights", metadata={
        "help": "which parameters weight decay applies to: weights = conv/linear weights and TIM's kernel, "
                "not norm layers or biases (the TSM code base's policy, spec.md); all = every parameter"})
    grad_clip: float | None = field(default=None, metadata={"help": "clip the global gradient norm to this "
                                                                     "value; none = no clipping"})
    workers: int | str = field(default=1, metadata={
        "help": "Ray Train workers (one process each, DDP); or MIN-MAX, e.g. 2-8, for an elastic run that goes on "
                "with fewer workers when nodes are lost (spot) and grows back: the global batch stays batch_size "
                "x MAX (gradient accumulation on fewer workers), see docs/training.md"})
    cpus_per_worker: int = field(default=1, metadata={"help": "CPUs reserved per worker"})
    use_gpu: bool | None = field(default=None, metadata={"help": "one GPU per worker; none = auto (GPU when "
                                                                  "the Ray cluster has any)"})
    precision: Literal["auto", "fp32", "bf16"] = field(default="auto", metadata={
        "help": "autocast dtype; auto = bf16 on GPU, fp32 on CPU"})
    channels_last: bool | None = field(default=None, metadata={"help": "channels_last memory format; "
                                                                        "none = on GPU only"})
    storage_path: str = field(default="runs", metadata={
        "help": "Ray Train storage: local folder (made absolute) or a URI (s3://, gs://, NFS path)", "path": True})
    name: str | None = field(default=None, metadata={
        "help": "run name; the same name + storage_path resumes a stopped run (none = tdrl-<time>)"})
    mlflow_uri: str | None = field(default=None, metadata={
        "help": "MLflow tracking URI; none = $MLFLOW_TRACKING_URI, else sqlite:///<absolute cwd>/mlflow.db"})
    experiment: str = field(default="tdrl", metadata={"help": "MLflow experiment name"})
    seed: int = field(default=0, metadata={"help": "random seed (model init, sampling, augmentation)"})
    keep_best: int = field(default=2, metadata={"help": "checkpoints kept by best val_top1 (the latest is "
                                                         "always kept as well)"})
    max_failures: int = field(default=3, metadata={"help": "worker/node failures to recover from "
                                                            "(resume from the latest checkpoint); -1 = no limit"})
    eval_batch_size: int | None = field(default=None, metadata={"help": "validation clips per worker per step; "
                                                                         "none = batch_size"})
    progress: Literal["auto", "bar", "lines", "none"] = field(default="auto", metadata={
        "help": "per-epoch progress: tqdm bar, one line per epoch with ETA, or none; auto = bar for a "
                "local single-worker run, lines otherwise"})
    fail_at_step: int | None = field(default=None, metadata={
        "help": "testing: worker fail_rank exits at this global step, once per run (a marker file stops "
                "the retry from failing again)"})
    fail_rank: int = field(default=0, metadata={"help": "testing: the rank that fail_at_step kills"})

    def __post_init__(self) -> None:
        s = self.SECTION
        check_declared(self)
        check_int(f"{s}.epochs", self.epochs, 1)
        check_int(f"{s}.batch_size", self.batch_size, 1)
        check_range(f"{s}.lr_per_64", self.lr_per_64, 0.0, low_open=True)
        if not isinstance(self.lr_steps, tuple):
            raise ConfigError(f"{s}.lr_steps={self.lr_steps!r} must be a tuple of epochs like 30,40,45")
        for i, e in enumerate(self.lr_steps):
            check_int(f"{s}.lr_steps[{i}]", e, 1)
        if list(self.lr_steps) != sorted(set(self.lr_steps)):
            raise ConfigError(f"{s}.lr_steps={self.lr_steps!r} must be strictly increasing")
        check_range(f"{s}.lr_gamma", self.lr_gamma, 0.0, 1.0, low_open=True)
        # A warm-up as long as the run is allowed (the lr then never reaches its base): shortening a
        # preset with --epochs must not require restating its warm-up.
        check_int(f"{s}.warmup_epochs", self.warmup_epochs, 0)
        check_range(f"{s}.momentum", self.momentum, 0.0, 1.0, high_open=True)
        check_range(f"{s}.weight_decay", self.weight_decay, 0.0)
        if self.grad_clip is not None:
            check_range(f"{s}.grad_clip", self.grad_clip, 0.0, low_open=True)
        lo, hi = parse_workers(f"{s}.workers", self.workers)
        object.__setattr__(self, "workers", hi if lo == hi else f"{lo}-{hi}")  # one spelling per value
        check_int(f"{s}.cpus_per_worker", self.cpus_per_worker, 1)
        if not isinstance(self.storage_path, str) or not self.storage_path:
            raise ConfigError(f"{s}.storage_path={self.storage_path!r} must be a folder or URI")
        if self.name is not None and not NAME_RE.match(self.name):
            raise ConfigError(f"{s}.name={self.name!r} must start with a letter or digit and contain only "
                              f"letters, digits, '_', '-' and '.' (it becomes a folder name)")
        if not isinstance(self.experiment, str) or not self.experiment:
            raise ConfigError(f"{s}.experiment={self.experiment!r} must be a non-empty name")
        check_int(f"{s}.seed", self.seed, 0)
        check_int(f"{s}.keep_best", self.keep_best, 1)
        check_int(f"{s}.max_failures", self.max_failures, -1)
        if self.eval_batch_size is not None:
            check_int(f"{s}.eval_batch_size", self.eval_batch_size, 1)
        if self.fail_at_step is not None:
            check_int(f"{s}.fail_at_step", self.fail_at_step, 1)
        check_int(f"{s}.fail_rank", self.fail_rank, 0)
        if self.fail_rank >= self.min_workers:
            raise ConfigError(f"{s}.fail_rank={self.fail_rank} must be below {s}.workers={self.workers}"
                              + (" (its MIN: the rank must exist at every size)" if self.elastic else ""))

    @property
    def min_workers(self) -> int:
        return parse_workers("train.workers", self.workers)[0]

    @property
    def max_workers(self) -> int:
        return parse_workers("train.workers", self.workers)[1]

    @property
    def elastic(self) -> bool:
        return self.min_workers != self.max_workers

    @property
    def global_batch(self) -> int:
        """Clips per optimiser step, on any number of workers: ``batch_size x`` (MAX) workers."""
        return self.batch_size * self.max_workers

    @property
    def lr(self) -> float:
        """The base learning rate: ``lr_per_64`` scaled linearly with the global batch."""
        return self.lr_per_64 * self.global_batch / 64
