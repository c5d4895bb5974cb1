"""The student's training loss: knowledge distillation (KD) or plain fine-tuning (FT).

KD (Hinton et al., 2015): match the teacher's softened distribution,

    loss = KL(softmax(t/T) || softmax(s/T)) · T²  +  α · CE(s, gold)

averaged over the batch ("batchmean", the true KL per example). T > 1 flattens both distributions
so the student also learns how the teacher ranks the wrong classes; the T² keeps the gradient scale
independent of T. The CE term uses only rows with a gold label (label = IGNORE); augmented rows
carry their source's label, which a large edit can make wrong, which is why α defaults to 0.

FT: cross-entropy on gold labels only; the teacher's logits are ignored. The papers' baseline.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

MODES = ("kd", "ft")
IGNORE = -100  # label of a row without gold label


def distill_loss(
    student_logits: torch.Tensor,
    labels: torch.Tensor,
    teacher_logits: torch.Tensor | None = None,
    *,
    mode: str = "kd",
    temperature: float = 1.0,
    alpha: float = 0.0,
) -> torch.Tensor:
    """Scalar loss for a batch: student_logits (B, C), labels (B,) with IGNORE, teacher_logits (B, C)."""
    if mode == "ft":
        return _gold_ce(student_logits, labels)
    if mode != "kd":
        raise ValueError(f"unknown mode {mode!r}: use one of {MODES}")
    if teacher_logits is None:
        raise ValueError("mode 'kd' needs teacher_logits")
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    kl = F.kl_div(
        F.log_softmax(student_logits / temperature, dim=-1),
        F.log_softmax(teacher_logits / temperature, dim=-1),
        reduction="batchmean",
        log_target=True,
    )
    loss = kl * temperature**2
    return loss + alpha * _gold_ce(student_logits, labels) if alpha else loss


def _gold_ce(student_logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Mean CE over the rows that have a gold label; 0 (not NaN) when none has."""
    if not (labels != IGNORE).any():
        return student_logits.sum() * 0.0
    return F.cross_entropy(student_logits, labels, ignore_index=IGNORE)
