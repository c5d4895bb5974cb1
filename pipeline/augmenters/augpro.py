"""What both AugPro methods (`augpro_mix`, `augpro_fgsm`) do with word pieces: which ids may change,
each text's pieces with their character spans, and splicing new pieces back into the text."""

from __future__ import annotations

import numpy as np

from kdaug.augmenters import projection
from kdaug.augmenters.words import match_case


def piece_kinds(vocab) -> tuple[np.ndarray, np.ndarray]:
    """Per token id: whether it is a word piece that may change (letters or digits, not a special
    token) and whether it is a continuation (##ing)."""
    is_word = np.array([not projection.is_special(p) and any(c.isalnum() for c in p) for p in vocab])
    return is_word, np.array([p.startswith("##") for p in vocab])


def encode_pieces(tokenizer, texts: list[str]) -> list[tuple[np.ndarray, list[tuple[int, int]]]]:
    """Word-piece ids (no [CLS]/[SEP]) and their character spans, in one tokenizer call."""
    enc = tokenizer(texts, add_special_tokens=False, return_offsets_mapping=True)
    return [(np.asarray(ids, dtype=np.int64), spans) for ids, spans in zip(enc["input_ids"], enc["offset_mapping"])]


def splice(text: str, spans: list[tuple[int, int]], own: np.ndarray, new: np.ndarray, vocab) -> str:
    """The text with each changed piece's characters replaced by the new piece (without ##, in
    the replaced characters' case), so everything else stays as it was: a tokenizer decode
    would lower-case, strip accents, drop [UNK] characters and re-space punctuation."""
    out, end = [], 0
    for k in np.flatnonzero(new != own):
        start, stop = spans[k]
        out += [text[end:start], match_case(text[start:stop], vocab[new[k]].removeprefix("##"))]
        end = stop
    return "".join(out) + text[end:]


def spliced(ex: dict, pieces: dict, is_word: np.ndarray, vocab) -> tuple[dict[str, str], float]:
    """A row's texts with their changed pieces spliced in (`splice`), and its `changed_frac`: changed
    word pieces over the word pieces of all its texts. `pieces` maps a field to (own piece ids,
    output piece ids, the pieces' character spans); a field the example lacks has no text."""
    texts: dict[str, str] = {}
    changed, total = 0, 0
    for f, (own, new, spans) in pieces.items():
        changed += int((new != own).sum())
        total += int(is_word[own].sum())
        if ex[f] is not None:
            texts[f] = splice(ex[f], spans, own, new, vocab)
    return texts, changed / total if total else 0.0
