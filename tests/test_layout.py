"""The import structure docs/architecture.md describes, checked statically (imports inside functions
included, no module imported): which package may import which, only `kdaug.beam` imports Beam, the
students never reach Beam, and only teacher training (and the CLI) reach into `kdaug.distillation`."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
#: Each package's layer: a module imports only from lower layers, or from its own package.
LAYERS = {
    "kdaug.logs": 0,
    "kdaug.commit": 0,
    "kdaug.schema": 1,
    "kdaug.inputs": 2,
    "kdaug.teacher.model": 2,
    "kdaug.augmenters": 3,
    "kdaug.report": 4,
    "kdaug.flags": 4,
    "kdaug.beam": 5,
    "kdaug.distillation": 5,
    "kdaug.versioning": 6,
    "kdaug.teacher.train": 6,
    "kdaug.api": 7,
    "kdaug.cli": 8,
    "kdaug.__main__": 9,
    "kdaug": 9,
}


def module_files() -> dict[str, Path]:
    """Every kdaug module and its file: pipeline/ is `kdaug`, distill/ is `kdaug.distillation` (pyproject)."""
    found = {}
    for folder, package in (("pipeline", "kdaug"), ("distill", "kdaug.distillation")):
        for path in (ROOT / folder).rglob("*.py"):
            parts = path.relative_to(ROOT / folder).with_suffix("").parts
            name = ".".join([package, *[p for p in parts if p != "__init__"]])
            found[name] = path
    return found


MODULES = module_files()
MODULE_NAMES = set(MODULES)


def imports(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            modules = {f"{node.module}.{a.name}" for a in node.names} & MODULE_NAMES  # `from kdaug import commit`
            names.update(modules if len(modules) == len(node.names) else {node.module, *modules})
    return names


def package_of(module: str) -> str:
    return max((p for p in LAYERS if module == p or module.startswith(p + ".")), key=len)


GRAPH = {m: {i for i in imports(p) if i in MODULES or i.split(".")[0] == "apache_beam"} for m, p in MODULES.items()}


def test_every_module_has_a_layer():
    assert all(package_of(m) for m in MODULES)


def test_imports_only_run_down_the_layers():
    wrong = []
    for module, targets in GRAPH.items():
        mine = package_of(module)
        for target in targets:
            if target.startswith("apache_beam") or target == module:
                continue
            theirs = package_of(target)
            if theirs != mine and LAYERS[theirs] >= LAYERS[mine] and not target.startswith(mine + "."):
                wrong.append(
                    f"{module} ({mine}, layer {LAYERS[mine]}) imports {target} ({theirs}, layer {LAYERS[theirs]})"
                )
    assert not wrong, "\n".join(wrong)


def test_only_the_beam_package_imports_beam():
    assert (
        sorted(
            m
            for m, t in GRAPH.items()
            if any(i.startswith("apache_beam") for i in t) and not m.startswith("kdaug.beam.") and m != "kdaug.beam"
        )
        == []
    )


def test_the_students_never_reach_beam():
    todo, seen = [m for m in MODULES if m.startswith("kdaug.distillation")], set()
    while todo:
        module = todo.pop()
        if module in seen:
            continue
        seen.add(module)
        assert not module.startswith(("apache_beam", "kdaug.beam")), f"kdaug.distillation reaches {module}"
        todo += [t for t in GRAPH.get(module, ()) if t in MODULES or t.startswith("apache_beam")]


def test_only_teacher_training_and_the_cli_import_distill():
    outside = {
        m
        for m, t in GRAPH.items()
        if any(i.startswith("kdaug.distillation") for i in t) and not m.startswith("kdaug.distillation")
    }
    assert outside <= {"kdaug.teacher.train", "kdaug.api", "kdaug.cli", "kdaug"}, outside
