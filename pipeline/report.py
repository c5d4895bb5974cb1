"""What a person reads after a job: the summary table and `kdaug inspect`."""

from __future__ import annotations

import pyarrow.compute as pc

from pipeline import schema


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
        if partition == schema.DEAD_LETTER_DIR:
            continue
        method, degree = (part.split("=", 1)[1] for part in partition.split("/"))
        rows.append([method, degree, info["rows"], info["files"], info["mean_changed_frac"]])
    counts = manifest["counts"]
    lines = [
        table(["method", "degree", "rows", "files", "mean changed_frac"], rows),
        "",
        f"rows read {counts['rows_read']:,} = originals {counts['originals']:,} + dead letters {counts['dead_letters']:,}",
    ]
    if counts["dead_letters"]:
        lines.append(f"dead letters (file, line, reason) are in {schema.DEAD_LETTER_DIR}/")
    if "wall_seconds" in manifest:
        total = sum(p["rows"] for k, p in manifest["partitions"].items() if k != schema.DEAD_LETTER_DIR)
        seconds = manifest["wall_seconds"]
        lines.append(f"wall time {seconds:.1f} s, {total:,} rows written ({total / seconds:,.0f} rows/s)")
    return "\n".join(lines)


def inspect(output: str, samples: int = 3, width: int = 70) -> str:
    """Partitions with row counts and measured `changed_frac`, and sample rows beside their originals."""
    dataset = schema.open_dataset(output)
    data = dataset.to_table(columns=["id", "source_id", "method", "degree", "changed_frac", "text_a", "text_b"])
    groups = data.group_by(["method", "degree"]).aggregate(
        [("id", "count"), ("changed_frac", "mean"), ("changed_frac", "min"), ("changed_frac", "max")]
    ).sort_by([("method", "ascending"), ("degree", "ascending")])
    rows = [
        [r["method"], f"{r['degree']:.2f}", r["id_count"], r["changed_frac_mean"], r["changed_frac_min"], r["changed_frac_max"]]
        for r in groups.to_pylist()
    ]
    out = [f"{output}", table(["method", "degree", "rows", "mean changed_frac", "min", "max"], rows)]

    originals = data.filter(pc.equal(data["method"], "original"))
    original_text = dict(zip(originals["source_id"].to_pylist(), originals["text_a"].to_pylist()))
    augmented = data.filter(pc.not_equal(data["method"], "original")).sort_by("id")
    shown: dict[tuple, int] = {}
    out.append("\nsamples (original → augmented):")
    for r in augmented.to_pylist():
        key = (r["method"], r["degree"])
        if shown.get(key, 0) >= samples:
            continue
        shown[key] = shown.get(key, 0) + 1
        out.append(f"[{r['method']} {r['degree']:.2f} changed {r['changed_frac']:.2f}] {r['source_id']}")
        out.append(f"   {_clip(original_text.get(r['source_id'], '?'), width)}")
        out.append(f" → {_clip(r['text_a'], width)}")
    return "\n".join(out)


def _clip(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"
