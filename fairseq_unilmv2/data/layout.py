"""The PMLM input layout and the self-attention mask: the one place where both are defined.

Every token of a UniLMv2 input carries a *role* and a factorization *step*:

- ``CONTEXT`` (step 0): the bidirectional part, i.e. the text with its conventional masks in
  pre-training, or the source in sequence-to-sequence fine-tuning;
- ``PSEUDO`` (step i >= 1): a pseudo mask of factorization step i, predicting the token it
  stands for (same position id, same token type);
- ``ORIGINAL`` (step i >= 1): an original token of step i, appended so that later steps can
  condition on it;
- ``PADDING``: attended by no one.

Who may attend to whom (SPEC 3.4) then follows from roles and steps alone:

- CONTEXT attends to CONTEXT;
- PSEUDO of step i attends to CONTEXT, to ORIGINAL of steps < i and to PSEUDO of step i;
- ORIGINAL of step i attends to CONTEXT and to ORIGINAL of steps <= i.

Sequence-to-sequence fine-tuning (SPEC 4) is the special case where every target token is its
own step, in left-to-right order: the target token j is ORIGINAL of step j and its pseudo mask
is PSEUDO of step j, so the same rule gives "target attends to the source and to targets at
positions <= its own; pseudo attends to the source, to targets before it, and to itself".
Incremental decoding uses the same rule for its two new tokens against the cache.

The paper's worked example (SPEC 3.3; positions 1-based as in the paper, the model's are
0-based). x = x1 .. x6, masked blocks in factorization order {4, 5} then {2}::

    tokens:     x1 [M] x3 [M] [M] x6 | [P] [P] x4 x5 | [P] x2
    positions:   1   2  3   4   5  6 |  4   5   4  5 |  2   2
    role/step:   C   C  C   C   C  C | P1  P1  O1 O1 | P2  O2

    may attend   x1 M2 x3 M4 M5 x6 P4 P5 O4 O5 P2 O2
    x1..x6        1  1  1  1  1  1  0  0  0  0  0  0
    P4, P5        1  1  1  1  1  1  1  1  0  0  0  0
    O4, O5        1  1  1  1  1  1  0  0  1  1  0  0
    P2            1  1  1  1  1  1  0  0  1  1  1  0
    O2            1  1  1  1  1  1  0  0  1  1  0  1

``tests/test_layout.py`` rebuilds this example and compares it with the table.

The paper's ablation objectives (:class:`Objective`, ``--objective`` of the pmlm task) change
which parts exist and which rows carry a loss, never the rule: ``ae`` keeps the CONTEXT part
alone (masked_lm's input), ``par`` and ``ar`` keep today's input but read no loss at the
conventional masks, and ``ar`` makes every masked token its own step
(:func:`factorization_steps`). ``tests/test_objective_layout.py`` works them out by hand.
"""
from typing import Dict, List, NamedTuple, Optional, Sequence, Tuple

import numpy as np
import torch

CONTEXT, PSEUDO, ORIGINAL, PADDING = 0, 1, 2, 3

# The paper's pre-training objectives (its Table 6 ablation), as ``--objective`` spells them.
OBJECTIVES = ("ae", "ar", "par", "ae+ar", "ae+par")


class Objective(NamedTuple):
    """Which parts a PMLM example has and which of its rows carry a loss."""

    ae: bool     # AE loss at the conventional masks of the CONTEXT part
    pseudo: str  # "" (no pseudo part), "par" (a step per masked span), "ar" (a step per token)

    @classmethod
    def parse(cls, name: str) -> "Objective":
        name = str(name)  # fairseq hands a config's choice over as a str-like enum
        if name not in OBJECTIVES:
            raise ValueError(f"--objective {name!r} is not one of {', '.join(OBJECTIVES)}")
        parts = name.split("+")
        return cls(ae="ae" in parts, pseudo=next((p for p in parts if p != "ae"), ""))


def factorization_steps(blocks: Sequence[np.ndarray], objective: Objective,
                        rng: np.random.Generator) -> List[np.ndarray]:
    """The masked positions grouped into factorization steps, in step order.

    PAR keeps blockwise masking's blocks (one step a span, in sampling order); AR splits them
    into single tokens in a random order of all masked tokens (its draw from ``rng`` comes
    after every draw of the other objectives, which therefore see the same masks); an objective
    without a pseudo part has no steps.
    """
    if objective.pseudo == "par":
        return list(blocks)
    if objective.pseudo == "ar" and len(blocks):
        tokens = rng.permutation(np.concatenate(blocks))
        return [tokens[i:i + 1] for i in range(len(tokens))]
    return []


def may_attend(query_roles: torch.Tensor, query_steps: torch.Tensor,
               key_roles: torch.Tensor, key_steps: torch.Tensor) -> torch.Tensor:
    """Boolean (B, Tq, Tk) mask, True where the query may attend to the key.

    Arguments are (B, Tq) and (B, Tk) role / step tensors. Vectorized: no loop over tokens.
    A PADDING query attends to the CONTEXT keys, so that its softmax row is never empty.
    """
    return attends(query_roles.unsqueeze(2), query_steps.unsqueeze(2),
                   key_roles.unsqueeze(1), key_steps.unsqueeze(1))


def attends(q_role, q_step, k_role, k_step):
    """The rule itself, elementwise on broadcastable tensors: :func:`may_attend` applies it to
    every (query, key) pair of a batch, the FlexAttention backend to the pairs of a block."""
    key_is_context = k_role == CONTEXT
    pseudo_row = (q_role == PSEUDO) & (((k_role == ORIGINAL) & (k_step < q_step))
                                       | ((k_role == PSEUDO) & (k_step == q_step)))
    original_row = (q_role == ORIGINAL) & (k_role == ORIGINAL) & (k_step <= q_step)
    return key_is_context | pseudo_row | original_row


def attention_mask(roles: torch.Tensor, steps: torch.Tensor) -> torch.Tensor:
    """Self-attention mask of one packed batch: ``may_attend`` of the batch with itself."""
    return may_attend(roles, steps, roles, steps)


def leading_context_block(roles: torch.Tensor) -> Optional[Tuple[int, int]]:
    """``(n_q, n_k)`` such that query rows ``[0, n_q)`` of every example attend only to key
    columns ``[0, n_k)`` under :func:`attention_mask`, or None when that saves nothing.

    CONTEXT attends to CONTEXT only, and in the PMLM and seq2seq layouts the CONTEXT part is a
    prefix: the rows of the shortest prefix (``n_q``) then need only the columns of the longest
    (``n_k``). Padding attends to CONTEXT too, so a padded example does not break the block.
    Reads roles on the host, so the collaters compute it there and the batch carries it: on a
    GPU, the model reading it off the device would wait for every queued kernel.
    """
    batch, length = roles.shape
    if length == 0 or batch == 0:
        return None
    is_context = roles.eq(CONTEXT)
    n_context = is_context.sum(dim=1)
    # Length of the leading run of CONTEXT tokens in each example.
    prefix = torch.cumprod(is_context.to(torch.uint8), dim=1).sum(dim=1)
    if not torch.equal(prefix, n_context):
        return None  # some example has CONTEXT tokens after its prefix
    n_q, n_k = int(prefix.min()), int(prefix.max())
    if n_q == 0 or n_q == length or n_k == length:
        return None
    return n_q, n_k


def collate_layouts(layouts: Sequence[NamedTuple], pad_idx: int) -> Dict[str, torch.Tensor]:
    """Right-pad laid-out examples into one batch of (B, T) tensors.

    ``layouts`` are any records with 1-D ``tokens``, ``positions``, ``segments``, ``roles`` and
    ``steps`` arrays (:class:`PMLMLayout`, the seq2seq layout). Padding gets the pad token, role
    PADDING (attended by no one) and position, token type and step 0. The batch carries roles
    and steps, not the (B, T, T) mask: the model builds the mask (or its attention backend's
    equivalent) on the device with :func:`attention_mask`, which keeps the data loader light.
    """
    return {
        "src_tokens": collate_field(layouts, "tokens", pad_idx),
        "positions": collate_field(layouts, "positions", 0),
        "segment_labels": collate_field(layouts, "segments", 0),
        # Small integer types: these two replace a (B, T, T) mask in every batch a data-loader
        # worker pickles and the trainer copies to the device.
        "roles": collate_field(layouts, "roles", PADDING, np.int8),
        "steps": collate_field(layouts, "steps", 0, np.int16),
    }


def collate_field(layouts: Sequence[NamedTuple], field: str, fill: int,
                  dtype=np.int64) -> torch.Tensor:
    """One field of the layouts, right-padded with ``fill`` into a (B, T) tensor."""
    arrays = [getattr(layout, field) for layout in layouts]
    batch = np.full((len(arrays), max(len(a) for a in arrays)), fill, dtype=dtype)
    for row, array in enumerate(arrays):
        batch[row, :len(array)] = array
    return torch.from_numpy(batch)


class PMLMLayout(NamedTuple):
    """One pre-training example laid out as ``[text with masks | P1 O1 | P2 O2 | ...]``."""

    tokens: np.ndarray     # input ids
    positions: np.ndarray  # 0-based position ids (pseudo masks and originals reuse theirs)
    segments: np.ndarray   # token types
    roles: np.ndarray      # CONTEXT / PSEUDO / ORIGINAL
    steps: np.ndarray      # factorization step (0 for CONTEXT)
    target: np.ndarray     # original token at every predicted position, pad elsewhere


def pmlm_layout(original: np.ndarray, corrupted: np.ndarray, segments: np.ndarray,
                blocks: Sequence[Sequence[int]], mask_idx: int, pad_idx: int,
                append_last_originals: bool = True,
                pseudo_tokens: Optional[np.ndarray] = None,
                ae_loss: bool = True) -> PMLMLayout:
    """Lay out one PMLM example (SPEC 3.3).

    ``original`` is the text (with its special tokens), ``corrupted`` the same text after the
    80/10/10 rule on the masked positions, ``blocks`` the masked positions grouped into blocks in
    factorization order. Every masked position is a target of the AE part (whatever it shows;
    unless ``ae_loss`` is False) and of its pseudo mask. ``pseudo_tokens`` overrides what the
    pseudo masks show (one entry per masked position in block order; default: the mask symbol).
    The originals of the last step are attended by no one, so ``append_last_originals=False``
    leaves them out. :func:`objective_layout` lays out an example for any ``--objective``.
    """
    length = len(original)
    sizes = np.array([len(block) for block in blocks], dtype=np.int64)
    masked = (np.concatenate([np.asarray(block, dtype=np.int64) for block in blocks])
              if len(blocks) else np.zeros(0, dtype=np.int64))
    target = np.full(length, pad_idx, dtype=np.int64)
    if ae_loss:  # otherwise the conventional masks stay, as context only
        target[masked] = original[masked]

    # The appended part, vectorized: block i contributes its pseudo masks then its originals.
    copies = np.full(len(blocks), 2, dtype=np.int64)
    if len(blocks) and not append_last_originals:
        copies[-1] = 1
    segment_lengths = sizes * copies
    block_of = np.repeat(np.arange(len(blocks), dtype=np.int64), segment_lengths)
    offset = np.arange(segment_lengths.sum()) - (np.cumsum(segment_lengths)
                                                  - segment_lengths)[block_of]
    block_size = sizes[block_of]
    is_original = offset >= block_size
    masked_index = (np.cumsum(sizes) - sizes)[block_of] + offset - block_size * is_original
    appended_positions = masked[masked_index]
    shown = (np.full(len(masked_index), mask_idx, dtype=np.int64) if pseudo_tokens is None
             else np.asarray(pseudo_tokens, dtype=np.int64)[masked_index])
    appended_originals = original[appended_positions]

    positions = np.concatenate([np.arange(length, dtype=np.int64), appended_positions])
    return PMLMLayout(
        tokens=np.concatenate([corrupted.astype(np.int64),
                               np.where(is_original, appended_originals, shown)]),
        positions=positions,
        segments=segments[positions],
        roles=np.concatenate([np.full(length, CONTEXT, dtype=np.int64),
                              np.where(is_original, ORIGINAL, PSEUDO)]),
        steps=np.concatenate([np.zeros(length, dtype=np.int64), block_of + 1]),
        target=np.concatenate([target, np.where(is_original, pad_idx, appended_originals)]),
    )


def objective_layout(original: np.ndarray, corrupted: np.ndarray, segments: np.ndarray,
                     blocks: Sequence[np.ndarray], objective: Objective, mask_idx: int,
                     pad_idx: int, rng: np.random.Generator,
                     append_last_originals: bool = True) -> PMLMLayout:
    """One example under ``objective``: blockwise masking's ``blocks`` (in sampling order)
    become its factorization steps, and the layout has the parts the objective keeps.

    Without a pseudo part (``ae``) the example is the masked text alone, as long as
    masked_lm's, with the AE targets at the masked positions.
    """
    if not objective.pseudo:
        masked = (np.concatenate(blocks) if len(blocks) else np.zeros(0, dtype=np.int64))
        target = np.full(len(original), pad_idx, dtype=np.int64)
        target[masked] = original[masked]
        return PMLMLayout(tokens=corrupted.astype(np.int64),
                          positions=np.arange(len(original), dtype=np.int64),
                          segments=segments.astype(np.int64),
                          roles=np.full(len(original), CONTEXT, dtype=np.int64),
                          steps=np.zeros(len(original), dtype=np.int64), target=target)
    steps = factorization_steps(blocks, objective, rng)
    return pmlm_layout(original, corrupted, segments, steps, mask_idx, pad_idx,
                       append_last_originals, ae_loss=objective.ae)
