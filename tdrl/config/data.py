"""The data section: which dataset, where it lives, how clips are sampled, augmented and loaded.

The number of frames per clip T is deliberately not here: it belongs to the network
(``ModelConfig.frames``) and is passed to the dataset builders as an argument, so the two can never
disagree.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar, Literal

from tdrl.config.base import ConfigError, check_declared, check_int, check_range
from tdrl.config.paths import uri_scheme

# Datasets where left/right carries the class ("pushing from left to right"): never flip them.
ORDER_SENSITIVE = ("sthv1", "sthv2")
# Remote roots, staged onto each node's local disk through pyarrow.fs (tdrl.data.staging).
REMOTE_SCHEMES = ("s3", "gs", "gcs", "file")


@dataclass(frozen=True)
class DataConfig:
    SECTION: ClassVar[str] = "data"

    dataset: Literal["sthv1", "sthv2", "kinetics400", "list"] = field(
        default="sthv2", metadata={"help": "annotation format"})
    root: str = field(default="data/synth", metadata={
        "help": "dataset directory; in a configuration file, relative annotation/label paths are "
                "resolved against it (on a command line, against the current folder); or a remote "
                "s3://, gs:// or file:/// folder packed by tdrl data pack (tdrl-shards.tsv) or with a "
                "tdrl-manifest.tsv, copied once onto each node's local disk ($TDRL_STAGE_DIR, default "
                "<tmp>/tdrl-stage; docs/data.md)", "path": True})
    video_dir: str = field(default="", metadata={
        "help": "folder of the videos / frame folders (empty = root itself; in a configuration file, "
                "relative to root)", "path": True})
    train_annotations: str | None = field(default=None, metadata={
        "help": "training annotation file (none = the official name for sthv1/sthv2)", "path": True})
    val_annotations: str | None = field(default=None, metadata={
        "help": "validation annotation file (none = the official name for sthv1/sthv2)", "path": True})
    labels: str | None = field(default=None, metadata={
        "help": "label file: V1 CSV / V2 JSON (none = official name); kinetics400/list: optional "
                "one-class-per-line map fixing the index order", "path": True})
    video_ext: str = field(default=".webm", metadata={"help": "extension of sthv2 videos (<id><ext>)"})
    decoder: Literal["auto", "decord", "pyav"] = field(default="auto", metadata={
        "help": "video decoder; auto = decord when importable, else PyAV"})
    sampling: Literal["auto", "segments", "window"] = field(default="auto", metadata={
        "help": "frame sampling: segments (TSN, whole video), window (T frames from a 64-frame "
                "window); auto = window for kinetics400, segments otherwise"})
    window: int = field(default=64, metadata={"help": "window length in frames for window sampling"})
    input_size: int = field(default=224, metadata={"help": "network input height and width"})
    short_side: int = field(default=256, metadata={"help": "shorter side the frames are scaled to"})
    scales: tuple[float, ...] = field(default=(1.0, 0.875, 0.75, 0.66), metadata={
        "help": "multi-scale crop sizes as fractions of the shorter side"})
    max_distort: int = field(default=1, metadata={
        "help": "largest index difference between the height and width scale (aspect jitter)"})
    flip: bool | None = field(default=None, metadata={
        "help": "random horizontal flip in training; none = off for sthv1/sthv2, on otherwise"})
    num_clips: int = field(default=1, metadata={"help": "evaluation clips per video"})
    num_crops: Literal[1, 3] = field(default=1, metadata={"help": "evaluation crops per clip: 1 (centre) or 3"})
    on_error: Literal["raise", "skip"] = field(default="raise", metadata={
        "help": "unreadable item in training: raise, or skip (load another item) and count"})
    max_error_fraction: float = field(default=0.01, metadata={
        "help": "with on_error=skip, abort once an epoch's failures exceed this fraction of the dataset"})
    workers: int = field(default=2, metadata={"help": "DataLoader worker processes per training worker",
                                              "option": "--data-workers"})
    cache: bool = field(default=False, metadata={
        "help": "keep each loader process's decoded videos (training) and finished clips (evaluation) in "
                "memory, for small data sets that fit (the bench preset: ~0.5 GB); results are identical"})
    decode_on: Literal["loader", "device"] = field(default="loader", metadata={
        "help": "where frames are decoded and augmented: loader (CPU workers give float clips) or device "
                "(workers give JPEG bytes + crop/flip parameters; tdrl.data.gpu_decode.decode_and_augment "
                "decodes them on the training device; needs JPEG frame folders, see tdrl data prepare)"})

    def __post_init__(self) -> None:
        s = self.SECTION
        check_declared(self)
        if not isinstance(self.root, str) or not self.root:
            raise ConfigError(f"{s}.root={self.root!r} must be a non-empty directory path")
        scheme = uri_scheme(self.root)
        if scheme:
            if scheme not in REMOTE_SCHEMES:
                raise ConfigError(f"{s}.root={self.root}: the scheme {scheme}:// is not supported; use a local "
                                  f"folder or s3://, gs:// or file:/// (staged onto each node, docs/data.md)")
            if scheme == "file" and not self.root.startswith("file:///"):
                raise ConfigError(f"{s}.root={self.root}: a file:// root needs an absolute path, file:///abs/folder")
        check_int(f"{s}.window", self.window, 1)
        check_int(f"{s}.input_size", self.input_size, 8)
        check_int(f"{s}.short_side", self.short_side, 8)
        if self.input_size > self.short_side:
            raise ConfigError(f"{s}.input_size={self.input_size} is larger than {s}.short_side="
                              f"{self.short_side}; crops are cut from the scaled frame, so lower "
                              f"input_size or raise short_side")
        if not isinstance(self.scales, tuple) or not self.scales:
            raise ConfigError(f"{s}.scales={self.scales!r} must be a non-empty tuple like 1,0.875,0.75,0.66")
        for i, v in enumerate(self.scales):
            check_range(f"{s}.scales[{i}]", v, 0.0, 1.0, low_open=True)
        check_int(f"{s}.max_distort", self.max_distort, 0)
        check_int(f"{s}.num_clips", self.num_clips, 1)
        check_range(f"{s}.max_error_fraction", self.max_error_fraction, 0.0, 1.0)
        check_int(f"{s}.workers", self.workers, 0)
        if not self.video_ext.startswith("."):
            raise ConfigError(f"{s}.video_ext={self.video_ext!r} must start with a dot, e.g. .webm")

    @property
    def use_flip(self) -> bool:
        """Flip in training unless the dataset's classes are direction-sensitive."""
        return self.flip if self.flip is not None else self.dataset not in ORDER_SENSITIVE

    @property
    def sampling_mode(self) -> str:
        if self.sampling != "auto":
            return self.sampling
        return "window" if self.dataset == "kinetics400" else "segments"
