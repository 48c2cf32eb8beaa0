"""Dropout whose random mask costs a fraction of torch's on CPU.

On CPU, ``F.dropout`` (and the dropout inside ``F.scaled_dot_product_attention``) draws its
mask with ``bernoulli_``, about 7 ns an element on two cores: profiled, a fifth of a CPU
pre-training update went to drawing attention dropout masks. Here each keep/drop decision
compares 16 random bits with a threshold, and four decisions come from one 64-bit draw of
torch's default generator, so ``torch.manual_seed``, fairseq's ``--seed`` and the RNG state
saved in checkpoints govern it as usual. The drop probability is rounded to a multiple of
2^-16 (0.1 becomes 0.100006) and kept values are scaled by 1 / (1 - that rounded value), so the
expectation of every element is exactly preserved.

On other devices ``F.dropout`` is used: GPU generators are fast and fused. Setting the
environment variable ``FAIRSEQ_UNILMV2_TORCH_DROPOUT=1`` uses it on CPU too (torch's own mask
streams, e.g. to compare with another implementation; ``benchmarks/pretrain_step.py
--torch-dropout``).
"""
import os

import torch
import torch.nn.functional as F
from torch import nn

_RANDOM_BITS = 16
TORCH_DROPOUT = os.environ.get("FAIRSEQ_UNILMV2_TORCH_DROPOUT", "0") == "1"


def draws_cheap_masks(x: torch.Tensor) -> bool:
    """Whether dropout on ``x`` uses :func:`keep_mask` rather than torch's own."""
    return x.device.type == "cpu" and not TORCH_DROPOUT


def keep_mask(shape: torch.Size, p: float, device: torch.device):
    """A bool mask of ``shape``, each element False with probability ``p`` rounded to a
    multiple of 2^-16, and that rounded probability."""
    numel = shape.numel()
    words = torch.empty((numel + 3) // 4, dtype=torch.int64, device=device)
    words.random_(-2 ** 63, None)  # all 64 bits random (plain random_() leaves the top bit 0)
    draws = words.view(torch.int16)[:numel].view(shape)
    dropped_levels = min(round(p * 2 ** _RANDOM_BITS), 2 ** _RANDOM_BITS - 1)
    return draws >= dropped_levels - 2 ** (_RANDOM_BITS - 1), dropped_levels / 2 ** _RANDOM_BITS


class _ScaleKept(torch.autograd.Function):
    """``x * keep / (1 - p)``; the backward applies the same mask, and only the bool mask is
    kept for it (one byte an element)."""

    @staticmethod
    def forward(ctx, x, keep, scale):
        ctx.save_for_backward(keep)
        ctx.scale = scale
        return torch.where(keep, x, 0.0).mul_(scale)  # where() reads the bool mask as is

    @staticmethod
    def backward(ctx, grad):
        (keep,) = ctx.saved_tensors
        return torch.where(keep, grad, 0.0).mul_(ctx.scale), None, None


def dropout(x: torch.Tensor, p: float, training: bool) -> torch.Tensor:
    """Drop-in for ``F.dropout(x, p, training)``; a ``p`` below 2^-17 rounds to no dropout."""
    if not training or p == 0.0:
        return x
    if not draws_cheap_masks(x) or p >= 1.0:
        return F.dropout(x, p, training=True)
    keep, p_rounded = keep_mask(x.shape, p, x.device)
    if p_rounded == 0.0:
        return x
    return _ScaleKept.apply(x, keep, 1.0 / (1.0 - p_rounded))


class Dropout(nn.Module):
    """``nn.Dropout`` with the cheaper CPU mask of :func:`dropout`."""

    def __init__(self, p: float):
        super().__init__()
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"dropout probability {p} is not in [0, 1]")
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return dropout(x, self.p, self.training)

    def extra_repr(self) -> str:
        return f"p={self.p}"
