"""AugPro-FGSM (`augpro-fgsm`): a gradient step on the word-piece embeddings, projected back to
real tokens, with the step chosen HotFlip-style among the nearest vocabulary tokens.

AugPro perturbs the input embeddings as e + ε·sign(∇_e L) and projects every position to its
nearest token. On the teacher's table that does not work as such (docs/augpro.md §3e): the nearest
other token is a median 0.99 away, so a small ε projects back to the same token and a large one
lands far from both. Here each chosen position instead takes the candidate that a first-order
(HotFlip) estimate says raises the loss most:

    candidates = the K nearest projectable tokens of e_t (`projection.nearest`), minus t itself,
                 minus pieces that cannot change (`augpro_mix.piece_kinds`) and pieces of the other
                 kind (word start vs ##continuation, which would re-tokenize differently)
    score(w)   = (E_w − e_t) · ∂L/∂e_t,  the best-scoring candidate replaces t

so there is no ε: the candidate set bounds how far a piece moves. There is no ε step in "sign"
mode either; only HotFlip is implemented (`MODE`).

- The loss. The paper's L is the KD loss between teacher and student; the augment job has no
  student. The KL between the teacher's clean prediction (detached) and its prediction on the
  perturbed input is zero with zero gradient at the clean point, so it gives no direction. L is
  instead the negative log-likelihood of the teacher's own argmax class on the clean input:
  its gradient points away from the teacher's decision, where the teacher's output changes
  fastest, which is the most informative region for distillation (the student learns the
  teacher's boundary, not just its confident interior). The loss is summed over the chunk, so
  each example's gradient only depends on that example.
- The model sees the example as it is labelled: [CLS] a [SEP] (b [SEP]) with token types, padded
  per chunk, truncated longest-first to the model's length. Only pieces inside a text edit;
  pieces cut by truncation have no gradient and never change.
- Degree: round(p·n) of a text's n word pieces (at least one), drawn from the row's random stream
  among the eligible positions (a word piece with at least one candidate), text_a first, then
  text_b; all of them when fewer. `changed_frac` counts changed pieces over all word pieces.
- Teacher: `options.teacher_dir`, None = the packaged all-MiniLM-L6-v2. That one is a sentence
  encoder without a classification head: the head is then initialised from a fixed seed, so every
  worker process builds the same model (and rows stay identical across workers), but its
  "decision" is arbitrary; pass a fine-tuned teacher for meaningful directions.
"""

from __future__ import annotations

import numpy as np

from kdaug.augmenters import projection, resources
from kdaug.augmenters.augpro import encode_pieces, piece_kinds, spliced
from kdaug.augmenters.base import Augmenter, register
from kdaug.augmenters.seeding import row_rng
from kdaug.augmenters.words import target_count
from kdaug.teacher.model import LOCAL_ONLY, SAFE_WEIGHTS

MODE = "hotflip"  # the only projection mode: rank the K nearest tokens by (E_w − e_t)·∇L
K = 10  # nearest vocabulary tokens considered per position (including the token itself)
HEAD_SEED = 0  # initialises a classification head the teacher directory lacks (packaged MiniLM)


@resources.once
def _teacher(model_dir: str, device: str):
    """Tokenizer and sequence classifier in eval mode, frozen, on `device`; loaded once per process."""
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_dir, **LOCAL_ONLY)
    with torch.random.fork_rng(devices=[]):  # a missing head must be the same in every process
        torch.manual_seed(HEAD_SEED)
        model = AutoModelForSequenceClassification.from_pretrained(model_dir, **SAFE_WEIGHTS)
    model.eval().requires_grad_(False).to(device)
    return tokenizer, model


@register
class AugProFGSM(Augmenter):
    name = "augpro-fgsm"
    uses_device = True

    def setup(self) -> None:
        self.model_dir = resources.resolve_teacher_dir(self.options.teacher_dir)
        self.tokenizer, self.model = _teacher(self.model_dir, self.options.device)
        self.vocab = resources.teacher_vocab(self.model_dir)
        self.table = resources.teacher_word_embeddings(self.model_dir)
        self.is_word, self.is_continuation = piece_kinds(self.vocab)
        self.max_length = min(self.tokenizer.model_max_length, self.model.config.max_position_embeddings)
        # (chunk key, (pieces, best flips)) of the last chunk
        self._cache: tuple[tuple, tuple[dict, dict]] | None = None

    def augment_words(self, words, degree, rng):
        """Not used: the gradient is taken for a whole chunk at once, see `augment_chunk`."""
        raise NotImplementedError("augpro-fgsm augments whole chunks")

    def augment_chunk(self, examples: list[dict], degree: float, copy: int) -> list[dict]:
        rows = []
        for ex, pieces in zip(examples, self.flip_chunk(examples, degree, copy)):
            texts, frac = spliced(ex, pieces, self.is_word, self.vocab)  # text_a always, text_b maybe
            rows.append(self.make_row(ex, degree, copy, texts["text_a"], texts.get("text_b"), changed_frac=frac))
        return rows

    def flip_chunk(self, examples: list[dict], degree: float, copy: int) -> list[dict]:
        """Per example and present text field: (own piece ids, output piece ids, character spans)."""
        if not examples:
            return []
        enc, best = self._best_flips(examples)
        out = []
        for i, ex in enumerate(examples):
            rng = row_rng(self.options.seed, ex["source_id"], self.name, degree, copy)
            pieces = {}
            for f in ("text_a", "text_b"):
                if ex[f] is None:
                    continue
                own, spans = enc[f][i]
                new = own.copy()
                eligible = [k for k in range(len(own)) if (i, f, k) in best]
                want = target_count(degree, int(self.is_word[own].sum()))
                for k in sorted(rng.sample(eligible, min(want, len(eligible)))):
                    new[k] = best[i, f, k]
                pieces[f] = (own, new, spans)
            out.append(pieces)
        return out

    def _best_flips(self, examples: list[dict]) -> tuple[dict, dict]:
        """The chunk's pieces and, per (example, field, position) that can change, its best
        HotFlip candidate. Independent of degree and copy, so the job's consecutive calls for one
        chunk (every degree and copy) share one forward/backward pass: the last chunk is cached."""
        key = tuple((ex["source_id"], ex["text_a"], ex["text_b"]) for ex in examples)
        if self._cache is not None and self._cache[0] == key:
            return self._cache[1]
        enc = {f: encode_pieces(self.tokenizer, [ex[f] or "" for ex in examples]) for f in ("text_a", "text_b")}
        kept = [
            self._kept(len(enc["text_a"][i][0]), None if ex["text_b"] is None else len(enc["text_b"][i][0]))
            for i, ex in enumerate(examples)
        ]
        grads = self._gradients(examples, enc, kept)  # per example, per field: (kept pieces, hidden)

        # Candidates for every word piece that has a gradient, in one projection call.
        where, vectors = [], []
        for i, kept_pieces in enumerate(kept):
            for f, n in kept_pieces.items():
                own = enc[f][i][0]
                for k in np.flatnonzero(self.is_word[own[:n]]).tolist():
                    where.append((i, f, k))
                    vectors.append(self.table[own[k]])
        best = {}
        if vectors:
            near, _ = projection.nearest(self.model_dir, np.stack(vectors), K, self.options.device)
            for (i, f, k), cands in zip(where, near):
                t = enc[f][i][0][k]
                ok = (cands != t) & self.is_word[cands] & (self.is_continuation[cands] == self.is_continuation[t])
                if ok.any():
                    cands = cands[ok]
                    score = (self.table[cands].astype(np.float64) - self.table[t]) @ grads[i][f][k]
                    best[i, f, k] = int(cands[np.lexsort((cands, -score))[0]])  # ties: lowest id

        self._cache = (key, (enc, best))
        return enc, best

    def _kept(self, n_a: int, n_b: int | None) -> dict[str, int]:
        """Pieces of each text that fit in the model input, truncating the longer text first."""
        room = self.max_length - (2 if n_b is None else 3)
        if n_b is None:
            return {"text_a": min(n_a, room)}
        while n_a + n_b > room:
            if n_a >= n_b:
                n_a -= 1
            else:
                n_b -= 1
        return {"text_a": n_a, "text_b": n_b}

    def _gradients(self, examples, enc, kept) -> list[dict[str, np.ndarray]]:
        """∂L/∂e for each kept piece, L = summed NLL of the teacher's own argmax class."""
        import torch

        cls_id, sep_id = self.tokenizer.cls_token_id, self.tokenizer.sep_token_id
        seqs, types, offsets = [], [], []
        for i in range(len(examples)):
            ids, tt, at = [cls_id], [0], {}
            for seg, (f, n) in enumerate(kept[i].items()):
                at[f] = len(ids)
                ids += enc[f][i][0][:n].tolist() + [sep_id]
                tt += [seg] * (n + 1)
            seqs.append(ids)
            types.append(tt)
            offsets.append(at)
        width = max(map(len, seqs))
        pad = self.tokenizer.pad_token_id or 0
        device = self.options.device
        input_ids = torch.tensor([s + [pad] * (width - len(s)) for s in seqs], device=device)
        token_type_ids = torch.tensor([t + [0] * (width - len(t)) for t in types], device=device)
        attention_mask = torch.tensor([[1] * len(s) + [0] * (width - len(s)) for s in seqs], device=device)

        embeds = self.model.get_input_embeddings()(input_ids).detach().requires_grad_(True)
        with torch.enable_grad():
            logits = self.model(
                inputs_embeds=embeds, attention_mask=attention_mask, token_type_ids=token_type_ids
            ).logits
            target = logits.detach().argmax(-1)
            torch.nn.functional.cross_entropy(logits, target, reduction="sum").backward()
        grad = embeds.grad.double().cpu().numpy()
        return [{f: grad[i, at + np.arange(kept[i][f])] for f, at in offsets[i].items()} for i in range(len(examples))]
