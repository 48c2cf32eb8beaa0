"""Where attention is computed, and the one place that chooses how (``--attention-backend``).

- ``dense`` (the default, every device): one additive float bias (B, H, Tq, Tk) that carries
  the relative position bias and the mask, through ``F.scaled_dot_product_attention`` (see
  ``modules/transformer.py``). Simple and exact; on a GPU the bias and its gradient dominate a
  PMLM step, since they cost B x H x T x T values of memory traffic in every forward.
- ``flex``: PyTorch's FlexAttention. The mask is a ``BlockMask`` built from the tokens' roles
  and steps with the rule of :func:`fairseq_unilmv2.data.layout.attends`, and the relative
  position bias is a ``score_mod`` that reads a (heads, relative distance) table, so no
  (B, H, T, T) tensor exists, and whole blocks the mask rules out are skipped. The sequence
  is padded to a multiple of 128 (FlexAttention's block) so that compiled kernels see few
  shapes; off the CPU both the block mask and the attention are compiled
  (:func:`runs_compiled`).

FlexAttention has no attention dropout, and in this torch no backward on the CPU, so ``flex``
falls back to ``dense`` (with a warning, once) when training with ``--attention-dropout`` > 0
or when gradients are needed on the CPU. Decoding against a cache always uses ``dense``: it
has a couple of queries per step.
"""
import logging
from typing import Callable, Optional

import torch
import torch.nn.functional as F

from ..data.layout import attends

logger = logging.getLogger(__name__)

BACKENDS = ("dense", "flex")
FLEX_BLOCK = 128  # FlexAttention's block size: the padded length is a multiple of it

try:
    from torch.nn.attention.flex_attention import create_block_mask, flex_attention
except ImportError:  # torch < 2.5
    create_block_mask = flex_attention = None

_warned = set()
_compiled_functions = {}


def _warn_once(message: str) -> None:
    if message not in _warned:
        _warned.add(message)
        logger.warning(message)


def use_flex(backend: str, device: torch.device, training: bool,
             attention_dropout: float) -> bool:
    """Whether a packed forward runs on FlexAttention, given ``--attention-backend``."""
    if backend != "flex":
        return False
    if flex_attention is None:
        _warn_once(f"--attention-backend flex needs torch >= 2.5 (this is {torch.__version__}); "
                   "using dense attention")
        return False
    if training and attention_dropout > 0:
        _warn_once("--attention-backend flex has no attention dropout: set --attention-dropout 0 "
                   "to use it; training with dense attention")
        return False
    if device.type == "cpu" and torch.is_grad_enabled():
        _warn_once("FlexAttention has no backward on the CPU in this torch: dense attention "
                   "wherever gradients are needed on the CPU")
        return False
    return True


def padded_length(length: int) -> int:
    return -(-length // FLEX_BLOCK) * FLEX_BLOCK


def pad_to_blocks(tensor: torch.Tensor, fill: int) -> torch.Tensor:
    """Right-pad a (B, T) tensor to :func:`padded_length` with ``fill``."""
    return F.pad(tensor, (0, padded_length(tensor.size(1)) - tensor.size(1)), value=fill)


def runs_compiled(device: torch.device) -> bool:
    """FlexAttention is compiled off the CPU. On the CPU it runs eager, as a reference for
    inference and tests: compiling there takes longer than the work, and this torch's CPU
    kernels fail on shapes that vary (automatic dynamic shapes)."""
    return device.type != "cpu"


def _compiled(function: Callable) -> Callable:
    """``torch.compile`` of a FlexAttention function, made once per process.

    Shapes are left to torch's automatic dynamic shapes: the first shape compiles a static
    kernel, and a dimension that then changes is made symbolic. fairseq's batches vary in
    size (and, when fine-tuning, in length); compiled static, every new shape would compile
    again, and past torch's recompile limit (8) the eager reference would run, which
    materializes the (B, H, T, T) scores this backend exists to avoid.
    """
    if function not in _compiled_functions:
        _compiled_functions[function] = torch.compile(function, dynamic=None)
    return _compiled_functions[function]


class FlexPlan:
    """Everything the layers of one packed forward share for FlexAttention.

    ``roles``, ``steps`` and ``positions`` are (B, T) with T a multiple of
    :data:`FLEX_BLOCK` (pad with role PADDING); ``distance_bias`` is the (heads, 2P - 1) bias of
    every relative distance -(P - 1) .. P - 1 (or None without relative positions).
    """

    def __init__(self, roles: torch.Tensor, steps: torch.Tensor, positions: torch.Tensor,
                 distance_bias: Optional[torch.Tensor]):
        batch, length = roles.shape
        if length % FLEX_BLOCK:
            raise ValueError(f"FlexPlan needs a length padded to a multiple of {FLEX_BLOCK}, "
                             f"got {length}")

        def mask_mod(b, h, q_idx, kv_idx):
            return attends(roles[b, q_idx], steps[b, q_idx], roles[b, kv_idx], steps[b, kv_idx])

        # Compiled, the (B, T, T) mask is never materialized.
        build = _compiled(create_block_mask) if runs_compiled(roles.device) else create_block_mask
        self.block_mask = build(mask_mod, batch, None, length, length, device=roles.device)
        self.score_mod = None
        if distance_bias is not None:
            offset = (distance_bias.size(1) - 1) // 2

            def score_mod(score, b, h, q_idx, kv_idx):
                distance = positions[b, kv_idx] - positions[b, q_idx]
                return score + distance_bias[h, distance + offset]

            self.score_mod = score_mod

    def attend(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        # Compiled, FlexAttention runs fused kernels; eager, it is a dense reference.
        run = _compiled(flex_attention) if runs_compiled(q.device) else flex_attention
        return run(q, k, v, score_mod=self.score_mod, block_mask=self.block_mask)

