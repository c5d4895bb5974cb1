"""Token-replacement throughput and degree fidelity: kdaug vs nlpaug vs EDA's reference code.

Same input (the first `--rows` rows of SST-2 train), same degrees, same resources:

- kdaug `knn` vs nlpaug `WordEmbsAug` (substitute, top_k = kdaug's k), both on the same GloVe 6B
  50d vectors: kdaug's `glove_vocab` most frequent words, written to a temporary file in word2vec
  text format and read by gensim as nlpaug does;
- kdaug `synonym` vs nlpaug `SynonymAug` (WordNet) vs EDA's synonym replacement, all on the same
  WordNet 3.0 (Debian's files; kdaug and EDA through `pipeline.wordnet`, nlpaug through nltk).

nlpaug's `SynonymAug` POS-tags with nltk's perceptron tagger, whose model is a download; here its
tagger returns no tag, which nlpaug treats as "any part of speech" (what kdaug and EDA do). That
skips the tagging cost, so nlpaug's figure is, if anything, flattering.

EDA's reference code (Wei & Zou 2019, https://github.com/jasonwei20/eda_nlp/blob/master/code/eda.py,
MIT licence) cannot be fetched at run time; `eda_synonym_replacement` re-implements its
`get_only_chars`, `get_synonyms` and `synonym_replacement` step by step, with a seeded
`random.Random` instead of the global one.

The slow tools run on the first `--subset` rows (`--embs-subset` for WordEmbsAug) (their rate does not depend on the corpus size).
One core = one process; two = two forked processes over the two halves of the rows, timed from the
fork to the last join (resources are loaded before the fork and not timed). Each figure is the
median of `--runs` runs; every tool first makes one untimed pass over all its rows (WordNet
look-ups are cached per process by kdaug, nltk and nlpaug alike, filled as words are met; the cold
first pass is reported separately), so the figures compare warm tools.

Fidelity: every tool's output is measured with the same word measure (`word_change_fraction`)
against the tool's own rendering of the untouched input (nlpaug re-joins tokens, EDA lower-cases
and strips punctuation first), so only the augmentation is counted.

    python -m bench.bench_augment [--rows 10000] [--subset 1000] [--runs 3]
"""

from __future__ import annotations

import multiprocessing
import os
import random
import re
import statistics
import tempfile
import time
from collections.abc import Callable

import click

from kdaug.augmenters import AugmentOptions, create, resources
from kdaug.augmenters.base import word_change_fraction
from kdaug.augmenters.synonym import STOP_WORDS
from kdaug.augmenters.wordnet import nltk_data_dir
from kdaug.augmenters.words import Words, only_words
from kdaug.inputs import sources
from kdaug.report import table

SST2 = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data", "sst2", "train.tsv")

# A tool: (texts, degree, seed) -> [(reference input rendering, output text)], in input order.
Tool = Callable[[list[str], float, int], list[tuple[str, str]]]


def kdaug_tool(method: str) -> Tool:
    augmenter = create(method, AugmentOptions())
    augmenter.setup()

    def run(texts, degree, seed):
        examples = [
            {"source_id": f"sst2:{seed}:{i}", "text_a": t, "text_b": None, "label": 0} for i, t in enumerate(texts)
        ]
        out = []
        for start in range(0, len(examples), 256):  # the job's chunk size
            chunk = examples[start : start + 256]
            out += [(ex["text_a"], row["text_a"]) for ex, row in zip(chunk, augmenter.augment_chunk(chunk, degree, 0))]
        return out

    return run


def word2vec_text_file(directory: str, limit: int) -> str:
    """kdaug's GloVe vectors in word2vec text format (a "count dim" header, then word and values)."""
    words, vectors = resources.glove(limit)
    path = os.path.join(directory, f"glove-6b-50d-{limit}.w2v.txt")
    with open(path, "w", encoding="utf-8") as f:
        f.write(f"{len(words)} {vectors.shape[1]}\n")
        for word, vector in zip(words, vectors):
            f.write(word + " " + " ".join(f"{v:.6g}" for v in vector) + "\n")
    return path


def nlpaug_embeddings_tool(w2v_path: str, k: int) -> Tool:
    import nlpaug.augmenter.word as naw
    import nlpaug.model.word_embs as nmw
    from gensim.models import KeyedVectors

    model = nmw.Word2vec(top_k=k)
    model.model = KeyedVectors.load_word2vec_format(w2v_path, binary=False)  # nlpaug's own reader wants binary
    model._read()
    return _nlpaug_tool(
        lambda degree: naw.WordEmbsAug(model_type="word2vec", model=model, top_k=k, aug_p=degree, aug_max=None)
    )


def nlpaug_synonym_tool() -> Tool:
    import nlpaug.augmenter.word as naw
    import nltk
    from nlpaug.model.word_dict import WordNet

    root = str(nltk_data_dir(resources.WORDNET_SOURCE, resources.data_dir()))
    if root not in nltk.data.path:
        nltk.data.path.append(root)
    WordNet.pos_tag = classmethod(lambda cls, tokens: [(t, "") for t in tokens])  # see the module docstring
    return _nlpaug_tool(lambda degree: naw.SynonymAug(aug_src="wordnet", aug_p=degree, aug_max=None))


def _nlpaug_tool(make: Callable[[float], object]) -> Tool:
    from nlpaug.util.text.tokenizer import Tokenizer

    def run(texts, degree, seed):
        import numpy as np

        random.seed(seed)  # nlpaug draws from the global generators
        np.random.seed(seed)
        augmenter = make(degree)
        return [(Tokenizer.reverse_tokenizer(Tokenizer.tokenizer(t)), augmenter.augment(t)[0]) for t in texts]

    return run


# ---- EDA's synonym replacement, after eda_nlp/code/eda.py (see the module docstring) ----


def eda_only_chars(line: str) -> str:
    """EDA's `get_only_chars`: lower-case letters and single spaces only."""
    line = line.replace("'", "").replace("-", " ").replace("\t", " ").replace("\n", " ").lower()
    clean = "".join(c if c in "qwertyuiopasdfghjklzxcvbnm " else " " for c in line)
    return re.sub(" +", " ", clean).lstrip(" ")


def eda_synonyms(wordnet, word: str) -> list[str]:
    """EDA's `get_synonyms` (a set, as in the reference, so its order is the set's)."""
    found = set()
    for name in wordnet.lemma_names(word):  # = [l.name() for s in wn.synsets(word) for l in s.lemmas()]
        synonym = name.replace("_", " ").replace("-", " ").lower()
        found.add("".join(c for c in synonym if c in " qwertyuiopasdfghjklzxcvbnm"))
    found.discard(word)
    return list(found)


def eda_synonym_replacement(wordnet, sentence: str, alpha: float, rng: random.Random) -> tuple[str, str]:
    """EDA's `eda(sentence, alpha_sr=alpha)` restricted to SR: n = max(1, int(alpha·n_words)) distinct
    non-stop words, each replaced (every occurrence) by one random synonym. Returns (input, output)."""
    words = [w for w in eda_only_chars(sentence).split(" ") if w != ""]
    n = max(1, int(alpha * len(words)))
    new_words = words.copy()
    candidates = list(set(w for w in words if w not in STOP_WORDS))
    candidates.sort()  # the reference shuffles a set; sorting first makes the seeded shuffle reproducible
    rng.shuffle(candidates)
    replaced = 0
    for word in candidates:
        synonyms = eda_synonyms(wordnet, word)
        if synonyms:
            synonym = rng.choice(synonyms)
            new_words = [synonym if w == word else w for w in new_words]
            replaced += 1
        if replaced >= n:
            break
    return " ".join(words), " ".join(" ".join(new_words).split(" "))


def eda_tool() -> Tool:
    wordnet = resources.wordnet()

    def run(texts, degree, seed):
        rng = random.Random(seed)
        return [eda_synonym_replacement(wordnet, t, degree, rng) for t in texts]

    return run


# ---- timing ----


_FORKED: Tool | None = None


def _run_forked(texts: list[str], degree: float, seed: int) -> list[tuple[str, str]]:
    return _FORKED(texts, degree, seed)


def _timed(
    tool: Tool, texts: list[str], degree: float, seed: int, processes: int
) -> tuple[float, list[tuple[str, str]]]:
    """Wall seconds to augment `texts` with 1 process (in this one) or 2 forked processes."""
    if processes == 1:
        started = time.perf_counter()
        out = tool(texts, degree, seed)
        return time.perf_counter() - started, out
    global _FORKED
    _FORKED = tool  # tools are closures: the forked workers find theirs here, not through pickle
    halves = [texts[: len(texts) // 2], texts[len(texts) // 2 :]]
    context = multiprocessing.get_context("fork")  # children inherit the loaded resources
    with context.Pool(processes) as pool:
        pool.apply(os.getpid)  # both workers started before the clock
        pool.apply(os.getpid)
        started = time.perf_counter()
        parts = pool.starmap(_run_forked, [(h, degree, seed + i) for i, h in enumerate(halves)])
        seconds = time.perf_counter() - started
    return seconds, parts[0] + parts[1]


def fidelity(pairs: list[tuple[str, str]], degree: float) -> tuple[float, float, float]:
    """(mean changed_frac, mean |changed_frac − degree|, mean changed_frac over inputs of ≥10 words)."""
    fracs = [word_change_fraction((before, after)) for before, after in pairs]
    long = [f for f, (before, _) in zip(fracs, pairs) if len(before.split()) >= 10]
    return (
        statistics.fmean(fracs),
        statistics.fmean(abs(f - degree) for f in fracs),
        statistics.fmean(long) if long else float("nan"),
    )


def measure(name: str, tool: Tool, texts: list[str], degree: float, runs: int, processes: int) -> dict:
    words = sum(len(only_words(Words.split(t))) for t in texts)
    times, pairs = [], None
    for run in range(runs):
        seconds, out = _timed(tool, texts, degree, run, processes)
        times.append(seconds)
        pairs = pairs or out
    seconds = statistics.median(times)
    mean, error, long = fidelity(pairs, degree)
    return {
        "tool": name,
        "degree": degree,
        "processes": processes,
        "rows": len(texts),
        "sentences_s": len(texts) / seconds,
        "tokens_s": words / seconds,
        "changed_frac": mean,
        "abs_error": error,
        "changed_frac_10plus": long,
    }


@click.command()
@click.option("--input", "path", default=SST2, show_default=True, help="SST-2 train.tsv")
@click.option("--rows", default=10_000, show_default=True, help="Rows for kdaug.")
@click.option(
    "--subset", default=1_000, show_default=True, help="Rows for nlpaug SynonymAug and EDA (the first ones of --rows)."
)
@click.option(
    "--embs-subset", default=200, show_default=True, help="Rows for nlpaug WordEmbsAug (about 10 sentences/s)."
)
@click.option("--degrees", default="0.1,0.5", show_default=True)
@click.option("--runs", default=3, show_default=True, help="Runs per figure (the median is reported).")
@click.option("--processes", "process_counts", default="1,2", show_default=True)
@click.option("--only", default="knn,synonym", show_default=True, help="Comparisons to run: knn, synonym.")
def main(path, rows, subset, embs_subset, degrees, runs, process_counts, only):
    data = open(path, "rb").read()
    texts = [
        ex["text_a"]
        for kind, ex in sources.read_examples(path, data, sources.make_task("sst2"), rows)
        if kind == "example"
    ]
    degrees = [float(d) for d in degrees.split(",")]
    process_counts = [int(p) for p in process_counts.split(",")]
    options = AugmentOptions()
    with tempfile.TemporaryDirectory() as tmp:
        groups = []
        if "knn" in only:
            groups.append(
                (
                    "knn",
                    [
                        ("kdaug knn", lambda: kdaug_tool("knn"), texts),
                        (
                            "nlpaug WordEmbsAug",
                            lambda: nlpaug_embeddings_tool(word2vec_text_file(tmp, options.glove_vocab), options.knn_k),
                            texts[:embs_subset],
                        ),
                    ],
                )
            )
        if "synonym" in only:
            groups.append(
                (
                    "synonym",
                    [
                        ("kdaug synonym", lambda: kdaug_tool("synonym"), texts),
                        ("nlpaug SynonymAug", nlpaug_synonym_tool, texts[:subset]),
                        ("EDA eda.py SR", eda_tool, texts[:subset]),
                    ],
                )
            )
        results = []
        for group, tools in groups:
            for name, make, inputs in tools:
                tool = make()
                started = time.perf_counter()  # every tool's caches (WordNet look-ups, nlpaug's) warm on all its rows
                tool(inputs, degrees[0], 0)
                click.echo(
                    f"{name}: cold first pass over {len(inputs)} rows {len(inputs) / (time.perf_counter() - started):,.0f} sentences/s (then warm)"
                )
                for degree in degrees:
                    for processes in process_counts:
                        results.append({"group": group, **measure(name, tool, inputs, degree, runs, processes)})
                        click.echo(
                            f"  {name} p={degree} x{processes}: {results[-1]['sentences_s']:,.0f} sentences/s", err=True
                        )
    base = {
        (r["group"], r["degree"], r["processes"]): r["sentences_s"] for r in results if r["tool"].startswith("kdaug")
    }
    click.echo(
        table(
            [
                "tool",
                "degree",
                "procs",
                "rows",
                "sentences/s",
                "tokens/s",
                "kdaug ×",
                "changed_frac",
                "|Δ degree|",
                "cf ≥10 words",
            ],
            [
                [
                    r["tool"],
                    r["degree"],
                    r["processes"],
                    r["rows"],
                    round(r["sentences_s"]),
                    round(r["tokens_s"]),
                    base[(r["group"], r["degree"], r["processes"])] / r["sentences_s"],
                    r["changed_frac"],
                    r["abs_error"],
                    r["changed_frac_10plus"],
                ]
                for r in results
            ],
        )
    )


if __name__ == "__main__":
    main()
