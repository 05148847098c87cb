"""tdrl's one configuration source: typed, validated dataclasses, one per section."""

from tdrl.config.base import ConfigError, flatten, from_dict, to_dict
from tdrl.config.data import DataConfig
from tdrl.config.model import ModelConfig
from tdrl.config.train import TrainConfig
from tdrl.config.experiment import Experiment

__all__ = ["ConfigError", "DataConfig", "Experiment", "ModelConfig", "TrainConfig", "flatten", "from_dict",
           "to_dict"]
