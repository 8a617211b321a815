"""The model's life: synthetic data, training, the artifact and its checksum, the store."""
