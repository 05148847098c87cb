"""One training experiment: the model, data and train sections together, in flat or nested form.

The flat form ``{"model.td_ratio": 0.5, "data.root": ..., "train.epochs": 50}`` is what MLflow
records as params, what Tune search spaces are written over and what Ray Train passes to every
worker. Layering, lowest first: dataclass defaults < preset < configuration file < command line.
A file may be nested (``model: {td_ratio: 0.5}``) or flat (``model.td_ratio: 0.5``), YAML or JSON;
unknown keys are refused with the file and key named.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import yaml

from tdrl.config.base import ConfigError, flatten, from_dict, split_flat, to_dict
from tdrl.config.data import DataConfig
from tdrl.config.model import ModelConfig
from tdrl.config.train import TrainConfig

SECTIONS: dict[str, type] = {"model": ModelConfig, "data": DataConfig, "train": TrainConfig}


@dataclass(frozen=True)
class Experiment:
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    def __post_init__(self) -> None:
        for name, cls in SECTIONS.items():
            if not isinstance(getattr(self, name), cls):
                raise ConfigError(f"Experiment.{name} must be a {cls.__name__}, got {type(getattr(self, name)).__name__}")

    def flatten(self) -> dict[str, Any]:
        """``{"model.x": ..., "data.y": ..., "train.z": ...}``; tuples become comma-separated strings."""
        return flatten({"model": self.model, "data": self.data, "train": self.train})

    def nested(self) -> dict[str, dict[str, Any]]:
        """``{"model": {...}, "data": {...}, "train": {...}}`` (JSON/YAML-serialisable)."""
        return {name: to_dict(getattr(self, name)) for name in SECTIONS}

    @classmethod
    def from_flat(cls, flat: Mapping[str, Any], base: "Experiment | None" = None) -> "Experiment":
        """Build from flat keys layered over ``base`` (default: the dataclass defaults)."""
        parts = split_flat(flat, SECTIONS)
        return cls.from_nested(parts, base)

    @classmethod
    def from_nested(cls, nested: Mapping[str, Mapping[str, Any]], base: "Experiment | None" = None) -> "Experiment":
        base = base or cls()
        unknown = sorted(set(nested) - set(SECTIONS))
        if unknown:
            raise ConfigError(f"unknown section(s) {', '.join(unknown)}; sections are {', '.join(SECTIONS)}")
        kwargs = {}
        for name, section_cls in SECTIONS.items():
            values = {**to_dict(getattr(base, name)), **dict(nested.get(name, {}) or {})}
            kwargs[name] = from_dict(section_cls, values, section=name)
        return cls(**kwargs)

    def override(self, flat: Mapping[str, Any]) -> "Experiment":
        """A copy with some flat keys changed (validated like everything else)."""
        return Experiment.from_flat(flat, base=self) if flat else self


def read_file(path: str | Path) -> dict[str, Any]:
    """A configuration file as flat keys; nested sections are flattened. Errors name the file."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError(f"cannot read configuration file {path}: {exc.strerror or exc}") from exc
    try:
        if path.suffix.lower() == ".json":
            raw = json.loads(text)
        else:
            raw = yaml.safe_load(text)
    except Exception as exc:  # json.JSONDecodeError, yaml.YAMLError: both are parse errors of this file
        raise ConfigError(f"{path}: not valid {'JSON' if path.suffix.lower() == '.json' else 'YAML'}: {exc}") from exc
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: the top level must be a mapping of sections or SECTION.FIELD keys")
    flat: dict[str, Any] = {}
    for key, value in raw.items():
        if key in SECTIONS and isinstance(value, dict):
            flat.update({f"{key}.{k}": v for k, v in value.items()})
        else:
            flat[str(key)] = value
    return flat


def load_file(path: str | Path, base: Experiment | None = None) -> Experiment:
    """An Experiment from a YAML/JSON file layered over ``base``; bad keys/values name the file."""
    flat = read_file(path)
    try:
        return Experiment.from_flat(flat, base=base)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from exc
