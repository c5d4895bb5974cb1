"""kdaug: augmented corpora at several degrees, labelled by a teacher, for knowledge distillation.

The Python API (`kdaug.api`; the command line is a thin layer over it)::

    import kdaug

    kdaug.augment(output, inputs, methods=[...], degrees=[...])  # -> kdaug.Result
    kdaug.label(source, output, teacher=...)                     # the teacher's logits
    kdaug.run(output, inputs, teacher=...)                       # both in one pipeline
    kdaug.distill(data, output, ...)                             # a student from the shards
    kdaug.sweep(data, output, ...)                               # a grid of students and its report
    kdaug.open_dataset(output)                                   # the published rows (pyarrow)
    kdaug.Augmenter("knn").augment(text, degree=0.3, n=4)        # one method on texts in memory

Packages, in the order a row meets them: `inputs` (read and split), `augmenters` (methods and their
resources), `teacher` (the model, teacher training), `beam` (the graphs and their engines),
`commit` (how outputs are published and read whole), `schema` (the Parquet contract),
`distillation` (students, the loop, sweeps and their statistics); `api` and `cli` on top. See
docs/architecture.md. Names are imported when first used: `import kdaug` loads neither Beam nor torch.
"""

from __future__ import annotations

import importlib
from typing import Any

#: Public name -> the module that defines it.
_API = {
    "augment": "kdaug.api",
    "label": "kdaug.api",
    "run": "kdaug.api",
    "Augmenter": "kdaug.api",
    "Result": "kdaug.api",
    "UsageError": "kdaug.api",
    "distill": "kdaug.api",
    "sweep": "kdaug.api",
    "open_dataset": "kdaug.schema",
}
__all__ = sorted(_API)


def __getattr__(name: str) -> Any:
    if name not in _API:
        raise AttributeError(f"module 'kdaug' has no attribute {name!r}")
    value = getattr(importlib.import_module(_API[name]), name)
    globals()[name] = value
    return value
