"""How a bench runs `kdaug` from a checkout: this one through the installed package (`python -m kdaug`),
a baseline checkout of an older revision from its own source tree (PYTHONPATH; before the layout move
its command module was `pipeline.cli`). A baseline from after the move must be installed to run."""

from __future__ import annotations

import os
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def kdaug_command(src: Path) -> tuple[list[str], dict[str, str]]:
    """(argv prefix, environment) that run `kdaug` from the checkout at `src`."""
    env = dict(os.environ, HF_HUB_OFFLINE="1")
    if Path(src).resolve() == REPO:
        return [sys.executable, "-m", "kdaug"], env
    if not (Path(src) / "pipeline" / "__main__.py").exists():  # a revision from before the move
        return [sys.executable, "-m", "pipeline.cli"], env | {"PYTHONPATH": str(src)}
    raise SystemExit(f"{src}: a checkout with the kdaug layout runs only where it is installed (pip install -e)")
