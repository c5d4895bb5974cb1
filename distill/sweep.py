"""A grid of students — sizes × modes × methods × degrees × copies × seeds — and its report.

Each training-set size has its own augmented + labelled output directory (made beforehand by the
pipeline); the sweep only selects partitions in it, it never runs Beam. Every finished cell is
appended to `results.csv` at once, so an interrupted sweep resumes where it stopped.

A row records what decides its result besides the grid's columns: `config`, the id of the training
config (`training_config`: student, learning rate, T, α, steps, batch size, … and the dev and test
sets; its readable values are in `configs.json`), and `data`, the run id of the size's labelled data
(which fixes the teacher too). A cell is done only when a row has its grid key, this config and
this data run; so re-running into one output with another `--lr` or `--max-steps`, or after the data
was regenerated, trains the cells again instead of reporting old numbers as new. Rows of other
configs stay in the CSV (one output can hold several), cells of several sweep commands may share
one output, and the report covers the current config only, the newest row of each cell.

`results.md` (mean ± std over seeds, each line's best degree chosen on dev, and the papers'
findings as paired differences with 95% intervals, raw and Holm-adjusted verdicts:
`distill.findings`), `results.png` (accuracy vs degree with 95% bands, one
line per mode/method, a panel per size and a row per copies) and, with several sizes,
`best_degree.png` are rewritten at the end, with `gain_vs_shift.png`: each cell also records how far
its augmented rows moved as the teacher reads them (`data_shift`: mean changed fraction, the
teacher's mean KL shift and flip rate), and the report plots KD's and FT's gains against that shift,
the papers' own axis. Dev selects each student's checkpoint; with a test set
the report shows test accuracy (students and teacher alike), and every cell says whether it ran to
its step cap (`hit_cap`), whether the checkpoint it kept was still inside the learning-rate warm-up
(`best_in_warmup`, `warmup_steps`) and what its training warned about (`warnings`).

Commit protocol (`kdaug.commit`): a sweep holds its output's lease while it runs, so two sweeps
never append to one CSV; every file is replaced whole (a killed sweep never leaves half a CSV line);
kept students are published like any `kdaug distill` output.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import statistics
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from dataclasses import asdict, dataclass, replace
from functools import partial
from itertools import product
from multiprocessing import get_context
from pathlib import Path

from kdaug import commit, logs
from kdaug.distillation import findings
from kdaug.distillation.evaluate import Example, evaluate
from kdaug.distillation.shards import ORIGINAL, Selection, check_manifest
from kdaug.distillation.train import WORD_STUDENTS, DistillConfig, distill, echo
from kdaug.schema import format_degree, open_published

KEY = ("size", "mode", "method", "degree", "copies", "seed")
RUN = ("config", "data")  # the training config's id (configs.json) and the data run the cell read
METRICS = (
    "dev_accuracy",
    "dev_f1",
    "best_step",
    "steps",
    "warmup_steps",
    "best_in_warmup",
    "train_seconds",
    "train_rows",
    "test_accuracy",
    "test_f1",
    "hit_cap",
)
#: what the cell's augmented rows are, as measured in its data (`data_shift`): the papers' variable is
#: semantic shift, which the degree only stands in for
SHIFT = ("mean_changed", "mean_shift", "flip_rate")
FIELDS = KEY + RUN + METRICS + ("warnings",) + SHIFT
#: DistillConfig fields outside the training config: each cell sets its own (mode, seed), and class
#: names change no number
OUTSIDE_CONFIG = ("mode", "seed", "label_names")


@dataclass(frozen=True)
class Cell:
    size: int
    mode: str
    method: str
    degree: float
    copies: int
    seed: int

    def key(self) -> tuple[str, ...]:
        """The cell as its CSV columns read back (strings), for resuming."""
        return (str(self.size), self.mode, self.method, format_degree(self.degree), str(self.copies), str(self.seed))

    def selection(self) -> Selection:
        if self.method == ORIGINAL:
            return Selection(methods=())
        return Selection(methods=(self.method,), degrees=(self.degree,), copies=self.copies)


def grid(
    sizes: Sequence[int],
    modes: Sequence[str],
    methods: Sequence[str],
    degrees: Sequence[float],
    copies: Sequence[int],
    seeds: Sequence[int],
) -> list[Cell]:
    """All cells. Degree 0 is training on the originals alone: one cell per (size, mode, seed), the
    common starting point of every method's line (copies and method don't apply to it)."""
    cells = []
    for size, mode, seed in product(sizes, modes, seeds):
        if 0 in degrees:
            cells.append(Cell(size, mode, ORIGINAL, 0.0, 0, seed))
        cells += [Cell(size, mode, m, d, c, seed) for m, d, c in product(methods, [d for d in degrees if d], copies)]
    return cells


def sweep(
    data: dict[int, str | Path],
    dev: Sequence[Example],
    out_dir: str | Path,
    cells: Sequence[Cell],
    config: DistillConfig | None = None,
    teacher: str | Path | None = None,
    keep_models: bool = False,
    progress: bool = True,
    allow_unfinished: bool = False,
    test: Sequence[Example] | None = None,
    jobs: int = 1,
) -> list[dict]:
    """Train the cells not yet in OUT/results.csv for this training config and data, then write the
    report; return its rows (this config's, the newest of each cell).

    `config` holds the training settings shared by all cells (None: `DistillConfig()`'s defaults); each
    cell sets mode and seed, and trains with `config.threads` torch threads (1 when None: a cell's
    result depends on its thread count, which must not follow --jobs or the machine, or the grid's
    command would not reproduce it). Dev selects each student's checkpoint; with `test`, the report
    scores students and teacher on test instead, which the selection never saw.
    Students are saved under OUT/models only with keep_models (each is tens of MB). `jobs` > 1
    trains that many cells at once in worker processes (`_cell_runner`), and each cell says one
    line on stderr (its training says nothing more).
    """
    config = config if config is not None else DistillConfig()
    config = replace(config, threads=config.threads or 1)
    out = Path(out_dir)
    results = out / "results.csv"
    missing = sorted({c.size for c in cells} - set(data))
    if missing:
        raise ValueError(f"no --data directory for size(s) {missing}")
    if clash := [str(path) for path in data.values() if commit.overlaps(str(path), str(out))]:
        raise commit.TargetRefused(f"--output {out} overlaps --data {', '.join(clash)}: write the sweep elsewhere")
    store = commit.Store(str(out))
    if outer := commit.enclosing_output(str(out)):
        raise commit.TargetRefused(f"--output {out} lies inside the kdaug output {outer}: write the sweep elsewhere")
    commit.check_kind(store, "sweep")
    runs = {size: commit.published(str(data[size]), allow_unfinished) for size in sorted({c.size for c in cells})}
    expected = check_teachers(runs, cells, teacher)
    values = training_config(config, dev, test)
    config_id = _config_id(values)
    data_ids = {size: run.attempt or "unpublished" for size, run in runs.items()}
    lease = commit.Lease(store, "sweep").acquire()
    try:
        done = {tuple(row[k] for k in KEY + RUN) for row in _read_csv(results)}
        todo = [c for c in cells if (*c.key(), config_id, data_ids[c.size]) not in done]
        store.write_json("configs.json", (store.read_json("configs.json") or {}) | {config_id: values})
        shifts = {s: data_shift(runs[s[0]], s[1]) for s in sorted({(c.size, c.selection()) for c in todo}, key=repr)}
        train = partial(
            _train_cell,
            data=data,
            config=config,
            dev=dev,
            models=out / "models" if keep_models else None,
            teacher=expected,
            allow_unfinished=allow_unfinished,
            test=test,
            progress=progress and jobs == 1,
        )
        bar = logs.progress(len(todo), "sweep", "cells", enabled=progress)
        with _cell_runner(jobs) as run, bar:
            for cell, metrics in zip(todo, run(train, todo)):
                bar.update()
                row: dict[str, object] = dict(zip(KEY + RUN, (*cell.key(), config_id, data_ids[cell.size])))
                row |= {k: metrics[k] for k in METRICS} | {"warnings": "; ".join(metrics["warnings"])}
                row |= shifts[(cell.size, cell.selection())]
                store.write("results.csv", _csv(_read_csv(results) + [row]))
                echo(_cell_line(cell, metrics))
        everything = _read_csv(results)
        rows = current_rows(everything, config_id)
        if others := sum(r["config"] != config_id for r in everything):
            echo(f"{others} rows of other training configs stay in {results}, left out of this report (configs.json)")
        teacher_metrics = _teacher_metrics(store, teacher, test or dev) if teacher else None
        write_report(rows, store, teacher_metrics, (config_id, values))
    finally:
        lease.release()
    return rows


def data_shift(run: commit.Published, selection: Selection) -> dict[str, float | None]:
    """The selected augmented rows' mean `changed_frac` (how many words changed) and the teacher's mean
    `teacher_shift` and `teacher_flip` rate (how far its reading of a row moved from the original's):
    the x axis of the papers' claim that KD tolerates larger semantic shifts than fine-tuning. An
    originals-only cell has no augmented row, so no change and no shift (0). Unlabelled rows (no
    shift recorded) are left out of the shift means."""
    import pyarrow.compute as pc
    import pyarrow.dataset as ds

    if selection.methods == ():
        return {k: 0.0 for k in SHIFT}
    where = selection.partition_filter() & (ds.field("method") != ORIGINAL) & selection.row_filter()
    table = open_published(run).to_table(columns=["changed_frac", "teacher_shift", "teacher_flip"], filter=where)
    means = [pc.mean(table.column(c).cast("float64")).as_py() for c in table.column_names]
    # None: no row records it; 6 digits: what the float32 columns hold
    return {k: None if v is None else round(v, 6) for k, v in zip(SHIFT, means)}


def training_config(config: DistillConfig, dev: Sequence[Example], test: Sequence[Example] | None) -> dict:
    """Everything that changes a cell's numbers besides its grid key and data, as plain values: the
    DistillConfig fields (but `OUTSIDE_CONFIG`), resolved where a default hides the value used (the learning
    rate, `auto` device), the epochs only when no step cap overrides them, the content of a student
    file or directory (a path says nothing of what is in it now), and the dev set (it selects every
    checkpoint) and test set (it is what the report shows) as digests."""
    from kdaug.teacher.model import resolve_device

    values = {k: v for k, v in asdict(config).items() if k not in OUTSIDE_CONFIG}
    return values | {
        "lr": config.learning_rate,
        "epochs": None if config.max_steps else config.epochs,
        "device": resolve_device(config.device),
        "student_digest": _student_digest(config.student),
        "dev": _digest(dev),
        "test": _digest(test) if test else None,
    }


def _config_id(values: dict) -> str:
    """A short id of a training config: 12 hex digits of the sha256 of its canonical JSON."""
    return hashlib.sha256(json.dumps(values, sort_keys=True).encode()).hexdigest()[:12]


def _student_digest(student: str | None) -> str | None:
    """What a student path holds: a model directory's fingerprint, a config file's sha256; None for
    the built-in students (the teacher base, bilstm, cnn), which the code fixes."""
    if student is None or student in WORD_STUDENTS:
        return None
    if Path(student).is_dir():
        from kdaug.teacher.model import fingerprint

        return fingerprint(student)
    return hashlib.sha256(Path(student).read_bytes()).hexdigest()


def _digest(examples: Sequence[Example]) -> str:
    return hashlib.sha256(repr(list(examples)).encode()).hexdigest()


def current_rows(rows: Sequence[dict], config_id: str) -> list[dict]:
    """The rows the report covers: those of `config_id`, the newest of each cell (a cell trained
    again on regenerated data replaces its older row, which the CSV keeps)."""
    newest = {tuple(r[k] for k in KEY): r for r in rows if r["config"] == config_id}
    return list(newest.values())


def _cell_line(cell: Cell, metrics: dict) -> str:
    """A cell's one line: its key, dev accuracy, where it stopped and how many warnings it has (their
    text, often the same for many cells of a grid, is in results.csv's `warnings` column)."""
    name = " ".join(f"{k}={v}" for k, v in zip(KEY, cell.key()))
    line = (
        f"{name}: dev accuracy {metrics['dev_accuracy']:.1%} (best step {metrics['best_step']} of {metrics['steps']})"
    )
    if warnings := len(metrics["warnings"]):
        line += f", {warnings} warning{'s' if warnings > 1 else ''} (results.csv)"
    return line


def _train_cell(cell: Cell, data, config, dev, models, teacher, allow_unfinished, test, progress) -> dict:
    name = "-".join(f"{k}={v}" for k, v in zip(KEY, cell.key()))
    return distill(
        data[cell.size],
        cell.selection(),
        replace(config, mode=cell.mode, seed=cell.seed),
        dev,
        models / name if models else None,
        progress=progress,
        teacher=teacher,
        allow_unfinished=allow_unfinished,
        test=test,
        quiet=True,
    )


@contextmanager
def _cell_runner(jobs: int):
    """`map` for the cells: in this process, or over `jobs` worker processes (each cell is one seeded
    training run with a fixed thread count, so where it runs does not change what it learns).
    Results come back in cell order, so results.csv's order is the grid's."""
    if jobs == 1:
        yield map
        return
    with ProcessPoolExecutor(jobs, mp_context=get_context("spawn")) as pool:
        yield pool.map


def check_teachers(runs: dict[int, commit.Published], cells: Sequence[Cell], teacher: str | Path | None) -> str | None:
    """Before any KD cell trains: all sizes' published runs must be labelled by one teacher, and by
    `teacher` (the directory whose dev accuracy the report shows) when given; return its fingerprint.

    A sweep compares students across sizes, so a size labelled by another teacher would silently
    change what is compared; one manifest check up front costs nothing against hours of cells.
    """
    if not any(c.mode == "kd" for c in cells):
        return None
    from kdaug.teacher.model import fingerprint

    expected = fingerprint(teacher) if teacher else None
    return check_manifest(runs.values(), require_teacher=True, teacher=expected)


def _read_csv(path: Path) -> list[dict]:
    """The rows of a results.csv; refuses one whose rows do not say which training config made them."""
    if not path.is_file():
        return []
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        if reader.fieldnames and "config" not in reader.fieldnames:
            raise commit.TargetRefused(
                f"{path} was written by an older kdaug and does not record the training config of its rows, "
                "so they cannot be told from this run's: give another --output, or move results.csv aside"
            )
        return list(reader)


def _csv(rows: Sequence[dict]) -> bytes:
    sink = io.StringIO(newline="")
    writer = csv.DictWriter(sink, fieldnames=FIELDS)
    writer.writeheader()
    writer.writerows(rows)
    return sink.getvalue().encode()


def _teacher_metrics(store: commit.Store, teacher: str | Path, examples: Sequence[Example]) -> dict:
    """The teacher's metrics on the reported set, cached in OUT/teacher.json (keyed by its
    directory and a digest of the set: a dev and a test set of one size must not share it)."""
    digest = _digest(examples)
    cached = store.read_json("teacher.json")
    if cached is not None and cached["model"] == str(teacher) and cached.get("examples") == digest:
        return cached
    metrics = {"model": str(teacher), "examples": digest} | evaluate(teacher, examples)
    store.write_json("teacher.json", metrics)
    return metrics


def reported(rows: Sequence[dict]) -> str:
    """The accuracy the report shows: test when every row has it, else dev (which selected the
    checkpoints, so it flatters every cell)."""
    return "test_accuracy" if rows and all(r.get("test_accuracy") not in (None, "") for r in rows) else "dev_accuracy"


def series(rows: Sequence[dict]) -> dict[tuple, dict[float, list[float]]]:
    """Reported accuracies (`reported`) by line (size, copies, mode, method) and degree, one per
    seed (`findings.Cells`: the originals-only cells of a (size, mode) are degree 0 of its lines)."""
    cells = findings.Cells(rows, reported(rows))
    return {
        line: {d: list(cells.acc[(*line, d)].values()) for d in cells.degrees(line)} for line in sorted(cells.lines())
    }


def _mean_std(accs: list[float]) -> tuple[float, float]:
    return statistics.mean(accs), statistics.stdev(accs) if len(accs) > 1 else 0.0


def write_report(
    rows: Sequence[dict], store: commit.Store, teacher: dict | None = None, config: tuple[str, dict] | None = None
) -> None:
    """OUT/results.md (accuracy % as mean ± std (seeds), each line's best degree and its accuracy,
    the findings) and OUT/results.png; `config`: (id, values) of the training config the rows share,
    named at the top.

    A line's best degree is chosen on dev (mean over the seeds every degree of the line has) and
    shown with its test accuracy: choosing on test would pick the degree whose test score is luckiest
    and report that luck as the effect. Without a test set dev chooses and reports, and the report
    says so."""
    metric = reported(rows)
    lines = series(rows)
    cells = findings.Cells(rows, metric)
    degrees = sorted({d for by_degree in lines.values() for d in by_degree})
    md = ["# Sweep results", ""]
    if config:
        md += [f"Training config `{config[0]}`: {describe(config[1])} (all its settings: configs.json).", ""]
    on = "test" if metric == "test_accuracy" else "dev"
    if teacher:
        md.append(f"Teacher `{teacher['model']}`: {on} accuracy {100 * teacher['accuracy']:.1f}%.")
    seconds = sum(float(r["train_seconds"]) for r in rows)
    capped = sum(str(r.get("hit_cap")) == "True" for r in rows)
    how = (
        "test accuracy (%) of the checkpoint dev selected"
        if on == "test"
        else "dev accuracy (%) — dev also selected each checkpoint, which flatters every cell; pass --test"
    )
    best_how = (
        "The best degree of a line is the one with the highest mean dev accuracy; the accuracy beside it "
        "is its test accuracy."
        if on == "test"
        else "The best degree of a line is the one with the highest mean dev accuracy, and with no test set "
        "the accuracy beside it is dev's too, which flatters it."
    )
    md += [
        f"{len(rows)} students, {seconds / 60:.1f} min of training; {capped} ran to their step cap without dev "
        f"accuracy levelling off; {_warmup_sentence(rows)} {how[0].upper() + how[1:]}, mean ± std (seeds). "
        f"{best_how}",
        "",
    ]
    md.append(
        "| size | copies | mode | method | "
        + " | ".join(format_degree(d) for d in degrees)
        + f" | best degree (dev) | its {on} accuracy |"
    )
    md.append("|---" * (len(degrees) + 6) + "|")
    for line, by_degree in lines.items():
        row = []
        for d in degrees:
            accs = by_degree.get(d)
            row.append(
                "" if not accs else "{:.1f} ± {:.1f} ({})".format(*(100 * x for x in _mean_std(accs)), len(accs))
            )
        seeds = cells.seeds([(*line, d) for d in by_degree])
        best = cells.best_degree(line, seeds)
        chosen = f"{format_degree(best)} | {100 * cells.mean((*line, best), seeds):.1f}"
        md.append("| {} | {} | {} | {} | ".format(*line) + " | ".join(row) + f" | {chosen} |")
    md += [""] + findings.markdown(findings.findings(rows, metric))
    shifts = gains_by_shift(rows, cells)
    md += shift_markdown(shifts, on)
    store.write("results.md", ("\n".join(md) + "\n").encode())
    store.write("results.png", _plot(lines, teacher, on))
    if shifts:
        store.write("gain_vs_shift.png", _plot_gain_vs_shift(shifts, on))
    if len({k[0] for k in lines}) > 1:
        store.write("best_degree.png", _plot_best_degree(rows))


@dataclass(frozen=True)
class ShiftPoint:
    """One augmented data selection (size, copies, method, degree) as the teacher measured it, and what
    training on it gained each mode over the originals alone (points, mean over the seeds both have)."""

    size: int
    copies: int
    method: str
    degree: float
    changed: float
    shift: float
    flip_rate: float
    gains: dict[str, float]  # mode → gain


def gains_by_shift(rows: Sequence[dict], cells: findings.Cells) -> list[ShiftPoint]:
    """Every augmented selection whose rows record the teacher's shift (`data_shift`) and that has an
    originals-only baseline, with each mode's gain over it (`cells`: the rows' accuracies)."""
    measured = {
        (int(r["size"]), int(r["copies"]), r["method"], float(r["degree"])): r
        for r in rows
        if r["method"] != ORIGINAL and r.get("mean_shift") not in (None, "")
    }
    points = []
    for (size, copies, method, degree), r in sorted(measured.items()):
        gains = {}
        for mode in ("kd", "ft"):
            line = (size, copies, mode, method)
            keys = [(*line, degree), (*line, 0.0)]
            seeds = cells.seeds(keys) if all(k in cells.acc for k in keys) else []
            if seeds:
                gains[mode] = 100 * (cells.mean(keys[0], seeds) - cells.mean(keys[1], seeds))
        if gains:
            points.append(
                ShiftPoint(
                    size,
                    copies,
                    method,
                    degree,
                    float(r["mean_changed"]),
                    float(r["mean_shift"]),
                    float(r["flip_rate"]),
                    gains,
                )
            )
    return points


def shift_markdown(points: Sequence[ShiftPoint], on: str) -> list[str]:
    """The section of results.md that puts each selection's gains beside the teacher's shift."""
    if not points:
        return []
    md = [
        "## Gain against the teacher's shift",
        "",
        "Each augmented selection's mean changed fraction of words, the teacher's mean shift on its rows "
        "(KL(original ‖ row) of its distributions, nats) and how often its argmax flipped, and each mode's gain "
        f"in {on} accuracy over the originals alone (points, mean over seeds; gain_vs_shift.png).",
        "",
        "| size | copies | method | degree | changed | teacher shift | flip rate | KD gain | FT gain | KD − FT |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for p in points:
        kd, ft = p.gains.get("kd"), p.gains.get("ft")
        cols = ["" if g is None else f"{g:+.1f}" for g in (kd, ft, None if kd is None or ft is None else kd - ft)]
        md.append(
            f"| {p.size} | {p.copies} | {p.method} | {format_degree(p.degree)} | {p.changed:.2f} | {p.shift:.3f} | "
            f"{p.flip_rate:.1%} | " + " | ".join(cols) + " |"
        )
    return md + [""]


def _plot_gain_vs_shift(points: Sequence[ShiftPoint], on: str) -> bytes:
    """KD's and FT's gain over the originals against the teacher's mean shift, one panel per size and
    copies: the papers' own axis (a degree is only a proxy for how far a row's meaning moved)."""
    plt = _pyplot()
    panels = sorted({(p.size, p.copies) for p in points})
    methods = sorted({p.method for p in points})
    fig, axes = plt.subplots(1, len(panels), figsize=(5.5 * len(panels), 4.2), squeeze=False)
    for ax, (size, copies) in zip(axes[0], panels):
        panel = sorted((p for p in points if (p.size, p.copies) == (size, copies)), key=lambda p: p.shift)
        for method in methods:
            color = f"C{methods.index(method)}"
            mine = [p for p in panel if p.method == method]
            for mode, marker in (("kd", "o"), ("ft", "s")):
                xy = [(p.shift, p.gains[mode]) for p in mine if mode in p.gains]
                if xy:  # a thin line through a method's degrees, in the order of their shift
                    ax.plot(*zip(*xy), color=color, linewidth=0.8, linestyle="-" if mode == "kd" else "--")
                    ax.scatter(
                        *zip(*xy),
                        marker=marker,
                        edgecolors=color,
                        facecolors=color if mode == "kd" else "none",
                        label=f"{mode} {method}",
                    )
            for p in mine:
                ax.annotate(format_degree(p.degree), (p.shift, max(p.gains.values())), fontsize="x-small", color=color)
        ax.axhline(0, color="gray", linewidth=0.8)
        _label(
            ax,
            "teacher's mean shift KL(original ‖ row), nats",
            f"gain over originals, {on} accuracy points",
            f"size {size}, copies {copies} (labels: degree)",
        )
    return _png(fig)


def _warmup_sentence(rows: Sequence[dict]) -> str:
    """How many cells kept a checkpoint from inside the learning-rate warm-up (`best_in_warmup`):
    such a student was trained below the peak rate throughout, so it is not the converged student
    the grid means to compare."""
    warm = [int(r["warmup_steps"]) for r in rows]
    inside = sum(r["best_in_warmup"] == "True" for r in rows)
    ends = "–".join(str(w) for w in sorted({min(warm), max(warm)}))
    return f"{inside} kept a checkpoint from inside the learning-rate warm-up (which ends at step {ends})."


def describe(values: dict) -> str:
    """The settings of a training config (`training_config`) that sweeps are usually told apart by."""
    steps = f"at most {values['max_steps']} steps" if values["max_steps"] else f"{values['epochs']} epochs"
    student = values["student"] or "the teacher base"
    return (
        f"student {student}, lr {values['lr']:g}, T {values['temperature']:g}, α {values['alpha']:g}, {steps}, "
        f"batch size {values['batch_size']}, eval every {values['eval_every']} steps, patience {values['patience']}"
    )


def _plot(lines: dict, teacher: dict | None, on: str) -> bytes:
    plt = _pyplot()
    sizes = sorted({k[0] for k in lines})
    copies = sorted({k[1] for k in lines})
    methods = sorted({k[3] for k in lines})
    fig, axes = plt.subplots(len(copies), len(sizes), figsize=(5 * len(sizes), 3.8 * len(copies)), squeeze=False)
    for (size, c, mode, method), by_degree in lines.items():
        ax = axes[copies.index(c)][sizes.index(size)]
        xs = sorted(by_degree)
        bands = [findings.t_interval([100 * a for a in by_degree[x]]) for x in xs]
        color = f"C{methods.index(method)}"
        ax.plot(
            xs,
            [b.estimate for b in bands],
            label=f"{mode} {method}",
            color=color,
            linestyle="-" if mode == "kd" else "--",
            marker="o" if mode == "kd" else "s",
        )
        if all(b.n > 1 for b in bands):
            ax.fill_between(xs, [b.low for b in bands], [b.high for b in bands], color=color, alpha=0.15)
    for row, c in enumerate(copies):
        for col, size in enumerate(sizes):
            ax = axes[row][col]
            if not any(k[0] == size and k[1] == c for k in lines):  # a grid with copies 1,16 for one size only
                ax.set_visible(False)
                continue
            if teacher:
                ax.axhline(100 * teacher["accuracy"], color="gray", linestyle=":", label="teacher")
            ax.set_xticks(sorted({d for by_degree in lines.values() for d in by_degree}))
            _label(
                ax,
                "augmentation degree (0 = originals only)",
                f"{on} accuracy (%), mean and 95% CI",
                f"size {size}, copies {c}",
            )
    return _png(fig)


def _plot_best_degree(rows: Sequence[dict]) -> bytes:
    """Best degree (by mean dev accuracy over seeds, as in the table) against training-set size, one
    line per copies/mode/method, with bootstrap 95% intervals over seeds."""
    plt = _pyplot()
    cells = findings.Cells(rows, reported(rows))
    fig, ax = plt.subplots(figsize=(6.5, 4.5))
    groups = sorted({line[1:] for line in cells.lines()})
    for i, (copies, mode, method) in enumerate(groups):
        sizes = sorted(
            line[0] for line in cells.lines() if line[1:] == (copies, mode, method) and len(cells.degrees(line)) > 2
        )
        if len(sizes) < 2:
            continue
        points = []
        for size in sizes:
            line = (size, copies, mode, method)
            seeds = cells.seeds([(*line, d) for d in cells.degrees(line)])
            points.append(findings.bootstrap_interval(seeds, partial(cells.best_degree, line)))
        offset = (i - len(groups) / 2) * 0.01  # keep overlapping lines apart
        ax.errorbar(
            [s * (1 + offset) for s in sizes],
            [p.estimate for p in points],
            yerr=[[p.estimate - p.low for p in points], [p.high - p.estimate for p in points]],
            label=f"{mode} {method} ×{copies}",
            linestyle="-" if mode == "kd" else "--",
            marker="o" if mode == "kd" else "s",
            capsize=3,
        )
    ax.set_xscale("log")
    sizes = sorted({line[0] for line in cells.lines()})
    ax.set_xticks(sizes, [f"{s:,}" for s in sizes])
    ax.minorticks_off()
    _label(ax, "training-set size (originals)", "best degree on dev (bootstrap 95% CI)")
    return _png(fig)


def _label(ax, xlabel: str, ylabel: str, title: str | None = None) -> None:
    """The axis labels, title, light grid and small legend every report plot has."""
    if title:
        ax.set_title(title)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small")


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")  # files only, never a window
    import matplotlib.pyplot as plt

    return plt


def _png(fig) -> bytes:
    plt = _pyplot()
    fig.tight_layout()
    png = io.BytesIO()
    fig.savefig(png, format="png", dpi=120)
    plt.close(fig)
    return png.getvalue()
