"""The SPEC 3.3 / 3.4 worked example, rebuilt with ``pmlm_layout`` and ``attention_mask``.

x = x1 .. x6, masked blocks in factorization order {x4, x5} then {x2}. The paper's table counts
positions from 1; the model's position ids are 0-based, so every position here is the paper's
minus one (x1 at 0). The example has no [SOS]/[EOS], exactly as the paper's table.
"""
import numpy as np
import torch

from fairseq_unilmv2.data.layout import CONTEXT, ORIGINAL, PSEUDO, attention_mask, pmlm_layout

PAD, MASK = 1, 4
X1, X2, X3, X4, X5, X6 = 11, 12, 13, 14, 15, 16
C, P, O = CONTEXT, PSEUDO, ORIGINAL

# Rows are queries, columns keys: 1 = may attend (SPEC 3.4, written out in full).
#                     x1 M2 x3 M4 M5 x6 P4 P5 O4 O5 P2 O2
EXPECTED_MASK = [
    [1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0],  # x1
    [1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0],  # M2
    [1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0],  # x3
    [1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0],  # M4
    [1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0],  # M5
    [1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0],  # x6
    [1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0],  # P4
    [1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0],  # P5
    [1, 1, 1, 1, 1, 1, 0, 0, 1, 1, 0, 0],  # O4
    [1, 1, 1, 1, 1, 1, 0, 0, 1, 1, 0, 0],  # O5
    [1, 1, 1, 1, 1, 1, 0, 0, 1, 1, 1, 0],  # P2
    [1, 1, 1, 1, 1, 1, 0, 0, 1, 1, 0, 1],  # O2
]


def worked_example(append_last_originals=True):
    original = np.array([X1, X2, X3, X4, X5, X6])
    corrupted = np.array([X1, MASK, X3, MASK, MASK, X6])
    segments = np.zeros(6, dtype=np.int64)
    blocks = [[3, 4], [1]]  # {x4, x5} then {x2}, 0-based indices
    return pmlm_layout(original, corrupted, segments, blocks, MASK, PAD, append_last_originals)


def test_worked_example_tokens_positions_roles():
    layout = worked_example()
    assert layout.tokens.tolist() == [X1, MASK, X3, MASK, MASK, X6, MASK, MASK, X4, X5, MASK, X2]
    # The paper's 1 2 3 4 5 6 | 4 5 4 5 | 2 2, minus one.
    assert layout.positions.tolist() == [0, 1, 2, 3, 4, 5, 3, 4, 3, 4, 1, 1]
    assert layout.roles.tolist() == [C, C, C, C, C, C, P, P, O, O, P, O]
    assert layout.steps.tolist() == [0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2]
    # Targets: the AE masks and the pseudo masks, each predicting the original token.
    assert layout.target.tolist() == [PAD, X2, PAD, X4, X5, PAD, X4, X5, PAD, PAD, X2, PAD]
    assert layout.segments.tolist() == [0] * 12


def test_worked_example_attention_mask():
    layout = worked_example()
    roles = torch.from_numpy(layout.roles).unsqueeze(0)
    steps = torch.from_numpy(layout.steps).unsqueeze(0)
    mask = attention_mask(roles, steps)[0]
    assert mask.dtype == torch.bool
    assert mask.int().tolist() == EXPECTED_MASK


def test_last_originals_can_be_left_out():
    """O2 is attended by no one (column of zeros above), so it may be dropped."""
    assert [row[11] for row in EXPECTED_MASK[:11]] == [0] * 11
    layout = worked_example(append_last_originals=False)
    assert layout.tokens.tolist() == [X1, MASK, X3, MASK, MASK, X6, MASK, MASK, X4, X5, MASK]
    assert layout.positions.tolist() == [0, 1, 2, 3, 4, 5, 3, 4, 3, 4, 1]
    mask = attention_mask(torch.from_numpy(layout.roles)[None],
                          torch.from_numpy(layout.steps)[None])
    assert mask[0].int().tolist() == [row[:11] for row in EXPECTED_MASK[:11]]
