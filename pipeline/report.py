"""What a person reads after a job: the summary table and `kdaug inspect`."""

from __future__ import annotations

from collections.abc import Sequence

from kdaug import commit, schema
from kdaug.augmenters.words import Words, only_words


def table(headers: list[str], rows: list[list]) -> str:
    """A plain aligned text table (numbers right-aligned)."""
    cells = [[_cell(v) for v in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) if cells else len(h) for i, h in enumerate(headers)]

    def line(values, raw=None):
        out = []
        for i, v in enumerate(values):
            numeric = raw is not None and isinstance(raw[i], (int, float))
            out.append(v.rjust(widths[i]) if numeric else v.ljust(widths[i]))
        return "  ".join(out).rstrip()

    rule = "  ".join("-" * w for w in widths)
    return "\n".join([line(headers), rule, *(line(c, r) for c, r in zip(cells, rows))])


def _cell(value) -> str:
    if isinstance(value, float):
        return f"{value:.3f}"
    if isinstance(value, int):
        return f"{value:,}"
    return "" if value is None else str(value)


def summary(manifest: dict) -> str:
    """The end-of-job table: one line per partition, then the count check."""
    rows = []
    for partition, info in sorted(manifest["partitions"].items()):
        if partition.startswith("_"):  # dead letters, failed inference: counted below
            continue
        method, degree = partition.split("/")
        rows.append([method, degree, info["rows"], info["files"], info["mean_changed_frac"]])
    counts = manifest["counts"]
    written = sum(r[2] for r in rows)
    check = (
        f"shard rows read {counts['rows_read']:,} = rows labelled and written {written:,}"
        + (f" + failed inference {counts['failed_inference']:,}" if counts.get("failed_inference") else "")
        if commit.Kind(manifest["kind"]) is commit.Kind.LABEL
        else f"rows read {counts['rows_read']:,} = originals {counts['originals']:,} + dead letters {counts['dead_letters']:,}"
    )
    lines = [table(["method", "degree", "rows", "files", "mean changed_frac"], rows), "", check]
    if manifest.get("teacher"):
        teacher = manifest["teacher"]
        on = f", {teacher['device']}, {teacher['precision']}" if "device" in teacher else ""
        lines.append(f"teacher {teacher['dir']} (fingerprint {teacher['fingerprint'][:12]}{on})")
    if counts["dead_letters"]:
        lines.append(f"dead letters (file, line, reason) are in {schema.DEAD_LETTER_DIR}/")
    if counts.get("failed_inference"):
        lines.append(
            f"the teacher failed on {counts['failed_inference']:,} rows: they are in {schema.FAILED_INFERENCE_DIR}/, "
            f"each with the error (the warnings above say which chunks)"
        )
    if "wall_seconds" in manifest:
        seconds = manifest["wall_seconds"]
        lines.append(f"wall time {seconds:.1f} s, {written:,} rows written ({written / seconds:,.0f} rows/s)")
    return "\n".join(lines)


def metrics(counters: dict[str, int] | None) -> str:
    """The Beam counters of a run (also in OUT/_metrics.json) as a table."""
    if counters is None:
        return "counters: unavailable on this runner (the counts above come from the files written)"
    return table(["counter", "value"], [[name, value] for name, value in sorted(counters.items())])


LONG_TEXT_WORDS = 10


def inspect(output: str, samples: int = 3, allow_unfinished: bool = False, width: int = 70) -> str:
    """Partitions with row counts and measured `changed_frac`, the teacher's view of them when
    labelled, and sample rows beside their originals.

    Short texts cannot honour small degrees (one changed word of five is 20%), so the mean is also
    shown over texts of at least LONG_TEXT_WORDS words, where it should sit near the degree. The
    degree says how many words changed, the teacher's shift how much the meaning did (as the
    teacher reads it): its mean `teacher_shift` (KL from the original's distribution, nats), the
    rate of argmax flips, and how often its argmax is the row's gold label (on `original/0.00` the
    teacher's accuracy on the originals; augmented rows carry their original's label).
    """
    columns = ["id", "source_id", "method", "degree", "changed_frac", "text_a", "text_b", "label"]
    teacher = ["teacher_logits", "teacher_shift", "teacher_flip"]
    data = schema.open_dataset(output, allow_unfinished).to_table(columns=columns + teacher).to_pylist()
    originals = {r["source_id"]: r for r in data if r["method"] == schema.ORIGINAL}
    words = {
        sid: sum(len(only_words(Words.split(t))) for t in (r["text_a"], r["text_b"]) if t)
        for sid, r in originals.items()
    }
    labelled = any(r["teacher_logits"] is not None for r in data)

    groups: dict[tuple, list[dict]] = {}
    for r in data:
        groups.setdefault((r["method"], r["degree"]), []).append(r)
    rows = []
    for (method, degree), members in sorted(groups.items()):
        fracs = [r["changed_frac"] for r in members]
        long = [r["changed_frac"] for r in members if words.get(r["source_id"], 0) >= LONG_TEXT_WORDS]
        row = [method, schema.format_degree(degree), len(members), _mean(fracs), _mean(long), min(fracs), max(fracs)]
        if labelled:
            agree = [
                _argmax(r["teacher_logits"]) == r["label"]
                for r in members
                if r["teacher_logits"] is not None and r["label"] is not None
            ]
            row += [
                _mean([r["teacher_shift"] for r in members if r["teacher_shift"] is not None]),
                _mean([r["teacher_flip"] for r in members if r["teacher_flip"] is not None]),
                _mean(agree),
            ]
        rows.append(row)
    headers = ["method", "degree", "rows", "mean changed_frac", f"mean (≥{LONG_TEXT_WORDS} words)", "min", "max"]
    if labelled:
        headers += ["teacher shift", "flip rate", "teacher = label"]
    title = output if not allow_unfinished else f"{output} (read with --allow-unfinished: maybe not one whole run)"
    out = [title, table(headers, rows)]
    if labelled:
        out += [
            "teacher shift: mean KL(original ‖ row) of the teacher's distributions, in nats; flip rate: how often",
            "its argmax differs from the original's; teacher = label: how often its argmax is the gold label (on",
            "original/0.00: the teacher's accuracy on the originals)",
        ]
    out += ["", "samples (original → augmented):"]
    for (method, degree), members in sorted(groups.items()):
        if method == schema.ORIGINAL:
            continue
        for r in sorted(members, key=lambda r: r["id"])[:samples]:
            source = originals.get(r["source_id"], {})
            shift = "" if r["teacher_shift"] is None else f" shift {r['teacher_shift']:.3f}"
            flip = " flipped" if r["teacher_flip"] else ""
            out.append(
                f"[{method} {schema.format_degree(degree)} changed {r['changed_frac']:.2f}{shift}{flip}] {r['source_id']}"
            )
            for field in ("text_a", "text_b"):
                if r[field] is not None:
                    out.append(f"   {_clip(source.get(field) or '?', width)}")
                    out.append(f" → {_clip(r[field], width)}")
    return "\n".join(out)


def _mean(values: Sequence[float]) -> float | None:
    return sum(values) / len(values) if values else None


def _argmax(values: list[float]) -> int:
    """The first index of the largest value (as numpy's and torch's argmax break ties)."""
    return max(range(len(values)), key=values.__getitem__)


def _clip(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"
