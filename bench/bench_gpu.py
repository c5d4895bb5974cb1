"""Teacher inference and student training on a GPU (issue 13): one short, self-contained script for
a machine that has torch, transformers and an NVIDIA GPU, and nothing else kdaug uses (no Beam, no
faiss, no packaged checkpoint, no network).

Speed depends on the architecture and the token counts, not on the weights, so the models are built
from their configs with random weights: all-MiniLM-L6 (kdaug's default teacher base: 6 layers,
hidden 384) and BERT-base (12 layers, hidden 768), with a synthetic word-piece vocabulary of the
same size (30,522) and sentences whose lengths follow augmented SST-2 (3 to 60 words, mean ~13).

It prints, per model:
- sentences/s of `Teacher.logits` (kdaug's labeller: length-sorted batches under a token budget)
  in fp32 and in bf16 autocast, for token budgets 1k to 64k;
- argmax agreement and the largest probability difference of bf16 against fp32 on the same
  sentences and the same (random) model — a random head puts more rows near a tie than a trained
  one, so this is a conservative figure;
- distillation steps/s (batch 32, KD loss, AdamW) of a 2-layer student in fp32 and bf16.

    python bench/bench_gpu.py                      # on the GPU machine: about 3-5 minutes on one H200
    python bench/bench_gpu.py --device cpu --quick # the same code on a CPU, small sizes (a smoke test)
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from transformers import BertConfig, BertForSequenceClassification, BertTokenizerFast

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from kdaug.distillation.loss import distill_loss  # noqa: E402  (torch only)
from kdaug.teacher.model import Teacher, resolve_device  # noqa: E402  (numpy and torch only)

MODELS = {
    "all-MiniLM-L6 (6×384)": dict(num_hidden_layers=6, hidden_size=384, num_attention_heads=12, intermediate_size=1536),
    "BERT-base (12×768)": dict(num_hidden_layers=12, hidden_size=768, num_attention_heads=12, intermediate_size=3072),
}
VOCAB = 30_522


def tokenizer(workdir: Path) -> BertTokenizerFast:
    """A word-piece tokenizer over a synthetic vocabulary of VOCAB entries (specials first)."""
    words = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + [f"w{i}" for i in range(VOCAB - 5)]
    (workdir / "vocab.txt").write_text("\n".join(words) + "\n")
    return BertTokenizerFast(vocab_file=str(workdir / "vocab.txt"), model_max_length=128)


def sentences(n: int, seed: int = 0) -> list[str]:
    """Sentences of 3-60 synthetic words, lengths log-normal around 13 (augmented SST-2's shape)."""
    rng = random.Random(seed)
    lengths = [min(60, max(3, int(rng.lognormvariate(2.4, 0.6)))) for _ in range(n)]
    return [" ".join(f"w{rng.randrange(VOCAB - 5)}" for _ in range(k)) for k in lengths]


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def labelling_rate(teacher: Teacher, texts: list[str], repeats: int) -> float:
    teacher.logits(texts[: min(len(texts), 2000)])  # warm-up: kernels, allocator
    rates = []
    for _ in range(repeats):
        sync(teacher.device)
        start = time.perf_counter()
        teacher.logits(texts)
        sync(teacher.device)
        rates.append(len(texts) / (time.perf_counter() - start))
    return float(np.median(rates))


def distill_rate(config: BertConfig, tok, device: str, precision: str, steps: int, warmup: int = 3) -> float:
    student = (
        BertForSequenceClassification(BertConfig(**{**config.to_dict(), "num_hidden_layers": 2})).to(device).train()
    )
    optimizer = torch.optim.AdamW(student.parameters(), lr=1e-4)
    texts = sentences(32 * (steps + warmup), seed=1)
    teacher_logits = torch.randn(len(texts), 2, device=device)
    labels = torch.randint(0, 2, (len(texts),), device=device)
    for step in range(steps + warmup):
        if step == warmup:
            sync(device)
            start = time.perf_counter()
        rows = slice(32 * step, 32 * (step + 1))
        batch = {
            k: v.to(device) for k, v in tok(texts[rows], padding=True, truncation=True, return_tensors="pt").items()
        }
        with torch.autocast(device.split(":")[0], torch.bfloat16, enabled=precision == "bf16"):
            logits = student(**batch).logits
        loss = distill_loss(logits.float(), labels[rows], teacher_logits[rows], mode="kd", temperature=1.0, alpha=0.0)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    sync(device)
    return steps / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="auto")
    parser.add_argument("--quick", action="store_true", help="small sizes: a smoke test, e.g. on a CPU")
    parser.add_argument("--json", help="also write the results here")
    args = parser.parse_args()
    device = resolve_device(args.device)
    quick = args.quick
    budgets = [1024, 4096] if quick else [1024, 4096, 16384, 65536]
    n = 120 if quick else 20_000
    repeats, steps, warmup = (1, 1, 1) if quick else (3, 50, 3)
    name = torch.cuda.get_device_name(device) if device.startswith("cuda") else "CPU"
    print(f"device {device} ({name}), torch {torch.__version__}, {n:,} sentences, {time.strftime('%Y-%m-%d')}")
    texts, results = sentences(n), []
    with tempfile.TemporaryDirectory() as workdir:
        tok = tokenizer(Path(workdir))
        for model_name, shape in MODELS.items():
            if quick and "BERT-base" in model_name:
                continue
            torch.manual_seed(0)
            if quick:  # a smoke test of the code, not a measurement: 2 layers
                shape, model_name = {**shape, "num_hidden_layers": 2}, model_name + " [quick: 2 layers]"
            config = BertConfig(vocab_size=VOCAB, max_position_embeddings=512, num_labels=2, **shape)
            model = BertForSequenceClassification(config)
            fp32 = {}
            for precision in ("fp32", "bf16"):
                for budget in budgets:
                    teacher = Teacher(model, tok, max_tokens=budget, device=device, precision=precision)
                    rate = labelling_rate(teacher, texts, repeats)
                    results.append(
                        {
                            "model": model_name,
                            "what": "label",
                            "precision": precision,
                            "max_tokens": budget,
                            "sentences_per_s": round(rate),
                        }
                    )
                    print(
                        f"{model_name:24} label   {precision:5} max_tokens {budget:6,}  {rate:10,.0f} sentences/s",
                        flush=True,
                    )
                reference = Teacher(model, tok, max_tokens=budgets[-1], device=device, precision=precision).logits(
                    texts
                )
                if precision == "fp32":
                    fp32 = reference
                else:
                    agree = float((reference.argmax(1) == fp32.argmax(1)).mean())
                    p16, p32 = (torch.softmax(torch.from_numpy(x), 1).numpy() for x in (reference, fp32))
                    results.append(
                        {
                            "model": model_name,
                            "what": "agreement",
                            "argmax_agreement": agree,
                            "max_prob_diff": float(np.abs(p16 - p32).max()),
                        }
                    )
                    print(
                        f"{model_name:24} bf16 vs fp32: argmax agreement {agree:.4%}, "
                        f"max probability difference {np.abs(p16 - p32).max():.4f}",
                        flush=True,
                    )
            for precision in ("fp32", "bf16"):
                rate = distill_rate(config, tok, device, precision, steps, warmup)
                results.append(
                    {"model": model_name, "what": "distill", "precision": precision, "steps_per_s": round(rate, 1)}
                )
                print(
                    f"{model_name:24} distill {precision:5} 2-layer student, batch 32: {rate:8.1f} steps/s", flush=True
                )
    if args.json:
        Path(args.json).write_text(
            json.dumps({"device": name, "torch": torch.__version__, "results": results}, indent=2)
        )


if __name__ == "__main__":
    main()
