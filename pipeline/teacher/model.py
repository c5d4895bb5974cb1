"""Teacher inference: a fine-tuned classifier turned into float32 logits, fast on CPU.

Beam-free on purpose: the Beam labeller (`kdaug.beam.inference`), `distill`'s evaluation and the
benchmarks all call the same `Teacher.logits`, so the numbers they see are the same numbers.

Why the batching looks the way it does: transformer cost grows with the padded batch area, and
augmented corpora mix 5-token phrases with 60-token sentences. Sorting by token length and
filling each batch up to a *token budget* (not a row count; 1024 padded tokens ran
435 vs 367 sentences/s for 4096 on 2 CPU threads: smaller activations stay in cache) keeps padding near zero and lets
short rows go in large batches, while the budget bounds the activation memory of the widest batch.

torch is imported where it is first needed, not with the module: the CLI reads this module's
settings for every command, and `kdaug augment` should not pay torch's import (~1.5 s).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import click
import numpy as np

if TYPE_CHECKING:
    import torch

#: What every transformers `from_pretrained` in kdaug passes: the local directory only, never a hub,
#: and never the model's own code (`auto_map`), which transformers would otherwise run, or ask about
#: on stdin. `check_model_dir` refuses such a directory before any of these loads is reached.
LOCAL_ONLY = {"local_files_only": True, "trust_remote_code": False}
#: ... and for a model's weights: safetensors only, so transformers never falls back to unpickling a *.bin.
SAFE_WEIGHTS = {**LOCAL_ONLY, "use_safetensors": True}

#: The `kind`s of kdaug output (`_manifest.json`) that are model directories.
MODEL_KINDS = ("teacher", "student")  # `kdaug.commit.Kind` values
#: Weight files that are pickles: unpickling one can run any code it names.
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".pkl", ".pickle", ".ckpt")
_CUSTOM_CODE = (
    "declares custom code (auto_map in {name}): kdaug never runs a model's own code; use a directory "
    "saved from a standard transformers class"
)


class ModelDirError(click.ClickException, ValueError):
    """A model directory kdaug will not read. A user's mistake: exit 2 (usage error) with this one line
    on the command line (no usage text: the flags were fine, the directory is not), and a ValueError to
    Python callers."""

    exit_code = 2


def check_model_dir(path: str | os.PathLike, what: str = "model", config: str = "config.json") -> None:
    """Refuse (ModelDirError: "WHAT PATH: why") a model directory before anything loads it: one kdaug has
    not finished publishing or that is another kind of kdaug output, one without its `config` file,
    one that declares custom code, or one whose weights are pickles (or missing).

    Model directories are untrusted input: loading custom code or a pickle runs whatever it says, so
    these are refused here, up front and with a reason, rather than left to transformers (which prompts
    on stdin for custom code, or unpickles `pytorch_model.bin`). Cheap (a few stats and small JSON
    files): every loader calls it. `config`: `student.json` for the word students."""
    root = Path(path)
    why = (
        "no such directory"
        if not root.is_dir()
        else _not_published_whole(root) or _missing_config(root, config) or _custom_code(root) or _unsafe_weights(root)
    )
    if why:
        raise ModelDirError(f"{what} {path}: {why}")


def check_teacher(teacher_dir: str, labels: list[str] | None) -> None:
    """Refuse, before any worker starts, a teacher directory that cannot label this data: what no
    model directory may be (`check_model_dir`: unfinished, another kind of output, custom code,
    pickled or no weights), damaged (truncated) weights, no tokenizer or one that does not fit the
    model's embedding table, or another number of classes than the data's labels. Each refusal is
    one line, exit 2."""

    def refuse(why: str):
        raise ModelDirError(f"teacher {teacher_dir}: {why}")

    check_model_dir(teacher_dir, "teacher")  # before importing transformers: a refusal is instant
    from safetensors import SafetensorError, safe_open
    from transformers import AutoConfig, AutoTokenizer

    try:  # reads the header only, and checks that the file covers every tensor it lists
        with safe_open(str(Path(teacher_dir, "model.safetensors")), "pt") as weights:
            weights.keys()
    except (SafetensorError, OSError) as err:
        refuse(f"model.safetensors is damaged or truncated ({err}); copy or train it again")
    try:
        config = AutoConfig.from_pretrained(teacher_dir, **LOCAL_ONLY)
    except (OSError, ValueError) as err:
        refuse(f"unreadable config.json ({err})")
    try:
        tokenizer = AutoTokenizer.from_pretrained(teacher_dir, **LOCAL_ONLY)
    except (OSError, ValueError, TypeError) as err:
        refuse(f"no usable tokenizer ({err})")
    # more tokens than embeddings: ids out of range; far fewer: the vocabulary is missing (transformers
    # then builds a tokenizer of special tokens only and every word becomes [UNK]) or another model's
    if not 0.9 * config.vocab_size <= len(tokenizer) <= config.vocab_size:
        refuse(
            f"the tokenizer has {len(tokenizer)} tokens but the model's embedding table {config.vocab_size}: "
            "the vocabulary is missing or belongs to another model"
        )
    if labels and config.num_labels != len(labels):
        refuse(f"the model has {config.num_labels} classes but the data {len(labels)} ({', '.join(map(str, labels))})")


def _not_published_whole(root: Path) -> str | None:
    """Why a directory kdaug writes (it has `_kdaug/` or `_manifest.json`) is not one whole published
    model, or None. A user's own from_pretrained directory has neither and is not kdaug's to judge."""
    from kdaug import commit

    if not ((root / commit.STATE_DIR).exists() or (root / commit.MANIFEST_FILE).exists()):
        return None
    store = commit.Store(str(root))
    try:
        kind = (commit.read_manifest(store) or {}).get("kind")
        if kind is not None and kind not in MODEL_KINDS:
            return f"it is {commit.describe_kind(kind)} ({commit.MANIFEST_FILE} kind {kind!r}), not a model directory"
        problem = commit.unfinished(store)  # the readers' rule: one whole run, every listed file as published
    except commit.DamagedState as err:
        return str(err)
    return problem and f"kdaug has not finished writing it ({problem}); wait, or `kdaug recover` it"


def _missing_config(root: Path, config: str) -> str | None:
    """Why the directory is not a model directory at all (no `config` file), or None."""
    if not (root / config).is_file():
        return f"no {config} (expected a `kdaug teacher train`, `kdaug distill` or save_pretrained directory)"
    return None


def _custom_code(root: Path) -> str | None:
    """Why the directory's config or tokenizer config is unreadable or asks for the model's own code
    (`auto_map`: the classes to import from its *.py files), or None."""
    for name in ("config.json", "tokenizer_config.json"):
        if not (root / name).is_file():
            continue
        try:
            spec = json.loads((root / name).read_text(encoding="utf-8"))
        except ValueError as err:  # JSON and UTF-8 errors alike
            return f"unreadable {name} ({err})"
        if not isinstance(spec, dict):
            return f"unreadable {name} (not a JSON object)"
        if "auto_map" in spec:
            return _CUSTOM_CODE.format(name=name)
    return None


def _unsafe_weights(root: Path) -> str | None:
    """Why the directory has no weights kdaug may load (model.safetensors: tensors only), or None."""
    if (root / "model.safetensors").is_file():
        return None
    pickles = sorted(p.name for p in root.iterdir() if p.suffix in PICKLE_SUFFIXES and p.is_file())
    if pickles:
        return (
            f"its weights are pickles ({', '.join(pickles)}), which can run code when loaded; kdaug reads "
            "model.safetensors only (save_pretrained writes it by default)"
        )
    return "no model weights (model.safetensors)"


#: Files whose bytes define what a teacher computes (weights and tokenizer). Whichever exist count.
_FINGERPRINT_FILES = (
    "model.safetensors",
    "pytorch_model.bin",
    "vocab.txt",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
)


def fingerprint(model_dir: str | os.PathLike) -> str:
    """Content hash of a teacher directory: weights, tokenizer files and label names.

    Recorded in manifests so that shards labelled by different teachers are never mixed up;
    it depends on file contents only, so a copied or re-downloaded directory keeps its hash. A directory
    `check_model_dir` refuses has no hash worth recording.
    """
    check_model_dir(model_dir, "teacher")
    root = Path(model_dir)
    h = hashlib.blake2b(digest_size=16)
    for name in _FINGERPRINT_FILES:
        path = root / name
        if not path.is_file():
            continue
        h.update(name.encode() + b"\0")
        with open(path, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
    config = json.loads((root / "config.json").read_text(encoding="utf-8"))
    labels = config.get("id2label") or {}
    h.update(json.dumps([labels[k] for k in sorted(labels, key=int)]).encode())
    return h.hexdigest()


def default_num_threads() -> int:
    """The CPUs this process may run on (respects taskset/cgroup affinity, unlike os.cpu_count)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def length_batches(lengths: Sequence[int], max_tokens: int) -> list[np.ndarray]:
    """Index batches in ascending length order whose padded area (rows × longest) ≤ max_tokens.

    A single row longer than the budget still gets a batch of its own.
    """
    order = np.argsort(np.asarray(lengths), kind="stable")
    batches, start = [], 0
    for i in range(1, len(order) + 1):
        if i == len(order) or (i - start + 1) * lengths[order[i]] > max_tokens:
            batches.append(order[start:i])
            start = i
    return batches


#: Padded tokens per inference batch: 1024 ran 435 vs 367 sentences/s for 4096 on 2 CPU threads.
DEFAULT_MAX_TOKENS = 1024

#: `--quantize` choices: None (fp32) or int8 dynamic quantisation (see `quantize_int8`).
QUANTIZE_CHOICES = ("int8",)


def quantize_int8(model: torch.nn.Module) -> torch.nn.Module:
    """The model with int8 weights in the encoder's Linear layers (torch dynamic quantisation, CPU).

    Weights are quantised per output channel; activations are quantised per batch at run time
    (fbgemm uses 7 bits for them), which is where the error comes from. Two kinds of layer stay
    fp32 because, measured on the SST-2 teacher (2,000 train sentences), they carry most of it:
    the first layer (raw embeddings, outlier dimensions) and every FFN output projection (its
    input is the GELU output, heavy-tailed). Quantising everything agreed with fp32 on 98.1% of
    argmaxes (max probability difference 0.70); this selection on 99.3% (0.22).
    Embeddings and the classifier head stay fp32 too: they are a negligible share of the time.
    """
    import warnings

    import torch
    from torch.ao.quantization import per_channel_dynamic_qconfig, quantize_dynamic

    keep_fp32 = re.compile(r"encoder\.layer\.0\.|encoder\.layer\.\d+\.output\.dense$")
    spec = {
        name: per_channel_dynamic_qconfig
        for name, module in model.named_modules()
        if isinstance(module, torch.nn.Linear)
        and name.startswith(_encoder_prefix(model))
        and not keep_fp32.search(name)
    }
    with warnings.catch_warnings():  # torch.ao.quantization's deprecation notice; it still works in torch 2.13
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", UserWarning)
        return quantize_dynamic(model, spec, dtype=torch.qint8)


def _encoder_prefix(model: torch.nn.Module) -> str:
    """`bert.encoder.` for BERT; the base model's attribute name differs per architecture."""
    return f"{model.base_model_prefix}.encoder."


DEVICE_HELP = "auto (CUDA when torch sees a GPU, else the CPU), cpu, cuda or cuda:N"


def resolve_device(device: str = "auto", here: bool = True) -> str:
    """`auto` → `cuda` when torch sees a GPU, else `cpu`. `cpu`, `cuda` and `cuda:N` are checked
    against what torch sees (`here=True`, where the model loads), so a GPU asked for and not present
    fails loudly instead of running on the CPU; a launcher (`here=False`) only checks the spelling,
    its workers may have the GPU it lacks (Dataflow's `worker_accelerator`). torch is imported only
    when its answer is needed (1.5 s a process)."""
    if device != "auto" and device != "cpu" and not re.fullmatch(r"cuda(:\d+)?", device):
        raise ValueError(f"device {device!r}: use {DEVICE_HELP}")
    if device == "cpu" or (device != "auto" and not here):
        return device
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if not torch.cuda.is_available():
        raise ValueError(
            f"device {device!r}: torch sees no CUDA GPU here (torch {torch.__version__}, CUDA build: "
            f"{torch.version.cuda or 'no'})"
        )
    index = int(device.split(":")[1]) if ":" in device else 0
    if index >= torch.cuda.device_count():
        raise ValueError(f"device {device!r}: torch sees {torch.cuda.device_count()} GPU(s)")
    return device


#: `--precision` choices. bf16 is autocast (matmuls in bfloat16, softmax/LayerNorm in fp32).
PRECISIONS = ("fp32", "bf16")
PRECISION_HELP = (
    "fp32, or bf16 autocast (faster on a GPU; logits differ a little: bench/bench_gpu.py measures the "
    "argmax agreement, and fp32 stays the default until a GPU measurement shows it keeps ≥ 99.5%)."
)  # where a command records it differs: `kdaug.flags.precision_option(recorded=...)` says so per command


def check_precision(precision: str) -> str:
    """`precision`, checked. fp32 is every command's default, on a GPU too: bf16 is faster there, but
    whether it keeps the teacher's argmax (≥ 99.5% agreement with fp32) is for bench/bench_gpu.py to
    measure on a GPU, and none was at hand (BENCHMARKS.md §8)."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision {precision!r}: use one of {PRECISIONS}")
    return precision


#: Padded tokens per inference batch when none is given: 1024 on the CPU (measured above), larger on
#: a GPU, whose throughput keeps growing with the batch (bench/bench_gpu.py measures 1k-64k).
DEFAULT_CUDA_MAX_TOKENS = 16384


def default_max_tokens(device: str) -> int:
    return DEFAULT_CUDA_MAX_TOKENS if device.startswith("cuda") else DEFAULT_MAX_TOKENS


class Teacher:
    """A sequence classifier and its tokenizer, ready for batched inference.

    Build one per process (`Teacher.load`): loading is the slow part, inference is stateless.
    """

    def __init__(
        self,
        model,
        tokenizer,
        max_tokens: int | None = None,
        max_length: int | None = None,
        quantize: str | None = None,
        device: str = "cpu",
        precision: str = "fp32",
    ):
        if quantize not in (None, *QUANTIZE_CHOICES):
            raise ValueError(f"quantize={quantize!r}: use one of {QUANTIZE_CHOICES} or None (fp32)")
        if quantize and (device != "cpu" or precision != "fp32"):
            raise ValueError(f"quantize={quantize!r} runs on the CPU in fp32 only (asked: {device}, {precision})")
        self.quantize, self.device, self.precision = quantize, device, check_precision(precision)
        self.model = (quantize_int8(model.eval()) if quantize == "int8" else model).eval().to(device)
        self.tokenizer = tokenizer
        self.max_tokens = max_tokens or default_max_tokens(device)
        # Truncate like the model was trained; never beyond its position table.
        self.max_length = min(max_length or tokenizer.model_max_length, model.config.max_position_embeddings)
        self.num_labels = model.config.num_labels
        self.label_names = [model.config.id2label[i] for i in range(self.num_labels)]

    @classmethod
    def load(
        cls,
        model_dir: str,
        max_tokens: int | None = None,
        num_threads: int | None = None,
        device: str = "cpu",
        **kwargs,
    ) -> Teacher:
        """Load a `from_pretrained` directory onto `device` (`resolve_device`) and set torch's intra-op
        threads. Only a directory `check_model_dir` accepts, and only its safetensors weights and
        standard transformers classes (`SAFE_WEIGHTS`): loading never runs code the directory brings.

        The thread count is process-wide in torch; the default is every CPU this process may use,
        which is right for one inference stream per process (Beam workers share one Teacher).
        `quantize="int8"` trades a little agreement with the fp32 logits for speed (`quantize_int8`).
        The weights are not hashed here: the launcher fingerprints the directory once
        (`fingerprint`, recorded in the manifest), not every worker.
        """
        import torch
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        check_model_dir(model_dir)
        torch.set_num_threads(num_threads or default_num_threads())
        device = resolve_device(device)
        tokenizer = AutoTokenizer.from_pretrained(model_dir, **LOCAL_ONLY)
        model = AutoModelForSequenceClassification.from_pretrained(model_dir, **SAFE_WEIGHTS)
        return cls(model, tokenizer, max_tokens=max_tokens, device=device, **kwargs)

    def encode(self, texts_a: Sequence[str], texts_b: Sequence[str | None] | None = None) -> list[dict[str, list[int]]]:
        """The tokenizer's features per row (input_ids, attention_mask, …), truncated to max_length,
        unpadded."""
        args: list[list] = [list(texts_a)]
        if texts_b is not None and any(b is not None for b in texts_b):
            if any(b is None for b in texts_b):
                raise ValueError("texts_b mixes pairs and single sentences; label them in separate calls")
            args.append(list(texts_b))
        enc = self.tokenizer(*args, truncation=True, max_length=self.max_length)
        return [dict(zip(enc.keys(), values)) for values in zip(*enc.values())]

    def logits(self, texts_a: Sequence[str], texts_b: Sequence[str | None] | None = None) -> np.ndarray:
        """Raw logits, float32 of shape (n, num_labels), rows in input order."""
        return self.logits_with_stats(texts_a, texts_b)[0]

    def logits_with_stats(self, texts_a, texts_b=None) -> tuple[np.ndarray, dict[str, int]]:
        """`logits`, plus the counts a caller may report: batches and real/padded tokens."""
        import torch

        features = self.encode(texts_a, texts_b)
        lengths = [len(f["input_ids"]) for f in features]
        out = np.empty((len(features), self.num_labels), dtype=np.float32)
        stats = {"batches": 0, "tokens": sum(lengths), "padded_tokens": 0}
        cuda = self.device.startswith("cuda")
        with (
            torch.inference_mode(),
            torch.autocast(self.device.split(":")[0], torch.bfloat16, enabled=self.precision == "bf16"),
        ):
            for idx in length_batches(lengths, self.max_tokens):
                batch = self.tokenizer.pad([features[i] for i in idx], return_tensors="pt")
                if cuda:  # pinned host memory: the copy overlaps the previous batch's compute
                    batch = {k: v.pin_memory().to(self.device, non_blocking=True) for k, v in batch.items()}
                out[idx] = self.model(**batch).logits.float().cpu().numpy()
                stats["batches"] += 1
                stats["padded_tokens"] += batch["input_ids"].numel()
        return out, stats
