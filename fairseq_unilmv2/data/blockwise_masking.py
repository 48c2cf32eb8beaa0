"""Blockwise masking (SPEC 3.2, the paper's Algorithm 1) and BERT's 80/10/10 corruption.

Both are pure functions of their inputs and a ``numpy.random.Generator``, so that the statistics
of the masking can be tested on their own, away from datasets and models.
"""
from typing import List, NamedTuple

import numpy as np


class BlockwiseMask(NamedTuple):
    """The outcome of blockwise masking one text."""

    blocks: List[np.ndarray]   # masked positions, one array per block, in factorization order
    pick_lengths: np.ndarray   # length of every sampled span, accepted or not, in sampling order
    pick_accepted: np.ndarray  # bool, whether each sampled span became a block


def blockwise_mask(maskable: np.ndarray, rng: np.random.Generator, mask_prob: float = 0.15,
                   span_prob: float = 0.4, min_span_len: int = 2,
                   max_span_len: int = 6) -> BlockwiseMask:
    """Sample masked blocks until at least ``mask_prob`` of the maskable positions are masked.

    ``maskable`` is a bool array over the text, False at special tokens. Each pick draws a start
    uniformly over the maskable positions and a length: with probability ``span_prob`` uniform
    in ``{min_span_len, ..., max_span_len}``, else 1. The span becomes the next block only if it
    stays inside the text, covers no special token and overlaps no earlier block. The order in
    which blocks are accepted is the factorization order.
    """
    candidates = np.flatnonzero(maskable)
    n_candidates, length = len(candidates), len(maskable)
    goal = mask_prob * n_candidates
    # 1 where a span may not go (special token or already masked): a bytearray slice answers
    # "does the span fit" far faster than numpy slicing on a few elements, pick after pick.
    taken = bytearray((~np.asarray(maskable, dtype=bool)).astype(np.uint8).tobytes())
    blocks: List[np.ndarray] = []
    lengths: List[int] = []
    accepted: List[bool] = []
    n_masked = 0
    # Only a degenerate setting (span_prob 1 with no room left for any span) can keep every pick
    # from fitting; this bound ends such a loop instead of spinning forever.
    attempts_left = 100 * n_candidates + 100
    while n_masked < goal and attempts_left > 0:
        attempts_left -= 1
        start = int(candidates[rng.integers(n_candidates)])
        is_span = rng.random() < span_prob
        span = int(rng.integers(min_span_len, max_span_len + 1)) if is_span else 1
        end = start + span
        fits = end <= length and not any(taken[start:end])
        lengths.append(span)
        accepted.append(fits)
        if fits:
            taken[start:end] = b"\x01" * span
            blocks.append(np.arange(start, end, dtype=np.int64))
            n_masked += span
    return BlockwiseMask(blocks, np.asarray(lengths, dtype=np.int64),
                         np.asarray(accepted, dtype=bool))


def corrupt_masked(tokens: np.ndarray, rng: np.random.Generator, mask_idx: int,
                   random_token_prob: float, leave_unmasked_prob: float,
                   random_token_ids: np.ndarray) -> np.ndarray:
    """BERT's rule for what the AE part shows at masked positions.

    ``tokens`` are the original tokens at the masked positions. Each becomes ``mask_idx`` with
    probability ``1 - random_token_prob - leave_unmasked_prob``, a token drawn uniformly from
    ``random_token_ids`` with probability ``random_token_prob``, and is kept otherwise.
    """
    draw = rng.random(len(tokens))
    shown = np.full(len(tokens), mask_idx, dtype=np.int64)
    use_random = draw < random_token_prob
    keep = (draw >= random_token_prob) & (draw < random_token_prob + leave_unmasked_prob)
    shown[use_random] = rng.choice(random_token_ids, size=int(use_random.sum()))
    shown[keep] = tokens[keep]
    return shown
