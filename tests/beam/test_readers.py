"""The output reads the same in every Parquet reader: `method` a string and `degree` a float64 in
pandas, pyarrow.dataset, DuckDB, polars and HF datasets, so `degree == 0.3` selects the rows kdaug's
own `open_dataset` does; and a root of versioned runs makes each of them fail, rather than read its
runs together, unless pointed at one run."""

from __future__ import annotations

import json
import shutil

import pyarrow.dataset as ds
import pytest

from kdaug import commit, schema
from tests.helpers import invoke, one_line, run_cli

pd = pytest.importorskip("pandas")
duckdb = pytest.importorskip("duckdb")
pl = pytest.importorskip("polars")
datasets = pytest.importorskip("datasets")

SENTENCES = [
    "a gorgeous , witty , seductive movie that never loses its nerve",
    "it 's a charming and often affecting journey through a small town",
    "the film is strictly routine and its long middle section never finds a rhythm",
    "an ugly , pointless and stupid movie with nothing much to say",
]
ROWS = len(SENTENCES) * 2
COPIES = 2
AT_03 = ROWS * COPIES  # rows of method random at degree 0.3
TOTAL = ROWS + 2 * ROWS * COPIES  # the originals, and random at 0.1 and 0.3


FLAGS = ["--task", "sst2", "--methods", "random", "--degrees", "0.1,0.3", "--copies", COPIES]


def augment(data, out, *flags) -> str:
    return invoke("augment", "--input", data, *FLAGS, "--output", out, *flags)


@pytest.fixture(scope="module")
def outputs(tmp_path_factory):
    """A plain output (its input has a dead letter: `_dead_letter/` holds a file of another schema) and
    a versioned root after two runs of different seeds."""
    base = tmp_path_factory.mktemp("readers")
    data = base / "train.tsv"
    data.write_text("sentence\tlabel\n" + "".join(f"{s}\t{i % 2}\n" for i, s in enumerate(SENTENCES * 2)) + "x\t9\n")
    augment(data, base / "plain")
    for seed in (1, 2):
        augment(data, base / "root", "--versioned", "--seed", seed)
    assert (base / "plain" / schema.DEAD_LETTER_DIR).is_dir()
    return base / "plain", base / "root", data


def kdaug_count(path) -> tuple[int, int]:
    """(rows, rows with degree == 0.3) as kdaug's own reader sees them: what every reader must match."""
    dataset = schema.open_dataset(str(path))
    assert dataset.schema.field("degree").type == "double"
    return dataset.count_rows(), dataset.count_rows(filter=ds.field("degree") == 0.3)


def pandas_count(out, cache) -> tuple[int, int]:
    frame = pd.read_parquet(out)
    assert frame["degree"].dtype == "float64" and pd.api.types.is_string_dtype(frame["method"])
    assert len(pd.read_parquet(out, filters=[("degree", "=", 0.3)])) == (frame["degree"] == 0.3).sum()
    return len(frame), int((frame["degree"] == 0.3).sum())


def pyarrow_count(out, cache) -> tuple[int, int]:
    dataset = ds.dataset(out, format="parquet", partitioning="hive")
    assert dataset.schema.field("degree").type == "double" and dataset.schema.field("method").type == "string"
    return dataset.count_rows(), dataset.to_table(filter=ds.field("degree") == 0.3).num_rows


def duckdb_count(out, cache) -> tuple[int, int]:
    (found,) = duckdb.sql(
        "select count(*), count(*) filter (where degree = 0.3), any_value(typeof(degree)), any_value(typeof(method)) "
        f"from read_parquet('{out}/*/*/*.parquet', hive_partitioning=true)"
    ).fetchall()
    assert found[2:] == ("DOUBLE", "VARCHAR")
    return found[:2]


def polars_count(out, cache) -> tuple[int, int]:
    frame = pl.read_parquet(f"{out}/*/*/*.parquet", hive_partitioning=True)
    assert frame.schema["degree"] == pl.Float64 and frame.schema["method"] == pl.String
    return frame.height, frame.filter(pl.col("degree") == 0.3).height


def hf_count(out, cache) -> tuple[int, int]:
    rows = datasets.load_dataset("parquet", data_files=f"{out}/*/*/*.parquet", split="train", cache_dir=str(cache))
    assert rows.features["degree"] == datasets.Value("float64") and rows.features["method"] == datasets.Value("string")
    return rows.num_rows, sum(degree == 0.3 for degree in rows["degree"])


READERS = [pandas_count, pyarrow_count, duckdb_count, polars_count, hf_count]


@pytest.mark.parametrize("reader", READERS, ids=lambda r: r.__name__.removesuffix("_count"))
def test_every_reader_types_degree_and_selects_the_same_rows(outputs, reader, tmp_path):
    plain, _, _ = outputs
    assert reader(plain, tmp_path) == kdaug_count(plain) == (TOTAL, AT_03)


@pytest.mark.parametrize("reader", READERS, ids=lambda r: r.__name__.removesuffix("_count"))
def test_every_reader_reads_one_run_of_a_versioned_root(outputs, reader, tmp_path):
    """Pointed at the run LATEST names (a plain output in all but name), a reader reads that run."""
    _, root, _ = outputs
    run = root / commit.RUNS_DIR / (root / commit.LATEST_FILE).read_text().strip()
    assert reader(run, tmp_path) == kdaug_count(root) == (TOTAL, AT_03)


def fails(read, *names):
    """`read()` raises, and its error (or the one it wraps) names one of `names`: the reader stopped
    at the guard (or at LATEST), not somewhere else."""
    with pytest.raises(Exception) as caught:
        read()
    said = f"{caught.value} {caught.value.__cause__} {caught.value.__context__}"
    assert any(name in said for name in names), said


GUARD = commit.RUNS_GUARD.split("/")[1]


@pytest.mark.parametrize("inside", ["", commit.RUNS_DIR])
def test_no_reader_mixes_the_runs_of_a_versioned_root(outputs, inside, tmp_path):
    """Every plain reader pointed at the root (or at its runs/), or globbing all of it, fails instead
    of returning the rows of two runs; those that open only the first file (a LIMIT, a head) too."""
    _, root, _ = outputs
    assert len(commit.published_runs(commit.Store(str(root)))) == 2
    where = root / inside
    every = f"{where}/**/*.parquet"
    every_sql = f"read_parquet('{every}', hive_partitioning=true)"
    fails(lambda: pd.read_parquet(where), GUARD, commit.LATEST_FILE)
    fails(lambda: ds.dataset(where, format="parquet").to_table(), GUARD, commit.LATEST_FILE)
    fails(lambda: duckdb.sql(f"select count(*) from {every_sql}").fetchall(), GUARD)
    fails(lambda: duckdb.sql(f"select * from {every_sql} limit 1").fetchall(), GUARD)
    fails(lambda: pl.read_parquet(every), "PAR1")
    fails(lambda: pl.scan_parquet(every).head(1).collect(), "PAR1")
    fails(lambda: datasets.load_dataset("parquet", data_files=every, cache_dir=str(tmp_path)), "magic bytes")
    fails(lambda: datasets.load_dataset("parquet", data_dir=str(where), cache_dir=str(tmp_path)), "magic bytes")
    assert b"not Parquet" in (root / commit.RUNS_GUARD).read_bytes()


def test_a_root_of_an_older_schema_is_refused_in_one_line_and_regenerated(outputs, tmp_path):
    """A versioned root an older kdaug wrote (its manifests say schema version 1, no guard): kdaug's
    readers refuse it in one line saying what to do; the next scheduled run regenerates it, input
    and config unchanged (the schema version is part of the run key), and writes the guard."""
    _, made, data = outputs
    root = tmp_path / "old"
    shutil.copytree(made, root)
    (root / commit.RUNS_GUARD).unlink()
    for manifest in root.glob(f"{commit.RUNS_DIR}/*/{commit.MANIFEST_FILE}"):
        manifest.write_text(json.dumps(json.loads(manifest.read_text()) | {"schema_version": 1}))
    result = run_cli("inspect", root)
    assert result.exit_code == 1
    assert "schema version 1" in one_line(result.output) and "regenerate" in result.output
    with pytest.raises(schema.OtherSchemaVersion):
        schema.open_dataset(str(root))

    assert "schema_version differ" in augment(data, root, "--versioned", "--if-changed", "--seed", 2)
    assert (root / commit.RUNS_GUARD).is_file() and kdaug_count(root) == (TOTAL, AT_03)
