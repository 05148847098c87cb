"""Video data pipeline: annotation parsing, decoding, sampling, augmentation, datasets, synthetic data."""
