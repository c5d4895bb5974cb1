"""The teacher: the model and its checks (`model`: fingerprint, fast CPU/GPU inference, which
directories may be loaded) and teacher training (`train`: `kdaug teacher train`, over the distill loop)."""
