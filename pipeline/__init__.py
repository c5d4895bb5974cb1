"""kdaug's Beam pipeline: sources, augmenters, teacher labelling, Parquet sinks and manifest."""
