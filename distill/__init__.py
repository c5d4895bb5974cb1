"""kdaug's lightweight student trainer: reads shards with pyarrow, never imports Beam."""
