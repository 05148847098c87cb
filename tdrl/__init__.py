"""tdrl: Temporal Distinct Representation Learning (ECCV 2020) for action recognition."""

__version__ = "0.1.0"
