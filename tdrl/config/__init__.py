"""tdrl's one configuration source: typed, validated dataclasses, one per section."""

from tdrl.config.base import ConfigError, flatten, from_dict, to_dict
from tdrl.config.data import DataConfig
from tdrl.config.model import ModelConfig

__all__ = ["ConfigError", "DataConfig", "ModelConfig", "flatten", "from_dict", "to_dict"]
