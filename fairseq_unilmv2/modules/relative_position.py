"""Relative position bias shared by all layers (SPEC 2).

The relative position of key j seen from query i is ``pos[j] - pos[i]``, computed from the
*position ids* the data pipeline gives (pseudo masks reuse the position of the token they stand
for, so token order says nothing). It is bucketed with the bidirectional T5 / Mesh-TensorFlow
scheme, one-hot encoded, and projected to one bias per head by a ``Linear(bins -> heads)``
without bias, which is the same as an embedding lookup ``weight[:, bucket]``.
"""
import math
from typing import Optional

import torch
from torch import nn


def relative_position_bucket(relative_position: torch.Tensor, num_buckets: int = 32,
                             max_distance: int = 128) -> torch.Tensor:
    """Map ``pos[j] - pos[i]`` to a bucket id in ``[0, num_buckets)``.

    Half of the buckets serve each sign; keys to the right of the query (positive distance) get
    an offset of ``num_buckets // 2``. Within a half (h buckets, e = h // 2 exact ones), distance
    n < e gets bucket n and larger n gets ``e + floor(log(n / e) / log(max_distance / e) * (h - e))``
    capped at h - 1. With 32 buckets and max distance 128: 0 -> 0, +1 -> 17, -1 -> 1,
    +7 -> 23, -8 -> 8, +20 -> 26, -127 -> 15, +128 -> 31, -500 -> 15.
    """
    half = num_buckets // 2
    bucket = (relative_position > 0).long() * half
    n = relative_position.abs()
    exact = half // 2
    is_small = n < exact
    # clamp(min=1) only keeps log() finite on the small entries that torch.where discards.
    log_ratio = torch.log(n.float().clamp(min=1) / exact) / math.log(max_distance / exact)
    large = exact + (log_ratio * (half - exact)).long()
    large = torch.clamp(large, max=half - 1)
    return bucket + torch.where(is_small, n, large)


class RelativePositionBias(nn.Module):
    """``Linear(num_buckets -> num_heads, bias=False)`` over one-hot relative position buckets."""

    def __init__(self, num_heads: int, num_buckets: int = 32, max_distance: int = 128):
        super().__init__()
        self.num_buckets = num_buckets
        self.max_distance = max_distance
        self.proj = nn.Linear(num_buckets, num_heads, bias=False)
        # s2s-ft fine-tunes this table without weight decay ("bias" is in its name there);
        # fairseq's optimizers that honour overrides (adam_no_decay_bias_ln, composite) follow.
        self.proj.weight.optim_overrides = {"weight_decay": 0.0}

    def forward(self, query_positions: torch.Tensor, key_positions: torch.Tensor,
                dtype: Optional[torch.dtype] = None) -> torch.Tensor:
        """(B, Tq) and (B, Tk) position ids -> bias (B, heads, Tq, Tk), in ``dtype`` (by default
        the weight's): the small table is cast before the lookup, not the large result."""
        relative = key_positions.unsqueeze(1) - query_positions.unsqueeze(2)
        bucket = relative_position_bucket(relative, self.num_buckets, self.max_distance)
        weight = self.proj.weight if dtype is None else self.proj.weight.to(dtype)
        # A one-hot vector times the weight is a column lookup: same result, no (B,Tq,Tk,bins).
        return _BucketLookup.apply(weight, bucket).transpose(0, 1)  # (B, heads, Tq, Tk)

    def bias_by_distance(self, max_positions: int) -> torch.Tensor:
        """(heads, 2P - 1): the bias of every relative distance -(P - 1) .. P - 1 between
        position ids below P, for attention that looks the bias up per (query, key) pair
        instead of receiving it as a (B, heads, Tq, Tk) tensor."""
        distance = torch.arange(1 - max_positions, max_positions, device=self.proj.weight.device)
        bucket = relative_position_bucket(distance, self.num_buckets, self.max_distance)
        return self.proj.weight[:, bucket]


def sum_into_buckets(grad: torch.Tensor, bucket: torch.Tensor, num_buckets: int) -> torch.Tensor:
    """``out[h, n] = sum of grad[h, i] over the i with bucket[i] == n``: (heads, N), (N,) ->
    (heads, num_buckets), the gradient of the bucket lookup.

    Every (query, key) pair of the batch adds into one of only num_buckets x heads cells. On a
    GPU, ``index_add_`` does that with atomics that all contend for those few cells (it was
    half of a PMLM step's CUDA time); there the sum is a product with the buckets' one-hot
    matrix instead, built a chunk at a time, which tensor cores do without contention. On the
    CPU, ``index_add_`` adds serially and is the faster of the two by far.
    """
    if grad.device.type == "cpu":
        # Summed in fp32 at least, whatever the gradient's dtype: B*T*T terms a cell.
        dtype = torch.promote_types(grad.dtype, torch.float32)
        total = torch.zeros(grad.size(0), num_buckets, dtype=dtype)
        return total.index_add_(1, bucket, grad.to(dtype)).to(grad.dtype)
    return _one_hot_sum(grad, bucket, num_buckets)


def _one_hot_sum(grad: torch.Tensor, bucket: torch.Tensor, num_buckets: int,
                 chunk: int = 1 << 20) -> torch.Tensor:
    """``sum_into_buckets`` as chunked ``grad @ one_hot(bucket)``, accumulated in fp32."""
    bins = torch.arange(num_buckets, device=bucket.device, dtype=bucket.dtype)
    total = torch.zeros(grad.size(0), num_buckets, device=grad.device, dtype=torch.float32)
    for start in range(0, bucket.numel(), chunk):
        one_hot = (bucket[start:start + chunk, None] == bins).to(grad.dtype)
        total += (grad[:, start:start + chunk] @ one_hot).float()
    return total.to(grad.dtype)


class _BucketLookup(torch.autograd.Function):
    """``weight[:, bucket]`` for a (heads, bins) weight, heads-major output.

    Autograd's own backward of this indexing is a generic accumulating index_put over the
    B*Tq*Tk entries; :func:`sum_into_buckets` gives the same sums faster on either device.
    """

    @staticmethod
    def forward(ctx, weight: torch.Tensor, bucket: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(bucket)
        ctx.num_buckets = weight.size(1)
        return weight[:, bucket]

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        (bucket,) = ctx.saved_tensors
        heads = grad.size(0)
        grad_weight = sum_into_buckets(grad.reshape(heads, -1), bucket.reshape(-1),
                                       ctx.num_buckets)
        return grad_weight, None
