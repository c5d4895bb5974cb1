"""The Beam graph and its engines: the only package that imports apache_beam.

`engines` (runners, their options, Dask partitions, worker and thread counts, running a pipeline,
counters), `elements` (what the reading step emits), `augment_job` and `label_job` (the graphs),
`inference` (the teacher as a RunInference handler), `sinks` (staged Parquet files, then publish),
`progress` (the launcher's bar over staged rows)."""
