"""The TDRL network: ResNet backbone, PEM/MEM, TIM/TSM, the TD loss and a TSN head."""

from tdrl.model.network import TDRLNet, build_model
from tdrl.model.td_loss import temporal_diversity

__all__ = ["TDRLNet", "build_model", "temporal_diversity"]
