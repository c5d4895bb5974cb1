"""kdaug: augmented corpora at several degrees, labelled by a teacher, for knowledge distillation.

Packages, in the order a row meets them: `inputs` (read and split), `augment` (methods and their
resources), `teacher` (the model, teacher training), `beam` (the graphs and their engines),
`commit` (how outputs are published and read whole), `schema` (the Parquet contract), `distill`
(students, the loop, sweeps and their statistics); `cli` on top. See docs/architecture.md.
"""
